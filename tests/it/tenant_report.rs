//! `mfa-bulk report` against the simulator: one row per user with the per-user MFA state and
//! registration, read at list speed; the fallbacks (a list answer without `perUserMfaState`,
//! a tenant without Entra ID P1/P2) said in the summary and the run record; `--only`,
//! `--user-type`, `--group`; the report → dry-run → apply loop; flat memory for 100,000 users.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use mfa_bulk::sim::{generate_tenant, SimConfig};
use serde_json::Value;

use crate::common::{read_csv, TestContext};

/// The sample tenant's users who registered a method but are disabled (the users to fix).
const TO_FIX: &[&str] = &[
    "zoe.lindqvist@northwind.example",
    "matheo.durand@northwind.example",
    "juergen.weiss@northwind.example",
    "aokafor@northwind.example",
    "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
    "breakglass01@northwind.example",
    "breakglass02@northwind.example",
];

fn by_upn(rows: &[HashMap<String, String>]) -> HashMap<String, HashMap<String, String>> {
    rows.iter()
        .map(|r| (r["user_principal_name"].clone(), r.clone()))
        .collect()
}

#[test]
fn report_lists_every_user_with_state_and_registration_from_two_lists() {
    let ctx = TestContext::sample();
    let out = ctx
        .cmd()
        .args(["report", "-o", "report.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("7 users have registered an MFA method but per-user MFA is disabled"),
        "{text}"
    );
    assert!(
        text.contains("1 admin has no MFA method registered: agot.sorensen@northwind.example"),
        "{text}"
    );
    let raw = ctx.read("report.csv");
    assert!(raw.starts_with("\u{feff}user_principal_name,user_id,display_name,user_type,account_enabled,per_user_mfa_state,mfa_registered,methods_registered,default_method,is_admin,registration_updated\r\n"));
    let rows = read_csv(&ctx.path("report.csv"));
    assert_eq!(rows.len(), 17, "one row per user");
    let u = by_upn(&rows);
    let zoe = &u["zoe.lindqvist@northwind.example"];
    assert_eq!(zoe["per_user_mfa_state"], "disabled");
    assert_eq!(zoe["mfa_registered"], "yes");
    assert_eq!(zoe["methods_registered"], "microsoftAuthenticatorPush");
    assert_eq!(zoe["default_method"], "microsoftAuthenticatorPush");
    assert_eq!(zoe["user_id"], ctx.id_of("zoe.lindqvist@northwind.example"));
    assert_eq!(
        u["priya.raman@northwind.example"]["per_user_mfa_state"],
        "enforced"
    );
    assert_eq!(u["priya.raman@northwind.example"]["is_admin"], "yes");
    assert_eq!(u["old.account@northwind.example"]["account_enabled"], "no");
    assert_eq!(
        u["sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com"]["user_type"],
        "Guest"
    );
    // A display name that is a formula is written as text.
    assert!(u["hyper.link@northwind.example"]["display_name"].starts_with("'=HYPERLINK("));
    let fix: Vec<&str> = rows
        .iter()
        .filter(|r| r["per_user_mfa_state"] == "disabled" && r["mfa_registered"] == "yes")
        .map(|r| r["user_principal_name"].as_str())
        .collect();
    assert_eq!(fix, TO_FIX);
    // List speed: one page of users (state included), one page of the report, no per-user read.
    assert_eq!(ctx.logged("/users?"), 1);
    assert_eq!(ctx.logged("userRegistrationDetails"), 1);
    assert_eq!(ctx.logged("/authentication/"), 0);
    // The run record says how it read.
    let rec: Value = serde_json::from_str(&ctx.read("report.csv.run.json")).unwrap();
    assert_eq!(rec["command"], "report");
    assert_eq!(rec["graph"]["report"]["registered_but_disabled"], 7);
    assert_eq!(rec["graph"]["report"]["read"]["state_from_list"], 17);
    assert_eq!(rec["graph"]["report"]["read"]["state_per_user"], 0);
    // Nothing changed.
    assert_eq!(ctx.counters().writes, 0);
}

#[test]
fn the_whole_loop_report_only_to_fix_then_dry_run_then_apply() {
    let ctx = TestContext::sample();
    ctx.cmd()
        .args([
            "report",
            "--only",
            "registered-but-disabled",
            "-o",
            "todo.xlsx",
        ])
        .assert()
        .code(0);
    // The report file is the input: its user column is found by its header, and its state
    // column (what users had) is not taken as a target.
    let out = ctx
        .cmd()
        .args(["dry-run", "todo.xlsx", "-o", "plan.csv"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = ctx.rows("plan.csv");
    let inputs: Vec<&str> = plan.iter().map(|r| r["input"].as_str()).collect();
    assert_eq!(inputs, TO_FIX);
    assert!(plan.iter().all(|r| r["action"] == "set-enabled"));
    ctx.cmd()
        .args([
            "apply",
            "todo.xlsx",
            "--plan",
            "plan.csv",
            "--yes",
            "-o",
            "done.csv",
        ])
        .assert()
        .code(0);
    for upn in TO_FIX {
        // Enabled with a method registered becomes enforced by itself.
        assert_eq!(ctx.state(upn), "enforced", "{upn}");
    }
    assert_eq!(ctx.state("liam.o'connor@northwind.example"), "disabled");
    assert_eq!(ctx.max_writes_per_user(), 1);
    // The next report finds nobody left to fix.
    let out = ctx
        .cmd()
        .args([
            "report",
            "--only",
            "registered-but-disabled",
            "-o",
            "after.csv",
            "--json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["registered_but_disabled"], 0);
    assert_eq!(read_csv(&ctx.path("after.csv")).len(), 0);
}

#[test]
fn a_list_without_per_user_mfa_state_falls_back_to_the_per_user_get_and_says_so() {
    let mut cfg = SimConfig::sample();
    cfg.tenant.lists_per_user_mfa_state = false;
    let ctx = TestContext::with(cfg);
    let out = ctx.cmd().args(["report", "-o", "r.csv"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("did not answer perUserMfaState for 17 users: read one by one"),
        "{text}"
    );
    let u = by_upn(&ctx.rows("r.csv"));
    assert_eq!(
        u["priya.raman@northwind.example"]["per_user_mfa_state"],
        "enforced"
    );
    assert_eq!(
        u["agot.sorensen@northwind.example"]["per_user_mfa_state"],
        "enabled"
    );
    assert_eq!(ctx.logged("/authentication/requirements"), 17);
    let rec: Value = serde_json::from_str(&ctx.read("r.csv.run.json")).unwrap();
    assert_eq!(rec["graph"]["report"]["read"]["state_per_user"], 17);
}

#[test]
fn without_premium_registration_comes_from_each_users_methods_and_the_summary_says_why() {
    let mut cfg = SimConfig::sample();
    cfg.tenant.premium = false;
    let ctx = TestContext::with(cfg);
    let out = ctx.cmd().args(["report", "-o", "r.csv"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Authentication_RequestFromNonPremiumTenantOrB2CTenant")
            && text.contains("each user's authentication methods"),
        "{text}"
    );
    assert!(
        text.contains("7 users have registered an MFA method but per-user MFA is disabled"),
        "{text}"
    );
    let u = by_upn(&ctx.rows("r.csv"));
    assert_eq!(
        u["zoe.lindqvist@northwind.example"]["mfa_registered"],
        "yes"
    );
    assert_eq!(u["liam.o'connor@northwind.example"]["mfa_registered"], "no");
    // The methods say nothing of roles: blank, not "no".
    assert_eq!(u["priya.raman@northwind.example"]["is_admin"], "");
    assert_eq!(ctx.logged("/authentication/methods"), 17);
}

#[test]
fn only_and_user_type_keep_the_rows_asked_for_and_count_everyone_read() {
    let ctx = TestContext::sample();
    ctx.cmd()
        .args(["report", "--user-type", "guest", "-o", "guests.csv"])
        .assert()
        .code(0);
    let guests = ctx.rows("guests.csv");
    assert_eq!(guests.len(), 1);
    assert_eq!(
        guests[0]["user_principal_name"],
        "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com"
    );
    let out = ctx
        .cmd()
        .args(["report", "--only", "enforced", "-o", "e.csv", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["users"], 17);
    assert_eq!(v["summary"]["rows"], 2);
    let e: Vec<String> = ctx
        .rows("e.csv")
        .iter()
        .map(|r| r["user_principal_name"].clone())
        .collect();
    assert_eq!(
        e,
        [
            "priya.raman@northwind.example",
            "nadia.haddad@northwind.example"
        ]
    );
    ctx.cmd()
        .args(["report", "--only", "not-registered", "-o", "n.csv"])
        .assert()
        .code(0);
    assert!(ctx
        .rows("n.csv")
        .iter()
        .all(|r| r["mfa_registered"] == "no"));
    assert_eq!(ctx.rows("n.csv").len(), 7);
}

#[test]
fn group_report_follows_nested_groups_and_names_what_is_not_a_user() {
    let ctx = TestContext::sample();
    let out = ctx
        .cmd()
        .args(["report", "--group", "MFA rollout wave 1", "-o", "g.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("KIOSK-LOBBY-01 (device)"), "{text}");
    let mut upns: Vec<String> = ctx
        .rows("g.csv")
        .iter()
        .map(|r| r["user_principal_name"].clone())
        .collect();
    upns.sort();
    assert_eq!(
        upns,
        [
            "agot.sorensen@northwind.example",
            "juergen.weiss@northwind.example",
            "liam.o'connor@northwind.example",
            "matheo.durand@northwind.example",
            "sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com",
            "zoe.lindqvist@northwind.example",
        ]
    );
}

#[test]
fn report_never_replaces_a_file_without_force() {
    let ctx = TestContext::sample();
    ctx.write("r.csv", "mine");
    let out = ctx.cmd().args(["report", "-o", "r.csv"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(ctx.read("r.csv"), "mine");
    assert_eq!(
        ctx.counters().requests,
        0,
        "refused before anything was sent"
    );
    ctx.cmd()
        .args(["report", "-o", "r.csv", "--force"])
        .assert()
        .code(0);
    assert_eq!(ctx.rows("r.csv").len(), 17);
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Peak resident memory (KiB) of `report` of a generated tenant of `users`, the simulator
/// time-scaled so the reporting API's pace is no wait.
fn report_peak_kb(users: usize, format: &str) -> (u64, usize) {
    let mut cfg = SimConfig::with_tenant(generate_tenant(users, 3));
    cfg.time_scale = 100.0;
    let ctx = TestContext::in_memory(cfg);
    let name = format!("r.{format}");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("mfa-bulk"))
        .current_dir(ctx.dir())
        .envs(ctx.sample_app_env())
        .args([
            "report",
            "--report-rate",
            "4000",
            "--rate",
            "5000000",
            "-o",
            &name,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(kb) = vm_hwm_kb(child.id()) {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{}", crate::common::stderr_of(&mut child));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rows = if format == "csv" {
        ctx.rows(&name).len()
    } else {
        std::fs::metadata(ctx.path(&name)).unwrap().len() as usize
    };
    (peak, rows)
}

#[test]
fn a_100000_user_report_streams_in_flat_memory() {
    // CSV: every user written; the peak is that of a small tenant plus the compact
    // registration index (about 40 bytes a user), never the rows.
    let (small, n_small) = report_peak_kb(10_000, "csv");
    let (big, n_big) = report_peak_kb(100_000, "csv");
    assert!(n_small > 9_000 && n_big > 90_000, "{n_small} {n_big}");
    assert!(
        big < small + 12 * 1024 && big < 48 * 1024,
        "peak RSS {small} KiB for 10,000 users, {big} KiB for 100,000"
    );
    // XLSX in constant-memory mode: the same bound.
    let (xbig, bytes) = report_peak_kb(100_000, "xlsx");
    eprintln!("report peak RSS: {small} KiB (10,000 users), {big} KiB (100,000), XLSX {xbig} KiB");
    assert!(bytes > 1_000_000, "{bytes}");
    assert!(xbig < small + 14 * 1024, "XLSX peak {xbig} KiB");
}

#[test]
fn ctrl_c_keeps_the_complete_rows_and_exits_130() {
    let mut cfg = SimConfig::with_tenant(generate_tenant(3_000, 4));
    cfg.faults.latency_min_ms = 20;
    cfg.faults.latency_max_ms = 20;
    let ctx = TestContext::in_memory(cfg);
    let mut child = ctx.spawn(["report", "--per-user-reads", "-o", "r.csv"]);
    // Once the first page is in the file, stop it.
    let start = std::time::Instant::now();
    while !ctx.exists("r.csv") || ctx.read("r.csv").lines().count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "no row written");
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::common::signal(&child, "-INT");
    let status = crate::common::wait_exit(&mut child);
    assert_eq!(
        status.code(),
        Some(130),
        "{}",
        crate::common::stderr_of(&mut child)
    );
    let rows = ctx.rows("r.csv");
    assert!(!rows.is_empty() && rows.len() < 3_000, "{}", rows.len());
    for r in &rows {
        assert!(
            !r["per_user_mfa_state"].is_empty() && !r["mfa_registered"].is_empty(),
            "a row cut short was written: {r:?}"
        );
    }
    let rec: Value = serde_json::from_str(&ctx.read("r.csv.run.json")).unwrap();
    assert_eq!(rec["interrupted"], true);
    assert_eq!(rec["exit_code"], 130);
}

#[test]
fn an_app_that_may_read_no_registration_gets_states_and_is_told_what_to_grant() {
    let ctx = TestContext::sample();
    let out = ctx
        .cmd_as(
            mfa_bulk::sim::SIM_READONLY_CLIENT_ID,
            mfa_bulk::sim::SIM_READONLY_CLIENT_SECRET,
        )
        .args(["report", "-o", "r.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("AuditLog.Read.All") && text.contains("UserAuthenticationMethod.Read.All"),
        "{text}"
    );
    let rows = ctx.rows("r.csv");
    assert_eq!(rows.len(), 17);
    assert!(rows.iter().all(|r| !r["per_user_mfa_state"].is_empty()));
    assert!(rows.iter().all(|r| r["mfa_registered"].is_empty()));
}
