//! Where a run's rows come from: a spreadsheet (read, then resolved to users) or an earlier
//! result file (for `revert`: its users are known by id). Either way the run gets one
//! [`Item`] per row, in input order.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::progress;
use super::row::Item;
use crate::graph::Graph;
use crate::input::{self, ReadOptions, SourceInfo};
use crate::model::{InputRow, MfaState, RowStatus, User, UserRef};
use crate::report::{self, Outcome};
use crate::resolve::{self, Resolved, Strategy};

/// A run's rows.
#[derive(Clone, Debug)]
pub enum Source {
    /// A user list: every row is resolved to a user, `target` unless the row says otherwise.
    Spreadsheet {
        file: PathBuf,
        read: ReadOptions,
        /// Users never to touch.
        exclude: Option<PathBuf>,
        target: MfaState,
    },
    /// The result file of an earlier `apply`: every user it changed, back to their "before".
    EarlierResult { file: PathBuf },
}

impl Source {
    /// The file the rows come from.
    pub fn file(&self) -> &Path {
        match self {
            Source::Spreadsheet { file, .. } | Source::EarlierResult { file } => file,
        }
    }
}

/// What [`load`] read: everything offline, before any request.
pub(super) struct Loaded {
    pub info: SourceInfo,
    pub items: Vec<Item>,
    /// Exclusion keys (also matched against every address of a resolved user).
    pub excluded: HashSet<String>,
    pub sha256: String,
}

/// Reads the rows. Any problem here is an input error (exit 2), before anything is sent.
pub(super) fn load(source: &Source) -> anyhow::Result<Loaded> {
    let (info, items, excluded) = match source {
        Source::Spreadsheet {
            file,
            read,
            exclude,
            target,
        } => {
            let input = input::read_input(file, read, exclude.as_deref())?;
            // Shown before anything is sent, so the admin can stop and fix the file.
            for w in &input.warnings {
                eprintln!("warning: {w}");
            }
            let items = input
                .rows
                .into_iter()
                .map(|r| Item::new(r, target))
                .collect();
            (input.info, items, input.excluded)
        }
        Source::EarlierResult { file } => {
            (earlier_info(file), earlier_items(file)?, HashSet::new())
        }
    };
    let file = source.file();
    let sha256 =
        report::sha256_file(file).with_context(|| format!("could not read {}", file.display()))?;
    Ok(Loaded {
        info,
        items,
        excluded,
        sha256,
    })
}

/// How a result file read for `revert` is described in the summary.
fn earlier_info(file: &Path) -> SourceInfo {
    let format = match report::ResultFormat::from_output_path(file) {
        Ok(report::ResultFormat::Xlsx) => "XLSX",
        _ => "CSV",
    };
    SourceInfo {
        path: file.to_path_buf(),
        format: format.into(),
        encoding: None,
        delimiter: None,
        sheet: None,
        column: "user_id".into(),
        column_letter: "D".into(),
        header_row: Some(1),
        state_column: Some("state_before".into()),
    }
}

/// One item per row of an earlier result: the users it changed are to go back to their
/// "before" (the recorded "after" is kept to tell whether someone changed them since); every
/// other row is final at once.
fn earlier_items(file: &Path) -> anyhow::Result<Vec<Item>> {
    let rows = report::read_results(file)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let input = InputRow {
            row: r.row,
            input: r.input.clone(),
            state: r.state_before.clone(),
            status: match &r.user_id {
                Some(id) => RowStatus::Ok(UserRef::ObjectId(id.clone())),
                None => RowStatus::Invalid {
                    reason: "no user id".into(),
                },
            },
        };
        let target = r.state_before.clone().unwrap_or(MfaState::Disabled);
        let mut it = Item::new(input, &target);
        if let Some(id) = &r.user_id {
            it.user = Some(Arc::new(User {
                id: id.clone(),
                user_principal_name: r.user_principal_name.clone().unwrap_or_default(),
                display_name: r.display_name.clone(),
                ..User::default()
            }));
        }
        let revertible =
            r.outcome == Outcome::Changed && r.user_id.is_some() && r.state_before.is_some();
        if revertible {
            // What the run left: a different state now means someone changed the user since.
            it.result.state_after = r.state_after.clone();
        } else {
            it.result.target_state = None;
            it.finish(
                Outcome::NoChange,
                Some(format!(
                    "nothing to revert: that run's outcome was {}",
                    r.outcome.as_str()
                )),
            );
        }
        items.push(it);
    }
    Ok(items)
}

/// Resolves every row of a spreadsheet still open; marks not-found, ambiguous, excluded and
/// duplicates. (Rows of an earlier result are known by id: nothing to look up.)
pub(super) async fn resolve(
    items: &mut [Item],
    excluded: &HashSet<String>,
    graph: &Graph,
) -> anyhow::Result<Strategy> {
    let mut refs: Vec<UserRef> = Vec::new();
    let mut idx: Vec<usize> = Vec::new();
    // (duplicate row's index, the row number it repeats)
    let mut dups: Vec<(usize, u64)> = Vec::new();
    for (i, it) in items.iter_mut().enumerate() {
        if it.done || it.user.is_some() {
            continue;
        }
        match &it.input.status {
            RowStatus::Ok(r) => {
                refs.push(r.clone());
                idx.push(i);
            }
            RowStatus::Invalid { reason } => {
                let reason = reason.clone();
                it.result.target_state = None;
                it.finish(Outcome::Invalid, Some(reason));
            }
            RowStatus::Duplicate { first_row, .. } => {
                let first_row = *first_row;
                let msg = format!("same user as row {first_row}: handled there");
                it.result.target_state = None;
                it.finish(Outcome::Duplicate, Some(msg));
                dups.push((i, first_row));
            }
            RowStatus::Excluded { .. } => {
                it.result.target_state = None;
                it.finish_static(
                    Outcome::Excluded,
                    "listed in the exclusion file: never touched",
                );
            }
        }
    }
    if refs.is_empty() {
        refuse_conflicting_duplicates(items, &dups);
        return Ok(Strategy::Lookup);
    }
    let pb = progress::resolving(refs.len() as u64);
    let (found, strategy) =
        resolve::resolve_all(graph, &refs, &mut |n| pb.resolved(n), &mut |u| pb.listed(u)).await?;
    pb.finish();

    let mut first_row_of_user: HashMap<String, u64> = HashMap::new();
    for (k, res) in found.into_iter().enumerate() {
        let it = &mut items[idx[k]];
        match res {
            Resolved::User(u) => {
                let is_excluded = resolve::addresses(&u).any(|a| excluded.contains(&a));
                let first = first_row_of_user.get(&u.id).copied();
                it.user = Some(u.clone());
                if is_excluded {
                    it.result.target_state = None;
                    it.finish(
                        Outcome::Excluded,
                        Some(format!(
                            "{} is listed in the exclusion file: never touched",
                            u.user_principal_name
                        )),
                    );
                } else if let Some(first) = first {
                    dups.push((idx[k], first));
                    it.result.target_state = None;
                    it.finish(
                        Outcome::Duplicate,
                        Some(format!(
                            "same user as row {first} ({}): handled there",
                            u.user_principal_name
                        )),
                    );
                } else {
                    first_row_of_user.insert(u.id.clone(), it.input.row);
                }
            }
            Resolved::NotFound => it.finish_static(
                Outcome::NotFound,
                "no user has this UPN, object id, mail or proxy address in the tenant: \
                 check the spelling, or whether the account exists yet",
            ),
            Resolved::Ambiguous(us) => {
                let names: Vec<&str> = us.iter().map(|u| u.user_principal_name.as_str()).collect();
                it.finish(
                    Outcome::Skipped,
                    Some(format!(
                        "ambiguous: {} users have this address ({}); not guessed: put the UPN in the file",
                        us.len(),
                        names.join(", ")
                    )),
                )
            }
            Resolved::Failed(e) => {
                it.result.request_id = e.request_id.clone();
                let outcome = if e.not_sent() {
                    Outcome::Skipped
                } else {
                    Outcome::Failed
                };
                it.finish(outcome, Some(format!("looking the user up failed: {e}")));
            }
        }
    }
    refuse_conflicting_duplicates(items, &dups);
    Ok(strategy)
}

/// Rows for one user that ask for different states (one says Disabled, another Enforced):
/// nothing is guessed, the user is left alone and both rows say why.
fn refuse_conflicting_duplicates(items: &mut [Item], dups: &[(usize, u64)]) {
    let index_of_row: HashMap<u64, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.input.row, i))
        .collect();
    for &(dup, first_row) in dups {
        let Some(&first) = index_of_row.get(&first_row) else {
            continue;
        };
        let (a, b) = (items[first].target.clone(), items[dup].target.clone());
        if a == b || items[first].user.is_none() {
            continue;
        }
        let why = format!(
            "rows {first_row} and {} ask for different states for this user ({a}, {b}): not \
             touched; make the rows agree and run again",
            items[dup].input.row
        );
        let it = &mut items[first];
        if !it.done || it.result.outcome == Outcome::Skipped {
            it.result.target_state = None;
            it.finish(Outcome::Skipped, Some(why.clone()));
        }
        items[dup].finish(Outcome::Duplicate, Some(why));
    }
}
