//! The notify list: the addresses of users whose MFA was turned on, for the admin's mail
//! announcing it. UTF-8 without a BOM (mail tools read it as is), one address per line, LF line
//! endings; empty entries are skipped and repeats (any case) written once, in first-seen order.
//!
//! An address is formula-escaped like a result cell ([`super::escape`]): the list is often
//! opened in, or pasted into, a spreadsheet, and an address starting with `=`, `+`, `-` or
//! `@` would run there as a formula.
//!
//! Created like every file of the tool ([`super::files`]): never through a symbolic link,
//! and never over an existing file unless `force`.

use std::path::Path;

use super::escape::escape;
use super::files::{self, Access};
use super::ReportError;

/// Writes `addresses` to `path`; refuses to overwrite an existing file unless `force`.
pub fn write_notify_list(
    path: &Path,
    addresses: &[String],
    force: bool,
) -> Result<(), ReportError> {
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    for a in addresses {
        let a = a.trim();
        if a.is_empty() || a.contains(['\n', '\r']) || !seen.insert(a.to_lowercase()) {
            continue;
        }
        text.push_str(&escape(a));
        text.push('\n');
    }
    files::write_whole(path, text.as_bytes(), force, Access::Shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_a_line_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify.txt");
        let list: Vec<String> = [
            "a@contoso.com",
            " ",
            "B@contoso.com",
            "A@Contoso.com",
            "jürgen@contoso.de",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        write_notify_list(&p, &list, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a@contoso.com\nB@contoso.com\njürgen@contoso.de\n"
        );
        let err = write_notify_list(&p, &list, false).unwrap_err();
        assert!(matches!(err, ReportError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("--force"));
        write_notify_list(&p, &list[..1], true).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a@contoso.com\n");
    }

    #[test]
    fn addresses_are_formula_escaped_like_result_cells() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify.txt");
        let list: Vec<String> = [
            "-dash.user@northwind.example",
            "+plus.user@northwind.example",
            "=cmd|' /C calc'!A0@x.example",
            "@odd@x.example",
            "'quoted@x.example",
            "plain@x.example",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        write_notify_list(&p, &list, false).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "'-dash.user@northwind.example\n'+plus.user@northwind.example\n\
             '=cmd|' /C calc'!A0@x.example\n'@odd@x.example\n''quoted@x.example\n\
             plain@x.example\n"
        );
        for line in text.lines() {
            assert_eq!(
                crate::report::escape::unescape(line),
                list[text.lines().position(|l| l == line).unwrap()]
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_name_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let p = dir.path().join("notify.txt");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let list = vec!["a@contoso.com".to_string()];
        let err = write_notify_list(&p, &list, false).unwrap_err();
        assert!(matches!(err, ReportError::Exists { .. }), "{err}");
        write_notify_list(&p, &list, true).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a@contoso.com\n");
    }
}
