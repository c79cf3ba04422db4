//! Formula-injection escaping (OWASP "CSV injection"), the same for CSV and XLSX.
//!
//! A text cell that starts with `=`, `+`, `-`, `@`, tab, CR or LF gets a leading `'`, so Excel
//! and other spreadsheet programs show it as text and never run it as a formula. A cell that
//! already starts with `'` gets one more `'`, so that every escaped cell, and only those, starts
//! with `'`: [`unescape`] removes exactly one leading `'` and gets the original back.
//!
//! XLSX cells are written as strings (never formulas) anyway; they are escaped the same way
//! so that a sheet saved as CSV from Excel, or copied and pasted, stays harmless.
//!
//! A leading line break counts like a tab: a spreadsheet or an import may drop it when it
//! reads the cell, and what follows (`=…`) then starts the cell.

const TRIGGERS: [char; 8] = ['=', '+', '-', '@', '\t', '\r', '\n', '\''];

/// The cell as it goes into the file.
pub fn escape(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some(c) if TRIGGERS.contains(&c) => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The original cell from what [`escape`] wrote.
pub fn unescape(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_trigger_and_undoes_it() {
        for s in [
            "=HYPERLINK(\"https://evil.example\",\"Click me\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "\nx",
            "\n=1+1",
            "\r\n=1+1",
            "'quoted",
            "''",
            "'",
        ] {
            let e = escape(s);
            assert!(e.starts_with('\''), "{s:?} not escaped");
            assert_eq!(e.len(), s.len() + 1);
            assert_eq!(unescape(&e), s);
        }
    }

    #[test]
    fn leaves_harmless_cells_alone() {
        for s in [
            "",
            "anna@contoso.com",
            "Jürgen Müller",
            " =x",
            "a=b",
            "1-2",
            "a\n=b",
        ] {
            assert_eq!(escape(s), s);
            assert_eq!(unescape(&escape(s)), s);
        }
    }
}
