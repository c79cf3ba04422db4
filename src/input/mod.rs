//! Reading every file an admin brings: CSV/TSV/TXT in any usual encoding and delimiter,
//! XLSX/XLSM/XLS/ODS workbooks. Finds the user column by header, keeps spreadsheet row numbers,
//! marks invalid values, duplicates and exclusions. Never touches the network.
//!
//! CONTRACT (the engine and `validate` rely on these signatures):
//! - [`open`] returns a [`Reader`]: [`SourceInfo`] plus an iterator of rows (streamed for CSV).
//! - [`Marker`] turns raw rows into [`InputRow`]s with duplicates and exclusions marked.
//! - [`read_exclusions`] reads an `--exclude` file into a set of keys.
//! - [`read_all`] does all three for the engine; [`read_input`] does the same and also returns
//!   the warnings found while reading (rows that do not fit the file's encoding).
//! - A file or sheet that yields no users, and an exclusion list that yields none, are input
//!   errors ([`InputError::NoUsers`], [`InputError::EmptyExclusions`]).
//!
//! Blank rows (every cell empty) are never returned as rows: [`Reader::blank_rows`] counts the
//! ones that lie between data rows (trailing blank rows are not counted). Every other row after
//! the header comes back, even when its user cell is empty (the [`Marker`] makes it `Invalid`).

pub mod detect;
pub mod guard;
pub mod header;
pub mod normalize;
pub mod text;
pub mod workbook;

#[cfg(test)]
mod proptests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::model::{InputRow, MfaState, RowStatus};

use header::{col_letter, find_layout, Layout, LayoutError, Row, HEAD_ROWS};

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

fn list_headers(headers: &[(String, String)]) -> String {
    if headers.is_empty() {
        return "none (no data in the first rows)".into();
    }
    headers
        .iter()
        .map(|(l, h)| format!("{l} \"{}\"", normalize::printable(h)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn where_sheet(sheet: &Option<String>) -> String {
    sheet
        .as_ref()
        .map(|s| format!(", sheet \"{s}\""))
        .unwrap_or_default()
}

fn where_row(row: &Option<u64>) -> String {
    row.map(|r| format!(" (row {r})")).unwrap_or_default()
}

fn column_example(headers: &[(String, String)]) -> String {
    match headers.first() {
        Some((l, h)) => format!("--column \"{h}\" or --column {l}"),
        None => "--column \"Work email\" or --column D".into(),
    }
}

/// Errors that make a file unusable. Each names the file (and sheet, row, column where it
/// applies) and says what to do. Exit code 2; nothing is sent to Graph.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Catch-all (kept from the first contract).
    #[error("{path}: {message}")]
    Unusable { path: PathBuf, message: String },

    #[error("{path}: file not found. Check the path (put it in quotes if it has spaces).", path = .path.display())]
    NotFound { path: PathBuf },

    #[error("{path}: cannot read the file ({source}). Check that it exists, is not a folder and that you may read it; close it in Excel if it is open there.", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: the file is empty (no data, or only blank lines). Export the user list again.", path = .path.display())]
    Empty { path: PathBuf },

    #[error("{path}: password-protected (encrypted) workbook: it cannot be read. Open it in Excel, save an unprotected copy (File › Info › Protect Workbook › Encrypt with Password: clear the password) or export it as CSV, and use that copy.", path = .path.display())]
    PasswordProtected { path: PathBuf },

    #[error("{path}: {detail}. {hint}.", path = .path.display())]
    Corrupt {
        path: PathBuf,
        detail: String,
        hint: String,
    },

    #[error("{path}: not a spreadsheet or text file: {detail}. Open it in Excel and save it as .xlsx or CSV UTF-8.", path = .path.display())]
    NotText { path: PathBuf, detail: String },

    #[error("{path}: {message}", path = .path.display())]
    BadOption { path: PathBuf, message: String },

    #[error("{path}: no sheet named \"{sheet}\". Sheets in this workbook: {available}. Use --sheet with one of these names.", path = .path.display(), available = .available.iter().map(|s| format!("\"{}\"", normalize::printable(s))).collect::<Vec<_>>().join(", "))]
    UnknownSheet {
        path: PathBuf,
        sheet: String,
        available: Vec<String>,
    },

    #[error("{path}{sh}: no user column found. Looked for a header such as UPN, UserPrincipalName, User name, Email, E-Mail or Work email in the first {HEAD_ROWS} rows, and for a column of addresses. Headers found{r}: {h}. Pick the column with {ex}.",
        path = .path.display(), sh = where_sheet(.sheet), r = where_row(.header_row), h = list_headers(.headers), ex = column_example(.headers))]
    NoUserColumn {
        path: PathBuf,
        sheet: Option<String>,
        header_row: Option<u64>,
        /// (letter, header) of the likely header row.
        headers: Vec<(String, String)>,
    },

    #[error("{path}{sh}: no column \"{column}\" (not a header in the first {HEAD_ROWS} rows, nor a column letter with data). Headers found{r}: {h}. Use --column with one of these names or letters.",
        path = .path.display(), sh = where_sheet(.sheet), r = where_row(.header_row), h = list_headers(.headers))]
    ColumnNotFound {
        path: PathBuf,
        sheet: Option<String>,
        column: String,
        header_row: Option<u64>,
        headers: Vec<(String, String)>,
    },

    #[error("{path}, row {row}, column {column}: '{value}' in the exclusion list is not an email address or object id. Fix or remove that row: every listed user must be recognisable so that none is touched by mistake.", path = .path.display())]
    BadExclusion {
        path: PathBuf,
        row: u64,
        column: String,
        value: String,
    },

    /// The file expands past a limit (zip bomb, huge part, cell over Excel's limit).
    #[error("{path}: too large: {what}. Nothing was read; {hint}.", path = .path.display())]
    TooLarge {
        path: PathBuf,
        what: String,
        hint: String,
    },

    /// The file (or sheet) yields no users: nothing to do, which is never what was meant.
    #[error("{path}{sh}: no users found: {detail}. Check that this is the file with the user list, or pick the user column with --column (mfa-bulk validate shows what each row holds).",
        path = .path.display(), sh = where_sheet(.sheet))]
    NoUsers {
        path: PathBuf,
        sheet: Option<String>,
        detail: String,
    },

    /// `--exclude` names a list without a single user: it would protect nobody.
    #[error("{path}: the exclusion list holds no users (no email address or object id below its header). An empty list protects nobody: put the accounts that must never be touched (break-glass accounts) in it, one per row, or leave out --exclude.", path = .path.display())]
    EmptyExclusions { path: PathBuf },

    /// One row holds many addresses, as when a list is pasted from a mail.
    #[error("{path}: row {row} holds {count} addresses {how} (a list pasted from a mail?). Put one user per row, each address on a line of its own, and run again: none of them was read, since each user needs a row of its own (its row number identifies it in the result file and in --plan). If only one of them is the user, give the file a header row naming its columns.", path = .path.display())]
    PastedList {
        path: PathBuf,
        row: u64,
        count: usize,
        /// "separated by ','" or "in columns A to E".
        how: String,
    },
}

impl InputError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> InputError {
        if e.kind() == std::io::ErrorKind::NotFound {
            InputError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            InputError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            InputError::Unusable { path, .. }
            | InputError::NotFound { path }
            | InputError::Io { path, .. }
            | InputError::Empty { path }
            | InputError::PasswordProtected { path }
            | InputError::Corrupt { path, .. }
            | InputError::NotText { path, .. }
            | InputError::BadOption { path, .. }
            | InputError::UnknownSheet { path, .. }
            | InputError::NoUserColumn { path, .. }
            | InputError::ColumnNotFound { path, .. }
            | InputError::BadExclusion { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::NoUsers { path, .. }
            | InputError::EmptyExclusions { path }
            | InputError::PastedList { path, .. } => path,
        }
    }
}

/// The source of physical rows behind a [`Reader`].
type RowSource = Box<dyn Iterator<Item = Result<Row, InputError>> + Send>;

/// At most this many blank row numbers are remembered (all are counted).
const BLANK_ROWS_KEPT: usize = 1000;

/// An open input file: what was found, and its data rows in order.
pub struct Reader {
    pub info: SourceInfo,
    /// Workbook sheets (name, hidden) in order; empty for text files.
    sheets: Vec<(String, bool)>,
    hidden_rows: Option<std::collections::BTreeSet<u64>>,
    buffered: VecDeque<Row>,
    src: RowSource,
    user_col: usize,
    state_col: Option<usize>,
    pending_blank: Vec<u64>,
    pending_count: u64,
    blank_count: u64,
    blank_rows: Vec<u64>,
    done: bool,
    /// Rows that do not fit the encoding the text file was read with.
    misfits: Option<std::sync::Arc<std::sync::Mutex<text::Misfits>>>,
}

impl Reader {
    /// Warnings about what was read so far, each naming the file: rows that do not fit the
    /// encoding the file was read with. Complete once every row was read.
    pub fn warnings(&self) -> Vec<String> {
        let Some(m) = &self.misfits else {
            return Vec::new();
        };
        let m = match m.lock() {
            Ok(m) => m.clone(),
            Err(_) => return Vec::new(),
        };
        if m.count == 0 {
            return Vec::new();
        }
        let mut rows = m
            .rows
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if m.count > m.rows.len() as u64 {
            rows.push_str(&format!(" and {} more", m.count - m.rows.len() as u64));
        }
        let (word, verb) = if m.count == 1 {
            ("row", "is")
        } else {
            ("rows", "are")
        };
        let path = self.info.path.display();
        let message = if self.info.encoding.as_deref() == Some("windows-1252") {
            format!(
                "{path}: {word} {rows} {verb} not valid UTF-8, while the rest of the file is; \
                 the file was read as Windows-1252, so accented letters in the other rows may \
                 be wrong (such as 'Ã«' for 'ë'). Pass --encoding utf-8, or save the file \
                 again as CSV UTF-8 (Excel: File › Save As › CSV UTF-8)"
            )
        } else {
            format!(
                "{path}: {word} {rows} {verb} not valid {enc}: the bytes that are not show as \
                 '\u{FFFD}'. Fix those cells, or save the file again as CSV UTF-8 (Excel: File \
                 › Save As › CSV UTF-8)",
                enc = self.info.encoding.as_deref().unwrap_or("UTF-8")
            )
        };
        vec![message]
    }

    /// Blank rows skipped so far between data rows (trailing blank rows are not counted).
    pub fn blank_rows(&self) -> u64 {
        self.blank_count
    }

    /// Row numbers of the first blank rows skipped (at most 1,000).
    pub fn blank_row_numbers(&self) -> &[u64] {
        &self.blank_rows
    }

    /// Sheet names of a workbook, in order, with whether each is hidden (empty for text).
    pub fn sheets(&self) -> &[(String, bool)] {
        &self.sheets
    }

    /// Rows hidden in Excel in the sheet read (XLSX/XLSM only; `None` when the format does not
    /// say). Hidden rows are read like any other row.
    pub fn hidden_rows(&self) -> Option<&std::collections::BTreeSet<u64>> {
        self.hidden_rows.as_ref()
    }
}

impl Iterator for Reader {
    type Item = Result<RawRow, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let row = match self.buffered.pop_front() {
                Some(r) => r,
                None => match self.src.next() {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                    None => {
                        self.done = true;
                        return None;
                    }
                },
            };
            let (n, cells) = row;
            if cells.iter().all(|c| normalize::is_blank(c)) {
                // Counted only once a data row follows (trailing blank rows are not counted).
                if self.blank_rows.len() + self.pending_blank.len() < BLANK_ROWS_KEPT {
                    self.pending_blank.push(n);
                }
                self.pending_count += 1;
                continue;
            }
            self.blank_count += self.pending_count;
            self.pending_count = 0;
            self.blank_rows.append(&mut self.pending_blank);
            let input = cells.get(self.user_col).cloned().unwrap_or_default();
            let state = self
                .state_col
                .and_then(|c| cells.get(c))
                .filter(|s| !normalize::is_blank(s))
                .cloned();
            return Some(Ok(RawRow {
                row: n,
                input,
                state,
            }));
        }
    }
}

/// One data row before duplicate/exclusion marking.
#[derive(Clone, Debug)]
pub struct RawRow {
    pub row: u64,
    pub input: String,
    pub state: Option<String>,
}

fn layout_error(path: &Path, sheet: Option<String>, e: LayoutError) -> InputError {
    match e {
        LayoutError::NoUserColumn {
            header_row,
            headers,
        } => InputError::NoUserColumn {
            path: path.to_path_buf(),
            sheet,
            header_row,
            headers,
        },
        LayoutError::ColumnNotFound {
            column,
            header_row,
            headers,
        } => InputError::ColumnNotFound {
            path: path.to_path_buf(),
            sheet,
            column,
            header_row,
            headers,
        },
    }
}

/// Reads up to [`HEAD_ROWS`] rows from `src` (stopping at an error, which is returned).
fn read_head(src: &mut RowSource) -> Result<Vec<Row>, InputError> {
    let mut head = Vec::new();
    while head.len() < HEAD_ROWS {
        match src.next() {
            Some(r) => head.push(r?),
            None => break,
        }
    }
    Ok(head)
}

fn make_reader(
    mut info: SourceInfo,
    sheets: Vec<(String, bool)>,
    head: Vec<Row>,
    layout: Layout,
    src: RowSource,
) -> Reader {
    info.column = layout.user_header.clone();
    info.column_letter = col_letter(layout.user_col);
    info.header_row = layout.header.map(|i| head[i].0);
    info.state_column = layout.state_col.as_ref().map(|(_, h)| h.clone());
    let skip = layout.header.map(|i| i + 1).unwrap_or(0);
    Reader {
        info,
        sheets,
        hidden_rows: None,
        buffered: head.into_iter().skip(skip).collect(),
        src,
        user_col: layout.user_col,
        state_col: layout.state_col.map(|(c, _)| c),
        pending_blank: Vec::new(),
        pending_count: 0,
        blank_count: 0,
        blank_rows: Vec::new(),
        done: false,
        misfits: None,
    }
}

fn empty_info(path: &Path, format: &str) -> SourceInfo {
    SourceInfo {
        path: path.to_path_buf(),
        format: format.to_string(),
        encoding: None,
        delimiter: None,
        sheet: None,
        column: String::new(),
        column_letter: String::new(),
        header_row: None,
        state_column: None,
    }
}

/// Opens a file and finds its user column.
pub fn open(path: &Path, opts: &ReadOptions) -> Result<Reader, InputError> {
    let meta = std::fs::metadata(path).map_err(|e| InputError::io(path, e))?;
    if meta.is_dir() {
        return Err(InputError::BadOption {
            path: path.to_path_buf(),
            message: "this is a folder, not a file. Give the path of the spreadsheet itself."
                .into(),
        });
    }
    if meta.len() == 0 {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    let head = detect::read_head(path)?;
    match detect::sniff(path, &head)? {
        detect::Content::Workbook(kind) => open_workbook(path, kind, opts),
        detect::Content::Text => open_text(path, &head, opts),
    }
}

fn open_text(path: &Path, head_bytes: &[u8], opts: &ReadOptions) -> Result<Reader, InputError> {
    if let Some(sheet) = &opts.sheet {
        return Err(InputError::BadOption {
            path: path.to_path_buf(),
            message: format!(
                "--sheet \"{sheet}\" only applies to workbooks (XLSX, XLS, ODS), and this file is \
                 text (CSV). Remove --sheet, or give the workbook instead of an export of one sheet."
            ),
        });
    }
    let det = match &opts.encoding {
        Some(label) => {
            let enc = text::encoding_for_label(path, label)?;
            text::Detected {
                encoding: enc,
                bom: encoding_rs::Encoding::for_bom(head_bytes).is_some_and(|(e, _)| e == enc),
                mixed: false,
            }
        }
        None => text::detect_encoding(path, head_bytes)?,
    };
    // Rows that do not fit the encoding chosen for the whole file are named in a warning.
    let fit = if det.mixed {
        Some(text::FitCheck::cp1252_mixed())
    } else if det.encoding == encoding_rs::UTF_8 && opts.encoding.is_some() {
        text::scan_utf8(path)?
            .invalid
            .then_some(text::FitCheck::Utf8Replaced)
    } else {
        None
    };
    let head_text = text::decode_head(head_bytes, det.encoding);
    // Whatever the encoding (a BOM can sit in front of junk), the text must look like text.
    text::check_not_binary(path, head_text.as_bytes())?;
    let delimiter = match &opts.delimiter {
        Some(d) => text::parse_delimiter(path, d)?,
        None => text::sniff_delimiter(&head_text),
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_uppercase);
    let format = match ext.as_deref() {
        Some("TSV") => "TSV",
        Some("TXT") => "TXT",
        _ if delimiter == b'\t' => "TSV",
        _ => "CSV",
    };
    let mut info = empty_info(path, format);
    info.encoding = Some(det.label());
    info.delimiter = Some(delimiter as char);
    let mut rows = text::CsvRows::open(path, det.encoding, delimiter)?;
    let misfits = fit.map(|f| rows.check_fit(f));
    let mut src: RowSource = Box::new(rows);
    let head = read_head(&mut src)?;
    if head
        .iter()
        .all(|r| r.1.iter().all(|c| normalize::is_blank(c)))
    {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    let layout =
        find_layout(&head, opts.column.as_deref()).map_err(|e| layout_error(path, None, e))?;
    refuse_pasted_list(path, &head, &layout, Some(delimiter as char))?;
    let mut reader = make_reader(info, Vec::new(), head, layout, src);
    reader.misfits = misfits;
    Ok(reader)
}

/// Refuses a headerless file (or sheet) whose only row holds several addresses, as when a
/// list is pasted from a mail: reading them as users would give them all one row number (the
/// identity of a row in the result file and in `--plan`), and reading one would drop the rest.
/// `head` is the whole file when it holds fewer than [`HEAD_ROWS`] rows.
fn refuse_pasted_list(
    path: &Path,
    head: &[Row],
    layout: &Layout,
    delimiter: Option<char>,
) -> Result<(), InputError> {
    if layout.header.is_some() || head.len() >= HEAD_ROWS {
        return Ok(());
    }
    let mut filled = head
        .iter()
        .filter(|r| !r.1.iter().all(|c| normalize::is_blank(c)));
    let (Some((row, cells)), None) = (filled.next(), filled.next()) else {
        return Ok(());
    };
    let users: Vec<usize> = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| normalize::looks_like_user(c))
        .map(|(i, _)| i)
        .collect();
    if users.len() < 2 {
        return Ok(());
    }
    let how = match delimiter {
        Some('\t') => "separated by tabs".to_string(),
        Some(d) => format!("separated by '{d}'"),
        None => format!(
            "in columns {} to {}",
            col_letter(users[0]),
            col_letter(users[users.len() - 1])
        ),
    };
    Err(InputError::PastedList {
        path: path.to_path_buf(),
        row: *row,
        count: users.len(),
        how,
    })
}

fn open_workbook(
    path: &Path,
    kind: workbook::Kind,
    opts: &ReadOptions,
) -> Result<Reader, InputError> {
    let mut book = workbook::Book::open(path, kind)?;
    let sheets = book.sheets();
    let mut info = empty_info(path, kind.name(path));
    if sheets.is_empty() {
        return Err(InputError::Corrupt {
            path: path.to_path_buf(),
            detail: "the workbook has no sheets".into(),
            hint: "open it in Excel and check it holds the user list".into(),
        });
    }
    let load =
        |book: &mut workbook::Book, name: &str| -> Result<(Vec<Row>, RowSource), InputError> {
            let mut src: RowSource = book.rows(path, kind, name)?;
            let head = read_head(&mut src)?;
            Ok((head, src))
        };
    if let Some(want) = &opts.sheet {
        let name = sheets
            .iter()
            .find(|(n, _)| n == want)
            .or_else(|| {
                sheets
                    .iter()
                    .find(|(n, _)| n.trim().eq_ignore_ascii_case(want.trim()))
            })
            .map(|(n, _)| n.clone())
            .ok_or_else(|| InputError::UnknownSheet {
                path: path.to_path_buf(),
                sheet: want.clone(),
                available: sheets.iter().map(|(n, _)| n.clone()).collect(),
            })?;
        let (head, src) = load(&mut book, &name)?;
        let layout = find_layout(&head, opts.column.as_deref())
            .map_err(|e| layout_error(path, Some(name.clone()), e))?;
        refuse_pasted_list(path, &head, &layout, None)?;
        info.sheet = Some(name);
        return Ok(with_hidden(
            make_reader(info, sheets, head, layout, src),
            kind,
        ));
    }
    // Default: the first visible sheet with a user column, then hidden ones.
    let mut order: Vec<&(String, bool)> = sheets.iter().filter(|(_, h)| !h).collect();
    order.extend(sheets.iter().filter(|(_, h)| *h));
    let mut first_err: Option<InputError> = None;
    for (name, _) in order {
        let (head, src) = load(&mut book, name)?;
        if head
            .iter()
            .all(|r| r.1.iter().all(|c| normalize::is_blank(c)))
        {
            continue;
        }
        match find_layout(&head, opts.column.as_deref()) {
            Ok(layout) => {
                refuse_pasted_list(path, &head, &layout, None)?;
                info.sheet = Some(name.clone());
                return Ok(with_hidden(
                    make_reader(info, sheets.clone(), head, layout, src),
                    kind,
                ));
            }
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(layout_error(path, Some(name.clone()), e));
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| InputError::Corrupt {
        path: path.to_path_buf(),
        detail: "every sheet of the workbook is empty".into(),
        hint: "check that this is the file with the user list, and that it was saved after \
               the list was pasted in"
            .into(),
    }))
}

fn with_hidden(mut r: Reader, kind: workbook::Kind) -> Reader {
    if kind == workbook::Kind::Xlsx {
        if let Some(sheet) = &r.info.sheet {
            r.hidden_rows = workbook::xlsx_hidden_rows(&r.info.path, sheet);
        }
    }
    r
}

/// Marks invalid values, duplicates (same user twice) and excluded users.
pub struct Marker {
    excluded: HashSet<String>,
    seen: HashMap<String, u64>,
    column: Option<String>,
    state_column: Option<String>,
    rows: u64,
    users: u64,
}

impl Marker {
    pub fn new(excluded: HashSet<String>) -> Marker {
        Marker {
            excluded,
            seen: HashMap::new(),
            column: None,
            state_column: None,
            rows: 0,
            users: 0,
        }
    }

    /// Once every row is marked: [`InputError::NoUsers`] when no row held a user (to change
    /// or excluded). Every command that reads an input file stops there (exit 2).
    pub fn require_users(&self, info: &SourceInfo) -> Result<(), InputError> {
        if self.users > 0 {
            return Ok(());
        }
        let column = normalize::printable(&info.column);
        let detail = match (self.rows, info.header_row) {
            (0, Some(h)) => format!("there are no rows below the header (row {h})"),
            (0, None) => "there are no rows".to_string(),
            (1, _) => format!(
                "its one row holds no email address or object id in column \"{column}\" \
                 (column {})",
                info.column_letter
            ),
            (n, _) => format!(
                "none of its {n} rows holds an email address or object id in column \
                 \"{column}\" (column {})",
                info.column_letter
            ),
        };
        Err(InputError::NoUsers {
            path: info.path.clone(),
            sheet: info.sheet.clone(),
            detail,
        })
    }

    /// Like [`Marker::new`], naming the file's columns in the reasons it gives.
    pub fn for_source(excluded: HashSet<String>, info: &SourceInfo) -> Marker {
        let mut m = Marker::new(excluded);
        if !info.column.is_empty() {
            m.column = Some(normalize::printable(&info.column));
        }
        m.state_column = info.state_column.as_deref().map(normalize::printable);
        m
    }

    pub fn mark(&mut self, raw: RawRow) -> Result<InputRow, InputError> {
        let row = self.mark_row(raw)?;
        self.rows += 1;
        if !matches!(row.status, RowStatus::Invalid { .. }) {
            self.users += 1;
        }
        Ok(row)
    }

    fn mark_row(&mut self, raw: RawRow) -> Result<InputRow, InputError> {
        let invalid = |reason: String, state: Option<MfaState>| InputRow {
            row: raw.row,
            input: raw.input.clone(),
            state,
            status: RowStatus::Invalid { reason },
        };
        let state = match raw.state.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => MfaState::parse(s).map(Some).ok_or_else(|| {
                let col = self
                    .state_column
                    .as_deref()
                    .map(|c| format!(" in column '{c}'"))
                    .unwrap_or_default();
                format!(
                    "unknown MFA state '{}'{col}: use Enabled, Enforced or Disabled (or leave it empty)",
                    normalize::printable(s)
                )
            }),
        };
        let user = match normalize::parse_user(&raw.input) {
            Err(reason) => return Ok(invalid(reason, state.ok().flatten())),
            Ok(None) => {
                let reason = match &self.column {
                    Some(c) => format!("no user in column '{c}'"),
                    None => "no user in the user column".to_string(),
                };
                return Ok(invalid(reason, state.ok().flatten()));
            }
            Ok(Some(u)) => u,
        };
        let key = user.key().to_string();
        if self.excluded.contains(&key) {
            return Ok(InputRow {
                row: raw.row,
                input: raw.input,
                state: state.ok().flatten(),
                status: RowStatus::Excluded { user },
            });
        }
        let state = match state {
            Ok(s) => s,
            Err(reason) => return Ok(invalid(reason, None)),
        };
        let status = match self.seen.get(&key) {
            Some(first) => RowStatus::Duplicate {
                first_row: *first,
                user,
            },
            None => {
                self.seen.insert(key, raw.row);
                RowStatus::Ok(user)
            }
        };
        Ok(InputRow {
            row: raw.row,
            input: raw.input,
            state,
            status,
        })
    }
}

/// Reads an `--exclude` file (any format `open` reads) into normalised keys.
///
/// A value that is not an address or object id is an error ([`InputError::BadExclusion`]):
/// a mistyped break-glass account must not be silently ignored. So is a list that yields no
/// user at all ([`InputError::EmptyExclusions`]).
pub fn read_exclusions(path: &Path, opts: &ReadOptions) -> Result<HashSet<String>, InputError> {
    read_exclusion_list(path, opts).map(|(keys, _)| keys)
}

/// [`read_exclusions`], with the warnings found while reading.
pub fn read_exclusion_list(
    path: &Path,
    opts: &ReadOptions,
) -> Result<(HashSet<String>, Vec<String>), InputError> {
    let mut reader = open(path, opts)?;
    let column = reader.info.column_letter.clone();
    let mut keys = HashSet::new();
    for raw in &mut reader {
        let raw = raw?;
        match normalize::parse_user(&raw.input) {
            Ok(Some(u)) => {
                keys.insert(u.key().to_string());
            }
            Ok(None) => {}
            Err(_) => {
                return Err(InputError::BadExclusion {
                    path: path.to_path_buf(),
                    row: raw.row,
                    column,
                    value: normalize::printable(&normalize::clean(&raw.input)),
                })
            }
        }
    }
    if keys.is_empty() {
        return Err(InputError::EmptyExclusions {
            path: path.to_path_buf(),
        });
    }
    Ok((keys, reader.warnings()))
}

/// Everything read from an input file and its exclusion list.
#[derive(Debug)]
pub struct Input {
    pub info: SourceInfo,
    /// Every row, marked.
    pub rows: Vec<InputRow>,
    /// The exclusion keys (the engine also matches them against every address of a resolved
    /// user).
    pub excluded: HashSet<String>,
    /// Warnings to show before going on, each naming its file (rows that do not fit the
    /// encoding a text file was read with). Empty for most files.
    pub warnings: Vec<String>,
}

/// Everything the engine needs: the source info, every row (marked), and the exclusion keys
/// (the engine also matches them against every address of a resolved user).
///
/// An input without a single user is an error ([`InputError::NoUsers`], exit 2).
pub fn read_all(
    path: &Path,
    opts: &ReadOptions,
    exclude: Option<&Path>,
) -> Result<(SourceInfo, Vec<InputRow>, HashSet<String>), InputError> {
    read_input(path, opts, exclude).map(|i| (i.info, i.rows, i.excluded))
}

/// [`read_all`], with the warnings found while reading the input and the exclusion list.
pub fn read_input(
    path: &Path,
    opts: &ReadOptions,
    exclude: Option<&Path>,
) -> Result<Input, InputError> {
    let mut warnings = Vec::new();
    let excluded = match exclude {
        Some(p) => {
            let (keys, w) = read_exclusion_list(p, &ReadOptions::default())?;
            warnings.extend(w);
            keys
        }
        None => HashSet::new(),
    };
    let mut reader = open(path, opts)?;
    let info = reader.info.clone();
    let mut marker = Marker::for_source(excluded.clone(), &info);
    let mut rows = Vec::new();
    for raw in &mut reader {
        rows.push(marker.mark(raw?)?);
    }
    marker.require_users(&info)?;
    warnings.extend(reader.warnings());
    Ok(Input {
        info,
        rows,
        excluded,
        warnings,
    })
}
