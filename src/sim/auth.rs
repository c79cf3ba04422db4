//! The Entra token endpoint (`/{tenant}/oauth2/v2.0/token`, `/devicecode`) and the check of
//! Graph's `Authorization: Bearer` header. The grants of an admin's browser sign-in
//! (`authorization_code`, `refresh_token`) are in `signin.rs`.
//!
//! Access tokens are well-formed but unsigned JWTs carrying the claims a client reads (`aud`,
//! `tid`, `appid`/`azp`, `roles` or `scp`, `exp`, `iat`, `app_displayname`, `upn`); the
//! simulator trusts only its own record of what it issued, so a forged token is refused.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use super::config::ClientSeed;
use super::signin;
use super::state::{DeviceCode, Ident, Sim, State};
use super::tokens::{aad_error, issue, issue_admin, missing, scope_names};
use super::wire::{
    decode_segment, graph_date, graph_error, header, parse_pairs, Ctx, Headers, Resp,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    Token,
    DeviceCode,
}

/// `/{tenant}/oauth2/v2.0/token` or `/devicecode`.
pub(super) fn match_path(path: &str) -> Option<(String, Endpoint)> {
    let p = path.strip_prefix('/')?;
    let (tenant, rest) = p.split_once('/')?;
    let ep = match rest {
        "oauth2/v2.0/token" => Endpoint::Token,
        "oauth2/v2.0/devicecode" => Endpoint::DeviceCode,
        _ => return None,
    };
    Some((decode_segment(tenant), ep))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn handle(
    sim: &Sim,
    ctx: &Ctx,
    method: &str,
    tenant: &str,
    ep: Endpoint,
    host: &str,
    path: &str,
    body: &[u8],
) -> Resp {
    let resp = handle_inner(sim, ctx, method, tenant, ep, host, body);
    let mut st = sim.lock();
    sim.log_request(&mut st, ctx, method, path, resp.status, None, None);
    resp
}

#[allow(clippy::too_many_arguments)]
fn handle_inner(
    sim: &Sim,
    ctx: &Ctx,
    method: &str,
    tenant: &str,
    ep: Endpoint,
    host: &str,
    body: &[u8],
) -> Resp {
    if method != "POST" {
        return aad_error(
            405,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
            ctx,
        );
    }
    if !sim.is_tenant(tenant) {
        return aad_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            ctx,
        );
    }
    let form = parse_pairs(&String::from_utf8_lossy(body));
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(client_id) = get("client_id") else {
        return missing("client_id", ctx);
    };
    let Some(client) = sim.client(client_id) else {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                sim.cfg.tenant.display_name
            ),
            ctx,
        );
    };
    if ep == Endpoint::DeviceCode {
        return device_code(sim, ctx, client, get("scope"));
    }
    let Some(grant) = get("grant_type") else {
        return missing("grant_type", ctx);
    };
    match grant {
        "client_credentials" => {
            let Some(scope) = get("scope") else {
                return missing("scope", ctx);
            };
            if !scope.trim().ends_with("/.default") {
                return aad_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                    ctx,
                );
            }
            if let Some(secret) = get("client_secret") {
                if client.secret.as_deref() != Some(secret) {
                    return aad_error(
                        401,
                        "invalid_client",
                        7000215,
                        &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", client.client_id),
                        ctx,
                    );
                }
            } else if let Some(assertion) = get("client_assertion") {
                if get("client_assertion_type") != Some(JWT_BEARER) {
                    return aad_error(
                        400,
                        "invalid_request",
                        50027,
                        &format!("Invalid client_assertion_type: expected '{JWT_BEARER}'."),
                        ctx,
                    );
                }
                let mut st = sim.lock();
                if let Err((code, msg)) = verify_assertion(&mut st, sim, client, assertion, host) {
                    return aad_error(401, "invalid_client", code, &msg, ctx);
                }
            } else {
                return aad_error(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                    ctx,
                );
            }
            let ident = Ident {
                client_id: client.client_id.clone(),
                app_name: client.display_name.clone(),
                roles: client.roles.clone(),
                scp: vec![],
                user: None,
            };
            issue(sim, ident, None)
        }
        DEVICE_GRANT => redeem_device_code(sim, ctx, client, get("device_code")),
        "authorization_code" => signin::redeem_code(sim, ctx, client, &get),
        "refresh_token" => signin::refresh(sim, ctx, client, &get),
        other => aad_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
            ctx,
        ),
    }
}

fn device_code(sim: &Sim, ctx: &Ctx, client: &ClientSeed, scope: Option<&str>) -> Resp {
    if !client.public_client {
        return aad_error(
            400,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'. (The app is not a public client: the device code flow needs 'Allow public client flows'.)",
            ctx,
        );
    }
    let Some(scope) = scope else {
        return missing("scope", ctx);
    };
    let scopes = scope_names(scope);
    let mut st = sim.lock();
    let device_code = format!(
        "SIMDC{}",
        URL_SAFE_NO_PAD.encode(st.rng.u128(..).to_be_bytes())
    );
    let user_code: String = (0..9)
        .map(|_| {
            let c = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            c[st.rng.usize(..c.len())] as char
        })
        .collect();
    let lim = &sim.cfg.limits;
    st.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            client_id: client.client_id.clone(),
            user_code: user_code.clone(),
            scopes,
            expires_at: sim.clock.now() + lim.device_code_lifetime_secs as f64,
            polls: 0,
            approved: false,
            redeemed: false,
        },
    );
    let expires_in = (sim
        .clock
        .to_real(lim.device_code_lifetime_secs as f64)
        .ceil() as u64)
        .max(1);
    let interval = (sim
        .clock
        .to_real(lim.device_code_interval_secs as f64)
        .round() as u64)
        .max(1);
    let uri = "https://microsoft.com/devicelogin";
    Resp::json(
        200,
        json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": expires_in,
            "interval": interval,
            "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
        }),
    )
}

fn redeem_device_code(sim: &Sim, ctx: &Ctx, client: &ClientSeed, code: Option<&str>) -> Resp {
    let Some(code) = code else {
        return missing("device_code", ctx);
    };
    let now = sim.clock.now();
    let auto = sim.cfg.limits.device_code_auto_approve_polls;
    let scopes = {
        let mut st = sim.lock();
        let Some(dc) = st.device_codes.get_mut(code) else {
            return aad_error(
                400,
                "invalid_grant",
                70000,
                "The provided value for the input parameter 'device_code' is not valid.",
                ctx,
            );
        };
        if !dc.client_id.eq_ignore_ascii_case(&client.client_id) {
            return aad_error(
                400,
                "invalid_grant",
                70000,
                "The provided value for the input parameter 'device_code' is not valid.",
                ctx,
            );
        }
        if now > dc.expires_at {
            return aad_error(
                400,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
                ctx,
            );
        }
        if dc.redeemed {
            return aad_error(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                ctx,
            );
        }
        dc.polls += 1;
        if !dc.approved && auto > 0 && dc.polls > auto {
            dc.approved = true;
        }
        if !dc.approved {
            return aad_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ctx,
            );
        }
        dc.redeemed = true;
        dc.scopes.clone()
    };
    let Some(user) = client.signed_in_user.clone() else {
        return aad_error(
            400,
            "invalid_grant",
            50058,
            "No signed-in user is configured for this client in the simulator's tenant file.",
            ctx,
        );
    };
    sim.lock().counters.sign_ins += 1;
    issue_admin(sim, client, &user, &scopes, None)
}

/// Approves pending device codes (all, or the one with `user_code`). Returns how many.
pub(super) fn approve(st: &mut State, user_code: Option<&str>) -> usize {
    let mut n = 0;
    for dc in st.device_codes.values_mut() {
        if !dc.approved
            && !dc.redeemed
            && user_code.is_none_or(|c| c.eq_ignore_ascii_case(&dc.user_code))
        {
            dc.approved = true;
            n += 1;
        }
    }
    n
}

fn unauthorized(ctx: &Ctx, message: &str) -> Resp {
    graph_error(ctx, 401, "InvalidAuthenticationToken", message).with_header(
        "WWW-Authenticate",
        format!(
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\", error=\"invalid_token\", error_description=\"{message}\""
        ),
    )
}

/// Checks `Authorization: Bearer …` against the tokens issued.
pub(super) fn bearer(sim: &Sim, ctx: &Ctx, headers: &Headers) -> Result<Ident, Resp> {
    let Some(auth) = header(headers, "authorization") else {
        return Err(unauthorized(ctx, "Access token is empty."));
    };
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(unauthorized(
            ctx,
            "Access token validation failure: the Authorization header is not 'Bearer <token>'.",
        )),
    };
    if token.split('.').count() != 3 {
        return Err(unauthorized(
            ctx,
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ));
    }
    let st = sim.lock();
    let Some(rec) = st.tokens.get(token) else {
        return Err(unauthorized(
            ctx,
            "Access token validation failure. Invalid audience.",
        ));
    };
    if rec.generation < st.token_generation {
        return Err(unauthorized(
            ctx,
            "Access token validation failure: the token has been revoked.",
        ));
    }
    if sim.clock.now() >= rec.expires_at {
        return Err(unauthorized(
            ctx,
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(rec.ident.clone())
}

// ---- client assertions (certificate credentials) ----

/// Reads one DER TLV: (tag, content, whole TLV, rest).
#[allow(clippy::type_complexity)]
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[hdr..end], &b[..end], &b[end..]))
}

/// SubjectPublicKeyInfo → PKCS#1 RSAPublicKey.
fn spki_to_pkcs1(spki: &[u8]) -> Option<Vec<u8>> {
    let (tag, content, _, _) = der(spki)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, _, rest) = der(content)?; // AlgorithmIdentifier
    let (tag, bits, _, _) = der(rest)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return None;
    }
    Some(bits[1..].to_vec())
}

/// Certificate → SubjectPublicKeyInfo.
fn cert_spki(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, cert_c, _, _) = der(cert)?;
    let (_, tbs, _, _) = der(cert_c)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der(rest)?.3; // version
    }
    for _ in 0..5 {
        rest = der(rest)?.3; // serial, signature, issuer, validity, subject
    }
    Some(der(rest)?.2.to_vec())
}

/// PEM blocks: (label, DER).
fn pem_blocks(pem: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(end_label) = after.find("-----") else {
            break;
        };
        let label = after[..end_label].to_string();
        let body = &after[end_label + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body.find(&end_marker) else {
            break;
        };
        let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = STANDARD.decode(b64) {
            out.push((label, der));
        }
        rest = &body[end + end_marker.len()..];
    }
    out
}

/// The client's registered key: PKCS#1 public key, and the certificate DER if any.
fn client_key(client: &ClientSeed) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if let Some(pem) = &client.certificate {
        let (_, cert) = pem_blocks(pem)
            .into_iter()
            .find(|(l, _)| l == "CERTIFICATE")?;
        let pk = spki_to_pkcs1(&cert_spki(&cert)?)?;
        return Some((pk, Some(cert)));
    }
    let pem = client.public_key.as_ref()?;
    let (label, der) = pem_blocks(pem).into_iter().next()?;
    match label.as_str() {
        "PUBLIC KEY" => Some((spki_to_pkcs1(&der)?, None)),
        "RSA PUBLIC KEY" => Some((der, None)),
        _ => None,
    }
}

fn thumb(alg: &'static ring::digest::Algorithm, der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, der).as_ref())
}

fn b64_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn aud_ok(sim: &Sim, aud: &str, host: &str) -> bool {
    let rest = aud
        .strip_prefix("https://")
        .or_else(|| aud.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let Some((h, path)) = rest.split_once('/') else {
        return false;
    };
    let host_ok = h.eq_ignore_ascii_case(host)
        || [
            "login.microsoftonline.com",
            "login.microsoftonline.us",
            "login.chinacloudapi.cn",
        ]
        .iter()
        .any(|x| h.eq_ignore_ascii_case(x));
    let Some((t, p)) = path.split_once('/') else {
        return false;
    };
    host_ok && p == "oauth2/v2.0/token" && sim.is_tenant(t)
}

fn verify_assertion(
    st: &mut State,
    sim: &Sim,
    client: &ClientSeed,
    assertion: &str,
    host: &str,
) -> Result<(), (u32, String)> {
    let malformed = |why: &str| {
        (
            50027u32,
            format!("JWT token is invalid or malformed: {why}."),
        )
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(malformed("not three dot-separated parts"));
    }
    let header = b64_json(parts[0]).ok_or_else(|| malformed("header"))?;
    let claims = b64_json(parts[1]).ok_or_else(|| malformed("payload"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2].trim_end_matches('='))
        .map_err(|_| malformed("signature"))?;
    let Some((pkcs1, cert)) = client_key(client) else {
        return Err((
            700027,
            format!(
                "Client assertion failed signature validation. No certificate is registered for app '{}'.",
                client.client_id
            ),
        ));
    };
    let alg = header["alg"].as_str().unwrap_or("");
    let verify_alg: &'static dyn ring::signature::VerificationAlgorithm = match alg {
        "PS256" => &ring::signature::RSA_PSS_2048_8192_SHA256,
        "RS256" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        other => {
            return Err((
                5002738,
                format!(
                    "Invalid JWT: the algorithm '{other}' is not supported; use PS256 or RS256."
                ),
            ))
        }
    };
    let x5t_s256 = header["x5t#S256"].as_str();
    let x5t = header["x5t"].as_str();
    if alg == "PS256" && x5t_s256.is_none() && x5t.is_none() {
        return Err(malformed("PS256 needs the 'x5t#S256' header"));
    }
    if alg == "RS256" && x5t.is_none() && x5t_s256.is_none() {
        return Err(malformed("RS256 needs the 'x5t' header"));
    }
    if let Some(cert) = &cert {
        let matches = x5t_s256.is_some_and(|t| t == thumb(&ring::digest::SHA256, cert))
            || x5t.is_some_and(|t| t == thumb(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert));
        if !matches {
            return Err((
                700027,
                format!(
                    "Client assertion failed signature validation. (Reason - The key was not found., Thumbprint of key used by client: '{}'.)",
                    x5t_s256.or(x5t).unwrap_or("")
                ),
            ));
        }
    }
    let signed = &assertion[..parts[0].len() + 1 + parts[1].len()];
    ring::signature::UnparsedPublicKey::new(verify_alg, &pkcs1)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| {
            (
                700027,
                "Client assertion failed signature validation.".to_string(),
            )
        })?;
    let aud = claims["aud"].as_str().unwrap_or("");
    if !aud_ok(sim, aud, host) {
        return Err((
            700212,
            format!("The client assertion audience '{aud}' is not this token endpoint."),
        ));
    }
    let cid = &client.client_id;
    if !claims["iss"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case(cid))
        || !claims["sub"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(cid))
    {
        return Err((
            700023,
            "Client assertion: 'iss' and 'sub' must both be the client id.".to_string(),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    const SKEW: i64 = 300;
    let Some(exp) = claims["exp"].as_i64() else {
        return Err(malformed("no 'exp'"));
    };
    let nbf = claims["nbf"].as_i64().unwrap_or(now);
    if exp + SKEW < now || nbf > now + SKEW {
        return Err((
            700024,
            format!("Client assertion is not within its valid time range. Current time: {}, assertion valid from {nbf} to {exp}.", graph_date()),
        ));
    }
    if exp > now + 600 + 60 {
        return Err((
            700024,
            "Client assertion lifetime is too long: 'exp' may be at most 10 minutes ahead."
                .to_string(),
        ));
    }
    let Some(jti) = claims["jti"].as_str().filter(|j| !j.is_empty()) else {
        return Err(malformed("no 'jti'"));
    };
    if !st.seen_jti.insert(format!("{cid}/{jti}")) {
        return Err((
            700025,
            "Client assertion replay: this 'jti' has been used before.".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sample_certificate_key() {
        let cfg = crate::sim::config::SimConfig::sample();
        let c = cfg
            .tenant
            .clients
            .iter()
            .find(|c| c.certificate.is_some())
            .unwrap();
        let (pk, cert) = client_key(c).unwrap();
        assert!(cert.is_some());
        assert_eq!(pk[0], 0x30);
        // The same key as SPKI ("PUBLIC KEY") and PKCS#1 ("RSA PUBLIC KEY") PEM.
        let spki = cfg
            .tenant
            .clients
            .iter()
            .find(|c| c.public_key.is_some())
            .unwrap();
        assert_eq!(client_key(spki).unwrap().0, pk);
        let mut pkcs1 = spki.clone();
        pkcs1.public_key = Some(PKCS1_PEM.to_string());
        assert_eq!(client_key(&pkcs1).unwrap().0, pk);
    }

    const PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEApz1U4MGespoNDvAM8KrBnPI6sNBvDNQJRPbPCGVkqisAgPc43sSX\nR905TLcNeEYINlRQ/spSnDKmEKrnslb631Flmkke/QaJJXUTGRkCxEZ7Tf27vhVY\nxk1vT/EOCJ3UDgYawlDokc2vP+Zb2KrAMkpM6jwBtT5RwxWn3G0gxdNnBAJlz4xV\nqLPIgpapEQWQH5M9NQkN7ktaTCRmbKj6Syji1X+Gs8xRB5JpD21bp6pBx709nbxz\nt93mIku6MmEkmnMv0BuW0k9QmbJFZjfcEGWJ9SpfsFAqldPZMTqDoH/kplJ+1RPv\nUC++3+9OdMm8q5h9Vr5uul3zR9EeYa7KQwIDAQAB\n-----END RSA PUBLIC KEY-----\n";
}
