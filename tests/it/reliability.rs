//! Shared by the reliability tests (faults, interruption, large runs): generated tenants, inputs
//! made from them, and the one check that matters after any run, however it went: the tenant
//! is as the result file says, row for row.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use mfa_bulk::sim::{self, SimConfig, UserState};

pub(crate) use crate::common::{scratch, Rows};
use crate::common::{write_input, TestSim};

/// Every user's per-user MFA state, by object id.
pub(crate) type Snapshot = BTreeMap<String, UserState>;

pub(crate) fn snapshot(sim: &TestSim) -> Snapshot {
    sim.handle
        .users_state()
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect()
}

/// A generated tenant of `n` users, sped up `scale` times, with limits high enough that only
/// the faults a test sets get in the way.
pub(crate) fn generated(n: usize, seed: u64, scale: f64) -> SimConfig {
    let mut cfg = SimConfig::with_tenant(sim::generate_tenant(n, seed));
    cfg.seed = seed;
    cfg.time_scale = scale;
    cfg
}

/// A UTF-8 CSV with a `UserPrincipalName` column in `dir`: `values` in order.
pub(crate) fn input_csv(dir: &Path, name: &str, values: &[String]) -> PathBuf {
    write_input(dir, name, values)
}

/// The UPNs of every user of the tenant, in tenant order, plus a few rows that resolve to no
/// one (not found, invalid), so the result file has every kind of row.
pub(crate) fn all_upns_and_strays(before: &Snapshot, sim: &TestSim) -> Vec<String> {
    let mut v = sim.upns();
    assert_eq!(v.len(), before.len());
    v.insert(v.len() / 2, "nobody.here@northwind.example".into());
    v.push("TBC".into());
    v
}

/// Fast pacing for the client: the simulator's limits are what throttle it, not the client's
/// own guess (which assumes Graph's real-time windows).
pub(crate) const FAST: &[&str] = &["--write-rate", "100000", "--rate", "1000000"];

/// What the result file must tell truthfully after an `apply` with target `enabled` (the
/// default), whatever faults hit it:
/// - one row per input value, in input order;
/// - `changed`: the user's state really changed, to what `state_after` says, which reaches the
///   target (`enabled` or, for a user with a method, `enforced`);
/// - `no-change`: the user was already at least enabled, and is untouched;
/// - `failed`: an error in words; the user is untouched unless the error admits it may have
///   changed;
/// - `skipped`, `not-found`, `invalid`, `duplicate`, `excluded`: untouched;
/// - nobody changed without a `changed` row (or a `failed` row that says it may have);
/// - nobody outside the input touched, and nobody written more than once.
///
/// Returns the number of rows per outcome.
pub(crate) fn check_apply_truth(
    before: &Snapshot,
    after: &Snapshot,
    inputs: &[String],
    rows: &Rows,
    writes_per_user: &BTreeMap<String, u64>,
) -> BTreeMap<String, usize> {
    assert_eq!(
        rows.len(),
        inputs.len(),
        "one result row per input row (rows lost or invented)"
    );
    for (r, input) in rows.iter().zip(inputs) {
        assert_eq!(&r["input"], input, "result rows in input order");
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut accounted: HashMap<&str, &str> = HashMap::new();
    for r in rows {
        let outcome = r["outcome"].as_str();
        *counts.entry(outcome.to_string()).or_default() += 1;
        let id = r["user_id"].as_str();
        if id.is_empty() {
            assert!(
                matches!(outcome, "not-found" | "invalid" | "skipped" | "failed"),
                "a row without a user: {r:?}"
            );
            assert!(!r["error"].is_empty(), "no reason given: {r:?}");
            continue;
        }
        let b = &before[id].per_user_mfa_state;
        let a = &after[id].per_user_mfa_state;
        match outcome {
            "changed" => {
                assert_ne!(b, a, "'changed' but the user is untouched: {r:?}");
                if r["state_after"].is_empty() {
                    // Graph said yes to the write; the read-back failed, and the row says so.
                    assert!(
                        r["error"].contains("not read back"),
                        "changed without the state read back, and no word why: {r:?}"
                    );
                } else {
                    assert_eq!(&r["state_after"], a, "state_after is not the truth: {r:?}");
                }
                assert_eq!(
                    &r["state_before"], b,
                    "state_before is not the truth: {r:?}"
                );
                assert!(
                    a == "enabled" || a == "enforced",
                    "changed to {a}, below the target: {r:?}"
                );
            }
            "no-change" => {
                assert_eq!(b, a, "'no-change' but the user changed: {r:?}");
                assert!(b == "enabled" || b == "enforced", "{r:?}");
            }
            "failed" => {
                assert!(!r["error"].is_empty(), "a failed row must say why: {r:?}");
                if a != b {
                    assert!(
                        r["error"].contains("may or may not"),
                        "failed, but the user did change and the row does not say it may have: {r:?}"
                    );
                }
            }
            "skipped" | "excluded" | "duplicate" | "not-found" | "drifted" => {
                assert_eq!(b, a, "'{outcome}' but the user changed: {r:?}");
                if outcome != "excluded" {
                    assert!(!r["error"].is_empty(), "no reason given: {r:?}");
                }
            }
            other => panic!("unexpected outcome {other}: {r:?}"),
        }
        if outcome != "duplicate" {
            assert!(
                accounted.insert(id, outcome).is_none(),
                "two rows decide the same user: {r:?}"
            );
        }
    }
    for (id, u) in after {
        if u.per_user_mfa_state != before[id].per_user_mfa_state {
            let o = accounted.get(id.as_str()).copied();
            assert!(
                o == Some("changed") || o == Some("failed"),
                "{} changed from {} to {} but the result file has no row that says so ({o:?})",
                u.user_principal_name,
                before[id].per_user_mfa_state,
                u.per_user_mfa_state
            );
        }
    }
    for (id, n) in writes_per_user {
        assert!(
            *n <= 1,
            "{} written {n} times",
            after
                .get(id)
                .map(|u| u.user_principal_name.as_str())
                .unwrap_or(id)
        );
        assert!(
            accounted.contains_key(id.as_str()),
            "a user not in the input was written: {id}"
        );
    }
    counts
}

/// After a run that ended as asked: every user of the input is at least enabled.
pub(crate) fn assert_all_at_least_enabled(after: &Snapshot) {
    let behind: Vec<&str> = after
        .values()
        .filter(|u| u.per_user_mfa_state == "disabled")
        .map(|u| u.user_principal_name.as_str())
        .collect();
    assert!(behind.is_empty(), "still disabled: {behind:?}");
}
