//! Reading a result file back is strict: `apply --plan` and `revert` act on what it says.

use mfa_bulk::model::MfaState;
use mfa_bulk::report::{read_results, Outcome, ReportError, COLUMNS};

const HEADER: &str = "row,input,user_principal_name,user_id,display_name,state_before,mfa_registered,target_state,action,state_after,outcome,error,request_id";

fn read_text(text: &str) -> Result<Vec<mfa_bulk::report::ResultRow>, ReportError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.csv");
    std::fs::write(&path, text).unwrap();
    read_results(&path)
}

#[test]
fn header_constant_matches_written_header() {
    assert_eq!(COLUMNS.join(","), HEADER);
}

#[test]
fn reads_without_bom_lf_reordered_columns_and_blank_lines() {
    let text = "outcome,row,input,user_principal_name,user_id,display_name,state_before,mfa_registered,target_state,action,state_after,error,request_id\n\
                would-change,2,a@contoso.com,a@contoso.com,id-a,A,Disabled,YES,enabled,set-enabled,,,r1\n\
                ,,,,,,,,,,,,\n\
                no-change,3,b@contoso.com,b@contoso.com,id-b,B,enforced,no,enabled,none,enforced,,r2\n";
    let rows = read_text(text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].row, 2);
    assert_eq!(rows[0].outcome, Outcome::WouldChange);
    assert_eq!(rows[0].state_before, Some(MfaState::Disabled));
    assert_eq!(rows[0].mfa_registered, Some(true));
    assert_eq!(rows[1].state_after, Some(MfaState::Enforced));
    assert_eq!(rows[1].error, None);
}

#[test]
fn reads_a_semicolon_csv_saved_by_european_excel() {
    let text = format!(
        "{}\r\n2;a@contoso.com;;;;;;enabled;set-enabled;;would-change;;\r\n",
        HEADER.replace(',', ";")
    );
    let rows = read_text(&text).unwrap();
    assert_eq!(rows[0].input, "a@contoso.com");
    assert_eq!(rows[0].user_id, None);
}

fn cell_error(text: &str) -> (u64, String, String) {
    match read_text(text).unwrap_err() {
        e @ ReportError::Cell { .. } => {
            let msg = e.to_string();
            let ReportError::Cell { row, column, .. } = e else {
                unreachable!()
            };
            assert!(msg.contains("plan.csv"), "{msg}");
            (row, column, msg)
        }
        other => panic!("expected a cell error, got {other}"),
    }
}

#[test]
fn bad_cells_name_file_row_and_column() {
    let ok = "2,a@contoso.com,,,,,,enabled,set-enabled,,would-change,,";
    let cases = [
        (
            "2,a@contoso.com,,,,,,enabled,set-enabled,,done,,",
            "outcome",
            "done",
        ),
        (
            "2,a@contoso.com,,,,,,enabled,enable,,would-change,,",
            "action",
            "enable",
        ),
        (
            "x2,a@contoso.com,,,,,,enabled,set-enabled,,would-change,,",
            "row",
            "x2",
        ),
        (
            "0,a@contoso.com,,,,,,enabled,set-enabled,,would-change,,",
            "row",
            "0",
        ),
        (
            "2,a@contoso.com,,,,,,enabeld,set-enabled,,would-change,,",
            "target_state",
            "enabeld",
        ),
        (
            "2,a@contoso.com,,,,,maybe,enabled,set-enabled,,would-change,,",
            "mfa_registered",
            "maybe",
        ),
        (
            "2,a@contoso.com,,,,on off,,enabled,set-enabled,,would-change,,",
            "state_before",
            "on off",
        ),
    ];
    for (bad, column, value) in cases {
        let (row, col, msg) = cell_error(&format!("{HEADER}\n{ok}\n{bad}\n"));
        assert_eq!((row, col.as_str()), (3, column), "{msg}");
        assert!(msg.contains(&format!("\"{value}\"")), "{msg}");
    }
}

#[test]
fn unknown_graph_state_word_is_kept() {
    let rows = read_text(&format!(
        "{HEADER}\n2,a@contoso.com,,,,unknownFutureValue,,enabled,none,,drifted,changed since plan,\n"
    ))
    .unwrap();
    assert_eq!(
        rows[0].state_before,
        Some(MfaState::Other("unknownFutureValue".into()))
    );
}

#[test]
fn header_must_be_ours() {
    let cases = [
        ("", "empty"),
        (
            "row,input,outcome\n2,a,changed\n",
            "lacks the column(s) user_principal_name",
        ),
        (
            &format!("{HEADER},notes\n") as &str,
            "unknown column \"notes\"",
        ),
        (
            &format!("{},row\n", HEADER) as &str,
            "\"row\" appears twice",
        ),
        (
            "UserPrincipalName,MFA Status\na@contoso.com,Enabled\n",
            "unknown column \"UserPrincipalName\"",
        ),
    ];
    for (text, want) in cases {
        let err = read_text(text).unwrap_err();
        assert!(matches!(err, ReportError::Header { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(want) && msg.contains("plan.csv"), "{msg}");
    }
}

#[test]
fn reads_a_csv_excel_saved_in_windows_1252() {
    let mut bytes = format!("{HEADER}\r\n2,j@contoso.com,,,J").into_bytes();
    bytes.extend_from_slice(b"\xfcrgen M\xfcller"); // "ürgen Müller" in Windows-1252
    bytes.extend_from_slice(b",,,enabled,set-enabled,,would-change,,\r\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.csv");
    std::fs::write(&path, bytes).unwrap();
    let rows = read_results(&path).unwrap();
    assert_eq!(rows[0].display_name.as_deref(), Some("Jürgen Müller"));
}
