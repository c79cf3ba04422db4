//! The write phase of `apply`: write, read back, verify lost answers by reading, journal.
//!
//! Writes go out in chunks; the read-back of one chunk runs while the next chunk is written,
//! so the pace stays at the write limit and every row reaches the result file (with Graph's
//! own "after" state) seconds after it was written. A write whose answer was lost is never
//! resent blindly: it is read, and written again only if the read shows it did not happen.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;

use super::interrupt::Interrupted;
use super::{flush_items, plan, progress, Item, Job};
use crate::graph::{CallError, ErrorKind, Graph, Identity, Reply};
use crate::model::MfaState;
use crate::report::{self, Journal, JournalEntry, JournalHeader, Outcome};

/// Users per chunk: about five seconds of writes at Graph's write limit.
const CHUNK: usize = 100;
/// How often a write whose answer was lost (and that a read showed did not happen) is retried.
const MAX_ATTEMPTS: u32 = 3;

/// What an interrupted run of the same command had done for one user.
#[derive(Clone, Debug)]
pub(crate) struct Previous {
    pub before: MfaState,
    pub request_id: Option<String>,
}

/// Which journal a run uses and what must match for an old one to be continued.
pub(crate) struct JournalKey {
    pub path: PathBuf,
    pub header: JournalHeader,
}

impl JournalKey {
    /// `.mfa-bulk/<kind>-<sha256 prefix>.journal` in the current directory, so rerunning the
    /// same command finds it. `options_key` holds what must match (target, plan file...).
    pub fn new(
        kind: &str,
        input_sha256: &str,
        tenant_id: &str,
        options_key: String,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> JournalKey {
        JournalKey {
            path: PathBuf::from(".mfa-bulk")
                .join(format!("{kind}-{}.journal", &input_sha256[..16])),
            header: JournalHeader {
                input_sha256: input_sha256.to_string(),
                tenant_id: tenant_id.to_string(),
                options_key,
                started_at,
            },
        }
    }
}

/// The journal key of an apply.
pub(crate) fn apply_key(job: &Job, identity: &Identity) -> JournalKey {
    let target: MfaState = job.args.state.into();
    let plan = job
        .apply
        .as_ref()
        .and_then(|a| a.plan.as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    JournalKey::new(
        "apply",
        &job.input_sha256,
        &identity.tenant_id,
        format!("state={target};plan={plan}"),
        job.started,
    )
}

/// Reads the journal an interrupted run left, if it belongs to this run: user id → what it
/// had done. With `resume`, a missing journal is an error.
pub(crate) fn load_previous(
    key: &JournalKey,
    resume: bool,
    what: &str,
) -> anyhow::Result<HashMap<String, Previous>> {
    let path = &key.path;
    if !path.exists() {
        if resume {
            anyhow::bail!(super::UsageError(format!(
                "--resume: there is no journal of an interrupted run of {what} here ({}): run \
                 the command without --resume",
                path.display()
            )));
        }
        return Ok(HashMap::new());
    }
    let (header, entries) = Journal::load(path)?;
    if header.tenant_id != key.header.tenant_id
        || header.options_key != key.header.options_key
        || header.input_sha256 != key.header.input_sha256
    {
        eprintln!(
            "note: starting afresh: the journal {} is from a run with another tenant or options",
            path.display()
        );
        Journal::discard(path)?;
        return Ok(HashMap::new());
    }
    let mut prev: HashMap<String, Previous> = HashMap::new();
    for e in entries {
        match e {
            JournalEntry::Intent {
                user_id,
                state_before,
                ..
            } => {
                prev.entry(user_id).or_insert(Previous {
                    before: state_before,
                    request_id: None,
                });
            }
            JournalEntry::Done {
                user_id,
                request_id,
                ok: true,
                ..
            } => {
                if let Some(p) = prev.get_mut(&user_id) {
                    p.request_id = request_id;
                }
            }
            JournalEntry::Done { .. } => {}
        }
    }
    if !prev.is_empty() {
        eprintln!(
            "Continuing an interrupted run: {} users were being written; each is read again \
             and none is written twice.",
            prev.len()
        );
    }
    Ok(prev)
}

/// Opens (or continues) the journal.
pub(crate) fn open_journal(key: &JournalKey) -> anyhow::Result<Journal> {
    if let Some(dir) = key.path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {} for the journal", dir.display()))?;
    }
    Ok(Journal::open(&key.path, key.header.clone())?)
}

/// The run finished: the journal is no longer needed.
pub(crate) fn close_journal(journal: Journal, key: &JournalKey) -> anyhow::Result<()> {
    drop(journal);
    std::fs::remove_file(&key.path)
        .with_context(|| format!("could not remove {}", key.path.display()))?;
    if let Some(dir) = key.path.parent() {
        // Only when empty: another input's journal may be there.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// One user being written.
#[derive(Clone, Debug)]
struct Change {
    item: usize,
    user_id: String,
    target: MfaState,
    attempts: u32,
    /// The last write's answer was lost.
    unknown: bool,
    request_id: Option<String>,
}

/// Writes every pending change, reads each back, records each in the journal and hands each
/// row to the result writer as soon as it is final. `exact`: the state read back must equal
/// the target (revert); otherwise "at least" the target counts (enabled may become enforced).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_all(
    graph: &Graph,
    items: &mut [Item],
    pending: &[usize],
    journal: &mut Journal,
    writer: &mut report::OrderedWriter,
    interrupted: &Interrupted,
    exact: bool,
) -> anyhow::Result<()> {
    let mut queue: std::collections::VecDeque<Change> = pending
        .iter()
        .map(|&i| Change {
            item: i,
            user_id: items[i].user.as_ref().expect("user").id.clone(),
            target: items[i].target.clone(),
            attempts: 0,
            unknown: false,
            request_id: None,
        })
        .collect();
    let pb = progress::bar(queue.len() as u64, "writing");
    let mut readback: Vec<Change> = Vec::new();
    let mut finished = 0u64;

    loop {
        let mut chunk: Vec<Change> = Vec::new();
        while chunk.len() < CHUNK && !interrupted.is_set() {
            match queue.pop_front() {
                Some(c) => chunk.push(c),
                None => break,
            }
        }
        if chunk.is_empty() && readback.is_empty() {
            break;
        }
        for c in &chunk {
            journal.record(&JournalEntry::Intent {
                user_id: c.user_id.clone(),
                row: items[c.item].input.row,
                state_before: items[c.item]
                    .result
                    .state_before
                    .clone()
                    .expect("state read"),
                target: c.target.clone(),
            })?;
        }
        let writes: Vec<(String, MfaState)> = chunk
            .iter()
            .map(|c| (c.user_id.clone(), c.target.clone()))
            .collect();
        let reads: Vec<String> = readback.iter().map(|c| c.user_id.clone()).collect();
        let mut write_res: Vec<Option<Result<Reply<()>, CallError>>> = vec![None; writes.len()];
        let mut read_res: Vec<Option<Result<Reply<MfaState>, CallError>>> = vec![None; reads.len()];
        tokio::join!(
            graph.set_states(&writes, |k, r| write_res[k] = Some(r)),
            graph.get_states(&reads, |k, r| read_res[k] = Some(r)),
        );

        // Read-backs of the previous chunk: these rows are final now (or go round again).
        for (c, r) in readback.drain(..).zip(read_res) {
            let r = r.unwrap_or_else(|| Err(cancelled()));
            match after_readback(&mut items[c.item], &c, r, interrupted, exact) {
                Some(again) => queue.push_front(again),
                None => {
                    record_done(journal, &items[c.item], &c)?;
                    finished += 1;
                }
            }
        }
        // Answers to this chunk's writes.
        for (mut c, r) in chunk.into_iter().zip(write_res) {
            c.attempts += 1;
            match r.unwrap_or_else(|| Err(cancelled())) {
                Ok(reply) => {
                    c.unknown = false;
                    c.request_id = reply.request_id;
                    readback.push(c);
                }
                Err(e) if e.kind == ErrorKind::OutcomeUnknown => {
                    // Never resent blindly: read first.
                    c.unknown = true;
                    c.request_id = e.request_id.clone();
                    readback.push(c);
                }
                Err(e) => {
                    write_failed(&mut items[c.item], e);
                    record_done(journal, &items[c.item], &c)?;
                    finished += 1;
                }
            }
        }
        if interrupted.is_set() {
            for c in queue.drain(..) {
                let it = &mut items[c.item];
                it.result.state_after = None;
                it.finish(
                    Outcome::Skipped,
                    Some(
                        "not written: the run was interrupted; rerun the same command to continue"
                            .into(),
                    ),
                );
                finished += 1;
            }
        }
        flush_items(items, writer)?;
        pb.set_position(finished);
    }
    pb.finish_and_clear();
    Ok(())
}

fn cancelled() -> CallError {
    CallError {
        kind: ErrorKind::Cancelled,
        status: None,
        code: "notSent".into(),
        message: "not sent: the run was stopped".into(),
        request_id: None,
    }
}

/// Settles one written user from its read-back. Returns the change again when a lost write
/// turned out not to have happened and may be written once more.
fn after_readback(
    it: &mut Item,
    c: &Change,
    r: Result<Reply<MfaState>, CallError>,
    interrupted: &Interrupted,
    exact: bool,
) -> Option<Change> {
    it.result.request_id = c.request_id.clone().or(it.result.request_id.take());
    match r {
        Ok(reply) => {
            let after = reply.value;
            it.result.state_after = Some(after.clone());
            let reached = if exact {
                after == c.target
            } else {
                plan::reached(&after, &c.target)
            };
            if reached {
                infer_registration(&mut it.result.mfa_registered, &after, &c.target);
                let note = c.unknown.then(|| {
                    "Graph's answer to the write was lost; a read confirmed the change".to_string()
                });
                it.finish(Outcome::Changed, note);
                None
            } else if c.unknown && c.attempts < MAX_ATTEMPTS && !interrupted.is_set() {
                // The read shows the lost write did not happen: writing again is safe.
                let mut again = c.clone();
                again.unknown = false;
                Some(again)
            } else if c.unknown {
                it.finish(
                    Outcome::Failed,
                    Some(format!(
                        "Graph's answer to the write was lost and a read shows {after}, not {}: not changed",
                        c.target
                    )),
                );
                None
            } else {
                it.finish(
                    Outcome::Failed,
                    Some(format!(
                        "Graph accepted the write but the state read back is {after}, not {}",
                        c.target
                    )),
                );
                None
            }
        }
        Err(e) if c.unknown => {
            it.finish(
                Outcome::Failed,
                Some(format!(
                    "Graph's answer to the write was lost and reading the state to check failed \
                     ({e}): it may or may not have changed; rerun the same command to check"
                )),
            );
            None
        }
        Err(e) => {
            it.finish(
                Outcome::Changed,
                Some(format!(
                    "written (Graph answered success) but not read back: {e}"
                )),
            );
            None
        }
    }
}

/// What a read-back tells about registration when it was not read: Graph turns `enabled` into
/// `enforced` for a user who has registered an MFA method, so after setting `enabled`,
/// `enforced` means registered and `enabled` means not yet.
pub(crate) fn infer_registration(
    registered: &mut Option<bool>,
    after: &MfaState,
    target: &MfaState,
) {
    if *target == MfaState::Enabled {
        match after {
            MfaState::Enforced => {
                registered.get_or_insert(true);
            }
            MfaState::Enabled => {
                registered.get_or_insert(false);
            }
            _ => {}
        }
    }
}

/// A write Graph refused or that failed after the retries allowed.
fn write_failed(it: &mut Item, e: CallError) {
    it.result.request_id = e.request_id.clone();
    let (outcome, why) = match e.kind {
        ErrorKind::Cancelled => (
            Outcome::Skipped,
            "not written: the run was interrupted; rerun the same command to continue".to_string(),
        ),
        ErrorKind::NotFound => (
            Outcome::NotFound,
            format!("the user was deleted before the write: {e}"),
        ),
        ErrorKind::Forbidden => (
            Outcome::Failed,
            format!("Graph refused the write (permission): {e}"),
        ),
        _ => (Outcome::Failed, format!("the write failed: {e}")),
    };
    it.finish(outcome, Some(why));
}

fn record_done(journal: &mut Journal, it: &Item, c: &Change) -> anyhow::Result<()> {
    journal.record(&JournalEntry::Done {
        user_id: c.user_id.clone(),
        row: it.input.row,
        state_after: it.result.state_after.clone(),
        request_id: it.result.request_id.clone(),
        ok: it.result.outcome == Outcome::Changed,
        error: it.result.error.clone(),
    })?;
    Ok(())
}
