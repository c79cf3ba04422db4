//! How a run read its users and their per-user MFA state: from lists (pages of 999, the
//! state answered by `/users`) or one documented per-user GET each, and why. Said in the
//! summary (text and JSON) and the run record.

use super::source::Listed;
use crate::graph::OtherMember;

/// Counted while the run reads.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct Reads {
    /// Pages of user lists read (the tenant, a filter or a group's members).
    pub pages: u64,
    /// States taken from a list answer.
    pub from_list: u64,
    /// States read with the per-user GET.
    pub per_user: u64,
    /// Users a list answer had no `perUserMfaState` for (read per user instead).
    pub list_lacked: u64,
    /// The group listed, and its members that are not users (left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_members: Vec<OtherMember>,
}

impl Reads {
    /// Adds what listing a directory source found.
    pub(crate) fn note_listing(&mut self, listed: &Listed, rows: u64) {
        self.pages += listed.pages;
        self.from_list += listed.with_state;
        if listed.pages > 0 {
            self.list_lacked += rows - listed.with_state;
        }
        if let Some((id, name)) = &listed.group {
            self.group = Some(format!("{name} ({id})"));
        }
        self.other_members = listed.other_members.clone();
    }

    /// Lines for the summary.
    pub(crate) fn notes(&self, per_user_asked: bool) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(g) = &self.group {
            out.push(format!("Group {g}: its users, nested groups followed."));
        }
        out.extend(other_members_note(&self.other_members));
        if self.from_list > 0 {
            out.push(from_list_note(Some(self.from_list), self.pages));
        }
        if self.list_lacked > 0 {
            out.push(list_lacked_note(self.list_lacked));
        } else if self.per_user > 0 && per_user_asked {
            out.push(per_user_note(self.per_user));
        }
        out
    }
}

fn users(n: u64) -> &'static str {
    if n == 1 {
        "user"
    } else {
        "users"
    }
}

/// "2 members of the group are not users, left out: …" (none when all are users).
pub(crate) fn other_members_note(others: &[OtherMember]) -> Option<String> {
    if others.is_empty() {
        return None;
    }
    let names: Vec<String> = others
        .iter()
        .take(10)
        .map(|m| format!("{} ({})", m.display_name, m.kind))
        .collect();
    let more = others.len() - names.len();
    Some(format!(
        "{} {}, left out: {}{}.",
        others.len(),
        if others.len() == 1 {
            "member of the group is not a user"
        } else {
            "members of the group are not users"
        },
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// How many users' state came from the user list, and in how many pages.
pub(crate) fn from_list_note(users_read: Option<u64>, pages: u64) -> String {
    let who = match users_read {
        Some(n) => format!(" of {n} {}", users(n)),
        None => String::new(),
    };
    format!(
        "Per-user MFA state{who} read from the user list ({pages} {} of up to 999 users).",
        if pages == 1 { "page" } else { "pages" }
    )
}

/// The fallback when a list answer lacked `perUserMfaState`.
pub(crate) fn list_lacked_note(n: u64) -> String {
    format!(
        "Graph's user list did not answer perUserMfaState for {n} {}: read one by one with the \
         documented per-user GET instead.",
        users(n)
    )
}

/// States read one by one because the admin asked.
pub(crate) fn per_user_note(n: u64) -> String {
    format!("Per-user MFA state read one by one ({n} GETs, --per-user-reads).")
}
