//! Finding the header row, the user column and the state column in the first rows of a sheet.

use super::normalize::{is_blank, looks_like_user};
use crate::model::MfaState;

/// One physical row: its spreadsheet row number and its cells (index 0 = column A).
pub type Row = (u64, Vec<String>);

/// How many rows from the top are searched for the header.
pub const HEAD_ROWS: usize = 30;

/// Where the users are.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Index (into the head rows) of the header row; `None` for a headerless list.
    pub header: Option<usize>,
    pub user_col: usize,
    /// The user column's header as written, or its letter for a headerless list.
    pub user_header: String,
    pub state_col: Option<(usize, String)>,
}

/// Why no user column was found.
#[derive(Clone, Debug)]
pub enum LayoutError {
    /// Nothing looks like a user column. `headers` are `(letter, text)` of the likely header row.
    NoUserColumn {
        header_row: Option<u64>,
        headers: Vec<(String, String)>,
    },
    /// `--column` names no header and is not a column letter with data.
    ColumnNotFound {
        column: String,
        header_row: Option<u64>,
        headers: Vec<(String, String)>,
    },
}

/// Lower case, without spaces, `-`, `_`, `.`, `:` and invisible characters.
pub fn norm_header(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !c.is_whitespace() && !matches!(c, '-' | '_' | '.' | ':' | '\u{200B}' | '\u{FEFF}')
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The `[userPrincipalName]` part of an Entra bulk template header, if any.
fn bracketed(s: &str) -> Option<&str> {
    let open = s.find('[')?;
    let close = open + s[open..].find(']')?;
    Some(&s[open + 1..close])
}

/// Without `(…)` parts: "E-mail (work)" → "E-mail ".
fn without_parens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The comparable form of a header: the `[…]` part of an Entra template header if any, else
/// the header without `(…)` parts, normalised.
fn header_key(h: &str) -> String {
    match bracketed(h) {
        Some(inner) => norm_header(inner),
        None => norm_header(&without_parens(h)),
    }
}

/// 1 = sign-in name (UPN), 2 = mail address, 3 = object id. `None`: not a user header.
pub fn user_header_tier(h: &str) -> Option<u8> {
    let n = header_key(h);
    match n.as_str() {
        "upn"
        | "userprincipalname"
        | "username"
        | "signinname"
        | "benutzername"
        | "benutzerprinzipalname" => Some(1),
        "email" | "mail" | "emailaddress" | "mailaddress" | "workemail" | "workemailaddress"
        | "businessemail" | "primaryemail" | "officeemail" | "companyemail" | "workmail"
        | "emailadresse" | "mailadresse" | "emailaddresse" | "emailwork" | "smtpaddress"
        | "primarysmtpaddress" | "courriel" | "adressemail" | "adresseemail" => Some(2),
        "objectid" | "userobjectid" | "id" => Some(3),
        _ => None,
    }
}

/// Whether a header names a per-row MFA state.
pub fn is_state_header(h: &str) -> bool {
    let n = header_key(h);
    matches!(
        n.as_str(),
        "mfastatus"
            | "mfastate"
            | "state"
            | "perusermfastate"
            | "perusermfa"
            | "perusermfastatus"
            | "mfa"
            | "multifactorauthstatus"
            | "multifactorauthstate"
            | "multifactorauthenticationstatus"
            | "multifactorauthenticationstate"
            | "targetstate"
    )
}

/// Column letter of a 0-based index: 0 → A, 25 → Z, 26 → AA.
pub fn col_letter(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// 0-based index of a column letter (A, b, AA; up to 3 letters).
pub fn parse_col_letter(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() || s.len() > 3 || !s.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut n = 0usize;
    for c in s.bytes() {
        n = n * 26 + (c.to_ascii_uppercase() - b'A' + 1) as usize;
    }
    Some(n - 1)
}

fn cell(row: &Row, c: usize) -> &str {
    row.1.get(c).map(String::as_str).unwrap_or("")
}

/// The row most likely to be the header (the first with the most non-empty cells) and its cells.
fn likely_headers(head: &[Row]) -> (Option<u64>, Vec<(String, String)>) {
    let mut best: Option<&Row> = None;
    let mut best_n = 0;
    for r in head {
        let n = r.1.iter().filter(|c| !is_blank(c)).count();
        if n > best_n {
            best_n = n;
            best = Some(r);
        }
    }
    match best {
        None => (None, Vec::new()),
        Some(r) => (
            Some(r.0),
            r.1.iter()
                .enumerate()
                .filter(|(_, c)| !is_blank(c))
                .map(|(i, c)| (col_letter(i), c.trim().to_string()))
                .collect(),
        ),
    }
}

/// (users, non-empty) among the cells of column `c` in `rows`.
fn column_score(rows: &[Row], c: usize) -> (usize, usize) {
    let mut users = 0;
    let mut filled = 0;
    for r in rows {
        let v = cell(r, c);
        if !is_blank(v) {
            filled += 1;
            if looks_like_user(v) {
                users += 1;
            }
        }
    }
    (users, filled)
}

fn state_col_in(row: &Row, user_col: usize) -> Option<(usize, String)> {
    row.1
        .iter()
        .enumerate()
        .find(|(i, h)| *i != user_col && is_state_header(h))
        .map(|(i, h)| (i, h.trim().to_string()))
}

fn header_text(row: &Row, c: usize) -> String {
    let h = cell(row, c).trim();
    if h.is_empty() {
        col_letter(c)
    } else {
        h.to_string()
    }
}

/// The first row (in `head`) with a recognised user header, and its best user column.
fn find_recognised(head: &[Row]) -> Option<(usize, usize)> {
    for (i, row) in head.iter().enumerate() {
        let cands: Vec<(usize, u8)> = row
            .1
            .iter()
            .enumerate()
            .filter_map(|(c, h)| user_header_tier(h).map(|t| (c, t)))
            .collect();
        if cands.is_empty() {
            continue;
        }
        let below = &head[i + 1..];
        // Prefer a column whose data looks like users, then the UPN-like header, then leftmost.
        let best = cands
            .iter()
            .min_by_key(|(c, t)| {
                let (users, filled) = column_score(below, *c);
                let looks = filled > 0 && users * 2 >= filled;
                (!looks, *t, *c)
            })
            .map(|(c, _)| *c)?;
        return Some((i, best));
    }
    None
}

/// A headerless list: the column where most cells are users, if any.
fn find_headerless(head: &[Row]) -> Option<usize> {
    let width = head.iter().map(|r| r.1.len()).max().unwrap_or(0);
    (0..width)
        .filter_map(|c| {
            let (users, filled) = column_score(head, c);
            (users > 0 && users * 2 >= filled).then_some((c, users))
        })
        .max_by_key(|(c, users)| (*users, std::cmp::Reverse(*c)))
        .map(|(c, _)| c)
}

/// A headerless column whose cells are all MFA states.
fn headerless_state_col(head: &[Row], user_col: usize) -> Option<(usize, String)> {
    let width = head.iter().map(|r| r.1.len()).max().unwrap_or(0);
    (0..width).filter(|c| *c != user_col).find_map(|c| {
        let vals: Vec<&str> = head
            .iter()
            .map(|r| cell(r, c))
            .filter(|v| !is_blank(v))
            .collect();
        (!vals.is_empty() && vals.iter().all(|v| MfaState::parse(v).is_some()))
            .then(|| (c, col_letter(c)))
    })
}

/// Finds the layout of a sheet from its first rows (`head`, at most [`HEAD_ROWS`]).
pub fn find_layout(head: &[Row], column: Option<&str>) -> Result<Layout, LayoutError> {
    let Some(column) = column else {
        if let Some((i, c)) = find_recognised(head) {
            return Ok(Layout {
                header: Some(i),
                user_col: c,
                user_header: header_text(&head[i], c),
                state_col: state_col_in(&head[i], c),
            });
        }
        if let Some(c) = find_headerless(head) {
            return Ok(Layout {
                header: None,
                user_col: c,
                user_header: col_letter(c),
                state_col: headerless_state_col(head, c),
            });
        }
        let (header_row, headers) = likely_headers(head);
        return Err(LayoutError::NoUserColumn {
            header_row,
            headers,
        });
    };

    // By header name (also the bracketed part of an Entra template header).
    let want = norm_header(column);
    if !want.is_empty() {
        for (i, row) in head.iter().enumerate() {
            let hit = row.1.iter().position(|h| {
                norm_header(h) == want || bracketed(h).is_some_and(|b| norm_header(b) == want)
            });
            if let Some(c) = hit {
                return Ok(Layout {
                    header: Some(i),
                    user_col: c,
                    user_header: header_text(row, c),
                    state_col: state_col_in(row, c),
                });
            }
        }
    }

    // By letter.
    let not_found = || {
        let (header_row, headers) = likely_headers(head);
        LayoutError::ColumnNotFound {
            column: column.to_string(),
            header_row,
            headers,
        }
    };
    let c = parse_col_letter(column).ok_or_else(not_found)?;
    let (_, filled) = column_score(head, c);
    if filled == 0 {
        return Err(not_found());
    }
    if let Some((i, _)) = find_recognised(head) {
        return Ok(Layout {
            header: Some(i),
            user_col: c,
            user_header: header_text(&head[i], c),
            state_col: state_col_in(&head[i], c),
        });
    }
    // The first non-empty cell is a header if it is not a user but a later cell is.
    let first = head.iter().position(|r| !is_blank(cell(r, c)));
    if let Some(i) = first {
        let (users_below, _) = column_score(&head[i + 1..], c);
        if !looks_like_user(cell(&head[i], c)) && users_below > 0 {
            return Ok(Layout {
                header: Some(i),
                user_col: c,
                user_header: header_text(&head[i], c),
                state_col: state_col_in(&head[i], c),
            });
        }
    }
    Ok(Layout {
        header: None,
        user_col: c,
        user_header: col_letter(c),
        state_col: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lines: &[&[&str]]) -> Vec<Row> {
        lines
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 1, r.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn letters_round_trip() {
        for (i, l) in [
            (0, "A"),
            (3, "D"),
            (25, "Z"),
            (26, "AA"),
            (27, "AB"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(col_letter(i), l);
            assert_eq!(parse_col_letter(l), Some(i));
        }
        assert_eq!(parse_col_letter("d"), Some(3));
        assert_eq!(parse_col_letter("A1"), None);
    }

    #[test]
    fn recognises_headers_in_every_spelling() {
        for h in [
            "UPN",
            "UserPrincipalName",
            "User name",
            "Username",
            "user_name",
            "Email",
            "E-Mail",
            "Mail",
            "Work email",
            "Work E-mail",
            "Email Address",
            "E-Mail-Adresse",
            "User name [userPrincipalName] Required",
        ] {
            assert!(user_header_tier(h).is_some(), "{h}");
        }
        assert!(user_header_tier("Employee ID").is_none());
        assert!(user_header_tier("Manager email").is_none());
        assert!(user_header_tier("(").is_none());
        assert!(user_header_tier("Name [displayName] Required").is_none());
        for h in [
            "MFA Status",
            "MFA state",
            "State",
            "PerUserMfaState",
            "mfa_status",
        ] {
            assert!(is_state_header(h), "{h}");
        }
    }

    #[test]
    fn skips_title_rows_and_prefers_upn_over_mail() {
        let head = rows(&[
            &["Northwind — New starters"],
            &[],
            &["Name", "Email", "UPN", "MFA Status"],
            &["Zoë", "zoe@n.example", "zoe@n.example", "Enabled"],
        ]);
        let l = find_layout(&head, None).unwrap();
        assert_eq!(
            (l.header, l.user_col, l.user_header.as_str()),
            (Some(2), 2, "UPN")
        );
        assert_eq!(l.state_col, Some((3, "MFA Status".into())));
    }

    #[test]
    fn a_user_name_column_of_display_names_loses_to_email() {
        let head = rows(&[&["User name", "Email"], &["Zoë Lindqvist", "zoe@n.example"]]);
        let l = find_layout(&head, None).unwrap();
        assert_eq!(l.user_col, 1);
    }

    #[test]
    fn headerless_and_no_column() {
        let head = rows(&[&["zoe@n.example"], &["liam@n.example"]]);
        let l = find_layout(&head, None).unwrap();
        assert_eq!(
            (l.header, l.user_col, l.user_header.as_str()),
            (None, 0, "A")
        );

        let head = rows(&[&["Name", "Dept"], &["Zoë", "IT"]]);
        match find_layout(&head, None).unwrap_err() {
            LayoutError::NoUserColumn {
                header_row,
                headers,
            } => {
                assert_eq!(header_row, Some(1));
                assert_eq!(headers[1], ("B".into(), "Dept".into()));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn column_by_name_or_letter() {
        let head = rows(&[&["Title"], &["Name", "Contact"], &["Zoë", "zoe@n.example"]]);
        let l = find_layout(&head, Some("contact")).unwrap();
        assert_eq!((l.header, l.user_col), (Some(1), 1));
        let l = find_layout(&head, Some("B")).unwrap();
        assert_eq!(
            (l.header, l.user_col, l.user_header.as_str()),
            (Some(1), 1, "Contact")
        );
        assert!(matches!(
            find_layout(&head, Some("Nope")),
            Err(LayoutError::ColumnNotFound { .. })
        ));
        assert!(matches!(
            find_layout(&head, Some("Q")),
            Err(LayoutError::ColumnNotFound { .. })
        ));
    }
}
