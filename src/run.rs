//! Dispatch: one function per command, each returning how the run ended, and the mapping of
//! errors to exit codes (input and usage errors 2, sign-in and permission errors 3).

use crate::cli::{Cli, Command};
use crate::engine::{self, Rule};
use crate::exit::ExitCode;
use crate::settings;

/// Runs one parsed command line and returns the exit code to use.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::DryRun(args) => {
            let (settings, target) = settings::run_settings(args, Rule::DryRun, false)?;
            engine::run(settings, target.connect())
        }
        Command::Apply(args) => {
            let (settings, target) = settings::apply_settings(args)?;
            engine::run(settings, target.connect())
        }
        Command::Revert(args) => {
            let (settings, target) = settings::revert_settings(args)?;
            engine::run(settings, target.connect())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "mfa-bulk", &mut std::io::stdout());
            Ok(ExitCode::Success)
        }
        Command::Check(args) => {
            crate::check::run(settings::GraphTarget::from_args(&args.graph), args.json)
        }
        Command::Sim(args) => crate::sim::run_cli(&args),
        Command::Validate(args) => crate::validate::run(&args),
    }
}

/// The exit code for an error that stopped a run: sign-in and permission problems 3; a Graph
/// failure that stopped the run 1; anything else (input, usage, configuration, a result file
/// that exists) 2.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<crate::graph::GraphError>())
        .map(|g| g.exit_code())
        .unwrap_or(ExitCode::UsageOrInput)
}
