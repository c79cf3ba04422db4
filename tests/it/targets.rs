//! Targets other than a file (`--group`, `--filter`) for `dry-run` and `apply`, and the list
//! read of `state_before`: rows numbered in listing order with the UPN as input, nested
//! groups followed, an ambiguous group name or a refused filter stopping the run before
//! anything changes, advanced queries sent as Graph requires, and state read from the user
//! list when that costs fewer requests (per user when the list answer lacks it).

use mfa_bulk::sim::{generate_tenant, SimConfig};
use serde_json::Value;

use crate::common::TestContext;

#[test]
fn dry_run_of_a_group_lists_its_users_nested_groups_followed() {
    let ctx = TestContext::sample();
    let out = ctx
        .cmd()
        .args(["dry-run", "--group", "MFA rollout wave 1", "-o", "plan.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("1 member of the group is not a user, left out: KIOSK-LOBBY-01 (device)"),
        "{text}"
    );
    let rows = ctx.rows("plan.csv");
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["row"].as_str(), r["input"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("1", "zoe.lindqvist@northwind.example"),
            ("2", "agot.sorensen@northwind.example"),
            ("3", "liam.o'connor@northwind.example"),
            (
                "4",
                "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
            ),
            // Through the nested group "Finance team" (listed after the direct members).
            ("5", "matheo.durand@northwind.example"),
            ("6", "juergen.weiss@northwind.example"),
        ]
    );
    assert!(rows.iter().all(|r| r["input"] == r["user_principal_name"]));
    let agot = &rows[1];
    assert_eq!(
        (agot["state_before"].as_str(), agot["outcome"].as_str()),
        ("enabled", "no-change")
    );
    // The states came with the member list: no per-user read.
    assert_eq!(ctx.logged("/authentication/requirements"), 0);
    let rec: Value = serde_json::from_str(&ctx.read("plan.csv.run.json")).unwrap();
    assert_eq!(rec["input_file"], "group \"MFA rollout wave 1\"");
    assert_eq!(rec["graph"]["reads"]["from_list"], 6);
}

#[test]
fn apply_to_a_group_by_id_honours_the_exclusion_list() {
    let ctx = TestContext::sample();
    let excl = ctx.input("never.csv", &["zoe.lindqvist@northwind.example"]);
    ctx.cmd()
        .args([
            "apply",
            "--group",
            "4b1d0c3e-2f5a-4e6b-9c7d-8e9f0a1b2c3d",
            "--yes",
        ])
        .arg("--exclude")
        .arg(&excl)
        .args(["-o", "done.csv"])
        .assert()
        .code(0);
    assert_eq!(ctx.state("matheo.durand@northwind.example"), "enforced");
    assert_eq!(ctx.state("juergen.weiss@northwind.example"), "enforced");
    assert_eq!(ctx.state("zoe.lindqvist@northwind.example"), "disabled");
    ctx.cmd()
        .args(["apply", "--group", "MFA rollout wave 1", "--yes"])
        .arg("--exclude")
        .arg(&excl)
        .args(["-o", "wave.csv"])
        .assert()
        .code(0);
    let rows = ctx.rows("wave.csv");
    assert_eq!(rows[0]["outcome"], "excluded");
    assert_eq!(ctx.state("zoe.lindqvist@northwind.example"), "disabled");
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "enabled");
    assert_eq!(ctx.max_writes_per_user(), 1);
}

#[test]
fn a_group_name_several_groups_share_is_refused_naming_them() {
    let ctx = TestContext::sample();
    let out = ctx
        .cmd()
        .args(["apply", "--group", "sales", "--yes", "-o", "x.csv"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("2 groups are named \"sales\"")
            && err.contains("6d3f2e5a-4b7c-4a8d-9e0f-a0b1c2d3e4f5")
            && err.contains("8f5b4a7c-6d9e-4c0f-b1a2-c2d3e4f5a6b7"),
        "{err}"
    );
    assert_eq!(ctx.counters().writes, 0);
    assert!(!ctx.exists("x.csv"));
    let out = ctx
        .cmd()
        .args(["dry-run", "--group", "No such team"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no group is named"));
}

#[test]
fn a_filter_that_needs_an_advanced_query_is_sent_with_consistency_level_and_count() {
    let ctx = TestContext::sample();
    let out = ctx
        .cmd()
        .args([
            "dry-run",
            "--filter",
            "endsWith(userPrincipalName,'@northwind.onmicrosoft.com')",
            "-o",
            "plan.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = ctx.rows("plan.csv");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["input"],
        "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com"
    );
    // Graph said 400 Request_UnsupportedQuery to the plain query; the advanced one worked.
    let log = ctx.handle.request_log();
    let lists: Vec<(u16, bool)> = log
        .iter()
        .filter(|e| e.url.contains("/users?") && e.url.contains("filter"))
        .map(|e| (e.status, e.url.contains("$count=true")))
        .collect();
    assert_eq!(lists, [(400, false), (200, true)]);
    // A simple filter goes as it is.
    ctx.cmd()
        .args([
            "dry-run",
            "--filter",
            "department eq 'Finance'",
            "-o",
            "fin.csv",
        ])
        .assert()
        .code(0);
    assert_eq!(ctx.rows("fin.csv").len(), 2);
}

#[test]
fn a_filter_graph_refuses_is_a_usage_error_and_changes_nothing() {
    let ctx = TestContext::sample();
    let out = ctx
        .cmd()
        .args(["apply", "--filter", "department eq Sales", "--yes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Graph refused the filter"), "{err}");
    assert_eq!(ctx.counters().writes, 0);
}

#[test]
fn exactly_one_of_file_group_and_filter() {
    let ctx = TestContext::sample();
    let f = ctx.input("in.csv", &["zoe.lindqvist@northwind.example"]);
    let out = ctx
        .cmd()
        .arg("dry-run")
        .arg(&f)
        .args(["--group", "Sales"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ctx.cmd().args(["dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--group"));
    assert_eq!(ctx.counters().requests, 0);
}

/// A tenant of 1,200 users (two pages) and an input of 300 of them.
fn big() -> (TestContext, std::path::PathBuf) {
    let ctx = TestContext::with(SimConfig::with_tenant(generate_tenant(1_200, 5)));
    let upns: Vec<String> = ctx.upns().into_iter().step_by(4).collect();
    let input = ctx.input("in.csv", &upns);
    (ctx, input)
}

#[test]
fn dry_run_reads_state_before_from_the_user_list_when_that_is_cheaper() {
    let (ctx, input) = big();
    let out = ctx
        .dry_run(&input)
        .args(["-o", "plan.csv", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["reads"]["from_list"], 300);
    assert_eq!(v["summary"]["reads"]["per_user"], 0);
    assert_eq!(ctx.logged("/authentication/requirements"), 0);
    // The count, two pages of users: three requests for 300 users.
    assert_eq!(ctx.counters().requests, 3);
    // Every state is the tenant's.
    let truth: std::collections::HashMap<String, String> = ctx
        .handle
        .users_state()
        .into_iter()
        .map(|u| (u.id, u.per_user_mfa_state))
        .collect();
    for r in ctx.rows("plan.csv") {
        assert_eq!(r["state_before"], truth[&r["user_id"]], "{}", r["input"]);
    }
    // --per-user-reads: the documented GET for each.
    ctx.dry_run(&input)
        .args(["-o", "plan2.csv", "--per-user-reads"])
        .assert()
        .code(0);
    assert_eq!(ctx.logged("/authentication/requirements"), 300);
}

#[test]
fn a_list_answer_without_the_state_means_per_user_reads_said_in_summary_and_record() {
    let mut cfg = SimConfig::with_tenant(generate_tenant(1_200, 5));
    cfg.tenant.lists_per_user_mfa_state = false;
    let ctx = TestContext::with(cfg);
    let upns: Vec<String> = ctx.upns().into_iter().step_by(4).collect();
    let input = ctx.input("in.csv", &upns);
    let out = ctx
        .dry_run(&input)
        .args(["-o", "plan.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("did not answer perUserMfaState for 300 users"),
        "{text}"
    );
    assert_eq!(ctx.logged("/authentication/requirements"), 300);
    let rec: Value = serde_json::from_str(&ctx.read("plan.csv.run.json")).unwrap();
    assert_eq!(rec["graph"]["reads"]["list_lacked"], 300);
    assert!(ctx
        .rows("plan.csv")
        .iter()
        .all(|r| !r["state_before"].is_empty()));
}

#[test]
fn check_reports_security_defaults_and_conditional_access_mfa_policies() {
    let ctx = TestContext::sample();
    let out = ctx.cmd().args(["check", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mfa_policies"]["security_defaults"], false);
    assert_eq!(v["mfa_policies"]["ca_requiring_mfa"], 1);
    assert_eq!(v["mfa_policies"]["ca_report_only"], 1);
    let out = ctx.cmd().arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Security defaults:    off") && text.contains("Require MFA for admins"),
        "{text}"
    );
}

#[test]
fn apply_of_a_group_with_its_dry_run_plan_writes_exactly_the_approved_users() {
    let ctx = TestContext::sample();
    ctx.cmd()
        .args(["dry-run", "--group", "Finance team", "-o", "plan.csv"])
        .assert()
        .code(0);
    // Since the dry-run, someone else enabled Jürgen: drift, not touched again.
    ctx.cmd()
        .arg("apply")
        .arg(ctx.input("one.csv", &["juergen.weiss@northwind.example"]))
        .args(["--yes", "-o", "other.csv"])
        .assert()
        .code(0);
    let out = ctx
        .cmd()
        .args([
            "apply",
            "--group",
            "Finance team",
            "--plan",
            "plan.csv",
            "--yes",
        ])
        .args(["-o", "done.csv"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = ctx.rows("done.csv");
    let outcome = |upn: &str| {
        rows.iter()
            .find(|r| r["input"] == upn)
            .map(|r| r["outcome"].clone())
            .unwrap()
    };
    assert_eq!(outcome("matheo.durand@northwind.example"), "changed");
    assert_eq!(outcome("juergen.weiss@northwind.example"), "drifted");
    assert_eq!(ctx.max_writes_per_user(), 1);
}
