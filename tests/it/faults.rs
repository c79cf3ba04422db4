//! The fault matrix: `apply` through the real binary against the simulator while Graph fails in
//! each way it does in production: 5xx, dropped connections, write answers lost after the
//! write was applied, 429 storms, tokens expiring and being revoked mid-run, answers slower
//! than `--timeout`. After each: the tenant is exactly as the result file says, row for row
//! ([`check_apply_truth`]), nobody is written twice, and rerunning the same command finishes
//! the job.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mfa_bulk::sim::{Counters, FaultConfig, SimConfig};

use crate::common::{read_csv, TestSim};
use crate::reliability::{
    all_upns_and_strays, assert_all_at_least_enabled, check_apply_truth, generated, input_csv,
    scratch, snapshot, Snapshot, FAST,
};

struct Run {
    before: Snapshot,
    after: Snapshot,
    inputs: Vec<String>,
    code: i32,
    counters: Counters,
    stderr: String,
}

/// Applies every user of the tenant (plus two strays) with `args`, checks the result file
/// tells the truth, and returns what happened.
fn apply_all(sim: &TestSim, dir: &Path, out: &str, args: &[&str]) -> Run {
    let before = snapshot(sim);
    let inputs = all_upns_and_strays(&before, sim);
    let input = input_csv(dir, "users.csv", &inputs);
    let o = sim
        .cmd(dir)
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", out])
        .args(args)
        .timeout(Duration::from_secs(300))
        .output()
        .expect("apply runs");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let code = o.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "apply exit {code}: {stderr}\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let after = snapshot(sim);
    let counters = sim.counters();
    let rows = read_csv(&dir.join(out));
    let counts = check_apply_truth(&before, &after, &inputs, &rows, &counters.writes_per_user);
    // The exit code agrees with the rows: 0 only when every row is as asked.
    let attention = counts
        .iter()
        .filter(|(o, _)| !matches!(o.as_str(), "changed" | "no-change" | "excluded"))
        .count();
    assert_eq!(code == 0, attention == 0, "exit {code} but rows {counts:?}");
    Run {
        before,
        after,
        inputs,
        code,
        counters,
        stderr,
    }
}

/// Runs the same command again with the faults gone: everyone ends at least enabled, the
/// users the first run changed are reported `no-change`, nobody is written twice over both.
fn rerun_heals(sim: &TestSim, dir: &Path, first: &Run) {
    sim.handle.set_faults(FaultConfig::default());
    let o = sim
        .cmd(dir)
        .arg("apply")
        .arg(dir.join("users.csv"))
        .args(["--yes", "-o", "rerun.csv"])
        .args(FAST)
        .timeout(Duration::from_secs(300))
        .output()
        .expect("rerun");
    assert_eq!(
        o.status.code(),
        Some(1),
        "only the two strays need attention: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let after = snapshot(sim);
    let rows = read_csv(&dir.join("rerun.csv"));
    // Truth relative to the state before the first run, over both runs' writes.
    check_apply_truth(
        &first.before,
        &after,
        &first.inputs,
        &rows
            .iter()
            .map(|r| {
                // A user the first run changed is `no-change` now; judge it from the start.
                let mut r = r.clone();
                let id = r["user_id"].clone();
                if r["outcome"] == "no-change"
                    && !id.is_empty()
                    && first.before[&id].per_user_mfa_state != after[&id].per_user_mfa_state
                {
                    r.insert("outcome".into(), "changed".into());
                    r.insert(
                        "state_before".into(),
                        first.before[&id].per_user_mfa_state.clone(),
                    );
                }
                r
            })
            .collect::<Vec<_>>(),
        &sim.counters().writes_per_user,
    );
    assert_all_at_least_enabled(&after);
    let _ = &first.after;
}

fn faults(f: impl FnOnce(&mut FaultConfig)) -> FaultConfig {
    let mut c = FaultConfig::default();
    f(&mut c);
    c
}

fn sim_with(n: usize, seed: u64, f: impl FnOnce(&mut SimConfig)) -> TestSim {
    let mut cfg = generated(n, seed, 1.0);
    f(&mut cfg);
    TestSim::with(cfg)
}

#[test]
fn server_errors_5xx_every_row_tells_the_truth() {
    let sim = sim_with(120, 11, |c| {
        c.faults = faults(|f| f.error_rate = 0.3);
        c.time_scale = 20.0; // Retry-After of 1–3 s comes as 0.05–0.15 s
    });
    let dir = scratch();
    let run = apply_all(&sim, dir.path(), "r.csv", FAST);
    assert!(run.counters.injected_errors > 0, "no error was injected");
    rerun_heals(&sim, dir.path(), &run);
}

#[test]
fn dropped_connections_are_checked_by_reading_never_resent_blindly() {
    let sim = sim_with(120, 12, |c| {
        c.faults = faults(|f| f.drop_rate = 0.2);
    });
    let dir = scratch();
    let run = apply_all(&sim, dir.path(), "r.csv", FAST);
    assert!(run.counters.dropped > 0, "no connection was dropped");
    rerun_heals(&sim, dir.path(), &run);
}

#[test]
fn lost_write_answers_are_verified_by_reading_and_never_written_twice() {
    // 300 users: some 15 batches of writes, each lost with probability 1/2, so that every
    // order in which reads and writes interleave (each draws from the seeded generator) loses
    // some.
    let sim = sim_with(300, 113, |c| {
        c.faults = faults(|f| f.lost_write_rate = 0.5);
    });
    let dir = scratch();
    let run = apply_all(&sim, dir.path(), "r.csv", FAST);
    assert!(
        run.counters.lost_writes > 0,
        "no write answer was lost: {:?}",
        (
            run.counters.batches,
            run.counters.writes,
            run.counters.http_requests,
            run.counters.dropped
        )
    );
    // Every user whose write was applied was written exactly once (checked in
    // check_apply_truth), and every one of them is in the file as changed.
    let rows = read_csv(&dir.path().join("r.csv"));
    let changed = rows.iter().filter(|r| r["outcome"] == "changed").count() as u64;
    assert_eq!(
        changed,
        run.counters.writes_per_user.len() as u64,
        "every applied write is a changed row"
    );
    assert!(
        rows.iter().any(|r| r["error"].contains("lost")),
        "rows whose answer was lost say so"
    );
    rerun_heals(&sim, dir.path(), &run);
}

#[test]
fn a_429_storm_from_tiny_budgets_is_waited_out() {
    let sim = sim_with(100, 14, |c| {
        // 10 simulated seconds = 0.1 s real; 150 s write window = 1.5 s real.
        c.time_scale = 100.0;
        c.limits.ru_per_10s = Some(25);
        c.limits.writes_per_150s = 30;
        c.limits.tenant_writes_per_300s = 60;
    });
    let dir = scratch();
    let run = apply_all(&sim, dir.path(), "r.csv", FAST);
    assert!(run.counters.throttled > 0, "the budgets never throttled");
    assert_eq!(
        run.code, 1,
        "only the strays need attention: {}",
        run.stderr
    );
    assert_all_at_least_enabled(&run.after);
}

#[test]
fn tokens_expiring_mid_run_are_renewed() {
    let sim = sim_with(100, 15, |c| {
        // A token lives 1,200 simulated seconds = 2 s real; at 20 writes a second the run
        // takes about five. (Not shorter: a token must outlive the client's own pacing wait
        // for one batch of writes, about 1 s, as any real token does by an hour.)
        c.time_scale = 600.0;
        c.limits.token_lifetime_secs = 1200;
        c.faults = faults(|f| {
            f.latency_min_ms = 20;
            f.latency_max_ms = 60;
        });
    });
    let dir = scratch();
    let run = apply_all(
        &sim,
        dir.path(),
        "r.csv",
        &["--concurrency", "2", "--write-rate", "20"],
    );
    assert!(
        run.counters.tokens_issued > 1,
        "the run never needed a new token ({} issued)",
        run.counters.tokens_issued
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_no_failed_rows(dir.path(), "r.csv");
    assert_all_at_least_enabled(&run.after);
}

/// Every row but the two strays succeeded (a failed row's error says why, for the message).
fn assert_no_failed_rows(dir: &Path, out: &str) {
    let rows = read_csv(&dir.join(out));
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !matches!(r["outcome"].as_str(), "changed" | "no-change"))
        .filter(|r| !r["user_id"].is_empty())
        .map(|r| format!("{} {}: {}", r["input"], r["outcome"], r["error"]))
        .collect();
    assert!(bad.is_empty(), "rows that did not succeed: {bad:#?}");
}

#[test]
fn tokens_revoked_mid_run_are_renewed() {
    let sim = Arc::new(sim_with(150, 16, |c| {
        c.faults = faults(|f| {
            f.latency_min_ms = 5;
            f.latency_max_ms = 30;
        });
    }));
    let dir = scratch();
    let stop = Arc::new(AtomicBool::new(false));
    // Revoke every token each time another 30 writes have landed, from another thread.
    let revoker = {
        let (sim, stop) = (sim.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut revoked = 0u32;
            let mut next = 30;
            while !stop.load(Ordering::SeqCst) {
                if sim.counters().writes >= next {
                    sim.handle.revoke_tokens();
                    revoked += 1;
                    next += 30;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            revoked
        })
    };
    let run = apply_all(&sim, dir.path(), "r.csv", &["--write-rate", "200"]);
    stop.store(true, Ordering::SeqCst);
    let revoked = revoker.join().unwrap();
    assert!(revoked > 0, "the run ended before any revocation");
    assert!(
        run.counters.unauthorized > 0,
        "no request met a revoked token"
    );
    assert!(run.counters.tokens_issued > 1);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_all_at_least_enabled(&run.after);
}

#[test]
fn answers_slower_than_the_timeout_are_never_taken_for_success_or_failure() {
    let sim = sim_with(60, 17, |c| {
        c.faults = faults(|f| {
            f.latency_min_ms = 0;
            f.latency_max_ms = 1600;
        });
    });
    let dir = scratch();
    let run = apply_all(
        &sim,
        dir.path(),
        "r.csv",
        &["--timeout", "1", "--write-rate", "1000"],
    );
    rerun_heals(&sim, dir.path(), &run);
}

#[test]
fn everything_at_once() {
    let sim = sim_with(150, 18, |c| {
        c.time_scale = 50.0;
        c.limits.ru_per_10s = Some(400);
        c.limits.writes_per_150s = 60;
        c.limits.token_lifetime_secs = 600;
        c.faults = faults(|f| {
            f.error_rate = 0.1;
            f.drop_rate = 0.05;
            f.lost_write_rate = 0.2;
            f.latency_max_ms = 20;
        });
    });
    let dir = scratch();
    let run = apply_all(&sim, dir.path(), "r.csv", &[]);
    rerun_heals(&sim, dir.path(), &run);
}

/// Revert under faults: every row tells the truth about putting the user back, and a rerun of
/// the revert leaves the tenant exactly as before the apply, each user written at most once by
/// the apply and once by the reverts together.
#[test]
fn revert_under_faults_tells_the_truth_and_a_rerun_restores_everyone() {
    let sim = sim_with(120, 19, |c| c.time_scale = 20.0);
    let dir = scratch();
    let run = apply_all(&sim, dir.path(), "applied.csv", FAST);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let applied = snapshot(&sim);
    sim.handle.set_faults(faults(|f| {
        f.error_rate = 0.15;
        f.drop_rate = 0.05;
        f.lost_write_rate = 0.3;
    }));
    let revert = |out: &str| {
        let o = sim
            .cmd(dir.path())
            .args(["revert", "applied.csv", "--yes", "-o", out])
            .args(FAST)
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap();
        let code = o.status.code().unwrap_or(-1);
        assert!(
            code == 0 || code == 1,
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        code
    };
    revert("reverted.csv");
    let after = snapshot(&sim);
    let c = sim.counters();
    assert!(
        c.lost_writes + c.injected_errors + c.dropped > 0,
        "no fault hit"
    );
    let rows = read_csv(&dir.path().join("reverted.csv"));
    assert_eq!(
        rows.len(),
        run.inputs.len(),
        "one row per row of the apply result"
    );
    for r in &rows {
        let id = r["user_id"].as_str();
        if id.is_empty() {
            assert_eq!(r["outcome"], "no-change", "{r:?}");
            continue;
        }
        let (orig, was, now) = (
            &run.before[id].per_user_mfa_state,
            &applied[id].per_user_mfa_state,
            &after[id].per_user_mfa_state,
        );
        match r["outcome"].as_str() {
            "changed" => {
                assert_eq!(
                    now, orig,
                    "'changed' but not back to the state before: {r:?}"
                );
                assert_ne!(was, now, "{r:?}");
            }
            "failed" => {
                assert!(!r["error"].is_empty(), "{r:?}");
                if now != was {
                    assert!(r["error"].contains("may or may not"), "{r:?}");
                }
            }
            "no-change" | "skipped" | "drifted" => assert_eq!(now, was, "{r:?}"),
            o => panic!("unexpected outcome {o}: {r:?}"),
        }
    }
    for (id, u) in &after {
        if u.per_user_mfa_state != applied[id].per_user_mfa_state {
            let r = rows.iter().find(|r| &r["user_id"] == id).expect("a row");
            assert!(
                r["outcome"] == "changed" || r["error"].contains("may or may not"),
                "{} changed without a row saying so: {r:?}",
                u.user_principal_name
            );
        }
    }

    sim.handle.set_faults(FaultConfig::default());
    assert_eq!(revert("reverted-again.csv"), 0);
    let end = snapshot(&sim);
    for (id, u) in &end {
        assert_eq!(
            u.per_user_mfa_state, run.before[id].per_user_mfa_state,
            "{} not back to where it was",
            u.user_principal_name
        );
    }
    for (id, n) in &sim.counters().writes_per_user {
        assert!(*n <= 2, "{id} written {n} times (apply + revert)");
    }
}
