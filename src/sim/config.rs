//! What the simulator starts with: the seeded tenant (JSON, see `samples/tenant.json`, or
//! generated), the registered clients, Graph's limits and the injected faults.

use std::fmt;
use std::net::SocketAddr;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::clients::SIM_CLIENT_ID;

/// The sample tenant (matches the files in `samples/`).
pub const SAMPLE_TENANT_JSON: &str = include_str!("../../samples/tenant.json");

/// Everything the simulator is started with.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to bind (loopback only); port 0 picks a free port.
    pub listen: SocketAddr,
    /// The seeded tenant: users and registered clients.
    pub tenant: TenantSeed,
    /// Throttling limits and token lifetimes.
    pub limits: Limits,
    /// Injected faults (can be changed at run time with `POST /_sim/faults`).
    pub faults: FaultConfig,
    /// Speed-up factor: 10 means every Graph window, token lifetime and `Retry-After` is ten
    /// times shorter in real time.
    pub time_scale: f64,
    /// Seed of the random number generator (faults, batch answer order, generated ids).
    pub seed: u64,
}

/// The tenant file format (`samples/tenant.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSeed {
    pub tenant_id: String,
    pub display_name: String,
    /// Default verified domain, e.g. `northwind.example`.
    pub domain: String,
    /// The `*.onmicrosoft.com` domain (guest UPNs live there).
    #[serde(default)]
    pub initial_domain: Option<String>,
    /// Entra ID P1/P2: without it the registration report answers 403.
    #[serde(default = "yes")]
    pub premium: bool,
    #[serde(default)]
    pub clients: Vec<ClientSeed>,
    pub users: Vec<UserSeed>,
    /// Groups; members may be users, other groups (nested) or [`TenantSeed::objects`].
    #[serde(default)]
    pub groups: Vec<GroupSeed>,
    /// Directory objects that are neither users nor groups (devices, service principals,
    /// contacts), for group membership.
    #[serde(default)]
    pub objects: Vec<ObjectSeed>,
    /// Security defaults on (`GET /policies/identitySecurityDefaultsEnforcementPolicy`).
    #[serde(default)]
    pub security_defaults: bool,
    /// Conditional Access policies as Graph shows them (`/identity/conditionalAccess/policies`).
    #[serde(default)]
    pub conditional_access_policies: Vec<serde_json::Value>,
    /// Whether `/users` lists answer `perUserMfaState` when it is selected (Graph does,
    /// although only the per-user GET documents it); false models an answer without it.
    #[serde(default = "yes")]
    pub lists_per_user_mfa_state: bool,
    /// Managed identities the simulated Azure resource has (served by the instance metadata
    /// and `IDENTITY_ENDPOINT` endpoints).
    #[serde(default)]
    pub managed_identities: Vec<ManagedIdentitySeed>,
    /// The value `X-IDENTITY-HEADER` must carry at the `IDENTITY_ENDPOINT` endpoint (what App
    /// Service puts in `IDENTITY_HEADER`).
    #[serde(default = "identity_header")]
    pub identity_header: String,
}

fn identity_header() -> String {
    SIM_IDENTITY_HEADER.into()
}

/// The sample value of `IDENTITY_HEADER` (a simulator value, not a credential anywhere).
pub const SIM_IDENTITY_HEADER: &str = "sim-identity-header-not-a-real-credential";

/// A managed identity of the simulated Azure resource.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentitySeed {
    /// Its client (application) id.
    pub client_id: String,
    pub display_name: String,
    /// The system-assigned identity (chosen when the request names no client id).
    #[serde(default)]
    pub system_assigned: bool,
    /// Application permissions granted (`New-MgServicePrincipalAppRoleAssignment`).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A group of the seeded tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSeed {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Object ids of the direct members: users, groups or objects.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A directory object that is not a user or a group.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSeed {
    pub id: String,
    pub display_name: String,
    /// `device`, `servicePrincipal` or `orgContact`.
    pub kind: String,
}

fn yes() -> bool {
    true
}

/// A registered application (confidential with secret or certificate, or a public client for
/// the device code flow).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSeed {
    pub client_id: String,
    pub display_name: String,
    /// Client secret (a simulator credential, never a real one).
    #[serde(default)]
    pub secret: Option<String>,
    /// Certificate (PEM) whose key signs client assertions; `x5t`/`x5t#S256` are its thumbprints.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Alternatively only a public key (PEM: SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
    #[serde(default)]
    pub public_key: Option<String>,
    /// Application permissions granted (admin-consented), e.g. `Policy.Read.All`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// A public client: may use the device code flow (delegated).
    #[serde(default)]
    pub public_client: bool,
    /// Delegated permissions consented for the device code flow.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Who signs in when a device code of this client is approved, or at its `/authorize`
    /// page (approved at once).
    #[serde(default)]
    pub signed_in_user: Option<AdminSeed>,
    /// Redirect URIs registered ("Mobile and desktop applications"); `http://localhost`
    /// matches any port, as Entra matches loopback addresses.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The admin declines the consent page: `/authorize` answers `error=access_denied`.
    #[serde(default)]
    pub deny_consent: bool,
}

impl fmt::Debug for ClientSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSeed")
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("certificate", &self.certificate.is_some())
            .field("public_key", &self.public_key.is_some())
            .field("roles", &self.roles)
            .field("public_client", &self.public_client)
            .field("scopes", &self.scopes)
            .field("signed_in_user", &self.signed_in_user)
            .field("redirect_uris", &self.redirect_uris)
            .field("deny_consent", &self.deny_consent)
            .finish()
    }
}

/// The admin who signs in with a device code.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSeed {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    /// Entra directory roles, e.g. `Authentication Policy Administrator`.
    #[serde(default)]
    pub directory_roles: Vec<String>,
    /// More roles by template id, as the `wids` claim carries them.
    #[serde(default)]
    pub wids: Vec<String>,
}

/// Directory role names and their template ids (the same in every tenant).
const ROLE_TEMPLATES: &[(&str, &str)] = &[
    (
        "Authentication Policy Administrator",
        "0526716b-113d-4c15-b2c8-68e3c22b9f80",
    ),
    (
        "Privileged Authentication Administrator",
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    ),
    (
        "Global Administrator",
        "62e90394-69f5-4237-9190-012177145e10",
    ),
    (
        "Authentication Administrator",
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    ),
    (
        "Helpdesk Administrator",
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    ),
    ("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1"),
    ("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451"),
    ("Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509"),
];

/// The role every member user holds ("User"): always in `wids`.
const DEFAULT_USER_ROLE: &str = "b79fbf4d-3ef9-4689-8143-76b194e85509";

impl AdminSeed {
    /// The `wids` claim: the template ids of the admin's roles, and the default user role.
    pub fn wids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .directory_roles
            .iter()
            .filter_map(|n| {
                ROLE_TEMPLATES
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(n))
                    .map(|(_, id)| id.to_string())
            })
            .chain(self.wids.iter().map(|w| w.to_ascii_lowercase()))
            .collect();
        v.push(DEFAULT_USER_ROLE.into());
        v.dedup();
        v
    }

    /// The names of the admin's roles (by name, or from `wids`).
    pub fn role_names(&self) -> Vec<String> {
        let mut v = self.directory_roles.clone();
        for w in &self.wids {
            if let Some((name, _)) = ROLE_TEMPLATES
                .iter()
                .find(|(_, id)| id.eq_ignore_ascii_case(w))
            {
                v.push(name.to_string());
            }
        }
        v
    }
}

/// A user of the seeded tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSeed {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub other_mails: Vec<String>,
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    #[serde(default = "member")]
    pub user_type: String,
    #[serde(default = "yes")]
    pub account_enabled: bool,
    #[serde(default = "disabled")]
    pub per_user_mfa_state: String,
    /// Registered methods besides the password: `microsoftAuthenticator`, `phone`, `fido2`,
    /// `email`, `softwareOath`, `windowsHelloForBusiness`, `temporaryAccessPass`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Organisation data and directory roles (flattened into the user's JSON object).
    #[serde(flatten)]
    pub extra: UserExtra,
}

/// A user's organisation data (what `$filter` on `/users` usually names) and directory roles.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserExtra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Entra directory roles held (any makes the registration report's `isAdmin` true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directory_roles: Vec<String>,
}

fn member() -> String {
    "Member".into()
}
fn disabled() -> String {
    "disabled".into()
}

/// Throttling limits (Graph's documented values by default) and token lifetimes. Every
/// duration is in simulated seconds (divided by `time_scale` in real time).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    /// Resource units per 10 s per app; `None` = by tenant size (3,500 / 5,000 / 8,000).
    pub ru_per_10s: Option<u32>,
    /// Writes per 150 s per app.
    pub writes_per_150s: u32,
    /// Writes per 300 s for all apps of the tenant together.
    pub tenant_writes_per_300s: u32,
    /// Registration report requests per 10 s per app.
    pub report_requests_per_10s: u32,
    /// Access token lifetime, seconds.
    pub token_lifetime_secs: u64,
    /// Device code: answered `authorization_pending` this many polls, then approved
    /// (0 = only `POST /_sim/approve-device-code` approves).
    pub device_code_auto_approve_polls: u32,
    /// Device code lifetime, seconds.
    pub device_code_lifetime_secs: u64,
    /// Device code polling interval the client is told, seconds.
    pub device_code_interval_secs: u64,
    /// A refresh token stops working after this long unused, seconds (Entra: 90 days).
    #[serde(default = "refresh_token_lifetime")]
    pub refresh_token_lifetime_secs: u64,
    /// An authorization code must be redeemed within this, seconds (Entra: 10 minutes).
    #[serde(default = "auth_code_lifetime")]
    pub auth_code_lifetime_secs: u64,
}

fn refresh_token_lifetime() -> u64 {
    90 * 24 * 3600
}
fn auth_code_lifetime() -> u64 {
    600
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ru_per_10s: None,
            writes_per_150s: 3000,
            tenant_writes_per_300s: 18000,
            report_requests_per_10s: 5,
            token_lifetime_secs: 3599,
            device_code_auto_approve_polls: 2,
            device_code_lifetime_secs: 900,
            device_code_interval_secs: 5,
            refresh_token_lifetime_secs: refresh_token_lifetime(),
            auth_code_lifetime_secs: auth_code_lifetime(),
        }
    }
}

/// The throttling limits in force while the simulator runs (`GET /_sim/limits`); same names
/// as in [`Limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsNow {
    pub ru_per_10s: u64,
    pub writes_per_150s: u64,
    pub tenant_writes_per_300s: u64,
    pub report_requests_per_10s: u64,
}

impl From<super::throttle::Limits> for LimitsNow {
    fn from(l: super::throttle::Limits) -> LimitsNow {
        LimitsNow {
            ru_per_10s: l.ru,
            writes_per_150s: l.writes,
            tenant_writes_per_300s: l.tenant_writes,
            report_requests_per_10s: l.reports,
        }
    }
}

/// A change of the limits at run time (`POST /_sim/limits`, [`super::SimHandle::set_limits`]):
/// the fields given change, the others stay. Each at least 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsChange {
    pub ru_per_10s: Option<u64>,
    pub writes_per_150s: Option<u64>,
    pub tenant_writes_per_300s: Option<u64>,
    pub report_requests_per_10s: Option<u64>,
}

impl LimitsChange {
    pub(super) fn apply(&self, l: &mut super::throttle::Limits) {
        let set = |v: Option<u64>, into: &mut u64| {
            if let Some(v) = v {
                *into = v.max(1);
            }
        };
        set(self.ru_per_10s, &mut l.ru);
        set(self.writes_per_150s, &mut l.writes);
        set(self.tenant_writes_per_300s, &mut l.tenant_writes);
        set(self.report_requests_per_10s, &mut l.reports);
    }
}

/// Injected faults. All rates are probabilities 0.0–1.0, drawn from the seeded RNG.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Graph requests (and batch items) answered 500, 503 or 504.
    pub error_rate: f64,
    /// HTTP requests whose connection is closed without an answer (nothing applied).
    pub drop_rate: f64,
    /// Writes that are applied but whose connection is then closed without an answer.
    pub lost_write_rate: f64,
    /// Added latency per HTTP request, uniform in `latency_min_ms..=latency_max_ms` (real ms).
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// Overrides the tenant's premium flag when set (false = registration report answers 403).
    pub premium: Option<bool>,
}

impl SimConfig {
    /// The sample tenant (samples/tenant.json, embedded), Graph's documented limits, no faults.
    pub fn sample() -> SimConfig {
        let tenant: TenantSeed =
            serde_json::from_str(SAMPLE_TENANT_JSON).expect("samples/tenant.json is valid");
        SimConfig::with_tenant(tenant)
    }

    /// A tenant with Graph's documented limits and no faults, on a free loopback port.
    pub fn with_tenant(tenant: TenantSeed) -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant,
            limits: Limits::default(),
            faults: FaultConfig::default(),
            time_scale: 1.0,
            seed: 1,
        }
    }

    /// Reads a tenant file (format of `samples/tenant.json`).
    pub fn load_tenant(path: &std::path::Path) -> anyhow::Result<TenantSeed> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the tenant file {}", path.display()))?;
        let mut t: TenantSeed = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a tenant file (see samples/tenant.json for the format)",
                path.display()
            )
        })?;
        ensure_default_client(&mut t);
        Ok(t)
    }

    /// The RU budget per 10 s: configured, or by tenant size as Graph documents.
    pub fn ru_budget(&self) -> u32 {
        self.limits
            .ru_per_10s
            .unwrap_or(match self.tenant.users.len() {
                n if n < 50 => 3500,
                n if n <= 500 => 5000,
                _ => 8000,
            })
    }
}

pub fn parse_latency(s: &str) -> anyhow::Result<(u64, u64)> {
    let bad =
        || anyhow::anyhow!("--latency {s}: expected milliseconds, MIN or MIN-MAX (e.g. 5-50)");
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        ),
        None => {
            let v = s.trim().parse().map_err(|_| bad())?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Makes sure the app `--sim` signs in as exists in a loaded tenant.
fn ensure_default_client(t: &mut TenantSeed) {
    if !t.clients.iter().any(|c| c.client_id == SIM_CLIENT_ID) {
        if let Some(c) = SimConfig::sample()
            .tenant
            .clients
            .into_iter()
            .find(|c| c.client_id == SIM_CLIENT_ID)
        {
            t.clients.push(c);
        }
    }
}

fn guid(rng: &mut fastrand::Rng) -> String {
    // Seeded, so a generated tenant is the same every time; a version-4 form like Entra's ids.
    uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// ASCII form of a name part for an address (`Jürgen` → `juergen`, `O'Connor` → `o'connor`).
fn ascii_fold(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            'ä' | 'Ä' => out.push_str("ae"),
            'ö' | 'Ö' | 'ø' | 'Ø' => out.push_str("oe"),
            'ü' | 'Ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'é' | 'è' | 'ë' | 'ê' | 'É' => out.push('e'),
            'á' | 'à' | 'å' | 'Å' | 'ã' => out.push('a'),
            'ç' => out.push('c'),
            'ñ' => out.push('n'),
            'í' | 'ï' => out.push('i'),
            'ó' | 'ô' => out.push('o'),
            ' ' => out.push('.'),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// A generated tenant of `n` users with the awkward names real tenants have: apostrophes,
/// umlauts, `#EXT#` guests, `$` UPNs, mixed-case UPNs, about 10 % with a registered method and
/// a few already enabled or enforced. Same clients as the sample tenant.
pub fn generate_tenant(n: usize, seed: u64) -> TenantSeed {
    const FIRST: &[&str] = &[
        "Zoë",
        "Mathéo",
        "Jürgen",
        "Åsa",
        "Liam",
        "Siobhán",
        "Björn",
        "Amara",
        "Kenji",
        "Priya",
        "Noël",
        "Chloé",
        "Søren",
        "Ana María",
        "José",
        "Fatima",
        "Olga",
        "Mårten",
        "Günther",
        "Renée",
    ];
    const LAST: &[&str] = &[
        "O'Connor",
        "Müller",
        "Weiß",
        "Sørensen",
        "D'Angelo",
        "Lindqvist",
        "Tanaka",
        "Okafor",
        "Haddad",
        "van der Berg",
        "García",
        "Øster",
        "Nguyen",
        "Smith",
        "Ó Briain",
        "Björk",
        "Kowalski",
        "Dubois",
        "Raman",
        "Ng",
    ];
    const METHODS: &[&str] = &["microsoftAuthenticator", "phone", "fido2", "softwareOath"];
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut base = SimConfig::sample().tenant;
    let domain = base.domain.clone();
    let initial = base
        .initial_domain
        .clone()
        .unwrap_or_else(|| "northwind.onmicrosoft.com".into());
    let mut users = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::new();
    for i in 0..n {
        let first = FIRST[rng.usize(..FIRST.len())];
        let last = LAST[rng.usize(..LAST.len())];
        let display = format!("{first} {last}");
        let local = format!("{}.{}", ascii_fold(first), ascii_fold(last));
        let roll = rng.f64();
        let (upn, mail, other, user_type) = if roll < 0.05 {
            let ext = format!("{local}{i}@fabrikam.example");
            (
                format!("{}#EXT#@{initial}", ext.replace('@', "_")),
                Some(ext.clone()),
                vec![ext],
                "Guest",
            )
        } else if roll < 0.06 {
            (format!("$svc-{i}@{domain}"), None, vec![], "Member")
        } else if roll < 0.12 {
            // Mixed case, as created by hand in the portal.
            let upn = format!(
                "{}.{}{i}@{domain}",
                first.replace(' ', ""),
                last.replace(' ', "")
            );
            (upn.clone(), Some(upn), vec![], "Member")
        } else {
            let upn = format!("{local}{i}@{domain}");
            (upn.clone(), Some(upn), vec![], "Member")
        };
        if !seen.insert(upn.to_lowercase()) {
            continue;
        }
        let methods: Vec<String> = if rng.f64() < 0.10 {
            vec![METHODS[rng.usize(..METHODS.len())].to_string()]
        } else {
            vec![]
        };
        let state = match rng.f64() {
            r if r < 0.02 => "enforced",
            r if r < 0.05 => "enabled",
            _ => "disabled",
        };
        let state = if state == "enabled" && !methods.is_empty() {
            "enforced"
        } else {
            state
        };
        let proxy = mail.iter().map(|m| format!("SMTP:{m}")).collect();
        users.push(UserSeed {
            id: guid(&mut rng),
            user_principal_name: upn,
            display_name: display,
            given_name: Some(first.to_string()),
            surname: Some(last.to_string()),
            mail,
            other_mails: other,
            proxy_addresses: proxy,
            user_type: user_type.to_string(),
            account_enabled: rng.f64() > 0.03,
            per_user_mfa_state: state.to_string(),
            methods,
            extra: UserExtra::default(),
        });
    }
    add_directory_data(&mut users, &mut base, seed);
    base.users = users;
    base
}

/// Departments, a few admins and groups for a generated tenant, drawn from their own random
/// sequence so that the users themselves are the same as before these existed.
fn add_directory_data(users: &mut [UserSeed], base: &mut TenantSeed, seed: u64) {
    const DEPARTMENTS: &[&str] = &["Sales", "Finance", "Engineering", "Support", "HR"];
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x6d66_615f_6275_6c6b);
    for u in users.iter_mut() {
        u.extra.department = Some(DEPARTMENTS[rng.usize(..DEPARTMENTS.len())].to_string());
        if rng.f64() < 0.005 {
            u.extra.directory_roles = vec!["Global Administrator".to_string()];
        }
    }
    // One group per department, and "All staff" holding every department group (nested)
    // and a kiosk device.
    let mut groups: Vec<GroupSeed> = DEPARTMENTS
        .iter()
        .map(|d| GroupSeed {
            id: guid(&mut rng),
            display_name: d.to_string(),
            description: Some(format!("Everyone in {d}")),
            members: users
                .iter()
                .filter(|u| u.extra.department.as_deref() == Some(*d) && u.user_type == "Member")
                .map(|u| u.id.clone())
                .collect(),
        })
        .collect();
    let kiosk = ObjectSeed {
        id: guid(&mut rng),
        display_name: "KIOSK-LOBBY-01".into(),
        kind: "device".into(),
    };
    let mut all: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    all.push(kiosk.id.clone());
    groups.push(GroupSeed {
        id: guid(&mut rng),
        display_name: "All staff".into(),
        description: Some("Every department".into()),
        members: all,
    });
    base.groups = groups;
    base.objects = vec![kiosk];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_tenant_matches_the_samples_spec() {
        let t = SimConfig::sample().tenant;
        assert_eq!(t.tenant_id, crate::sim::clients::SIM_TENANT_ID);
        assert_eq!(t.users.len(), 17);
        let u = |upn: &str| {
            t.users
                .iter()
                .find(|u| u.user_principal_name == upn)
                .unwrap_or_else(|| panic!("{upn}"))
        };
        let zoe = u("zoe.lindqvist@northwind.example");
        assert_eq!(
            (zoe.per_user_mfa_state.as_str(), zoe.methods.as_slice()),
            ("disabled", &["microsoftAuthenticator".to_string()][..])
        );
        assert_eq!(
            u("agot.sorensen@northwind.example").per_user_mfa_state,
            "enabled"
        );
        assert_eq!(
            u("priya.raman@northwind.example").per_user_mfa_state,
            "enforced"
        );
        assert_eq!(
            u("nadia.haddad@northwind.example").per_user_mfa_state,
            "enforced"
        );
        let sam = u("sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com");
        assert_eq!(sam.user_type, "Guest");
        assert_eq!(sam.other_mails, vec!["sam.lee@fabrikam.example"]);
        let amara = u("aokafor@northwind.example");
        assert_eq!(
            amara.mail.as_deref(),
            Some("amara.okafor@northwind.example")
        );
        for fd in [
            "frontdesk1@northwind.example",
            "frontdesk2@northwind.example",
        ] {
            assert!(u(fd).mail.is_none());
            assert!(u(fd)
                .proxy_addresses
                .contains(&"smtp:info@northwind.example".to_string()));
        }
        assert!(!u("old.account@northwind.example").account_enabled);
        assert!(u("$svc-scanner@northwind.example").mail.is_none());
        assert!(u("hyper.link@northwind.example")
            .display_name
            .starts_with("=HYPERLINK("));
        assert!(!t
            .users
            .iter()
            .any(|u| u.user_principal_name.starts_with("oskar.berg")));
        let ids: std::collections::HashSet<_> = t.users.iter().map(|u| &u.id).collect();
        assert_eq!(ids.len(), 17);
        assert_eq!(SimConfig::sample().ru_budget(), 3500);
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let cfg = SimConfig::sample();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains(crate::sim::clients::SIM_CLIENT_SECRET));
        assert!(!dbg.contains("PRIVATE KEY"));
    }
}
