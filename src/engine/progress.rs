//! Progress bars for the long phases (resolving, reading, writing), with rate and ETA, and a
//! spinner while the tenant's users are listed page by page (when resolving lists the tenant
//! instead of looking each value up). Hidden when stderr is not a terminal (CI, pipes,
//! tests), so logs stay clean.
//!
//! Every line is drawn by [`bar_line`] or [`listing_line`], plain functions of the numbers
//! (tested below): at most [`MAX_WIDTH`] columns, so an 80-column terminal never wraps it;
//! rates with at most one decimal.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The widest line drawn: one column short of 80, so the cursor never wraps.
pub(crate) const MAX_WIDTH: usize = 79;
/// The widest bar itself (narrower when the numbers need the room).
const MAX_BAR: usize = 30;
/// The narrowest bar worth drawing; below that, the line goes without one.
const MIN_BAR: usize = 5;
/// How often the line is redrawn (and the spinner turns).
const TICK: Duration = Duration::from_millis(200);
/// The spinner's frames (ASCII: every terminal and font has them).
const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

/// A bar for `len` items, labelled `what` ("resolving", "reading", "writing").
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    new_bar(len, what, Arc::new(Listing::default()))
}

/// The resolving phase: a bar over the values to resolve, which turns into a spinner saying
/// "listing users: N pages, M users" while the tenant's users are listed page by page (the
/// bar would sit at 0 all that time), and back into the bar when values are matched.
///
/// Both callbacks of the resolve code can borrow it at once (`&self` methods):
///
/// ```ignore
/// let pb = progress::resolving(refs.len() as u64);
/// let found = resolve::resolve_all(graph, &refs, &mut |n| pb.resolved(n), &mut |u| pb.listed(u)).await;
/// pb.finish();
/// ```
pub(crate) struct Resolving {
    pb: ProgressBar,
    listing: Arc<Listing>,
}

/// A bar for resolving `len` values (see [`Resolving`]).
pub(crate) fn resolving(len: u64) -> Resolving {
    let listing = Arc::new(Listing::default());
    Resolving {
        pb: new_bar(len, "resolving", listing.clone()),
        listing,
    }
}

impl Resolving {
    /// `done` values resolved so far: the bar (again, after a listing).
    pub(crate) fn resolved(&self, done: u64) {
        self.listing.on.store(false, Ordering::Relaxed);
        self.pb.set_position(done);
    }

    /// One more page of the tenant's users listed, `users` listed so far: the spinner.
    pub(crate) fn listed(&self, users: u64) {
        self.listing.pages.fetch_add(1, Ordering::Relaxed);
        self.listing.users.store(users, Ordering::Relaxed);
        self.listing.on.store(true, Ordering::Relaxed);
        self.pb.tick();
    }

    /// Removes the line (the summary follows).
    pub(crate) fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

/// A spinner for users read a page at a time (`report`, `--group`, `--filter`): "listing
/// users: N pages, M users" from the start; [`Resolving::listed`] after each page.
pub(crate) fn pages(what: &str) -> Resolving {
    let listing = Arc::new(Listing::default());
    listing.on.store(true, Ordering::Relaxed);
    Resolving {
        pb: new_bar(0, what, listing.clone()),
        listing,
    }
}

/// What the spinner shows while the tenant is listed.
#[derive(Default)]
struct Listing {
    /// Listing now (else: the bar).
    on: AtomicBool,
    pages: AtomicU64,
    users: AtomicU64,
}

fn new_bar(len: u64, what: &str, listing: Arc<Listing>) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(len), target);
    let what: Arc<str> = what.into();
    let line = move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let text = if listing.on.load(Ordering::Relaxed) {
            let frame = (s.elapsed().as_millis() / TICK.as_millis()) as usize;
            listing_line(
                &what,
                SPINNER[frame % SPINNER.len()],
                listing.pages.load(Ordering::Relaxed),
                listing.users.load(Ordering::Relaxed),
                s.elapsed(),
            )
        } else {
            bar_line(&what, s.pos(), s.len().unwrap_or(0), s.per_sec())
        };
        let _ = w.write_str(&text);
    };
    let style = ProgressStyle::with_template("{line}")
        .map(|st| st.with_key("line", line))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.enable_steady_tick(TICK);
    pb
}

/// One bar line: `what` right-aligned, the bar, `pos/len users`, the rate and the time left,
/// e.g. `  writing [=========>          ] 4512/10000 users   19.5/s  ETA 4m 41s`. At most
/// [`MAX_WIDTH`] columns: the bar narrows as the numbers grow. Rate and ETA show once a rate
/// is known (`per_sec` finite and above zero).
pub(crate) fn bar_line(what: &str, pos: u64, len: u64, per_sec: f64) -> String {
    let pos = pos.min(len);
    let digits = len.to_string().len();
    let count = format!("{pos:>digits$}/{len} users");
    let known = per_sec.is_finite() && per_sec > 0.0;
    let rate_text = if known { rate(per_sec) } else { String::new() };
    let eta_text = match (known, len - pos) {
        (_, 0) => "done".to_string(),
        (true, left) => format!("ETA {}", duration(secs(left as f64 / per_sec))),
        (false, _) => "ETA -".to_string(),
    };
    // Fixed widths (rate 8, ETA 11 columns) so the bar does not jump as they change.
    let tail = format!(" {count} {rate_text:>8}  {eta_text:<11}");
    let head = format!("{what:>9} ");
    let room = MAX_WIDTH.saturating_sub(head.chars().count() + tail.chars().count() + 2);
    let mut line = head;
    if room >= MIN_BAR {
        let width = room.min(MAX_BAR);
        let filled = if len == 0 {
            width
        } else {
            (pos as u128 * width as u128 / len as u128) as usize
        };
        line.push('[');
        line.push_str(&"=".repeat(filled));
        if filled < width {
            line.push('>');
            line.push_str(&" ".repeat(width - filled - 1));
        }
        line.push(']');
    } else {
        line.pop();
    }
    line.push_str(&tail);
    fit(line)
}

/// The spinner's line while the tenant is listed, e.g.
/// `resolving | listing users: 3 pages, 2997 users  4s`.
pub(crate) fn listing_line(
    what: &str,
    spinner: char,
    pages: u64,
    users: u64,
    elapsed: Duration,
) -> String {
    let pages_word = if pages == 1 { "page" } else { "pages" };
    let users_word = if users == 1 { "user" } else { "users" };
    fit(format!(
        "{what:>9} {spinner} listing users: {pages} {pages_word}, {users} {users_word}  {}",
        duration(elapsed)
    ))
}

/// Items per second with at most one decimal: `0.4/s`, `19.5/s`, `245/s`, `12345/s`.
pub(crate) fn rate(per_sec: f64) -> String {
    if !(per_sec.is_finite() && per_sec >= 0.0) {
        return "-/s".into();
    }
    if per_sec < 99.95 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.0}/s")
    }
}

/// A duration for a person: `0s`, `45s`, `3m 05s`, `1h 02m`, `99h+`.
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=359_999 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => "99h+".into(),
    }
}

/// Seconds as a duration, saturating (a rate near zero gives a huge ETA, never a panic).
fn secs(s: f64) -> Duration {
    if s.is_finite() && s >= 0.0 {
        Duration::from_secs_f64(s.min(1e9))
    } else {
        Duration::from_secs(1_000_000_000)
    }
}

/// The line without trailing blanks, cut to [`MAX_WIDTH`] columns (only absurd numbers need
/// the cut).
fn fit(line: String) -> String {
    let line = line.trim_end();
    let mut out = String::with_capacity(line.len());
    for (i, c) in line.chars().enumerate() {
        if i == MAX_WIDTH {
            break;
        }
        let _ = out.write_char(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn width(s: &str) -> usize {
        s.chars().count()
    }

    #[test]
    fn rates_have_at_most_one_decimal() {
        assert_eq!(rate(0.0), "0.0/s");
        assert_eq!(rate(0.43), "0.4/s");
        assert_eq!(rate(19.5432), "19.5/s");
        assert_eq!(rate(99.94), "99.9/s");
        assert_eq!(rate(99.96), "100/s");
        assert_eq!(rate(245.678), "246/s");
        assert_eq!(rate(12345.6), "12346/s");
        assert_eq!(rate(f64::NAN), "-/s");
        for r in [0.0, 0.05, 1.0, 3.333_333, 19.54, 999.99, 1e7] {
            let t = rate(r);
            let decimals = t
                .trim_end_matches("/s")
                .split('.')
                .nth(1)
                .map_or(0, str::len);
            assert!(decimals <= 1, "{r} -> {t}");
        }
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_secs(45)), "45s");
        assert_eq!(duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h 02m");
        assert_eq!(duration(Duration::from_secs(400_000)), "99h+");
    }

    #[test]
    fn bar_line_shows_count_rate_and_eta() {
        let l = bar_line("writing", 4512, 10000, 19.5432);
        assert_eq!(
            l,
            "  writing [============>              ]  4512/10000 users   19.5/s  ETA 4m 40s"
        );
        assert!(width(&l) <= MAX_WIDTH, "{l}");
    }

    #[test]
    fn bar_line_before_any_rate_and_when_done() {
        let start = bar_line("reading", 0, 60, 0.0);
        assert!(start.contains("0/60 users"), "{start}");
        assert!(start.ends_with("ETA -"), "{start}");
        assert!(!start.contains("/s"), "{start}");
        let done = bar_line("reading", 60, 60, 12.0);
        assert!(done.contains("[==============================]"), "{done}");
        assert!(done.ends_with("12.0/s  done"), "{done}");
        // Nothing to do at all: a full bar, not a division by zero.
        let empty = bar_line("resolving", 0, 0, 0.0);
        assert!(
            empty.contains("0/0 users") && empty.ends_with("done"),
            "{empty}"
        );
    }

    #[test]
    fn bar_lines_fit_80_columns_whatever_the_numbers() {
        for len in [1, 9, 60, 999, 10_000, 1_000_000, 100_000_000, u64::MAX] {
            for pos in [0, len / 3, len] {
                for r in [0.0, 0.01, 19.5, 4321.0, 1e12, f64::INFINITY] {
                    for what in ["resolving", "reading", "writing"] {
                        let l = bar_line(what, pos, len, r);
                        assert!(width(&l) <= MAX_WIDTH, "{} columns: {l}", width(&l));
                    }
                }
            }
        }
        // The bar keeps its width while the rate and ETA change.
        let a = bar_line("writing", 10, 10000, 0.0);
        let b = bar_line("writing", 10, 10000, 19.5);
        assert_eq!(a.find(']'), b.find(']'), "{a}\n{b}");
    }

    #[test]
    fn a_million_rows_still_get_a_bar() {
        let l = bar_line("resolving", 250_000, 1_000_000, 1234.6);
        assert!(
            l.contains("[=====") && l.contains("250000/1000000 users"),
            "{l}"
        );
        assert!(l.contains("1235/s") && l.contains("ETA 10m 07s"), "{l}");
        assert!(width(&l) <= MAX_WIDTH, "{l}");
    }

    #[test]
    fn listing_line_says_pages_and_users() {
        let l = listing_line("resolving", '|', 3, 2997, Duration::from_secs(4));
        assert_eq!(l, "resolving | listing users: 3 pages, 2997 users  4s");
        let one = listing_line("resolving", '/', 1, 1, Duration::from_secs(0));
        assert_eq!(one, "resolving / listing users: 1 page, 1 user  0s");
        let huge = listing_line("resolving", '-', u64::MAX, u64::MAX, Duration::MAX);
        assert!(width(&huge) <= MAX_WIDTH, "{huge}");
    }

    #[test]
    fn resolving_switches_between_spinner_and_bar() {
        // Hidden (tests have no terminal), but the state it draws from is kept.
        let r = resolving(5000);
        r.listed(999);
        r.listed(1998);
        assert!(r.listing.on.load(Ordering::Relaxed));
        assert_eq!(r.listing.pages.load(Ordering::Relaxed), 2);
        assert_eq!(r.listing.users.load(Ordering::Relaxed), 1998);
        r.resolved(5000);
        assert!(!r.listing.on.load(Ordering::Relaxed));
        assert_eq!(r.pb.position(), 5000);
        r.finish();
    }
}
