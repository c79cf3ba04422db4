//! Dispatch: one function per command, each returning how the run ended.

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;

/// Runs one parsed command line and returns the exit code to use.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "mfa-bulk", &mut std::io::stdout());
            Ok(ExitCode::Success)
        }
        Command::Check(args) => crate::check::run(&args),
        Command::Sim(args) => crate::sim::run_cli(&args),
        _ => anyhow::bail!("not built yet"),
    }
}
