//! `GET`/`PATCH /beta/users/{id | userPrincipalName}/authentication/requirements`: the per-user
//! MFA state. `enabled` on a user who registered an MFA method becomes `enforced`.

use serde_json::{json, Value};

use super::state::{Ident, State};
use super::wire::{Ctx, GErr, Resp};

const READ: &[&str] = &["Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"];
const WRITE: &[&str] = &["Policy.ReadWrite.AuthenticationMethod"];
const ADMIN_READ: &[&str] = &[
    "Authentication Policy Administrator",
    "Privileged Authentication Administrator",
    "Authentication Administrator",
    "Global Administrator",
    "Global Reader",
    "Security Reader",
];
const ADMIN_WRITE: &[&str] = &[
    "Authentication Policy Administrator",
    "Privileged Authentication Administrator",
    "Global Administrator",
];

pub(super) fn get(st: &State, ctx: &Ctx, ident: &Ident, key: &str) -> Result<Resp, GErr> {
    if !ident.allows(READ, ADMIN_READ) {
        return Err(GErr::denied());
    }
    let i = st.find_user(key).ok_or_else(|| GErr::not_found(key))?;
    let u = &st.users[i];
    Ok(Resp::json(
        200,
        json!({
            "@odata.context": format!(
                "{}/beta/$metadata#users('{}')/authentication/requirements/$entity",
                ctx.base,
                u.id()
            ),
            "perUserMfaState": u.state(),
        }),
    ))
}

pub(super) fn patch(st: &mut State, ident: &Ident, key: &str, body: &[u8]) -> Result<Resp, GErr> {
    if !ident.allows(WRITE, ADMIN_WRITE) {
        return Err(GErr::denied());
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        GErr::bad("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
    })?;
    let Some(obj) = v.as_object() else {
        return Err(GErr::bad("The request payload must be a JSON object."));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| k.as_str() != "perUserMfaState" && !k.starts_with("@odata."))
    {
        return Err(GErr::bad(format!(
            "Could not find a property named '{k}' on type 'microsoft.graph.strongAuthenticationRequirements'."
        )));
    }
    let wanted = match obj.get("perUserMfaState") {
        Some(Value::String(s)) if matches!(s.as_str(), "disabled" | "enabled" | "enforced") => {
            s.clone()
        }
        Some(other) => {
            return Err(GErr::bad(format!(
                "Invalid value {other} for the property 'perUserMfaState': expected 'disabled', 'enabled' or 'enforced'."
            )))
        }
        None => return Err(GErr::bad("The property 'perUserMfaState' is required.")),
    };
    let i = st.find_user(key).ok_or_else(|| GErr::not_found(key))?;
    let u = &mut st.users[i];
    let new = if wanted == "enabled" && u.has_mfa_method() {
        "enforced".to_string()
    } else {
        wanted
    };
    u.seed.per_user_mfa_state = new;
    let id = u.id().to_string();
    *st.counters.writes_per_user.entry(id).or_insert(0) += 1;
    Ok(Resp::empty(204))
}
