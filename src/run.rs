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

/// The exit code for an error that stopped a run.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    use crate::graph::GraphError;
    for cause in err.chain() {
        if let Some(g) = cause.downcast_ref::<GraphError>() {
            return match g {
                GraphError::Config(_) => ExitCode::UsageOrInput,
                GraphError::Auth(_) | GraphError::MissingPermission(_) => {
                    ExitCode::AuthOrPermission
                }
                GraphError::Call(c) if c.kind == crate::graph::ErrorKind::Forbidden => {
                    ExitCode::AuthOrPermission
                }
                GraphError::Call(c) if c.kind == crate::graph::ErrorKind::Unauthorized => {
                    ExitCode::AuthOrPermission
                }
                GraphError::Call(_) => ExitCode::RowsNeedAttention,
            };
        }
    }
    ExitCode::UsageOrInput
}
