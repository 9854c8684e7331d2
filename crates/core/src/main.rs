//! The `nsod` command: argument parsing and glue between the library crates. No pipeline logic lives here.

mod cli;
mod doctor;
mod eval;
mod infer;
mod kg;
mod metrics;
mod observe;
mod paths;
mod quantize;
mod report;
mod serve;
mod session;
mod settings;
mod shard;
mod symbolic;
mod track;
mod train;
mod ui;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// glibc gives threads that allocate their own arenas (up to eight per core) and keeps freed memory in each: with
/// GDAL's block reads on the detector's short-lived prefetch threads, peak memory grew with a raster's length (a
/// 30000^2 raster peaked 1.31x higher than a 10000^2 one). One arena per core keeps it flatter
/// (benches/raster.sh). `MALLOC_ARENA_MAX` in the environment still wins.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; no thread has been started yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Returns the free memory of every malloc arena to the system (`malloc_trim`). Called once the images of a run are
/// done: the pages GDAL's block cache and the slices used are freed by then but stay resident in the arenas of the
/// threads that read them, and the run-level outputs written next would otherwise add to that peak (a 30000^2
/// raster: 694 MiB at the end of the run against 531 MiB while detecting).
#[allow(unsafe_code)]
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free pages back to the kernel; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    // The sandboxed Prolog worker nsod starts for rule bases (JSON lines on stdin/stdout). Not a clap subcommand,
    // so that help, completions and man pages never offer it.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "rules-worker")
        && std::env::args_os().len() == 2
    {
        return nsod_symbolic::worker::main();
    }
    let matches = cli::Cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    ui::init(cli.global.quiet, cli.global.verbose);
    match run(cli) {
        Ok(code) => code,
        // Output piped into a program that stopped reading (`nsod man | head`): not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line: the error and its causes, joined.
            ui::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Doctor(args) => doctor::run(&cli.global, &args),
        cli::Command::Infer(args) if args.plan.is_some() => shard::run_shard(&cli.global, &args),
        cli::Command::Infer(args) => infer::run(&cli.global, &args),
        cli::Command::Plan(args) => shard::plan(&cli.global, &args),
        cli::Command::Merge(args) => shard::merge(&cli.global, &args),
        cli::Command::Serve(args) => serve::run(&cli.global, &args),
        cli::Command::Track(args) => track::run(&cli.global, &args),
        cli::Command::Quantize(args) => quantize::run(&cli.global, &args),
        cli::Command::Symbolic(args) => symbolic::run(&cli.global, &args),
        cli::Command::Rules(cli::RulesCommand::Check { file, names, gsd }) => {
            symbolic::check(&file, names.as_deref(), gsd)
        }
        cli::Command::Rules(cli::RulesCommand::Suggest { facts, out }) => {
            kg::suggest_rules(&facts, out.as_deref())
        }
        cli::Command::Kg(args) => kg::run(&cli.global, &args),
        cli::Command::Settings { json } => {
            print!("{}", settings::listing(json, cli::Cli::command()));
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Report(args) => report::run(&args),
        cli::Command::TrainMonitor(args) => train::run(&args),
        cli::Command::Eval(args) => eval::run(&args),
        cli::Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::Cli::command(), "nsod", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Man { out } => man(out.as_deref()),
    }
}

/// `nsod man`: nsod.1 to stdout, or nsod.1 and nsod-<command>.1 (nested commands too) into a folder.
fn man(out: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let cmd = cli::Cli::command();
    let Some(dir) = out else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let mut written = 0;
    let mut stack = vec![(String::from("nsod"), cmd)];
    while let Some((name, mut cmd)) = stack.pop() {
        if cmd.is_hide_set() || cmd.get_name() == "help" {
            continue;
        }
        cmd.build();
        for sub in cmd.get_subcommands() {
            stack.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        let page = clap_mangen::Man::new(cmd.clone()).title(name.to_uppercase());
        let path = dir.join(format!("{name}.1"));
        nsod_types::formats::write_atomic(&path, |w| page.render(w))
            .with_context(|| format!("{}", path.display()))?;
        written += 1;
    }
    ui::info!("{written} man pages written to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
