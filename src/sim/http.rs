//! The HTTP layer: a loopback listener whose connections can be cut without an answer (for
//! injected faults), one axum handler that reads the whole request and dispatches it to the
//! token endpoint, the Graph API or the inspection API, and Graph's response and error shapes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::state::Sim;

/// Listener whose connections carry a kill switch.
pub(crate) struct SimListener(pub TcpListener);

/// The kill switch of one connection: once set, reads and writes fail, so hyper closes the
/// connection without writing the answer and the client sees a connection error.
#[derive(Clone, Debug)]
pub(crate) struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    pub fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub(crate) struct KillIo {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

fn killed_err() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by the simulator",
    )
}

impl AsyncRead for KillIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_err()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_err()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_err()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_err()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Listener for SimListener {
    type Io = KillIo;
    type Addr = ConnKill;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    return (
                        KillIo {
                            inner: s,
                            kill: kill.clone(),
                        },
                        ConnKill(kill),
                    );
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()?;
        Ok(ConnKill(Arc::new(AtomicBool::new(false))))
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Per-request context: ids for the headers and the error envelope, and the base URL the
/// client used (for `@odata.nextLink` and `@odata.context`).
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub request_id: String,
    pub client_request_id: String,
    pub base: String,
}

pub(crate) fn new_guid() -> String {
    let h = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

pub(crate) fn graph_date() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[derive(Clone, Debug)]
pub(crate) enum Body {
    Empty,
    Json(Value),
    Text(String),
}

/// An answer, before it becomes HTTP (or a `$batch` item).
#[derive(Clone, Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Resp {
    pub fn json(status: u16, v: Value) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Body::Json(v),
        }
    }
    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Body::Empty,
        }
    }
    pub fn text(status: u16, s: String) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Body::Text(s),
        }
    }
    pub fn with_header(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// A Graph error before it gets its envelope.
#[derive(Clone, Debug)]
pub(crate) struct GErr {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl GErr {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> GErr {
        GErr {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> GErr {
        GErr::new(400, "BadRequest", message)
    }
    pub fn unsupported(message: impl Into<String>) -> GErr {
        GErr::new(400, "Request_UnsupportedQuery", message)
    }
    pub fn denied() -> GErr {
        GErr::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }
    pub fn not_found(key: &str) -> GErr {
        GErr::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
    pub fn resp(&self, ctx: &Ctx) -> Resp {
        graph_error(ctx, self.status, self.code, &self.message)
    }
}

/// Graph's error envelope.
pub(crate) fn graph_error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Resp {
    Resp::json(
        status,
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_date(),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id,
            }
        }}),
    )
}

/// The 429 answer, as the reference shows it.
pub(crate) fn too_many(ctx: &Ctx, retry_after: &str) -> Resp {
    Resp::json(
        429,
        json!({"error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": graph_date(),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id,
                "status": "429",
            }
        }}),
    )
    .with_header("Retry-After", retry_after)
}

/// A handler's result: the answer, and whether to cut the connection instead of sending it.
pub(crate) struct Outcome {
    pub resp: Resp,
    pub drop: bool,
}

impl From<Resp> for Outcome {
    fn from(resp: Resp) -> Self {
        Outcome { resp, drop: false }
    }
}

/// Request headers, names in lower case.
pub(crate) type Headers = Vec<(String, String)>;

pub(crate) fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

struct InFlight<'a>(&'a Sim);

impl<'a> InFlight<'a> {
    fn enter(sim: &'a Sim) -> InFlight<'a> {
        let mut st = sim.lock();
        st.in_flight += 1;
        st.counters.peak_concurrency = st.counters.peak_concurrency.max(st.in_flight);
        InFlight(sim)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

/// The one handler behind every path.
pub(crate) async fn handle(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(conn): ConnectInfo<ConnKill>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let method = parts.method.as_str().to_string();
    let headers: Headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let host = header(&headers, "host").unwrap_or("127.0.0.1").to_string();
    let ctx = Ctx {
        request_id: new_guid(),
        client_request_id: header(&headers, "client-request-id")
            .map(str::to_string)
            .unwrap_or_else(new_guid),
        base: format!("http://{host}"),
    };
    let inspect = path.starts_with("/_sim/") || path == "/_sim";
    let _guard = if inspect {
        None
    } else {
        sim.lock().counters.http_requests += 1;
        Some(InFlight::enter(&sim))
    };
    let bytes = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(b) => b,
        Err(_) => {
            return into_http(
                graph_error(&ctx, 413, "BadRequest", "Request body too large."),
                &ctx,
            )
        }
    };
    let outcome: Outcome = if inspect {
        super::inspect::handle(&sim, &method, &path, query.as_deref(), &bytes, &ctx).into()
    } else if let Some((tenant, endpoint)) = super::auth::match_path(&path) {
        super::auth::handle(&sim, &ctx, &method, &tenant, endpoint, &host, &path, &bytes).into()
    } else {
        super::graph::handle_http(
            &sim,
            &ctx,
            &method,
            &path,
            query.as_deref(),
            &headers,
            &bytes,
        )
        .await
    };
    if outcome.drop {
        conn.kill();
    }
    into_http(outcome.resp, &ctx)
}

fn into_http(resp: Resp, ctx: &Ctx) -> Response {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = match resp.body {
        Body::Empty => status.into_response(),
        Body::Json(v) => (
            status,
            [("content-type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")],
            v.to_string(),
        )
            .into_response(),
        Body::Text(s) => (status, [("content-type", "text/plain")], s).into_response(),
    };
    let h = out.headers_mut();
    for (k, v) in resp
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([
            ("request-id", ctx.request_id.as_str()),
            ("client-request-id", ctx.client_request_id.as_str()),
        ])
    {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    out
}

/// Parses a query string into decoded pairs (`+` is a space).
pub(crate) fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub(crate) fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes a path segment (`+` stays a plus).
pub(crate) fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
