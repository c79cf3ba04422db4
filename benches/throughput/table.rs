//! The results of a benchmark run: every raw number (saved as JSON) and the Markdown tables
//! printed at the end.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{
    ApplyFigures, BaselineFigures, DryRunFigures, Machine, MemFigures, Settings, StateCheck,
    BASELINE_RETRY_SECS, GRAPH_LATENCY_MS,
};

#[derive(Debug, Default, Serialize)]
pub(crate) struct Results {
    pub settings: Option<Settings>,
    pub machine: Option<Machine>,
    pub apply: Vec<ApplyFigures>,
    pub dry_run: Vec<DryRunFigures>,
    pub baseline: Vec<BaselineFigures>,
    pub memory: Vec<MemFigures>,
    pub limits: Vec<super::limits::LimitFigures>,
    pub errors: Vec<String>,
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn state_cell(c: &StateCheck) -> String {
    if c.ok {
        "exact".into()
    } else {
        format!(
            "**{} wrong** ({} not written, {} written wrongly)",
            c.wrong_state, c.missing_writes, c.unexpected_writes
        )
    }
}

fn yes_no(ok: bool) -> &'static str {
    if ok {
        "exact"
    } else {
        "**WRONG**"
    }
}

/// The results as Markdown tables (what `cargo bench --bench throughput` prints).
pub(crate) fn render(r: &Results) -> String {
    let s = r.settings.as_ref().expect("settings");
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Time scale {} for apply and the baseline, {} for dry-run: Graph's windows, \
         Retry-After and the latency ({}–{} ms per HTTP request) run that many times faster; \
         the tool is given `--write-rate` and `--rate` multiplied by the same factor. \
         Rates below are per real second at that scale.\n",
        s.scale, s.dryrun_scale, GRAPH_LATENCY_MS.0, GRAPH_LATENCY_MS.1
    );
    let apply = &r.apply;
    if !apply.is_empty() {
        let _ = writeln!(
            t,
            "| apply | users (changes) | scale | wall s | writes/s / limit | of limit (≥ 90 %) | 429s (≤ 1 %) | vs baseline loop (no faults) | final state | exit |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
        for f in apply {
            let vs = r
                .baseline
                .iter()
                .find(|b| b.users_listed == f.users_listed && b.time_scale == f.time_scale)
                .map(|b| {
                    let est = if b.sample < b.users_listed {
                        format!(", baseline extrapolated from its first {}", b.sample)
                    } else {
                        String::new()
                    };
                    format!(
                        "{:.2}× its time ({:.1}× faster{est})",
                        f.wall_secs / b.extrapolated_secs,
                        b.extrapolated_secs / f.wall_secs
                    )
                })
                .unwrap_or_else(|| "–".into());
            let _ =
                writeln!(
                t,
                "| {} | {} ({}) | {} | {:.1} | {:.1} / {:.0} | {} | {} ({} of {}) | {} | {} | {} |",
                f.label,
                f.users_listed,
                f.changes_needed,
                f.time_scale,
                f.wall_secs,
                f.writes_per_sec,
                f.write_limit_per_sec,
                pct(f.write_fraction),
                pct(f.throttled_fraction),
                f.throttled,
                f.requests,
                vs,
                state_cell(&f.state),
                f.exit_code.map(|c| c.to_string()).unwrap_or("killed".into()),
            );
        }
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "| apply (cost) | users | Graph requests / changed user (floor) | RU / changed user | HTTP requests / changed user | max writes to one user | peak RSS | CPU s: tool, simulator | load before | fsync ms |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
        for f in apply {
            let _ = writeln!(
                t,
                "| {} | {} | {:.2} ({:.2}) | {:.2} | {:.3} | {} | {:.0} MiB | {:.1}, {:.1} | {:.1} | {:.2} |",
                f.label,
                f.users_listed,
                f.requests_per_changed_user,
                f.floor_requests_per_changed_user,
                f.ru_per_changed_user,
                f.http_per_changed_user,
                f.state.max_writes_per_user,
                f.peak_rss_mib,
                f.tool_cpu_secs,
                f.sim_cpu_secs,
                f.load_before,
                f.fsync_ms,
            );
        }
        let _ = writeln!(t);
    }
    if !r.limits.is_empty() {
        let _ = writeln!(
            t,
            "Real write limit below the documented one: the simulator's write window is {} real s \
             (tenant window {} s); the tool is told the documented rate.\n",
            super::limits::WINDOW_SECS,
            super::limits::TENANT_WINDOW_SECS
        );
        let _ = writeln!(
            t,
            "| apply, real limit | users (changes) | real limit / documented, writes/s | wall s | write phase s (ideal client) | vs ideal client | of real limit, sustained (≥ 85 %) | 429s per write (≤ 0.1) | waves | pace learned, writes/s | final state | exit |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for f in &r.limits {
            let _ = writeln!(
                t,
                "| {} | {} ({}) | {:.0} / {:.0} | {:.1} | {:.1} ({:.1}) | {} | {} | {:.3} ({} of {}) | {} | {} | {} | {} |",
                f.label,
                f.users_listed,
                f.changes_needed,
                f.real_limit_per_sec,
                f.documented_per_sec,
                f.wall_secs,
                f.write_phase_secs,
                f.ideal_secs,
                pct(f.vs_ideal),
                pct(f.sustained_fraction),
                f.throttled_per_write,
                f.throttled,
                f.writes,
                f.throttle_waves.map(|w| w.to_string()).unwrap_or("–".into()),
                f.write_pace.map(|p| format!("{p:.0}")).unwrap_or("–".into()),
                state_cell(&f.state),
                f.exit_code.map(|c| c.to_string()).unwrap_or("killed".into()),
            );
        }
        let _ = writeln!(t);
    }
    if !r.baseline.is_empty() {
        let _ = writeln!(
            t,
            "| baseline loop | users | measured on | measured s | time for all users s | requests | 429s | final state (sample) |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|");
        for b in &r.baseline {
            let _ = writeln!(
                t,
                "| GET, PATCH if needed, sleep {BASELINE_RETRY_SECS} s (scaled) on 429 | {} | {} | {:.1} | {:.1}{} | {} | {} | {} |",
                b.users_listed,
                if b.sample < b.users_listed { format!("first {}", b.sample) } else { "all".into() },
                b.measured_secs,
                b.extrapolated_secs,
                if b.sample < b.users_listed { " (extrapolated)" } else { "" },
                b.requests,
                b.throttled,
                yes_no(b.state.ok)
            );
        }
        let _ = writeln!(t);
    }
    if !r.dry_run.is_empty() {
        let _ = writeln!(
            t,
            "| dry-run | users | scale | wall s | users/s / allowed by RU budget | of budget (≥ 90 %) | reads phase: of budget | RU / user (needed) | HTTP / user | 429s | tenant untouched | peak RSS | exit |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for f in &r.dry_run {
            let _ = writeln!(
                t,
                "| clean | {} | {} | {:.2} | {:.0} / {:.0} | {} | {} | {:.3} ({:.3}) | {:.3} | {} | {} | {:.0} MiB | {} |",
                f.users_listed,
                f.time_scale,
                f.wall_secs,
                f.users_per_sec,
                f.allowed_users_per_sec,
                pct(f.fraction),
                pct(f.read_phase_fraction),
                f.ru_spent_per_user,
                f.needed_ru_per_user,
                f.http_per_user,
                pct(f.throttled_fraction),
                if f.state.ok { "yes" } else { "**NO**" },
                f.peak_rss_mib,
                f.exit_code.map(|c| c.to_string()).unwrap_or("killed".into()),
            );
        }
        let _ = writeln!(t);
    }
    if !r.memory.is_empty() {
        let _ = writeln!(
            t,
            "| memory | rows | input MiB | wall s | peak RSS (VmHWM) | exit |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|");
        for m in &r.memory {
            let _ = writeln!(
                t,
                "| {} | {} | {:.1} | {:.1} | {:.1} MiB | {} |",
                m.note,
                m.rows,
                m.input_mib,
                m.wall_secs,
                m.peak_rss_mib,
                m.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or("killed".into()),
            );
        }
        let _ = writeln!(t);
    }
    for e in &r.errors {
        let _ = writeln!(t, "error: {e}");
    }
    t
}

/// Writes every raw number as JSON (after each part, so a failed run keeps what it measured).
pub(crate) fn save(r: &Results, path: &Path) {
    match serde_json::to_string_pretty(r) {
        Ok(s) => {
            if let Err(e) = std::fs::write(path, s) {
                eprintln!("[bench] could not write {}: {e}", path.display());
            }
        }
        Err(e) => eprintln!("[bench] could not serialise the results: {e}"),
    }
}
