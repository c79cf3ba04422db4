//! How a run read its users and their per-user MFA state: from lists (pages of 999, the
//! state answered by `/users`) or one documented per-user GET each, and why. Said in the
//! summary (text and JSON) and the run record.

use super::source::Listed;
use crate::graph::OtherMember;

/// Counted while the run reads.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Reads {
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
    pub fn note_listing(&mut self, listed: &Listed, rows: u64) {
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
    pub fn notes(&self, per_user_asked: bool) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(g) = &self.group {
            out.push(format!("Group {g}: its users, nested groups followed."));
        }
        if !self.other_members.is_empty() {
            let names: Vec<String> = self
                .other_members
                .iter()
                .take(10)
                .map(|m| format!("{} ({})", m.display_name, m.kind))
                .collect();
            let more = self.other_members.len().saturating_sub(names.len());
            out.push(format!(
                "{} {} of the group {} not {}, left out: {}{}.",
                self.other_members.len(),
                if self.other_members.len() == 1 {
                    "member"
                } else {
                    "members"
                },
                if self.other_members.len() == 1 {
                    "is"
                } else {
                    "are"
                },
                if self.other_members.len() == 1 {
                    "a user"
                } else {
                    "users"
                },
                names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if self.from_list > 0 {
            out.push(format!(
                "Per-user MFA state of {} {} read from the user list ({} {} of up to 999 users).",
                self.from_list,
                if self.from_list == 1 { "user" } else { "users" },
                self.pages,
                if self.pages == 1 { "page" } else { "pages" }
            ));
        }
        if self.list_lacked > 0 {
            out.push(format!(
                "Graph's user list did not answer perUserMfaState for {} {}: read one by one \
                 with the documented per-user GET instead.",
                self.list_lacked,
                if self.list_lacked == 1 {
                    "user"
                } else {
                    "users"
                }
            ));
        } else if self.per_user > 0 && per_user_asked {
            out.push(format!(
                "Per-user MFA state read one by one ({} GETs, --per-user-reads).",
                self.per_user
            ));
        }
        out
    }
}
