//! A dry-run of a big file streams it: checked whole before anything is sent, then read again
//! a chunk at a time once signed in, each chunk's rows written and dropped. Every row still
//! gets its one result row, in order, with the outcome a held run gives it; the tenant is
//! listed once for all the chunks; a million rows stay under 250 MB.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use mfa_bulk::sim::{generate_tenant, SimConfig};
use serde_json::Value;

use crate::common::{stderr_of, TestContext};

#[test]
fn a_streamed_dry_run_gives_every_row_its_outcome_in_order() {
    let ctx = TestContext::in_memory(SimConfig::with_tenant(generate_tenant(1_200, 9)));
    let upns = ctx.upns();
    let users = &upns[..1_000];
    let excluded = &users[7];
    let excl = ctx.input("never.csv", &[excluded]);
    let rows = 60_000;
    let mut text = String::from("UserPrincipalName\n");
    let mut expect = Vec::with_capacity(rows);
    for i in 0..rows {
        let (cell, outcome) = if i == rows - 1 {
            (users[0].to_uppercase(), "duplicate")
        } else if i % 1_000 == 999 {
            ("TBC".to_string(), "invalid")
        } else if i % 60 == 0 && i / 60 < users.len() {
            let u = &users[i / 60];
            (u.clone(), if u == excluded { "excluded" } else { "" })
        } else {
            (format!("nobody{i}@northwind.example"), "not-found")
        };
        text.push_str(&cell);
        text.push('\n');
        expect.push(outcome);
    }
    let input = ctx.write("big.csv", text);
    let out = ctx
        .dry_run(&input)
        .arg("--exclude")
        .arg(&excl)
        .args(["-o", "plan.csv", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let truth: std::collections::HashMap<String, String> = ctx
        .handle
        .users_state()
        .into_iter()
        .map(|u| (u.user_principal_name.to_lowercase(), u.per_user_mfa_state))
        .collect();
    let result = ctx.rows("plan.csv");
    assert_eq!(result.len(), rows, "one result row per input row");
    for (i, r) in result.iter().enumerate() {
        assert_eq!(r["row"], (i + 2).to_string(), "in input order");
        let want = match expect[i] {
            "" => match truth[&r["input"].to_lowercase()].as_str() {
                "disabled" => "would-change",
                _ => "no-change",
            },
            o => o,
        };
        assert_eq!(r["outcome"], want, "row {}: {}", r["row"], r["input"]);
    }
    let counts = &v["summary"]["counts"];
    let n = |o: &str| expect.iter().filter(|e| **e == o).count() as u64;
    assert_eq!(counts["not-found"], n("not-found"));
    assert_eq!(counts["invalid"], n("invalid"));
    assert_eq!(counts["excluded"], 1);
    assert_eq!(counts["duplicate"], 1);
    assert_eq!(
        counts["would-change"].as_u64().unwrap() + counts["no-change"].as_u64().unwrap(),
        n("")
    );
    assert_eq!(v["summary"]["rows"], rows as u64);
    // One count and the tenant's two pages, shared by the three chunks; no state read.
    assert_eq!(ctx.counters().requests, 3);
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_million_row_dry_run_stays_under_250_mb() {
    let ctx = TestContext::in_memory(SimConfig::with_tenant(generate_tenant(10_000, 7)));
    let input = ctx.path("million.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        writeln!(w, "UserPrincipalName").unwrap();
        let upns = ctx.upns();
        for u in &upns {
            writeln!(w, "{u}").unwrap();
        }
        for i in upns.len()..1_000_000 {
            writeln!(w, "nobody{i:07}@northwind.example").unwrap();
        }
    }
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("mfa-bulk"))
        .current_dir(ctx.dir())
        .envs(ctx.sample_app_env())
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan.csv"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(child.id()) {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{}", stderr_of(&mut child));
    eprintln!("dry-run of 1,000,000 rows: peak {} MB", peak / 1024);
    assert!(peak < 250 * 1024, "peak RSS {peak} KiB");
    // Every row has its result row.
    let lines = std::fs::read_to_string(ctx.path("plan.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 1_000_001);
}
