//! Deciding what to do for one user: pure, so the safety rules are easy to test.

use crate::model::MfaState;

/// What the plan says for a user whose current state is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Already in (or above) the target state: leave alone.
    NoChange,
    /// Needs a write to `target`.
    Change,
    /// The current state is a value we do not know: never guess, leave alone.
    UnknownState(String),
}

/// Decides for one user. `enabled` means "at least enabled": an `enforced` user is left alone.
/// Only an explicit `disabled` target turns MFA off.
pub fn decide(before: &MfaState, target: &MfaState) -> Decision {
    if let MfaState::Other(s) = before {
        return Decision::UnknownState(s.to_string());
    }
    if before.satisfies(target) {
        Decision::NoChange
    } else {
        Decision::Change
    }
}

/// Whether a state read after a write shows the write took effect.
pub fn reached(after: &MfaState, target: &MfaState) -> bool {
    after.satisfies(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MfaState::*;

    #[test]
    fn enforced_user_is_never_weakened_by_target_enabled() {
        assert_eq!(decide(&Enforced, &Enabled), Decision::NoChange);
    }

    #[test]
    fn disabled_user_is_changed_to_enabled_or_enforced() {
        assert_eq!(decide(&Disabled, &Enabled), Decision::Change);
        assert_eq!(decide(&Disabled, &Enforced), Decision::Change);
        assert_eq!(decide(&Enabled, &Enforced), Decision::Change);
    }

    #[test]
    fn only_explicit_disabled_turns_mfa_off() {
        assert_eq!(decide(&Enforced, &Disabled), Decision::Change);
        assert_eq!(decide(&Enabled, &Disabled), Decision::Change);
        assert_eq!(decide(&Disabled, &Disabled), Decision::NoChange);
    }

    #[test]
    fn unknown_state_is_left_alone() {
        assert_eq!(
            decide(&Other("unknownFutureValue".into()), &Enabled),
            Decision::UnknownState("unknownFutureValue".into())
        );
    }

    #[test]
    fn enabled_becoming_enforced_counts_as_reached() {
        assert!(reached(&Enforced, &Enabled));
        assert!(!reached(&Disabled, &Enabled));
        assert!(!reached(&Enabled, &Enforced));
    }
}
