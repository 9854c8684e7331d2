//! The `nsod` command: argument parsing and glue between the library crates. No pipeline logic lives here.

mod cli;
mod doctor;
mod eval;
mod infer;
mod kg;
mod metrics;
mod paths;
mod symbolic;
mod train;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match run(cli, &matches) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, joined.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Doctor => doctor::run(&cli.global),
        cli::Command::Infer(args) => {
            let sub = matches
                .subcommand_matches("infer")
                .cloned()
                .unwrap_or_default();
            infer::run(&cli.global, &args, &sub)
        }
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
