//! The run record: `<result file name>.run.json` beside the result file, saying who ran what,
//! where, on which input (by SHA-256), with which options, and how it ended. Never a secret:
//! options and Graph stats pass through [`safe_options`] when the record is written. Readable
//! by its owner only, and created like the result file: never through a symbolic link, never
//! over an existing record without `--force`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{sibling, Outcome, ReportError};

/// Who ran the tool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunBy {
    /// The operating-system account that ran the tool, as the operating system knows it (the
    /// effective user on Unix), so it is there under cron and in containers too. `USER` or
    /// `USERNAME` only when the system cannot tell.
    pub os_user: Option<String>,
    /// The admin who signed in (browser or device code: the user name of the ID token; `None`
    /// for an app or a managed identity).
    pub signed_in_admin: Option<String>,
}

impl RunBy {
    /// The OS user (see [`os_user`]), plus the signed-in admin's UPN if any.
    pub fn from_env(signed_in_admin: Option<String>) -> RunBy {
        RunBy {
            os_user: os_user(),
            signed_in_admin,
        }
    }
}

/// The account running this process, from the operating system (the user database on Unix,
/// the logon session on Windows); the environment's `USER` or `USERNAME` only when the system
/// has no name for it (a container's uid without a passwd entry, say). The environment can be
/// unset (cron, containers) or set to anything, so it is never preferred.
pub fn os_user() -> Option<String> {
    let nonempty = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    whoami::username().ok().and_then(nonempty).or_else(|| {
        ["USER", "USERNAME"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find_map(nonempty)
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Always "mfa-bulk".
    pub tool: String,
    /// This build's version.
    pub version: String,
    /// `plan`, `apply`, `revert`, …
    pub command: String,
    pub tenant_id: String,
    pub app_id: String,
    /// e.g. `global`, `usgov`, `china`, or `simulator`.
    pub cloud: String,
    pub graph_url: String,
    pub run_by: RunBy,
    /// The input file's name as given on the command line.
    pub input_file: String,
    /// Hex SHA-256 of the input file ([`sha256_file`]).
    pub input_sha256: String,
    /// The options used (build it with [`safe_options`]; secrets are dropped again on write).
    pub options: serde_json::Value,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub finished_at: DateTime<Utc>,
    /// Rows per outcome (outcomes with no rows may be left out).
    pub counts: BTreeMap<Outcome, u64>,
    /// Graph request statistics (requests, retries, 429s, …), as the graph module reports them.
    pub graph: serde_json::Value,
    pub result_file: String,
    pub exit_code: i32,
    /// Ctrl-C (or a signal) ended the run early.
    pub interrupted: bool,
}

impl RunRecord {
    /// A record with `tool` and `version` filled, `run_by` from the environment, times set to
    /// `started_at`, and everything else empty: fill in the rest.
    pub fn new(command: &str, started_at: DateTime<Utc>) -> RunRecord {
        RunRecord {
            tool: "mfa-bulk".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            command: command.into(),
            tenant_id: String::new(),
            app_id: String::new(),
            cloud: String::new(),
            graph_url: String::new(),
            run_by: RunBy::from_env(None),
            input_file: String::new(),
            input_sha256: String::new(),
            options: serde_json::Value::Object(Default::default()),
            started_at,
            finished_at: started_at,
            counts: BTreeMap::new(),
            graph: serde_json::Value::Null,
            result_file: String::new(),
            exit_code: 0,
            interrupted: false,
        }
    }

    /// Adds one row with `outcome` to [`RunRecord::counts`].
    pub fn count(&mut self, outcome: Outcome) {
        *self.counts.entry(outcome).or_insert(0) += 1;
    }
}

/// Whether an option's name looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "credential",
        "private_key",
        "privatekey",
        "assertion",
        "authorization",
        "cookie",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// `options` without any key (at any depth) whose name contains "secret", "password",
/// "token", "credential", "private_key", "assertion", "authorization" or "cookie" (any case).
pub fn safe_options(options: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match options {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !is_secret_key(k))
                .map(|(k, v)| (k, safe_options(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(safe_options).collect()),
        other => other,
    }
}

/// Hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Where the run record of the result file `result_path` goes: `<result file name>.run.json`
/// beside it; `None` for `-` (standard output): there is no folder to put it in.
pub fn run_record_path(result_path: &Path) -> Option<PathBuf> {
    (!super::is_stdout(result_path)).then(|| sibling(result_path, ".run.json"))
}

/// Writes the run record of `result_path` ([`run_record_path`]) and returns its path, or
/// `None` (nothing written) for a result on standard output.
///
/// Like the result file: created under a fresh name and renamed into place, so a symbolic
/// link at the name is never followed; an existing record is refused
/// ([`ReportError::Exists`]) unless `force`, and with `force` replaced (a link itself is
/// replaced, not its target). Readable by its owner only (0600 on Unix, from creation).
/// Options and Graph stats go through [`safe_options`].
pub fn create_run_record(
    result_path: &Path,
    rec: &RunRecord,
    force: bool,
) -> Result<Option<PathBuf>, ReportError> {
    let Some(path) = run_record_path(result_path) else {
        return Ok(None);
    };
    let mut rec = rec.clone();
    rec.options = safe_options(rec.options);
    rec.graph = safe_options(rec.graph);
    let mut json = serde_json::to_vec_pretty(&rec).map_err(|e| ReportError::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    json.push(b'\n');
    super::files::write_whole(&path, &json, force, super::files::Access::OwnerOnly)?;
    Ok(Some(path))
}

/// The run record as [`create_run_record`] with `force`: replaces an older record (never
/// through a link). Kept for callers that checked the name before the run
/// ([`super::check_result_path`]); prefer [`create_run_record`]. For a result on standard
/// output nothing is written and the path is empty.
pub fn write_run_record(result_path: &Path, rec: &RunRecord) -> Result<PathBuf, ReportError> {
    Ok(create_run_record(result_path, rec, true)?.unwrap_or_default())
}

/// RFC 3339 in UTC with whole seconds, e.g. `2026-03-04T05:06:07Z`.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_user_comes_from_the_system_not_the_environment() {
        // The name the system has for this process's account, whatever USER says (the
        // environment is not changed here: tests run in parallel).
        let name = os_user().expect("this machine has a name for its user");
        assert!(!name.trim().is_empty());
        assert_eq!(Some(name), whoami::username().ok());
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secret_keys_are_dropped_at_any_depth() {
        let v = serde_json::json!({
            "state": "enabled",
            "client_secret": "s3cr3t",
            "auth": {"ClientSecret": "x", "certificate_password": "y", "tenant": "t",
                     "access_token": "z", "list": [{"refresh_token": "r", "ok": 1}]},
        });
        let safe = safe_options(v);
        let text = safe.to_string();
        for leak in ["s3cr3t", "\"x\"", "\"y\"", "\"z\"", "\"r\""] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
        assert_eq!(safe["state"], "enabled");
        assert_eq!(safe["auth"]["tenant"], "t");
        assert_eq!(safe["auth"]["list"][0]["ok"], 1);
    }
}
