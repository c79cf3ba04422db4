//! The one pacing point of a run: a resource-unit budget, a write budget and a shared
//! "throttled until" gate, all shared by every clone of the client.
//!
//! Each budget is a token bucket whose rate can change while the run goes on (AIMD): a 429
//! halves it (at most once per throttle wave), then it climbs back linearly to its target. A
//! fixed-quota limiter (governor) would reset its burst whenever the rate changed, so the
//! bucket is our own: requests reserve their cost (the balance may go negative) and wait until
//! the reservation is covered, which keeps waiting requests in arrival order.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Graph's documented budgets.
pub const WRITES_PER_2_5_MIN: f64 = 3000.0;
/// Default write pace: just under 3,000 per 150 s (20/s).
pub const DEFAULT_WRITES_PER_SEC: f64 = 19.5;
/// Fraction of the documented RU budget paced at by default.
pub const RU_HEADROOM: f64 = 0.95;

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
    /// Rate to recover to.
    target: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    last_decrease: Option<Instant>,
}

/// A token bucket with an adjustable rate (additive increase, multiplicative decrease).
pub struct Bucket {
    state: Mutex<BucketState>,
    /// Rate gained back per second while below target, as a fraction of the target.
    recover_per_sec: f64,
    /// Lowest fraction of the target a 429 can push the rate to.
    floor: f64,
}

impl Bucket {
    pub fn new(rate_per_sec: f64, burst: f64) -> Bucket {
        let burst = burst.max(1.0);
        Bucket {
            state: Mutex::new(BucketState {
                rate: rate_per_sec,
                target: rate_per_sec,
                burst,
                tokens: burst,
                last: Instant::now(),
                last_decrease: None,
            }),
            recover_per_sec: 0.05,
            floor: 0.1,
        }
    }

    fn refill(&self, s: &mut BucketState, now: Instant) {
        let dt = now.saturating_duration_since(s.last).as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        // Additive increase: back to the target over about 1 / recover_per_sec seconds.
        if s.rate < s.target {
            s.rate = (s.rate + s.target * self.recover_per_sec * dt).min(s.target);
        }
        s.tokens = (s.tokens + s.rate * dt).min(s.burst);
        s.last = now;
    }

    /// Reserves `cost` tokens and returns how long to wait before using them.
    pub fn reserve(&self, cost: f64) -> Duration {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        self.refill(&mut s, now);
        s.tokens -= cost;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / s.rate.max(1e-6))
        }
    }

    /// Waits until `cost` tokens are available (reserved at call time).
    pub async fn acquire(&self, cost: f64) {
        let wait = self.reserve(cost);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// A 429: halve the rate, once per `window` (requests of one wave all come back 429).
    /// Also drains the tokens so no burst follows the wait.
    pub fn decrease(&self, window: Duration) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        self.refill(&mut s, now);
        if let Some(t) = s.last_decrease {
            if now.saturating_duration_since(t) < window {
                return;
            }
        }
        s.last_decrease = Some(now);
        s.rate = (s.rate * 0.5).max(s.target * self.floor);
        s.tokens = s.tokens.min(0.0);
    }

    /// Sets a new target (and the current rate to it) e.g. once the tenant size is known.
    pub fn set_target(&self, rate_per_sec: f64, burst: f64) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        self.refill(&mut s, now);
        s.target = rate_per_sec;
        s.rate = rate_per_sec;
        s.burst = burst.max(1.0);
        s.tokens = s.tokens.min(s.burst);
    }

    pub fn rate(&self) -> f64 {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        self.refill(&mut s, now);
        s.rate
    }

    pub fn target(&self) -> f64 {
        self.state.lock().unwrap().target
    }
}

/// "Nobody sends before this instant": set by any 429 (or 503 with Retry-After), checked by
/// every request before it is sent.
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

    /// Waits while the gate is closed. Returns whether it waited.
    pub async fn wait(&self) -> bool {
        let mut waited = false;
        loop {
            let until = *self.until.lock().unwrap();
            match until {
                Some(t) if t > Instant::now() => {
                    tokio::time::sleep_until(t).await;
                    waited = true;
                }
                _ => return waited,
            }
        }
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

/// The shared pacer: RU budget, write budget, gate.
pub struct Pacer {
    pub ru: Bucket,
    pub writes: Bucket,
    pub gate: Gate,
    /// Whether the RU budget was set by `--rate` (then the tenant size does not change it).
    pub ru_fixed: bool,
}

fn ru_bucket_params(ru_per_10s: f64) -> (f64, f64) {
    let per_sec = ru_per_10s / 10.0;
    // Burst: half a second's worth, at least a few requests.
    (per_sec, (per_sec / 2.0).max(4.0))
}

impl Pacer {
    pub fn new(ru_per_10s: Option<u32>, writes_per_sec: Option<f64>) -> Pacer {
        let ru = match ru_per_10s {
            Some(r) => r as f64,
            None => ru_budget_for_size(None) as f64 * RU_HEADROOM,
        };
        let (ru_rate, ru_burst) = ru_bucket_params(ru);
        let w = writes_per_sec.unwrap_or(DEFAULT_WRITES_PER_SEC);
        Pacer {
            ru: Bucket::new(ru_rate, ru_burst),
            writes: Bucket::new(w, (w / 4.0).clamp(1.0, 5.0)),
            gate: Gate::default(),
            ru_fixed: ru_per_10s.is_some(),
        }
    }

    /// Raises (or lowers) the RU budget to the tenant-size table, unless `--rate` was given.
    pub fn set_tenant_size(&self, users: u64) {
        if self.ru_fixed {
            return;
        }
        let ru = ru_budget_for_size(Some(users)) as f64 * RU_HEADROOM;
        let (rate, burst) = ru_bucket_params(ru);
        self.ru.set_target(rate, burst);
    }

    /// Waits for the gate and for the budgets to cover `cost`.
    pub async fn admit(&self, cost: Cost) {
        self.gate.wait().await;
        if cost.write {
            self.writes.acquire(1.0).await;
        }
        self.ru.acquire(cost.ru as f64).await;
        // A 429 may have closed the gate while this request waited for budget.
        self.gate.wait().await;
    }

    /// A 429 (or 503 with Retry-After): everyone waits `retry_after`, and the rate backs off.
    pub fn throttled(&self, retry_after: Duration, write: bool) {
        self.gate.close_for(retry_after);
        let window = retry_after.max(Duration::from_millis(500));
        self.ru.decrease(window);
        if write {
            self.writes.decrease(window);
        }
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
        let burst = p.writes.state.lock().unwrap().burst;
        let worst = p.writes.target() * 150.0 + burst;
        assert!(worst < WRITES_PER_2_5_MIN, "{worst}");
        assert!(worst > 0.95 * WRITES_PER_2_5_MIN, "{worst}");
        let ru_burst = p.ru.state.lock().unwrap().burst;
        let ru_worst = p.ru.target() * 10.0 + ru_burst;
        assert!(ru_worst < 3500.0 && ru_worst > 3000.0, "{ru_worst}");
    }

    #[test]
    fn cost_table() {
        assert_eq!(Cost::GET_ONE.ru, 1);
        assert_eq!(Cost::get_list(false).ru, 2);
        assert_eq!(Cost::get_list(true).ru, 1);
        assert_eq!(Cost::WRITE, Cost { ru: 1, write: true });
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

    #[test]
    fn aimd_halves_once_per_wave_and_recovers_linearly() {
        let b = Bucket::new(20.0, 1.0);
        b.decrease(Duration::from_secs(60));
        b.decrease(Duration::from_secs(60)); // same wave: ignored
        assert!((b.rate() - 10.0).abs() < 0.1, "{}", b.rate());
        // Pretend 5 s went by: 5 s × 5 % of 20/s per second = +5/s.
        {
            let mut s = b.state.lock().unwrap();
            s.last -= Duration::from_secs(5);
            s.last_decrease = s.last_decrease.map(|t| t - Duration::from_secs(120));
        }
        assert!((b.rate() - 15.0).abs() < 0.1, "{}", b.rate());
        b.decrease(Duration::from_secs(60));
        assert!((b.rate() - 7.5).abs() < 0.1, "{}", b.rate());
        {
            let mut s = b.state.lock().unwrap();
            s.last -= Duration::from_secs(60);
        }
        assert!((b.rate() - 20.0).abs() < 1e-9);
        // Never below the floor.
        for _ in 0..10 {
            b.state.lock().unwrap().last_decrease = None;
            b.decrease(Duration::from_secs(1));
        }
        assert!(b.rate() >= 2.0 - 1e-9);
    }

    #[tokio::test]
    async fn gate_holds_everyone_until_retry_after() {
        let p = std::sync::Arc::new(Pacer::new(Some(10_000), None));
        let start = Instant::now();
        p.throttled(Duration::from_millis(150), false);
        let mut hs = Vec::new();
        for _ in 0..4 {
            let p = p.clone();
            hs.push(tokio::spawn(async move {
                p.admit(Cost::GET_ONE).await;
                Instant::now()
            }));
        }
        for h in hs {
            let t = h.await.unwrap();
            assert!(t.duration_since(start) >= Duration::from_millis(150));
        }
        // A shorter Retry-After never shortens the wait.
        let s = Instant::now();
        p.gate.close_for(Duration::from_millis(200));
        p.gate.close_for(Duration::from_millis(10));
        p.gate.wait().await;
        assert!(s.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn tenant_size_raises_the_budget_unless_rate_was_given() {
        let p = Pacer::new(None, None);
        p.set_tenant_size(10_000);
        assert!((p.ru.target() - 760.0).abs() < 1e-9);
        let p = Pacer::new(Some(1000), None);
        p.set_tenant_size(10_000);
        assert!((p.ru.target() - 100.0).abs() < 1e-9);
    }
}
