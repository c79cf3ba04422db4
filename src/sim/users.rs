//! `/users`, `/users/{id | userPrincipalName}`, `/users('$…')`, `/users/$count`, `/me`,
//! `/organization`.

use serde_json::{json, Map, Value};

use super::filter::{Filter, Kind, Val};
use super::query::{page, require_advanced, Query};
use super::state::{Ident, Sim, State, User};
use super::wire::{header, Ctx, GErr, Headers, Resp, Ver};

/// Permissions that let an app read users.
pub(super) const USER_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "User.ReadBasic.All",
];

const PROPS: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "otherMails",
    "proxyAddresses",
    "userType",
    "accountEnabled",
    "jobTitle",
    "businessPhones",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "department",
    "companyName",
    "city",
    "country",
    "perUserMfaState",
];

const DEFAULT_V1: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

fn canonical(name: &str) -> Option<&'static str> {
    PROPS.iter().copied().find(|p| p.eq_ignore_ascii_case(name))
}

pub(super) fn schema(name: &str) -> Option<(&'static str, Kind)> {
    // Selectable on lists, not filterable (nothing documents it as either).
    let p = canonical(name).filter(|p| *p != "perUserMfaState")?;
    let kind = match p {
        "otherMails" | "proxyAddresses" | "businessPhones" => Kind::List,
        "accountEnabled" => Kind::Bool,
        _ => Kind::Str,
    };
    Some((p, kind))
}

fn opt(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |v| Value::String(v.clone()))
}

pub(super) fn prop(u: &User, p: &str) -> Value {
    let s = &u.seed;
    match p {
        "id" => json!(s.id),
        "userPrincipalName" => json!(s.user_principal_name),
        "displayName" => json!(s.display_name),
        "givenName" => opt(&s.given_name),
        "surname" => opt(&s.surname),
        "mail" => opt(&s.mail),
        "otherMails" => json!(s.other_mails),
        "proxyAddresses" => json!(s.proxy_addresses),
        "userType" => json!(s.user_type),
        "accountEnabled" => json!(s.account_enabled),
        "businessPhones" => json!([]),
        "jobTitle" => opt(&s.extra.job_title),
        "department" => opt(&s.extra.department),
        "companyName" => opt(&s.extra.company_name),
        "city" => opt(&s.extra.city),
        "country" => opt(&s.extra.country),
        "perUserMfaState" => json!(s.per_user_mfa_state),
        _ => Value::Null,
    }
}

fn val(u: &User, p: &str) -> Val {
    match prop(u, p) {
        Value::String(s) => Val::Str(Some(s)),
        Value::Bool(b) => Val::Bool(b),
        Value::Array(a) => Val::List(
            a.into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        _ => Val::Str(None),
    }
}

/// The `$select` list, checked, in canonical spelling.
fn selection(q: &Query) -> Result<Option<Vec<&'static str>>, GErr> {
    let Some(sel) = &q.select else {
        return Ok(None);
    };
    sel.iter()
        .map(|s| {
            canonical(s).ok_or_else(|| {
                GErr::bad(format!(
                    "Could not find a property named '{s}' on type 'microsoft.graph.user'."
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// How a user becomes JSON: which properties, and whether `perUserMfaState` is answered
/// (only when selected, and only if the tenant's lists answer it: see
/// `TenantSeed::lists_per_user_mfa_state`).
#[derive(Clone)]
pub(super) struct Shape {
    pub ver: Ver,
    pub sel: Option<Vec<&'static str>>,
    pub state: bool,
}

impl Shape {
    pub(super) fn new(ver: Ver, q: &Query, state: bool) -> Result<Shape, GErr> {
        Ok(Shape {
            ver,
            sel: selection(q)?,
            state,
        })
    }

    pub(super) fn json(&self, u: &User) -> Value {
        let props: Vec<&str> = match &self.sel {
            Some(s) => s.clone(),
            None if self.ver == Ver::V1 => DEFAULT_V1.to_vec(),
            None => PROPS
                .iter()
                .copied()
                .filter(|p| *p != "perUserMfaState")
                .collect(),
        };
        let mut m = Map::new();
        for p in props {
            if p == "perUserMfaState" && !self.state {
                continue;
            }
            m.insert(p.to_string(), prop(u, p));
        }
        Value::Object(m)
    }

    pub(super) fn context(&self, ctx: &Ctx) -> String {
        context_users(ctx, self.ver, &self.sel)
    }
}

fn context_users(ctx: &Ctx, ver: Ver, sel: &Option<Vec<&'static str>>) -> String {
    match sel {
        Some(s) => format!(
            "{}/{}/$metadata#users({})",
            ctx.base,
            ver.as_str(),
            s.join(",")
        ),
        None => format!("{}/{}/$metadata#users", ctx.base, ver.as_str()),
    }
}

pub(super) fn get(
    st: &State,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    key: &str,
    q: &Query,
) -> Result<Resp, GErr> {
    if !ident.allows(USER_READ, &[]) {
        return Err(GErr::denied());
    }
    let shape = Shape::new(ver, q, true)?;
    let i = st.find_user(key).ok_or_else(|| GErr::not_found(key))?;
    let mut v = shape.json(&st.users[i]);
    v.as_object_mut().expect("object").insert(
        "@odata.context".into(),
        format!("{}/$entity", shape.context(ctx)).into(),
    );
    Ok(Resp::json(200, v))
}

fn filtered<'a>(st: &'a State, q: &Query, h: &Headers) -> Result<Vec<&'a User>, GErr> {
    filter_users(st.users.iter(), q, h, false)
}

/// The users `q`'s `$filter` keeps, with Graph's advanced-query rules (`always_advanced`:
/// the collection only supports advanced queries, like a group's members).
pub(super) fn filter_users<'a>(
    users: impl Iterator<Item = &'a User>,
    q: &Query,
    h: &Headers,
    always_advanced: bool,
) -> Result<Vec<&'a User>, GErr> {
    if q.search {
        require_advanced(h, q, false)?;
    }
    if q.count {
        require_advanced(h, q, false)?;
    }
    let Some(f) = &q.filter else {
        return Ok(users.collect());
    };
    let f = Filter::parse(f, schema)?;
    if f.advanced || always_advanced {
        require_advanced(h, q, true)?;
    }
    Ok(users.filter(|u| f.matches(&|p| val(u, p))).collect())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn list(
    st: &State,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    rest: &str,
    q: &Query,
    h: &Headers,
    state_in_lists: bool,
) -> Result<Resp, GErr> {
    if !ident.allows(USER_READ, &[]) {
        return Err(GErr::denied());
    }
    let shape = Shape::new(ver, q, state_in_lists)?;
    let users = filtered(st, q, h)?;
    Ok(user_page(ctx, rest, q, &shape, &users))
}

/// One page of `users`: only this page's users become JSON (`page` skips the placeholders):
/// building every user's JSON for every page made listing a big tenant quadratic.
pub(super) fn user_page(ctx: &Ctx, rest: &str, q: &Query, shape: &Shape, users: &[&User]) -> Resp {
    let top = q.top.unwrap_or(100);
    let start = q.skip.min(users.len());
    let window = start..(start + top).min(users.len());
    let items = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if window.contains(&i) {
                shape.json(u)
            } else {
                serde_json::Value::Null
            }
        })
        .collect();
    page(ctx, shape.ver, rest, q, items, shape.context(ctx))
}

pub(super) fn count(st: &State, ident: &Ident, q: &Query, h: &Headers) -> Result<Resp, GErr> {
    if !ident.allows(USER_READ, &[]) {
        return Err(GErr::denied());
    }
    let eventual =
        header(h, "consistencylevel").is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));
    if !eventual {
        return Err(GErr::unsupported(
            "Count is not currently supported without the header 'ConsistencyLevel: eventual'.",
        ));
    }
    let q2 = Query {
        count: true,
        ..q.clone()
    };
    let n = filtered(st, &q2, h)?.len();
    Ok(Resp::text(200, n.to_string()))
}

pub(super) fn me(ctx: &Ctx, ident: &Ident, ver: Ver) -> Result<Resp, GErr> {
    let Some(u) = &ident.user else {
        return Err(GErr::bad(
            "/me request is only valid with delegated authentication flow.",
        ));
    };
    Ok(Resp::json(
        200,
        json!({
            "@odata.context": format!("{}/{}/$metadata#users/$entity", ctx.base, ver.as_str()),
            "id": u.id,
            "userPrincipalName": u.user_principal_name,
            "displayName": u.display_name,
        }),
    ))
}

pub(super) fn organization(sim: &Sim, ctx: &Ctx, ver: Ver) -> Resp {
    let t = &sim.cfg.tenant;
    let mut domains =
        vec![json!({"name": t.domain, "isDefault": true, "isInitial": false, "type": "Managed"})];
    if let Some(d) = &t.initial_domain {
        domains.push(json!({"name": d, "isDefault": false, "isInitial": true, "type": "Managed"}));
    }
    Resp::json(
        200,
        json!({
            "@odata.context": format!("{}/{}/$metadata#organization", ctx.base, ver.as_str()),
            "value": [{
                "id": t.tenant_id,
                "displayName": t.display_name,
                "verifiedDomains": domains,
                "tenantType": "AAD",
            }]
        }),
    )
}
