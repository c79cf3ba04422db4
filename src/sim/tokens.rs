//! What the token endpoints send: Entra's error shape, access tokens (unsigned JWTs the
//! simulator records, so it accepts only its own), and for an admin's sign-in the refresh token
//! (with `offline_access`) and the ID token (with `openid`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::config::{AdminSeed, ClientSeed};
use super::state::{Ident, RefreshRec, Sim, TokenRec};
use super::wire::{new_guid, Ctx, Resp};

pub(super) const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";

/// An Entra token endpoint error.
pub(super) fn aad_error(status: u16, error: &str, code: u32, description: &str, ctx: &Ctx) -> Resp {
    let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    Resp::json(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {ts}",
                ctx.request_id, ctx.client_request_id
            ),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": ctx.request_id,
            "correlation_id": ctx.client_request_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

pub(super) fn missing(param: &str, ctx: &Ctx) -> Resp {
    aad_error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{param}'."),
        ctx,
    )
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn jwt(claims: &Value) -> String {
    format!(
        "{}.{}.{}",
        b64(&json!({"typ": "JWT", "alg": "RS256", "kid": "mfa-bulk-sim"})),
        b64(claims),
        URL_SAFE_NO_PAD.encode("not-signed-by-the-mfa-bulk-simulator")
    )
}

/// Makes an access token for `ident`, records it, and returns it with its lifetime in real
/// seconds.
pub(super) fn mint(sim: &Sim, ident: Ident) -> (String, u64) {
    let lifetime = sim.cfg.limits.token_lifetime_secs as f64;
    let real_lifetime = sim.clock.to_real(lifetime);
    let expires_in = (real_lifetime.ceil() as u64).max(1);
    let now = chrono::Utc::now().timestamp();
    let tid = &sim.cfg.tenant.tenant_id;
    let mut claims = json!({
        "aud": GRAPH_AUDIENCE,
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now,
        "nbf": now,
        "exp": now + expires_in as i64,
        "tid": tid,
        "appid": ident.client_id,
        "azp": ident.client_id,
        "app_displayname": ident.app_name,
        "idtyp": if ident.user.is_some() { "user" } else { "app" },
        "oid": ident.user.as_ref().map_or(ident.client_id.clone(), |u| u.id.clone()),
        "sub": ident.user.as_ref().map_or(ident.client_id.clone(), |u| u.id.clone()),
        "uti": new_guid(),
        "ver": "1.0",
    });
    let o = claims.as_object_mut().expect("object");
    match &ident.user {
        None => {
            o.insert("roles".into(), json!(ident.roles));
        }
        Some(u) => {
            o.insert("scp".into(), json!(ident.scp.join(" ")));
            o.insert("upn".into(), json!(u.user_principal_name));
            o.insert("unique_name".into(), json!(u.user_principal_name));
            o.insert("name".into(), json!(u.display_name));
            // The admin's directory roles by template id, as Entra puts them in Graph tokens.
            o.insert("wids".into(), json!(u.wids()));
        }
    }
    let token = jwt(&claims);
    let mut st = sim.lock();
    let generation = st.token_generation;
    st.tokens.insert(
        token.clone(),
        TokenRec {
            ident,
            expires_at: sim.clock.now() + lifetime,
            generation,
        },
    );
    st.counters.tokens_issued += 1;
    (token, expires_in)
}

/// Issues an access token and records it.
pub(super) fn issue(sim: &Sim, ident: Ident, scope_reply: Option<String>) -> Resp {
    let (token, expires_in) = mint(sim, ident);
    let mut reply = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    });
    if let Some(s) = scope_reply {
        reply["scope"] = json!(s);
    }
    Resp::json(200, reply)
}

/// The names of the scopes in a `scope` parameter (`https://graph.microsoft.com/User.Read.All`
/// → `User.Read.All`; `offline_access`, `openid` as they are).
pub(super) fn scope_names(scope: &str) -> Vec<String> {
    scope
        .split_whitespace()
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
        .collect()
}

/// The Graph permissions granted for `requested`: those the client was consented (every one
/// for `.default`).
pub(super) fn granted(client: &ClientSeed, requested: &[String]) -> Vec<String> {
    if requested.iter().any(|s| s == ".default") {
        client.scopes.clone()
    } else {
        client
            .scopes
            .iter()
            .filter(|s| requested.iter().any(|r| r.eq_ignore_ascii_case(s)))
            .cloned()
            .collect()
    }
}

/// A new refresh token for `user` of `client`, recorded.
pub(super) fn new_refresh_token(sim: &Sim, client: &ClientSeed, user: &AdminSeed) -> String {
    let mut st = sim.lock();
    let rt = format!(
        "0.SIMRT{}{}",
        URL_SAFE_NO_PAD.encode(st.rng.u128(..).to_be_bytes()),
        URL_SAFE_NO_PAD.encode(st.rng.u128(..).to_be_bytes())
    );
    let rec = RefreshRec {
        client_id: client.client_id.clone(),
        user: user.clone(),
        expires_at: sim.clock.now() + sim.cfg.limits.refresh_token_lifetime_secs as f64,
        generation: st.token_generation,
    };
    st.signin.refresh_tokens.insert(rt.clone(), rec);
    rt
}

/// The ID token of `user` signing in to `client`.
fn id_token(sim: &Sim, client: &ClientSeed, user: &AdminSeed, nonce: Option<&str>) -> String {
    let now = chrono::Utc::now().timestamp();
    let tid = &sim.cfg.tenant.tenant_id;
    let mut claims = json!({
        "aud": client.client_id,
        "iss": format!("https://login.microsoftonline.com/{tid}/v2.0"),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "sub": URL_SAFE_NO_PAD.encode(format!("{}/{}", client.client_id, user.id)),
        "tid": tid,
        "uti": new_guid(),
        "ver": "2.0",
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    jwt(&claims)
}

/// Tokens for an admin who signed in to `client`: an access token for the Graph permissions
/// granted, a refresh token if `offline_access` was asked for, an ID token if `openid` was.
pub(super) fn issue_admin(
    sim: &Sim,
    client: &ClientSeed,
    user: &AdminSeed,
    requested: &[String],
    nonce: Option<&str>,
) -> Resp {
    let granted = granted(client, requested);
    let mut scope_reply: Vec<String> = granted
        .iter()
        .map(|s| format!("{GRAPH_AUDIENCE}/{s}"))
        .collect();
    let asked = |s: &str| requested.iter().any(|r| r == s);
    for s in ["openid", "profile", "email", "offline_access"] {
        if asked(s) {
            scope_reply.push(s.to_string());
        }
    }
    let ident = Ident {
        client_id: client.client_id.clone(),
        app_name: client.display_name.clone(),
        roles: vec![],
        scp: granted,
        user: Some(user.clone()),
    };
    let (token, expires_in) = mint(sim, ident);
    let mut reply = json!({
        "token_type": "Bearer",
        "scope": scope_reply.join(" "),
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    });
    if asked("offline_access") {
        reply["refresh_token"] = json!(new_refresh_token(sim, client, user));
    }
    if asked("openid") {
        reply["id_token"] = json!(id_token(sim, client, user, nonce));
    }
    Resp::json(200, reply)
}
