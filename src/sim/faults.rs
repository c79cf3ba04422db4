//! Injected faults, drawn from the seeded RNG: latency, dropped connections, 5xx answers and
//! writes whose answer is lost.

use super::state::State;
use super::throttle::retry_after_value;
use super::wire::{graph_error, Ctx, Resp};

/// Before anything else: how long to wait, and whether to drop the connection unanswered.
pub(super) fn roll_connection(st: &mut State) -> (u64, bool) {
    let f = &st.faults;
    let (lo, hi, drop_rate) = (f.latency_min_ms, f.latency_max_ms, f.drop_rate);
    let latency = if hi > lo { st.rng.u64(lo..=hi) } else { lo };
    let drop = drop_rate > 0.0 && st.rng.f64() < drop_rate;
    (latency, drop)
}

/// An injected 5xx for one Graph request (or batch item), if the dice say so.
pub(super) fn roll_error(st: &mut State, ctx: &Ctx, scale: f64) -> Option<Resp> {
    let rate = st.faults.error_rate;
    if rate <= 0.0 || st.rng.f64() >= rate {
        return None;
    }
    st.counters.injected_errors += 1;
    let resp = match st.rng.u8(0..3) {
        0 => graph_error(
            ctx,
            500,
            "generalException",
            "General exception while processing.",
        ),
        1 => graph_error(
            ctx,
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        _ => graph_error(
            ctx,
            504,
            "gatewayTimeout",
            "The gateway did not receive a response in time.",
        ),
    };
    if resp.status != 500 && st.rng.bool() {
        let secs = st.rng.u8(1..=3);
        let value = retry_after_value(f64::from(secs), scale);
        return Some(resp.with_header("Retry-After", value));
    }
    Some(resp)
}

/// After a write was applied: whether its answer is lost.
pub(super) fn roll_lost_write(st: &mut State) -> bool {
    let rate = st.faults.lost_write_rate;
    rate > 0.0 && st.rng.f64() < rate
}
