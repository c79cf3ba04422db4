//! The confirmation before any write: the plan (what will change, by target, and what will
//! not), turning MFA off called out, and a yes/no question at the terminal.

use super::row::{users, Item};
use crate::graph::Identity;
use crate::report::Outcome;

/// Counts of the rows about to be written, by target state, sorted by target.
pub(super) fn by_target(items: &[Item], pending: &[usize]) -> Vec<(String, usize)> {
    let mut by_target: Vec<(String, usize)> = Vec::new();
    for &i in pending {
        let t = items[i].target.as_str();
        match by_target.iter_mut().find(|(k, _)| k == t) {
            Some((_, c)) => *c += 1,
            None => by_target.push((t.to_string(), 1)),
        }
    }
    by_target.sort();
    by_target
}

/// Shows the plan and asks `question` at the terminal. Anything but y/yes is no.
pub(super) fn confirm(
    items: &[Item],
    pending: &[usize],
    identity: &Identity,
    question: &str,
) -> anyhow::Result<bool> {
    let by_target = by_target(items, pending);
    eprintln!("Plan for tenant {}:", identity.tenant_id);
    for (t, c) in &by_target {
        eprintln!("  set {t:<9} {c:>7} {}", users(*c));
    }
    for o in Outcome::ALL {
        let c = items
            .iter()
            .filter(|it| it.done && it.result.outcome == o)
            .count();
        if c > 0 {
            eprintln!("  {:<13} {c:>7}", o.as_str());
        }
    }
    if let Some((_, off)) = by_target.iter().find(|(t, _)| t == "disabled") {
        eprintln!(
            "WARNING: {off} {} will have per-user MFA turned OFF.",
            users(*off)
        );
    }
    ask(question)
}

/// Asks a yes/no question at the terminal (on stderr, so stdout stays clean). Anything but
/// y/yes is no. Called from the async run: the wait for the answer is moved off the runtime.
fn ask(question: &str) -> anyhow::Result<bool> {
    tokio::task::block_in_place(|| ask_blocking(question))
}

fn ask_blocking(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
