//! Nothing overwritten, nothing followed: every file the tool writes (result CSV and XLSX,
//! run record, notify list, journal) is created without following a symbolic link planted at
//! its name (or at the temporary name older versions used), never replaces a file without
//! `--force`, and the run record and journal are readable by their owner only.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use mfa_bulk::report::{
    create_run_record, create_writer, create_writer_at_free_name, default_output_path,
    read_results, run_record_path, Journal, JournalHeader, Outcome, ReportError, ResultRow,
    RunRecord,
};
use predicates::prelude::*;

use crate::common::TestSim;

const PRECIOUS: &str = "the admin's SSH key, or last week's change ticket";

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

fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim.txt");
    fs::write(&v, PRECIOUS).unwrap();
    v
}

fn assert_untouched(victim: &Path) {
    assert_eq!(
        fs::read_to_string(victim).unwrap(),
        PRECIOUS,
        "victim written"
    );
}

fn is_link(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[cfg(unix)]
#[test]
fn a_link_at_the_old_temporary_name_of_the_run_record_is_not_followed() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = csv_of(d, "u.csv", &["liam.o'connor@northwind.example"]);
    let v = victim(d);
    std::os::unix::fs::symlink(&v, d.join("r.csv.run.json.tmp")).unwrap();
    std::os::unix::fs::symlink(&v, d.join("r.csv.tmp")).unwrap();
    sim.cmd(d)
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "r.csv"])
        .assert()
        .success();
    assert_untouched(&v);
    let record = d.join("r.csv.run.json");
    assert!(!is_link(&record));
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(json["command"], "dry-run");
    assert_eq!(mode(&record), 0o600, "the run record is the owner's only");
    // Nothing left behind but what was there and what the run wrote.
    let mut names: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "r.csv",
            "r.csv.run.json",
            "r.csv.run.json.tmp",
            "r.csv.tmp",
            "u.csv",
            "victim.txt"
        ]
    );
}

#[cfg(unix)]
#[test]
fn a_link_at_the_run_record_is_refused_and_with_force_replaced_not_followed() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = csv_of(d, "u.csv", &["liam.o'connor@northwind.example"]);
    let v = victim(d);
    let record = d.join("r.csv.run.json");
    std::os::unix::fs::symlink(&v, &record).unwrap();
    sim.cmd(d)
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "r.csv"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("r.csv.run.json").and(predicate::str::contains("--force")),
        );
    assert_eq!(
        sim.counters().requests,
        0,
        "refused before any Graph request"
    );
    assert!(!d.join("r.csv").exists(), "no result file either");
    assert_untouched(&v);
    assert!(is_link(&record));

    sim.cmd(d)
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "r.csv", "--force"])
        .assert()
        .success();
    assert_untouched(&v);
    assert!(!is_link(&record), "the link itself is replaced");
    assert!(fs::read_to_string(&record).unwrap().contains("\"dry-run\""));
    assert_eq!(mode(&record), 0o600);
}

#[test]
fn an_existing_run_record_is_refused_without_force_before_any_graph_request() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = csv_of(d, "u.csv", &["liam.o'connor@northwind.example"]);
    fs::write(d.join("r.csv.run.json"), PRECIOUS).unwrap();
    for cmd in [&["dry-run"][..], &["apply", "--yes"]] {
        sim.cmd(d)
            .args(cmd)
            .arg(&input)
            .args(["-o", "r.csv"])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("r.csv.run.json")
                    .and(predicate::str::contains("--force"))
                    .and(predicate::str::contains("-o")),
            );
    }
    let c = sim.counters();
    assert_eq!(
        (c.requests, c.writes),
        (0, 0),
        "refused before any Graph request"
    );
    assert_eq!(sim.state("liam.o'connor@northwind.example"), "disabled");
    assert_eq!(
        fs::read_to_string(d.join("r.csv.run.json")).unwrap(),
        PRECIOUS
    );
    assert!(!d.join("r.csv").exists());
}

#[cfg(unix)]
#[test]
fn a_link_at_the_result_name_is_refused_and_with_force_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let v = victim(d);
    let row = ResultRow::new(2, "a@contoso.com", Outcome::NotFound);
    for name in ["r.csv", "r.xlsx"] {
        let p = d.join(name);
        std::os::unix::fs::symlink(&v, &p).unwrap();
        let err = create_writer(&p, false).err().expect("refused");
        assert!(matches!(err, ReportError::Exists { .. }), "{err}");
        let mut w = create_writer(&p, true).unwrap();
        w.write_row(&row).unwrap();
        w.finish().unwrap();
        assert_untouched(&v);
        assert!(!is_link(&p), "{name}: the link itself is replaced");
        assert_eq!(read_results(&p).unwrap(), vec![row.clone()]);
    }
    // A dangling link is a taken name too (else the tool would create the file it names).
    let p = d.join("d.csv");
    std::os::unix::fs::symlink(d.join("elsewhere.csv"), &p).unwrap();
    assert!(matches!(
        create_writer(&p, false).err(),
        Some(ReportError::Exists { .. })
    ));
    assert!(!d.join("elsewhere.csv").exists());
}

#[cfg(unix)]
#[test]
fn xlsx_checkpoints_never_follow_a_link_at_the_temporary_name() {
    use mfa_bulk::report::xlsx::XlsxWriter;
    use mfa_bulk::report::ResultWriter;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let v = victim(d);
    let p = d.join("r.xlsx");
    std::os::unix::fs::symlink(&v, d.join("r.xlsx.tmp")).unwrap();
    let mut w = XlsxWriter::create(&p, false).unwrap();
    w.set_checkpoint_every(std::time::Duration::ZERO);
    let rows: Vec<ResultRow> = (2..5)
        .map(|n| ResultRow::new(n, format!("u{n}@contoso.com"), Outcome::NotFound))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        w.write_row(r).unwrap();
        assert_eq!(read_results(&p).unwrap(), rows[..=i]);
        // Someone swaps the result for a link between checkpoints: replaced, not followed.
        if i == 0 {
            fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink(&v, &p).unwrap();
        }
    }
    Box::new(w).finish().unwrap();
    assert_untouched(&v);
    assert!(!is_link(&p));
    assert_eq!(read_results(&p).unwrap(), rows);
}

#[cfg(unix)]
#[test]
fn journal_is_the_owners_only_and_never_opened_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let header = JournalHeader {
        input_sha256: "cd".repeat(32),
        tenant_id: "contoso".into(),
        options_key: "state=enabled".into(),
        started_at: t("2026-03-04T05:06:07Z"),
        result_file: None,
    };
    let path = d.join("apply-cdcdcdcd.journal");
    let j = Journal::open(&path, header.clone()).unwrap();
    drop(j);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        Journal::load(&path).unwrap().0,
        header,
        "header on disk at once"
    );

    // A link planted at the journal's name: refused, new or resumed, victim untouched.
    let v = victim(d);
    let linked = d.join("linked.journal");
    std::os::unix::fs::symlink(&v, &linked).unwrap();
    let err = Journal::open(&linked, header.clone()).err().unwrap();
    assert!(matches!(err, ReportError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("linked.journal"));
    let dangling = d.join("dangling.journal");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    assert!(matches!(
        Journal::open(&dangling, header).err(),
        Some(ReportError::Symlink { .. })
    ));
    assert!(!d.join("nowhere").exists());
    assert_untouched(&v);
}

#[test]
fn run_record_is_refused_when_it_exists_unless_force() {
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("r.csv");
    let rec = RunRecord::new("apply", t("2026-03-04T05:06:07Z"));
    let path = create_run_record(&result, &rec, false).unwrap().unwrap();
    assert_eq!(Some(path.clone()), run_record_path(&result));
    let err = create_run_record(&result, &rec, false).unwrap_err();
    assert!(matches!(err, ReportError::Exists { .. }), "{err}");
    let mut again = rec.clone();
    again.exit_code = 1;
    create_run_record(&result, &again, true).unwrap();
    let back: RunRecord = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back.exit_code, 1);
    // No run record beside standard output.
    assert_eq!(run_record_path(Path::new("-")), None);
    assert_eq!(
        create_run_record(Path::new("-"), &rec, false).unwrap(),
        None
    );
}

#[test]
fn default_names_of_two_runs_in_the_same_millisecond_differ() {
    let dir = tempfile::tempdir().unwrap();
    let now = t("2026-03-04T05:06:07.089Z");
    let base = dir
        .path()
        .join(default_output_path(Path::new("users.xlsx"), "dry-run", now));
    assert!(base.ends_with("users-dry-run-20260304-050607-089.csv"));
    let (first, w1) = create_writer_at_free_name(&base).unwrap();
    let (second, w2) = create_writer_at_free_name(&base).unwrap();
    let (third, w3) = create_writer_at_free_name(&base).unwrap();
    assert_eq!(first, base);
    assert_eq!(
        second,
        dir.path().join("users-dry-run-20260304-050607-089-2.csv")
    );
    assert_eq!(
        third,
        dir.path().join("users-dry-run-20260304-050607-089-3.csv")
    );
    for w in [w1, w2, w3] {
        w.finish().unwrap();
    }
    for p in [&first, &second, &third] {
        assert_eq!(read_results(p).unwrap(), vec![]);
    }
}

#[test]
fn unknown_result_extensions_are_refused_before_anything_is_written() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = csv_of(d, "u.csv", &["liam.o'connor@northwind.example"]);
    for name in ["r.xls", "r.ods", "r.txt", "results"] {
        sim.cmd(d)
            .arg("dry-run")
            .arg(&input)
            .args(["-o", name])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(name).and(predicate::str::contains(".csv or .xlsx")));
        assert!(!d.join(name).exists(), "{name} written");
    }
    assert_eq!(sim.counters().requests, 0);
}
