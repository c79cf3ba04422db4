//! Cell values → user references: trimming, `mailto:`/`Name <addr>` forms, address and GUID
//! checks. Pure functions, no I/O.

use crate::model::UserRef;

/// Characters that are invisible in a spreadsheet but break a lookup.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// Removes invisible characters and surrounding whitespace (including non-breaking spaces).
pub fn clean(s: &str) -> String {
    let s: String = s.chars().filter(|c| !is_invisible(*c)).collect();
    s.trim().to_string()
}

/// Most characters of a value shown in a message or a result's `error` column.
pub const SHOWN_CHARS: usize = 80;

/// The most characters a user principal name can have (64 before the `@`, 48 after).
pub const MAX_USER_CHARS: usize = 113;

/// Text safe to print on a terminal or in a message: control characters (escape sequences,
/// line breaks inside a cell) are shown escaped, e.g. `\u{1b}`, and a long value is cut after
/// [`SHOWN_CHARS`] characters, followed by "… (N characters)".
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SHOWN_CHARS * 4 + 32));
    let mut n = 0usize;
    for c in s.chars() {
        n += 1;
        if n > SHOWN_CHARS {
            continue;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if n > SHOWN_CHARS {
        out.push_str(&format!("… ({n} characters)"));
    }
    out
}

/// Whether a cell counts as empty.
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// Strips `mailto:`, `Name <addr>` and `<addr>` forms; trims.
pub fn strip_forms(s: &str) -> String {
    let mut s = clean(s);
    if s.ends_with('>') {
        if let Some(open) = s.rfind('<') {
            s = clean(&s[open + 1..s.len() - 1]);
        }
    }
    if s.len() >= 7 && s.is_char_boundary(7) && s[..7].eq_ignore_ascii_case("mailto:") {
        s = clean(&s[7..]);
    }
    s
}

/// A GUID in its usual 8-4-4-4-12 form (braces allowed), lower-cased.
pub fn parse_guid(s: &str) -> Option<String> {
    let s = s
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(s);
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return None;
        }
    }
    Some(s.to_ascii_lowercase())
}

const LOCAL_SPECIALS: &str = ".!#$%&'*+-/=?^_`{|}~";

/// Whether `s` (already cleaned) looks like `name@domain.tld`.
pub fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') {
        return false;
    }
    if !local
        .chars()
        .all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    for l in &labels {
        if l.is_empty()
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        {
            return false;
        }
    }
    let tld = labels[labels.len() - 1];
    tld.chars().count() >= 2 && (tld.chars().all(char::is_alphabetic) || tld.starts_with("xn--"))
}

/// Parses a user cell. `Ok(None)` for an empty cell; `Err(reason)` for anything that is not
/// an address or object id.
pub fn parse_user(raw: &str) -> Result<Option<UserRef>, String> {
    let s = strip_forms(raw);
    if s.is_empty() {
        return Ok(None);
    }
    let shown = || printable(&clean(raw));
    if s.chars().count() > MAX_USER_CHARS {
        return Err(format!(
            "not an email address or object id: '{}' is longer than a user name can be (at \
             most {MAX_USER_CHARS} characters)",
            shown()
        ));
    }
    if let Some(c) = raw
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!(
            "not an email address or object id: '{}' (it contains the control character {}, \
             which no user name has: retype the cell)",
            shown(),
            c.escape_default()
        ));
    }
    if let Some(g) = parse_guid(&s) {
        return Ok(Some(UserRef::ObjectId(g)));
    }
    let lower = s.to_lowercase();
    if is_address(&lower) {
        return Ok(Some(UserRef::Address(lower)));
    }
    let shown = shown();
    let hint = if s.contains('@') && s.chars().any(char::is_whitespace) {
        " (it contains a space)"
    } else if s.matches('@').count() > 1 {
        " (more than one '@': put one user per row)"
    } else if !s.contains('@') {
        ""
    } else {
        " (check the part after '@')"
    };
    Err(format!(
        "not an email address or object id: '{shown}'{hint}"
    ))
}

/// Whether a cell would parse as a user (for finding a headerless column).
pub fn looks_like_user(s: &str) -> bool {
    matches!(parse_user(s), Ok(Some(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> UserRef {
        UserRef::Address(s.into())
    }

    #[test]
    fn accepts_the_forms_admins_paste() {
        assert_eq!(
            parse_user(" Zoe@X.Example ").unwrap(),
            Some(addr("zoe@x.example"))
        );
        assert_eq!(
            parse_user("\u{a0}zoe@x.example\u{200b}").unwrap(),
            Some(addr("zoe@x.example"))
        );
        assert_eq!(
            parse_user("mailto:zoe@x.example").unwrap(),
            Some(addr("zoe@x.example"))
        );
        assert_eq!(
            parse_user("Zoë Lindqvist <Zoe@X.example>").unwrap(),
            Some(addr("zoe@x.example"))
        );
        assert_eq!(
            parse_user("<zoe@x.example>").unwrap(),
            Some(addr("zoe@x.example"))
        );
        assert_eq!(
            parse_user("liam.o'connor@x.example").unwrap(),
            Some(addr("liam.o'connor@x.example"))
        );
        assert_eq!(
            parse_user("$svc-scanner@x.example").unwrap(),
            Some(addr("$svc-scanner@x.example"))
        );
        assert_eq!(
            parse_user("a+tag@x.example").unwrap(),
            Some(addr("a+tag@x.example"))
        );
        assert_eq!(
            parse_user("sam.lee_fabrikam.example#EXT#@northwind.onmicrosoft.com").unwrap(),
            Some(addr(
                "sam.lee_fabrikam.example#ext#@northwind.onmicrosoft.com"
            ))
        );
    }

    #[test]
    fn guids_become_object_ids() {
        assert_eq!(
            parse_user("{6F1E2B1C-1111-4A2B-9C3D-0123456789AB}").unwrap(),
            Some(UserRef::ObjectId(
                "6f1e2b1c-1111-4a2b-9c3d-0123456789ab".into()
            ))
        );
    }

    #[test]
    fn rejects_what_is_not_a_user() {
        for bad in [
            "TBC",
            "zoe",
            "zoe@",
            "@x.example",
            "zoe@x",
            "zoe@x.1",
            "zoe lindqvist@x.example",
            "a@b@c.example",
            "zoe@-x.example",
            ".a@x.example",
        ] {
            let err = parse_user(bad).unwrap_err();
            assert!(
                err.contains("not an email address or object id"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            parse_user("TBC").unwrap_err(),
            "not an email address or object id: 'TBC'"
        );
        assert_eq!(parse_user("  \u{200b} ").unwrap(), None);
        assert!(parse_user("\u{1b}[2Jx")
            .unwrap_err()
            .starts_with("not an email address or object id: '\\u{1b}[2Jx' (it contains the control character \\u{1b}"));
    }

    #[test]
    fn long_values_are_cut_in_messages_and_refused_as_users() {
        let long = "a".repeat(100_000);
        let shown = printable(&long);
        assert_eq!(shown, format!("{}… (100000 characters)", "a".repeat(80)));
        assert_eq!(printable(&"b".repeat(80)), "b".repeat(80));
        let err = parse_user(&format!("{long}@x.example")).unwrap_err();
        assert!(
            err.contains(
                "… (100010 characters)' is longer than a user name can be (at most 113 characters)"
            ),
            "{err}"
        );
        assert!(err.len() < 300, "{err}");
        // 64 + @ + 48 is the longest UPN: still a user.
        let upn = format!("{}@{}.example", "a".repeat(64), "b".repeat(40));
        assert_eq!(upn.chars().count(), 113);
        assert!(parse_user(&upn).unwrap().is_some());
        assert!(parse_user(&format!("a{upn}")).is_err());
    }

    #[test]
    fn a_stray_control_character_makes_the_value_invalid() {
        for bad in [
            "zoe\u{b}@x.example",
            "zoe@x.example\u{c}",
            "\u{1}zoe@x.example",
        ] {
            let err = parse_user(bad).unwrap_err();
            assert!(err.contains("control character"), "{bad:?}: {err}");
        }
        // Line breaks and tabs around a value are trimmed as before.
        assert!(parse_user("zoe@x.example\r\n").unwrap().is_some());
    }
}
