//! Property tests of the result-file reader (`apply --plan` and `revert` act on what it reads):
//! whatever the writers write comes back exactly, row for row, in CSV and XLSX; no bytes make
//! the reader panic; a file cut short by a crash reads as the rows it holds, never more.
//! (The input readers have theirs in `src/input/proptests.rs`; `fuzz/` runs the same targets
//! under libFuzzer.)

use std::io::Write;
use std::path::Path;

use mfa_bulk::model::MfaState;
use mfa_bulk::report::{create_writer, read_results, Action, Outcome, ResultRow};
use proptest::prelude::*;

/// A text cell: what a tenant, a spreadsheet or an error message can put there, with the
/// characters that break naive writers (quotes, delimiters, line breaks, formula triggers,
/// control characters, XML escapes, a BOM, emoji).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9.'_$-]{1,12}@[a-z]{1,8}\\.example",
        3 => "\\PC{1,24}",
        2 => "[=+@\\t\\r'-][ -~]{0,16}",
        2 => "[ -~,;\"\\r\\n\\t]{1,24}",
        1 => "[\\x00-\\x1f\\x7f]{1,4}[a-z]{0,4}",
        1 => prop_oneof![
            Just("_x0041_ literal".to_string()),
            Just("\u{feff}bom inside".to_string()),
            Just("  spaces around  ".to_string()),
            Just("'".to_string()),
            Just("''".to_string()),
            Just("=HYPERLINK(\"https://evil.example\",\"Click me\")".to_string()),
            Just("=cmd|' /C calc'!A0".to_string()),
            Just("😀 Jürgen Müller 日本語".to_string()),
            Just("a\r\nb".to_string()),
            Just("1e5".to_string()),
            Just("TRUE".to_string()),
        ],
    ]
}

/// `None` or a non-empty text (an empty cell reads back as `None`).
fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn known_state() -> impl Strategy<Value = MfaState> {
    prop_oneof![
        Just(MfaState::Disabled),
        Just(MfaState::Enabled),
        Just(MfaState::Enforced),
    ]
}

/// A state Graph reported: the three known ones or a newer single word.
fn observed_state() -> impl Strategy<Value = Option<MfaState>> {
    proptest::option::of(prop_oneof![
        4 => known_state(),
        1 => "[a-zA-Z][a-zA-Z0-9_]{0,20}".prop_filter_map("a known state", |s| {
            MfaState::parse(&s).is_none().then_some(MfaState::Other(s.into()))
        }),
    ])
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::None), known_state().prop_map(Action::Set),]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    proptest::sample::select(Outcome::ALL.to_vec())
}

prop_compose! {
    fn result_row()(
        row in 1u64..10_000_000,
        input in prop_oneof![3 => text(), 1 => Just(String::new())],
        upn in opt_text(),
        id in opt_text(),
        name in opt_text(),
        before in observed_state(),
        registered in proptest::option::of(any::<bool>()),
        target in proptest::option::of(known_state()),
        action in action(),
        after in observed_state(),
        outcome in outcome(),
        error in opt_text(),
        request_id in opt_text(),
    ) -> ResultRow {
        ResultRow {
            row,
            input,
            user_principal_name: upn,
            user_id: id,
            display_name: name,
            state_before: before,
            mfa_registered: registered,
            target_state: target,
            action,
            state_after: after,
            outcome,
            error,
            request_id,
        }
    }
}

fn write(path: &Path, rows: &[ResultRow]) {
    let mut w = create_writer(path, false).expect("create");
    for r in rows {
        w.write_row(r).expect("write row");
    }
    w.finish().expect("finish");
}

/// Reads, and turns a panic into a test failure that says which file did it.
fn read_no_panic(path: &Path) -> Result<Vec<ResultRow>, String> {
    let p = path.to_path_buf();
    match std::panic::catch_unwind(move || read_results(&p)) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => panic!(
            "read_results panicked on {:?}",
            std::fs::read(path).unwrap_or_default()
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Writer → reader, CSV and XLSX: every row back, in order, every field exact.
    #[test]
    fn every_row_written_reads_back_exactly(rows in proptest::collection::vec(result_row(), 0..12)) {
        let dir = tempfile::tempdir().unwrap();
        for name in ["r.csv", "r.xlsx"] {
            let path = dir.path().join(name);
            write(&path, &rows);
            let back = read_results(&path).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
            prop_assert_eq!(back.len(), rows.len(), "{}: rows dropped or added", name);
            for (a, b) in back.iter().zip(&rows) {
                prop_assert_eq!(a, b, "{}", name);
            }
        }
    }

    /// A CSV cut anywhere (a crash mid-write, a truncated copy) never panics, and reads as at
    /// most the rows written, each of them exact (a torn last line may be an error or a row
    /// whose cells are a prefix, never an invented row).
    #[test]
    fn a_truncated_csv_reads_as_a_prefix(rows in proptest::collection::vec(result_row(), 1..8), cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full.csv");
        write(&full, &rows);
        let bytes = std::fs::read(&full).unwrap();
        let n = cut.index(bytes.len() + 1);
        let part = dir.path().join("part.csv");
        std::fs::write(&part, &bytes[..n]).unwrap();
        if let Ok(back) = read_no_panic(&part) {
            prop_assert!(back.len() <= rows.len());
            // Every row but the last read is complete and exact.
            if back.len() > 1 {
                for (a, b) in back[..back.len() - 1].iter().zip(&rows) {
                    prop_assert_eq!(a, b);
                }
            }
            if let Some(last) = back.last() {
                prop_assert_eq!(last.row, rows[back.len() - 1].row, "a row number changed");
            }
        }
    }

    /// Arbitrary bytes, and real result files with bytes changed, as CSV and as XLSX: an
    /// error or rows, never a panic.
    #[test]
    fn no_bytes_make_the_result_reader_panic(
        junk in proptest::collection::vec(any::<u8>(), 0..1024),
        rows in proptest::collection::vec(result_row(), 0..4),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for name in ["j.csv", "j.xlsx"] {
            let p = dir.path().join(name);
            std::fs::File::create(&p).unwrap().write_all(&junk).unwrap();
            let _ = read_no_panic(&p);
        }
        for name in ["m.csv", "m.xlsx"] {
            let p = dir.path().join(name);
            write(&p, &rows);
            let mut bytes = std::fs::read(&p).unwrap();
            for (i, b) in &edits {
                let k = i.index(bytes.len());
                bytes[k] = *b;
            }
            std::fs::write(&p, &bytes).unwrap();
            let _ = read_no_panic(&p);
            // And the changed file cut short.
            let n = cut.index(bytes.len() + 1);
            std::fs::write(&p, &bytes[..n]).unwrap();
            let _ = read_no_panic(&p);
        }
    }
}

/// Found by `a_truncated_csv_reads_as_a_prefix`: a result CSV whose last row was torn inside a
/// multi-byte character (a full disk, a crash mid-write) was read as Windows-1252, so every
/// accent in every earlier row came back garbled (and `--plan` then refused the file as "not
/// from this input"). A file that starts with the UTF-8 BOM is UTF-8.
#[test]
fn a_torn_utf8_result_keeps_the_accents_of_the_rows_before() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.csv");
    let mut a = ResultRow::new(2, "jürgen.weiß@northwind.example", Outcome::Changed);
    a.display_name = Some("Jürgen Weiß".into());
    let mut b = ResultRow::new(3, "zoë@northwind.example", Outcome::Failed);
    b.error = Some("Zoë's write failed".into());
    write(&full, &[a.clone(), b]);
    let bytes = std::fs::read(&full).unwrap();
    // Cut inside the "ë" of the error text of the last row.
    let at = bytes
        .windows(2)
        .rposition(|w| w == "ë".as_bytes())
        .expect("ë in the file")
        + 1;
    let part = dir.path().join("part.csv");
    std::fs::write(&part, &bytes[..at]).unwrap();
    let back = read_results(&part).unwrap();
    assert_eq!(back[0], a);
    assert_eq!(back[1].row, 3);
}

/// Found by fuzzing `input_open`: a CSV with classic Mac line endings (a lone CR, as Excel
/// for Mac's "CSV (Macintosh)" writes) gave every row the number 1, so result rows named the
/// wrong spreadsheet row and `apply --plan` could not match its own dry-run.
#[test]
fn classic_mac_line_endings_keep_spreadsheet_row_numbers() {
    let sim = crate::common::TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mac.csv");
    std::fs::write(
        &input,
        "Email\rzoe.lindqvist@northwind.example\r\rliam.o'connor@northwind.example\r",
    )
    .unwrap();
    sim.cmd(dir.path())
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan.csv"])
        .assert()
        .success();
    let rows = crate::common::read_csv(&dir.path().join("plan.csv"));
    let nums: Vec<&str> = rows.iter().map(|r| r["row"].as_str()).collect();
    assert_eq!(nums, ["2", "4"]);
    sim.cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--plan", "plan.csv", "--yes", "-o", "r.csv"])
        .assert()
        .success();
    assert_eq!(sim.state("liam.o'connor@northwind.example"), "enabled");
}
