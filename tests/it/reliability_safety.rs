//! The safety rules an admin relies on, beyond the basics in `engine.rs`: a plan only approves
//! its own rows, `--max-changes` counts only real changes, exclusions match by every address,
//! nothing is written without a yes, plain `http://` never leaves the machine, and no file is
//! overwritten without `--force`, all checked before anything is written.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use mfa_bulk::model::MfaState;
use mfa_bulk::report::{create_writer, Action, Outcome, ResultRow};
use predicates::prelude::*;

use crate::common::{clear_env, repo, row, TestContext};

/// Rewrites one cell of a result CSV (as an admin editing it in a text editor would).
fn edit_cell(path: &Path, input: &str, column: &str, value: &str) {
    let text = std::fs::read_to_string(path).unwrap();
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
    let ctx = TestContext::sample();
    let a = ctx.input("a.csv", &["liam.o'connor@northwind.example"]);
    let b = ctx.input("b.csv", &["hyper.link@northwind.example"]);
    ctx.dry_run(&a).args(["-o", "plan.csv"]).assert().success();
    ctx.handle.reset_counters();
    ctx.apply(&b)
        .args(["--plan", "plan.csv", "--yes", "-o", "r.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not from this file"));
    assert_eq!(ctx.counters().http_requests, 0);
    assert!(!ctx.exists("r.csv"));
}

#[test]
fn a_plan_only_approves_its_own_rows_for_its_own_users() {
    let ctx = TestContext::sample();
    let input = ctx.input(
        "users.csv",
        &[
            "liam.o'connor@northwind.example", // would-change
            "hyper.link@northwind.example",    // would-change, then its user id edited
            "agot.sorensen@northwind.example", // no-change in the plan (already enabled)
            "zoe.lindqvist@northwind.example", // would-change
        ],
    );
    ctx.dry_run(&input)
        .args(["-o", "plan.csv"])
        .assert()
        .success();
    // Someone edits the plan: Hyper's approval now names Zoë's object id.
    let zoe = ctx.id_of("zoe.lindqvist@northwind.example");
    edit_cell(
        &ctx.path("plan.csv"),
        "hyper.link@northwind.example",
        "user_id",
        &zoe,
    );
    // Agot was no-change in the plan; someone turns her MFA off in between.
    let agot = ctx.input("agot.csv", &["agot.sorensen@northwind.example"]);
    ctx.apply(&agot)
        .args(["--state", "disabled", "--yes", "-o", "off.csv"])
        .assert()
        .success();
    assert_eq!(ctx.state("agot.sorensen@northwind.example"), "disabled");
    ctx.handle.reset_counters();

    ctx.apply(&input)
        .args(["--plan", "plan.csv", "--yes", "-o", "r.csv"])
        .assert()
        .code(1);
    let rows = ctx.rows("r.csv");
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
        assert_eq!(ctx.state(who), "disabled", "{who} was written");
    }
    assert_eq!(ctx.counters().writes, 2);
}

#[test]
fn max_changes_counts_only_real_changes_and_the_refusal_is_in_the_result_file() {
    let ctx = TestContext::sample();
    let input = ctx.input(
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
    let excl = ctx.input("excl.csv", &["breakglass01@northwind.example"]);
    // One below the plan: refused, nothing written, every row in the file says why.
    ctx.apply(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["--max-changes", "1", "--yes", "-o", "refused.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-changes"));
    assert_eq!(ctx.counters().writes, 0);
    let rows = ctx.rows("refused.csv");
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
    ctx.apply(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["--max-changes", "2", "--yes", "-o", "r.csv"])
        .assert()
        .code(1); // the user not found
    assert_eq!(ctx.counters().writes, 2);
    assert_eq!(ctx.state("breakglass01@northwind.example"), "disabled");
}

#[test]
fn exclusions_match_by_object_id_secondary_and_guest_addresses() {
    let ctx = TestContext::sample();
    let zoe = ctx.id_of("zoe.lindqvist@northwind.example");
    let input = ctx.input(
        "users.csv",
        &[
            "zoe.lindqvist@northwind.example",
            "aokafor@northwind.example",
            "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
            "frontdesk1@northwind.example",
            "liam.o'connor@northwind.example",
        ],
    );
    let excl = ctx.input(
        "excl.csv",
        &[
            zoe.as_str(),                     // by object id
            "AMARA.OKAFOR@northwind.example", // by mail, any case
            "sam.lee@fabrikam.example",       // the guest's own address
            "info@northwind.example",         // a shared proxy address: both desks excluded
        ],
    );
    ctx.apply(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .success();
    let rows = ctx.rows("r.csv");
    for who in [
        "zoe.lindqvist@northwind.example",
        "aokafor@northwind.example",
        "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
        "frontdesk1@northwind.example",
    ] {
        assert_eq!(row(&rows, who)["outcome"], "excluded", "{who}");
        assert_eq!(ctx.state(who), "disabled", "{who} was touched");
    }
    assert_eq!(ctx.counters().writes, 1);
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
}

#[test]
fn an_unreadable_exclusion_entry_stops_everything_before_any_request() {
    let ctx = TestContext::sample();
    let excl = ctx.input(
        "excl.csv",
        &["breakglass01@northwind.example", "break glass two"],
    );
    ctx.apply(&repo("samples/legacy-portal-bulk.csv"))
        .arg("--exclude")
        .arg(&excl)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("break glass two"));
    assert_eq!(ctx.counters().http_requests, 0);
}

#[test]
fn revert_without_yes_and_without_a_terminal_refuses_before_any_request() {
    let ctx = TestContext::sample();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    ctx.apply(&input)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .success();
    ctx.handle.reset_counters();
    ctx.cmd()
        .args(["revert", "r.csv", "-o", "back.csv"])
        .write_stdin("y\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    assert_eq!(ctx.counters().http_requests, 0);
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
}

/// Runs the binary under a pseudo-terminal (`script` from util-linux), typing `answer`.
fn at_a_terminal(ctx: &TestContext, args: &[&str], answer: &str) -> (i32, String) {
    let bin = assert_cmd::cargo::cargo_bin!("mfa-bulk");
    let quoted: Vec<String> = std::iter::once(bin.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let cmdline = format!("{}; echo \"[exit $?]\"", quoted.join(" "));
    let mut c = std::process::Command::new("script");
    clear_env(&mut c);
    c.args(["-q", "-e", "-c", &cmdline, "/dev/null"])
        .current_dir(ctx.dir())
        .envs(ctx.sample_app_env())
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
    let ctx = TestContext::sample();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    let input = input.to_str().unwrap();
    for (answer, out) in [
        ("n\n", "no.csv"),
        ("\n", "empty.csv"),
        ("yes please\n", "other.csv"),
    ] {
        let (code, text) = at_a_terminal(&ctx, &["apply", input, "-o", out], answer);
        assert!(text.contains("[y/N]"), "the prompt: {text}");
        // Not what was asked: exit 1, "Nothing was changed", and no result file to mistake
        // for a record of a change.
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("Nothing was changed"), "{text}");
        assert_eq!(ctx.counters().writes, 0, "{answer:?} wrote: {text}");
        assert!(!ctx.exists(out), "{answer:?} left {out}");
        assert!(!ctx.exists(&format!("{out}.run.json")));
    }
    let (code, text) = at_a_terminal(&ctx, &["apply", input, "-o", "yes.csv"], "y\n");
    assert_eq!(code, 0, "{text}");
    assert_eq!(ctx.counters().writes, 1);
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
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
    let ctx = TestContext::sample();
    let trip = Tripwire::new();
    let p = trip.port();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    let bad = [
        format!("http://0.0.0.0:{p}"),
        format!("http://127.0.0.1@0.0.0.0:{p}"),
        format!("HTTP://0.0.0.0:{p}/"),
    ];
    let input = input.to_str().unwrap().to_string();
    // A result file for revert to read.
    let mut changed = ResultRow::new(2, "liam.o'connor@northwind.example", Outcome::Changed);
    changed.user_id = Some(ctx.id_of("liam.o'connor@northwind.example"));
    changed.state_before = Some(MfaState::Disabled);
    changed.target_state = Some(MfaState::Enabled);
    changed.action = Action::Set(MfaState::Enabled);
    changed.state_after = Some(MfaState::Enabled);
    let mut w = create_writer(&ctx.path("done.csv"), false).unwrap();
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
                let mut c = ctx.cmd();
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
    let c = ctx.counters();
    assert_eq!(c.http_requests, 0, "refused before signing in");
    assert_eq!(c.tokens_issued, 0, "refused before signing in");
    for f in ["d.csv", "a.csv", "v.csv"] {
        assert!(!ctx.exists(f), "{f} written");
    }
}

#[test]
fn apply_and_revert_never_overwrite_a_file_without_force() {
    let ctx = TestContext::sample();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    for name in ["r.csv", "r.xlsx"] {
        ctx.write(name, "precious");
        ctx.apply(&input)
            .args(["--yes", "-o", name])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--force"));
        assert_eq!(ctx.read(name), "precious");
    }
    assert_eq!(ctx.counters().http_requests, 0);

    ctx.apply(&input)
        .args(["--yes", "-o", "done.csv"])
        .assert()
        .success();
    ctx.write("back.csv", "precious");
    ctx.handle.reset_counters();
    ctx.cmd()
        .args(["revert", "done.csv", "--yes", "-o", "back.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(ctx.counters().http_requests, 0);
    assert_eq!(ctx.read("back.csv"), "precious");
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
}

#[test]
fn an_existing_notify_list_is_refused_before_anything_is_written() {
    let ctx = TestContext::sample();
    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    ctx.write("notify.txt", "precious\n");
    ctx.apply(&input)
        .args(["--yes", "-o", "r.csv", "--notify-list", "notify.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(ctx.counters().writes, 0, "users changed, then exit 2");
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "disabled");
    assert_eq!(ctx.read("notify.txt"), "precious\n");
}
