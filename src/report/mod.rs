//! Result files (CSV, XLSX), the run record beside them, the notify list, the apply journal,
//! and reading an earlier result file back for `apply --plan` and `revert`.
//!
//! One file per output format behind one trait ([`ResultWriter`]), like hyperfine's
//! `src/export/`:
//! - [`csv`](self::csv): UTF-8 **with a BOM** (so Excel shows umlauts right), **CRLF** line
//!   endings, each row handed to the operating system as it is written (synced to disk at
//!   least every second), under the final name from the header on, so a crash keeps every row
//!   already written. `-o -` writes the same CSV, without the BOM, to standard output.
//! - [`xlsx`](self::xlsx): the same columns; the workbook is saved whole (that is how
//!   `rust_xlsxwriter` works): a header-only workbook when the file is created, a checkpoint
//!   every few seconds while rows arrive, and the full file at [`ResultWriter::finish`], each
//!   save atomic (new temporary file + rename). Between checkpoints the **apply journal**
//!   ([`Journal`]) is what protects an XLSX run against a crash.
//! - Both apply the same formula-injection escaping ([`escape`]): a text cell starting with `=`,
//!   `+`, `-`, `@`, tab, CR or LF gets a leading `'`, and a cell that already starts with `'`
//!   gets one more, so [`read_results`] can undo it exactly.
//!
//! Every file is created the same way ([`files`]): under a fresh name in the target folder,
//! then renamed into place — never through a symbolic link, never over an existing file
//! without `--force`. The run record and the journal are readable by their owner only.

pub mod csv;
pub mod escape;
pub mod files;
pub mod journal;
pub mod notify;
pub mod read;
pub mod record;
mod serde_state;
pub mod xlsx;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::MfaState;

pub use files::{refuse_clobbering_inputs, same_file};
pub use journal::{Journal, JournalEntry, JournalHeader};
pub use notify::write_notify_list;
pub use read::read_results;
pub use record::{
    create_run_record, run_record_path, safe_options, sha256_file, write_run_record, RunBy,
    RunRecord,
};

/// What happened to one row, as written in the `outcome` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Plan only: this user would be changed by `apply`.
    WouldChange,
    /// The user already satisfies the target; nothing to do.
    NoChange,
    /// Written and confirmed.
    Changed,
    /// The write (or the read that should decide it) failed; see `error`.
    Failed,
    /// No such user in the tenant.
    NotFound,
    /// The cell is not an address or an object id.
    Invalid,
    /// The same user appeared on an earlier row.
    Duplicate,
    /// Listed in the `--exclude` file: never touched.
    Excluded,
    /// Not attempted (interrupted, or a limit was reached).
    Skipped,
    /// `apply --plan`: the user's state changed since the plan was made; not written.
    Drifted,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::WouldChange,
        Outcome::NoChange,
        Outcome::Changed,
        Outcome::Failed,
        Outcome::NotFound,
        Outcome::Invalid,
        Outcome::Duplicate,
        Outcome::Excluded,
        Outcome::Skipped,
        Outcome::Drifted,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::WouldChange => "would-change",
            Outcome::NoChange => "no-change",
            Outcome::Changed => "changed",
            Outcome::Failed => "failed",
            Outcome::NotFound => "not-found",
            Outcome::Invalid => "invalid",
            Outcome::Duplicate => "duplicate",
            Outcome::Excluded => "excluded",
            Outcome::Skipped => "skipped",
            Outcome::Drifted => "drifted",
        }
    }

    /// Exactly the strings of [`Outcome::as_str`] (after trimming); anything else is `None`.
    pub fn parse(s: &str) -> Option<Outcome> {
        let s = s.trim();
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the row is as the admin asked (nothing for them to look at).
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::WouldChange | Outcome::NoChange | Outcome::Changed | Outcome::Excluded
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Outcome::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown outcome \"{s}\"")))
    }
}

/// What the tool does (or did, or would do) to the user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Set the per-user MFA state. Always a known state (never [`MfaState::Other`]).
    Set(MfaState),
    None,
}

impl Action {
    /// `set-enabled`, `set-enforced`, `set-disabled` or `none`. An (impossible) target of
    /// [`MfaState::Other`] is written as `set-other`, which [`Action::parse`] rejects.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Set(MfaState::Enabled) => "set-enabled",
            Action::Set(MfaState::Enforced) => "set-enforced",
            Action::Set(MfaState::Disabled) => "set-disabled",
            Action::Set(MfaState::Other(_)) => "set-other",
            Action::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s.trim() {
            "set-enabled" => Some(Action::Set(MfaState::Enabled)),
            "set-enforced" => Some(Action::Set(MfaState::Enforced)),
            "set-disabled" => Some(Action::Set(MfaState::Disabled)),
            "none" => Some(Action::None),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Action::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown action \"{s}\"")))
    }
}

/// One line of the result file: the truth about one input row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRow {
    /// Spreadsheet row number, as the admin sees it in Excel.
    pub row: u64,
    /// The cell as written.
    pub input: String,
    pub user_principal_name: Option<String>,
    pub user_id: Option<String>,
    pub display_name: Option<String>,
    pub state_before: Option<MfaState>,
    /// `yes`/`no`/empty in files.
    pub mfa_registered: Option<bool>,
    pub target_state: Option<MfaState>,
    pub action: Action,
    pub state_after: Option<MfaState>,
    pub outcome: Outcome,
    /// Why, in words (for every non-success outcome).
    pub error: Option<String>,
    /// Graph's request-id of the write (or of the read that decided).
    pub request_id: Option<String>,
}

impl ResultRow {
    /// A row with only the input known; every other field empty, action `none`.
    pub fn new(row: u64, input: impl Into<String>, outcome: Outcome) -> ResultRow {
        ResultRow {
            row,
            input: input.into(),
            user_principal_name: None,
            user_id: None,
            display_name: None,
            state_before: None,
            mfa_registered: None,
            target_state: None,
            action: Action::None,
            state_after: None,
            outcome,
            error: None,
            request_id: None,
        }
    }

    /// The 13 cells in [`COLUMNS`] order, unescaped (`row` as decimal text).
    pub fn cells(&self) -> [String; 13] {
        let opt = |s: &Option<String>| s.clone().unwrap_or_default();
        let state = |s: &Option<MfaState>| {
            s.as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default()
        };
        [
            self.row.to_string(),
            self.input.clone(),
            opt(&self.user_principal_name),
            opt(&self.user_id),
            opt(&self.display_name),
            state(&self.state_before),
            match self.mfa_registered {
                Some(true) => "yes".to_string(),
                Some(false) => "no".to_string(),
                None => String::new(),
            },
            state(&self.target_state),
            self.action.as_str().to_string(),
            state(&self.state_after),
            self.outcome.as_str().to_string(),
            opt(&self.error),
            opt(&self.request_id),
        ]
    }
}

/// The header of every result file, in this order.
pub const COLUMNS: [&str; 13] = [
    "row",
    "input",
    "user_principal_name",
    "user_id",
    "display_name",
    "state_before",
    "mfa_registered",
    "target_state",
    "action",
    "state_after",
    "outcome",
    "error",
    "request_id",
];

/// The format of a result file, decided by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultFormat {
    Csv,
    Xlsx,
}

/// The result file extensions mfa-bulk writes, as the messages list them.
pub const RESULT_EXTENSIONS: &str = ".csv or .xlsx";

impl ResultFormat {
    /// The format for the result file `path` (`-o`): `.csv` or `.xlsx` (any case), and `-`
    /// (standard output) is CSV. Any other extension, or none, is refused
    /// ([`ReportError::Format`]): `-o users.xls` must not quietly write a CSV that Excel then
    /// refuses to open. Call it before anything is sent to Graph.
    pub fn from_output_path(path: &Path) -> Result<ResultFormat, ReportError> {
        if is_stdout(path) {
            return Ok(ResultFormat::Csv);
        }
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
        match ext.as_deref() {
            Some(e) if e.eq_ignore_ascii_case("csv") => Ok(ResultFormat::Csv),
            Some(e) if e.eq_ignore_ascii_case("xlsx") => Ok(ResultFormat::Xlsx),
            found => Err(ReportError::Format {
                path: path.to_path_buf(),
                found: match found {
                    Some(e) => format!("the extension .{e}"),
                    None => "no extension".to_string(),
                },
            }),
        }
    }
}

/// Whether the result "file" is `-`: standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Errors of this module. Each message names the file (and row, column where there is one)
/// and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path} already exists; pass --force to overwrite it, or choose another name with -o")]
    Exists { path: PathBuf },

    #[error("could not {action} {path}: {source}; check the folder exists and is writable, and that the file is not open in Excel")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("could not read {path} as CSV: {message}; use a result file written by mfa-bulk")]
    Csv { path: PathBuf, message: String },

    #[error("could not {action} the workbook {path}: {message}")]
    Xlsx {
        path: PathBuf,
        action: &'static str,
        message: String,
    },

    #[error("{path}: {message}; use a result file written by mfa-bulk (plan or apply), unedited apart from rows removed")]
    Header { path: PathBuf, message: String },

    #[error("{path}, row {row}, column {column}: {message} (found \"{value}\"); fix that cell or use the result file as mfa-bulk wrote it")]
    Cell {
        path: PathBuf,
        row: u64,
        column: String,
        value: String,
        message: String,
    },

    #[error("{path}, line {line}: {message}; the journal is damaged, so --resume cannot trust it: check the users of this run with `dry-run` and run again without --resume")]
    Journal {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{path} belongs to a different run ({message}); run again without --resume, or resume with the same input file, tenant and options")]
    JournalMismatch { path: PathBuf, message: String },

    #[error("could not write {path}: {message}")]
    Json { path: PathBuf, message: String },

    #[error("internal error writing the result file: row index {index} was given twice or is before the rows already written")]
    OutOfOrder { index: usize },

    #[error("{path}: mfa-bulk writes result files as {RESULT_EXTENSIONS}, and this name has {found}; name the result file with one of those (e.g. -o results.csv), or use -o - for CSV on standard output")]
    Format { path: PathBuf, found: String },

    #[error("{path} is a symbolic link; mfa-bulk never writes through a link: remove the link, or give the real file's name")]
    Symlink { path: PathBuf },

    #[error("the {output_role} {output} is the same file as the {input_role} {input} (the same name, a symbolic link or a hard link to it); writing it would destroy the {input_role}, so this is refused even with --force: give the {output_role} another name")]
    SameFile {
        output: PathBuf,
        output_role: String,
        input: PathBuf,
        input_role: String,
    },

    #[error("the {first_role} and the {second_role} would both be written to {second}; give one of them another name")]
    SameOutput {
        first: PathBuf,
        first_role: String,
        second: PathBuf,
        second_role: String,
    },

    #[error("no free name for the result file beside {path} (tried {tries} names); choose a name with -o")]
    NoFreeName { path: PathBuf, tries: u32 },
}

impl ReportError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// A result file being written. Rows are written in the order given ([`OrderedWriter`] puts
/// them in input order).
pub trait ResultWriter {
    fn write_row(&mut self, row: &ResultRow) -> Result<(), ReportError>;
    /// Flushes, saves and syncs. An XLSX file is only complete after this.
    fn finish(self: Box<Self>) -> Result<(), ReportError>;
}

/// Creates the result file at `path` and writes its header: CSV or XLSX by the name
/// ([`ResultFormat::from_output_path`], which refuses any other name), or CSV on standard
/// output for `-`.
///
/// The file is created under a fresh name in its folder and renamed into place
/// ([`files`]), so a symbolic link at `path` is never followed. Without `force` an existing
/// file is never touched ([`ReportError::Exists`]); the check and the creation are one step,
/// so two runs cannot both take the same name. Without `force` an existing run record beside
/// it (`<path>.run.json`, written at the end of the run) is refused too, here, before any row.
pub fn create_writer(path: &Path, force: bool) -> Result<Box<dyn ResultWriter>, ReportError> {
    let format = check_result_path(path, force)?;
    if is_stdout(path) {
        return Ok(Box::new(csv::CsvWriter::stdout()?));
    }
    match format {
        ResultFormat::Csv => Ok(Box::new(csv::CsvWriter::create(path, force)?)),
        ResultFormat::Xlsx => Ok(Box::new(xlsx::XlsxWriter::create(path, force)?)),
    }
}

/// Everything about the result path that can be checked before anything is sent to Graph:
/// its format ([`ResultFormat::from_output_path`]) and, without `force`, that neither it nor
/// its run record (`<path>.run.json`) exists ([`ReportError::Exists`] naming the one that
/// does; a symbolic link counts, even a dangling one). Call it early; [`create_writer`]
/// checks again and the creation itself is atomic.
pub fn check_result_path(path: &Path, force: bool) -> Result<ResultFormat, ReportError> {
    let format = ResultFormat::from_output_path(path)?;
    if !force {
        let record = run_record_path(path);
        for p in std::iter::once(path.to_path_buf()).chain(record) {
            if !is_stdout(&p) && files::name_taken(&p) {
                return Err(ReportError::Exists { path: p });
            }
        }
    }
    Ok(format)
}

/// Creates the result file at `base` (a [`default_output_path`]), or, if that name or its run
/// record is taken, at `<stem>-2.<ext>`, `<stem>-3.<ext>`, …: each try is an atomic
/// create-new, so two runs started in the same millisecond get two files. Never replaces
/// anything. Returns the name taken and the writer.
pub fn create_writer_at_free_name(
    base: &Path,
) -> Result<(PathBuf, Box<dyn ResultWriter>), ReportError> {
    const TRIES: u32 = 1000;
    for n in 1..=TRIES {
        let path = numbered(base, n);
        match create_writer(&path, false) {
            Err(ReportError::Exists { .. }) => continue,
            Err(e) => return Err(e),
            Ok(w) => return Ok((path, w)),
        }
    }
    Err(ReportError::NoFreeName {
        path: base.to_path_buf(),
        tries: TRIES,
    })
}

/// `base` for `n` = 1, else `base` with `-<n>` before the extension.
fn numbered(base: &Path, n: u32) -> PathBuf {
    if n == 1 {
        return base.to_path_buf();
    }
    let stem = base.file_stem().unwrap_or_default().to_string_lossy();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    base.with_file_name(name)
}

/// Writes rows in input order although they complete in any order.
///
/// Rows are identified by their 0-based index in the input (`first_index` is the first one
/// this writer will see). [`OrderedWriter::put`] writes the contiguous prefix as soon as it is
/// complete, so the file always holds every row up to the first one still in flight.
/// [`OrderedWriter::finish`] also writes rows still waiting behind a gap (in order), so an
/// interrupted run's file holds every row that is final; the rows of the gap are then missing
/// (the engine should `put` a `skipped` row for every input row it did not finish).
pub struct OrderedWriter {
    inner: Box<dyn ResultWriter>,
    next: usize,
    pending: BTreeMap<usize, ResultRow>,
}

impl OrderedWriter {
    pub fn new(writer: Box<dyn ResultWriter>, first_index: usize) -> OrderedWriter {
        OrderedWriter {
            inner: writer,
            next: first_index,
            pending: BTreeMap::new(),
        }
    }

    pub fn put(&mut self, index: usize, row: ResultRow) -> Result<(), ReportError> {
        if index < self.next || self.pending.contains_key(&index) {
            return Err(ReportError::OutOfOrder { index });
        }
        if index == self.next {
            self.inner.write_row(&row)?;
            self.next += 1;
            while let Some(row) = self.pending.remove(&self.next) {
                self.inner.write_row(&row)?;
                self.next += 1;
            }
        } else {
            self.pending.insert(index, row);
        }
        Ok(())
    }

    /// The index of the next row to be written (rows before it are in the file).
    pub fn next_index(&self) -> usize {
        self.next
    }

    /// How many rows wait behind a gap.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes any rows still waiting (in order, across gaps), then finishes the file.
    pub fn finish(mut self) -> Result<(), ReportError> {
        for (_, row) in std::mem::take(&mut self.pending) {
            self.inner.write_row(&row)?;
        }
        self.inner.finish()
    }
}

/// `"<input stem>-<command>-<YYYYMMDD-HHMMSS-mmm>.csv"` (UTC, with milliseconds), relative
/// (the current directory). Create it with [`create_writer_at_free_name`], which adds `-2`,
/// `-3`, … if two runs still meet on one name.
pub fn default_output_path(input: &Path, command: &str, now: DateTime<Utc>) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "mfa-bulk".to_string());
    PathBuf::from(format!(
        "{stem}-{command}-{}.csv",
        now.format("%Y%m%d-%H%M%S-%3f")
    ))
}

/// `<file name><suffix>` beside `path` (e.g. `out.csv` → `out.csv.run.json`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_strings_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
        assert_eq!(Outcome::parse("Changed"), None);
        assert!(serde_json::from_str::<Outcome>("\"done\"").is_err());
    }

    #[test]
    fn action_strings_round_trip() {
        for a in [
            Action::Set(MfaState::Enabled),
            Action::Set(MfaState::Enforced),
            Action::Set(MfaState::Disabled),
            Action::None,
        ] {
            assert_eq!(Action::parse(a.as_str()), Some(a.clone()));
        }
        assert_eq!(Action::parse("set-other"), None);
        assert_eq!(Action::parse("enable"), None);
    }

    #[test]
    fn format_from_name() {
        let f = |p: &str| ResultFormat::from_output_path(Path::new(p));
        assert_eq!(f("a/b.XLSX").unwrap(), ResultFormat::Xlsx);
        assert_eq!(f("b.xlsx").unwrap(), ResultFormat::Xlsx);
        assert_eq!(f("b.csv").unwrap(), ResultFormat::Csv);
        assert_eq!(f("B.Csv").unwrap(), ResultFormat::Csv);
        assert_eq!(f("-").unwrap(), ResultFormat::Csv);
        assert_eq!(f("dir.v2/-.csv").unwrap(), ResultFormat::Csv);
        for (bad, found) in [
            ("b.xls", ".xls"),
            ("b.ods", ".ods"),
            ("b.txt", ".txt"),
            ("results", "no extension"),
            ("xlsx", "no extension"),
            (".csv", "no extension"),
            ("dir.csv/results", "no extension"),
            ("b.csv.bak", ".bak"),
        ] {
            let err = f(bad).unwrap_err();
            assert!(matches!(err, ReportError::Format { .. }), "{bad}: {err}");
            let msg = err.to_string();
            assert!(
                msg.contains(bad) && msg.contains(found) && msg.contains(".csv or .xlsx"),
                "{msg}"
            );
        }
    }

    #[test]
    fn default_output_name() {
        let now = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.089Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            default_output_path(Path::new("/data/Users Q1.xlsx"), "apply", now),
            PathBuf::from("Users Q1-apply-20260304-050607-089.csv")
        );
    }

    #[test]
    fn numbered_names() {
        let b = Path::new("d/u-apply-20260304-050607-089.csv");
        assert_eq!(numbered(b, 1), b);
        assert_eq!(
            numbered(b, 2),
            PathBuf::from("d/u-apply-20260304-050607-089-2.csv")
        );
        assert_eq!(numbered(Path::new("plain"), 3), PathBuf::from("plain-3"));
    }

    #[test]
    fn a_taken_run_record_takes_the_name_too() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("u-dry-run-20260304-050607-089.csv");
        std::fs::write(sibling(&base, ".run.json"), b"{}").unwrap();
        let err = check_result_path(&base, false).unwrap_err();
        assert!(
            matches!(&err, ReportError::Exists { path } if path.ends_with("u-dry-run-20260304-050607-089.csv.run.json")),
            "{err}"
        );
        check_result_path(&base, true).unwrap();
        let (path, w) = create_writer_at_free_name(&base).unwrap();
        w.finish().unwrap();
        assert_eq!(path, dir.path().join("u-dry-run-20260304-050607-089-2.csv"));
        assert!(!base.exists());
    }

    #[test]
    fn sibling_names() {
        assert_eq!(
            sibling(Path::new("dir/out.csv"), ".run.json"),
            PathBuf::from("dir/out.csv.run.json")
        );
    }
}
