//! Sign-in and the token cache: one token for the whole run, refreshed before it expires and
//! after a 401, by one task while the others wait (no stampede).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::certificate::AppCertificate;
use super::claims;
use super::{Credential, GraphConfig, GraphError, Secret};

/// Refresh this long before expiry: 5 minutes, or a tenth of a short lifetime.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 10)
}

#[derive(Clone)]
pub struct Token {
    pub access: Secret,
    pub generation: u64,
}

enum Method {
    Secret(Secret),
    Certificate(Box<AppCertificate>),
    DeviceCode,
    Env,
}

struct State {
    token: Option<Secret>,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    refresh_token: Option<Secret>,
    generation: u64,
    /// The next token is fetched because Graph answered 401 (not because it expires).
    after_401: bool,
    /// The generation fetched after a 401: if Graph answers 401 to it too, renewing does
    /// not help (the credential no longer gets a token Graph accepts).
    renewed_after_401: Option<u64>,
}

pub struct Auth {
    http: reqwest::Client,
    token_url: String,
    device_url: String,
    client_id: String,
    scope_default: String,
    scope_delegated: String,
    method: Method,
    state: tokio::sync::Mutex<State>,
    pub fetched: AtomicU64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

fn form_error(body: &Value, status: u16) -> String {
    let code = body["error"].as_str().unwrap_or("error");
    let desc = body["error_description"]
        .as_str()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    let hint = match code {
        "invalid_client" => {
            " (check the client secret or certificate: is it the one uploaded to this app \
             registration, and not expired?)"
        }
        "unauthorized_client" => " (check the application (client) id and the tenant)",
        "invalid_request" if desc.contains("AADSTS90002") => " (check --tenant / AZURE_TENANT_ID)",
        "invalid_scope" => " (the app registration may not have Microsoft Graph permissions)",
        _ => "",
    };
    if desc.is_empty() {
        format!("{code} (HTTP {status}){hint}")
    } else {
        format!("{code}: {desc}{hint}")
    }
}

impl Auth {
    pub fn new(cfg: &GraphConfig, http: reqwest::Client) -> Result<Auth, GraphError> {
        let method = match &cfg.credential {
            Credential::Secret(s) => Method::Secret(s.clone()),
            Credential::Certificate { path, password } => {
                Method::Certificate(Box::new(AppCertificate::load(path, password.as_ref())?))
            }
            Credential::DeviceCode => Method::DeviceCode,
            Credential::AccessToken(_) => Method::Env,
        };
        let state = State {
            token: match &cfg.credential {
                Credential::AccessToken(t) => Some(t.clone()),
                _ => None,
            },
            refresh_at: None,
            expires_at: None,
            refresh_token: None,
            generation: 0,
            after_401: false,
            renewed_after_401: None,
        };
        let base = format!("{}/{}/oauth2/v2.0", cfg.login_url, cfg.tenant);
        Ok(Auth {
            http,
            token_url: format!("{base}/token"),
            device_url: format!("{base}/devicecode"),
            client_id: cfg.client_id.clone(),
            scope_default: format!("{}/.default", cfg.graph_url),
            scope_delegated: format!("{}/.default offline_access", cfg.graph_url),
            method,
            state: tokio::sync::Mutex::new(state),
            fetched: AtomicU64::new(0),
        })
    }

    pub fn is_env_token(&self) -> bool {
        matches!(self.method, Method::Env)
    }

    /// The current token, fetching or refreshing it first if needed.
    pub async fn token(&self) -> Result<Token, GraphError> {
        let mut st = self.state.lock().await;
        let now = Instant::now();
        let fresh = match (&st.token, st.refresh_at) {
            (Some(_), Some(at)) => now < at,
            (Some(_), None) => self.is_env_token(),
            (None, _) => false,
        };
        if fresh {
            return Ok(Token {
                access: st.token.clone().unwrap(),
                generation: st.generation,
            });
        }
        if self.is_env_token() {
            // Cannot be refreshed: use it until it is really expired.
            if st.expires_at.is_some_and(|e| now >= e) {
                return Err(GraphError::Auth(
                    "the token in MFA_BULK_ACCESS_TOKEN has expired: get a new one and run again"
                        .into(),
                ));
            }
            return Ok(Token {
                access: st.token.clone().unwrap(),
                generation: st.generation,
            });
        }
        let (access, lifetime, refresh) = self.fetch(&mut st).await?;
        self.fetched.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        st.token = Some(access.clone());
        st.refresh_at = Some(now + lifetime.saturating_sub(refresh_margin(lifetime)));
        st.expires_at = Some(now + lifetime);
        if refresh.is_some() {
            st.refresh_token = refresh;
        }
        st.generation += 1;
        if std::mem::take(&mut st.after_401) {
            st.renewed_after_401 = Some(st.generation);
        }
        Ok(Token {
            access,
            generation: st.generation,
        })
    }

    /// Reads an environment token's `exp` (done once at connect).
    pub async fn init_env_token(&self) -> Result<(), GraphError> {
        let mut st = self.state.lock().await;
        let Some(tok) = st.token.clone() else {
            return Ok(());
        };
        if let Some(exp) = claims::claims(tok.expose()).and_then(|c| c["exp"].as_i64()) {
            let left = exp - chrono::Utc::now().timestamp();
            if left <= 0 {
                return Err(GraphError::Auth(
                    "the token in MFA_BULK_ACCESS_TOKEN has expired: get a new one and run again"
                        .into(),
                ));
            }
            st.expires_at = Some(Instant::now() + Duration::from_secs(left as u64));
        }
        st.generation = 1;
        Ok(())
    }

    /// A 401 with the token of `generation`: the next `token()` fetches a new one, unless
    /// another task already did. Returns false if renewing cannot help: a ready token, or a
    /// token that was itself the renewal after a 401 (one renewal per run, not one per
    /// request).
    pub async fn invalidate(&self, generation: u64) -> bool {
        if self.is_env_token() {
            return false;
        }
        let mut st = self.state.lock().await;
        if st.renewed_after_401 == Some(generation) {
            return false;
        }
        if st.generation == generation {
            st.refresh_at = Some(Instant::now());
            st.after_401 = true;
        }
        true
    }

    /// POSTs a form to the sign-in endpoint; network failures, 429 and 5xx are tried again
    /// (3 tries, honouring Retry-After): a token request changes nothing, so it is safe.
    async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, Value), GraphError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let last = tries >= 3;
            let resp = match self.http.post(url).form(form).send().await {
                Ok(r) => r,
                Err(_) if !last => {
                    tokio::time::sleep(super::retry::backoff(tries)).await;
                    continue;
                }
                Err(e) => {
                    return Err(GraphError::Auth(format!(
                        "cannot reach the sign-in endpoint {url}: {e}"
                    )))
                }
            };
            let status = resp.status().as_u16();
            if !last && (status == 429 || status >= 500) {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(super::parse_retry_after)
                    .unwrap_or_else(|| super::retry::backoff(tries));
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = resp.text().await.map_err(|e| {
                GraphError::Auth(format!("the sign-in endpoint {url} answered badly: {e}"))
            })?;
            // Never echo this body: it may hold a token.
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok((status, body));
        }
    }

    fn read_token(body: &Value) -> Result<(Secret, Duration, Option<Secret>), GraphError> {
        let access = body["access_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| GraphError::Auth("the sign-in endpoint sent no access_token".into()))?;
        let secs = body["expires_in"]
            .as_f64()
            .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3599.0)
            .max(0.1);
        Ok((
            Secret::new(access),
            Duration::from_secs_f64(secs),
            body["refresh_token"].as_str().map(Secret::new),
        ))
    }

    async fn fetch(
        &self,
        st: &mut State,
    ) -> Result<(Secret, Duration, Option<Secret>), GraphError> {
        match &self.method {
            Method::Secret(s) => {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.as_str()),
                    ("client_secret", s.expose()),
                    ("scope", self.scope_default.as_str()),
                ];
                self.token_request(&form).await
            }
            Method::Certificate(c) => {
                let assertion = c.assertion(&self.client_id, &self.token_url)?;
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.expose()),
                    ("scope", self.scope_default.as_str()),
                ];
                self.token_request(&form).await
            }
            Method::DeviceCode => {
                if let Some(rt) = st.refresh_token.clone() {
                    let form = [
                        ("grant_type", "refresh_token"),
                        ("client_id", self.client_id.as_str()),
                        ("refresh_token", rt.expose()),
                        ("scope", self.scope_delegated.as_str()),
                    ];
                    if let Ok(t) = self.token_request(&form).await {
                        return Ok(t);
                    }
                }
                self.device_code().await
            }
            Method::Env => Err(GraphError::Auth(
                "the token in MFA_BULK_ACCESS_TOKEN cannot be renewed".into(),
            )),
        }
    }

    async fn token_request(
        &self,
        form: &[(&str, &str)],
    ) -> Result<(Secret, Duration, Option<Secret>), GraphError> {
        let (status, body) = self.post_form(&self.token_url, form).await?;
        if status == 200 {
            Self::read_token(&body)
        } else {
            Err(GraphError::Auth(form_error(&body, status)))
        }
    }

    async fn device_code(&self) -> Result<(Secret, Duration, Option<Secret>), GraphError> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope_delegated.as_str()),
        ];
        let (status, body) = self.post_form(&self.device_url, &form).await?;
        if status != 200 {
            return Err(GraphError::Auth(form_error(&body, status)));
        }
        let device_code = body["device_code"]
            .as_str()
            .ok_or_else(|| GraphError::Auth("the sign-in endpoint sent no device_code".into()))?
            .to_string();
        let message = body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "To sign in, open {} and enter the code {}",
                    body["verification_uri"]
                        .as_str()
                        .unwrap_or("https://microsoft.com/devicelogin"),
                    body["user_code"].as_str().unwrap_or("?")
                )
            });
        eprintln!("{message}");
        let num = |v: &Value, d: f64| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(d)
        };
        let mut interval = Duration::from_secs_f64(num(&body["interval"], 5.0).max(0.0));
        let deadline =
            Instant::now() + Duration::from_secs_f64(num(&body["expires_in"], 900.0).max(1.0));
        loop {
            tokio::time::sleep(interval).await;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", self.client_id.as_str()),
                ("device_code", device_code.as_str()),
            ];
            let (status, body) = self.post_form(&self.token_url, &form).await?;
            if status == 200 {
                return Self::read_token(&body);
            }
            match body["error"].as_str().unwrap_or("") {
                "authorization_pending" => {}
                "slow_down" => {
                    interval += Duration::from_secs_f64(interval.as_secs_f64().clamp(0.05, 5.0))
                }
                "expired_token" | "code_expired" => {
                    return Err(GraphError::Auth(
                        "the device code expired before sign-in finished: run again and enter the \
                         code within the time shown"
                            .into(),
                    ))
                }
                "authorization_declined" => {
                    return Err(GraphError::Auth(
                        "sign-in was declined at the device code page".into(),
                    ))
                }
                _ => return Err(GraphError::Auth(form_error(&body, status))),
            }
            if Instant::now() >= deadline {
                return Err(GraphError::Auth(
                    "the device code expired before sign-in finished: run again".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refresh_margin_is_five_minutes_or_a_tenth() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(20)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn token_endpoint_errors_are_explained_without_the_body() {
        let e = form_error(
            &json!({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}),
            401,
        );
        assert!(
            e.starts_with("invalid_client: AADSTS7000215: Invalid client secret provided."),
            "{e}"
        );
        assert!(!e.contains("Trace ID"));
        assert!(e.contains("client secret or certificate"));
    }

    #[test]
    fn token_reply_is_read() {
        let (t, life, rt) = Auth::read_token(
            &json!({"token_type":"Bearer","expires_in":3599,"access_token":"abc"}),
        )
        .unwrap();
        assert_eq!(t.expose(), "abc");
        assert_eq!(life, Duration::from_secs(3599));
        assert!(rt.is_none());
        assert!(Auth::read_token(&json!({"expires_in":"10"})).is_err());
    }
}
