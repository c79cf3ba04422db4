//! Reading every file an admin brings: CSV/TSV/TXT in any usual encoding and delimiter,
//! XLSX/XLSM/XLS/ODS workbooks. Finds the user column by header, keeps spreadsheet row numbers,
//! marks invalid values, duplicates and exclusions. Never touches the network.
//!
//! CONTRACT (the engine and `validate` rely on these signatures):
//! - [`open`] returns a [`Reader`]: [`SourceInfo`] plus an iterator of rows (streamed for CSV).
//! - [`Marker`] turns raw rows into [`InputRow`]s with duplicates and exclusions marked.
//! - [`read_exclusions`] reads an `--exclude` file into a set of keys.
//! - [`read_all`] does all three for the engine.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::model::InputRow;

/// How to read a file (from `--sheet`, `--column`, `--encoding`, `--delimiter`).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    pub sheet: Option<String>,
    pub column: Option<String>,
    pub encoding: Option<String>,
    pub delimiter: Option<String>,
}

/// What was found about the file, for messages and the run record.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SourceInfo {
    pub path: PathBuf,
    /// "CSV", "XLSX", "XLS", "ODS", ...
    pub format: String,
    /// For text files: the encoding used.
    pub encoding: Option<String>,
    /// For text files: the delimiter used.
    pub delimiter: Option<char>,
    /// For workbooks: the sheet read.
    pub sheet: Option<String>,
    /// The user column's header as written (or "A" for a headerless file).
    pub column: String,
    /// The user column's letter (A, B, ...).
    pub column_letter: String,
    /// Spreadsheet row number of the header (None for a headerless list).
    pub header_row: Option<u64>,
    /// The per-row state column's header, if the file has one.
    pub state_column: Option<String>,
}

/// Errors that make a file unusable. Each names the file (and sheet, row, column where it
/// applies) and says what to do. Exit code 2; nothing is sent to Graph.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {message}")]
    Unusable { path: PathBuf, message: String },
}

/// An open input file: what was found, and its data rows in order.
pub struct Reader {
    pub info: SourceInfo,
    rows: Box<dyn Iterator<Item = Result<RawRow, InputError>>>,
}

impl Iterator for Reader {
    type Item = Result<RawRow, InputError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}

/// One data row before duplicate/exclusion marking.
#[derive(Clone, Debug)]
pub struct RawRow {
    pub row: u64,
    pub input: String,
    pub state: Option<String>,
}

/// Opens a file and finds its user column.
pub fn open(path: &Path, opts: &ReadOptions) -> Result<Reader, InputError> {
    let _ = (path, opts);
    Err(InputError::Unusable {
        path: path.to_path_buf(),
        message: "input reading is not built yet".into(),
    })
}

/// Marks invalid values, duplicates (same user twice) and excluded users.
pub struct Marker {
    excluded: HashSet<String>,
}

impl Marker {
    pub fn new(excluded: HashSet<String>) -> Marker {
        Marker { excluded }
    }

    pub fn mark(&mut self, raw: RawRow) -> Result<InputRow, InputError> {
        let _ = (&self.excluded, raw);
        unimplemented!("input::Marker::mark")
    }
}

/// Reads an `--exclude` file (any format `open` reads) into normalised keys.
pub fn read_exclusions(path: &Path, opts: &ReadOptions) -> Result<HashSet<String>, InputError> {
    let _ = (path, opts);
    Ok(HashSet::new())
}

/// Everything the engine needs: the source info and every row, marked.
pub fn read_all(
    path: &Path,
    opts: &ReadOptions,
    exclude: Option<&Path>,
) -> Result<(SourceInfo, Vec<InputRow>), InputError> {
    let excluded = match exclude {
        Some(p) => read_exclusions(p, &ReadOptions::default())?,
        None => HashSet::new(),
    };
    let mut reader = open(path, opts)?;
    let info = reader.info.clone();
    let mut marker = Marker::new(excluded);
    let mut rows = Vec::new();
    for raw in &mut reader {
        rows.push(marker.mark(raw?)?);
    }
    Ok((info, rows))
}
