//! The baseline mfa-bulk is compared with: the loop admins write in PowerShell
//! (`foreach ($u in Import-Csv ...) { Get-MgBetaUserAuthenticationRequirement; if disabled
//! { Update-MgBetaUserAuthenticationRequirement } }`): one user at a time, GET the
//! requirements, PATCH if needed, and on a 429 (or a 5xx / dropped connection) sleep a fixed
//! time and try again. No batching, no pacing, no concurrency.

use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

/// What a path segment must not contain unencoded.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct BaselineResult {
    pub users: usize,
    pub wall_secs: f64,
    pub gets: u64,
    pub patches: u64,
    /// 429s the loop saw (each followed by the fixed sleep).
    pub throttled: u64,
    /// 5xx answers and dropped connections (each followed by the fixed sleep).
    pub errors: u64,
    pub tokens: u64,
}

pub(crate) struct Baseline {
    client: reqwest::Client,
    base: String,
    tenant: String,
    client_id: String,
    secret: String,
    /// The fixed sleep after a 429 / 5xx (already time-scaled).
    retry_sleep: Duration,
    token: Option<String>,
    pub result: BaselineResult,
}

/// `/users/{upn}` as the Graph PowerShell SDK addresses a user (a UPN starting with `$` needs
/// the `users('…')` form).
fn user_path(upn: &str) -> String {
    if upn.starts_with('$') {
        let quoted = upn.replace('\'', "''");
        format!("users('{}')", utf8_percent_encode(&quoted, SEGMENT))
    } else {
        format!("users/{}", utf8_percent_encode(upn, SEGMENT))
    }
}

impl Baseline {
    pub(crate) fn new(
        base: &str,
        tenant: &str,
        client_id: &str,
        secret: &str,
        retry_sleep: Duration,
    ) -> Baseline {
        Baseline {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("reqwest client"),
            base: base.trim_end_matches('/').to_string(),
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            secret: secret.to_string(),
            retry_sleep,
            token: None,
            result: BaselineResult::default(),
        }
    }

    async fn fetch_token(&mut self) -> anyhow::Result<String> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.base, self.tenant);
        let resp = self
            .client
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.secret.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        let tok = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("token endpoint answered {status}: {v}"))?;
        self.result.tokens += 1;
        self.token = Some(tok.to_string());
        Ok(tok.to_string())
    }

    /// One request, retried the way a simple loop does: fixed sleep after 429, 5xx or a
    /// dropped connection; a fresh token after 401. Returns the status and body.
    async fn call(&mut self, patch: bool, url: &str) -> anyhow::Result<(u16, Value)> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            if attempts > 50 {
                anyhow::bail!("baseline: giving up on {url} after 50 attempts");
            }
            let token = match &self.token {
                Some(t) => t.clone(),
                None => self.fetch_token().await?,
            };
            let req = if patch {
                self.result.patches += 1;
                self.client
                    .patch(url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"perUserMfaState": "enabled"}))
            } else {
                self.result.gets += 1;
                self.client.get(url).bearer_auth(&token)
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(_) => {
                    self.result.errors += 1;
                    tokio::time::sleep(self.retry_sleep).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(_) => {
                    self.result.errors += 1;
                    tokio::time::sleep(self.retry_sleep).await;
                    continue;
                }
            };
            match status {
                429 => {
                    self.result.throttled += 1;
                    tokio::time::sleep(self.retry_sleep).await;
                }
                500..=599 => {
                    self.result.errors += 1;
                    tokio::time::sleep(self.retry_sleep).await;
                }
                401 => self.token = None,
                _ => {
                    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    return Ok((status, v));
                }
            }
        }
    }

    /// Runs the loop over `upns` (target: enabled).
    pub(crate) async fn run(&mut self, upns: &[String]) -> anyhow::Result<BaselineResult> {
        let started = Instant::now();
        for upn in upns {
            let url = format!(
                "{}/beta/{}/authentication/requirements",
                self.base,
                user_path(upn)
            );
            let (status, v) = self.call(false, &url).await?;
            if status != 200 {
                anyhow::bail!("baseline: GET {url} answered {status}: {v}");
            }
            if v.get("perUserMfaState").and_then(Value::as_str) == Some("disabled") {
                let (status, v) = self.call(true, &url).await?;
                if status != 204 {
                    anyhow::bail!("baseline: PATCH {url} answered {status}: {v}");
                }
            }
        }
        self.result.users = upns.len();
        self.result.wall_secs = started.elapsed().as_secs_f64();
        Ok(self.result.clone())
    }
}
