//! Apply against a tenant whose real write limit is below the documented one (Graph's write
//! budget is shared by every app of the tenant and other tools write too): at 50 % and 25 %
//! of it, and one where another app starts writing mid-run (the tenant's budget for all apps
//! drops). The tool is told the documented rate (`--write-rate` = its default × the bench
//! scale); only Graph's answers tell it the real limit.
//!
//! The simulator's 150 s write window runs [`WINDOW_SECS`] real seconds (time scale
//! 150 / 4 = 37.5; the tenant's 300 s window 8 s), so that a run crosses several windows in
//! half a minute. Limits are set so that "documented" is 20 writes/s × the bench scale.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mfa_bulk::sim::LimitsChange;
use serde::Serialize;
use serde_json::Value;

use super::{
    check_state, dump_log, load_avg, parse_json, Bench, Case, StateCheck, GRAPH_LATENCY_MS,
    GRAPH_WRITES_PER_SEC,
};

/// Real seconds of the simulator's (per-app, 150 s) write window in these scenarios.
pub(crate) const WINDOW_SECS: f64 = 4.0;
/// The tenant's (300 s) write window, real seconds.
pub(crate) const TENANT_WINDOW_SECS: f64 = WINDOW_SECS * 2.0;
/// Graph's documented tenant limit for all apps: 18,000 writes per 300 s.
const TENANT_WRITES_PER_300S: f64 = 18000.0;

/// One scenario of the `limits` part.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    /// For `BENCH_SCENARIOS`: `limit-50`, `limit-25`, `limit-drop`.
    pub name: &'static str,
    pub label: &'static str,
    pub users: usize,
    /// The app's real write limit, as a fraction of the documented one.
    pub app_fraction: f64,
    /// Another app starts writing once this fraction of the changes is written: the tenant's
    /// limit for all apps drops to this fraction of the documented app limit.
    pub drop: Option<(f64, f64)>,
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "limit-50",
            label: "real limit 50 % of documented",
            users: 2000,
            app_fraction: 0.5,
            drop: None,
        },
        Scenario {
            name: "limit-25",
            label: "real limit 25 % of documented",
            users: 1000,
            app_fraction: 0.25,
            drop: None,
        },
        Scenario {
            name: "limit-drop",
            label: "100 %, then another app writes: 50 %",
            users: 3000,
            app_fraction: 1.0,
            drop: Some((0.3, 0.5)),
        },
    ]
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct LimitFigures {
    pub name: String,
    pub label: String,
    pub users_listed: usize,
    pub changes_needed: usize,
    pub tool_write_rate: f64,
    /// Graph's documented write limit per real second at the bench scale.
    pub documented_per_sec: f64,
    /// The real limit per real second in the steady state measured (after the drop, if any).
    pub real_limit_per_sec: f64,
    pub exit_code: Option<i32>,
    pub wall_secs: f64,
    pub load_before: f64,
    /// Writes Graph accepted.
    pub writes: u64,
    /// First to last PATCH Graph saw, real seconds.
    pub write_phase_secs: f64,
    /// What a client that knew the limits and sent at the same configured rate would need
    /// (greedy, against the same sliding windows, from the first write).
    pub ideal_secs: f64,
    /// ideal_secs / write_phase_secs.
    pub vs_ideal: f64,
    /// Accepted writes per second over whole windows from Graph's first accepted write after
    /// its first 429 (after the drop, for the drop), over the real limit then: the sustained
    /// fraction of the real limit (goal ≥ 0.85). What goes before is left out: a fresh
    /// window lets its whole budget through at once, faster than the limit.
    pub sustained_fraction: f64,
    pub sustained_secs: f64,
    /// 429 answers (any request) per write accepted (goal ≤ 0.1).
    pub throttled: u64,
    pub throttled_per_write: f64,
    /// Real seconds from the first write to the drop, if any.
    pub drop_at_secs: Option<f64>,
    /// What the tool learned: its summary's graph figures.
    pub throttle_waves: Option<u64>,
    pub write_pace: Option<f64>,
    pub write_ceiling: Option<f64>,
    pub http_requests: u64,
    pub state: StateCheck,
    pub tool_summary: Value,
    pub stderr_tail: String,
}

/// Seconds a greedy client capped at `rate` (with a burst of `burst`) needs to get `n`
/// writes through windows `(span, limit before, limit after drop)`; the drop at `drop_at`.
fn ideal_secs(n: u64, rate: f64, burst: f64, windows: &[(f64, f64, f64)], drop_at: f64) -> f64 {
    let dt = 0.001;
    let mut logs: Vec<VecDeque<f64>> = windows.iter().map(|_| VecDeque::new()).collect();
    let (mut t, mut sent, mut tokens) = (0.0f64, 0u64, burst);
    let mut last = 0.0;
    while sent < n && t < 36_000.0 {
        let mut room = u64::MAX;
        for (w, log) in windows.iter().zip(logs.iter_mut()) {
            while log.front().is_some_and(|&x| x <= t - w.0) {
                log.pop_front();
            }
            let limit = if t >= drop_at { w.2 } else { w.1 };
            room = room.min((limit - log.len() as f64).max(0.0) as u64);
        }
        let k = room.min(tokens.floor() as u64).min(n - sent);
        if k > 0 {
            for log in logs.iter_mut() {
                log.extend(std::iter::repeat_n(t, k as usize));
            }
            sent += k;
            tokens -= k as f64;
            last = t;
        }
        tokens = (tokens + rate * dt).min(burst.max(1.0));
        t += dt;
    }
    last
}

pub(crate) fn run(b: &mut Bench, sc: &Scenario) -> anyhow::Result<LimitFigures> {
    let s = b.s.scale;
    let case = Case::new(sc.users, &b.work)?;
    let documented = GRAPH_WRITES_PER_SEC * s;
    let app_limit = (sc.app_fraction * documented * WINDOW_SECS).round();
    let mut cfg = b.sim_config(&case.tenant, 150.0 / WINDOW_SECS, false);
    // Latency as at the bench's scale: the tool's pace is the bench scale's.
    cfg.faults.latency_min_ms = (GRAPH_LATENCY_MS.0 as f64 / s).round() as u64;
    cfg.faults.latency_max_ms = (GRAPH_LATENCY_MS.1 as f64 / s).round() as u64;
    cfg.limits.writes_per_150s = app_limit as u32;
    let sim_started = Instant::now();
    let h = Arc::new(b.start(cfg)?);
    let name = sc.name.to_string();
    let changes = case.changes_needed(&case.listed);
    let tenant_documented = TENANT_WRITES_PER_300S / 300.0 * 150.0 / WINDOW_SECS;
    let drop_limit = sc
        .drop
        .map(|(_, f)| (f * documented * TENANT_WINDOW_SECS).round());
    // The other app: once a share of the changes is written, the tenant's budget drops.
    let dropped = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let dropper = sc.drop.map(|(after, _)| {
        let (h, dropped) = (h.clone(), dropped.clone());
        let at = (after * changes as f64) as u64;
        let limit = drop_limit.unwrap_or(1.0) as u64;
        b.rt.spawn(async move {
            while h.counters().writes < at {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            h.set_limits(LimitsChange {
                tenant_writes_per_300s: Some(limit),
                ..LimitsChange::default()
            });
            *dropped.lock().unwrap() = Some(Instant::now());
        })
    });
    let load_before = load_avg();
    eprintln!(
        "[bench] {name}: {} users, app limit {app_limit} per {WINDOW_SECS} s, tool at {} writes/s, load {load_before:.2}",
        case.n,
        b.s.tool_write_rate * s
    );
    let run = b.run_tool("apply", &case.csv, &h, s, &name);
    if let Some(d) = dropper {
        d.abort();
    }
    let run = run?;
    std::thread::sleep(Duration::from_millis(100));
    let counters = h.counters();
    let after = h.users_state();
    let state = check_state(&case.tenant, &case.listed, &after, &counters, true);
    let log = h.request_log();
    dump_log(b, &h, &name);
    h.shutdown();
    let ok: Vec<f64> = log
        .iter()
        .filter(|e| e.method == "PATCH" && (200..300).contains(&e.status))
        .map(|e| e.t_ms as f64 / 1000.0)
        .collect();
    let first = log
        .iter()
        .find(|e| e.method == "PATCH")
        .map(|e| e.t_ms as f64 / 1000.0)
        .unwrap_or(0.0);
    let last = ok.last().copied().unwrap_or(first);
    let drop_at = dropped
        .lock()
        .unwrap()
        .map(|t| t.duration_since(sim_started).as_secs_f64() - first);
    let app_rate = app_limit / WINDOW_SECS;
    let real_limit = match drop_limit {
        Some(l) if drop_at.is_some() => (l / TENANT_WINDOW_SECS).min(app_rate),
        _ => app_rate,
    };
    // The steady state: from Graph's first accepted write after its first 429 (after the
    // drop, for the drop) to the last write.
    let since = first + drop_at.unwrap_or(0.0);
    let first_429 = log
        .iter()
        .filter(|e| e.method == "PATCH" && e.status == 429)
        .map(|e| e.t_ms as f64 / 1000.0)
        .find(|&t| t >= since);
    let from = first_429
        .and_then(|t| ok.iter().copied().find(|&x| x > t))
        .unwrap_or(first + WINDOW_SECS);
    // Whole windows only: a sliding window lets through in bursts (what left it a window
    // ago), so a partial window at the end would flatter or wrong the figure.
    let window = if drop_at.is_some() {
        TENANT_WINDOW_SECS
    } else {
        WINDOW_SECS
    };
    let whole = ((last - from) / window).floor() * window;
    let sustained_secs = if whole >= window {
        whole
    } else {
        (last - from).max(0.0)
    };
    let sustained_n = ok
        .iter()
        .filter(|&&t| t >= from && t < from + sustained_secs)
        .count() as f64;
    let sustained_fraction = if sustained_secs > 0.0 {
        sustained_n / sustained_secs / real_limit
    } else {
        0.0
    };
    let write_phase_secs = last - first;
    let ideal = ideal_secs(
        counters.writes,
        b.s.tool_write_rate * s,
        (b.s.tool_write_rate * s / 4.0).clamp(1.0, 5.0),
        &[
            (WINDOW_SECS, app_limit, app_limit),
            (
                TENANT_WINDOW_SECS,
                tenant_documented * TENANT_WINDOW_SECS,
                drop_limit.unwrap_or(tenant_documented * TENANT_WINDOW_SECS),
            ),
        ],
        drop_at.unwrap_or(f64::INFINITY),
    );
    let summary = parse_json(&run.stdout);
    let g = &summary["summary"]["graph"];
    let f = LimitFigures {
        name,
        label: sc.label.into(),
        users_listed: case.n,
        changes_needed: changes,
        tool_write_rate: b.s.tool_write_rate * s,
        documented_per_sec: documented,
        real_limit_per_sec: real_limit,
        exit_code: run.exit_code,
        wall_secs: run.wall_secs,
        load_before,
        writes: counters.writes,
        write_phase_secs,
        ideal_secs: ideal,
        vs_ideal: if write_phase_secs > 0.0 {
            ideal / write_phase_secs
        } else {
            0.0
        },
        sustained_fraction,
        sustained_secs,
        throttled: counters.throttled,
        throttled_per_write: counters.throttled as f64 / counters.writes.max(1) as f64,
        drop_at_secs: drop_at,
        throttle_waves: g["throttle_waves"].as_u64(),
        write_pace: g["write_pace"].as_f64(),
        write_ceiling: g["write_ceiling"].as_f64(),
        http_requests: counters.http_requests,
        state,
        tool_summary: summary.clone(),
        stderr_tail: run.stderr_tail,
    };
    eprintln!(
        "[bench] {}: exit {:?}, {:.1} s, write phase {:.1} s (ideal {:.1} s), sustained {:.0} % of the real limit, {:.3} 429s per write, waves {:?}, pace {:?}, state {}",
        f.name,
        f.exit_code,
        f.wall_secs,
        f.write_phase_secs,
        f.ideal_secs,
        f.sustained_fraction * 100.0,
        f.throttled_per_write,
        f.throttle_waves,
        f.write_pace,
        if f.state.ok { "exact" } else { "WRONG" }
    );
    if !f.state.ok || f.exit_code != Some(0) {
        eprintln!("[bench]   state: {:?}", f.state);
        eprintln!("[bench]   stderr: {}", f.stderr_tail);
    }
    Ok(f)
}
