//! Pacing against a tenant whose real write budget is below the documented one (Graph's write
//! budget is shared by every app of the tenant), one whose budget drops mid-run, and stopping
//! at once (Ctrl-C) whatever the throttling. Against the built-in simulator on loopback.
//!
//! The simulator's 150 s write window is sped up (`time_scale`) to a few seconds, and the
//! client is told a "documented" rate twice the real limit, so that a run crosses several
//! windows in seconds. Counts and states are asserted, not times (a hang is bounded
//! generously).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mfa_bulk::graph::{Credential, ErrorKind, Graph, GraphConfig, Secret};
use mfa_bulk::model::MfaState;
use mfa_bulk::sim::{self, LimitsChange, SimConfig, SimHandle};

use crate::common::{read_csv, TestSim, CLEARED};
use crate::reliability::{check_apply_truth, input_csv, scratch, snapshot};

fn app(h: &SimHandle, writes_per_sec: f64) -> GraphConfig {
    GraphConfig {
        graph_url: h.url(),
        login_url: h.url(),
        cloud: "custom".into(),
        tenant: sim::SIM_TENANT_ID.into(),
        client_id: sim::SIM_CLIENT_ID.into(),
        credential: Credential::Secret(Secret::new(sim::SIM_CLIENT_SECRET)),
        ru_per_10s: None,
        writes_per_sec: Some(writes_per_sec),
        concurrency: 8,
        timeout: Duration::from_secs(10),
    }
}

/// A generated tenant of `n` users whose write window (Graph's 150 s) lasts `window` real
/// seconds and allows `limit` writes.
fn tenant(n: usize, seed: u64, window: f64, limit: u32) -> SimConfig {
    let mut c = SimConfig::with_tenant(sim::generate_tenant(n, seed));
    c.seed = seed;
    c.time_scale = 150.0 / window;
    c.limits.writes_per_150s = limit;
    c.faults.latency_min_ms = 2;
    c.faults.latency_max_ms = 10;
    c
}

fn changes(h: &SimHandle) -> Vec<(String, MfaState)> {
    h.users_state()
        .into_iter()
        .map(|u| (u.id, MfaState::Enforced))
        .collect()
}

/// Sets every state; returns the errors by kind.
async fn set_all(g: &Graph, ch: &[(String, MfaState)]) -> HashMap<String, usize> {
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut answered = vec![false; ch.len()];
    g.set_states(ch, |i, r| {
        assert!(!answered[i], "item {i} answered twice");
        answered[i] = true;
        if let Err(e) = r {
            *errors
                .entry(format!("{:?} {}", e.kind, e.code))
                .or_default() += 1;
        }
    })
    .await;
    assert!(answered.iter().all(|a| *a), "every item answered");
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_limit_half_the_documented_one_is_found_and_kept() {
    // Graph allows 40 writes per 2 s (20/s); the client believes 39/s.
    let h = sim::start(tenant(300, 31, 2.0, 40)).await.unwrap();
    let g = Graph::connect(app(&h, 39.0)).await.unwrap();
    let ch = changes(&h);
    let errors = set_all(&g, &ch).await;
    assert!(errors.is_empty(), "{errors:?}");
    let c = h.counters();
    assert_eq!(c.writes, 300);
    assert_eq!(c.writes_per_user.len(), 300);
    assert!(c.writes_per_user.values().all(|n| *n == 1), "written twice");
    let per_write = c.throttled as f64 / c.writes as f64;
    let s = g.stats();
    assert!(
        per_write <= 0.1,
        "{} 429s for 300 writes: {s:?}",
        c.throttled
    );
    // It learned what Graph allows and paces under it, instead of climbing back to 39/s.
    let ceiling = s.write_ceiling.expect("throttled once at least");
    assert!((15.0..=24.0).contains(&ceiling), "{s:?}");
    assert!(s.write_pace < 21.0, "{s:?}");
    assert!(s.throttle_waves <= 3, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_limit_that_drops_mid_run_is_followed() {
    // 80 writes per 2 s (40/s), the client at 39/s: no throttling; then another app starts
    // writing and this app's share drops to 40 per 2 s.
    let h = std::sync::Arc::new(sim::start(tenant(600, 32, 2.0, 80)).await.unwrap());
    let g = Graph::connect(app(&h, 39.0)).await.unwrap();
    let ch = changes(&h);
    let h2 = h.clone();
    let dropper = tokio::spawn(async move {
        while h2.counters().writes < 150 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        h2.set_limits(LimitsChange {
            writes_per_150s: Some(40),
            ..LimitsChange::default()
        });
    });
    let errors = set_all(&g, &ch).await;
    dropper.await.unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let c = h.counters();
    assert_eq!(c.writes, 600);
    assert!(c.writes_per_user.values().all(|n| *n == 1), "written twice");
    let s = g.stats();
    assert!(
        c.throttled as f64 / c.writes as f64 <= 0.1,
        "{} 429s for 600 writes: {s:?}",
        c.throttled
    );
    assert!(s.write_pace < 21.0, "paces under the new limit: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sending_ends_a_wait_for_retry_after_at_once() {
    // Real time: 5 writes per 150 s, so the sixth write waits about two and a half minutes.
    let h = sim::start(tenant(60, 33, 150.0, 5)).await.unwrap();
    let g = Graph::connect(app(&h, 19.5)).await.unwrap();
    let ch = changes(&h);
    let g2 = g.clone();
    let stopper = tokio::spawn(async move {
        while g2.stats().throttled == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        g2.stop_sending();
        Instant::now()
    });
    let errors = tokio::time::timeout(Duration::from_secs(60), set_all(&g, &ch))
        .await
        .expect("set_states returned after stop_sending");
    let stopped = stopper.await.unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "returned {:?} after the stop",
        stopped.elapsed()
    );
    let applied = h.counters().writes as usize;
    assert_eq!(applied, 5);
    assert_eq!(
        errors.get("Cancelled Cancelled").copied().unwrap_or(0),
        60 - applied,
        "{errors:?}"
    );
    // Nothing new is sent once stopped...
    let before = h.counters().requests;
    let mut got = None;
    g.get_states(&[ch[0].0.clone()], |_, r| got = Some(r)).await;
    assert_eq!(got.unwrap().unwrap_err().kind, ErrorKind::Cancelled);
    assert_eq!(h.counters().requests, before);
    // ...but the reads that verify lost writes still happen.
    let ids: Vec<String> = ch[..3].iter().map(|c| c.0.clone()).collect();
    let mut states = vec![None; 3];
    g.verify_states(&ids, |i, r| states[i] = Some(r.map(|r| r.value)))
        .await;
    assert!(
        states.iter().all(|s| matches!(s, Some(Ok(_)))),
        "{states:?}"
    );
}

/// The real binary as a child process, signed in to `sim`, in `dir`.
fn spawn_apply(
    sim: &TestSim,
    dir: &std::path::Path,
    input: &std::path::Path,
    extra: &[&str],
) -> std::process::Child {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("mfa-bulk"));
    for v in CLEARED {
        c.env_remove(v);
    }
    c.current_dir(dir)
        .env("MFA_BULK_GRAPH_URL", sim.handle.url())
        .env("MFA_BULK_LOGIN_URL", sim.handle.url())
        .env("AZURE_TENANT_ID", sim::SIM_TENANT_ID)
        .env("AZURE_CLIENT_ID", sim::SIM_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", sim::SIM_CLIENT_SECRET)
        .arg("apply")
        .arg(input)
        .args(["--yes", "-o", "r.csv"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c.spawn().expect("apply starts")
}

#[test]
fn apply_at_half_the_documented_write_limit_changes_everyone_once() {
    // 40 writes per 2 s = 20/s; the client is told 39/s (as if that were Graph's documented
    // budget).
    let sim = TestSim::with(tenant(300, 34, 2.0, 40));
    let before = snapshot(&sim);
    let dir = scratch();
    let inputs: Vec<String> = before
        .values()
        .map(|u| u.user_principal_name.clone())
        .collect();
    let input = input_csv(dir.path(), "users.csv", &inputs);
    let o = sim
        .cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", "r.csv", "--write-rate", "39"])
        .timeout(Duration::from_secs(180))
        .output()
        .expect("apply runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let after = snapshot(&sim);
    let c = sim.counters();
    let rows = read_csv(&dir.path().join("r.csv"));
    let counts = check_apply_truth(&before, &after, &inputs, &rows, &c.writes_per_user);
    let needed = before
        .values()
        .filter(|u| u.per_user_mfa_state == "disabled")
        .count();
    assert_eq!(counts.get("changed").copied(), Some(needed), "{counts:?}");
    assert!(after.values().all(|u| u.per_user_mfa_state != "disabled"));
    assert_eq!(c.writes as usize, needed);
    assert!(
        c.throttled as f64 / c.writes as f64 <= 0.1,
        "{} 429s for {} writes",
        c.throttled,
        c.writes
    );
}

#[test]
fn ctrl_c_with_a_slow_write_rate_exits_130_at_once_with_every_row() {
    let sim = TestSim::with(tenant(80, 35, 150.0, 3000));
    let before = snapshot(&sim);
    let dir = scratch();
    let inputs: Vec<String> = before
        .values()
        .map(|u| u.user_principal_name.clone())
        .collect();
    let input = input_csv(dir.path(), "users.csv", &inputs);
    // One write every 20 s: before, the first batch alone waited 400 s for its pacing slot.
    let mut child = spawn_apply(&sim, dir.path(), &input, &["--write-rate", "0.05"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.counters().writes == 0 {
        assert!(Instant::now() < deadline, "no write started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok);
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("still running 20 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let after = snapshot(&sim);
    let c = sim.counters();
    let rows = read_csv(&dir.path().join("r.csv"));
    // One row per input row, each telling the truth.
    let counts = check_apply_truth(&before, &after, &inputs, &rows, &c.writes_per_user);
    assert!(
        counts.get("skipped").copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
}

#[tokio::test]
async fn the_simulator_says_how_full_its_budgets_are_and_its_limits_change_at_run_time() {
    use crate::sim_common::{http, patch_state, start_with, token};
    let s = start_with(|c| c.limits.writes_per_150s = 5).await;
    let tok = token(&s).await;
    let users = [
        "liam.o'connor@northwind.example",
        "hyper.link@northwind.example",
        "matheo.durand@northwind.example",
        "juergen.weiss@northwind.example",
        "zoe.lindqvist@northwind.example",
    ];
    let header = |r: &reqwest::Response, n: &str| {
        r.headers().get(n).map(|v| v.to_str().unwrap().to_string())
    };
    let mut pct = Vec::new();
    for u in users {
        let r = patch_state(&s, &tok, u, "enabled").await;
        assert_eq!(r.status(), 204);
        assert_eq!(header(&r, "x-ms-resource-unit").as_deref(), Some("1"));
        pct.push(header(&r, "x-ms-throttle-limit-percentage"));
    }
    // Sent from 80 % of the budget: the 4th and 5th of 5 writes.
    assert_eq!(
        pct,
        vec![None, None, None, Some("0.80".into()), Some("1.00".into())]
    );
    let r = patch_state(&s, &tok, "aokafor@northwind.example", "enabled").await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        header(&r, "x-ms-throttle-scope").unwrap(),
        format!(
            "Tenant_Application/Write/{}/{}",
            sim::SIM_CLIENT_ID,
            sim::SIM_TENANT_ID
        )
    );
    assert_eq!(
        header(&r, "x-ms-throttle-information").as_deref(),
        Some("WriteLimitExceeded")
    );
    // Another app starts writing: the tenant's budget for all apps shrinks, at run time.
    let url = format!("{}/_sim/limits", s.url());
    let now: serde_json::Value = http().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["writes_per_150s"], 5);
    assert_eq!(now["tenant_writes_per_300s"], 18000);
    let r = http()
        .post(&url)
        .json(&serde_json::json!({"writes_per_150s": 100, "tenant_writes_per_300s": 6}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let now: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (
            now["writes_per_150s"].as_u64(),
            now["tenant_writes_per_300s"].as_u64()
        ),
        (Some(100), Some(6))
    );
    assert_eq!(s.limits().tenant_writes_per_300s, 6);
    let r = patch_state(&s, &tok, "aokafor@northwind.example", "enabled").await;
    assert_eq!(r.status(), 204, "the 6th write of the tenant");
    let r = patch_state(&s, &tok, "priya.raman@northwind.example", "enabled").await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "x-ms-throttle-scope")
        .unwrap()
        .starts_with("Tenant/Write/"));
    let bad = http()
        .post(&url)
        .json(&serde_json::json!({"write_limit": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "unknown fields are refused");
}
