//! Workbooks (XLSX, XLSM, XLSB, XLS, ODS) through calamine: opening, sheet choice, cell text.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use calamine::{Data, Ods, Range, Reader as _, SheetVisible, Xls, Xlsb, Xlsx};

use super::header::Row;
use super::InputError;

/// The workbook kinds we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

impl Kind {
    pub fn name(self, path: &Path) -> &'static str {
        match self {
            Kind::Xlsx => {
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                if ext.as_deref() == Some("xlsm") {
                    "XLSM"
                } else {
                    "XLSX"
                }
            }
            Kind::Xlsb => "XLSB",
            Kind::Xls => "XLS",
            Kind::Ods => "ODS",
        }
    }
}

type Rs = BufReader<File>;

pub enum Book {
    Xlsx(Xlsx<Rs>),
    Xlsb(Xlsb<Rs>),
    Xls(Xls<Rs>),
    Ods(Ods<Rs>),
}

/// calamine (and zip) panic on some damaged files; we catch those panics and report the file as
/// unreadable. This hook keeps their panic messages off the admin's screen; every other panic
/// goes to the hook that was installed before.
fn quiet_reader_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let from_reader = info.location().is_some_and(|l| {
                let f = l.file().replace('\\', "/");
                f.contains("/calamine-") || f.contains("/zip-")
            });
            if !from_reader {
                previous(info);
            }
        }));
    });
}

/// Runs a workbook reader, turning its panic into an error.
fn guarded<T>(
    f: impl FnOnce() -> Result<T, InputError>,
    on_panic: impl FnOnce() -> InputError,
) -> Result<T, InputError> {
    quiet_reader_panics();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| Err(on_panic()))
}

fn corrupt(path: &Path, kind: Kind, detail: impl std::fmt::Display) -> InputError {
    InputError::Corrupt {
        path: path.to_path_buf(),
        detail: format!(
            "it looks like {} but cannot be read ({detail})",
            kind.name(path)
        ),
        hint: "open it in Excel or LibreOffice and save a new copy (File › Save As › Excel \
               Workbook .xlsx), or export it as CSV"
            .into(),
    }
}

fn password(path: &Path) -> InputError {
    InputError::PasswordProtected {
        path: path.to_path_buf(),
    }
}

impl Book {
    pub fn open(path: &Path, kind: Kind) -> Result<Book, InputError> {
        let rs = || -> Result<Rs, InputError> {
            Ok(BufReader::new(
                File::open(path).map_err(|e| InputError::io(path, e))?,
            ))
        };
        // calamine can panic on some damaged files; a panic must become an error.
        guarded(
            || -> Result<Book, InputError> {
                // Nothing calamine reads may expand past the limits (zip bombs, looping XLS).
                super::guard::check(path, kind)?;
                Ok(match kind {
                    Kind::Xlsx => Book::Xlsx(Xlsx::new(rs()?).map_err(|e| match e {
                        calamine::XlsxError::Password => password(path),
                        e => corrupt(path, kind, e),
                    })?),
                    Kind::Xlsb => Book::Xlsb(Xlsb::new(rs()?).map_err(|e| match e {
                        calamine::XlsbError::Password => password(path),
                        e => corrupt(path, kind, e),
                    })?),
                    Kind::Xls => Book::Xls(Xls::new(rs()?).map_err(|e| match e {
                        calamine::XlsError::Password => password(path),
                        e => corrupt(path, kind, e),
                    })?),
                    Kind::Ods => Book::Ods(Ods::new(rs()?).map_err(|e| match e {
                        calamine::OdsError::Password => password(path),
                        e => corrupt(path, kind, e),
                    })?),
                })
            },
            || corrupt(path, kind, "the reader failed on its contents"),
        )
    }

    /// Sheet names in workbook order, with whether each is hidden.
    pub fn sheets(&self) -> Vec<(String, bool)> {
        let meta = match self {
            Book::Xlsx(b) => b.sheets_metadata(),
            Book::Xlsb(b) => b.sheets_metadata(),
            Book::Xls(b) => b.sheets_metadata(),
            Book::Ods(b) => b.sheets_metadata(),
        };
        meta.iter()
            .map(|s| (s.name.clone(), s.visible != SheetVisible::Visible))
            .collect()
    }

    /// The rows of one sheet. XLSX is read cell by cell into sparse rows (calamine's dense
    /// range would allocate every cell of the bounding box: a stray value in column XFD would
    /// cost gigabytes); the other formats through calamine's range.
    pub fn rows(&mut self, path: &Path, kind: Kind, name: &str) -> Result<BoxedRows, InputError> {
        guarded(
            || -> Result<BoxedRows, InputError> {
                let range = match self {
                    Book::Xlsx(b) => return Ok(Box::new(xlsx_sparse_rows(b, path, kind, name)?)),
                    Book::Xlsb(b) => b.worksheet_range(name).map_err(|e| match e {
                        calamine::XlsbError::Password => password(path),
                        e => corrupt(path, kind, e),
                    }),
                    Book::Xls(b) => b.worksheet_range(name).map_err(|e| match e {
                        calamine::XlsError::Password => password(path),
                        e => corrupt(path, kind, e),
                    }),
                    Book::Ods(b) => b.worksheet_range(name).map_err(|e| match e {
                        calamine::OdsError::Password => password(path),
                        e => corrupt(path, kind, e),
                    }),
                }?;
                Ok(Box::new(SheetRows::new(range, path, name)))
            },
            || corrupt(path, kind, format!("sheet '{name}' could not be read")),
        )
    }
}

/// Rows of a sheet, boxed.
pub type BoxedRows = Box<dyn Iterator<Item = Result<Row, InputError>> + Send>;

/// A row as read from an XLSX sheet: its number and its cells with a value (column, text).
type SparseRow = (u64, Vec<(u32, String)>);

/// Reads an XLSX sheet cell by cell, keeping only the cells that hold something. Refuses a
/// cell over Excel's limit and a sheet whose cells hold more than the limits allow.
fn xlsx_sparse_rows(
    book: &mut Xlsx<Rs>,
    path: &Path,
    kind: Kind,
    name: &str,
) -> Result<SparseRows, InputError> {
    use super::guard::{
        cell_too_large, count_text, size_text, too_large, CELL_MAX_CHARS, SHEET_MAX_CELLS,
        SHEET_TEXT_MAX,
    };
    let map = |e: calamine::XlsxError| match e {
        calamine::XlsxError::Password => password(path),
        e => corrupt(path, kind, e),
    };
    let mut cells = book.worksheet_cells_reader(name).map_err(map)?;
    let mut rows: Vec<SparseRow> = Vec::new();
    let mut in_order = true;
    let (mut kept, mut text_bytes) = (0u64, 0u64);
    while let Some(cell) = cells.next_cell().map_err(map)? {
        let (r, c) = cell.get_position();
        let text = cell_text(&Data::from(cell.get_value().clone()));
        if text.is_empty() {
            continue;
        }
        let n = r as u64 + 1;
        if text.len() > CELL_MAX_CHARS {
            let chars = text.chars().count();
            if chars > CELL_MAX_CHARS {
                return Err(cell_too_large(path, name, n, c as usize, chars));
            }
        }
        kept += 1;
        text_bytes += text.len() as u64;
        if kept > SHEET_MAX_CELLS {
            return Err(too_large(
                path,
                format!(
                    "sheet \"{}\" holds more than {} cells with a value",
                    super::normalize::printable(name),
                    count_text(SHEET_MAX_CELLS)
                ),
            ));
        }
        if text_bytes > SHEET_TEXT_MAX {
            return Err(too_large(
                path,
                format!(
                    "the cells of sheet \"{}\" hold more than {} of text",
                    super::normalize::printable(name),
                    size_text(SHEET_TEXT_MAX)
                ),
            ));
        }
        match rows.last() {
            Some(last) if last.0 == n => {}
            Some(last) => {
                in_order &= last.0 < n;
                rows.push((n, Vec::new()));
            }
            None => rows.push((n, Vec::new())),
        }
        if let Some((_, row)) = rows.last_mut() {
            row.push((c, text));
        }
    }
    if !in_order {
        // Rows written out of order: sort them and merge pieces of the same row.
        rows.sort_by_key(|r| r.0);
        let mut merged: Vec<SparseRow> = Vec::with_capacity(rows.len());
        for (n, cells) in rows {
            match merged.last_mut() {
                Some(last) if last.0 == n => last.1.extend(cells),
                _ => merged.push((n, cells)),
            }
        }
        rows = merged;
    }
    Ok(SparseRows {
        rows: rows.into_iter(),
        next_row: None,
        held: None,
    })
}

/// Sparse rows in order, with the empty rows between them given back as blank rows. Each row
/// is made whole (index 0 = column A) only when it is handed out.
pub struct SparseRows {
    rows: std::vec::IntoIter<SparseRow>,
    next_row: Option<u64>,
    held: Option<SparseRow>,
}

fn dense(row: SparseRow) -> Row {
    let (n, cells) = row;
    let width = cells
        .iter()
        .map(|(c, _)| *c as usize + 1)
        .max()
        .unwrap_or(0);
    let mut out = vec![String::new(); width];
    // A later value for the same cell wins, as it did when rows were read whole.
    for (c, v) in cells {
        out[c as usize] = v;
    }
    (n, out)
}

impl Iterator for SparseRows {
    type Item = Result<Row, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = match self.held.take() {
            Some(r) => r,
            None => self.rows.next()?,
        };
        match self.next_row {
            Some(expected) if expected < row.0 => {
                self.next_row = Some(expected + 1);
                self.held = Some(row);
                Some(Ok((expected, Vec::new())))
            }
            _ => {
                self.next_row = Some(row.0 + 1);
                Some(Ok(dense(row)))
            }
        }
    }
}

/// Text of a cell as the admin sees it: whole numbers without `.0`, dates as ISO dates.
pub fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => float_text(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTime(dt) => {
            if dt.is_duration() {
                return float_text(dt.as_f64());
            }
            let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
            if (h, mi, s) == (0, 0, 0) {
                format!("{y:04}-{mo:02}-{d:02}")
            } else {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => e.to_string(),
    }
}

fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Rows of a loaded sheet, numbered as Excel shows them, cells aligned so index 0 is column A.
pub struct SheetRows {
    range: Range<Data>,
    next: usize,
    start_row: u32,
    start_col: u32,
    path: std::path::PathBuf,
    sheet: String,
}

impl SheetRows {
    pub fn new(range: Range<Data>, path: &Path, sheet: &str) -> SheetRows {
        let (start_row, start_col) = range.start().unwrap_or((0, 0));
        SheetRows {
            range,
            next: 0,
            start_row,
            start_col,
            path: path.to_path_buf(),
            sheet: sheet.to_string(),
        }
    }
}

impl Iterator for SheetRows {
    type Item = Result<Row, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let width = self.range.width();
        if self.next >= self.range.height() {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let n = self.start_row as u64 + i as u64 + 1;
        let mut cells = vec![String::new(); self.start_col as usize];
        cells.extend((0..width).map(|c| self.range.get((i, c)).map(cell_text).unwrap_or_default()));
        let max = super::guard::CELL_MAX_CHARS;
        if let Some((c, v)) = cells
            .iter()
            .enumerate()
            .find(|(_, v)| v.len() > max && v.chars().count() > max)
        {
            let chars = v.chars().count();
            self.next = self.range.height();
            return Some(Err(super::guard::cell_too_large(
                &self.path,
                &self.sheet,
                n,
                c,
                chars,
            )));
        }
        Some(Ok((n, cells)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of attribute `name` (with any namespace prefix when `any_prefix`) in a tag.
pub(super) fn attr(tag: &str, name: &str, any_prefix: bool) -> Option<String> {
    let mut from = 0;
    while let Some(p) = tag[from..].find(&format!("{name}=\"")) {
        let at = from + p;
        let before = tag[..at].chars().last();
        let ok = match before {
            Some(c) if c.is_whitespace() => true,
            Some(':') => any_prefix,
            _ => false,
        };
        let start = at + name.len() + 2;
        if ok {
            let end = tag[start..].find('"')? + start;
            return Some(unescape(&tag[start..end]));
        }
        from = start;
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Tags named `name` (with or without a namespace prefix) in an XML text.
pub(super) fn tags<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    xml.match_indices('<').filter_map(move |(i, _)| {
        let rest = &xml[i + 1..];
        let local = match rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/') {
            Some(e) => &rest[..e],
            None => return None,
        };
        let local = local.rsplit(':').next().unwrap_or(local);
        if local != name {
            return None;
        }
        let end = rest.find('>')?;
        Some(&rest[..end])
    })
}

/// Rows hidden in Excel (1-based numbers) in one sheet of an XLSX/XLSM file, read from the
/// sheet's XML (calamine does not report them). `None` when it cannot be told.
pub fn xlsx_hidden_rows(path: &Path, sheet: &str) -> Option<std::collections::BTreeSet<u64>> {
    quiet_reader_panics();
    std::panic::catch_unwind(|| hidden_rows_unguarded(path, sheet))
        .ok()
        .flatten()
}

fn hidden_rows_unguarded(path: &Path, sheet: &str) -> Option<std::collections::BTreeSet<u64>> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(path).ok()?)).ok()?;
    let mut text = |name: &str| -> Option<String> {
        let mut s = String::new();
        zip.by_name(name).ok()?.read_to_string(&mut s).ok()?;
        Some(s)
    };
    let wb = text("xl/workbook.xml")?;
    let rid = tags(&wb, "sheet")
        .find(|t| attr(t, "name", false).as_deref() == Some(sheet))
        .and_then(|t| attr(t, "id", true))?;
    let rels = text("xl/_rels/workbook.xml.rels")?;
    let target = tags(&rels, "Relationship")
        .find(|t| attr(t, "Id", false).as_deref() == Some(rid.as_str()))
        .and_then(|t| attr(t, "Target", false))?;
    let part = match target.strip_prefix('/') {
        Some(abs) => abs.to_string(),
        None => format!("xl/{target}"),
    };
    let mut entry = zip.by_name(&part).ok()?;
    // Stream the sheet: it can be large.
    let mut hidden = std::collections::BTreeSet::new();
    let mut row_no = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = entry.read(&mut chunk).ok()?;
        carry.extend_from_slice(&chunk[..n]);
        let mut i = 0;
        let mut keep_from = None;
        while let Some(p) = find(&carry[i..], b"<row") {
            let start = i + p;
            let Some(e) = find(&carry[start..], b">") else {
                keep_from = Some(start);
                break;
            };
            let tag = String::from_utf8_lossy(&carry[start..start + e]);
            i = start + e + 1;
            let next = tag.as_bytes().get(4).copied();
            if !matches!(next, Some(b' ' | b'\t' | b'\r' | b'\n' | b'/') | None) {
                continue; // <rowBreaks>, <rowFields>, ...
            }
            row_no = attr(&tag, "r", false)
                .and_then(|r| r.parse().ok())
                .unwrap_or(row_no + 1);
            let h = attr(&tag, "hidden", false);
            if matches!(h.as_deref(), Some("1") | Some("true")) {
                hidden.insert(row_no);
            }
        }
        if n == 0 {
            break;
        }
        let from = keep_from.unwrap_or_else(|| i.max(carry.len().saturating_sub(4)));
        carry.drain(..from);
    }
    Some(hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_rows_are_read_from_the_sheet_xml() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hr-new-starters.xlsx");
        let rows = xlsx_hidden_rows(&p, "New starters").unwrap();
        assert_eq!(rows.into_iter().collect::<Vec<_>>(), [8]);
        assert!(xlsx_hidden_rows(&p, "Leavers").unwrap().is_empty());
        assert!(xlsx_hidden_rows(&p, "Nope").is_none());
        assert_eq!(
            attr(r#"sheet name="A &amp; B" r:id="rId2""#, "name", false).as_deref(),
            Some("A & B")
        );
        assert_eq!(
            attr(r#"sheet name="A" sheetId="1" r:id="rId2""#, "id", true).as_deref(),
            Some("rId2")
        );
    }

    #[test]
    fn numbers_print_as_admins_typed_them() {
        assert_eq!(cell_text(&Data::Float(10231.0)), "10231");
        assert_eq!(cell_text(&Data::Float(0.5)), "0.5");
        assert_eq!(cell_text(&Data::Int(7)), "7");
        assert_eq!(cell_text(&Data::Bool(true)), "TRUE");
    }
}
