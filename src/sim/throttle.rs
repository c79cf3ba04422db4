//! Graph's "identity and access" throttling: per app, a budget of resource units (RU) per
//! sliding 10 s window, a write limit per sliding 150 s window, and the registration report's
//! own small request limit; and the tenant's write limit for all apps together (18,000 per
//! 300 s). All windows run on simulated time (see [`super::state::Clock`]).
//!
//! Requests made while throttled still count against the RU budget (as Graph documents): a
//! client that hammers after a 429 stays throttled. A throttled write is not counted as a write.
//!
//! Every answer says how full the budgets are as Graph does: `x-ms-resource-unit` (the cost
//! charged), `x-ms-throttle-limit-percentage` from 80 % of a budget (`0.8`…`1.8`), and on a
//! 429 `x-ms-throttle-scope` (`<Scope>/<Limit>/<ApplicationId>/<TenantId>`) and
//! `x-ms-throttle-information` (why). The limits can change while the simulator runs
//! (`POST /_sim/limits`): a tenant whose real budget is below the documented one, or one
//! where another app starts writing.

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

/// The limits in force (they can change at run time: `POST /_sim/limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub(super) struct Limits {
    pub ru: u64,
    pub writes: u64,
    pub reports: u64,
    pub tenant_writes: u64,
}

/// Which budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exceeded {
    /// Resource units per app per tenant.
    Ru,
    /// The registration report's request limit.
    Reports,
    /// Writes per app per tenant.
    AppWrites,
    /// Writes of all apps of the tenant.
    TenantWrites,
}

impl Exceeded {
    /// `x-ms-throttle-scope` (`<Scope>/<Limit>/<ApplicationId>/<TenantId>`).
    pub(super) fn scope(self, app: &str, tenant: &str) -> String {
        let (scope, limit) = match self {
            Exceeded::Ru => ("Tenant_Application", "ReadWrite"),
            Exceeded::Reports => ("Tenant_Application", "Read"),
            Exceeded::AppWrites => ("Tenant_Application", "Write"),
            Exceeded::TenantWrites => ("Tenant", "Write"),
        };
        format!("{scope}/{limit}/{app}/{tenant}")
    }

    /// `x-ms-throttle-information`.
    pub(super) fn information(self) -> &'static str {
        match self {
            Exceeded::Ru | Exceeded::Reports => "ResourceUnitLimitExceeded",
            Exceeded::AppWrites | Exceeded::TenantWrites => "WriteLimitExceeded",
        }
    }
}

/// A throttled request: how long until it would fit (simulated seconds), which budget.
#[derive(Clone, Copy, Debug)]
pub(super) struct Throttled {
    pub wait: f64,
    pub exceeded: Exceeded,
    /// How full that budget is (≥ 1.0).
    pub usage: f64,
}

fn frac(sum: u64, limit: u64) -> f64 {
    sum as f64 / limit.max(1) as f64
}

impl Throttle {
    /// Charges a request. `Ok(usage)`: accepted, `usage` the fullest budget it was charged
    /// against (fraction of its limit, after this request); `Err`: throttled.
    pub(super) fn charge(
        &mut self,
        app: &str,
        now: f64,
        cost: Cost,
        lim: &Limits,
    ) -> Result<f64, Throttled> {
        let w = self.apps.entry(app.to_string()).or_default();
        w.ru.prune(now, RU_SPAN);
        w.writes.prune(now, WRITE_SPAN);
        w.reports.prune(now, REPORT_SPAN);
        let ru_ok = w.ru.sum + cost.ru <= lim.ru;
        // Counted even when throttled.
        w.ru.add(now, cost.ru);
        if !ru_ok {
            return Err(Throttled {
                wait: w.ru.wait_for(now, RU_SPAN, cost.ru, lim.ru),
                exceeded: Exceeded::Ru,
                usage: frac(w.ru.sum, lim.ru),
            });
        }
        let mut usage = frac(w.ru.sum, lim.ru);
        if cost.report {
            if w.reports.sum + 1 > lim.reports {
                return Err(Throttled {
                    wait: w.reports.wait_for(now, REPORT_SPAN, 1, lim.reports),
                    exceeded: Exceeded::Reports,
                    usage: frac(w.reports.sum + 1, lim.reports),
                });
            }
            w.reports.add(now, 1);
            usage = usage.max(frac(w.reports.sum, lim.reports));
        }
        if cost.write {
            if w.writes.sum + 1 > lim.writes {
                return Err(Throttled {
                    wait: w.writes.wait_for(now, WRITE_SPAN, 1, lim.writes),
                    exceeded: Exceeded::AppWrites,
                    usage: frac(w.writes.sum + 1, lim.writes),
                });
            }
            let t = &mut self.tenant_writes;
            t.prune(now, TENANT_WRITE_SPAN);
            if t.sum + 1 > lim.tenant_writes {
                return Err(Throttled {
                    wait: t.wait_for(now, TENANT_WRITE_SPAN, 1, lim.tenant_writes),
                    exceeded: Exceeded::TenantWrites,
                    usage: frac(t.sum + 1, lim.tenant_writes),
                });
            }
            t.add(now, 1);
            w.writes.add(now, 1);
            usage = usage
                .max(frac(w.writes.sum, lim.writes))
                .max(frac(t.sum, lim.tenant_writes));
        }
        Ok(usage)
    }
}

/// `x-ms-throttle-limit-percentage` for a budget `usage` full: sent from 0.8, at most 1.8
/// (as Graph documents), two decimals.
pub(super) fn limit_percentage(usage: f64) -> Option<String> {
    (usage >= 0.8).then(|| format!("{:.2}", usage.min(1.8)))
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
        assert!((w.wait - 9.0).abs() < 1e-9, "{w:?}");
        assert_eq!(w.exceeded, Exceeded::Ru);
        // at 10.5 the first three have left the window, but the throttled one has not
        assert!(t.charge("a", 10.5, c, &lim).is_ok());
        assert!(t.charge("a", 10.5, c, &lim).is_ok());
        assert!(t.charge("a", 10.5, c, &lim).is_err());
    }

    #[test]
    fn usage_and_scope_say_which_budget() {
        let mut t = Throttle::default();
        let lim = Limits {
            ru: 100,
            writes: 5,
            reports: 5,
            tenant_writes: 8,
        };
        let w = Cost {
            ru: 1,
            write: true,
            report: false,
        };
        let mut usage = vec![];
        for _ in 0..5 {
            usage.push(t.charge("a", 0.0, w, &lim).unwrap());
        }
        assert_eq!(usage, vec![0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(limit_percentage(0.6), None);
        assert_eq!(limit_percentage(0.8).as_deref(), Some("0.80"));
        assert_eq!(limit_percentage(2.5).as_deref(), Some("1.80"));
        let e = t.charge("a", 1.0, w, &lim).unwrap_err();
        assert_eq!(e.exceeded, Exceeded::AppWrites);
        assert_eq!(
            e.exceeded.scope("app", "ten"),
            "Tenant_Application/Write/app/ten"
        );
        // Another app fills the tenant's budget (8): the third of its writes is refused.
        for _ in 0..3 {
            assert!(t.charge("b", 1.0, w, &lim).is_ok());
        }
        let e = t.charge("b", 1.0, w, &lim).unwrap_err();
        assert_eq!(e.exceeded, Exceeded::TenantWrites);
        assert_eq!(e.exceeded.scope("b", "ten"), "Tenant/Write/b/ten");
        assert_eq!(e.exceeded.information(), "WriteLimitExceeded");
        // A lower limit set at run time applies to what is already in the window.
        let low = Limits { writes: 3, ..lim };
        assert_eq!(
            t.charge("a", 100.0, w, &low).unwrap_err().exceeded,
            Exceeded::AppWrites
        );
        // Once both windows (the app's 2.5 minutes, the tenant's 5) have passed, it writes.
        assert!(t.charge("a", 301.0, w, &low).is_ok());
    }
}
