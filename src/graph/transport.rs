//! Sending: one request or one `$batch`, under the shared pacer, with bounded concurrency,
//! token refresh on 401, the shared 429 gate, jittered backoff for transient failures, and the
//! rule that a write whose answer was lost is never resent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use super::auth::Auth;
use super::errors::{call_error, local_error, parse_retry_after};
use super::pacer::{Bucket, Cost, Pacer};
use super::retry::{backoff, BATCH_MAX, MAX_THROTTLED, MAX_TRIES};
use super::{CallError, ErrorKind, GraphConfig, GraphError, Identity};

#[derive(Default)]
pub struct Counters {
    pub http_requests: AtomicU64,
    pub requests: AtomicU64,
    pub resource_units: AtomicU64,
    pub writes: AtomicU64,
    pub throttled: AtomicU64,
    pub retries: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub struct Inner {
    pub cfg: GraphConfig,
    pub http: reqwest::Client,
    pub auth: Auth,
    pub pacer: Pacer,
    /// Reports are throttled much harder (about 5 requests per 10 s).
    pub report_pacer: Bucket,
    pub sem: Semaphore,
    pub stopped: AtomicBool,
    pub counters: Counters,
    pub identity: std::sync::RwLock<Identity>,
    pub claims_known: bool,
}

/// One logical request. `path` is relative to the version (`/users/...`), or an absolute URL
/// (an `@odata.nextLink`).
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub eventual: bool,
    pub body: Option<Value>,
    pub cost: Cost,
}

impl Req {
    pub fn get(path: impl Into<String>, cost: Cost) -> Req {
        Req {
            method: Method::GET,
            path: path.into(),
            eventual: false,
            body: None,
            cost,
        }
    }
    pub fn patch(path: impl Into<String>, body: Value) -> Req {
        Req {
            method: Method::PATCH,
            path: path.into(),
            eventual: false,
            body: Some(body),
            cost: Cost::WRITE,
        }
    }
    pub fn eventual(mut self) -> Req {
        self.eventual = true;
        self
    }
    fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

/// A 2xx answer.
#[derive(Clone, Debug)]
pub struct Resp {
    pub body: Value,
    pub request_id: Option<String>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn json_header(h: &Value, name: &str) -> Option<String> {
    h.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

fn parse_body(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn auth_to_call(e: GraphError) -> CallError {
    match e {
        GraphError::Call(c) => c,
        other => local_error(ErrorKind::Unauthorized, "SignInFailed", other.to_string()),
    }
}

fn cancelled() -> CallError {
    local_error(
        ErrorKind::Cancelled,
        "Cancelled",
        "not sent: the run is stopping",
    )
}

fn outcome_unknown(what: &str, status: Option<u16>, request_id: Option<String>) -> CallError {
    CallError {
        kind: ErrorKind::OutcomeUnknown,
        status,
        code: "OutcomeUnknown".into(),
        message: format!(
            "{what}: the change may or may not have been applied; it was not resent (read the \
             user's state to know)"
        ),
        request_id,
    }
}

/// What to do after one answer (or lost answer) of one request or batch item.
enum Next {
    Done(Result<Resp, CallError>),
    /// Retry after waiting this long (zero: the shared gate does the waiting).
    Retry(Duration),
    /// Get a new token, then retry.
    Refresh,
}

struct Tries {
    transient: u32,
    throttled: u32,
    refreshed: bool,
}

impl Tries {
    fn new() -> Tries {
        Tries {
            transient: 0,
            throttled: 0,
            refreshed: false,
        }
    }
}

impl Inner {
    pub fn url(&self, version: &str, path: &str) -> String {
        if path.starts_with("https://") || path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}/{}{}", self.cfg.graph_url, version, path)
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Decides what follows an HTTP answer `status` for one request or item.
    fn judge(
        &self,
        tries: &mut Tries,
        write: bool,
        status: u16,
        headers_retry_after: Option<Duration>,
        body: Value,
        request_id: Option<String>,
    ) -> Next {
        if (200..300).contains(&status) {
            return Next::Done(Ok(Resp { body, request_id }));
        }
        let err = call_error(status, &body, request_id);
        match status {
            401 if !tries.refreshed && !self.auth.is_env_token() => {
                tries.refreshed = true;
                Next::Refresh
            }
            429 => {
                inc(&self.counters.throttled, 1);
                tries.throttled += 1;
                if tries.throttled >= MAX_THROTTLED {
                    return Next::Done(Err(err));
                }
                let ra = headers_retry_after.unwrap_or_else(|| backoff(tries.throttled));
                self.pacer.throttled(ra, write);
                Next::Retry(Duration::ZERO)
            }
            500..=599 => {
                if write && !(status == 503 && headers_retry_after.is_some()) {
                    // Not a "definitely not applied" answer: never resend a write blindly.
                    return Next::Done(Err(CallError {
                        kind: ErrorKind::OutcomeUnknown,
                        message: format!(
                            "{} (the change may or may not have been applied; it was not resent)",
                            err.message
                        ),
                        ..err
                    }));
                }
                tries.transient += 1;
                if tries.transient >= MAX_TRIES {
                    return Next::Done(Err(err));
                }
                Next::Retry(headers_retry_after.unwrap_or_else(|| backoff(tries.transient)))
            }
            _ => Next::Done(Err(err)),
        }
    }

    /// Judges a transport error (no HTTP answer).
    fn judge_lost(&self, tries: &mut Tries, write: bool, e: &reqwest::Error) -> Next {
        let maybe_sent = !e.is_connect();
        if write && maybe_sent {
            return Next::Done(Err(outcome_unknown(
                &format!("the answer was lost ({})", short(e)),
                None,
                None,
            )));
        }
        tries.transient += 1;
        if tries.transient >= MAX_TRIES {
            return Next::Done(Err(local_error(
                ErrorKind::Network,
                "NetworkError",
                short(e),
            )));
        }
        Next::Retry(backoff(tries.transient))
    }

    async fn admit(&self, ru: u32, writes: u32, report: bool) {
        loop {
            self.pacer.gate.wait().await;
            if report {
                self.report_pacer.acquire(1.0).await;
            }
            if writes > 0 {
                self.pacer.writes.acquire(writes as f64).await;
            }
            self.pacer.ru.acquire(ru as f64).await;
            // A 429 closed the gate while this waited: wait it out and pace again, so the
            // requests held back do not all go at once when it opens.
            if !self.pacer.gate.wait().await {
                return;
            }
        }
    }

    fn builder(
        &self,
        method: Method,
        url: &str,
        token: &str,
        eventual: bool,
    ) -> reqwest::RequestBuilder {
        let mut b = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .header("return-client-request-id", "true");
        if eventual {
            b = b.header("ConsistencyLevel", "eventual");
        }
        b
    }

    /// One request, with retries. Ok only for 2xx.
    pub async fn call(&self, version: &str, req: &Req, report: bool) -> Result<Resp, CallError> {
        let url = self.url(version, &req.path);
        let write = req.is_write();
        let mut tries = Tries::new();
        loop {
            if self.stopped() {
                return Err(cancelled());
            }
            // Paced before taking a connection slot: a request waiting for its turn (a write
            // behind the write limit) must not hold a slot a read-back could use.
            self.admit(req.cost.ru, req.cost.write as u32, report).await;
            let _permit = self.sem.acquire().await.expect("semaphore closed");
            if self.stopped() {
                return Err(cancelled());
            }
            let token = self.auth.token().await.map_err(auth_to_call)?;
            let mut b = self.builder(
                req.method.clone(),
                &url,
                token.access.expose(),
                req.eventual,
            );
            if let Some(body) = &req.body {
                b = b.json(body);
            }
            inc(&self.counters.http_requests, 1);
            inc(&self.counters.requests, 1);
            inc(&self.counters.resource_units, req.cost.ru as u64);
            if write {
                inc(&self.counters.writes, 1);
            }
            let next = match b.send().await {
                Err(e) => self.judge_lost(&mut tries, write, &e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let rid = header(resp.headers(), "request-id");
                    let ra =
                        header(resp.headers(), "retry-after").and_then(|v| parse_retry_after(&v));
                    match resp.text().await {
                        Ok(text) => {
                            self.judge(&mut tries, write, status, ra, parse_body(&text), rid)
                        }
                        // The status arrived: a 2xx write was applied even if its body is lost.
                        Err(_) if (200..300).contains(&status) && write => Next::Done(Ok(Resp {
                            body: Value::Null,
                            request_id: rid,
                        })),
                        Err(e) => self.judge_lost(&mut tries, write, &e),
                    }
                }
            };
            drop(_permit);
            match next {
                Next::Done(r) => return r,
                Next::Retry(d) => {
                    inc(&self.counters.retries, 1);
                    tokio::time::sleep(d).await;
                }
                Next::Refresh => {
                    inc(&self.counters.retries, 1);
                    self.auth.invalidate(token.generation).await;
                }
            }
        }
    }

    /// Up to [`BATCH_MAX`] requests in one `$batch` (or a plain request for one), with
    /// per-item retries. Results in the order of `reqs`.
    ///
    /// Paced in its turn: it waits for `turn.wait` before its first pacing
    /// wait and lets the next batch in (`turn.next`) once paced, so the batches of one call
    /// are paced, and so sent and answered, in input order.
    async fn batch_in_turn(
        &self,
        version: &str,
        reqs: &[Req],
        mut turn: Turn,
    ) -> Vec<Result<Resp, CallError>> {
        assert!(reqs.len() <= BATCH_MAX);
        if let Some(w) = turn.wait.take() {
            let _ = w.await;
        }
        if reqs.len() == 1 {
            let call = self.call(version, &reqs[0], false);
            drop(turn);
            return vec![call.await];
        }
        let mut results: Vec<Option<Result<Resp, CallError>>> = vec![None; reqs.len()];
        let mut tries: Vec<Tries> = reqs.iter().map(|_| Tries::new()).collect();
        let mut pending: Vec<usize> = (0..reqs.len()).collect();
        let url = self.url(version, "/$batch");
        let mut outer = Tries::new();
        while !pending.is_empty() {
            let ru: u32 = pending.iter().map(|&i| reqs[i].cost.ru).sum();
            let writes = pending.iter().filter(|&&i| reqs[i].is_write()).count() as u32;
            // Paced before taking a connection slot (see `call`).
            if !self.stopped() {
                self.admit(ru, writes, false).await;
            }
            if let Some(next) = turn.next.take() {
                let _ = next.send(());
            }
            let permit = self.sem.acquire().await.expect("semaphore closed");
            if self.stopped() {
                for &i in &pending {
                    results[i] = Some(Err(cancelled()));
                }
                break;
            }
            let token = match self.auth.token().await {
                Ok(t) => t,
                Err(e) => {
                    let e = auth_to_call(e);
                    for &i in &pending {
                        results[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            let requests: Vec<Value> = pending
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let r = &reqs[i];
                    let mut item = json!({"id": (k + 1).to_string(), "method": r.method.as_str(), "url": r.path});
                    let mut headers = serde_json::Map::new();
                    if r.eventual {
                        headers.insert("ConsistencyLevel".into(), "eventual".into());
                    }
                    if let Some(b) = &r.body {
                        headers.insert("Content-Type".into(), "application/json".into());
                        item["body"] = b.clone();
                    }
                    if !headers.is_empty() {
                        item["headers"] = Value::Object(headers);
                    }
                    item
                })
                .collect();
            inc(&self.counters.http_requests, 1);
            inc(&self.counters.requests, pending.len() as u64);
            inc(&self.counters.resource_units, ru as u64);
            inc(&self.counters.writes, writes as u64);
            let sent = self
                .builder(Method::POST, &url, token.access.expose(), false)
                .json(&json!({ "requests": requests }))
                .send()
                .await;
            let answer = match sent {
                Err(e) => Err(e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let rid = header(resp.headers(), "request-id");
                    let ra =
                        header(resp.headers(), "retry-after").and_then(|v| parse_retry_after(&v));
                    resp.text().await.map(|t| (status, rid, ra, parse_body(&t)))
                }
            };
            drop(permit);
            let mut wait = Duration::ZERO;
            let mut refresh = false;
            let mut still = Vec::new();
            match answer {
                Err(e) => {
                    // The whole answer was lost: reads are retried, writes are not resent.
                    for &i in &pending {
                        match self.judge_lost(&mut tries[i], reqs[i].is_write(), &e) {
                            Next::Done(r) => results[i] = Some(r),
                            Next::Retry(d) => {
                                wait = wait.max(d);
                                still.push(i);
                            }
                            Next::Refresh => unreachable!(),
                        }
                    }
                }
                Ok((status, rid, ra, body)) if status != 200 => {
                    // The batch itself failed: judge it once, apply to every item.
                    let any_write = writes > 0;
                    match self.judge(&mut outer, any_write, status, ra, body, rid) {
                        Next::Done(Err(e)) => {
                            for &i in &pending {
                                let e =
                                    if e.kind == ErrorKind::OutcomeUnknown && !reqs[i].is_write() {
                                        CallError {
                                            kind: ErrorKind::Server,
                                            ..e.clone()
                                        }
                                    } else {
                                        e.clone()
                                    };
                                results[i] = Some(Err(e));
                            }
                        }
                        Next::Done(Ok(_)) => {
                            for &i in &pending {
                                results[i] = Some(Err(local_error(
                                    ErrorKind::Other,
                                    "BadBatchReply",
                                    format!("$batch answered {status}"),
                                )));
                            }
                        }
                        Next::Retry(d) => {
                            wait = d;
                            still = pending.clone();
                        }
                        Next::Refresh => {
                            refresh = true;
                            still = pending.clone();
                        }
                    }
                }
                Ok((_, rid, _, body)) => {
                    let mut seen = vec![false; pending.len()];
                    for r in body["responses"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        let pos = r["id"]
                            .as_str()
                            .map(str::to_string)
                            .or_else(|| r["id"].as_u64().map(|n| n.to_string()))
                            .and_then(|s| s.parse::<usize>().ok())
                            .filter(|&k| k >= 1 && k <= pending.len());
                        let Some(k) = pos else { continue };
                        if seen[k - 1] {
                            continue;
                        }
                        seen[k - 1] = true;
                        let i = pending[k - 1];
                        let status = r["status"].as_u64().unwrap_or(0) as u16;
                        let h = &r["headers"];
                        let irid = json_header(h, "request-id").or_else(|| rid.clone());
                        let ra = json_header(h, "retry-after").and_then(|v| parse_retry_after(&v));
                        match self.judge(
                            &mut tries[i],
                            reqs[i].is_write(),
                            status,
                            ra,
                            r["body"].clone(),
                            irid,
                        ) {
                            Next::Done(res) => results[i] = Some(res),
                            Next::Retry(d) => {
                                wait = wait.max(d);
                                still.push(i);
                            }
                            Next::Refresh => {
                                refresh = true;
                                still.push(i);
                            }
                        }
                    }
                    for (k, &i) in pending.iter().enumerate() {
                        if seen[k] {
                            continue;
                        }
                        // No answer for this item.
                        if reqs[i].is_write() {
                            results[i] = Some(Err(outcome_unknown(
                                "the $batch answer had no reply for this item",
                                None,
                                rid.clone(),
                            )));
                        } else {
                            tries[i].transient += 1;
                            if tries[i].transient >= MAX_TRIES {
                                results[i] = Some(Err(local_error(
                                    ErrorKind::Other,
                                    "BadBatchReply",
                                    "no reply for this item in the $batch answer",
                                )));
                            } else {
                                still.push(i);
                            }
                        }
                    }
                }
            }
            if !still.is_empty() {
                inc(&self.counters.retries, still.len() as u64);
            }
            if refresh {
                self.auth.invalidate(token.generation).await;
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            still.sort_unstable();
            pending = still;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(cancelled())))
            .collect()
    }
}

/// Results of [`exec`] as they complete.
pub type Results = mpsc::UnboundedReceiver<(usize, Result<Resp, CallError>)>;

/// Runs `reqs` in batches of ≤ 20, concurrently (bounded by the semaphore), and yields
/// `(index, result)` as each batch completes.
/// A batch's place in line (see [`Inner::batch_in_turn`]). A sender dropped unsent (the
/// batch ended early) lets the next one in too.
struct Turn {
    wait: Option<tokio::sync::oneshot::Receiver<()>>,
    next: Option<tokio::sync::oneshot::Sender<()>>,
}

pub fn exec(
    inner: &Arc<Inner>,
    version: &'static str,
    reqs: Vec<Req>,
) -> (Results, tokio::task::JoinSet<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut set = tokio::task::JoinSet::new();
    let mut start = 0;
    let reqs = Arc::new(reqs);
    let mut wait = None;
    while start < reqs.len() {
        let end = (start + BATCH_MAX).min(reqs.len());
        let inner = inner.clone();
        let tx = tx.clone();
        let reqs = reqs.clone();
        let (next, next_wait) = tokio::sync::oneshot::channel();
        let turn = Turn {
            wait: wait.replace(next_wait),
            next: Some(next),
        };
        set.spawn(async move {
            let out = inner.batch_in_turn(version, &reqs[start..end], turn).await;
            for (k, r) in out.into_iter().enumerate() {
                let _ = tx.send((start + k, r));
            }
        });
        start = end;
    }
    (rx, set)
}

fn short(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "connection failed".to_string()
    };
    let mut src = e.source();
    while let Some(x) = src {
        s = format!("{s}: {x}");
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_headers_are_read_case_insensitively() {
        let h = serde_json::json!({"Retry-After": "2.5", "request-id": "r1"});
        assert_eq!(json_header(&h, "retry-after").as_deref(), Some("2.5"));
        assert_eq!(json_header(&h, "Request-Id").as_deref(), Some("r1"));
        assert_eq!(
            json_header(&serde_json::json!({"Retry-After": 3}), "retry-after").as_deref(),
            Some("3")
        );
    }
}
