//! The help an admin reads is part of the interface: snapshots catch an accidental change, and
//! the README's promises are checked against it.

use crate::common::{bin, repo};

fn help(args: &[&str]) -> String {
    let out = bin(&repo(""))
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn apply_help() {
    insta::assert_snapshot!(help(&["apply", "--help"]));
}

#[test]
fn help_states_the_documented_exit_codes_and_safety_rules() {
    let top = help(&["--help"]);
    for code in [
        "0 everything as asked",
        "1 some rows need attention",
        "2 usage or input",
        "3 sign-in or permission",
        "130 interrupted",
    ] {
        assert!(top.contains(code), "--help lacks '{code}'");
    }
    let apply = help(&["apply", "--help"]);
    assert!(
        apply.contains("`enabled` leaves"),
        "the never-weaken rule is in apply --help"
    );
    assert!(
        apply.contains("--max-changes") && apply.contains("--plan") && apply.contains("--resume")
    );
}
