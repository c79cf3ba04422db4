//! Dispatch: one function per command, each returning how the run ended, and the mapping of
//! errors to exit codes (input and usage errors 2, sign-in and permission errors 3).

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;

/// Runs one parsed command line and returns the exit code to use.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::DryRun(args) => crate::engine::run_dry_run(args),
        Command::Apply(args) => crate::engine::run_apply(args),
        Command::Revert(args) => crate::engine::run_revert(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "mfa-bulk", &mut std::io::stdout());
            Ok(ExitCode::Success)
        }
        Command::Check(args) => crate::check::run(&args),
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
