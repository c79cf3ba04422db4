//! Where a run's rows come from: a spreadsheet (read, then resolved to users), the directory
//! (a group's members or a `$filter` on users, listed with their per-user MFA state), or an
//! earlier result file (for `revert`: its users are known by id). Either way the run gets one
//! [`Item`] per row, in input order.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::progress;
use super::row::Item;
use crate::graph::{ErrorKind, Graph, GraphError, ListedUser, UserSet};
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
    /// Users listed from the directory, in listing order: every one gets `target`.
    Directory {
        users: DirectoryUsers,
        /// Users never to touch.
        exclude: Option<PathBuf>,
        target: MfaState,
    },
    /// The result file of an earlier `apply`: every user it changed, back to their "before".
    EarlierResult { file: PathBuf },
}

/// Which users of the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryUsers {
    /// A group (display name or object id): its users, nested groups followed.
    Group(String),
    /// An OData `$filter` on `/users`.
    Filter(String),
}

impl DirectoryUsers {
    /// How the summary and the run record name them, e.g. `group "Sales"`.
    pub fn label(&self) -> String {
        match self {
            DirectoryUsers::Group(g) => format!("group \"{g}\""),
            DirectoryUsers::Filter(f) => format!("filter \"{f}\""),
        }
    }

    /// What identifies them for the journal and the run record (in place of a file's SHA-256).
    fn key(&self) -> String {
        match self {
            DirectoryUsers::Group(g) => format!("group:{g}"),
            DirectoryUsers::Filter(f) => format!("filter:{f}"),
        }
    }
}

impl Source {
    /// The file the rows come from (none for the directory).
    pub fn file(&self) -> Option<&Path> {
        match self {
            Source::Spreadsheet { file, .. } | Source::EarlierResult { file } => Some(file),
            Source::Directory { .. } => None,
        }
    }

    /// The file, or what stands for it in messages, default file names and the run record
    /// (`group "Sales"`).
    pub fn name(&self) -> PathBuf {
        match (self.file(), self) {
            (Some(f), _) => f.to_path_buf(),
            (None, Source::Directory { users, .. }) => PathBuf::from(users.label()),
            (None, _) => PathBuf::new(),
        }
    }

    /// The stem of the default result file name: the file's, or `group-Sales`, `filter`.
    pub fn default_stem(&self) -> PathBuf {
        match self {
            Source::Directory {
                users: DirectoryUsers::Group(g),
                ..
            } => {
                let safe: String = g
                    .chars()
                    .map(|c| {
                        if c.is_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .take(40)
                    .collect();
                PathBuf::from(format!("group-{safe}"))
            }
            Source::Directory { .. } => PathBuf::from("filter"),
            _ => self.name(),
        }
    }

    /// The users never to touch.
    pub fn exclude(&self) -> Option<&Path> {
        match self {
            Source::Spreadsheet { exclude, .. } | Source::Directory { exclude, .. } => {
                exclude.as_deref()
            }
            Source::EarlierResult { .. } => None,
        }
    }

    /// The target state every row gets unless it says otherwise (not for revert).
    pub fn target(&self) -> Option<&MfaState> {
        match self {
            Source::Spreadsheet { target, .. } | Source::Directory { target, .. } => Some(target),
            Source::EarlierResult { .. } => None,
        }
    }
}

/// What [`load`] read: everything offline, before any request.
pub(super) struct Loaded {
    pub info: SourceInfo,
    /// Every row, or none when the rows are streamed.
    pub items: Vec<Item>,
    /// Exclusion keys (also matched against every address of a resolved user).
    pub excluded: HashSet<String>,
    pub sha256: String,
    /// Rows in the file, when they are too many to hold: read again in chunks ([`Stream`]).
    pub streamed: Option<u64>,
}

/// Above this many rows a dry-run of a spreadsheet streams: the file is checked whole before
/// anything is sent, then read again a chunk at a time, and each chunk's rows are written and
/// dropped once settled, so memory holds one chunk (and the duplicate check's keys).
pub(super) const STREAM_ABOVE: usize = 50_000;
/// Rows per chunk of a streamed run.
pub(super) const CHUNK: usize = 20_000;

/// The header `report` writes for the state column: a report's state is what the user had,
/// not a target (the legacy portal's `MFA Status` column is one).
pub(crate) const REPORT_STATE_COLUMN: &str = "per_user_mfa_state";

/// Reads the rows. Any problem here is an input error (exit 2), before anything is sent.
/// A directory source has no rows until it is listed ([`list_directory`]).
/// `stream`: a run that may stream a big spreadsheet (a dry-run: nothing to confirm).
pub(super) fn load(source: &Source, stream: bool) -> anyhow::Result<Loaded> {
    let mut streamed = None;
    let (info, items, excluded) = match source {
        Source::Spreadsheet {
            file,
            read,
            exclude,
            target,
        } => {
            let excluded = match exclude {
                Some(p) => {
                    let (keys, warnings) = input::read_exclusion_list(p, &ReadOptions::default())?;
                    warn(&warnings);
                    keys
                }
                None => HashSet::new(),
            };
            let mut rows = Rows::open(file, read, excluded.clone(), target)?;
            let mut items = Vec::new();
            while let Some(it) = rows.next_item()? {
                if streamed.is_none() {
                    items.push(it);
                    if stream && items.len() > STREAM_ABOVE {
                        items = Vec::new();
                        streamed = Some(0);
                    }
                }
            }
            if streamed.is_some() {
                streamed = Some(rows.count);
            }
            let info = rows.finish()?;
            (info, items, excluded)
        }
        Source::Directory { users, exclude, .. } => {
            let excluded = match exclude {
                Some(p) => input::read_exclusions(p, &ReadOptions::default())?,
                None => HashSet::new(),
            };
            (directory_info(users), Vec::new(), excluded)
        }
        Source::EarlierResult { file } => {
            (earlier_info(file), earlier_items(file)?, HashSet::new())
        }
    };
    // What identifies the run's input for the journal and the lock: the file's bytes, or the
    // group or filter asked for.
    let sha256 = match source {
        Source::Spreadsheet { file, .. } | Source::EarlierResult { file } => {
            report::sha256_file(file)
                .with_context(|| format!("could not read {}", file.display()))?
        }
        Source::Directory { users, .. } => {
            use sha2::{Digest, Sha256};
            format!("{:x}", Sha256::digest(users.key().as_bytes()))
        }
    };
    Ok(Loaded {
        info,
        items,
        excluded,
        sha256,
        streamed,
    })
}

/// Shows warnings before anything is sent, so the admin can stop and fix the file.
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// A spreadsheet's rows, read and marked one at a time (duplicates, exclusions), as items.
struct Rows {
    reader: input::Reader,
    marker: input::Marker,
    target: MfaState,
    /// A file `report` wrote: its state column says what each user had, which must not
    /// become each row's target (every row gets --state).
    report_file: bool,
    count: u64,
}

impl Rows {
    fn open(
        file: &Path,
        read: &ReadOptions,
        excluded: HashSet<String>,
        target: &MfaState,
    ) -> anyhow::Result<Rows> {
        let reader = input::open(file, read)?;
        let marker = input::Marker::for_source(excluded, &reader.info);
        Ok(Rows {
            report_file: reader.info.state_column.as_deref() == Some(REPORT_STATE_COLUMN),
            reader,
            marker,
            target: target.clone(),
            count: 0,
        })
    }

    fn next_item(&mut self) -> anyhow::Result<Option<Item>> {
        let Some(raw) = self.reader.next() else {
            return Ok(None);
        };
        let mut row = self.marker.mark(raw?)?;
        if self.report_file {
            row.state = None;
        }
        self.count += 1;
        Ok(Some(Item::new(row, &self.target)))
    }

    /// After the last row: an input without a user is an error; the reader's warnings shown.
    fn finish(self) -> anyhow::Result<SourceInfo> {
        let mut info = self.reader.info.clone();
        self.marker.require_users(&info)?;
        warn(&self.reader.warnings());
        if self.report_file {
            info.state_column = None;
        }
        Ok(info)
    }
}

/// The rows of a big spreadsheet, read again after signing in, a chunk at a time: marked as
/// the first reading did (the same duplicates, the same exclusions).
pub(super) struct Stream {
    rows: Rows,
    file: PathBuf,
}

impl Stream {
    pub(super) fn open(source: &Source, excluded: &HashSet<String>) -> anyhow::Result<Stream> {
        let Source::Spreadsheet {
            file, read, target, ..
        } = source
        else {
            anyhow::bail!("only a spreadsheet is streamed");
        };
        Ok(Stream {
            rows: Rows::open(file, read, excluded.clone(), target)?,
            file: file.clone(),
        })
    }

    /// The next `n` rows (fewer at the end; none after it).
    pub(super) fn next_chunk(&mut self, n: usize) -> anyhow::Result<Vec<Item>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.rows.next_item()? {
                Some(it) => out.push(it),
                None => break,
            }
        }
        Ok(out)
    }

    /// Checks the file is the one checked before anything was sent.
    pub(super) fn finish(self, sha256: &str) -> anyhow::Result<()> {
        let now = report::sha256_file(&self.file)
            .with_context(|| format!("could not read {}", self.file.display()))?;
        if now != sha256 {
            anyhow::bail!(
                "{} changed while the run read it: the result file may not match the file as \
                 it is now; run again on a file nobody is editing",
                self.file.display()
            );
        }
        Ok(())
    }
}

/// How directory users are described in the summary.
fn directory_info(users: &DirectoryUsers) -> SourceInfo {
    SourceInfo {
        path: PathBuf::from(users.label()),
        format: "directory".into(),
        encoding: None,
        delimiter: None,
        sheet: None,
        column: "userPrincipalName".into(),
        column_letter: String::new(),
        header_row: None,
        state_column: None,
    }
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

/// Gives a row its user, or ends it as excluded (any address of the user in the exclusion
/// list) or as a duplicate of an earlier row (then the row it repeats is returned).
fn settle_user(
    it: &mut Item,
    u: Arc<User>,
    excluded: &HashSet<String>,
    first_row_of_user: &mut HashMap<String, u64>,
) -> Option<u64> {
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
        it.result.target_state = None;
        it.finish(
            Outcome::Duplicate,
            Some(format!(
                "same user as row {first} ({}): handled there",
                u.user_principal_name
            )),
        );
        return Some(first);
    } else {
        first_row_of_user.insert(u.id.clone(), it.input.row);
    }
    None
}

/// What listing the directory found besides the rows, for the summary.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct Listed {
    /// The group's id and display name (group sources).
    pub group: Option<(String, String)>,
    /// Members that are not users (left out), by kind and name.
    pub other_members: Vec<crate::graph::OtherMember>,
    /// Pages read.
    pub pages: u64,
    /// Users whose per-user MFA state the list answered.
    pub with_state: u64,
}

/// Lists a directory source's users into rows (row numbers in listing order, the UPN as the
/// input) with their per-user MFA state when the list answers it. A group name that matches
/// no group, or several, is a usage error (exit 2; nothing was changed).
pub(super) async fn list_directory(
    items: &mut Vec<Item>,
    source: &Source,
    excluded: &HashSet<String>,
    graph: &Graph,
    keep_states: bool,
) -> anyhow::Result<Listed> {
    let Source::Directory { users, target, .. } = source else {
        return Ok(Listed::default());
    };
    let mut listed = Listed::default();
    let set = match users {
        DirectoryUsers::Group(name) => {
            let g = find_group(graph, name).await?;
            listed.other_members = graph
                .other_members(&g.id)
                .await
                .map_err(|e| group_error(e, name))?
                .into_iter()
                .filter(|m| m.kind != "group")
                .collect();
            let set = UserSet::GroupMembers {
                group_id: g.id.clone(),
            };
            listed.group = Some((g.id, g.display_name));
            set
        }
        DirectoryUsers::Filter(f) => UserSet::Tenant {
            filter: Some(f.clone()),
        },
    };
    let mut pages = graph.user_pages(&set);
    let pb = progress::pages("listing");
    let mut first_row_of_user: HashMap<String, u64> = HashMap::new();
    loop {
        let page = match pages.next_page().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                return Err(match users {
                    DirectoryUsers::Filter(f) => filter_error(e, f),
                    DirectoryUsers::Group(g) => group_error(e, g),
                })
            }
        };
        for ListedUser { user, state } in page {
            let input = InputRow {
                row: items.len() as u64 + 1,
                input: user.user_principal_name.clone(),
                state: None,
                status: RowStatus::Ok(UserRef::ObjectId(user.id.to_ascii_lowercase())),
            };
            let mut it = Item::new(input, target);
            if keep_states && state.is_some() {
                listed.with_state += 1;
                it.result.state_before = state;
            }
            let _ = settle_user(&mut it, Arc::new(user), excluded, &mut first_row_of_user);
            items.push(it);
        }
        pb.listed(pages.users);
    }
    pb.finish();
    listed.pages = pages.pages;
    Ok(listed)
}

/// The one group `name` names (an object id, or a display name only one group has).
pub(crate) async fn find_group(graph: &Graph, name: &str) -> anyhow::Result<crate::graph::Group> {
    let mut found = graph
        .find_groups(name)
        .await
        .map_err(|e| group_error(e, name))?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => anyhow::bail!(super::UsageError(format!(
            "no group is named \"{name}\" (or has that object id) in the tenant: check the \
             name in the Entra admin center (Groups), or give the group's object id"
        ))),
        n => {
            let names: Vec<String> = found
                .iter()
                .map(|g| format!("{} ({})", g.display_name, g.id))
                .collect();
            anyhow::bail!(super::UsageError(format!(
                "{n} groups are named \"{name}\": {}. Nothing was changed; pass the object id \
                 of the one you mean with --group",
                names.join(", ")
            )))
        }
    }
}

/// A failed group read, with what to do (a missing permission stays a permission error).
fn group_error(e: crate::graph::CallError, name: &str) -> anyhow::Error {
    let hint = if e.kind == ErrorKind::Forbidden {
        " (reading groups and their members needs the GroupMember.Read.All permission)"
    } else {
        ""
    };
    anyhow::Error::new(GraphError::Call(e)).context(format!(
        "could not read the members of group \"{name}\"{hint}"
    ))
}

/// A failed filtered listing: a filter Graph refuses is a usage error (exit 2).
pub(crate) fn filter_error(e: crate::graph::CallError, filter: &str) -> anyhow::Error {
    if e.kind == ErrorKind::BadRequest {
        return anyhow::Error::new(super::UsageError(format!(
            "Graph refused the filter \"{filter}\": {} {}. Nothing was changed; check the \
             property names and the OData syntax (strings in single quotes, e.g. \
             \"department eq 'Sales'\")",
            e.code, e.message
        )));
    }
    anyhow::Error::new(GraphError::Call(e)).context(format!(
        "could not list the users of the filter \"{filter}\""
    ))
}

/// Resolves every row of a spreadsheet still open; marks not-found, ambiguous, excluded and
/// duplicates. (Rows of an earlier result or of the directory already have their user.)
/// Returns how, and the per-user MFA states a tenant listing answered for the users found.
pub(super) async fn resolve(
    items: &mut [Item],
    excluded: &HashSet<String>,
    graph: &Graph,
    cache: &mut resolve::ResolveCache,
) -> anyhow::Result<(Strategy, HashMap<String, MfaState>, u64)> {
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
        return Ok((Strategy::Lookup, HashMap::new(), 0));
    }
    let pb = progress::resolving(refs.len() as u64);
    let resolution = resolve::resolve_all(
        graph,
        &refs,
        &mut |n| pb.resolved(n),
        &mut |u| pb.listed(u),
        cache,
    )
    .await?;
    pb.finish();
    let resolve::Resolution {
        found,
        strategy,
        states,
        pages,
    } = resolution;

    let mut first_row_of_user: HashMap<String, u64> = HashMap::new();
    for (k, res) in found.into_iter().enumerate() {
        let it = &mut items[idx[k]];
        match res {
            Resolved::User(u) => {
                if let Some(first) = settle_user(it, u, excluded, &mut first_row_of_user) {
                    dups.push((idx[k], first));
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
    Ok((strategy, states, pages))
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
