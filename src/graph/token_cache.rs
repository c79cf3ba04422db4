//! One sign-in for the whole job: an admin's refresh token (browser or device code sign-in),
//! kept between commands so that `check`, `dry-run` and `apply` ask once.
//!
//! Kept in the OS credential store (Windows Credential Manager, macOS Keychain, the Secret
//! Service on Linux) through the `keyring` crate. Where there is none (a headless Linux
//! server), in a file readable only by the user in the user's cache folder, said once when it
//! is first written. `MFA_BULK_CACHE_DIR` puts the file in another folder and never touches the
//! credential store (tests use it).
//!
//! Keyed by sign-in authority (cloud), tenant, client and account: an index entry lists the
//! sign-ins saved (no secret in it), and each account's entry holds its newest refresh token
//! (Entra rotates them: every answer replaces the one kept). `mfa-bulk logout` removes them.
//! A cache that cannot be read or written never stops a run: it signs in as if there were none.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::Secret;

/// The name entries carry in the OS credential store.
pub const SERVICE: &str = "mfa-bulk";
/// The file's name in its folder.
pub const FILE_NAME: &str = "sign-in-cache.json";
const INDEX: &str = "index";

/// Where sign-ins are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStore {
    /// The OS credential store; a file in the user's cache folder where there is none.
    Auto,
    /// Only a file in this folder (`MFA_BULK_CACHE_DIR`); the credential store is not used.
    Folder(PathBuf),
}

impl CacheStore {
    /// From `MFA_BULK_CACHE_DIR` (a folder) or the default.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> CacheStore {
        match env("MFA_BULK_CACHE_DIR").filter(|s| !s.trim().is_empty()) {
            Some(dir) => CacheStore::Folder(PathBuf::from(dir)),
            None => CacheStore::Auto,
        }
    }

    /// The file used by this store (where the credential store is missing, for `Auto`).
    pub fn file(&self) -> Option<PathBuf> {
        match self {
            CacheStore::Folder(d) => Some(d.join(FILE_NAME)),
            CacheStore::Auto => dirs::cache_dir().map(|d| d.join("mfa-bulk").join(FILE_NAME)),
        }
    }
}

/// Which sign-in: the authority (the cloud's sign-in URL), the tenant and the client, as given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub authority: String,
    pub tenant: String,
    pub client_id: String,
}

impl CacheKey {
    fn scope(&self) -> String {
        format!(
            "{}|{}|{}",
            self.authority.trim_end_matches('/').to_ascii_lowercase(),
            self.tenant.to_ascii_lowercase(),
            self.client_id.to_ascii_lowercase()
        )
    }

    fn entry(&self, account: &str) -> String {
        format!("{}|{}", self.scope(), account.to_lowercase())
    }
}

/// One saved sign-in, as the index lists it (no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSignIn {
    #[serde(flatten)]
    pub key: CacheKey,
    /// The admin's user name (UPN).
    pub account: String,
    /// The tenant the admin signed in to (directory id), when known.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    refresh_token: String,
    saved_at: String,
}

/// A key-value store of strings: the credential store or the file.
trait Backend {
    fn get(&self, key: &str) -> Result<Option<String>, String>;
    fn set(&self, key: &str, value: &str) -> Result<(), String>;
    fn delete(&self, key: &str) -> Result<bool, String>;
}

struct Keyring;

impl Keyring {
    fn entry(key: &str) -> Result<keyring::Entry, String> {
        keyring::Entry::new(SERVICE, key).map_err(|e| e.to_string())
    }

    /// Whether the credential store can be used here (`Err` says why not).
    fn available() -> Result<(), String> {
        match Keyring::entry(INDEX)?.get_secret() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Backend for Keyring {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        match Keyring::entry(key)?.get_secret() {
            Ok(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| "an entry is not text".to_string()),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        // Bytes, not a password: Windows keeps passwords as UTF-16, twice the size.
        Keyring::entry(key)?
            .set_secret(value.as_bytes())
            .map_err(|e| e.to_string())
    }
    fn delete(&self, key: &str) -> Result<bool, String> {
        match Keyring::entry(key)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The file: a JSON map, readable and writable by its owner only, replaced whole (a new file
/// renamed over it: a link in its place is replaced, never followed).
struct File(PathBuf);

#[derive(Default, Serialize, Deserialize)]
struct FileBody {
    version: u32,
    entries: BTreeMap<String, String>,
}

impl File {
    fn read(&self) -> Result<FileBody, String> {
        let path = &self.0;
        let named = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileBody::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if !named.file_type().is_file() {
            return Err(format!(
                "{} is not a plain file (a link or a folder): not used",
                path.display()
            ));
        }
        let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let opened = f.metadata().map_err(|e| e.to_string())?;
            if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
                return Err(format!("{} changed while it was read", path.display()));
            }
            if opened.mode() & 0o077 != 0 {
                return Err(format!(
                    "{} can be read by other users: not used (remove it with `mfa-bulk logout`)",
                    path.display()
                ));
            }
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|_| format!("{} is not a sign-in cache: ignored", path.display()))
    }

    fn write(&self, body: &FileBody) -> Result<(), String> {
        let path = &self.0;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let mut b = tempfile::Builder::new();
        b.prefix(".sign-in-cache").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            b.permissions(std::fs::Permissions::from_mode(0o600));
        }
        let mut tmp = b
            .tempfile_in(dir)
            .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
        let text = serde_json::to_string_pretty(body).map_err(|e| e.to_string())?;
        tmp.write_all(text.as_bytes())
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        tmp.persist(path)
            .map_err(|e| format!("cannot write {}: {}", path.display(), e.error))?;
        Ok(())
    }
}

/// Creates `dir` (and its parents) for the cache; a new folder is the owner's only. A link in
/// place of the folder itself is refused.
fn create_private_dir(dir: &Path) -> Result<(), String> {
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if m.file_type().is_symlink() {
            return Err(format!(
                "{} is a link: the sign-in cache is not written through it",
                dir.display()
            ));
        }
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

impl Backend for File {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.read()?.entries.get(key).cloned())
    }
    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        let mut body = self.read().unwrap_or_default();
        body.version = 1;
        body.entries.insert(key.to_string(), value.to_string());
        self.write(&body)
    }
    fn delete(&self, key: &str) -> Result<bool, String> {
        let mut body = match self.read() {
            Ok(b) => b,
            Err(_) if !self.0.exists() => return Ok(false),
            Err(e) => return Err(e),
        };
        let had = body.entries.remove(key).is_some();
        if had {
            if body.entries.is_empty() {
                std::fs::remove_file(&self.0).map_err(|e| e.to_string())?;
            } else {
                self.write(&body)?;
            }
        }
        Ok(had)
    }
}

fn read_index(b: &dyn Backend) -> Result<Vec<SavedSignIn>, String> {
    Ok(b.get(INDEX)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

fn write_index(b: &dyn Backend, index: &[SavedSignIn]) -> Result<(), String> {
    if index.is_empty() {
        b.delete(INDEX).map(|_| ())
    } else {
        b.set(
            INDEX,
            &serde_json::to_string(index).map_err(|e| e.to_string())?,
        )
    }
}

/// A refresh token found in the cache, and whose it is.
#[derive(Clone, Debug)]
pub struct Found {
    pub account: String,
    pub refresh_token: Secret,
}

static FILE_NOTICE: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

fn warn_once(what: &str) {
    if !WARNED.swap(true, Ordering::SeqCst) {
        eprintln!("note: {what}");
    }
}

/// The sign-in cache of one authority, tenant and client.
#[derive(Clone, Debug)]
pub struct TokenCache {
    pub store: CacheStore,
    pub key: CacheKey,
}

impl TokenCache {
    pub fn new(store: CacheStore, key: CacheKey) -> TokenCache {
        TokenCache { store, key }
    }

    /// The backends to read, in order: the credential store (for `Auto`), then the file.
    fn backends(&self) -> Vec<Box<dyn Backend>> {
        let mut v: Vec<Box<dyn Backend>> = vec![];
        if self.store == CacheStore::Auto && Keyring::available().is_ok() {
            v.push(Box::new(Keyring));
        }
        if let Some(f) = self.store.file() {
            v.push(Box::new(File(f)));
        }
        v
    }

    /// The newest sign-in saved for this key: its account and refresh token.
    pub fn load(&self) -> Option<Found> {
        for b in self.backends() {
            let found = (|| -> Result<Option<Found>, String> {
                let scope = self.key.scope();
                let index = read_index(b.as_ref())?;
                let Some(s) = index.iter().rev().find(|s| s.key.scope() == scope) else {
                    return Ok(None);
                };
                let Some(text) = b.get(&self.key.entry(&s.account))? else {
                    return Ok(None);
                };
                let stored: Stored = serde_json::from_str(&text)
                    .map_err(|_| "a saved sign-in is damaged: ignored".to_string())?;
                Ok(Some(Found {
                    account: s.account.clone(),
                    refresh_token: Secret::new(stored.refresh_token),
                }))
            })();
            match found {
                Ok(Some(f)) => return Some(f),
                Ok(None) => {}
                Err(e) => warn_once(&format!("the saved sign-in could not be read ({e})")),
            }
        }
        None
    }

    /// Saves (or replaces) the refresh token of `account`.
    pub fn save(&self, account: &str, tenant_id: Option<&str>, refresh_token: &Secret) {
        let stored = Stored {
            refresh_token: refresh_token.expose().to_string(),
            saved_at: chrono::Utc::now().to_rfc3339(),
        };
        let value = match serde_json::to_string(&stored) {
            Ok(v) => v,
            Err(_) => return,
        };
        let entry = SavedSignIn {
            key: self.key.clone(),
            account: account.to_string(),
            tenant_id: tenant_id.map(str::to_string),
        };
        let put = |b: &dyn Backend| -> Result<(), String> {
            b.set(&self.key.entry(account), &value)?;
            let mut index = read_index(b)?;
            index.retain(|s| {
                !(s.key.scope() == self.key.scope() && s.account.eq_ignore_ascii_case(account))
            });
            index.push(entry.clone());
            write_index(b, &index)
        };
        let keyring_error = match &self.store {
            CacheStore::Auto => match Keyring::available().and_then(|_| put(&Keyring)) {
                Ok(()) => return,
                Err(e) => Some(e),
            },
            CacheStore::Folder(_) => None,
        };
        let Some(path) = self.store.file() else {
            warn_once("the sign-in is not kept: no credential store and no cache folder here");
            return;
        };
        let existed = path.exists();
        match put(&File(path.clone())) {
            Ok(()) => {
                if let Some(why) = keyring_error {
                    if !existed && !FILE_NOTICE.swap(true, Ordering::SeqCst) {
                        eprintln!(
                            "note: no OS credential store here ({why}); the sign-in is kept in \
                             {}, readable only by you. `mfa-bulk logout` removes it.",
                            path.display()
                        );
                    }
                }
            }
            Err(e) => warn_once(&format!(
                "the sign-in could not be kept ({e}): the next command will ask again"
            )),
        }
    }

    /// Forgets `account`'s saved sign-in (its refresh token no longer works).
    pub fn forget(&self, account: &str) {
        for b in self.backends() {
            let _ = b.delete(&self.key.entry(account));
            if let Ok(mut index) = read_index(b.as_ref()) {
                index.retain(|s| {
                    !(s.key.scope() == self.key.scope() && s.account.eq_ignore_ascii_case(account))
                });
                let _ = write_index(b.as_ref(), &index);
            }
        }
    }
}

/// Which saved sign-ins `logout` removes: all, or those matching every field given.
#[derive(Clone, Debug, Default)]
pub struct LogoutFilter {
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub account: Option<String>,
}

impl LogoutFilter {
    fn matches(&self, s: &SavedSignIn) -> bool {
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        (eq(&self.tenant, &s.key.tenant)
            || self
                .tenant
                .as_deref()
                .zip(s.tenant_id.as_deref())
                .is_some_and(|(w, t)| w.eq_ignore_ascii_case(t)))
            && eq(&self.client_id, &s.key.client_id)
            && eq(&self.account, &s.account)
    }
}

/// Removes the saved sign-ins that match `filter` from the credential store (for `Auto`) and
/// the file. Returns the sign-ins removed, and the problems met (a store that could not be
/// read).
pub fn logout(store: &CacheStore, filter: &LogoutFilter) -> (Vec<SavedSignIn>, Vec<String>) {
    let mut removed = vec![];
    let mut problems = vec![];
    let mut backends: Vec<Box<dyn Backend>> = vec![];
    if *store == CacheStore::Auto {
        match Keyring::available() {
            Ok(()) => backends.push(Box::new(Keyring)),
            Err(e) => {
                if store.file().is_none() {
                    problems.push(format!("the OS credential store: {e}"));
                }
            }
        }
    }
    if let Some(f) = store.file() {
        backends.push(Box::new(File(f)));
    }
    for b in backends {
        let result = (|| -> Result<(), String> {
            let index = read_index(b.as_ref())?;
            let (gone, kept): (Vec<_>, Vec<_>) = index.into_iter().partition(|s| filter.matches(s));
            for s in &gone {
                b.delete(&s.key.entry(&s.account))?;
            }
            write_index(b.as_ref(), &kept)?;
            removed.extend(gone);
            Ok(())
        })();
        if let Err(e) = result {
            problems.push(e);
        }
    }
    (removed, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str) -> CacheKey {
        CacheKey {
            authority: "http://127.0.0.1:9/".into(),
            tenant: tenant.into(),
            client_id: "Client-1".into(),
        }
    }

    #[test]
    fn saves_rotates_forgets_and_logs_out_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CacheStore::Folder(dir.path().join("cache"));
        let c = TokenCache::new(store.clone(), key("contoso.example"));
        assert!(c.load().is_none());
        c.save("Admin@Contoso.example", Some("tid-1"), &Secret::new("rt-1"));
        c.save("Admin@Contoso.example", Some("tid-1"), &Secret::new("rt-2"));
        let f = c.load().unwrap();
        assert_eq!(
            (f.account.as_str(), f.refresh_token.expose()),
            ("Admin@Contoso.example", "rt-2")
        );
        let path = dir.path().join("cache").join(FILE_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("rt-1"), "the rotated token is gone");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("cache")), 0o700);
        }
        // Another tenant, another entry; the same tenant by another client is not found.
        let other = TokenCache::new(store.clone(), key("fabrikam.example"));
        other.save("ops@fabrikam.example", None, &Secret::new("rt-f"));
        let mut k = key("contoso.example");
        k.client_id = "client-2".into();
        assert!(TokenCache::new(store.clone(), k).load().is_none());
        c.forget("admin@contoso.example");
        assert!(c.load().is_none());
        assert!(other.load().is_some());
        c.save("admin@contoso.example", Some("tid-1"), &Secret::new("rt-3"));
        let (gone, problems) = logout(
            &store,
            &LogoutFilter {
                tenant: Some("TID-1".into()),
                ..LogoutFilter::default()
            },
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(gone.len(), 1);
        assert!(c.load().is_none() && other.load().is_some());
        let (gone, _) = logout(&store, &LogoutFilter::default());
        assert_eq!(gone.len(), 1);
        assert!(!path.exists(), "an empty cache leaves no file");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_or_a_shared_file_is_never_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "keep me").unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        std::os::unix::fs::symlink(&victim, cache.join(FILE_NAME)).unwrap();
        let c = TokenCache::new(CacheStore::Folder(cache.clone()), key("t"));
        assert!(c.load().is_none());
        c.save("a@b.c", None, &Secret::new("rt"));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        let m = std::fs::symlink_metadata(cache.join(FILE_NAME)).unwrap();
        assert!(
            m.file_type().is_file(),
            "the link was replaced, not followed"
        );
        std::fs::set_permissions(
            cache.join(FILE_NAME),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(c.load().is_none(), "a file others can read is not trusted");
        // A link in place of the folder is refused.
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &linked).unwrap();
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        TokenCache::new(CacheStore::Folder(linked), key("t")).save(
            "a@b.c",
            None,
            &Secret::new("rt"),
        );
        assert!(!dir.path().join("elsewhere").join(FILE_NAME).exists());
    }
}
