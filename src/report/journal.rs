//! The apply journal, for `apply --resume`: JSON Lines, one record a line, each appended,
//! flushed and `sync_data`'d before [`Journal::record`] returns.
//!
//! Line 1 is the header (`{"type":"header","journal":1,…}`) naming the input (SHA-256),
//! tenant and options of the run. Then, per user written: an `intent` line *before* the write
//! is sent, and a `done` line once its answer is known. An `intent` without a `done`
//! ([`in_doubt`]) is a write whose answer was lost: check it by reading, never resend blindly.
//!
//! A crash can leave the last line torn (no final newline): [`Journal::load`] ignores such a
//! tail (its `record` call never returned, so nothing was sent on its account), and
//! [`Journal::open`] cuts it off before appending.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::files::{self, Access};
use super::record::rfc3339;
use super::{serde_state, sibling, ReportError};
use crate::model::MfaState;

/// The journal format version written in the header line.
pub const JOURNAL_VERSION: u32 = 1;

/// What a journal belongs to; resuming with a different input, tenant or options is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHeader {
    pub input_sha256: String,
    pub tenant_id: String,
    /// The options that decide what is written (target state, …), as one string.
    pub options_key: String,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    /// The result file the run writes: rerunning the same command continues into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_file: Option<std::path::PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct HeaderLine {
    #[serde(rename = "type")]
    kind: String,
    journal: u32,
    #[serde(flatten)]
    header: JournalHeader,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum JournalEntry {
    /// About to send a write for this user.
    Intent {
        user_id: String,
        row: u64,
        #[serde(with = "serde_state")]
        state_before: MfaState,
        #[serde(with = "serde_state")]
        target: MfaState,
    },
    /// The write's answer (or the read that settled it).
    Done {
        user_id: String,
        row: u64,
        #[serde(with = "serde_state::option", default)]
        state_after: Option<MfaState>,
        #[serde(default)]
        request_id: Option<String>,
        ok: bool,
        #[serde(default)]
        error: Option<String>,
    },
}

impl JournalEntry {
    pub fn user_id(&self) -> &str {
        match self {
            JournalEntry::Intent { user_id, .. } | JournalEntry::Done { user_id, .. } => user_id,
        }
    }
}

/// The `intent` entries with no later `done` for the same user: writes whose answer was lost.
pub fn in_doubt(entries: &[JournalEntry]) -> Vec<&JournalEntry> {
    let mut open: Vec<&JournalEntry> = Vec::new();
    for e in entries {
        match e {
            JournalEntry::Intent { .. } => {
                open.retain(|o| o.user_id() != e.user_id());
                open.push(e);
            }
            JournalEntry::Done { .. } => open.retain(|o| o.user_id() != e.user_id()),
        }
    }
    open
}

/// An open journal, appending.
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// `<file name>.journal.jsonl` beside `key` (the result file, or whatever the engine keys
    /// a run by).
    pub fn path_for(key: &Path) -> PathBuf {
        sibling(key, ".journal.jsonl")
    }

    /// Opens the journal at `path` for appending.
    ///
    /// A new file gets `header` as its first line. An existing one (resume) must have the same
    /// `input_sha256`, `tenant_id` and `options_key` ([`ReportError::JournalMismatch`]
    /// otherwise); a torn last line is cut off, and its original header is kept. For a fresh
    /// run over an old journal, [`Journal::discard`] it first.
    ///
    /// Never through a symbolic link: a link at `path` is refused ([`ReportError::Symlink`]);
    /// a new journal is created with its header under a fresh name and renamed into place
    /// (refusing a name taken meanwhile), readable by its owner only (0600 on Unix).
    pub fn open(path: &Path, header: JournalHeader) -> Result<Journal, ReportError> {
        files::refuse_link(path)?;
        if files::name_taken(path) {
            let (old, _) = Journal::load(path)?;
            let mut diffs = Vec::new();
            if old.input_sha256 != header.input_sha256 {
                diffs.push("the input file changed");
            }
            if old.tenant_id != header.tenant_id {
                diffs.push("another tenant");
            }
            if old.options_key != header.options_key {
                diffs.push("other options");
            }
            if !diffs.is_empty() {
                return Err(ReportError::JournalMismatch {
                    path: path.to_path_buf(),
                    message: diffs.join(", "),
                });
            }
            let file = files::open_append_no_link(path)?;
            let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, "read", e))?;
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if keep < bytes.len() {
                file.set_len(keep as u64)
                    .and_then(|_| file.sync_data())
                    .map_err(|e| ReportError::io(path, "repair", e))?;
            }
            Ok(Journal {
                path: path.to_path_buf(),
                file,
            })
        } else {
            let mut line = serde_json::to_vec(&HeaderLine {
                kind: "header".into(),
                journal: JOURNAL_VERSION,
                header,
            })
            .map_err(|e| ReportError::Json {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            line.push(b'\n');
            let file = files::create_new(path, &line, false, Access::OwnerOnly)?;
            file.sync_data()
                .map_err(|e| ReportError::io(path, "write", e))?;
            Ok(Journal {
                path: path.to_path_buf(),
                file,
            })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `e`, flushed and synced to disk before returning.
    pub fn record(&mut self, e: &JournalEntry) -> Result<(), ReportError> {
        self.append(std::slice::from_ref(e))
    }

    /// Appends every entry with one write and one sync (a group of writes about to be sent,
    /// or a group just settled): as safe as one `record` each, without a disk sync per user.
    pub fn record_all(&mut self, entries: &[JournalEntry]) -> Result<(), ReportError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.append(entries)
    }

    /// Writes each value as one JSON line, then flushes and syncs once.
    fn append<T: Serialize>(&mut self, values: &[T]) -> Result<(), ReportError> {
        let mut buf = Vec::new();
        for v in values {
            serde_json::to_writer(&mut buf, v).map_err(|e| ReportError::Json {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| ReportError::io(&self.path, "write", e))
    }

    /// Deletes the journal (after a run that finished every row, or before a fresh run).
    pub fn discard(path: &Path) -> Result<(), ReportError> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ReportError::io(path, "delete", e))
            }
            _ => Ok(()),
        }
    }

    /// Reads a journal: its header and every complete entry. A torn last line (no final
    /// newline) is ignored; any other unreadable line is an error naming it.
    pub fn load(path: &Path) -> Result<(JournalHeader, Vec<JournalEntry>), ReportError> {
        let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, "read", e))?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let jerr = |line: usize, message: String| ReportError::Journal {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = bytes[..complete]
            .split(|b| *b == b'\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
        let header = match lines.next() {
            None => return Err(jerr(1, "the journal has no header line".into())),
            Some((n, l)) => {
                let h: HeaderLine = serde_json::from_slice(l)
                    .map_err(|e| jerr(n, format!("not a journal header ({e})")))?;
                if h.kind != "header" {
                    return Err(jerr(n, "the first line is not a journal header".into()));
                }
                if h.journal != JOURNAL_VERSION {
                    return Err(jerr(
                        n,
                        format!(
                            "journal format {} is not the {JOURNAL_VERSION} this version reads",
                            h.journal
                        ),
                    ));
                }
                h.header
            }
        };
        let entries = lines
            .map(|(n, l)| {
                serde_json::from_slice::<JournalEntry>(l)
                    .map_err(|e| jerr(n, format!("unreadable entry ({e})")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((header, entries))
    }
}
