//! The simulator's token endpoint and bearer check: client secrets, client assertions,
//! the device code flow, token lifetime and revocation, and permissions (403).

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use mfa_bulk::sim::{self, SimHandle};
use serde_json::{json, Value};

use super::sim_common::{
    device_code, get, http, json_of, patch_state, poll_device_code, start, start_with, token,
    token_for, token_of, token_url, DEFAULT_SCOPE, TENANT,
};

fn claims(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

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
            ("scope", DEFAULT_SCOPE),
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
async fn device_code_pending_then_approved() {
    let s = start_with(|c| c.limits.device_code_auto_approve_polls = 0).await;
    let dc = device_code(
        &s,
        sim::SIM_DEVICE_CLIENT_ID,
        "https://graph.microsoft.com/Policy.ReadWrite.AuthenticationMethod https://graph.microsoft.com/User.Read.All offline_access",
    )
    .await;
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
    let poll = || poll_device_code(&s, sim::SIM_DEVICE_CLIENT_ID, &dc);
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
    let dc = device_code(&s, sim::SIM_DEVICE_CLIENT_ID, DEFAULT_SCOPE).await;
    let mut statuses = vec![];
    for _ in 0..3 {
        let r = poll_device_code(&s, sim::SIM_DEVICE_CLIENT_ID, &dc).await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![400, 400, 200]);
}

#[tokio::test]
async fn delegated_admin_without_the_role_gets_403() {
    let s = start_with(|c| c.limits.device_code_auto_approve_polls = 1).await;
    let dc = device_code(&s, sim::SIM_DEVICE_HELPDESK_CLIENT_ID, DEFAULT_SCOPE).await;
    let mut tok = None;
    for _ in 0..3 {
        let r = poll_device_code(&s, sim::SIM_DEVICE_HELPDESK_CLIENT_ID, &dc).await;
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
