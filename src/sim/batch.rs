//! JSON batching: `POST /v1.0/$batch` and `/beta/$batch`. At most 20 requests, unique ids,
//! URLs relative to the version; every item runs through the same handlers and is throttled on
//! its own; answers come back in shuffled order. `dependsOn` is honoured: an item whose
//! dependency failed answers `424`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::graph::{execute, Item};
use super::state::{Ident, Sim};
use super::wire::{graph_error, header, new_guid, Body, Ctx, Headers, Resp, Ver};

pub(super) const MAX_ITEMS: usize = 20;

fn bad(ctx: &Ctx, msg: &str) -> (Resp, bool) {
    (graph_error(ctx, 400, "BadRequest", msg), false)
}

pub(super) fn handle(
    sim: &Sim,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    _outer: &Headers,
    body: &[u8],
) -> (Resp, bool) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return bad(ctx, "Invalid batch payload format.");
    };
    let Some(reqs) = v.get("requests").and_then(Value::as_array) else {
        return bad(
            ctx,
            "Invalid batch payload format: a 'requests' array is required.",
        );
    };
    if reqs.is_empty() {
        return bad(ctx, "Invalid batch payload: the batch has no requests.");
    }
    if reqs.len() > MAX_ITEMS {
        return bad(
            ctx,
            &format!(
                "Invalid batch payload. The number of requests in a batch cannot exceed {MAX_ITEMS}."
            ),
        );
    }
    // Validate every item before running any.
    let mut ids: Vec<String> = vec![];
    for r in reqs {
        let id = match r.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return bad(
                    ctx,
                    "Invalid batch payload: every request needs a string 'id'.",
                )
            }
        };
        if ids.contains(&id) {
            return bad(
                ctx,
                &format!("Invalid batch payload. Duplicate request id '{id}': ids must be unique."),
            );
        }
        if r.get("method").and_then(Value::as_str).is_none()
            || r.get("url").and_then(Value::as_str).is_none()
        {
            return bad(
                ctx,
                &format!("Invalid batch payload: request '{id}' needs 'method' and 'url'."),
            );
        }
        if let Some(deps) = r.get("dependsOn") {
            let Some(deps) = deps.as_array() else {
                return bad(ctx, "Invalid batch payload: 'dependsOn' must be an array.");
            };
            for d in deps {
                if !d.as_str().is_some_and(|d| ids.iter().any(|i| i == d)) {
                    return bad(
                        ctx,
                        &format!("Invalid batch payload: request '{id}' depends on {d}, which is not an earlier request of the batch."),
                    );
                }
            }
        }
        ids.push(id);
    }
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut out: Vec<Value> = vec![];
    let mut wrote = false;
    for r in reqs {
        let id = r["id"].as_str().unwrap_or_default().to_string();
        let method = r["method"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let url = r["url"].as_str().unwrap_or_default();
        let ictx = Ctx {
            request_id: new_guid(),
            client_request_id: ctx.client_request_id.clone(),
            base: ctx.base.clone(),
        };
        let headers: Headers = r
            .get("headers")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.to_ascii_lowercase(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let failed_dep = r
            .get("dependsOn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|d| statuses.get(d).is_none_or(|s| *s >= 400));
        let resp = if failed_dep {
            graph_error(
                &ictx,
                424,
                "FailedDependency",
                "A request this request depends on failed.",
            )
        } else if url.starts_with("http:")
            || url.starts_with("https:")
            || url.trim_start_matches('/').starts_with("v1.0/")
            || url.trim_start_matches('/').starts_with("beta/")
        {
            graph_error(
                &ictx,
                400,
                "BadRequest",
                "Invalid request URL: batch URLs are relative to the version, e.g. /users/{id}.",
            )
        } else {
            let body_bytes = match r.get("body") {
                None | Some(Value::Null) => vec![],
                Some(b) => b.to_string().into_bytes(),
            };
            if !body_bytes.is_empty() && header(&headers, "content-type").is_none() {
                graph_error(
                    &ictx,
                    400,
                    "BadRequest",
                    "Content-Type header must be specified in the request when a body is present.",
                )
            } else {
                let u = url.trim_start_matches('/');
                let (path, query) = match u.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (u, None),
                };
                let item = Item {
                    method: &method,
                    ver,
                    rest: path,
                    query,
                    headers: &headers,
                    body: &body_bytes,
                    batch_id: Some(&id),
                };
                let (resp, w) = execute(sim, &ictx, ident, &item);
                wrote |= w;
                resp
            }
        };
        statuses.insert(id.clone(), resp.status);
        out.push(item_json(&id, resp, &ictx));
    }
    sim.lock().rng.shuffle(&mut out);
    (Resp::json(200, json!({ "responses": out })), wrote)
}

fn item_json(id: &str, resp: Resp, ctx: &Ctx) -> Value {
    let mut headers = Map::new();
    for (k, v) in &resp.headers {
        headers.insert(k.clone(), Value::String(v.clone()));
    }
    headers.insert("request-id".into(), ctx.request_id.clone().into());
    headers.insert(
        "client-request-id".into(),
        ctx.client_request_id.clone().into(),
    );
    let mut o = Map::new();
    o.insert("id".into(), id.into());
    o.insert("status".into(), resp.status.into());
    match resp.body {
        Body::Empty => {}
        Body::Json(b) => {
            headers.insert(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            );
            o.insert("body".into(), b);
        }
        Body::Text(t) => {
            headers.insert("Content-Type".into(), "text/plain".into());
            o.insert("body".into(), t.into());
        }
    }
    o.insert("headers".into(), Value::Object(headers));
    Value::Object(o)
}
