//! The run record beside the result file, and the apply journal.

use std::io::Write;

use chrono::{DateTime, Utc};
use mfa_bulk::model::MfaState;
use mfa_bulk::report::journal::in_doubt;
use mfa_bulk::report::{
    safe_options, write_run_record, Journal, JournalEntry, JournalHeader, Outcome, ReportError,
    RunBy, RunRecord,
};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn run_record_has_the_fields_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("users-apply-20260304-050607.csv");
    let mut rec = RunRecord::new("apply", t("2026-03-04T05:06:07Z"));
    rec.tenant_id = "11111111-2222-3333-4444-555555555555".into();
    rec.app_id = "66666666-7777-8888-9999-000000000000".into();
    rec.cloud = "global".into();
    rec.graph_url = "https://graph.microsoft.com".into();
    rec.run_by = RunBy {
        os_user: Some("jdoe".into()),
        signed_in_admin: Some("admin@contoso.com".into()),
    };
    rec.input_file = "users.xlsx".into();
    rec.input_sha256 = "ab".repeat(32);
    rec.options = safe_options(serde_json::json!({
        "state": "enabled", "client_secret": "hunter2", "certificate": {"password": "pw1"}
    }));
    // A secret slipped in after safe_options is still dropped when written.
    rec.options["access_token"] = "eyJ0eXAi".into();
    rec.graph = serde_json::json!({"requests": 12, "throttled": 0});
    rec.finished_at = t("2026-03-04T05:07:00Z");
    rec.count(Outcome::Changed);
    rec.count(Outcome::Changed);
    rec.count(Outcome::Failed);
    rec.result_file = result.display().to_string();
    rec.exit_code = 1;

    let path = write_run_record(&result, &rec).unwrap();
    assert_eq!(
        path,
        dir.path().join("users-apply-20260304-050607.csv.run.json")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        "hunter2",
        "pw1",
        "eyJ0eXAi",
        "client_secret",
        "access_token",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
        "tool",
        "version",
        "command",
        "tenant_id",
        "app_id",
        "cloud",
        "graph_url",
        "run_by",
        "input_file",
        "input_sha256",
        "options",
        "started_at",
        "finished_at",
        "counts",
        "graph",
        "result_file",
        "exit_code",
        "interrupted",
    ] {
        assert!(v.get(field).is_some(), "missing {field}");
    }
    assert_eq!(v["tool"], "mfa-bulk");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["started_at"], "2026-03-04T05:06:07Z");
    assert_eq!(v["counts"], serde_json::json!({"changed": 2, "failed": 1}));
    assert_eq!(v["options"]["state"], "enabled");
    assert_eq!(v["run_by"]["signed_in_admin"], "admin@contoso.com");
    assert_eq!(v["interrupted"], false);
    // And it reads back.
    let back: RunRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(back.counts[&Outcome::Changed], 2);
    assert_eq!(back.finished_at, rec.finished_at);
}

fn header() -> JournalHeader {
    JournalHeader {
        input_sha256: "cd".repeat(32),
        tenant_id: "contoso".into(),
        options_key: "state=enabled".into(),
        started_at: t("2026-03-04T05:06:07Z"),
        result_file: None,
    }
}

fn intent(n: u64) -> JournalEntry {
    JournalEntry::Intent {
        user_id: format!("u{n}"),
        row: n,
        state_before: MfaState::Disabled,
        target: MfaState::Enabled,
    }
}

fn done(n: u64) -> JournalEntry {
    JournalEntry::Done {
        user_id: format!("u{n}"),
        row: n,
        state_after: Some(MfaState::Enabled),
        request_id: Some(format!("req-{n}")),
        ok: true,
        error: None,
    }
}

#[test]
fn journal_survives_a_torn_last_line_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = Journal::path_for(&dir.path().join("out.csv"));
    assert_eq!(path, dir.path().join("out.csv.journal.jsonl"));
    let mut j = Journal::open(&path, header()).unwrap();
    for e in [intent(2), done(2), intent(3)] {
        j.record(&e).unwrap();
    }
    drop(j);
    // The crash: half of the next line made it to disk.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"type":"done","user_id":"u3","ro"#)
        .unwrap();
    drop(f);

    let (h, entries) = Journal::load(&path).unwrap();
    assert_eq!(h, header());
    assert_eq!(entries, vec![intent(2), done(2), intent(3)]);
    // u3's write was sent but its answer lost: it must be checked by reading.
    assert_eq!(in_doubt(&entries), vec![&intent(3)]);

    // Resume: the torn tail is cut off, new entries append cleanly.
    let mut j = Journal::open(&path, header()).unwrap();
    j.record(&done(3)).unwrap();
    drop(j);
    let (_, entries) = Journal::load(&path).unwrap();
    assert_eq!(entries, vec![intent(2), done(2), intent(3), done(3)]);
    assert!(in_doubt(&entries).is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n') && text.lines().count() == 5, "{text}");
}

#[test]
fn journal_of_another_run_or_damaged_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let mut j = Journal::open(&path, header()).unwrap();
    j.record(&intent(2)).unwrap();
    drop(j);

    let mut other = header();
    other.tenant_id = "fabrikam".into();
    let err = Journal::open(&path, other).err().unwrap();
    assert!(matches!(err, ReportError::JournalMismatch { .. }), "{err}");
    assert!(err.to_string().contains("another tenant"));

    // A damaged line in the middle is not a torn tail: refuse and say which line.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{text}garbage\n{}\n",
            serde_json::to_string(&done(2)).unwrap()
        ),
    )
    .unwrap();
    let err = Journal::load(&path).unwrap_err();
    match &err {
        ReportError::Journal { line, .. } => assert_eq!(*line, 3),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("j.jsonl"));

    Journal::discard(&path).unwrap();
    assert!(!path.exists());
    Journal::discard(&path).unwrap();
}

#[test]
fn journal_groups_are_written_whole_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apply.journal");
    let mut j = Journal::open(&path, header()).unwrap();
    j.record_all(&[intent(1), intent(2), intent(3)]).unwrap();
    j.record_all(&[]).unwrap();
    j.record_all(&[done(2), done(1)]).unwrap();
    drop(j);
    let (_, entries) = Journal::load(&path).unwrap();
    assert_eq!(
        entries,
        vec![intent(1), intent(2), intent(3), done(2), done(1)]
    );
    assert_eq!(in_doubt(&entries), vec![&intent(3)]);
}
