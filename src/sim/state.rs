//! The simulated tenant while it runs: users, issued tokens, device codes, throttling windows,
//! counters and the request log. One mutex; every critical section is short and never awaits.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use super::config::{ClientSeed, FaultConfig, SimConfig, UserSeed};
use super::throttle::{Limits, Throttle};
use super::wire::Ctx;

/// Simulated time: real time multiplied by `time_scale`.
#[derive(Clone, Debug)]
pub(super) struct Clock {
    start: Instant,
    scale: f64,
}

impl Clock {
    pub(super) fn new(scale: f64) -> Clock {
        Clock {
            start: Instant::now(),
            scale,
        }
    }
    /// Simulated seconds since the start.
    pub(super) fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.scale
    }
    /// Real milliseconds since the start (for the log).
    pub(super) fn real_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    /// Simulated seconds → real seconds.
    pub(super) fn to_real(&self, sim_secs: f64) -> f64 {
        sim_secs / self.scale
    }
    pub(super) fn scale(&self) -> f64 {
        self.scale
    }
}

/// A user as the simulator holds it.
#[derive(Clone, Debug)]
pub(super) struct User {
    pub seed: UserSeed,
}

impl User {
    pub(super) fn id(&self) -> &str {
        &self.seed.id
    }
    pub(super) fn upn(&self) -> &str {
        &self.seed.user_principal_name
    }
    pub(super) fn state(&self) -> &str {
        &self.seed.per_user_mfa_state
    }
    /// Registered a method that counts for MFA (not password, email or a temporary pass).
    pub(super) fn has_mfa_method(&self) -> bool {
        self.seed
            .methods
            .iter()
            .any(|m| !matches!(m.as_str(), "password" | "email" | "temporaryAccessPass"))
    }
}

/// Who a request is from, as read from its access token.
#[derive(Clone, Debug)]
pub(super) struct Ident {
    pub client_id: String,
    pub app_name: String,
    /// Application permissions (app-only tokens).
    pub roles: Vec<String>,
    /// Delegated permissions (device code tokens).
    pub scp: Vec<String>,
    /// The signed-in admin (delegated): upn, id, display name, directory roles.
    pub user: Option<super::config::AdminSeed>,
}

impl Ident {
    /// Has one of `perms`; a delegated caller also needs one of `admin_roles` (if not empty).
    pub(super) fn allows(&self, perms: &[&str], admin_roles: &[&str]) -> bool {
        match &self.user {
            None => self.roles.iter().any(|r| perms.contains(&r.as_str())),
            Some(u) => {
                self.scp.iter().any(|s| perms.contains(&s.as_str()))
                    && (admin_roles.is_empty()
                        || u.role_names()
                            .iter()
                            .any(|r| admin_roles.contains(&r.as_str())))
            }
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct TokenRec {
    pub ident: Ident,
    /// Simulated time it stops working.
    pub expires_at: f64,
    /// Revocation generation it was issued in.
    pub generation: u64,
}

#[derive(Clone, Debug)]
pub(super) struct DeviceCode {
    pub client_id: String,
    pub user_code: String,
    pub scopes: Vec<String>,
    pub expires_at: f64,
    pub polls: u32,
    pub approved: bool,
    pub redeemed: bool,
}

/// An authorization code from `/authorize`, until it is redeemed.
#[derive(Clone, Debug)]
pub(super) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    /// PKCE: the S256 (or plain) challenge, if the request had one.
    pub challenge: Option<(String, String)>,
    pub scopes: Vec<String>,
    pub user: super::config::AdminSeed,
    pub nonce: Option<String>,
    pub expires_at: f64,
    pub redeemed: bool,
}

/// A refresh token issued to an admin's sign-in.
#[derive(Clone, Debug)]
pub(super) struct RefreshRec {
    pub client_id: String,
    pub user: super::config::AdminSeed,
    /// Simulated time it stops working unless used (sliding, as Entra's inactivity limit).
    pub expires_at: f64,
    /// Revocation generation it was issued in (`revoke-tokens` revokes sign-ins too).
    pub generation: u64,
}

/// Authorization codes and refresh tokens.
#[derive(Debug, Default)]
pub(super) struct SignInState {
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshRec>,
}

/// What the simulator counted since the start (or the last `reset-counters`).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Counters {
    /// HTTP requests received (a `$batch` is one).
    pub http_requests: u64,
    /// Graph requests: top-level requests plus every item inside a `$batch`.
    pub requests: u64,
    /// `$batch` requests.
    pub batches: u64,
    /// Resource units charged (throttled requests included: they count against the budget).
    pub ru_spent: u64,
    /// Writes accepted (PATCH/POST/DELETE that were not throttled).
    pub writes: u64,
    /// Per-user MFA state writes applied, by user object id.
    pub writes_per_user: BTreeMap<String, u64>,
    /// 429 answers (top-level and batch items).
    pub throttled: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Interactive sign-ins: `/authorize` pages approved and device codes redeemed.
    pub sign_ins: u64,
    /// Refresh token grants answered with a token.
    pub refresh_grants: u64,
    /// Tokens issued to managed identities (metadata service and `IDENTITY_ENDPOINT`).
    pub managed_identity_tokens: u64,
    /// 401 answers from Graph (expired, revoked or unknown token).
    pub unauthorized: u64,
    /// Injected 5xx answers.
    pub injected_errors: u64,
    /// Connections dropped without an answer (including lost writes).
    pub dropped: u64,
    /// Writes applied whose answer was dropped.
    pub lost_writes: u64,
    /// Most HTTP requests in flight at once.
    pub peak_concurrency: u64,
}

/// One line of the request log.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// Real milliseconds since the simulator started.
    pub t_ms: u64,
    pub method: String,
    /// Path and query as received (for batch items: the item URL with its version).
    pub url: String,
    /// HTTP status answered (0 = connection dropped without an answer).
    pub status: u16,
    pub request_id: String,
    pub client_request_id: String,
    /// Client id of the caller, when known.
    pub app: Option<String>,
    /// Id of the item if this was inside a `$batch`.
    pub batch_item: Option<String>,
}

/// A user's per-user MFA state, for tests and `GET /_sim/state`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    pub user_principal_name: String,
    pub id: String,
    pub per_user_mfa_state: String,
}

/// Positions of the users by lower-case id and UPN (users are never added or removed).
#[derive(Default)]
pub(super) struct UserIndex {
    by_id: HashMap<String, usize>,
    by_upn: HashMap<String, usize>,
}

impl UserIndex {
    fn new(users: &[User]) -> UserIndex {
        let mut ix = UserIndex::default();
        for (i, u) in users.iter().enumerate() {
            ix.by_id.entry(u.id().to_ascii_lowercase()).or_insert(i);
            ix.by_upn.entry(u.upn().to_lowercase()).or_insert(i);
        }
        ix
    }
}

pub(super) struct State {
    pub users: Vec<User>,
    user_index: UserIndex,
    pub tokens: HashMap<String, TokenRec>,
    pub token_generation: u64,
    pub device_codes: HashMap<String, DeviceCode>,
    pub signin: SignInState,
    pub seen_jti: HashSet<String>,
    pub throttle: Throttle,
    /// The throttling limits in force (from the configuration; `POST /_sim/limits` changes
    /// them while the simulator runs).
    pub limits: Limits,
    pub counters: Counters,
    pub log: VecDeque<LogEntry>,
    pub faults: FaultConfig,
    pub rng: fastrand::Rng,
    pub in_flight: u64,
}

pub(super) const LOG_CAP: usize = 100_000;

/// The shared simulator.
pub(super) struct Sim {
    pub cfg: SimConfig,
    pub clock: Clock,
    state: Mutex<State>,
}

impl Sim {
    pub(super) fn new(cfg: SimConfig) -> Sim {
        let users = cfg
            .tenant
            .users
            .iter()
            .cloned()
            .map(|seed| User { seed })
            .collect::<Vec<_>>();
        let state = State {
            user_index: UserIndex::new(&users),
            users,
            tokens: HashMap::new(),
            token_generation: 0,
            device_codes: HashMap::new(),
            signin: SignInState::default(),
            seen_jti: HashSet::new(),
            throttle: Throttle::default(),
            limits: Limits {
                ru: u64::from(cfg.ru_budget()),
                writes: u64::from(cfg.limits.writes_per_150s),
                reports: u64::from(cfg.limits.report_requests_per_10s),
                tenant_writes: u64::from(cfg.limits.tenant_writes_per_300s),
            },
            counters: Counters::default(),
            log: VecDeque::new(),
            faults: cfg.faults.clone(),
            rng: fastrand::Rng::with_seed(cfg.seed),
            in_flight: 0,
        };
        Sim {
            clock: Clock::new(cfg.time_scale),
            cfg,
            state: Mutex::new(state),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not take the whole simulator down.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn client(&self, client_id: &str) -> Option<&ClientSeed> {
        self.cfg
            .tenant
            .clients
            .iter()
            .find(|c| c.client_id.eq_ignore_ascii_case(client_id))
    }

    /// Whether `t` names this tenant (id or one of its domains).
    pub(super) fn is_tenant(&self, t: &str) -> bool {
        let t = t.to_ascii_lowercase();
        t == self.cfg.tenant.tenant_id.to_ascii_lowercase()
            || t == self.cfg.tenant.domain.to_ascii_lowercase()
            || self
                .cfg
                .tenant
                .initial_domain
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(&t))
            || t == "organizations"
    }

    pub(super) fn premium(&self, st: &State) -> bool {
        st.faults.premium.unwrap_or(self.cfg.tenant.premium)
    }

    /// Adds one request to the log (the oldest entries go beyond [`LOG_CAP`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn log_request(
        &self,
        st: &mut State,
        ctx: &Ctx,
        method: &str,
        url: &str,
        status: u16,
        app: Option<&str>,
        batch_item: Option<&str>,
    ) {
        let entry = LogEntry {
            t_ms: self.clock.real_ms(),
            method: method.to_string(),
            url: url.to_string(),
            status,
            request_id: ctx.request_id.clone(),
            client_request_id: ctx.client_request_id.clone(),
            app: app.map(str::to_string),
            batch_item: batch_item.map(str::to_string),
        };
        if st.log.len() >= LOG_CAP {
            st.log.pop_front();
        }
        st.log.push_back(entry);
    }

    /// Every user's per-user MFA state, in tenant order.
    pub(super) fn users_state(&self) -> Vec<UserState> {
        self.lock()
            .users
            .iter()
            .map(|u| UserState {
                user_principal_name: u.upn().to_string(),
                id: u.id().to_string(),
                per_user_mfa_state: u.state().to_string(),
            })
            .collect()
    }
}

impl State {
    /// Finds a user by object id or UPN (both case-insensitive).
    pub(super) fn find_user(&self, key: &str) -> Option<usize> {
        // The first user whose id (ASCII case) or UPN (any case) is `key`, through the index
        // (a scan per lookup made big tenants quadratic: minutes for 100,000 users).
        let by_id = self.user_index.by_id.get(&key.to_ascii_lowercase());
        let by_upn = self.user_index.by_upn.get(&key.to_lowercase());
        match (by_id, by_upn) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }
}
