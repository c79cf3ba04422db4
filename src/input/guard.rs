//! Limits on what a workbook may expand to, checked before calamine reads it: a small file must
//! not be able to exhaust memory (a zip bomb, one huge cell, cells repeated a billion times, a
//! loop in a compound file's sector chains).
//!
//! XLSX, XLSM, XLSB and ODS are zip archives: every part is decompressed once through a counting
//! reader (the sizes the zip directory declares can lie), and refused past [`PART_MAX`] or,
//! all parts together, [`TOTAL_MAX`]. Their XML may not hold a text or tag longer than
//! [`XML_RUN_MAX`] (a cell holds at most [`CELL_MAX_CHARS`] characters, however escaped), and an
//! ODS sheet may not repeat its cells into more than [`ODS_MAX_CELLS`] cells. XLS files (OLE
//! compound files) are refused above [`XLS_FILE_MAX`] or when a sector chain loops.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::workbook::Kind;
use super::InputError;

/// Most bytes one part of a zipped workbook may expand to.
pub const PART_MAX: u64 = 256 << 20;
/// Most bytes all parts of a zipped workbook may expand to together.
pub const TOTAL_MAX: u64 = 512 << 20;
/// Excel's own limit on the characters in one cell.
pub const CELL_MAX_CHARS: usize = 32_767;
/// Longest run of XML bytes without a `<`: a cell of [`CELL_MAX_CHARS`] characters written as
/// character references (`&#x1F600;`) takes well under this.
pub const XML_RUN_MAX: u64 = 1 << 20;
/// Most cells an ODS sheet may expand to once its repeated rows and columns are counted.
pub const ODS_MAX_CELLS: u64 = 10_000_000;
/// Most bytes of cell text a sheet may expand to (repeated cells counted each time).
pub const SHEET_TEXT_MAX: u64 = 256 << 20;
/// Most cells with a value kept from one XLSX sheet.
pub const SHEET_MAX_CELLS: u64 = 20_000_000;
/// Largest XLS file read (an XLS sheet holds at most 65,536 rows of 256 columns).
pub const XLS_FILE_MAX: u64 = 256 << 20;

/// The limits in force (smaller ones in unit tests).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub part: u64,
    pub total: u64,
    pub xml_run: u64,
    pub ods_cells: u64,
    pub text: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            part: PART_MAX,
            total: TOTAL_MAX,
            xml_run: XML_RUN_MAX,
            ods_cells: ODS_MAX_CELLS,
            text: SHEET_TEXT_MAX,
        }
    }
}

/// `n` bytes as the admin reads them: "256 MiB", "1 MiB", "600 KiB".
pub fn size_text(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// `n` with thousands separators: 32767 → "32,767".
pub fn count_text(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn too_large(path: &Path, what: String) -> InputError {
    InputError::TooLarge {
        path: path.to_path_buf(),
        what,
        hint: "no user list is anywhere near that big: check that this is the right file, or \
               open it in Excel, copy the user list into a new workbook and save that (or \
               export it as CSV)"
            .into(),
    }
}

/// The error for one cell over Excel's limit.
pub(crate) fn cell_too_large(
    path: &Path,
    sheet: &str,
    row: u64,
    col: usize,
    chars: usize,
) -> InputError {
    InputError::TooLarge {
        path: path.to_path_buf(),
        what: format!(
            "sheet \"{}\", row {row}, column {}: the cell holds {} characters, more than a cell \
             can hold in Excel ({})",
            super::normalize::printable(sheet),
            super::header::col_letter(col),
            count_text(chars as u64),
            count_text(CELL_MAX_CHARS as u64)
        ),
        hint: "clear that cell in Excel (or LibreOffice) and save the file again".into(),
    }
}

/// Checks a workbook before calamine reads it.
pub fn check(path: &Path, kind: Kind) -> Result<(), InputError> {
    match kind {
        Kind::Xls => check_cfb(path),
        Kind::Xlsx | Kind::Xlsb | Kind::Ods => check_zip(path, kind, &Limits::default()),
    }
}

/// What one part is, for messages: the sheet it holds when that can be told.
fn part_text(zip: &mut zip::ZipArchive<BufReader<File>>, part: &str) -> String {
    let sheet = sheet_of_part(zip, part);
    match sheet {
        Some(s) => format!(
            "sheet \"{}\" (part {part})",
            super::normalize::printable(&s)
        ),
        None if part == "xl/sharedStrings.xml" => {
            format!("the workbook's shared text (part {part})")
        }
        None => format!("part {part}"),
    }
}

/// The sheet an XLSX worksheet part holds, from `xl/workbook.xml` and its relationships (each
/// read only up to 8 MiB).
fn sheet_of_part(zip: &mut zip::ZipArchive<BufReader<File>>, part: &str) -> Option<String> {
    use super::workbook::{attr, tags};
    let mut text = |name: &str| -> Option<String> {
        let mut s = String::new();
        zip.by_name(name)
            .ok()?
            .take(8 << 20)
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    };
    let rels = text("xl/_rels/workbook.xml.rels")?;
    let wb = text("xl/workbook.xml")?;
    let rid = tags(&rels, "Relationship")
        .find(|t| {
            attr(t, "Target", false).is_some_and(|target| {
                let full = match target.strip_prefix('/') {
                    Some(abs) => abs.to_string(),
                    None => format!("xl/{target}"),
                };
                full == part
            })
        })
        .and_then(|t| attr(t, "Id", false))?;
    let name = tags(&wb, "sheet")
        .find(|t| attr(t, "id", true).as_deref() == Some(rid.as_str()))
        .and_then(|t| attr(t, "name", false));
    name
}

/// Decompresses every part of a zipped workbook through a counting reader.
pub fn check_zip(path: &Path, kind: Kind, limits: &Limits) -> Result<(), InputError> {
    let file = File::open(path).map_err(|e| InputError::io(path, e))?;
    // A zip the zip crate cannot open, calamine cannot either: it reports the details.
    let Ok(mut zip) = zip::ZipArchive::new(BufReader::new(file)) else {
        return Ok(());
    };
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let name = match zip.name_for_index(i) {
            Some(Ok(n)) => n.to_string(),
            _ => continue,
        };
        let is_xml = name.ends_with(".xml") || name.ends_with(".rels");
        let mut scan = XmlScan::new(kind == Kind::Ods && name == "content.xml");
        let outcome = {
            let Ok(mut entry) = zip.by_index(i) else {
                continue;
            };
            let mut part = 0u64;
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => n,
                    // A damaged part: calamine stops at the same place and says so.
                    Err(_) => break None,
                };
                part += n as u64;
                total += n as u64;
                if part > limits.part {
                    break Some(Found::Part);
                }
                if total > limits.total {
                    break Some(Found::Total);
                }
                if is_xml {
                    if let Some(f) = scan.feed(&buf[..n], limits) {
                        break Some(f);
                    }
                }
            }
        };
        let Some(found) = outcome else { continue };
        let what = match found {
            Found::Part => format!(
                "{} expands to more than {}",
                part_text(&mut zip, &name),
                size_text(limits.part)
            ),
            Found::Total => format!(
                "the workbook expands to more than {} (reached in part {name})",
                size_text(limits.total)
            ),
            Found::Run => match scan.last_cell.as_deref().and_then(split_cell_ref) {
                Some((col, row)) if kind != Kind::Ods && name.starts_with("xl/worksheets/") => {
                    format!(
                        "{}, row {row}, column {col}: the cell holds more than {}, more than a \
                         cell can hold in Excel ({} characters)",
                        part_text(&mut zip, &name),
                        size_text(limits.xml_run),
                        count_text(CELL_MAX_CHARS as u64)
                    )
                }
                _ => format!(
                    "{} holds a single value or tag of more than {}, more than a cell can hold \
                     in Excel ({} characters)",
                    match &scan.ods {
                        Some(o) if !o.table.is_empty() => format!(
                            "sheet \"{}\" (part {name})",
                            super::normalize::printable(&o.table)
                        ),
                        _ => part_text(&mut zip, &name),
                    },
                    size_text(limits.xml_run),
                    count_text(CELL_MAX_CHARS as u64)
                ),
            },
            Found::OdsCells(cells) => format!(
                "sheet \"{}\" repeats its rows and columns into {} cells or more (at most {} are \
                 read)",
                super::normalize::printable(
                    scan.ods.as_ref().map(|o| o.table.as_str()).unwrap_or("")
                ),
                count_text(cells),
                count_text(limits.ods_cells)
            ),
            Found::OdsText(bytes) => format!(
                "sheet \"{}\" repeats its cells into {} of text or more (at most {} are read)",
                super::normalize::printable(
                    scan.ods.as_ref().map(|o| o.table.as_str()).unwrap_or("")
                ),
                size_text(bytes),
                size_text(limits.text)
            ),
        };
        return Err(too_large(path, what));
    }
    Ok(())
}

/// "AB12" → ("AB", 12).
fn split_cell_ref(r: &str) -> Option<(String, u64)> {
    let letters: String = r.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let row = r[letters.len()..].parse().ok()?;
    if letters.is_empty() {
        return None;
    }
    Some((letters.to_ascii_uppercase(), row))
}

enum Found {
    Part,
    Total,
    Run,
    OdsCells(u64),
    OdsText(u64),
}

/// What the scan of an ODS `content.xml` keeps: enough to count the cells calamine will make
/// of repeated rows and columns.
#[derive(Default)]
struct OdsCount {
    table: String,
    /// Rows from the first row with a value to the last one so far (repeats counted).
    span: u64,
    /// Empty rows seen since the last row with a value.
    pending_empty: u64,
    seen_value: bool,
    /// Widest row (up to its last cell with a value), repeats counted.
    width: u64,
    text: u64,
    // The row being read.
    row_repeat: u64,
    row_cols: u64,
    row_width: u64,
    row_text: u64,
    // The cell being read.
    in_cell: bool,
    cell_repeat: u64,
    cell_text: u64,
}

/// A streaming look at XML: the longest run without `<`, the last XLSX cell reference, and
/// for ODS the repeated cells.
struct XmlScan {
    run: u64,
    in_tag: bool,
    quote: Option<u8>,
    /// The start of the tag being read (enough for its name and attributes of interest).
    tag: Vec<u8>,
    last_cell: Option<String>,
    ods: Option<OdsCount>,
}

const TAG_KEPT: usize = 2048;

impl XmlScan {
    fn new(ods: bool) -> XmlScan {
        XmlScan {
            run: 0,
            in_tag: false,
            quote: None,
            tag: Vec::with_capacity(TAG_KEPT),
            last_cell: None,
            ods: ods.then(OdsCount::default),
        }
    }

    /// Scans the next bytes of the part. Text is skipped with `memchr` (through
    /// `BufRead::skip_until`), so a big part costs little beyond its decompression.
    fn feed(&mut self, bytes: &[u8], limits: &Limits) -> Option<Found> {
        use std::io::BufRead;
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            if self.in_tag {
                let (n, ended) = self.tag_part(rest);
                self.run += n as u64;
                pos += n;
                if self.run > limits.xml_run {
                    return Some(Found::Run);
                }
                if ended {
                    self.in_tag = false;
                    if let Some(f) = self.end_tag(limits) {
                        return Some(f);
                    }
                }
            } else {
                let mut r = rest;
                let n = r.skip_until(b'<').unwrap_or(rest.len()).max(1);
                let found = rest[n - 1] == b'<';
                let text = (n - usize::from(found)) as u64;
                self.run += text;
                if let Some(o) = &mut self.ods {
                    if o.in_cell {
                        o.cell_text += text;
                    }
                }
                if self.run > limits.xml_run {
                    return Some(Found::Run);
                }
                pos += n;
                if found {
                    self.run = 1;
                    // Only a few tags matter (XLSX cells, ODS table elements): the others
                    // are skipped like text.
                    if self.skippable(&bytes[pos..]) {
                        continue;
                    }
                    self.in_tag = true;
                    self.quote = None;
                    self.tag.clear();
                }
            }
        }
        None
    }

    /// Whether the tag starting at `next` (just after its `<`) is of no interest.
    fn skippable(&self, next: &[u8]) -> bool {
        if self.ods.is_some() {
            let name = next.strip_prefix(b"/").unwrap_or(next);
            name.len() >= 6 && !name.starts_with(b"table:")
        } else {
            matches!(next.first(), Some(c) if *c != b'c' && *c != b'/')
        }
    }

    /// Reads the tag being read on from `rest`: (bytes taken, whether its `>` was reached).
    /// XLSX attributes hold no `>`; ODS ones can (formulas), so quotes are followed there.
    fn tag_part(&mut self, rest: &[u8]) -> (usize, bool) {
        use std::io::BufRead;
        let (n, ended) = if self.ods.is_none() {
            let mut r = rest;
            let n = r.skip_until(b'>').unwrap_or(rest.len()).max(1);
            (n, rest[n - 1] == b'>')
        } else {
            let mut end = None;
            for (i, &b) in rest.iter().enumerate() {
                match (self.quote, b) {
                    (Some(q), _) if b == q => self.quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => self.quote = Some(b),
                    (None, b'>') => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => {}
                }
            }
            match end {
                Some(n) => (n, true),
                None => (rest.len(), false),
            }
        };
        let body = &rest[..n - usize::from(ended)];
        let keep = TAG_KEPT.saturating_sub(self.tag.len()).min(body.len());
        self.tag.extend_from_slice(&body[..keep]);
        (n, ended)
    }

    /// A tag just ended (its bytes, without `<` and `>`, are in `self.tag`).
    fn end_tag(&mut self, limits: &Limits) -> Option<Found> {
        if self.ods.is_none()
            && !matches!(
                self.tag.as_slice(),
                [b'c', b' ' | b'>' | b'/', ..] | [b'/', b'c', ..]
            )
        {
            return None;
        }
        let tag = std::mem::take(&mut self.tag);
        let closing = tag.first() == Some(&b'/');
        let body = if closing { &tag[1..] } else { &tag[..] };
        let self_closing = body.last() == Some(&b'/');
        let name_end = body
            .iter()
            .position(|c| c.is_ascii_whitespace() || *c == b'/')
            .unwrap_or(body.len());
        let name = &body[..name_end];
        let local = match name.iter().rposition(|c| *c == b':') {
            Some(p) => &name[p + 1..],
            None => name,
        };
        if self.ods.is_none() {
            if local == b"c" {
                self.last_cell = match closing || self_closing {
                    true => None,
                    false => attr_bytes(body, b"r").map(|v| String::from_utf8_lossy(v).into()),
                };
            }
            self.tag = tag;
            return None;
        }
        let o = self.ods.as_mut()?;
        let num = |a: &[u8]| -> u64 {
            attr_bytes(body, a)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .max(1)
        };
        let mut found = None;
        match (closing, local) {
            (false, b"table") => {
                *o = OdsCount {
                    table: attr_bytes(body, b"name")
                        .map(|v| String::from_utf8_lossy(v).into())
                        .unwrap_or_default(),
                    ..OdsCount::default()
                };
            }
            (false, b"table-row") => {
                o.row_repeat = num(b"number-rows-repeated");
                o.row_cols = 0;
                o.row_width = 0;
                o.row_text = 0;
                if self_closing {
                    found = o.end_row(limits);
                }
            }
            (false, b"table-cell" | b"covered-table-cell") => {
                let repeat = num(b"number-columns-repeated");
                o.row_cols = o.row_cols.saturating_add(repeat);
                let has_value = attr_bytes(body, b"value-type").is_some() || !self_closing;
                if has_value {
                    o.row_width = o.row_cols;
                }
                if !self_closing {
                    o.in_cell = true;
                    o.cell_repeat = repeat;
                    o.cell_text = 0;
                }
            }
            (true, b"table-cell" | b"covered-table-cell") => {
                o.in_cell = false;
                o.row_text = o
                    .row_text
                    .saturating_add(o.cell_text.saturating_mul(o.cell_repeat));
            }
            (true, b"table-row") => found = o.end_row(limits),
            _ => {}
        }
        self.tag = tag;
        found
    }
}

impl OdsCount {
    fn end_row(&mut self, limits: &Limits) -> Option<Found> {
        if self.row_width == 0 {
            if self.seen_value {
                self.pending_empty = self.pending_empty.saturating_add(self.row_repeat);
            }
            return None;
        }
        if self.seen_value {
            self.span = self.span.saturating_add(self.pending_empty);
        }
        self.pending_empty = 0;
        self.seen_value = true;
        self.span = self.span.saturating_add(self.row_repeat);
        self.width = self.width.max(self.row_width);
        self.text = self
            .text
            .saturating_add(self.row_text.saturating_mul(self.row_repeat));
        let cells = self.span.saturating_mul(self.width);
        if cells > limits.ods_cells {
            return Some(Found::OdsCells(cells));
        }
        if self.text > limits.text {
            return Some(Found::OdsText(self.text));
        }
        None
    }
}

/// The value of attribute `name` (any namespace prefix) in the bytes of a tag.
fn attr_bytes<'a>(tag: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    while i + name.len() + 2 <= tag.len() {
        let rest = &tag[i..];
        if rest.starts_with(name)
            && rest[name.len()] == b'='
            && matches!(rest[name.len() + 1], b'"' | b'\'')
            && i > 0
            && (tag[i - 1].is_ascii_whitespace() || tag[i - 1] == b':')
        {
            let q = rest[name.len() + 1];
            let start = name.len() + 2;
            let end = rest[start..].iter().position(|c| *c == q)? + start;
            return Some(&rest[start..end]);
        }
        i += 1;
    }
    None
}

/// Refuses an OLE compound file (XLS) above [`XLS_FILE_MAX`] before it is read whole.
pub fn check_xls_size(path: &Path) -> Result<(), InputError> {
    let len = std::fs::metadata(path)
        .map_err(|e| InputError::io(path, e))?
        .len();
    if len > XLS_FILE_MAX {
        return Err(too_large(
            path,
            format!(
                "the XLS file is {}, more than the {} read (an XLS sheet holds at most 65,536 \
                 rows)",
                size_text(len),
                size_text(XLS_FILE_MAX)
            ),
        ));
    }
    Ok(())
}

/// Checks an OLE compound file (XLS): its size, and that no sector chain calamine follows
/// loops (a loop makes it read forever).
pub fn check_cfb(path: &Path) -> Result<(), InputError> {
    check_xls_size(path)?;
    let bytes = std::fs::read(path).map_err(|e| InputError::io(path, e))?;
    let workbook = match cfb_loop(&bytes) {
        Err(what) => {
            return Err(InputError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("it looks like XLS but cannot be read ({what})"),
                hint: "open it in Excel or LibreOffice and save a new copy (File › Save As › \
                       Excel Workbook .xlsx), or export it as CSV"
                    .into(),
            })
        }
        Ok(w) => w,
    };
    match workbook.and_then(|w| biff_too_large(&w)) {
        Some(what) => Err(too_large(path, what)),
        None => Ok(()),
    }
}

/// Most cells calamine may lay out for one XLS sheet (from its first to its last row and
/// column with a value, or as its DIMENSIONS record announces).
pub const XLS_MAX_CELLS: u64 = 4 << 20;
/// Most characters the cells of one XLS sheet may take from its shared strings (a string
/// used by many cells is counted for each).
pub const XLS_MAX_SHARED_CHARS: u64 = 64 << 20;

/// What calamine would make of the Workbook stream of an XLS file, told from its records:
/// `Some(what)` when a sheet would be laid out over more than [`XLS_MAX_CELLS`] cells or its
/// cells would copy more than [`XLS_MAX_SHARED_CHARS`] characters of shared strings.
fn biff_too_large(w: &[u8]) -> Option<String> {
    let records = || {
        let mut at = 0usize;
        std::iter::from_fn(move || {
            let head = w.get(at..at + 4)?;
            let kind = u16::from_le_bytes([head[0], head[1]]);
            let len = u16::from_le_bytes([head[2], head[3]]) as usize;
            let data = w.get(at + 4..(at + 4 + len).min(w.len()))?;
            at += 4 + len;
            Some((kind, data))
        })
    };
    // Shared strings: the length of each, in characters.
    let mut sst: Vec<&[u8]> = Vec::new();
    let mut in_sst = false;
    for (kind, data) in records() {
        match kind {
            0x00FC => {
                sst.clear();
                sst.push(data);
                in_sst = true;
            }
            0x003C if in_sst => sst.push(data),
            _ => in_sst = false,
        }
    }
    let lengths = sst_lengths(&sst);
    let u16_at = |d: &[u8], i: usize| {
        d.get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
    };
    let (mut rows, mut cols) = ((u64::MAX, 0u64), (u64::MAX, 0u64));
    let mut shared = 0u64;
    // The first BOF starts the globals, so sheets count from 1 after it.
    let mut sheet = 0u32.wrapping_sub(1);
    for (kind, data) in records() {
        let cell = match kind {
            // BOF: the workbook's globals, then one per sheet.
            0x0809 => {
                sheet = sheet.wrapping_add(1);
                (rows, cols, shared) = ((u64::MAX, 0), (u64::MAX, 0), 0);
                None
            }
            // DIMENSIONS: calamine reserves room for the whole rectangle it announces.
            0x0200 if data.len() >= 14 => {
                let r = |i| le32(data, i).unwrap_or(0) as u64;
                let c = |i| u16_at(data, i).unwrap_or(0);
                let n = r(4).saturating_sub(r(0)).saturating_add(1)
                    * c(10).saturating_sub(c(8)).saturating_add(1);
                if n > XLS_MAX_CELLS {
                    return Some(format!(
                        "sheet {sheet} of the XLS file announces {} cells (at most {} are read)",
                        count_text(n),
                        count_text(XLS_MAX_CELLS)
                    ));
                }
                None
            }
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x0006 | 0x00FD => {
                if kind == 0x00FD {
                    let i = le32(data, 6).unwrap_or(0) as usize;
                    shared += lengths.get(i).copied().unwrap_or(0);
                    if shared > XLS_MAX_SHARED_CHARS {
                        return Some(format!(
                            "the cells of sheet {sheet} of the XLS file repeat its shared \
                             strings into more than {} characters",
                            count_text(XLS_MAX_SHARED_CHARS)
                        ));
                    }
                }
                Some((u16_at(data, 0)?, u16_at(data, 2)?, u16_at(data, 2)?))
            }
            // MULRK: row, first column, ..., last column.
            0x00BD if data.len() >= 6 => Some((
                u16_at(data, 0)?,
                u16_at(data, 2)?,
                u16_at(data, data.len() - 2)?,
            )),
            _ => None,
        };
        if let Some((r, c0, c1)) = cell {
            rows = (rows.0.min(r), rows.1.max(r));
            cols = (cols.0.min(c0), cols.1.max(c1.max(c0)));
            let n = (rows.1 - rows.0 + 1) * (cols.1 - cols.0 + 1);
            if n > XLS_MAX_CELLS {
                return Some(format!(
                    "sheet {sheet} of the XLS file spreads its values over {} cells, from row {} \
                     to row {} and from column {} to column {} (at most {} are read)",
                    count_text(n),
                    rows.0 + 1,
                    rows.1 + 1,
                    super::header::col_letter(cols.0 as usize),
                    super::header::col_letter(cols.1 as usize),
                    count_text(XLS_MAX_CELLS)
                ));
            }
        }
    }
    None
}

/// The length in characters of each string of an SST record and its CONTINUE records.
fn sst_lengths(parts: &[&[u8]]) -> Vec<u64> {
    struct Cursor<'a> {
        parts: &'a [&'a [u8]],
        part: usize,
        at: usize,
    }
    impl Cursor<'_> {
        fn left(&self) -> usize {
            self.parts
                .get(self.part)
                .map_or(0, |p| p.len().saturating_sub(self.at))
        }
        fn next_part(&mut self) -> bool {
            self.part += 1;
            self.at = 0;
            self.part < self.parts.len()
        }
        fn byte(&mut self) -> Option<u8> {
            while self.left() == 0 {
                if !self.next_part() {
                    return None;
                }
            }
            let b = self.parts[self.part][self.at];
            self.at += 1;
            Some(b)
        }
        fn skip(&mut self, mut n: usize) -> Option<()> {
            while n > 0 {
                while self.left() == 0 {
                    if !self.next_part() {
                        return None;
                    }
                }
                let k = n.min(self.left());
                self.at += k;
                n -= k;
            }
            Some(())
        }
    }
    let mut c = Cursor {
        parts,
        part: 0,
        at: 0,
    };
    let mut out = Vec::new();
    if c.skip(8).is_none() {
        return out;
    }
    let u16_ =
        |c: &mut Cursor| -> Option<usize> { Some(c.byte()? as usize | (c.byte()? as usize) << 8) };
    let one = |c: &mut Cursor| -> Option<u64> {
        let cch = u16_(c)?;
        let flags = c.byte()?;
        let runs = if flags & 8 != 0 { u16_(c)? } else { 0 };
        let ext = if flags & 4 != 0 {
            u16_(c)? | u16_(c)? << 16
        } else {
            0
        };
        let mut wide = flags & 1 != 0;
        let mut left = cch;
        while left > 0 {
            if c.left() == 0 {
                // The characters go on in the next CONTINUE record, after a new flags byte.
                if !c.next_part() {
                    return None;
                }
                wide = c.byte()? & 1 != 0;
                continue;
            }
            let per = if wide { 2 } else { 1 };
            let k = left.min(c.left() / per).max(1);
            c.skip(k * per)?;
            left -= k;
        }
        c.skip(4 * runs + ext)?;
        Some(cch as u64)
    };
    while let Some(n) = one(&mut c) {
        out.push(n);
    }
    out
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `Err(what)` when a sector chain of the compound file in `b` loops; else its Workbook stream
/// when it can be read (`None` when the file is too damaged to tell: calamine then says what
/// is wrong).
fn cfb_loop(b: &[u8]) -> Result<Option<Vec<u8>>, String> {
    match cfb_scan(b) {
        Some(Err(what)) => Err(what),
        Some(Ok(w)) => Ok(w),
        None => Ok(None),
    }
}

type CfbScan = Result<Option<Vec<u8>>, String>;

fn cfb_scan(b: &[u8]) -> Option<CfbScan> {
    const END: u32 = 0xFFFF_FFFA; // ids from here on are markers, not sectors
    let shift = u16::from_le_bytes(b.get(30..32)?.try_into().ok()?);
    let size: usize = match shift {
        9 => 512,
        12 => 4096,
        _ => return None,
    };
    let sectors = (b.len() / size).saturating_sub(1);
    let sector = |id: u32| -> Option<&[u8]> {
        let start = (id as usize + 1).checked_mul(size)?;
        b.get(start..start + size)
    };
    // The FAT: sectors listed in the header's DIFAT, then in the DIFAT chain.
    let mut fat_ids: Vec<u32> = (0..109).filter_map(|i| le32(b, 76 + 4 * i)).collect();
    let mut difat = le32(b, 68)?;
    let mut steps = 0;
    while difat < END {
        steps += 1;
        if steps > sectors + 1 {
            return Some(Err("a loop in its sector allocation table".into()));
        }
        let s = sector(difat)?;
        let n = size / 4 - 1;
        fat_ids.extend((0..n).filter_map(|i| le32(s, 4 * i)));
        difat = le32(s, 4 * n)?;
    }
    let mut fat: Vec<u32> = Vec::new();
    for id in fat_ids.into_iter().filter(|id| *id < END) {
        let s = sector(id)?;
        fat.extend((0..size / 4).filter_map(|i| le32(s, 4 * i)));
    }
    // Some(Err) for a loop, None when a sector is missing (damaged), else the sector ids.
    let walk = |start: u32, what: &str| -> Option<Result<Vec<u32>, String>> {
        let mut id = start;
        let mut ids = Vec::new();
        while id < END {
            if ids.len() > sectors {
                return Some(Err(format!("a loop in the sector chain of {what}")));
            }
            ids.push(id);
            id = *fat.get(id as usize)?;
        }
        Some(Ok(ids))
    };
    let dir_start = le32(b, 48)?;
    let dirs = match walk(dir_start, "its directory")? {
        Err(e) => return Some(Err(e)),
        Ok(ids) => ids,
    };
    let minifat_ids = match walk(le32(b, 60)?, "its small-stream table")? {
        Err(e) => return Some(Err(e)),
        Ok(ids) => ids,
    };
    let read = |ids: &[u32]| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for id in ids {
            out.extend_from_slice(sector(*id)?);
        }
        Some(out)
    };
    // Directory entries: the root's mini stream and every stream calamine may read whole.
    let mut workbook = None;
    let mut mini: Option<Vec<u8>> = None;
    for id in dirs {
        let s = sector(id)?;
        for e in s.chunks_exact(128) {
            let kind = e[66];
            let start = le32(e, 116)?;
            let len = le32(e, 120)? as usize;
            if !(kind == 5 || kind == 2) || start >= END {
                continue;
            }
            let name_len = (u16::from_le_bytes([e[64], e[65]]) as usize).min(64);
            let name: Vec<u16> = e[..name_len.saturating_sub(2)]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let is_book = kind == 2
                && matches!(
                    String::from_utf16_lossy(&name).as_str(),
                    "Workbook" | "Book"
                );
            if kind == 5 || len >= 4096 {
                let ids = match walk(start, "a stream")? {
                    Err(e) => return Some(Err(e)),
                    Ok(ids) => ids,
                };
                if kind == 5 {
                    mini = read(&ids);
                } else if is_book && workbook.is_none() {
                    let mut w = read(&ids)?;
                    w.truncate(len);
                    workbook = Some(w);
                }
            } else if is_book && workbook.is_none() {
                // A small Workbook stream lives in 64-byte pieces of the root's mini stream.
                let (Some(ministream), Some(minifat)) = (&mini, read(&minifat_ids)) else {
                    continue;
                };
                let next = |id: u32| le32(&minifat, 4 * id as usize);
                let mut w = Vec::with_capacity(len);
                let mut id = start;
                while id < END && w.len() < len {
                    let at = 64 * id as usize;
                    w.extend_from_slice(ministream.get(at..at + 64)?);
                    id = next(id)?;
                }
                w.truncate(len);
                workbook = Some(w);
            }
        }
    }
    Some(Ok(workbook))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            part: 1 << 20,
            total: 3 << 19,
            xml_run: 4096,
            ods_cells: 10_000,
            text: 64 << 10,
        }
    }

    fn zip_of(parts: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("book.zip");
        let mut w = zip::ZipWriter::new(File::create(&p).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in parts {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        (dir, p)
    }

    fn what(r: Result<(), InputError>) -> String {
        match r {
            Err(InputError::TooLarge { what, .. }) => what,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_part_or_all_parts_past_the_limit_are_refused() {
        let (_d, p) = zip_of(&[("xl/media/a.bin", vec![b'a'; (1 << 20) + 1])]);
        let w = what(check_zip(&p, Kind::Xlsx, &small()));
        assert!(
            w.contains("part xl/media/a.bin expands to more than 1 MiB"),
            "{w}"
        );
        let (_d, p) = zip_of(&[
            ("xl/media/a.bin", vec![b'a'; 600 << 10]),
            ("xl/media/b.bin", vec![b'b'; 600 << 10]),
            ("xl/media/c.bin", vec![b'c'; 600 << 10]),
        ]);
        let w = what(check_zip(&p, Kind::Xlsx, &small()));
        assert!(
            w.contains("the workbook expands to more than 1 MiB (reached in part xl/media/c.bin)"),
            "{w}"
        );
        let (_d, p) = zip_of(&[("xl/media/a.bin", vec![b'a'; 1 << 19])]);
        check_zip(&p, Kind::Xlsx, &small()).unwrap();
    }

    #[test]
    fn a_huge_cell_is_found_with_its_reference() {
        let mut sheet =
            b"<worksheet><sheetData><row r=\"7\"><c r=\"B7\" t=\"inlineStr\"><is><t>".to_vec();
        sheet.extend(vec![b'x'; 5000]);
        sheet.extend(b"</t></is></c></row></sheetData></worksheet>");
        let (_d, p) = zip_of(&[("xl/worksheets/sheet1.xml", sheet)]);
        let w = what(check_zip(&p, Kind::Xlsx, &small()));
        assert!(w.contains("row 7, column B"), "{w}");
        assert!(w.contains("part xl/worksheets/sheet1.xml"), "{w}");
    }

    #[test]
    fn ods_repeats_are_counted() {
        let body = |rows: u64, cols: u64| {
            format!(
                "<office:document-content><office:body><office:spreadsheet>\
                 <table:table table:name=\"Big\">\
                 <table:table-row table:number-rows-repeated=\"{rows}\">\
                 <table:table-cell table:formula=\"of:=[.A1]>0\" table:number-columns-repeated=\"{cols}\" office:value-type=\"string\"><text:p>x</text:p></table:table-cell>\
                 </table:table-row>\
                 <table:table-row table:number-rows-repeated=\"1048000\"><table:table-cell table:number-columns-repeated=\"1024\"/></table:table-row>\
                 </table:table></office:spreadsheet></office:body></office:document-content>"
            )
            .into_bytes()
        };
        let (_d, p) = zip_of(&[("content.xml", body(100, 10))]);
        check_zip(&p, Kind::Ods, &small()).unwrap();
        let (_d, p) = zip_of(&[("content.xml", body(1000, 16384))]);
        let w = what(check_zip(&p, Kind::Ods, &small()));
        assert!(
            w.contains("sheet \"Big\" repeats its rows and columns into 16,384,000 cells"),
            "{w}"
        );
    }

    #[test]
    fn the_fixtures_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        check_zip(
            &root.join("hr-new-starters.xlsx"),
            Kind::Xlsx,
            &Limits::default(),
        )
        .unwrap();
        check_zip(
            &root.join("libreoffice-export.ods"),
            Kind::Ods,
            &Limits::default(),
        )
        .unwrap();
        check_cfb(&root.join("libreoffice-export.xls")).unwrap();
        assert_eq!(count_text(32767), "32,767");
        assert_eq!(count_text(100), "100");
        assert_eq!(count_text(1_000_000), "1,000,000");
    }

    #[test]
    fn shared_string_lengths_follow_continue_records() {
        let mut sst = vec![0u8; 8];
        sst.extend([3, 0, 0, b'a', b'b', b'c']);
        sst.extend([1, 0, 1, 0xE9, 0]);
        sst.extend([5, 0, 0, b'h', b'e']);
        let cont = [0u8, b'l', b'l', b'o', 2, 0, 0, b'x', b'y'];
        assert_eq!(sst_lengths(&[&sst, &cont]), [3, 1, 5, 2]);
        // Rich text runs and phonetic data are skipped.
        let mut sst = vec![0u8; 8];
        sst.extend([
            2, 0, 0x0C, 1, 0, 3, 0, 0, 0, b'h', b'i', 0, 0, 0, 0, 9, 9, 9,
        ]);
        sst.extend([1, 0, 0, b'z']);
        assert_eq!(sst_lengths(&[&sst]), [2, 1]);
    }

    #[test]
    fn a_looping_sector_chain_is_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut b = std::fs::read(root.join("libreoffice-export.xls")).unwrap();
        let w = cfb_loop(&b).unwrap().expect("the Workbook stream");
        assert!(biff_too_large(&w).is_none());
        // Point the directory's first sector at itself in the FAT.
        let size = 512;
        let dir = le32(&b, 48).unwrap() as usize;
        let fat0 = le32(&b, 76).unwrap() as usize;
        let at = (fat0 + 1) * size + 4 * dir;
        b[at..at + 4].copy_from_slice(&(dir as u32).to_le_bytes());
        assert!(
            cfb_loop(&b).unwrap_err().contains("loop"),
            "{:?}",
            cfb_loop(&b)
        );
    }
}
