//! Reads at list speed: users with their per-user MFA state a page of 999 at a time (the whole
//! tenant, a `$filter`, or a group's transitive members), groups by name, the registration
//! report, each user's methods (the fallback without Entra ID P1/P2), and the tenant's MFA
//! policies (Security defaults, Conditional Access).
//!
//! `perUserMfaState` on `/users` is answered by Graph (v1.0 and beta) although only the
//! per-user GET documents it: a page whose users lack it says so ([`ListedUser::state`] is
//! `None`) and the caller reads those users one by one with [`Graph::get_states`].

use std::collections::HashMap;

use serde_json::Value;

use super::ops::{next_link, odata_string, parse_user, q, USER_SELECT};
use super::pacer::Cost;
use super::transport::{exec, Mode, Req};
use super::{CallError, ErrorKind, Graph};
use crate::model::{MfaState, User};

/// Users per page (Graph's maximum `$top`).
pub(super) const PAGE_SIZE: u64 = 999;

/// The `$select` of user listings: what matching and the report need, and the state.
fn user_select() -> String {
    format!("{USER_SELECT},perUserMfaState")
}

/// A user from a listing, with the per-user MFA state when the answer had it.
#[derive(Clone, Debug)]
pub struct ListedUser {
    pub user: User,
    pub state: Option<MfaState>,
}

/// Which users to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSet {
    /// Every user of the tenant, or those an OData `$filter` on `/users` selects.
    Tenant { filter: Option<String> },
    /// The users among a group's transitive members (nested groups followed).
    GroupMembers { group_id: String },
}

/// A group found by name or id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub display_name: String,
}

/// A member of a group that is not a user (device, service principal, contact, nested group).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OtherMember {
    /// e.g. `device`, `servicePrincipal`, `orgContact`, `group`.
    pub kind: String,
    pub display_name: String,
}

/// Pages of users, fetched one at a time (`@odata.nextLink` followed on our Graph host only).
pub struct UserPages {
    graph: Graph,
    next: Option<String>,
    /// `ConsistencyLevel: eventual` + `$count=true` (an advanced query).
    eventual: bool,
    /// The first request may be retried as an advanced query once.
    first: bool,
    /// Users in the set, when Graph said (`@odata.count`).
    pub total: Option<u64>,
    /// Pages read so far.
    pub pages: u64,
    /// Users listed so far.
    pub users: u64,
}

impl UserPages {
    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ListedUser>>, CallError> {
        let Some(path) = self.next.clone() else {
            return Ok(None);
        };
        let req = |p: String, eventual: bool| {
            let r = Req::get(p, Cost::get_list(true));
            if eventual {
                r.eventual()
            } else {
                r
            }
        };
        let inner = &self.graph.inner;
        let resp = match inner
            .call("beta", &req(path.clone(), self.eventual), false, Mode::RUN)
            .await
        {
            // Graph asks for an advanced query (`endsWith`, `ne`, `not`, lambdas…): send it
            // again with `ConsistencyLevel: eventual` and `$count=true`, as Graph requires.
            Err(e) if self.first && !self.eventual && is_unsupported_query(&e) => {
                self.eventual = true;
                let path = format!("{path}&$count=true");
                inner
                    .call("beta", &req(path, true), false, Mode::RUN)
                    .await?
            }
            other => other?,
        };
        self.first = false;
        if let Some(n) = resp.body["@odata.count"].as_u64() {
            self.total = Some(n);
        }
        self.next = next_link(inner, &resp.body)?;
        let users: Vec<ListedUser> = values(&resp.body)
            .iter()
            .filter_map(|v| {
                parse_user(v).map(|user| ListedUser {
                    user,
                    state: v["perUserMfaState"].as_str().map(MfaState::from_graph),
                })
            })
            .collect();
        self.pages += 1;
        self.users += users.len() as u64;
        Ok(Some(users))
    }
}

/// Whether Graph refused a query as an advanced query sent without its header.
pub fn is_unsupported_query(e: &CallError) -> bool {
    e.kind == ErrorKind::BadRequest && e.code.eq_ignore_ascii_case("Request_UnsupportedQuery")
}

fn values(body: &Value) -> &[Value] {
    body["value"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Whether `s` is an object id (GUID).
pub fn is_object_id(s: &str) -> bool {
    uuid::Uuid::try_parse(s.trim()).is_ok()
}

/// One user's registration, from the report or from their methods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registration {
    /// Registered a method that counts for MFA.
    pub mfa_registered: bool,
    /// The methods, as the report names them (e.g. `microsoftAuthenticatorPush`), joined
    /// with `, `.
    pub methods: Box<str>,
    /// The default MFA method (report only).
    pub default_method: Option<Box<str>>,
    /// Holds an admin role (report only).
    pub is_admin: Option<bool>,
    /// When the report last updated this row (report only).
    pub updated: Option<Box<str>>,
}

/// Registrations by user id, compact so a big tenant's report stays small in memory: the id
/// as a number (a GUID), and the texts (method lists, default methods, update times), which
/// repeat from user to user, stored once each.
#[derive(Default)]
pub struct Registrations {
    by_guid: HashMap<u128, Packed>,
    by_text: HashMap<String, Packed>,
    texts: Vec<Box<str>>,
    text_ids: HashMap<Box<str>, u32>,
}

/// One registration: texts by their number in [`Registrations::texts`] (0: none).
#[derive(Clone, Copy)]
struct Packed {
    mfa_registered: bool,
    is_admin: Option<bool>,
    methods: u32,
    default_method: u32,
    updated: u32,
}

impl Registrations {
    fn intern(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return 0 };
        if let Some(&n) = self.text_ids.get(s) {
            return n;
        }
        self.texts.push(s.into());
        let n = self.texts.len() as u32;
        self.text_ids.insert(s.into(), n);
        n
    }

    fn text(&self, n: u32) -> Option<Box<str>> {
        (n > 0).then(|| self.texts[n as usize - 1].clone())
    }

    pub fn insert(&mut self, id: &str, reg: Registration) {
        let packed = Packed {
            mfa_registered: reg.mfa_registered,
            is_admin: reg.is_admin,
            methods: self.intern(Some(&reg.methods)),
            default_method: self.intern(reg.default_method.as_deref()),
            updated: self.intern(reg.updated.as_deref()),
        };
        match uuid::Uuid::try_parse(id) {
            Ok(u) => {
                self.by_guid.insert(u.as_u128(), packed);
            }
            Err(_) => {
                self.by_text.insert(id.to_ascii_lowercase(), packed);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Registration> {
        let p = match uuid::Uuid::try_parse(id) {
            Ok(u) => self.by_guid.get(&u.as_u128()),
            Err(_) => self.by_text.get(&id.to_ascii_lowercase()),
        }?;
        Some(Registration {
            mfa_registered: p.mfa_registered,
            methods: self.text(p.methods).unwrap_or_default(),
            default_method: self.text(p.default_method),
            is_admin: p.is_admin,
            updated: self.text(p.updated),
        })
    }

    pub fn len(&self) -> usize {
        self.by_guid.len() + self.by_text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why the registration report could not be read.
#[derive(Clone, Debug)]
pub enum ReportUnavailable {
    /// 403 `Authentication_RequestFromNonPremiumTenantOrB2CTenant`: no Entra ID P1/P2.
    NonPremium(CallError),
    /// 403 otherwise: the app lacks `AuditLog.Read.All` (or the admin a reports role).
    Denied(CallError),
    /// Any other failure (after the retries allowed).
    Failed(CallError),
}

impl ReportUnavailable {
    pub fn error(&self) -> &CallError {
        match self {
            ReportUnavailable::NonPremium(e)
            | ReportUnavailable::Denied(e)
            | ReportUnavailable::Failed(e) => e,
        }
    }
}

const REPORT: &str = "/reports/authenticationMethods/userRegistrationDetails";

/// Methods that are not a second factor (the password is always there).
fn counts_for_mfa(method: &str) -> bool {
    !matches!(
        method,
        "password" | "email" | "temporaryAccessPass" | "securityQuestion" | "none"
    )
}

fn registration_from_report(row: &Value) -> Option<(String, Registration)> {
    let id = row["id"].as_str()?.to_string();
    let methods: Vec<&str> = row["methodsRegistered"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let registered = row["isMfaRegistered"]
        .as_bool()
        .unwrap_or_else(|| methods.iter().any(|m| counts_for_mfa(m)));
    let default = row["defaultMfaMethod"]
        .as_str()
        .or_else(|| row["userPreferredMethodForSecondaryAuthentication"].as_str())
        .filter(|s| !s.is_empty() && *s != "none")
        .map(Into::into);
    Some((
        id,
        Registration {
            mfa_registered: registered,
            methods: methods.join(", ").into(),
            default_method: default,
            is_admin: row["isAdmin"].as_bool(),
            updated: row["lastUpdatedDateTime"].as_str().map(Into::into),
        },
    ))
}

/// `@odata.type` of a method → the report's name for it.
fn method_name(odata_type: &str) -> Option<&'static str> {
    let t = odata_type
        .trim_start_matches('#')
        .trim_start_matches("microsoft.graph.");
    Some(match t {
        "passwordAuthenticationMethod" => return None,
        "microsoftAuthenticatorAuthenticationMethod" => "microsoftAuthenticatorPush",
        "phoneAuthenticationMethod" => "mobilePhone",
        "fido2AuthenticationMethod" => "fido2",
        "emailAuthenticationMethod" => "email",
        "softwareOathAuthenticationMethod" => "softwareOneTimePasscode",
        "windowsHelloForBusinessAuthenticationMethod" => "windowsHelloForBusiness",
        "temporaryAccessPassAuthenticationMethod" => "temporaryAccessPass",
        "platformCredentialAuthenticationMethod" => "macOsSecureEnclaveKey",
        "hardwareOathAuthenticationMethod" => "hardwareOneTimePasscode",
        "passkeyAuthenticationMethod" => "passKeyDeviceBound",
        _ => "other",
    })
}

fn registration_from_methods(body: &Value) -> Registration {
    let names: Vec<&str> = values(body)
        .iter()
        .filter_map(|m| m["@odata.type"].as_str().and_then(method_name))
        .collect();
    Registration {
        mfa_registered: names.iter().any(|m| counts_for_mfa(m)),
        methods: names.join(", ").into(),
        ..Registration::default()
    }
}

/// The tenant's MFA policies, as `check` shows them.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MfaPolicies {
    /// Security defaults on (`None`: could not be read).
    pub security_defaults: Option<bool>,
    /// Conditional Access policies that are on and require MFA (grant control `mfa` or an
    /// authentication strength); `None`: could not be read.
    pub ca_requiring_mfa: Option<u64>,
    /// The same, in report-only mode.
    pub ca_report_only: Option<u64>,
    /// Their names.
    pub ca_names: Vec<String>,
    /// Why something could not be read.
    pub errors: Vec<String>,
}

fn requires_mfa(p: &Value) -> bool {
    let g = &p["grantControls"];
    g["builtInControls"]
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c.as_str() == Some("mfa")))
        || g["authenticationStrength"].is_object()
}

impl Graph {
    /// Pages of users of `set`, each with its per-user MFA state when Graph answers it.
    pub fn user_pages(&self, set: &UserSet) -> UserPages {
        let sel = user_select();
        let path = match set {
            UserSet::Tenant { filter: None } => format!("/users?$select={sel}&$top={PAGE_SIZE}"),
            UserSet::Tenant { filter: Some(f) } => {
                format!("/users?$filter={}&$select={sel}&$top={PAGE_SIZE}", q(f))
            }
            UserSet::GroupMembers { group_id } => format!(
                "/groups/{}/transitiveMembers/microsoft.graph.user?$select={sel}&$top={PAGE_SIZE}",
                q(group_id)
            ),
        };
        UserPages {
            graph: self.clone(),
            next: Some(path),
            eventual: false,
            first: true,
            total: None,
            pages: 0,
            users: 0,
        }
    }

    /// Groups with this display name (several may share it), or the group with this object id.
    pub async fn find_groups(&self, name_or_id: &str) -> Result<Vec<Group>, CallError> {
        let key = name_or_id.trim();
        let group = |v: &Value| {
            Some(Group {
                id: v["id"].as_str()?.to_string(),
                display_name: v["displayName"].as_str().unwrap_or_default().to_string(),
            })
        };
        if is_object_id(key) {
            let path = format!("/groups/{}?$select=id,displayName", q(key));
            match self
                .inner
                .call("v1.0", &Req::get(path, Cost::GET_ONE), false, Mode::RUN)
                .await
            {
                Ok(r) => return Ok(group(&r.body).into_iter().collect()),
                // An id that is no group may still be a group's name.
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let path = format!(
            "/groups?$filter={}&$select=id,displayName&$top={PAGE_SIZE}",
            q(&format!("displayName eq {}", odata_string(key)))
        );
        Ok(self
            .all_pages(path)
            .await?
            .iter()
            .filter_map(group)
            .collect())
    }

    /// Every item of a plain list (`value` of each page, `@odata.nextLink` followed on our
    /// Graph host only).
    async fn all_pages(&self, mut path: String) -> Result<Vec<Value>, CallError> {
        let mut out = Vec::new();
        loop {
            let r = self
                .inner
                .call(
                    "v1.0",
                    &Req::get(path, Cost::get_list(true)),
                    false,
                    Mode::RUN,
                )
                .await?;
            out.extend(values(&r.body).iter().cloned());
            match next_link(&self.inner, &r.body)? {
                Some(l) => path = l,
                None => return Ok(out),
            }
        }
    }

    /// The group's transitive members that are not users, by kind (each cast segment is one
    /// small list).
    pub async fn other_members(&self, group_id: &str) -> Result<Vec<OtherMember>, CallError> {
        let mut out = Vec::new();
        for kind in ["group", "device", "servicePrincipal", "orgContact"] {
            let path = format!(
                "/groups/{}/transitiveMembers/microsoft.graph.{kind}?$select=id,displayName&$top={PAGE_SIZE}",
                q(group_id)
            );
            out.extend(self.all_pages(path).await?.iter().map(|v| {
                OtherMember {
                    kind: kind.to_string(),
                    display_name: v["displayName"]
                        .as_str()
                        .or_else(|| v["id"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                }
            }));
        }
        Ok(out)
    }

    /// Paces registration report requests at `per_10s` (Graph allows about 5 per 10 s),
    /// one at a time: a bucket lets `burst + rate × window` through in a window, so any burst
    /// above one would pass Graph's 5 in the first window (and a faster rate, for a
    /// time-scaled simulator, only makes the window shorter).
    pub fn set_report_rate(&self, per_10s: f64) {
        self.inner.report_pacer.set_rate(per_10s / 10.0, Some(1.0));
    }

    /// The whole registration report (or only the users registered for MFA), paged and paced
    /// for the reporting API. `progress(pages, rows)` after each page.
    pub async fn registration_report(
        &self,
        only_registered: bool,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Registrations, ReportUnavailable> {
        let mut path = format!("{REPORT}?$top={PAGE_SIZE}");
        if only_registered {
            path.push_str(&format!("&$filter={}", q("isMfaRegistered eq true")));
        }
        let mut out = Registrations::default();
        let mut pages = 0;
        loop {
            let r = self
                .inner
                .call(
                    "beta",
                    &Req::get(path, Cost::get_list(false)),
                    true,
                    Mode::RUN,
                )
                .await
                .map_err(|e| match e.kind {
                    ErrorKind::Forbidden
                        if e.code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant" =>
                    {
                        ReportUnavailable::NonPremium(e)
                    }
                    ErrorKind::Forbidden => ReportUnavailable::Denied(e),
                    _ => ReportUnavailable::Failed(e),
                })?;
            for (id, reg) in values(&r.body).iter().filter_map(registration_from_report) {
                out.insert(&id, reg);
            }
            pages += 1;
            progress(pages, out.len() as u64);
            match next_link(&self.inner, &r.body).map_err(ReportUnavailable::Failed)? {
                Some(l) => path = l,
                None => return Ok(out),
            }
        }
    }

    /// Each user's registration from their authentication methods (one paced GET each,
    /// batched): the way without Entra ID P1/P2.
    pub async fn methods_of<F>(&self, user_ids: &[String], mut each: F)
    where
        F: FnMut(usize, Result<Registration, CallError>) + Send,
    {
        let reqs = user_ids
            .iter()
            .map(|id| {
                Req::get(
                    format!("{}/authentication/methods", super::user_path(id)),
                    Cost::get_list(false),
                )
            })
            .collect();
        let (mut rx, _set) = exec(&self.inner, "v1.0", reqs, Mode::RUN);
        while let Some((i, r)) = rx.recv().await {
            each(i, r.map(|resp| registration_from_methods(&resp.body)));
        }
    }

    /// Security defaults and the Conditional Access policies that require MFA (Microsoft
    /// advises against combining them with per-user MFA). What cannot be read is said in
    /// [`MfaPolicies::errors`].
    pub async fn mfa_policies(&self) -> MfaPolicies {
        let mut out = MfaPolicies::default();
        let sd = self
            .inner
            .call(
                "v1.0",
                &Req::get(
                    "/policies/identitySecurityDefaultsEnforcementPolicy",
                    Cost::GET_ONE,
                ),
                false,
                Mode::RUN,
            )
            .await;
        match sd {
            Ok(r) => out.security_defaults = r.body["isEnabled"].as_bool(),
            Err(e) => out.errors.push(format!("Security defaults: {e}")),
        }
        let mut path = "/identity/conditionalAccess/policies".to_string();
        let (mut on, mut report_only) = (0, 0);
        loop {
            match self
                .inner
                .call(
                    "v1.0",
                    &Req::get(path, Cost::get_list(false)),
                    false,
                    Mode::RUN,
                )
                .await
            {
                Ok(r) => {
                    for p in values(&r.body).iter().filter(|p| requires_mfa(p)) {
                        match p["state"].as_str() {
                            Some("enabled") => {
                                on += 1;
                                if let Some(n) = p["displayName"].as_str() {
                                    out.ca_names.push(n.to_string());
                                }
                            }
                            Some("enabledForReportingButNotEnforced") => report_only += 1,
                            _ => {}
                        }
                    }
                    match next_link(&self.inner, &r.body) {
                        Ok(Some(l)) => path = l,
                        Ok(None) => {
                            out.ca_requiring_mfa = Some(on);
                            out.ca_report_only = Some(report_only);
                            break;
                        }
                        Err(e) => {
                            out.errors.push(format!("Conditional Access policies: {e}"));
                            break;
                        }
                    }
                }
                Err(e) => {
                    out.errors.push(format!("Conditional Access policies: {e}"));
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn report_rows_become_registrations() {
        let (id, r) = registration_from_report(&json!({
            "id": "0f3a1c52-7d4e-4b8a-a6c1-0e2d5f7b9a13", "isMfaRegistered": true,
            "methodsRegistered": ["microsoftAuthenticatorPush", "mobilePhone"],
            "defaultMfaMethod": "microsoftAuthenticatorPush", "isAdmin": true,
            "lastUpdatedDateTime": "2026-11-24T06:00:00Z"}))
        .unwrap();
        assert_eq!(id, "0f3a1c52-7d4e-4b8a-a6c1-0e2d5f7b9a13");
        assert!(r.mfa_registered);
        assert_eq!(&*r.methods, "microsoftAuthenticatorPush, mobilePhone");
        assert_eq!(
            r.default_method.as_deref(),
            Some("microsoftAuthenticatorPush")
        );
        assert_eq!(r.is_admin, Some(true));
        let (_, r) = registration_from_report(&json!({"id": "x",
            "methodsRegistered": ["email"], "defaultMfaMethod": "none"}))
        .unwrap();
        assert!(!r.mfa_registered);
        assert_eq!(r.default_method, None);
    }

    #[test]
    fn methods_lists_become_registrations() {
        let r = registration_from_methods(&json!({"value": [
            {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod"},
            {"@odata.type": "#microsoft.graph.emailAuthenticationMethod"}]}));
        assert!(!r.mfa_registered);
        assert_eq!(&*r.methods, "email");
        let r = registration_from_methods(&json!({"value": [
            {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod"},
            {"@odata.type": "#microsoft.graph.fido2AuthenticationMethod"}]}));
        assert!(r.mfa_registered);
        assert_eq!(r.is_admin, None);
    }

    #[test]
    fn registrations_are_found_by_id_in_any_case() {
        let mut m = Registrations::default();
        m.insert(
            "0F3A1C52-7D4E-4B8A-A6C1-0E2D5F7B9A13",
            Registration {
                mfa_registered: true,
                ..Registration::default()
            },
        );
        m.insert(
            "not-a-guid",
            Registration {
                methods: "fido2".into(),
                updated: Some("2026-11-24T06:00:00Z".into()),
                ..Registration::default()
            },
        );
        assert!(
            m.get("0f3a1c52-7d4e-4b8a-a6c1-0e2d5f7b9a13")
                .unwrap()
                .mfa_registered
        );
        let r = m.get("NOT-A-GUID").unwrap();
        assert_eq!(&*r.methods, "fido2");
        assert_eq!(r.updated.as_deref(), Some("2026-11-24T06:00:00Z"));
        assert_eq!(r.default_method, None);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn mfa_policies_are_told_by_their_grant_controls() {
        assert!(requires_mfa(
            &json!({"grantControls": {"builtInControls": ["mfa"]}})
        ));
        assert!(requires_mfa(
            &json!({"grantControls": {"builtInControls": [], "authenticationStrength": {"id": "x"}}})
        ));
        assert!(!requires_mfa(
            &json!({"grantControls": {"builtInControls": ["block"]}})
        ));
        assert!(!requires_mfa(&json!({"grantControls": null})));
    }
}
