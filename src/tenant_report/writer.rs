//! The report file: one row per user, streamed as the pages arrive, in flat memory.
//!
//! - CSV: UTF-8 with a BOM and CRLF like result files, created with its header under a fresh
//!   name and renamed into place at once ([`crate::report::files`]: never through a symbolic
//!   link, never over a file without `--force`), then appended to page by page, so an
//!   interrupted report keeps every row written. `-o -`: the same CSV on standard output
//!   without the BOM.
//! - XLSX: `rust_xlsxwriter`'s constant-memory mode (each row goes to a temporary file beside
//!   the report as it is written; only the current row is in memory), saved into the file at
//!   the end. The name is taken (an empty file) when the report starts and removed again if
//!   the report fails before it is saved.
//!
//! Cells that a spreadsheet would run as a formula are escaped as in result files
//! ([`crate::report::escape`]). The header's `user_principal_name` column is what `dry-run`
//! and `apply` find the users by, so the file is valid input for them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rust_xlsxwriter::{Format, Workbook, Worksheet};

use crate::model::MfaState;
use crate::report::escape::escape;
use crate::report::files::{self, Access};
use crate::report::{is_stdout, ReportError, ResultFormat};

/// The report's columns, in order.
pub(crate) const COLUMNS: [&str; 11] = [
    "user_principal_name",
    "user_id",
    "display_name",
    "user_type",
    "account_enabled",
    crate::engine::REPORT_STATE_COLUMN,
    "mfa_registered",
    "methods_registered",
    "default_method",
    "is_admin",
    "registration_updated",
];

const WIDTHS: [f64; 11] = [
    36.0, 38.0, 26.0, 10.0, 10.0, 12.0, 10.0, 40.0, 24.0, 9.0, 22.0,
];

/// Excel's row limit, header included.
const MAX_ROWS: u32 = 1_048_576;

/// One user of the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReportRow {
    pub user_principal_name: String,
    pub user_id: String,
    pub display_name: Option<String>,
    pub user_type: Option<String>,
    pub account_enabled: Option<bool>,
    /// `None`: could not be read.
    pub state: Option<MfaState>,
    /// `None`: not known (no report row, methods unreadable).
    pub mfa_registered: Option<bool>,
    pub methods: String,
    pub default_method: Option<String>,
    pub is_admin: Option<bool>,
    pub registration_updated: Option<String>,
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "",
    }
}

impl ReportRow {
    pub(crate) fn cells(&self) -> [&str; 11] {
        fn o(s: &Option<String>) -> &str {
            s.as_deref().unwrap_or("")
        }
        [
            &self.user_principal_name,
            &self.user_id,
            o(&self.display_name),
            o(&self.user_type),
            yes_no(self.account_enabled),
            self.state.as_ref().map(MfaState::as_str).unwrap_or(""),
            yes_no(self.mfa_registered),
            &self.methods,
            o(&self.default_method),
            yes_no(self.is_admin),
            o(&self.registration_updated),
        ]
    }
}

/// Where the rows go.
pub(crate) enum ReportWriter {
    Csv {
        path: PathBuf,
        inner: Box<::csv::Writer<Box<dyn Write>>>,
    },
    Xlsx(Box<XlsxReport>),
}

pub(crate) struct XlsxReport {
    path: PathBuf,
    /// The name, taken when the report started; the workbook is written into it at the end.
    file: Option<File>,
    workbook: Workbook,
    next_row: u32,
}

impl Drop for XlsxReport {
    fn drop(&mut self) {
        // Never saved (an error stopped the report): give the name back.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn xlsx_error(path: &Path, action: &'static str, e: impl std::fmt::Display) -> ReportError {
    ReportError::Xlsx {
        path: path.to_path_buf(),
        action,
        message: e.to_string(),
    }
}

fn csv_error(path: &Path, e: ::csv::Error) -> ReportError {
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => ReportError::io(path, "write", io),
        other => ReportError::Csv {
            path: path.to_path_buf(),
            message: format!("{other:?}"),
        },
    }
}

fn header_line() -> Vec<u8> {
    let mut line = COLUMNS.join(",").into_bytes();
    line.extend_from_slice(b"\r\n");
    line
}

fn csv_writer(out: Box<dyn Write>) -> Box<::csv::Writer<Box<dyn Write>>> {
    Box::new(
        ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .from_writer(out),
    )
}

impl ReportWriter {
    /// Creates the report file (CSV or XLSX by extension, `-` for CSV on standard output).
    pub(crate) fn create(path: &Path, force: bool) -> Result<ReportWriter, ReportError> {
        let format = crate::report::check_result_path(path, force)?;
        if is_stdout(path) {
            let mut out: Box<dyn Write> = Box::new(std::io::stdout());
            out.write_all(&header_line())
                .map_err(|e| ReportError::io(path, "write", e))?;
            return Ok(ReportWriter::Csv {
                path: PathBuf::from("standard output"),
                inner: csv_writer(out),
            });
        }
        match format {
            ResultFormat::Csv => {
                let mut first = crate::report::csv::BOM.to_vec();
                first.extend_from_slice(&header_line());
                let file = files::create_new(path, &first, force, Access::Shared)?;
                Ok(ReportWriter::Csv {
                    path: path.to_path_buf(),
                    inner: csv_writer(Box::new(std::io::BufWriter::new(file))),
                })
            }
            ResultFormat::Xlsx => {
                let file = files::create_new(path, b"", force, Access::Shared)?;
                let mut x = XlsxReport {
                    path: path.to_path_buf(),
                    file: Some(file),
                    workbook: Workbook::new(),
                    next_row: 1,
                };
                let folder = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                x.workbook
                    .set_tempdir(&folder)
                    .map_err(|e| xlsx_error(path, "create", e))?;
                let ws = x
                    .workbook
                    .add_worksheet_with_constant_memory()
                    .map_err(|e| xlsx_error(path, "create", e))?;
                header(ws).map_err(|e| xlsx_error(path, "create", e))?;
                Ok(ReportWriter::Xlsx(Box::new(x)))
            }
        }
    }

    /// Writes one row.
    pub(crate) fn write(&mut self, row: &ReportRow) -> Result<(), ReportError> {
        match self {
            ReportWriter::Csv { path, inner } => inner
                .write_record(
                    row.cells()
                        .iter()
                        .map(|c| escape(c).into_owned().into_bytes()),
                )
                .map_err(|e| csv_error(path, e)),
            ReportWriter::Xlsx(x) => {
                if x.next_row >= MAX_ROWS {
                    return Err(xlsx_error(
                        &x.path,
                        "write",
                        format!(
                            "more rows than an Excel sheet holds ({MAX_ROWS}); write a CSV \
                             report instead (-o report.csv)"
                        ),
                    ));
                }
                let r = x.next_row;
                let path = x.path.clone();
                let ws = x
                    .workbook
                    .worksheet_from_index(0)
                    .map_err(|e| xlsx_error(&path, "write", e))?;
                for (c, cell) in row.cells().iter().enumerate() {
                    if !cell.is_empty() {
                        ws.write_string(r, c as u16, escape(cell))
                            .map_err(|e| xlsx_error(&path, "write", e))?;
                    }
                }
                x.next_row += 1;
                Ok(())
            }
        }
    }

    /// Hands the rows written so far to the operating system (CSV; after each page).
    pub(crate) fn flush(&mut self) -> Result<(), ReportError> {
        match self {
            ReportWriter::Csv { path, inner } => {
                inner.flush().map_err(|e| ReportError::io(path, "write", e))
            }
            ReportWriter::Xlsx(_) => Ok(()),
        }
    }

    /// Completes the file (syncs a CSV; saves the workbook).
    pub(crate) fn finish(self) -> Result<(), ReportError> {
        match self {
            ReportWriter::Csv { path, mut inner } => {
                inner
                    .flush()
                    .map_err(|e| ReportError::io(&path, "write", e))?;
                let out = inner.into_inner().map_err(|e| {
                    ReportError::io(&path, "write", std::io::Error::other(e.to_string()))
                })?;
                drop(out);
                if path != Path::new("standard output") {
                    File::open(&path)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| ReportError::io(&path, "sync", e))?;
                }
                Ok(())
            }
            ReportWriter::Xlsx(mut x) => {
                let last = x.next_row - 1;
                let path = x.path.clone();
                {
                    let ws = x
                        .workbook
                        .worksheet_from_index(0)
                        .map_err(|e| xlsx_error(&path, "build", e))?;
                    ws.autofilter(0, 0, last, (COLUMNS.len() - 1) as u16)
                        .map_err(|e| xlsx_error(&path, "build", e))?;
                }
                let file = x.file.take().expect("taken at creation");
                let mut out = std::io::BufWriter::new(&file);
                x.workbook
                    .save_to_writer(&mut out)
                    .map_err(|e| xlsx_error(&path, "save", e))?;
                out.flush()
                    .map_err(|e| ReportError::io(&path, "write", e))?;
                drop(out);
                file.sync_all()
                    .map_err(|e| ReportError::io(&path, "sync", e))?;
                Ok(())
            }
        }
    }
}

/// The bold, frozen header row and the column widths.
fn header(ws: &mut Worksheet) -> Result<(), rust_xlsxwriter::XlsxError> {
    ws.set_name("Users")?;
    let bold = Format::new().set_bold();
    for (c, name) in COLUMNS.iter().enumerate() {
        let c = c as u16;
        ws.set_column_width(c, WIDTHS[c as usize])?;
        ws.write_string_with_format(0, c, *name, &bold)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(upn: &str, name: &str) -> ReportRow {
        ReportRow {
            user_principal_name: upn.into(),
            user_id: "id-1".into(),
            display_name: Some(name.into()),
            state: Some(MfaState::Disabled),
            mfa_registered: Some(true),
            ..ReportRow::default()
        }
    }

    #[test]
    fn csv_has_bom_header_and_escaped_cells() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let mut w = ReportWriter::create(&p, false).unwrap();
        w.write(&row("a@x.example", "=HYPERLINK(\"x\")")).unwrap();
        w.finish().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("\u{feff}user_principal_name,user_id,"));
        assert!(text.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{text}");
        assert!(text.contains(",disabled,yes,"), "{text}");
        assert!(
            ReportWriter::create(&p, false).is_err(),
            "no overwrite without force"
        );
    }

    #[test]
    fn xlsx_is_written_whole_and_a_failed_one_gives_its_name_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.xlsx");
        let mut w = ReportWriter::create(&p, false).unwrap();
        for i in 0..3 {
            w.write(&row(&format!("u{i}@x.example"), "+1")).unwrap();
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with(b"PK"), "a zip file");
        let p2 = dir.path().join("gone.xlsx");
        let w = ReportWriter::create(&p2, false).unwrap();
        assert!(p2.exists());
        drop(w);
        assert!(!p2.exists(), "an unsaved report leaves no empty file");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim.txt");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("r.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(ReportWriter::create(&link, false).is_err());
        let w = ReportWriter::create(&link, true).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
