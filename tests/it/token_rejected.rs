//! A token Graph rejects ends the run: a ready token that is garbage or revoked mid-run (it
//! cannot be renewed), or a credential whose renewed token Graph rejects too. The client
//! stops sending after the first such 401 (one renewal first where the credential can renew),
//! says why (`Graph::token_rejected`), and every item it did not send comes back "not sent",
//! distinct from Ctrl-C. `check` with such a token is a sign-in failure, exit 3.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mfa_bulk::graph::{
    CallError, Credential, ErrorKind, Graph, GraphConfig, Secret, TOKEN_REJECTED,
};
use mfa_bulk::model::MfaState;
use mfa_bulk::sim::{self, SimConfig, SimHandle};

use crate::common::TestSim;

fn cfg(url: &str, client_id: &str, credential: Credential) -> GraphConfig {
    GraphConfig {
        graph_url: url.into(),
        login_url: url.into(),
        cloud: "custom".into(),
        tenant: sim::SIM_TENANT_ID.into(),
        client_id: client_id.into(),
        credential,
        ru_per_10s: Some(2000),
        writes_per_sec: Some(50.0),
        concurrency: 4,
        timeout: Duration::from_secs(10),
    }
}

async fn tenant(n: usize) -> SimHandle {
    let mut c = SimConfig::with_tenant(sim::generate_tenant(n, 41));
    c.faults.latency_min_ms = 2;
    c.faults.latency_max_ms = 5;
    sim::start(c).await.unwrap()
}

async fn sim_token(h: &SimHandle) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            h.url(),
            sim::SIM_TENANT_ID
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim::SIM_CLIENT_ID),
            ("client_secret", sim::SIM_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

fn ids(h: &SimHandle) -> Vec<String> {
    h.users_state().into_iter().map(|u| u.id).collect()
}

/// Every item's result.
async fn read_all(g: &Graph, ids: &[String]) -> Vec<Result<MfaState, CallError>> {
    let mut out: Vec<Option<Result<MfaState, CallError>>> = vec![None; ids.len()];
    g.get_states(ids, |i, r| out[i] = Some(r.map(|r| r.value)))
        .await;
    out.into_iter().map(Option::unwrap).collect()
}

/// Checks the shape every rejected-token run has: some items answered 401, the rest not sent
/// with the sign-in message, `token_rejected` set, nothing more sent.
fn assert_stopped_by_token<T: std::fmt::Debug>(g: &Graph, results: &[Result<T, CallError>]) {
    let rejected = g
        .token_rejected()
        .expect("the run knows the token was rejected");
    assert_eq!(rejected.kind, ErrorKind::Unauthorized, "{rejected:?}");
    assert!(g.is_stopped());
    let (mut answered_401, mut not_sent) = (0, 0);
    for r in results {
        let e = r
            .as_ref()
            .expect_err("no item succeeds with a rejected token");
        assert_eq!(e.kind, ErrorKind::Unauthorized, "{e:?}");
        if e.status == Some(401) {
            answered_401 += 1;
            assert!(!e.not_sent());
        } else {
            not_sent += 1;
            assert!(e.not_sent(), "{e:?}");
            assert_eq!(e.code, TOKEN_REJECTED);
            assert!(
                e.message.contains("rejected the sign-in token")
                    && !e.message.contains("Ctrl-C")
                    && !e.message.contains("stopping"),
                "{e}"
            );
        }
    }
    assert!(answered_401 >= 1, "{results:?}");
    assert!(not_sent > 0, "the rest was not sent");
}

#[tokio::test]
async fn a_garbage_ready_token_stops_the_run_at_the_first_401() {
    let h = tenant(200).await;
    let c = cfg(
        &h.url(),
        "",
        Credential::AccessToken(Secret::new("garbage")),
    );
    let g = Graph::connect(c).await.unwrap();
    let all = ids(&h);
    let r = read_all(&g, &all).await;
    assert_stopped_by_token(&g, &r);
    // At most what was in flight when the first 401 came back (4 requests of ≤ 20 items; a
    // 401 answers the whole $batch), not one request per user.
    let unauthorized = h.counters().unauthorized;
    assert!(
        (1..=4).contains(&unauthorized),
        "{unauthorized} requests sent"
    );
    // Later calls send nothing either.
    let before = h.counters().http_requests;
    let r = read_all(&g, &all[..5]).await;
    assert!(r.iter().all(|r| r.as_ref().unwrap_err().not_sent()));
    let mut v = None;
    g.verify_states(&all[..1], |_, r| v = Some(r)).await;
    assert!(v.unwrap().unwrap_err().not_sent());
    assert_eq!(h.counters().http_requests, before);
}

#[tokio::test]
async fn a_ready_token_revoked_mid_run_stops_the_writes_not_yet_sent() {
    let h = Arc::new(tenant(400).await);
    let tok = sim_token(&h).await;
    let mut c = cfg(&h.url(), "", Credential::AccessToken(Secret::new(tok)));
    c.writes_per_sec = Some(100.0);
    let g = Graph::connect(c).await.unwrap();
    let ch: Vec<(String, MfaState)> = ids(&h)
        .into_iter()
        .map(|i| (i, MfaState::Enabled))
        .collect();
    let answered = AtomicU64::new(0);
    let mut results: Vec<Option<Result<(), CallError>>> = vec![None; ch.len()];
    g.set_states(&ch, |i, r| {
        if answered.fetch_add(1, Ordering::SeqCst) == 40 {
            h.revoke_tokens();
        }
        results[i] = Some(r.map(|_| ()));
    })
    .await;
    let results: Vec<Result<(), CallError>> = results.into_iter().map(Option::unwrap).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!((41..400).contains(&ok), "{ok} written");
    let failed: Vec<Result<(), CallError>> = results.into_iter().filter(|r| r.is_err()).collect();
    assert_stopped_by_token(&g, &failed);
    // Exactly the answered writes were applied; the rest never left.
    assert_eq!(h.counters().writes as usize, ok);
    assert!(h.counters().unauthorized <= 4, "{:?}", h.counters());
}

#[tokio::test]
async fn a_renewed_token_graph_rejects_too_stops_after_one_renewal() {
    // A token endpoint that issues tokens and a Graph that rejects every one of them (an app
    // whose access was withdrawn).
    let issued = Arc::new(AtomicU64::new(0));
    let graph_401 = Arc::new(AtomicU64::new(0));
    let (i2, g2) = (issued.clone(), graph_401.clone());
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let (issued, graph_401) = (i2.clone(), g2.clone());
        async move {
            use axum::response::IntoResponse;
            if uri.path().ends_with("/oauth2/v2.0/token") {
                issued.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({
                    "token_type": "Bearer", "expires_in": 3599, "access_token": "h.e.s"
                }))
                .into_response()
            } else {
                graph_401.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"error": {
                        "code": "InvalidAuthenticationToken",
                        "message": "Access token validation failure."}})),
                )
                    .into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let g = Graph::connect(cfg(
        &url,
        "some-app",
        Credential::Secret(Secret::new("s3cret-value")),
    ))
    .await
    .unwrap();
    let ids: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    let r = read_all(&g, &ids).await;
    assert_stopped_by_token(&g, &r);
    assert_eq!(issued.load(Ordering::SeqCst), 2, "signed in, renewed once");
    assert!(
        graph_401.load(Ordering::SeqCst) <= 8,
        "{} requests",
        graph_401.load(Ordering::SeqCst)
    );
    assert!(!format!("{:?}", g.token_rejected()).contains("s3cret-value"));
}

#[test]
fn check_with_a_garbage_token_is_a_sign_in_failure_only() {
    let sim = TestSim::with(SimConfig::sample());
    let dir = tempfile::tempdir().unwrap();
    for json in [false, true] {
        let mut c = crate::common::bin(dir.path());
        c.env("MFA_BULK_GRAPH_URL", sim.handle.url())
            .env("MFA_BULK_LOGIN_URL", sim.handle.url())
            .env("MFA_BULK_ACCESS_TOKEN", "garbage")
            .arg("check")
            .timeout(Duration::from_secs(60));
        if json {
            c.arg("--json");
        }
        let o = c.output().unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(3), "{out}");
        assert!(!out.contains("Signed in."), "{out}");
        assert!(!out.contains("allowed"), "{out}");
        assert!(out.contains("rejected the token"), "{out}");
        if json {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
            assert_eq!(v["signed_in"], false);
            assert_eq!(v["kind"], "auth");
        }
    }
}

/// The whole binary: a garbage ready token ends dry-run and apply with exit 3 (not 1 with a
/// `failed` row per user), rows not reached say why, nothing is written.
#[test]
fn the_binary_exits_3_on_a_rejected_token_and_writes_nobody() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("u.csv");
    std::fs::write(
        &input,
        "UPN\nliam.o'connor@northwind.example\nkenji.tanaka@northwind.example\n",
    )
    .unwrap();
    for (cmd, out) in [("dry-run", "d.csv"), ("apply", "a.csv")] {
        let mut c = crate::common::bin(dir.path());
        c.env("MFA_BULK_GRAPH_URL", sim.handle.url())
            .env("MFA_BULK_LOGIN_URL", sim.handle.url())
            .env("MFA_BULK_ACCESS_TOKEN", "garbage.not.a-token")
            .arg(cmd)
            .arg(&input)
            .args(["-o", out]);
        if cmd == "apply" {
            c.arg("--yes");
        }
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {err}");
        assert!(err.contains("sign-in stopped working"), "{cmd}: {err}");
        let rows = crate::common::read_csv(&dir.path().join(out));
        assert_eq!(rows.len(), 2, "{cmd}: one row per input row");
        // The request Graph answered 401 failed with that answer; the rest were not sent.
        for r in &rows {
            match r["outcome"].as_str() {
                "failed" => assert!(r["error"].contains("401"), "{cmd}: {r:?}"),
                "skipped" => assert!(!r["error"].is_empty(), "{cmd}: {r:?}"),
                o => panic!("{cmd}: unexpected {o}: {r:?}"),
            }
        }
        assert!(
            !err.contains("garbage.not.a-token"),
            "the token is never shown"
        );
    }
    assert_eq!(sim.counters().writes, 0);
}
