//! `mfa-bulk report`: every user of the tenant (or of a group, or a filter) with their
//! per-user MFA state and MFA registration, one row each, streamed to a CSV or XLSX file in
//! flat memory; the summary counts state × registration and names the users to fix.
//!
//! Reads at list speed:
//! - users and their state: `GET /users?$select=…,perUserMfaState&$top=999` (or a group's
//!   transitive members, or a `$filter`), one request per 999 users; users whose answer lacks
//!   the state are read with the documented per-user GET, at the paced rate, and the summary
//!   says so;
//! - registration: the registration report, paged and paced for the reporting API (about 5
//!   requests per 10 s), read first (by user id, compactly); without Entra ID P1/P2 (403
//!   `Authentication_RequestFromNonPremiumTenantOrB2CTenant`) or `AuditLog.Read.All`, each
//!   user's `/authentication/methods`, paced, page by page (and the summary says so).
//!
//! Changes nothing. The file is valid input for `dry-run` and `apply` (its user column is
//! found by its header; its state column is not taken as a target).

mod summary;
mod writer;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::engine::{interrupt, progress, reads, UsageError};
use crate::exit::ExitCode;
use crate::graph::{
    self, Access, Graph, GraphError, Identity, ListedUser, Registration, Registrations,
    ReportUnavailable, UserSet,
};
use crate::model::MfaState;
use crate::report::{self, ReportError};

pub(crate) use summary::{HowRead, ReportSummary};
pub(crate) use writer::{ReportRow, ReportWriter};

/// Which users the report lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportUsers {
    Tenant,
    Group(String),
    Filter(String),
}

impl ReportUsers {
    fn label(&self) -> String {
        match self {
            ReportUsers::Tenant => "tenant".into(),
            ReportUsers::Group(g) => format!("group \"{g}\""),
            ReportUsers::Filter(f) => format!("filter \"{f}\""),
        }
    }
}

/// Which rows `--only` keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Only {
    RegisteredButDisabled,
    State(MfaState),
    NotRegistered,
}

impl Only {
    fn keeps(&self, r: &ReportRow) -> bool {
        match self {
            Only::RegisteredButDisabled => {
                r.state == Some(MfaState::Disabled) && r.mfa_registered == Some(true)
            }
            Only::State(s) => r.state.as_ref() == Some(s),
            Only::NotRegistered => r.mfa_registered == Some(false),
        }
    }
}

/// `member`, `guest`, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserType {
    Member,
    Guest,
    All,
}

impl UserType {
    fn graph_value(self) -> Option<&'static str> {
        match self {
            UserType::Member => Some("Member"),
            UserType::Guest => Some("Guest"),
            UserType::All => None,
        }
    }

    fn keeps(self, user_type: Option<&str>) -> bool {
        match self.graph_value() {
            None => true,
            Some(t) => user_type.is_some_and(|u| u.eq_ignore_ascii_case(t)),
        }
    }
}

/// Everything `report` needs, checked by the command line.
#[derive(Clone, Debug)]
pub struct ReportSettings {
    pub users: ReportUsers,
    /// The report file (`None`: a default name in the current directory).
    pub output: Option<PathBuf>,
    pub force: bool,
    pub only: Option<Only>,
    pub user_type: UserType,
    /// The documented per-user GETs only, never lists (slow; to check the list answers).
    pub per_user_reads: bool,
    /// Registration report requests per 10 s.
    pub report_rate: f64,
    pub json: bool,
    /// The options as the run record lists them.
    pub recorded_options: serde_json::Value,
    /// Files the run reads that the report must never replace (the simulator's seed file).
    pub also_read: Vec<(String, PathBuf)>,
}

/// Runs `report` on a fresh runtime. `connect` signs in once the offline checks passed.
pub(crate) fn run(s: ReportSettings, connect: graph::Connect) -> anyhow::Result<ExitCode> {
    if !(s.report_rate > 0.0 && s.report_rate.is_finite()) {
        anyhow::bail!(UsageError(format!(
            "--report-rate {} is not a positive number of requests per 10 seconds",
            s.report_rate
        )));
    }
    let started = Utc::now();
    // An existing report or run record stops the run here, before anything is sent; a file
    // the run reads is never replaced, even with --force.
    if let Some(o) = &s.output {
        report::check_result_path(o, s.force)?;
        let record = report::run_record_path(o);
        let mut outputs: Vec<(&str, &Path)> = vec![("report file", o)];
        if let Some(r) = &record {
            outputs.push(("run record", r));
        }
        let inputs: Vec<(&str, &Path)> = s
            .also_read
            .iter()
            .map(|(what, p)| (what.as_str(), p.as_path()))
            .collect();
        report::refuse_clobbering_inputs(&outputs, &inputs)?;
    }
    let output = s.output.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("could not start the async runtime: {e}"))?
        .block_on(run_async(s, output, started, connect))
}

/// A free default name: `mfa-report-<date>-<time>-<ms>.csv`, numbered if taken.
fn create_default(started: DateTime<Utc>) -> Result<(PathBuf, ReportWriter), ReportError> {
    let stem = format!("mfa-report-{}", started.format("%Y%m%d-%H%M%S-%3f"));
    for n in 1..=1000u32 {
        let name = if n == 1 {
            format!("{stem}.csv")
        } else {
            format!("{stem}-{n}.csv")
        };
        let path = PathBuf::from(name);
        match ReportWriter::create(&path, false) {
            Err(ReportError::Exists { .. }) => continue,
            other => return other.map(|w| (path, w)),
        }
    }
    Err(ReportError::NoFreeName {
        path: PathBuf::from(format!("{stem}.csv")),
        tries: 1000,
    })
}

/// Where registration comes from.
enum RegSource {
    /// The report, read whole (or only the registered users, for
    /// `--only registered-but-disabled`).
    Report {
        map: Registrations,
        only_registered: bool,
    },
    /// Each user's methods, page by page.
    PerUser,
}

async fn run_async(
    s: ReportSettings,
    output: Option<PathBuf>,
    started: DateTime<Utc>,
    connect: graph::Connect,
) -> anyhow::Result<ExitCode> {
    let graph = connect.await?;
    graph.check_access(Access::Read)?;
    graph.set_report_rate(s.report_rate);
    let identity = graph.identity();
    let interrupted = interrupt::watch(graph.clone());
    let mut sum = ReportSummary {
        users_of: s.users.label(),
        ..ReportSummary::default()
    };

    // The tenant's size sets the pace (a failed count keeps the smallest budget).
    let _ = graph.count_users().await;
    let set = users_to_list(&graph, &s, &mut sum).await?;
    // The file is taken before the long reads, so its name cannot be lost to another file.
    let (path, mut writer) = match &output {
        Some(o) => (o.clone(), ReportWriter::create(o, s.force)?),
        None => create_default(started)?,
    };
    let reg = registration_source(&graph, &s, &mut sum.read).await;
    let result = stream_users(&graph, &s, &set, &reg, &mut writer, &mut sum, &interrupted).await;
    sum.interrupted = interrupted.is_set();
    if let Err(e) = result {
        // Keep what was written (a CSV holds every page so far) and say where it is.
        let kept = writer.finish().is_ok();
        let mut e = e.context("the report stopped");
        if kept && !report::is_stdout(&path) {
            e = e.context(format!(
                "{} holds the {} users read before the error; run the report again for all",
                path.display(),
                sum.rows
            ));
        }
        return Err(e);
    }
    writer.finish()?;

    let code = if sum.interrupted {
        ExitCode::Interrupted
    } else if sum.unreadable > 0 {
        ExitCode::RowsNeedAttention
    } else {
        ExitCode::Success
    };
    let record_path = write_record(&s, &identity, &graph, &sum, started, &path, code)?;
    print_summary(
        &s,
        &identity,
        &graph,
        &sum,
        &path,
        record_path.as_deref(),
        code,
    )?;
    Ok(code)
}

/// Which users to list: the tenant (with `--user-type` as a filter Graph applies), a
/// `--filter` (likewise), or the one group `--group` names.
async fn users_to_list(
    graph: &Graph,
    s: &ReportSettings,
    sum: &mut ReportSummary,
) -> anyhow::Result<UserSet> {
    let type_filter = s
        .user_type
        .graph_value()
        .map(|t| format!("userType eq '{t}'"));
    Ok(match &s.users {
        ReportUsers::Tenant => UserSet::Tenant {
            filter: type_filter,
        },
        ReportUsers::Filter(f) => UserSet::Tenant {
            filter: Some(match type_filter {
                Some(t) => format!("({f}) and {t}"),
                None => f.clone(),
            }),
        },
        ReportUsers::Group(name) => {
            let g = crate::engine::find_group(graph, name).await?;
            let others = graph
                .other_members(&g.id)
                .await
                .map_err(GraphError::Call)
                .with_context(|| format!("could not read the members of group \"{name}\""))?;
            let others: Vec<_> = others.into_iter().filter(|m| m.kind != "group").collect();
            sum.read.notes.push(format!(
                "Group {} ({}): its users, nested groups followed.",
                g.display_name, g.id
            ));
            sum.read.notes.extend(reads::other_members_note(&others));
            UserSet::GroupMembers { group_id: g.id }
        }
    })
}

/// The registration report if the tenant and the app allow it; else each user's methods.
async fn registration_source(graph: &Graph, s: &ReportSettings, read: &mut HowRead) -> RegSource {
    if s.per_user_reads {
        read.notes.push(
            "Registration read from each user's authentication methods (--per-user-reads).".into(),
        );
        return RegSource::PerUser;
    }
    let only_registered = s.only == Some(Only::RegisteredButDisabled);
    let pb = progress::pages("report");
    let mut pages = 0;
    let got = graph
        .registration_report(only_registered, &mut |p, rows| {
            pages = p;
            pb.listed(rows);
        })
        .await;
    pb.finish();
    read.report_pages = pages;
    match got {
        Ok(map) => {
            read.notes.push(format!(
                "Registration from the registration report ({} {}{}).",
                pages,
                if pages == 1 { "page" } else { "pages" },
                if only_registered {
                    ", registered users only"
                } else {
                    ""
                }
            ));
            RegSource::Report {
                map,
                only_registered,
            }
        }
        Err(why) => {
            let reason = match &why {
                ReportUnavailable::NonPremium(_) => {
                    "the tenant has no Entra ID P1/P2 licence (403 \
                     Authentication_RequestFromNonPremiumTenantOrB2CTenant)"
                        .to_string()
                }
                ReportUnavailable::Denied(e) => format!(
                    "the app may not read it ({e}; it needs AuditLog.Read.All, and a signed-in \
                     admin a reports role)"
                ),
                ReportUnavailable::Failed(e) => format!("reading it failed ({e})"),
            };
            read.notes.push(format!(
                "The registration report could not be used: {reason}. Registration was read \
                 from each user's authentication methods instead, one paced request per user \
                 (needs UserAuthenticationMethod.Read.All); is_admin, default_method and \
                 registration_updated stay blank."
            ));
            RegSource::PerUser
        }
    }
}

/// Lists the users page by page, completes each page (states the list lacked, methods when
/// there is no report), and writes the rows `--only` keeps.
#[allow(clippy::too_many_arguments)]
async fn stream_users(
    graph: &Graph,
    s: &ReportSettings,
    set: &UserSet,
    reg: &RegSource,
    writer: &mut ReportWriter,
    sum: &mut ReportSummary,
    interrupted: &interrupt::Interrupted,
) -> anyhow::Result<()> {
    let mut pages = graph.user_pages(set);
    let pb = progress::pages("users");
    let mut not_in_report = 0u64;
    loop {
        if interrupted.is_set() {
            break;
        }
        let page = match pages.next_page().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                return Err(match &s.users {
                    ReportUsers::Filter(f) => crate::engine::filter_error(e, f),
                    _ => anyhow::Error::new(GraphError::Call(e)).context(format!(
                        "could not list the users of the {}",
                        s.users.label()
                    )),
                })
            }
        };
        let mut rows: Vec<ReportRow> = page
            .into_iter()
            .filter(|l| s.user_type.keeps(l.user.user_type.as_deref()))
            .map(|l| row_of(l, s.per_user_reads))
            .collect();
        sum.read.state_from_list += rows.iter().filter(|r| r.state.is_some()).count() as u64;
        read_missing_states(graph, &mut rows, &mut sum.read).await;
        match reg {
            RegSource::Report {
                map,
                only_registered,
            } => {
                for r in &mut rows {
                    match map.get(&r.user_id) {
                        Some(g) => apply_registration(r, &g),
                        // The filtered report lists every registered user: the others are not.
                        None if *only_registered => r.mfa_registered = Some(false),
                        None => not_in_report += 1,
                    }
                }
            }
            RegSource::PerUser if !sum.read.methods_denied => {
                read_methods(graph, s.only.as_ref(), &mut rows, &mut sum.read).await;
            }
            RegSource::PerUser => {}
        }
        if interrupted.is_set() {
            // This page's reads were cut short: the file keeps only complete rows.
            break;
        }
        for r in &rows {
            sum.count(r);
            if r.state.is_none()
                || (r.mfa_registered.is_none() && needs_registration(s.only.as_ref(), r))
            {
                sum.unreadable += 1;
            }
            if s.only.as_ref().is_none_or(|o| o.keeps(r)) {
                writer.write(r)?;
                sum.rows += 1;
            }
        }
        writer.flush()?;
        pb.listed(pages.users);
    }
    pb.finish();
    sum.read.user_pages = pages.pages;
    if not_in_report > 0 {
        sum.read.notes.push(format!(
            "{not_in_report} {} not in the registration report yet (new accounts appear after \
             the report's next refresh): registration left blank.",
            if not_in_report == 1 {
                "user is"
            } else {
                "users are"
            }
        ));
    }
    if sum.read.state_per_user > 0 && !s.per_user_reads {
        sum.read
            .notes
            .push(reads::list_lacked_note(sum.read.state_per_user));
    } else if sum.read.state_from_list > 0 {
        sum.read
            .notes
            .push(reads::from_list_note(None, sum.read.user_pages));
    } else if s.per_user_reads {
        sum.read
            .notes
            .push(reads::per_user_note(sum.read.state_per_user));
    }
    Ok(())
}

/// A report row from a listed user (the state dropped with `--per-user-reads`).
fn row_of(l: ListedUser, per_user_reads: bool) -> ReportRow {
    let ListedUser { user, state } = l;
    ReportRow {
        user_principal_name: user.user_principal_name,
        user_id: user.id,
        display_name: user.display_name,
        user_type: user.user_type,
        account_enabled: user.account_enabled,
        state: if per_user_reads { None } else { state },
        ..ReportRow::default()
    }
}

fn apply_registration(r: &mut ReportRow, g: &Registration) {
    r.mfa_registered = Some(g.mfa_registered);
    r.methods = g.methods.to_string();
    r.default_method = g.default_method.as_deref().map(str::to_string);
    r.is_admin = g.is_admin;
    r.registration_updated = g.updated.as_deref().map(str::to_string);
}

/// Whether `--only` needs this user's registration: with `registered-but-disabled` only
/// users whose state is disabled (or unknown) do.
fn needs_registration(only: Option<&Only>, r: &ReportRow) -> bool {
    match only {
        Some(Only::RegisteredButDisabled) => {
            matches!(r.state, None | Some(MfaState::Disabled))
        }
        _ => true,
    }
}

/// Reads, with the per-user GET, the state of the rows whose list answer lacked it.
async fn read_missing_states(graph: &Graph, rows: &mut [ReportRow], read: &mut HowRead) {
    let idx: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].state.is_none())
        .collect();
    if idx.is_empty() {
        return;
    }
    let ids: Vec<String> = idx.iter().map(|&i| rows[i].user_id.clone()).collect();
    read.state_per_user += ids.len() as u64;
    let mut failed = Failures::default();
    graph
        .get_states(&ids, |k, res| match res {
            Ok(reply) => rows[idx[k]].state = Some(reply.value),
            Err(e) => failed.add(&e, || {
                format!(
                    "could not read the per-user MFA state of {}",
                    rows[idx[k]].user_principal_name
                )
            }),
        })
        .await;
    failed.tell();
    if failed.denied {
        eprintln!(
            "could not read per-user MFA states: 403, the app needs Policy.Read.All (or \
             Policy.ReadWrite.AuthenticationMethod)"
        );
    }
}

/// Reads that failed on one page: the first few said, the rest counted; none said when the
/// run is stopping (the rows are not written then).
#[derive(Default)]
struct Failures {
    said: usize,
    more: usize,
    /// A 403: the app lacks the permission (no use asking for the next users).
    denied: bool,
}

impl Failures {
    const SAY: usize = 5;

    fn add(&mut self, e: &crate::graph::CallError, what: impl FnOnce() -> String) {
        if e.kind == crate::graph::ErrorKind::Cancelled {
            return;
        }
        if e.kind == crate::graph::ErrorKind::Forbidden {
            self.denied = true;
            return;
        }
        if self.said < Self::SAY {
            eprintln!("{}: {e}", what());
            self.said += 1;
        } else {
            self.more += 1;
        }
    }

    fn tell(&self) {
        if self.more > 0 {
            eprintln!("... and {} more like it on this page", self.more);
        }
    }
}

/// Reads each row's methods (the way without the registration report).
async fn read_methods(
    graph: &Graph,
    only: Option<&Only>,
    rows: &mut [ReportRow],
    read: &mut HowRead,
) {
    let idx: Vec<usize> = (0..rows.len())
        .filter(|&i| needs_registration(only, &rows[i]))
        .collect();
    if idx.is_empty() {
        return;
    }
    let ids: Vec<String> = idx.iter().map(|&i| rows[i].user_id.clone()).collect();
    read.methods_per_user += ids.len() as u64;
    let mut failed = Failures::default();
    graph
        .methods_of(&ids, |k, res| match res {
            Ok(g) => apply_registration(&mut rows[idx[k]], &g),
            Err(e) => failed.add(&e, || {
                format!(
                    "could not read the authentication methods of {}",
                    rows[idx[k]].user_principal_name
                )
            }),
        })
        .await;
    failed.tell();
    read.methods_denied |= failed.denied;
}

fn write_record(
    s: &ReportSettings,
    identity: &Identity,
    graph: &Graph,
    sum: &ReportSummary,
    started: DateTime<Utc>,
    path: &Path,
    code: ExitCode,
) -> anyhow::Result<Option<PathBuf>> {
    let mut rec = report::RunRecord::new("report", started);
    rec.tenant_id = identity.tenant_id.clone();
    rec.app_id = identity.app_id.clone();
    rec.cloud = identity.cloud.clone();
    rec.graph_url = identity.graph_url.clone();
    rec.run_by = report::RunBy::from_env(identity.user.clone());
    rec.input_file = s.users.label();
    rec.options = s.recorded_options.clone();
    rec.finished_at = Utc::now();
    rec.graph = serde_json::json!({
        "stats": graph.stats(),
        "report": sum,
    });
    rec.result_file = path.display().to_string();
    rec.exit_code = code.code();
    rec.interrupted = sum.interrupted;
    Ok(report::create_run_record(path, &rec, s.force)?)
}

fn print_summary(
    s: &ReportSettings,
    identity: &Identity,
    graph: &Graph,
    sum: &ReportSummary,
    path: &Path,
    record: Option<&Path>,
    code: ExitCode,
) -> anyhow::Result<()> {
    let stdout_report = report::is_stdout(path);
    let mut out: Box<dyn std::io::Write> = if stdout_report {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    let json = s.json.then(|| {
        serde_json::json!({
            "summary": sum,
            "tenant_id": identity.tenant_id,
            "report_file": path,
            "run_record": record,
            "graph": graph.stats(),
            "exit_code": code.code(),
        })
    });
    let sim = if identity.cloud == "simulator" {
        " (the built-in simulator: no real tenant was touched)"
    } else {
        ""
    };
    let only = match s.only {
        Some(_) => format!(", {} kept by --only", sum.rows),
        None => String::new(),
    };
    let of = match &s.users {
        ReportUsers::Tenant => String::new(),
        other => format!("{}, ", other.label()),
    };
    let header = format!(
        "report of {of}tenant {}{sim}: {} users{only}",
        identity.tenant_id, sum.users
    );
    let file_line = match record {
        Some(r) => format!("Report: {}  (run record: {})", path.display(), r.display()),
        None => "Report: written to standard output (no run record)".to_string(),
    };
    sum.print(&mut out, &header, &file_line, json)?;
    Ok(())
}
