//! Registration: `/users/{id}/authentication/methods` and
//! `/reports/authenticationMethods/userRegistrationDetails[/{id}]` (premium only, throttled
//! harder: see [`super::throttle`]).

use serde_json::{json, Value};

use super::filter::{Filter, Kind, Val};
use super::query::{page, Query};
use super::state::{Ident, Sim, State, User};
use super::wire::{Ctx, GErr, Resp, Ver};

const METHODS_READ: &[&str] = &[
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const METHODS_ADMIN: &[&str] = &[
    "Authentication Administrator",
    "Privileged Authentication Administrator",
    "Authentication Policy Administrator",
    "Global Administrator",
    "Global Reader",
];
const AUDIT: &[&str] = &["AuditLog.Read.All"];
const REPORT_ADMIN: &[&str] = &[
    "Reports Reader",
    "Security Reader",
    "Security Administrator",
    "Global Reader",
    "Global Administrator",
    "Authentication Policy Administrator",
];

/// A stable id for a user's method (derived from the user id).
fn method_id(user_id: &str, n: usize) -> String {
    let mut s: Vec<char> = user_id.chars().collect();
    let len = s.len();
    if len > 2 {
        s[len - 1] = char::from_digit((n % 10) as u32, 10).unwrap_or('0');
        s[len - 2] = 'f';
    }
    s.into_iter().collect()
}

fn method_json(u: &User, n: usize, kind: &str) -> Value {
    let id = method_id(u.id(), n);
    match kind {
        "microsoftAuthenticator" => json!({
            "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "id": id, "displayName": "iPhone 15", "deviceTag": "SoftwareTokenActivated",
            "phoneAppVersion": "6.8.12", "createdDateTime": "2025-03-14T09:21:44Z"}),
        "phone" => json!({
            "@odata.type": "#microsoft.graph.phoneAuthenticationMethod",
            "id": "3179e48a-750b-4051-897c-87b9720928f7",
            "phoneNumber": "+1 5555550100", "phoneType": "mobile", "smsSignInState": "notAllowedByPolicy"}),
        "fido2" => json!({
            "@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
            "id": id, "displayName": "YubiKey 5 NFC", "model": "YubiKey 5 NFC",
            "aaGuid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "createdDateTime": "2025-01-08T14:02:11Z"}),
        "email" => json!({
            "@odata.type": "#microsoft.graph.emailAuthenticationMethod",
            "id": "3ddfcfc8-9383-446f-83cc-3ab9be4be18f", "emailAddress": "personal@example.com"}),
        "softwareOath" => json!({
            "@odata.type": "#microsoft.graph.softwareOathAuthenticationMethod",
            "id": id, "secretKey": null}),
        "windowsHelloForBusiness" => json!({
            "@odata.type": "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
            "id": id, "displayName": "LAPTOP-01", "keyStrength": "normal"}),
        "temporaryAccessPass" => json!({
            "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
            "id": id, "lifetimeInMinutes": 60, "isUsable": false}),
        other => json!({
            "@odata.type": format!("#microsoft.graph.{other}AuthenticationMethod"),
            "id": id}),
    }
}

pub(super) fn list(
    st: &State,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    key: &str,
) -> Result<Resp, GErr> {
    if !ident.allows(METHODS_READ, METHODS_ADMIN) {
        return Err(GErr::denied());
    }
    let i = st.find_user(key).ok_or_else(|| GErr::not_found(key))?;
    let u = &st.users[i];
    let mut value = vec![json!({
        "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
        "id": "28c10230-6103-485e-b985-444c60001490",
        "password": null,
        "createdDateTime": "2024-09-02T08:00:00Z",
    })];
    for (n, m) in u.seed.methods.iter().enumerate() {
        value.push(method_json(u, n, m));
    }
    Ok(Resp::json(
        200,
        json!({
            "@odata.context": format!("{}/{}/$metadata#users('{}')/authentication/methods", ctx.base, ver.as_str(), u.id()),
            "value": value,
        }),
    ))
}

/// `methodsRegistered` names, as the report spells them.
fn report_method(kind: &str) -> &str {
    match kind {
        "microsoftAuthenticator" => "microsoftAuthenticatorPush",
        "phone" => "mobilePhone",
        "softwareOath" => "softwareOneTimePasscode",
        other => other,
    }
}

fn reg_json(u: &User) -> Value {
    let registered = u.has_mfa_method();
    let methods: Vec<&str> = u.seed.methods.iter().map(|m| report_method(m)).collect();
    // The default: the first method that is a second factor, as the admin or user chose it.
    let default = u
        .seed
        .methods
        .iter()
        .find(|m| !matches!(m.as_str(), "email" | "temporaryAccessPass"))
        .map_or("none", |m| report_method(m));
    json!({
        "id": u.id(),
        "userPrincipalName": u.upn(),
        "userDisplayName": u.seed.display_name,
        "userType": u.seed.user_type.to_ascii_lowercase(),
        "isAdmin": !u.seed.extra.directory_roles.is_empty(),
        "defaultMfaMethod": default,
        "isSsprRegistered": registered,
        "isSsprEnabled": false,
        "isSsprCapable": false,
        "isMfaRegistered": registered,
        "isMfaCapable": registered && u.seed.account_enabled,
        "isPasswordlessCapable": u.seed.methods.iter().any(|m| m == "fido2" || m == "windowsHelloForBusiness"),
        "methodsRegistered": methods,
        "isSystemPreferredAuthenticationMethodEnabled": true,
        "systemPreferredAuthenticationMethods": [],
        "userPreferredMethodForSecondaryAuthentication": if registered { "push" } else { "none" },
        "lastUpdatedDateTime": "2026-11-24T06:00:00Z",
    })
}

fn reg_schema(name: &str) -> Option<(&'static str, Kind)> {
    const P: &[(&str, Kind)] = &[
        ("id", Kind::Str),
        ("userPrincipalName", Kind::Str),
        ("userDisplayName", Kind::Str),
        ("userType", Kind::Str),
        ("isMfaRegistered", Kind::Bool),
        ("isMfaCapable", Kind::Bool),
        ("isAdmin", Kind::Bool),
        ("methodsRegistered", Kind::List),
    ];
    P.iter()
        .find(|(p, _)| p.eq_ignore_ascii_case(name))
        .map(|(p, k)| (*p, *k))
}

fn reg_val(v: &Value, p: &str) -> Val {
    match v.get(p) {
        Some(Value::String(s)) => Val::Str(Some(s.clone())),
        Some(Value::Bool(b)) => Val::Bool(*b),
        Some(Value::Array(a)) => Val::List(
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ),
        _ => Val::Str(None),
    }
}

fn check_report(sim: &Sim, st: &State, ident: &Ident) -> Result<(), GErr> {
    if !ident.allows(AUDIT, REPORT_ADMIN) {
        return Err(GErr::denied());
    }
    if !sim.premium(st) {
        return Err(GErr::new(
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        ));
    }
    Ok(())
}

pub(super) fn reg_list(
    sim: &Sim,
    st: &State,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    rest: &str,
    q: &Query,
) -> Result<Resp, GErr> {
    check_report(sim, st, ident)?;
    if let Some(sel) = &q.select {
        for s in sel {
            if reg_schema(s).is_none()
                && ![
                    "isSsprRegistered",
                    "lastUpdatedDateTime",
                    "defaultMfaMethod",
                ]
                .contains(&s.as_str())
            {
                return Err(GErr::bad(format!(
                    "Could not find a property named '{s}' on type 'microsoft.graph.userRegistrationDetails'."
                )));
            }
        }
    }
    // The filter is judged on each user's row; only this page's rows are kept as JSON (a
    // big tenant's report is many pages: building every row for every page was quadratic).
    let filter = q
        .filter
        .as_deref()
        .map(|f| Filter::parse(f, reg_schema))
        .transpose()?;
    let matching: Vec<&User> = st
        .users
        .iter()
        .filter(|u| {
            filter.as_ref().is_none_or(|f| {
                let v = reg_json(u);
                f.matches(&|p| reg_val(&v, p))
            })
        })
        .collect();
    let top = q.top.unwrap_or(100);
    let start = q.skip.min(matching.len());
    let window = start..(start + top).min(matching.len());
    let items: Vec<Value> = matching
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if !window.contains(&i) {
                return Value::Null;
            }
            let mut v = reg_json(u);
            if let (Some(sel), Some(o)) = (&q.select, v.as_object_mut()) {
                o.retain(|k, _| sel.iter().any(|s| s.eq_ignore_ascii_case(k)));
            }
            v
        })
        .collect();
    let context = format!(
        "{}/{}/$metadata#reports/authenticationMethods/userRegistrationDetails",
        ctx.base,
        ver.as_str()
    );
    Ok(page(ctx, ver, rest, q, items, context))
}

pub(super) fn reg_one(
    sim: &Sim,
    st: &State,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    id: &str,
) -> Result<Resp, GErr> {
    check_report(sim, st, ident)?;
    let u = st
        .users
        .iter()
        .find(|u| u.id().eq_ignore_ascii_case(id))
        .ok_or_else(|| GErr::not_found(id))?;
    let mut v = reg_json(u);
    v.as_object_mut().expect("object").insert(
        "@odata.context".into(),
        format!(
            "{}/{}/$metadata#reports/authenticationMethods/userRegistrationDetails/$entity",
            ctx.base,
            ver.as_str()
        )
        .into(),
    );
    Ok(Resp::json(200, v))
}
