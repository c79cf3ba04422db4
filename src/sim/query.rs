//! Query options and paging: `$select`, `$filter` (the raw text; `filter.rs` parses it),
//! `$top`, `$count`, `$skiptoken`, `$expand`, `$search`; one page of a list with an absolute
//! `@odata.nextLink`; the `ConsistencyLevel: eventual` rule of advanced queries.

use base64::Engine;

use super::wire::{decode, header, parse_pairs, Ctx, GErr, Headers, Resp, Ver};

/// Query options.
#[derive(Clone, Debug, Default)]
pub(super) struct Query {
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

pub(super) fn skiptoken(offset: usize) -> String {
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

pub(super) fn parse_query(raw: &str) -> Result<Query, GErr> {
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
pub(super) fn page(
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
                let k = decode(k);
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
pub(super) fn require_advanced(h: &Headers, q: &Query, needs_count: bool) -> Result<(), GErr> {
    let eventual =
        header(h, "consistencylevel").is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));
    if !eventual || (needs_count && !q.count) {
        return Err(GErr::unsupported(
            "Unsupported Query. This query is an advanced query: send the header 'ConsistencyLevel: eventual' and $count=true.",
        ));
    }
    Ok(())
}
