//! `/groups` (`$filter` on `displayName`), `/groups/{id}`, and a group's `members` and
//! `transitiveMembers` (nested groups followed, each object once), optionally cast to one kind
//! (`/microsoft.graph.user`, `.group`, `.device`, `.servicePrincipal`, `.orgContact`).
//!
//! Graph treats filters on membership collections as advanced queries:
//! `ConsistencyLevel: eventual` and `$count=true`, else 400 `Request_UnsupportedQuery`.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::config::{GroupSeed, ObjectSeed};
use super::filter::{Filter, Kind, Val};
use super::query::{page, require_advanced, Query};
use super::state::{Ident, Sim, State, User};
use super::users::{filter_users, user_page, Shape, USER_READ};
use super::wire::{Ctx, GErr, Headers, Resp, Ver};

/// Permissions that let an app read groups and their members.
const GROUP_READ: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Which members: direct or transitive, and of which kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Members {
    pub transitive: bool,
    /// `user`, `group`, `device`, `servicePrincipal`, `orgContact`, or any (`None`).
    pub cast: Option<String>,
}

/// The cast segment `microsoft.graph.user` → `user` (any case), if it names a kind we know.
pub(super) fn parse_cast(seg: &str) -> Result<String, GErr> {
    const KINDS: &[&str] = &["user", "group", "device", "servicePrincipal", "orgContact"];
    seg.strip_prefix("microsoft.graph.")
        .and_then(|k| KINDS.iter().find(|x| x.eq_ignore_ascii_case(k)))
        .map(|k| k.to_string())
        .ok_or_else(|| GErr::bad(format!("Resource not found for the segment '{seg}'.")))
}

fn group_schema(name: &str) -> Option<(&'static str, Kind)> {
    const P: &[(&str, Kind)] = &[
        ("id", Kind::Str),
        ("displayName", Kind::Str),
        ("description", Kind::Str),
    ];
    P.iter()
        .find(|(p, _)| p.eq_ignore_ascii_case(name))
        .map(|(p, k)| (*p, *k))
}

fn group_prop(g: &GroupSeed, p: &str) -> Value {
    match p {
        "id" => json!(g.id),
        "displayName" => json!(g.display_name),
        "description" => json!(g.description),
        "securityEnabled" => json!(true),
        "mailEnabled" => json!(false),
        "groupTypes" => json!([]),
        _ => Value::Null,
    }
}

fn group_json(g: &GroupSeed, sel: &Option<Vec<String>>, with_type: bool) -> Value {
    const DEFAULT: &[&str] = &[
        "id",
        "displayName",
        "description",
        "securityEnabled",
        "mailEnabled",
        "groupTypes",
    ];
    let mut m = Map::new();
    if with_type {
        m.insert("@odata.type".into(), "#microsoft.graph.group".into());
    }
    let props: Vec<&str> = match sel {
        Some(s) => s.iter().map(String::as_str).collect(),
        None => DEFAULT.to_vec(),
    };
    for p in props {
        m.insert(p.to_string(), group_prop(g, p));
    }
    Value::Object(m)
}

fn object_json(o: &ObjectSeed) -> Value {
    json!({
        "@odata.type": format!("#microsoft.graph.{}", o.kind),
        "id": o.id,
        "displayName": o.display_name,
    })
}

fn check_select(sel: &Option<Vec<String>>) -> Result<(), GErr> {
    for s in sel.iter().flatten() {
        if group_schema(s).is_none()
            && !["securityEnabled", "mailEnabled", "groupTypes"].contains(&s.as_str())
        {
            return Err(GErr::bad(format!(
                "Could not find a property named '{s}' on type 'microsoft.graph.group'."
            )));
        }
    }
    Ok(())
}

fn find<'a>(sim: &'a Sim, id: &str) -> Option<&'a GroupSeed> {
    sim.cfg
        .tenant
        .groups
        .iter()
        .find(|g| g.id.eq_ignore_ascii_case(id))
}

/// `GET /groups`: `$filter` (`displayName eq '…'`, `startswith`…), `$select`, `$top`, paging.
pub(super) fn list(
    sim: &Sim,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    rest: &str,
    q: &Query,
    h: &Headers,
) -> Result<Resp, GErr> {
    if !ident.allows(GROUP_READ, &[]) {
        return Err(GErr::denied());
    }
    check_select(&q.select)?;
    let mut groups: Vec<&GroupSeed> = sim.cfg.tenant.groups.iter().collect();
    if let Some(f) = &q.filter {
        let f = Filter::parse(f, group_schema)?;
        if f.advanced {
            require_advanced(h, q, true)?;
        }
        groups.retain(|g| {
            f.matches(&|p| match group_prop(g, p) {
                Value::String(s) => Val::Str(Some(s)),
                _ => Val::Str(None),
            })
        });
    }
    let items = groups
        .iter()
        .map(|g| group_json(g, &q.select, false))
        .collect();
    let context = format!("{}/{}/$metadata#groups", ctx.base, ver.as_str());
    Ok(page(ctx, ver, rest, q, items, context))
}

/// `GET /groups/{id}`.
pub(super) fn get(
    sim: &Sim,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    id: &str,
    q: &Query,
) -> Result<Resp, GErr> {
    if !ident.allows(GROUP_READ, &[]) {
        return Err(GErr::denied());
    }
    check_select(&q.select)?;
    let g = find(sim, id).ok_or_else(|| GErr::not_found(id))?;
    let mut v = group_json(g, &q.select, false);
    v.as_object_mut().expect("object").insert(
        "@odata.context".into(),
        format!("{}/{}/$metadata#groups/$entity", ctx.base, ver.as_str()).into(),
    );
    Ok(Resp::json(200, v))
}

/// A member of a group, resolved.
enum Member<'a> {
    User(&'a User),
    Group(&'a GroupSeed),
    Object(&'a ObjectSeed),
}

impl Member<'_> {
    fn kind(&self) -> &str {
        match self {
            Member::User(_) => "user",
            Member::Group(_) => "group",
            Member::Object(o) => &o.kind,
        }
    }
}

/// The members of `g` (direct, or transitive: nested groups followed, each object once; a
/// group's own members first, then those of its nested groups in the order they are listed;
/// a membership cycle ends).
fn members<'a>(sim: &'a Sim, st: &'a State, g: &'a GroupSeed, transitive: bool) -> Vec<Member<'a>> {
    let mut out = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut visited_groups: HashSet<String> = HashSet::from([g.id.to_ascii_lowercase()]);
    let mut stack: Vec<&GroupSeed> = vec![g];
    while let Some(g) = stack.pop() {
        let mut nested = Vec::new();
        for id in &g.members {
            let key = id.to_ascii_lowercase();
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Some(i) = st.find_user(id) {
                out.push(Member::User(&st.users[i]));
            } else if let Some(sub) = find(sim, id) {
                out.push(Member::Group(sub));
                if transitive && visited_groups.insert(key) {
                    nested.push(sub);
                }
            } else if let Some(o) = sim
                .cfg
                .tenant
                .objects
                .iter()
                .find(|o| o.id.eq_ignore_ascii_case(id))
            {
                out.push(Member::Object(o));
            }
        }
        // The nested groups next, in the order they are listed.
        stack.extend(nested.into_iter().rev());
    }
    out
}

/// `GET /groups/{id}/members|transitiveMembers[/microsoft.graph.{kind}]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn list_members(
    sim: &Sim,
    st: &State,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
    rest: &str,
    id: &str,
    which: &Members,
    q: &Query,
    h: &Headers,
) -> Result<Resp, GErr> {
    if !ident.allows(GROUP_READ, &[]) {
        return Err(GErr::denied());
    }
    let g = find(sim, id).ok_or_else(|| GErr::not_found(id))?;
    let all = members(sim, st, g, which.transitive);
    let kept: Vec<&Member> = all
        .iter()
        .filter(|m| which.cast.as_deref().is_none_or(|c| c == m.kind()))
        .collect();
    if which.cast.as_deref() == Some("user") {
        // Users' own properties: `$select`, `$filter` (an advanced query here) and
        // `perUserMfaState` as on `/users`.
        if !ident.allows(USER_READ, &[]) {
            return Err(GErr::denied());
        }
        let shape = Shape::new(ver, q, sim.cfg.tenant.lists_per_user_mfa_state)?;
        let users = kept.iter().filter_map(|m| match m {
            Member::User(u) => Some(*u),
            _ => None,
        });
        let users = filter_users(users, q, h, true)?;
        return Ok(user_page(ctx, rest, q, &shape, &users));
    }
    if q.filter.is_some() || q.count {
        require_advanced(h, q, q.filter.is_some())?;
    }
    let user_shape = Shape::new(ver, &Query::default(), false)?;
    let items: Vec<Value> = kept
        .iter()
        .map(|m| match m {
            Member::User(u) => {
                let mut v = user_shape.json(u);
                v.as_object_mut()
                    .expect("object")
                    .insert("@odata.type".into(), "#microsoft.graph.user".into());
                v
            }
            Member::Group(g) => group_json(g, &None, true),
            Member::Object(o) => object_json(o),
        })
        .map(|mut v| {
            // `$select` on a mixed collection keeps the selected properties (and the type).
            if let (Some(sel), Some(o)) = (&q.select, v.as_object_mut()) {
                o.retain(|k, _| {
                    k == "@odata.type" || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
                });
            }
            v
        })
        .collect();
    let context = format!("{}/{}/$metadata#directoryObjects", ctx.base, ver.as_str());
    Ok(page(ctx, ver, rest, q, items, context))
}
