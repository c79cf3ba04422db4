//! The operations: users, per-user MFA state, registration.

use std::collections::HashMap;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::pacer::Cost;
use super::transport::{exec, Inner, Mode, Req, Resp};
use super::{CallError, ErrorKind, Lookup};
use crate::model::{MfaState, User, UserRef};

pub const USER_SELECT: &str =
    "id,userPrincipalName,displayName,mail,otherMails,proxyAddresses,userType,accountEnabled";

/// Characters kept as they are in a path segment.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');
/// Characters kept as they are in a query value.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b':')
    .remove(b'/')
    .remove(b',');

/// `/users/{upn}` path for a UPN: `#` as `%23`, a `$`-leading UPN as `/users('$…')`.
pub fn user_path(upn_or_id: &str) -> String {
    if upn_or_id.starts_with('$') {
        const QUOTED: &AsciiSet = &PATH.remove(b'$').remove(b'\'');
        format!(
            "/users('{}')",
            utf8_percent_encode(&upn_or_id.replace('\'', "''"), QUOTED)
        )
    } else {
        format!("/users/{}", utf8_percent_encode(upn_or_id, PATH))
    }
}

/// A string literal for `$filter`: single quotes doubled.
pub(super) fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(super) fn q(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn parse_user(v: &Value) -> Option<User> {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    Some(User {
        id: s("id")?,
        user_principal_name: s("userPrincipalName").unwrap_or_default(),
        display_name: s("displayName"),
        mail: s("mail"),
        other_mails: strs(&v["otherMails"]),
        proxy_addresses: strs(&v["proxyAddresses"]),
        user_type: s("userType"),
        account_enabled: v["accountEnabled"].as_bool(),
    })
}

fn bad_reply(what: &str, request_id: Option<String>) -> CallError {
    CallError {
        kind: ErrorKind::Other,
        status: None,
        code: "BadReply".into(),
        message: format!("Graph's answer had no {what}"),
        request_id,
    }
}

fn user_from(resp: &Resp) -> Result<User, CallError> {
    parse_user(&resp.body).ok_or_else(|| bad_reply("user id", resp.request_id.clone()))
}

fn users_from(resp: &Resp) -> Vec<User> {
    resp.body["value"]
        .as_array()
        .map(|a| a.iter().filter_map(parse_user).collect())
        .unwrap_or_default()
}

pub(super) fn requirements_path(user_id: &str) -> String {
    format!("{}/authentication/requirements", user_path(user_id))
}

pub(super) async fn count_users(inner: &Arc<Inner>) -> Result<u64, CallError> {
    let r = inner
        .call(
            "v1.0",
            &Req::get("/users/$count", Cost::GET_ONE).eventual(),
            false,
            Mode::RUN,
        )
        .await?;
    let n = match &r.body {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().trim_start_matches('\u{feff}').parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad_reply("user count", r.request_id.clone()))?;
    inner.pacer.set_tenant_size(n);
    Ok(n)
}

/// Follows `@odata.nextLink` only on the Graph host we talk to.
pub(super) fn next_link(inner: &Inner, body: &Value) -> Result<Option<String>, CallError> {
    match body["@odata.nextLink"].as_str() {
        None => Ok(None),
        Some(l) if l.starts_with(&format!("{}/", inner.cfg.graph_url)) => Ok(Some(l.to_string())),
        Some(l) => Err(CallError {
            kind: ErrorKind::Other,
            status: None,
            code: "BadNextLink".into(),
            message: format!("Graph sent a next-page link to another host ({l}); not followed"),
            request_id: None,
        }),
    }
}

pub(super) async fn list_users(
    inner: &Arc<Inner>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Vec<User>, CallError> {
    let mut out = Vec::new();
    let mut path = format!("/users?$top=999&$select={USER_SELECT}");
    loop {
        let r = inner
            .call(
                "v1.0",
                &Req::get(path, Cost::get_list(true)),
                false,
                Mode::RUN,
            )
            .await?;
        out.extend(users_from(&r));
        progress(out.len() as u64);
        match next_link(inner, &r.body)? {
            Some(l) => path = l,
            None => return Ok(out),
        }
    }
}

pub(super) async fn resolve<F>(inner: &Arc<Inner>, keys: &[UserRef], mut each: F)
where
    F: FnMut(usize, Result<Lookup, CallError>) + Send,
{
    // 1. Direct: /users/{id | upn}.
    let reqs: Vec<Req> = keys
        .iter()
        .map(|k| {
            Req::get(
                format!("{}?$select={USER_SELECT}", user_path(k.key())),
                Cost::GET_ONE,
            )
        })
        .collect();
    let (mut rx, _set) = exec(inner, "v1.0", reqs, Mode::RUN);
    let mut by_address: Vec<usize> = Vec::new();
    while let Some((i, r)) = rx.recv().await {
        match (r, &keys[i]) {
            (Ok(resp), _) => each(i, user_from(&resp).map(Lookup::Found)),
            (Err(e), UserRef::Address(_)) if e.kind == ErrorKind::NotFound => by_address.push(i),
            (Err(e), _) if e.kind == ErrorKind::NotFound => each(i, Ok(Lookup::NotFound)),
            (Err(e), _) => each(i, Err(e)),
        }
    }
    if by_address.is_empty() {
        return;
    }
    // 2. Not a UPN: by mail, otherMails, proxyAddresses (advanced queries).
    by_address.sort_unstable();
    let mut reqs = Vec::new();
    for &i in &by_address {
        let a = keys[i].key();
        let sel = format!("&$select={USER_SELECT}");
        reqs.push(Req::get(
            format!(
                "/users?$filter={}{sel}",
                q(&format!("mail eq {}", odata_string(a)))
            ),
            Cost::get_list(true),
        ));
        reqs.push(
            Req::get(
                format!(
                    "/users?$filter={}&$count=true{sel}",
                    q(&format!("otherMails/any(x:x eq {})", odata_string(a)))
                ),
                Cost::get_list(true),
            )
            .eventual(),
        );
        reqs.push(
            Req::get(
                format!(
                    "/users?$filter={}&$count=true{sel}",
                    q(&format!(
                        "proxyAddresses/any(x:x eq {})",
                        odata_string(&format!("smtp:{a}"))
                    ))
                ),
                Cost::get_list(true),
            )
            .eventual(),
        );
    }
    let (mut rx, _set) = exec(inner, "v1.0", reqs, Mode::RUN);
    struct Acc {
        users: Vec<User>,
        err: Option<CallError>,
        got: u8,
    }
    let mut acc: HashMap<usize, Acc> = HashMap::new();
    while let Some((j, r)) = rx.recv().await {
        let i = by_address[j / 3];
        let a = acc.entry(i).or_insert(Acc {
            users: Vec::new(),
            err: None,
            got: 0,
        });
        a.got += 1;
        match r {
            Ok(resp) => {
                for u in users_from(&resp) {
                    if !a.users.iter().any(|x| x.id == u.id) {
                        a.users.push(u);
                    }
                }
            }
            Err(e) => {
                a.err.get_or_insert(e);
            }
        }
        if a.got == 3 {
            let a = acc.remove(&i).unwrap();
            let res = match (a.err, a.users.len()) {
                (_, 1) => Ok(Lookup::Found(a.users.into_iter().next().unwrap())),
                (_, n) if n > 1 => Ok(Lookup::Ambiguous(a.users)),
                (Some(e), _) => Err(e),
                (None, _) => Ok(Lookup::NotFound),
            };
            each(i, res);
        }
    }
}

pub(super) async fn get_states<F>(inner: &Arc<Inner>, user_ids: &[String], mode: Mode, mut each: F)
where
    F: FnMut(usize, Result<super::Reply<MfaState>, CallError>) + Send,
{
    let reqs = user_ids
        .iter()
        .map(|id| Req::get(requirements_path(id), Cost::GET_ONE))
        .collect();
    let (mut rx, _set) = exec(inner, "beta", reqs, mode);
    while let Some((i, r)) = rx.recv().await {
        each(
            i,
            r.and_then(|resp| match resp.body["perUserMfaState"].as_str() {
                Some(s) => Ok(super::Reply {
                    value: MfaState::from_graph(s),
                    request_id: resp.request_id,
                }),
                None => Err(bad_reply("perUserMfaState", resp.request_id)),
            }),
        );
    }
}

pub(super) async fn set_states<F>(inner: &Arc<Inner>, changes: &[(String, MfaState)], mut each: F)
where
    F: FnMut(usize, Result<super::Reply<()>, CallError>) + Send,
{
    let reqs = changes
        .iter()
        .map(|(id, st)| {
            Req::patch(
                requirements_path(id),
                json!({"perUserMfaState": st.as_str()}),
            )
        })
        .collect();
    let (mut rx, _set) = exec(inner, "beta", reqs, Mode::RUN);
    while let Some((i, r)) = rx.recv().await {
        each(
            i,
            r.map(|resp| super::Reply {
                value: (),
                request_id: resp.request_id,
            }),
        );
    }
}

const REPORT: &str = "/reports/authenticationMethods/userRegistrationDetails";
/// Ids per `$filter=id in (...)` request.
const REPORT_IDS_PER_REQUEST: usize = 15;
/// Above this many users, page through the whole report instead of filtering.
const REPORT_LIST_ALL_ABOVE: usize = 150;

/// Reads the registration report for `ids`. Err: the report cannot be used (403 etc.).
async fn from_report(
    inner: &Arc<Inner>,
    ids: &[String],
) -> Result<HashMap<String, bool>, CallError> {
    let mut found = HashMap::new();
    let mut firsts: Vec<String> = Vec::new();
    if ids.len() > REPORT_LIST_ALL_ABOVE {
        firsts.push(REPORT.to_string());
    } else {
        for chunk in ids.chunks(REPORT_IDS_PER_REQUEST) {
            let list: Vec<String> = chunk.iter().map(|id| odata_string(id)).collect();
            firsts.push(format!(
                "{REPORT}?$filter={}",
                q(&format!("id in ({})", list.join(",")))
            ));
        }
    }
    for first in firsts {
        let mut path = first;
        loop {
            let r = inner
                .call(
                    "beta",
                    &Req::get(path, Cost::get_list(false)),
                    true,
                    Mode::RUN,
                )
                .await?;
            for row in r.body["value"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                if let (Some(id), Some(reg)) =
                    (row["id"].as_str(), row["isMfaRegistered"].as_bool())
                {
                    found.insert(id.to_ascii_lowercase(), reg);
                }
            }
            match next_link(inner, &r.body)? {
                Some(l) => path = l,
                None => break,
            }
        }
    }
    Ok(found)
}

pub(super) async fn registration<F>(inner: &Arc<Inner>, user_ids: &[String], mut each: F)
where
    F: FnMut(usize, Option<bool>) + Send,
{
    if user_ids.is_empty() {
        return;
    }
    if let Ok(found) = from_report(inner, user_ids).await {
        for (i, id) in user_ids.iter().enumerate() {
            each(i, found.get(&id.to_ascii_lowercase()).copied());
        }
        return;
    }
    // No premium licence or no AuditLog.Read.All: ask each user's methods instead.
    let reqs = user_ids
        .iter()
        .map(|id| {
            Req::get(
                format!("{}/authentication/methods", user_path(id)),
                Cost::get_list(false),
            )
        })
        .collect();
    let (mut rx, _set) = exec(inner, "v1.0", reqs, Mode::RUN);
    while let Some((i, r)) = rx.recv().await {
        each(
            i,
            r.ok().map(|resp| {
                resp.body["value"].as_array().is_some_and(|a| {
                    a.iter().any(|m| {
                        m["@odata.type"]
                            .as_str()
                            .is_some_and(|t| !t.ends_with("passwordAuthenticationMethod"))
                    })
                })
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upn_paths_are_escaped_as_graph_documents() {
        assert_eq!(user_path("ann@contoso.com"), "/users/ann@contoso.com");
        assert_eq!(
            user_path("bob_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
            "/users/bob_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
        );
        assert_eq!(
            user_path("$admin@contoso.com"),
            "/users('$admin@contoso.com')"
        );
        assert_eq!(user_path("$o'b@x.com"), "/users('$o''b@x.com')");
        assert_eq!(
            user_path("o'brien@contoso.com"),
            "/users/o%27brien@contoso.com"
        );
        assert_eq!(user_path("a b+c@x.com"), "/users/a%20b%2Bc@x.com");
    }

    #[test]
    fn filter_values_double_single_quotes() {
        assert_eq!(
            odata_string("o'brien@contoso.com"),
            "'o''brien@contoso.com'"
        );
        assert_eq!(q("mail eq 'a+b@x.com'"), "mail%20eq%20'a%2Bb@x.com'");
    }

    #[test]
    fn users_are_read_from_graph_shapes() {
        let u = parse_user(
            &json!({"id":"1","userPrincipalName":"a@b.c","otherMails":["x@y.z"],
            "proxyAddresses":["SMTP:a@b.c"],"accountEnabled":true,"userType":"Member","mail":null}),
        )
        .unwrap();
        assert_eq!(u.id, "1");
        assert_eq!(u.other_mails, vec!["x@y.z"]);
        assert_eq!(u.mail, None);
        assert_eq!(u.account_enabled, Some(true));
        assert!(parse_user(&json!({"userPrincipalName":"a"})).is_none());
    }
}
