//! The safety rules an admin relies on, beyond the basics in `engine.rs`: a plan only approves
//! its own rows, `--max-changes` counts only real changes, exclusions match by every address,
//! nothing is written without a yes, plain `http://` never leaves the machine, and no file is
//! overwritten without `--force`, all checked before anything is written.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mfa_bulk::model::MfaState;
use mfa_bulk::report::{create_writer, Action, Outcome, ResultRow};
use predicates::prelude::*;

use crate::common::{read_csv, repo, row, TestSim};

fn csv_of(dir: &Path, name: &str, users: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let mut s = String::from("UserPrincipalName\n");
    for u in users {
        s.push_str(u);
        s.push('\n');
    }
    fs::write(&p, s).unwrap();
    p
}

fn id_of(sim: &TestSim, upn: &str) -> String {
    sim.handle
        .users_state()
        .into_iter()
        .find(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
        .unwrap()
        .id
}

/// Rewrites one cell of a result CSV (as an admin editing it in a text editor would).
fn edit_cell(path: &Path, input: &str, column: &str, value: &str) {
    let text = fs::read_to_string(path).unwrap();
    let mut rdr = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = rdr.headers().unwrap().clone();
    let col = headers.iter().position(|h| h == column).unwrap();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(&headers).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let mut cells: Vec<String> = rec.iter().map(str::to_string).collect();
        if cells[1] == input {
            cells[col] = value.to_string();
        }
        w.write_record(&cells).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn a_plan_from_another_file_is_refused_before_any_request() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let a = csv_of(dir.path(), "a.csv", &["liam.o'connor@northwind.example"]);
    let b = csv_of(dir.path(), "b.csv", &["hyper.link@northwind.example"]);
    sim.cmd(dir.path())
        .arg("dry-run")
        .arg(&a)
        .args(["-o", "plan.csv"])
        .assert()
        .success();
    sim.handle.reset_counters();
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&b)
        .args(["--plan", "plan.csv", "--yes", "-o", "r.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not from this file"));
    assert_eq!(sim.counters().http_requests, 0);
    assert!(!dir.path().join("r.csv").exists());
}

#[test]
fn a_plan_only_approves_its_own_rows_for_its_own_users() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = csv_of(
        dir.path(),
        "users.csv",
        &[
            "liam.o'connor@northwind.example", // would-change
            "hyper.link@northwind.example",    // would-change, then its user id edited
            "agot.sorensen@northwind.example", // no-change in the plan (already enabled)
            "zoe.lindqvist@northwind.example", // would-change
        ],
    );
    sim.cmd(dir.path())
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan.csv"])
        .assert()
        .success();
    // Someone edits the plan: Hyper's approval now names Zoë's object id.
    let zoe = id_of(&sim, "zoe.lindqvist@northwind.example");
    edit_cell(
        &dir.path().join("plan.csv"),
        "hyper.link@northwind.example",
        "user_id",
        &zoe,
    );
    // Agot was no-change in the plan; someone turns her MFA off in between.
    let agot = csv_of(dir.path(), "agot.csv", &["agot.sorensen@northwind.example"]);
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&agot)
        .args(["--state", "disabled", "--yes", "-o", "off.csv"])
        .assert()
        .success();
    assert_eq!(sim.state("agot.sorensen@northwind.example"), "disabled");
    sim.handle.reset_counters();

    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--plan", "plan.csv", "--yes", "-o", "r.csv"])
        .assert()
        .code(1);
    let rows = read_csv(&dir.path().join("r.csv"));
    assert_eq!(
        row(&rows, "liam.o'connor@northwind.example")["outcome"],
        "changed"
    );
    assert_eq!(
        row(&rows, "zoe.lindqvist@northwind.example")["outcome"],
        "changed"
    );
    for who in [
        "hyper.link@northwind.example",
        "agot.sorensen@northwind.example",
    ] {
        let r = row(&rows, who);
        assert_eq!(r["outcome"], "skipped", "{r:?}");
        assert!(r["error"].contains("not approved"), "{r:?}");
        assert_eq!(sim.state(who), "disabled", "{who} was written");
    }
    assert_eq!(sim.counters().writes, 2);
}

#[test]
fn max_changes_counts_only_real_changes_and_the_refusal_is_in_the_result_file() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = csv_of(
        dir.path(),
        "users.csv",
        &[
            "liam.o'connor@northwind.example", // change
            "priya.raman@northwind.example",   // already enforced
            "agot.sorensen@northwind.example", // already enabled
            "hyper.link@northwind.example",    // change
            "breakglass01@northwind.example",  // excluded
            "nobody@northwind.example",        // not found
        ],
    );
    let excl = csv_of(dir.path(), "excl.csv", &["breakglass01@northwind.example"]);
    // One below the plan: refused, nothing written, every row in the file says why.
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["--max-changes", "1", "--yes", "-o", "refused.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-changes"));
    assert_eq!(sim.counters().writes, 0);
    let rows = read_csv(&dir.path().join("refused.csv"));
    assert_eq!(rows.len(), 6);
    for who in [
        "liam.o'connor@northwind.example",
        "hyper.link@northwind.example",
    ] {
        let r = row(&rows, who);
        assert_eq!(r["outcome"], "skipped");
        assert!(r["error"].contains("--max-changes 1"), "{r:?}");
    }
    // Exactly the plan's size: allowed.
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["--max-changes", "2", "--yes", "-o", "r.csv"])
        .assert()
        .code(1); // the user not found
    assert_eq!(sim.counters().writes, 2);
    assert_eq!(sim.state("breakglass01@northwind.example"), "disabled");
}

#[test]
fn exclusions_match_by_object_id_secondary_and_guest_addresses() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let zoe = id_of(&sim, "zoe.lindqvist@northwind.example");
    let input = csv_of(
        dir.path(),
        "users.csv",
        &[
            "zoe.lindqvist@northwind.example",
            "aokafor@northwind.example",
            "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
            "frontdesk1@northwind.example",
            "liam.o'connor@northwind.example",
        ],
    );
    let excl = csv_of(
        dir.path(),
        "excl.csv",
        &[
            &zoe,                             // by object id
            "AMARA.OKAFOR@northwind.example", // by mail, any case
            "sam.lee@fabrikam.example",       // the guest's own address
            "info@northwind.example",         // a shared proxy address: both desks excluded
        ],
    );
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .success();
    let rows = read_csv(&dir.path().join("r.csv"));
    for who in [
        "zoe.lindqvist@northwind.example",
        "aokafor@northwind.example",
        "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
        "frontdesk1@northwind.example",
    ] {
        assert_eq!(row(&rows, who)["outcome"], "excluded", "{who}");
        assert_eq!(sim.state(who), "disabled", "{who} was touched");
    }
    assert_eq!(sim.counters().writes, 1);
    assert_eq!(sim.state("liam.o'connor@northwind.example"), "enabled");
}

#[test]
fn an_unreadable_exclusion_entry_stops_everything_before_any_request() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let excl = csv_of(
        dir.path(),
        "excl.csv",
        &["breakglass01@northwind.example", "break glass two"],
    );
    sim.cmd(dir.path())
        .arg("apply")
        .arg(repo("samples/legacy-portal-bulk.csv"))
        .arg("--exclude")
        .arg(&excl)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("break glass two"));
    assert_eq!(sim.counters().http_requests, 0);
}

#[test]
fn revert_without_yes_and_without_a_terminal_refuses_before_any_request() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = csv_of(dir.path(), "u.csv", &["liam.o'connor@northwind.example"]);
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .success();
    sim.handle.reset_counters();
    sim.cmd(dir.path())
        .args(["revert", "r.csv", "-o", "back.csv"])
        .write_stdin("y\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    assert_eq!(sim.counters().http_requests, 0);
    assert_eq!(sim.state("liam.o'connor@northwind.example"), "enabled");
}

/// Runs the binary under a pseudo-terminal (`script` from util-linux), typing `answer`.
fn at_a_terminal(sim: &TestSim, dir: &Path, args: &[&str], answer: &str) -> (i32, String) {
    let bin = assert_cmd::cargo::cargo_bin!("mfa-bulk");
    let quoted: Vec<String> = std::iter::once(bin.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let cmdline = format!("{}; echo \"[exit $?]\"", quoted.join(" "));
    let mut c = std::process::Command::new("script");
    c.args(["-q", "-e", "-c", &cmdline, "/dev/null"])
        .current_dir(dir)
        .env("MFA_BULK_GRAPH_URL", sim.handle.url())
        .env("MFA_BULK_LOGIN_URL", sim.handle.url())
        .env("AZURE_TENANT_ID", mfa_bulk::sim::SIM_TENANT_ID)
        .env("AZURE_CLIENT_ID", mfa_bulk::sim::SIM_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", mfa_bulk::sim::SIM_CLIENT_SECRET)
        .env_remove("MFA_BULK_ACCESS_TOKEN")
        .env_remove("AZURE_CLIENT_CERTIFICATE_PATH")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("script runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // Type the answer once the prompt is up (the terminal buffers it anyway).
        std::thread::sleep(Duration::from_millis(300));
        stdin.write_all(answer.as_bytes()).unwrap();
        stdin.flush().unwrap();
        // Keep stdin open until the child has read its line.
        let out = child.wait_with_output().expect("script ends");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = text
            .rsplit("[exit ")
            .next()
            .and_then(|s| s.split(']').next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        drop(stdin);
        (code, text)
    }
}

#[test]
fn at_a_terminal_only_yes_writes() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = csv_of(dir.path(), "u.csv", &["liam.o'connor@northwind.example"]);
    let input = input.to_str().unwrap();
    for (answer, out) in [
        ("n\n", "no.csv"),
        ("\n", "empty.csv"),
        ("yes please\n", "other.csv"),
    ] {
        let (code, text) = at_a_terminal(&sim, dir.path(), &["apply", input, "-o", out], answer);
        assert!(text.contains("[y/N]"), "the prompt: {text}");
        // Not what was asked: exit 1, "Nothing was changed", and no result file to mistake
        // for a record of a change.
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("Nothing was changed"), "{text}");
        assert_eq!(sim.counters().writes, 0, "{answer:?} wrote: {text}");
        assert!(!dir.path().join(out).exists(), "{answer:?} left {out}");
        assert!(!dir.path().join(format!("{out}.run.json")).exists());
    }
    let (code, text) = at_a_terminal(&sim, dir.path(), &["apply", input, "-o", "yes.csv"], "y\n");
    assert_eq!(code, 0, "{text}");
    assert_eq!(sim.counters().writes, 1);
    assert_eq!(sim.state("liam.o'connor@northwind.example"), "enabled");
}

/// A listener that must never see a connection.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Tripwire {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Tripwire(l)
    }
    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }
    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("something connected: {other:?}"),
        }
    }
}

#[test]
fn plain_http_to_another_host_is_refused_before_any_connection() {
    // 0.0.0.0 is not loopback, so it must be refused; were it not, the connection would land
    // on this machine (Linux routes 0.0.0.0 to the local host), on the tripwire: nothing here
    // can reach another machine, whatever the outcome.
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let trip = Tripwire::new();
    let p = trip.port();
    let input = csv_of(dir.path(), "u.csv", &["liam.o'connor@northwind.example"]);
    let bad = [
        format!("http://0.0.0.0:{p}"),
        format!("http://127.0.0.1@0.0.0.0:{p}"),
        format!("HTTP://0.0.0.0:{p}/"),
    ];
    let input = input.to_str().unwrap().to_string();
    // A result file for revert to read.
    let mut changed = ResultRow::new(2, "liam.o'connor@northwind.example", Outcome::Changed);
    changed.user_id = Some(id_of(&sim, "liam.o'connor@northwind.example"));
    changed.state_before = Some(MfaState::Disabled);
    changed.target_state = Some(MfaState::Enabled);
    changed.action = Action::Set(MfaState::Enabled);
    changed.state_after = Some(MfaState::Enabled);
    let mut w = create_writer(&dir.path().join("done.csv"), false).unwrap();
    w.write_row(&changed).unwrap();
    w.finish().unwrap();
    let commands: [Vec<&str>; 4] = [
        vec!["check"],
        vec!["dry-run", &input, "-o", "d.csv"],
        vec!["apply", &input, "--yes", "-o", "a.csv"],
        vec!["revert", "done.csv", "--yes", "-o", "v.csv"],
    ];
    for url in &bad {
        for cmd in &commands {
            // As a flag, through the environment, and as the sign-in URL.
            for (flag, env) in [
                ("--graph-url", ""),
                ("--login-url", ""),
                ("", "MFA_BULK_GRAPH_URL"),
                ("", "AZURE_AUTHORITY_HOST"),
            ] {
                let mut c = sim.cmd(dir.path());
                c.args(cmd);
                if !flag.is_empty() {
                    c.args([flag, url.as_str()]);
                } else {
                    c.env(env, url);
                    if env == "AZURE_AUTHORITY_HOST" {
                        c.env_remove("MFA_BULK_LOGIN_URL");
                    }
                }
                let o = c.timeout(Duration::from_secs(60)).output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert_eq!(
                    o.status.code(),
                    Some(2),
                    "{cmd:?} {flag} {env:?} {url}: {err}"
                );
                assert!(err.contains("plain http"), "{cmd:?} {url}: {err}");
                trip.assert_untouched();
            }
        }
    }
    let c = sim.counters();
    assert_eq!(c.http_requests, 0, "refused before signing in");
    assert_eq!(c.tokens_issued, 0, "refused before signing in");
    for f in ["d.csv", "a.csv", "v.csv"] {
        assert!(!dir.path().join(f).exists(), "{f} written");
    }
}

#[test]
fn apply_and_revert_never_overwrite_a_file_without_force() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = csv_of(dir.path(), "u.csv", &["liam.o'connor@northwind.example"]);
    for name in ["r.csv", "r.xlsx"] {
        fs::write(dir.path().join(name), "precious").unwrap();
        sim.cmd(dir.path())
            .arg("apply")
            .arg(&input)
            .args(["--yes", "-o", name])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--force"));
        assert_eq!(
            fs::read_to_string(dir.path().join(name)).unwrap(),
            "precious"
        );
    }
    assert_eq!(sim.counters().http_requests, 0);

    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", "done.csv"])
        .assert()
        .success();
    fs::write(dir.path().join("back.csv"), "precious").unwrap();
    sim.handle.reset_counters();
    sim.cmd(dir.path())
        .args(["revert", "done.csv", "--yes", "-o", "back.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(sim.counters().http_requests, 0);
    assert_eq!(
        fs::read_to_string(dir.path().join("back.csv")).unwrap(),
        "precious"
    );
    assert_eq!(sim.state("liam.o'connor@northwind.example"), "enabled");
}

#[test]
fn an_existing_notify_list_is_refused_before_anything_is_written() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = csv_of(dir.path(), "u.csv", &["liam.o'connor@northwind.example"]);
    fs::write(dir.path().join("notify.txt"), "precious\n").unwrap();
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", "r.csv", "--notify-list", "notify.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(sim.counters().writes, 0, "users changed, then exit 2");
    assert_eq!(sim.state("liam.o'connor@northwind.example"), "disabled");
    assert_eq!(
        fs::read_to_string(dir.path().join("notify.txt")).unwrap(),
        "precious\n"
    );
}
