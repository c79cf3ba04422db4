//! Formula injection: no cell of any result file (CSV or XLSX; dry-run, apply, revert) is ever
//! a formula to a spreadsheet, whatever the input values, the tenant's display names and
//! addresses, or the error texts hold. CSV: a cell that would start with `=`, `+`, `-`, `@`,
//! tab, CR or LF starts with `'` instead. XLSX: no formula cells at all, and the same escaping in
//! the strings. And the escaping is undone on reading: `--plan` and `revert` still work on
//! users whose addresses start with such a character.

use std::path::Path;

use calamine::{Data, Reader};
use mfa_bulk::model::MfaState;
use mfa_bulk::report::{create_writer, read_results, Action, Outcome, ResultRow};
use mfa_bulk::sim::{SimConfig, UserSeed};
use proptest::prelude::*;

use crate::common::TestSim;

const TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\n'];

fn dangerous(cell: &str) -> bool {
    cell.starts_with(TRIGGERS)
}

/// Every cell of a CSV result file as a spreadsheet would split it; none is dangerous.
fn assert_csv_safe(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut n = 0;
    for rec in rdr.records() {
        for cell in rec.unwrap().iter() {
            assert!(
                !dangerous(cell),
                "{}: a spreadsheet would run {cell:?}",
                path.display()
            );
            n += 1;
        }
    }
    n
}

/// No formula in the workbook, and no string cell a spreadsheet would take for one if the
/// sheet were saved as CSV or pasted.
fn assert_xlsx_safe(path: &Path) -> usize {
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let mut n = 0;
    for name in wb.sheet_names() {
        let formulas = wb.worksheet_formula(&name).unwrap();
        assert!(
            formulas.used_cells().all(|(_, _, f)| f.is_empty()),
            "{}: a formula cell in sheet {name}",
            path.display()
        );
        let range = wb.worksheet_range(&name).unwrap();
        for (_, _, d) in range.used_cells() {
            match d {
                Data::String(s) => assert!(!dangerous(s), "{}: {s:?}", path.display()),
                Data::Float(_) | Data::Int(_) => {}
                other => panic!("{}: unexpected cell {other:?}", path.display()),
            }
            n += 1;
        }
    }
    n
}

/// Any text, with a bias to what spreadsheets run.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[=+@\\t\\r'-]{1,3}[ -~]{0,12}",
        2 => "\\PC{0,16}",
        1 => "[ \\t\\r\\n]{0,2}[=+@-][A-Z(]{0,6}",
    ]
}

fn opt() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text().prop_filter("non-empty", |s| !s.is_empty()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever text reaches a result row, no written cell is dangerous, and it reads back.
    #[test]
    fn no_cell_written_is_a_formula(
        cells in proptest::collection::vec((text(), opt(), opt(), opt(), opt()), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<ResultRow> = cells
            .into_iter()
            .enumerate()
            .map(|(i, (input, upn, name, error, req))| {
                let mut r = ResultRow::new(i as u64 + 2, input, Outcome::Failed);
                r.user_principal_name = upn;
                r.display_name = name;
                r.error = error;
                r.request_id = req;
                r.target_state = Some(MfaState::Enabled);
                r.action = Action::Set(MfaState::Enabled);
                r
            })
            .collect();
        for name in ["r.csv", "r.xlsx"] {
            let path = dir.path().join(name);
            let mut w = create_writer(&path, false).unwrap();
            for r in &rows {
                w.write_row(r).unwrap();
            }
            w.finish().unwrap();
            if name.ends_with(".csv") {
                assert_csv_safe(&path);
            } else {
                assert_xlsx_safe(&path);
            }
            prop_assert_eq!(&read_results(&path).unwrap(), &rows);
        }
    }
}

fn user(id: u32, upn: &str, display: &str) -> UserSeed {
    UserSeed {
        id: format!("0000feed-0000-4000-8000-{id:012}"),
        user_principal_name: upn.into(),
        display_name: display.into(),
        given_name: None,
        surname: None,
        mail: Some(upn.into()),
        other_mails: vec![],
        proxy_addresses: vec![format!("SMTP:{upn}")],
        user_type: "Member".into(),
        account_enabled: true,
        per_user_mfa_state: "disabled".into(),
        methods: vec![],
        extra: Default::default(),
    }
}

/// The sample tenant plus users whose names and addresses are what an attacker who can set
/// their own display name (or an unlucky naming scheme) puts in a tenant.
fn hostile_tenant() -> SimConfig {
    let mut cfg = SimConfig::sample();
    cfg.tenant.users.extend([
        user(1, "-dash.user@northwind.example", "-2+3"),
        user(
            2,
            "+plus.user@northwind.example",
            "@SUM(1+1)*cmd|' /C calc'!A0",
        ),
        user(3, "tab.user@northwind.example", "\t=1+1"),
        user(4, "cr.user@northwind.example", "\r=1+1"),
        user(7, "lf.user@northwind.example", "\n=1+1"),
        user(5, "quote.user@northwind.example", "'=already quoted"),
        user(
            6,
            "plain.user@northwind.example",
            "=WEBSERVICE(\"https://evil.example\")",
        ),
    ]);
    cfg
}

/// The first `USERS` of [`HOSTILE_INPUTS`] are users of [`hostile_tenant`].
const USERS: usize = 8;

const HOSTILE_INPUTS: &[&str] = &[
    "-dash.user@northwind.example",
    "+plus.user@northwind.example",
    "tab.user@northwind.example",
    "cr.user@northwind.example",
    "lf.user@northwind.example",
    "quote.user@northwind.example",
    "plain.user@northwind.example",
    "hyper.link@northwind.example",
    "=cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "+33 6 12 34 56 78",
    "-",
    "=HYPERLINK(\"https://evil.example\",\"-dash.user@northwind.example\")",
];

#[test]
fn no_result_file_of_any_command_holds_a_formula() {
    let sim = TestSim::with(hostile_tenant());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("users.csv");
    let mut w = csv::Writer::from_path(&input).unwrap();
    w.write_record(["UserPrincipalName"]).unwrap();
    for v in HOSTILE_INPUTS {
        w.write_record([v]).unwrap();
    }
    w.flush().unwrap();

    sim.cmd(d)
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan.csv"])
        .assert()
        .code(1);
    sim.cmd(d)
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan.xlsx"])
        .assert()
        .code(1);
    // The plan's escaped cells are read back exactly: apply --plan recognises every row.
    sim.cmd(d)
        .arg("apply")
        .arg(&input)
        .args(["--plan", "plan.csv", "--yes", "-o", "applied.xlsx"])
        .assert()
        .code(1);
    for upn in &HOSTILE_INPUTS[..USERS] {
        assert_eq!(
            sim.state(upn),
            "enabled",
            "{upn} not changed through the plan"
        );
    }
    // And revert reads the escaped workbook back and finds every user.
    sim.cmd(d)
        .args(["revert", "applied.xlsx", "--yes", "-o", "reverted.csv"])
        .assert()
        .success();
    for upn in &HOSTILE_INPUTS[..USERS] {
        assert_eq!(sim.state(upn), "disabled", "{upn} not reverted");
    }
    sim.cmd(d)
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", "applied.csv"])
        .assert()
        .code(1);

    let mut cells = 0;
    for f in ["plan.csv", "reverted.csv", "applied.csv"] {
        cells += assert_csv_safe(&d.join(f));
    }
    for f in ["plan.xlsx", "applied.xlsx"] {
        cells += assert_xlsx_safe(&d.join(f));
    }
    assert!(cells > 300, "only {cells} cells checked");

    // The dangerous values are there, escaped, and read back as they were.
    let rows = read_results(&d.join("applied.csv")).unwrap();
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.display_name.as_deref())
        .collect();
    for n in ["-2+3", "\t=1+1", "\r=1+1", "\n=1+1", "'=already quoted"] {
        assert!(names.contains(&n), "{n:?} not read back: {names:?}");
    }
    let raw = std::fs::read_to_string(d.join("applied.csv")).unwrap();
    assert!(raw.contains(",'-dash.user@northwind.example,"), "{raw}");
    assert!(raw.contains(",''=already quoted,"), "{raw}");
    assert!(
        raw.contains(",\"'\n=1+1\","),
        "a leading line feed is escaped: {raw}"
    );
    // Error texts of invalid rows are cells too.
    assert!(
        rows.iter()
            .any(|r| r.input == "=cmd|' /C calc'!A0" && r.error.is_some()),
        "{rows:#?}"
    );
}
