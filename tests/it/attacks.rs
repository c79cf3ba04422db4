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

#[test]
fn a_notify_list_in_a_missing_folder_is_refused_before_anything_is_sent() {
    let ctx = TestContext::sample();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    let out = ctx
        .apply(&input)
        .args(["--yes", "-o", "r.csv", "--notify-list", "nodir/n.txt"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nodir") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(ctx.counters().http_requests, 0, "nothing was sent");
    assert_eq!(ctx.sim.state("liam.o'connor@northwind.example"), "disabled");
}

#[cfg(unix)]
#[test]
fn the_run_lock_is_never_written_through_a_symbolic_link() {
    let ctx = TestContext::sample();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    let victim = ctx.write("victim.txt", "precious");
    // The lock's name is not secret: plant a link at every name it could take.
    std::fs::create_dir(ctx.path(".mfa-bulk")).unwrap();
    let sha = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(std::fs::read(&input).unwrap());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let link = ctx.path(&format!(".mfa-bulk/apply-{}.lock", &sha[..16]));
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = ctx
        .apply(&input)
        .args(["--yes", "-o", "r.csv"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(ctx.read("victim.txt"), "precious");
    assert_eq!(ctx.counters().writes, 0);
}

#[test]
fn two_rows_asking_different_states_for_one_user_leave_the_user_alone() {
    let ctx = TestContext::sample();
    let input = ctx.write(
        "u.csv",
        "Username,MFA Status\n\
         kenji.tanaka@northwind.example,Disabled\n\
         liam.o'connor@northwind.example,Enabled\n\
         kenji.tanaka@northwind.example,Enforced\n",
    );
    let before = ctx.sim.state("kenji.tanaka@northwind.example");
    let out = ctx
        .apply(&input)
        .args(["--yes", "-o", "r.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(ctx.sim.state("kenji.tanaka@northwind.example"), before);
    let rows = ctx.rows("r.csv");
    assert_eq!(rows[0]["outcome"], "skipped", "{rows:?}");
    assert!(rows[0]["error"].contains("different states"), "{rows:?}");
    assert_eq!(rows[2]["outcome"], "duplicate", "{rows:?}");
    assert_eq!(
        rows[1]["outcome"], "changed",
        "the other user is done: {rows:?}"
    );
}

#[test]
fn the_simulator_seed_file_is_never_written_over() {
    let ctx = TestContext::sample();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    let seed = std::fs::read(crate::common::repo("samples/tenant.json")).unwrap();
    // A seed saved with a .csv name (the result's extension), then named as the result.
    ctx.write("tenant.csv", &seed);
    let out = crate::common::bin(ctx.dir())
        .arg("dry-run")
        .arg(&input)
        .args([
            "--sim",
            "--sim-tenant",
            "tenant.csv",
            "-o",
            "tenant.csv",
            "--force",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--sim-tenant"), "{err}");
    assert_eq!(std::fs::read(ctx.path("tenant.csv")).unwrap(), seed);
}
