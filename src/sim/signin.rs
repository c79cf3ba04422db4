//! An admin's browser sign-in, as Entra does it: the `/authorize` page (approved at once as the
//! client's configured admin, or declined when the client is set to deny consent), the
//! `authorization_code` grant with PKCE, the `refresh_token` grant (a new refresh token with
//! every answer; a token unused past its lifetime, or revoked, no longer works), and OpenID
//! discovery (how a client learns whether a tenant exists before sending a browser to it).
//!
//! Errors are Entra's: a redirect URI not registered shows AADSTS50011 on the page (never
//! redirected); a declined consent comes back to the redirect URI as `error=access_denied`
//! (AADSTS65004); a wrong PKCE verifier is `invalid_grant` AADSTS501481.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

use super::config::ClientSeed;
use super::state::{AuthCode, Sim};
use super::tokens::{aad_error, issue_admin, missing, new_refresh_token, scope_names};
use super::wire::{decode_segment, new_guid, parse_pairs, Ctx, Resp};

/// A sign-in page the browser (or a client) asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Page {
    /// `/{tenant}/oauth2/v2.0/authorize`
    Authorize,
    /// `/{tenant}/v2.0/.well-known/openid-configuration`
    Discovery,
}

/// The tenant and page of a path, if it is one.
pub(super) fn match_path(path: &str) -> Option<(String, Page)> {
    let p = path.strip_prefix('/')?;
    let (tenant, rest) = p.split_once('/')?;
    let page = match rest {
        "oauth2/v2.0/authorize" => Page::Authorize,
        "v2.0/.well-known/openid-configuration" => Page::Discovery,
        _ => return None,
    };
    Some((decode_segment(tenant), page))
}

pub(super) fn handle(
    sim: &Sim,
    ctx: &Ctx,
    method: &str,
    tenant: &str,
    page: Page,
    path: &str,
    query: Option<&str>,
) -> Resp {
    let resp = match page {
        Page::Authorize => authorize(sim, ctx, method, tenant, query.unwrap_or("")),
        Page::Discovery => discovery(sim, ctx, tenant),
    };
    // The path only: the query holds the state and the challenge, the answer the code.
    let mut st = sim.lock();
    sim.log_request(&mut st, ctx, method, path, resp.status, None, None);
    resp
}

/// An error page, as Entra shows it when it cannot send the browser back.
fn error_page(status: u16, code: u32, message: &str, ctx: &Ctx) -> Resp {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    Resp::text(
        status,
        format!(
            "<!doctype html><html><head><title>Sign in to your account</title></head><body>\
             <h1>Sorry, but we're having trouble signing you in.</h1>\
             <p>AADSTS{code}: {}</p><p>Request Id: {}</p><p>Correlation Id: {}</p></body></html>",
            esc(message),
            ctx.request_id,
            ctx.client_request_id
        ),
    )
    .with_header("content-type", "text/html; charset=utf-8")
}

/// Sends the browser back to `redirect_uri` with `pairs` added to its query.
fn redirect(redirect_uri: &str, pairs: &[(&str, &str)]) -> Resp {
    let mut url = match reqwest::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return Resp::empty(400),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Resp::empty(302).with_header("location", url.to_string())
}

fn is_loopback_host(h: &str) -> bool {
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Whether `uri` is one of the client's redirect URIs. For loopback addresses the port is not
/// compared (Entra: a native app registers `http://localhost` and listens on any port).
fn registered(client: &ClientSeed, uri: &str) -> bool {
    let Ok(want) = reqwest::Url::parse(uri) else {
        return false;
    };
    client.redirect_uris.iter().any(|r| {
        let Ok(have) = reqwest::Url::parse(r) else {
            return false;
        };
        let (wh, hh) = (want.host_str().unwrap_or(""), have.host_str().unwrap_or(""));
        let loopback = is_loopback_host(hh) && wh.eq_ignore_ascii_case(hh);
        want.scheme() == have.scheme()
            && wh.eq_ignore_ascii_case(hh)
            && (loopback || want.port_or_known_default() == have.port_or_known_default())
            && want.path().trim_end_matches('/') == have.path().trim_end_matches('/')
    })
}

fn authorize(sim: &Sim, ctx: &Ctx, method: &str, tenant: &str, query: &str) -> Resp {
    if method != "GET" {
        return error_page(405, 900561, "The endpoint only accepts GET requests.", ctx);
    }
    if !sim.is_tenant(tenant) {
        return error_page(
            400,
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            ctx,
        );
    }
    let q = parse_pairs(query);
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(client_id) = get("client_id") else {
        return error_page(
            400,
            900144,
            "The request body must contain the following parameter: 'client_id'.",
            ctx,
        );
    };
    let Some(client) = sim.client(client_id) else {
        return error_page(
            400,
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                sim.cfg.tenant.display_name
            ),
            ctx,
        );
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return error_page(
            400,
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
            ctx,
        );
    };
    if !registered(client, redirect_uri) {
        return error_page(
            400,
            50011,
            &format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", client.client_id),
            ctx,
        );
    }
    let state = get("state").unwrap_or("");
    let back_with_error = |error: &str, code: u32, desc: &str| {
        redirect(
            redirect_uri,
            &[
                ("error", error),
                ("error_description", &format!("AADSTS{code}: {desc}")),
                ("state", state),
            ],
        )
    };
    if get("response_type") != Some("code") {
        return back_with_error(
            "unsupported_response_type",
            700054,
            "response_type 'code' is the only one this application may use.",
        );
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, _) => None,
        (Some(c), m) => {
            let method = m.unwrap_or("plain");
            if !matches!(method, "S256" | "plain") {
                return back_with_error(
                    "invalid_request",
                    50148,
                    "The code_challenge_method must be 'S256' or 'plain'.",
                );
            }
            if !(43..=128).contains(&c.len()) {
                return back_with_error(
                    "invalid_request",
                    501491,
                    "Invalid size of Code_Challenge parameter.",
                );
            }
            Some((c.to_string(), method.to_string()))
        }
    };
    let Some(scope) = get("scope") else {
        return back_with_error(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let Some(user) = client.signed_in_user.clone() else {
        return error_page(
            400,
            50058,
            "No signed-in user is configured for this client in the simulator's tenant file.",
            ctx,
        );
    };
    if client.deny_consent {
        return back_with_error(
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
    }
    let mut st = sim.lock();
    let code = format!(
        "1.SIMAC{}{}",
        URL_SAFE_NO_PAD.encode(st.rng.u128(..).to_be_bytes()),
        URL_SAFE_NO_PAD.encode(st.rng.u128(..).to_be_bytes())
    );
    st.signin.codes.insert(
        code.clone(),
        AuthCode {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            challenge,
            scopes: scope_names(scope),
            user,
            nonce: get("nonce").map(str::to_string),
            expires_at: sim.clock.now() + sim.cfg.limits.auth_code_lifetime_secs as f64,
            redeemed: false,
        },
    );
    st.counters.sign_ins += 1;
    drop(st);
    redirect(
        redirect_uri,
        &[
            ("code", &code),
            ("state", state),
            ("session_state", &new_guid()),
        ],
    )
}

fn discovery(sim: &Sim, ctx: &Ctx, tenant: &str) -> Resp {
    if !sim.is_tenant(tenant) {
        return aad_error(
            400,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            ctx,
        );
    }
    let tid = if tenant.eq_ignore_ascii_case("organizations") {
        "{tenantid}".to_string()
    } else {
        sim.cfg.tenant.tenant_id.clone()
    };
    let base = format!("{}/{tenant}", ctx.base);
    Resp::json(
        200,
        json!({
            "issuer": format!("https://login.microsoftonline.com/{tid}/v2.0"),
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "jwks_uri": format!("{}/{tenant}/discovery/v2.0/keys", ctx.base),
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }),
    )
}

fn invalid_grant(code: u32, description: &str, ctx: &Ctx) -> Resp {
    aad_error(400, "invalid_grant", code, description, ctx)
}

/// `grant_type=authorization_code`: the code of `/authorize`, its redirect URI and the PKCE
/// verifier.
pub(super) fn redeem_code<'a>(
    sim: &Sim,
    ctx: &Ctx,
    client: &ClientSeed,
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Resp {
    let Some(code) = get("code") else {
        return missing("code", ctx);
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return missing("redirect_uri", ctx);
    };
    let now = sim.clock.now();
    let rec = {
        let mut st = sim.lock();
        let Some(rec) = st.signin.codes.get_mut(code) else {
            return invalid_grant(
                9002313,
                "Invalid request. Request is malformed or invalid.",
                ctx,
            );
        };
        if !rec.client_id.eq_ignore_ascii_case(&client.client_id) {
            return invalid_grant(
                70000,
                "The provided authorization code was issued to another client.",
                ctx,
            );
        }
        if rec.redeemed {
            return invalid_grant(54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.", ctx);
        }
        if now > rec.expires_at {
            return invalid_grant(
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                ctx,
            );
        }
        if rec.redirect_uri != redirect_uri {
            return invalid_grant(
                50011,
                &format!("The redirect URI '{redirect_uri}' does not match the redirect URI the authorization code was issued for."),
                ctx,
            );
        }
        if let Some((challenge, method)) = &rec.challenge {
            let Some(verifier) = get("code_verifier") else {
                return invalid_grant(
                    50148,
                    "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
                    ctx,
                );
            };
            let computed = match method.as_str() {
                "S256" => URL_SAFE_NO_PAD.encode(ring::digest::digest(
                    &ring::digest::SHA256,
                    verifier.as_bytes(),
                )),
                _ => verifier.to_string(),
            };
            if &computed != challenge {
                return invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                    ctx,
                );
            }
        }
        rec.redeemed = true;
        rec.clone()
    };
    // The scope of the token request, if sent, else the one of the sign-in.
    let requested = get("scope")
        .map(scope_names)
        .unwrap_or_else(|| rec.scopes.clone());
    issue_admin(sim, client, &rec.user, &requested, rec.nonce.as_deref())
}

/// `grant_type=refresh_token`: a new access token (and refresh token) for the scopes asked, if
/// the client was consented them.
pub(super) fn refresh<'a>(
    sim: &Sim,
    ctx: &Ctx,
    client: &ClientSeed,
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Resp {
    let Some(rt) = get("refresh_token") else {
        return missing("refresh_token", ctx);
    };
    let Some(scope) = get("scope") else {
        return missing("scope", ctx);
    };
    let now = sim.clock.now();
    let user = {
        let mut st = sim.lock();
        let generation = st.token_generation;
        let Some(rec) = st.signin.refresh_tokens.get_mut(rt) else {
            return invalid_grant(
                9002313,
                "Invalid request. Request is malformed or invalid.",
                ctx,
            );
        };
        if !rec.client_id.eq_ignore_ascii_case(&client.client_id) {
            return invalid_grant(
                70000,
                "The refresh token was issued to a different client (application).",
                ctx,
            );
        }
        if rec.generation < generation {
            return invalid_grant(50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.", ctx);
        }
        if now > rec.expires_at {
            return invalid_grant(
                700082,
                "The refresh token has expired due to inactivity. The token was issued a long time ago and was inactive for longer than allowed.",
                ctx,
            );
        }
        rec.user.clone()
    };
    let requested = scope_names(scope);
    let wanted: Vec<&String> = requested
        .iter()
        .filter(|s| {
            !matches!(
                s.as_str(),
                "openid" | "profile" | "email" | "offline_access" | ".default"
            )
        })
        .collect();
    if let Some(s) = wanted
        .iter()
        .find(|s| !client.scopes.iter().any(|c| c.eq_ignore_ascii_case(s)))
    {
        return aad_error(
            400,
            "invalid_grant",
            65001,
            &format!("The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource. (Scope '{s}'.)", client.client_id, client.display_name),
            ctx,
        );
    }
    sim.lock().counters.refresh_grants += 1;
    let resp = issue_admin(sim, client, &user, &requested, None);
    // A refresh grant always answers with a new refresh token (Entra rotates them); the one
    // used stays valid until its own lifetime ends, as Entra documents.
    let mut resp = resp;
    if let super::wire::Body::Json(v) = &mut resp.body {
        if v.get("refresh_token").is_none() {
            v["refresh_token"] = json!(new_refresh_token(sim, client, &user));
        }
    }
    resp
}
