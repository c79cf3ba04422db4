//! Resolving spreadsheet values to directory users: one lookup per value, or one bulk listing
//! of the tenant matched locally, whichever spends fewer requests. A listing also brings each
//! user's per-user MFA state (Graph answers `perUserMfaState` on `/users`), so the users found
//! that way need no state read of their own.
//!
//! Matching rules are the same either way: a UPN or object id matches directly; an address
//! that is not a UPN matches by `mail`, `otherMails` and `proxyAddresses`. More than one distinct
//! user is ambiguous: reported, never guessed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::graph::{CallError, Graph, GraphError, Lookup, UserSet};
use crate::model::{MfaState, User, UserRef};

/// Below this many values, per-value lookups are always cheap enough: no need to count users.
pub(crate) const MIN_VALUES_FOR_LISTING: usize = 50;
/// Users per page when listing (Graph's maximum `$top`).
const PAGE_SIZE: u64 = 999;

/// What a value resolved to.
#[derive(Clone, Debug)]
pub(crate) enum Resolved {
    /// Shared, not copied: a listing resolves many rows against one set of users.
    User(Arc<User>),
    NotFound,
    Ambiguous(Vec<User>),
    /// Boxed: rare, and it would make every row's slot as big as an error.
    Failed(Box<CallError>),
}

/// How the users were found, for the summary and the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Strategy {
    /// One lookup per value (batched).
    Lookup,
    /// The whole tenant listed in pages of 999 and matched locally.
    Listing,
}

/// What resolving found.
pub(crate) struct Resolution {
    /// One per value, in order.
    pub found: Vec<Resolved>,
    pub strategy: Strategy,
    /// Per-user MFA state by lower-case user id, for the users found by a listing whose
    /// answer had it.
    pub states: HashMap<String, MfaState>,
    /// Pages of the tenant listing (0: looked up one by one).
    pub pages: u64,
}

/// Whether listing the tenant costs fewer requests than looking each value up.
///
/// A page of 999 users costs about one request (2 RU, 1 with `$select`); a lookup costs one
/// request per value. So list when the tenant fits in fewer pages than there are values.
pub(crate) fn listing_is_cheaper(values: usize, tenant_users: u64) -> bool {
    let pages = tenant_users.div_ceil(PAGE_SIZE).max(1);
    values >= MIN_VALUES_FOR_LISTING && pages < values as u64
}

/// Every user of the tenant, in pages of 999, each with its per-user MFA state when the
/// answer has it (by lower-case id).
pub(crate) async fn list_tenant(
    graph: &Graph,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<TenantListing, CallError> {
    let mut pages = graph.user_pages(&UserSet::Tenant { filter: None });
    let mut users = Vec::new();
    let mut states = HashMap::new();
    while let Some(page) = pages.next_page().await? {
        for l in page {
            if let Some(s) = l.state {
                states.insert(l.user.id.to_ascii_lowercase(), s);
            }
            users.push(l.user);
        }
        progress(pages.users);
    }
    Ok(TenantListing {
        users,
        states,
        pages: pages.pages,
    })
}

/// The whole tenant, listed.
pub(crate) struct TenantListing {
    pub users: Vec<User>,
    /// Per-user MFA state by lower-case id, for the users whose answer had it.
    pub states: HashMap<String, MfaState>,
    pub pages: u64,
}

/// What resolving keeps between the chunks of one run (a streamed dry-run resolves its rows a
/// chunk at a time): the strategy, decided once for all the values, and the tenant listing.
#[derive(Default)]
pub(crate) struct ResolveCache {
    /// How many values the whole run resolves (default: those of the first call).
    pub values: Option<usize>,
    strategy: Option<Strategy>,
    listing: Option<(UserIndex, HashMap<String, MfaState>)>,
}

impl ResolveCache {
    /// A cache for a run that resolves `values` values in all.
    pub(crate) fn for_values(values: usize) -> ResolveCache {
        ResolveCache {
            values: Some(values),
            ..ResolveCache::default()
        }
    }
}

/// Resolves every value, in order. `progress(done)` is called as values are resolved,
/// `listed(users)` as pages of the tenant are listed (when listing is cheaper).
pub(crate) async fn resolve_all(
    graph: &Graph,
    refs: &[UserRef],
    progress: &mut (dyn FnMut(u64) + Send),
    listed: &mut (dyn FnMut(u64) + Send),
    cache: &mut ResolveCache,
) -> Result<Resolution, GraphError> {
    let strategy = match cache.strategy {
        Some(s) => s,
        None => {
            let values = cache.values.unwrap_or(refs.len());
            let mut s = Strategy::Lookup;
            if values >= MIN_VALUES_FOR_LISTING {
                // Counting costs one request; a failure just means we look values up one by one.
                if let Ok(count) = graph.count_users().await {
                    if listing_is_cheaper(values, count) {
                        s = Strategy::Listing;
                    }
                }
            }
            cache.strategy = Some(s);
            s
        }
    };
    match strategy {
        Strategy::Listing => {
            let mut pages = 0;
            if cache.listing.is_none() {
                let TenantListing {
                    users,
                    states,
                    pages: p,
                } = list_tenant(graph, listed).await?;
                pages = p;
                cache.listing = Some((UserIndex::new(users), states));
            }
            let (index, all_states) = cache.listing.as_ref().expect("listed");
            let out: Vec<Resolved> = refs.iter().map(|r| index.find(r)).collect();
            // The states of the users found.
            let mut states = HashMap::new();
            for r in &out {
                if let Resolved::User(u) = r {
                    let id = u.id.to_ascii_lowercase();
                    if let Some(s) = all_states.get(&id) {
                        states.insert(id, s.clone());
                    }
                }
            }
            progress(out.len() as u64);
            Ok(Resolution {
                found: out,
                strategy,
                states,
                pages,
            })
        }
        Strategy::Lookup => {
            let mut out: Vec<Option<Resolved>> = vec![None; refs.len()];
            let mut done = 0u64;
            graph
                .resolve(refs, |i, res| {
                    out[i] = Some(match res {
                        Ok(Lookup::Found(u)) => Resolved::User(Arc::new(u)),
                        Ok(Lookup::NotFound) => Resolved::NotFound,
                        Ok(Lookup::Ambiguous(us)) => Resolved::Ambiguous(us),
                        Err(e) => Resolved::Failed(Box::new(e)),
                    });
                    done += 1;
                    progress(done);
                })
                .await;
            Ok(Resolution {
                found: out
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Resolved::Failed(Box::new(not_answered()))))
                    .collect(),
                strategy,
                states: HashMap::new(),
                pages: 0,
            })
        }
    }
}

fn not_answered() -> CallError {
    CallError {
        kind: crate::graph::ErrorKind::Cancelled,
        status: None,
        code: "notSent".into(),
        message: "not looked up: the run was stopped".into(),
        request_id: None,
    }
}

/// Every address a user can be known by, lower case (UPN, id, mail, otherMails, proxy
/// addresses without their `smtp:` prefix).
pub(crate) fn addresses(user: &User) -> impl Iterator<Item = String> + '_ {
    let upn = std::iter::once(user.user_principal_name.to_lowercase());
    let id = std::iter::once(user.id.to_lowercase());
    let mail = user.mail.iter().map(|m| m.to_lowercase());
    let other = user.other_mails.iter().map(|m| m.to_lowercase());
    let proxy = user.proxy_addresses.iter().filter_map(|p| proxy_address(p));
    upn.chain(id).chain(mail).chain(other).chain(proxy)
}

/// `SMTP:a@b` / `smtp:a@b` → `a@b`; other proxy kinds (`SIP:`, `X500:`) are not mail.
fn proxy_address(p: &str) -> Option<String> {
    let (kind, addr) = p.split_once(':')?;
    kind.eq_ignore_ascii_case("smtp")
        .then(|| addr.to_lowercase())
}

/// A listed tenant, indexed for matching spreadsheet values.
pub(crate) struct UserIndex {
    users: Vec<Arc<User>>,
    direct: HashMap<String, usize>,
    by_mail: HashMap<String, Vec<usize>>,
}

impl UserIndex {
    pub(crate) fn new(users: Vec<User>) -> UserIndex {
        let mut direct = HashMap::with_capacity(users.len() * 2);
        let mut by_mail: HashMap<String, Vec<usize>> = HashMap::with_capacity(users.len());
        for (i, u) in users.iter().enumerate() {
            direct.insert(u.user_principal_name.to_lowercase(), i);
            direct.insert(u.id.to_lowercase(), i);
            let mails = u
                .mail
                .iter()
                .map(|m| m.to_lowercase())
                .chain(u.other_mails.iter().map(|m| m.to_lowercase()))
                .chain(u.proxy_addresses.iter().filter_map(|p| proxy_address(p)));
            for m in mails {
                let v = by_mail.entry(m).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        UserIndex {
            users: users.into_iter().map(Arc::new).collect(),
            direct,
            by_mail,
        }
    }

    /// Finds a value the way Graph lookups would: UPN or id first, then mail addresses.
    pub(crate) fn find(&self, r: &UserRef) -> Resolved {
        let key = r.key().to_lowercase();
        if let Some(&i) = self.direct.get(&key) {
            return Resolved::User(self.users[i].clone());
        }
        if let UserRef::ObjectId(_) = r {
            return Resolved::NotFound;
        }
        match self.by_mail.get(&key).map(Vec::as_slice) {
            None | Some([]) => Resolved::NotFound,
            Some([i]) => Resolved::User(self.users[*i].clone()),
            Some(many) => {
                Resolved::Ambiguous(many.iter().map(|&i| (*self.users[i]).clone()).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, upn: &str, mail: Option<&str>, proxies: &[&str]) -> User {
        User {
            id: id.into(),
            user_principal_name: upn.into(),
            mail: mail.map(Into::into),
            proxy_addresses: proxies.iter().map(|p| p.to_string()).collect(),
            ..User::default()
        }
    }

    fn index() -> UserIndex {
        UserIndex::new(vec![
            user(
                "id-1",
                "aokafor@northwind.example",
                Some("Amara.Okafor@northwind.example"),
                &[],
            ),
            user(
                "id-2",
                "frontdesk1@northwind.example",
                None,
                &[
                    "SMTP:frontdesk1@northwind.example",
                    "smtp:info@northwind.example",
                ],
            ),
            user(
                "id-3",
                "frontdesk2@northwind.example",
                None,
                &[
                    "SMTP:frontdesk2@northwind.example",
                    "smtp:info@northwind.example",
                ],
            ),
            user(
                "id-4",
                "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
                Some("sam.lee@fabrikam.example"),
                &["SIP:sam.lee@fabrikam.example"],
            ),
        ])
    }

    fn addr(s: &str) -> UserRef {
        UserRef::Address(s.into())
    }

    #[test]
    fn upn_matches_in_any_case() {
        assert!(
            matches!(index().find(&addr("AOKAFOR@northwind.example")), Resolved::User(u) if u.id == "id-1")
        );
    }

    #[test]
    fn mail_that_is_not_the_upn_matches_by_mail() {
        assert!(
            matches!(index().find(&addr("amara.okafor@northwind.example")), Resolved::User(u) if u.id == "id-1")
        );
        assert!(
            matches!(index().find(&addr("sam.lee@fabrikam.example")), Resolved::User(u) if u.id == "id-4")
        );
    }

    #[test]
    fn shared_proxy_address_is_ambiguous_not_guessed() {
        match index().find(&addr("info@northwind.example")) {
            Resolved::Ambiguous(us) => assert_eq!(us.len(), 2),
            other => panic!("expected ambiguous, got {other:?}"),
        }
    }

    #[test]
    fn object_id_matches_only_ids() {
        assert!(
            matches!(index().find(&UserRef::ObjectId("id-3".into())), Resolved::User(u) if u.id == "id-3")
        );
        assert!(matches!(
            index().find(&UserRef::ObjectId("id-9".into())),
            Resolved::NotFound
        ));
    }

    #[test]
    fn sip_proxy_is_not_a_mail_address() {
        let idx = UserIndex::new(vec![user(
            "x",
            "x@a.example",
            None,
            &["SIP:someone@a.example"],
        )]);
        assert!(matches!(
            idx.find(&addr("someone@a.example")),
            Resolved::NotFound
        ));
    }

    #[test]
    fn listing_only_when_fewer_pages_than_values() {
        assert!(!listing_is_cheaper(10, 100));
        assert!(listing_is_cheaper(1000, 5000));
        assert!(!listing_is_cheaper(60, 100_000));
        assert!(listing_is_cheaper(60, 10_000));
    }
}
