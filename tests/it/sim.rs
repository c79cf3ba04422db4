//! The Graph simulator, driven over HTTP on loopback: one test per documented rule.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use mfa_bulk::sim::{self, FaultConfig, SimConfig, SimHandle};
use serde_json::{json, Value};

const TENANT: &str = sim::SIM_TENANT_ID;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn start_with(f: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig::sample();
    f(&mut cfg);
    sim::start(cfg).await.unwrap()
}

async fn start() -> SimHandle {
    start_with(|_| {}).await
}

fn token_url(s: &SimHandle) -> String {
    format!("{}/{TENANT}/oauth2/v2.0/token", s.url())
}

async fn token_for(s: &SimHandle, client_id: &str, secret: &str) -> reqwest::Response {
    http()
        .post(token_url(s))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
}

async fn token_of(s: &SimHandle, client_id: &str, secret: &str) -> String {
    let r = token_for(s, client_id, secret).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

async fn token(s: &SimHandle) -> String {
    token_of(s, sim::SIM_CLIENT_ID, sim::SIM_CLIENT_SECRET).await
}

async fn get(s: &SimHandle, tok: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", s.url()))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
}

async fn get_eventual(s: &SimHandle, tok: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", s.url()))
        .bearer_auth(tok)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap()
}

async fn patch_state(s: &SimHandle, tok: &str, user: &str, state: &str) -> reqwest::Response {
    http()
        .patch(format!(
            "{}/beta/users/{user}/authentication/requirements",
            s.url()
        ))
        .bearer_auth(tok)
        .json(&json!({ "perUserMfaState": state }))
        .send()
        .await
        .unwrap()
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

fn claims(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

fn retry_after(h: &reqwest::header::HeaderMap) -> f64 {
    h.get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

// ---------- tokens ----------

#[tokio::test]
async fn wrong_secret_is_invalid_client_7000215() {
    let s = start().await;
    let r = token_for(&s, sim::SIM_CLIENT_ID, "not-the-secret").await;
    assert_eq!(r.status(), 401);
    let v = json_of(r).await;
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"], json!([7000215]));
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215:"));
}

#[tokio::test]
async fn unknown_client_is_700016_and_unknown_tenant_90002() {
    let s = start().await;
    let r = token_for(&s, "00000000-1111-2222-3333-444444444444", "x").await;
    assert_eq!(r.status(), 400);
    let v = json_of(r).await;
    assert_eq!(v["error"], "unauthorized_client");
    assert_eq!(v["error_codes"], json!([700016]));

    let r = http()
        .post(format!("{}/contoso.example/oauth2/v2.0/token", s.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim::SIM_CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["error_codes"], json!([90002]));
}

#[tokio::test]
async fn token_reply_has_the_documented_shape_and_roles() {
    let s = start().await;
    let r = token_for(
        &s,
        sim::SIM_READONLY_CLIENT_ID,
        sim::SIM_READONLY_CLIENT_SECRET,
    )
    .await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["tid"], TENANT);
    assert_eq!(c["appid"], sim::SIM_READONLY_CLIENT_ID);
    assert_eq!(c["roles"], json!(["Policy.Read.All", "User.Read.All"]));
    assert_eq!(s.counters().tokens_issued, 1);
}

fn pem_der(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).unwrap() + begin.len();
    let stop = pem.find(&end).unwrap();
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).unwrap()
}

/// A client assertion signed with the `cert-app` key.
fn assertion(aud: &str, alg: &str, jti: &str, exp_in: i64) -> String {
    assertion_for(sim::SIM_CERT_CLIENT_ID, aud, alg, jti, exp_in)
}

fn assertion_for(client: &str, aud: &str, alg: &str, jti: &str, exp_in: i64) -> String {
    let cert = pem_der(sim::SIM_CERT_PEM, "CERTIFICATE");
    let key = pem_der(sim::SIM_CERT_PEM, "PRIVATE KEY");
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if alg == "PS256" {
        header["x5t#S256"] =
            json!(URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &cert)));
    } else {
        header["x5t"] = json!(URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &cert
        )));
    }
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"aud": aud, "iss": client, "sub": client,
        "jti": jti, "nbf": now, "iat": now, "exp": now + exp_in});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let kp = ring::signature::RsaKeyPair::from_pkcs8(&key).unwrap();
    let mut sig = vec![0u8; kp.public().modulus_len()];
    let enc: &'static dyn ring::signature::RsaEncoding = if alg == "PS256" {
        &ring::signature::RSA_PSS_SHA256
    } else {
        &ring::signature::RSA_PKCS1_SHA256
    };
    kp.sign(
        enc,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn assertion_token(s: &SimHandle, a: &str) -> reqwest::Response {
    assertion_token_for(s, sim::SIM_CERT_CLIENT_ID, a).await
}

async fn assertion_token_for(s: &SimHandle, client: &str, a: &str) -> reqwest::Response {
    http()
        .post(token_url(s))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", a),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn client_assertion_accepted_and_refused() {
    let s = start().await;
    let aud = token_url(&s);
    // PS256 with x5t#S256, and RS256 with x5t: accepted.
    let ok = assertion(&aud, "PS256", "jti-1", 300);
    let r = assertion_token(&s, &ok).await;
    assert_eq!(r.status(), 200);
    let tok = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
    let r = assertion_token(&s, &assertion(&aud, "RS256", "jti-2", 300)).await;
    assert_eq!(r.status(), 200);

    // The same assertion again (jti replay).
    let r = assertion_token(&s, &ok).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "invalid_client");
    // Wrong audience.
    let r = assertion_token(
        &s,
        &assertion(
            "https://login.microsoftonline.com/other-tenant/oauth2/v2.0/token",
            "PS256",
            "jti-3",
            300,
        ),
    )
    .await;
    assert_eq!(r.status(), 401);
    // Lifetime over 10 minutes.
    let r = assertion_token(&s, &assertion(&aud, "PS256", "jti-4", 3600)).await;
    assert_eq!(r.status(), 401);
    // Tampered signature.
    let good = assertion(&aud, "PS256", "jti-5", 300);
    let i = good.len() - 20;
    let flipped = if &good[i..=i] == "A" { "B" } else { "A" };
    let bad = format!("{}{flipped}{}", &good[..i], &good[i + 1..]);
    let r = assertion_token(&s, &bad).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error_codes"], json!([700027]));
}

#[tokio::test]
async fn device_code_pending_then_approved() {
    let s = start_with(|c| c.limits.device_code_auto_approve_polls = 0).await;
    let r = http()
        .post(format!("{}/{TENANT}/oauth2/v2.0/devicecode", s.url()))
        .form(&[
            ("client_id", sim::SIM_DEVICE_CLIENT_ID),
            (
                "scope",
                "https://graph.microsoft.com/Policy.ReadWrite.AuthenticationMethod https://graph.microsoft.com/User.Read.All offline_access",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dc = json_of(r).await;
    for k in [
        "device_code",
        "user_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    ] {
        assert!(!dc[k].is_null(), "{k} missing in {dc}");
    }
    let poll = || async {
        http()
            .post(token_url(&s))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", sim::SIM_DEVICE_CLIENT_ID),
                ("device_code", dc["device_code"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
    };
    let r = poll().await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["error"], "authorization_pending");

    let r = http()
        .post(format!("{}/_sim/approve-device-code", s.url()))
        .json(&json!({"user_code": dc["user_code"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["approved"], 1);
    let r = poll().await;
    assert_eq!(r.status(), 200);
    let tok = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let c = claims(&tok);
    assert_eq!(c["upn"], "it.admin@northwind.example");
    let scp = c["scp"].as_str().unwrap();
    assert!(
        scp.contains("Policy.ReadWrite.AuthenticationMethod"),
        "{scp}"
    );
    assert!(c.get("roles").is_none());
    // The delegated admin may write.
    let r = patch_state(&s, &tok, "liam.o'connor@northwind.example", "enabled").await;
    assert_eq!(r.status(), 204);
    // A code is redeemed once.
    assert_eq!(poll().await.status(), 400);
}

#[tokio::test]
async fn device_code_auto_approves_after_configured_polls() {
    let s = start_with(|c| c.limits.device_code_auto_approve_polls = 2).await;
    let dc = json_of(
        http()
            .post(format!("{}/{TENANT}/oauth2/v2.0/devicecode", s.url()))
            .form(&[
                ("client_id", sim::SIM_DEVICE_CLIENT_ID),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut statuses = vec![];
    for _ in 0..3 {
        let r = http()
            .post(token_url(&s))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", sim::SIM_DEVICE_CLIENT_ID),
                ("device_code", dc["device_code"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![400, 400, 200]);
}

#[tokio::test]
async fn expired_token_is_401_invalid_authentication_token() {
    // 6 simulated seconds at 10x: 0.6 s real, told as expires_in 1 (whole real seconds).
    let s = start_with(|c| {
        c.limits.token_lifetime_secs = 6;
        c.time_scale = 10.0;
    })
    .await;
    let r = token_for(&s, sim::SIM_CLIENT_ID, sim::SIM_CLIENT_SECRET).await;
    let v = json_of(r).await;
    assert_eq!(v["expires_in"], 1);
    let tok = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let r = get(&s, &tok, "/v1.0/users?$top=1").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let v = json_of(r).await;
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    // A fresh token works again.
    let tok = token(&s).await;
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
}

#[tokio::test]
async fn revoked_and_garbage_tokens_are_401() {
    let s = start().await;
    let tok = token(&s).await;
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
    let r = http()
        .post(format!("{}/_sim/revoke-tokens", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(&s, &tok, "/v1.0/users?$top=1").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "InvalidAuthenticationToken"
    );
    assert_eq!(get(&s, "garbage", "/v1.0/users").await.status(), 401);
    // A forged token with all roles is refused: only issued tokens count.
    let forged = format!(
        "{}.{}.x",
        URL_SAFE_NO_PAD.encode("{}"),
        URL_SAFE_NO_PAD.encode(json!({"roles": ["User.Read.All"]}).to_string())
    );
    assert_eq!(get(&s, &forged, "/v1.0/users").await.status(), 401);
    let r = http()
        .get(format!("{}/v1.0/users", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let tok = token(&s).await;
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
}

#[tokio::test]
async fn missing_permissions_are_403() {
    let s = start().await;
    let ro = token_of(
        &s,
        sim::SIM_READONLY_CLIENT_ID,
        sim::SIM_READONLY_CLIENT_SECRET,
    )
    .await;
    let r = get(
        &s,
        &ro,
        "/beta/users/zoe.lindqvist@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = patch_state(&s, &ro, "zoe.lindqvist@northwind.example", "enabled").await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "Authorization_RequestDenied"
    );
    assert_eq!(
        s.user_state("zoe.lindqvist@northwind.example").unwrap(),
        "disabled"
    );
    let uo = token_of(
        &s,
        sim::SIM_USERS_ONLY_CLIENT_ID,
        sim::SIM_USERS_ONLY_CLIENT_SECRET,
    )
    .await;
    let r = get(
        &s,
        &uo,
        "/beta/users/zoe.lindqvist@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        get(&s, &uo, "/v1.0/users/zoe.lindqvist@northwind.example")
            .await
            .status(),
        200
    );
    let r = get(
        &s,
        &uo,
        "/beta/reports/authenticationMethods/userRegistrationDetails",
    )
    .await;
    assert_eq!(r.status(), 403);
}

// ---------- users ----------

#[tokio::test]
async fn get_user_by_upn_any_case_guest_and_dollar() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(&s, &tok, "/v1.0/users/MATHEO.DURAND@NORTHWIND.EXAMPLE").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("request-id").is_some());
    let v = json_of(r).await;
    assert_eq!(v["userPrincipalName"], "matheo.durand@northwind.example");
    assert_eq!(v["displayName"], "Mathéo Durand");

    let r = get(
        &s,
        &tok,
        "/v1.0/users/sam.lee_fabrikam.example%23EXT%23@northwind.onmicrosoft.com",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        json_of(r).await["userType"],
        Value::Null,
        "not in the v1.0 default set"
    );

    let r = get(&s, &tok, "/v1.0/users('$svc-scanner@northwind.example')").await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["displayName"], "Scanner service");
    let r = get(
        &s,
        &tok,
        "/v1.0/users('%24svc-scanner%40northwind.example')",
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = get(&s, &tok, "/v1.0/users/$svc-scanner@northwind.example").await;
    assert_eq!(r.status(), 400);

    // An apostrophe, plain and in the users('…') form (doubled).
    let r = get(&s, &tok, "/v1.0/users/liam.o'connor@northwind.example").await;
    assert_eq!(r.status(), 200);
    let r = get(&s, &tok, "/v1.0/users('liam.o''connor@northwind.example')").await;
    assert_eq!(r.status(), 200);

    // By id, with $select: only the selected properties.
    let r = get(
        &s,
        &tok,
        "/v1.0/users/c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e?$select=id,userPrincipalName",
    )
    .await;
    let v = json_of(r).await;
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{v}");
    assert_eq!(v["userPrincipalName"], "zoe.lindqvist@northwind.example");
    let r = get(
        &s,
        &tok,
        "/v1.0/users/zoe.lindqvist@northwind.example?$select=shoeSize",
    )
    .await;
    assert_eq!(r.status(), 400);

    let r = get(&s, &tok, "/v1.0/users/oskar.berg@northwind.example").await;
    assert_eq!(r.status(), 404);
    let v = json_of(r).await;
    assert_eq!(v["error"]["code"], "Request_ResourceNotFound");
    assert!(v["error"]["innerError"]["request-id"].is_string());
    assert!(v["error"]["innerError"]["client-request-id"].is_string());
    assert!(v["error"]["innerError"]["date"].is_string());
}

async fn upns(s: &SimHandle, tok: &str, query: &str, eventual: bool) -> Vec<String> {
    let path = format!("/v1.0/users?{query}");
    let r = if eventual {
        get_eventual(s, tok, &path).await
    } else {
        get(s, tok, &path).await
    };
    assert_eq!(r.status(), 200, "{query}");
    let v = json_of(r).await;
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn filter_forms() {
    let s = start().await;
    let tok = token(&s).await;
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=mail eq 'AMARA.OKAFOR@northwind.example'",
            false
        )
        .await,
        vec!["aokafor@northwind.example"]
    );
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=userPrincipalName eq 'liam.o''connor@northwind.example'",
            false
        )
        .await,
        vec!["liam.o'connor@northwind.example"]
    );
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=id eq 'be68c1b2-5d7b-4810-ac3a-8ade537ad582'",
            false
        )
        .await,
        vec!["aokafor@northwind.example"]
    );
    assert_eq!(
        upns(&s, &tok, "$filter=userPrincipalName in ('kenji.tanaka@northwind.example','nobody@x.example','Priya.Raman@northwind.example')", false).await,
        vec!["priya.raman@northwind.example", "kenji.tanaka@northwind.example"]
    );
    assert_eq!(
        upns(&s, &tok, "$filter=mail eq 'sam.lee@fabrikam.example' or userPrincipalName eq 'sam.lee@fabrikam.example'", false).await.len(),
        1
    );
    // Advanced queries: with ConsistencyLevel and $count=true.
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=otherMails/any(x:x eq 'SAM.LEE@fabrikam.example')&$count=true",
            true
        )
        .await,
        vec!["sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com"]
    );
    assert_eq!(
        upns(
            &s,
            &tok,
            "$filter=proxyAddresses/any(x:x eq 'smtp:info@northwind.example')&$count=true",
            true
        )
        .await,
        vec![
            "frontdesk1@northwind.example",
            "frontdesk2@northwind.example"
        ]
    );
    let r = get_eventual(
        &s,
        &tok,
        "/v1.0/users?$filter=proxyAddresses/any(x:x eq 'smtp:info@northwind.example')&$count=true",
    )
    .await;
    assert_eq!(json_of(r).await["@odata.count"], 2);
    // Without the header, or without $count: 400.
    let r = get(
        &s,
        &tok,
        "/v1.0/users?$filter=otherMails/any(x:x eq 'sam.lee@fabrikam.example')&$count=true",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "Request_UnsupportedQuery"
    );
    let r = get_eventual(
        &s,
        &tok,
        "/v1.0/users?$filter=otherMails/any(x:x eq 'sam.lee@fabrikam.example')",
    )
    .await;
    assert_eq!(r.status(), 400);
    // Bad syntax, unknown property, unterminated quote.
    for bad in [
        "$filter=mail eq",
        "$filter=shoeSize eq '42'",
        "$filter=mail eq 'o'brien@x.example'",
        "$filter=mail gt 'a'",
    ] {
        let r = get(&s, &tok, &format!("/v1.0/users?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn top_over_999_is_400_and_paging_follows_next_link() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(&s, &tok, "/v1.0/users?$top=1000").await;
    assert_eq!(r.status(), 400);
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=999").await.status(), 200);

    let mut url = format!("{}/v1.0/users?$top=5&$select=id,userPrincipalName", s.url());
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let r = http().get(&url).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v = json_of(r).await;
        pages += 1;
        for u in v["value"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().to_string());
        }
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&s.url()), "absolute: {next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 4);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 17);
}

#[tokio::test]
async fn users_count_needs_consistency_level() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(&s, &tok, "/v1.0/users/$count").await;
    assert_eq!(r.status(), 400);
    let r = get_eventual(&s, &tok, "/v1.0/users/$count").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "17");
}

// ---------- per-user MFA state ----------

#[tokio::test]
async fn requirements_get_and_patch() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(
        &s,
        &tok,
        "/beta/users/liam.o'connor@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    assert_eq!(v["perUserMfaState"], "disabled");
    assert!(v["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/authentication/requirements/$entity"));

    let r = patch_state(&s, &tok, "liam.o'connor@northwind.example", "enabled").await;
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(
        &s,
        &tok,
        "/beta/users/LIAM.O'CONNOR@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(json_of(r).await["perUserMfaState"], "enabled");

    // Zoë registered the Authenticator: enabled becomes enforced.
    let r = patch_state(&s, &tok, "c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e", "enabled").await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.user_state("zoe.lindqvist@northwind.example").unwrap(),
        "enforced"
    );
    let c = s.counters();
    assert_eq!(c.writes, 2);
    assert_eq!(c.writes_per_user["c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e"], 1);

    // Bad values.
    for bad in ["Enabled", "unknownFutureValue", "on"] {
        let r = patch_state(&s, &tok, "hyper.link@northwind.example", bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = patch_state(&s, &tok, "oskar.berg@northwind.example", "enabled").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(
        s.user_state("hyper.link@northwind.example").unwrap(),
        "disabled"
    );
}

#[tokio::test]
async fn requirements_do_not_exist_on_v1() {
    let s = start().await;
    let tok = token(&s).await;
    let r = get(
        &s,
        &tok,
        "/v1.0/users/zoe.lindqvist@northwind.example/authentication/requirements",
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = http()
        .patch(format!(
            "{}/v1.0/users/zoe.lindqvist@northwind.example/authentication/requirements",
            s.url()
        ))
        .bearer_auth(&tok)
        .json(&json!({"perUserMfaState": "enabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        s.user_state("zoe.lindqvist@northwind.example").unwrap(),
        "disabled"
    );
}

// ---------- registration ----------

#[tokio::test]
async fn methods_list_always_has_the_password() {
    let s = start().await;
    let tok = token(&s).await;
    let v = json_of(
        get(
            &s,
            &tok,
            "/v1.0/users/zoe.lindqvist@northwind.example/authentication/methods",
        )
        .await,
    )
    .await;
    let types: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "#microsoft.graph.passwordAuthenticationMethod",
            "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"
        ]
    );
    let v = json_of(
        get(
            &s,
            &tok,
            "/v1.0/users/liam.o'connor@northwind.example/authentication/methods",
        )
        .await,
    )
    .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn registration_report_pages_filters_and_is_throttled_harder() {
    let s = start().await;
    let tok = token(&s).await;
    let base = "/beta/reports/authenticationMethods/userRegistrationDetails";
    let v = json_of(get(&s, &tok, &format!("{base}?$top=10")).await).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 10);
    assert!(v["@odata.nextLink"].is_string());
    let r = get(&s, &tok, &format!("{base}?$filter=userPrincipalName in ('zoe.lindqvist@northwind.example','liam.o''connor@northwind.example')")).await;
    let v = json_of(r).await;
    let rows = v["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["isMfaRegistered"], true);
    assert_eq!(
        rows[0]["methodsRegistered"],
        json!(["microsoftAuthenticatorPush"])
    );
    assert_eq!(rows[1]["isMfaRegistered"], false);
    let r = get(
        &s,
        &tok,
        &format!("{base}/c73bb1bb-73cc-4ce3-b8ce-56ca8b46b67e"),
    )
    .await;
    assert_eq!(json_of(r).await["isMfaCapable"], true);
    // 5 requests per 10 s: two more pass, the sixth is 429.
    assert_eq!(get(&s, &tok, base).await.status(), 200);
    assert_eq!(get(&s, &tok, base).await.status(), 200);
    let r = get(&s, &tok, base).await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(r.headers()) >= 1.0);
    // Other Graph calls are not held back by the report limit.
    assert_eq!(get(&s, &tok, "/v1.0/users?$top=1").await.status(), 200);
}

#[tokio::test]
async fn non_premium_tenant_gets_403_on_reports() {
    let s = start_with(|c| c.tenant.premium = false).await;
    let tok = token(&s).await;
    let r = get(
        &s,
        &tok,
        "/beta/reports/authenticationMethods/userRegistrationDetails",
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        json_of(r).await["error"]["code"],
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    );
    // The methods list still works.
    let r = get(
        &s,
        &tok,
        "/v1.0/users/zoe.lindqvist@northwind.example/authentication/methods",
    )
    .await;
    assert_eq!(r.status(), 200);
}

// ---------- batch ----------

fn get_items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": (i + 1).to_string(), "method": "GET", "url": "/users/zoe.lindqvist@northwind.example?$select=id"}))
        .collect()
}

async fn batch(s: &SimHandle, tok: &str, ver: &str, requests: Vec<Value>) -> reqwest::Response {
    http()
        .post(format!("{}/{ver}/$batch", s.url()))
        .bearer_auth(tok)
        .json(&json!({ "requests": requests }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn batch_limits_and_unique_ids() {
    let s = start().await;
    let tok = token(&s).await;
    let r = batch(&s, &tok, "v1.0", get_items(21)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["error"]["code"], "BadRequest");
    assert_eq!(batch(&s, &tok, "v1.0", get_items(20)).await.status(), 200);
    let mut dup = get_items(3);
    dup[2]["id"] = json!("1");
    assert_eq!(batch(&s, &tok, "v1.0", dup).await.status(), 400);
    // Nothing of a refused batch ran.
    assert_eq!(s.counters().requests, 20);
}

#[tokio::test]
async fn batch_runs_each_item_and_answers_in_shuffled_order() {
    let s = start().await;
    let tok = token(&s).await;
    let users = [
        "zoe.lindqvist@northwind.example",
        "matheo.durand@northwind.example",
        "liam.o'connor@northwind.example",
        "oskar.berg@northwind.example",
        "hyper.link@northwind.example",
        "juergen.weiss@northwind.example",
    ];
    let requests: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"id": format!("{}", i + 1), "method": "PATCH",
            "url": format!("/users/{u}/authentication/requirements"),
            "headers": {"Content-Type": "application/json"},
            "body": {"perUserMfaState": "enabled"}})
        })
        .collect();
    let r = batch(&s, &tok, "beta", requests.clone()).await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    let resp = v["responses"].as_array().unwrap();
    assert_eq!(resp.len(), 6);
    let status_of = |id: &str| {
        resp.iter().find(|x| x["id"] == id).unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(status_of("1"), 204);
    assert_eq!(status_of("4"), 404);
    assert_eq!(
        s.user_state("zoe.lindqvist@northwind.example").unwrap(),
        "enforced"
    );
    assert_eq!(
        s.user_state("liam.o'connor@northwind.example").unwrap(),
        "enabled"
    );

    // Not in request order, at least once in five tries (fixed seed).
    let mut any_shuffled = false;
    for _ in 0..5 {
        let v = json_of(batch(&s, &tok, "v1.0", get_items(10)).await).await;
        let ids: Vec<String> = v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        let in_order: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|x| x.parse::<u32>().unwrap());
        assert_eq!(sorted, in_order);
        any_shuffled |= ids != in_order;
    }
    assert!(any_shuffled);

    // Beta-only paths inside a v1.0 batch answer 404; a body without Content-Type is 400.
    let v = json_of(
        batch(&s, &tok, "v1.0", vec![
            json!({"id": "a", "method": "GET", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements"}),
            json!({"id": "b", "method": "PATCH", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements", "body": {"perUserMfaState": "enabled"}}),
        ])
        .await,
    )
    .await;
    for x in v["responses"].as_array().unwrap() {
        let want = if x["id"] == "a" { 404 } else { 400 };
        assert_eq!(x["status"], want, "{x}");
    }
}

#[tokio::test]
async fn batch_items_are_throttled_one_by_one() {
    let s = start_with(|c| c.limits.ru_per_10s = Some(5)).await;
    let tok = token(&s).await;
    let r = batch(&s, &tok, "v1.0", get_items(8)).await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    let resp = v["responses"].as_array().unwrap();
    let ok = resp.iter().filter(|x| x["status"] == 200).count();
    let throttled: Vec<&Value> = resp.iter().filter(|x| x["status"] == 429).collect();
    assert_eq!(ok, 5);
    assert_eq!(throttled.len(), 3);
    for t in throttled {
        let ra: f64 = t["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ra >= 1.0);
        assert_eq!(t["body"]["error"]["code"], "TooManyRequests");
    }
}

// ---------- throttling ----------

#[tokio::test]
async fn ru_budget_throttles_and_throttled_requests_still_count() {
    // Budget 5 RU per 10 s; at 5x a window lasts 2 s real.
    let s = start_with(|c| {
        c.limits.ru_per_10s = Some(5);
        c.time_scale = 5.0;
    })
    .await;
    let tok = token(&s).await;
    let one = "/v1.0/users/zoe.lindqvist@northwind.example";
    for _ in 0..5 {
        assert_eq!(get(&s, &tok, one).await.status(), 200);
    }
    let r = get(&s, &tok, one).await;
    assert_eq!(r.status(), 429);
    let ra = retry_after(r.headers());
    assert!(ra > 0.0 && ra <= 2.0, "Retry-After {ra} real seconds");
    assert_eq!(json_of(r).await["error"]["code"], "TooManyRequests");
    // A list costs 2 RU: also refused.
    assert_eq!(get(&s, &tok, "/v1.0/users").await.status(), 429);

    // t ≈ 1 s: hammer while throttled; these count against the next window.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for _ in 0..5 {
        assert_eq!(get(&s, &tok, one).await.status(), 429);
    }
    // t ≈ 2.3 s: the first five left the window, the hammering has not.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(get(&s, &tok, one).await.status(), 429);
    let c = s.counters();
    assert!(c.throttled >= 8);
    assert!(c.ru_spent >= 13, "{c:?}");
    // Another app has its own budget.
    let ro = token_of(
        &s,
        sim::SIM_READONLY_CLIENT_ID,
        sim::SIM_READONLY_CLIENT_SECRET,
    )
    .await;
    assert_eq!(get(&s, &ro, one).await.status(), 200);
}

#[tokio::test]
async fn select_lowers_the_cost_of_a_list() {
    let s = start_with(|c| c.limits.ru_per_10s = Some(4)).await;
    let tok = token(&s).await;
    for _ in 0..4 {
        assert_eq!(get(&s, &tok, "/v1.0/users?$select=id").await.status(), 200);
    }
    assert_eq!(get(&s, &tok, "/v1.0/users?$select=id").await.status(), 429);
    assert_eq!(s.counters().ru_spent, 5);
}

#[tokio::test]
async fn write_limit_throttles_writes() {
    // 3 writes per 150 s; at 100x the window is 1.5 s real.
    let s = start_with(|c| {
        c.limits.writes_per_150s = 3;
        c.time_scale = 100.0;
    })
    .await;
    let tok = token(&s).await;
    let users = [
        "liam.o'connor@northwind.example",
        "hyper.link@northwind.example",
        "matheo.durand@northwind.example",
    ];
    for u in users {
        assert_eq!(patch_state(&s, &tok, u, "enabled").await.status(), 204);
    }
    let r = patch_state(&s, &tok, "juergen.weiss@northwind.example", "enabled").await;
    assert_eq!(r.status(), 429);
    let ra = retry_after(r.headers());
    assert!(ra > 0.0 && ra <= 1.5, "{ra}");
    assert_eq!(
        s.user_state("juergen.weiss@northwind.example").unwrap(),
        "disabled"
    );
    // Reads still pass.
    assert_eq!(
        get(
            &s,
            &tok,
            "/beta/users/juergen.weiss@northwind.example/authentication/requirements"
        )
        .await
        .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs_f64(ra + 0.1)).await;
    assert_eq!(
        patch_state(&s, &tok, "juergen.weiss@northwind.example", "enabled")
            .await
            .status(),
        204
    );
    assert_eq!(s.counters().writes, 4);
}

// ---------- faults ----------

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

// ---------- headers, inspection, CLI ----------

#[tokio::test]
async fn request_ids_are_sent_and_client_request_id_echoed() {
    let s = start().await;
    let tok = token(&s).await;
    let r = http()
        .get(format!("{}/v1.0/users/nobody@northwind.example", s.url()))
        .bearer_auth(&tok)
        .header("client-request-id", "0b0b0b0b-1111-4222-8333-444444444444")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["client-request-id"],
        "0b0b0b0b-1111-4222-8333-444444444444"
    );
    let rid = r.headers()["request-id"].to_str().unwrap().to_string();
    let v = json_of(r).await;
    assert_eq!(v["error"]["innerError"]["request-id"], rid.as_str());
    assert_eq!(
        v["error"]["innerError"]["client-request-id"],
        "0b0b0b0b-1111-4222-8333-444444444444"
    );
    let log = s.request_log();
    let last = log.last().unwrap();
    assert_eq!(last.status, 404);
    assert_eq!(last.request_id, rid);
    // The same over HTTP.
    let v: Value = http()
        .get(format!("{}/_sim/log", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v.as_array().unwrap().last().unwrap()["request_id"],
        rid.as_str()
    );
    let v: Value = http()
        .get(format!("{}/_sim/state", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 17);
    assert_eq!(v[0]["perUserMfaState"], "disabled");
    let v: Value = http()
        .post(format!("{}/_sim/reset-counters", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["reset"], true);
    assert_eq!(s.counters().requests, 0);
}

#[test]
fn sim_command_prints_its_address_and_serves() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mfa-bulk"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "600",
            "--seed",
            "7",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .map(str::to_string);
    let result = url.clone().map(|url| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let v: Value = http()
                .get(format!("{url}/_sim/state"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v.as_array().unwrap().len()
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.unwrap().starts_with("http://127.0.0.1:"), "{line}");
    let n = result.unwrap();
    assert!(n > 550 && n <= 600, "{n}");
}

#[test]
fn sim_command_refuses_non_loopback() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mfa-bulk"))
        .args(["sim", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn generated_tenant_has_awkward_names() {
    let t = sim::generate_tenant(400, 3);
    let upns: Vec<&str> = t
        .users
        .iter()
        .map(|u| u.user_principal_name.as_str())
        .collect();
    assert!(upns.iter().any(|u| u.contains("#EXT#")));
    assert!(upns.iter().any(|u| u.starts_with('$')));
    assert!(upns.iter().any(|u| u.contains('\'')));
    assert!(upns.iter().any(|u| u.chars().any(|c| c.is_uppercase())));
    assert!(t
        .users
        .iter()
        .any(|u| u.display_name.contains('ü') || u.display_name.contains('ø')));
    let with_methods = t.users.iter().filter(|u| !u.methods.is_empty()).count();
    assert!(with_methods > 15 && with_methods < 80, "{with_methods}");
    assert!(t.users.iter().any(|u| u.per_user_mfa_state == "enforced"));
    // Same seed, same tenant.
    let again = sim::generate_tenant(400, 3);
    assert_eq!(again.users[10].id, t.users[10].id);
}

#[tokio::test]
async fn batch_depends_on_a_failed_item_answers_424() {
    let s = start().await;
    let tok = token(&s).await;
    let v = json_of(
        batch(&s, &tok, "beta", vec![
            json!({"id": "1", "method": "GET", "url": "/users/oskar.berg@northwind.example/authentication/requirements"}),
            json!({"id": "2", "method": "PATCH", "url": "/users/oskar.berg@northwind.example/authentication/requirements",
                "dependsOn": ["1"], "headers": {"Content-Type": "application/json"}, "body": {"perUserMfaState": "enabled"}}),
            json!({"id": "3", "method": "GET", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements"}),
            json!({"id": "4", "method": "PATCH", "url": "/users/zoe.lindqvist@northwind.example/authentication/requirements",
                "dependsOn": ["3"], "headers": {"Content-Type": "application/json"}, "body": {"perUserMfaState": "enabled"}}),
        ])
        .await,
    )
    .await;
    let status = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (status("1"), status("2"), status("3"), status("4")),
        (404, 424, 200, 204)
    );
    // Depending on a later or unknown id refuses the batch.
    let r = batch(
        &s,
        &tok,
        "beta",
        vec![
            json!({"id": "1", "method": "GET", "url": "/users/x@y", "dependsOn": ["2"]}),
            json!({"id": "2", "method": "GET", "url": "/users/x@y"}),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn tenant_write_limit_spans_all_apps() {
    let s = start_with(|c| {
        c.limits.tenant_writes_per_300s = 2;
        c.tenant.clients[1]
            .roles
            .push("Policy.ReadWrite.AuthenticationMethod".into());
    })
    .await;
    let a = token(&s).await;
    let b = token_of(
        &s,
        sim::SIM_READONLY_CLIENT_ID,
        sim::SIM_READONLY_CLIENT_SECRET,
    )
    .await;
    assert_eq!(
        patch_state(&s, &a, "liam.o'connor@northwind.example", "enabled")
            .await
            .status(),
        204
    );
    assert_eq!(
        patch_state(&s, &b, "hyper.link@northwind.example", "enabled")
            .await
            .status(),
        204
    );
    assert_eq!(
        patch_state(&s, &a, "matheo.durand@northwind.example", "enabled")
            .await
            .status(),
        429
    );
    assert_eq!(
        patch_state(&s, &b, "matheo.durand@northwind.example", "enabled")
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn peak_concurrency_is_counted() {
    let s = start_with(|c| {
        c.faults.latency_min_ms = 200;
        c.faults.latency_max_ms = 200;
    })
    .await;
    let tok = token(&s).await;
    let url = format!("{}/v1.0/users/zoe.lindqvist@northwind.example", s.url());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (url, tok) = (url.clone(), tok.clone());
            tokio::spawn(async move { http().get(url).bearer_auth(tok).send().await.unwrap() })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap().status(), 200);
    }
    assert!(s.counters().peak_concurrency >= 2, "{:?}", s.counters());
}

#[tokio::test]
async fn client_assertion_against_a_bare_public_key() {
    let s = start().await;
    let aud = token_url(&s);
    let a = assertion_for(sim::SIM_PUBKEY_CLIENT_ID, &aud, "RS256", "k-1", 300);
    let r = assertion_token_for(&s, sim::SIM_PUBKEY_CLIENT_ID, &a).await;
    assert_eq!(r.status(), 200);
    let tok = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        claims(&tok)["roles"],
        json!(["Policy.Read.All", "User.Read.All"])
    );
    // An assertion for another client id is refused.
    let a = assertion_for(sim::SIM_CERT_CLIENT_ID, &aud, "RS256", "k-2", 300);
    let r = assertion_token_for(&s, sim::SIM_PUBKEY_CLIENT_ID, &a).await;
    assert_eq!(r.status(), 401);
    // A secret is no use to an app that has none.
    let r = token_for(&s, sim::SIM_PUBKEY_CLIENT_ID, "guess").await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn delegated_admin_without_the_role_gets_403() {
    let s = start_with(|c| c.limits.device_code_auto_approve_polls = 1).await;
    let dc = json_of(
        http()
            .post(format!("{}/{TENANT}/oauth2/v2.0/devicecode", s.url()))
            .form(&[
                ("client_id", sim::SIM_DEVICE_HELPDESK_CLIENT_ID),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut tok = None;
    for _ in 0..3 {
        let r = http()
            .post(token_url(&s))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", sim::SIM_DEVICE_HELPDESK_CLIENT_ID),
                ("device_code", dc["device_code"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            tok = Some(
                json_of(r).await["access_token"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            break;
        }
    }
    let tok = tok.expect("approved after one poll");
    let me = json_of(get(&s, &tok, "/v1.0/me").await).await;
    assert_eq!(me["userPrincipalName"], "helpdesk@northwind.example");
    let r = patch_state(&s, &tok, "liam.o'connor@northwind.example", "enabled").await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.user_state("liam.o'connor@northwind.example").unwrap(),
        "disabled"
    );
    // /me needs a signed-in user.
    let app = token(&s).await;
    assert_eq!(get(&s, &app, "/v1.0/me").await.status(), 400);
}
