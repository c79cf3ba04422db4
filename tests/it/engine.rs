//! The whole job through the real binary against the simulator: dry-run, apply, plan, resume,
//! revert, and the safety rules an admin relies on.

use predicates::prelude::*;

use crate::common::{read_csv, repo, row, TestContext};

#[test]
fn readme_first_command_runs_the_whole_job_on_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    // Exactly the README's command (run from the repository, result into a temp dir).
    let out = dir.path().join("result.csv");
    crate::common::bin(&repo(""))
        .args([
            "apply",
            "samples/new-starters.xlsx",
            "--exclude",
            "samples/exclusions.csv",
        ])
        .args(["--sim", "--yes", "-o"])
        .arg(&out)
        .assert()
        .code(1) // the samples hold a user not found, an ambiguous address and an invalid value
        .stdout(predicate::str::contains("aka.ms/mfasetup"));
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 15, "one result row per input row");
    let expect = [
        ("zoe.lindqvist@northwind.example", "changed", "enforced"),
        ("MATHEO.DURAND@NORTHWIND.EXAMPLE", "changed", "enforced"),
        ("agot.sorensen@northwind.example", "no-change", "enabled"),
        ("liam.o'connor@northwind.example", "changed", "enabled"),
        ("priya.raman@northwind.example", "no-change", "enforced"),
        ("juergen.weiss@northwind.example", "changed", "enforced"),
        ("amara.okafor@northwind.example", "changed", "enforced"),
        ("sam.lee@fabrikam.example", "changed", "enforced"),
        ("kenji.tanaka@northwind.example", "no-change", "enabled"),
    ];
    for (input, outcome, after) in expect {
        let r = row(&rows, input);
        assert_eq!(r["outcome"], outcome, "{input}: {r:?}");
        assert_eq!(r["state_after"], after, "{input}: {r:?}");
    }
    assert_eq!(
        row(&rows, "oskar.berg@northwind.example")["outcome"],
        "not-found"
    );
    assert_eq!(row(&rows, "info@northwind.example")["outcome"], "skipped");
    assert!(row(&rows, "info@northwind.example")["error"].contains("ambiguous"));
    assert_eq!(row(&rows, "TBC")["outcome"], "invalid");
    assert_eq!(
        row(&rows, "breakglass01@northwind.example")["outcome"],
        "excluded"
    );
    let dup: Vec<_> = rows
        .iter()
        .filter(|r| r["input"] == "zoe.lindqvist@northwind.example")
        .collect();
    assert_eq!(dup.len(), 2);
    assert_eq!(dup[1]["outcome"], "duplicate");
    // Rows are in input order with Excel's row numbers (header on row 4).
    let nums: Vec<u64> = rows.iter().map(|r| r["row"].parse().unwrap()).collect();
    assert_eq!(nums.first(), Some(&5));
    assert!(nums.windows(2).all(|w| w[0] < w[1]));
    // The amara row resolved to her UPN (the file has her mail).
    assert_eq!(
        row(&rows, "amara.okafor@northwind.example")["user_principal_name"],
        "aokafor@northwind.example"
    );
    // The display name that is a formula comes out escaped.
    assert!(row(&rows, "hyper.link@northwind.example")["display_name"].starts_with("'="));
    // Every changed row carries Graph's request-id.
    for r in rows.iter().filter(|r| r["outcome"] == "changed") {
        assert!(!r["request_id"].is_empty(), "{r:?}");
    }
    assert!(dir.path().join("result.csv.run.json").exists());
}

#[test]
fn dry_run_writes_nothing_and_shows_what_would_change() {
    let ctx = TestContext::sample();
    ctx.dry_run(&repo("samples/legacy-portal-bulk.csv"))
        .arg("-o")
        .arg(ctx.path("plan.csv"))
        .assert()
        .success();
    assert_eq!(ctx.counters().writes, 0);
    assert_eq!(ctx.state("zoe.lindqvist@northwind.example"), "disabled");
    let rows = ctx.rows("plan.csv");
    assert_eq!(rows.len(), 5);
    let zoe = row(&rows, "zoe.lindqvist@northwind.example");
    assert_eq!(zoe["outcome"], "would-change");
    assert_eq!(zoe["action"], "set-enabled");
    assert_eq!(zoe["state_before"], "disabled");
    // Per-row states from the legacy file's "MFA Status" column.
    assert_eq!(
        row(&rows, "matheo.durand@northwind.example")["target_state"],
        "enforced"
    );
    let nadia = row(&rows, "nadia.haddad@northwind.example");
    assert_eq!(nadia["target_state"], "disabled");
    assert_eq!(nadia["outcome"], "would-change");
}

#[test]
fn apply_reaches_the_target_writes_each_user_once_and_never_weakens_enforced() {
    let ctx = TestContext::sample();
    let input = ctx.input(
        "users.csv",
        &[
            "zoe.lindqvist@northwind.example",
            "liam.o'connor@northwind.example",
            "priya.raman@northwind.example",
            "agot.sorensen@northwind.example",
            "$svc-scanner@northwind.example",
        ],
    );
    ctx.apply(&input)
        .args(["--yes", "-o", "r1.csv"])
        .assert()
        .success();
    assert_eq!(ctx.state("zoe.lindqvist@northwind.example"), "enforced"); // has a method
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
    assert_eq!(ctx.state("$svc-scanner@northwind.example"), "enabled");
    assert_eq!(ctx.state("priya.raman@northwind.example"), "enforced");
    assert_eq!(ctx.counters().writes, 3);
    assert_eq!(ctx.max_writes_per_user(), 1);
    let rows = ctx.rows("r1.csv");
    assert_eq!(
        row(&rows, "priya.raman@northwind.example")["outcome"],
        "no-change"
    );
    assert_eq!(
        row(&rows, "zoe.lindqvist@northwind.example")["mfa_registered"],
        "yes"
    );
    assert_eq!(
        row(&rows, "liam.o'connor@northwind.example")["mfa_registered"],
        "no"
    );

    // Running it again changes nobody.
    ctx.apply(&input)
        .args(["--yes", "-o", "r2.csv"])
        .assert()
        .success();
    assert_eq!(ctx.counters().writes, 3);
    let rows = ctx.rows("r2.csv");
    assert!(rows.iter().all(|r| r["outcome"] == "no-change"), "{rows:?}");
}

#[test]
fn excluded_users_are_never_touched_even_when_listed_by_another_address() {
    let ctx = TestContext::sample();
    let input = ctx.input(
        "users.csv",
        &[
            "amara.okafor@northwind.example",
            "breakglass01@northwind.example",
        ],
    );
    // The exclusion names her UPN; the input has her mail address.
    let excl = ctx.input("excl.csv", &["aokafor@northwind.example"]);
    ctx.apply(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .success();
    assert_eq!(ctx.state("aokafor@northwind.example"), "disabled");
    let rows = ctx.rows("r.csv");
    assert_eq!(
        row(&rows, "amara.okafor@northwind.example")["outcome"],
        "excluded"
    );
    assert_eq!(
        row(&rows, "breakglass01@northwind.example")["outcome"],
        "changed"
    );
}

#[test]
fn apply_with_plan_reports_drift_and_leaves_drifted_users_alone() {
    let ctx = TestContext::sample();
    let input = ctx.input(
        "users.csv",
        &[
            "liam.o'connor@northwind.example",
            "hyper.link@northwind.example",
        ],
    );
    ctx.dry_run(&input)
        .args(["-o", "plan.csv"])
        .assert()
        .success();
    // Someone else changes Liam in between.
    let other = ctx.input("other.csv", &["liam.o'connor@northwind.example"]);
    ctx.apply(&other)
        .args(["--state", "enforced", "--yes", "-o", "other-result.csv"])
        .assert()
        .success();
    let writes_before = ctx.counters().writes;
    ctx.apply(&input)
        .args(["--plan", "plan.csv", "--yes", "-o", "r.csv"])
        .assert()
        .code(1);
    let rows = ctx.rows("r.csv");
    assert_eq!(
        row(&rows, "liam.o'connor@northwind.example")["outcome"],
        "drifted"
    );
    assert_eq!(
        row(&rows, "hyper.link@northwind.example")["outcome"],
        "changed"
    );
    assert_eq!(ctx.counters().writes, writes_before + 1);
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enforced");
}

#[test]
fn max_changes_refuses_a_bigger_plan_and_writes_nothing() {
    let ctx = TestContext::sample();
    ctx.apply(&repo("samples/new-starters.xlsx"))
        .args(["--max-changes", "2", "--yes", "-o", "r.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-changes"));
    assert_eq!(ctx.counters().writes, 0);
}

#[test]
fn apply_without_yes_and_without_a_terminal_refuses_before_any_request() {
    let ctx = TestContext::sample();
    ctx.apply(&repo("samples/legacy-portal-bulk.csv"))
        .args(["-o", "r.csv"])
        .write_stdin("y\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    assert_eq!(ctx.counters().http_requests, 0);
}

#[test]
fn result_file_is_not_overwritten_without_force() {
    let ctx = TestContext::sample();
    ctx.write("r.csv", "precious");
    ctx.dry_run(&repo("samples/legacy-portal-bulk.csv"))
        .args(["-o", "r.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(ctx.read("r.csv"), "precious");
    assert_eq!(ctx.counters().http_requests, 0);
    ctx.dry_run(&repo("samples/legacy-portal-bulk.csv"))
        .args(["-o", "r.csv", "--force"])
        .assert()
        .success();
}

#[test]
fn revert_puts_changed_users_back() {
    let ctx = TestContext::sample();
    let input = ctx.input(
        "users.csv",
        &[
            "zoe.lindqvist@northwind.example",
            "liam.o'connor@northwind.example",
            "priya.raman@northwind.example",
        ],
    );
    ctx.apply(&input)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .success();
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
    ctx.cmd()
        .args(["revert", "r.csv", "--yes", "-o", "revert.csv"])
        .assert()
        .success();
    assert_eq!(ctx.state("zoe.lindqvist@northwind.example"), "disabled");
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "disabled");
    assert_eq!(ctx.state("priya.raman@northwind.example"), "enforced");
    let rows = ctx.rows("revert.csv");
    assert_eq!(
        row(&rows, "liam.o'connor@northwind.example")["outcome"],
        "changed"
    );
    assert_eq!(
        row(&rows, "liam.o'connor@northwind.example")["state_after"],
        "disabled"
    );
    assert_eq!(
        row(&rows, "priya.raman@northwind.example")["outcome"],
        "no-change"
    );
}

#[test]
fn state_disabled_turns_mfa_off_only_when_asked() {
    let ctx = TestContext::sample();
    let input = ctx.input("leavers.csv", &["nadia.haddad@northwind.example"]);
    ctx.apply(&input)
        .args(["--yes", "-o", "r1.csv"])
        .assert()
        .success();
    assert_eq!(ctx.state("nadia.haddad@northwind.example"), "enforced");
    ctx.apply(&input)
        .args(["--state", "disabled", "--yes", "-o", "r2.csv"])
        .assert()
        .success();
    assert_eq!(ctx.state("nadia.haddad@northwind.example"), "disabled");
}

#[test]
fn read_only_app_is_a_permission_error_before_any_write() {
    let ctx = TestContext::sample();
    ctx.cmd_as(
        mfa_bulk::sim::SIM_READONLY_CLIENT_ID,
        mfa_bulk::sim::SIM_READONLY_CLIENT_SECRET,
    )
    .arg("apply")
    .arg(repo("samples/legacy-portal-bulk.csv"))
    .args(["--yes", "-o", "r.csv"])
    .assert()
    .code(3)
    .stderr(predicate::str::contains(
        "Policy.ReadWrite.AuthenticationMethod",
    ));
    assert_eq!(ctx.counters().writes, 0);
}

#[test]
fn unusable_input_sends_nothing_to_graph() {
    let ctx = TestContext::sample();
    let junk = ctx.write("users.csv", b"\x00\x01\x02\x03 binary junk \xff\xfe\x00");
    ctx.apply(&junk)
        .args(["--yes", "-o", "r.csv"])
        .assert()
        .code(2);
    assert_eq!(ctx.counters().http_requests, 0);
    assert!(!ctx.exists("r.csv"));
}

#[test]
fn registration_makes_the_seed_problem_stand_out_in_a_dry_run() {
    let ctx = TestContext::sample();
    ctx.dry_run(&repo("samples/legacy-portal-bulk.csv"))
        .args(["--registration", "-o"])
        .arg(ctx.path("plan.csv"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "registered an MFA method but per-user MFA was disabled",
        ));
    let rows = ctx.rows("plan.csv");
    // Zoë registered through Conditional Access yet shows disabled: the seed problem.
    let zoe = row(&rows, "zoe.lindqvist@northwind.example");
    assert_eq!(
        (zoe["state_before"].as_str(), zoe["mfa_registered"].as_str()),
        ("disabled", "yes")
    );
    assert_eq!(
        row(&rows, "$svc-scanner@northwind.example")["mfa_registered"],
        "no"
    );
    assert_eq!(ctx.counters().writes, 0);
}

#[test]
fn notify_list_holds_changed_users_without_a_method_and_json_summary_counts() {
    let ctx = TestContext::sample();
    let assert = ctx
        .apply(&repo("samples/new-starters.xlsx"))
        .arg("--exclude")
        .arg(repo("samples/exclusions.csv"))
        .args([
            "--yes",
            "--json",
            "--notify-list",
            "notify.txt",
            "-o",
            "r.xlsx",
        ])
        .assert()
        .code(1);
    let v: serde_json::Value =
        serde_json::from_slice(&assert.get_output().stdout).expect("JSON summary");
    let counts = &v["summary"]["counts"];
    let count = |k: &str| counts[k].as_u64().unwrap();
    assert_eq!(count("changed"), 7);
    assert_eq!(count("no-change"), 3);
    assert_eq!(v["exit_code"], 1);
    let notify = ctx.read("notify.txt");
    let mut lines: Vec<&str> = notify.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "hyper.link@northwind.example",
            "liam.o'connor@northwind.example"
        ]
    );
    // An .xlsx result when the output name says so, readable back.
    let rows = mfa_bulk::report::read_results(&ctx.path("r.xlsx")).unwrap();
    assert_eq!(rows.len(), 15);
    assert!(rows
        .iter()
        .any(|r| r.outcome == mfa_bulk::report::Outcome::Changed));
}

#[test]
fn check_and_apply_sign_in_with_a_pfx_certificate_and_its_password_file() {
    use mfa_bulk::sim::{ClientSeed, SimConfig};
    let client_id = "0a1b2c3d-0000-4000-8000-0000000000f1";
    let mut cfg = SimConfig::sample();
    cfg.tenant.clients.push(ClientSeed {
        client_id: client_id.into(),
        display_name: "mfa-bulk pfx test".into(),
        secret: None,
        certificate: Some(std::fs::read_to_string(repo("tests/fixtures/certs/cert.pem")).unwrap()),
        public_key: None,
        roles: vec![
            "User.Read.All".into(),
            "Policy.ReadWrite.AuthenticationMethod".into(),
        ],
        public_client: false,
        scopes: vec![],
        signed_in_user: None,
        redirect_uris: vec![],
        deny_consent: false,
    });
    let ctx = TestContext::with(cfg);
    ctx.write("pfx-password.txt", "test-only\n");
    let with_pfx = |c: &mut assert_cmd::Command| {
        c.env_remove("AZURE_CLIENT_SECRET")
            .env("AZURE_CLIENT_ID", client_id)
            .arg("--certificate")
            .arg(repo("tests/fixtures/certs/app.pfx"))
            .args(["--certificate-password-file", "pfx-password.txt"]);
    };
    let mut check = ctx.cmd();
    check.arg("check");
    with_pfx(&mut check);
    check
        .assert()
        .success()
        .stdout(predicate::str::contains("apply: allowed"));

    let input = ctx.input("u.csv", &["liam.o'connor@northwind.example"]);
    let mut apply = ctx.apply(&input);
    apply.args(["--yes", "-o", "r.csv"]);
    with_pfx(&mut apply);
    apply.assert().success();
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
}
