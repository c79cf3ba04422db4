//! The report's summary: users counted by per-user MFA state × registration, the users to
//! fix, the admins without a method, how everything was read; as text or JSON.

use std::io::Write;

use serde::Serialize;

use super::writer::ReportRow;
use crate::model::MfaState;

/// Registration counts for one per-user MFA state.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct ByRegistration {
    pub registered: u64,
    pub not_registered: u64,
    pub unknown: u64,
}

impl ByRegistration {
    fn add(&mut self, reg: Option<bool>) {
        match reg {
            Some(true) => self.registered += 1,
            Some(false) => self.not_registered += 1,
            None => self.unknown += 1,
        }
    }
}

/// How the report read what it shows, in words, and counted.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct HowRead {
    /// Pages of user lists.
    pub user_pages: u64,
    /// States from the list answers.
    pub state_from_list: u64,
    /// States read with the per-user GET (the list lacked them, or --per-user-reads).
    pub state_per_user: u64,
    /// Pages of the registration report.
    pub report_pages: u64,
    /// Users whose methods were read one by one (no P1/P2, no AuditLog.Read.All, or
    /// --per-user-reads).
    pub methods_per_user: u64,
    /// Users' methods may not be read either (403): registration stays unknown.
    pub methods_denied: bool,
    /// Lines for the summary: fallbacks and why.
    pub notes: Vec<String>,
}

/// Everything the report counted.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct ReportSummary {
    /// What was listed: `tenant`, `group "…"`, `filter "…"`.
    pub users_of: String,
    /// Users read (after --user-type).
    pub users: u64,
    /// Rows written (after --only).
    pub rows: u64,
    pub disabled: ByRegistration,
    pub enabled: ByRegistration,
    pub enforced: ByRegistration,
    /// States Graph may add later (`unknownFutureValue`...).
    pub other_state: ByRegistration,
    /// The state could not be read.
    pub state_unknown: ByRegistration,
    /// Registered an MFA method, per-user MFA disabled: the users to fix.
    pub registered_but_disabled: u64,
    /// Admins (report's `isAdmin`) with no MFA method registered.
    pub admins_without_mfa: Vec<String>,
    /// Users whose state or registration could not be read.
    pub unreadable: u64,
    pub read: HowRead,
    pub interrupted: bool,
}

impl ReportSummary {
    /// Counts one user (every user read, whether or not `--only` keeps the row).
    pub(crate) fn count(&mut self, r: &ReportRow) {
        self.users += 1;
        let bucket = match &r.state {
            Some(MfaState::Disabled) => &mut self.disabled,
            Some(MfaState::Enabled) => &mut self.enabled,
            Some(MfaState::Enforced) => &mut self.enforced,
            Some(MfaState::Other(_)) => &mut self.other_state,
            None => &mut self.state_unknown,
        };
        bucket.add(r.mfa_registered);
        if r.state == Some(MfaState::Disabled) && r.mfa_registered == Some(true) {
            self.registered_but_disabled += 1;
        }
        if r.is_admin == Some(true) && r.mfa_registered == Some(false) {
            self.admins_without_mfa.push(r.user_principal_name.clone());
        }
    }

    /// Prints the summary (text, or JSON with `json`) to `out`.
    pub(crate) fn print(
        &self,
        out: &mut dyn Write,
        header: &str,
        file_line: &str,
        json: Option<serde_json::Value>,
    ) -> std::io::Result<()> {
        if let Some(v) = json {
            return writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            );
        }
        writeln!(out, "{header}")?;
        writeln!(
            out,
            "  {:<16}{:>12}{:>16}{:>10}",
            "per-user MFA", "registered", "not registered", "unknown"
        )?;
        for (name, b) in [
            ("disabled", &self.disabled),
            ("enabled", &self.enabled),
            ("enforced", &self.enforced),
            ("other", &self.other_state),
            ("not read", &self.state_unknown),
        ] {
            if b.registered + b.not_registered + b.unknown > 0 || name == "disabled" {
                writeln!(
                    out,
                    "  {name:<16}{:>12}{:>16}{:>10}",
                    b.registered, b.not_registered, b.unknown
                )?;
            }
        }
        let n = self.registered_but_disabled;
        writeln!(
            out,
            "{n} {} registered an MFA method but per-user MFA is disabled{}",
            if n == 1 { "user has" } else { "users have" },
            if n > 0 {
                " (the users to fix: `report --only registered-but-disabled -o todo.xlsx`, \
                 then `dry-run todo.xlsx`, then `apply todo.xlsx`)."
            } else {
                "."
            }
        )?;
        if !self.admins_without_mfa.is_empty() {
            let k = self.admins_without_mfa.len();
            let shown: Vec<&str> = self
                .admins_without_mfa
                .iter()
                .take(10)
                .map(String::as_str)
                .collect();
            writeln!(
                out,
                "{k} {} no MFA method registered: {}{}.",
                if k == 1 { "admin has" } else { "admins have" },
                shown.join(", "),
                if k > shown.len() {
                    format!(" and {} more", k - shown.len())
                } else {
                    String::new()
                }
            )?;
        }
        if self.read.methods_denied {
            writeln!(
                out,
                "Registration is unknown: the app may read neither the registration report \
                 (AuditLog.Read.All, with Entra ID P1/P2) nor users' authentication methods \
                 (UserAuthenticationMethod.Read.All); grant one and run the report again."
            )?;
        } else if self.unreadable > 0 {
            writeln!(
                out,
                "{} {} could not be read completely (blank cells in the report): see the \
                 messages above; running the report again usually reads them.",
                self.unreadable,
                if self.unreadable == 1 {
                    "user"
                } else {
                    "users"
                }
            )?;
        }
        for note in &self.read.notes {
            writeln!(out, "{note}")?;
        }
        writeln!(out, "{file_line}")?;
        if self.interrupted {
            writeln!(
                out,
                "Interrupted: the report holds the users read so far; run it again (with \
                 --force, or another -o) for all."
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_states_by_registration_and_the_users_to_fix() {
        let mut s = ReportSummary::default();
        let r = |state: Option<MfaState>, reg: Option<bool>, admin: Option<bool>| ReportRow {
            user_principal_name: "a@x".into(),
            state,
            mfa_registered: reg,
            is_admin: admin,
            ..ReportRow::default()
        };
        s.count(&r(Some(MfaState::Disabled), Some(true), None));
        s.count(&r(Some(MfaState::Disabled), Some(false), Some(true)));
        s.count(&r(Some(MfaState::Enforced), Some(true), Some(true)));
        s.count(&r(None, None, None));
        assert_eq!(s.users, 4);
        assert_eq!(s.registered_but_disabled, 1);
        assert_eq!(
            s.disabled,
            ByRegistration {
                registered: 1,
                not_registered: 1,
                unknown: 0
            }
        );
        assert_eq!(s.state_unknown.unknown, 1);
        assert_eq!(s.admins_without_mfa, vec!["a@x"]);
        let mut out = Vec::new();
        s.print(&mut out, "report", "Report: r.csv", None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("1 user has registered an MFA method but per-user MFA is disabled"),
            "{text}"
        );
        assert!(
            text.contains("1 admin has no MFA method registered: a@x."),
            "{text}"
        );
    }
}
