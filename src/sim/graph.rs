//! One Graph request, top-level or a `$batch` item: routing, query options, cost, throttling,
//! injected errors, then the resource handlers. The HTTP side (version, dropped connections,
//! token check, `$batch`) is in `server.rs`; `$batch` items go through [`execute`] one by
//! one, exactly like top-level requests.

use super::groups::{parse_cast, Members};
use super::query::{parse_query, Query};
use super::state::{Ident, Sim, State};
use super::throttle::{limit_percentage, retry_after_value, Cost};
use super::wire::{decode_segment, too_many, Ctx, GErr, Headers, Resp, Ver};
use super::{faults, groups, methods, policies, requirements, users};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Route {
    Users,
    UsersCount,
    User(String),
    Requirements(String),
    Methods(String),
    RegList,
    RegOne(String),
    Organization,
    Me,
    Groups,
    Group(String),
    GroupMembers(String, Members),
    SecurityDefaults,
    ConditionalAccess,
}

/// One Graph request: top-level, or an item of a `$batch`.
pub(super) struct Item<'a> {
    pub method: &'a str,
    pub ver: Ver,
    /// Path after the version, without the leading slash, still percent-encoded.
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a Headers,
    pub body: &'a [u8],
    pub batch_id: Option<&'a str>,
}

pub(super) fn split_version(path: &str) -> Option<(Ver, &str)> {
    let p = path.strip_prefix('/')?;
    let (v, rest) = p.split_once('/').unwrap_or((p, ""));
    let ver = if v.eq_ignore_ascii_case("v1.0") {
        Ver::V1
    } else if v.eq_ignore_ascii_case("beta") {
        Ver::Beta
    } else {
        return None;
    };
    Some((ver, rest))
}

/// Runs one Graph request (top-level or batch item). Returns the answer and whether a write
/// was applied.
pub(super) fn execute(sim: &Sim, ctx: &Ctx, ident: &Ident, item: &Item<'_>) -> (Resp, bool) {
    let mut st = sim.lock();
    st.counters.requests += 1;
    let (resp, wrote) = match faults::roll_error(&mut st, ctx, sim.clock.scale()) {
        Some(r) => (r, false),
        None => run(sim, &mut st, ctx, ident, item),
    };
    let url = match item.query {
        Some(q) => format!("/{}/{}?{q}", item.ver.as_str(), item.rest),
        None => format!("/{}/{}", item.ver.as_str(), item.rest),
    };
    sim.log_request(
        &mut st,
        ctx,
        item.method,
        &url,
        resp.status,
        Some(&ident.client_id),
        item.batch_id,
    );
    (resp, wrote)
}

fn run(sim: &Sim, st: &mut State, ctx: &Ctx, ident: &Ident, item: &Item<'_>) -> (Resp, bool) {
    let parsed = parse_route(item.ver, item.rest)
        .and_then(|r| Ok((r, parse_query(item.query.unwrap_or(""))?)));
    let cost = match &parsed {
        Ok((r, q)) => cost_of(item.method, r, q),
        Err(_) => Cost {
            ru: 1,
            write: false,
            report: false,
        },
    };
    let lim = st.limits;
    let now = sim.clock.now();
    st.counters.ru_spent += cost.ru;
    let usage = match st.throttle.charge(&ident.client_id, now, cost, &lim) {
        Ok(u) => u,
        Err(t) => {
            st.counters.throttled += 1;
            let r = too_many(ctx, &retry_after_value(t.wait, sim.clock.scale()))
                .with_header(
                    "x-ms-throttle-scope",
                    t.exceeded
                        .scope(&ident.client_id, &sim.cfg.tenant.tenant_id),
                )
                .with_header("x-ms-throttle-information", t.exceeded.information())
                .with_header(
                    "x-ms-throttle-limit-percentage",
                    limit_percentage(t.usage).unwrap_or_else(|| "1.00".into()),
                )
                .with_header("x-ms-resource-unit", cost.ru.to_string());
            return (r, false);
        }
    };
    if cost.write {
        st.counters.writes += 1;
    }
    let (route, q) = match parsed {
        Ok(x) => x,
        Err(e) => return (e.resp(ctx), false),
    };
    let (mut resp, wrote) = match dispatch(sim, st, ctx, ident, item, route, &q) {
        Ok(r) => r,
        Err(e) => (e.resp(ctx), false),
    };
    resp = resp.with_header("x-ms-resource-unit", cost.ru.to_string());
    if let Some(p) = limit_percentage(usage) {
        resp = resp.with_header("x-ms-throttle-limit-percentage", p);
    }
    (resp, wrote)
}

fn dispatch(
    sim: &Sim,
    st: &mut State,
    ctx: &Ctx,
    ident: &Ident,
    item: &Item<'_>,
    route: Route,
    q: &Query,
) -> Result<(Resp, bool), GErr> {
    let ver = item.ver;
    let h = item.headers;
    let r = match (item.method, route) {
        ("GET", Route::Users) => users::list(
            st,
            ctx,
            ident,
            ver,
            item.rest,
            q,
            h,
            sim.cfg.tenant.lists_per_user_mfa_state,
        )?,
        ("GET", Route::Groups) => groups::list(sim, ctx, ident, ver, item.rest, q, h)?,
        ("GET", Route::Group(id)) => groups::get(sim, ctx, ident, ver, &id, q)?,
        ("GET", Route::GroupMembers(id, which)) => {
            groups::list_members(sim, st, ctx, ident, ver, item.rest, &id, &which, q, h)?
        }
        ("GET", Route::SecurityDefaults) => policies::security_defaults(sim, ctx, ident, ver)?,
        ("GET", Route::ConditionalAccess) => policies::conditional_access(sim, ctx, ident, ver)?,
        ("GET", Route::UsersCount) => users::count(st, ident, q, h)?,
        ("GET", Route::User(k)) => users::get(st, ctx, ident, ver, &k, q)?,
        ("GET", Route::Me) => users::me(ctx, ident, ver)?,
        ("GET", Route::Organization) => users::organization(sim, ctx, ver),
        ("GET", Route::Requirements(k)) => requirements::get(st, ctx, ident, &k)?,
        ("PATCH", Route::Requirements(k)) => {
            return requirements::patch(st, ident, &k, item.body).map(|r| (r, true))
        }
        ("GET", Route::Methods(k)) => methods::list(st, ctx, ident, ver, &k)?,
        ("GET", Route::RegList) => methods::reg_list(sim, st, ctx, ident, ver, item.rest, q)?,
        ("GET", Route::RegOne(id)) => methods::reg_one(sim, st, ctx, ident, ver, &id)?,
        _ => {
            return Err(GErr::new(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            ))
        }
    };
    Ok((r, false))
}

fn cost_of(method: &str, route: &Route, q: &Query) -> Cost {
    let report = matches!(route, Route::RegList | Route::RegOne(_));
    if method != "GET" {
        return Cost {
            ru: 1,
            write: true,
            report,
        };
    }
    let mut ru: i64 = match route {
        Route::Users
        | Route::RegList
        | Route::Methods(_)
        | Route::Groups
        | Route::GroupMembers(..)
        | Route::ConditionalAccess => 2,
        _ => 1,
    };
    if q.select.is_some() {
        ru -= 1;
    }
    if q.expand {
        ru += 1;
    }
    Cost {
        ru: ru.max(1) as u64,
        write: false,
        report,
    }
}

fn segment_error(seg: &str) -> GErr {
    GErr::bad(format!("Resource not found for the segment '{seg}'."))
}

/// Routes the path after the version.
pub(super) fn parse_route(ver: Ver, rest: &str) -> Result<Route, GErr> {
    let rest = rest.trim_end_matches('/');
    let segs: Vec<String> = rest.split('/').map(decode_segment).collect();
    let first = segs[0].as_str();
    let lower = first.to_ascii_lowercase();
    let (key, tail) = if lower == "users" {
        match segs.get(1) {
            None => return Ok(Route::Users),
            Some(k) if k == "$count" && segs.len() == 2 => return Ok(Route::UsersCount),
            Some(k) if k.starts_with('$') => {
                return Err(GErr::bad(format!(
                    "Invalid object identifier '{k}'. A key starting with '$' must be addressed as users('{k}')."
                )))
            }
            Some(k) if k.is_empty() => return Err(segment_error(first)),
            Some(k) => (k.clone(), &segs[2..]),
        }
    } else if lower.starts_with("users(") && first.ends_with(')') {
        let inner = &first[6..first.len() - 1];
        let key = if inner.len() >= 2 && inner.starts_with('\'') && inner.ends_with('\'') {
            inner[1..inner.len() - 1].replace("''", "'")
        } else {
            inner.to_string()
        };
        if key.is_empty() {
            return Err(GErr::bad("Invalid object identifier ''."));
        }
        (key, &segs[1..])
    } else if lower == "reports" {
        let s: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        if s.len() >= 3 && s[1] == "authenticationmethods" && s[2] == "userregistrationdetails" {
            return match segs.get(3) {
                None => Ok(Route::RegList),
                Some(id) if segs.len() == 4 => Ok(Route::RegOne(id.clone())),
                Some(x) => Err(segment_error(x)),
            };
        }
        return Err(segment_error(
            segs.get(1).map(String::as_str).unwrap_or(first),
        ));
    } else if lower == "groups" {
        return match (segs.get(1), segs.get(2), segs.get(3), segs.len()) {
            (None, ..) => Ok(Route::Groups),
            (Some(id), None, _, 2) if !id.is_empty() => Ok(Route::Group(id.clone())),
            (Some(id), Some(rel), cast, n) if n <= 4 => {
                let transitive = match rel.to_ascii_lowercase().as_str() {
                    "members" => false,
                    "transitivemembers" => true,
                    _ => return Err(segment_error(rel)),
                };
                let cast = cast.map(|c| parse_cast(c)).transpose()?;
                Ok(Route::GroupMembers(
                    id.clone(),
                    Members { transitive, cast },
                ))
            }
            (_, _, _, _) => Err(segment_error(
                segs.last().map(String::as_str).unwrap_or(first),
            )),
        };
    } else if lower == "policies" && segs.len() == 2 {
        return if segs[1].eq_ignore_ascii_case("identitySecurityDefaultsEnforcementPolicy") {
            Ok(Route::SecurityDefaults)
        } else {
            Err(segment_error(&segs[1]))
        };
    } else if lower == "identity" {
        let s: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        return if s.len() == 3 && s[1] == "conditionalaccess" && s[2] == "policies" {
            Ok(Route::ConditionalAccess)
        } else {
            Err(segment_error(
                segs.get(1).map(String::as_str).unwrap_or(first),
            ))
        };
    } else if lower == "organization" && segs.len() == 1 {
        return Ok(Route::Organization);
    } else if lower == "me" && segs.len() == 1 {
        return Ok(Route::Me);
    } else {
        return Err(segment_error(first));
    };
    let tail: Vec<String> = tail.iter().map(|s| s.to_ascii_lowercase()).collect();
    match tail
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Ok(Route::User(key)),
        ["authentication", "requirements"] => {
            if ver == Ver::Beta {
                Ok(Route::Requirements(key))
            } else {
                // Like Graph: the segment only exists on beta.
                Err(GErr::new(
                    404,
                    "BadRequest",
                    "Resource not found for the segment 'requirements'.",
                ))
            }
        }
        ["authentication", "methods"] => Ok(Route::Methods(key)),
        [x, ..] => Err(segment_error(x)),
    }
}
