//! A small scripted Graph + token endpoint on loopback, for the Graph client's tests of exact
//! edge cases (lost answers, throttle waves, 401 mid-run, token endpoint errors) that need a
//! precise script. Whole-run behaviour is tested against the real simulator.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

pub(crate) const TENANT: &str = "fake-tenant";
pub(crate) const CLIENT: &str = "fake-client";
pub(crate) const SECRET: &str = "fake-secret-value-123";

#[derive(Default)]
pub(crate) struct Script {
    /// Roles put in app tokens.
    pub roles: Vec<String>,
    /// Token lifetime in seconds.
    pub lifetime: f64,
    /// The public key (PKCS#1 DER) and x5t#S256 for certificate sign-in.
    pub cert: Option<(Vec<u8>, String)>,
    /// Device code: answers before the token (e.g. ["authorization_pending", "slow_down"]).
    pub device_script: Vec<String>,
    /// Users: id → (upn, mail, state).
    pub users: HashMap<String, (String, String, String)>,
    /// Once `throttle_after` Graph items were served, throttle every item for `throttle_for`.
    pub throttle_after: Option<u64>,
    pub throttle_for: f64,
    /// Item ids (user ids) answered 429 on their first try.
    pub throttle_once: HashSet<String>,
    /// Item ids answered with this status on the first `n` tries.
    pub fail: HashMap<String, (u16, u32, bool)>,
    /// PATCH: apply, then never answer (the client times out).
    pub hang_writes: bool,
    /// $batch: answer nothing (hang) after applying.
    pub hang_batches: bool,
    /// The registration report is available (Entra ID P1/P2); else 403 non-premium.
    pub premium: bool,
    /// `/authentication/methods` answers 403.
    pub methods_forbidden: bool,
}

#[derive(Default)]
pub(crate) struct Log {
    pub tokens_issued: u64,
    pub token_requests: u64,
    pub http: u64,
    pub batches: u64,
    pub items: u64,
    pub writes_applied: u64,
    pub throttled: u64,
    /// Items that arrived while the throttle window was closed (after its first answer).
    pub during_throttle: u64,
    pub last_assertion: Option<Value>,
    pub user_agent: Option<String>,
    pub client_request_ids: HashSet<String>,
    pub unauthorized: u64,
    pub tried: HashMap<String, u32>,
    pub throttle_until: Option<Instant>,
    pub report_requests: u64,
}

pub(crate) struct Fake {
    pub script: Mutex<Script>,
    pub log: Mutex<Log>,
    valid: Mutex<HashMap<String, Instant>>,
    addr: Mutex<Option<SocketAddr>>,
}

impl Fake {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr.lock().unwrap().unwrap())
    }
    /// Every token issued so far is refused from now on (as after a revocation).
    pub(crate) fn revoke_tokens(&self) {
        self.valid.lock().unwrap().clear();
    }
    pub(crate) fn state_of(&self, id: &str) -> String {
        self.script.lock().unwrap().users[id].2.clone()
    }
}

pub(crate) fn users(n: usize) -> HashMap<String, (String, String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("00000000-0000-4000-8000-{i:012}"),
                (
                    format!("user{i}@contoso.com"),
                    format!("u{i}.mail@contoso.com"),
                    "disabled".to_string(),
                ),
            )
        })
        .collect()
}

pub(crate) fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

pub(crate) async fn start(script: Script) -> Arc<Fake> {
    let fake = Arc::new(Fake {
        script: Mutex::new(Script {
            lifetime: if script.lifetime > 0.0 {
                script.lifetime
            } else {
                3599.0
            },
            ..script
        }),
        log: Mutex::new(Log::default()),
        valid: Mutex::new(HashMap::new()),
        addr: Mutex::new(None),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *fake.addr.lock().unwrap() = Some(listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

fn jwt(claims: Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn reply(status: u16, headers: &[(&str, String)], body: Value) -> Response {
    let mut r = if body.is_null() {
        StatusCode::from_u16(status).unwrap().into_response()
    } else {
        (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
    };
    for (k, v) in headers {
        r.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

fn graph_error(code: &str, msg: &str) -> Value {
    json!({"error":{"code":code,"message":msg,"innerError":{"request-id":"body-rid","date":"2025-01-01T00:00:00"}}})
}

async fn handle(
    State(f): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/v2.0/devicecode") {
        return token_endpoint(&f, &path, &body);
    }
    {
        let mut log = f.log.lock().unwrap();
        log.http += 1;
        log.user_agent = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(c) = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
        {
            log.client_request_ids.insert(c.to_string());
        }
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let tok = auth.strip_prefix("Bearer ").unwrap_or("");
    let ok = f
        .valid
        .lock()
        .unwrap()
        .get(tok)
        .is_some_and(|exp| Instant::now() < *exp);
    if !ok {
        f.log.lock().unwrap().unauthorized += 1;
        return reply(
            401,
            &[("request-id", "rid-401".into())],
            graph_error(
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            ),
        );
    }
    let (version, rest) = match path.strip_prefix("/beta") {
        Some(r) => ("beta", r.to_string()),
        None => (
            "v1.0",
            path.strip_prefix("/v1.0").unwrap_or(&path).to_string(),
        ),
    };
    if rest == "/$batch" && method == Method::POST {
        f.log.lock().unwrap().batches += 1;
        let b: Value = serde_json::from_slice(&body).unwrap();
        let mut out = Vec::new();
        let reqs = b["requests"].as_array().unwrap().clone();
        assert!(reqs.len() <= 20, "batch of {}", reqs.len());
        for r in reqs {
            let m: Method = r["method"].as_str().unwrap().parse().unwrap();
            let url = r["url"].as_str().unwrap().to_string();
            let (p, q) = url
                .split_once('?')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .unwrap_or((url.clone(), String::new()));
            let (status, hs, body) = item(&f, version, &m, &p, &q, &r["body"]);
            let mut h = serde_json::Map::new();
            for (k, v) in hs {
                h.insert(k.to_string(), Value::String(v));
            }
            h.insert(
                "request-id".into(),
                Value::String(format!("item-rid-{}", r["id"].as_str().unwrap())),
            );
            out.push(json!({"id": r["id"], "status": status, "headers": h, "body": body}));
        }
        out.reverse(); // any order
        if f.script.lock().unwrap().hang_batches {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        return reply(
            200,
            &[("request-id", "outer-rid".into())],
            json!({"responses": out}),
        );
    }
    let pb: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, hs, b) = item(&f, version, &method, &rest, uri.query().unwrap_or(""), &pb);
    if method == Method::PATCH && status == 204 && f.script.lock().unwrap().hang_writes {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let mut hs: Vec<(&str, String)> = hs;
    hs.push(("request-id", "single-rid".into()));
    reply(status, &hs, b)
}

type Answer = (u16, Vec<(&'static str, String)>, Value);

fn item(
    f: &Fake,
    _version: &str,
    method: &Method,
    path: &str,
    query: &str,
    body: &Value,
) -> Answer {
    let mut s = f.script.lock().unwrap();
    let mut log = f.log.lock().unwrap();
    log.items += 1;
    let now = Instant::now();
    if let Some(until) = log.throttle_until {
        if now < until {
            log.during_throttle += 1;
            log.throttled += 1;
            let left = (until - now).as_secs_f64();
            return (
                429,
                vec![("Retry-After", format!("{left:.3}"))],
                graph_error("TooManyRequests", "Please retry again later."),
            );
        }
    }
    if s.throttle_after.is_some_and(|n| log.items > n) {
        s.throttle_after = None;
        log.throttle_until = Some(now + Duration::from_secs_f64(s.throttle_for));
        log.throttled += 1;
        return (
            429,
            vec![("Retry-After", format!("{:.3}", s.throttle_for))],
            graph_error("TooManyRequests", "Please retry again later."),
        );
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let key = seg.get(1).map(|s| s.to_string()).unwrap_or_default();
    let tries = {
        let t = log.tried.entry(format!("{method} {key}")).or_insert(0);
        *t += 1;
        *t
    };
    if tries == 1 && s.throttle_once.contains(&key) {
        log.throttled += 1;
        return (
            429,
            vec![("Retry-After", "0.2".into())],
            graph_error("TooManyRequests", "Please retry again later."),
        );
    }
    if let Some(&(status, n, with_ra)) = s.fail.get(&key) {
        if tries <= n {
            let h = if with_ra {
                vec![("Retry-After", "0.05".to_string())]
            } else {
                vec![]
            };
            // A 5xx on a write here is answered before anything is applied.
            return (
                status,
                h,
                graph_error("serviceNotAvailable", "Service unavailable"),
            );
        }
    }
    let find = |k: &str| -> Option<String> {
        let k = percent_encoding::percent_decode_str(k)
            .decode_utf8_lossy()
            .to_lowercase();
        s.users
            .iter()
            .find(|(id, u)| **id == k || u.0 == k)
            .map(|(id, _)| id.clone())
    };
    let user_json = |id: &str, u: &(String, String, String)| json!({"id": id, "userPrincipalName": u.0, "mail": u.1, "otherMails": [], "proxyAddresses": [format!("SMTP:{}", u.1)], "accountEnabled": true, "userType": "Member", "displayName": u.0});
    let registered = |id: &str| id.ends_with(['0', '2', '4', '6', '8']);
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["reports", "authenticationMethods", "userRegistrationDetails"]) => {
            log.report_requests += 1;
            if !s.premium {
                return (
                    403,
                    vec![],
                    graph_error(
                        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                        "Tenant does not have a SKU required for this feature",
                    ),
                );
            }
            let q = percent_encoding::percent_decode_str(query)
                .decode_utf8_lossy()
                .to_string();
            let rows: Vec<Value> = s
                .users
                .keys()
                .filter(|id| q.contains(id.as_str()))
                .map(|id| json!({"id": id, "isMfaRegistered": registered(id), "methodsRegistered": []}))
                .collect();
            (200, vec![], json!({"value": rows}))
        }
        ("GET", ["users", k, "authentication", "methods"]) => {
            if s.methods_forbidden {
                return (
                    403,
                    vec![],
                    graph_error("accessDenied", "Request Authorization failed"),
                );
            }
            let Some(id) = find(k) else {
                return (
                    404,
                    vec![],
                    graph_error("Request_ResourceNotFound", "Resource does not exist"),
                );
            };
            let mut v = vec![
                json!({"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "p"}),
            ];
            if registered(&id) {
                v.push(json!({"@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod", "id": "m"}));
            }
            (200, vec![], json!({"value": v}))
        }
        ("GET", ["users", "$count"]) => (200, vec![], json!(s.users.len())),
        ("GET", ["users"]) if query.contains("top=999") => {
            // Pages of 2 (Graph: 999), linked by an absolute @odata.nextLink.
            let mut ids: Vec<&String> = s.users.keys().collect();
            ids.sort();
            let skip: usize = query
                .split("skip=")
                .nth(1)
                .and_then(|x| x.split('&').next())
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = ids
                .iter()
                .skip(skip)
                .take(2)
                .map(|id| user_json(id, &s.users[*id]))
                .collect();
            let mut b = json!({"value": page});
            if skip + 2 < ids.len() {
                b["@odata.nextLink"] =
                    json!(format!("{}/v1.0/users?$top=999&skip={}", f.url(), skip + 2));
            }
            (200, vec![], b)
        }
        ("GET", ["users"]) => {
            let q = percent_encoding::percent_decode_str(query)
                .decode_utf8_lossy()
                .to_string();
            let vals: Vec<Value> = s
                .users
                .iter()
                .filter(|(_, u)| {
                    if let Some(x) = q.split("mail eq '").nth(1) {
                        let v = x.split('\'').next().unwrap();
                        return u.1 == v || (v.starts_with("shared@") && u.1.starts_with('u'));
                    }
                    if q.contains("$filter") {
                        return false;
                    }
                    true
                })
                .map(|(id, u)| user_json(id, u))
                .take(if q.contains("$filter") { usize::MAX } else { 1 })
                .collect();
            (200, vec![], json!({"value": vals}))
        }
        ("GET", ["users", k]) => match find(k) {
            Some(id) => (200, vec![], user_json(&id, &s.users[&id])),
            None => (
                404,
                vec![],
                graph_error("Request_ResourceNotFound", "Resource does not exist"),
            ),
        },
        ("GET", ["users", k, "authentication", "requirements"]) => match find(k) {
            Some(id) => (200, vec![], json!({"perUserMfaState": s.users[&id].2})),
            None => (
                404,
                vec![],
                graph_error("Request_ResourceNotFound", "Resource does not exist"),
            ),
        },
        ("PATCH", ["users", k, "authentication", "requirements"]) => match find(k) {
            Some(id) => {
                if !s
                    .roles
                    .iter()
                    .any(|r| r == "Policy.ReadWrite.AuthenticationMethod")
                {
                    return (
                        403,
                        vec![],
                        graph_error("accessDenied", "Request Authorization failed"),
                    );
                }
                s.users.get_mut(&id).unwrap().2 =
                    body["perUserMfaState"].as_str().unwrap().to_string();
                log.writes_applied += 1;
                (204, vec![], Value::Null)
            }
            None => (
                404,
                vec![],
                graph_error("Request_ResourceNotFound", "Resource does not exist"),
            ),
        },
        _ => (
            400,
            vec![],
            graph_error("BadRequest", &format!("no route {method} {path}")),
        ),
    }
}

fn token_endpoint(f: &Fake, path: &str, body: &[u8]) -> Response {
    let form: HashMap<String, String> = url_form(body);
    let mut log = f.log.lock().unwrap();
    log.token_requests += 1;
    let mut s = f.script.lock().unwrap();
    let bad = |e: &str, d: &str| {
        reply(
            400,
            &[],
            json!({"error": e, "error_description": d, "error_codes": [7000215]}),
        )
    };
    if !path.starts_with(&format!("/{TENANT}/")) {
        return bad("invalid_request", "AADSTS90002: Tenant not found.");
    }
    if path.ends_with("/devicecode") {
        return reply(
            200,
            &[],
            json!({"device_code": "dev-code-1", "user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin",
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate.",
            "interval": 0.02, "expires_in": 900}),
        );
    }
    let mut delegated = false;
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            if form.get("client_id").map(String::as_str) != Some(CLIENT) {
                return bad(
                    "unauthorized_client",
                    "AADSTS700016: Application not found in the directory.",
                );
            }
            if let Some(sec) = form.get("client_secret") {
                if sec != SECRET {
                    return bad(
                        "invalid_client",
                        "AADSTS7000215: Invalid client secret provided.",
                    );
                }
            } else if let Some(a) = form.get("client_assertion") {
                let Some((key, x5t)) = &s.cert else {
                    return bad("invalid_client", "no certificate registered");
                };
                let parts: Vec<&str> = a.split('.').collect();
                let h: Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
                let c: Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
                let pk = ring::signature::UnparsedPublicKey::new(
                    &ring::signature::RSA_PSS_2048_8192_SHA256,
                    key.clone(),
                );
                let signed = format!("{}.{}", parts[0], parts[1]);
                if h["x5t#S256"] != *x5t
                    || pk
                        .verify(
                            signed.as_bytes(),
                            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
                        )
                        .is_err()
                {
                    return bad(
                        "invalid_client",
                        "AADSTS700027: Client assertion contains an invalid signature.",
                    );
                }
                log.last_assertion = Some(c);
            } else {
                return bad("invalid_request", "no credential");
            }
        }
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            if !s.device_script.is_empty() {
                let e = s.device_script.remove(0);
                return bad(&e, "AADSTS70016: pending");
            }
            delegated = true;
        }
        Some("refresh_token") => delegated = true,
        _ => return bad("unsupported_grant_type", "?"),
    }
    log.tokens_issued += 1;
    let n = log.tokens_issued;
    let claims = if delegated {
        json!({"tid": TENANT, "azp": CLIENT, "scp": "Policy.ReadWrite.AuthenticationMethod User.Read.All", "upn": "admin@contoso.com", "n": n})
    } else {
        json!({"tid": TENANT, "appid": CLIENT, "app_displayname": "Fake app", "roles": s.roles, "n": n})
    };
    let t = jwt(claims);
    f.valid.lock().unwrap().insert(
        t.clone(),
        Instant::now() + Duration::from_secs_f64(s.lifetime),
    );
    let mut r = json!({"token_type": "Bearer", "expires_in": s.lifetime, "access_token": t});
    if delegated {
        r["refresh_token"] = json!("refresh-token-value");
    }
    reply(200, &[], r)
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let d = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .to_string()
            };
            (d(k), d(v))
        })
        .collect()
}
