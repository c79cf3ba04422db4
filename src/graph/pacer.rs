//! The one pacing point of a run: a resource-unit budget and a write budget, each with its own
//! "throttled until" gate, all shared by every clone of the client.
//!
//! Each budget starts as a token bucket at the documented rate (or `--rate` /
//! `--write-rate`). Requests reserve their cost (the balance may go negative) and wait until
//! the reservation is covered, which keeps waiting requests in arrival order. A fixed-quota
//! limiter (governor) would reset its burst whenever the rate changed, so the bucket is our
//! own.
//!
//! Graph's real budget is often lower than the documented one: the write budget is shared by
//! every app of the tenant (18,000 per 5 minutes), and other tools write too. So each budget
//! learns what Graph allows:
//! - **One decrease per throttle wave.** A 429 is a new signal only when its request was
//!   admitted after the last decrease; the rest of a wave (a `$batch` answered with twenty
//!   429s, the requests already in flight) only holds the gate. Every 429 voids the
//!   reservations of the requests still waiting: they pace again after `Retry-After`.
//! - **Settle under what Graph allowed.** On a new wave the limiter counts what Graph
//!   accepted over its window, up to the moment `Retry-After` ends: for the first wave from
//!   the first request (a fresh window fills up: that span is Graph's window), or over the
//!   window length read from `x-ms-throttle-limit-percentage` when Graph sent it before and
//!   after its window first filled ([`fit_window`]); later waves over the same span. The run
//!   then keeps its own copy of that sliding window and sends at most [`SETTLE`] × what Graph
//!   accepted in any span (and never faster than the configured rate), instead of halving and
//!   climbing back to the documented figure to hit the wall again. What Graph accepted is
//!   kept as the ceiling.
//! - **Probe upward slowly.** After each clean window in which the run was held back by its
//!   own pace, the budget grows by [`PROBE_SLOW`] (or [`PROBE_FAST`] when Graph has stopped
//!   sending `x-ms-throttle-limit-percentage`: less than 80 % used), never above the
//!   configured rate, and not at all while Graph reports [`HOLD_PERCENTAGE`] or more; so a
//!   limit that rises again is found, and the wall is met softly when it has not.
//! - Requests carry about a second of the pace (a slow `--write-rate` sends one write at a
//!   time instead of waiting minutes for a batch of twenty), and writes shrink to
//!   [`NEAR_CAP`] items per request from 80 % of the budget and just after a wave, so that
//!   meeting the limit costs a few 429s, not a batch of twenty.
//!
//! `MFA_BULK_DEBUG_PACING=1` prints what the pacer learns on stderr.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Graph's documented budgets.
pub const WRITES_PER_2_5_MIN: f64 = 3000.0;
/// Default write pace: just under 3,000 per 150 s (20/s).
pub const DEFAULT_WRITES_PER_SEC: f64 = 19.5;
/// Fraction of the documented RU budget paced at by default.
pub const RU_HEADROOM: f64 = 0.95;
/// After a throttle wave, send at most this fraction of what Graph was measured to allow.
pub const SETTLE: f64 = 0.93;
/// Budget gained per clean window while Graph says nothing about it (or says it is 80–90 %
/// used), as a fraction of the current budget.
pub const PROBE_SLOW: f64 = 0.015;
/// Budget gained per clean window while Graph's `x-ms-throttle-limit-percentage` is absent
/// although it was sent earlier in the run (less than 80 % used).
pub const PROBE_FAST: f64 = 0.08;
/// At or above this `x-ms-throttle-limit-percentage` the budget is not raised.
pub const HOLD_PERCENTAGE: f64 = 0.9;
/// From this `x-ms-throttle-limit-percentage` (Graph starts sending it at 0.8) requests are
/// kept small, so that hitting the limit costs few 429s.
pub const NEAR_PERCENTAGE: f64 = 0.8;
/// Items (cost units) per request while a budget is near its limit.
pub const NEAR_CAP: f64 = 4.0;
/// Most items of one budget per request: about this many seconds of its pace.
pub const CAP_SECONDS: f64 = 1.0;
/// A wave measured on fewer accepted units than this is not trusted: halve instead.
const MIN_SAMPLE: f64 = 8.0;
/// Never below this many units per second (one write every ten seconds), nor below one
/// unit per window.
const FLOOR: f64 = 0.1;

/// RU per 10 s for a tenant of `users` users (None: size unknown → the smallest budget).
pub fn ru_budget_for_size(users: Option<u64>) -> u32 {
    match users {
        Some(n) if n > 500 => 8000,
        Some(n) if n >= 50 => 5000,
        _ => 3500,
    }
}

struct BucketState {
    /// Tokens per second now.
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

/// A token bucket with an adjustable rate.
pub struct Bucket {
    state: Mutex<BucketState>,
}

impl Bucket {
    pub fn new(rate_per_sec: f64, burst: f64) -> Bucket {
        let burst = burst.max(1.0);
        Bucket {
            state: Mutex::new(BucketState {
                rate: rate_per_sec,
                burst,
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    fn refill(s: &mut BucketState, now: Instant) {
        let dt = now.saturating_duration_since(s.last).as_secs_f64();
        if dt > 0.0 {
            s.tokens = (s.tokens + s.rate * dt).min(s.burst);
            s.last = now;
        }
    }

    /// Reserves `cost` tokens and returns how long to wait before using them.
    pub fn reserve(&self, cost: f64) -> Duration {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        Self::refill(&mut s, now);
        s.tokens -= cost;
        // Refilling starts at `last` (later than now after a reset for a closed gate).
        let ahead = s.last.saturating_duration_since(now);
        if s.tokens >= 0.0 && ahead.is_zero() {
            Duration::ZERO
        } else {
            ahead + Duration::from_secs_f64((-s.tokens.min(0.0) / s.rate.max(1e-6)).min(86_400.0))
        }
    }

    /// Every reservation made so far is void and the bucket starts empty at `at` (when a
    /// closed gate opens): the requests that were waiting pace again from there, at the
    /// current rate.
    pub fn reset_at(&self, at: Instant) {
        let mut s = self.state.lock().unwrap();
        s.tokens = 0.0;
        s.last = s.last.max(at);
    }

    /// Waits until `cost` tokens are available (reserved at call time). Not cancellable: the
    /// client's own waits go through [`Bucket::reserve`] and a stoppable sleep.
    pub async fn acquire(&self, cost: f64) {
        let wait = self.reserve(cost);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Changes the rate; the burst follows it when `burst` is given.
    pub fn set_rate(&self, rate_per_sec: f64, burst: Option<f64>) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        Self::refill(&mut s, now);
        s.rate = rate_per_sec.max(1e-6);
        if let Some(b) = burst {
            s.burst = b.max(1.0);
            s.tokens = s.tokens.min(s.burst);
        }
    }

    pub fn rate(&self) -> f64 {
        self.state.lock().unwrap().rate
    }

    pub fn burst(&self) -> f64 {
        self.state.lock().unwrap().burst
    }
}

/// "Nobody sends before this instant": set by a 429 (or 503 with Retry-After), checked by
/// every request of the budget before it is sent.
#[derive(Default)]
pub struct Gate {
    until: Mutex<Option<Instant>>,
}

impl Gate {
    /// Closes the gate for `d` from now (never shortens an existing wait).
    pub fn close_for(&self, d: Duration) {
        let t = Instant::now() + d;
        let mut u = self.until.lock().unwrap();
        if u.is_none_or(|old| old < t) {
            *u = Some(t);
        }
    }

    /// Until when the gate is closed, if it is closed now.
    pub fn closed_until(&self) -> Option<Instant> {
        let u = *self.until.lock().unwrap();
        u.filter(|t| *t > Instant::now())
    }

    /// Waits while the gate is closed. Returns whether it waited. Not cancellable (see
    /// [`Gate::closed_until`] for a stoppable wait).
    pub async fn wait(&self) -> bool {
        let mut waited = false;
        while let Some(t) = self.closed_until() {
            tokio::time::sleep_until(t).await;
            waited = true;
        }
        waited
    }
}

/// Graph's budget as the run learned it: `budget` units in any `span`, kept by the client as
/// a sliding window of what it sent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    span: Duration,
    budget: f64,
}

/// What a limiter has learned; see the module comment.
struct Learn {
    /// The configured rate (documented budget, `--rate`, `--write-rate`): never exceeded.
    target: f64,
    /// The budget Graph was measured to allow, once it throttled.
    window: Option<Window>,
    /// Units Graph allowed over `window.span` at the last measured wave.
    ceiling: Option<f64>,
    /// The client's copy of Graph's window: units reserved (sent, or to be sent at that
    /// time), with the reservation's id.
    sched: VecDeque<(Instant, f64, u64)>,
    next_id: u64,
    /// Units Graph accepted (not answered 429), by the time they were admitted.
    accepted: VecDeque<(Instant, f64)>,
    first_send: Option<Instant>,
    /// A 429 for a request admitted before this instant belongs to a wave already acted on.
    wave_mark: Option<Instant>,
    last_probe: Instant,
    /// Whether the pace held a request back since the last probe (the budget was in use).
    held_back: bool,
    /// Highest `x-ms-throttle-limit-percentage` since the last probe, and when it was seen.
    pct_max: f64,
    pct_at: Option<Instant>,
    /// Whether Graph sent the header at all in this run (then its absence means < 80 %).
    pct_known: bool,
    /// `x-ms-throttle-limit-percentage` of answers before the first wave, by admission time:
    /// what tells how long Graph's window is (see [`fit_window`]).
    pct_obs: VecDeque<(Instant, f64)>,
    waves: u64,
}

impl Learn {
    /// Units per second this budget is paced at.
    fn rate(&self) -> f64 {
        match self.window {
            Some(w) => (w.budget / w.span.as_secs_f64()).min(self.target),
            None => self.target,
        }
    }
}

/// A measured throttle wave, for tests and the run record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wave {
    /// Units per second Graph accepted over the measured span (None: too few to tell).
    pub allowed: Option<f64>,
    /// The rate paced at from now on.
    pub rate: f64,
}

/// A reservation: how long to wait before sending, and its id in the client's copy of
/// Graph's window (to record how much of it Graph accepted).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reservation {
    pub wait: Duration,
    pub id: Option<u64>,
}

/// One of Graph's budgets as the client paces it: bucket, gate, and what it learned.
pub struct Limiter {
    /// Paces at the configured rate (bursts included) whatever was learned.
    pub bucket: Bucket,
    pub gate: Gate,
    /// Bumped by every 429: reservations made before it are void (they were timed before the
    /// gate closed, perhaps at a higher budget); the requests waiting on them wake and pace
    /// again.
    epoch: tokio::sync::watch::Sender<u64>,
    learn: Mutex<Learn>,
    /// Probe interval until a window is learned, and the window assumed when a wave is too
    /// small to measure one.
    default_window: Duration,
    /// Bucket burst as seconds of the rate (clamped to `burst_min..=burst_max`).
    burst_secs: f64,
    burst_min: f64,
    burst_max: f64,
    /// Whether requests shrink to [`NEAR_CAP`] near the limit (writes: a wave of 429s costs
    /// retries and counts; reads are cheap and paced under their budget).
    shrink_near: bool,
    /// Whether a throttled request still counts against this budget (resource units: yes,
    /// as Graph documents; writes: a refused write is no write).
    throttled_count: bool,
}

impl Limiter {
    fn new(rate: f64, default_window: Duration, burst: (f64, f64, f64), writes: bool) -> Limiter {
        let (burst_secs, burst_min, burst_max) = burst;
        Limiter {
            bucket: Bucket::new(rate, (rate * burst_secs).clamp(burst_min, burst_max)),
            gate: Gate::default(),
            epoch: tokio::sync::watch::channel(0).0,
            learn: Mutex::new(Learn {
                target: rate,
                window: None,
                ceiling: None,
                sched: VecDeque::new(),
                next_id: 0,
                accepted: VecDeque::new(),
                first_send: None,
                wave_mark: None,
                last_probe: Instant::now(),
                held_back: false,
                pct_max: 0.0,
                pct_at: None,
                pct_known: false,
                pct_obs: VecDeque::new(),
                waves: 0,
            }),
            default_window,
            burst_secs,
            burst_min,
            burst_max,
            shrink_near: writes,
            throttled_count: !writes,
        }
    }

    /// Changes with every 429 of this budget (see [`Limiter::throttled`]): a request
    /// waiting for its reservation selects on it and reserves again.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// The pace now, units per second (the configured rate, or what was learned Graph
    /// allows).
    pub fn rate(&self) -> f64 {
        self.learn.lock().unwrap().rate()
    }

    /// The configured rate.
    pub fn target(&self) -> f64 {
        self.learn.lock().unwrap().target
    }

    /// The rate Graph was last measured to allow, units per second, if it ever throttled.
    pub fn ceiling(&self) -> Option<f64> {
        let l = self.learn.lock().unwrap();
        Some(l.ceiling? / l.window?.span.as_secs_f64())
    }

    /// Throttle waves acted on.
    pub fn waves(&self) -> u64 {
        self.learn.lock().unwrap().waves
    }

    /// A new configured rate (e.g. once the tenant size is known). What was learned about
    /// Graph's real budget still holds.
    pub fn set_target(&self, rate: f64) {
        self.learn.lock().unwrap().target = rate;
        let burst = (rate * self.burst_secs).clamp(self.burst_min, self.burst_max);
        self.bucket.set_rate(rate, Some(burst));
    }

    /// Most units of this budget to put in one request now: about [`CAP_SECONDS`] of the
    /// pace and an eighth of the learned window (a slow pace sends small requests instead of
    /// waiting long for a big one), and at most [`NEAR_CAP`] (writes) while Graph says the
    /// budget is nearly used up or just throttled.
    pub fn cap(&self) -> f64 {
        let now = Instant::now();
        let l = self.learn.lock().unwrap();
        let mut cap = (l.rate() * CAP_SECONDS).ceil().max(1.0);
        if let Some(w) = l.window {
            cap = cap.min((w.budget / 8.0).floor().max(1.0));
        }
        if !self.shrink_near {
            return cap;
        }
        let window = l.window.map_or(self.default_window, |w| w.span);
        let near = l
            .pct_at
            .is_some_and(|t| now.saturating_duration_since(t) < window)
            && l.pct_max >= NEAR_PERCENTAGE;
        if near
            || l.wave_mark
                .is_some_and(|t| now.saturating_duration_since(t) < window)
        {
            cap = cap.min(NEAR_CAP);
        }
        cap
    }

    /// Before a reservation: after a clean window in which the pace held the run back, the
    /// learned budget grows (see the module comment).
    pub fn tick(&self) {
        let now = Instant::now();
        let mut l = self.learn.lock().unwrap();
        let Some(mut w) = l.window else { return };
        let interval = w
            .span
            .clamp(Duration::from_millis(500), Duration::from_secs(60));
        if now.saturating_duration_since(l.last_probe) < interval {
            return;
        }
        let pct = l.pct_max;
        let pct_fresh = l
            .pct_at
            .is_some_and(|t| now.saturating_duration_since(t) < interval);
        let held_back = std::mem::take(&mut l.held_back);
        l.last_probe = now;
        l.pct_max = 0.0;
        let clean = l
            .wave_mark
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        let top = l.target * w.span.as_secs_f64();
        if !held_back || !clean || w.budget >= top {
            return;
        }
        let step = if pct_fresh && pct >= HOLD_PERCENTAGE {
            0.0
        } else if l.pct_known && !pct_fresh {
            PROBE_FAST
        } else {
            PROBE_SLOW
        };
        w.budget = (w.budget * (1.0 + step)).min(top);
        l.window = Some(w);
        debug(|| format!("probe: pct {pct:.2} step {step} → budget {:.1}", w.budget));
    }

    /// Reserves `units` (arrival order): the configured pace, and once Graph throttled, the
    /// learned window.
    pub fn reserve(&self, units: f64) -> Reservation {
        let now = Instant::now();
        let bucket_wait = self.bucket.reserve(units);
        let mut l = self.learn.lock().unwrap();
        let Some(w) = l.window else {
            if !bucket_wait.is_zero() {
                l.held_back = true;
            }
            return Reservation {
                wait: bucket_wait,
                id: None,
            };
        };
        // Nothing older than a window counts any more.
        while l.sched.front().is_some_and(|e| e.0 + w.span <= now) {
            l.sched.pop_front();
        }
        let mut t = now + bucket_wait;
        if let Some(back) = l.sched.back() {
            t = t.max(back.0);
        }
        let mut used: f64 = l
            .sched
            .iter()
            .filter(|e| e.0 + w.span > t)
            .map(|e| e.1)
            .sum();
        if used + units > w.budget {
            for e in l.sched.iter().filter(|e| e.0 + w.span > t) {
                used -= e.1;
                if used + units <= w.budget || used <= 0.0 {
                    t = t.max(e.0 + w.span);
                    break;
                }
            }
        }
        l.next_id += 1;
        let id = l.next_id;
        l.sched.push_back((t, units, id));
        let wait = t.saturating_duration_since(now);
        if !wait.is_zero() {
            l.held_back = true;
        }
        Reservation { wait, id: Some(id) }
    }

    /// A request of this budget admitted at `admitted` is being sent.
    pub fn sending(&self, admitted: Instant) {
        let mut l = self.learn.lock().unwrap();
        l.first_send.get_or_insert(admitted);
    }

    /// Graph answered a request of this budget admitted at `admitted` (reservation `id`):
    /// `units` of it accepted (not 429); `pct` is its `x-ms-throttle-limit-percentage`.
    pub fn accepted(&self, admitted: Instant, id: Option<u64>, units: f64, pct: Option<f64>) {
        let now = Instant::now();
        let mut l = self.learn.lock().unwrap();
        if units > 0.0 {
            // Answers come back nearly in admission order: keep the log sorted.
            let pos = l.accepted.partition_point(|(t, _)| *t <= admitted);
            l.accepted.insert(pos, (admitted, units));
        }
        if let (Some(id), false) = (id, self.throttled_count) {
            // What Graph refused does not count against its window.
            if let Some(e) = l.sched.iter_mut().rev().find(|e| e.2 == id) {
                e.1 = e.1.min(units);
            }
        }
        if let Some(p) = pct.filter(|p| p.is_finite() && *p > 0.0) {
            l.pct_known = true;
            l.pct_max = l.pct_max.max(p);
            l.pct_at = Some(now);
            if l.window.is_none() {
                if l.pct_obs.len() >= MAX_PCT_OBS {
                    // Keep the whole history (the window filling up is what tells its
                    // length), at half the resolution.
                    let mut k = 0;
                    l.pct_obs.retain(|_| {
                        k += 1;
                        k % 2 == 0
                    });
                }
                let pos = l.pct_obs.partition_point(|(t, _)| *t <= admitted);
                l.pct_obs.insert(pos, (admitted, p));
            }
        }
        // Keep what a measurement can use: a few windows, at most 20 minutes.
        let keep = (l.window.map_or(self.default_window, |w| w.span) * 4)
            .clamp(Duration::from_secs(60), Duration::from_secs(1200));
        while l
            .accepted
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > keep)
        {
            l.accepted.pop_front();
        }
    }

    /// A 429 for a request of this budget admitted at `admitted`: everyone waits
    /// `retry_after` and paces again after it; if it starts a new wave, the budget settles
    /// under what Graph was measured to allow. Returns the wave when it was a new one.
    pub fn throttled(&self, admitted: Instant, retry_after: Duration) -> Option<Wave> {
        self.gate.close_for(retry_after);
        let now = Instant::now();
        let resume = self.gate.closed_until().unwrap_or(now);
        // Whoever waits for a reservation paces again from the gate's end.
        self.bucket.reset_at(resume);
        let mut l = self.learn.lock().unwrap();
        while l.sched.back().is_some_and(|e| e.0 > now) {
            l.sched.pop_back();
        }
        let new_wave = l.wave_mark.is_none_or(|m| admitted >= m);
        let wave = new_wave.then(|| self.measure(&mut l, admitted, now, resume));
        drop(l);
        self.epoch.send_modify(|e| *e += 1);
        wave
    }

    /// A new wave at `now`, Graph open again at `resume`: one decrease.
    fn measure(&self, l: &mut Learn, admitted: Instant, now: Instant, resume: Instant) -> Wave {
        l.waves += 1;
        l.wave_mark = Some(now);
        l.last_probe = resume;
        l.pct_max = 0.0;
        let first = l.first_send.unwrap_or(admitted).min(admitted);
        // The first wave measures from the first request (Graph's window was fresh or
        // shared: either way what it let through is what it allows) to the end of the wait;
        // later waves over the span the first one measured.
        // If Graph's x-ms-throttle-limit-percentage tells how long its window is, that span.
        let fitted = match l.window {
            None => fit_window(&l.accepted, &l.pct_obs, first),
            Some(_) => None,
        };
        let (from, span) = match (l.window, fitted) {
            (Some(w), _) => (
                resume.checked_sub(w.span).unwrap_or(first).max(first),
                w.span,
            ),
            (None, Some(s)) => (resume.checked_sub(s).unwrap_or(first).max(first), s),
            (None, None) => (first, resume.saturating_duration_since(first)),
        };
        let units: f64 = l
            .accepted
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, u)| u)
            .sum();
        let rate = l.rate();
        let floor = FLOOR.min(l.target);
        let (allowed, window) = if units >= MIN_SAMPLE {
            let span = span.clamp(Duration::from_millis(500), Duration::from_secs(600));
            let had = l.window.map_or(f64::INFINITY, |w| w.budget);
            l.ceiling = Some(units);
            let budget = units.min(had) * SETTLE;
            (Some(units / span.as_secs_f64()), Window { span, budget })
        } else {
            let span = l.window.map_or(self.default_window, |w| w.span);
            let budget = rate * 0.5 * span.as_secs_f64();
            (None, Window { span, budget })
        };
        let window = Window {
            budget: window
                .budget
                .max(floor * window.span.as_secs_f64())
                .max(1.0),
            ..window
        };
        if l.window.is_none() {
            // What Graph accepted in the last span is in its window: the copy starts with it.
            let from = now.checked_sub(window.span).unwrap_or(first);
            let seed: Vec<(Instant, f64, u64)> = l
                .accepted
                .iter()
                .filter(|(t, _)| *t > from)
                .map(|&(t, u)| (t, u, 0))
                .collect();
            l.sched = seed.into();
        }
        l.window = Some(window);
        let wave = Wave {
            allowed,
            rate: l.rate(),
        };
        debug(|| {
            format!(
                "wave: {units} units from {:.2} s before, allowed {allowed:?}/s, {rate:.2} → {:.2}/s ({:.1} per {:.2} s)",
                resume.saturating_duration_since(from).as_secs_f64(),
                wave.rate,
                window.budget,
                window.span.as_secs_f64()
            )
        });
        wave
    }
}

/// Most `x-ms-throttle-limit-percentage` observations kept for [`fit_window`].
const MAX_PCT_OBS: usize = 400;

/// How long Graph's window is, from its `x-ms-throttle-limit-percentage`: at each answer,
/// the units the client had accepted in the last `S` seconds divided by the percentage Graph
/// reported is Graph's limit; for the right `S` it is the same at every answer. Needs answers
/// from both before and after the window first filled (below that, any longer span fits as
/// well, and the first wave's own span is the better measure): None if the answers do not
/// single out a span.
fn fit_window(
    accepted: &VecDeque<(Instant, f64)>,
    obs: &VecDeque<(Instant, f64)>,
    first: Instant,
) -> Option<Duration> {
    let obs: Vec<(Instant, f64)> = obs
        .iter()
        .copied()
        .filter(|(t, p)| *t >= first && (0.5..=2.0).contains(p))
        .collect();
    if obs.len() < 8 {
        return None;
    }
    // Cumulative units by admission time, for sums over any span.
    let times: Vec<Instant> = accepted.iter().map(|e| e.0).collect();
    let mut cum = Vec::with_capacity(accepted.len() + 1);
    cum.push(0.0);
    for e in accepted {
        cum.push(cum.last().copied().unwrap_or(0.0) + e.1);
    }
    let upto = |t: Instant| cum[times.partition_point(|x| *x <= t)];
    let age = obs.last()?.0.saturating_duration_since(first).as_secs_f64();
    if age <= 0.0 {
        return None;
    }
    // Spans from 0.2 s up to the run's age (any longer span sums the same units), ×1.08.
    let mut spans = Vec::new();
    let mut s = 0.2f64;
    while s < age.min(600.0) {
        spans.push(s);
        s *= 1.08;
    }
    spans.push(age);
    let score = |span: f64| -> Option<f64> {
        let d = Duration::from_secs_f64(span);
        let ls: Vec<f64> = obs
            .iter()
            .map(|&(t, p)| (upto(t) - upto(t.checked_sub(d).unwrap_or(first))) / p)
            .collect();
        let n = ls.len() as f64;
        let mean = ls.iter().sum::<f64>() / n;
        if mean <= 0.0 {
            return None;
        }
        let var = ls.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
        Some(var.sqrt() / mean)
    };
    let scored: Vec<(f64, f64)> = spans
        .iter()
        .filter_map(|&s| score(s).map(|c| (s, c)))
        .collect();
    let best = scored.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let mut all: Vec<f64> = scored.iter().map(|x| x.1).collect();
    all.sort_by(f64::total_cmp);
    let median = all[all.len() / 2];
    // The shortest span that fits as well as the best one.
    let chosen = scored
        .iter()
        .find(|x| x.1 <= best.1 * 1.1 + 0.005)
        .map_or(best.0, |x| x.0);
    debug(|| {
        format!(
            "fit: {} answers, best span {:.2} s (cv {:.3}), chosen {chosen:.2} s, median cv {median:.3}, age {age:.2} s",
            obs.len(),
            best.0,
            best.1
        )
    });
    // A fit, not a family of equally good spans: clearly better than most, shorter than the
    // run (else the window never filled twice: the first wave's span is the measure).
    if best.1 < 0.05 && best.1 * 3.0 < median && chosen < age * 0.85 {
        Some(Duration::from_secs_f64(chosen))
    } else {
        None
    }
}

/// `MFA_BULK_DEBUG_PACING=1`: what the pacer learns, on stderr.
fn debug(msg: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("MFA_BULK_DEBUG_PACING").is_some()) {
        eprintln!("[pacing] {}", msg());
    }
}

/// Cost of one request in resource units (Graph's documented costs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub ru: u32,
    pub write: bool,
}

impl Cost {
    /// GET of one resource: 1 RU (`$select` cannot lower it below 1).
    pub const GET_ONE: Cost = Cost {
        ru: 1,
        write: false,
    };
    /// GET of a list: 2 RU, 1 with `$select`.
    pub fn get_list(select: bool) -> Cost {
        Cost {
            ru: if select { 1 } else { 2 },
            write: false,
        }
    }
    /// PATCH/POST/DELETE: 1 RU and one write.
    pub const WRITE: Cost = Cost { ru: 1, write: true };
}

/// Which budget a 429 (or `x-ms-throttle-scope`) is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Resource units (`…/ReadWrite/…` or `…/Read/…`).
    Ru,
    /// Writes per app or per tenant (`…/Write/…`).
    Writes,
}

/// Reads `x-ms-throttle-scope` (`<Scope>/<Limit>/<ApplicationId>/<TenantId>`): which budget
/// ran out. None when absent or unreadable.
pub fn scope_budget(scope: &str) -> Option<Budget> {
    let limit = scope.split('/').nth(1)?.trim();
    if limit.eq_ignore_ascii_case("Write") {
        Some(Budget::Writes)
    } else if limit.eq_ignore_ascii_case("ReadWrite") || limit.eq_ignore_ascii_case("Read") {
        Some(Budget::Ru)
    } else {
        None
    }
}

/// Reads `x-ms-throttle-limit-percentage` (`0.8`…`1.8`; a value written as a percentage,
/// `85`, is read as 0.85).
pub fn parse_percentage(v: &str) -> Option<f64> {
    let p: f64 = v.trim().trim_end_matches('%').trim().parse().ok()?;
    if !p.is_finite() || p <= 0.0 {
        return None;
    }
    Some(if p > 5.0 { p / 100.0 } else { p })
}

/// The shared pacer: RU budget and write budget.
pub struct Pacer {
    pub ru: Limiter,
    pub writes: Limiter,
    /// Whether the RU budget was set by `--rate` (then the tenant size does not change it).
    pub ru_fixed: bool,
}

impl Pacer {
    pub fn new(ru_per_10s: Option<u32>, writes_per_sec: Option<f64>) -> Pacer {
        let ru = match ru_per_10s {
            Some(r) => r as f64,
            None => ru_budget_for_size(None) as f64 * RU_HEADROOM,
        };
        let w = writes_per_sec.unwrap_or(DEFAULT_WRITES_PER_SEC);
        Pacer {
            // Burst: half a second's worth, at least a few requests.
            ru: Limiter::new(
                ru / 10.0,
                Duration::from_secs(10),
                (0.5, 4.0, f64::MAX),
                false,
            ),
            writes: Limiter::new(w, Duration::from_secs(10), (0.25, 1.0, 5.0), true),
            ru_fixed: ru_per_10s.is_some(),
        }
    }

    pub fn limiter(&self, b: Budget) -> &Limiter {
        match b {
            Budget::Ru => &self.ru,
            Budget::Writes => &self.writes,
        }
    }

    /// Raises (or lowers) the RU budget to the tenant-size table, unless `--rate` was given.
    pub fn set_tenant_size(&self, users: u64) {
        if self.ru_fixed {
            return;
        }
        let ru = ru_budget_for_size(Some(users)) as f64 * RU_HEADROOM;
        self.ru.set_target(ru / 10.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_size_table() {
        assert_eq!(ru_budget_for_size(None), 3500);
        assert_eq!(ru_budget_for_size(Some(10)), 3500);
        assert_eq!(ru_budget_for_size(Some(50)), 5000);
        assert_eq!(ru_budget_for_size(Some(500)), 5000);
        assert_eq!(ru_budget_for_size(Some(501)), 8000);
    }

    #[test]
    fn default_write_pace_stays_under_the_limit_in_any_window() {
        let p = Pacer::new(None, None);
        let worst = p.writes.target() * 150.0 + p.writes.bucket.burst();
        assert!(worst < WRITES_PER_2_5_MIN, "{worst}");
        assert!(worst > 0.95 * WRITES_PER_2_5_MIN, "{worst}");
        let ru_worst = p.ru.target() * 10.0 + p.ru.bucket.burst();
        assert!(ru_worst < 3500.0 && ru_worst > 3000.0, "{ru_worst}");
    }

    #[test]
    fn cost_table() {
        assert_eq!(Cost::GET_ONE.ru, 1);
        assert_eq!(Cost::get_list(false).ru, 2);
        assert_eq!(Cost::get_list(true).ru, 1);
        assert_eq!(Cost::WRITE, Cost { ru: 1, write: true });
    }

    #[test]
    fn throttle_headers_are_read() {
        assert_eq!(
            scope_budget("Tenant_Application/ReadWrite/9a3d526c/0785ef7c"),
            Some(Budget::Ru)
        );
        assert_eq!(scope_budget("Tenant/Write/a/t"), Some(Budget::Writes));
        assert_eq!(
            scope_budget("Tenant_Application/Write/a/t"),
            Some(Budget::Writes)
        );
        assert_eq!(scope_budget("Application/Read/a/t"), Some(Budget::Ru));
        assert_eq!(scope_budget("garbage"), None);
        assert_eq!(parse_percentage("0.85"), Some(0.85));
        assert_eq!(parse_percentage("1.8"), Some(1.8));
        assert_eq!(parse_percentage("85"), Some(0.85));
        assert_eq!(parse_percentage("-1"), None);
        assert_eq!(parse_percentage("x"), None);
    }

    #[tokio::test]
    async fn bucket_paces_at_its_rate_after_the_burst() {
        let b = Bucket::new(100.0, 2.0);
        let start = Instant::now();
        for _ in 0..22 {
            b.acquire(1.0).await;
        }
        // 2 from the burst, 20 more at 100/s: about 0.2 s.
        let took = start.elapsed().as_secs_f64();
        assert!((0.19..0.35).contains(&took), "{took}");
    }

    /// Moves every clock of the limiter `d` into the past (as if `d` went by).
    fn age(l: &Limiter, d: Duration) {
        let mut s = l.learn.lock().unwrap();
        s.first_send = s.first_send.map(|t| t - d);
        s.wave_mark = s.wave_mark.map(|t| t - d);
        s.last_probe -= d;
        s.pct_at = s.pct_at.map(|t| t - d);
        for e in s.accepted.iter_mut() {
            e.0 -= d;
        }
        for e in s.sched.iter_mut() {
            e.0 -= d;
        }
        drop(s);
        l.gate.until.lock().unwrap().take();
        let mut b = l.bucket.state.lock().unwrap();
        b.last -= d;
    }

    fn writes(rate: f64) -> Limiter {
        Limiter::new(rate, Duration::from_secs(10), (0.25, 1.0, 5.0), true)
    }

    /// A write limiter at 20/s that sent `n` writes, accepted, spread over the last `secs`.
    fn limiter_after(n: usize, secs: f64) -> Limiter {
        let l = writes(20.0);
        let start = Instant::now() - Duration::from_secs_f64(secs);
        l.sending(start);
        for i in 0..n {
            let t = start + Duration::from_secs_f64(secs * i as f64 / n as f64);
            l.accepted(t, None, 1.0, None);
        }
        l
    }

    #[test]
    fn a_wave_is_one_decrease_to_just_under_what_graph_allowed() {
        // 40 writes accepted in the 2 s before the wall; Graph says wait 2 s more: Graph
        // allows 40 per 4 s = 10/s, not the 20/s configured.
        let l = limiter_after(40, 2.0);
        let sent = Instant::now();
        let w = l
            .throttled(sent, Duration::from_secs(2))
            .expect("a new wave");
        let allowed = w.allowed.unwrap();
        assert!((allowed - 10.0).abs() < 0.2, "{allowed}");
        assert!((w.rate - 10.0 * SETTLE).abs() < 0.2, "{w:?}");
        assert!((l.ceiling().unwrap() - 10.0).abs() < 0.2);
        // The other nineteen items of the same $batch, and a batch already in flight: no
        // further decrease.
        for _ in 0..19 {
            assert_eq!(l.throttled(sent, Duration::from_secs(2)), None);
        }
        assert_eq!(
            l.throttled(sent - Duration::from_millis(5), Duration::from_secs(1)),
            None
        );
        assert!((l.rate() - 10.0 * SETTLE).abs() < 0.2, "{}", l.rate());
        assert_eq!(l.waves(), 1);
        // The gate holds everyone until Retry-After ends (never shortened).
        let until = l.gate.closed_until().expect("closed");
        assert!(until >= sent + Duration::from_millis(1900));
    }

    #[test]
    fn after_a_wave_the_run_keeps_a_copy_of_graphs_window() {
        // Configured far above what Graph allows: only the learned window paces.
        let l = writes(500.0);
        let start = Instant::now() - Duration::from_secs(2);
        l.sending(start);
        for i in 0..40 {
            l.accepted(start + Duration::from_millis(50 * i), None, 1.0, None);
        }
        let w = l.throttled(Instant::now(), Duration::from_secs(2)).unwrap();
        assert!((w.allowed.unwrap() - 10.0).abs() < 0.2, "{w:?}");
        // At the gate's end: 37 writes (93 % of 40) in any 4 s; the 40 already sent leave
        // Graph's window 4 s after they were sent, 20 a second, as they came.
        age(&l, Duration::from_secs(2));
        let waits: Vec<f64> = (0..30).map(|_| l.reserve(1.0).wait.as_secs_f64()).collect();
        assert!((0.1..0.25).contains(&waits[0]), "{waits:?}");
        assert!((1.5..1.75).contains(&waits[29]), "{waits:?}");
        // What Graph refused does not count: a reservation answered 429 frees its room.
        let r = l.reserve(4.0);
        let before = l.reserve(1.0).wait;
        l.accepted(Instant::now(), r.id, 0.0, None);
        assert!(l.reserve(1.0).wait < before + Duration::from_millis(10));
        let room: f64 = l.learn.lock().unwrap().sched.iter().map(|e| e.1).sum();
        assert!(room < 40.0 + 30.0 + 2.0 + 1e-9, "{room}");
    }

    #[test]
    fn a_request_admitted_after_the_decrease_that_is_throttled_is_a_new_wave() {
        let l = limiter_after(40, 2.0);
        l.throttled(Instant::now(), Duration::from_secs(2)).unwrap();
        let first = l.rate();
        // Six seconds later the limit dropped again: 20 accepted over the window (4 s) → 5/s.
        age(&l, Duration::from_secs(6));
        let now = Instant::now();
        for i in 0..20 {
            l.accepted(now - Duration::from_millis(100 * i), None, 1.0, None);
        }
        let w = l.throttled(now, Duration::ZERO).expect("new wave");
        assert!((w.allowed.unwrap() - 5.0).abs() < 0.3, "{w:?}");
        assert!(
            w.rate < first && (w.rate - 5.0 * SETTLE).abs() < 0.3,
            "{w:?}"
        );
        assert_eq!(l.waves(), 2);
    }

    #[test]
    fn too_few_accepted_to_measure_halves_instead() {
        let l = limiter_after(2, 1.0);
        let w = l.throttled(Instant::now(), Duration::from_secs(1)).unwrap();
        assert_eq!(w.allowed, None);
        assert!((w.rate - 10.0).abs() < 1e-9, "{w:?}");
        assert_eq!(l.ceiling(), None);
        // Never below the floor.
        for _ in 0..20 {
            age(&l, Duration::from_secs(30));
            l.throttled(Instant::now(), Duration::ZERO);
        }
        assert!(l.rate() >= FLOOR - 1e-9, "{}", l.rate());
    }

    #[test]
    fn the_budget_creeps_up_only_after_clean_windows_in_use_and_never_past_the_target() {
        let l = limiter_after(40, 2.0);
        l.throttled(Instant::now(), Duration::from_secs(2)).unwrap();
        let settled = l.rate();
        let held = |l: &Limiter| l.learn.lock().unwrap().held_back = true;
        // A clean window (4 s) after the gate's end, in which the pace held requests back:
        // +1.5 %.
        age(&l, Duration::from_secs(7));
        held(&l);
        l.tick();
        let r1 = l.rate();
        assert!(
            (r1 / settled - (1.0 + PROBE_SLOW)).abs() < 1e-6,
            "{settled} → {r1}"
        );
        // A window in which the run did not use the budget: no change.
        age(&l, Duration::from_secs(5));
        l.tick();
        assert_eq!(l.rate(), r1);
        // Graph says 95 % used: hold.
        age(&l, Duration::from_secs(5));
        l.accepted(Instant::now(), None, 1.0, Some(0.95));
        held(&l);
        l.tick();
        assert_eq!(l.rate(), r1);
        // Graph sent the header before but not in the last window (< 80 %): faster.
        age(&l, Duration::from_secs(5));
        held(&l);
        l.tick();
        assert!((l.rate() / r1 - (1.0 + PROBE_FAST)).abs() < 1e-6);
        // Never above the configured rate.
        for _ in 0..200 {
            age(&l, Duration::from_secs(5));
            held(&l);
            l.tick();
        }
        assert!((l.rate() - 20.0).abs() < 1e-9, "{}", l.rate());
    }

    #[test]
    fn the_window_length_is_read_from_the_limit_percentage() {
        // Graph allows 400 per 4 s; the client sends 90/s from t = 0 (admission times) and
        // Graph reports how full its window is from 80 %.
        let l = writes(95.0);
        let start = Instant::now() - Duration::from_secs(10);
        l.sending(start);
        let mut t = 0.0;
        while t < 10.0 {
            let at = start + Duration::from_secs_f64(t);
            let pct = (t.min(4.0) * 90.0 + 1.0) / 400.0;
            l.accepted(at, None, 1.0, (pct >= 0.8).then_some(pct));
            t += 1.0 / 90.0;
        }
        let l2 = l.learn.lock().unwrap();
        let span = fit_window(&l2.accepted, &l2.pct_obs, start).expect("a fit");
        assert!((span.as_secs_f64() - 4.0).abs() < 0.4, "{span:?}");
        // Only answers from before the window first filled: no fit (any longer span fits).
        let few: VecDeque<(Instant, f64)> = l2
            .pct_obs
            .iter()
            .copied()
            .filter(|(t, _)| *t < start + Duration::from_millis(3900))
            .collect();
        assert_eq!(fit_window(&l2.accepted, &few, start), None);
    }

    #[test]
    fn requests_shrink_near_the_limit_and_with_a_slow_pace() {
        let l = writes(19.5);
        assert_eq!(l.cap(), 20.0);
        l.accepted(Instant::now(), None, 1.0, Some(0.85));
        assert_eq!(l.cap(), NEAR_CAP);
        assert_eq!(writes(0.05).cap(), 1.0);
        // Reads do not shrink near the limit.
        let ru = Limiter::new(350.0, Duration::from_secs(10), (0.5, 4.0, f64::MAX), false);
        ru.accepted(Instant::now(), None, 1.0, Some(0.95));
        assert_eq!(ru.cap(), 350.0);
    }

    #[test]
    fn tenant_size_raises_the_budget_unless_rate_was_given() {
        let p = Pacer::new(None, None);
        p.set_tenant_size(10_000);
        assert!((p.ru.target() - 760.0).abs() < 1e-9);
        assert!((p.ru.rate() - 760.0).abs() < 1e-9);
        let p = Pacer::new(Some(1000), None);
        p.set_tenant_size(10_000);
        assert!((p.ru.target() - 100.0).abs() < 1e-9);
    }
}
