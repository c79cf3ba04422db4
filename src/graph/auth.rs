//! Sign-in and the token cache: one token for the whole run, refreshed before it expires and
//! after a 401, by one task while the others wait (no stampede).
//!
//! An admin's sign-in (browser or device code) also keeps its refresh token between commands
//! (`token_cache.rs`): a command first tries the saved one, and signs in again only when there
//! is none or Entra no longer accepts it. The ID token tells who signed in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::browser;
use super::certificate::AppCertificate;
use super::claims;
use super::managed_identity::ManagedIdentity;
use super::token_cache::{CacheKey, TokenCache};
use super::{AdminSignIn, Credential, GraphConfig, GraphError, Secret, SignInFlow};

/// Refresh this long before expiry: 5 minutes, or a tenth of a short lifetime.
pub(super) fn refresh_margin(lifetime: Duration) -> Duration {
    Duration::from_secs(300).min(lifetime / 10)
}

#[derive(Clone)]
pub(super) struct Token {
    pub access: Secret,
    pub generation: u64,
}

enum Method {
    Secret(Secret),
    Certificate(Box<AppCertificate>),
    /// The device code flow without a saved sign-in (library callers).
    DeviceCode,
    /// An admin's sign-in: browser or device code, with its scopes and cache.
    Admin(Box<Admin>),
    ManagedIdentity(Box<ManagedIdentity>),
    Env,
}

struct Admin {
    flow: SignInFlow,
    /// The full scope string (Graph permissions, `offline_access openid profile`).
    scope: String,
    cache: Option<TokenCache>,
    /// The tenant asked for, and whether it names one tenant (not `organizations`).
    tenant: String,
}

/// Who signed in, from the ID token (delegated sign-ins).
#[derive(Clone, Debug, Default)]
pub(super) struct Account {
    /// `preferred_username` (the UPN).
    pub username: Option<String>,
    pub tenant_id: Option<String>,
    /// Directory role template ids (`wids`), if the ID token carries them.
    pub wids: Option<Vec<String>>,
}

impl Account {
    fn from_id_token(id_token: &str) -> Option<Account> {
        let c = claims::claims(id_token)?;
        let s = |k: &str| c[k].as_str().map(str::to_string).filter(|s| !s.is_empty());
        Some(Account {
            username: s("preferred_username")
                .or_else(|| s("upn"))
                .or_else(|| s("email")),
            tenant_id: s("tid"),
            wids: c["wids"].as_array().map(|a| {
                a.iter()
                    .filter_map(|w| w.as_str().map(str::to_string))
                    .collect()
            }),
        })
    }

    /// From an access token (when the answer held no ID token).
    fn from_access_token(token: &str) -> Option<Account> {
        let c = claims::claims(token)?;
        let s = |k: &str| c[k].as_str().map(str::to_string).filter(|s| !s.is_empty());
        Some(Account {
            username: s("upn")
                .or_else(|| s("preferred_username"))
                .or_else(|| s("unique_name")),
            tenant_id: s("tid"),
            wids: None,
        })
    }
}

/// A token endpoint's answer.
struct Reply {
    access: Secret,
    lifetime: Duration,
    refresh: Option<Secret>,
    id_token: Option<Secret>,
}

struct State {
    token: Option<Secret>,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    refresh_token: Option<Secret>,
    generation: u64,
    /// Who signed in (delegated).
    account: Option<Account>,
    /// The saved sign-in was tried already (it is read once per run).
    cache_tried: bool,
    /// The next token is fetched because Graph answered 401 (not because it expires).
    after_401: bool,
    /// The generation fetched after a 401: if Graph answers 401 to it too, renewing does
    /// not help (the credential no longer gets a token Graph accepts).
    renewed_after_401: Option<u64>,
}

pub(super) struct Auth {
    http: reqwest::Client,
    token_url: String,
    device_url: String,
    authorize_url: String,
    discovery_url: String,
    /// Graph's base URL: the managed identity's `resource`.
    resource: String,
    client_id: String,
    scope_default: String,
    scope_delegated: String,
    method: Method,
    state: tokio::sync::Mutex<State>,
    /// The newest token generation Graph answered with anything but 401: a renewal that
    /// worked may be renewed again after a later revocation.
    accepted: AtomicU64,
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

impl Admin {
    fn new(cfg: &GraphConfig, a: &AdminSignIn) -> Admin {
        let mut scope: Vec<String> = a
            .scopes
            .iter()
            .map(|s| format!("{}/{s}", cfg.graph_url))
            .collect();
        scope.extend(["offline_access", "openid", "profile"].map(String::from));
        Admin {
            flow: a.flow,
            scope: scope.join(" "),
            cache: a.cache.clone().map(|store| {
                TokenCache::new(
                    store,
                    CacheKey {
                        authority: cfg.login_url.clone(),
                        tenant: cfg.tenant.clone(),
                        client_id: cfg.client_id.clone(),
                    },
                )
            }),
            tenant: cfg.tenant.clone(),
        }
    }
}

/// The tenant's directory id when `tenant` is one (a GUID), to compare with the token's `tid`.
fn tenant_id_of(tenant: &str) -> Option<&str> {
    uuid::Uuid::parse_str(tenant).ok().map(|_| tenant)
}

impl Auth {
    pub(super) fn new(cfg: &GraphConfig, http: reqwest::Client) -> Result<Auth, GraphError> {
        let method = match &cfg.credential {
            Credential::Secret(s) => Method::Secret(s.clone()),
            Credential::Certificate { path, password } => {
                Method::Certificate(Box::new(AppCertificate::load(path, password.as_ref())?))
            }
            Credential::DeviceCode => Method::DeviceCode,
            Credential::Admin(a) => Method::Admin(Box::new(Admin::new(cfg, a))),
            Credential::ManagedIdentity(mi) => Method::ManagedIdentity(Box::new(mi.clone())),
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
            account: None,
            cache_tried: false,
            after_401: false,
            renewed_after_401: None,
        };
        let base = format!("{}/{}/oauth2/v2.0", cfg.login_url, cfg.tenant);
        Ok(Auth {
            accepted: AtomicU64::new(0),
            http,
            token_url: format!("{base}/token"),
            device_url: format!("{base}/devicecode"),
            authorize_url: format!("{base}/authorize"),
            discovery_url: format!(
                "{}/{}/v2.0/.well-known/openid-configuration",
                cfg.login_url, cfg.tenant
            ),
            resource: cfg.graph_url.clone(),
            client_id: cfg.client_id.clone(),
            scope_default: format!("{}/.default", cfg.graph_url),
            scope_delegated: format!("{}/.default offline_access", cfg.graph_url),
            method,
            state: tokio::sync::Mutex::new(state),
            fetched: AtomicU64::new(0),
        })
    }

    pub(super) fn is_env_token(&self) -> bool {
        matches!(self.method, Method::Env)
    }

    /// Who signed in (delegated sign-ins), once a token was fetched.
    pub(super) async fn account(&self) -> Option<Account> {
        self.state.lock().await.account.clone()
    }

    /// The current token, fetching or refreshing it first if needed.
    pub(super) async fn token(&self) -> Result<Token, GraphError> {
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
        let Reply {
            access,
            lifetime,
            refresh,
            ..
        } = self.fetch(&mut st).await?;
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
    pub(super) async fn init_env_token(&self) -> Result<(), GraphError> {
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

    /// Graph answered a request sent with the token of `generation` (with anything but 401).
    pub(super) fn accepted(&self, generation: u64) {
        self.accepted.fetch_max(generation, Ordering::Relaxed);
    }

    /// A 401 with the token of `generation`: the next `token()` fetches a new one, unless
    /// another task already did. Returns false if renewing cannot help: a ready token, or a
    /// token that was itself the renewal after a 401 (one renewal per run, not one per
    /// request).
    pub(super) async fn invalidate(&self, generation: u64) -> bool {
        if self.is_env_token() {
            return false;
        }
        let mut st = self.state.lock().await;
        if st.renewed_after_401 == Some(generation)
            && self.accepted.load(Ordering::Relaxed) < generation
        {
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

    fn read_token(body: &Value) -> Result<Reply, GraphError> {
        let access = body["access_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| GraphError::Auth("the sign-in endpoint sent no access_token".into()))?;
        let secs = body["expires_in"]
            .as_f64()
            .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3599.0)
            .max(0.1);
        Ok(Reply {
            access: Secret::new(access),
            lifetime: Duration::from_secs_f64(secs),
            refresh: body["refresh_token"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            id_token: body["id_token"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(Secret::new),
        })
    }

    async fn fetch(&self, st: &mut State) -> Result<Reply, GraphError> {
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
                self.device_code(&self.scope_delegated).await
            }
            Method::Admin(a) => self.admin(a, st).await,
            Method::ManagedIdentity(mi) => {
                let (access, lifetime) = mi.fetch(&self.http, &self.resource).await?;
                Ok(Reply {
                    access,
                    lifetime,
                    refresh: None,
                    id_token: None,
                })
            }
            Method::Env => Err(GraphError::Auth(
                "the token in MFA_BULK_ACCESS_TOKEN cannot be renewed".into(),
            )),
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Reply, GraphError> {
        self.token_request_raw(form)
            .await?
            .map_err(|(status, body)| GraphError::Auth(form_error(&body, status)))
    }

    /// The token endpoint's answer: the token, or its status and error body.
    async fn token_request_raw(
        &self,
        form: &[(&str, &str)],
    ) -> Result<Result<Reply, (u16, Value)>, GraphError> {
        let (status, body) = self.post_form(&self.token_url, form).await?;
        if status == 200 {
            Self::read_token(&body).map(Ok)
        } else {
            Ok(Err((status, body)))
        }
    }

    /// An admin's token: the refresh token of this run, else the saved sign-in, else a new
    /// sign-in (browser or device code). Every new refresh token replaces the saved one.
    async fn admin(&self, a: &Admin, st: &mut State) -> Result<Reply, GraphError> {
        let mut saved_account = None;
        let mut refresh = st.refresh_token.clone();
        if refresh.is_none() && !st.cache_tried {
            st.cache_tried = true;
            if let Some(cache) = a.cache.clone() {
                let found = tokio::task::spawn_blocking(move || cache.load())
                    .await
                    .ok()
                    .flatten();
                if let Some(f) = found {
                    saved_account = Some(f.account);
                    refresh = Some(f.refresh_token);
                }
            }
        }
        let mut reply = None;
        if let Some(rt) = refresh {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", self.client_id.as_str()),
                ("refresh_token", rt.expose()),
                ("scope", a.scope.as_str()),
            ];
            match self.token_request_raw(&form).await? {
                Ok(r) => reply = Some(r),
                Err((status, body)) => {
                    let who = saved_account
                        .clone()
                        .or_else(|| st.account.as_ref().and_then(|x| x.username.clone()));
                    if let (Some(cache), Some(who)) = (a.cache.clone(), who.clone()) {
                        let _ = tokio::task::spawn_blocking(move || cache.forget(&who)).await;
                    }
                    st.refresh_token = None;
                    eprintln!(
                        "note: the saved sign-in{} is no longer accepted ({}); signing in again.",
                        who.map(|w| format!(" of {w}")).unwrap_or_default(),
                        form_error(&body, status)
                    );
                }
            }
        }
        let reply = match reply {
            Some(r) => r,
            None => match a.flow {
                SignInFlow::Browser => self.browser(a).await?,
                SignInFlow::DeviceCode => {
                    self.check_tenant(a).await?;
                    self.device_code(&a.scope).await?
                }
            },
        };
        let mut account = reply
            .id_token
            .as_ref()
            .and_then(|t| Account::from_id_token(t.expose()))
            .or_else(|| Account::from_access_token(reply.access.expose()))
            .unwrap_or_default();
        if account.username.is_none() {
            account.username =
                saved_account.or_else(|| st.account.as_ref().and_then(|x| x.username.clone()));
        }
        if let (Some(want), Some(got)) = (tenant_id_of(&a.tenant), account.tenant_id.as_deref()) {
            if !want.eq_ignore_ascii_case(got) {
                return Err(GraphError::Auth(format!(
                    "{} signed in to the tenant {got}, not to {want} (--tenant): sign in with \
                     an account of {want}",
                    account.username.as_deref().unwrap_or("the account")
                )));
            }
        }
        if let (Some(cache), Some(rt), Some(who)) = (
            a.cache.clone(),
            reply.refresh.clone(),
            account.username.clone(),
        ) {
            let tid = account.tenant_id.clone();
            let _ =
                tokio::task::spawn_blocking(move || cache.save(&who, tid.as_deref(), &rt)).await;
        }
        st.account = Some(account);
        Ok(reply)
    }

    /// Checks the tenant exists in this cloud (the sign-in page would only show the error in
    /// the browser). Skipped for `organizations` and `common`.
    async fn check_tenant(&self, a: &Admin) -> Result<(), GraphError> {
        if matches!(
            a.tenant.to_ascii_lowercase().as_str(),
            "organizations" | "common" | "consumers"
        ) {
            return Ok(());
        }
        let resp = self
            .http
            .get(&self.discovery_url)
            .send()
            .await
            .map_err(|e| {
                GraphError::Auth(format!(
                    "cannot reach the sign-in endpoint {}: {e}",
                    self.discovery_url
                ))
            })?;
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let desc = body["error_description"].as_str().unwrap_or("");
        if desc.contains("AADSTS90002") || status == 400 || status == 404 {
            return Err(GraphError::Auth(format!(
                "the tenant '{}' does not exist in this cloud ({}): check --tenant /                  AZURE_TENANT_ID (and --cloud)",
                a.tenant,
                desc.lines().next().unwrap_or("").split(" Trace ID").next().unwrap_or("").trim()
            )));
        }
        Err(GraphError::Auth(form_error(&body, status)))
    }

    /// The browser sign-in: authorization code with PKCE, answered on a loopback port.
    async fn browser(&self, a: &Admin) -> Result<Reply, GraphError> {
        self.check_tenant(a).await?;
        let callback = browser::Callback::bind().await?;
        let redirect_uri = callback.redirect_uri.clone();
        let pkce = browser::Pkce::new();
        let state = browser::random(16);
        let url = browser::authorize_url(
            &self.authorize_url,
            &self.client_id,
            &redirect_uri,
            &a.scope,
            &state,
            &pkce.challenge,
        );
        eprintln!(
            "Sign in to Microsoft Entra in your browser. If none opens, open this address on \
             this machine:\n  {url}"
        );
        let opener = url.clone();
        let opened = tokio::task::spawn_blocking(move || browser::open(&opener))
            .await
            .unwrap_or(false);
        if !opened {
            eprintln!("(No browser could be started here: open the address above.)");
        }
        let code = callback.wait(&state, browser::SIGN_IN_TIMEOUT).await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("code", code.expose()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", pkce.verifier.expose()),
            ("scope", a.scope.as_str()),
        ];
        self.token_request(&form).await
    }

    async fn device_code(&self, scope: &str) -> Result<Reply, GraphError> {
        let form = [("client_id", self.client_id.as_str()), ("scope", scope)];
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
        let r = Auth::read_token(
            &json!({"token_type":"Bearer","expires_in":3599,"access_token":"abc"}),
        )
        .unwrap();
        assert_eq!(r.access.expose(), "abc");
        assert_eq!(r.lifetime, Duration::from_secs(3599));
        assert!(r.refresh.is_none() && r.id_token.is_none());
        assert!(Auth::read_token(&json!({"expires_in":"10"})).is_err());
    }
}
