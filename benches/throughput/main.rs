//! Throughput benchmark (issue 7): how close mfa-bulk gets to Graph's limits, and how far ahead
//! of the one-user-at-a-time loop admins write in PowerShell, measured side by side in one run
//! against the built-in Graph simulator.
//!
//! `cargo bench --bench throughput` prints a table (Markdown) and writes every raw number to
//! `target/bench-results.json`. Not a test: it only runs under `cargo bench` (it exits at once
//! when started without `--bench`, e.g. by `cargo test --benches`).
//!
//! Knobs (environment): `BENCH_SCALE` (time scale of apply and the baseline, default 10),
//! `BENCH_DRYRUN_SCALE` (time scale of dry-run, default 1), `BENCH_SIZES` (default
//! `1000,10000`), `BENCH_BASELINE_SAMPLE` (users the baseline runs on when an input is larger,
//! default 1000), `BENCH_MEM_ROWS` (default `100000,1000000`), `BENCH_PARTS` (default
//! `apply,faults,dryrun,baseline,control,memory`), `BENCH_CONCURRENCY` (passed as
//! `--concurrency`), `BENCH_TOOL_WRITE_RATE` / `BENCH_TOOL_RU_FRACTION` (pacing given to the
//! tool before scaling; default: the tool's own defaults), `BENCH_WORK_DIR` (where inputs,
//! result files and the journal go; default `target/bench-work`), `BENCH_DUMP_LOG=1` (write
//! the simulator's request log of each apply / dry-run next to them), `BENCH_SCENARIOS`
//! (comma-separated; only runs whose name contains one of them, e.g.
//! `apply-1000-clean,limit-` for the no-throttle apply beside the `limits` part).

mod baseline;
mod child;
mod limits;
mod table;

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mfa_bulk::graph::pacer;
use mfa_bulk::sim::{
    self, generate_tenant, Counters, FaultConfig, SimConfig, SimHandle, TenantSeed, UserState,
};
use serde::Serialize;
use serde_json::Value;

use table::Results;

/// Graph's documented write limit: 3,000 writes per 150 s per app per tenant.
const GRAPH_WRITES_PER_SEC: f64 = 3000.0 / 150.0;
/// Graph's realistic latency per HTTP request, in (unscaled) milliseconds.
const GRAPH_LATENCY_MS: (u64, u64) = (50, 150);
/// The fixed sleep of the baseline loop after a 429 or a 5xx, in (unscaled) seconds.
const BASELINE_RETRY_SECS: f64 = 5.0;
/// Users per page when the tool lists the tenant (Graph's maximum `$top`).
const PAGE: usize = 999;
/// Seed of every generated tenant and of the simulator's dice.
const SEED: u64 = 7;

#[derive(Clone, Debug, Serialize)]
struct Settings {
    scale: f64,
    dryrun_scale: f64,
    sizes: Vec<usize>,
    baseline_sample: usize,
    mem_rows: Vec<usize>,
    parts: Vec<String>,
    /// `BENCH_SCENARIOS`: only runs whose name contains one of these (empty: all).
    scenarios: Vec<String>,
    /// Tool pacing, unscaled: `--write-rate` (writes/s) and `--rate` as a fraction of the
    /// simulator's RU budget per 10 s, each multiplied by the time scale on the command line.
    /// Defaults: the tool's own defaults (what it paces at without the flags).
    tool_write_rate: f64,
    tool_ru_fraction: f64,
    tool_concurrency: Option<usize>,
    faults: FaultConfig,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            scale: env_or("BENCH_SCALE", 10.0),
            // The simulator looks users up by a linear scan: above ~2,000 lookups/s on a
            // 10,000-user tenant it, not the tool, is the limit. Real time keeps it out.
            dryrun_scale: env_or("BENCH_DRYRUN_SCALE", 1.0),
            sizes: env_list("BENCH_SIZES", "1000,10000")
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            baseline_sample: env_or("BENCH_BASELINE_SAMPLE", 1000),
            mem_rows: env_list("BENCH_MEM_ROWS", "100000,1000000")
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            parts: env_list(
                "BENCH_PARTS",
                "apply,faults,dryrun,baseline,control,memory,limits",
            ),
            scenarios: env_list("BENCH_SCENARIOS", ""),
            tool_write_rate: env_or("BENCH_TOOL_WRITE_RATE", pacer::DEFAULT_WRITES_PER_SEC),
            tool_ru_fraction: env_or("BENCH_TOOL_RU_FRACTION", pacer::RU_HEADROOM),
            tool_concurrency: std::env::var("BENCH_CONCURRENCY")
                .ok()
                .and_then(|v| v.parse().ok()),
            faults: FaultConfig {
                error_rate: 0.05,
                drop_rate: 0.01,
                lost_write_rate: 0.01,
                ..FaultConfig::default()
            },
        }
    }

    fn part(&self, p: &str) -> bool {
        self.parts.iter().any(|x| x == p)
    }

    /// Whether the run named `name` is wanted (`BENCH_SCENARIOS`).
    fn wanted(&self, name: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|f| name.contains(f.as_str()))
    }
}

/// The name an apply run gets (what `BENCH_SCENARIOS` matches).
fn apply_name(n: usize, label: &str) -> String {
    format!(
        "apply-{n}-{}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    )
}

/// One generated tenant and the input file listing most of it.
struct Case {
    n: usize,
    tenant: TenantSeed,
    /// Indexes (tenant order) of the users in the input, in input order.
    listed: Vec<usize>,
    csv: PathBuf,
}

fn has_mfa_method(methods: &[String]) -> bool {
    methods
        .iter()
        .any(|m| !matches!(m.as_str(), "password" | "email" | "temporaryAccessPass"))
}

impl Case {
    /// A tenant of about `n` + 10 % users; the input lists `n` of them (shuffled).
    fn new(n: usize, dir: &Path) -> anyhow::Result<Case> {
        let tenant = generate_tenant(n + n / 10, SEED);
        let mut idx: Vec<usize> = (0..tenant.users.len()).collect();
        fastrand::Rng::with_seed(SEED).shuffle(&mut idx);
        idx.truncate(n.min(tenant.users.len()));
        let csv = dir.join(format!("users-{n}.csv"));
        write_csv(
            &csv,
            idx.iter().map(|&i| &tenant.users[i].user_principal_name),
        )?;
        Ok(Case {
            n: idx.len(),
            tenant,
            listed: idx,
            csv,
        })
    }

    fn upns(&self) -> Vec<String> {
        self.listed
            .iter()
            .map(|&i| self.tenant.users[i].user_principal_name.clone())
            .collect()
    }

    /// Listed users who need a write (disabled → enabled).
    fn changes_needed(&self, listed: &[usize]) -> usize {
        listed
            .iter()
            .filter(|&&i| self.tenant.users[i].per_user_mfa_state == "disabled")
            .count()
    }
}

fn write_csv<'a>(path: &Path, upns: impl Iterator<Item = &'a String>) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "UserPrincipalName")?;
    for u in upns {
        writeln!(w, "{u}")?;
    }
    w.flush()?;
    Ok(())
}

/// The final tenant state compared with what it must be.
#[derive(Clone, Debug, Default, Serialize)]
struct StateCheck {
    ok: bool,
    /// Users whose state is not what it must be.
    wrong_state: usize,
    /// Users written who must not be (not listed, or not needing a change).
    unexpected_writes: usize,
    /// Users needing a change with no write.
    missing_writes: usize,
    max_writes_per_user: u64,
    examples: Vec<String>,
}

/// `listed` users needing a change must now be enabled (enforced if they registered a method),
/// with exactly one write; everybody else untouched. With `writes_expected` false (dry-run)
/// nobody may change.
fn check_state(
    tenant: &TenantSeed,
    listed: &[usize],
    after: &[UserState],
    counters: &Counters,
    writes_expected: bool,
) -> StateCheck {
    let listed: HashSet<usize> = listed.iter().copied().collect();
    let mut c = StateCheck::default();
    for (i, u) in tenant.users.iter().enumerate() {
        let change = writes_expected && listed.contains(&i) && u.per_user_mfa_state == "disabled";
        let want = if change {
            if has_mfa_method(&u.methods) {
                "enforced"
            } else {
                "enabled"
            }
        } else {
            u.per_user_mfa_state.as_str()
        };
        let got = after
            .get(i)
            .filter(|s| s.id == u.id)
            .map(|s| s.per_user_mfa_state.as_str())
            .unwrap_or("<missing>");
        let writes = counters.writes_per_user.get(&u.id).copied().unwrap_or(0);
        c.max_writes_per_user = c.max_writes_per_user.max(writes);
        let mut bad = Vec::new();
        if got != want {
            c.wrong_state += 1;
            bad.push(format!("state {got}, want {want}"));
        }
        if change && writes == 0 {
            c.missing_writes += 1;
            bad.push("not written".into());
        }
        if !change && writes > 0 {
            c.unexpected_writes += 1;
            bad.push(format!("written {writes}x, must not be"));
        }
        if writes > 1 {
            bad.push(format!("written {writes}x"));
        }
        if !bad.is_empty() && c.examples.len() < 8 {
            c.examples.push(format!(
                "{} (before {}): {}",
                u.user_principal_name,
                u.per_user_mfa_state,
                bad.join(", ")
            ));
        }
    }
    c.ok = c.wrong_state == 0
        && c.unexpected_writes == 0
        && c.missing_writes == 0
        && c.max_writes_per_user <= 1;
    c
}

struct Bench {
    rt: tokio::runtime::Runtime,
    bin: PathBuf,
    work: PathBuf,
    s: Settings,
    runs: usize,
    /// Where the next runs' working directories go (None: `work`).
    run_root: Option<PathBuf>,
}

impl Bench {
    fn sim_config(&self, tenant: &TenantSeed, scale: f64, faults: bool) -> SimConfig {
        let mut cfg = SimConfig::with_tenant(tenant.clone());
        cfg.time_scale = scale;
        cfg.seed = SEED;
        let f = if faults {
            self.s.faults.clone()
        } else {
            FaultConfig::default()
        };
        cfg.faults = FaultConfig {
            latency_min_ms: (GRAPH_LATENCY_MS.0 as f64 / scale).round() as u64,
            latency_max_ms: (GRAPH_LATENCY_MS.1 as f64 / scale).round() as u64,
            ..f
        };
        cfg
    }

    fn start(&self, cfg: SimConfig) -> anyhow::Result<SimHandle> {
        self.rt.block_on(sim::start(cfg))
    }

    /// A fresh, empty working directory for one child run (the apply journal lives in the
    /// current directory, so no run can resume another).
    fn run_dir(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        let root = self.run_root.clone().unwrap_or_else(|| self.work.clone());
        self.runs += 1;
        let d = root.join(format!("run-{:02}-{name}", self.runs));
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Runs `mfa-bulk <cmd> <csv>` against the simulator at `h`.
    fn run_tool(
        &mut self,
        cmd: &str,
        csv: &Path,
        h: &SimHandle,
        scale: f64,
        name: &str,
    ) -> anyhow::Result<child::ChildRun> {
        let dir = self.run_dir(name)?;
        let url = h.url();
        let ru = f64::from(h.ru_budget()) * self.s.tool_ru_fraction * scale;
        let mut args: Vec<String> = vec![
            cmd.into(),
            csv.display().to_string(),
            "--graph-url".into(),
            url.clone(),
            "--login-url".into(),
            url,
            "--tenant".into(),
            sim::SIM_TENANT_ID.into(),
            "--client-id".into(),
            sim::SIM_CLIENT_ID.into(),
            "--rate".into(),
            format!("{}", ru.round() as u64),
            "--write-rate".into(),
            format!("{}", self.s.tool_write_rate * scale),
            "--json".into(),
            "--force".into(),
            "-o".into(),
            dir.join("result.csv").display().to_string(),
        ];
        if let Some(c) = self.s.tool_concurrency {
            args.push("--concurrency".into());
            args.push(c.to_string());
        }
        if cmd == "apply" {
            args.push("--yes".into());
        }
        child::run(
            &self.bin,
            &args,
            &dir,
            &[("AZURE_CLIENT_SECRET", sim::SIM_CLIENT_SECRET)],
            true,
        )
    }
}

/// The 1-minute load average (other work on the machine skews every figure).
fn load_avg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}

/// Median milliseconds of one small append + `sync_data` in `dir`: what each journal entry of
/// an apply costs on this disk right now.
fn fsync_probe_ms(dir: &Path) -> f64 {
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join("fsync-probe");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return -1.0;
    };
    let mut v: Vec<f64> = (0..40)
        .filter_map(|_| {
            let t = std::time::Instant::now();
            f.write_all(&[b'x'; 120]).ok()?;
            f.sync_data().ok()?;
            Some(t.elapsed().as_secs_f64() * 1000.0)
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(-1.0)
}

/// First and last real millisecond of log entries matching `f`.
fn span_ms(h: &SimHandle, f: impl Fn(&sim::LogEntry) -> bool) -> Option<(u64, u64, usize)> {
    let log = h.request_log();
    let mut it = log.iter().filter(|e| f(e));
    let first = it.next()?.t_ms;
    let (mut last, mut n) = (first, 1);
    for e in it {
        last = e.t_ms;
        n += 1;
    }
    Some((first, last, n))
}

/// With `BENCH_DUMP_LOG=1`, writes the simulator's request log of a run as JSON lines.
fn dump_log(b: &Bench, h: &SimHandle, name: &str) {
    if std::env::var_os("BENCH_DUMP_LOG").is_none() {
        return;
    }
    let path = b.work.join(format!("{name}.log.jsonl"));
    let mut out = String::new();
    for e in h.request_log() {
        if let Ok(line) = serde_json::to_string(&e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if let Err(e) = std::fs::write(&path, out) {
        eprintln!("[bench] could not write {}: {e}", path.display());
    }
}

#[derive(Clone, Debug, Serialize)]
struct ApplyFigures {
    name: String,
    label: String,
    users_listed: usize,
    users_in_tenant: usize,
    changes_needed: usize,
    time_scale: f64,
    faults: bool,
    exit_code: Option<i32>,
    wall_secs: f64,
    peak_rss_mib: f64,
    /// CPU seconds of mfa-bulk and of the simulator (this process) during the run.
    tool_cpu_secs: f64,
    sim_cpu_secs: f64,
    /// 1-minute load average before the run.
    load_before: f64,
    /// Median ms of one append + fsync in the run's directory, measured just before it.
    fsync_ms: f64,
    /// Writes accepted by Graph.
    writes: u64,
    /// Real seconds from the first to the last PATCH Graph saw.
    write_phase_secs: f64,
    writes_per_sec: f64,
    /// Graph's write limit, per real second at this time scale.
    write_limit_per_sec: f64,
    /// writes_per_sec / write_limit_per_sec (goal ≥ 0.90).
    write_fraction: f64,
    requests: u64,
    http_requests: u64,
    ru_spent: u64,
    throttled: u64,
    /// throttled / requests (goal ≤ 1 %).
    throttled_fraction: f64,
    requests_per_changed_user: f64,
    /// 1 read per listed user + 1 write and 1 read-back per changed user + the tenant listing,
    /// per changed user.
    floor_requests_per_changed_user: f64,
    ru_per_changed_user: f64,
    http_per_changed_user: f64,
    state: StateCheck,
    counters: Counters,
    tool_summary: Value,
    stderr_tail: String,
}

fn parse_json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|_| {
        // The summary may follow other lines: take the last JSON object.
        s.rfind("\n{")
            .and_then(|i| serde_json::from_str(s[i..].trim()).ok())
            .unwrap_or(Value::Null)
    })
}

/// How an apply run differs from the main one.
struct Variant {
    label: String,
    faults: bool,
    scale: f64,
}

fn apply_run(b: &mut Bench, case: &Case, v: &Variant) -> anyhow::Result<ApplyFigures> {
    let (scale, faults) = (v.scale, v.faults);
    let h = b.start(b.sim_config(&case.tenant, scale, faults))?;
    let name = apply_name(case.n, &v.label);
    let load_before = load_avg();
    let fsync_ms = fsync_probe_ms(b.run_root.as_ref().unwrap_or(&b.work));
    eprintln!(
        "[bench] {name}: {} users, time scale {scale}, load {load_before:.2}, fsync {fsync_ms:.2} ms",
        case.n
    );
    let run = b.run_tool("apply", &case.csv, &h, scale, &name)?;
    // Give a lost-write's server side a moment to settle before reading the state.
    std::thread::sleep(Duration::from_millis(100));
    let counters = h.counters();
    let after = h.users_state();
    let state = check_state(&case.tenant, &case.listed, &after, &counters, true);
    let (wfirst, wlast, _) = span_ms(&h, |e| e.method == "PATCH").unwrap_or((0, 0, 0));
    dump_log(b, &h, &name);
    h.shutdown();
    let changes = case.changes_needed(&case.listed);
    let write_phase_secs = (wlast.saturating_sub(wfirst)) as f64 / 1000.0;
    let writes_per_sec = if write_phase_secs > 0.0 {
        counters.writes as f64 / write_phase_secs
    } else {
        0.0
    };
    let limit = GRAPH_WRITES_PER_SEC * scale;
    let per = |v: u64| v as f64 / changes.max(1) as f64;
    let pages = case.tenant.users.len().div_ceil(PAGE);
    let f = ApplyFigures {
        name,
        label: v.label.clone(),
        users_listed: case.n,
        users_in_tenant: case.tenant.users.len(),
        changes_needed: changes,
        time_scale: scale,
        faults,
        exit_code: run.exit_code,
        wall_secs: run.wall_secs,
        peak_rss_mib: run.peak_rss_mib(),
        tool_cpu_secs: run.cpu_secs,
        sim_cpu_secs: run.sim_cpu_secs,
        load_before,
        fsync_ms,
        writes: counters.writes,
        write_phase_secs,
        writes_per_sec,
        write_limit_per_sec: limit,
        write_fraction: writes_per_sec / limit,
        requests: counters.requests,
        http_requests: counters.http_requests,
        ru_spent: counters.ru_spent,
        throttled: counters.throttled,
        throttled_fraction: counters.throttled as f64 / counters.requests.max(1) as f64,
        requests_per_changed_user: per(counters.requests),
        floor_requests_per_changed_user: (case.n + 2 * changes + pages) as f64
            / changes.max(1) as f64,
        ru_per_changed_user: per(counters.ru_spent),
        http_per_changed_user: per(counters.http_requests),
        state,
        counters,
        tool_summary: parse_json(&run.stdout),
        stderr_tail: run.stderr_tail,
    };
    eprintln!(
        "[bench] {}: exit {:?}, {:.1} s (CPU: tool {:.1} s, sim {:.1} s), {:.1} writes/s of {:.0} ({:.0} %), 429s {:.2} %, state {}",
        f.name,
        f.exit_code,
        f.wall_secs,
        f.tool_cpu_secs,
        f.sim_cpu_secs,
        f.writes_per_sec,
        f.write_limit_per_sec,
        f.write_fraction * 100.0,
        f.throttled_fraction * 100.0,
        if f.state.ok { "exact" } else { "WRONG" }
    );
    if !f.state.ok || f.exit_code != Some(0) {
        eprintln!("[bench]   state: {:?}", f.state);
        eprintln!("[bench]   stderr: {}", f.stderr_tail);
    }
    Ok(f)
}

#[derive(Clone, Debug, Serialize)]
struct DryRunFigures {
    name: String,
    users_listed: usize,
    users_in_tenant: usize,
    time_scale: f64,
    exit_code: Option<i32>,
    wall_secs: f64,
    /// Real seconds from the first to the last Graph request (token excluded).
    graph_phase_secs: f64,
    peak_rss_mib: f64,
    tool_cpu_secs: f64,
    sim_cpu_secs: f64,
    load_before: f64,
    users_per_sec: f64,
    /// RU the job needs per user at least: one state read each, plus the tenant listing.
    needed_ru_per_user: f64,
    ru_spent_per_user: f64,
    /// RU budget per real second at this time scale / needed RU per user.
    allowed_users_per_sec: f64,
    /// users_per_sec / allowed_users_per_sec (goal ≥ 0.90), by wall time.
    fraction: f64,
    /// Real seconds from the first to the last state read (sign-in and listing excluded).
    read_phase_secs: f64,
    /// State reads per second in that phase / RU budget per second (the pacing alone).
    read_phase_fraction: f64,
    requests: u64,
    http_requests: u64,
    throttled: u64,
    throttled_fraction: f64,
    http_per_user: f64,
    state: StateCheck,
    counters: Counters,
    tool_summary: Value,
    stderr_tail: String,
}

fn dry_run(b: &mut Bench, case: &Case) -> anyhow::Result<DryRunFigures> {
    let scale = b.s.dryrun_scale;
    let h = b.start(b.sim_config(&case.tenant, scale, false))?;
    let name = format!("dry-run-{}", case.n);
    let load_before = load_avg();
    eprintln!(
        "[bench] {name}: {} users, time scale {scale}, load {load_before:.2}",
        case.n
    );
    let run = b.run_tool("dry-run", &case.csv, &h, scale, &name)?;
    let counters = h.counters();
    let after = h.users_state();
    let state = check_state(&case.tenant, &case.listed, &after, &counters, false);
    let (first, last, _) = span_ms(&h, |_| true).unwrap_or((0, 0, 0));
    let (rfirst, rlast, reads) = span_ms(&h, |e| {
        e.method == "GET" && e.url.contains("/authentication/requirements")
    })
    .unwrap_or((0, 0, 0));
    let read_phase_secs = (rlast.saturating_sub(rfirst)) as f64 / 1000.0;
    let budget = f64::from(h.ru_budget());
    dump_log(b, &h, &name);
    h.shutdown();
    let pages = case.tenant.users.len().div_ceil(PAGE);
    let needed = (case.n + pages) as f64 / case.n as f64;
    let allowed = budget / 10.0 * scale / needed;
    let ups = case.n as f64 / run.wall_secs;
    let f = DryRunFigures {
        name,
        users_listed: case.n,
        users_in_tenant: case.tenant.users.len(),
        time_scale: scale,
        exit_code: run.exit_code,
        wall_secs: run.wall_secs,
        graph_phase_secs: (last.saturating_sub(first)) as f64 / 1000.0,
        peak_rss_mib: run.peak_rss_mib(),
        tool_cpu_secs: run.cpu_secs,
        sim_cpu_secs: run.sim_cpu_secs,
        load_before,
        users_per_sec: ups,
        needed_ru_per_user: needed,
        ru_spent_per_user: counters.ru_spent as f64 / case.n as f64,
        allowed_users_per_sec: allowed,
        fraction: ups / allowed,
        read_phase_secs,
        read_phase_fraction: if read_phase_secs > 0.0 {
            reads as f64 / read_phase_secs / (budget / 10.0 * scale)
        } else {
            0.0
        },
        requests: counters.requests,
        http_requests: counters.http_requests,
        throttled: counters.throttled,
        throttled_fraction: counters.throttled as f64 / counters.requests.max(1) as f64,
        http_per_user: counters.http_requests as f64 / case.n as f64,
        state,
        counters,
        tool_summary: parse_json(&run.stdout),
        stderr_tail: run.stderr_tail,
    };
    eprintln!(
        "[bench] {}: exit {:?}, {:.2} s (CPU: tool {:.1} s, sim {:.1} s), {:.0} users/s of {:.0} allowed ({:.0} %), state {}",
        f.name,
        f.exit_code,
        f.wall_secs,
        f.tool_cpu_secs,
        f.sim_cpu_secs,
        f.users_per_sec,
        f.allowed_users_per_sec,
        f.fraction * 100.0,
        if f.state.ok { "untouched" } else { "WRONG" }
    );
    if !f.state.ok || f.exit_code != Some(0) {
        eprintln!("[bench]   state: {:?}", f.state);
        eprintln!("[bench]   stderr: {}", f.stderr_tail);
    }
    Ok(f)
}

#[derive(Clone, Debug, Serialize)]
struct BaselineFigures {
    name: String,
    users_listed: usize,
    /// Users the loop actually ran on (the first ones of the input).
    sample: usize,
    time_scale: f64,
    measured_secs: f64,
    /// measured_secs × users_listed / sample.
    extrapolated_secs: f64,
    requests: u64,
    http_requests: u64,
    throttled: u64,
    writes: u64,
    state: StateCheck,
    result: baseline::BaselineResult,
}

fn baseline_run(b: &mut Bench, case: &Case) -> anyhow::Result<BaselineFigures> {
    let scale = b.s.scale;
    let h = b.start(b.sim_config(&case.tenant, scale, false))?;
    let sample = case.n.min(b.s.baseline_sample);
    let name = format!("baseline-{}", case.n);
    eprintln!(
        "[bench] {name}: first {sample} of {} users, time scale {scale}",
        case.n
    );
    let upns = case.upns();
    let mut bl = baseline::Baseline::new(
        &h.url(),
        sim::SIM_TENANT_ID,
        sim::SIM_CLIENT_ID,
        sim::SIM_CLIENT_SECRET,
        Duration::from_secs_f64(BASELINE_RETRY_SECS / scale),
    );
    let res = b.rt.block_on(bl.run(&upns[..sample]))?;
    let counters = h.counters();
    let after = h.users_state();
    let state = check_state(
        &case.tenant,
        &case.listed[..sample],
        &after,
        &counters,
        true,
    );
    h.shutdown();
    let f = BaselineFigures {
        name,
        users_listed: case.n,
        sample,
        time_scale: scale,
        measured_secs: res.wall_secs,
        extrapolated_secs: res.wall_secs * case.n as f64 / sample as f64,
        requests: counters.requests,
        http_requests: counters.http_requests,
        throttled: counters.throttled,
        writes: counters.writes,
        state,
        result: res,
    };
    eprintln!(
        "[bench] {}: {:.1} s for {} users (→ {:.1} s for {}), state {}",
        f.name,
        f.measured_secs,
        f.sample,
        f.extrapolated_secs,
        f.users_listed,
        if f.state.ok { "exact" } else { "WRONG" }
    );
    Ok(f)
}

#[derive(Clone, Debug, Serialize)]
struct MemFigures {
    name: String,
    rows: usize,
    exit_code: Option<i32>,
    wall_secs: f64,
    peak_rss_mib: f64,
    input_mib: f64,
    note: String,
    stderr_tail: String,
}

/// `validate` on a generated CSV of `rows` rows: every row a well-formed, distinct UPN.
fn mem_validate(b: &mut Bench, rows: usize) -> anyhow::Result<MemFigures> {
    let csv = b.work.join(format!("validate-{rows}.csv"));
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv)?);
        writeln!(w, "UserPrincipalName")?;
        for i in 0..rows {
            writeln!(w, "user{i:07}@northwind.example")?;
        }
        w.flush()?;
    }
    let input_mib = std::fs::metadata(&csv)?.len() as f64 / 1048576.0;
    let name = format!("validate-{rows}");
    eprintln!("[bench] {name}");
    let dir = b.run_dir(&name)?;
    let run = child::run(
        &b.bin,
        &["validate".into(), csv.display().to_string()],
        &dir,
        &[],
        false,
    )?;
    let _ = std::fs::remove_file(&csv);
    eprintln!(
        "[bench] {name}: exit {:?}, {:.1} s, peak RSS {:.1} MiB",
        run.exit_code,
        run.wall_secs,
        run.peak_rss_mib()
    );
    Ok(MemFigures {
        name,
        rows,
        exit_code: run.exit_code,
        wall_secs: run.wall_secs,
        peak_rss_mib: run.peak_rss_mib(),
        input_mib,
        note: "validate, stdout discarded".into(),
        stderr_tail: run.stderr_tail,
    })
}

/// `dry-run` on a large input: every user of a 10,000-user tenant plus `rows - 10,000` rows
/// naming nobody (resolved against the tenant listing, so they cost no Graph request).
fn mem_dry_run(b: &mut Bench, rows: usize) -> anyhow::Result<MemFigures> {
    let tenant = generate_tenant(10_000, SEED);
    let csv = b.work.join(format!("dryrun-big-{rows}.csv"));
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv)?);
        writeln!(w, "UserPrincipalName")?;
        for u in &tenant.users {
            writeln!(w, "{}", u.user_principal_name)?;
        }
        for i in tenant.users.len()..rows {
            writeln!(w, "nobody{i:07}@northwind.example")?;
        }
        w.flush()?;
    }
    let input_mib = std::fs::metadata(&csv)?.len() as f64 / 1048576.0;
    // Memory, not speed: the apply time scale keeps this short.
    let scale = b.s.scale;
    let h = b.start(b.sim_config(&tenant, scale, false))?;
    let name = format!("dry-run-big-{rows}");
    eprintln!("[bench] {name}");
    let run = b.run_tool("dry-run", &csv, &h, scale, &name)?;
    h.shutdown();
    let _ = std::fs::remove_file(&csv);
    if let Some(dir) = run.args.iter().find_map(|a| a.strip_suffix("/result.csv")) {
        let _ = std::fs::remove_dir_all(dir);
    }
    eprintln!(
        "[bench] {name}: exit {:?}, {:.1} s, peak RSS {:.1} MiB",
        run.exit_code,
        run.wall_secs,
        run.peak_rss_mib()
    );
    Ok(MemFigures {
        name,
        rows,
        exit_code: run.exit_code,
        wall_secs: run.wall_secs,
        peak_rss_mib: run.peak_rss_mib(),
        input_mib,
        note: format!(
            "dry-run, {} users of the tenant + {} rows naming nobody",
            tenant.users.len(),
            rows.saturating_sub(tenant.users.len())
        ),
        stderr_tail: run.stderr_tail,
    })
}

#[derive(Clone, Debug, Serialize)]
struct Machine {
    nproc: usize,
    mem_total: String,
    cpu_model: String,
    commit: String,
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mem_total: field(&read("/proc/meminfo"), "MemTotal"),
        cpu_model: field(&read("/proc/cpuinfo"), "model name"),
        commit,
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: a benchmark, run it with `cargo bench --bench throughput`");
        return Ok(());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // Where inputs, result files and the apply journal go (BENCH_WORK_DIR to put them on
    // another disk, e.g. tmpfs to see what the journal's fsyncs cost).
    let work = std::env::var_os("BENCH_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("bench-work"));
    std::fs::create_dir_all(&work)?;
    // Leftovers of an earlier run (result files of a 1M-row dry-run are large).
    for e in std::fs::read_dir(&work)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("run-") {
            let _ = std::fs::remove_dir_all(e.path());
        } else if name.ends_with(".log.jsonl") || name.ends_with(".csv") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let results_path = target.join("bench-results.json");
    let s = Settings::from_env();
    let mut b = Bench {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_mfa-bulk")),
        work: work.clone(),
        s: s.clone(),
        runs: 0,
        run_root: None,
    };
    let mut r = Results {
        settings: Some(s.clone()),
        machine: Some(machine()),
        ..Results::default()
    };
    let mut cases: BTreeMap<usize, Case> = BTreeMap::new();
    for &n in &s.sizes {
        cases.insert(n, Case::new(n, &work)?);
    }
    macro_rules! attempt {
        ($what:expr, $e:expr) => {
            match $e {
                Ok(v) => Some(v),
                Err(e) => {
                    let msg = format!("{}: {e:#}", $what);
                    eprintln!("[bench] {msg}");
                    r.errors.push(msg);
                    None
                }
            }
        };
    }
    let main_variant = Variant {
        label: "clean".into(),
        faults: false,
        scale: s.scale,
    };
    let faults_variant = Variant {
        label: "5 % faults".into(),
        faults: true,
        scale: s.scale,
    };
    for case in cases.values() {
        if s.part("apply") && s.wanted(&apply_name(case.n, &main_variant.label)) {
            if let Some(f) = attempt!(
                format!("apply {}", case.n),
                apply_run(&mut b, case, &main_variant)
            ) {
                r.apply.push(f);
            }
            table::save(&r, &results_path);
        }
        if s.part("baseline") && s.wanted(&format!("baseline-{}", case.n)) {
            if let Some(f) = attempt!(format!("baseline {}", case.n), baseline_run(&mut b, case)) {
                r.baseline.push(f);
            }
            table::save(&r, &results_path);
        }
        if s.part("faults") && s.wanted(&apply_name(case.n, &faults_variant.label)) {
            if let Some(f) = attempt!(
                format!("apply with faults {}", case.n),
                apply_run(&mut b, case, &faults_variant)
            ) {
                r.apply.push(f);
            }
            table::save(&r, &results_path);
        }
        if s.part("dryrun") && s.wanted(&format!("dry-run-{}", case.n)) {
            if let Some(f) = attempt!(format!("dry-run {}", case.n), dry_run(&mut b, case)) {
                r.dry_run.push(f);
            }
            table::save(&r, &results_path);
        }
    }
    // A real write limit below the documented one (the budget is shared), and one that
    // drops mid-run.
    if s.part("limits") {
        for sc in limits::scenarios() {
            if !s.wanted(sc.name) {
                continue;
            }
            if let Some(f) = attempt!(sc.name, limits::run(&mut b, &sc)) {
                r.limits.push(f);
            }
            table::save(&r, &results_path);
        }
    }
    // Controls for the smallest size: the same apply in real time (scale 1), where local
    // costs (the journal's fsyncs) weigh what they weigh against a real tenant; and at the
    // main scale with the working directory (journal, result file) on tmpfs.
    if let (true, Some(case)) = (s.part("control"), cases.values().next()) {
        let real_time = Variant {
            label: "clean, real time (scale 1)".into(),
            faults: false,
            scale: 1.0,
        };
        if let Some(f) = attempt!(
            format!("apply {} at scale 1", case.n),
            apply_run(&mut b, case, &real_time)
        ) {
            r.apply.push(f);
        }
        table::save(&r, &results_path);
        let real_time_faults = Variant {
            label: "5 % faults, real time (scale 1)".into(),
            faults: true,
            scale: 1.0,
        };
        if let Some(f) = attempt!(
            format!("apply {} with faults at scale 1", case.n),
            apply_run(&mut b, case, &real_time_faults)
        ) {
            r.apply.push(f);
        }
        table::save(&r, &results_path);
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            b.run_root = Some(shm.join(format!("mfa-bulk-bench-{}", std::process::id())));
            let tmpfs = Variant {
                label: "clean, journal on tmpfs".into(),
                faults: false,
                scale: s.scale,
            };
            if let Some(f) = attempt!(
                format!("apply {} on tmpfs", case.n),
                apply_run(&mut b, case, &tmpfs)
            ) {
                r.apply.push(f);
            }
            if let Some(d) = b.run_root.take() {
                let _ = std::fs::remove_dir_all(d);
            }
            table::save(&r, &results_path);
        }
    }
    if s.part("memory") {
        for &rows in &s.mem_rows {
            if let Some(f) = attempt!(format!("validate {rows}"), mem_validate(&mut b, rows)) {
                r.memory.push(f);
            }
            table::save(&r, &results_path);
        }
        for &rows in &s.mem_rows {
            if let Some(f) = attempt!(format!("dry-run {rows}"), mem_dry_run(&mut b, rows)) {
                r.memory.push(f);
            }
            table::save(&r, &results_path);
        }
    }
    let m = r.machine.as_ref().expect("machine");
    println!(
        "\nmfa-bulk throughput benchmark ({} cores, {}, {}, commit {})\n",
        m.nproc, m.cpu_model, m.mem_total, m.commit
    );
    println!("{}", table::render(&r));
    println!("Raw numbers: {}", results_path.display());
    Ok(())
}
