//! The Microsoft Graph client: sign-in (secret, certificate, browser, device code, managed
//! identity, ready token; an admin's sign-in kept between commands),
//! clouds, one pacing point for the whole run (resource units and writes), retries, `$batch`.
//! Graph's wire types stay inside this module; callers see our own types
//! ([`crate::model::User`], [`crate::model::MfaState`], [`Reply`], [`CallError`]).
//!
//! CONTRACT (the engine relies on these signatures; add, don't change):
//! - Batch-style calls take a slice of any length and a callback `each(index, result)` that is
//!   called once per item, as items complete (any order), from the calling task. The client
//!   splits into `$batch` requests of ≤ 20, runs them with bounded concurrency under the shared
//!   pacer, retries throttled / transient items on their own, and never resends a write whose
//!   answer was lost: that item comes back as [`ErrorKind::OutcomeUnknown`].
//! - After [`Graph::stop_sending`], nothing new is sent: items not yet sent come back as
//!   [`ErrorKind::Cancelled`] at once (every wait of the client ends), requests already in
//!   flight finish. [`Graph::verify_states`] still reads (for writes whose answer was lost).
//! - When Graph rejects the token (a 401 after one renewal, or at once for a ready token that
//!   cannot be renewed) or no new token can be had, the run stops the same way and
//!   [`Graph::token_rejected`] says why; items not sent because of it come back as
//!   [`ErrorKind::Unauthorized`] with code [`TOKEN_REJECTED`] (see [`CallError::not_sent`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{MfaState, User, UserRef};

mod auth;
mod browser;
mod certificate;
mod claims;
pub mod config;
mod errors;
mod listing;
pub mod managed_identity;
mod ops;
pub mod pacer;
mod retry;
pub mod roles;
mod stop;
pub mod token_cache;
mod transport;

pub use config::Cloud;
pub use errors::parse_retry_after;
pub use listing::{
    is_object_id, is_unsupported_query, Group, ListedUser, MfaPolicies, OtherMember, Registration,
    Registrations, ReportUnavailable, UserPages, UserSet,
};
pub use ops::{user_path, USER_SELECT};

pub use certificate::AppCertificate;
pub use retry::{BACKOFF_CAP, BATCH_MAX, MAX_THROTTLED, MAX_TRIES};
pub use stop::TOKEN_REJECTED;

/// How long [`Graph::verify_states`] may wait for Graph's budget in all.
pub const VERIFY_MAX_WAIT: Duration = Duration::from_secs(5);

/// A secret (client secret, certificate password, access token). Never printed: `Debug` and
/// `Display` show `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How to sign in.
#[derive(Clone, Debug)]
pub enum Credential {
    /// App with client secret (client_credentials).
    Secret(Secret),
    /// App with certificate (PEM or PFX): signed client assertion.
    Certificate {
        path: PathBuf,
        password: Option<Secret>,
    },
    /// Admin at a terminal: device code flow (delegated), asking for the app's `.default`
    /// permissions, kept for this run only.
    DeviceCode,
    /// An admin signs in (browser or device code) for the permissions a command needs; the
    /// sign-in is kept between commands unless `cache` is None.
    Admin(AdminSignIn),
    /// The managed identity of the Azure resource the tool runs on.
    ManagedIdentity(managed_identity::ManagedIdentity),
    /// A ready token (MFA_BULK_ACCESS_TOKEN), for automation.
    AccessToken(Secret),
}

/// How an admin signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInFlow {
    /// Authorization code with PKCE in the system browser (`--interactive`).
    Browser,
    /// Device code, entered at https://microsoft.com/devicelogin (`--device-code`).
    DeviceCode,
}

/// An admin's (delegated) sign-in.
#[derive(Clone, Debug)]
pub struct AdminSignIn {
    pub flow: SignInFlow,
    /// Microsoft Graph permissions to ask for, e.g. `User.Read.All` ([`delegated_scopes`]).
    pub scopes: Vec<String>,
    /// Where the sign-in is kept between commands; None with `--no-cache`.
    pub cache: Option<token_cache::CacheStore>,
}

/// The public client of Microsoft Graph Command Line Tools (the app `Connect-MgGraph` signs in
/// with): the default for `--interactive` and `--device-code` without `--client-id`.
pub const GRAPH_CLI_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// The delegated permissions a command asks for: reading or changing per-user MFA, finding
/// users, and the registration report for `--registration`.
pub fn delegated_scopes(write: bool, registration: bool) -> Vec<String> {
    let mut v = vec![
        if write {
            "Policy.ReadWrite.AuthenticationMethod"
        } else {
            "Policy.Read.All"
        },
        "User.Read.All",
    ];
    if registration {
        v.push("AuditLog.Read.All");
    }
    v.into_iter().map(String::from).collect()
}

/// Everything needed to talk to one tenant.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// e.g. `https://graph.microsoft.com` (no version, no trailing slash).
    pub graph_url: String,
    /// e.g. `https://login.microsoftonline.com`.
    pub login_url: String,
    /// "global", "usgov", "usgov-dod", "china" or "custom".
    pub cloud: String,
    pub tenant: String,
    pub client_id: String,
    pub credential: Credential,
    /// Resource units per 10 s to pace at (None: from the tenant-size table).
    pub ru_per_10s: Option<u32>,
    /// Writes per second to pace at (None: just under 3,000 per 2.5 minutes).
    pub writes_per_sec: Option<f64>,
    pub concurrency: usize,
    pub timeout: Duration,
}

/// How a run gets its signed-in client, handed to the engine by the command line: nothing
/// happens (no sign-in, no simulator started) until the engine awaits it, after every offline
/// check passed.
pub type Connect =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Graph, GraphError>> + Send>>;

/// Who we are signed in as, read from the token.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Identity {
    pub tenant_id: String,
    pub app_id: String,
    pub app_name: Option<String>,
    pub cloud: String,
    pub graph_url: String,
    /// Application permissions (`roles` claim).
    pub roles: Vec<String>,
    /// Delegated permissions (`scp` claim).
    pub scopes: Vec<String>,
    /// Signed-in admin for delegated sign-in (UPN), or None for an app.
    pub user: Option<String>,
    /// The signed-in admin's directory roles (template ids, the `wids` claim); None for an
    /// app or when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory_roles: Option<Vec<String>>,
}

/// What the run needs to be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// dry-run: read users and their per-user MFA state.
    Read,
    /// apply / revert: also change it.
    Write,
}

/// A successful answer and Graph's `request-id` for it.
#[derive(Clone, Debug)]
pub struct Reply<T> {
    pub value: T,
    pub request_id: Option<String>,
}

/// Result of looking a spreadsheet value up.
#[derive(Clone, Debug)]
pub enum Lookup {
    Found(User),
    NotFound,
    /// More than one user matches (e.g. a shared proxy address): reported, never guessed.
    Ambiguous(Vec<User>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ErrorKind {
    NotFound,
    Forbidden,
    Unauthorized,
    /// Still throttled after the retries allowed.
    Throttled,
    BadRequest,
    /// 5xx after the retries allowed.
    Server,
    /// Connection failed before anything was sent, or timed out on a read.
    Network,
    /// A write was sent but its answer was lost: it may or may not have been applied.
    /// Verify by reading; never resend blindly.
    OutcomeUnknown,
    /// Not sent because the run is stopping (Ctrl-C).
    Cancelled,
    Other,
}

/// One failed call or batch item, with Graph's code, message and request-id.
#[derive(Clone, Debug)]
pub struct CallError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} {}: {}", s, self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// The request was never sent, so nothing changed: the run stopped (Ctrl-C,
    /// [`ErrorKind::Cancelled`]) or Graph had rejected the sign-in token (code
    /// [`TOKEN_REJECTED`]; [`Graph::token_rejected`] has what Graph said).
    pub fn not_sent(&self) -> bool {
        self.kind == ErrorKind::Cancelled
            || (self.kind == ErrorKind::Unauthorized && self.code == TOKEN_REJECTED)
    }
}

/// Errors that stop the run.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Bad or missing configuration (exit 2).
    #[error("{0}")]
    Config(String),
    /// Sign-in failed (exit 3).
    #[error("sign-in failed: {0}")]
    Auth(String),
    /// The token lacks a permission or role (exit 3).
    #[error("{0}")]
    MissingPermission(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Counters for the summary, run record and benchmark.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// HTTP requests sent to Graph (a `$batch` counts once).
    pub http_requests: u64,
    /// Logical requests (each batch item counts once).
    pub requests: u64,
    /// Resource units charged by the pacer (documented costs).
    pub resource_units: u64,
    pub writes: u64,
    /// 429 answers seen (outer or batch item).
    pub throttled: u64,
    pub retries: u64,
    pub tokens_fetched: u64,
    /// Throttle waves the pacer acted on (one decrease each), writes and resource units.
    pub throttle_waves: u64,
    /// The write pace at the end, writes per second (below the configured one after Graph
    /// throttled: what the run learned Graph allows).
    pub write_pace: f64,
    /// The write rate Graph was last measured to allow, if it ever throttled writes.
    pub write_ceiling: Option<f64>,
}

impl GraphError {
    /// The exit code this error ends the run with: 2 for configuration, 3 for sign-in and
    /// permissions, 1 for a failed call.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            GraphError::Config(_) => ExitCode::UsageOrInput,
            GraphError::Auth(_) | GraphError::MissingPermission(_) => ExitCode::AuthOrPermission,
            GraphError::Call(c)
                if matches!(c.kind, ErrorKind::Unauthorized) || c.is_permission_problem() =>
            {
                ExitCode::AuthOrPermission
            }
            GraphError::Call(_) => ExitCode::RowsNeedAttention,
        }
    }
}

/// What a [`Requirement`] asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementKind {
    /// A Microsoft Graph permission of the app (application) or the sign-in (delegated).
    #[default]
    Permission,
    /// A directory role of the signed-in admin (delegated only).
    DirectoryRole,
}

/// One permission (or admin role) the run needs, and which granted one (if any) covers it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Requirement {
    pub kind: RequirementKind,
    /// What it is needed for, e.g. "change per-user MFA state".
    pub purpose: String,
    /// Any one of these is enough; the first is the one to grant.
    pub any_of: Vec<String>,
    /// The granted permission that covers it, or None if missing.
    pub found: Option<String>,
}

const READ_USERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Directory.AccessAsUser.All",
];
const READ_STATE: &[&str] = &["Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"];
const WRITE_STATE: &[&str] = &["Policy.ReadWrite.AuthenticationMethod"];

fn requirement(purpose: &str, any_of: &[&str], granted: &[String]) -> Requirement {
    Requirement {
        kind: RequirementKind::Permission,
        purpose: purpose.into(),
        any_of: any_of.iter().map(|s| s.to_string()).collect(),
        found: any_of
            .iter()
            .find(|p| granted.iter().any(|g| g.eq_ignore_ascii_case(p)))
            .map(|s| s.to_string()),
    }
}

/// The permissions `access` needs, checked against the token's roles (app) or scopes
/// (delegated).
pub fn requirements_for(identity: &Identity, access: Access) -> Vec<Requirement> {
    let granted = if identity.user.is_some() || !identity.scopes.is_empty() {
        &identity.scopes
    } else {
        &identity.roles
    };
    let users: &[&str] = if identity.user.is_some() {
        READ_USERS
    } else {
        &READ_USERS[..4]
    };
    let mut v = vec![requirement("find users", users, granted)];
    match access {
        Access::Read => v.push(requirement("read per-user MFA state", READ_STATE, granted)),
        Access::Write => {
            v.push(requirement(
                "change per-user MFA state",
                WRITE_STATE,
                granted,
            ));
            // An admin also needs a directory role that may change it (Graph answers 403 per
            // user otherwise): known from the token's `wids`.
            if let (Some(_), Some(wids)) = (&identity.user, &identity.directory_roles) {
                v.push(Requirement {
                    kind: RequirementKind::DirectoryRole,
                    purpose: "hold an admin role".into(),
                    any_of: roles::MAY_CHANGE_MFA
                        .iter()
                        .map(|r| roles::name(r))
                        .collect(),
                    found: roles::mfa_admin_role(wids).map(roles::name),
                });
            }
        }
    }
    v
}

/// The admin-facing message for missing permissions, with how to grant them.
pub fn missing_message(identity: &Identity, missing: &[&Requirement]) -> String {
    let delegated = identity.user.is_some() || !identity.scopes.is_empty();
    let app = match &identity.app_name {
        Some(n) => format!("'{n}' ({})", identity.app_id),
        None if identity.app_id.is_empty() => "the app".to_string(),
        None => format!("({})", identity.app_id),
    };
    let kind = if delegated {
        "Delegated"
    } else {
        "Application"
    };
    let (roles_missing, missing): (Vec<&Requirement>, Vec<&Requirement>) = missing
        .iter()
        .partition(|r| r.kind == RequirementKind::DirectoryRole);
    let mut s = String::new();
    if !roles_missing.is_empty() {
        let held = roles::names(identity.directory_roles.as_deref().unwrap_or(&[]));
        s.push_str(&format!(
            "the signed-in admin {} holds none of the roles that may change per-user MFA \
             ({}); roles in this sign-in: {}.\nAsk for Authentication Policy Administrator (if \
             it is eligible in Privileged Identity Management, activate it), then run \
             `mfa-bulk logout` and sign in again. Roles scoped to an administrative unit do not \
             count.",
            identity.user.as_deref().unwrap_or("(unknown)"),
            roles::MAY_CHANGE_MFA
                .iter()
                .map(|r| roles::name(r))
                .collect::<Vec<_>>()
                .join(", "),
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(", ")
            }
        ));
        if missing.is_empty() {
            return s;
        }
        s.push('\n');
    }
    for r in &missing {
        s.push_str(&format!(
            "missing Microsoft Graph {} permission {} (needed to {}){}\n",
            kind.to_ascii_lowercase(),
            r.any_of[0],
            r.purpose,
            if r.any_of.len() > 1 {
                format!("; any of {} will do", r.any_of.join(", "))
            } else {
                String::new()
            }
        ));
    }
    let names: Vec<&str> = missing.iter().map(|r| r.any_of[0].as_str()).collect();
    s.push_str(&format!(
        "To grant: Entra admin center → App registrations → {app} → API permissions → Add a \
         permission → Microsoft Graph → {kind} permissions → {} → Add permissions, then \
         \"Grant admin consent\" for the tenant.",
        names.join(", ")
    ));
    if delegated {
        s.push_str(
            " The signed-in admin also needs the Authentication Policy Administrator role (or \
             higher); sign in again afterwards.",
        );
    } else {
        s.push_str(" New permissions reach the app's next token (a few minutes).");
    }
    s
}

/// A connected, signed-in client. Cheap to clone; clones share the pacer and token cache.
#[derive(Clone)]
pub struct Graph {
    inner: Arc<transport::Inner>,
    _guard: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

fn identity_from(cfg: &GraphConfig, token: &str) -> (Identity, bool) {
    let mut id = Identity {
        tenant_id: cfg.tenant.clone(),
        app_id: cfg.client_id.clone(),
        cloud: cfg.cloud.clone(),
        graph_url: cfg.graph_url.clone(),
        ..Identity::default()
    };
    let Some(c) = claims::claims(token) else {
        return (id, false);
    };
    let s = |k: &str| c[k].as_str().map(str::to_string).filter(|s| !s.is_empty());
    if let Some(t) = s("tid") {
        id.tenant_id = t;
    }
    if let Some(a) = s("appid").or_else(|| s("azp")) {
        id.app_id = a;
    }
    id.app_name = s("app_displayname");
    id.roles = c["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    id.scopes = s("scp")
        .map(|x| x.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    id.user = s("upn")
        .or_else(|| s("preferred_username"))
        .or_else(|| s("unique_name"));
    id.directory_roles = c["wids"].as_array().map(|a| {
        a.iter()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect()
    });
    if id.user.is_none() && !id.scopes.is_empty() {
        id.user = Some(String::from("(signed-in user)"));
    }
    (id, true)
}

/// Completes a delegated identity with who signed in (the ID token): the admin's user name,
/// and roles from the ID token when the access token has none. Entra lists every user's roles
/// in `wids` (at least the default "User" role), so a token without it leaves them unknown.
fn with_account(mut id: Identity, account: Option<auth::Account>) -> Identity {
    if let Some(a) = account {
        if let Some(u) = a.username {
            id.user = Some(u);
        }
        if id.directory_roles.is_none() {
            id.directory_roles = a.wids;
        }
    }
    id
}

fn build_http(cfg: &GraphConfig) -> Result<reqwest::Client, GraphError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .user_agent(concat!("mfa-bulk/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(cfg.timeout.min(Duration::from_secs(15)))
        .timeout(cfg.timeout)
        .gzip(true)
        .pool_max_idle_per_host(cfg.concurrency.max(1))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| GraphError::Config(format!("cannot set up HTTPS: {e}")))
}

impl Graph {
    /// Signs in (fetches the first token) and reads the identity from it.
    pub async fn connect(cfg: GraphConfig) -> Result<Graph, GraphError> {
        Graph::connect_keeping(cfg, None).await
    }

    /// Like [`Graph::connect`], keeping `guard` alive as long as the client (the built-in
    /// simulator's handle, for `--sim`).
    pub async fn connect_keeping(
        cfg: GraphConfig,
        guard: Option<Box<dyn std::any::Any + Send + Sync>>,
    ) -> Result<Graph, GraphError> {
        cfg.check_pacing()?;
        let http = build_http(&cfg)?;
        let auth = auth::Auth::new(&cfg, http.clone())?;
        auth.init_env_token().await?;
        let token = auth.token().await?;
        let (identity, known) = identity_from(&cfg, token.access.expose());
        let identity = with_account(identity, auth.account().await);
        let pacer = pacer::Pacer::new(cfg.ru_per_10s, cfg.writes_per_sec);
        let inner = transport::Inner {
            sem: tokio::sync::Semaphore::new(cfg.concurrency.max(1)),
            http,
            auth,
            pacer,
            report_pacer: pacer::Bucket::new(0.45, 4.0),
            report_gate: pacer::Gate::default(),
            stop: Default::default(),
            counters: Default::default(),
            identity: std::sync::RwLock::new(identity),
            claims_known: known,
            cfg,
        };
        Ok(Graph {
            inner: Arc::new(inner),
            _guard: guard.map(Arc::from),
        })
    }

    pub fn identity(&self) -> Identity {
        self.inner.identity.read().unwrap().clone()
    }

    /// Whether the token's claims could be read (a JWT). If not, permissions are unknown.
    pub fn permissions_known(&self) -> bool {
        self.inner.claims_known
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    /// The permissions `access` needs and which are present.
    pub fn requirements(&self, access: Access) -> Vec<Requirement> {
        requirements_for(&self.identity(), access)
    }

    /// Checks the token's roles/scopes for `access` and says plainly what is missing.
    pub fn check_access(&self, access: Access) -> Result<(), GraphError> {
        if !self.permissions_known() {
            // An opaque token: Graph will say 403 if a permission is missing.
            return Ok(());
        }
        let reqs = self.requirements(access);
        let missing: Vec<&Requirement> = reqs.iter().filter(|r| r.found.is_none()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(GraphError::MissingPermission(missing_message(
                &self.identity(),
                &missing,
            )))
        }
    }

    /// Sets the RU budget from the tenant-size table (unless `--rate` was given).
    /// [`Graph::count_users`] does this by itself.
    pub fn set_tenant_size(&self, users: u64) {
        self.inner.pacer.set_tenant_size(users);
    }

    /// The RU budget paced at now, per 10 s (after any 429 back-off).
    pub fn ru_rate_per_10s(&self) -> f64 {
        self.inner.pacer.ru.rate() * 10.0
    }

    /// The write pace now, writes per second (after any throttling: what Graph allows).
    pub fn write_rate(&self) -> f64 {
        self.inner.pacer.writes.rate()
    }

    /// Number of users in the tenant (`/users/$count`, ConsistencyLevel: eventual).
    pub async fn count_users(&self) -> Result<u64, CallError> {
        ops::count_users(&self.inner).await
    }

    /// Every user, in pages of 999, with the fields needed to match spreadsheet values.
    /// `progress(n)` is called with the number of users fetched so far.
    pub async fn list_users(
        &self,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Vec<User>, CallError> {
        ops::list_users(&self.inner, progress).await
    }

    /// One harmless read (`GET /users?$top=1&$select=id`) to prove the token works.
    pub async fn probe(&self) -> Result<Option<String>, CallError> {
        let r = self
            .inner
            .call(
                "v1.0",
                &transport::Req::get("/users?$top=1&$select=id", pacer::Cost::get_list(true)),
                false,
                transport::Mode::RUN,
            )
            .await?;
        Ok(r.request_id)
    }

    /// Looks each value up: UPN or object id directly; an address that is not a UPN by
    /// mail, otherMails and proxyAddresses.
    pub async fn resolve<F>(&self, keys: &[UserRef], each: F)
    where
        F: FnMut(usize, Result<Lookup, CallError>) + Send,
    {
        ops::resolve(&self.inner, keys, each).await
    }

    /// Reads the per-user MFA state of each user id.
    pub async fn get_states<F>(&self, user_ids: &[String], each: F)
    where
        F: FnMut(usize, Result<Reply<MfaState>, CallError>) + Send,
    {
        ops::get_states(&self.inner, user_ids, transport::Mode::RUN, each).await
    }

    /// Like [`Graph::get_states`], for the reads that must happen even after
    /// [`Graph::stop_sending`]: a write whose answer was lost (`OutcomeUnknown`) gets its one
    /// read. Sent even when the run is stopping; paced, but no wait (pacing, a closed gate,
    /// `Retry-After`) goes past [`VERIFY_MAX_WAIT`] from the call, so it returns within that
    /// plus one request's time. An item still throttled then comes back with its 429 error;
    /// after a rejected token every item comes back not sent ([`CallError::not_sent`]).
    pub async fn verify_states<F>(&self, user_ids: &[String], each: F)
    where
        F: FnMut(usize, Result<Reply<MfaState>, CallError>) + Send,
    {
        let mode = transport::Mode::verify(VERIFY_MAX_WAIT);
        ops::get_states(&self.inner, user_ids, mode, each).await
    }

    /// Sets the per-user MFA state. A lost answer comes back as `OutcomeUnknown`.
    pub async fn set_states<F>(&self, changes: &[(String, MfaState)], each: F)
    where
        F: FnMut(usize, Result<Reply<()>, CallError>) + Send,
    {
        ops::set_states(&self.inner, changes, each).await
    }

    /// Whether each user has registered an MFA method: from the registration report when the
    /// tenant allows it (paged, reports are throttled hard), else from the user's
    /// authentication methods. `Ok(None)` for a user means "could not tell".
    pub async fn registration<F>(&self, user_ids: &[String], each: F) -> Result<(), GraphError>
    where
        F: FnMut(usize, Option<bool>) + Send,
    {
        ops::registration(&self.inner, user_ids, each).await;
        Ok(())
    }

    /// Stop sending (Ctrl-C): nothing new is sent, every wait (pacing, a 429's
    /// `Retry-After`, backoff) ends at once and items not yet sent come back as `Cancelled`;
    /// in-flight requests finish. [`Graph::verify_states`] still reads.
    pub fn stop_sending(&self) {
        self.inner.stop.stop(stop::Reason::Interrupted);
    }

    /// Whether the run stopped sending (Ctrl-C, or a rejected token).
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_stopped()
    }

    /// The sign-in failure that stopped the run, if any: Graph answered 401 after the token
    /// was renewed once (or at once, for a ready token that cannot be renewed), or no new
    /// token could be had. Nothing more is sent once this is set; the run should end with
    /// exit 3 and rows not reached should say that sign-in stopped working (items that were
    /// not sent because of it come back with [`CallError::not_sent`] true and a message
    /// saying so).
    pub fn token_rejected(&self) -> Option<CallError> {
        self.inner.stop.token_rejected()
    }

    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            http_requests: g(&c.http_requests),
            requests: g(&c.requests),
            resource_units: g(&c.resource_units),
            writes: g(&c.writes),
            throttled: g(&c.throttled),
            retries: g(&c.retries),
            tokens_fetched: g(&self.inner.auth.fetched),
            throttle_waves: self.inner.pacer.ru.waves() + self.inner.pacer.writes.waves(),
            write_pace: self.inner.pacer.writes.rate(),
            write_ceiling: self.inner.pacer.writes.ceiling(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(roles: &[&str], scopes: &[&str], user: Option<&str>) -> Identity {
        Identity {
            app_id: "app-1".into(),
            app_name: Some("MFA bulk".into()),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            user: user.map(str::to_string),
            ..Identity::default()
        }
    }

    #[test]
    fn read_only_app_can_dry_run_but_not_apply() {
        let id = ident(&["User.Read.All", "Policy.Read.All"], &[], None);
        assert!(requirements_for(&id, Access::Read)
            .iter()
            .all(|r| r.found.is_some()));
        let w = requirements_for(&id, Access::Write);
        let missing: Vec<&Requirement> = w.iter().filter(|r| r.found.is_none()).collect();
        assert_eq!(missing.len(), 1);
        let m = missing_message(&id, &missing);
        assert!(m.contains("Policy.ReadWrite.AuthenticationMethod"), "{m}");
        assert!(
            m.contains("Application permissions") && m.contains("Grant admin consent"),
            "{m}"
        );
    }

    #[test]
    fn write_permission_also_covers_reading_state() {
        let id = ident(
            &[
                "Directory.Read.All",
                "Policy.ReadWrite.AuthenticationMethod",
            ],
            &[],
            None,
        );
        for a in [Access::Read, Access::Write] {
            assert!(requirements_for(&id, a).iter().all(|r| r.found.is_some()));
        }
    }

    #[test]
    fn delegated_uses_scopes_and_mentions_the_role() {
        let id = ident(&[], &["User.Read.All"], Some("admin@contoso.com"));
        let w = requirements_for(&id, Access::Write);
        let missing: Vec<&Requirement> = w.iter().filter(|r| r.found.is_none()).collect();
        let m = missing_message(&id, &missing);
        assert!(
            m.contains("Delegated permissions")
                && m.contains("Authentication Policy Administrator"),
            "{m}"
        );
    }

    #[test]
    fn identity_is_read_from_the_token() {
        use base64::Engine;
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            r#"{"tid":"t-1","appid":"a-1","app_displayname":"MFA bulk","roles":["Policy.Read.All"]}"#,
        );
        let cfg = GraphConfig {
            graph_url: "https://graph.microsoft.com".into(),
            login_url: "https://login.microsoftonline.com".into(),
            cloud: "global".into(),
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "a-1".into(),
            credential: Credential::DeviceCode,
            ru_per_10s: None,
            writes_per_sec: None,
            concurrency: 1,
            timeout: Duration::from_secs(1),
        };
        let (id, known) = identity_from(&cfg, &format!("h.{p}.s"));
        assert!(known);
        assert_eq!(id.tenant_id, "t-1");
        assert_eq!(id.app_name.as_deref(), Some("MFA bulk"));
        assert_eq!(id.roles, vec!["Policy.Read.All"]);
        assert!(id.user.is_none());
        let (id, known) = identity_from(&cfg, "opaque");
        assert!(!known);
        assert_eq!(id.tenant_id, "contoso.onmicrosoft.com");
    }

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let s = Secret::new("hunter2-secret");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let c = Credential::Certificate {
            path: "a.pem".into(),
            password: Some(Secret::new("pfx-pass")),
        };
        assert!(!format!("{c:?}").contains("pfx-pass"));
        let c = Credential::AccessToken(Secret::new("eyJtoken"));
        assert!(!format!("{c:?}").contains("eyJtoken"));
    }
}
