//! The plan/apply engine: file → rows → resolved users → current state → plan → (confirm) →
//! changes → states read back → result file.
//!
//! Every input row becomes exactly one result row, in input order. Rows are written to the
//! result file as soon as they are final, so a crash keeps what was done; `apply` also keeps a
//! journal so that rerunning the same command continues without writing anyone twice.

mod apply;
mod interrupt;
mod plan;
mod progress;
mod revert;
mod summary;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use crate::cli::{ApplyArgs, InputArgs, RunArgs};
use crate::exit::ExitCode;
use crate::graph::{self, Access, CallError, ErrorKind, Graph, Identity};
use crate::input::{self, ReadOptions, SourceInfo};
use crate::model::{InputRow, MfaState, RowStatus, User, UserRef};
use crate::report::{self, Action, Outcome, ResultRow};
use crate::resolve::{self, Resolved, Strategy};

pub use plan::{decide, Decision};
pub use revert::run_revert;
pub use summary::Summary;

/// Which job to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    DryRun,
    Apply,
    Revert,
}

impl Mode {
    fn command(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Apply => "apply",
            Mode::Revert => "revert",
        }
    }
}

/// What the run found and did for one row: the result file's columns that the input row and
/// the user do not already hold (the full [`ResultRow`] is built when the row is written, so
/// a million rows do not each carry copies of their strings).
#[derive(Clone, Debug)]
pub(crate) struct RowResult {
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
pub(crate) struct Item {
    pub input: InputRow,
    pub user: Option<Arc<User>>,
    pub target: MfaState,
    pub result: RowResult,
    /// Final: the outcome will not change any more.
    pub done: bool,
    /// Handed to the result writer already.
    pub flushed: bool,
}

impl Item {
    fn new(input: InputRow, default_target: &MfaState) -> Item {
        let target = input
            .state
            .clone()
            .unwrap_or_else(|| default_target.clone());
        let result = RowResult {
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
    fn finish(&mut self, outcome: Outcome, error: Option<String>) {
        self.finish_with(outcome, error.map(Cow::Owned));
    }

    /// Like [`Item::finish`], with a fixed reason.
    fn finish_static(&mut self, outcome: Outcome, error: &'static str) {
        self.finish_with(outcome, Some(Cow::Borrowed(error)));
    }

    fn finish_with(&mut self, outcome: Outcome, error: Option<Cow<'static, str>>) {
        self.result.outcome = outcome;
        self.result.error = error;
        self.done = true;
    }

    /// The row of the result file.
    pub(crate) fn result_row(&self) -> ResultRow {
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
}

/// Reads the input and the exclusions. Any problem here is an input error (exit 2) and
/// happens before anything is sent to Graph.
pub(crate) fn read_input(
    args: &InputArgs,
) -> Result<(SourceInfo, Vec<InputRow>, HashSet<String>), input::InputError> {
    let opts = ReadOptions {
        sheet: args.sheet.clone(),
        column: args.column.clone(),
        encoding: args.encoding.clone(),
        delimiter: args.delimiter.clone(),
    };
    input::read_all(&args.file, &opts, args.exclude.as_deref())
}

/// The result file's path: `-o`, else `<input>-<command>-<time>.csv` in the current directory.
fn output_path(
    given: &Option<PathBuf>,
    input: &Path,
    command: &str,
    now: DateTime<Utc>,
) -> PathBuf {
    given
        .clone()
        .unwrap_or_else(|| report::default_output_path(input, command, now))
}

/// A fresh runtime for one command (network commands only).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

/// `mfa-bulk dry-run`.
pub fn run_dry_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let job = Job::new(Mode::DryRun, args, None)?;
    runtime()?.block_on(job.run())
}

/// `mfa-bulk apply`.
pub fn run_apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let ApplyArgs {
        run,
        yes,
        max_changes,
        plan,
        resume,
        notify_list,
    } = args;
    if !yes && !std::io::stdin().is_terminal() {
        bail!(UsageError(
            "apply changes users and asks for confirmation, but standard input is not a \
             terminal: pass --yes to apply without a prompt (run dry-run first to see the plan)"
                .into()
        ));
    }
    let opts = ApplyOptions {
        yes,
        max_changes,
        plan,
        resume,
        notify_list,
    };
    let job = Job::new(Mode::Apply, run, Some(opts))?;
    runtime()?.block_on(job.run())
}

/// Refuses, before anything is sent to Graph, to overwrite a file the run would write later
/// (the writers refuse too, but only once users may have been changed).
pub(crate) fn refuse_existing(path: &Path, force: bool, flag: &str) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!(UsageError(format!(
            "{} already exists: pass --force to overwrite it, or choose another name with {flag}",
            path.display()
        )));
    }
    Ok(())
}

/// A usage error found by the engine (exit 2; nothing sent to Graph).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Clone, Debug)]
pub(crate) struct ApplyOptions {
    pub yes: bool,
    pub max_changes: Option<u64>,
    pub plan: Option<PathBuf>,
    pub resume: bool,
    pub notify_list: Option<PathBuf>,
}

/// One dry-run or apply, from its arguments to its exit code.
pub(crate) struct Job {
    mode: Mode,
    args: RunArgs,
    apply: Option<ApplyOptions>,
    started: DateTime<Utc>,
    info: SourceInfo,
    items: Vec<Item>,
    excluded: HashSet<String>,
    output: PathBuf,
    input_sha256: String,
    plan: Option<HashMap<u64, ResultRow>>,
}

impl Job {
    /// Everything that can be checked offline: the input, the plan file, the output path.
    fn new(mode: Mode, args: RunArgs, apply: Option<ApplyOptions>) -> anyhow::Result<Job> {
        let started = Utc::now();
        let (info, rows, excluded) = read_input(&args.input)?;
        let default_target: MfaState = args.state.into();
        let items: Vec<Item> = rows
            .into_iter()
            .map(|r| Item::new(r, &default_target))
            .collect();
        let input_sha256 = report::sha256_file(&args.input.file)
            .with_context(|| format!("could not read {}", args.input.file.display()))?;
        let plan = match apply.as_ref().and_then(|a| a.plan.as_ref()) {
            Some(p) => Some(load_plan(p, &items)?),
            None => None,
        };
        let output = output_path(&args.output, &args.input.file, mode.command(), started);
        refuse_existing(&output, args.force, "-o")?;
        // The notify list is written last, after every change: an existing one must stop the
        // run here, not after users were changed (exit 2 says nothing was sent to Graph).
        if let Some(list) = apply.as_ref().and_then(|a| a.notify_list.as_ref()) {
            refuse_existing(list, args.force, "--notify-list")?;
        }
        Ok(Job {
            mode,
            args,
            apply,
            started,
            info,
            items,
            excluded,
            output,
            input_sha256,
            plan,
        })
    }

    async fn run(mut self) -> anyhow::Result<ExitCode> {
        // Network from here on.
        let (graph, _sim) = graph::connect_from_args(&self.args.graph).await?;
        let access = match self.mode {
            Mode::DryRun => Access::Read,
            Mode::Apply | Mode::Revert => Access::Write,
        };
        graph.check_access(access)?;
        let identity = graph.identity();
        let interrupted = interrupt::watch(graph.clone());
        let mut writer =
            report::OrderedWriter::new(report::create_writer(&self.output, self.args.force)?, 0);

        let strategy = self.resolve(&graph).await?;
        self.read_states(&graph).await;
        if self.args.registration {
            self.read_registration(&graph).await?;
        }

        let mut journal = None;
        match self.mode {
            Mode::DryRun => self.plan_dry_run(),
            Mode::Apply | Mode::Revert => {
                self.plan_apply(&identity)?;
                // Everything not to be written is final now.
                self.flush_final(&mut writer)?;
                let changes = self.pending_changes();
                let opts = self.apply.clone().expect("apply options");
                if let Some(max) = opts.max_changes {
                    if changes.len() as u64 > max {
                        for &i in &changes {
                            let it = &mut self.items[i];
                            it.finish(
                                Outcome::Skipped,
                                Some(format!(
                                    "not changed: the plan has {} changes, more than --max-changes {max}",
                                    changes.len()
                                )),
                            );
                        }
                        self.flush_final(&mut writer)?;
                        writer.finish()?;
                        bail!(UsageError(format!(
                            "refused: the plan would change {} users, more than --max-changes {max}. \
                             Nothing was changed; the result file {} shows the plan.",
                            changes.len(),
                            self.output.display()
                        )));
                    }
                }
                if !changes.is_empty() && !opts.yes && !interrupted.is_set() {
                    let asked = Instant::now();
                    let yes = confirm(&self, changes.len(), &identity)?;
                    if !yes || interrupted.is_set() {
                        for &i in &changes {
                            self.items[i].finish(
                                Outcome::Skipped,
                                Some(
                                    "not changed: the admin answered no at the confirmation".into(),
                                ),
                            );
                        }
                        self.flush_final(&mut writer)?;
                        writer.finish()?;
                        eprintln!("Nothing changed.");
                        return Ok(ExitCode::Success);
                    }
                    // A long pause at the prompt: read again right before writing.
                    if asked.elapsed().as_secs() > 30 {
                        self.reread_before_write(&graph, &changes).await;
                        self.flush_final(&mut writer)?;
                    }
                }
                let changes = self.pending_changes();
                let key = apply::apply_key(&self, &identity);
                let j = apply::open_journal(&key)?;
                journal = Some((j, key));
                apply::write_all(
                    &graph,
                    &mut self.items,
                    &changes,
                    &mut journal.as_mut().expect("journal").0,
                    &mut writer,
                    &interrupted,
                    false,
                )
                .await?;
            }
        }
        // One result row per input row, whatever happened: a row nothing settled says so.
        for it in self.items.iter_mut().filter(|it| !it.done) {
            it.finish_static(
                Outcome::Skipped,
                "not processed: the run stopped before this row; rerun the same command",
            );
        }
        self.flush_final(&mut writer)?;
        writer.finish()?;

        let summary = summary::Summary::new(
            self.mode,
            &self.items,
            strategy,
            interrupted.is_set(),
            graph.stats(),
        );
        let need_setup = summary.need_mfasetup.clone();
        if let Some(path) = self.apply.as_ref().and_then(|a| a.notify_list.as_ref()) {
            report::write_notify_list(path, &need_setup, self.args.force)?;
        }
        let code = summary.exit_code();
        let record = self.run_record(&identity, &summary, code);
        let record_path = report::write_run_record(&self.output, &record)?;
        if let Some((j, key)) = journal {
            if !interrupted.is_set() {
                apply::close_journal(j, &key)?;
            }
        }
        summary.print(
            &self.info,
            &identity,
            &self.output,
            &record_path,
            self.args.json,
        )?;
        Ok(code)
    }

    /// Resolves every row still open; marks not-found, ambiguous, excluded and duplicates.
    async fn resolve(&mut self, graph: &Graph) -> anyhow::Result<Strategy> {
        let mut refs: Vec<UserRef> = Vec::new();
        let mut idx: Vec<usize> = Vec::new();
        for (i, it) in self.items.iter_mut().enumerate() {
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
                    let msg = format!("same user as row {first_row}: handled there");
                    it.result.target_state = None;
                    it.finish(Outcome::Duplicate, Some(msg));
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
        let pb = progress::bar(refs.len() as u64, "resolving");
        let (found, strategy) =
            resolve::resolve_all(graph, &refs, &mut |n| pb.set_position(n)).await?;
        pb.finish_and_clear();

        let mut first_row_of_user: HashMap<String, u64> = HashMap::new();
        for (k, res) in found.into_iter().enumerate() {
            let it = &mut self.items[idx[k]];
            match res {
                Resolved::User(u) => {
                    let excluded = resolve::addresses(&u).any(|a| self.excluded.contains(&a));
                    let first = first_row_of_user.get(&u.id).copied();
                    it.user = Some(u.clone());
                    if excluded {
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
                    let names: Vec<&str> =
                        us.iter().map(|u| u.user_principal_name.as_str()).collect();
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
                    let outcome = if e.kind == ErrorKind::Cancelled {
                        Outcome::Skipped
                    } else {
                        Outcome::Failed
                    };
                    it.finish(outcome, Some(format!("looking the user up failed: {e}")));
                }
            }
        }
        Ok(strategy)
    }

    /// Indexes of rows with a resolved user and no outcome yet.
    fn open_rows(&self) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| !self.items[i].done && self.items[i].user.is_some())
            .collect()
    }

    /// Reads the per-user MFA state of every open row.
    async fn read_states(&mut self, graph: &Graph) {
        let open = self.open_rows();
        let ids = user_ids(&self.items, &open);
        let pb = progress::bar(ids.len() as u64, "reading");
        let items = &mut self.items;
        let mut done = 0;
        graph
            .get_states(&ids, |k, res| {
                let it = &mut items[open[k]];
                match res {
                    Ok(reply) => {
                        it.result.state_before = Some(reply.value);
                        it.result.request_id = reply.request_id;
                    }
                    Err(e) => fail_read(it, e, "reading the MFA state"),
                }
                done += 1;
                pb.set_position(done);
            })
            .await;
        pb.finish_and_clear();
    }

    /// Reads whether users have registered an MFA method (`--registration`).
    async fn read_registration(&mut self, graph: &Graph) -> anyhow::Result<()> {
        let open = self.open_rows();
        let ids = user_ids(&self.items, &open);
        let items = &mut self.items;
        graph
            .registration(&ids, |k, reg| items[open[k]].result.mfa_registered = reg)
            .await?;
        Ok(())
    }

    /// Dry-run: every open row gets the action it would take.
    fn plan_dry_run(&mut self) {
        for i in self.open_rows() {
            let it = &mut self.items[i];
            plan_row(it, Mode::DryRun);
        }
    }

    /// Apply: decides every open row; rows to write stay open with their action set.
    /// Users an interrupted run of the same command already changed are reported as changed.
    fn plan_apply(&mut self, identity: &Identity) -> anyhow::Result<()> {
        let key = apply::apply_key(self, identity);
        let resume = self.apply.as_ref().is_some_and(|a| a.resume);
        let previous =
            apply::load_previous(&key, resume, &self.args.input.file.display().to_string())?;
        for i in self.open_rows() {
            let plan = self
                .plan
                .as_ref()
                .map(|p| p.get(&self.items[i].input.row).cloned());
            let it = &mut self.items[i];
            let before = it.result.state_before.clone().expect("state read");
            let user_id = it.user.as_ref().expect("user").id.clone();
            // Approved in the dry-run plan? Then its target, and no drift allowed.
            if let Some(plan_row_opt) = plan {
                match plan_row_opt {
                    Some(p)
                        if p.outcome == Outcome::WouldChange
                            && p.user_id.as_deref() == Some(user_id.as_str()) =>
                    {
                        if let Some(t) = p.target_state.clone() {
                            it.target = t.clone();
                            it.result.target_state = Some(t);
                        }
                        if p.state_before.as_ref() != Some(&before) {
                            it.finish(
                                Outcome::Drifted,
                                Some(format!(
                                    "state was {} in the dry-run, is {} now: not touched; run a new dry-run",
                                    p.state_before.as_ref().map(|s| s.as_str()).unwrap_or("unknown"),
                                    before
                                )),
                            );
                            continue;
                        }
                    }
                    _ => {
                        if decide(&before, &it.target) == Decision::Change {
                            it.result.action = Action::Set(it.target.clone());
                            it.finish(
                                Outcome::Skipped,
                                Some(
                                    "not approved in the dry-run plan (--plan): not touched".into(),
                                ),
                            );
                            continue;
                        }
                    }
                }
            }
            // Changed by an interrupted run of the same command?
            if let Some(prev) = previous.get(&user_id) {
                if plan::reached(&before, &it.target) {
                    it.result.action = Action::Set(it.target.clone());
                    apply::infer_registration(&mut it.result.mfa_registered, &before, &it.target);
                    it.result.state_after = Some(before.clone());
                    it.result.state_before = Some(prev.before.clone());
                    if prev.request_id.is_some() {
                        it.result.request_id = prev.request_id.clone();
                    }
                    it.finish(Outcome::Changed, None);
                    continue;
                }
            }
            plan_row(it, Mode::Apply);
        }
        Ok(())
    }

    /// Rows the apply still has to write.
    fn pending_changes(&self) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| {
                !self.items[i].done && matches!(self.items[i].result.action, Action::Set(_))
            })
            .collect()
    }

    /// Reads again the users about to be written (after a long pause at the prompt).
    async fn reread_before_write(&mut self, graph: &Graph, changes: &[usize]) {
        let ids = user_ids(&self.items, changes);
        let items = &mut self.items;
        graph
            .get_states(&ids, |k, res| {
                let it = &mut items[changes[k]];
                match res {
                    Ok(reply) => {
                        it.result.request_id = reply.request_id;
                        it.result.state_before = Some(reply.value.clone());
                        it.result.action = Action::None;
                        plan_row(it, Mode::Apply);
                    }
                    Err(e) => fail_read(it, e, "reading the MFA state again before writing"),
                }
            })
            .await;
    }

    /// Hands every final row to the result writer (it keeps input order).
    fn flush_final(&mut self, writer: &mut report::OrderedWriter) -> anyhow::Result<()> {
        flush_items(&mut self.items, writer)
    }

    fn run_record(
        &self,
        identity: &Identity,
        summary: &Summary,
        code: ExitCode,
    ) -> report::RunRecord {
        let a = &self.args;
        let mut options = serde_json::json!({
            "state": MfaState::from(a.state).as_str(),
            "sheet": self.info.sheet,
            "column": self.info.column,
            "exclude": a.input.exclude,
            "registration": a.registration,
            "sim": a.graph.sim,
            "cloud": identity.cloud,
            "rate": a.graph.rate,
            "write_rate": a.graph.write_rate,
            "concurrency": a.graph.concurrency,
        });
        if let Some(o) = &self.apply {
            options["yes"] = o.yes.into();
            options["max_changes"] = serde_json::json!(o.max_changes);
            options["plan"] = serde_json::json!(o.plan);
            options["resume"] = o.resume.into();
        }
        summary.run_record(
            self.mode.command(),
            identity,
            &self.args.input.file,
            &self.input_sha256,
            options,
            self.started,
            &self.output,
            code,
        )
    }
}

/// Sets the action and outcome of a row whose state is known. A row that needs a write is
/// final in a dry-run (would-change) and stays open in an apply until it is written.
fn plan_row(it: &mut Item, mode: Mode) {
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
            if mode == Mode::DryRun {
                it.finish(Outcome::WouldChange, None);
            }
        }
    }
}

/// Hands every final row not yet written to the result writer (it keeps input order).
pub(crate) fn flush_items(
    items: &mut [Item],
    writer: &mut report::OrderedWriter,
) -> anyhow::Result<()> {
    for (i, it) in items.iter_mut().enumerate() {
        if it.done && !it.flushed {
            writer.put(i, it.result_row())?;
            it.flushed = true;
        }
    }
    Ok(())
}

/// The user ids of the given rows (each must have a resolved user).
fn user_ids(items: &[Item], rows: &[usize]) -> Vec<String> {
    rows.iter()
        .map(|&i| items[i].user.as_ref().expect("resolved user").id.clone())
        .collect()
}

/// Asks a yes/no question at the terminal (on stderr, so stdout stays clean). Anything but
/// y/yes is no. Called from the async run: the wait for the answer is moved off the runtime.
pub(crate) fn ask(question: &str) -> anyhow::Result<bool> {
    tokio::task::block_in_place(|| ask_blocking(question))
}

fn ask_blocking(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Records a failed read on a row (404: the user is gone).
fn fail_read(it: &mut Item, e: CallError, what: &str) {
    it.result.request_id = e.request_id.clone();
    let outcome = match e.kind {
        ErrorKind::NotFound => Outcome::NotFound,
        ErrorKind::Cancelled => Outcome::Skipped,
        _ => Outcome::Failed,
    };
    it.finish(outcome, Some(format!("{what} failed: {e}")));
}

/// Shows the plan (what will change, by target, and what will not) and asks the admin at the
/// terminal. Turning MFA off is called out. Anything but y/yes is no.
fn confirm(job: &Job, n: usize, identity: &Identity) -> anyhow::Result<bool> {
    let pending = job.pending_changes();
    let mut by_target: Vec<(String, usize)> = Vec::new();
    for &i in &pending {
        let t = job.items[i].target.as_str();
        match by_target.iter_mut().find(|(k, _)| k == t) {
            Some((_, c)) => *c += 1,
            None => by_target.push((t.to_string(), 1)),
        }
    }
    by_target.sort();
    eprintln!("Plan for tenant {}:", identity.tenant_id);
    for (t, c) in &by_target {
        eprintln!("  set {t:<9} {c:>7} {}", users(*c));
    }
    for o in Outcome::ALL {
        let c = job
            .items
            .iter()
            .filter(|it| it.done && it.result.outcome == o)
            .count();
        if c > 0 {
            eprintln!("  {:<13} {c:>7}", o.as_str());
        }
    }
    if let Some((_, off)) = by_target.iter().find(|(t, _)| t == "disabled") {
        eprintln!(
            "WARNING: {off} {} will have per-user MFA turned OFF.",
            users(*off)
        );
    }
    ask(&format!("Change {n} {}?", users(n)))
}

/// "user" or "users".
pub(crate) fn users(n: usize) -> &'static str {
    if n == 1 {
        "user"
    } else {
        "users"
    }
}

/// Reads a dry-run result file for `--plan` and checks it belongs to this input.
fn load_plan(path: &Path, items: &[Item]) -> anyhow::Result<HashMap<u64, ResultRow>> {
    let rows = report::read_results(path)?;
    let by_row: HashMap<u64, &Item> = items.iter().map(|it| (it.input.row, it)).collect();
    let mut plan = HashMap::new();
    for r in rows {
        match by_row.get(&r.row) {
            Some(it) if it.input.input == r.input => {}
            Some(it) => bail!(UsageError(format!(
                "{}: row {} says '{}' but the input file has '{}' there: this plan is not from \
                 this file (or the file changed since). Run a new dry-run.",
                path.display(),
                r.row,
                r.input,
                it.input.input
            ))),
            None => bail!(UsageError(format!(
                "{}: row {} is not in the input file: this plan is not from this file (or the \
                 file changed since). Run a new dry-run.",
                path.display(),
                r.row
            ))),
        }
        plan.insert(r.row, r);
    }
    Ok(plan)
}
