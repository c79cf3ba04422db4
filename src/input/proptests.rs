//! Property tests: no bytes make the reader panic, and no non-blank row is ever dropped.

use std::collections::{BTreeSet, HashSet};
use std::io::Write;

use proptest::prelude::*;

use super::*;

/// Opens, reads and marks everything; errors are fine, panics are not.
fn read_everything(path: &Path, opts: &ReadOptions) -> Result<Vec<InputRow>, InputError> {
    let mut reader = open(path, opts)?;
    let info = reader.info.clone();
    let mut marker = Marker::for_source(HashSet::new(), &info);
    let mut rows = Vec::new();
    for raw in &mut reader {
        rows.push(marker.mark(raw?)?);
    }
    Ok(rows)
}

fn temp_with(bytes: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    (dir, path)
}

/// A cell: mostly addresses and words, sometimes blank, with quotes, delimiters and line breaks.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z]{1,6}@[a-z]{1,5}\\.example",
        2 => "[A-Za-z0-9 ,;|\"'\\t\\n-]{0,10}",
        2 => Just(String::new()),
        1 => Just("  ".to_string()),
        1 => prop_oneof![Just("Enabled"), Just("enforced"), Just("TBC")].prop_map(String::from),
    ]
}

fn is_blank_row(r: &[String]) -> bool {
    r.iter().all(|c| normalize::is_blank(c))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_bytes_make_the_reader_panic(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            // Plausible starts: zip, CFB, BOMs, text.
            (prop_oneof![
                Just(b"PK\x03\x04".to_vec()),
                Just(vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
                Just(vec![0xFF, 0xFE]),
                Just(vec![0xFE, 0xFF]),
                Just(vec![0xEF, 0xBB, 0xBF]),
                Just(b"Email,Name\r\n".to_vec()),
            ], proptest::collection::vec(any::<u8>(), 0..1024))
                .prop_map(|(mut a, b)| { a.extend(b); a }),
        ],
        column in proptest::option::of(prop_oneof![Just("A".to_string()), Just("Email".to_string())]),
    ) {
        let (_dir, path) = temp_with(&bytes, "input.csv");
        let opts = ReadOptions { column, ..ReadOptions::default() };
        let _ = read_everything(&path, &opts);
        let _ = read_exclusions(&path, &ReadOptions::default());
    }

    #[test]
    fn every_non_blank_csv_row_comes_back(
        rows in proptest::collection::vec(proptest::collection::vec(cell(), 1..4), 0..40),
        delim in prop_oneof![Just(b','), Just(b';'), Just(b'\t'), Just(b'|')],
        crlf in any::<bool>(),
    ) {
        let mut w = csv::WriterBuilder::new()
            .delimiter(delim)
            .flexible(true)
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .from_writer(Vec::new());
        w.write_record(["Email", "Name", "MFA Status"]).unwrap();
        // Each record is one row, as Excel shows it (line breaks inside quoted cells do not
        // start a row).
        let mut expected = BTreeSet::new();
        for (i, r) in rows.iter().enumerate() {
            w.write_record(r).unwrap();
            if !is_blank_row(r) {
                expected.insert(2 + i as u64);
            }
        }
        let bytes = w.into_inner().unwrap();
        let (_dir, path) = temp_with(&bytes, "rows.csv");
        let opts = ReadOptions { delimiter: Some((delim as char).to_string()), ..ReadOptions::default() };
        let got = read_everything(&path, &opts).unwrap();
        let got_rows: BTreeSet<u64> = got.iter().map(|r| r.row).collect();
        prop_assert_eq!(got_rows, expected);
        prop_assert_eq!(got.len(), rows.iter().filter(|r| !is_blank_row(r)).count());
        // Each row's user cell is the first cell as written.
        for g in &got {
            let i = rows.iter().enumerate().filter(|(_, r)| !is_blank_row(r)).map(|(i, _)| i)
                .nth(got.iter().position(|x| x.row == g.row).unwrap()).unwrap();
            prop_assert_eq!(&g.input, &rows[i][0]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Row numbers count records and blank lines, as Excel shows a CSV: a quoted cell spanning
    /// lines (LF, CRLF or CR inside it) is one row and does not shift the rows after it.
    #[test]
    fn csv_rows_are_numbered_as_excel_shows_them(
        rows in proptest::collection::vec(
            ("[a-z]{1,6}@[a-z]{1,5}\\.example",
             "[a-z ,;\"]{0,6}(\n|\r\n|\r)?[a-z ,\"]{0,6}(\r\n|\n)?[a-z]{0,3}",
             0usize..3),
            1..30),
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("Email,Note{eol}");
        let mut expected = Vec::new();
        let mut row = 2u64;
        for (mail, note, blanks) in &rows {
            for _ in 0..*blanks {
                text.push_str(eol);
                row += 1;
            }
            text.push_str(&format!("{mail},\"{}\"{eol}", note.replace('"', "\"\"")));
            expected.push((row, mail.clone()));
            row += 1;
        }
        let (_dir, path) = temp_with(text.as_bytes(), "notes.csv");
        let got: Vec<(u64, String)> = read_everything(&path, &ReadOptions::default())
            .unwrap()
            .into_iter()
            .map(|r| (r.row, r.input))
            .collect();
        prop_assert_eq!(got, expected);
    }

    /// With no --delimiter, the delimiter written is the one found, and rows come back whole.
    #[test]
    fn the_delimiter_written_is_the_one_sniffed(
        rows in proptest::collection::vec(
            ("[a-z]{1,6}@[a-z]{1,5}\\.example", "[A-Za-z ,;|'-]{0,12}"), 1..20),
        delim in prop_oneof![Just(b','), Just(b';'), Just(b'\t'), Just(b'|')],
    ) {
        let mut w = csv::WriterBuilder::new().delimiter(delim).from_writer(Vec::new());
        w.write_record(["Name", "Email", "Dept"]).unwrap();
        for (mail, name) in &rows {
            w.write_record([name.as_str(), mail.as_str(), "IT"]).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let (_dir, path) = temp_with(&bytes, "sniff.csv");
        let reader = open(&path, &ReadOptions::default()).unwrap();
        prop_assert_eq!(reader.info.delimiter, Some(delim as char));
        let got: Vec<String> = reader.map(|r| r.unwrap().input).collect();
        let want: Vec<String> = rows.iter().map(|(m, _)| m.clone()).collect();
        prop_assert_eq!(got, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_non_blank_xlsx_row_comes_back(
        rows in proptest::collection::vec(proptest::collection::vec(cell(), 1..4), 0..30),
        title_rows in 0u32..3,
    ) {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for t in 0..title_rows {
            ws.write_string(t, 0, "Report title").unwrap();
        }
        let header = title_rows;
        for (c, h) in ["Email", "Name", "MFA Status"].iter().enumerate() {
            ws.write_string(header, c as u16, *h).unwrap();
        }
        let mut expected = BTreeSet::new();
        for (i, r) in rows.iter().enumerate() {
            let n = header + 1 + i as u32;
            for (c, v) in r.iter().enumerate() {
                if !v.is_empty() {
                    ws.write_string(n, c as u16, v).unwrap();
                }
            }
            if !is_blank_row(r) {
                expected.insert(n as u64 + 1);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.xlsx");
        wb.save(&path).unwrap();
        let got = read_everything(&path, &ReadOptions::default()).unwrap();
        let got_rows: BTreeSet<u64> = got.iter().map(|r| r.row).collect();
        prop_assert_eq!(got_rows, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// A damaged workbook (flipped bytes anywhere) is an error or still read, never a crash.
    #[test]
    fn damaged_workbooks_do_not_crash(
        which in prop_oneof![Just("hr-new-starters.xlsx"), Just("libreoffice-export.ods"), Just("libreoffice-export.xls")],
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut bytes = std::fs::read(root.join("tests/fixtures").join(which)).unwrap();
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] ^= b | 1;
        }
        let (_dir, path) = temp_with(&bytes, which);
        let _ = read_everything(&path, &ReadOptions::default());
    }
}

#[test]
fn reader_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<Reader>();
}

fn raw(row: u64, input: &str, state: Option<&str>) -> RawRow {
    RawRow {
        row,
        input: input.into(),
        state: state.map(String::from),
    }
}

#[test]
fn marker_precedence_excluded_then_invalid_state_then_duplicate() {
    let excluded: HashSet<String> = ["bg@x.example".to_string()].into();
    let mut m = Marker::new(excluded);
    let a = crate::model::UserRef::Address("a@x.example".into());
    assert_eq!(
        m.mark(raw(2, "A@x.example", Some("Enforced"))).unwrap(),
        InputRow {
            row: 2,
            input: "A@x.example".into(),
            state: Some(MfaState::Enforced),
            status: RowStatus::Ok(a.clone()),
        }
    );
    assert_eq!(
        m.mark(raw(3, " a@x.example ", None)).unwrap().status,
        RowStatus::Duplicate {
            first_row: 2,
            user: a
        }
    );
    // Excluded wins over duplicate and over a bad state.
    let bg = crate::model::UserRef::Address("bg@x.example".into());
    for r in [
        raw(4, "bg@x.example", None),
        raw(5, "BG@x.example", Some("Maybe")),
    ] {
        assert_eq!(
            m.mark(r).unwrap().status,
            RowStatus::Excluded { user: bg.clone() }
        );
    }
    match m.mark(raw(6, "c@x.example", Some("on"))).unwrap().status {
        RowStatus::Invalid { reason } => {
            assert!(reason.contains("unknown MFA state 'on'"), "{reason}")
        }
        s => panic!("{s:?}"),
    }
    // A row with a bad state is not remembered as the first occurrence.
    assert!(matches!(
        m.mark(raw(7, "c@x.example", None)).unwrap().status,
        RowStatus::Ok(_)
    ));
    match m.mark(raw(8, "", Some("Enabled"))).unwrap().status {
        RowStatus::Invalid { reason } => assert_eq!(reason, "no user in the user column"),
        s => panic!("{s:?}"),
    }
}

#[test]
fn read_all_marks_the_sample_as_the_spec_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (info, rows, _) = read_all(
        &root.join("samples/new-starters.xlsx"),
        &ReadOptions::default(),
        Some(&root.join("samples/exclusions.csv")),
    )
    .unwrap();
    assert_eq!(info.sheet.as_deref(), Some("New starters"));
    assert_eq!(
        (info.column.as_str(), info.column_letter.as_str()),
        ("Work email", "D")
    );
    assert_eq!(info.header_row, Some(4));
    assert_eq!(rows.len(), 15);
    assert_eq!(rows.first().map(|r| r.row), Some(5));
    assert_eq!(rows.last().map(|r| r.row), Some(19));
    assert!(matches!(
        rows[11].status,
        RowStatus::Duplicate { first_row: 5, .. }
    ));
    assert!(matches!(rows[13].status, RowStatus::Invalid { .. }));
    assert!(matches!(rows[14].status, RowStatus::Excluded { .. }));
    assert_eq!(rows[1].input, "MATHEO.DURAND@NORTHWIND.EXAMPLE");

    let (_, rows, _) = read_all(
        &root.join("samples/legacy-portal-bulk.csv"),
        &ReadOptions::default(),
        None,
    )
    .unwrap();
    let states: Vec<_> = rows.iter().map(|r| r.state.clone()).collect();
    assert_eq!(
        states,
        [
            Some(MfaState::Enabled),
            Some(MfaState::Enforced),
            Some(MfaState::Enforced),
            Some(MfaState::Disabled),
            Some(MfaState::Enabled)
        ]
    );
}
