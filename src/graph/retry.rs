//! How long to wait and how often to try again: the retry limits and the jittered
//! exponential backoff shared by Graph calls and sign-in.

use std::time::Duration;

/// Tries for transient failures (5xx, network) of one request or item, first try included.
pub const MAX_TRIES: u32 = 6;
/// 429 answers tolerated for one request or item before it is reported as throttled.
pub const MAX_THROTTLED: u32 = 12;
pub(super) const BACKOFF_BASE: Duration = Duration::from_millis(400);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// At most this many requests in one `$batch` (Graph's limit).
pub const BATCH_MAX: usize = 20;

/// Backoff before try `n + 1` (n ≥ 1): exponential, capped, with jitter (50–100 %).
pub(super) fn backoff(n: u32) -> Duration {
    let exp = BACKOFF_BASE.as_secs_f64() * 2f64.powi(n.saturating_sub(1).min(16) as i32);
    let d = exp.min(BACKOFF_CAP.as_secs_f64());
    Duration::from_secs_f64(d * (0.5 + fastrand::f64() * 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for n in 1..20 {
            let d = backoff(n).as_secs_f64();
            let full = (0.4 * 2f64.powi(n as i32 - 1)).min(30.0);
            assert!(d >= full * 0.5 - 1e-9 && d <= full + 1e-9, "{n}: {d}");
        }
    }
}
