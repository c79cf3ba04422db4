//! Bytes → a result file (`.csv` or `.xlsx` by the first byte) → `report::read_results`, as
//! `apply --plan` and `revert` read it. Errors are fine; a panic or a hang is a bug. A file
//! that reads must read the same twice (no hidden state).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_bulk::report;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let name = if sel & 1 == 0 {
        "result.csv"
    } else {
        "result.xlsx"
    };
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write result file");
    if let Ok(rows) = report::read_results(&path) {
        let again = report::read_results(&path).expect("read twice");
        assert_eq!(rows, again);
    }
});
