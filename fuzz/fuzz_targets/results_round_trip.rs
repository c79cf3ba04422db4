//! Arbitrary result rows → the CSV and XLSX writers → `report::read_results`: every row comes
//! back exactly as written (the formula escaping is undone, nothing dropped or reordered).
//! Text cells are made of what mfa-bulk can put there; states, actions and outcomes are the
//! real ones.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mfa_bulk::model::MfaState;
use mfa_bulk::report::{self, Action, Outcome, ResultRow};

fn text(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<String>> {
    let s: Option<String> = u.arbitrary()?;
    // Excel keeps at most 32,767 characters a cell; the writer cuts longer ones on purpose.
    Ok(s.map(|s| s.chars().take(1000).collect()))
}

fn state(u: &mut Unstructured<'_>, other: bool) -> arbitrary::Result<Option<MfaState>> {
    Ok(match u.int_in_range(0..=4)? {
        0 => None,
        1 => Some(MfaState::Enabled),
        2 => Some(MfaState::Enforced),
        3 => Some(MfaState::Disabled),
        _ if other => Some(MfaState::Other("unknownFutureValue".into())),
        _ => None,
    })
}

fn row(u: &mut Unstructured<'_>, n: u64) -> arbitrary::Result<ResultRow> {
    let mut r = ResultRow::new(n, String::new(), *u.choose(&Outcome::ALL)?);
    // `input` is never blank in a real file (blank rows are not rows).
    r.input = text(u)?
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "x".into());
    r.user_principal_name = text(u)?.filter(|s| !s.is_empty());
    r.user_id = text(u)?.filter(|s| !s.is_empty());
    r.display_name = text(u)?.filter(|s| !s.is_empty());
    r.state_before = state(u, true)?;
    r.mfa_registered = u.arbitrary()?;
    r.target_state = state(u, false)?;
    r.action = match u.int_in_range(0..=3)? {
        0 => Action::None,
        1 => Action::Set(MfaState::Enabled),
        2 => Action::Set(MfaState::Enforced),
        _ => Action::Set(MfaState::Disabled),
    };
    r.state_after = state(u, true)?;
    r.error = text(u)?.filter(|s| !s.is_empty());
    r.request_id = text(u)?.filter(|s| !s.is_empty());
    Ok(r)
}

#[derive(Debug)]
struct Rows(Vec<ResultRow>);

impl<'a> Arbitrary<'a> for Rows {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0..=20)?;
        let mut rows = Vec::new();
        for i in 0..n {
            rows.push(row(u, 2 + i)?);
        }
        Ok(Rows(rows))
    }
}

fuzz_target!(|rows: Rows| {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["r.csv", "r.xlsx"] {
        let path = dir.path().join(name);
        let mut w = report::create_writer(&path, false).expect("create");
        for r in &rows.0 {
            w.write_row(r).expect("write");
        }
        w.finish().expect("finish");
        let back = report::read_results(&path).expect("read back what we wrote");
        assert_eq!(back, rows.0, "{name}");
    }
});
