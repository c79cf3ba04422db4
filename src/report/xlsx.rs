//! The XLSX result writer: one sheet "Results", the [`COLUMNS`] as a bold, frozen header row
//! with an autofilter and sensible column widths. `row` is a number; every other cell is
//! written with `write_string` (never a formula), escaped like CSV (see [`super::escape`]).
//!
//! `rust_xlsxwriter` writes a workbook whole, so this writer keeps the rows and saves:
//! - a header-only workbook when the file is created (the name is taken at once, and a file
//!   is valid from the start),
//! - a checkpoint with every row so far, at most every few seconds while rows arrive,
//! - the complete workbook at [`ResultWriter::finish`].
//!
//! Every save goes to a new file under a fresh name beside the file, is synced, then renamed
//! to the file's name ([`super::files`]): the file on disk is always a complete workbook, and
//! a symbolic link planted at its name is replaced, never written through. The first save
//! refuses an existing name unless `--force`; later checkpoints replace the writer's own
//! earlier save. Rows that arrived after the last checkpoint are lost if the process dies;
//! for `apply` the journal ([`super::Journal`]) is what protects an XLSX run against a crash.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::escape::escape;
use super::files::{self, Access};
use super::{ReportError, ResultRow, ResultWriter, COLUMNS};

/// The sheet's name.
pub const SHEET: &str = "Results";

/// Excel's limit on the characters in one cell.
const MAX_CELL_CHARS: usize = 32_767;
/// Excel's row limit, header included.
const MAX_ROWS: usize = 1_048_576;
/// Shortest time between checkpoint saves.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

const WIDTHS: [f64; 13] = [
    6.0,  // row
    32.0, // input
    32.0, // user_principal_name
    38.0, // user_id
    24.0, // display_name
    12.0, // state_before
    10.0, // mfa_registered
    12.0, // target_state
    13.0, // action
    12.0, // state_after
    13.0, // outcome
    50.0, // error
    38.0, // request_id
];

pub struct XlsxWriter {
    path: PathBuf,
    rows: Vec<ResultRow>,
    last_save: Instant,
    /// Time to wait after the last save before the next checkpoint.
    wait: Duration,
    every: Duration,
    dirty: bool,
    /// Whether a save may replace what has the name: `--force`, or our own earlier save.
    replace: bool,
}

impl XlsxWriter {
    /// Takes the name (see [`super::create_writer`] for `force`) and saves a header-only
    /// workbook there.
    pub fn create(path: &Path, force: bool) -> Result<XlsxWriter, ReportError> {
        let mut w = XlsxWriter {
            path: path.to_path_buf(),
            rows: Vec::new(),
            last_save: Instant::now(),
            wait: CHECKPOINT_EVERY,
            every: CHECKPOINT_EVERY,
            dirty: false,
            replace: force,
        };
        w.save()?;
        Ok(w)
    }

    /// Sets the shortest time between checkpoint saves (default 5 s; `Duration::ZERO` saves
    /// after every row, which is slow for big sheets).
    pub fn set_checkpoint_every(&mut self, every: Duration) {
        self.every = every;
        self.wait = every;
    }

    fn save(&mut self) -> Result<(), ReportError> {
        let started = Instant::now();
        let bytes = build(&self.rows)
            .and_then(|mut wb| wb.save_to_buffer())
            .map_err(|e| ReportError::Xlsx {
                path: self.path.clone(),
                action: "build",
                message: e.to_string(),
            })?;
        files::write_whole(&self.path, &bytes, self.replace, Access::Shared)?;
        self.replace = true;
        self.last_save = Instant::now();
        // Big sheets take a while to build: never spend more than ~10 % of the time saving.
        self.wait = if self.every.is_zero() {
            Duration::ZERO
        } else {
            self.every.max(started.elapsed() * 10)
        };
        self.dirty = false;
        Ok(())
    }
}

impl ResultWriter for XlsxWriter {
    fn write_row(&mut self, row: &ResultRow) -> Result<(), ReportError> {
        if self.rows.len() + 1 >= MAX_ROWS {
            return Err(ReportError::Xlsx {
                path: self.path.clone(),
                action: "write",
                message: format!(
                    "more rows than an Excel sheet holds ({MAX_ROWS}); write a CSV result instead (-o name.csv)"
                ),
            });
        }
        self.rows.push(row.clone());
        self.dirty = true;
        if self.last_save.elapsed() >= self.wait {
            self.save()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ReportError> {
        if self.dirty {
            self.save()?;
        }
        Ok(())
    }
}

fn build(rows: &[ResultRow]) -> Result<Workbook, XlsxError> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(SHEET)?;
    let bold = Format::new().set_bold();
    for (c, name) in COLUMNS.iter().enumerate() {
        let c = c as u16;
        ws.write_string_with_format(0, c, *name, &bold)?;
        ws.set_column_width(c, WIDTHS[c as usize])?;
    }
    for (i, r) in rows.iter().enumerate() {
        let rn = (i + 1) as u32;
        ws.write_number(rn, 0, r.row as f64)?;
        for (c, cell) in r.cells().iter().enumerate().skip(1) {
            if !cell.is_empty() {
                ws.write_string(rn, c as u16, fit(escape(cell).into_owned()))?;
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofilter(0, 0, rows.len() as u32, (COLUMNS.len() - 1) as u16)?;
    Ok(wb)
}

/// Cuts a cell to Excel's limit (only ever an absurdly long error text).
fn fit(mut s: String) -> String {
    if s.chars().count() > MAX_CELL_CHARS {
        s = s.chars().take(MAX_CELL_CHARS - 1).collect();
        s.push('…');
    }
    s
}
