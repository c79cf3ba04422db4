//! The journal of a run that writes (apply, revert): which users are being written and how
//! each write ended, so that rerunning the same command after an interruption continues
//! without writing anyone twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::model::MfaState;
use crate::report::{Journal, JournalEntry, JournalHeader};

/// What an interrupted run of the same command had done for one user.
#[derive(Clone, Debug)]
pub(super) struct Previous {
    pub before: MfaState,
    pub request_id: Option<String>,
}

/// Which journal a run uses and what must match for an old one to be continued.
pub(super) struct JournalKey {
    pub path: PathBuf,
    pub header: JournalHeader,
}

impl JournalKey {
    /// `.mfa-bulk/<kind>-<sha256 prefix>.journal` in the current directory, so rerunning the
    /// same command finds it. `options_key` holds what must match (target, plan file...).
    pub(super) fn new(
        kind: &str,
        input_sha256: &str,
        tenant_id: &str,
        options_key: String,
        started_at: chrono::DateTime<chrono::Utc>,
        result_file: &Path,
    ) -> JournalKey {
        JournalKey {
            path: journal_path(kind, input_sha256),
            header: JournalHeader {
                input_sha256: input_sha256.to_string(),
                tenant_id: tenant_id.to_string(),
                options_key,
                started_at,
                result_file: Some(result_file.to_path_buf()),
            },
        }
    }
}

/// The folder of journals and locks, in the current directory.
const FOLDER: &str = ".mfa-bulk";

/// `.mfa-bulk/<kind>-<sha256 prefix>.journal`.
pub(super) fn journal_path(kind: &str, input_sha256: &str) -> PathBuf {
    PathBuf::from(FOLDER).join(format!("{kind}-{}.journal", &input_sha256[..16]))
}

/// The header of the journal an interrupted run of the same command (same kind, same input)
/// left here, if any and readable.
pub(super) fn peek(kind: &str, input_sha256: &str) -> Option<JournalHeader> {
    let path = journal_path(kind, input_sha256);
    if !path.exists() {
        return None;
    }
    Journal::load(&path).ok().map(|(h, _)| h)
}

/// One run per journal: an exclusive lock on `.mfa-bulk/<kind>-<sha256 prefix>.lock`, held by
/// the open file for the whole run and released by the operating system when the process
/// ends, however it ends. The file says who holds it, for the message of the run refused.
/// A run that ends normally removes the file (on Unix; while still holding the lock, and a
/// run that locked a file removed meanwhile tries again, so two runs never both hold one).
pub(super) struct RunLock {
    file: std::fs::File,
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = std::fs::remove_file(&self.path);
            if let Some(dir) = self.path.parent() {
                // Only when empty: a journal or another input's lock may be there.
                let _ = std::fs::remove_dir(dir);
            }
        }
        let _ = &self.file;
    }
}

/// Whether `path` still names the open `file` (it was not removed and made again meanwhile).
fn still_named(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Takes the lock of this command on this input, or says which process holds it.
pub(super) fn lock(kind: &str, input_sha256: &str, input: &Path) -> anyhow::Result<RunLock> {
    use std::io::{Read, Seek, Write};
    let dir = PathBuf::from(FOLDER);
    let path = dir.join(format!("{kind}-{}.lock", &input_sha256[..16]));
    for _ in 0..10 {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {} for the journal", dir.display()))?;
        // Never through a link: not the folder, not the lock file.
        for p in [&dir, &path] {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                anyhow::bail!(super::job::UsageError(format!(
                    "{} is a symbolic link: mfa-bulk keeps its journal and lock only in a real \
                     folder here; remove the link and run again",
                    p.display()
                )));
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("could not open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    holder.to_string()
                };
                anyhow::bail!(super::job::UsageError(format!(
                    "another {kind} of {} is running in this folder ({holder}): nothing was \
                     done. Wait for it to finish (or stop it), then run the command again.",
                    input.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("could not lock {}", path.display()))
            }
        }
        if !still_named(&file, &path) {
            // The run that held it finished and removed it between our open and our lock.
            continue;
        }
        let who = format!(
            "process {} started {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        let _ = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(who.as_bytes()))
            .and_then(|_| file.flush());
        return Ok(RunLock { file, path });
    }
    anyhow::bail!(
        "could not take the lock {}: it keeps being removed; is another run starting and \
         stopping here?",
        path.display()
    )
}

/// Reads the journal an interrupted run left, if it belongs to this run: user id → what it
/// had done. With `resume`, a missing journal is an error.
pub(super) fn load_previous(
    key: &JournalKey,
    resume: bool,
    what: &str,
) -> anyhow::Result<HashMap<String, Previous>> {
    let path = &key.path;
    if !path.exists() {
        if resume {
            anyhow::bail!(super::job::UsageError(format!(
                "--resume: there is no journal of an interrupted run of {what} here ({}): run \
                 the command without --resume",
                path.display()
            )));
        }
        return Ok(HashMap::new());
    }
    let (header, entries) = Journal::load(path)?;
    if header.tenant_id != key.header.tenant_id
        || header.options_key != key.header.options_key
        || header.input_sha256 != key.header.input_sha256
    {
        eprintln!(
            "note: starting afresh: the journal {} is from a run with another tenant or options",
            path.display()
        );
        Journal::discard(path)?;
        return Ok(HashMap::new());
    }
    let mut prev: HashMap<String, Previous> = HashMap::new();
    for e in entries {
        match e {
            JournalEntry::Intent {
                user_id,
                state_before,
                ..
            } => {
                prev.entry(user_id).or_insert(Previous {
                    before: state_before,
                    request_id: None,
                });
            }
            JournalEntry::Done {
                user_id,
                request_id,
                ok: true,
                ..
            } => {
                if let Some(p) = prev.get_mut(&user_id) {
                    p.request_id = request_id;
                }
            }
            JournalEntry::Done { .. } => {}
        }
    }
    if !prev.is_empty() {
        eprintln!(
            "Continuing an interrupted run: {} users were being written; each is read again \
             and none is written twice.",
            prev.len()
        );
    }
    Ok(prev)
}

/// Opens (or continues) the journal.
pub(super) fn open_journal(key: &JournalKey) -> anyhow::Result<Journal> {
    if let Some(dir) = key.path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {} for the journal", dir.display()))?;
    }
    Ok(Journal::open(&key.path, key.header.clone())?)
}

/// The run finished: the journal is no longer needed.
pub(super) fn close_journal(journal: Journal, key: &JournalKey) -> anyhow::Result<()> {
    drop(journal);
    std::fs::remove_file(&key.path)
        .with_context(|| format!("could not remove {}", key.path.display()))?;
    if let Some(dir) = key.path.parent() {
        // Only when empty: another input's journal may be there.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}
