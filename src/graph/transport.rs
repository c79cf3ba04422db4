//! Sending: one request or one `$batch`, under the shared pacer, with bounded concurrency,
//! token refresh on 401, the per-budget 429 gates, jittered backoff for transient failures,
//! and the rule that a write whose answer was lost is never resent.
//!
//! Every wait (a permit, the pacer, a gate, backoff, a token refresh) ends when the run stops
//! ([`super::stop`]); a request already on the wire is never cut. [`Mode::verify`] is the one
//! exception: reads that must still happen after a stop (a write whose answer was lost gets its
//! one read) ignore the stop and pace without waiting past a short deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::auth::Auth;
use super::errors::{call_error, local_error, parse_retry_after};
use super::pacer::{
    parse_percentage, scope_budget, Bucket, Budget, Cost, Gate, Pacer, Reservation,
};
use super::retry::{backoff, BATCH_MAX, MAX_THROTTLED, MAX_TRIES};
use super::stop::{token_not_sent, Reason, Stop};
use super::{CallError, ErrorKind, GraphConfig, GraphError, Identity};

#[derive(Default)]
pub(super) struct Counters {
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

pub(super) struct Inner {
    pub cfg: GraphConfig,
    pub http: reqwest::Client,
    pub auth: Auth,
    pub pacer: Pacer,
    /// Reports are throttled much harder (about 5 requests per 10 s), with their own gate.
    pub report_pacer: Bucket,
    pub report_gate: Gate,
    pub sem: Semaphore,
    pub stop: Stop,
    pub counters: Counters,
    pub identity: std::sync::RwLock<Identity>,
    pub claims_known: bool,
}

/// How a batch of requests treats a stop.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Mode {
    /// `Some(deadline)`: verification reads. They are sent even after
    /// [`super::Graph::stop_sending`] (not after a rejected token: they could not succeed),
    /// and no wait (pacing, gate, `Retry-After`) goes past the deadline; items still
    /// throttled then come back with their last error.
    pub verify: Option<Instant>,
}

impl Mode {
    pub(super) const RUN: Mode = Mode { verify: None };

    pub(super) fn verify(within: Duration) -> Mode {
        Mode {
            verify: Some(Instant::now() + within),
        }
    }

    fn past_deadline(&self) -> bool {
        self.verify.is_some_and(|d| Instant::now() >= d)
    }
}

/// The run stopped (or a verification ran out of time) while waiting.
struct Halted;

/// A request cleared to go: when, and its reservations in the client's copy of Graph's
/// windows.
#[derive(Clone, Copy)]
struct Admitted {
    at: Instant,
    ru: Option<u64>,
    writes: Option<u64>,
}

/// One logical request. `path` is relative to the version (`/users/...`), or an absolute URL
/// (an `@odata.nextLink`).
#[derive(Clone, Debug)]
pub(super) struct Req {
    pub method: Method,
    pub path: String,
    pub eventual: bool,
    pub body: Option<Value>,
    pub cost: Cost,
}

impl Req {
    pub(super) fn get(path: impl Into<String>, cost: Cost) -> Req {
        Req {
            method: Method::GET,
            path: path.into(),
            eventual: false,
            body: None,
            cost,
        }
    }
    pub(super) fn patch(path: impl Into<String>, body: Value) -> Req {
        Req {
            method: Method::PATCH,
            path: path.into(),
            eventual: false,
            body: Some(body),
            cost: Cost::WRITE,
        }
    }
    pub(super) fn eventual(mut self) -> Req {
        self.eventual = true;
        self
    }
    fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

/// A 2xx answer.
#[derive(Clone, Debug)]
pub(super) struct Resp {
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

/// What Graph's headers say about throttling, for one answer or batch item.
#[derive(Clone, Copy, Debug, Default)]
struct Signals {
    retry_after: Option<Duration>,
    /// `x-ms-throttle-scope`: which budget ran out.
    scope: Option<Budget>,
    /// `x-ms-throttle-limit-percentage`.
    pct: Option<f64>,
}

impl Signals {
    fn read(get: impl Fn(&str) -> Option<String>) -> Signals {
        Signals {
            retry_after: get("retry-after").and_then(|v| parse_retry_after(&v)),
            scope: get("x-ms-throttle-scope").and_then(|v| scope_budget(&v)),
            pct: get("x-ms-throttle-limit-percentage").and_then(|v| parse_percentage(&v)),
        }
    }
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

/// What to do after one answer (or lost answer) of one request or item.
enum Next {
    Done(Result<Resp, CallError>),
    /// Retry after waiting this long (zero: the budget's gate does the waiting).
    Retry(Duration),
    /// Get a new token, then retry.
    Refresh,
}

struct Tries {
    transient: u32,
    throttled: u32,
    refreshed: bool,
    /// The last failure, returned if a verification runs out of time.
    last: Option<CallError>,
}

impl Tries {
    fn new() -> Tries {
        Tries {
            transient: 0,
            throttled: 0,
            refreshed: false,
            last: None,
        }
    }
}

/// One answered request or item, as the pacer learns from it.
struct Answered {
    cost: Cost,
    status: u16,
    signals: Signals,
}

impl Inner {
    pub(super) fn url(&self, version: &str, path: &str) -> String {
        if path.starts_with("https://") || path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}/{}{}", self.cfg.graph_url, version, path)
        }
    }

    /// The error for an item that may not be sent now, if any.
    fn halted(&self, mode: Mode) -> Option<CallError> {
        match mode.verify {
            None => self.stop.is_stopped().then(|| self.stop.not_sent()),
            // A rejected token makes every read fail: do not even try.
            Some(_) => self.stop.token_rejected().map(|e| token_not_sent(&e)),
        }
    }

    /// Graph (or the sign-in endpoint) refused the token for good: the run stops.
    fn reject_token(&self, e: &CallError) {
        self.stop.stop(Reason::TokenRejected(e.clone()));
    }

    /// Sleeps until `t`: ends early when the run stops (normal mode; `Err`), or at the
    /// deadline (verify mode; `Ok`).
    async fn sleep_until(&self, t: Instant, mode: Mode) -> Result<(), Halted> {
        match mode.verify {
            None => self
                .stop
                .or_stop(tokio::time::sleep_until(t))
                .await
                .ok_or(Halted),
            Some(d) => {
                tokio::time::sleep_until(t.min(d)).await;
                Ok(())
            }
        }
    }

    /// A permit of the concurrency bound (verify mode: none after the deadline).
    async fn permit(&self, mode: Mode) -> Result<Option<SemaphorePermit<'_>>, Halted> {
        let acquire = async { self.sem.acquire().await.expect("semaphore closed") };
        match mode.verify {
            None => self.stop.or_stop(acquire).await.map(Some).ok_or(Halted),
            Some(d) => Ok(tokio::time::timeout_at(d, acquire).await.ok()),
        }
    }

    /// The token to send, fetched or renewed if needed. A failure to get one stops the run;
    /// the error is then the one for items not sent.
    async fn token(&self, mode: Mode) -> Result<super::auth::Token, CallError> {
        let got = match mode.verify {
            None => match self.stop.or_stop(self.auth.token()).await {
                Some(r) => r,
                None => return Err(self.stop.not_sent()),
            },
            Some(_) => self.auth.token().await,
        };
        got.map_err(|e| {
            // No token: nothing more can be sent in this run.
            self.reject_token(&auth_to_call(e));
            self.stop.not_sent()
        })
    }

    /// Decides what follows an HTTP answer `status` for one request or item. Pacing is
    /// learned separately ([`Inner::learn`]).
    fn judge(
        &self,
        tries: &mut Tries,
        write: bool,
        status: u16,
        retry_after: Option<Duration>,
        body: Value,
        request_id: Option<String>,
    ) -> Next {
        if (200..300).contains(&status) {
            return Next::Done(Ok(Resp { body, request_id }));
        }
        let err = call_error(status, &body, request_id);
        tries.last = Some(err.clone());
        match status {
            401 if !tries.refreshed && !self.auth.is_env_token() => {
                tries.refreshed = true;
                Next::Refresh
            }
            401 => {
                // Renewed already (or a ready token that cannot be): Graph refuses this
                // sign-in. Nothing more is sent.
                self.reject_token(&err);
                Next::Done(Err(err))
            }
            429 => {
                inc(&self.counters.throttled, 1);
                tries.throttled += 1;
                if tries.throttled >= MAX_THROTTLED {
                    return Next::Done(Err(err));
                }
                Next::Retry(Duration::ZERO)
            }
            500..=599 => {
                if write && !(status == 503 && retry_after.is_some()) {
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
                Next::Retry(retry_after.unwrap_or_else(|| backoff(tries.transient)))
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
        let err = local_error(ErrorKind::Network, "NetworkError", short(e));
        tries.last = Some(err.clone());
        tries.transient += 1;
        if tries.transient >= MAX_TRIES {
            return Next::Done(Err(err));
        }
        Next::Retry(backoff(tries.transient))
    }

    /// What one HTTP answer (a request, or every item of a `$batch`) teaches the pacer:
    /// units Graph accepted, its `x-ms-throttle-limit-percentage`, and 429s (one signal per
    /// budget per answer; the budget from `x-ms-throttle-scope`, else writes for a write and
    /// resource units for a read).
    fn learn(&self, sent: Admitted, report: bool, answers: &[Answered]) {
        let (mut ru_ok, mut w_ok) = (0.0, 0.0);
        let (mut ru_pct, mut w_pct): (Option<f64>, Option<f64>) = (None, None);
        let mut waits: [Option<Duration>; 2] = [None, None];
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        for a in answers {
            if a.status == 429 {
                let ra = a.signals.retry_after.unwrap_or_else(|| backoff(1));
                if report {
                    self.report_gate.close_for(ra);
                    continue;
                }
                let b = a.signals.scope.unwrap_or(if a.cost.write {
                    Budget::Writes
                } else {
                    Budget::Ru
                });
                let slot = &mut waits[b as usize];
                *slot = Some(slot.map_or(ra, |w| w.max(ra)));
                continue;
            }
            ru_ok += f64::from(a.cost.ru);
            if a.cost.write {
                w_ok += 1.0;
                w_pct = max(w_pct, a.signals.pct);
            } else {
                ru_pct = max(ru_pct, a.signals.pct);
            }
        }
        self.pacer.ru.accepted(sent.at, sent.ru, ru_ok, ru_pct);
        if sent.writes.is_some() || w_ok > 0.0 || w_pct.is_some() {
            self.pacer
                .writes
                .accepted(sent.at, sent.writes, w_ok, w_pct);
        }
        for (b, wait) in [Budget::Ru, Budget::Writes].into_iter().zip(waits) {
            if let Some(ra) = wait {
                self.pacer.limiter(b).throttled(sent.at, ra);
            }
        }
    }

    /// Waits for the budgets' gates and pacing to cover what `size()` says the request
    /// would carry now (resource units, writes; asked again whenever a 429 made the request
    /// pace again: it may have to be smaller). `Err` if the run stopped meanwhile.
    async fn admit(
        &self,
        size: &(dyn Fn() -> (u32, u32) + Sync),
        report: bool,
        mode: Mode,
    ) -> Result<Admitted, Halted> {
        loop {
            let (ru, writes) = size();
            let gates = || {
                let mut until = self.pacer.ru.gate.closed_until();
                if writes > 0 {
                    until = until.max(self.pacer.writes.gate.closed_until());
                }
                if report {
                    until = until.max(self.report_gate.closed_until());
                }
                until
            };
            if let Some(t) = gates() {
                self.sleep_until(t, mode).await?;
                continue;
            }
            let (ru, writes) = (f64::from(ru), f64::from(writes));
            let mut ru_rx = self.pacer.ru.watch();
            let mut w_rx = self.pacer.writes.watch();
            ru_rx.borrow_and_update();
            w_rx.borrow_and_update();
            self.pacer.ru.tick();
            let r = self.pacer.ru.reserve(ru);
            let mut wait = r.wait;
            let mut w = Reservation::default();
            if writes > 0.0 {
                self.pacer.writes.tick();
                w = self.pacer.writes.reserve(writes);
                wait = wait.max(w.wait);
            }
            if report {
                wait = wait.max(self.report_pacer.reserve(1.0));
            }
            if !wait.is_zero() {
                // A 429 of a budget this request waits for voids its reservation (a gate
                // closed, the budget may be lower): wake up and pace again.
                let voided = async {
                    tokio::select! {
                        r = ru_rx.changed() => r.is_ok(),
                        r = w_rx.changed(), if writes > 0.0 => r.is_ok(),
                    }
                };
                if self.sleep_or(Instant::now() + wait, mode, voided).await?
                    && !mode.past_deadline()
                {
                    continue;
                }
            }
            // A gate closed while this waited: after it, pace again, so the requests held
            // back do not all go at once when it opens.
            if gates().is_some() && !mode.past_deadline() {
                continue;
            }
            return Ok(Admitted {
                at: Instant::now(),
                ru: r.id,
                writes: w.id,
            });
        }
    }

    /// Like [`Inner::sleep_until`], also ending when `wake` does: `Ok(true)`.
    async fn sleep_or(
        &self,
        t: Instant,
        mode: Mode,
        wake: impl std::future::Future<Output = bool>,
    ) -> Result<bool, Halted> {
        let t = mode.verify.map_or(t, |d| t.min(d));
        let sleep = async {
            tokio::select! {
                _ = tokio::time::sleep_until(t) => false,
                woke = wake => {
                    if !woke {
                        // The limiter is gone (never while the client lives): just sleep.
                        tokio::time::sleep_until(t).await;
                    }
                    woke
                }
            }
        };
        match mode.verify {
            None => self.stop.or_stop(sleep).await.ok_or(Halted),
            Some(_) => Ok(sleep.await),
        }
    }

    /// A request admitted as `a` is being sent.
    fn sending(&self, a: Admitted, writes: bool) -> Admitted {
        self.pacer.ru.sending(a.at);
        if writes {
            self.pacer.writes.sending(a.at);
        }
        a
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
    pub(super) async fn call(
        &self,
        version: &str,
        req: &Req,
        report: bool,
        mode: Mode,
    ) -> Result<Resp, CallError> {
        let url = self.url(version, &req.path);
        let write = req.is_write();
        let mut tries = Tries::new();
        loop {
            if let Some(e) = self.halted(mode) {
                return Err(e);
            }
            if mode.past_deadline() {
                if let Some(e) = tries.last.take() {
                    return Err(e);
                }
            }
            let Ok(permit) = self.permit(mode).await else {
                return Err(self.stop.not_sent());
            };
            let size = || (req.cost.ru, req.cost.write as u32);
            let Ok(admitted) = self.admit(&size, report, mode).await else {
                return Err(self.stop.not_sent());
            };
            if let Some(e) = self.halted(mode) {
                return Err(e);
            }
            let token = self.token(mode).await?;
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
            let sent_at = self.sending(admitted, write);
            let next = match b.send().await {
                Err(e) => self.judge_lost(&mut tries, write, &e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status != 401 {
                        self.auth.accepted(token.generation);
                    }
                    let rid = header(resp.headers(), "request-id");
                    let sig = Signals::read(|n| header(resp.headers(), n));
                    self.learn(
                        sent_at,
                        report,
                        &[Answered {
                            cost: req.cost,
                            status,
                            signals: sig,
                        }],
                    );
                    match resp.text().await {
                        Ok(text) => self.judge(
                            &mut tries,
                            write,
                            status,
                            sig.retry_after,
                            parse_body(&text),
                            rid,
                        ),
                        // The status arrived: a 2xx write was applied even if its body is lost.
                        Err(_) if (200..300).contains(&status) && write => Next::Done(Ok(Resp {
                            body: Value::Null,
                            request_id: rid,
                        })),
                        Err(e) => self.judge_lost(&mut tries, write, &e),
                    }
                }
            };
            drop(permit);
            match next {
                Next::Done(r) => return r,
                Next::Retry(d) => {
                    inc(&self.counters.retries, 1);
                    if self.sleep_until(Instant::now() + d, mode).await.is_err() {
                        return Err(self.stop.not_sent());
                    }
                }
                Next::Refresh => {
                    if !self.auth.invalidate(token.generation).await {
                        // This token was already the renewal after a 401.
                        let e = tries.last.take().expect("a 401");
                        self.reject_token(&e);
                        return Err(e);
                    }
                    inc(&self.counters.retries, 1);
                }
            }
        }
    }

    /// Which of `pending` go in the next `$batch`: the first ones, within
    /// [`super::pacer::Limiter::cap`] of each budget (at least one).
    fn next_group(&self, pending: &[usize], reqs: &[Req]) -> usize {
        let ru_cap = self.pacer.ru.cap();
        let w_cap = self.pacer.writes.cap();
        let (mut ru, mut w) = (0.0, 0.0);
        for (n, &i) in pending.iter().enumerate() {
            let c = reqs[i].cost;
            let (ru2, w2) = (ru + f64::from(c.ru), w + f64::from(u8::from(c.write)));
            if n > 0 && (ru2 > ru_cap || w2 > w_cap) {
                return n;
            }
            (ru, w) = (ru2, w2);
        }
        pending.len()
    }

    /// Up to [`BATCH_MAX`] requests in `$batch` requests (a slow pace or a budget near its
    /// limit sends fewer items per request), with per-item retries. Results in the order of
    /// `reqs`.
    ///
    /// Paced in its turn: it waits for `turn.wait` before it takes a connection slot and its
    /// first pacing wait, and lets the next batch in (`turn.next`) once paced, so the batches
    /// of one call are paced, sent and answered in input order (the result file is written
    /// in input order), and batches waiting for their turn hold no connection a read-back
    /// could use.
    async fn batch(
        &self,
        version: &str,
        reqs: &[Req],
        mode: Mode,
        mut turn: Turn,
    ) -> Vec<Result<Resp, CallError>> {
        assert!(reqs.len() <= BATCH_MAX);
        if let Some(w) = turn.wait.take() {
            let _ = w.await;
        }
        if reqs.len() == 1 {
            let call = self.call(version, &reqs[0], false, mode);
            drop(turn);
            return vec![call.await];
        }
        let mut results: Vec<Option<Result<Resp, CallError>>> = vec![None; reqs.len()];
        let mut tries: Vec<Tries> = reqs.iter().map(|_| Tries::new()).collect();
        let mut pending: Vec<usize> = (0..reqs.len()).collect();
        let url = self.url(version, "/$batch");
        let mut outer = Tries::new();
        while !pending.is_empty() {
            if let Some(e) = self.halted(mode) {
                for &i in &pending {
                    results[i] = Some(Err(e.clone()));
                }
                break;
            }
            if mode.past_deadline() {
                // A verification out of time: items already tried end with what they got;
                // the others are still sent, without waiting.
                pending.retain(|&i| match tries[i].last.take() {
                    Some(e) => {
                        results[i] = Some(Err(e));
                        false
                    }
                    None => true,
                });
                if pending.is_empty() {
                    break;
                }
            }
            // None: the run stopped (or, verifying, no permit by the deadline).
            let permit: Option<SemaphorePermit<'_>> = self.permit(mode).await.unwrap_or_default();
            // The first pending items, as many as the budgets' caps allow now.
            let take = std::sync::atomic::AtomicUsize::new(0);
            let size = || {
                let n = self.next_group(&pending, reqs);
                take.store(n, Ordering::Relaxed);
                let g = &pending[..n];
                let ru: u32 = g.iter().map(|&i| reqs[i].cost.ru).sum();
                (ru, g.iter().filter(|&&i| reqs[i].is_write()).count() as u32)
            };
            let admitted = if permit.is_some() || mode.verify.is_some() {
                self.admit(&size, false, mode).await.ok()
            } else {
                None
            };
            if let Some(next) = turn.next.take() {
                let _ = next.send(());
            }
            let group: Vec<usize> = pending[..take.load(Ordering::Relaxed).max(1)].to_vec();
            let ru: u32 = group.iter().map(|&i| reqs[i].cost.ru).sum();
            let writes = group.iter().filter(|&&i| reqs[i].is_write()).count() as u32;
            let token = match admitted {
                Some(_) if self.halted(mode).is_none() => self.token(mode).await,
                _ => Err(self.stop.not_sent()),
            };
            let token = match token {
                Ok(t) => t,
                Err(e) => {
                    for &i in &pending {
                        results[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            let requests: Vec<Value> = group
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
            inc(&self.counters.requests, group.len() as u64);
            inc(&self.counters.resource_units, ru as u64);
            inc(&self.counters.writes, writes as u64);
            let sent_at = self.sending(admitted.expect("admitted"), writes > 0);
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
                    let sig = Signals::read(|n| header(resp.headers(), n));
                    resp.text()
                        .await
                        .map(|t| (status, rid, sig, parse_body(&t)))
                }
            };
            drop(permit);
            let mut wait = Duration::ZERO;
            let mut refresh = false;
            let mut still = Vec::new();
            match answer {
                Err(e) => {
                    // The whole answer was lost: reads are retried, writes are not resent.
                    for &i in &group {
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
                Ok((status, rid, sig, body)) if status != 200 => {
                    // The batch itself failed: judge it once, apply to every item.
                    let any_write = writes > 0;
                    if status == 429 {
                        self.learn(
                            sent_at,
                            false,
                            &[Answered {
                                cost: Cost {
                                    ru,
                                    write: any_write,
                                },
                                status,
                                signals: sig,
                            }],
                        );
                    }
                    match self.judge(&mut outer, any_write, status, sig.retry_after, body, rid) {
                        Next::Done(Err(e)) => {
                            for &i in &group {
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
                            for &i in &group {
                                results[i] = Some(Err(local_error(
                                    ErrorKind::Other,
                                    "BadBatchReply",
                                    format!("$batch answered {status}"),
                                )));
                            }
                        }
                        Next::Retry(d) => {
                            wait = d;
                            for &i in &group {
                                tries[i].last = outer.last.clone();
                            }
                            still = group.clone();
                        }
                        Next::Refresh => {
                            refresh = true;
                            still = group.clone();
                        }
                    }
                }
                Ok((_, rid, _, body)) => {
                    let mut seen = vec![false; group.len()];
                    let mut learned = Vec::with_capacity(group.len());
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
                            .filter(|&k| k >= 1 && k <= group.len());
                        let Some(k) = pos else { continue };
                        if seen[k - 1] {
                            continue;
                        }
                        seen[k - 1] = true;
                        let i = group[k - 1];
                        let status = r["status"].as_u64().unwrap_or(0) as u16;
                        if status != 401 {
                            self.auth.accepted(token.generation);
                        }
                        let h = &r["headers"];
                        let irid = json_header(h, "request-id").or_else(|| rid.clone());
                        let sig = Signals::read(|n| json_header(h, n));
                        learned.push(Answered {
                            cost: reqs[i].cost,
                            status,
                            signals: sig,
                        });
                        match self.judge(
                            &mut tries[i],
                            reqs[i].is_write(),
                            status,
                            sig.retry_after,
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
                    self.learn(sent_at, false, &learned);
                    for (k, &i) in group.iter().enumerate() {
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
                            let e = local_error(
                                ErrorKind::Other,
                                "BadBatchReply",
                                "no reply for this item in the $batch answer",
                            );
                            if tries[i].transient >= MAX_TRIES {
                                results[i] = Some(Err(e));
                            } else {
                                tries[i].last = Some(e);
                                still.push(i);
                            }
                        }
                    }
                }
            }
            if !still.is_empty() {
                inc(&self.counters.retries, still.len() as u64);
            }
            if refresh && !self.auth.invalidate(token.generation).await {
                // This token was already the renewal after a 401: Graph rejects the sign-in.
                let e = still
                    .iter()
                    .find_map(|&i| tries[i].last.clone())
                    .or_else(|| outer.last.clone())
                    .expect("a 401");
                self.reject_token(&e);
                for &i in &still {
                    results[i] = Some(Err(tries[i].last.clone().unwrap_or_else(|| e.clone())));
                }
                still.clear();
            }
            // What was not in this request stays pending, with what is retried.
            let sent_here: std::collections::HashSet<usize> = group.iter().copied().collect();
            still.extend(pending.iter().copied().filter(|i| !sent_here.contains(i)));
            still.sort_unstable();
            pending = still;
            if !wait.is_zero() && !pending.is_empty() {
                // Backoff of this batch's retried items (a 5xx): stoppable like every wait.
                let _ = self.sleep_until(Instant::now() + wait, mode).await;
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.stop.not_sent())))
            .collect()
    }
}

/// Results of [`exec`] as they complete.
pub(super) type Results = mpsc::UnboundedReceiver<(usize, Result<Resp, CallError>)>;

/// Runs `reqs` in batches of ≤ 20, concurrently (bounded by the semaphore), and yields
/// `(index, result)` as each batch completes.
/// A batch's place in line (see [`Inner::batch`]). A sender dropped unsent (the batch ended
/// early) lets the next one in too.
struct Turn {
    wait: Option<tokio::sync::oneshot::Receiver<()>>,
    next: Option<tokio::sync::oneshot::Sender<()>>,
}

pub(super) fn exec(
    inner: &Arc<Inner>,
    version: &'static str,
    reqs: Vec<Req>,
    mode: Mode,
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
            let out = inner.batch(version, &reqs[start..end], mode, turn).await;
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
