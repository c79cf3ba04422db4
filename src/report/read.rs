//! Reading a result file back (for `apply --plan` and `revert`): CSV (UTF-8 with or without a
//! BOM, or Windows-1252 as Excel saves "CSV (Comma delimited)"; comma or, after a trip through
//! a European Excel, semicolon) or XLSX, told apart by content.
//!
//! Strict: the header must hold exactly the [`COLUMNS`] (any order, no extra or missing
//! columns), and every row number, state, action and outcome must parse; anything else is an
//! error naming the file, the row as Excel shows it (header = row 1) and the column. The
//! formula escaping of [`super::escape`] is undone.

use std::path::Path;

use calamine::{Data, Reader};

use super::escape::unescape;
use super::{Action, Outcome, ReportError, ResultRow, COLUMNS};
use crate::model::MfaState;

/// Reads every data row of a result file written by mfa-bulk. Blank rows are skipped.
pub fn read_results(path: &Path) -> Result<Vec<ResultRow>, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, "read", e))?;
    let table = if bytes.starts_with(b"PK\x03\x04") {
        read_xlsx(path)?
    } else {
        read_csv(path, &bytes)?
    };
    parse_table(path, table)
}

/// A cell as read: text, or a number (XLSX only).
enum Cell {
    Text(String),
    Number(f64),
}

/// The header, then (Excel row number, cells) for each data row.
struct Table {
    header: Vec<String>,
    rows: Vec<(u64, Vec<Cell>)>,
}

fn read_csv(path: &Path, bytes: &[u8]) -> Result<Table, ReportError> {
    let (bytes, bom) = match bytes.strip_prefix(super::csv::BOM) {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    // Ours is UTF-8; a result opened in Excel and saved as "CSV (Comma delimited)" comes back
    // in the Windows code page (1252 in Western Europe and the US), without a BOM. A file with
    // the UTF-8 BOM is UTF-8 even when a crash or a full disk tore its last row mid-character:
    // only that character is lost, not every accent in the file.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) if bom => String::from_utf8_lossy(bytes),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    };
    let first_line = text.lines().next().unwrap_or("");
    let delimiter = if !first_line.contains(',') && first_line.contains(';') {
        b';'
    } else {
        b','
    };
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut header = None;
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let excel_row = i as u64 + 1;
        let rec = rec.map_err(|e| ReportError::Csv {
            path: path.to_path_buf(),
            message: format!("row {excel_row}: {e}"),
        })?;
        let cells: Vec<String> = rec.iter().map(str::to_string).collect();
        if header.is_none() {
            header = Some(cells);
        } else {
            rows.push((excel_row, cells.into_iter().map(Cell::Text).collect()));
        }
    }
    Ok(Table {
        header: header.unwrap_or_default(),
        rows,
    })
}

fn read_xlsx(path: &Path) -> Result<Table, ReportError> {
    let xerr = |e: calamine::XlsxError| ReportError::Xlsx {
        path: path.to_path_buf(),
        action: "read",
        message: e.to_string(),
    };
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(path).map_err(xerr)?;
    let range = match wb.worksheet_range_at(0) {
        Some(r) => r.map_err(xerr)?,
        None => {
            return Err(ReportError::Header {
                path: path.to_path_buf(),
                message: "the workbook has no sheet".into(),
            })
        }
    };
    let (row0, col0) = range.start().unwrap_or((0, 0));
    let mut header = None;
    let mut rows = Vec::new();
    for (i, r) in range.rows().enumerate() {
        let excel_row = u64::from(row0) + i as u64 + 1;
        // Cells left of the used range's start are empty; keep column positions honest.
        let mut cells: Vec<Cell> = (0..col0).map(|_| Cell::Text(String::new())).collect();
        for (j, d) in r.iter().enumerate() {
            let col = col0 as usize + j;
            cells.push(match d {
                Data::Empty => Cell::Text(String::new()),
                Data::String(s) => Cell::Text(s.clone()),
                Data::Int(n) => Cell::Number(*n as f64),
                Data::Float(f) => Cell::Number(*f),
                other => {
                    return Err(ReportError::Cell {
                        path: path.to_path_buf(),
                        row: excel_row,
                        column: column_name(header.as_ref(), col),
                        value: other.to_string(),
                        message: "expected text or a row number".into(),
                    })
                }
            });
        }
        if header.is_none() {
            header = Some(
                cells
                    .into_iter()
                    .map(|c| match c {
                        Cell::Text(s) => s,
                        Cell::Number(n) => n.to_string(),
                    })
                    .collect(),
            );
        } else {
            rows.push((excel_row, cells));
        }
    }
    Ok(Table {
        header: header.unwrap_or_default(),
        rows,
    })
}

fn column_name(header: Option<&Vec<String>>, col: usize) -> String {
    header
        .and_then(|h| h.get(col))
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| format!("#{}", col + 1))
}

/// Position of each of [`COLUMNS`] in the file's header.
fn map_header(path: &Path, header: &[String]) -> Result<[usize; 13], ReportError> {
    let herr = |message: String| ReportError::Header {
        path: path.to_path_buf(),
        message,
    };
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(herr("the file is empty (no header row)".into()));
    }
    let mut pos = [usize::MAX; 13];
    for (i, h) in header.iter().enumerate() {
        let h = h.trim();
        if h.is_empty() {
            continue;
        }
        match COLUMNS.iter().position(|c| *c == h) {
            Some(k) if pos[k] != usize::MAX => {
                return Err(herr(format!(
                    "the column \"{h}\" appears twice in the header"
                )))
            }
            Some(k) => pos[k] = i,
            None => {
                return Err(herr(format!(
                    "unknown column \"{h}\" in the header (expected: {})",
                    COLUMNS.join(", ")
                )))
            }
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(pos)
        .filter(|(_, p)| *p == usize::MAX)
        .map(|(c, _)| *c)
        .collect();
    if !missing.is_empty() {
        return Err(herr(format!(
            "the header lacks the column(s) {}",
            missing.join(", ")
        )));
    }
    Ok(pos)
}

fn parse_table(path: &Path, table: Table) -> Result<Vec<ResultRow>, ReportError> {
    let pos = map_header(path, &table.header)?;
    let mut out = Vec::with_capacity(table.rows.len());
    for (excel_row, cells) in table.rows {
        let blank = cells
            .iter()
            .all(|c| matches!(c, Cell::Text(s) if s.trim().is_empty()));
        if blank {
            continue;
        }
        let p = RowParser {
            path,
            excel_row,
            cells: &cells,
            pos: &pos,
        };
        out.push(ResultRow {
            row: p.row_number()?,
            input: p.text(1)?,
            user_principal_name: p.opt_text(2)?,
            user_id: p.opt_text(3)?,
            display_name: p.opt_text(4)?,
            state_before: p.observed_state(5)?,
            mfa_registered: p.yes_no(6)?,
            target_state: p.target_state(7)?,
            action: p.parse(8, Action::parse, "set-enabled, set-enforced, set-disabled or none")?,
            state_after: p.observed_state(9)?,
            outcome: p.parse(
                10,
                Outcome::parse,
                "would-change, no-change, changed, failed, not-found, invalid, duplicate, excluded, skipped or drifted",
            )?,
            error: p.opt_text(11)?,
            request_id: p.opt_text(12)?,
        });
    }
    Ok(out)
}

struct RowParser<'a> {
    path: &'a Path,
    excel_row: u64,
    cells: &'a [Cell],
    pos: &'a [usize; 13],
}

impl RowParser<'_> {
    fn err(&self, k: usize, value: &str, message: impl Into<String>) -> ReportError {
        ReportError::Cell {
            path: self.path.to_path_buf(),
            row: self.excel_row,
            column: COLUMNS[k].to_string(),
            value: value.to_string(),
            message: message.into(),
        }
    }

    fn cell(&self, k: usize) -> Option<&Cell> {
        self.cells.get(self.pos[k])
    }

    /// The unescaped text of column `k` ("" when the row is short or the cell empty).
    fn text(&self, k: usize) -> Result<String, ReportError> {
        match self.cell(k) {
            None => Ok(String::new()),
            Some(Cell::Text(s)) => Ok(unescape(s).to_string()),
            Some(Cell::Number(n)) => {
                Err(self.err(k, &n.to_string(), "expected text, found a number"))
            }
        }
    }

    fn opt_text(&self, k: usize) -> Result<Option<String>, ReportError> {
        let s = self.text(k)?;
        Ok(if s.is_empty() { None } else { Some(s) })
    }

    fn row_number(&self) -> Result<u64, ReportError> {
        let (value, n) = match self.cell(0) {
            None => (String::new(), None),
            Some(Cell::Number(f)) => (
                f.to_string(),
                (f.fract() == 0.0 && *f >= 1.0 && *f < 9.0e15).then_some(*f as u64),
            ),
            Some(Cell::Text(s)) => {
                let t = s.trim();
                let ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
                (
                    s.clone(),
                    if ok {
                        t.parse().ok().filter(|n| *n >= 1)
                    } else {
                        None
                    },
                )
            }
        };
        n.ok_or_else(|| self.err(0, &value, "expected a row number (1 or more)"))
    }

    fn parse<T>(
        &self,
        k: usize,
        f: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<T, ReportError> {
        let s = self.text(k)?;
        f(&s).ok_or_else(|| self.err(k, &s, format!("expected one of {allowed}")))
    }

    fn yes_no(&self, k: usize) -> Result<Option<bool>, ReportError> {
        let s = self.text(k)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "yes" => Ok(Some(true)),
            "no" => Ok(Some(false)),
            _ => Err(self.err(k, &s, "expected yes, no or an empty cell")),
        }
    }

    /// A target: empty, or one of the three states we set.
    fn target_state(&self, k: usize) -> Result<Option<MfaState>, ReportError> {
        let s = self.text(k)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        MfaState::parse(&s).map(Some).ok_or_else(|| {
            self.err(
                k,
                &s,
                "expected enabled, enforced, disabled or an empty cell",
            )
        })
    }

    /// A state Graph reported: the three we know, or another value Graph sent (a single word
    /// such as `unknownFutureValue`), kept as [`MfaState::Other`].
    fn observed_state(&self, k: usize) -> Result<Option<MfaState>, ReportError> {
        let s = self.text(k)?;
        let t = s.trim();
        if t.is_empty() {
            return Ok(None);
        }
        if let Some(st) = MfaState::parse(t) {
            return Ok(Some(st));
        }
        if t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Ok(Some(MfaState::Other(t.into())));
        }
        Err(self.err(
            k,
            &s,
            "expected enabled, enforced, disabled or an empty cell",
        ))
    }
}
