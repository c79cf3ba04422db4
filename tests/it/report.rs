//! Result files: what the admin attaches to the change ticket, and what `apply --plan` and
//! `revert` read back.

use std::path::Path;

use mfa_bulk::model::MfaState;
use mfa_bulk::report::{
    create_writer, read_results, Action, OrderedWriter, Outcome, ReportError, ResultRow, COLUMNS,
};

const EVIL: &str = "=HYPERLINK(\"https://evil.example\",\"Click me\")";

fn user(row: u64, name: &str, outcome: Outcome) -> ResultRow {
    let mut r = ResultRow::new(row, format!("{name}@contoso.com"), outcome);
    r.user_principal_name = Some(format!("{name}@contoso.com"));
    r.user_id = Some(format!("00000000-0000-0000-0000-{row:012}"));
    r.display_name = Some(name.to_string());
    r.state_before = Some(MfaState::Disabled);
    r.mfa_registered = Some(true);
    r.target_state = Some(MfaState::Enabled);
    r.request_id = Some(format!("req-{row}"));
    r
}

/// One row of each outcome, with the awkward cells a real tenant has.
pub(crate) fn sample_rows() -> Vec<ResultRow> {
    let mut rows = Vec::new();

    let mut r = user(2, "anna.schmidt", Outcome::WouldChange);
    r.display_name = Some("Anna Schmidt".into());
    r.action = Action::Set(MfaState::Enabled);
    rows.push(r);

    let mut r = user(3, "jurgen.muller", Outcome::NoChange);
    r.display_name = Some("Jürgen Müller".into());
    r.state_before = Some(MfaState::Enforced);
    r.state_after = Some(MfaState::Enforced);
    rows.push(r);

    let mut r = user(4, "mallory", Outcome::Changed);
    r.display_name = Some(EVIL.into());
    r.mfa_registered = Some(false);
    r.action = Action::Set(MfaState::Enabled);
    r.state_after = Some(MfaState::Enabled);
    rows.push(r);

    let mut r = user(5, "bob", Outcome::Failed);
    r.display_name = Some("O'Brien, Bob".into());
    r.action = Action::Set(MfaState::Enabled);
    r.error = Some("Graph answered 403 \"Authorization_RequestDenied\"; grant Policy.ReadWrite.AuthenticationMethod".into());
    rows.push(r);

    let mut r = ResultRow::new(6, "ghost@contoso.com", Outcome::NotFound);
    r.target_state = Some(MfaState::Enabled);
    r.error = Some("no user with this sign-in name or mail address".into());
    r.request_id = Some("req-6".into());
    rows.push(r);

    let mut r = ResultRow::new(7, "-not an address", Outcome::Invalid);
    r.error = Some("not an address or an object id".into());
    rows.push(r);

    let mut r = user(8, "anna.schmidt", Outcome::Duplicate);
    r.input = "ANNA.SCHMIDT@contoso.com".into();
    r.error = Some("same user as row 2".into());
    rows.push(r);

    let mut r = user(9, "ceo", Outcome::Excluded);
    r.display_name = Some("'Chief' Executive".into());
    rows.push(r);

    let mut r = user(10, "late", Outcome::Skipped);
    r.mfa_registered = None;
    r.error = Some("not attempted: interrupted (Ctrl-C)".into());
    rows.push(r);

    let mut r = user(11, "drift", Outcome::Drifted);
    r.state_before = Some(MfaState::Other("unknownFutureValue".into()));
    r.target_state = Some(MfaState::Disabled);
    r.action = Action::None;
    r.error = Some("state is unknownFutureValue now, the plan saw disabled; not written".into());
    rows.push(r);

    assert_eq!(rows.len(), Outcome::ALL.len());
    rows
}

fn write_all(path: &Path, rows: &[ResultRow]) {
    let mut w = create_writer(path, false).unwrap();
    for r in rows {
        w.write_row(r).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn csv_result_file_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.csv");
    write_all(&path, &sample_rows());
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM first");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    // CRLF after every record, and no bare LF (no cell here holds a line break).
    assert_eq!(text.matches("\r\n").count(), 1 + sample_rows().len());
    assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
    assert!(text.starts_with(&format!("{}\r\n", COLUMNS.join(","))));
    insta::assert_snapshot!("csv_result_file", text.replace("\r\n", "\n"));
}

#[test]
fn csv_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.csv");
    let mut rows = sample_rows();
    rows[3].error = Some("line one\nline two, with \"quotes\"\r\nand ; semicolons".into());
    rows[4].input = "\t+49 tab-led".into();
    write_all(&path, &rows);
    assert_eq!(read_results(&path).unwrap(), rows);
}

#[test]
fn xlsx_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.xlsx");
    let mut rows = sample_rows();
    rows[3].error = Some("line one\nline two, with \"quotes\"".into());
    write_all(&path, &rows);
    assert_eq!(read_results(&path).unwrap(), rows);
}

#[test]
fn formula_is_escaped_in_csv_and_read_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.csv");
    write_all(&path, &sample_rows());
    let text = std::fs::read_to_string(&path).unwrap();
    // The cell starts with ' (inside the CSV quotes), never with =.
    assert!(
        text.contains(r#","'=HYPERLINK(""https://evil.example"",""Click me"")","#),
        "{text}"
    );
    assert!(!text.contains(r#","=HYPERLINK"#));
    assert!(text.contains(",'-not an address,"));
    assert!(text.contains(",''Chief' Executive,"));
    let back = read_results(&path).unwrap();
    assert_eq!(back[2].display_name.as_deref(), Some(EVIL));
    assert_eq!(back[5].input, "-not an address");
    assert_eq!(back[7].display_name.as_deref(), Some("'Chief' Executive"));
}

#[test]
fn xlsx_has_no_formula_cells_and_escapes_like_csv() {
    use calamine::{Data, Reader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.xlsx");
    write_all(&path, &sample_rows());

    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
    assert_eq!(wb.sheet_names(), vec!["Results".to_string()]);
    let formulas = wb.worksheet_formula("Results").unwrap();
    assert!(
        formulas.used_cells().all(|(_, _, f)| f.is_empty()),
        "no cell may be a formula"
    );
    let range = wb.worksheet_range("Results").unwrap();
    let header: Vec<String> = range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(header, COLUMNS);
    // row 4 of the input is sheet row 4 (header + 2 rows before it); display_name is column E.
    assert_eq!(
        range.get_value((3, 4)),
        Some(&Data::String(format!("'{EVIL}")))
    );
    assert_eq!(range.get_value((3, 0)), Some(&Data::Float(4.0)));
    assert_eq!(
        read_results(&path).unwrap()[2].display_name.as_deref(),
        Some(EVIL)
    );
}

#[test]
fn ordered_writer_keeps_input_order_and_writes_the_done_prefix_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.csv");
    let rows = sample_rows();
    let mut w = OrderedWriter::new(create_writer(&path, false).unwrap(), 0);
    // Completion order during apply: 2, 0, 1, 5, 3, 4, 9, 6, 8, 7.
    let order = [2usize, 0, 1, 5, 3, 4, 9, 6, 8, 7];
    // How many rows the file must hold after each put (the contiguous prefix).
    let expect_in_file = [0usize, 1, 3, 3, 4, 6, 6, 7, 7, 10];
    for (i, &k) in order.iter().enumerate() {
        w.put(k, rows[k].clone()).unwrap();
        let on_disk = read_results(&path).unwrap();
        assert_eq!(
            on_disk,
            rows[..expect_in_file[i]],
            "after putting row index {k}"
        );
        assert_eq!(w.next_index(), expect_in_file[i]);
    }
    assert_eq!(w.pending(), 0);
    w.finish().unwrap();
    assert_eq!(read_results(&path).unwrap(), rows);
}

#[test]
fn ordered_writer_finish_keeps_rows_after_a_gap_and_refuses_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.csv");
    let rows = sample_rows();
    let mut w = OrderedWriter::new(create_writer(&path, false).unwrap(), 10);
    w.put(10, rows[0].clone()).unwrap();
    w.put(12, rows[2].clone()).unwrap();
    w.put(13, rows[3].clone()).unwrap();
    assert!(matches!(
        w.put(10, rows[0].clone()),
        Err(ReportError::OutOfOrder { index: 10 })
    ));
    assert!(matches!(
        w.put(12, rows[2].clone()),
        Err(ReportError::OutOfOrder { index: 12 })
    ));
    assert_eq!(read_results(&path).unwrap(), rows[..1]);
    // Interrupted: index 11 never finished. Every final row still reaches the file, in order.
    w.finish().unwrap();
    assert_eq!(
        read_results(&path).unwrap(),
        vec![rows[0].clone(), rows[2].clone(), rows[3].clone()]
    );
}

#[test]
fn xlsx_is_a_valid_workbook_from_creation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.xlsx");
    let w = create_writer(&path, false).unwrap();
    assert_eq!(read_results(&path).unwrap(), vec![]);
    drop(w); // a crash before finish leaves the header-only workbook, not a broken file
    assert_eq!(read_results(&path).unwrap(), vec![]);
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["old.csv", "old.xlsx"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"last week's ticket attachment").unwrap();
        let err = create_writer(&path, false).err().expect("must refuse");
        assert!(matches!(err, ReportError::Exists { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains(name) && msg.contains("--force") && msg.contains("-o"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"last week's ticket attachment"
        );

        let mut w = create_writer(&path, true).unwrap();
        w.write_row(&sample_rows()[0]).unwrap();
        w.finish().unwrap();
        assert_eq!(read_results(&path).unwrap(), sample_rows()[..1]);
    }
}

#[test]
fn missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("r.csv");
    let msg = create_writer(&path, false).err().unwrap().to_string();
    assert!(
        msg.contains("r.csv") && msg.contains("folder exists"),
        "{msg}"
    );
}

#[test]
fn xlsx_checkpoints_keep_rows_already_written() {
    use mfa_bulk::report::xlsx::XlsxWriter;
    use mfa_bulk::report::ResultWriter;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.xlsx");
    let rows = sample_rows();
    let mut w = XlsxWriter::create(&path, false).unwrap();
    w.set_checkpoint_every(std::time::Duration::ZERO);
    for (i, r) in rows.iter().enumerate() {
        w.write_row(r).unwrap();
        // As if the process died now: the file on disk is a complete workbook with every row.
        assert_eq!(read_results(&path).unwrap(), rows[..=i]);
    }
    assert!(!dir.path().join("result.xlsx.tmp").exists());
    Box::new(w).finish().unwrap();
    assert_eq!(read_results(&path).unwrap(), rows);
}

#[test]
fn odd_characters_survive_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = sample_rows();
    rows[0].display_name = Some("_x0041_ literal, \u{1} ctrl, 😀 emoji, 日本語".into());
    rows[1].error = Some(" leading and trailing spaces ".into());
    rows[2].display_name = Some("\n=1+1".into());
    rows[3].error = Some("\r\n=SUM(A1)\nsecond line".into());
    for name in ["odd.csv", "odd.xlsx"] {
        let path = dir.path().join(name);
        write_all(&path, &rows);
        assert_eq!(read_results(&path).unwrap(), rows, "{name}");
    }
}
