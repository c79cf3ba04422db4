//! `mfa-bulk validate FILE`: read a file offline and show what was found, every user with its
//! spreadsheet row number, and every problem. Never touches the network.
//!
//! Big files: up to 1,000 users are all listed; above that the first 50 are listed and the rest
//! counted. Problems are listed up to 1,000 (then counted). `--json` applies the same limits.
//! Exit 0 when every row is usable, 1 when some rows need attention (invalid or duplicate), 2
//! when the file is unusable or yields no users at all (the rows read are still listed).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{json, Value};

use crate::cli::ValidateArgs;
use crate::exit::ExitCode;
use crate::input::normalize::printable;
use crate::input::{self, InputError, ReadOptions, SourceInfo};
use crate::model::{InputRow, RowStatus, UserRef};

/// All users are listed when there are at most this many.
pub(crate) const LIST_ALL_UP_TO: usize = 1000;
/// Otherwise the first this many are listed.
pub(crate) const LIST_FIRST: usize = 50;
/// Problems listed at most.
pub(crate) const PROBLEMS_SHOWN: usize = 1000;

/// What `validate` found, with the listing limits applied.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub users: Vec<InputRow>,
    pub users_truncated: bool,
    pub problems: Vec<InputRow>,
    pub rows: u64,
    pub ok: u64,
    pub invalid: u64,
    pub duplicate: u64,
    pub excluded: u64,
    pub blank_rows: u64,
    pub blank_row_numbers: Vec<u64>,
    /// Workbook sheets (name, hidden); empty for text files.
    pub sheets: Vec<(String, bool)>,
    /// Whether the format tells which rows are hidden (XLSX/XLSM).
    pub hidden_known: bool,
    /// Rows read (users or problems) that are hidden in Excel (first 1,000).
    pub hidden_rows: Vec<u64>,
    pub hidden_count: u64,
    /// Row number of the first row read.
    pub first_row: Option<u64>,
    /// Warnings found while reading (rows that do not fit the file's encoding).
    pub warnings: Vec<String>,
    /// Why the file is an input error although it could be read: it yields no users.
    pub no_users: Option<String>,
}

impl Findings {
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.no_users.is_some() {
            ExitCode::UsageOrInput
        } else if self.invalid > 0 || self.duplicate > 0 {
            ExitCode::RowsNeedAttention
        } else {
            ExitCode::Success
        }
    }

    fn add(&mut self, row: InputRow) {
        self.rows += 1;
        self.first_row.get_or_insert(row.row);
        match &row.status {
            RowStatus::Ok(_) => {
                self.ok += 1;
                if !self.users_truncated {
                    self.users.push(row);
                    if self.users.len() > LIST_ALL_UP_TO {
                        self.users.truncate(LIST_FIRST);
                        self.users_truncated = true;
                    }
                }
                return;
            }
            RowStatus::Invalid { .. } => self.invalid += 1,
            RowStatus::Duplicate { .. } => self.duplicate += 1,
            RowStatus::Excluded { .. } => self.excluded += 1,
        }
        if self.problems.len() < PROBLEMS_SHOWN {
            self.problems.push(row);
        }
    }

    fn problems_total(&self) -> u64 {
        self.invalid + self.duplicate + self.excluded
    }
}

fn read_options(args: &ValidateArgs) -> ReadOptions {
    ReadOptions {
        sheet: args.input.sheet.clone(),
        column: args.input.column.clone(),
        encoding: args.input.encoding.clone(),
        delimiter: args.input.delimiter.clone(),
    }
}

/// Reads the file (and the exclusion list) into [`Findings`].
pub(crate) fn check(args: &ValidateArgs) -> Result<(SourceInfo, Findings), InputError> {
    let mut warnings = Vec::new();
    let excluded = match &args.input.exclude {
        Some(p) => {
            let (keys, w) = input::read_exclusion_list(p, &ReadOptions::default())?;
            warnings.extend(w);
            keys
        }
        None => HashSet::new(),
    };
    let mut reader = input::open(&args.input.file, &read_options(args))?;
    let info = reader.info.clone();
    let mut marker = input::Marker::for_source(excluded, &info);
    let mut f = Findings {
        sheets: reader.sheets().to_vec(),
        ..Findings::default()
    };
    let hidden = reader.hidden_rows().cloned();
    f.hidden_known = hidden.is_some();
    for raw in &mut reader {
        let row = marker.mark(raw?)?;
        if hidden.as_ref().is_some_and(|h| h.contains(&row.row)) {
            f.hidden_count += 1;
            if f.hidden_rows.len() < PROBLEMS_SHOWN {
                f.hidden_rows.push(row.row);
            }
        }
        f.add(row);
    }
    f.blank_rows = reader.blank_rows();
    f.blank_row_numbers = reader.blank_row_numbers().to_vec();
    warnings.extend(reader.warnings());
    f.warnings = warnings;
    // The same check as every command's: listed here, then exit 2.
    f.no_users = marker.require_users(&info).err().map(|e| e.to_string());
    Ok((info, f))
}

/// Runs `validate` and prints the result.
pub(crate) fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    match check(args) {
        Ok((info, f)) => {
            let out = if args.json {
                let mut s = serde_json::to_string_pretty(&to_json(&info, &f.sheets, &f, args))?;
                s.push('\n');
                s
            } else {
                to_text(&info, &f.sheets, &f, args)
            };
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
            drop(stdout);
            if let Some(e) = &f.no_users {
                eprintln!("error: {e}");
            }
            Ok(f.exit_code())
        }
        Err(e) => {
            if args.json {
                let v = json!({
                    "file": e.path(),
                    "error": e.to_string(),
                    "exit_code": ExitCode::UsageOrInput.code(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                eprintln!("error: {e}");
                Ok(ExitCode::UsageOrInput)
            } else {
                Err(e.into())
            }
        }
    }
}

fn user_text(u: &UserRef) -> String {
    match u {
        UserRef::Address(a) => a.clone(),
        UserRef::ObjectId(id) => format!("{id} (object id)"),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn row_list(rows: &[u64], total: u64) -> String {
    let mut s = rows
        .iter()
        .take(20)
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if total > rows.len().min(20) as u64 {
        s.push_str(", …");
    }
    s
}

fn to_text(
    info: &SourceInfo,
    sheets: &[(String, bool)],
    f: &Findings,
    args: &ValidateArgs,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "File:          {}", info.path.display());
    let _ = writeln!(o, "Format:        {}", info.format);
    if let Some(e) = &info.encoding {
        let _ = writeln!(o, "Encoding:      {e}");
    }
    if let Some(d) = info.delimiter {
        let d = match d {
            '\t' => "tab".to_string(),
            c => format!("'{c}'"),
        };
        let _ = writeln!(o, "Delimiter:     {d}");
    }
    if let Some(s) = &info.sheet {
        let hidden = sheets.iter().any(|(n, h)| n == s && *h);
        let others: Vec<String> = sheets
            .iter()
            .map(|(n, _)| format!("\"{}\"", printable(n)))
            .collect();
        let _ = writeln!(
            o,
            "Sheet:         \"{}\"{} (sheets: {})",
            printable(s),
            if hidden { " (hidden in Excel)" } else { "" },
            others.join(", ")
        );
    }
    match info.header_row {
        Some(r) => {
            let _ = writeln!(o, "Header row:    {r}");
        }
        None => {
            let _ = writeln!(
                o,
                "Header row:    none (a plain list: the first row is data)"
            );
        }
    }
    if info.header_row.is_none() && info.column == info.column_letter {
        let _ = writeln!(
            o,
            "User column:   column {} (no header)",
            info.column_letter
        );
    } else {
        let _ = writeln!(
            o,
            "User column:   \"{}\" (column {})",
            printable(&info.column),
            info.column_letter
        );
    }
    let _ = writeln!(
        o,
        "State column:  {}",
        info.state_column
            .as_ref()
            .map(|s| format!("\"{}\" (per-row target; overrides --state)", printable(s)))
            .unwrap_or_else(|| "none".into())
    );
    if let Some(x) = &args.input.exclude {
        let _ = writeln!(o, "Exclusions:    {}", x.display());
    }

    let _ = writeln!(o);
    let _ = writeln!(o, "Users ({}):", f.ok);
    for r in &f.users {
        if let RowStatus::Ok(u) = &r.status {
            let state = r
                .state
                .as_ref()
                .map(|s| format!("  [{s}]"))
                .unwrap_or_default();
            let _ = writeln!(o, "  row {:<6} {}{state}", r.row, user_text(u));
        }
    }
    if f.users_truncated {
        let _ = writeln!(
            o,
            "  … {} more users not listed (more than {LIST_ALL_UP_TO}: the first {LIST_FIRST} are shown)",
            f.ok - f.users.len() as u64
        );
    }

    if f.problems_total() > 0 {
        let _ = writeln!(o);
        let _ = writeln!(o, "Problems ({}):", f.problems_total());
        for r in &f.problems {
            let line = match &r.status {
                RowStatus::Invalid { reason } => format!("invalid     {reason}"),
                RowStatus::Duplicate { first_row, user } => format!(
                    "duplicate   {} (first at row {first_row}; this row is skipped)",
                    user_text(user)
                ),
                RowStatus::Excluded { user } => {
                    format!(
                        "excluded    {} (in the exclusion list; never touched)",
                        user_text(user)
                    )
                }
                RowStatus::Ok(_) => continue,
            };
            let _ = writeln!(o, "  row {:<6} {line}", r.row);
        }
        if f.problems_total() > f.problems.len() as u64 {
            let _ = writeln!(
                o,
                "  … {} more problems not listed (the first {PROBLEMS_SHOWN} are shown)",
                f.problems_total() - f.problems.len() as u64
            );
        }
        // A headerless read whose first row is not a user: maybe it is a header we do not know.
        if let (None, Some(first)) = (info.header_row, f.problems.first()) {
            if Some(first.row) == f.first_row && matches!(first.status, RowStatus::Invalid { .. }) {
                let _ = writeln!(
                    o,
                    "  Hint: if row {} is the header, name the column: --column \"{}\"",
                    first.row,
                    printable(input::normalize::clean(&first.input).as_str())
                );
            }
        }
    }
    if !f.warnings.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Warnings ({}):", f.warnings.len());
        for w in &f.warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
    if f.blank_rows > 0 {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Blank rows:    {} skipped ({} {})",
            f.blank_rows,
            if f.blank_rows == 1 { "row" } else { "rows" },
            row_list(&f.blank_row_numbers, f.blank_rows)
        );
    }

    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Summary: {} read: {}, {}, {}, {}; {} skipped.",
        plural(f.rows, "row", "rows"),
        plural(f.ok, "user", "users"),
        plural(f.invalid, "invalid", "invalid"),
        plural(f.duplicate, "duplicate", "duplicates"),
        plural(f.excluded, "excluded", "excluded"),
        plural(f.blank_rows, "blank row", "blank rows"),
    );
    if f.hidden_count > 0 {
        let _ = writeln!(
            o,
            "Note: {} hidden in Excel ({} {}) {} read like any other row: unhide to check {}.",
            plural(f.hidden_count, "row", "rows"),
            if f.hidden_count == 1 { "row" } else { "rows" },
            row_list(&f.hidden_rows, f.hidden_count),
            if f.hidden_count == 1 { "is" } else { "are" },
            if f.hidden_count == 1 { "it" } else { "them" },
        );
    } else if info.sheet.is_some() && !f.hidden_known {
        let _ = writeln!(
            o,
            "Note: rows hidden in Excel (this format does not say which) are read like any other row."
        );
    }
    match f.exit_code() {
        ExitCode::Success => {
            let _ = writeln!(o, "Every row is usable.");
        }
        ExitCode::UsageOrInput => {
            let _ = writeln!(
                o,
                "No users found below the header: check the file, or pick the column with --column."
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "Some rows need attention: fix them in the file, or go ahead and they will be skipped."
            );
        }
    }
    o
}

fn user_json(u: &UserRef) -> Value {
    match u {
        UserRef::Address(a) => json!({"kind": "address", "value": a}),
        UserRef::ObjectId(id) => json!({"kind": "object_id", "value": id}),
    }
}

fn to_json(
    info: &SourceInfo,
    sheets: &[(String, bool)],
    f: &Findings,
    args: &ValidateArgs,
) -> Value {
    let users: Vec<Value> = f
        .users
        .iter()
        .filter_map(|r| match &r.status {
            RowStatus::Ok(u) => Some(json!({
                "row": r.row,
                "input": r.input,
                "user": user_json(u),
                "state": r.state.as_ref().map(|s| s.as_str().to_string()),
            })),
            _ => None,
        })
        .collect();
    let problems: Vec<Value> = f
        .problems
        .iter()
        .filter_map(|r| {
            let (kind, extra) = match &r.status {
                RowStatus::Invalid { reason } => ("invalid", json!({"reason": reason})),
                RowStatus::Duplicate { first_row, user } => (
                    "duplicate",
                    json!({"first_row": first_row, "user": user_json(user)}),
                ),
                RowStatus::Excluded { user } => ("excluded", json!({"user": user_json(user)})),
                RowStatus::Ok(_) => return None,
            };
            let mut v = json!({"row": r.row, "input": r.input, "problem": kind});
            if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            Some(v)
        })
        .collect();
    json!({
        "source": info,
        "sheets": sheets.iter().map(|(n, h)| json!({"name": n, "hidden": h})).collect::<Vec<_>>(),
        "exclude": args.input.exclude,
        "counts": {
            "rows": f.rows,
            "users": f.ok,
            "invalid": f.invalid,
            "duplicate": f.duplicate,
            "excluded": f.excluded,
            "blank_rows_skipped": f.blank_rows,
        },
        "users": users,
        "users_truncated": f.users_truncated,
        "problems": problems,
        "problems_truncated": f.problems_total() > f.problems.len() as u64,
        "blank_rows": f.blank_row_numbers,
        "hidden_rows": if f.hidden_known { json!(f.hidden_rows) } else { Value::Null },
        "warnings": f.warnings,
        "error": f.no_users,
        "exit_code": f.exit_code().code(),
    })
}
