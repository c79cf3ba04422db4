//! Exit codes, in one place. Documented in README.md ("Exit codes").

/// How a run ended, as the shell sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything was done as asked.
    Success,
    /// The run finished but some rows need attention (not found, failed, drifted, ...).
    RowsNeedAttention,
    /// Usage or input error: nothing was sent to Graph.
    UsageOrInput,
    /// Sign-in failed or a permission is missing.
    AuthOrPermission,
    /// Interrupted by Ctrl-C (SIGINT).
    Interrupted,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Success => 0,
            ExitCode::RowsNeedAttention => 1,
            ExitCode::UsageOrInput => 2,
            ExitCode::AuthOrPermission => 3,
            ExitCode::Interrupted => 130,
        }
    }

    pub fn is_error(self) -> bool {
        self != ExitCode::Success
    }
}

impl From<ExitCode> for i32 {
    fn from(c: ExitCode) -> i32 {
        c.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        assert_eq!(ExitCode::Success.code(), 0);
        assert_eq!(ExitCode::RowsNeedAttention.code(), 1);
        assert_eq!(ExitCode::UsageOrInput.code(), 2);
        assert_eq!(ExitCode::AuthOrPermission.code(), 3);
        assert_eq!(ExitCode::Interrupted.code(), 130);
    }

    #[test]
    fn only_success_is_not_an_error() {
        assert!(!ExitCode::Success.is_error());
        assert!(ExitCode::RowsNeedAttention.is_error());
        assert!(ExitCode::Interrupted.is_error());
    }
}
