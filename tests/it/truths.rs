//! The smaller truths an admin reads at the end of a run, against the simulator: turning MFA
//! off is said in words (and in `--json`), the run record names the OS account even without
//! `$USER`, and a secret file others can read is warned about without stopping the run.

use std::fs;
use std::path::{Path, PathBuf};

use mfa_bulk::sim;

use crate::common::{read_csv, row, TestSim};

/// A legacy-portal style file: two users to turn off (one enabled, one enforced), two to turn
/// on, one already as asked.
fn mixed_file(dir: &Path) -> PathBuf {
    let p = dir.join("legacy.csv");
    fs::write(
        &p,
        "Username,MFA Status\n\
         agot.sorensen@northwind.example,Disabled\n\
         priya.raman@northwind.example,Disabled\n\
         zoe.lindqvist@northwind.example,Enabled\n\
         liam.o'connor@northwind.example,Enabled\n\
         kenji.tanaka@northwind.example,Enabled\n",
    )
    .unwrap();
    p
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn dry_run_and_apply_say_how_many_users_lose_mfa() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = mixed_file(dir.path());

    let out = sim
        .cmd(dir.path())
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan.csv"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr_of(&out));
    assert!(text.contains("  would-change        4\n"), "{text}");
    assert!(text.contains("    set-enabled       2\n"), "{text}");
    assert!(text.contains("    set-disabled      2\n"), "{text}");
    assert!(!text.contains("set-enforced"), "{text}");
    assert!(
        text.contains("2 users would have per-user MFA turned OFF."),
        "{text}"
    );
    // A dry-run changes nobody.
    assert_eq!(sim.state("agot.sorensen@northwind.example"), "enabled");

    let out = sim
        .cmd(dir.path())
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan2.csv", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(
        v["summary"]["actions"],
        serde_json::json!({"set-enabled": 2, "set-enforced": 0, "set-disabled": 2})
    );
    assert_eq!(v["summary"]["turned_off"], 2);

    let out = sim
        .cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--yes", "-o", "applied.csv"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr_of(&out));
    assert!(text.contains("  changed             4\n"), "{text}");
    assert!(text.contains("    set-disabled      2\n"), "{text}");
    assert!(
        text.contains("2 users had per-user MFA turned OFF."),
        "{text}"
    );
    // What the summary says is what happened.
    assert_eq!(sim.state("agot.sorensen@northwind.example"), "disabled");
    assert_eq!(sim.state("priya.raman@northwind.example"), "disabled");
    let rows = read_csv(&dir.path().join("applied.csv"));
    let r = row(&rows, "priya.raman@northwind.example");
    assert_eq!(
        (r["action"].as_str(), r["outcome"].as_str()),
        ("set-disabled", "changed")
    );
}

#[test]
fn apply_json_counts_users_turned_off_and_nothing_when_none_are() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = mixed_file(dir.path());
    let out = sim
        .cmd(dir.path())
        .arg("apply")
        .arg(&input)
        .args(["--yes", "--json", "-o", "applied.csv"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(v["summary"]["turned_off"], 2);
    assert_eq!(v["summary"]["actions"]["set-disabled"], 2);
    assert_eq!(v["summary"]["actions"]["set-enabled"], 2);

    // Turning MFA on only: no line about turning it off.
    let on = dir.path().join("on.csv");
    fs::write(&on, "UserPrincipalName\nhyper.link@northwind.example\n").unwrap();
    let out = sim
        .cmd(dir.path())
        .arg("apply")
        .arg(&on)
        .args(["--yes", "-o", "on-result.csv"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert!(text.contains("    set-enabled       1\n"), "{text}");
    assert!(!text.contains("OFF"), "{text}");
}

#[test]
fn run_record_names_the_os_account_without_user_in_the_environment() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = mixed_file(dir.path());
    let out = sim
        .cmd(dir.path())
        .env_remove("USER")
        .env_remove("USERNAME")
        .env_remove("LOGNAME")
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("plan.csv.run.json")).unwrap()).unwrap();
    let os_user = record["run_by"]["os_user"]
        .as_str()
        .unwrap_or_else(|| panic!("os_user is null: {}", record["run_by"]));
    assert!(!os_user.trim().is_empty());
    // The operating system's name for the account (not an environment variable).
    assert_eq!(Some(os_user.to_string()), whoami::username().ok());

    // And $USER set to something else does not override it.
    let out = sim
        .cmd(dir.path())
        .env("USER", "someone-else-entirely")
        .arg("dry-run")
        .arg(&input)
        .args(["-o", "plan-b.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("plan-b.csv.run.json")).unwrap()).unwrap();
    assert_eq!(record["run_by"]["os_user"].as_str(), Some(os_user));
}

#[cfg(unix)]
fn with_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn client_secret_file_readable_by_others_is_warned_about_and_the_run_goes_on() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let input = mixed_file(dir.path());
    let secret = dir.path().join("client-secret.txt");
    fs::write(&secret, format!("{}\n", sim::SIM_CLIENT_SECRET)).unwrap();
    let run = |mode: u32, out: &str| {
        with_mode(&secret, mode);
        sim.cmd(dir.path())
            .env_remove("AZURE_CLIENT_SECRET")
            .arg("dry-run")
            .arg(&input)
            .arg("--client-secret-file")
            .arg(&secret)
            .args(["-o", out])
            .output()
            .unwrap()
    };

    let out = run(0o644, "open.csv");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("chmod 600")).collect();
    assert_eq!(warnings.len(), 1, "one line: {err}");
    let w = warnings[0];
    assert!(
        w.contains(&format!("chmod 600 {}", secret.display())),
        "names the file and the fix: {w}"
    );
    assert!(w.contains("client secret"), "{w}");
    assert!(
        !err.contains(sim::SIM_CLIENT_SECRET),
        "the secret shows: {err}"
    );
    assert!(!stdout_of(&out).contains(sim::SIM_CLIENT_SECRET));
    assert!(dir.path().join("open.csv").exists(), "the run went on");

    let out = run(0o600, "closed.csv");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("chmod"), "no warning at 0600: {err}");
}

#[cfg(unix)]
#[test]
fn certificate_password_file_readable_by_others_is_warned_about() {
    let sim = TestSim::sample();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("app.pem");
    fs::write(&cert, sim::SIM_CERT_PEM).unwrap();
    with_mode(&cert, 0o600);
    let password = dir.path().join("pfx-password.txt");
    fs::write(&password, "Pangolin-distinctive-pfx-password\n").unwrap();
    let run = |mode: u32| {
        with_mode(&password, mode);
        sim.cmd(dir.path())
            .env_remove("AZURE_CLIENT_SECRET")
            .env("AZURE_CLIENT_ID", sim::SIM_CERT_CLIENT_ID)
            .arg("check")
            .arg("--certificate")
            .arg(&cert)
            .arg("--certificate-password-file")
            .arg(&password)
            .output()
            .unwrap()
    };
    let out = run(0o640);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.lines().any(|l| l.contains("certificate password")
            && l.contains(&format!("chmod 600 {}", password.display()))),
        "{err}"
    );
    assert!(!err.contains("Pangolin"), "the password shows: {err}");

    let out = run(0o600);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("chmod"), "{err}");
}
