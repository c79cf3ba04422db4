//! The simulator's injected faults: 5xx, lost writes, dropped connections, latency.

use std::time::Duration;

use mfa_bulk::sim::FaultConfig;
use serde_json::json;

use super::sim_common::{get, http, json_of, start, start_with, token};

#[tokio::test]
async fn error_rate_one_gives_5xx_and_can_be_changed_at_run_time() {
    let s = start().await;
    let tok = token(&s).await;
    let r = http()
        .post(format!("{}/_sim/faults", s.url()))
        .json(&json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..6 {
        let r = get(&s, &tok, "/v1.0/users/zoe.lindqvist@northwind.example").await;
        let st = r.status().as_u16();
        assert!([500, 503, 504].contains(&st), "{st}");
        let v = json_of(r).await;
        assert!(v["error"]["code"].is_string());
    }
    assert_eq!(s.counters().injected_errors, 6);
    s.set_faults(FaultConfig::default());
    let r = get(&s, &tok, "/v1.0/users/zoe.lindqvist@northwind.example").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn lost_write_is_applied_but_the_answer_never_comes() {
    let s = start_with(|c| c.faults.lost_write_rate = 1.0).await;
    let tok = token(&s).await;
    let r = http()
        .patch(format!(
            "{}/beta/users/liam.o'connor@northwind.example/authentication/requirements",
            s.url()
        ))
        .bearer_auth(&tok)
        .json(&json!({"perUserMfaState": "enabled"}))
        .send()
        .await;
    assert!(r.is_err(), "expected a connection error, got {r:?}");
    assert_eq!(
        s.user_state("liam.o'connor@northwind.example").unwrap(),
        "enabled"
    );
    assert_eq!(s.counters().lost_writes, 1);
    // Reads are answered.
    assert_eq!(
        get(
            &s,
            &tok,
            "/beta/users/liam.o'connor@northwind.example/authentication/requirements"
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn dropped_connection_changes_nothing() {
    let s = start_with(|c| c.faults.drop_rate = 1.0).await;
    let tok = token(&s).await;
    let r = http()
        .patch(format!(
            "{}/beta/users/hyper.link@northwind.example/authentication/requirements",
            s.url()
        ))
        .bearer_auth(&tok)
        .json(&json!({"perUserMfaState": "enabled"}))
        .send()
        .await;
    assert!(r.is_err());
    assert_eq!(
        s.user_state("hyper.link@northwind.example").unwrap(),
        "disabled"
    );
    assert_eq!(s.counters().dropped, 1);
}

#[tokio::test]
async fn latency_is_added() {
    let s = start_with(|c| {
        c.faults.latency_min_ms = 150;
        c.faults.latency_max_ms = 150;
    })
    .await;
    let tok = token(&s).await;
    let t = std::time::Instant::now();
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
}
