//! Shared by the `sim_*` tests: a simulator of the sample tenant on a loopback port, an HTTP
//! client, tokens (client secret, device code) and requests.

use std::time::Duration;

use mfa_bulk::sim::{self, SimConfig, SimHandle};
use serde_json::{json, Value};

pub(crate) const TENANT: &str = sim::SIM_TENANT_ID;
/// The scope of an app-only token (and of a device code for every scope granted).
pub(crate) const DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub(crate) async fn start_with(f: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig::sample();
    f(&mut cfg);
    sim::start(cfg).await.unwrap()
}

pub(crate) async fn start() -> SimHandle {
    start_with(|_| {}).await
}

pub(crate) fn token_url(s: &SimHandle) -> String {
    format!("{}/{TENANT}/oauth2/v2.0/token", s.url())
}

pub(crate) async fn token_for(s: &SimHandle, client_id: &str, secret: &str) -> reqwest::Response {
    http()
        .post(token_url(s))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", DEFAULT_SCOPE),
        ])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn token_of(s: &SimHandle, client_id: &str, secret: &str) -> String {
    let r = token_for(s, client_id, secret).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

pub(crate) async fn token(s: &SimHandle) -> String {
    token_of(s, sim::SIM_CLIENT_ID, sim::SIM_CLIENT_SECRET).await
}

pub(crate) async fn get(s: &SimHandle, tok: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", s.url()))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn get_eventual(s: &SimHandle, tok: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", s.url()))
        .bearer_auth(tok)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap()
}

pub(crate) async fn patch_state(
    s: &SimHandle,
    tok: &str,
    user: &str,
    state: &str,
) -> reqwest::Response {
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

pub(crate) async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> f64 {
    h.get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Starts the device code flow for the public client `client`: the `/devicecode` answer
/// (`device_code`, `user_code`, …).
pub(crate) async fn device_code(s: &SimHandle, client: &str, scope: &str) -> Value {
    let r = http()
        .post(format!("{}/{TENANT}/oauth2/v2.0/devicecode", s.url()))
        .form(&[("client_id", client), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json_of(r).await
}

/// One poll of the token endpoint with the device code of `dc` (a [`device_code`] answer).
pub(crate) async fn poll_device_code(s: &SimHandle, client: &str, dc: &Value) -> reqwest::Response {
    http()
        .post(token_url(s))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client),
            ("device_code", dc["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
}
