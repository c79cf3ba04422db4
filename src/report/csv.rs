//! The CSV result writer: UTF-8 with a BOM, CRLF line endings, header = [`COLUMNS`], every
//! row handed to the operating system as soon as it is written and synced to disk at least
//! every second while rows arrive, `finish` syncs.
//!
//! The file is created with its BOM and header under a fresh name in the target folder and
//! renamed to its final name at once, before any row ([`super::files`]: never through a
//! symbolic link, never over a file without `--force`); rows are then appended through the
//! open handle, so a crash or Ctrl-C leaves a valid CSV holding every row already written.
//!
//! `-o -` writes the same CSV to standard output, **without** the BOM: standard output goes
//! to another program or a pipe, where a BOM would become part of the first column's name.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::escape::escape;
use super::files::{self, Access};
use super::{ReportError, ResultRow, ResultWriter, COLUMNS};

/// The UTF-8 byte order mark written first, so Excel opens the file as UTF-8.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Longest time a written row may stay in the operating system's cache before a sync.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Where the CSV goes.
enum Sink {
    File(File),
    Stream(Box<dyn Write>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(file) => file.write(buf),
            Sink::Stream(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(file) => file.flush(),
            Sink::Stream(w) => w.flush(),
        }
    }
}

pub struct CsvWriter {
    /// The file's name, or "standard output".
    path: PathBuf,
    inner: ::csv::Writer<Sink>,
    last_sync: Instant,
}

impl CsvWriter {
    /// Creates the file with BOM + header (see [`super::create_writer`] for `force`).
    pub fn create(path: &Path, force: bool) -> Result<CsvWriter, ReportError> {
        let mut first = BOM.to_vec();
        first.extend_from_slice(&header_bytes(path)?);
        let file = files::create_new(path, &first, force, Access::Shared)?;
        Ok(CsvWriter {
            path: path.to_path_buf(),
            inner: csv_writer(Sink::File(file)),
            last_sync: Instant::now(),
        })
    }

    /// The CSV on standard output (`-o -`): header first, no BOM, each row flushed.
    pub fn stdout() -> Result<CsvWriter, ReportError> {
        CsvWriter::to_stream(Box::new(std::io::stdout()))
    }

    /// The CSV into any stream (standard output, or a buffer in tests), without a BOM. Errors
    /// name it "standard output".
    pub fn to_stream(mut out: Box<dyn Write>) -> Result<CsvWriter, ReportError> {
        let path = PathBuf::from("standard output");
        out.write_all(&header_bytes(&path)?)
            .and_then(|_| out.flush())
            .map_err(|e| ReportError::io(&path, "write", e))?;
        Ok(CsvWriter {
            path,
            inner: csv_writer(Sink::Stream(out)),
            last_sync: Instant::now(),
        })
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
            .map_err(|e| ReportError::io(path, "write", e))?;
        if let Sink::File(file) = self.inner.get_ref() {
            if self.last_sync.elapsed() >= SYNC_EVERY {
                file.sync_data()
                    .map_err(|e| ReportError::io(path, "sync", e))?;
                self.last_sync = Instant::now();
            }
        }
        Ok(())
    }
}

fn csv_writer(sink: Sink) -> ::csv::Writer<Sink> {
    ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(sink)
}

/// The header line, CRLF-terminated.
fn header_bytes(path: &Path) -> Result<Vec<u8>, ReportError> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(COLUMNS)
        .map_err(|e| csv_write_error(path, e))?;
    w.into_inner()
        .map_err(|e| ReportError::io(path, "write", e.into_error()))
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
        let sink = self
            .inner
            .into_inner()
            .map_err(|e| ReportError::io(&path, "write", e.into_error()))?;
        match sink {
            Sink::File(file) => file
                .sync_all()
                .map_err(|e| ReportError::io(&path, "sync", e)),
            Sink::Stream(mut w) => w.flush().map_err(|e| ReportError::io(&path, "write", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Outcome, ResultRow};
    use std::sync::{Arc, Mutex};

    /// A stream the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn standard_output_gets_the_same_csv_without_a_bom_row_by_row() {
        let out = Shared::default();
        let mut w = CsvWriter::to_stream(Box::new(out.clone())).unwrap();
        let header = format!("{}\r\n", COLUMNS.join(","));
        assert_eq!(out.text(), header, "the header comes at once");
        let mut row = ResultRow::new(2, "=cmd|' /C calc'!A0", Outcome::Invalid);
        row.error = Some("not an address".into());
        w.write_row(&row).unwrap();
        let after_one = out.text();
        assert!(!after_one.starts_with('\u{feff}'));
        assert_eq!(
            after_one.lines().count(),
            2,
            "the row is there before finish"
        );
        assert!(after_one.contains(",'=cmd|' /C calc'!A0,"), "{after_one}");
        Box::new(w).finish().unwrap();

        // Byte for byte the file's CSV after its BOM.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let mut f = CsvWriter::create(&p, false).unwrap();
        f.write_row(&row).unwrap();
        Box::new(f).finish().unwrap();
        let file = std::fs::read(&p).unwrap();
        assert_eq!(&file[..3], BOM);
        assert_eq!(&file[3..], out.text().as_bytes());
    }

    #[test]
    fn the_file_has_its_final_name_and_header_before_any_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let mut w = CsvWriter::create(&p, false).unwrap();
        let mut expect = BOM.to_vec();
        expect.extend_from_slice(format!("{}\r\n", COLUMNS.join(",")).as_bytes());
        assert_eq!(std::fs::read(&p).unwrap(), expect);
        w.write_row(&ResultRow::new(2, "a@contoso.com", Outcome::NotFound))
            .unwrap();
        // Not finished (as if the process died now): the row is in the file.
        assert!(String::from_utf8(std::fs::read(&p).unwrap())
            .unwrap()
            .contains("2,a@contoso.com,"));
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
