//! The write phase of `apply` and `revert`: write, read back, verify lost answers by reading, journal.
//!
//! Writes stream out at the pacer's rate; as answers arrive they are read back in groups while
//! the next writes are already going, so the pace stays at the write limit, one slow or retried
//! write holds nobody else up, and every row reaches the result file (with Graph's own "after"
//! state) seconds after it was written. A write whose answer was lost is never resent blindly:
//! it is read, and written again only if the read shows it did not happen.

use super::interrupt::Interrupted;
use super::row::{flush_items, Item};
use super::{plan, progress};
use crate::graph::{CallError, ErrorKind, Graph, Reply};
use crate::model::MfaState;
use crate::report::{self, Journal, JournalEntry, Outcome};

/// Most written users read back (and journaled) together.
const SETTLE_GROUP: usize = 200;
/// How often a user is written when reads keep showing that an earlier write whose answer was
/// lost did not happen (each attempt is verified by reading first, never blind).
const MAX_ATTEMPTS: u32 = 8;

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
pub(super) async fn write_all(
    graph: &Graph,
    items: &mut [Item],
    pending: &[usize],
    journal: &mut Journal,
    writer: &mut report::OrderedWriter,
    interrupted: &Interrupted,
    exact: bool,
) -> anyhow::Result<()> {
    let changes: Vec<Change> = pending
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
    journal.record_all(&intents(items, &changes))?;
    let writes: Vec<(String, MfaState)> = changes
        .iter()
        .map(|c| (c.user_id.clone(), c.target.clone()))
        .collect();
    let pb = progress::bar(changes.len() as u64, "writing");

    // The writes stream out at the pacer's rate; their answers come back through a channel to
    // `settle`, an event loop that owns the rows: it starts a read-back for each group of
    // answers, settles rows as reads come back, and writes again (verified not applied) at
    // once. Reads and re-writes run as tasks beside the stream, so none of them holds up the
    // others or the stream.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let send = async {
        let tx = tx;
        graph
            .set_states(&writes, |k, r| {
                // The receiver lives until every answer is in.
                let _ = tx.send((k, r));
            })
            .await;
    };
    let settle = async {
        let mut finished = 0u64;
        let mut tasks: tokio::task::JoinSet<Event> = tokio::task::JoinSet::new();
        let mut stream_open = true;
        loop {
            let event = tokio::select! {
                got = rx.recv(), if stream_open => match got {
                    Some((k, r)) => {
                        let mut answers = vec![(changes[k].clone(), r)];
                        while answers.len() < SETTLE_GROUP {
                            match rx.try_recv() {
                                Ok((k, r)) => answers.push((changes[k].clone(), r)),
                                Err(_) => break,
                            }
                        }
                        Event::Written(answers)
                    }
                    None => {
                        stream_open = false;
                        continue;
                    }
                },
                joined = tasks.join_next(), if !tasks.is_empty() => match joined {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => anyhow::bail!("a Graph task of the write phase failed: {e}"),
                    None => continue,
                },
                else => break,
            };
            let mut done: Vec<JournalEntry> = Vec::new();
            match event {
                Event::Written(answers) => {
                    let mut to_read: Vec<Change> = Vec::new();
                    for (mut c, r) in answers {
                        c.attempts += 1;
                        match r {
                            Ok(reply) => {
                                c.unknown = false;
                                c.request_id = reply.request_id;
                                to_read.push(c);
                            }
                            Err(e) if e.kind == ErrorKind::OutcomeUnknown => {
                                // Never resent blindly: read first.
                                c.unknown = true;
                                c.request_id = e.request_id.clone();
                                to_read.push(c);
                            }
                            Err(e) => {
                                write_failed(&mut items[c.item], e);
                                done.push(done_entry(&items[c.item], &c));
                            }
                        }
                    }
                    if !to_read.is_empty() {
                        tasks.spawn(read_back(graph.clone(), to_read));
                    }
                }
                Event::Read(read) => {
                    let mut again: Vec<Change> = Vec::new();
                    for (c, r) in read {
                        match after_readback(&mut items[c.item], &c, r, interrupted, exact) {
                            Some(retry) => again.push(retry),
                            None => done.push(done_entry(&items[c.item], &c)),
                        }
                    }
                    if !again.is_empty() {
                        // Verified not applied: write these again now, beside the stream.
                        journal.record_all(&intents(items, &again))?;
                        tasks.spawn(write_again(graph.clone(), again));
                    }
                }
            }
            finished += done.len() as u64;
            journal.record_all(&done)?;
            flush_items(items, writer)?;
            pb.set_position(finished);
        }
        Ok::<_, anyhow::Error>(())
    };
    // An error that ends the run (the result file cannot be written…) stops the writes still
    // to be sent: only what is already on the wire goes on.
    let settle = async {
        let r = settle.await;
        if r.is_err() {
            graph.stop_sending();
        }
        r
    };
    let ((), settled) = tokio::join!(send, settle);
    settled?;
    pb.finish_and_clear();
    Ok(())
}

/// What the write phase's event loop reacts to.
enum Event {
    /// Answers to writes (from the stream, or from writing again).
    Written(Vec<(Change, WriteAnswer)>),
    /// States read back after writes.
    Read(Vec<(Change, Result<Reply<MfaState>, CallError>)>),
}

/// Reads back the state of written users.
async fn read_back(graph: Graph, changes: Vec<Change>) -> Event {
    let ids: Vec<String> = changes.iter().map(|c| c.user_id.clone()).collect();
    let mut reads: Vec<Option<Result<Reply<MfaState>, CallError>>> = vec![None; ids.len()];
    graph.get_states(&ids, |k, r| reads[k] = Some(r)).await;
    // Stopped meanwhile (Ctrl-C): the read-backs not sent still get their one read, so a
    // write whose answer was lost is checked, never left unknown or resent.
    let missing: Vec<usize> = (0..reads.len())
        .filter(|&k| match &reads[k] {
            None => true,
            Some(Err(e)) => e.kind == ErrorKind::Cancelled,
            Some(Ok(_)) => false,
        })
        .collect();
    if !missing.is_empty() && graph.is_stopped() {
        let again: Vec<String> = missing.iter().map(|&k| ids[k].clone()).collect();
        graph
            .verify_states(&again, |j, r| reads[missing[j]] = Some(r))
            .await;
    }
    Event::Read(
        changes
            .into_iter()
            .zip(reads)
            .map(|(c, r)| (c, r.unwrap_or_else(|| Err(cancelled()))))
            .collect(),
    )
}

/// Writes again users whose lost write a read showed had not happened.
async fn write_again(graph: Graph, changes: Vec<Change>) -> Event {
    let writes: Vec<(String, MfaState)> = changes
        .iter()
        .map(|c| (c.user_id.clone(), c.target.clone()))
        .collect();
    let mut answers: Vec<Option<WriteAnswer>> = vec![None; writes.len()];
    graph.set_states(&writes, |k, r| answers[k] = Some(r)).await;
    Event::Written(
        changes
            .into_iter()
            .zip(answers)
            .map(|(c, r)| (c, r.unwrap_or_else(|| Err(cancelled()))))
            .collect(),
    )
}

/// A write's answer.
type WriteAnswer = Result<Reply<()>, CallError>;

/// The journal's record that these users are about to be written.
fn intents(items: &[Item], changes: &[Change]) -> Vec<JournalEntry> {
    changes
        .iter()
        .map(|c| JournalEntry::Intent {
            user_id: c.user_id.clone(),
            row: items[c.item].input.row,
            state_before: items[c.item]
                .result
                .state_before
                .clone()
                .expect("state read"),
            target: c.target.clone(),
        })
        .collect()
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
            // Nothing was read after this write: an earlier read (of a lost write that had
            // not happened) says nothing about now.
            it.result.state_after = None;
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
pub(super) fn infer_registration(
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
        _ if e.kind != ErrorKind::Cancelled && e.not_sent() => (
            Outcome::Skipped,
            format!("not written: {e}; sign in again, then rerun the same command to continue"),
        ),
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

/// The journal's record of how a user's write ended.
fn done_entry(it: &Item, c: &Change) -> JournalEntry {
    JournalEntry::Done {
        user_id: c.user_id.clone(),
        row: it.input.row,
        state_after: it.result.state_after.clone(),
        request_id: it.result.request_id.clone(),
        ok: it.result.outcome == Outcome::Changed,
        error: it.result.error.as_ref().map(|e| e.to_string()),
    }
}
