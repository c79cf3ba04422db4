//! The CSV result writer: UTF-8 with a BOM, CRLF line endings, header = [`COLUMNS`], every
//! row flushed to the file as soon as it is written, `finish` syncs to disk.
//!
//! The file is written under its final name from the first byte (no temporary file renamed at
//! the end): a crash or Ctrl-C leaves a valid CSV holding every row already written.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::escape::escape;
use super::{create_file, ReportError, ResultRow, ResultWriter, COLUMNS};

/// The UTF-8 byte order mark written first, so Excel opens the file as UTF-8.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

pub struct CsvWriter {
    path: PathBuf,
    inner: ::csv::Writer<File>,
}

impl CsvWriter {
    /// Creates the file (see [`super::create_writer`] for `force`) and writes BOM + header.
    pub fn create(path: &Path, force: bool) -> Result<CsvWriter, ReportError> {
        use std::io::Write;
        let mut file = create_file(path, force)?;
        file.write_all(BOM)
            .map_err(|e| ReportError::io(path, "write", e))?;
        let inner = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .from_writer(file);
        let mut w = CsvWriter {
            path: path.to_path_buf(),
            inner,
        };
        w.write_record(COLUMNS.iter().copied())?;
        Ok(w)
    }

    fn write_record<'a>(
        &mut self,
        cells: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ReportError> {
        let path = &self.path;
        self.inner
            .write_record(cells)
            .map_err(|e| csv_write_error(path, e))?;
        self.inner
            .flush()
            .map_err(|e| ReportError::io(path, "write", e))
    }
}

fn csv_write_error(path: &Path, e: ::csv::Error) -> ReportError {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => ReportError::io(path, "write", e),
        other => ReportError::Csv {
            path: path.to_path_buf(),
            message: format!("{other:?}"),
        },
    }
}

impl ResultWriter for CsvWriter {
    fn write_row(&mut self, row: &ResultRow) -> Result<(), ReportError> {
        let cells = row.cells();
        // `row` is a number: never escaped. Every other cell is text.
        let escaped: Vec<std::borrow::Cow<'_, str>> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 0 { c.as_str().into() } else { escape(c) })
            .collect();
        self.write_record(escaped.iter().map(|c| c.as_ref()))
    }

    fn finish(mut self: Box<Self>) -> Result<(), ReportError> {
        let path = self.path.clone();
        self.inner
            .flush()
            .map_err(|e| ReportError::io(&path, "write", e))?;
        let file = self
            .inner
            .into_inner()
            .map_err(|e| ReportError::io(&path, "write", e.into_error()))?;
        file.sync_all()
            .map_err(|e| ReportError::io(&path, "sync", e))
    }
}
