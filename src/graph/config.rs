//! Clouds, base URLs, secret files and the checks every [`GraphConfig`] passes before a
//! connection is made (the command line builds the configuration: `crate::settings`).

use std::path::Path;

use super::{GraphConfig, GraphError, Secret};

/// A national cloud (Graph reference, "National clouds").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cloud {
    #[default]
    Global,
    Usgov,
    UsgovDod,
    China,
}

/// Login and Graph base URLs of a national cloud (Graph reference, "National clouds").
pub fn cloud_urls(cloud: Cloud) -> (&'static str, &'static str, &'static str) {
    match cloud {
        Cloud::Global => (
            "global",
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
        ),
        Cloud::Usgov => (
            "usgov",
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us",
        ),
        Cloud::UsgovDod => (
            "usgov-dod",
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us",
        ),
        Cloud::China => (
            "china",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
        ),
    }
}

/// Checks a base URL: `https://` anywhere, plain `http://` only to this machine (127.0.0.0/8,
/// ::1, localhost). Returns it without a trailing slash.
pub fn check_base_url(what: &str, raw: &str) -> Result<String, GraphError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|e| GraphError::Config(format!("{what} is not a URL: {e}")))?;
    // What messages show: never a user name or password the URL may hold.
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let shown = shown.as_str().trim_end_matches('/').to_string();
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback(&url) {
                return Err(GraphError::Config(format!(
                    "{what} '{shown}' uses plain http to another machine: use https (plain http is \
                     only allowed to this machine: 127.0.0.1, ::1, localhost)"
                )));
            }
        }
        other => {
            return Err(GraphError::Config(format!(
                "{what} '{shown}' must start with https:// (found '{other}:')"
            )))
        }
    }
    if url.host().is_none() {
        return Err(GraphError::Config(format!("{what} '{shown}' has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echoed: it may hold a password. Credentials come from files or the environment.
        return Err(GraphError::Config(format!(
            "{what} holds a user name or password: give the URL without them (sign-in uses \
             --client-secret-file, --certificate or the AZURE_* environment variables)"
        )));
    }
    Ok(trimmed.to_string())
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Reads a secret from a file: the first line, trimmed (editors add newlines). On Unix, a
/// file that other users can read or change gets a one-line warning on stderr (as ssh does
/// for private keys), naming the file and the fix; the run goes on. The secret is never shown.
pub fn read_secret_file(what: &str, path: &Path) -> Result<Secret, GraphError> {
    let cannot_read = |e: std::io::Error| {
        GraphError::Config(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    };
    let mut file = std::fs::File::open(path).map_err(cannot_read)?;
    // The mode of the file opened (not of a name that may change in between).
    if let Some(warning) = file
        .metadata()
        .ok()
        .and_then(|m| open_to_others(what, path, &m))
    {
        eprintln!("{warning}");
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(cannot_read)?;
    let s = text.lines().next().unwrap_or("").trim().to_string();
    if s.is_empty() {
        return Err(GraphError::Config(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(s))
}

/// The warning for a secret file that its group or other users can read or change (any of
/// the mode bits 077, as ssh checks), or `None` when only its owner can. Unix only.
#[cfg(unix)]
fn open_to_others(what: &str, path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || mode & 0o077 == 0 {
        return None;
    }
    let who = if mode & 0o044 != 0 {
        "can be read by other users"
    } else {
        "is open to other users"
    };
    Some(format!(
        "warning: the {what} file {} {who} (mode {mode:04o}): run chmod 600 {}",
        path.display(),
        shell_word(&path.display().to_string())
    ))
}

/// `s` as one word for a POSIX shell: as it is when it is plain, else in single quotes.
#[cfg(unix)]
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(not(unix))]
fn open_to_others(_what: &str, _path: &Path, _meta: &std::fs::Metadata) -> Option<String> {
    None
}

impl GraphConfig {
    /// The one check of the pacing options, whichever way the configuration was built (a
    /// tenant or the simulator): a zero or non-finite rate would make the run wait forever.
    pub fn check_pacing(&self) -> Result<(), GraphError> {
        check_pacing(
            self.ru_per_10s,
            self.writes_per_sec,
            self.concurrency,
            self.timeout.as_secs_f64(),
        )
    }
}

/// Checks pacing options: `--rate` and `--write-rate` positive and finite, `--concurrency`
/// within 1..=64, `--timeout` above zero.
pub fn check_pacing(
    ru_per_10s: Option<u32>,
    writes_per_sec: Option<f64>,
    concurrency: usize,
    timeout_secs: f64,
) -> Result<(), GraphError> {
    let bad = |m: &str| Err(GraphError::Config(m.to_string()));
    if ru_per_10s == Some(0) {
        return bad("--rate must be at least 1 (resource units per 10 seconds)");
    }
    if let Some(r) = writes_per_sec {
        if !(r > 0.0 && r.is_finite()) {
            return bad("--write-rate must be a positive number of writes per second");
        }
    }
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(GraphError::Config(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}"
        )));
    }
    if !(timeout_secs > 0.0 && timeout_secs.is_finite()) {
        return bad("--timeout must be at least 1 second");
    }
    Ok(())
}

/// The most requests in flight `--concurrency` allows.
pub const MAX_CONCURRENCY: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        let e = check_base_url("--graph-url", "https://admin:hunter2@graph.microsoft.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("user name or password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = check_base_url("--graph-url", "http://admin:hunter2@graph.example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain http") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8400",
            "http://127.5.6.7",
            "http://[::1]:80/",
            "http://localhost:1",
        ] {
            assert!(check_base_url("x", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://graph.microsoft.com",
            "http://[::2]",
            "ftp://localhost",
            "nonsense",
        ] {
            assert!(
                matches!(check_base_url("x", bad), Err(GraphError::Config(_))),
                "{bad}"
            );
        }
        assert!(check_base_url("x", "https://graph.example.org").is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_open_to_others_are_named_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.txt");
        std::fs::write(&p, "hunter2-secret\n").unwrap();
        let warn = |mode: u32| {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            open_to_others("client secret", &p, &std::fs::metadata(&p).unwrap())
        };
        for ok in [0o600, 0o400, 0o700] {
            assert_eq!(warn(ok), None, "{ok:o}");
        }
        let w = warn(0o644).expect("0644 warns");
        assert!(w.contains(&format!("chmod 600 {}", p.display())), "{w}");
        assert!(w.contains("client secret") && w.contains("0644"), "{w}");
        assert!(!w.contains("hunter2"), "{w}");
        assert!(warn(0o640).unwrap().contains("read by other users"));
        assert!(warn(0o620).unwrap().contains("open to other users"));
        assert_eq!(shell_word("/a b/it's"), "'/a b/it'\\''s'");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_secret_file("client secret", &p).unwrap().expose(),
            "hunter2-secret"
        );
    }

    #[test]
    fn pacing_that_would_wait_forever_is_refused() {
        assert!(check_pacing(None, None, 8, 60.0).is_ok());
        assert!(check_pacing(Some(0), None, 8, 60.0).is_err());
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(check_pacing(None, Some(w), 8, 60.0).is_err(), "{w}");
        }
        assert!(check_pacing(None, None, 0, 60.0).is_err());
        assert!(check_pacing(None, None, 65, 60.0).is_err());
        assert!(check_pacing(None, None, 64, 60.0).is_ok());
        assert!(check_pacing(None, None, 8, 0.0).is_err());
    }
}
