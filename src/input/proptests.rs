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
        // The line each record starts on (line breaks inside quoted cells count).
        let mut line = 2u64;
        let mut expected = BTreeSet::new();
        for r in &rows {
            w.write_record(r).unwrap();
            if !is_blank_row(r) {
                expected.insert(line);
            }
            line += 1 + r.iter().map(|c| c.matches('\n').count() as u64).sum::<u64>();
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

#[test]
fn reader_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<Reader>();
}
