//! The row model: one [`Item`] per input row, holding what the run found and did for it
//! ([`RowFindings`]), until it becomes one row of the result file ([`ResultRow`]).

use std::borrow::Cow;
use std::sync::Arc;

use crate::graph::{CallError, ErrorKind};
use crate::model::{InputRow, MfaState, User};
use crate::report::{self, Action, Outcome, ResultRow};

/// What the run found and did for one row: the result file's columns that the input row and
/// the user do not already hold (the full [`ResultRow`] is built when the row is written, so
/// a million rows do not each carry copies of their strings).
#[derive(Clone, Debug)]
pub(super) struct RowFindings {
    pub state_before: Option<MfaState>,
    pub mfa_registered: Option<bool>,
    pub target_state: Option<MfaState>,
    pub action: Action,
    pub state_after: Option<MfaState>,
    pub outcome: Outcome,
    /// Why, in words; the common fixed reasons are not copied per row.
    pub error: Option<Cow<'static, str>>,
    pub request_id: Option<String>,
}

/// The working state of one input row.
pub(super) struct Item {
    pub input: InputRow,
    pub user: Option<Arc<User>>,
    pub target: MfaState,
    pub result: RowFindings,
    /// Final: the outcome will not change any more.
    pub done: bool,
    /// Handed to the result writer already.
    pub flushed: bool,
}

impl Item {
    pub(super) fn new(input: InputRow, default_target: &MfaState) -> Item {
        let target = input
            .state
            .clone()
            .unwrap_or_else(|| default_target.clone());
        let result = RowFindings {
            state_before: None,
            mfa_registered: None,
            target_state: Some(target.clone()),
            action: Action::None,
            state_after: None,
            outcome: Outcome::Skipped,
            error: None,
            request_id: None,
        };
        Item {
            input,
            user: None,
            target,
            result,
            done: false,
            flushed: false,
        }
    }

    /// Ends this row with an outcome and, for anything but success, a reason in words.
    pub(super) fn finish(&mut self, outcome: Outcome, error: Option<String>) {
        self.finish_with(outcome, error.map(Cow::Owned));
    }

    /// Like [`Item::finish`], with a fixed reason.
    pub(super) fn finish_static(&mut self, outcome: Outcome, error: &'static str) {
        self.finish_with(outcome, Some(Cow::Borrowed(error)));
    }

    fn finish_with(&mut self, outcome: Outcome, error: Option<Cow<'static, str>>) {
        self.result.outcome = outcome;
        self.result.error = error;
        self.done = true;
    }

    /// The id of the resolved user (callers only ask for rows that have one).
    pub(super) fn user_id(&self) -> &str {
        &self.user.as_ref().expect("resolved user").id
    }

    /// The row of the result file.
    pub(super) fn result_row(&self) -> ResultRow {
        let r = &self.result;
        let u = self.user.as_deref();
        ResultRow {
            row: self.input.row,
            input: self.input.input.clone(),
            user_principal_name: u.map(|u| u.user_principal_name.clone()),
            user_id: u.map(|u| u.id.clone()),
            display_name: u.and_then(|u| u.display_name.clone()),
            state_before: r.state_before.clone(),
            mfa_registered: r.mfa_registered,
            target_state: r.target_state.clone(),
            action: r.action.clone(),
            state_after: r.state_after.clone(),
            outcome: r.outcome,
            error: r.error.as_ref().map(|e| e.to_string()),
            request_id: r.request_id.clone(),
        }
    }

    /// Records a failed read on this row (404: the user is gone).
    pub(super) fn fail_read(&mut self, e: CallError, what: &str) {
        self.result.request_id = e.request_id.clone();
        let outcome = match e.kind {
            ErrorKind::NotFound => Outcome::NotFound,
            // Not sent (Ctrl-C, or Graph rejected the token): nothing is known, nothing failed.
            _ if e.not_sent() => Outcome::Skipped,
            _ => Outcome::Failed,
        };
        self.finish(outcome, Some(format!("{what} failed: {e}")));
    }
}

/// Hands every final row not yet written to the result writer (it keeps input order).
pub(super) fn flush_items(
    items: &mut [Item],
    writer: &mut report::OrderedWriter,
) -> anyhow::Result<()> {
    flush_items_from(items, 0, writer)
}

/// [`flush_items`] for rows that start at input position `base` (a chunk of a streamed run).
pub(super) fn flush_items_from(
    items: &mut [Item],
    base: usize,
    writer: &mut report::OrderedWriter,
) -> anyhow::Result<()> {
    for (i, it) in items.iter_mut().enumerate() {
        if it.done && !it.flushed {
            writer.put(base + i, it.result_row())?;
            it.flushed = true;
        }
    }
    Ok(())
}

/// The user ids of the given rows (each must have a resolved user).
pub(super) fn user_ids(items: &[Item], rows: &[usize]) -> Vec<String> {
    rows.iter()
        .map(|&i| items[i].user_id().to_string())
        .collect()
}

/// "user" or "users".
pub(super) fn users(n: usize) -> &'static str {
    if n == 1 {
        "user"
    } else {
        "users"
    }
}
