//! The `nsod` command: argument parsing and glue between the library crates. No pipeline logic lives here.

mod cli;
mod doctor;
mod eval;
mod infer;
mod inputs;
mod kg;
mod metrics;
mod paths;
mod symbolic;
mod train;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, joined.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Doctor => doctor::run(&cli.global),
        cli::Command::Infer(args) => infer::run(&cli.global, &args),
        cli::Command::Symbolic(args) => symbolic::run(&args),
        cli::Command::Rules(cli::RulesCommand::Check { file, names, gsd }) => {
            symbolic::check(&file, names.as_deref(), gsd)
        }
        cli::Command::Rules(cli::RulesCommand::Suggest { facts, out }) => {
            kg::suggest_rules(&facts, out.as_deref())
        }
        cli::Command::Kg(args) => kg::run(&args),
        cli::Command::TrainMonitor(args) => train::run(&args),
        cli::Command::Eval(args) => eval::run(&args),
        cli::Command::RulesWorker => Ok(nsod_symbolic::worker::main()),
    }
}
