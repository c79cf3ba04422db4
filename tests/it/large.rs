//! Large inputs: a 1,000,000-row CSV is read as a stream (`validate`, measured from outside
//! through `/proc/<pid>/status`), and a 100,000-user tenant is applied end to end against the
//! simulator with every row checked. Behaviour only: nothing here is timed.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mfa_bulk::sim::SimConfig;

use crate::common::{bin_process, scratch, TestContext};
use crate::reliability::{
    assert_all_at_least_enabled, check_apply_truth, generated, snapshot, FAST,
};

const ROWS: u64 = 1_000_000;
/// Distinct users in the file (every one appears ten times, as in a list concatenated from
/// many exports): a large tenant's worth.
const DISTINCT: u64 = 100_000;
/// Peak resident memory allowed for `validate` of the million rows. The file is ~55 MB; what
/// may grow is only the duplicate check, one key per distinct user (~150 bytes each, some
/// 15 MB here), and about 20 MB is what a debug build uses. A reader that kept the file, or the
/// rows, would pass 64 MB.
const CEILING_KB: u64 = 64 * 1024;

/// `Email` column, a million rows cycling over [`DISTINCT`] users; row 50,001 is not an
/// address, row 777,778 is blank (skipped, counted), the last row repeats the first user in
/// capitals.
fn million_row_csv(path: &Path) {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    w.write_all(b"Email,Display name,Department\r\n").unwrap();
    for i in 0..ROWS {
        let excel_row = i + 2;
        match excel_row {
            50_001 => w.write_all(b"not an address,Nobody,Sales\r\n").unwrap(),
            777_778 => w.write_all(b",,\r\n").unwrap(),
            r if r == ROWS + 1 => w
                .write_all(b"USER0.LASTNAME@NORTHWIND.EXAMPLE,Again,Sales\r\n")
                .unwrap(),
            _ => writeln!(
                w,
                "user{}.lastname@northwind.example,User {i},Sales\r",
                i % DISTINCT
            )
            .unwrap(),
        }
    }
    w.flush().unwrap();
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_million_rows_are_streamed_in_flat_memory_and_every_row_is_counted() {
    let dir = scratch();
    let path = dir.path().join("million.csv");
    million_row_csv(&path);
    let mut child = bin_process(dir.path())
        .args(["validate", "--json"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Read stdout on a thread so the child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let mut peak = 0;
    let mut samples = 0;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
            samples += 1;
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.join().unwrap();
    assert!(samples > 3, "the process was never measured");
    assert_eq!(
        status.code(),
        Some(1),
        "one invalid row, one duplicate: {out}"
    );
    assert!(
        peak < CEILING_KB,
        "validate of {ROWS} rows peaked at {} MB",
        peak / 1024
    );
    eprintln!("validate of {ROWS} rows: peak {} MB", peak / 1024);

    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Every row accounted for: each distinct user once, everything else a duplicate, the
    // invalid row and the blank row.
    let c = &v["counts"];
    assert_eq!(c["rows"], ROWS - 1, "{c}");
    assert_eq!(c["users"], DISTINCT, "{c}");
    assert_eq!(c["invalid"], 1, "{c}");
    assert_eq!(c["duplicate"], ROWS - 1 - DISTINCT - 1, "{c}");
    assert_eq!(c["blank_rows_skipped"], 1, "{c}");
    assert_eq!(v["blank_rows"], serde_json::json!([777_778]));
    let first_problem = &v["problems"][0];
    assert_eq!(first_problem["row"], 50_001, "{first_problem}");
    assert_eq!(first_problem["input"], "not an address", "{first_problem}");
}

#[test]
fn a_hundred_thousand_users_applied_end_to_end() {
    const N: usize = 100_000;
    let t0 = std::time::Instant::now();
    let mut cfg: SimConfig = generated(N, 31, 1.0);
    // Graph's limits would make this a 90-minute run; the subject here is correctness at
    // scale (every row, every user), so the simulator's budgets are lifted.
    cfg.limits.ru_per_10s = Some(100_000_000);
    cfg.limits.writes_per_150s = 100_000_000;
    cfg.limits.tenant_writes_per_300s = 100_000_000;
    let ctx = TestContext::in_memory(cfg);
    let before = snapshot(&ctx);
    let inputs = ctx.upns();
    let input = ctx.input("everyone.csv", &inputs);
    eprintln!("set up in {:?}", t0.elapsed());
    let o = ctx
        .apply(&input)
        .args(["--yes", "--json", "-o", "r.csv", "--concurrency", "8"])
        .args(FAST)
        .timeout(Duration::from_secs(900))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("applied in {:?}", t0.elapsed());
    let after = snapshot(&ctx);
    let counters = ctx.counters();
    let rows = ctx.rows("r.csv");
    let counts = check_apply_truth(&before, &after, &inputs, &rows, &counters.writes_per_user);
    eprintln!("checked in {:?}", t0.elapsed());
    assert_all_at_least_enabled(&after);
    let to_change = before
        .values()
        .filter(|u| u.per_user_mfa_state == "disabled")
        .count();
    assert_eq!(counts.get("changed").copied().unwrap_or(0), to_change);
    assert_eq!(counters.writes as usize, to_change, "one write per change");
    assert_eq!(counts.get("no-change").copied().unwrap_or(0), N - to_change);
}
