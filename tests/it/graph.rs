//! The Graph client against a scripted Graph on loopback (exact edge cases).

use std::time::Duration;

use mfa_bulk::graph::{
    Access, CallError, Credential, ErrorKind, Graph, GraphConfig, GraphError, Lookup, Secret,
};
use mfa_bulk::model::{MfaState, UserRef};

use crate::graph_fake::{self as fake, Script};

const ALL: &[&str] = &["User.Read.All", "Policy.ReadWrite.AuthenticationMethod"];

fn cfg(url: &str, credential: Credential) -> GraphConfig {
    GraphConfig {
        graph_url: url.into(),
        login_url: url.into(),
        cloud: "custom".into(),
        tenant: fake::TENANT.into(),
        client_id: fake::CLIENT.into(),
        credential,
        ru_per_10s: Some(100_000),
        writes_per_sec: Some(1000.0),
        concurrency: 8,
        timeout: Duration::from_secs(2),
    }
}

fn secret() -> Credential {
    Credential::Secret(Secret::new(fake::SECRET))
}

fn script(n: usize, roles: &[&str]) -> Script {
    Script {
        users: fake::users(n),
        roles: roles.iter().map(|s| s.to_string()).collect(),
        ..Script::default()
    }
}

async fn states(g: &Graph, n: usize) -> Vec<Result<MfaState, CallError>> {
    let ids: Vec<String> = (0..n).map(fake::id).collect();
    let mut out: Vec<Option<Result<MfaState, CallError>>> = vec![None; n];
    g.get_states(&ids, |i, r| {
        assert!(out[i].is_none(), "item {i} answered twice");
        out[i] = Some(r.map(|r| r.value));
    })
    .await;
    out.into_iter()
        .map(|r| r.expect("every item answered"))
        .collect()
}

async fn set_all(g: &Graph, n: usize) -> Vec<Result<Option<String>, CallError>> {
    let ch: Vec<(String, MfaState)> = (0..n).map(|i| (fake::id(i), MfaState::Enabled)).collect();
    let mut out = vec![None; n];
    g.set_states(&ch, |i, r| out[i] = Some(r.map(|r| r.request_id)))
        .await;
    out.into_iter()
        .map(|r| r.expect("every item answered"))
        .collect()
}

#[tokio::test]
async fn secret_sign_in_reads_identity_and_sends_our_headers() {
    let f = fake::start(script(3, ALL)).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    let id = g.identity();
    assert_eq!(id.tenant_id, fake::TENANT);
    assert_eq!(id.app_name.as_deref(), Some("Fake app"));
    assert_eq!(id.roles, ALL);
    g.check_access(Access::Write).unwrap();
    let r = states(&g, 3).await;
    assert!(r.iter().all(|r| r.as_ref().unwrap() == &MfaState::Disabled));
    let log = f.log.lock().unwrap();
    assert!(log.user_agent.as_deref().unwrap().starts_with("mfa-bulk/"));
    assert_eq!(
        log.client_request_ids.len() as u64,
        log.http,
        "a fresh client-request-id per request"
    );
    assert_eq!(log.batches, 1, "3 reads in one $batch");
}

#[tokio::test]
async fn wrong_secret_is_an_auth_error_that_never_shows_the_secret() {
    let f = fake::start(script(1, ALL)).await;
    let e = Graph::connect(cfg(
        &f.url(),
        Credential::Secret(Secret::new("wrong-secret-xyz")),
    ))
    .await
    .err()
    .unwrap();
    let shown = format!("{e} {e:?}");
    assert!(matches!(e, GraphError::Auth(_)));
    assert!(shown.contains("AADSTS7000215"), "{shown}");
    assert!(!shown.contains("wrong-secret-xyz"), "{shown}");
    assert_eq!(e.exit_code().code(), 3);
}

#[tokio::test]
async fn certificate_sign_in_sends_a_valid_ps256_assertion() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs");
    let pem = std::fs::read_to_string(format!("{dir}/app.pem")).unwrap();
    let cert = mfa_bulk::graph::AppCertificate::from_pem(&pem, None).unwrap();
    let x5t = std::fs::read_to_string(format!("{dir}/x5t-s256.txt"))
        .unwrap()
        .trim()
        .to_string();
    let mut s = script(1, ALL);
    s.cert = Some((cert.public_key_der(), x5t));
    let f = fake::start(s).await;
    let cred = Credential::Certificate {
        path: format!("{dir}/app.pem").into(),
        password: None,
    };
    let g = Graph::connect(cfg(&f.url(), cred)).await.unwrap();
    assert_eq!(g.identity().app_id, fake::CLIENT);
    let a = f.log.lock().unwrap().last_assertion.clone().unwrap();
    assert_eq!(
        a["aud"],
        format!("{}/{}/oauth2/v2.0/token", f.url(), fake::TENANT)
    );
    assert_eq!(a["iss"], fake::CLIENT);
    assert_eq!(a["sub"], fake::CLIENT);
    assert!(a["exp"].as_i64().unwrap() - a["nbf"].as_i64().unwrap() <= 600);
}

#[tokio::test]
async fn device_code_polls_through_pending_and_slow_down() {
    let mut s = script(1, &[]);
    s.device_script = vec![
        "authorization_pending".into(),
        "slow_down".into(),
        "authorization_pending".into(),
    ];
    let f = fake::start(s).await;
    let g = Graph::connect(cfg(&f.url(), Credential::DeviceCode))
        .await
        .unwrap();
    let id = g.identity();
    assert_eq!(id.user.as_deref(), Some("admin@contoso.com"));
    assert!(id
        .scopes
        .contains(&"Policy.ReadWrite.AuthenticationMethod".to_string()));
    g.check_access(Access::Write).unwrap();
    assert_eq!(
        f.log.lock().unwrap().token_requests,
        5,
        "devicecode + 4 polls"
    );
}

#[tokio::test]
async fn device_code_declined_is_an_auth_error() {
    let mut s = script(1, &[]);
    s.device_script = vec![
        "authorization_pending".into(),
        "authorization_declined".into(),
    ];
    let f = fake::start(s).await;
    let e = Graph::connect(cfg(&f.url(), Credential::DeviceCode))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, GraphError::Auth(ref m) if m.contains("declined")),
        "{e}"
    );
}

#[tokio::test]
async fn env_token_is_used_as_is_and_a_401_is_not_retried_forever() {
    let f = fake::start(script(2, ALL)).await;
    // Get a real token from the fake first, as automation would.
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    drop(g);
    let tok = {
        // A fresh client fetches a second token; reuse the fake's issuance via a connect.
        let c = cfg(&f.url(), secret());
        let g2 = Graph::connect(c).await.unwrap();
        assert_eq!(g2.stats().tokens_fetched, 1);
        f.log.lock().unwrap().tokens_issued
    };
    assert_eq!(tok, 2);
    // An opaque, unknown token: Graph answers 401; we do not loop.
    let g = Graph::connect(cfg(
        &f.url(),
        Credential::AccessToken(Secret::new("not-valid-token")),
    ))
    .await
    .unwrap();
    assert_eq!(g.stats().tokens_fetched, 0);
    let r = states(&g, 1).await;
    let e = r[0].as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert_eq!(f.log.lock().unwrap().unauthorized, 1);
}

#[tokio::test]
async fn short_tokens_are_refreshed_before_they_expire() {
    let mut s = script(40, ALL);
    s.lifetime = 0.5;
    let f = fake::start(s).await;
    let mut c = cfg(&f.url(), secret());
    c.ru_per_10s = Some(200); // 20 RU/s: 40 reads take about 2 s, four token lifetimes
    let g = Graph::connect(c).await.unwrap();
    let r = states(&g, 40).await;
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    assert!(g.stats().tokens_fetched >= 3, "{:?}", g.stats());
    assert_eq!(
        f.log.lock().unwrap().unauthorized,
        0,
        "refreshed early, never sent an expired token"
    );
}

#[tokio::test]
async fn revoked_token_is_refreshed_once_for_all_workers() {
    let f = fake::start(script(200, ALL)).await;
    let mut c = cfg(&f.url(), secret());
    c.concurrency = 8;
    let g = Graph::connect(c).await.unwrap();
    f.revoke_tokens();
    let r = states(&g, 200).await;
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    assert_eq!(
        g.stats().tokens_fetched,
        2,
        "one refresh shared by everyone"
    );
}

#[tokio::test]
async fn a_429_wave_holds_every_worker_for_retry_after() {
    let mut s = script(400, ALL);
    s.throttle_after = Some(60);
    s.throttle_for = 0.5;
    let f = fake::start(s).await;
    let mut c = cfg(&f.url(), secret());
    c.concurrency = 8;
    c.ru_per_10s = Some(4000); // 400 RU/s
    let g = Graph::connect(c).await.unwrap();
    let started = std::time::Instant::now();
    let r = states(&g, 400).await;
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    let log = f.log.lock().unwrap();
    // Only batches already in flight when the first 429 came back hit the closed window.
    assert!(
        log.during_throttle <= 8 * 20,
        "{} items sent while throttled",
        log.during_throttle
    );
    assert!(g.stats().throttled >= 1);
    assert!(g.ru_rate_per_10s() < 4000.0, "the rate backed off");
}

#[tokio::test]
async fn throttled_and_failing_batch_items_are_retried_alone() {
    let mut s = script(20, ALL);
    s.throttle_once.insert(fake::id(3));
    s.fail.insert(fake::id(5), (503, 2, false));
    s.fail.insert(fake::id(7), (404, 99, false));
    let f = fake::start(s).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    let r = states(&g, 20).await;
    for (i, x) in r.iter().enumerate() {
        if i == 7 {
            let e = x.as_ref().unwrap_err();
            assert_eq!(e.kind, ErrorKind::NotFound);
            assert_eq!(
                e.request_id.as_deref(),
                Some("item-rid-8"),
                "the item's own request-id"
            );
        } else {
            assert!(x.is_ok(), "{i}: {x:?}");
        }
    }
    let log = f.log.lock().unwrap();
    assert_eq!(
        log.batches, 3,
        "first batch, then only the throttled/failed items"
    );
    assert_eq!(log.items, 20 + 2 + 1);
    assert_eq!(g.stats().throttled, 1);
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_not_resent() {
    let mut s = script(1, ALL);
    s.hang_writes = true;
    let f = fake::start(s).await;
    let mut c = cfg(&f.url(), secret());
    c.timeout = Duration::from_millis(800);
    let g = Graph::connect(c).await.unwrap();
    let r = set_all(&g, 1).await;
    assert_eq!(r[0].as_ref().unwrap_err().kind, ErrorKind::OutcomeUnknown);
    assert_eq!(f.log.lock().unwrap().writes_applied, 1);
    assert_eq!(
        f.state_of(&fake::id(0)),
        "enabled",
        "it was in fact applied"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.log.lock().unwrap().http, 1, "never resent");
}

#[tokio::test]
async fn a_lost_batch_answer_makes_every_write_outcome_unknown() {
    let mut s = script(5, ALL);
    s.hang_batches = true;
    let f = fake::start(s).await;
    let mut c = cfg(&f.url(), secret());
    c.timeout = Duration::from_millis(800);
    let g = Graph::connect(c).await.unwrap();
    let r = set_all(&g, 5).await;
    assert!(
        r.iter()
            .all(|r| r.as_ref().unwrap_err().kind == ErrorKind::OutcomeUnknown),
        "{r:?}"
    );
    assert_eq!(f.log.lock().unwrap().batches, 1);
}

#[tokio::test]
async fn writes_retry_429_and_503_with_retry_after_but_not_a_bare_500() {
    let mut s = script(6, ALL);
    s.throttle_once.insert(fake::id(0));
    s.fail.insert(fake::id(1), (503, 1, true));
    s.fail.insert(fake::id(2), (500, 1, false));
    let f = fake::start(s).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    let r = set_all(&g, 6).await;
    assert!(r[0].is_ok() && r[1].is_ok(), "{r:?}");
    let e = r[2].as_ref().unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::OutcomeUnknown, Some(500)));
    assert!(r[3..].iter().all(|r| r
        .as_ref()
        .unwrap()
        .as_deref()
        .unwrap()
        .starts_with("item-rid-")));
    assert_eq!(
        f.log.lock().unwrap().writes_applied,
        5,
        "each applied once, the 500 never resent"
    );
}

#[tokio::test]
async fn read_only_app_is_told_which_permission_is_missing() {
    let f = fake::start(script(2, &["User.Read.All", "Policy.Read.All"])).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    g.check_access(Access::Read).unwrap();
    let e = g.check_access(Access::Write).unwrap_err();
    assert!(matches!(e, GraphError::MissingPermission(_)));
    assert_eq!(e.exit_code().code(), 3);
    assert!(e
        .to_string()
        .contains("Policy.ReadWrite.AuthenticationMethod"));
    // And if it writes anyway, the 403 is reported as a permission problem.
    let r = set_all(&g, 2).await;
    let e = r[0].as_ref().unwrap_err();
    assert!(e.is_permission_problem(), "{e:?}");
}

#[tokio::test]
async fn stop_sending_cancels_what_was_not_sent() {
    let f = fake::start(script(100, ALL)).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    g.stop_sending();
    let r = states(&g, 100).await;
    assert!(r
        .iter()
        .all(|r| r.as_ref().unwrap_err().kind == ErrorKind::Cancelled));
    assert_eq!(f.log.lock().unwrap().http, 0);
}

#[tokio::test]
async fn resolve_by_upn_id_and_mail_with_ambiguity() {
    let f = fake::start(script(3, ALL)).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    let keys = vec![
        UserRef::Address("user1@contoso.com".into()),
        UserRef::ObjectId(fake::id(2)),
        UserRef::Address("u0.mail@contoso.com".into()),
        UserRef::Address("nobody@contoso.com".into()),
        UserRef::ObjectId("00000000-0000-4000-8000-999999999999".into()),
        UserRef::Address("shared@contoso.com".into()),
    ];
    let mut out: Vec<Option<Lookup>> = vec![None; keys.len()];
    g.resolve(&keys, |i, r| out[i] = Some(r.unwrap())).await;
    let found = |l: &Option<Lookup>| match l {
        Some(Lookup::Found(u)) => u.id.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(found(&out[0]), fake::id(1));
    assert_eq!(found(&out[1]), fake::id(2));
    assert_eq!(found(&out[2]), fake::id(0));
    assert!(matches!(out[3], Some(Lookup::NotFound)));
    assert!(matches!(out[4], Some(Lookup::NotFound)));
    assert!(matches!(&out[5], Some(Lookup::Ambiguous(v)) if v.len() == 3));
}

#[tokio::test]
async fn check_command_exit_codes() {
    let f = fake::start(script(2, &["User.Read.All", "Policy.Read.All"])).await;
    let url = f.url();
    let run = move |secret: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            assert_cmd::Command::cargo_bin("mfa-bulk")
                .unwrap()
                .args([
                    "check",
                    "--json",
                    "--tenant",
                    fake::TENANT,
                    "--client-id",
                    fake::CLIENT,
                ])
                .args(["--graph-url", &url, "--login-url", &url])
                .env_remove("MFA_BULK_ACCESS_TOKEN")
                .env("AZURE_CLIENT_SECRET", secret)
                .output()
                .unwrap()
        })
    };
    let out = run(fake::SECRET).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["dry_run"]["allowed"], true);
    assert_eq!(v["apply"]["allowed"], false);
    assert_eq!(v["probe"]["ok"], true);
    assert!(v["advice"]
        .as_str()
        .unwrap()
        .contains("Policy.ReadWrite.AuthenticationMethod"));
    assert!(!stdout.contains(fake::SECRET));
    assert_eq!(f.log.lock().unwrap().writes_applied, 0);

    f.script
        .lock()
        .unwrap()
        .roles
        .push("Policy.ReadWrite.AuthenticationMethod".into());
    let out = run(fake::SECRET).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = run("wrong-secret-abc").await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("wrong-secret-abc"), "{all}");
}

async fn registration(g: &Graph, n: usize) -> Vec<Option<bool>> {
    let ids: Vec<String> = (0..n).map(fake::id).collect();
    let mut out = vec![None; n];
    let mut calls = 0;
    g.registration(&ids, |i, r| {
        calls += 1;
        out[i] = r;
    })
    .await
    .unwrap();
    assert_eq!(calls, n);
    out
}

#[tokio::test]
async fn registration_from_the_report_in_few_requests() {
    let mut s = script(20, ALL);
    s.premium = true;
    let f = fake::start(s).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    let r = registration(&g, 20).await;
    assert_eq!(r, (0..20).map(|i| Some(i % 2 == 0)).collect::<Vec<_>>());
    assert_eq!(
        f.log.lock().unwrap().report_requests,
        2,
        "15 ids per request"
    );
}

#[tokio::test]
async fn registration_falls_back_to_methods_without_premium_then_to_unknown() {
    let f = fake::start(script(4, ALL)).await;
    let g = Graph::connect(cfg(&f.url(), secret())).await.unwrap();
    assert_eq!(
        registration(&g, 4).await,
        vec![Some(true), Some(false), Some(true), Some(false)]
    );
    f.script.lock().unwrap().methods_forbidden = true;
    assert_eq!(registration(&g, 4).await, vec![None; 4]);
}

#[tokio::test]
async fn list_users_follows_next_links_and_count_sets_the_budget() {
    let f = fake::start(script(5, ALL)).await;
    let mut c = cfg(&f.url(), secret());
    c.ru_per_10s = None;
    let g = Graph::connect(c).await.unwrap();
    assert!(
        (g.ru_rate_per_10s() - 3325.0).abs() < 1.0,
        "unknown size: 95 % of 3,500"
    );
    let mut seen = Vec::new();
    let users = g.list_users(&mut |n| seen.push(n)).await.unwrap();
    assert_eq!(users.len(), 5);
    assert_eq!(seen, vec![2, 4, 5]);
    assert_eq!(g.count_users().await.unwrap(), 5);
    assert!(
        (g.ru_rate_per_10s() - 3325.0).abs() < 1.0,
        "< 50 users: still 3,500"
    );
    g.set_tenant_size(10_000);
    assert!((g.ru_rate_per_10s() - 7600.0).abs() < 1.0);
}

/// The engine spawns these futures: they must be `Send`, and `Graph` `Send + Sync + Clone`.
#[allow(dead_code)]
fn futures_are_send(g: Graph, a: mfa_bulk::settings::GraphTarget) {
    fn send<T: Send>(_: T) {}
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<Graph>();
    let ids: Vec<String> = Vec::new();
    let ch: Vec<(String, MfaState)> = Vec::new();
    let keys: Vec<UserRef> = Vec::new();
    send(g.get_states(&ids, |_, _| {}));
    send(g.set_states(&ch, |_, _| {}));
    send(g.resolve(&keys, |_, _| {}));
    send(g.registration(&ids, |_, _| {}));
    send(g.count_users());
    send(Graph::connect(cfg("http://127.0.0.1:1", secret())));
    send(a.connect());
}
