//! Hostile and careless input files (issue 13): nothing exhausted, nothing silently ignored.
//! Each case ends in a message naming the file (and row and column where there is one) and
//! what to do, exit 2 where the file is unusable, and nothing sent to Graph.
//!
//! Workbook bombs are made here, never committed: a few lines of the `zip` crate writing a
//! deflated part of repeated bytes. The binary reads them under an address-space limit of
//! 1.5 GiB: a bomb that got through would end in an allocation failure (a signal), not exit 2.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use zip::write::SimpleFileOptions;

use crate::common::{bin, read_csv, repo, TestSim};

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn out_of(o: std::process::Output) -> Out {
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn validate(file: &Path, args: &[&str]) -> Out {
    let dir = file.parent().unwrap();
    out_of(
        bin(dir)
            .arg("validate")
            .arg(file)
            .args(args)
            .output()
            .unwrap(),
    )
}

/// Address space the binary may use for a workbook bomb (its normal use is far below).
const AS_LIMIT: &str = "--as=1610612736";

/// `validate FILE` under the address-space limit.
fn validate_bounded(file: &Path) -> Out {
    let exe = assert_cmd::cargo::cargo_bin("mfa-bulk");
    let mut c = Command::new("prlimit");
    c.arg(AS_LIMIT).arg("--").arg(exe).arg("validate").arg(file);
    for v in crate::common::CLEARED {
        c.env_remove(v);
    }
    out_of(c.output().expect("prlimit (util-linux) runs"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_input_error(out: &Out, file: &Path, says: &[&str]) {
    assert_eq!(
        out.code,
        Some(2),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(out.stderr.contains(name), "names no file: {}", out.stderr);
    for s in says {
        assert!(out.stderr.contains(s), "missing {s:?} in: {}", out.stderr);
    }
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#;
const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Starters" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#;
const SHEET_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Email</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>a@x.example</t></is></c></row>"#;

/// A minimal XLSX whose sheet is `SHEET_HEAD`, then what `body` writes, then the end tags; and
/// more parts written by `more`.
fn xlsx(
    path: &Path,
    body: impl FnOnce(&mut dyn Write),
    more: impl FnOnce(&mut zip::ZipWriter<std::fs::File>),
) {
    xlsx_at(1, path, body, more)
}

/// [`xlsx`] with deflate at `level` (9: smallest file).
fn xlsx_at(
    level: i64,
    path: &Path,
    body: impl FnOnce(&mut dyn Write),
    more: impl FnOnce(&mut zip::ZipWriter<std::fs::File>),
) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(level));
    for (name, text) in [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
        ("xl/workbook.xml", WORKBOOK),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
    ] {
        z.start_file(name, opts).unwrap();
        z.write_all(text.as_bytes()).unwrap();
    }
    z.start_file("xl/worksheets/sheet1.xml", opts.large_file(true))
        .unwrap();
    z.write_all(SHEET_HEAD.as_bytes()).unwrap();
    body(&mut z);
    z.write_all(b"</sheetData></worksheet>").unwrap();
    more(&mut z);
    z.finish().unwrap();
}

/// `mib` MiB of `unit` repeated.
fn repeat(w: &mut dyn Write, unit: &[u8], mib: usize) {
    let chunk: Vec<u8> = unit.iter().copied().cycle().take(1 << 20).collect();
    for _ in 0..mib {
        w.write_all(&chunk).unwrap();
    }
}

#[test]
fn a_one_gib_cell_is_too_large_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one-cell.xlsx");
    xlsx_at(
        9,
        &p,
        |w| {
            w.write_all(br#"<row r="3"><c r="B3" t="inlineStr"><is><t>"#)
                .unwrap();
            repeat(w, b"a", 1024);
            w.write_all(b"</t></is></c></row>").unwrap();
        },
        |_| {},
    );
    assert!(std::fs::metadata(&p).unwrap().len() < 8 << 20);
    let out = validate_bounded(&p);
    assert_input_error(
        &out,
        &p,
        &[
            "too large",
            "sheet \"Starters\"",
            "row 3, column B",
            "32,767 characters",
        ],
    );
    // The cell itself is never printed.
    assert!(out.stderr.len() < 2000, "{}", out.stderr.len());
    assert!(!out.stderr.contains("aaaaaaaaaa"));
}

#[test]
fn a_sheet_part_expanding_past_256_mib_is_too_large_in_bounded_memory() {
    // Whitespace, with an element now and then (so no single run is long).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("whitespace.xlsx");
    let mut unit = vec![b' '; 64 << 10];
    unit.extend_from_slice(b"<x/>");
    xlsx(&p, |w| repeat(w, &unit, 300), |_| {});
    assert!(std::fs::metadata(&p).unwrap().len() < 4 << 20);
    let out = validate_bounded(&p);
    assert_input_error(
        &out,
        &p,
        &[
            "too large",
            "sheet \"Starters\" (part xl/worksheets/sheet1.xml) expands to more than 256 MiB",
            "export it as CSV",
        ],
    );
}

#[test]
fn a_workbook_expanding_past_512_mib_in_all_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pictures.xlsx");
    xlsx(
        &p,
        |_| {},
        |z| {
            // One 200 MiB part compressed once, copied three times under other names.
            let mut one = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .compression_level(Some(1))
                .large_file(true);
            one.start_file("image.png", opts).unwrap();
            repeat(&mut one, &[0], 200);
            let mut one = zip::ZipArchive::new(one.finish().unwrap()).unwrap();
            for i in 1..=3 {
                z.raw_copy_file_rename(
                    one.by_index_raw(0).unwrap(),
                    format!("xl/media/image{i}.png"),
                )
                .unwrap();
            }
        },
    );
    let out = validate_bounded(&p);
    assert_input_error(
        &out,
        &p,
        &[
            "too large",
            "the workbook expands to more than 512 MiB (reached in part xl/media/image3.png)",
        ],
    );
}

/// The sample ODS with one more row, repeated `rows` times over `cols` columns with a value.
fn ods_with_repeats(dir: &Path, rows: u64, cols: u64) -> PathBuf {
    use std::io::Read;
    let src = std::fs::File::open(repo("tests/fixtures/libreoffice-export.ods")).unwrap();
    let mut zin = zip::ZipArchive::new(src).unwrap();
    let p = dir.join("repeats.ods");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    for i in 0..zin.len() {
        let name = zin.by_index(i).unwrap().name().unwrap().to_string();
        if name == "content.xml" {
            let mut xml = String::new();
            zin.by_index(i).unwrap().read_to_string(&mut xml).unwrap();
            let bomb = format!(
                "<table:table-row table:number-rows-repeated=\"{rows}\"><table:table-cell \
                 table:number-columns-repeated=\"{cols}\" office:value-type=\"string\">\
                 <text:p>x</text:p></table:table-cell></table:table-row></table:table>"
            );
            let xml = xml.replacen("</table:table>", &bomb, 1);
            z.start_file(name, SimpleFileOptions::default()).unwrap();
            z.write_all(xml.as_bytes()).unwrap();
        } else {
            z.raw_copy_file(zin.by_index_raw(i).unwrap()).unwrap();
        }
    }
    z.finish().unwrap();
    p
}

#[test]
fn an_ods_repeating_a_cell_a_billion_times_is_too_large_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = ods_with_repeats(dir.path(), 1_000_000, 1000);
    assert!(std::fs::metadata(&p).unwrap().len() < 64 << 10);
    let out = validate_bounded(&p);
    assert_input_error(
        &out,
        &p,
        &[
            "too large",
            "sheet \"libreoffice-export\" repeats its rows and columns",
        ],
    );
    // A few repeated rows are read as usual (each a row of its own).
    let p = ods_with_repeats(dir.path(), 3, 2);
    let out = validate(&p, &["--json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["counts"]["rows"], 10, "{}", out.stdout);
}

/// The sample XLS with its first shared-string cell patched (row, column).
fn xls_with_cell_at(dir: &Path, row: u16, col: u16) -> PathBuf {
    let mut b = std::fs::read(repo("tests/fixtures/libreoffice-export.xls")).unwrap();
    // LABELSST record: type 0x00FD, length 10, then row, column, format, string index.
    let at = b
        .windows(4)
        .position(|w| w == [0xFD, 0x00, 0x0A, 0x00])
        .expect("a LABELSST record");
    b[at + 4..at + 6].copy_from_slice(&row.to_le_bytes());
    b[at + 6..at + 8].copy_from_slice(&col.to_le_bytes());
    write(dir, "stray.xls", &b)
}

#[test]
fn an_xls_with_a_cell_far_away_is_too_large_not_an_allocation_failure() {
    let dir = tempfile::tempdir().unwrap();
    let p = xls_with_cell_at(dir.path(), 0xFFFF, 0xFFFF);
    let out = validate_bounded(&p);
    assert_input_error(&out, &p, &["too large", "spreads its values over"]);
}

#[test]
fn an_xls_whose_sector_chain_loops_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = std::fs::read(repo("tests/fixtures/libreoffice-export.xls")).unwrap();
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let (dir_start, fat0) = (le32(&b, 48) as usize, le32(&b, 76) as usize);
    let at = (fat0 + 1) * 512 + 4 * dir_start;
    b[at..at + 4].copy_from_slice(&(dir_start as u32).to_le_bytes());
    let p = write(dir.path(), "loop.xls", &b);
    let out = validate_bounded(&p);
    assert_input_error(&out, &p, &["XLS", "loop", "save a new copy"]);
}

#[test]
fn a_cell_over_excels_limit_names_its_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long-cell.xlsx");
    xlsx(
        &p,
        |w| {
            w.write_all(br#"<row r="7"><c r="D7" t="inlineStr"><is><t>"#)
                .unwrap();
            w.write_all(&vec![b'n'; 40_000]).unwrap();
            w.write_all(b"</t></is></c></row>").unwrap();
        },
        |_| {},
    );
    let out = validate(&p, &[]);
    assert_input_error(
        &out,
        &p,
        &[
            "too large",
            "sheet \"Starters\", row 7, column D",
            "40,000 characters",
            "32,767",
            "clear that cell",
        ],
    );
}

#[test]
fn a_huge_value_is_invalid_and_shown_cut_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let long = "z".repeat(100_000);
    let text =
        format!("UserPrincipalName\nzoe.lindqvist@northwind.example\n{long}@northwind.example\n");
    let p = write(dir.path(), "long.csv", text.as_bytes());
    let out = validate(&p, &[]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("row 3      invalid     not an email address or object id: 'zzzz"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "… (100018 characters)' is longer than a user name can be (at most 113 characters)"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.len() < 3000, "{} bytes", out.stdout.len());

    // The result's error column shows the same cut value.
    let sim = TestSim::sample();
    let result = dir.path().join("result.csv");
    let o = sim
        .cmd(dir.path())
        .arg("dry-run")
        .arg(&p)
        .arg("-o")
        .arg(&result)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows = read_csv(&result);
    let bad = rows.iter().find(|r| r["row"] == "3").unwrap();
    assert_eq!(bad["outcome"], "invalid");
    assert!(
        bad["error"].contains("… (100018 characters)"),
        "{}",
        bad["error"]
    );
    assert!(bad["error"].chars().count() < 250, "{}", bad["error"]);
}

#[test]
fn an_exclusion_list_without_users_stops_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "users.csv",
        b"UPN\nzoe.lindqvist@northwind.example\nbreakglass01@northwind.example\n",
    );
    for (name, body) in [
        ("ex-header.csv", &b"UPN\n"[..]),
        ("ex-blank.csv", &b"UPN,Note\n,keep this one\n\n"[..]),
    ] {
        let ex = write(dir.path(), name, body);
        let out = validate(&input, &["--exclude", ex.to_str().unwrap()]);
        assert_input_error(
            &out,
            &ex,
            &[
                "the exclusion list holds no users",
                "break-glass",
                "--exclude",
            ],
        );

        let sim = TestSim::sample();
        let before = sim.state("breakglass01@northwind.example");
        for cmd in [&["dry-run"][..], &["apply", "--yes"][..]] {
            let o = sim
                .cmd(dir.path())
                .args(cmd)
                .arg(&input)
                .arg("--exclude")
                .arg(&ex)
                .arg("-o")
                .arg(dir.path().join(format!("{}-{name}.csv", cmd[0])))
                .output()
                .unwrap();
            assert_input_error(&out_of(o), &ex, &["the exclusion list holds no users"]);
        }
        assert_eq!(sim.state("breakglass01@northwind.example"), before);
        assert_eq!(sim.counters().requests, 0, "nothing sent to Graph");
        assert_eq!(sim.counters().writes, 0);
    }
}

#[test]
fn an_input_without_users_is_an_input_error_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("header-only.csv", &b"UserPrincipalName,MFA Status\r\n"[..]),
        ("tbc.csv", &b"UPN\nTBC\n\nto follow\n"[..]),
    ] {
        let p = write(dir.path(), name, body);
        let out = validate(&p, &[]);
        assert_input_error(&out, &p, &["no users found", "--column"]);
        // validate still lists what it found.
        assert!(out.stdout.contains("Users (0):"), "{}", out.stdout);
        let v: Value = serde_json::from_str(&validate(&p, &["--json"]).stdout).unwrap();
        assert_eq!(v["exit_code"], 2);
        assert!(v["error"].as_str().unwrap().contains("no users found"));

        let sim = TestSim::sample();
        for cmd in [&["dry-run"][..], &["apply", "--yes"][..]] {
            let o = sim
                .cmd(dir.path())
                .args(cmd)
                .arg(&p)
                .arg("-o")
                .arg(dir.path().join(format!("{}-{name}", cmd[0])))
                .output()
                .unwrap();
            let out = out_of(o);
            assert_input_error(&out, &p, &["no users found"]);
            assert!(!out.stdout.contains("Done"), "{}", out.stdout);
        }
        assert_eq!(sim.counters().requests, 0, "nothing sent to Graph");
    }
    let out = validate(&dir.path().join("tbc.csv"), &[]);
    assert!(
        out.stderr
            .contains("none of its 2 rows holds an email address or object id in column \"UPN\""),
        "{}",
        out.stderr
    );
}

#[test]
fn a_list_pasted_on_one_line_is_refused_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body, how) in [
        (
            "pasted.csv",
            &b"zoe@x.example, liam@x.example, kenji@x.example, amara@x.example\r\n"[..],
            "row 1 holds 4 addresses separated by ','",
        ),
        (
            "outlook.txt",
            &b"Zoe Lindqvist <zoe@x.example>; Liam <liam@x.example>"[..],
            "row 1 holds 2 addresses separated by ';'",
        ),
    ] {
        let p = write(dir.path(), name, body);
        let out = validate(&p, &[]);
        assert_input_error(
            &out,
            &p,
            &[how, "Put one user per row", "--plan", "header row"],
        );
        let sim = TestSim::sample();
        let o = sim
            .cmd(dir.path())
            .arg("dry-run")
            .arg(&p)
            .arg("-o")
            .arg(dir.path().join(format!("r-{name}.csv")))
            .output()
            .unwrap();
        assert_input_error(&out_of(o), &p, &[how]);
        assert_eq!(sim.counters().requests, 0);
    }
    // A workbook row of addresses, too.
    let p = dir.path().join("pasted.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, a) in ["a@x.example", "b@x.example", "c@x.example"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16 + 1, *a).unwrap();
    }
    wb.save(&p).unwrap();
    assert_input_error(
        &validate(&p, &[]),
        &p,
        &["row 1 holds 3 addresses in columns B to D"],
    );

    // What is not a pasted list still reads.
    for (name, body, users) in [
        (
            "legacy.csv",
            &b"Username,MFA Status\r\na@x.example,Enabled\r\n"[..],
            1,
        ),
        ("one.txt", &b"a@x.example\n"[..], 1),
        (
            "pairs.csv",
            &b"a@x.example,boss@x.example\nb@x.example,boss@x.example\n"[..],
            2,
        ),
        (
            "mail-manager.csv",
            &b"Email,Manager\na@x.example,boss@x.example\n"[..],
            1,
        ),
    ] {
        let p = write(dir.path(), name, body);
        let out = validate(&p, &["--json"]);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e} {}", out.stderr));
        assert_eq!(v["counts"]["users"], users, "{name}: {v}");
        assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
    }
}

#[test]
fn csv_rows_are_numbered_as_excel_numbers_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "notes.csv",
        b"Email,Note\r\na@x.example,\"three\r\nline\nnote\"\r\nb@x.example,x\r\n\r\nc@x.example,\"\"\"quoted\"\"\r\nagain\"\r\nTBC,\r\n",
    );
    let v: Value = serde_json::from_str(&validate(&p, &["--json"]).stdout).unwrap();
    let users: Vec<(u64, &str)> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["row"].as_u64().unwrap(),
                u["user"]["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [(2, "a@x.example"), (3, "b@x.example"), (5, "c@x.example")]
    );
    assert_eq!(v["blank_rows"], serde_json::json!([4]));
    assert_eq!(v["problems"][0]["row"], 6);
}

#[test]
fn a_stray_control_character_marks_its_row_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "vt.csv",
        b"Email,Name\na@x.example,A\nb\x0b@x.example,B\nc@x.example,C\x0c\nd@x.example\x01,D\n",
    );
    let out = validate(&p, &["--json"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["counts"]["users"], 2, "{v}");
    let problems: Vec<(u64, String)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["row"].as_u64().unwrap(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].0, 3);
    assert!(
        problems[0].1.contains("'b\\u{b}@x.example'"),
        "{problems:?}"
    );
    assert!(problems[0].1.contains("control character"), "{problems:?}");
    assert_eq!(problems[1].0, 5);

    // Real binary data is still refused.
    let p = write(
        dir.path(),
        "nul.csv",
        b"Email\na@x.example\n\x00\x00\x01\x02junk\n",
    );
    assert_input_error(&validate(&p, &[]), &p, &["binary data"]);
    let junk: Vec<u8> = (1..2000u32).map(|i| (i * 7 % 31 + 1) as u8).collect();
    let p = write(dir.path(), "controls.csv", &junk);
    assert_input_error(&validate(&p, &[]), &p, &["binary data"]);
}

#[test]
fn utf8_rows_among_windows_1252_ones_are_named_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = b"Name,Email\n".to_vec();
    for i in 0..20 {
        // Rows 7, 12 and 14 to 21 were typed on a machine saving Windows-1252.
        if i == 5 || i == 10 || (12..20).contains(&i) {
            body.extend(b"J\xfcrgen ");
            body.extend(format!("{i},u{i}@x.example\n").bytes());
        } else {
            body.extend(format!("Zo\u{eb} {i},u{i}@x.example\n").bytes());
        }
    }
    let p = write(dir.path(), "mixed.csv", &body);
    let out = validate(&p, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("Encoding:      windows-1252"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "mixed.csv: rows 7, 12, 14, 15, 16 and 5 more are not valid UTF-8, while the rest of \
             the file is; the file was read as Windows-1252"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--encoding utf-8"), "{}", out.stdout);
    let v: Value = serde_json::from_str(&validate(&p, &["--json"]).stdout).unwrap();
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");

    // Forced UTF-8: the same rows are named, as not fitting UTF-8.
    let out = validate(&p, &["--encoding", "utf-8"]);
    assert!(
        out.stdout
            .contains("rows 7, 12, 14, 15, 16 and 5 more are not valid UTF-8: the bytes"),
        "{}",
        out.stdout
    );
    // A file entirely in Windows-1252, or entirely UTF-8, has no warning.
    for f in ["excel-semicolon-cp1252.csv", "legacy-portal-bulk.csv"] {
        let out = validate(&repo("tests/fixtures").join(f), &[]);
        assert!(!out.stdout.contains("Warnings"), "{f}: {}", out.stdout);
    }
    // An exclusion list's warning is shown too.
    let ex = write(
        dir.path(),
        "ex.csv",
        b"UPN,Note\nbreakglass01@northwind.example,Zo\xc3\xab\nbreakglass02@northwind.example,J\xfcrgen\n",
    );
    let out = validate(&p, &["--exclude", ex.to_str().unwrap()]);
    assert!(out.stdout.contains("Warnings (2):"), "{}", out.stdout);
    assert!(
        out.stdout.contains("ex.csv: row 3 is not valid UTF-8"),
        "{}",
        out.stdout
    );
}

#[test]
fn dry_run_shows_the_encoding_warning_before_anything_is_sent() {
    let sim = crate::common::TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let body = b"UPN,Note\nliam.o'connor@northwind.example,Zo\xc3\xab\nnobody@northwind.example,J\xfcrgen\n";
    write(dir.path(), "mixed.csv", body);
    let out = sim
        .cmd(dir.path())
        .args(["dry-run", "mixed.csv", "-o", "r.csv"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ") && err.contains("mixed.csv: row 3") && err.contains("--encoding"),
        "{err}"
    );
}
