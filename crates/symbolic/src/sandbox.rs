//! The rules worker's confinement, applied by the worker to itself before it reads the rule base:
//!
//! 1. resource limits: address space (`RLIMIT_AS`), CPU time (`RLIMIT_CPU`), no file growth (`RLIMIT_FSIZE` 0),
//!    few descriptors (`RLIMIT_NOFILE`), no core dumps;
//! 2. Landlock (Linux >= 5.13): no file-system access at all (the worker gets the rule text over its stdin), and
//!    from ABI 6 no signals to processes outside the sandbox; skipped, and reported, where the kernel lacks it;
//! 3. a seccomp filter (`no_new_privs` first): `execve`/`execveat`, new processes (`fork`, `vfork`, `clone` without
//!    `CLONE_THREAD`), sockets, `ptrace`, `kill`, every call that creates, removes, renames or changes files, opening
//!    files for writing, and raising the limits above all fail with `EPERM`; `clone3` fails with `ENOSYS` so that
//!    threads fall back to `clone`, where the flags can be checked.
//!
//! The parent adds a wall-clock timeout and kills the worker when it is exceeded, and the worker dies with its
//! parent (`PR_SET_PDEATHSIG`).

use crate::protocol::{SandboxReport, WorkerLimits};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Applies every layer it can and says what it enforced.
pub fn apply(limits: &WorkerLimits) -> SandboxReport {
    let rlimits = set_rlimits(limits);
    let landlock = landlock();
    let seccomp = seccomp();
    SandboxReport {
        seccomp,
        landlock,
        rlimits,
        checks: Vec::new(),
    }
}

/// After [`apply`]: tries what the sandbox must prevent and records whether each attempt was blocked.
pub fn verify(scratch: Option<&std::path::Path>) -> Vec<(String, bool)> {
    let mut checks = Vec::new();
    let exec = std::process::Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    checks.push(("run a program".to_owned(), exec.is_err()));
    let socket = std::net::TcpListener::bind("127.0.0.1:0");
    checks.push(("open a socket".to_owned(), socket.is_err()));
    if let Some(dir) = scratch {
        let created = std::fs::File::create(dir.join("sandbox-probe"));
        checks.push(("create a file".to_owned(), created.is_err()));
        let listed = std::fs::read_dir(dir);
        checks.push(("list a folder".to_owned(), listed.is_err()));
    }
    checks
}

fn set_rlimits(l: &WorkerLimits) -> Result<(), String> {
    use nix::sys::resource::{Resource, setrlimit};
    let set =
        |r: Resource, name: &str, v: u64| setrlimit(r, v, v).map_err(|e| format!("{name}: {e}"));
    set(Resource::RLIMIT_AS, "RLIMIT_AS", l.memory_bytes)?;
    set(Resource::RLIMIT_CPU, "RLIMIT_CPU", l.cpu_seconds.max(1))?;
    set(Resource::RLIMIT_FSIZE, "RLIMIT_FSIZE", 0)?;
    set(Resource::RLIMIT_CORE, "RLIMIT_CORE", 0)?;
    set(Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE", 16)?;
    Ok(())
}

fn landlock() -> Result<String, String> {
    use landlock::{ABI, Access, AccessFs, AccessNet, RulesetAttr, RulesetStatus, Scope};
    let abi = ABI::V6;
    let status = landlock::Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok("enforced: no file-system access".into()),
        RulesetStatus::PartiallyEnforced => {
            Ok("partly enforced (older kernel ABI): no file-system access".into())
        }
        RulesetStatus::NotEnforced => Err("not supported by this kernel".into()),
    }
}

fn target_arch() -> Result<TargetArch, String> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| format!("no seccomp support for {}", std::env::consts::ARCH))
}

fn masked(arg: u8, mask: u64) -> Result<SeccompRule, String> {
    let c = SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        mask,
    )
    .map_err(|e| e.to_string())?;
    SeccompRule::new(vec![c]).map_err(|e| e.to_string())
}

fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
    arch: TargetArch,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

fn seccomp() -> Result<(), String> {
    let arch = target_arch()?;
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // Unconditional refusals (an empty rule list matches every call).
    let always: &[i64] = &[
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_vfork,
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_ptrace,
        libc::SYS_process_vm_writev,
        libc::SYS_process_vm_readv,
        libc::SYS_kill,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_mkdirat,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
        libc::SYS_fchmodat,
        libc::SYS_fchownat,
        libc::SYS_fchmod,
        libc::SYS_fchown,
        libc::SYS_truncate,
        libc::SYS_ftruncate,
        libc::SYS_mknodat,
        libc::SYS_openat2,
        libc::SYS_setrlimit,
        libc::SYS_prlimit64,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_chroot,
        libc::SYS_pivot_root,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_io_uring_setup,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
    ];
    for &sys in always {
        deny.insert(sys, Vec::new());
    }
    #[cfg(target_arch = "x86_64")]
    for sys in [
        libc::SYS_fork,
        libc::SYS_unlink,
        libc::SYS_rename,
        libc::SYS_mkdir,
        libc::SYS_rmdir,
        libc::SYS_link,
        libc::SYS_symlink,
        libc::SYS_chmod,
        libc::SYS_chown,
        libc::SYS_lchown,
        libc::SYS_creat,
        libc::SYS_mknod,
    ] {
        deny.insert(sys, Vec::new());
    }
    // New processes: clone without CLONE_THREAD (threads keep working).
    let clone_process = SeccompRule::new(vec![
        SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )
        .map_err(|e| e.to_string())?,
    ])
    .map_err(|e| e.to_string())?;
    deny.insert(libc::SYS_clone, vec![clone_process]);
    // Opening for writing, creating or truncating.
    let write_flags = [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_CREAT,
        libc::O_TRUNC,
        libc::O_APPEND,
    ];
    let open_rules = |arg: u8| -> Result<Vec<SeccompRule>, String> {
        write_flags.iter().map(|&f| masked(arg, f as u64)).collect()
    };
    deny.insert(libc::SYS_openat, open_rules(2)?);
    #[cfg(target_arch = "x86_64")]
    deny.insert(libc::SYS_open, open_rules(1)?);
    let eperm = program(deny, libc::EPERM, arch)?;
    let mut nosys = BTreeMap::new();
    nosys.insert(libc::SYS_clone3, Vec::new());
    let enosys = program(nosys, libc::ENOSYS, arch)?;
    seccompiler::apply_filter(&eperm).map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&enosys).map_err(|e| e.to_string())?;
    Ok(())
}

/// One line for `nsod doctor` and `nsod rules check`.
pub fn describe(r: &SandboxReport) -> String {
    let part = |name: &str, ok: Result<String, String>| match ok {
        Ok(s) => format!("{name} {s}"),
        Err(e) => format!("{name} NOT applied ({e})"),
    };
    let mut parts = vec![
        part(
            "seccomp",
            r.seccomp
                .clone()
                .map(|_| "on (no exec, no new processes, no sockets, no file writes)".into()),
        ),
        part("landlock", r.landlock.clone()),
        part(
            "resource limits",
            r.rlimits
                .clone()
                .map(|_| "on (memory, CPU time, no file growth)".into()),
        ),
    ];
    if !r.checks.is_empty() {
        let tried: Vec<String> = r
            .checks
            .iter()
            .map(|(what, blocked)| {
                format!(
                    "{what}: {}",
                    if *blocked { "blocked" } else { "NOT blocked" }
                )
            })
            .collect();
        parts.push(format!("tried: {}", tried.join(", ")));
    }
    parts.join("; ")
}
