//! The two managed identity endpoints an Azure resource has, as the Azure SDKs call them:
//!
//! - the instance metadata service (Azure VMs): `GET /metadata/identity/oauth2/token?
//!   api-version=2018-02-01&resource=…[&client_id=…]` with header `Metadata: true`;
//! - App Service, Functions and Automation (`IDENTITY_ENDPOINT`, here `/msi/token`):
//!   `GET ?resource=…&api-version=2019-08-01[&client_id=…]` with header `X-IDENTITY-HEADER`
//!   holding `IDENTITY_HEADER`.
//!
//! Without a client id the system-assigned identity answers (or the only identity there is).
//! The answer holds `access_token`, `expires_on` (epoch seconds, a string), `resource`,
//! `token_type`; the token is an app-only token with the identity's application permissions.

use serde_json::json;

use super::config::ManagedIdentitySeed;
use super::state::{Ident, Sim};
use super::tokens::mint;
use super::wire::{header, parse_pairs, Ctx, Headers, Resp};

/// Which endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    Imds,
    AppService,
}

pub(super) const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
pub(super) const APP_SERVICE_PATH: &str = "/msi/token";

pub(super) fn match_path(path: &str) -> Option<Endpoint> {
    match path {
        IMDS_PATH => Some(Endpoint::Imds),
        APP_SERVICE_PATH => Some(Endpoint::AppService),
        _ => None,
    }
}

pub(super) fn handle(
    sim: &Sim,
    ctx: &Ctx,
    method: &str,
    ep: Endpoint,
    path: &str,
    query: Option<&str>,
    headers: &Headers,
) -> Resp {
    let resp = answer(sim, method, ep, query.unwrap_or(""), headers);
    let mut st = sim.lock();
    sim.log_request(&mut st, ctx, method, path, resp.status, None, None);
    resp
}

fn imds_error(status: u16, error: &str, description: &str) -> Resp {
    Resp::json(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn app_service_error(status: u16, message: &str) -> Resp {
    Resp::json(status, json!({"statusCode": status, "message": message}))
}

fn answer(sim: &Sim, method: &str, ep: Endpoint, query: &str, headers: &Headers) -> Resp {
    let err = |status: u16, error: &str, desc: &str| match ep {
        Endpoint::Imds => imds_error(status, error, desc),
        Endpoint::AppService => app_service_error(status, desc),
    };
    if method != "GET" {
        return err(405, "invalid_request", "Only GET is allowed.");
    }
    match ep {
        Endpoint::Imds => {
            if header(headers, "metadata").map(str::to_ascii_lowercase) != Some("true".into()) {
                return imds_error(
                    400,
                    "invalid_request",
                    "Required metadata header not specified",
                );
            }
        }
        Endpoint::AppService => {
            if header(headers, "x-identity-header") != Some(sim.cfg.tenant.identity_header.as_str())
            {
                return app_service_error(
                    401,
                    "The X-IDENTITY-HEADER is missing or does not match the value of IDENTITY_HEADER.",
                );
            }
        }
    }
    let q = parse_pairs(query);
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let want_version = match ep {
        Endpoint::Imds => "2018-02-01",
        Endpoint::AppService => "2019-08-01",
    };
    match get("api-version") {
        None => {
            return err(
                400,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            )
        }
        Some(v) if v != want_version && ep == Endpoint::AppService => {
            return err(400, "invalid_request", "Unsupported api-version.")
        }
        _ => {}
    }
    let Some(resource) = get("resource") else {
        return err(
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let ids = &sim.cfg.tenant.managed_identities;
    let chosen: Option<&ManagedIdentitySeed> = match get("client_id") {
        Some(c) => ids
            .iter()
            .find(|m| !m.system_assigned && m.client_id.eq_ignore_ascii_case(c))
            .or_else(|| ids.iter().find(|m| m.client_id.eq_ignore_ascii_case(c))),
        None => ids
            .iter()
            .find(|m| m.system_assigned)
            .or(if ids.len() == 1 { ids.first() } else { None }),
    };
    let Some(mi) = chosen else {
        if get("client_id").is_none() && ids.len() > 1 {
            return err(
                400,
                "invalid_request",
                "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
            );
        }
        return err(400, "invalid_request", "Identity not found");
    };
    let ident = Ident {
        client_id: mi.client_id.clone(),
        app_name: mi.display_name.clone(),
        roles: mi.roles.clone(),
        scp: vec![],
        user: None,
    };
    let (token, expires_in) = mint(sim, ident);
    sim.lock().counters.managed_identity_tokens += 1;
    let now = chrono::Utc::now().timestamp();
    let expires_on = (now + expires_in as i64).to_string();
    let body = match ep {
        Endpoint::Imds => json!({
            "access_token": token,
            "client_id": mi.client_id,
            "expires_in": expires_in.to_string(),
            "expires_on": expires_on,
            "ext_expires_in": expires_in.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
        Endpoint::AppService => json!({
            "access_token": token,
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
            "client_id": mi.client_id,
        }),
    };
    Resp::json(200, body)
}
