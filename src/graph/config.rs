//! Clouds, URLs and `GraphConfig::from_args`: flags first, then the conventional environment.

use std::path::Path;
use std::time::Duration;

use super::{Credential, GraphConfig, GraphError, Secret};
use crate::cli::{Cloud, GraphArgs};

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

/// Reads a secret from a file: the first line, trimmed (editors add newlines).
fn read_secret_file(what: &str, path: &Path) -> Result<Secret, GraphError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        GraphError::Config(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?;
    let s = text.lines().next().unwrap_or("").trim().to_string();
    if s.is_empty() {
        return Err(GraphError::Config(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(s))
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `from_args` with the environment passed in (tests use a map, the tool `std::env::var`).
pub fn from_args_with_env(
    args: &GraphArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GraphConfig, GraphError> {
    let env = |k: &str| nonempty(env(k));
    let (mut cloud, default_login, default_graph) = cloud_urls(args.cloud);
    let graph_override = nonempty(args.graph_url.clone()).or_else(|| env("MFA_BULK_GRAPH_URL"));
    let login_override = nonempty(args.login_url.clone())
        .or_else(|| env("MFA_BULK_LOGIN_URL"))
        .or_else(|| env("AZURE_AUTHORITY_HOST"));
    if graph_override.is_some() || login_override.is_some() {
        cloud = "custom";
    }
    let graph_url = check_base_url(
        "the Graph URL (--graph-url)",
        graph_override.as_deref().unwrap_or(default_graph),
    )?;
    let login_url = check_base_url(
        "the sign-in URL (--login-url / AZURE_AUTHORITY_HOST)",
        login_override.as_deref().unwrap_or(default_login),
    )?;

    let tenant = nonempty(args.tenant.clone()).or_else(|| env("AZURE_TENANT_ID"));
    let client_id = nonempty(args.client_id.clone()).or_else(|| env("AZURE_CLIENT_ID"));
    let cert_path = args
        .certificate
        .clone()
        .or_else(|| env("AZURE_CLIENT_CERTIFICATE_PATH").map(Into::into));

    let credential = if args.device_code {
        Some(Credential::DeviceCode)
    } else if let Some(path) = cert_path {
        let password = match &args.certificate_password_file {
            Some(p) => Some(read_secret_file("certificate password", p)?),
            None => env("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new),
        };
        Some(Credential::Certificate { path, password })
    } else if let Some(p) = &args.client_secret_file {
        Some(Credential::Secret(read_secret_file("client secret", p)?))
    } else if let Some(t) = env("MFA_BULK_ACCESS_TOKEN") {
        Some(Credential::AccessToken(Secret::new(t)))
    } else {
        env("AZURE_CLIENT_SECRET").map(|s| Credential::Secret(Secret::new(s)))
    };
    let no_credential = || {
        GraphError::Config(
            "no way to sign in: pass --client-secret-file FILE (or set AZURE_CLIENT_SECRET), \
             --certificate FILE (or AZURE_CLIENT_CERTIFICATE_PATH), --device-code to sign in as \
             an admin at this terminal, or set MFA_BULK_ACCESS_TOKEN; or use --sim to try the \
             built-in simulator"
                .into(),
        )
    };

    let needs_ids = !matches!(credential, Some(Credential::AccessToken(_)));
    let tenant = match tenant {
        Some(t) => t,
        None if !needs_ids => String::new(),
        None => return Err(GraphError::Config(
            "no tenant: pass --tenant or set AZURE_TENANT_ID, or use --sim to try the built-in \
                 simulator"
                .into(),
        )),
    };
    if needs_ids
        && !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Err(GraphError::Config(format!(
            "the tenant '{tenant}' is not a directory id or domain (e.g. contoso.onmicrosoft.com)"
        )));
    }
    let client_id = match client_id {
        Some(c) => c,
        None if !needs_ids => String::new(),
        None => {
            return Err(GraphError::Config(
                "no application (client) id: pass --client-id or set AZURE_CLIENT_ID (the app \
                 registration's \"Application (client) ID\"), or use --sim to try the built-in \
                 simulator"
                    .into(),
            ))
        }
    };
    let credential = credential.ok_or_else(no_credential)?;
    if args.concurrency == 0 {
        return Err(GraphError::Config(
            "--concurrency must be at least 1".into(),
        ));
    }
    if args.timeout == 0 {
        return Err(GraphError::Config(
            "--timeout must be at least 1 second".into(),
        ));
    }
    if let Some(r) = args.write_rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(GraphError::Config(
                "--write-rate must be a positive number".into(),
            ));
        }
    }
    if args.rate == Some(0) {
        return Err(GraphError::Config("--rate must be at least 1".into()));
    }
    Ok(GraphConfig {
        graph_url,
        login_url,
        cloud: cloud.to_string(),
        tenant,
        client_id,
        credential,
        ru_per_10s: args.rate,
        writes_per_sec: args.write_rate,
        concurrency: args.concurrency,
        timeout: Duration::from_secs(args.timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn args() -> GraphArgs {
        GraphArgs {
            sim: false,
            sim_tenant: None,
            tenant: None,
            client_id: None,
            client_secret_file: None,
            certificate: None,
            certificate_password_file: None,
            device_code: false,
            cloud: Cloud::Global,
            graph_url: None,
            login_url: None,
            rate: None,
            write_rate: None,
            concurrency: 8,
            timeout: 60,
        }
    }

    fn cfg(a: &GraphArgs, env: &[(&str, &str)]) -> Result<GraphConfig, GraphError> {
        let m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_args_with_env(a, &|k| m.get(k).cloned())
    }

    const ENV: &[(&str, &str)] = &[
        ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
        ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
    ];

    #[test]
    fn clouds_map_to_the_documented_urls() {
        for (cloud, login, graph) in [
            (
                Cloud::Global,
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            (
                Cloud::Usgov,
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            (
                Cloud::UsgovDod,
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            (
                Cloud::China,
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        ] {
            let mut a = args();
            a.cloud = cloud;
            let c = cfg(&a, ENV).unwrap();
            assert_eq!(c.login_url, login);
            assert_eq!(c.graph_url, graph);
        }
    }

    #[test]
    fn environment_fills_tenant_client_and_secret() {
        let c = cfg(&args(), ENV).unwrap();
        assert_eq!(c.tenant, "contoso.onmicrosoft.com");
        assert_eq!(c.client_id, "11111111-2222-3333-4444-555555555555");
        assert!(matches!(&c.credential, Credential::Secret(s) if s.expose() == "s3cr3t-value"));
        assert_eq!(c.cloud, "global");
    }

    #[test]
    fn missing_tenant_says_what_to_do() {
        let e = cfg(&args(), &ENV[1..]).unwrap_err().to_string();
        assert!(
            e.contains("--tenant") && e.contains("AZURE_TENANT_ID") && e.contains("--sim"),
            "{e}"
        );
    }

    #[test]
    fn missing_credential_says_what_to_do() {
        let e = cfg(&args(), &ENV[..2]).unwrap_err().to_string();
        assert!(e.starts_with("no way to sign in"), "{e}");
        assert!(
            e.contains("--client-secret-file") && e.contains("--device-code"),
            "{e}"
        );
        // With nothing at all, the tenant is asked for first.
        let e = cfg(&args(), &[]).unwrap_err().to_string();
        assert!(e.starts_with("no tenant"), "{e}");
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.txt");
        std::fs::write(&p, "from-file \r\n").unwrap();
        let mut a = args();
        a.client_secret_file = Some(p);
        let c = cfg(&a, ENV).unwrap();
        assert!(matches!(&c.credential, Credential::Secret(s) if s.expose() == "from-file"));
    }

    #[test]
    fn env_token_needs_no_tenant() {
        let c = cfg(&args(), &[("MFA_BULK_ACCESS_TOKEN", "eyJ.x.y")]).unwrap();
        assert!(matches!(c.credential, Credential::AccessToken(_)));
    }

    #[test]
    fn authority_host_overrides_login_and_makes_cloud_custom() {
        let mut env = ENV.to_vec();
        env.push(("AZURE_AUTHORITY_HOST", "https://login.example.test/"));
        let c = cfg(&args(), &env).unwrap();
        assert_eq!(c.login_url, "https://login.example.test");
        assert_eq!(c.cloud, "custom");
    }

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

    #[test]
    fn debug_of_config_never_shows_the_secret() {
        let c = cfg(&args(), ENV).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-value"), "{d}");
        assert!(d.contains("[redacted]"));
    }
}
