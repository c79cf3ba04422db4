//! Interruption: `apply` runs as a child process on a generated tenant; it gets SIGINT (Ctrl-C)
//! at a random point of its writes, then a rerun gets SIGKILL at another random point, then the
//! same command runs to the end. After each: the result file tells the truth about every row
//! it holds; at the end the tenant is exactly as asked, nobody was written twice, and the last
//! result file accounts for everyone changed across the three runs.
//!
//! The random points come from the clock and are printed (`interrupt points: …`) so that a
//! failure can be replayed with `MFA_BULK_TEST_SEED=<seed>`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mfa_bulk::sim::{self, SimConfig};

use crate::common::{read_csv, TestSim, CLEARED};
use crate::reliability::{check_apply_truth, input_csv, scratch, snapshot, Rows, Snapshot};

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

/// The real binary as a child process, signed in to `sim`, in `dir` (the journal goes to
/// `dir/.mfa-bulk/`).
fn spawn_apply(sim: &TestSim, dir: &Path, input: &Path, out: &str) -> Child {
    spawn_apply_with(sim, dir, input, out, &["--write-rate", "80"])
}

/// [`spawn_apply`] with other pacing options.
fn spawn_apply_with(sim: &TestSim, dir: &Path, input: &Path, out: &str, extra: &[&str]) -> Child {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("mfa-bulk"));
    for v in CLEARED {
        c.env_remove(v);
    }
    c.current_dir(dir)
        .env("MFA_BULK_GRAPH_URL", sim.handle.url())
        .env("MFA_BULK_LOGIN_URL", sim.handle.url())
        .env("AZURE_TENANT_ID", sim::SIM_TENANT_ID)
        .env("AZURE_CLIENT_ID", sim::SIM_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", sim::SIM_CLIENT_SECRET)
        .arg("apply")
        .arg(input)
        .args(["--yes", "-o", out])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c.spawn().expect("apply starts")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Waits until the simulator has applied at least `n` writes (the child is writing).
fn wait_for_writes(sim: &TestSim, child: &mut Child, n: u64) {
    let start = Instant::now();
    while sim.counters().writes < n {
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

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("apply did not stop within 120 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
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
    let mut cfg = SimConfig::with_tenant(sim::generate_tenant(USERS, TENANT_SEED));
    cfg.faults.latency_min_ms = 2;
    cfg.faults.latency_max_ms = 15;
    let expect = expected_final(&cfg);
    let sim = TestSim::with(cfg);
    let dir = scratch();
    let s0 = snapshot(&sim);
    let inputs: Vec<String> = sim
        .handle
        .users_state()
        .into_iter()
        .map(|u| u.user_principal_name)
        .collect();
    let input = input_csv(dir.path(), "users.csv", &inputs);
    let to_change = expect
        .iter()
        .filter(|(id, s)| s0[*id].per_user_mfa_state != **s)
        .count() as u64;
    assert!(to_change > 200, "the tenant has users to change");
    let mut dice = Dice::new();

    // 1. Ctrl-C somewhere in the first third of the writes.
    let mut child = spawn_apply(&sim, dir.path(), &input, "r1.csv");
    wait_for_writes(&sim, &mut child, dice.in_range(1, to_change / 3));
    signal(&child, "-INT");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert_eq!(st.code(), Some(130), "Ctrl-C exits 130: {err}");
    assert!(err.contains("rerun the same command"), "{err}");
    let s1 = snapshot(&sim);
    let c1 = sim.counters();
    assert!(c1.writes < to_change, "the run stopped before the end");
    let rows1 = read_csv(&dir.path().join("r1.csv"));
    let counts1 = check_apply_truth(&s0, &s1, &inputs, &rows1, &c1.writes_per_user);
    assert!(
        counts1.get("skipped").copied().unwrap_or(0) > 0,
        "{counts1:?}"
    );
    for r in rows1.iter().filter(|r| r["outcome"] == "skipped") {
        assert!(r["error"].contains("interrupted"), "{r:?}");
    }
    assert_eq!(journals(dir.path()), 1, "the journal is kept for the rerun");

    // 2. The same command again, killed outright somewhere in what is left.
    let mut child = spawn_apply(&sim, dir.path(), &input, "r2.csv");
    let left = to_change - c1.writes;
    wait_for_writes(
        &sim,
        &mut child,
        c1.writes + dice.in_range(1, (left / 2).max(1)),
    );
    signal(&child, "-KILL");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), None, "killed by the signal");
    let s2 = snapshot(&sim);
    let c2 = sim.counters();
    assert!(c2.writes < to_change, "killed before the end");
    let rows2 = read_csv(&dir.path().join("r2.csv"));
    check_rows_of_a_killed_run(&s0, &s2, &inputs, &rows2);
    for (id, n) in &c2.writes_per_user {
        assert!(*n <= 1, "{id} written {n} times");
    }

    // 3. The same command to the end.
    let mut child = spawn_apply(&sim, dir.path(), &input, "r3.csv");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(err.contains("Continuing an interrupted run"), "{err}");
    let s3 = snapshot(&sim);
    let c3 = sim.counters();
    let rows3 = read_csv(&dir.path().join("r3.csv"));
    // Judged from before the first run: every user changed by any of the three runs is
    // `changed` in the last result file, with the state before the first run.
    let counts3 = check_apply_truth(&s0, &s3, &inputs, &rows3, &c3.writes_per_user);
    assert_eq!(
        counts3.get("changed").copied().unwrap_or(0) as u64,
        to_change,
        "{counts3:?}"
    );
    assert_eq!(c3.writes, to_change, "each user written exactly once");
    for (id, want) in &expect {
        assert_eq!(
            &s3[id].per_user_mfa_state, want,
            "{}",
            s3[id].user_principal_name
        );
    }
    assert!(
        !dir.path()
            .join(".mfa-bulk")
            .read_dir()
            .map(|mut d| d
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".journal"))))
            .unwrap_or(false),
        "the journal is removed once the run is complete"
    );
}

#[test]
fn a_killed_xlsx_run_loses_no_one_on_rerun() {
    // The XLSX result is saved whole at checkpoints; between them only the journal knows.
    let mut cfg = SimConfig::with_tenant(sim::generate_tenant(150, TENANT_SEED + 1));
    cfg.faults.latency_min_ms = 2;
    cfg.faults.latency_max_ms = 10;
    let expect = expected_final(&cfg);
    let sim = TestSim::with(cfg);
    let dir = scratch();
    let s0 = snapshot(&sim);
    let inputs: Vec<String> = sim
        .handle
        .users_state()
        .into_iter()
        .map(|u| u.user_principal_name)
        .collect();
    let input = input_csv(dir.path(), "users.csv", &inputs);
    let to_change = expect
        .iter()
        .filter(|(id, s)| s0[*id].per_user_mfa_state != **s)
        .count() as u64;
    let mut dice = Dice::new();

    let mut child = spawn_apply(&sim, dir.path(), &input, "r1.xlsx");
    wait_for_writes(&sim, &mut child, dice.in_range(1, to_change - 20));
    signal(&child, "-KILL");
    wait_exit(&mut child);
    // What the killed run's workbook holds (maybe only its header) is a valid workbook.
    mfa_bulk::report::read_results(&dir.path().join("r1.xlsx")).expect("a valid workbook");

    let mut child = spawn_apply(&sim, dir.path(), &input, "r2.xlsx");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(0), "{}", stderr_of(&mut child));
    let s2 = snapshot(&sim);
    let c2 = sim.counters();
    let rows: Rows = mfa_bulk::report::read_results(&dir.path().join("r2.xlsx"))
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
    let counts = check_apply_truth(&s0, &s2, &inputs, &rows, &c2.writes_per_user);
    assert_eq!(
        counts.get("changed").copied().unwrap_or(0) as u64,
        to_change
    );
    assert_eq!(c2.writes, to_change);
    for (id, want) in &expect {
        assert_eq!(&s2[id].per_user_mfa_state, want);
    }
}

#[test]
fn sigterm_then_a_double_ctrl_c_then_rerun() {
    // SIGTERM (a service manager, `timeout`) stops like Ctrl-C; a second Ctrl-C leaves at once.
    let mut cfg = SimConfig::with_tenant(sim::generate_tenant(200, TENANT_SEED + 2));
    cfg.faults.latency_min_ms = 2;
    cfg.faults.latency_max_ms = 15;
    let expect = expected_final(&cfg);
    let sim = TestSim::with(cfg);
    let dir = scratch();
    let s0 = snapshot(&sim);
    let inputs: Vec<String> = sim
        .handle
        .users_state()
        .into_iter()
        .map(|u| u.user_principal_name)
        .collect();
    let input = input_csv(dir.path(), "users.csv", &inputs);
    let to_change = expect
        .iter()
        .filter(|(id, s)| s0[*id].per_user_mfa_state != **s)
        .count() as u64;
    let mut dice = Dice::new();

    let mut child = spawn_apply(&sim, dir.path(), &input, "r1.csv");
    wait_for_writes(&sim, &mut child, dice.in_range(1, to_change / 3));
    signal(&child, "-TERM");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert_eq!(st.code(), Some(130), "SIGTERM stops like Ctrl-C: {err}");
    let s1 = snapshot(&sim);
    let c1 = sim.counters();
    let rows1 = read_csv(&dir.path().join("r1.csv"));
    check_apply_truth(&s0, &s1, &inputs, &rows1, &c1.writes_per_user);

    let mut child = spawn_apply(&sim, dir.path(), &input, "r2.csv");
    let left = to_change - c1.writes;
    wait_for_writes(
        &sim,
        &mut child,
        c1.writes + dice.in_range(1, (left / 2).max(1)),
    );
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(dice.in_range(0, 20)));
    signal(&child, "-INT");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(130), "{}", stderr_of(&mut child));
    let s2 = snapshot(&sim);
    let rows2 = read_csv(&dir.path().join("r2.csv"));
    check_rows_of_a_killed_run(&s0, &s2, &inputs, &rows2);

    let mut child = spawn_apply(&sim, dir.path(), &input, "r3.csv");
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(0), "{}", stderr_of(&mut child));
    let s3 = snapshot(&sim);
    let c3 = sim.counters();
    let rows3 = read_csv(&dir.path().join("r3.csv"));
    let counts = check_apply_truth(&s0, &s3, &inputs, &rows3, &c3.writes_per_user);
    assert_eq!(
        counts.get("changed").copied().unwrap_or(0) as u64,
        to_change
    );
    assert_eq!(c3.writes, to_change, "each user written exactly once");
    for (id, want) in &expect {
        assert_eq!(&s3[id].per_user_mfa_state, want);
    }
}

/// How many journals `.mfa-bulk/` in `dir` holds (beside them: one lock file per input).
fn journals(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join(".mfa-bulk"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "journal"))
                .count()
        })
        .unwrap_or(0)
}

/// A tenant of `USERS` generated users, its simulator, a scratch folder and an input file
/// naming every user.
fn setup(
    seed: u64,
) -> (
    TestSim,
    tempfile::TempDir,
    std::path::PathBuf,
    Vec<String>,
    SimConfig,
) {
    let cfg = SimConfig::with_tenant(sim::generate_tenant(USERS, seed));
    let sim = TestSim::with(cfg.clone());
    let dir = scratch();
    let inputs: Vec<String> = cfg
        .tenant
        .users
        .iter()
        .map(|u| u.user_principal_name.clone())
        .collect();
    let input = input_csv(dir.path(), "users.csv", &inputs);
    (sim, dir, input, inputs, cfg)
}

#[test]
fn rerunning_the_same_command_continues_into_its_result_file() {
    // Issue 12: the rerun used to exit 2 because the interrupted run's result file existed.
    let (sim, dir, input, inputs, cfg) = setup(TENANT_SEED + 7);
    let s0 = snapshot(&sim);
    let mut child = spawn_apply(&sim, dir.path(), &input, "result.csv");
    wait_for_writes(&sim, &mut child, 40);
    signal(&child, "-INT");
    assert_eq!(wait_exit(&mut child).code(), Some(130));
    let first = sim.counters().writes;

    // Exactly the same command: no --force, same -o.
    let mut child = spawn_apply(&sim, dir.path(), &input, "result.csv");
    let st = wait_exit(&mut child);
    let err = stderr_of(&mut child);
    assert!(st.code() == Some(0) || st.code() == Some(1), "{st}: {err}");
    let s1 = snapshot(&sim);
    let c = sim.counters();
    let rows = read_csv(&dir.path().join("result.csv"));
    let counts = check_apply_truth(&s0, &s1, &inputs, &rows, &c.writes_per_user);
    assert!(c.writes > first, "the rerun wrote the rest");
    assert_eq!(
        counts.get("changed").copied().unwrap_or(0) as u64,
        c.writes,
        "every user written (in either run) is changed in the one result: {counts:?}"
    );
    for (id, want) in expected_final(&cfg) {
        assert_eq!(s1[&id].per_user_mfa_state, want);
    }
    assert_eq!(
        journals(dir.path()),
        0,
        "the finished run removed its journal"
    );
}

#[test]
fn a_second_apply_of_the_same_input_is_refused_while_the_first_runs() {
    let (sim, dir, input, _, _) = setup(TENANT_SEED + 8);
    let mut first = spawn_apply_with(&sim, dir.path(), &input, "a.csv", &["--write-rate", "20"]);
    wait_for_writes(&sim, &mut first, 5);
    let out = crate::common::bin(dir.path())
        .env("MFA_BULK_GRAPH_URL", sim.handle.url())
        .env("MFA_BULK_LOGIN_URL", sim.handle.url())
        .env("AZURE_TENANT_ID", sim::SIM_TENANT_ID)
        .env("AZURE_CLIENT_ID", sim::SIM_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", sim::SIM_CLIENT_SECRET)
        .arg("apply")
        .arg(&input)
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
    assert!(
        !dir.path().join("b.csv").exists(),
        "the refused run wrote nothing"
    );
    signal(&first, "-INT");
    assert_eq!(wait_exit(&mut first).code(), Some(130));
    let c = sim.counters();
    assert!(
        c.writes_per_user.values().all(|&n| n == 1),
        "nobody written twice"
    );
    // The lock went with the process: the same command now runs (and continues).
    let mut again = spawn_apply(&sim, dir.path(), &input, "a.csv");
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
    let (sim, dir, input, inputs, _) = setup(TENANT_SEED + 9);
    let s0 = snapshot(&sim);
    let mut child = spawn_apply_with(&sim, dir.path(), &input, "r.csv", &["--write-rate", "40"]);
    wait_for_writes(&sim, &mut child, 60);
    let settled = sim.counters().writes;
    // Rows written by now settle (read back, flushed) well within this pause.
    std::thread::sleep(Duration::from_millis(2500));
    signal(&child, "-KILL");
    wait_exit(&mut child);
    let now = snapshot(&sim);
    let rows = read_csv(&dir.path().join("r.csv"));
    check_rows_of_a_killed_run(&s0, &now, &inputs, &rows);
    let changed = rows.iter().filter(|r| r["outcome"] == "changed").count() as u64;
    assert!(
        changed >= settled,
        "{changed} changed rows on disk, {settled} users were written 2.5 s before the kill"
    );
}
