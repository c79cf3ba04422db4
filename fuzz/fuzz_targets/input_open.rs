//! Bytes → an input file with each extension → `input::open`, every row read and marked, and
//! the same bytes read as an exclusion list. Errors are fine; a panic, a hang or a crash is a
//! bug. The first byte picks the file name (the reader detects the format by content, so a
//! workbook named `.csv` must be handled as well as a CSV named `.xlsx`) and the options.

#![no_main]

use std::collections::HashSet;
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use mfa_bulk::input::{self, Marker, ReadOptions};

const NAMES: [&str; 8] = [
    "users.csv",
    "users.txt",
    "users.tsv",
    "users.xlsx",
    "users.xlsm",
    "users.xls",
    "users.ods",
    "users",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(NAMES[usize::from(sel & 7)]);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("write input");
    let opts = ReadOptions {
        column: match (sel >> 3) & 3 {
            1 => Some("A".into()),
            2 => Some("Email".into()),
            3 => Some("ZZ".into()),
            _ => None,
        },
        encoding: match (sel >> 5) & 3 {
            1 => Some("utf-16le".into()),
            2 => Some("windows-1252".into()),
            _ => None,
        },
        delimiter: if sel & 0x80 != 0 {
            Some(";".into())
        } else {
            None
        },
        sheet: None,
    };
    if let Ok(mut reader) = input::open(&path, &opts) {
        let info = reader.info.clone();
        let mut marker = Marker::for_source(HashSet::new(), &info);
        let mut last = 0u64;
        for raw in &mut reader {
            let Ok(raw) = raw else { break };
            // Row numbers are the spreadsheet's: strictly increasing, never 0.
            assert!(raw.row > last, "row {} after row {last}", raw.row);
            last = raw.row;
            if marker.mark(raw).is_err() {
                break;
            }
        }
    }
    let _ = input::read_exclusions(&path, &ReadOptions::default());
});
