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
use crate::report::{self, Outcome};
use crate::resolve::Strategy;

/// Outcomes that need the admin's attention (exit code 1).
pub fn needs_attention(o: &Outcome) -> bool {
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
pub struct Summary {
    pub command: &'static str,
    pub rows: u64,
    /// (outcome, rows), every outcome listed, in a fixed order (a JSON object).
    #[serde(serialize_with = "as_map")]
    pub counts: Vec<(String, u64)>,
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
}

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
            need_mfasetup,
            registration_unknown,
            registered_but_disabled,
            strategy,
            reads: None,
            notes: Vec::new(),
            interrupted,
            graph,
            attention: items.iter().any(|it| needs_attention(&it.result.outcome)),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
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

    /// Prints the summary to stdout: text for a person, or JSON with `--json`.
    pub fn print(
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
        writeln!(
            out,
            "{} of {}{sheet}{column}: {} rows, tenant {}{sim}",
            self.command,
            info.path.display(),
            self.rows,
            identity.tenant_id
        )?;
        for (k, n) in &self.counts {
            if *n > 0 {
                writeln!(out, "  {k:<13} {n:>7}")?;
            }
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
    pub fn run_record(
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
