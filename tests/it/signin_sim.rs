//! The simulator's sign-in endpoints speak Entra's shapes: `/authorize` (PKCE, `state` echoed,
//! consent declined, redirect URI not registered), the `authorization_code` and
//! `refresh_token` grants (wrong verifier, rotation, expiry, revocation), ID tokens, `wids`,
//! OpenID discovery and both managed identity endpoints.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mfa_bulk::sim::{self, SimHandle};
use serde_json::Value;

use crate::sim_common::{start, start_with, token_url, TENANT};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SCOPE: &str = "https://graph.microsoft.com/Policy.ReadWrite.AuthenticationMethod https://graph.microsoft.com/User.Read.All offline_access openid profile";
const REDIRECT: &str = "http://localhost:51234";

fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn claims(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

async fn authorize(s: &SimHandle, client: &str, redirect: &str) -> reqwest::Response {
    no_redirects()
        .get(format!("{}/{TENANT}/oauth2/v2.0/authorize", s.url()))
        .query(&[
            ("client_id", client),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", SCOPE),
            ("state", "state-123"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
}

/// The query of the redirect an `/authorize` answer sends the browser to.
fn location(r: &reqwest::Response) -> reqwest::Url {
    assert_eq!(r.status(), 302);
    reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

fn param(u: &reqwest::Url, k: &str) -> Option<String> {
    u.query_pairs()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.into_owned())
}

async fn redeem(s: &SimHandle, client: &str, code: &str, verifier: &str) -> reqwest::Response {
    no_redirects()
        .post(token_url(s))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap()
}

async fn refresh(s: &SimHandle, client: &str, rt: &str) -> reqwest::Response {
    no_redirects()
        .post(token_url(s))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", rt),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap()
}

async fn error_code(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["error"].as_str().unwrap_or("").to_string(),
        v["error_description"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn authorization_code_with_pkce_gives_access_refresh_and_id_tokens() {
    let s = start().await;
    let r = authorize(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, REDIRECT).await;
    let back = location(&r);
    assert_eq!(back.port(), Some(51234), "any port of http://localhost");
    assert_eq!(param(&back, "state").as_deref(), Some("state-123"));
    let code = param(&back, "code").unwrap();
    assert_eq!(s.counters().sign_ins, 1);

    // A wrong verifier: invalid_grant AADSTS501481.
    let (status, error, desc) =
        error_code(redeem(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, &code, &"x".repeat(43)).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert!(desc.starts_with("AADSTS501481:"), "{desc}");

    let r = redeem(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, &code, VERIFIER).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let access = claims(v["access_token"].as_str().unwrap());
    assert_eq!(access["upn"], "it.admin@northwind.example");
    assert!(access["wids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w == "0526716b-113d-4c15-b2c8-68e3c22b9f80"));
    let id = claims(v["id_token"].as_str().unwrap());
    assert_eq!(id["preferred_username"], "it.admin@northwind.example");
    assert_eq!(id["aud"], sim::SIM_GRAPH_CLI_CLIENT_ID);
    assert_eq!(id["tid"], TENANT);
    let rt = v["refresh_token"].as_str().unwrap().to_string();

    // The code is used once.
    let (_, error, desc) =
        error_code(redeem(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, &code, VERIFIER).await).await;
    assert_eq!(error, "invalid_grant");
    assert!(desc.starts_with("AADSTS54005:"), "{desc}");

    // Refresh: a new refresh token each time.
    let r = refresh(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, &rt).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let rt2 = v["refresh_token"].as_str().unwrap();
    assert_ne!(rt2, rt);
    assert_eq!(s.counters().refresh_grants, 1);
    // Another client cannot use it.
    let (_, error, _) = error_code(refresh(&s, sim::SIM_DEVICE_CLIENT_ID, rt2).await).await;
    assert_eq!(error, "invalid_grant");
    // Revoked sessions: AADSTS50173.
    s.revoke_tokens();
    let (_, error, desc) = error_code(refresh(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, rt2).await).await;
    assert_eq!(error, "invalid_grant");
    assert!(desc.starts_with("AADSTS50173:"), "{desc}");
}

#[tokio::test]
async fn refresh_tokens_expire_when_unused() {
    let s = start_with(|c| c.limits.refresh_token_lifetime_secs = 1).await;
    let code = param(
        &location(&authorize(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, REDIRECT).await),
        "code",
    )
    .unwrap();
    let v: Value = redeem(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, error, desc) = error_code(
        refresh(
            &s,
            sim::SIM_GRAPH_CLI_CLIENT_ID,
            v["refresh_token"].as_str().unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(error, "invalid_grant");
    assert!(desc.starts_with("AADSTS700082:"), "{desc}");
}

#[tokio::test]
async fn authorize_errors_are_entras() {
    let s = start().await;
    // A redirect URI not registered: an error page, never a redirect.
    let r = authorize(&s, sim::SIM_GRAPH_CLI_CLIENT_ID, "https://evil.example/cb").await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("AADSTS50011"));
    // The confidential app has no redirect URI at all.
    let r = authorize(&s, sim::SIM_CLIENT_ID, REDIRECT).await;
    assert_eq!(r.status(), 400);
    // Consent declined: back to the app with access_denied and the state.
    let back = location(&authorize(&s, sim::SIM_CONSENT_DENIED_CLIENT_ID, REDIRECT).await);
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert!(param(&back, "error_description")
        .unwrap()
        .starts_with("AADSTS65004:"));
    assert_eq!(param(&back, "state").as_deref(), Some("state-123"));
    assert!(param(&back, "code").is_none());
    // An unknown tenant: the page says AADSTS90002, and so does discovery.
    let r = no_redirects()
        .get(format!(
            "{}/fabrikam.example/oauth2/v2.0/authorize?client_id=x",
            s.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("AADSTS90002"));
    let r = no_redirects()
        .get(format!(
            "{}/fabrikam.example/v2.0/.well-known/openid-configuration",
            s.url()
        ))
        .send()
        .await
        .unwrap();
    let (status, _, desc) = error_code(r).await;
    assert_eq!(status, 400);
    assert!(desc.starts_with("AADSTS90002:"), "{desc}");
    let r = no_redirects()
        .get(format!(
            "{}/northwind.example/v2.0/.well-known/openid-configuration",
            s.url()
        ))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["issuer"],
        format!("https://login.microsoftonline.com/{TENANT}/v2.0")
    );
    assert_eq!(s.counters().sign_ins, 0);
}

#[tokio::test]
async fn managed_identity_endpoints_answer_as_azure_does() {
    let s = start().await;
    let c = no_redirects();
    let imds = format!("{}/metadata/identity/oauth2/token", s.url());
    let q = [
        ("api-version", "2018-02-01"),
        ("resource", "https://graph.microsoft.com"),
    ];
    // Without `Metadata: true`: refused.
    let r = c.get(&imds).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error_description"],
        "Required metadata header not specified"
    );
    let r = c
        .get(&imds)
        .query(&q)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["expires_on"].is_string() && v["expires_in"].is_string());
    assert_eq!(v["resource"], "https://graph.microsoft.com");
    let t = claims(v["access_token"].as_str().unwrap());
    assert_eq!(t["appid"], sim::SIM_MANAGED_IDENTITY_ID);
    assert!(t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "Policy.ReadWrite.AuthenticationMethod"));

    let msi = format!("{}/msi/token", s.url());
    let q = [
        ("api-version", "2019-08-01"),
        ("resource", "https://graph.microsoft.com"),
        ("client_id", sim::SIM_READONLY_MANAGED_IDENTITY_ID),
    ];
    let r = c.get(&msi).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 401, "no X-IDENTITY-HEADER");
    let r = c
        .get(&msi)
        .query(&q)
        .header("X-IDENTITY-HEADER", sim::SIM_IDENTITY_HEADER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["client_id"], sim::SIM_READONLY_MANAGED_IDENTITY_ID);
    assert_eq!(s.counters().managed_identity_tokens, 2);
}
