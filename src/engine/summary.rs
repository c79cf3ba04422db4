//! The end of a run: counts by outcome, the users who must visit https://aka.ms/mfasetup,
//! the one-line summary (or JSON), the run record, and the exit code.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::row::{users, Item};
use crate::exit::ExitCode;
use crate::graph::{Identity, Stats};
use crate::input::SourceInfo;
use crate::model::MfaState;
use crate::report::{self, Action, Outcome};
use crate::resolve::Strategy;

/// Outcomes that need the admin's attention (exit code 1).
pub(super) fn needs_attention(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::NotFound
            | Outcome::Invalid
            | Outcome::Skipped
            | Outcome::Drifted
            | Outcome::Failed
    )
}

/// Serializes (key, value) pairs as a JSON object, keeping their order.
fn as_map<S: serde::Serializer>(pairs: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// What a run did, counted.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Summary {
    pub command: &'static str,
    pub rows: u64,
    /// (outcome, rows), every outcome listed, in a fixed order (a JSON object).
    #[serde(serialize_with = "as_map")]
    pub counts: Vec<(String, u64)>,
    /// Rows that would change (dry-run) or changed, by action: `set-enabled`, `set-enforced`,
    /// `set-disabled`, every one listed (a JSON object).
    #[serde(serialize_with = "as_map")]
    pub actions: Vec<(String, u64)>,
    /// Users whose per-user MFA would be turned off (dry-run) or was turned off (`set-disabled`
    /// rows that would change or changed).
    pub turned_off: u64,
    /// Changed users with no MFA method registered yet: they must visit https://aka.ms/mfasetup.
    pub need_mfasetup: Vec<String>,
    /// Changed users whose registration is not known (run with --registration to tell).
    pub registration_unknown: u64,
    /// Users who registered an MFA method but whose per-user MFA state was `disabled`: the
    /// users this tool is for (they never get the "Additional security verification" page).
    pub registered_but_disabled: u64,
    pub strategy: Strategy,
    /// How users and states were read (lists or one by one), when the run read any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<super::reads::Reads>,
    /// Lines the text summary adds before the result file's name (how users were read...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub interrupted: bool,
    pub graph: Stats,
    #[serde(skip)]
    attention: bool,
    /// (outcome, action, rows) for the rows that would change or changed, as printed under
    /// their outcome's count.
    #[serde(skip)]
    acting: Vec<(Outcome, &'static str, u64)>,
}

/// The outcomes of rows that act on a user: planned (dry-run) or done.
const ACTING: [Outcome; 2] = [Outcome::WouldChange, Outcome::Changed];

/// The actions a row can take on a user, in the order they are listed.
const ACTIONS: [Action; 3] = [
    Action::Set(MfaState::Enabled),
    Action::Set(MfaState::Enforced),
    Action::Set(MfaState::Disabled),
];

impl Summary {
    pub(super) fn new(
        command: &'static str,
        items: &[Item],
        strategy: Strategy,
        interrupted: bool,
        graph: Stats,
    ) -> Summary {
        let counts = Outcome::ALL
            .iter()
            .map(|o| {
                let n = items.iter().filter(|it| &it.result.outcome == o).count() as u64;
                (o.as_str().to_string(), n)
            })
            .collect();
        let mut acting = Vec::new();
        for o in ACTING {
            for a in &ACTIONS {
                let n = items
                    .iter()
                    .filter(|it| it.result.outcome == o && &it.result.action == a)
                    .count() as u64;
                if n > 0 {
                    acting.push((o, a.as_str(), n));
                }
            }
        }
        let actions = ACTIONS
            .iter()
            .map(|a| {
                let n = acting
                    .iter()
                    .filter(|(_, k, _)| *k == a.as_str())
                    .map(|(_, _, n)| n)
                    .sum();
                (a.as_str().to_string(), n)
            })
            .collect();
        let off = Action::Set(MfaState::Disabled).as_str();
        let turned_off = acting
            .iter()
            .filter(|(_, k, _)| *k == off)
            .map(|(_, _, n)| n)
            .sum();
        let changed = items
            .iter()
            .filter(|it| it.result.outcome == Outcome::Changed)
            .filter(|it| {
                it.result
                    .state_after
                    .as_ref()
                    .is_some_and(|s| *s != MfaState::Disabled)
            });
        let mut need_mfasetup = Vec::new();
        let mut registration_unknown = 0;
        for it in changed {
            match it.result.mfa_registered {
                Some(false) => {
                    if let Some(u) = &it.user {
                        need_mfasetup.push(
                            u.mail
                                .clone()
                                .unwrap_or_else(|| u.user_principal_name.clone()),
                        );
                    }
                }
                Some(true) => {}
                None => registration_unknown += 1,
            }
        }
        let registered_but_disabled = items
            .iter()
            .filter(|it| {
                it.result.state_before == Some(MfaState::Disabled)
                    && it.result.mfa_registered == Some(true)
            })
            .count() as u64;
        Summary {
            command,
            rows: items.len() as u64,
            counts,
            actions,
            turned_off,
            need_mfasetup,
            registration_unknown,
            registered_but_disabled,
            strategy,
            reads: None,
            notes: Vec::new(),
            interrupted,
            graph,
            attention: items.iter().any(|it| needs_attention(&it.result.outcome)),
            acting,
        }
    }

    /// Adds the counts of another part of the same run (a chunk of a streamed dry-run).
    pub(super) fn absorb(&mut self, other: Summary) {
        self.rows += other.rows;
        for (k, n) in other.counts {
            match self.counts.iter_mut().find(|(key, _)| *key == k) {
                Some((_, m)) => *m += n,
                None => self.counts.push((k, n)),
            }
        }
        self.need_mfasetup.extend(other.need_mfasetup);
        self.registration_unknown += other.registration_unknown;
        self.registered_but_disabled += other.registered_but_disabled;
        self.attention |= other.attention;
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::Interrupted
        } else if self.attention {
            ExitCode::RowsNeedAttention
        } else {
            ExitCode::Success
        }
    }

    fn count(&self, o: Outcome) -> u64 {
        self.counts
            .iter()
            .find(|(k, _)| k == o.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }

    /// The counts as printed: every outcome with rows, and under the rows that would change
    /// or changed, how many by action (`set-enabled`, `set-disabled`, …), then the users whose
    /// per-user MFA would be or was turned off, said plainly.
    fn count_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (k, n) in &self.counts {
            if *n == 0 {
                continue;
            }
            lines.push(format!("  {k:<13} {n:>7}"));
            for (_, a, n) in self.acting.iter().filter(|(o, _, _)| o.as_str() == k) {
                lines.push(format!("    {a:<12} {n:>6}"));
            }
        }
        for o in ACTING {
            let off: u64 = self
                .acting
                .iter()
                .filter(|(x, a, _)| *x == o && *a == Action::Set(MfaState::Disabled).as_str())
                .map(|(_, _, n)| n)
                .sum();
            if off == 0 {
                continue;
            }
            let verb = if o == Outcome::WouldChange {
                "would have"
            } else {
                "had"
            };
            lines.push(format!(
                "{off} {} {verb} per-user MFA turned OFF.",
                users(off as usize)
            ));
        }
        lines
    }

    /// Prints the summary to stdout: text for a person, or JSON with `--json`.
    pub(crate) fn print(
        &self,
        info: &SourceInfo,
        identity: &Identity,
        output: &Path,
        record: Option<&Path>,
        json: bool,
    ) -> anyhow::Result<()> {
        // With the result on standard output (`-o -`), the summary goes to standard error.
        let mut out: Box<dyn Write> = if report::is_stdout(output) {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        };
        if json {
            let v = serde_json::json!({
                "summary": self,
                "tenant_id": identity.tenant_id,
                "signed_in_admin": identity.user,
                "input": info.path,
                "result_file": output,
                "run_record": record,
                "exit_code": self.exit_code().code(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            return Ok(());
        }
        let sheet = info
            .sheet
            .as_ref()
            .map(|s| format!(", sheet \"{s}\""))
            .unwrap_or_default();
        let sim = if identity.cloud == "simulator" {
            " (the built-in simulator: no real tenant was touched)"
        } else {
            ""
        };
        let column = if info.format == "directory" {
            String::new()
        } else {
            format!(", column \"{}\"", info.column)
        };
        let admin = identity
            .user
            .as_ref()
            .map(|u| format!(", signed in as {u}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{} of {}{sheet}{column}: {} rows, tenant {}{admin}{sim}",
            self.command,
            info.path.display(),
            self.rows,
            identity.tenant_id
        )?;
        for line in self.count_lines() {
            writeln!(out, "{line}")?;
        }
        if self.registered_but_disabled > 0 {
            writeln!(
                out,
                "{} {} registered an MFA method but per-user MFA was disabled (the users this fixes).",
                self.registered_but_disabled,
                if self.registered_but_disabled == 1 { "user has" } else { "users have" }
            )?;
        }
        if !self.need_mfasetup.is_empty() {
            writeln!(
                out,
                "{} changed {} no MFA method registered yet: they must visit \
                 https://aka.ms/mfasetup (--notify-list FILE writes their addresses).",
                self.need_mfasetup.len(),
                if self.need_mfasetup.len() == 1 {
                    "user has"
                } else {
                    "users have"
                }
            )?;
        }
        if self.registration_unknown > 0 && self.count(Outcome::Changed) > 0 {
            writeln!(
                out,
                "{} changed {}: registration not known (add --registration to find out who \
                 still has to visit https://aka.ms/mfasetup).",
                self.registration_unknown,
                users(self.registration_unknown as usize)
            )?;
        }
        for note in &self.notes {
            writeln!(out, "{note}")?;
        }
        match record {
            Some(record) => writeln!(
                out,
                "Result: {}  (run record: {})",
                output.display(),
                record.display()
            )?,
            None => writeln!(out, "Result: written to standard output (no run record)")?,
        }
        let line = match self.exit_code() {
            ExitCode::Success => "Done: every row as asked.".to_string(),
            ExitCode::Interrupted => {
                "Interrupted: the result holds every row done so far; rerun the same command to \
                 continue."
                    .to_string()
            }
            _ => "Some rows need attention: see the outcome and error columns of the result file."
                .to_string(),
        };
        writeln!(out, "{line}")?;
        Ok(())
    }

    /// The run record written beside the result file.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_record(
        &self,
        command: &str,
        identity: &Identity,
        input: &Path,
        input_sha256: &str,
        options: serde_json::Value,
        started: DateTime<Utc>,
        output: &Path,
        code: ExitCode,
    ) -> report::RunRecord {
        let mut rec = report::RunRecord::new(command, started);
        rec.tenant_id = identity.tenant_id.clone();
        rec.app_id = identity.app_id.clone();
        rec.cloud = identity.cloud.clone();
        rec.graph_url = identity.graph_url.clone();
        rec.run_by = report::RunBy::from_env(identity.user.clone());
        rec.input_file = input.display().to_string();
        rec.input_sha256 = input_sha256.to_string();
        rec.options = report::safe_options(options);
        rec.finished_at = Utc::now();
        for (k, n) in &self.counts {
            if let (Some(o), true) = (Outcome::parse(k), *n > 0) {
                rec.counts.insert(o, *n);
            }
        }
        rec.graph = serde_json::to_value(&self.graph).unwrap_or_default();
        if let (Some(reads), Some(g)) = (&self.reads, rec.graph.as_object_mut()) {
            g.insert(
                "reads".into(),
                serde_json::to_value(reads).unwrap_or_default(),
            );
        }
        rec.result_file = output.display().to_string();
        rec.exit_code = code.code();
        rec.interrupted = self.interrupted;
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InputRow, RowStatus, UserRef};

    fn item(row: u64, action: Action, outcome: Outcome) -> Item {
        let input = InputRow {
            row,
            input: format!("u{row}@example.org"),
            state: None,
            status: RowStatus::Ok(UserRef::Address(format!("u{row}@example.org"))),
        };
        let mut it = Item::new(input, &MfaState::Enabled);
        it.result.action = action;
        it.finish(outcome, None);
        it
    }

    fn summary(command: &'static str, items: &[Item]) -> Summary {
        Summary::new(command, items, Strategy::Lookup, false, Stats::default())
    }

    fn rows(spec: &[(Action, Outcome, usize)]) -> Vec<Item> {
        let mut items = Vec::new();
        for (a, o, n) in spec {
            for _ in 0..*n {
                items.push(item(items.len() as u64 + 2, a.clone(), *o));
            }
        }
        items
    }

    const ENABLE: Action = Action::Set(MfaState::Enabled);
    const DISABLE: Action = Action::Set(MfaState::Disabled);

    #[test]
    fn dry_run_counts_actions_and_says_mfa_would_be_turned_off() {
        let items = rows(&[
            (ENABLE, Outcome::WouldChange, 7),
            (DISABLE, Outcome::WouldChange, 2),
            (Action::None, Outcome::NoChange, 3),
        ]);
        let s = summary("dry-run", &items);
        let lines = s.count_lines();
        assert_eq!(
            lines,
            [
                "  would-change        9",
                "    set-enabled       7",
                "    set-disabled      2",
                "  no-change           3",
                "2 users would have per-user MFA turned OFF.",
            ]
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["actions"],
            serde_json::json!({"set-enabled": 7, "set-enforced": 0, "set-disabled": 2})
        );
        assert_eq!(v["turned_off"], 2);
    }

    #[test]
    fn apply_counts_only_rows_changed_as_turned_off() {
        let items = rows(&[
            (ENABLE, Outcome::Changed, 4),
            (DISABLE, Outcome::Changed, 1),
            // A write that failed turned nobody off.
            (DISABLE, Outcome::Failed, 1),
        ]);
        let s = summary("apply", &items);
        let lines = s.count_lines();
        assert!(
            lines.contains(&"    set-disabled      1".to_string()),
            "{lines:?}"
        );
        assert_eq!(lines.last().unwrap(), "1 user had per-user MFA turned OFF.");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["actions"]["set-disabled"], 1);
        assert_eq!(v["actions"]["set-enabled"], 4);
        assert_eq!(v["turned_off"], 1);
    }

    #[test]
    fn nothing_turned_off_says_nothing_about_it() {
        let items = rows(&[(ENABLE, Outcome::Changed, 3)]);
        let s = summary("apply", &items);
        assert!(!s.count_lines().iter().any(|l| l.contains("OFF")));
        assert_eq!(s.turned_off, 0);
    }
}
