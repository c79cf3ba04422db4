//! Managed identity (`--managed-identity [CLIENT_ID]`): the credential of a job running in
//! Azure, read the way the Azure SDKs read it.
//!
//! - App Service, Functions, Container Apps and Azure Automation set `IDENTITY_ENDPOINT` and
//!   `IDENTITY_HEADER`: `GET $IDENTITY_ENDPOINT?resource=…&api-version=2019-08-01` with header
//!   `X-IDENTITY-HEADER`.
//! - Azure Arc servers set `IDENTITY_ENDPOINT` and `IMDS_ENDPOINT` (the local agent): the first
//!   request (`api-version=2020-06-01`, `Metadata: true`) is answered 401 with
//!   `WWW-Authenticate: Basic realm=<key file>`; the key file (in the agent's own folder, only
//!   readable by administrators) is read and the request sent again with
//!   `Authorization: Basic <key>`.
//! - Elsewhere (Azure VMs, scale sets), the instance metadata service:
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with header `Metadata: true`. This link-local address is the one plain-http address off
//!   loopback the tool talks to. `MFA_BULK_IMDS_URL` replaces it (loopback only: tests).
//!
//! A user-assigned identity is chosen with `client_id=`. The answer carries `access_token` and
//! `expires_on` (epoch seconds, as a string) or `expires_in`.

use std::time::Duration;

use serde_json::Value;

use super::{GraphError, Secret};

/// The instance metadata service.
pub const IMDS_URL: &str = "http://169.254.169.254";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
const IMDS_API_VERSION: &str = "2018-02-01";
const APP_SERVICE_API_VERSION: &str = "2019-08-01";
const ARC_API_VERSION: &str = "2020-06-01";

/// Where the identity's tokens come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// `IDENTITY_ENDPOINT` with `IDENTITY_HEADER` (App Service, Functions, Automation).
    AppService { endpoint: String, header: Secret },
    /// The instance metadata service at this base URL.
    Imds { base: String },
    /// The Azure Arc agent at `IDENTITY_ENDPOINT` (with `IMDS_ENDPOINT` set).
    Arc { endpoint: String },
}

/// A managed identity to sign in as.
#[derive(Clone, Debug)]
pub struct ManagedIdentity {
    /// A user-assigned identity's client id; None for the system-assigned one.
    pub client_id: Option<String>,
    pub source: Source,
}

impl ManagedIdentity {
    /// From the environment, as the Azure SDKs read it (`IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER`, else the metadata service, whose URL `MFA_BULK_IMDS_URL` replaces).
    pub fn from_env(
        client_id: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ManagedIdentity, GraphError> {
        let env = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let source = match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
            (Some(endpoint), Some(header)) => {
                let endpoint = super::config::check_base_url("IDENTITY_ENDPOINT", &endpoint)?;
                Source::AppService {
                    endpoint,
                    header: Secret::new(header),
                }
            }
            (Some(endpoint), None) if env("IMDS_ENDPOINT").is_some() => {
                let endpoint = super::config::check_base_url("IDENTITY_ENDPOINT", &endpoint)?;
                if client_id.as_deref().is_some_and(|c| !c.trim().is_empty()) {
                    return Err(GraphError::Config(
                        "Azure Arc servers have only a system-assigned managed identity: use \
                         --managed-identity without a client id"
                            .into(),
                    ));
                }
                Source::Arc { endpoint }
            }
            _ => match env("MFA_BULK_IMDS_URL") {
                Some(url) => {
                    let base = super::config::check_base_url("MFA_BULK_IMDS_URL", &url)?;
                    if !base.starts_with("http://") {
                        return Err(GraphError::Config(
                            "MFA_BULK_IMDS_URL must be a loopback http:// URL (it stands in for \
                             the instance metadata service in tests)"
                                .into(),
                        ));
                    }
                    Source::Imds { base }
                }
                None => Source::Imds {
                    base: IMDS_URL.into(),
                },
            },
        };
        Ok(ManagedIdentity {
            client_id: client_id.filter(|c| !c.trim().is_empty()),
            source,
        })
    }

    /// What to call it in messages.
    pub fn describe(&self) -> String {
        let which = match &self.client_id {
            Some(c) => format!("the user-assigned managed identity {c}"),
            None => "the system-assigned managed identity".into(),
        };
        match &self.source {
            Source::AppService { .. } => format!("{which} (IDENTITY_ENDPOINT)"),
            Source::Arc { .. } => format!("{which} (Azure Arc agent)"),
            Source::Imds { base } if base == IMDS_URL => {
                format!("{which} (instance metadata service)")
            }
            Source::Imds { base } => format!("{which} (metadata service at {base})"),
        }
    }

    /// One token for `resource` (e.g. `https://graph.microsoft.com`). Throttled and failing
    /// answers (429, 5xx, and 404/410 while the metadata service is updating) are tried again.
    pub async fn fetch(
        &self,
        http: &reqwest::Client,
        resource: &str,
    ) -> Result<(Secret, Duration), GraphError> {
        let mut tries = 0u32;
        let mut arc_key: Option<Secret> = None;
        loop {
            tries += 1;
            let last = tries >= 4;
            let req = match &self.source {
                Source::AppService { endpoint, header } => {
                    let mut q = vec![
                        ("resource", resource),
                        ("api-version", APP_SERVICE_API_VERSION),
                    ];
                    if let Some(c) = &self.client_id {
                        q.push(("client_id", c));
                    }
                    http.get(endpoint)
                        .query(&q)
                        .header("X-IDENTITY-HEADER", header.expose())
                }
                Source::Imds { base } => {
                    let mut q = vec![("api-version", IMDS_API_VERSION), ("resource", resource)];
                    if let Some(c) = &self.client_id {
                        q.push(("client_id", c));
                    }
                    http.get(format!("{base}{IMDS_PATH}"))
                        .query(&q)
                        .header("Metadata", "true")
                }
                Source::Arc { endpoint } => {
                    let r = http
                        .get(endpoint)
                        .query(&[("api-version", ARC_API_VERSION), ("resource", resource)])
                        .header("Metadata", "true");
                    match &arc_key {
                        Some(k) => r.header("Authorization", format!("Basic {}", k.expose())),
                        None => r,
                    }
                }
            };
            // The metadata service answers at once on an Azure VM; elsewhere nothing answers,
            // and waiting longer will not change that (so it is not tried again).
            let imds = matches!(self.source, Source::Imds { .. });
            let limit = Duration::from_secs(if imds { 10 } else { 30 });
            let sent = tokio::time::timeout(limit, req.send()).await;
            let resp = match sent {
                Ok(Ok(r)) => r,
                Ok(Err(_)) | Err(_) if !last && !imds => {
                    tokio::time::sleep(super::retry::backoff(tries)).await;
                    continue;
                }
                Ok(Err(_)) | Err(_) => return Err(self.unreachable()),
            };
            let status = resp.status().as_u16();
            if status == 401 && arc_key.is_none() {
                if let Source::Arc { .. } = self.source {
                    let realm = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .and_then(arc_key_path)
                        .ok_or_else(|| {
                            GraphError::Auth(
                                "the Azure Arc agent did not name its key file (WWW-Authenticate)"
                                    .into(),
                            )
                        })?;
                    arc_key = Some(read_arc_key(&realm, &arc_key_dir())?);
                    continue;
                }
            }
            if !last && matches!(status, 404 | 410 | 429 | 500..=599) {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(super::parse_retry_after)
                    .unwrap_or_else(|| super::retry::backoff(tries));
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                continue;
            }
            let text = resp.text().await.unwrap_or_default();
            // Never echo this body: it may hold a token.
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status != 200 {
                return Err(GraphError::Auth(self.refused(status, &body)));
            }
            return read_reply(&body).ok_or_else(|| {
                GraphError::Auth(format!(
                    "{} answered without an access token",
                    self.describe()
                ))
            });
        }
    }

    fn unreachable(&self) -> GraphError {
        GraphError::Auth(match &self.source {
            Source::AppService { endpoint, .. } | Source::Arc { endpoint } => {
                format!("cannot reach the managed identity endpoint {endpoint} (IDENTITY_ENDPOINT)")
            }
            Source::Imds { base } => format!(
                "the instance metadata service ({base}) did not answer: --managed-identity works \
                 on an Azure VM or scale set with a managed identity, or in App Service, \
                 Functions or Azure Automation (which set IDENTITY_ENDPOINT and IDENTITY_HEADER)"
            ),
        })
    }

    fn refused(&self, status: u16, body: &Value) -> String {
        let msg = [
            body["error_description"].as_str(),
            body["message"].as_str(),
            body["Message"].as_str(),
            body["error"].as_str(),
        ]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
        let hint = if msg.to_ascii_lowercase().contains("identity not found") {
            match &self.client_id {
                Some(_) => {
                    ": is this user-assigned identity attached to this resource, and is \
                            its client id right?"
                }
                None => {
                    ": no system-assigned identity is enabled here (Identity → System \
                          assigned → On), or pass the client id of a user-assigned one"
                }
            }
        } else {
            ""
        };
        format!(
            "{} refused the token request (HTTP {status}: {msg}){hint}",
            self.describe()
        )
    }
}

/// The key file an Azure Arc agent names: `Basic realm=<path>`.
fn arc_key_path(www_authenticate: &str) -> Option<std::path::PathBuf> {
    let rest = www_authenticate.trim();
    let rest = rest
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("basic"))
        .map(|_| rest[5..].trim_start())?;
    let path = rest.strip_prefix("realm=")?.trim().trim_matches('"');
    (!path.is_empty()).then(|| std::path::PathBuf::from(path))
}

/// The folder the Azure Arc agent keeps its key files in: a key file anywhere else is refused
/// (a forged answer must not make the tool read and send another file).
fn arc_key_dir() -> std::path::PathBuf {
    if cfg!(windows) {
        let data = std::env::var("ProgramData").unwrap_or_else(|_| r"C:\ProgramData".into());
        std::path::Path::new(&data).join(r"AzureConnectedMachineAgent\Tokens")
    } else {
        std::path::PathBuf::from("/var/opt/azcmagent/tokens")
    }
}

/// Reads an Azure Arc key file: a `.key` file directly in `dir`, at most 4 KiB.
fn read_arc_key(path: &std::path::Path, dir: &std::path::Path) -> Result<Secret, GraphError> {
    let refused = |why: &str| {
        GraphError::Auth(format!(
            "the Azure Arc agent named the key file {}, which {why}: not read",
            path.display()
        ))
    };
    if path.parent() != Some(dir) {
        return Err(refused(&format!("is not in {}", dir.display())));
    }
    if path.extension().and_then(|e| e.to_str()) != Some("key") {
        return Err(refused("is not a .key file"));
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| refused(&e.to_string()))?;
    if !meta.file_type().is_file() || meta.len() > 4096 {
        return Err(refused("is not a plain file of at most 4 KiB"));
    }
    let key = std::fs::read_to_string(path).map_err(|e| {
        GraphError::Auth(format!(
            "cannot read the Azure Arc key file {} ({e}): run as an administrator, or as a \
             member of the himds group",
            path.display()
        ))
    })?;
    Ok(Secret::new(key.trim().to_string()))
}

/// `access_token` and its lifetime: from `expires_on` (epoch seconds, a string or a number),
/// else `expires_in`.
fn read_reply(body: &Value) -> Option<(Secret, Duration)> {
    let token = body["access_token"].as_str().filter(|s| !s.is_empty())?;
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    };
    let now = chrono::Utc::now().timestamp() as f64;
    let secs = num(&body["expires_on"])
        .map(|on| on - now)
        .or_else(|| num(&body["expires_in"]))
        .unwrap_or(3599.0)
        .max(1.0);
    Some((Secret::new(token), Duration::from_secs_f64(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn from(env: &[(&str, &str)], client: Option<&str>) -> Result<ManagedIdentity, GraphError> {
        let m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ManagedIdentity::from_env(client.map(str::to_string), &|k| m.get(k).cloned())
    }

    #[test]
    fn endpoint_is_chosen_as_the_azure_sdks_choose_it() {
        let mi = from(&[], None).unwrap();
        assert!(matches!(&mi.source, Source::Imds { base } if base == IMDS_URL));
        assert!(mi.describe().contains("system-assigned"));
        let mi = from(
            &[
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token"),
                ("IDENTITY_HEADER", "hdr-secret"),
            ],
            Some("c-1"),
        )
        .unwrap();
        assert!(
            matches!(&mi.source, Source::AppService { endpoint, .. } if endpoint.ends_with("/msi/token"))
        );
        assert!(!format!("{mi:?}").contains("hdr-secret"));
        // Only the endpoint without its header: the metadata service.
        let mi = from(&[("IDENTITY_ENDPOINT", "http://127.0.0.1:1/x")], None).unwrap();
        assert!(matches!(mi.source, Source::Imds { .. }));
        // The override is loopback only; an endpoint elsewhere must be https.
        assert!(from(&[("MFA_BULK_IMDS_URL", "http://127.0.0.1:9")], None).is_ok());
        assert!(from(&[("MFA_BULK_IMDS_URL", "http://10.0.0.5")], None).is_err());
        assert!(from(&[("MFA_BULK_IMDS_URL", "https://example.org")], None).is_err());
        assert!(from(
            &[
                ("IDENTITY_ENDPOINT", "http://10.1.2.3/msi"),
                ("IDENTITY_HEADER", "h")
            ],
            None
        )
        .is_err());
    }

    #[test]
    fn azure_arc_is_found_and_its_key_file_checked() {
        let mi = from(
            &[
                (
                    "IDENTITY_ENDPOINT",
                    "http://localhost:40342/metadata/identity/oauth2/token",
                ),
                ("IMDS_ENDPOINT", "http://localhost:40342"),
            ],
            None,
        )
        .unwrap();
        assert!(matches!(mi.source, Source::Arc { .. }));
        assert!(from(
            &[
                ("IDENTITY_ENDPOINT", "http://localhost:40342/x"),
                ("IMDS_ENDPOINT", "http://localhost:40342"),
            ],
            Some("user-assigned"),
        )
        .is_err());
        assert_eq!(
            arc_key_path("Basic realm=/var/opt/azcmagent/tokens/abc.key"),
            Some("/var/opt/azcmagent/tokens/abc.key".into())
        );
        assert_eq!(arc_key_path("Bearer realm=x"), None);
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k1.key");
        std::fs::write(&key, "secret-key\n").unwrap();
        assert_eq!(
            read_arc_key(&key, dir.path()).unwrap().expose(),
            "secret-key"
        );
        let other = tempfile::tempdir().unwrap();
        assert!(
            read_arc_key(&key, other.path()).is_err(),
            "outside the agent's folder"
        );
        let txt = dir.path().join("k1.txt");
        std::fs::write(&txt, "x").unwrap();
        assert!(read_arc_key(&txt, dir.path()).is_err(), "not a .key file");
        std::fs::write(dir.path().join("big.key"), "x".repeat(5000)).unwrap();
        assert!(read_arc_key(&dir.path().join("big.key"), dir.path()).is_err());
    }

    #[test]
    fn replies_are_read_from_strings_as_azure_sends_them() {
        let on = (chrono::Utc::now().timestamp() + 3600).to_string();
        let (t, life) =
            read_reply(&json!({"access_token": "a", "expires_on": on, "resource": "r", "token_type": "Bearer"}))
                .unwrap();
        assert_eq!(t.expose(), "a");
        assert!(life > Duration::from_secs(3500) && life <= Duration::from_secs(3600));
        let (_, life) = read_reply(&json!({"access_token": "a", "expires_in": "86399"})).unwrap();
        assert_eq!(life, Duration::from_secs(86399));
        assert!(read_reply(&json!({"expires_in": "1"})).is_none());
    }
}
