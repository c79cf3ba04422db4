//! Graph's "identity and access" throttling: per app, a budget of resource units (RU) per
//! sliding 10 s window, a write limit per sliding 150 s window, and the registration report's
//! own small request limit; and the tenant's write limit for all apps together (18,000 per
//! 300 s). All windows run on simulated time (see [`super::state::Clock`]).
//!
//! Requests made while throttled still count against the RU budget (as Graph documents): a
//! client that hammers after a 429 stays throttled. A throttled write is not counted as a write.

use std::collections::{HashMap, VecDeque};

/// A sliding window of (time, amount) entries.
#[derive(Debug, Default)]
pub(super) struct Window {
    entries: VecDeque<(f64, u64)>,
    sum: u64,
}

impl Window {
    fn prune(&mut self, now: f64, span: f64) {
        while let Some(&(t, c)) = self.entries.front() {
            if t <= now - span {
                self.entries.pop_front();
                self.sum -= c;
            } else {
                break;
            }
        }
    }

    fn add(&mut self, now: f64, amount: u64) {
        self.entries.push_back((now, amount));
        self.sum += amount;
    }

    /// Simulated seconds until `amount` more fits under `limit`.
    fn wait_for(&self, now: f64, span: f64, amount: u64, limit: u64) -> f64 {
        let mut remaining = self.sum;
        let mut free_at = now;
        for &(t, c) in &self.entries {
            if remaining + amount <= limit {
                break;
            }
            remaining -= c;
            free_at = t + span;
        }
        (free_at - now).max(0.0)
    }
}

pub(super) const RU_SPAN: f64 = 10.0;
pub(super) const WRITE_SPAN: f64 = 150.0;
pub(super) const REPORT_SPAN: f64 = 10.0;
pub(super) const TENANT_WRITE_SPAN: f64 = 300.0;

#[derive(Debug, Default)]
pub(super) struct AppWindows {
    ru: Window,
    writes: Window,
    reports: Window,
}

#[derive(Debug, Default)]
pub(super) struct Throttle {
    apps: HashMap<String, AppWindows>,
    /// Writes of all apps together.
    tenant_writes: Window,
}

/// What one Graph request costs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cost {
    pub ru: u64,
    pub write: bool,
    pub report: bool,
}

pub(super) struct Limits {
    pub ru: u64,
    pub writes: u64,
    pub reports: u64,
    pub tenant_writes: u64,
}

impl Throttle {
    /// Charges a request. `Err(wait)` = throttled; `wait` in simulated seconds.
    pub fn charge(&mut self, app: &str, now: f64, cost: Cost, lim: &Limits) -> Result<(), f64> {
        let w = self.apps.entry(app.to_string()).or_default();
        w.ru.prune(now, RU_SPAN);
        w.writes.prune(now, WRITE_SPAN);
        w.reports.prune(now, REPORT_SPAN);
        let ru_ok = w.ru.sum + cost.ru <= lim.ru;
        // Counted even when throttled.
        w.ru.add(now, cost.ru);
        if !ru_ok {
            return Err(w.ru.wait_for(now, RU_SPAN, cost.ru, lim.ru));
        }
        if cost.report {
            if w.reports.sum + 1 > lim.reports {
                return Err(w.reports.wait_for(now, REPORT_SPAN, 1, lim.reports));
            }
            w.reports.add(now, 1);
        }
        if cost.write {
            if w.writes.sum + 1 > lim.writes {
                return Err(w.writes.wait_for(now, WRITE_SPAN, 1, lim.writes));
            }
            let t = &mut self.tenant_writes;
            t.prune(now, TENANT_WRITE_SPAN);
            if t.sum + 1 > lim.tenant_writes {
                return Err(t.wait_for(now, TENANT_WRITE_SPAN, 1, lim.tenant_writes));
            }
            t.add(now, 1);
            w.writes.add(now, 1);
        }
        Ok(())
    }
}

/// `Retry-After` for a wait of `sim_wait` simulated seconds: whole simulated seconds (at least
/// one, as Graph sends), converted to real seconds. With `time_scale` 1 this is an integer, as
/// from Graph; with a time scale it is a decimal number of real seconds (e.g. `0.3`).
pub(super) fn retry_after_value(sim_wait: f64, scale: f64) -> String {
    let whole = sim_wait.ceil().max(1.0);
    let real = whole / scale;
    if real.fract() == 0.0 {
        format!("{}", real as u64)
    } else {
        let s = format!("{real:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "0" {
            "0.001".to_string()
        } else {
            s.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_formats() {
        assert_eq!(retry_after_value(0.2, 1.0), "1");
        assert_eq!(retry_after_value(2.5, 1.0), "3");
        assert_eq!(retry_after_value(3.0, 10.0), "0.3");
        assert_eq!(retry_after_value(5.0, 5.0), "1");
    }

    #[test]
    fn throttled_requests_still_count() {
        let mut t = Throttle::default();
        let lim = Limits {
            ru: 3,
            writes: 100,
            reports: 5,
            tenant_writes: 100,
        };
        let c = Cost {
            ru: 1,
            write: false,
            report: false,
        };
        for _ in 0..3 {
            assert!(t.charge("a", 0.0, c, &lim).is_ok());
        }
        let w = t.charge("a", 1.0, c, &lim).unwrap_err();
        assert!((w - 9.0).abs() < 1e-9, "{w}");
        // at 10.5 the first three have left the window, but the throttled one has not
        assert!(t.charge("a", 10.5, c, &lim).is_ok());
        assert!(t.charge("a", 10.5, c, &lim).is_ok());
        assert!(t.charge("a", 10.5, c, &lim).is_err());
    }
}
