//! Nothing the tool writes may replace a file it reads: the result file, its run record and
//! the notify list are compared with the input, exclusion and `--plan` files by identity
//! (device and inode), so a symbolic or hard link is caught too, even with `--force`, before
//! any request. (Issue 13.)

use std::path::Path;

use crate::common::TestSim;

const USERS: &str = "UserPrincipalName\nliam.o'connor@northwind.example\n";

fn refused(sim: &TestSim, dir: &Path, args: &[&str], input_role: &str) {
    let before = sim.counters().http_requests;
    let out = sim
        .cmd(dir)
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(input_role) && err.contains("even with --force"),
        "{args:?}: {err}"
    );
    assert_eq!(
        sim.counters().http_requests,
        before,
        "{args:?} sent a request"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("u.csv")).unwrap(),
        USERS,
        "{args:?} changed the input"
    );
}

#[cfg(unix)]
#[test]
fn the_result_never_replaces_the_input_even_through_links() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("u.csv"), USERS).unwrap();
    std::os::unix::fs::symlink("u.csv", d.join("sym.csv")).unwrap();
    std::fs::hard_link(d.join("u.csv"), d.join("hard.csv")).unwrap();
    for out in ["u.csv", "sym.csv", "hard.csv"] {
        for cmd in ["dry-run", "apply"] {
            let mut args = vec![cmd, "u.csv", "-o", out, "--force"];
            if cmd == "apply" {
                args.push("--yes");
            }
            refused(&sim, d, &args, "input file");
        }
    }
    assert!(d
        .join("sym.csv")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

#[cfg(unix)]
#[test]
fn the_exclusion_plan_and_notify_files_are_protected_too() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("u.csv"), USERS).unwrap();
    std::fs::write(d.join("x.csv"), "UPN\nbreak.glass@northwind.example\n").unwrap();
    std::fs::hard_link(d.join("x.csv"), d.join("x-link.csv")).unwrap();
    refused(
        &sim,
        d,
        &[
            "dry-run",
            "u.csv",
            "--exclude",
            "x.csv",
            "-o",
            "x-link.csv",
            "--force",
        ],
        "exclusion file",
    );
    // A dry-run to use as a plan, then an apply that would write over it.
    let ok = sim
        .cmd(d)
        .args(["dry-run", "u.csv", "-o", "plan.csv"])
        .output()
        .unwrap();
    assert!(ok.status.code() == Some(0), "{ok:?}");
    refused(
        &sim,
        d,
        &[
            "apply", "u.csv", "--plan", "plan.csv", "-o", "plan.csv", "--force", "--yes",
        ],
        "--plan file",
    );
    std::fs::hard_link(d.join("u.csv"), d.join("u-link.txt")).unwrap();
    refused(
        &sim,
        d,
        &[
            "apply",
            "u.csv",
            "-o",
            "r.csv",
            "--notify-list",
            "u-link.txt",
            "--force",
            "--yes",
        ],
        "input file",
    );
}

#[test]
fn dash_o_dash_writes_the_result_to_standard_output() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("u.csv"), USERS).unwrap();
    let out = sim
        .cmd(d)
        .args(["dry-run", "u.csv", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("row,input,"), "{stdout}");
    assert!(
        stdout.contains("liam.o'connor@northwind.example"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dry-run of u.csv"),
        "summary on stderr: {stderr}"
    );
    assert!(!d.join("-").exists(), "no file named -");
    let names: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "only the input is there: {names:?}");
}
