//! The server: a loopback listener whose connections can be cut without an answer (for
//! injected faults), and one axum handler that reads the whole request and dispatches it to the
//! token endpoint, the Graph API (one request or a `$batch`) or the inspection API. The shapes
//! it sends are in `wire.rs`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::graph::{execute, split_version, Item};
use super::state::Sim;
use super::wire::{graph_error, header, new_guid, Body, Ctx, Headers, Resp};
use super::{auth, batch, faults, inspect, managed_identity, signin};

/// Listener whose connections carry a kill switch.
pub(super) struct SimListener(pub TcpListener);

/// The kill switch of one connection: once set, reads and writes fail, so hyper closes the
/// connection without writing the answer and the client sees a connection error.
#[derive(Clone, Debug)]
pub(super) struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    pub(super) fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub(super) struct KillIo {
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

/// A handler's result: the answer, and whether to cut the connection instead of sending it.
pub(super) struct Outcome {
    pub resp: Resp,
    pub drop: bool,
}

impl From<Resp> for Outcome {
    fn from(resp: Resp) -> Self {
        Outcome { resp, drop: false }
    }
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
pub(super) async fn handle(
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
        inspect::handle(&sim, &method, &path, query.as_deref(), &bytes, &ctx).into()
    } else if let Some((tenant, endpoint)) = auth::match_path(&path) {
        auth::handle(&sim, &ctx, &method, &tenant, endpoint, &host, &path, &bytes).into()
    } else if let Some((tenant, page)) = signin::match_path(&path) {
        signin::handle(&sim, &ctx, &method, &tenant, page, &path, query.as_deref()).into()
    } else if let Some(ep) = managed_identity::match_path(&path) {
        managed_identity::handle(&sim, &ctx, &method, ep, &path, query.as_deref(), &headers).into()
    } else {
        graph_http(
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

/// A Graph request over HTTP: version, injected latency and dropped connection, token check,
/// then `$batch` or one request, and a lost write (applied, then the connection cut).
async fn graph_http(
    sim: &Arc<Sim>,
    ctx: &Ctx,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &Headers,
    body: &[u8],
) -> Outcome {
    let url = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let Some((ver, rest)) = split_version(path) else {
        let seg = path.trim_start_matches('/').split('/').next().unwrap_or("");
        return graph_error(ctx, 400, "BadRequest", &format!("Invalid version: {seg}")).into();
    };
    let (latency, drop) = faults::roll_connection(&mut sim.lock());
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if drop {
        let mut st = sim.lock();
        st.counters.dropped += 1;
        sim.log_request(&mut st, ctx, method, &url, 0, None, None);
        return Outcome {
            resp: Resp::empty(500),
            drop: true,
        };
    }
    let ident = match auth::bearer(sim, ctx, headers) {
        Ok(i) => i,
        Err(resp) => {
            let mut st = sim.lock();
            st.counters.unauthorized += 1;
            sim.log_request(&mut st, ctx, method, &url, resp.status, None, None);
            return resp.into();
        }
    };
    let (resp, wrote) =
        if rest.eq_ignore_ascii_case("$batch") || rest.eq_ignore_ascii_case("%24batch") {
            if method != "POST" {
                (
                    graph_error(ctx, 405, "BadRequest", "Only POST is allowed on $batch."),
                    false,
                )
            } else {
                let r = batch::handle(sim, ctx, &ident, ver, headers, body);
                let mut st = sim.lock();
                st.counters.batches += 1;
                sim.log_request(
                    &mut st,
                    ctx,
                    method,
                    &url,
                    r.0.status,
                    Some(&ident.client_id),
                    None,
                );
                r
            }
        } else {
            let item = Item {
                method,
                ver,
                rest,
                query,
                headers,
                body,
                batch_id: None,
            };
            execute(sim, ctx, &ident, &item)
        };
    if wrote {
        let mut st = sim.lock();
        if faults::roll_lost_write(&mut st) {
            st.counters.lost_writes += 1;
            st.counters.dropped += 1;
            return Outcome { resp, drop: true };
        }
    }
    resp.into()
}
