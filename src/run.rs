//! Dispatch: one function per command, each returning how the run ended, and the mapping of
//! errors to exit codes (input and usage errors 2, sign-in and permission errors 3).

use crate::cli::{Cli, Command};
use crate::engine::{self, Rule, StoppedAfterSending, UsageError};
use crate::exit::ExitCode;
use crate::graph::GraphError;
use crate::input::InputError;
use crate::report::ReportError;
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
        Command::Report(args) => {
            let (settings, target) = settings::report_settings(args)?;
            crate::tenant_report::run(settings, target.connect())
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
        Command::Logout(args) => settings::logout(&args),
        Command::Sim(args) => crate::sim::run_cli(settings::sim_config(&args)?),
        Command::Validate(args) => crate::validate::run(&args),
    }
}

/// The exit code for an error that stopped a command, by its kind:
/// - a run stopped after requests were sent ([`StoppedAfterSending`]): 1, or 130 when it was
///   interrupted; never 2, which says nothing was sent;
/// - a Graph error: its own code (3 for sign-in and permissions, 2 for configuration, 1 for a
///   failed call);
/// - an input file, a result file, an option: 2. The engine wraps every error raised after its
///   first request in [`StoppedAfterSending`], so any other error was raised before anything
///   was sent: 2.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(s) = cause.downcast_ref::<StoppedAfterSending>() {
            return s.exit_code();
        }
        if let Some(g) = cause.downcast_ref::<GraphError>() {
            return g.exit_code();
        }
        if cause.is::<InputError>() || cause.is::<ReportError>() || cause.is::<UsageError>() {
            return ExitCode::UsageOrInput;
        }
    }
    ExitCode::UsageOrInput
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_exit_codes_by_kind() {
        let after = |interrupted| {
            anyhow::Error::from(StoppedAfterSending {
                message: "could not write r.csv".into(),
                interrupted,
            })
        };
        assert_eq!(exit_code_for(&after(false)), ExitCode::RowsNeedAttention);
        assert_eq!(exit_code_for(&after(true)), ExitCode::Interrupted);
        // The kind is found under context, too.
        assert_eq!(
            exit_code_for(&after(false).context("apply")),
            ExitCode::RowsNeedAttention
        );
        let auth = anyhow::Error::from(GraphError::Auth("token rejected".into()));
        assert_eq!(exit_code_for(&auth), ExitCode::AuthOrPermission);
        let config = anyhow::Error::from(GraphError::Config("no tenant".into()));
        assert_eq!(exit_code_for(&config), ExitCode::UsageOrInput);
        let usage = anyhow::Error::from(UsageError("--max-changes".into()));
        assert_eq!(exit_code_for(&usage), ExitCode::UsageOrInput);
    }
}
