//! Interruption: `apply` runs as a child process on a generated tenant; it gets SIGINT (Ctrl-C)
//! at a random point of its writes, then a rerun gets SIGKILL at another random point, then the
//! same command runs to the end. After each: the result file tells the truth about every row
//! it holds; at the end the tenant is exactly as asked, nobody was written twice, and the last
//! result file accounts for everyone changed across the three runs.
//!
//! The random points come from the clock and are printed (`interrupt points: …`) so that a
//! failure can be replayed with `MFA_BULK_TEST_SEED=<seed>`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use mfa_bulk::sim::{self, SimConfig};

use crate::common::{signal, stderr_of, wait_exit, TestContext};
use crate::reliability::{check_apply_truth, snapshot, Rows, Snapshot};

const USERS: usize = 300;
const TENANT_SEED: u64 = 21;

/// A small deterministic generator (xorshift), seeded from the clock or the environment.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = std::env::var("MFA_BULK_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64
                    | 1
            });
        eprintln!("interrupt points: MFA_BULK_TEST_SEED={seed}");
        Dice(seed)
    }

    fn in_range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo + 1)
    }
}

/// A generated tenant in the simulator, a scratch folder, an input naming every user (in
/// tenant order), the tenant before any run, and what each user must end as.
struct World {
    ctx: TestContext,
    input: PathBuf,
    inputs: Vec<String>,
    s0: Snapshot,
    expect: BTreeMap<String, String>,
    /// How many users the input changes.
    to_change: u64,
}

impl World {
    /// `users` users generated from `seed`, every answer slowed by 2 to `latency_max_ms`
    /// milliseconds (not at all when 0).
    fn new(users: usize, seed: u64, latency_max_ms: u64) -> World {
        let mut cfg = SimConfig::with_tenant(sim::generate_tenant(users, seed));
        if latency_max_ms > 0 {
            cfg.faults.latency_min_ms = 2;
            cfg.faults.latency_max_ms = latency_max_ms;
        }
        let expect = expected_final(&cfg);
        let ctx = TestContext::in_memory(cfg);
        let s0 = snapshot(&ctx);
        let inputs = ctx.upns();
        let input = ctx.input("users.csv", &inputs);
        let to_change = expect
            .iter()
            .filter(|(id, s)| s0[*id].per_user_mfa_state != **s)
            .count() as u64;
        World {
            ctx,
            input,
            inputs,
            s0,
            expect,
            to_change,
        }
    }

    /// `apply` of the input into `out` as a child process (the journal goes to
    /// `.mfa-bulk/` in the folder).
    fn spawn_apply(&self, out: &str) -> Child {
        self.spawn_apply_with(out, &["--write-rate", "80"])
    }

    /// [`World::spawn_apply`] with other pacing options.
    fn spawn_apply_with(&self, out: &str, extra: &[&str]) -> Child {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("apply"),
            self.input.as_os_str(),
            OsStr::new("--yes"),
            OsStr::new("-o"),
            OsStr::new(out),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.ctx.spawn(args)
    }

    /// Waits until the simulator has applied at least `n` writes (the child is writing).
    fn wait_for_writes(&self, child: &mut Child, n: u64) {
        let start = Instant::now();
        while self.ctx.counters().writes < n {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("apply ended ({st}) before {n} writes: {}", stderr_of(child));
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no progress to {n} writes"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// How many journals `.mfa-bulk/` in the folder holds (beside them: one lock file per
    /// input).
    fn journals(&self) -> usize {
        std::fs::read_dir(self.ctx.path(".mfa-bulk"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "journal"))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// What every user of the generated tenant must end as with target `enabled`: enforced users
/// stay enforced, enabled stay enabled, disabled users become enabled, or enforced when they
/// have a method (Graph does that).
fn expected_final(cfg: &SimConfig) -> BTreeMap<String, String> {
    cfg.tenant
        .users
        .iter()
        .map(|u| {
            let s = match u.per_user_mfa_state.as_str() {
                "disabled" if u.methods.is_empty() => "enabled",
                "disabled" => "enforced",
                s => s,
            };
            (u.id.clone(), s.to_string())
        })
        .collect()
}

/// The rows of a result file of a run that was killed: each row there tells the truth
/// (judged from the state before the first run), and they are the first rows of the input.
fn check_rows_of_a_killed_run(s0: &Snapshot, now: &Snapshot, inputs: &[String], rows: &Rows) {
    assert!(rows.len() <= inputs.len());
    for (r, input) in rows.iter().zip(inputs) {
        assert_eq!(&r["input"], input, "rows in input order");
        let id = r["user_id"].as_str();
        let (b, a) = (&s0[id].per_user_mfa_state, &now[id].per_user_mfa_state);
        match r["outcome"].as_str() {
            "changed" => {
                assert_ne!(b, a, "{r:?}");
                if r["state_after"].is_empty() {
                    // Graph said yes; the read-back was not sent because the run stopped.
                    assert!(r["error"].contains("not read back"), "{r:?}");
                } else {
                    assert_eq!(&r["state_after"], a, "{r:?}");
                }
            }
            "no-change" => assert_eq!(b, a, "{r:?}"),
            "skipped" => {
                assert_eq!(b, a, "{r:?}");
                assert!(r["error"].contains("interrupted"), "{r:?}");
            }
            o => panic!("unexpected outcome {o} in a killed run: {r:?}"),
        }
    }
}

#[test]
fn ctrl_c_then_kill_then_rerun_writes_everyone_once_and_loses_no_one() {
    let w = World::new(USERS, TENANT_SEED, 15);
    let (s0, inputs, to_change) = (&w.s0, &w.inputs, w.to_change);
    assert!(to_change > 200, "the tenant has users to change");
    let mut dice = Dice::new();

    // 1. Ctrl-C somewhere in the first third of the writes.
    let mut child = w.spawn_apply("r1.csv");
    w.wait_for_writes(&mut child, dice.in_range(1, to_change / 3));
    signal(&child, "-INT");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert_eq!(st.code(), Some(130), "Ctrl-C exits 130: {err}");
    assert!(err.contains("rerun the same command"), "{err}");
    let s1 = snapshot(&w.ctx);
    let c1 = w.ctx.counters();
    assert!(c1.writes < to_change, "the run stopped before the end");
    let rows1 = w.ctx.rows("r1.csv");
    let counts1 = check_apply_truth(s0, &s1, inputs, &rows1, &c1.writes_per_user);
    assert!(
        counts1.get("skipped").copied().unwrap_or(0) > 0,
        "{counts1:?}"
    );
    for r in rows1.iter().filter(|r| r["outcome"] == "skipped") {
        assert!(r["error"].contains("interrupted"), "{r:?}");
    }
    assert_eq!(w.journals(), 1, "the journal is kept for the rerun");

    // 2. The same command again, killed outright somewhere in what is left.
    let mut child = w.spawn_apply("r2.csv");
    let left = to_change - c1.writes;
    w.wait_for_writes(&mut child, c1.writes + dice.in_range(1, (left / 2).max(1)));
    signal(&child, "-KILL");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), None, "killed by the signal");
    let s2 = snapshot(&w.ctx);
    let c2 = w.ctx.counters();
    assert!(c2.writes < to_change, "killed before the end");
    let rows2 = w.ctx.rows("r2.csv");
    check_rows_of_a_killed_run(s0, &s2, inputs, &rows2);
    for (id, n) in &c2.writes_per_user {
        assert!(*n <= 1, "{id} written {n} times");
    }

    // 3. The same command to the end.
    let mut child = w.spawn_apply("r3.csv");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(err.contains("Continuing an interrupted run"), "{err}");
    let s3 = snapshot(&w.ctx);
    let c3 = w.ctx.counters();
    let rows3 = w.ctx.rows("r3.csv");
    // Judged from before the first run: every user changed by any of the three runs is
    // `changed` in the last result file, with the state before the first run.
    let counts3 = check_apply_truth(s0, &s3, inputs, &rows3, &c3.writes_per_user);
    assert_eq!(
        counts3.get("changed").copied().unwrap_or(0) as u64,
        to_change,
        "{counts3:?}"
    );
    assert_eq!(c3.writes, to_change, "each user written exactly once");
    for (id, want) in &w.expect {
        assert_eq!(
            &s3[id].per_user_mfa_state, want,
            "{}",
            s3[id].user_principal_name
        );
    }
    assert_eq!(
        w.journals(),
        0,
        "the journal is removed once the run is complete"
    );
}

#[test]
fn a_killed_xlsx_run_loses_no_one_on_rerun() {
    // The XLSX result is saved whole at checkpoints; between them only the journal knows.
    let w = World::new(150, TENANT_SEED + 1, 10);
    let mut dice = Dice::new();

    let mut child = w.spawn_apply("r1.xlsx");
    w.wait_for_writes(&mut child, dice.in_range(1, w.to_change - 20));
    signal(&child, "-KILL");
    wait_exit(&mut child);
    // What the killed run's workbook holds (maybe only its header) is a valid workbook.
    mfa_bulk::report::read_results(&w.ctx.path("r1.xlsx")).expect("a valid workbook");

    let mut child = w.spawn_apply("r2.xlsx");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(0), "{}", stderr_of(&mut child));
    let s2 = snapshot(&w.ctx);
    let c2 = w.ctx.counters();
    let rows: Rows = mfa_bulk::report::read_results(&w.ctx.path("r2.xlsx"))
        .unwrap()
        .into_iter()
        .map(|r| {
            mfa_bulk::report::COLUMNS
                .iter()
                .zip(r.cells())
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .collect();
    let counts = check_apply_truth(&w.s0, &s2, &w.inputs, &rows, &c2.writes_per_user);
    assert_eq!(
        counts.get("changed").copied().unwrap_or(0) as u64,
        w.to_change
    );
    assert_eq!(c2.writes, w.to_change);
    for (id, want) in &w.expect {
        assert_eq!(&s2[id].per_user_mfa_state, want);
    }
}

#[test]
fn sigterm_then_a_double_ctrl_c_then_rerun() {
    // SIGTERM (a service manager, `timeout`) stops like Ctrl-C; a second Ctrl-C leaves at once.
    let w = World::new(200, TENANT_SEED + 2, 15);
    let (s0, inputs, to_change) = (&w.s0, &w.inputs, w.to_change);
    let mut dice = Dice::new();

    let mut child = w.spawn_apply("r1.csv");
    w.wait_for_writes(&mut child, dice.in_range(1, to_change / 3));
    signal(&child, "-TERM");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert_eq!(st.code(), Some(130), "SIGTERM stops like Ctrl-C: {err}");
    let s1 = snapshot(&w.ctx);
    let c1 = w.ctx.counters();
    let rows1 = w.ctx.rows("r1.csv");
    check_apply_truth(s0, &s1, inputs, &rows1, &c1.writes_per_user);

    let mut child = w.spawn_apply("r2.csv");
    let left = to_change - c1.writes;
    w.wait_for_writes(&mut child, c1.writes + dice.in_range(1, (left / 2).max(1)));
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(dice.in_range(0, 20)));
    signal(&child, "-INT");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(130), "{}", stderr_of(&mut child));
    let s2 = snapshot(&w.ctx);
    let rows2 = w.ctx.rows("r2.csv");
    check_rows_of_a_killed_run(s0, &s2, inputs, &rows2);

    let mut child = w.spawn_apply("r3.csv");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(0), "{}", stderr_of(&mut child));
    let s3 = snapshot(&w.ctx);
    let c3 = w.ctx.counters();
    let rows3 = w.ctx.rows("r3.csv");
    let counts = check_apply_truth(s0, &s3, inputs, &rows3, &c3.writes_per_user);
    assert_eq!(
        counts.get("changed").copied().unwrap_or(0) as u64,
        to_change
    );
    assert_eq!(c3.writes, to_change, "each user written exactly once");
    for (id, want) in &w.expect {
        assert_eq!(&s3[id].per_user_mfa_state, want);
    }
}

#[test]
fn rerunning_the_same_command_continues_into_its_result_file() {
    // Issue 12: the rerun used to exit 2 because the interrupted run's result file existed.
    let w = World::new(USERS, TENANT_SEED + 7, 0);
    let mut child = w.spawn_apply("result.csv");
    w.wait_for_writes(&mut child, 40);
    signal(&child, "-INT");
    assert_eq!(wait_exit(&mut child).code(), Some(130));
    let first = w.ctx.counters().writes;

    // Exactly the same command: no --force, same -o.
    let mut child = w.spawn_apply("result.csv");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert!(st.code() == Some(0) || st.code() == Some(1), "{st}: {err}");
    let s1 = snapshot(&w.ctx);
    let c = w.ctx.counters();
    let rows = w.ctx.rows("result.csv");
    let counts = check_apply_truth(&w.s0, &s1, &w.inputs, &rows, &c.writes_per_user);
    assert!(c.writes > first, "the rerun wrote the rest");
    assert_eq!(
        counts.get("changed").copied().unwrap_or(0) as u64,
        c.writes,
        "every user written (in either run) is changed in the one result: {counts:?}"
    );
    for (id, want) in &w.expect {
        assert_eq!(&s1[id].per_user_mfa_state, want);
    }
    assert_eq!(w.journals(), 0, "the finished run removed its journal");
}

#[test]
fn a_second_apply_of_the_same_input_is_refused_while_the_first_runs() {
    let w = World::new(USERS, TENANT_SEED + 8, 0);
    let mut first = w.spawn_apply_with("a.csv", &["--write-rate", "20"]);
    w.wait_for_writes(&mut first, 5);
    let out = w
        .ctx
        .apply(&w.input)
        .args(["--yes", "-o", "b.csv"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is running") && err.contains(&format!("process {}", first.id())),
        "names the running process: {err}"
    );
    assert!(!w.ctx.exists("b.csv"), "the refused run wrote nothing");
    signal(&first, "-INT");
    assert_eq!(wait_exit(&mut first).code(), Some(130));
    let c = w.ctx.counters();
    assert!(
        c.writes_per_user.values().all(|&n| n == 1),
        "nobody written twice"
    );
    // The lock went with the process: the same command now runs (and continues).
    let mut again = w.spawn_apply("a.csv");
    assert_eq!(
        wait_exit(&mut again).code(),
        Some(0),
        "{}",
        stderr_of(&mut again)
    );
}

#[test]
fn a_killed_run_leaves_the_rows_it_finished_in_the_result_file() {
    // Issue 12: after kill -9 with hundreds written, the result file held only its header.
    let w = World::new(USERS, TENANT_SEED + 9, 0);
    let mut child = w.spawn_apply_with("r.csv", &["--write-rate", "40"]);
    w.wait_for_writes(&mut child, 60);
    let settled = w.ctx.counters().writes;
    // Rows written by now settle (read back, flushed) well within this pause.
    std::thread::sleep(Duration::from_millis(2500));
    signal(&child, "-KILL");
    wait_exit(&mut child);
    let now = snapshot(&w.ctx);
    let rows = w.ctx.rows("r.csv");
    check_rows_of_a_killed_run(&w.s0, &now, &w.inputs, &rows);
    let changed = rows.iter().filter(|r| r["outcome"] == "changed").count() as u64;
    assert!(
        changed >= settled,
        "{changed} changed rows on disk, {settled} users were written 2.5 s before the kill"
    );
}
