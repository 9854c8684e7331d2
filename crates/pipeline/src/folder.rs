//! One commit per run: a run folder is replaced in one step, so that after any interruption it holds the previous
//! complete result or the new one, never a mix of two runs.
//!
//! A run writes everything into a staging folder beside its target (`<parent>/.<name>.nsod-staging`, marked by a
//! `.nsod-staging` file, so that only folders nsod made are ever removed), then commits:
//!
//! 1. the inputs of a sharded run kept in the target (`plan.json`, `shards/`, `logs/`: [`PRESERVED`]) move into the staging
//!    folder, so the commit keeps them;
//! 2. the staging folder and the target are exchanged atomically (`renameat2(RENAME_EXCHANGE)`), or renamed into
//!    place when there is no target yet;
//! 3. the previous result, now at the staging path, is removed.
//!
//! Where the file system cannot exchange (`EINVAL`/`ENOSYS`; a target that is a mount point, such as a Kubernetes
//! volume: `EBUSY`/`EXDEV`), the documented fallback moves the entries in one by one: `run.json` is removed first
//! and written last, so a reader that trusts `run.json` (`complete: true`) never takes a partly moved folder for a
//! result.
//!
//! An interrupted run leaves its staging folder (its finished images, `run.json` with `complete: false`) for
//! `--skip-existing` to resume from; a run without it removes that leftover, which it can prove is nsod's by its
//! marker. A lock beside the target (`<parent>/.<name>.nsod-lock`, a directory created atomically, which works on
//! network file systems too, holding the holder's host and pid) keeps two runs or merges from writing one folder;
//! the loser is told who holds it.

use crate::sink::SinkError;
use std::path::{Path, PathBuf};

/// The marker file of a staging folder.
pub const MARKER: &str = ".nsod-staging";

/// Entries of a target that are a sharded run's inputs (and its tasks' logs), kept across commits.
pub const PRESERVED: [&str; 3] = [
    nsod_types::layout::PLAN,
    nsod_types::layout::SHARDS,
    nsod_types::layout::LOGS,
];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `<parent>/.<name><suffix>`.
fn beside(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    parent.join(format!(".{name}{suffix}"))
}

/// The staging folder of `target`.
pub fn staging_path(target: &Path) -> PathBuf {
    beside(target, ".nsod-staging")
}

/// The lock of `target`.
pub fn lock_path(target: &Path) -> PathBuf {
    beside(target, ".nsod-lock")
}

/// True when `dir` is a staging folder nsod made (its marker is there).
pub fn is_staging(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Names nsod writes into a run folder (outputs, their `.partial` streams, temporary files, the report site), or
/// keeps there (a sharded run's inputs). Anything else in a target is the user's, and a commit would remove it.
fn is_ours(name: &str) -> bool {
    use nsod_types::layout as l;
    let known = [
        l::MANIFEST,
        l::PREDICTIONS,
        l::PREDICTIONS_RAW,
        l::REPORT_CSV,
        l::REPORT_JSONL,
        l::LABELS,
        l::LABELS_OBB,
        l::VIS,
        l::COCO_RESULTS,
        l::COCO_IMAGES,
        l::SCENE_GRAPHS,
        l::KG_FACTS,
        l::KG_GRAPHML,
        l::KG_DOT,
        l::KG_JSON,
        l::KG_SVG,
        l::GEOJSON,
        l::GPKG,
        l::TRACKS,
        l::MOT,
        l::MOT_OBB,
        l::TRACK_SUMMARY,
        l::PLAN,
        l::SHARDS,
        l::LOGS,
        "report",
        MARKER,
    ];
    let base = name.strip_suffix(l::PARTIAL_SUFFIX).unwrap_or(name);
    known.contains(&base) || (name.starts_with(".nsod-") && name.ends_with(".tmp"))
}

/// Refuses a target that holds files nsod did not write: committing would remove them.
pub fn check_target(target: &Path) -> Result<(), SinkError> {
    let Ok(entries) = std::fs::read_dir(target) else {
        return Ok(());
    };
    let mut foreign: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !is_ours(n))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let shown: Vec<&str> = foreign.iter().take(5).map(String::as_str).collect();
    Err(SinkError::Resume {
        path: target.to_path_buf(),
        message: format!(
            "holds files nsod did not write ({}{}): a run replaces its whole folder, so write into an empty or new \
             folder (--out)",
            shown.join(", "),
            if foreign.len() > 5 { ", ..." } else { "" }
        ),
    })
}

/// Makes an empty staging folder for `target` (removing a leftover one of nsod's).
pub fn fresh_staging(target: &Path) -> Result<PathBuf, SinkError> {
    let s = staging_path(target);
    remove_staging(&s)?;
    std::fs::create_dir_all(&s).map_err(io(&s))?;
    std::fs::write(
        s.join(MARKER),
        b"nsod staging folder: removed or committed by the next run\n",
    )
    .map_err(io(&s))?;
    Ok(s)
}

/// Removes a staging folder nsod made; refuses one without its marker.
pub fn remove_staging(s: &Path) -> Result<(), SinkError> {
    if !s.exists() {
        return Ok(());
    }
    if !is_staging(s) {
        return Err(SinkError::Resume {
            path: s.to_path_buf(),
            message: format!(
                "is in the way of the run's staging folder but is not one nsod made ({MARKER} is missing): move it"
            ),
        });
    }
    std::fs::remove_dir_all(s).map_err(io(s))
}

/// Stops the process here when the test harness asks for it (`NSOD_FAULT=<phase>`, debug builds only): how the tests
/// interrupt a run at each write phase deterministically, as `kill -9` would. `NSOD_FAULT=<phase>:hold` waits there
/// instead (until killed), for tests of what another process sees meanwhile. `NSOD_FAULT=<phase>@<n>` stops at the
/// phase's `n`th passage (`records@6`: after the sixth image's records).
pub fn fault(phase: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Ok(mut asked) = std::env::var("NSOD_FAULT") else {
        return;
    };
    if let Some((p, n)) = asked.split_once('@') {
        static PASSED: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());
        let Ok(n) = n.parse::<usize>() else { return };
        let mut passed = PASSED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = match passed.iter_mut().find(|(q, _)| q == phase) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                passed.push((phase.to_owned(), 1));
                1
            }
        };
        if p != phase || count != n {
            return;
        }
        asked = p.to_owned();
    }
    if asked == phase {
        eprintln!("nsod: NSOD_FAULT={phase}: stopping here");
        std::process::abort();
    }
    if asked.strip_suffix(":hold") == Some(phase) {
        eprintln!("nsod: NSOD_FAULT={phase}:hold: holding here");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// Puts a sharded run's inputs back into `target` when a commit stopped after moving them into the staging folder.
pub fn recover_preserved(target: &Path) -> Result<(), SinkError> {
    let s = staging_path(target);
    if !is_staging(&s) {
        return Ok(());
    }
    for name in PRESERVED {
        let (from, to) = (s.join(name), target.join(name));
        if from.exists() && !to.exists() {
            std::fs::create_dir_all(target).map_err(io(target))?;
            std::fs::rename(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

/// Makes `staging` the result at `target` in one step (see the module documentation).
pub fn commit(staging: &Path, target: &Path) -> Result<(), SinkError> {
    // The sharded run's inputs stay with the target.
    for name in PRESERVED {
        let (from, to) = (target.join(name), staging.join(name));
        if from.exists() && !to.exists() {
            std::fs::rename(&from, &to).map_err(io(&from))?;
        }
    }
    let _ = std::fs::remove_file(staging.join(MARKER));
    if !target.exists() {
        return std::fs::rename(staging, target).map_err(io(target));
    }
    // The previous result is marked as nsod's before the exchange puts it at the staging path: should the process
    // stop before removing it, the next run can prove it may remove it.
    std::fs::write(
        target.join(MARKER),
        b"nsod: the previous result, being replaced\n",
    )
    .map_err(io(target))?;
    match exchange(staging, target) {
        Ok(()) => {
            fault("commit");
            // The previous result now lies at the staging path.
            std::fs::remove_dir_all(staging).map_err(io(staging))
        }
        Err(_) => move_in(staging, target),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> Result<(), nix::Error> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> Result<(), nix::Error> {
    Err(nix::Error::ENOSYS)
}

/// The fallback commit: entry by entry, `run.json` removed first and written last.
fn move_in(staging: &Path, target: &Path) -> Result<(), SinkError> {
    let manifest = nsod_types::layout::MANIFEST;
    let _ = std::fs::remove_file(target.join(manifest));
    for e in std::fs::read_dir(target).map_err(io(target))?.flatten() {
        let name = e.file_name();
        if staging.join(&name).exists() || PRESERVED.iter().any(|p| *p == name) {
            continue;
        }
        let p = e.path();
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
    for e in std::fs::read_dir(staging).map_err(io(staging))?.flatten() {
        let name = e.file_name();
        if name == manifest || name == MARKER {
            continue;
        }
        let to = target.join(&name);
        if to.is_dir() {
            std::fs::remove_dir_all(&to).map_err(io(&to))?;
        }
        std::fs::rename(e.path(), &to).map_err(io(&to))?;
    }
    fault("commit");
    let from = staging.join(manifest);
    if from.exists() {
        std::fs::rename(&from, target.join(manifest)).map_err(io(target))?;
    }
    let _ = std::fs::remove_file(target.join(MARKER));
    std::fs::remove_dir_all(staging).map_err(io(staging))
}

/// The lock of a run folder, released when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes the lock of `target`; when another live process holds it, says which. A lock left by a process of this
    /// host that is gone is taken over.
    pub fn take(target: &Path) -> Result<Self, SinkError> {
        let path = lock_path(target);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let host = host_name();
        for _ in 0..2 {
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let holder = format!("{host} {}\n", std::process::id());
                    std::fs::write(path.join("holder"), holder).map_err(io(&path))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path.join("holder")).unwrap_or_default();
                    let mut parts = text.split_whitespace();
                    let (h, pid) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let alive = pid.parse::<i32>().ok().is_some_and(|p| {
                        h != host
                            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
                    });
                    if alive || h.is_empty() {
                        return Err(SinkError::Busy {
                            path: target.to_path_buf(),
                            holder: if h.is_empty() {
                                "a process that has not said who it is yet".into()
                            } else {
                                format!("nsod on {h} (pid {pid})")
                            },
                            lock: path.clone(),
                        });
                    }
                    // Its holder is gone: take it over.
                    let _ = std::fs::remove_dir_all(&path);
                }
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Err(SinkError::Busy {
            path: target.to_path_buf(),
            holder: "another process".into(),
            lock: path,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(root: &Path, d: &Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.push((
                        p.strip_prefix(root).unwrap().display().to_string(),
                        std::fs::read_to_string(&p).unwrap_or_default(),
                    ));
                }
            }
        }
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn a_commit_replaces_the_folder_whole_and_keeps_the_sharded_runs_inputs() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("run");
        std::fs::create_dir_all(target.join("labels")).unwrap();
        std::fs::write(target.join("run.json"), "old").unwrap();
        std::fs::write(target.join("labels/gone.txt"), "stale").unwrap();
        std::fs::write(target.join("plan.json"), "plan").unwrap();
        std::fs::create_dir_all(target.join("shards/0-of-1")).unwrap();
        std::fs::write(target.join("shards/0-of-1/_SUCCESS"), "").unwrap();
        check_target(&target).unwrap();
        let s = fresh_staging(&target).unwrap();
        std::fs::create_dir_all(s.join("labels")).unwrap();
        std::fs::write(s.join("labels/a.txt"), "new").unwrap();
        std::fs::write(s.join("run.json"), "new").unwrap();
        commit(&s, &target).unwrap();
        assert!(!s.exists());
        assert_eq!(
            tree(&target),
            [
                ("labels/a.txt".into(), "new".into()),
                ("plan.json".into(), "plan".into()),
                ("run.json".into(), "new".into()),
                ("shards/0-of-1/_SUCCESS".into(), String::new()),
            ]
        );
        // The fallback gives the same folder.
        let s = fresh_staging(&target).unwrap();
        std::fs::write(s.join("run.json"), "newer").unwrap();
        move_in(&s, &target).unwrap();
        assert_eq!(
            tree(&target),
            [
                ("plan.json".into(), "plan".into()),
                ("run.json".into(), "newer".into()),
                ("shards/0-of-1/_SUCCESS".into(), String::new()),
            ]
        );
    }

    #[test]
    fn foreign_files_and_foreign_staging_folders_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("run");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("thesis.tex"), "mine").unwrap();
        let e = check_target(&target).unwrap_err().to_string();
        assert!(
            e.contains("holds files nsod did not write (thesis.tex)"),
            "{e}"
        );
        let s = staging_path(&target);
        std::fs::create_dir_all(&s).unwrap();
        let e = fresh_staging(&target).unwrap_err().to_string();
        assert!(e.contains("is not one nsod made"), "{e}");
    }

    #[test]
    fn a_lock_names_its_live_holder_and_is_taken_over_from_a_dead_one() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("run");
        let a = Lock::take(&target).unwrap();
        let e = Lock::take(&target).unwrap_err().to_string();
        assert!(e.contains(&format!("(pid {})", std::process::id())), "{e}");
        drop(a);
        // A holder of this host that is gone.
        let path = lock_path(&target);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("holder"), format!("{} 999999999\n", host_name())).unwrap();
        let b = Lock::take(&target).unwrap();
        drop(b);
        assert!(!path.exists());
    }
}
