//! The plan/apply engine: rows (a spreadsheet, or an earlier result for revert) → resolved
//! users → current state → plan → (confirm) → changes → states read back → result file.
//!
//! Every input row becomes exactly one result row, in input order. Rows are written to the
//! result file as soon as they are final, so a crash keeps what was done; runs that write also
//! keep a journal so that rerunning the same command continues without writing anyone twice.
//!
//! A run is a [`Source`] of rows and a [`Rule`] for them, driven by [`run`]:
//! - `row`: the row model (one [`Item`](row) per input row);
//! - `source`: reading the rows (a file, or the directory: a group, a filter) and resolving
//!   them to users; `reads`: how states were read (lists or per user), for the summary;
//! - `plan`: what to do for each user, by rule;
//! - `confirm`: the plan shown and the question asked before writing;
//! - `write`, `journal`: the write phase and what lets a rerun continue;
//! - `job`: one run from settings to exit code; `summary`: its end.

mod confirm;
pub(crate) mod interrupt;
mod job;
mod journal;
mod plan;
pub(crate) mod progress;
pub(crate) mod reads;
mod row;
mod source;
mod summary;
mod write;

pub(crate) use job::{run, ApplyOptions, Rule, RunSettings, StoppedAfterSending, UsageError};
pub(crate) use source::{filter_error, find_group};
pub(crate) use source::{DirectoryUsers, Source, REPORT_STATE_COLUMN};
