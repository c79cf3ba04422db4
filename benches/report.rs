//! `cargo bench --bench report`: reads at list speed against reads one user at a time, side
//! by side in one run, against one in-process simulator (Graph's documented limits, 100 ms
//! latency; everything time-scaled 10×, latency included, and the tool paced for that scale).
//!
//! 1. `report` of a 100,000-user tenant: the list path (users with `perUserMfaState` in pages
//!    of 999, the registration report in pages of 999) against `--per-user-reads` (the
//!    documented per-user state GET and each user's methods, at the RU budget); also
//!    `--only registered-but-disabled`, both ways. Wall time, Graph requests, peak RSS.
//! 2. `dry-run` of 5,000 users of a 20,000-user tenant: `state_before` from the tenant listing
//!    the resolve step makes anyway, against one state GET per user (`--per-user-reads`).
//!
//! Prints a Markdown table (BENCHMARKS.md, "Reads at list speed"). Knobs: `BENCH_REPORT_USERS`
//! (100000), `BENCH_DRYRUN_TENANT` (20000), `BENCH_DRYRUN_USERS` (5000), `BENCH_SCALE` (10),
//! `BENCH_LATENCY_MS` (100, before scaling).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mfa_bulk::sim::{self, generate_tenant, FaultConfig, SimConfig, SimHandle};

fn env_num<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

struct Run {
    label: String,
    wall: f64,
    requests: u64,
    http: u64,
    ru: u64,
    throttled: u64,
    peak_kib: u64,
    users: u64,
    exit: Option<i32>,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs the binary against `sim` (counters reset first) and measures it.
fn run(sim: &SimHandle, dir: &Path, label: &str, args: &[&str], users: u64) -> Run {
    sim.reset_counters();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mfa-bulk"));
    for k in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "MFA_BULK_ACCESS_TOKEN",
        "MFA_BULK_CLOUD",
    ] {
        cmd.env_remove(k);
    }
    let url = sim.url();
    cmd.args(args)
        .current_dir(dir)
        .env("MFA_BULK_GRAPH_URL", &url)
        .env("MFA_BULK_LOGIN_URL", &url)
        .env("AZURE_TENANT_ID", sim::SIM_TENANT_ID)
        .env("AZURE_CLIENT_ID", sim::SIM_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", sim::SIM_CLIENT_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("the binary starts");
    let mut peak = 0;
    let status = loop {
        if let Some(k) = vm_hwm_kib(child.id()) {
            peak = peak.max(k);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let c = sim.counters();
    Run {
        label: label.to_string(),
        wall: started.elapsed().as_secs_f64(),
        requests: c.requests,
        http: c.http_requests,
        ru: c.ru_spent,
        throttled: c.throttled,
        peak_kib: peak,
        users,
        exit: status.code(),
    }
}

fn row(r: &Run, base: Option<&Run>) -> String {
    let ratio = base
        .map(|b| format!("{:.1}×", b.wall / r.wall))
        .unwrap_or_else(|| "1.0× (baseline)".into());
    format!(
        "| {} | {} | {:.1} | {} | {:.4} | {} | {:.4} | {} | {:.1} MiB | {} | {:?} |",
        r.label,
        r.users,
        r.wall,
        r.requests,
        r.requests as f64 / r.users as f64,
        r.http,
        r.ru as f64 / r.users as f64,
        r.throttled,
        r.peak_kib as f64 / 1024.0,
        ratio,
        r.exit.unwrap_or(-1),
    )
}

fn start(cfg: SimConfig, rt: &tokio::runtime::Runtime) -> SimHandle {
    rt.block_on(sim::start(cfg)).expect("simulator starts")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("report: a benchmark, run it with `cargo bench --bench report`");
        return;
    }
    let scale: f64 = env_num("BENCH_SCALE", 10.0);
    let latency: f64 = env_num("BENCH_LATENCY_MS", 100.0);
    let report_users: usize = env_num("BENCH_REPORT_USERS", 100_000);
    let tenant: usize = env_num("BENCH_DRYRUN_TENANT", 20_000);
    let dry_users: usize = env_num("BENCH_DRYRUN_USERS", 5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work: PathBuf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // The tool paced for the scale: 95 % of the RU budget and 4.5 of the reporting API's 5
    // requests per 10 s, both per real second × scale.
    let rate = format!("{}", (8000.0 * scale * 0.95) as u64);
    let report_rate = format!("{}", 4.5 * scale);
    let lat = (latency / scale).round() as u64;
    let faults = FaultConfig {
        latency_min_ms: lat,
        latency_max_ms: lat,
        ..FaultConfig::default()
    };
    let common = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["--rate".into(), rate.clone()]);
        if extra[0] == "report" {
            v.extend(["--report-rate".into(), report_rate.clone()]);
        }
        v
    };

    // 1. report of a big tenant.
    let mut cfg = SimConfig::with_tenant(generate_tenant(report_users, 11));
    let n = cfg.tenant.users.len() as u64;
    cfg.time_scale = scale;
    cfg.faults = faults.clone();
    let sim = start(cfg, &rt);
    let mut runs = Vec::new();
    for (label, extra) in [
        ("report, list path", vec!["report", "-o", "list.csv"]),
        (
            "report, per-user reads",
            vec!["report", "-o", "per-user.csv", "--per-user-reads"],
        ),
        (
            "report --only registered-but-disabled, list path",
            vec![
                "report",
                "-o",
                "todo.csv",
                "--only",
                "registered-but-disabled",
            ],
        ),
        (
            "report --only registered-but-disabled, per-user reads",
            vec![
                "report",
                "-o",
                "todo-per-user.csv",
                "--only",
                "registered-but-disabled",
                "--per-user-reads",
            ],
        ),
    ] {
        let args = common(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        eprintln!("running: {label}");
        runs.push(run(&sim, &work, label, &args, n));
    }
    drop(sim);

    // 2. dry-run of part of a tenant.
    let mut cfg = SimConfig::with_tenant(generate_tenant(tenant, 12));
    cfg.time_scale = scale;
    cfg.faults = faults;
    let step = (cfg.tenant.users.len() / dry_users).max(1);
    let upns: Vec<String> = cfg
        .tenant
        .users
        .iter()
        .step_by(step)
        .take(dry_users)
        .map(|u| u.user_principal_name.clone())
        .collect();
    let input = work.join("users.csv");
    let mut text = String::from("UserPrincipalName\n");
    for u in &upns {
        text.push_str(u);
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    let input = input.display().to_string();
    let sim = start(cfg, &rt);
    let mut dry = Vec::new();
    for (label, extra) in [
        (
            "dry-run, state from the user list",
            vec!["dry-run", input.as_str(), "-o", "plan-list.csv"],
        ),
        (
            "dry-run, per-user state reads",
            vec![
                "dry-run",
                input.as_str(),
                "-o",
                "plan-per-user.csv",
                "--per-user-reads",
            ],
        ),
    ] {
        let args = common(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        eprintln!("running: {label}");
        dry.push(run(&sim, &work, label, &args, upns.len() as u64));
    }
    drop(sim);

    println!(
        "Scale {scale}× (Graph's windows, the reporting API's 5 requests per 10 s and the \
         {latency} ms latency all {scale}× faster; the tool paced at --rate {rate} \
         --report-rate {report_rate}); report tenant {n} users; dry-run {} of {tenant} users.\n",
        upns.len()
    );
    println!("| run | users | wall s | Graph requests | requests / user | HTTP requests | RU / user | 429s | peak RSS | faster than per-user | exit |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!("{}", row(&runs[1], None));
    println!("{}", row(&runs[0], Some(&runs[1])));
    println!("{}", row(&runs[3], None));
    println!("{}", row(&runs[2], Some(&runs[3])));
    println!("{}", row(&dry[1], None));
    println!("{}", row(&dry[0], Some(&dry[1])));
}
