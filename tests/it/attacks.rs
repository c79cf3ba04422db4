//! Regressions found by attacking the binary as a hurried and a hostile admin (each test is
//! named for what broke).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use mfa_bulk::sim::{self, SimConfig};

use crate::common::{bin_process, TestContext};

#[test]
fn an_edited_plan_can_never_turn_mfa_off_that_the_input_did_not_ask_for() {
    let ctx = TestContext::sample();
    let input = ctx.input(
        "u.csv",
        &[
            "liam.o'connor@northwind.example",
            "kenji.tanaka@northwind.example",
        ],
    );
    ctx.dry_run(&input)
        .args(["-o", "plan.csv"])
        .assert()
        .success();
    let plan = ctx.read("plan.csv");
    assert!(plan.contains("set-enabled"), "{plan}");
    // Someone edits the plan on its way through the ticket: enabled → disabled.
    let edited = plan
        .replace(",enabled,set-enabled,", ",disabled,set-disabled,")
        .replace("\u{feff}", "");
    assert_ne!(edited, plan);
    ctx.write("edited.csv", edited);
    let out = ctx
        .apply(&input)
        .args(["--plan", "edited.csv", "--yes", "-o", "r.csv"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not what a dry-run of this file showed"),
        "{err}"
    );
    assert_eq!(ctx.counters().writes, 0);
    // A plan made with another --state is refused the same way.
    let out = ctx
        .apply(&input)
        .args([
            "--plan", "plan.csv", "--state", "enforced", "--yes", "-o", "r2.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(ctx.counters().writes, 0);
}

#[test]
fn a_result_stream_that_breaks_mid_run_stops_the_writes_and_says_how_many_were_sent() {
    let ctx = TestContext::with(SimConfig::with_tenant(sim::generate_tenant(400, 77)));
    let users = ctx.sim.upns();
    let input = ctx.input("u.csv", &users);
    let mut child = bin_process(ctx.dir())
        .envs(ctx.sim.sample_app_env())
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", "-", "--write-rate", "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the header and the first rows, then close the pipe (`| head`).
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..3 {
        line.clear();
        out.read_line(&mut line).unwrap();
    }
    drop(out);
    let st = crate::common::wait_exit(&mut child);
    let err = crate::common::stderr_of(&mut child);
    assert_eq!(st.code(), Some(1), "{err}");
    let sent = ctx.counters().writes;
    assert!(err.contains(&format!("{sent} writes were sent")), "{err}");
    assert!(err.contains("rerun the same command"), "{err}");
    let to_change = users.len() as u64;
    assert!(
        sent < to_change / 2,
        "{sent} of {to_change} users were written after the result could no longer be written"
    );
}

#[test]
fn after_a_run_with_failed_rows_the_same_command_tries_them_again_into_the_same_file() {
    let ctx = TestContext::sample();
    let input = ctx.input(
        "u.csv",
        &[
            "liam.o'connor@northwind.example",
            "kenji.tanaka@northwind.example",
        ],
    );
    // Graph fails every request for the first run.
    let mut faults = ctx.sim.handle.faults();
    faults.error_rate = 1.0;
    ctx.sim.handle.set_faults(faults.clone());
    let out = ctx
        .apply(&input)
        .args(["--yes", "-o", "r.csv"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(ctx.rows("r.csv").iter().all(|r| r["outcome"] == "failed"));
    assert!(err.contains("rerun the same command to try again"), "{err}");
    // Graph is back: exactly the same command continues into r.csv (no --force).
    faults.error_rate = 0.0;
    ctx.sim.handle.set_faults(faults);
    let out = ctx
        .apply(&input)
        .args(["--yes", "-o", "r.csv"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = ctx.rows("r.csv");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["outcome"], "changed", "{rows:?}");
    assert_eq!(ctx.sim.state("liam.o'connor@northwind.example"), "enabled");
    assert!(
        !ctx.path(".mfa-bulk").exists(),
        "journal and lock gone once all is done"
    );
}
