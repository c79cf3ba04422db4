//! The inspection API for tests and demos (`/_sim/...`, no token needed, never throttled or
//! faulted):
//! - `GET /_sim/state`: every user's `{userPrincipalName, id, perUserMfaState}`
//! - `GET /_sim/counters`: [`Counters`]
//! - `GET /_sim/log`: the request log ([`super::state::LogEntry`] list)
//! - `GET /_sim/faults`, `POST /_sim/faults`: read / change the fault options (JSON object,
//!   fields of [`FaultConfig`]; only the fields given change)
//! - `GET /_sim/limits`, `POST /_sim/limits`: read / change the throttling limits in force
//!   (JSON object with any of `ru_per_10s`, `writes_per_150s`, `tenant_writes_per_300s`,
//!   `report_requests_per_10s`; the others stay)
//! - `POST /_sim/revoke-tokens`: every token issued so far stops working
//! - `POST /_sim/reset-counters`: counters and log back to zero
//! - `POST /_sim/approve-device-code`: approve pending device codes (body `{"user_code":"…"}`
//!   for one, empty for all)

use serde_json::{json, Value};

use super::auth;
use super::config::{FaultConfig, LimitsChange, LimitsNow};
use super::state::{Counters, Sim};
use super::wire::{graph_error, Ctx, Resp};

pub(super) fn handle(
    sim: &Sim,
    method: &str,
    path: &str,
    _query: Option<&str>,
    body: &[u8],
    ctx: &Ctx,
) -> Resp {
    let ok = |v: Value| Resp::json(200, v);
    match (method, path.trim_end_matches('/')) {
        ("GET", "/_sim/state") => ok(json!(sim.users_state())),
        ("GET", "/_sim/counters") => ok(json!(sim.lock().counters.clone())),
        ("GET", "/_sim/log") => ok(json!(sim.lock().log.iter().collect::<Vec<_>>())),
        ("GET", "/_sim/faults") => ok(json!(sim.lock().faults.clone())),
        ("POST", "/_sim/faults") => {
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return graph_error(ctx, 400, "BadRequest", "Expected a JSON object."),
            };
            let mut st = sim.lock();
            let mut cur = json!(st.faults.clone());
            if let (Some(c), Some(p)) = (cur.as_object_mut(), patch.as_object()) {
                for (k, v) in p {
                    c.insert(k.clone(), v.clone());
                }
            }
            match serde_json::from_value::<FaultConfig>(cur) {
                Ok(f) => {
                    st.faults = f.clone();
                    ok(json!(f))
                }
                Err(e) => graph_error(ctx, 400, "BadRequest", &format!("Invalid faults: {e}")),
            }
        }
        ("GET", "/_sim/limits") => ok(json!(LimitsNow::from(sim.lock().limits))),
        ("POST", "/_sim/limits") => match serde_json::from_slice::<LimitsChange>(body) {
            Ok(change) => {
                let mut st = sim.lock();
                change.apply(&mut st.limits);
                ok(json!(LimitsNow::from(st.limits)))
            }
            Err(e) => graph_error(ctx, 400, "BadRequest", &format!("Invalid limits: {e}")),
        },
        ("POST", "/_sim/revoke-tokens") => {
            let mut st = sim.lock();
            st.token_generation += 1;
            ok(json!({"revoked": true}))
        }
        ("POST", "/_sim/reset-counters") => {
            let mut st = sim.lock();
            st.counters = Counters::default();
            st.log.clear();
            ok(json!({"reset": true}))
        }
        ("POST", "/_sim/approve-device-code") => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let code = v.get("user_code").and_then(Value::as_str);
            let n = auth::approve(&mut sim.lock(), code);
            ok(json!({"approved": n}))
        }
        _ => graph_error(ctx, 404, "BadRequest", "Unknown simulator endpoint."),
    }
}
