//! `mfa-bulk validate` on the files admins really bring (tests/fixtures, samples/) and on the
//! broken ones: the users found, their spreadsheet row numbers, the problems, the exit codes.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

const SEVEN: [&str; 7] = [
    "zoe.lindqvist@northwind.example",
    "matheo.durand@northwind.example",
    "agot.sorensen@northwind.example",
    "liam.o'connor@northwind.example",
    "priya.raman@northwind.example",
    "hyper.link@northwind.example",
    "juergen.weiss@northwind.example",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

fn sample(name: &str) -> PathBuf {
    root().join("samples").join(name)
}

fn mfa() -> Command {
    Command::cargo_bin("mfa-bulk").unwrap()
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn validate(file: &Path, args: &[&str]) -> Out {
    let out = mfa().arg("validate").arg(file).args(args).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn validate_json(file: &Path, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = validate(file, &a);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    (out.code, v)
}

/// (row, normalised user) of every user listed.
fn users(v: &Value) -> Vec<(u64, String)> {
    v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["row"].as_u64().unwrap(),
                u["user"]["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn seven_at(rows: &[u64]) -> Vec<(u64, String)> {
    rows.iter()
        .zip(SEVEN)
        .map(|(r, u)| (*r, u.to_string()))
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// (file, extra args, rows of the seven, header row, user column, letter, format)
type Case = (
    &'static str,
    &'static [&'static str],
    [u64; 7],
    u64,
    &'static str,
    &'static str,
    &'static str,
);

#[test]
fn every_fixture_lists_the_seven_users_at_their_spreadsheet_rows() {
    let cases: &[Case] = &[
        (
            "hr-new-starters.xlsx",
            &[],
            [5, 6, 7, 9, 10, 11, 12],
            4,
            "Work E-mail",
            "C",
            "XLSX",
        ),
        (
            "legacy-portal-bulk.csv",
            &[],
            [2, 3, 4, 5, 6, 7, 8],
            1,
            "Username",
            "A",
            "CSV",
        ),
        (
            "entra-bulk-template.csv",
            &[],
            [3, 4, 5, 6, 7, 8, 9],
            2,
            "User name [userPrincipalName] Required",
            "A",
            "CSV",
        ),
        (
            "excel-semicolon-cp1252.csv",
            &[],
            [2, 3, 4, 5, 6, 7, 8],
            1,
            "E-Mail-Adresse",
            "C",
            "CSV",
        ),
        (
            "excel-unicode-text.txt",
            &[],
            [2, 3, 4, 5, 6, 7, 8],
            1,
            "E-Mail-Adresse",
            "C",
            "TXT",
        ),
        (
            "libreoffice-export.ods",
            &[],
            [2, 3, 4, 5, 6, 7, 8],
            1,
            "Email",
            "A",
            "ODS",
        ),
        (
            "libreoffice-export.xls",
            &[],
            [2, 3, 4, 5, 6, 7, 8],
            1,
            "Email",
            "A",
            "XLS",
        ),
        (
            "libreoffice-export.xlsx",
            &[],
            [2, 3, 4, 5, 6, 7, 8],
            1,
            "Email",
            "A",
            "XLSX",
        ),
    ];
    for (file, args, rows, header, column, letter, format) in cases {
        let (code, v) = validate_json(&fixture(file), args);
        assert_eq!(code, 0, "{file}: {v}");
        assert_eq!(users(&v), seven_at(rows), "{file}");
        assert_eq!(v["source"]["header_row"], *header, "{file}");
        assert_eq!(v["source"]["column"], *column, "{file}");
        assert_eq!(v["source"]["column_letter"], *letter, "{file}");
        assert_eq!(v["source"]["format"], *format, "{file}");
        assert_eq!(v["counts"]["invalid"], 0, "{file}");
    }
}

#[test]
fn hr_export_skips_title_rows_and_counts_the_blank_hidden_row() {
    let out = validate(&fixture("hr-new-starters.xlsx"), &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Header row:    4"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\"Work E-mail\" (column C)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Sheet:         \"New starters\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Blank rows:    1 skipped (row 8)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("row 9      liam.o'connor@northwind.example"),
        "{}",
        out.stdout
    );

    let (_, v) = validate_json(&fixture("hr-new-starters.xlsx"), &[]);
    assert_eq!(v["counts"]["blank_rows_skipped"], 1);
    assert_eq!(v["blank_rows"], serde_json::json!([8]));
    assert_eq!(v["counts"]["rows"], 7);
    // Row 8 is hidden and blank: no data row is hidden.
    assert_eq!(v["hidden_rows"], serde_json::json!([]));
    let (_, v) = validate_json(&fixture("libreoffice-export.ods"), &[]);
    assert!(v["hidden_rows"].is_null());
}

#[test]
fn the_leavers_sheet_by_name() {
    let (code, v) = validate_json(&fixture("hr-new-starters.xlsx"), &["--sheet", "Leavers"]);
    assert_eq!(code, 0);
    assert_eq!(v["source"]["sheet"], "Leavers");
    assert_eq!(v["source"]["column"], "UPN");
    assert_eq!(v["source"]["header_row"], 1);
    let u = users(&v);
    assert!(!u.is_empty());
    assert!(u.iter().all(|(r, _)| *r >= 2));
}

#[test]
fn unknown_sheet_lists_the_sheets() {
    let out = validate(&fixture("hr-new-starters.xlsx"), &["--sheet", "Joiners"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("hr-new-starters.xlsx"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no sheet named \"Joiners\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("\"New starters\", \"Leavers\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--sheet"), "{}", out.stderr);
}

#[test]
fn legacy_portal_file_keeps_each_rows_state() {
    let (_, v) = validate_json(&fixture("legacy-portal-bulk.csv"), &[]);
    assert_eq!(v["source"]["state_column"], "MFA Status");
    let states: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["enabled", "enforced", "disabled", "enabled", "enabled", "enabled", "enforced"]
    );
}

#[test]
fn an_unknown_state_word_makes_the_row_invalid_never_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "bulk.csv",
        b"Username,MFA Status\r\na@x.example,Enabled\r\nb@x.example,Maybe\r\nc@x.example,\r\n",
    );
    let (code, v) = validate_json(&p, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        users(&v),
        vec![(2, "a@x.example".into()), (4, "c@x.example".into())]
    );
    let p0 = &v["problems"][0];
    assert_eq!(p0["row"], 3);
    assert_eq!(p0["problem"], "invalid");
    let reason = p0["reason"].as_str().unwrap();
    assert!(
        reason.contains("'Maybe'") && reason.contains("MFA Status"),
        "{reason}"
    );
    assert!(v["users"][1]["state"].is_null());
}

#[test]
fn entra_template_skips_its_version_line() {
    let out = validate(&fixture("entra-bulk-template.csv"), &[]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Header row:    2"), "{}", out.stdout);
    assert!(!out.stdout.contains("version"), "{}", out.stdout);
}

#[test]
fn cp1252_csv_is_decoded_with_its_umlauts() {
    let (_, v) = validate_json(&fixture("excel-semicolon-cp1252.csv"), &[]);
    assert_eq!(v["source"]["encoding"], "windows-1252");
    assert_eq!(v["source"]["delimiter"], ";");
    // The Name column, read as the user column, shows the decoded names in its reasons.
    let (_, v) = validate_json(
        &fixture("excel-semicolon-cp1252.csv"),
        &["--column", "Name"],
    );
    let reasons: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("'Zoë Lindqvist'")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("'Ågot Sørensen'")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("'Jürgen Weiß'")),
        "{reasons:?}"
    );
}

#[test]
fn excel_unicode_text_is_utf16_with_tabs() {
    let (_, v) = validate_json(&fixture("excel-unicode-text.txt"), &[]);
    assert_eq!(v["source"]["encoding"], "UTF-16LE with BOM");
    assert_eq!(v["source"]["delimiter"], "\t");
}

#[test]
fn utf16_big_endian_and_forced_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Email\r\nzoë@x.example\r\nb@x.example\r\n";
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    let p = write(&dir, "be.txt", &be);
    let (_, v) = validate_json(&p, &[]);
    assert_eq!(v["source"]["encoding"], "UTF-16BE with BOM");
    assert_eq!(
        users(&v),
        vec![(2, "zoë@x.example".into()), (3, "b@x.example".into())]
    );

    // Latin-1 bytes that are also valid UTF-8 by accident: --encoding decides.
    let p = write(&dir, "l1.csv", b"Email;Name\nj@x.example;J\xc3\xbcrgen\n");
    let (_, v) = validate_json(&p, &["--encoding", "windows-1252", "--column", "Name"]);
    assert_eq!(v["source"]["encoding"], "windows-1252");
    assert!(v["problems"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("JÃ¼rgen"));

    let out = validate(&p, &["--encoding", "klingon"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown encoding 'klingon'"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("utf-8"), "{}", out.stderr);
}

#[test]
fn delimiters_are_sniffed_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    for (d, name) in [
        (",", "c.csv"),
        (";", "s.csv"),
        ("\t", "t.tsv"),
        ("|", "p.txt"),
    ] {
        let body = format!(
            "Name{d}Email{d}Dept\n\"Lee{d} Sam\"{d}sam@x.example{d}IT\nZoe{d}zoe@x.example{d}HR\n"
        );
        let p = write(&dir, name, body.as_bytes());
        let (code, v) = validate_json(&p, &[]);
        assert_eq!(code, 0, "{d:?}: {v}");
        assert_eq!(v["source"]["delimiter"], d, "{d:?}");
        assert_eq!(
            users(&v),
            vec![(2, "sam@x.example".into()), (3, "zoe@x.example".into())]
        );
    }
    let p = write(&dir, "forced.csv", b"Email\tName\na@x.example\tA, B; C\n");
    let (_, v) = validate_json(&p, &["--delimiter", "tab"]);
    assert_eq!(v["source"]["delimiter"], "\t");
    assert_eq!(users(&v), vec![(2, "a@x.example".into())]);
    let (_, v) = validate_json(&p, &["--delimiter", "\\t"]);
    assert_eq!(v["source"]["delimiter"], "\t");
    let out = validate(&p, &["--delimiter", "ab"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--delimiter tab"), "{}", out.stderr);
}

#[test]
fn content_decides_the_format_not_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let csv = std::fs::read(fixture("legacy-portal-bulk.csv")).unwrap();
    let p = write(&dir, "users.xlsx", &csv);
    let (code, v) = validate_json(&p, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["source"]["format"], "CSV");
    assert_eq!(users(&v), seven_at(&[2, 3, 4, 5, 6, 7, 8]));

    let xlsx = std::fs::read(fixture("libreoffice-export.xlsx")).unwrap();
    let p = write(&dir, "export.csv", &xlsx);
    let (_, v) = validate_json(&p, &[]);
    assert_eq!(v["source"]["format"], "XLSX");
    assert_eq!(users(&v).len(), 7);

    let ods = std::fs::read(fixture("libreoffice-export.ods")).unwrap();
    let p = write(&dir, "noext", &ods);
    let (_, v) = validate_json(&p, &[]);
    assert_eq!(v["source"]["format"], "ODS");

    let xls = std::fs::read(fixture("libreoffice-export.xls")).unwrap();
    let p = write(&dir, "old.xlsx", &xls);
    let (_, v) = validate_json(&p, &[]);
    assert_eq!(v["source"]["format"], "XLS");
    assert_eq!(users(&v).len(), 7);
}

#[test]
fn a_headerless_list_starts_at_row_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "list.txt", b"zoe@x.example\nLiam@X.example\n\nTBC\n");
    let (code, v) = validate_json(&p, &[]);
    assert_eq!(code, 1);
    assert!(v["source"]["header_row"].is_null());
    assert_eq!(v["source"]["column"], "A");
    assert_eq!(
        users(&v),
        vec![(1, "zoe@x.example".into()), (2, "liam@x.example".into())]
    );
    assert_eq!(v["blank_rows"], serde_json::json!([3]));
    assert_eq!(v["problems"][0]["row"], 4);
    let out = validate(&p, &[]);
    assert!(out.stdout.contains("Header row:    none"), "{}", out.stdout);
    assert!(
        out.stdout.contains("User column:   column A (no header)"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_unknown_header_above_addresses_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "accounts.csv",
        b"Account\nzoe@x.example\nliam@x.example\n",
    );
    let out = validate(&p, &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("row 1      invalid     not an email address or object id: 'Account'"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Hint: if row 1 is the header, name the column: --column \"Account\""),
        "{}",
        out.stdout
    );
    let (code, v) = validate_json(&p, &["--column", "Account"]);
    assert_eq!(code, 0);
    assert_eq!(v["source"]["header_row"], 1);
    assert_eq!(users(&v).len(), 2);
}

#[test]
fn column_by_name_or_by_letter() {
    for col in ["work e-mail", "Work E-mail", "C", "c"] {
        let (code, v) = validate_json(&fixture("hr-new-starters.xlsx"), &["--column", col]);
        assert_eq!(code, 0, "{col}");
        assert_eq!(v["source"]["column_letter"], "C");
        assert_eq!(v["source"]["header_row"], 4);
        assert_eq!(users(&v), seven_at(&[5, 6, 7, 9, 10, 11, 12]), "{col}");
    }
    // Employee IDs come out of XLSX as floats but print as typed.
    // No user in that column: an input error (exit 2), with every row still listed.
    let out = validate(&fixture("hr-new-starters.xlsx"), &["--column", "A"]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.contains("'10417'"), "{}", out.stdout);
    assert!(!out.stdout.contains("10417.0"), "{}", out.stdout);

    let out = validate(&fixture("hr-new-starters.xlsx"), &["--column", "Mobile"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no column \"Mobile\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("C \"Work E-mail\""), "{}", out.stderr);
}

#[test]
fn title_rows_above_a_csv_header_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "hr.csv",
        "Northwind — starters\r\nConfidential\r\n\r\nID,Name,Email Address\r\n1,Zoë,zoe@x.example\r\n2,Liam,\r\n\r\n3,Kenji,kenji@x.example\r\n"
            .as_bytes(),
    );
    let (code, v) = validate_json(&p, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["source"]["header_row"], 4);
    assert_eq!(
        users(&v),
        vec![(5, "zoe@x.example".into()), (8, "kenji@x.example".into())]
    );
    assert_eq!(v["problems"][0]["row"], 6);
    assert_eq!(
        v["problems"][0]["reason"],
        "no user in column 'Email Address'"
    );
    assert_eq!(v["blank_rows"], serde_json::json!([7]));
}

#[test]
fn a_quoted_record_spanning_lines_is_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "notes.csv",
        b"Email,Note\r\na@x.example,\"two\r\nlines\"\r\nb@x.example,x\r\n",
    );
    let (_, v) = validate_json(&p, &[]);
    assert_eq!(
        users(&v),
        vec![(2, "a@x.example".into()), (3, "b@x.example".into())]
    );
}

#[test]
fn sample_starters_mark_duplicate_invalid_and_excluded_rows() {
    let (code, v) = validate_json(
        &sample("new-starters.xlsx"),
        &["--exclude", sample("exclusions.csv").to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert_eq!(v["source"]["header_row"], 4);
    assert_eq!(v["source"]["column"], "Work email");
    assert_eq!(v["counts"]["users"], 12);
    let problems: Vec<(u64, &str)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["row"].as_u64().unwrap(), p["problem"].as_str().unwrap()))
        .collect();
    assert_eq!(
        problems,
        [(16, "duplicate"), (18, "invalid"), (19, "excluded")]
    );
    assert_eq!(v["problems"][0]["first_row"], 5);
    assert_eq!(
        v["problems"][1]["reason"],
        "not an email address or object id: 'TBC'"
    );
    assert_eq!(users(&v)[1], (6, "matheo.durand@northwind.example".into()));

    let out = validate(
        &sample("new-starters.xlsx"),
        &["--exclude", sample("exclusions.csv").to_str().unwrap()],
    );
    assert!(
        out.stdout
            .contains("row 16     duplicate   zoe.lindqvist@northwind.example (first at row 5"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("row 19     excluded    breakglass01@northwind.example"),
        "{}",
        out.stdout
    );
}

#[test]
fn other_samples_read_as_the_spec_says() {
    let (code, v) = validate_json(&sample("legacy-portal-bulk.csv"), &[]);
    assert_eq!(code, 0);
    assert_eq!(
        users(&v).last().unwrap(),
        &(6, "$svc-scanner@northwind.example".to_string())
    );
    let (code, v) = validate_json(&sample("entra-bulk-template.csv"), &[]);
    assert_eq!(code, 0);
    assert_eq!(v["source"]["column_letter"], "B");
    assert_eq!(users(&v)[0], (3, "agot.sorensen@northwind.example".into()));
    let (code, v) = validate_json(&sample("exclusions.csv"), &[]);
    assert_eq!(code, 0);
    assert_eq!(users(&v).len(), 2);
}

#[test]
fn xlsx_formulas_rich_text_numbers_and_offsets() {
    use rust_xlsxwriter::{Format, Formula, Workbook};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("built.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Data").unwrap();
    // The table starts at C3: letters and row numbers must still be the sheet's own.
    ws.write_string(2, 2, "Employee ID").unwrap();
    ws.write_string(2, 3, "UPN").unwrap();
    ws.write_number(3, 2, 10231.0).unwrap();
    ws.write_formula(
        3,
        3,
        Formula::new("=LOWER(\"ZOE@X.EXAMPLE\")").set_result("zoe@x.example"),
    )
    .unwrap();
    let bold = Format::new().set_bold();
    ws.write_number(4, 2, 10232.0).unwrap();
    ws.write_rich_string(4, 3, &[(&bold, "liam"), (&Format::default(), "@x.example")])
        .unwrap();
    ws.set_row_hidden(4).unwrap();
    ws.write_number(5, 2, 10233.0).unwrap();
    wb.save(&p).unwrap();

    let out = validate(&p, &[]);
    assert!(
        out.stdout
            .contains("Note: 1 row hidden in Excel (row 5) is read like any other row"),
        "{}",
        out.stdout
    );
    let (code, v) = validate_json(&p, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["hidden_rows"], serde_json::json!([5]));
    assert_eq!(v["source"]["column_letter"], "D");
    assert_eq!(v["source"]["header_row"], 3);
    assert_eq!(
        users(&v),
        vec![(4, "zoe@x.example".into()), (5, "liam@x.example".into())]
    );
    assert_eq!(v["problems"][0]["row"], 6);
    assert_eq!(v["problems"][0]["reason"], "no user in column 'UPN'");
}

#[test]
fn a_stray_cell_far_away_is_reported_not_a_memory_blowup() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stray.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "Email").unwrap();
    ws.write_string(1, 0, "a@x.example").unwrap();
    ws.write_string(1_048_575, 16_383, "x").unwrap(); // XFD1048576
    wb.save(&p).unwrap();
    let (code, v) = validate_json(&p, &[]);
    assert_eq!(code, 1);
    assert_eq!(users(&v), vec![(2, "a@x.example".into())]);
    assert_eq!(v["problems"][0]["row"], 1_048_576);
    assert_eq!(v["problems"][0]["reason"], "no user in column 'Email'");
}

#[test]
fn default_sheet_is_the_first_with_a_user_column() {
    use rust_xlsxwriter::Workbook;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("two.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Read me").unwrap();
    ws.write_string(0, 0, "Instructions: fill in the second sheet")
        .unwrap();
    let ws = wb.add_worksheet();
    ws.set_name("Users").unwrap();
    ws.write_string(0, 0, "Mail").unwrap();
    ws.write_string(1, 0, "a@x.example").unwrap();
    wb.save(&p).unwrap();
    let (code, v) = validate_json(&p, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["source"]["sheet"], "Users");
}

#[test]
fn an_empty_workbook_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("blank.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    wb.add_worksheet();
    wb.save(&p).unwrap();
    assert_unusable(
        &validate(&p, &[]),
        &p,
        &["every sheet of the workbook is empty"],
    );
}

#[test]
fn big_files_list_the_first_users_and_count_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("UPN\n");
    for i in 0..2500 {
        body.push_str(&format!("user{i}@x.example\n"));
    }
    body.push_str("user7@x.example\n");
    let p = write(&dir, "big.csv", body.as_bytes());
    let out = validate(&p, &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("Users (2500):"),
        "{}",
        &out.stdout[..500]
    );
    assert!(
        out.stdout.contains("… 2450 more users not listed"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("row 2502   duplicate   user7@x.example (first at row 9"));
    let (_, v) = validate_json(&p, &[]);
    assert_eq!(v["users"].as_array().unwrap().len(), 50);
    assert_eq!(v["users_truncated"], true);
    assert_eq!(v["counts"]["users"], 2500);
}

fn assert_unusable(out: &Out, file: &Path, says: &[&str]) {
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        out.stderr.contains(name),
        "does not name the file: {}",
        out.stderr
    );
    for s in says {
        assert!(out.stderr.contains(s), "missing {s:?} in: {}", out.stderr);
    }
}

#[test]
fn unusable_files_exit_2_naming_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("nope.xlsx");
    assert_unusable(
        &validate(&missing, &[]),
        &missing,
        &["file not found", "Check the path"],
    );

    let empty = write(&dir, "empty.csv", b"");
    assert_unusable(
        &validate(&empty, &[]),
        &empty,
        &["empty", "Export the user list again"],
    );

    let blank = write(&dir, "blank.csv", b"\r\n ; \r\n\r\n");
    assert_unusable(&validate(&blank, &[]), &blank, &["empty"]);

    let junk: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let junk = write(&dir, "users.csv", &junk);
    assert_unusable(
        &validate(&junk, &[]),
        &junk,
        &["not a spreadsheet or text file", "save it as"],
    );

    let mut bom_junk = vec![0xEF, 0xBB, 0xBF];
    bom_junk.extend((0..2000u32).map(|i| (i * 7919 % 251) as u8));
    let bom_junk = write(&dir, "bom.csv", &bom_junk);
    assert_unusable(&validate(&bom_junk, &[]), &bom_junk, &["binary data"]);

    let pdf = write(&dir, "users.xlsx", b"%PDF-1.7\n...");
    assert_unusable(&validate(&pdf, &[]), &pdf, &["a PDF document"]);

    let html = write(
        &dir,
        "export.xls",
        b"<html><body><table><tr><td>a@x.example</td></tr></table></body></html>",
    );
    assert_unusable(
        &validate(&html, &[]),
        &html,
        &["web page (HTML)", "save it as"],
    );

    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend((0..600u32).map(|i| (i * 31 % 256) as u8));
    let zip = write(&dir, "broken.xlsx", &zip);
    assert_unusable(
        &validate(&zip, &[]),
        &zip,
        &["cannot be read", "save a new copy"],
    );

    // An encrypted OOXML workbook is a compound file holding an "EncryptedPackage" stream.
    let mut cfb = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    cfb.resize(512, 0);
    for name in ["EncryptionInfo", "EncryptedPackage"] {
        cfb.extend(name.encode_utf16().flat_map(u16::to_le_bytes));
        cfb.resize(cfb.len() + 64, 0);
    }
    let locked = write(&dir, "locked.xlsx", &cfb);
    assert_unusable(
        &validate(&locked, &[]),
        &locked,
        &["password-protected", "save an unprotected copy"],
    );

    let mut cfb = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    cfb.resize(2048, 0xAB);
    let bad_xls = write(&dir, "bad.xls", &cfb);
    assert_unusable(
        &validate(&bad_xls, &[]),
        &bad_xls,
        &["XLS", "cannot be read"],
    );

    let nocol = write(
        &dir,
        "staff.csv",
        b"Personalnummer;Name;Abteilung\r\n1;Zo\xeb;IT\r\n",
    );
    assert_unusable(
        &validate(&nocol, &[]),
        &nocol,
        &[
            "no user column",
            "A \"Personalnummer\"",
            "B \"Name\"",
            "C \"Abteilung\"",
            "--column",
        ],
    );
}

#[test]
fn a_real_password_protected_workbook_is_refused_with_what_to_do() {
    let p = fixture("password-protected.xlsx");
    assert_unusable(
        &validate(&p, &[]),
        &p,
        &["password-protected", "save an unprotected copy"],
    );
}

#[test]
fn json_errors_are_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(&dir, "empty.csv", b"");
    let out = validate(&empty, &["--json"]);
    assert_eq!(out.code, 2);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("empty"));
}

#[test]
fn a_bad_exclusion_file_is_an_error_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let ex = write(
        &dir,
        "ex.csv",
        b"UPN\nbreakglass01@northwind.example\nbreakglass02\n",
    );
    let out = validate(
        &sample("legacy-portal-bulk.csv"),
        &["--exclude", ex.to_str().unwrap()],
    );
    assert_unusable(&out, &ex, &["row 3", "'breakglass02'", "Fix or remove"]);

    // Headerless exclusion lists work, and exclusion wins over duplicate.
    let ex = write(&dir, "ex2.txt", b"ZOE.LINDQVIST@northwind.example\n");
    let (_, v) = validate_json(
        &sample("new-starters.xlsx"),
        &["--exclude", ex.to_str().unwrap()],
    );
    let zoe: Vec<(u64, &str)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["input"] == "zoe.lindqvist@northwind.example")
        .map(|p| (p["row"].as_u64().unwrap(), p["problem"].as_str().unwrap()))
        .collect();
    assert_eq!(zoe, [(5, "excluded"), (16, "excluded")]);
}
