//! Options are checked in one place, the same with and without `--sim`: a run that could only
//! hang or silently ignore an option is refused before anything starts (exit 2).

use crate::common::{bin, repo};

fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "{args:?} left a file behind"
    );
    err
}

#[test]
fn sim_rate_zero_is_refused_like_without_sim() {
    let sample = repo("samples/legacy-portal-bulk.csv");
    let sample = sample.to_str().unwrap();
    for bad in [
        &["--rate", "0"][..],
        &["--write-rate", "0"],
        &["--write-rate", "nan"],
        &["--write-rate=-1"],
        &["--concurrency", "0"],
        &["--concurrency", "65"],
        &["--timeout", "0"],
    ] {
        for sim in [true, false] {
            let mut args = vec!["dry-run", sample];
            if sim {
                args.push("--sim");
            } else {
                args.extend([
                    "--tenant",
                    "contoso.onmicrosoft.com",
                    "--client-id",
                    "11111111-2222-3333-4444-555555555555",
                ]);
            }
            args.extend(bad);
            let err = refused(&args);
            let flag = bad[0].split('=').next().unwrap();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}

#[test]
fn sim_refuses_sign_in_options_it_would_ignore() {
    let sample = repo("samples/legacy-portal-bulk.csv");
    let sample = sample.to_str().unwrap();
    for (flag, value) in [
        ("--tenant", Some("contoso.onmicrosoft.com")),
        ("--client-id", Some("11111111-2222-3333-4444-555555555555")),
        ("--device-code", None),
        ("--graph-url", Some("http://127.0.0.1:9")),
        ("--cloud", Some("china")),
    ] {
        let mut args = vec!["dry-run", sample, "--sim", flag];
        args.extend(value);
        let err = refused(&args);
        assert!(err.contains("cannot be used with"), "{flag}: {err}");
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

#[test]
fn sim_ignores_a_tenant_in_the_environment() {
    // An admin's shell often holds AZURE_TENANT_ID: `--sim` still runs, against the simulator.
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .args(["dry-run"])
        .arg(repo("samples/legacy-portal-bulk.csv"))
        .args(["--sim", "-o", "r.csv"])
        .env("AZURE_TENANT_ID", "contoso.onmicrosoft.com")
        .env("MFA_BULK_GRAPH_URL", "https://graph.example.invalid")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the built-in simulator"), "{stdout}");
}
