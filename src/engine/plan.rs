//! Deciding what to do: [`decide`] for one user (pure, so the safety rules are easy to test),
//! and the plan of each rule over the rows whose current state was read: a dry-run says what
//! would change, an apply what it will write (honouring `--plan` and an interrupted run's
//! journal), a revert who goes back to their recorded "before".

use std::collections::HashMap;

use super::journal::Previous;
use super::row::Item;
use super::write::infer_registration;
use crate::model::MfaState;
use crate::report::{Action, Outcome, ResultRow};

/// What the plan says for a user whose current state is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Already in (or above) the target state: leave alone.
    NoChange,
    /// Needs a write to `target`.
    Change,
    /// The current state is a value we do not know: never guess, leave alone.
    UnknownState(String),
}

/// Decides for one user. `enabled` means "at least enabled": an `enforced` user is left alone.
/// Only an explicit `disabled` target turns MFA off.
pub(crate) fn decide(before: &MfaState, target: &MfaState) -> Decision {
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
pub(crate) fn reached(after: &MfaState, target: &MfaState) -> bool {
    after.satisfies(target)
}

/// Sets the action and outcome of a row whose state is known. A row that needs a write is
/// final in a dry-run (would-change) and stays open in an apply until it is written.
pub(super) fn plan_row(it: &mut Item, dry_run: bool) {
    let before = it.result.state_before.clone().expect("state read");
    match decide(&before, &it.target) {
        Decision::NoChange => {
            it.result.action = Action::None;
            it.result.state_after = Some(before.clone());
            let why = (before != it.target).then(|| {
                format!(
                    "already {before}, which is at least {}: left alone",
                    it.target
                )
            });
            it.finish(Outcome::NoChange, why);
        }
        Decision::UnknownState(s) => {
            it.result.action = Action::None;
            it.finish(
                Outcome::Skipped,
                Some(format!(
                    "Graph reports an unknown MFA state '{s}': not changed"
                )),
            );
        }
        Decision::Change => {
            it.result.action = Action::Set(it.target.clone());
            if dry_run {
                it.finish(Outcome::WouldChange, None);
            }
        }
    }
}

/// Apply: decides one open row; a row to write stays open with its action set. `plan` is the
/// `--plan` file's row for it (`Some(None)`: the plan has no such row). A user an interrupted
/// run of the same command already changed is reported as changed.
pub(super) fn plan_apply(
    it: &mut Item,
    plan: Option<Option<&ResultRow>>,
    previous: &HashMap<String, Previous>,
) {
    let before = it.result.state_before.clone().expect("state read");
    let user_id = it.user_id().to_string();
    // Approved in the dry-run plan? Then its target, and no drift allowed.
    if let Some(plan_row_opt) = plan {
        match plan_row_opt {
            Some(p)
                if p.outcome == Outcome::WouldChange
                    && p.user_id.as_deref() == Some(user_id.as_str()) =>
            {
                // Its target is the row's own (the plan was checked against the input).
                if p.state_before.as_ref() != Some(&before) {
                    it.finish(
                        Outcome::Drifted,
                        Some(format!(
                            "state was {} in the dry-run, is {} now: not touched; run a new dry-run",
                            p.state_before.as_ref().map(|s| s.as_str()).unwrap_or("unknown"),
                            before
                        )),
                    );
                    return;
                }
            }
            _ => {
                if decide(&before, &it.target) == Decision::Change {
                    it.result.action = Action::Set(it.target.clone());
                    it.finish_static(
                        Outcome::Skipped,
                        "not approved in the dry-run plan (--plan): not touched",
                    );
                    return;
                }
            }
        }
    }
    // Changed by an interrupted run of the same command?
    if let Some(prev) = previous.get(&user_id) {
        if reached(&before, &it.target) {
            it.result.action = Action::Set(it.target.clone());
            infer_registration(&mut it.result.mfa_registered, &before, &it.target);
            it.result.state_after = Some(before.clone());
            it.result.state_before = Some(prev.before.clone());
            if prev.request_id.is_some() {
                it.result.request_id = prev.request_id.clone();
            }
            it.finish(Outcome::Changed, None);
            return;
        }
    }
    plan_row(it, false);
}

/// Revert: the row's target is the earlier run's "before", its `state_before` the state read
/// now and its `state_after` (until now) what the earlier run left. A user someone changed
/// since is drifted and left alone; one already back is no-change; the rest stay open to be
/// written back.
pub(super) fn plan_revert(it: &mut Item, previous: &HashMap<String, Previous>) {
    let now = it.result.state_before.clone().expect("state read");
    let left = it.result.state_after.take();
    let before = it.target.clone();
    if let (Some(prev), true) = (previous.get(it.user_id()), now == before) {
        // Reverted by an interrupted run of this same revert.
        it.result.state_before = Some(prev.before.clone());
        it.result.state_after = Some(now);
        it.result.action = Action::Set(before);
        if prev.request_id.is_some() {
            it.result.request_id = prev.request_id.clone();
        }
        it.finish(Outcome::Changed, None);
    } else if now == before {
        // Already back where that run found it (an earlier revert, or someone else): nothing
        // to do, whatever happened in between.
        it.result.state_after = Some(now);
        it.finish(Outcome::NoChange, None);
    } else if left.as_ref() != Some(&now) {
        it.finish(
            Outcome::Drifted,
            Some(format!(
                "changed since that run: it left {}, the user is {now} now: not touched",
                left.as_ref().map(|s| s.as_str()).unwrap_or("unknown")
            )),
        );
    } else {
        it.result.action = Action::Set(before);
    }
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
