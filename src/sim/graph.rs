//! The Graph side: version, faults, token check, routing, query options, throttling, then the
//! resource handlers. `$batch` items go through [`execute`] one by one, exactly like top-level
//! requests.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use super::http::{
    decode_segment, graph_error, parse_pairs, too_many, Ctx, GErr, Headers, Outcome, Resp,
};
use super::state::{Ident, LogEntry, Sim, State};
use super::throttle::{retry_after_value, Cost};
use super::{faults, methods, requirements, users};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ver {
    V1,
    Beta,
}

impl Ver {
    pub fn as_str(self) -> &'static str {
        match self {
            Ver::V1 => "v1.0",
            Ver::Beta => "beta",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Users,
    UsersCount,
    User(String),
    Requirements(String),
    Methods(String),
    RegList,
    RegOne(String),
    Organization,
    Me,
}

/// Query options.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    pub select: Option<Vec<String>>,
    pub filter: Option<String>,
    pub top: Option<usize>,
    pub count: bool,
    pub skip: usize,
    pub expand: bool,
    pub search: bool,
    /// The raw query string (to build `@odata.nextLink`).
    pub raw: String,
}

/// One Graph request: top-level, or an item of a `$batch`.
pub(crate) struct Item<'a> {
    pub method: &'a str,
    pub ver: Ver,
    /// Path after the version, without the leading slash, still percent-encoded.
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a Headers,
    pub body: &'a [u8],
    pub batch_id: Option<&'a str>,
}

pub(crate) fn split_version(path: &str) -> Option<(Ver, &str)> {
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

pub(crate) async fn handle_http(
    sim: &Arc<Sim>,
    ctx: &Ctx,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &Headers,
    body: &[u8],
) -> Outcome {
    let url = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let Some((ver, rest)) = split_version(path) else {
        let seg = path.trim_start_matches('/').split('/').next().unwrap_or("");
        return graph_error(ctx, 400, "BadRequest", &format!("Invalid version: {seg}")).into();
    };
    let (latency, drop) = faults::roll_connection(&mut sim.lock());
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if drop {
        let mut st = sim.lock();
        st.counters.dropped += 1;
        log(sim, &mut st, ctx, method, &url, 0, None, None);
        return Outcome {
            resp: Resp::empty(500),
            drop: true,
        };
    }
    let ident = match super::auth::bearer(sim, ctx, headers) {
        Ok(i) => i,
        Err(resp) => {
            let mut st = sim.lock();
            st.counters.unauthorized += 1;
            log(sim, &mut st, ctx, method, &url, resp.status, None, None);
            return resp.into();
        }
    };
    let (resp, wrote) =
        if rest.eq_ignore_ascii_case("$batch") || rest.eq_ignore_ascii_case("%24batch") {
            if method != "POST" {
                (
                    graph_error(ctx, 405, "BadRequest", "Only POST is allowed on $batch."),
                    false,
                )
            } else {
                let r = super::batch::handle(sim, ctx, &ident, ver, headers, body);
                let mut st = sim.lock();
                st.counters.batches += 1;
                log(
                    sim,
                    &mut st,
                    ctx,
                    method,
                    &url,
                    r.0.status,
                    Some(&ident.client_id),
                    None,
                );
                r
            }
        } else {
            let item = Item {
                method,
                ver,
                rest,
                query,
                headers,
                body,
                batch_id: None,
            };
            execute(sim, ctx, &ident, &item)
        };
    if wrote {
        let mut st = sim.lock();
        if faults::roll_lost_write(&mut st) {
            st.counters.lost_writes += 1;
            st.counters.dropped += 1;
            return Outcome { resp, drop: true };
        }
    }
    resp.into()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn log(
    sim: &Sim,
    st: &mut State,
    ctx: &Ctx,
    method: &str,
    url: &str,
    status: u16,
    app: Option<&str>,
    batch_item: Option<&str>,
) {
    let entry = LogEntry {
        t_ms: sim.clock.real_ms(),
        method: method.to_string(),
        url: url.to_string(),
        status,
        request_id: ctx.request_id.clone(),
        client_request_id: ctx.client_request_id.clone(),
        app: app.map(str::to_string),
        batch_item: batch_item.map(str::to_string),
    };
    sim.log(st, entry);
}

/// Runs one Graph request (top-level or batch item). Returns the answer and whether a write
/// was applied.
pub(crate) fn execute(sim: &Sim, ctx: &Ctx, ident: &Ident, item: &Item<'_>) -> (Resp, bool) {
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
    log(
        sim,
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
    let lim = super::throttle::Limits {
        ru: u64::from(sim.ru_budget),
        writes: u64::from(sim.cfg.limits.writes_per_150s),
        reports: u64::from(sim.cfg.limits.report_requests_per_10s),
        tenant_writes: u64::from(sim.cfg.limits.tenant_writes_per_300s),
    };
    let now = sim.clock.now();
    st.counters.ru_spent += cost.ru;
    if let Err(wait) = st.throttle.charge(&ident.client_id, now, cost, &lim) {
        st.counters.throttled += 1;
        return (
            too_many(ctx, &retry_after_value(wait, sim.clock.scale())),
            false,
        );
    }
    if cost.write {
        st.counters.writes += 1;
    }
    let (route, q) = match parsed {
        Ok(x) => x,
        Err(e) => return (e.resp(ctx), false),
    };
    match dispatch(sim, st, ctx, ident, item, route, &q) {
        Ok(r) => r,
        Err(e) => (e.resp(ctx), false),
    }
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
        ("GET", Route::Users) => users::list(st, ctx, ident, ver, item.rest, q, h)?,
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
        Route::Users | Route::RegList | Route::Methods(_) => 2,
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
pub(crate) fn parse_route(ver: Ver, rest: &str) -> Result<Route, GErr> {
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

pub(crate) fn skiptoken(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("simskip:{offset}"))
}

fn parse_skiptoken(t: &str) -> Option<usize> {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(b)
        .ok()?
        .strip_prefix("simskip:")?
        .parse()
        .ok()
}

pub(crate) fn parse_query(raw: &str) -> Result<Query, GErr> {
    let mut q = Query {
        raw: raw.to_string(),
        ..Query::default()
    };
    for (k, v) in parse_pairs(raw) {
        match k.to_ascii_lowercase().as_str() {
            "$select" => {
                q.select = Some(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "$filter" => q.filter = Some(v),
            "$top" => {
                let n: i64 = v.trim().parse().map_err(|_| {
                    GErr::bad(format!("Invalid value '{v}' for the query option '$top'."))
                })?;
                if !(1..=999).contains(&n) {
                    return Err(GErr::unsupported(format!(
                        "Invalid page size specified: '{n}'. Must be between 1 and 999 inclusive."
                    )));
                }
                q.top = Some(n as usize);
            }
            "$count" => {
                q.count = match v.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(GErr::bad(format!(
                            "Invalid value '{v}' for the query option '$count'."
                        )))
                    }
                }
            }
            "$skiptoken" => {
                q.skip = parse_skiptoken(&v)
                    .ok_or_else(|| GErr::new(400, "Request_BadRequest", "Invalid skip token."))?
            }
            "$expand" => q.expand = true,
            "$search" => q.search = true,
            "$orderby" | "$format" => {}
            k if k.starts_with('$') => {
                return Err(GErr::bad(format!("Query option '{k}' is not supported.")))
            }
            _ => {}
        }
    }
    Ok(q)
}

/// One page of a list, with `@odata.count` and an absolute `@odata.nextLink` (which repeats
/// the query options and adds `$skiptoken`).
pub(crate) fn page(
    ctx: &Ctx,
    ver: Ver,
    rest: &str,
    q: &Query,
    items: Vec<serde_json::Value>,
    context: String,
) -> Resp {
    let total = items.len();
    let top = q.top.unwrap_or(100);
    let start = q.skip.min(total);
    let end = (start + top).min(total);
    let mut obj = serde_json::Map::new();
    obj.insert("@odata.context".into(), context.into());
    if q.count {
        obj.insert("@odata.count".into(), total.into());
    }
    if end < total {
        let kept: Vec<&str> = q
            .raw
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let k = p.split('=').next().unwrap_or("");
                let k = super::http::decode(k);
                !k.eq_ignore_ascii_case("$skiptoken")
            })
            .collect();
        let mut qs = kept.join("&");
        if !qs.is_empty() {
            qs.push('&');
        }
        qs.push_str("$skiptoken=");
        qs.push_str(&skiptoken(end));
        obj.insert(
            "@odata.nextLink".into(),
            format!("{}/{}/{}?{qs}", ctx.base, ver.as_str(), rest).into(),
        );
    }
    let value: Vec<serde_json::Value> = items.into_iter().skip(start).take(end - start).collect();
    obj.insert("value".into(), value.into());
    Resp::json(200, serde_json::Value::Object(obj))
}

/// Advanced queries need `ConsistencyLevel: eventual` (and `$count=true` with `$filter`).
pub(crate) fn require_advanced(h: &Headers, q: &Query, needs_count: bool) -> Result<(), GErr> {
    let eventual = super::http::header(h, "consistencylevel")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));
    if !eventual || (needs_count && !q.count) {
        return Err(GErr::unsupported(
            "Unsupported Query. This query is an advanced query: send the header 'ConsistencyLevel: eventual' and $count=true.",
        ));
    }
    Ok(())
}
