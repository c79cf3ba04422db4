//! The Graph client against the built-in simulator (in process, loopback): sign-in kinds,
//! token expiry, throttling waves, faults, lost writes, permissions, `check --sim`.

use std::time::Duration;

use mfa_bulk::graph::{
    Access, CallError, Credential, ErrorKind, Graph, GraphConfig, GraphError, Secret,
};
use mfa_bulk::model::MfaState;
use mfa_bulk::sim::{self, ClientSeed, FaultConfig, SimConfig, SimHandle};

fn cfg(h: &SimHandle, client_id: &str, credential: Credential) -> GraphConfig {
    GraphConfig {
        graph_url: h.url(),
        login_url: h.url(),
        cloud: "custom".into(),
        tenant: sim::SIM_TENANT_ID.into(),
        client_id: client_id.into(),
        credential,
        ru_per_10s: None,
        writes_per_sec: None,
        concurrency: 8,
        timeout: Duration::from_secs(5),
    }
}

fn app(h: &SimHandle) -> GraphConfig {
    cfg(
        h,
        sim::SIM_CLIENT_ID,
        Credential::Secret(Secret::new(sim::SIM_CLIENT_SECRET)),
    )
}

/// A generated tenant of `n` users, time running `scale` times faster.
async fn big(n: usize, scale: f64, f: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut c = SimConfig::with_tenant(sim::generate_tenant(n, 7));
    c.time_scale = scale;
    f(&mut c);
    sim::start(c).await.unwrap()
}

fn ids(h: &SimHandle) -> Vec<String> {
    h.users_state().into_iter().map(|u| u.id).collect()
}

async fn read_all(g: &Graph, ids: &[String]) -> Vec<Result<MfaState, CallError>> {
    let mut out: Vec<Option<Result<MfaState, CallError>>> = vec![None; ids.len()];
    g.get_states(ids, |i, r| {
        assert!(out[i].is_none());
        out[i] = Some(r.map(|r| r.value));
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

async fn write_all(g: &Graph, ids: &[String], st: MfaState) -> Vec<Result<(), CallError>> {
    let ch: Vec<(String, MfaState)> = ids.iter().map(|i| (i.clone(), st.clone())).collect();
    let mut out: Vec<Option<Result<(), CallError>>> = vec![None; ids.len()];
    g.set_states(&ch, |i, r| out[i] = Some(r.map(|_| ()))).await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn settings_with_sim_sign_in_with_every_permission() {
    use clap::Parser;
    let cli = mfa_bulk::cli::Cli::parse_from(["mfa-bulk", "check", "--sim"]);
    let mfa_bulk::cli::Command::Check(a) = cli.command else {
        unreachable!()
    };
    let target = mfa_bulk::settings::GraphTarget::from_args(&a.graph).unwrap();
    assert!(target.is_simulator());
    let g = target.connect().await.unwrap();
    let id = g.identity();
    assert_eq!(id.tenant_id, sim::SIM_TENANT_ID);
    assert_eq!(id.app_id, sim::SIM_CLIENT_ID);
    g.check_access(Access::Write).unwrap();
    g.probe().await.unwrap();
    let n = g.count_users().await.unwrap();
    assert_eq!(n as usize, SimConfig::sample().tenant.users.len());
}

#[tokio::test]
async fn certificate_sign_in_with_our_test_certificate() {
    let pem = include_str!("../fixtures/certs/cert.pem");
    let mut c = SimConfig::sample();
    c.tenant.clients.push(ClientSeed {
        client_id: "0a1b2c3d-0000-4000-8000-00000000cafe".into(),
        display_name: "mfa-bulk cert test".into(),
        secret: None,
        certificate: Some(pem.into()),
        public_key: None,
        roles: vec![
            "User.Read.All".into(),
            "Policy.ReadWrite.AuthenticationMethod".into(),
        ],
        public_client: false,
        scopes: vec![],
        signed_in_user: None,
        redirect_uris: vec![],
        deny_consent: false,
    });
    let h = sim::start(c).await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs/app.pem");
    let cred = Credential::Certificate {
        path: path.into(),
        password: None,
    };
    let g = Graph::connect(cfg(&h, "0a1b2c3d-0000-4000-8000-00000000cafe", cred))
        .await
        .unwrap();
    assert_eq!(g.identity().app_name.as_deref(), Some("mfa-bulk cert test"));
    g.check_access(Access::Write).unwrap();
    g.probe().await.unwrap();

    // The PKCS#1 form of the same key works too; the simulator's own cert-app as well.
    let path1 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/certs/app-pkcs1.pem"
    );
    let cred = Credential::Certificate {
        path: path1.into(),
        password: None,
    };
    Graph::connect(cfg(&h, "0a1b2c3d-0000-4000-8000-00000000cafe", cred))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sim-cert.pem");
    std::fs::write(&p, sim::SIM_CERT_PEM).unwrap();
    let cred = Credential::Certificate {
        path: p,
        password: None,
    };
    Graph::connect(cfg(&h, sim::SIM_CERT_CLIENT_ID, cred))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_certificate_the_app_does_not_know_is_refused() {
    let h = sim::start(SimConfig::sample()).await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs/app.pem");
    let cred = Credential::Certificate {
        path: path.into(),
        password: None,
    };
    let e = Graph::connect(cfg(&h, sim::SIM_CERT_CLIENT_ID, cred))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, GraphError::Auth(_)), "{e}");
}

#[tokio::test]
async fn device_code_sign_in_as_an_admin() {
    let mut c = SimConfig::sample();
    c.time_scale = 50.0;
    c.limits.device_code_auto_approve_polls = 2;
    let h = sim::start(c).await.unwrap();
    let g = Graph::connect(cfg(&h, sim::SIM_DEVICE_CLIENT_ID, Credential::DeviceCode))
        .await
        .unwrap();
    let id = g.identity();
    assert_eq!(id.user.as_deref(), Some("it.admin@northwind.example"));
    assert!(!id.scopes.is_empty(), "{id:?}");
    g.check_access(Access::Write).unwrap();
    g.probe().await.unwrap();
}

#[tokio::test]
async fn a_ready_token_from_the_environment_is_used() {
    let h = sim::start(SimConfig::sample()).await.unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tok: serde_json::Value = reqwest::Client::builder()
        .build()
        .unwrap()
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
    let t = tok["access_token"].as_str().unwrap().to_string();
    let mut c = cfg(&h, "", Credential::AccessToken(Secret::new(t.clone())));
    c.tenant = String::new();
    let g = Graph::connect(c.clone()).await.unwrap();
    assert_eq!(g.identity().tenant_id, sim::SIM_TENANT_ID);
    g.check_access(Access::Write).unwrap();
    let r = read_all(&g, &ids(&h)[..3]).await;
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    assert_eq!(g.stats().tokens_fetched, 0);
    // Revoked: reported as a sign-in problem, not retried forever.
    h.revoke_tokens();
    let r = read_all(&g, &ids(&h)[..3]).await;
    assert!(
        r.iter()
            .all(|r| r.as_ref().unwrap_err().kind == ErrorKind::Unauthorized),
        "{r:?}"
    );
    assert!(!format!("{c:?}").contains(&t));
}

#[tokio::test]
async fn tokens_expiring_mid_run_are_renewed_without_errors() {
    // 3599 simulated seconds would be too long: 20 s tokens at 20× are 1 s real.
    let h = big(300, 20.0, |c| c.limits.token_lifetime_secs = 20).await;
    let mut c = app(&h);
    c.ru_per_10s = Some(1500); // 150 RU/s: 300 reads take about 2 s
    let g = Graph::connect(c).await.unwrap();
    let r = read_all(&g, &ids(&h)).await;
    assert!(
        r.iter().all(|r| r.is_ok()),
        "{:?}",
        r.iter().find(|r| r.is_err())
    );
    assert!(g.stats().tokens_fetched >= 2, "{:?}", g.stats());
    assert_eq!(h.counters().unauthorized, 0, "renewed before expiry");
}

#[tokio::test]
async fn revoked_tokens_are_renewed_once_and_the_requests_retried() {
    let h = big(200, 1.0, |_| {}).await;
    let g = Graph::connect(app(&h)).await.unwrap();
    h.revoke_tokens();
    let r = read_all(&g, &ids(&h)).await;
    assert!(r.iter().all(|r| r.is_ok()));
    assert_eq!(g.stats().tokens_fetched, 2);
}

#[tokio::test]
async fn a_429_storm_is_waited_out_by_every_worker() {
    // The simulator allows 200 RU per (scaled) 10 s, i.e. 200 per real second at 10×; the
    // client is told it may use 3× that.
    let h = big(600, 10.0, |c| c.limits.ru_per_10s = Some(200)).await;
    let mut c = app(&h);
    c.ru_per_10s = Some(6000);
    c.concurrency = 8;
    let g = Graph::connect(c).await.unwrap();
    let all = ids(&h);
    let r = read_all(&g, &all).await;
    assert!(
        r.iter().all(|r| r.is_ok()),
        "{:?}",
        r.iter().find(|r| r.is_err())
    );
    let sim_429 = h.counters().throttled;
    let s = g.stats();
    assert_eq!(s.throttled, sim_429);
    // Without a shared gate and back-off every item would be retried into the wall again and
    // again; with them the storm is a few waves, fewer 429s than items however loaded the
    // machine is (unloaded, about a third of the items see one).
    assert!(
        sim_429 < all.len() as u64,
        "{sim_429} 429s for {} reads: {s:?}",
        all.len()
    );
    assert!(g.ru_rate_per_10s() < 6000.0, "the rate backed off");
}

#[tokio::test]
async fn injected_server_errors_heal_for_reads() {
    let h = big(100, 1.0, |c| {
        c.faults = FaultConfig {
            error_rate: 0.2,
            ..FaultConfig::default()
        }
    })
    .await;
    let g = Graph::connect(app(&h)).await.unwrap();
    let r = read_all(&g, &ids(&h)).await;
    assert!(
        r.iter().all(|r| r.is_ok()),
        "{:?}",
        r.iter().find(|r| r.is_err())
    );
    assert!(h.counters().injected_errors > 0);
    assert!(g.stats().retries > 0);
}

#[tokio::test]
async fn dropped_connections_heal_for_reads() {
    let h = big(100, 1.0, |c| {
        c.faults = FaultConfig {
            drop_rate: 0.1,
            ..FaultConfig::default()
        }
    })
    .await;
    let g = Graph::connect(app(&h)).await.unwrap();
    let r = read_all(&g, &ids(&h)).await;
    assert!(
        r.iter().all(|r| r.is_ok()),
        "{:?}",
        r.iter().find(|r| r.is_err())
    );
}

#[tokio::test]
async fn lost_writes_come_back_outcome_unknown_and_are_not_resent() {
    let h = big(60, 10.0, |_| {}).await;
    let mut c = app(&h);
    c.writes_per_sec = Some(150.0);
    let g = Graph::connect(c).await.unwrap();
    let targets: Vec<String> = ids(&h);
    h.set_faults(FaultConfig {
        lost_write_rate: 1.0,
        ..FaultConfig::default()
    });
    let r = write_all(&g, &targets, MfaState::Enforced).await;
    assert!(
        r.iter()
            .all(|r| r.as_ref().unwrap_err().kind == ErrorKind::OutcomeUnknown),
        "{r:?}"
    );
    let c = h.counters();
    assert!(
        c.writes_per_user.values().all(|&n| n <= 1),
        "a write was resent: {:?}",
        c.writes_per_user
    );
    // Reading tells what happened.
    h.set_faults(FaultConfig::default());
    let after = read_all(&g, &targets).await;
    let applied = after
        .iter()
        .filter(|r| r.as_ref().unwrap() == &MfaState::Enforced)
        .count();
    assert_eq!(
        applied,
        targets.len(),
        "the simulator applied every lost write"
    );
    assert!(c.lost_writes > 0);
}

#[tokio::test]
async fn writes_are_applied_once_each() {
    let h = big(100, 10.0, |_| {}).await;
    let mut c = app(&h);
    c.writes_per_sec = Some(150.0); // the simulator at 10× allows 200/s
    let g = Graph::connect(c).await.unwrap();
    let targets = ids(&h);
    let r = write_all(&g, &targets, MfaState::Enforced).await;
    assert!(
        r.iter().all(|r| r.is_ok()),
        "{:?}",
        r.iter().find(|r| r.is_err())
    );
    assert!(h
        .users_state()
        .iter()
        .all(|u| u.per_user_mfa_state == "enforced"));
    assert!(h.counters().writes_per_user.values().all(|&n| n == 1));
    assert_eq!(g.stats().writes, 100);
    assert_eq!(g.stats().http_requests, 5, "five $batch requests of 20");
}

#[tokio::test]
async fn read_only_apps_get_missing_permission() {
    let h = sim::start(SimConfig::sample()).await.unwrap();
    let ro = cfg(
        &h,
        sim::SIM_READONLY_CLIENT_ID,
        Credential::Secret(Secret::new(sim::SIM_READONLY_CLIENT_SECRET)),
    );
    let g = Graph::connect(ro).await.unwrap();
    g.check_access(Access::Read).unwrap();
    let e = g.check_access(Access::Write).unwrap_err();
    assert!(
        matches!(e, GraphError::MissingPermission(ref m) if m.contains("Policy.ReadWrite.AuthenticationMethod")),
        "{e}"
    );
    // Writing anyway: a 403 reported as a permission problem.
    let r = write_all(&g, &ids(&h)[..2], MfaState::Enabled).await;
    assert!(
        r.iter()
            .all(|r| r.as_ref().unwrap_err().is_permission_problem()),
        "{r:?}"
    );

    let uo = cfg(
        &h,
        sim::SIM_USERS_ONLY_CLIENT_ID,
        Credential::Secret(Secret::new(sim::SIM_USERS_ONLY_CLIENT_SECRET)),
    );
    let g = Graph::connect(uo).await.unwrap();
    let e = g.check_access(Access::Read).unwrap_err();
    assert!(e.to_string().contains("Policy.Read.All"), "{e}");
}

#[tokio::test]
async fn registration_falls_back_without_premium() {
    let h = big(30, 1.0, |c| {
        c.faults = FaultConfig {
            premium: Some(false),
            ..FaultConfig::default()
        }
    })
    .await;
    let g = Graph::connect(app(&h)).await.unwrap();
    let all = ids(&h);
    let mut got = vec![None; all.len()];
    g.registration(&all, |i, r| got[i] = r).await.unwrap();
    assert!(got.iter().all(|r| r.is_some()), "{got:?}");
    h.set_faults(FaultConfig {
        premium: Some(true),
        ..FaultConfig::default()
    });
    let mut got2 = vec![None; all.len()];
    g.registration(&all, |i, r| got2[i] = r).await.unwrap();
    assert_eq!(got, got2, "the report and the methods agree");
}

#[test]
fn check_with_sim_exits_zero_and_prints_the_identity() {
    let out = assert_cmd::Command::cargo_bin("mfa-bulk")
        .unwrap()
        .args(["check", "--sim"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(sim::SIM_TENANT_ID), "{stdout}");
    assert!(stdout.contains("apply: allowed"), "{stdout}");
    assert!(!stdout.contains(sim::SIM_CLIENT_SECRET));
    let out = assert_cmd::Command::cargo_bin("mfa-bulk")
        .unwrap()
        .args(["check", "--sim", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["apply"]["allowed"], true);
    assert_eq!(v["probe"]["ok"], true);
}

#[tokio::test]
async fn resolve_the_sample_tenant_by_what_spreadsheets_hold() {
    use mfa_bulk::graph::Lookup;
    use mfa_bulk::model::UserRef;
    let h = sim::start(SimConfig::sample()).await.unwrap();
    let g = Graph::connect(app(&h)).await.unwrap();
    let a = |s: &str| UserRef::Address(s.to_lowercase());
    let guest_id = h
        .users_state()
        .into_iter()
        .find(|u| u.user_principal_name.contains("#EXT#"))
        .unwrap()
        .id;
    let keys = vec![
        a("zoe.lindqvist@northwind.example"), // UPN
        a("liam.o'connor@northwind.example"), // quote in UPN
        a("amara.okafor@northwind.example"),  // mail, not the UPN
        a("sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com"), // guest UPN
        a("sam.lee@fabrikam.example"),        // guest's own address
        a("$svc-scanner@northwind.example"),  // $-leading UPN
        a("info@northwind.example"),          // shared proxy address
        a("nobody@northwind.example"),
        UserRef::ObjectId(guest_id.clone()),
    ];
    let mut out: Vec<Option<Lookup>> = vec![None; keys.len()];
    g.resolve(&keys, |i, r| {
        out[i] = Some(r.unwrap_or_else(|e| panic!("{i}: {e}")))
    })
    .await;
    let upn = |l: &Option<Lookup>| match l {
        Some(Lookup::Found(u)) => u.user_principal_name.to_lowercase(),
        other => panic!("{other:?}"),
    };
    assert_eq!(upn(&out[0]), "zoe.lindqvist@northwind.example");
    assert_eq!(upn(&out[1]), "liam.o'connor@northwind.example");
    assert_eq!(upn(&out[2]), "aokafor@northwind.example");
    assert_eq!(
        upn(&out[3]),
        "sam.lee_fabrikam.example#ext#@northwind.onmicrosoft.com"
    );
    assert_eq!(
        upn(&out[4]),
        "sam.lee_fabrikam.example#ext#@northwind.onmicrosoft.com"
    );
    assert_eq!(upn(&out[5]), "$svc-scanner@northwind.example");
    assert!(
        matches!(&out[6], Some(Lookup::Ambiguous(v)) if v.len() == 2),
        "{:?}",
        out[6]
    );
    assert!(matches!(out[7], Some(Lookup::NotFound)));
    assert!(matches!(&out[8], Some(Lookup::Found(u)) if u.id == guest_id));
}

#[tokio::test]
async fn stop_sending_mid_run_finishes_in_flight_and_cancels_the_rest() {
    let h = big(400, 10.0, |c| {
        c.faults = FaultConfig {
            latency_min_ms: 30,
            latency_max_ms: 30,
            ..FaultConfig::default()
        }
    })
    .await;
    let mut c = app(&h);
    c.writes_per_sec = Some(150.0);
    c.concurrency = 2;
    let g = Graph::connect(c).await.unwrap();
    let targets = ids(&h);
    let ch: Vec<(String, MfaState)> = targets
        .iter()
        .map(|i| (i.clone(), MfaState::Enforced))
        .collect();
    let (mut ok, mut cancelled, mut other) = (0u64, 0u64, 0u64);
    let g2 = g.clone();
    g.set_states(&ch, |_, r| {
        match r {
            Ok(_) => ok += 1,
            Err(e) if e.kind == ErrorKind::Cancelled => cancelled += 1,
            Err(_) => other += 1,
        }
        if ok + cancelled + other == 20 {
            g2.stop_sending();
        }
    })
    .await;
    assert_eq!(ok + cancelled + other, 400);
    assert_eq!(other, 0);
    assert!(
        (20..400).contains(&ok) && cancelled > 0,
        "ok {ok}, cancelled {cancelled}"
    );
    assert_eq!(
        h.counters().writes,
        ok,
        "exactly the answered writes were applied"
    );
}
