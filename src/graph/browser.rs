//! Browser sign-in (`--interactive`): the OAuth 2.0 authorization code flow with PKCE (S256),
//! as `Connect-MgGraph` and `az login` do it. The tool listens on 127.0.0.1 on a random port,
//! sends the admin's browser to the `/authorize` page with `redirect_uri=http://localhost:PORT`,
//! and takes the one answer the browser brings back (the code, or Entra's error), checking
//! `state`. The browser is opened with the `webbrowser` crate, which honours `BROWSER`; the URL
//! is printed too, for a machine without one.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{GraphError, Secret};

/// How long the admin has to finish signing in.
pub(super) const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// `n` random bytes from the OS, base64url without padding.
pub(super) fn random(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the OS random number generator works");
    URL_SAFE_NO_PAD.encode(b)
}

/// A PKCE pair: the verifier (kept, sent with the code) and its S256 challenge (sent to
/// `/authorize`).
pub(super) struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    pub(super) fn new() -> Pkce {
        // 32 bytes: a 43-character verifier (RFC 7636 asks for 43 to 128).
        let verifier = random(32);
        Pkce {
            challenge: challenge_of(&verifier),
            verifier: Secret::new(verifier),
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// `BASE64URL(SHA256(verifier))`.
pub(super) fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// The `/authorize` URL the browser is sent to.
pub(super) fn authorize_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    challenge: &str,
) -> String {
    let mut url = reqwest::Url::parse(endpoint).expect("the sign-in URL was checked");
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_mode", "query")
        .append_pair("scope", scope)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("prompt", "select_account");
    url.to_string()
}

/// Opens the system browser (or the command in `BROWSER`) on `url`. False if none could be
/// started.
pub(super) fn open(url: &str) -> bool {
    webbrowser::open(url).is_ok()
}

/// The loopback listener the browser comes back to.
pub(super) struct Callback {
    listener: TcpListener,
    /// `http://localhost:PORT` (Entra matches `http://localhost` on any port).
    pub redirect_uri: String,
}

impl Callback {
    /// Listens on 127.0.0.1, on a port the OS picks.
    pub(super) async fn bind() -> Result<Callback, GraphError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            GraphError::Auth(format!(
                "cannot listen on 127.0.0.1 for the browser's answer: {e}"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| GraphError::Auth(e.to_string()))?
            .port();
        Ok(Callback {
            listener,
            redirect_uri: format!("http://localhost:{port}"),
        })
    }

    /// Waits for the browser's answer (at most `timeout`) and returns the authorization code.
    /// Requests that are not an answer (a favicon) get 404 and are not counted.
    pub(super) async fn wait(self, state: &str, timeout: Duration) -> Result<Secret, GraphError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept()).await;
            let (mut conn, _) = match accepted {
                Err(_) => {
                    let within = match timeout.as_secs() {
                        s if s >= 60 => format!("{} minutes", s / 60),
                        s => format!("{s} seconds"),
                    };
                    return Err(GraphError::Auth(format!(
                        "the browser sign-in was not finished within {within}: run again and \
                         finish signing in in the browser (or use --device-code where no \
                         browser can reach this machine)"
                    )));
                }
                Ok(Err(_)) => continue,
                Ok(Ok(c)) => c,
            };
            let Some(target) = read_request_target(&mut conn).await else {
                let _ = respond(&mut conn, 400, "Bad request", "Not a sign-in answer.").await;
                continue;
            };
            match answer(&target, state) {
                Answer::NotOurs => {
                    let _ = respond(&mut conn, 404, "Not found", "Not a sign-in answer.").await;
                }
                Answer::Code(code) => {
                    let _ = respond(
                        &mut conn,
                        200,
                        "Signed in",
                        "You are signed in to mfa-bulk. You can close this tab and go back to \
                         the terminal.",
                    )
                    .await;
                    return Ok(code);
                }
                Answer::Failed(message) => {
                    let _ = respond(
                        &mut conn,
                        400,
                        "Sign-in failed",
                        &format!("Sign-in failed: {message}. You can close this tab."),
                    )
                    .await;
                    return Err(GraphError::Auth(message));
                }
            }
        }
    }
}

/// What one request to the loopback listener says.
#[derive(Debug)]
enum Answer {
    /// Not the sign-in answer (another path, no `code` or `error`).
    NotOurs,
    Code(Secret),
    Failed(String),
}

fn answer(target: &str, state: &str) -> Answer {
    let Ok(url) = reqwest::Url::parse(&format!("http://localhost{target}")) else {
        return Answer::NotOurs;
    };
    if url.path() != "/" {
        return Answer::NotOurs;
    }
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let (code, error) = (get("code"), get("error"));
    if code.is_none() && error.is_none() {
        return Answer::NotOurs;
    }
    if get("state").as_deref() != Some(state) {
        return Answer::Failed(
            "the browser's answer does not belong to this sign-in (its state differs): run \
             again"
                .into(),
        );
    }
    if let Some(error) = error {
        let desc = get("error_description").unwrap_or_default();
        let desc = desc.lines().next().unwrap_or("").trim().to_string();
        let shown = if desc.is_empty() {
            error.clone()
        } else {
            format!("{error}: {desc}")
        };
        return Answer::Failed(match error.as_str() {
            "access_denied" => format!(
                "sign-in was cancelled or consent was denied in the browser ({shown}). An \
                 admin can grant consent for the tenant, or run again and accept"
            ),
            "invalid_request" | "unauthorized_client" | "invalid_client" => format!(
                "Entra refused the sign-in request ({shown}): check --tenant and --client-id, \
                 and that the app has the \"Mobile and desktop applications\" platform with \
                 http://localhost as a redirect URI"
            ),
            _ => format!("Entra refused the sign-in ({shown})"),
        });
    }
    match code.filter(|c| !c.is_empty()) {
        Some(c) => Answer::Code(Secret::new(c)),
        None => Answer::Failed("the browser's answer holds an empty code".into()),
    }
}

/// Reads a request's head and returns its target (`/?code=…`); None if it is not one.
async fn read_request_target(conn: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    let read = async {
        loop {
            let n = conn.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 32 * 1024 {
                return Some(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET" && target.starts_with('/')).then(|| target.to_string())
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn respond(
    conn: &mut TcpStream,
    status: u16,
    title: &str,
    text: &str,
) -> std::io::Result<()> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mfa-bulk: {}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{}</h1><p>{}</p></body></html>",
        escape_html(title),
        escape_html(title),
        escape_html(text)
    );
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_of_the_verifier() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::new();
        assert_eq!(p.verifier.expose().len(), 43);
        assert_ne!(p.verifier.expose(), Pkce::new().verifier.expose());
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let u = authorize_url(
            "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/authorize",
            "cid",
            "http://localhost:5000",
            "https://graph.microsoft.com/User.Read.All offline_access",
            "st",
            "ch",
        );
        for p in [
            "client_id=cid",
            "response_type=code",
            "redirect_uri=http%3A%2F%2Flocalhost%3A5000",
            "scope=https%3A%2F%2Fgraph.microsoft.com%2FUser.Read.All+offline_access",
            "state=st",
            "code_challenge=ch",
            "code_challenge_method=S256",
        ] {
            assert!(u.contains(p), "{p} in {u}");
        }
    }

    #[test]
    fn answers_are_read_and_checked() {
        assert!(matches!(answer("/favicon.ico", "s"), Answer::NotOurs));
        assert!(matches!(answer("/", "s"), Answer::NotOurs));
        assert!(
            matches!(answer("/?code=abc&state=s", "s"), Answer::Code(c) if c.expose() == "abc")
        );
        assert!(
            matches!(answer("/?code=abc&state=other", "s"), Answer::Failed(m) if m.contains("state"))
        );
        match answer(
            "/?error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent.&state=s",
            "s",
        ) {
            Answer::Failed(m) => assert!(
                m.contains("consent was denied") && m.contains("AADSTS65004"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn one_answer_over_loopback_and_a_timeout() {
        let cb = Callback::bind().await.unwrap();
        let port = cb.redirect_uri.rsplit(':').next().unwrap().to_string();
        let waiter = tokio::spawn(cb.wait("st-1", Duration::from_secs(20)));
        let send = |target: &'static str| {
            let port = port.clone();
            async move {
                let mut s = TcpStream::connect(format!("127.0.0.1:{port}"))
                    .await
                    .unwrap();
                s.write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        };
        assert!(send("/favicon.ico").await.starts_with("HTTP/1.1 404"));
        let page = send("/?code=the-code&state=st-1").await;
        assert!(
            page.starts_with("HTTP/1.1 200") && page.contains("close this tab"),
            "{page}"
        );
        assert!(!page.contains("the-code"));
        assert_eq!(waiter.await.unwrap().unwrap().expose(), "the-code");

        let cb = Callback::bind().await.unwrap();
        let e = cb.wait("x", Duration::from_millis(50)).await.unwrap_err();
        assert!(e.to_string().contains("not finished within"), "{e}");
    }
}
