//! One run, from its settings to its exit code, the same for every rule: read the rows
//! (offline), connect, resolve, read states, plan, confirm, write, and one tail (the rows
//! nothing settled, the result file, the notify list, the run record, the journal, the
//! summary).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use chrono::{DateTime, Utc};

use super::journal::{self, JournalKey, Previous};
use super::reads::Reads;
use super::row::{flush_items_from, user_ids, users, Item};
use super::source::{self, Source};
use super::{confirm, interrupt, plan, progress, summary, write};
use crate::exit::ExitCode;
use crate::graph::{self, Access, Graph, Identity};
use crate::input::SourceInfo;
use crate::model::MfaState;
use crate::report::{self, Action, Outcome, ResultRow};
use crate::resolve::{self, Strategy};

/// What a run does with its rows.
#[derive(Clone, Debug)]
pub enum Rule {
    /// Read only: the action each row would take.
    DryRun,
    /// Set each user to the row's target ("at least", for `enabled`).
    Apply(ApplyOptions),
    /// Put each user an earlier apply changed back to its recorded "before" (exactly).
    Revert,
}

impl Rule {
    /// The command's name, as in the result file's default name and the run record.
    pub fn command(&self) -> &'static str {
        match self {
            Rule::DryRun => "dry-run",
            Rule::Apply(_) => "apply",
            Rule::Revert => "revert",
        }
    }

    fn writes(&self) -> bool {
        !matches!(self, Rule::DryRun)
    }
}

/// Options only `apply` has.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Refuse a plan that changes more users than this.
    pub max_changes: Option<u64>,
    /// Apply exactly the rows this dry-run result approved.
    pub plan: Option<PathBuf>,
    /// Continue from the journal (an error when there is none).
    pub resume: bool,
    /// Write the addresses of changed users who must still register here.
    pub notify_list: Option<PathBuf>,
}

/// Everything a run needs, checked by the command line before it gets here.
pub struct RunSettings {
    pub source: Source,
    pub rule: Rule,
    /// The result file (`None`: a default name in the current directory).
    pub output: Option<PathBuf>,
    pub force: bool,
    /// Do not ask before writing.
    pub yes: bool,
    /// Also read who registered an MFA method.
    pub registration: bool,
    /// Print the summary as JSON.
    pub json: bool,
    /// Read every state with the documented per-user GET, never from a user list.
    pub per_user_reads: bool,
    /// The options as the run record lists them (secrets are dropped there too).
    pub recorded_options: serde_json::Value,
    /// Other files the run reads (e.g. the simulator's seed, `--sim-tenant`), by what they
    /// are: never written over.
    pub also_read: Vec<(String, PathBuf)>,
}

/// A usage error found by the engine (exit 2; nothing sent to Graph).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// Runs one dry-run, apply or revert on a fresh runtime. `connect` signs in (nothing is sent
/// before every offline check passed).
pub(crate) fn run(settings: RunSettings, connect: graph::Connect) -> anyhow::Result<ExitCode> {
    let job = Job::new(settings)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("could not start the async runtime: {e}"))?
        .block_on(job.run(connect))
}

/// Refuses, before anything is sent to Graph, to overwrite a file the run would write later
/// (the writers refuse too, but only once users may have been changed). A link counts, even
/// a dangling one.
fn refuse_existing(path: &Path, force: bool, flag: &str) -> anyhow::Result<()> {
    if !force && report::files::name_taken(path) {
        bail!(UsageError(format!(
            "{} already exists: pass --force to overwrite it, or choose another name with {flag}",
            path.display()
        )));
    }
    Ok(())
}

/// Refuses a path whose folder does not exist (or is not a folder).
fn refuse_missing_folder(path: &Path, flag: &str) -> anyhow::Result<()> {
    let folder = match path.parent() {
        Some(f) if !f.as_os_str().is_empty() => f,
        _ => return Ok(()),
    };
    if !folder.is_dir() {
        bail!(UsageError(format!(
            "{flag} {}: the folder {} does not exist; create it or choose another place",
            path.display(),
            folder.display()
        )));
    }
    Ok(())
}

/// A run stopped by an error after requests were sent: never exit 2 ("nothing was sent").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct StoppedAfterSending {
    pub message: String,
    pub interrupted: bool,
}

impl StoppedAfterSending {
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::Interrupted
        } else {
            ExitCode::RowsNeedAttention
        }
    }
}

/// One run, between its offline checks and its exit code.
struct Job {
    s: RunSettings,
    started: DateTime<Utc>,
    info: SourceInfo,
    items: Vec<Item>,
    excluded: HashSet<String>,
    /// The result file; `None` until created when no `-o` was given (a free default name).
    output: Option<PathBuf>,
    /// The result file continues an interrupted run's: it may be replaced without --force.
    continuing: bool,
    input_sha256: String,
    plan: Option<HashMap<u64, ResultRow>>,
    strategy: Strategy,
    /// How users and states were read (lists or one by one).
    reads: Reads,
    writer: Option<report::OrderedWriter>,
    /// Held for the whole run (apply, revert): one run per journal.
    _lock: Option<journal::RunLock>,
    /// Rows in the file when a big dry-run streams it (read again in chunks once signed in).
    streamed: Option<u64>,
    /// Input position of `items[0]` (a streamed run holds one chunk at a time).
    base: usize,
    /// The summary of the chunks already written (a streamed run).
    tally: Option<summary::Summary>,
    /// The registration report, read once for all the chunks of a streamed run.
    registrations: Option<crate::graph::Registrations>,
}

impl Job {
    /// Everything that can be checked offline: the rows, the plan file, the output paths,
    /// and that no other run of the same command on the same input is going on here.
    fn new(s: RunSettings) -> anyhow::Result<Job> {
        let started = Utc::now();
        if s.rule.writes() && !s.yes && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            bail!(UsageError(format!(
                "{} changes users and asks for confirmation, but standard input is not a \
                 terminal: pass --yes to go ahead without a prompt (run dry-run first to see \
                 the plan)",
                s.rule.command()
            )));
        }
        // A result name the tool cannot write (`-o users.xls`) is said before the input is read.
        if let Some(o) = &s.output {
            report::ResultFormat::from_output_path(o)?;
        }
        let loaded = source::load(&s.source, matches!(s.rule, Rule::DryRun))?;
        let apply = match &s.rule {
            Rule::Apply(a) => Some(a),
            _ => None,
        };
        let lock = if s.rule.writes() {
            Some(journal::lock(
                s.rule.command(),
                &loaded.sha256,
                &s.source.name(),
            )?)
        } else {
            None
        };
        let plan = match apply.and_then(|a| a.plan.as_ref()) {
            // Directory users are known once listed: their plan is matched then, by user.
            Some(p) if matches!(s.source, Source::Directory { .. }) => Some(
                report::read_results(p)?
                    .into_iter()
                    .map(|r| (r.row, r))
                    .collect(),
            ),
            Some(p) => Some(load_plan(p, &loaded.items)?),
            None => None,
        };
        // Rerunning the same command continues into the interrupted run's result file.
        let mut output = s.output.clone();
        let mut continuing = false;
        if let Some(h) = journal::peek(s.rule.command(), &loaded.sha256) {
            if let Some(previous) = h
                .result_file
                .filter(|_| h.options_key == options_key(&s.rule, &s.source))
            {
                let same = match &output {
                    None => true,
                    Some(o) => o == &previous || report::same_file(o, &previous).unwrap_or(false),
                };
                if same {
                    output = Some(previous);
                    continuing = true;
                }
            }
        }
        let force = s.force || continuing;
        if let Some(o) = &output {
            report::check_result_path(o, force)?;
        }
        // The notify list is written last, after every change: an existing one must stop the
        // run here, not after users were changed (exit 2 says nothing was sent to Graph).
        let notify = apply.and_then(|a| a.notify_list.as_deref());
        if let Some(list) = notify {
            refuse_existing(list, s.force, "--notify-list")?;
        }
        // A folder that is not there is said now, not after users were changed.
        for (flag, path) in [("-o", output.as_deref()), ("--notify-list", notify)] {
            if let Some(p) = path.filter(|p| !report::is_stdout(p)) {
                refuse_missing_folder(p, flag)?;
            }
        }
        // Nothing the run writes may replace a file it reads, even with --force.
        let record = output.as_deref().and_then(report::run_record_path);
        let mut outputs: Vec<(&str, &Path)> = Vec::new();
        if let Some(o) = &output {
            outputs.push(("result file", o));
        }
        if let Some(r) = &record {
            outputs.push(("run record", r));
        }
        if let Some(n) = notify {
            outputs.push(("notify list", n));
        }
        let mut inputs: Vec<(&str, &Path)> = Vec::new();
        if let Some(f) = s.source.file() {
            inputs.push(("input file", f));
        }
        if let Some(x) = s.source.exclude() {
            inputs.push(("exclusion file", x));
        }
        if let Some(p) = apply.and_then(|a| a.plan.as_deref()) {
            inputs.push(("--plan file", p));
        }
        for (what, p) in &s.also_read {
            inputs.push((what.as_str(), p));
        }
        report::refuse_clobbering_inputs(&outputs, &inputs)?;
        Ok(Job {
            started,
            info: loaded.info,
            items: loaded.items,
            excluded: loaded.excluded,
            output,
            continuing,
            input_sha256: loaded.sha256,
            plan,
            strategy: Strategy::Lookup,
            reads: Reads::default(),
            writer: None,
            _lock: lock,
            streamed: loaded.streamed,
            base: 0,
            tally: None,
            registrations: None,
            s,
        })
    }

    /// The journal of this run (apply and revert).
    fn journal_key(&self, identity: &Identity, result_file: &Path) -> Option<JournalKey> {
        if !self.s.rule.writes() {
            return None;
        }
        Some(JournalKey::new(
            self.s.rule.command(),
            &self.input_sha256,
            &identity.tenant_id,
            options_key(&self.s.rule, &self.s.source),
            self.started,
            result_file,
        ))
    }

    /// The result file's writer, created on first use (so answering "no" at the prompt
    /// leaves no file): at `-o`, or at a free default name.
    fn writer(&mut self) -> anyhow::Result<&mut report::OrderedWriter> {
        if self.writer.is_none() {
            let w = match &self.output {
                Some(o) => report::create_writer(o, self.s.force || self.continuing)?,
                None => {
                    let base = report::default_output_path(
                        &self.s.source.default_stem(),
                        self.s.rule.command(),
                        self.started,
                    );
                    let (path, w) = report::create_writer_at_free_name(&base)?;
                    self.output = Some(path);
                    w
                }
            };
            self.writer = Some(report::OrderedWriter::new(w, 0));
        }
        Ok(self.writer.as_mut().expect("created"))
    }

    /// Hands every final row to the result writer (in input order).
    fn flush(&mut self) -> anyhow::Result<()> {
        self.writer()?;
        let Job {
            items,
            writer,
            base,
            ..
        } = self;
        flush_items_from(items, *base, writer.as_mut().expect("created"))
    }

    async fn run(mut self, connect: graph::Connect) -> anyhow::Result<ExitCode> {
        // Network from here on.
        let graph = connect.await?;
        let access = if self.s.rule.writes() {
            Access::Write
        } else {
            Access::Read
        };
        graph.check_access(access)?;
        let identity = graph.identity();
        let interrupted = interrupt::watch(graph.clone());
        let mut journal = None;
        let result = match self
            .work(&graph, &identity, &interrupted, &mut journal)
            .await
        {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => self.finish(&graph, journal, interrupted.is_set(), &identity),
            Err(e) => Err(e),
        };
        result.map_err(|e| self.stopped(e, &graph, &interrupted))
    }

    /// An error after signing in: a refusal before any write and a Graph error keep their own
    /// kind (and exit code); anything else says what was sent and how to continue, and never
    /// exits 2 ("nothing was sent").
    fn stopped(
        &self,
        e: anyhow::Error,
        graph: &Graph,
        interrupted: &interrupt::Interrupted,
    ) -> anyhow::Error {
        let stats = graph.stats();
        if (e.is::<UsageError>() && stats.writes == 0)
            || e.chain().any(|c| c.is::<crate::graph::GraphError>())
        {
            return e;
        }
        let done = self
            .items
            .iter()
            .filter(|it| it.result.outcome == Outcome::Changed)
            .count();
        let mut message = format!("{e:#}");
        if stats.writes > 0 {
            message.push_str(&format!(
                "\n{} {} sent to Graph before this error ({done} confirmed changed); the \
                 journal in .mfa-bulk/ keeps who: rerun the same command to continue (each user \
                 is read again, nobody is written twice).",
                stats.writes,
                if stats.writes == 1 {
                    "write was"
                } else {
                    "writes were"
                },
            ));
        } else {
            message.push_str("\nNo user was changed.");
        }
        StoppedAfterSending {
            message,
            interrupted: interrupted.is_set(),
        }
        .into()
    }

    /// Everything between signing in and the tail. `Some(code)` ends the run there (the admin
    /// answered no).
    async fn work(
        &mut self,
        graph: &Graph,
        identity: &Identity,
        interrupted: &interrupt::Interrupted,
        journal: &mut Option<(report::Journal, JournalKey)>,
    ) -> anyhow::Result<Option<ExitCode>> {
        let previous = if self.s.rule.writes() {
            let resume = matches!(&self.s.rule, Rule::Apply(a) if a.resume);
            let key = self
                .journal_key(identity, Path::new(""))
                .expect("a run that writes");
            journal::load_previous(&key, resume, &self.s.source.name().display().to_string())?
        } else {
            HashMap::new()
        };
        if let Some(rows) = self.streamed {
            self.work_streamed(graph, rows).await?;
            return Ok(None);
        }

        let listed = source::list_directory(
            &mut self.items,
            &self.s.source,
            &self.excluded,
            graph,
            !self.s.per_user_reads,
        )
        .await?;
        self.reads.note_listing(&listed, self.items.len() as u64);
        if let Source::Directory { .. } = &self.s.source {
            if let Some(plan) = self.plan.take() {
                self.plan = Some(plan_by_user(plan, &self.items));
            }
        }
        self.settle(graph, &previous, &mut resolve::ResolveCache::default())
            .await?;
        if !self.s.rule.writes() {
            return Ok(None);
        }

        let changes = self.pending_changes();
        if let Rule::Apply(ApplyOptions {
            max_changes: Some(max),
            ..
        }) = self.s.rule
        {
            if changes.len() as u64 > max {
                for &i in &changes {
                    self.items[i].finish(
                        Outcome::Skipped,
                        Some(format!(
                            "not changed: the plan has {} changes, more than --max-changes {max}",
                            changes.len()
                        )),
                    );
                }
                self.flush()?;
                self.writer.take().expect("created").finish()?;
                bail!(UsageError(format!(
                    "refused: the plan would change {} users, more than --max-changes {max}. \
                     Nothing was changed; the result file {} shows the plan.",
                    changes.len(),
                    self.output.as_deref().unwrap_or(Path::new("-")).display()
                )));
            }
        }
        if !changes.is_empty() && !self.s.yes && !interrupted.is_set() {
            let asked = Instant::now();
            let question = self.question(changes.len(), identity);
            let yes = confirm::confirm(&self.items, &changes, identity, &question)?;
            if !yes || interrupted.is_set() {
                eprintln!("Nothing was changed: no result file was written.");
                return Ok(Some(ExitCode::RowsNeedAttention));
            }
            // A long pause at the prompt: read again right before writing.
            if matches!(self.s.rule, Rule::Apply(_)) && asked.elapsed().as_secs() > 30 {
                self.reread_before_write(graph, &changes).await;
            }
        }
        // Everything not to be written is final now.
        self.flush()?;
        let output = self.output.clone().expect("created");
        let key = self
            .journal_key(identity, &output)
            .expect("a run that writes");
        let changes = self.pending_changes();
        let mut j = journal::open_journal(&key)?;
        let exact = matches!(self.s.rule, Rule::Revert);
        let writer = self.writer.as_mut().expect("created");
        let result = write::write_all(
            graph,
            &mut self.items,
            &changes,
            &mut j,
            writer,
            interrupted,
            exact,
        )
        .await;
        *journal = Some((j, key));
        result?;
        Ok(None)
    }

    /// Resolves the rows, reads their states (and registration), and plans each under the
    /// run's rule.
    async fn settle(
        &mut self,
        graph: &Graph,
        previous: &HashMap<String, Previous>,
        cache: &mut resolve::ResolveCache,
    ) -> anyhow::Result<()> {
        let (strategy, states, pages) =
            source::resolve(&mut self.items, &self.excluded, graph, cache).await?;
        self.strategy = strategy;
        self.reads.pages += pages;
        let listed = (strategy == Strategy::Listing && !self.s.per_user_reads).then_some(states);
        self.read_states(graph, listed).await?;
        if self.s.registration {
            self.read_registration(graph).await?;
        }
        self.plan(previous);
        Ok(())
    }

    /// A big dry-run, a chunk of the file at a time: each chunk settled, written and dropped,
    /// only its counts kept (the strategy and the tenant listing are shared by the chunks).
    async fn work_streamed(&mut self, graph: &Graph, rows: u64) -> anyhow::Result<()> {
        let mut stream = source::Stream::open(&self.s.source, &self.excluded)?;
        let mut cache = resolve::ResolveCache::for_values(rows as usize);
        let previous = HashMap::new();
        if self.s.registration {
            // Once for every chunk (without P1/P2 each chunk's users are read one by one).
            self.registrations = graph.registration_report(false, &mut |_, _| {}).await.ok();
        }
        loop {
            self.items = stream.next_chunk(source::CHUNK)?;
            if self.items.is_empty() {
                break;
            }
            self.settle(graph, &previous, &mut cache).await?;
            self.flush()?;
            let part = summary::Summary::new(
                self.s.rule.command(),
                &self.items,
                self.strategy,
                false,
                Default::default(),
            );
            match &mut self.tally {
                Some(t) => t.absorb(part),
                None => self.tally = Some(part),
            }
            self.base += self.items.len();
        }
        self.items = Vec::new();
        stream.finish(&self.input_sha256)
    }

    /// The one tail of every run: rows nothing settled, the result file, the notify list, the
    /// run record, the journal, the summary.
    fn finish(
        &mut self,
        graph: &Graph,
        journal: Option<(report::Journal, JournalKey)>,
        interrupted: bool,
        identity: &Identity,
    ) -> anyhow::Result<ExitCode> {
        // One result row per input row, whatever happened: a row nothing settled says so.
        for it in self.items.iter_mut().filter(|it| !it.done) {
            it.finish_static(
                Outcome::Skipped,
                "not processed: the run stopped before this row; rerun the same command",
            );
        }
        self.flush()?;
        self.writer.take().expect("created").finish()?;
        let output = self.output.clone().expect("created");

        let mut summary = summary::Summary::new(
            self.s.rule.command(),
            &self.items,
            self.strategy,
            interrupted,
            graph.stats(),
        );
        if let Some(mut tally) = self.tally.take() {
            tally.absorb(summary);
            tally.strategy = self.strategy;
            tally.interrupted = interrupted;
            tally.graph = graph.stats();
            summary = tally;
        }
        summary.notes = self.reads.notes(self.s.per_user_reads);
        summary.reads = Some(self.reads.clone());
        if let Rule::Apply(ApplyOptions {
            notify_list: Some(path),
            ..
        }) = &self.s.rule
        {
            report::write_notify_list(path, &summary.need_mfasetup, self.s.force)?;
        }
        // Graph rejected the token mid-run: a sign-in problem (exit 3), whatever the rows say.
        let rejected = graph.token_rejected();
        let code = if rejected.is_some() {
            ExitCode::AuthOrPermission
        } else {
            summary.exit_code()
        };
        let record = self.run_record(identity, &summary, code, &output);
        let record_path =
            report::create_run_record(&output, &record, self.s.force || self.continuing)?;
        // Rows that failed are tried again by rerunning the same command: the journal stays
        // (so the rerun continues into the same result file, changed rows keeping their
        // "before"); it goes once every row ended as asked or for good.
        let failed = self
            .items
            .iter()
            .filter(|it| it.result.outcome == Outcome::Failed)
            .count();
        let keep_journal = interrupted || failed > 0 || rejected.is_some();
        if let Some((j, key)) = journal {
            if !keep_journal {
                journal::close_journal(j, &key)?;
            }
        }
        summary.print(
            &self.info,
            identity,
            &output,
            record_path.as_deref(),
            self.s.json,
        )?;
        if let Some(e) = &rejected {
            eprintln!(
                "error: sign-in stopped working during the run: {e}. Nothing more was sent. \
                 Check the credential (a revoked secret, an expired or revoked token, a disabled \
                 app), then rerun the same command to continue."
            );
        } else if failed > 0 && self.s.rule.writes() && !interrupted {
            eprintln!(
                "{failed} {} failed: rerun the same command to try again; it continues into \
                 {} (every row kept, changed users with their state before).",
                if failed == 1 { "row" } else { "rows" },
                output.display()
            );
        }
        Ok(code)
    }

    /// The question asked before writing.
    fn question(&self, n: usize, identity: &Identity) -> String {
        match self.s.rule {
            Rule::Revert => format!(
                "Put {n} {} back to their state before that run in tenant {}?",
                users(n),
                identity.tenant_id
            ),
            _ => format!("Change {n} {}?", users(n)),
        }
    }

    /// Indexes of rows with a resolved user and no outcome yet.
    fn open_rows(&self) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| !self.items[i].done && self.items[i].user.is_some())
            .collect()
    }

    /// Reads the per-user MFA state of every open row that has none yet: from `listed` (a
    /// tenant listing made while resolving), else from a listing of the tenant when that costs
    /// fewer requests than one read per user, else one documented per-user GET each (also
    /// for users whose list answer lacked the state).
    async fn read_states(
        &mut self,
        graph: &Graph,
        mut listed: Option<HashMap<String, MfaState>>,
    ) -> anyhow::Result<()> {
        let mut open: Vec<usize> = self
            .open_rows()
            .into_iter()
            .filter(|&i| self.items[i].result.state_before.is_none())
            .collect();
        if listed.is_none()
            && !self.s.per_user_reads
            && self.reads.pages == 0
            && open.len() >= resolve::MIN_VALUES_FOR_LISTING
        {
            // Counting costs one request; a failure just means reading one by one.
            if let Ok(n) = graph.count_users().await {
                if resolve::listing_is_cheaper(open.len(), n) {
                    let pb = progress::bar(n, "listing users");
                    let l = resolve::list_tenant(graph, &mut |k| pb.set_position(k)).await?;
                    pb.finish_and_clear();
                    self.reads.pages += l.pages;
                    listed = Some(l.states);
                }
            }
        }
        if let Some(mut listed) = listed {
            open.retain(|&i| {
                let it = &mut self.items[i];
                match listed.remove(&it.user_id().to_ascii_lowercase()) {
                    Some(s) => {
                        it.result.state_before = Some(s);
                        self.reads.from_list += 1;
                        false
                    }
                    None => true,
                }
            });
            self.reads.list_lacked += open.len() as u64;
        }
        let ids = user_ids(&self.items, &open);
        self.reads.per_user += ids.len() as u64;
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
                    Err(e) => it.fail_read(e, "reading the MFA state"),
                }
                done += 1;
                pb.set_position(done);
            })
            .await;
        pb.finish_and_clear();
        Ok(())
    }

    /// Reads whether users have registered an MFA method (`--registration`).
    async fn read_registration(&mut self, graph: &Graph) -> anyhow::Result<()> {
        let open = self.open_rows();
        if let Some(regs) = &self.registrations {
            for i in open {
                let it = &mut self.items[i];
                it.result.mfa_registered = regs.get(it.user_id()).map(|r| r.mfa_registered);
            }
            return Ok(());
        }
        let ids = user_ids(&self.items, &open);
        let items = &mut self.items;
        graph
            .registration(&ids, |k, reg| items[open[k]].result.mfa_registered = reg)
            .await?;
        Ok(())
    }

    /// Every open row gets its plan under the run's rule.
    fn plan(&mut self, previous: &HashMap<String, Previous>) {
        for i in self.open_rows() {
            let row = self.items[i].input.row;
            let it = &mut self.items[i];
            match &self.s.rule {
                Rule::DryRun => plan::plan_row(it, true),
                Rule::Apply(_) => {
                    let p = self.plan.as_ref().map(|p| p.get(&row));
                    plan::plan_apply(it, p, previous)
                }
                Rule::Revert => plan::plan_revert(it, previous),
            }
        }
    }

    /// Rows still to be written.
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
                        plan::plan_row(it, false);
                    }
                    Err(e) => it.fail_read(e, "reading the MFA state again before writing"),
                }
            })
            .await;
    }

    fn run_record(
        &self,
        identity: &Identity,
        summary: &summary::Summary,
        code: ExitCode,
        output: &Path,
    ) -> report::RunRecord {
        let mut options = self.s.recorded_options.clone();
        if let Some(o) = options.as_object_mut() {
            if let Source::Spreadsheet { .. } = self.s.source {
                o.insert("sheet".into(), serde_json::json!(self.info.sheet));
                o.insert("column".into(), serde_json::json!(self.info.column));
            }
            o.insert("cloud".into(), serde_json::json!(identity.cloud));
        }
        summary.run_record(
            self.s.rule.command(),
            identity,
            &self.s.source.name(),
            &self.input_sha256,
            options,
            self.started,
            output,
            code,
        )
    }
}

/// What must match for an interrupted run's journal to be continued: the target and the
/// plan file (apply); nothing more for revert.
fn options_key(rule: &Rule, source: &Source) -> String {
    match rule {
        Rule::Apply(a) => {
            let target = source.target().map(MfaState::as_str).unwrap_or_default();
            let plan = a
                .plan
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("state={target};plan={plan}")
        }
        Rule::DryRun | Rule::Revert => String::new(),
    }
}

/// A plan of directory users, keyed by the rows of this listing: each user's plan row wherever
/// the listing puts them now (membership may have changed since the dry-run: users the plan
/// does not have are not approved, and are left alone).
fn plan_by_user(plan: HashMap<u64, ResultRow>, items: &[Item]) -> HashMap<u64, ResultRow> {
    let mut by_user: HashMap<String, ResultRow> = plan
        .into_values()
        .filter_map(|r| Some((r.user_id.clone()?.to_ascii_lowercase(), r)))
        .collect();
    items
        .iter()
        .filter_map(|it| {
            let id = it.user.as_ref()?.id.to_ascii_lowercase();
            let mut r = by_user.remove(&id)?;
            r.row = it.input.row;
            Some((it.input.row, r))
        })
        .collect()
}

/// Reads a dry-run result file for `--plan` and checks it belongs to this input.
fn load_plan(path: &Path, items: &[Item]) -> anyhow::Result<HashMap<u64, ResultRow>> {
    let rows = report::read_results(path)?;
    let by_row: HashMap<u64, &Item> = items.iter().map(|it| (it.input.row, it)).collect();
    let mut plan = HashMap::new();
    for r in rows {
        match by_row.get(&r.row) {
            // An approved row must ask for what the input (and --state) asks for now: an
            // edited plan must never turn MFA off, or weaken a user, that the file did not.
            Some(it)
                if it.input.input == r.input
                    && r.outcome == Outcome::WouldChange
                    && (r.target_state.as_ref() != Some(&it.target)
                        || r.action != Action::Set(it.target.clone())) =>
            {
                bail!(UsageError(format!(
                    "{}: row {} asks to set {} ({}), but the input file and --state ask for \
                     {} there: this plan is not what a dry-run of this file showed (edited, or \
                     made with another --state). Nothing was changed; run a new dry-run.",
                    path.display(),
                    r.row,
                    r.target_state
                        .as_ref()
                        .map(|t| t.as_str())
                        .unwrap_or("nothing"),
                    r.action.as_str(),
                    it.target
                )))
            }
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
