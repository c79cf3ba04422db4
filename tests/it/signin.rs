//! Signing in as an admin (browser, device code) and as a managed identity, end to end: the
//! real binary against the in-process simulator, with `BROWSER` set to a small script that
//! follows the sign-in address as a browser would (curl; no real browser). Each test keeps its
//! sign-ins in its own temporary folder (`MFA_BULK_CACHE_DIR`): never in the real user's
//! credential store or cache folder. Everything stays on loopback; nothing is sent to the
//! metadata service's address.

use std::path::{Path, PathBuf};

use mfa_bulk::sim::{self, SimConfig};
use serde_json::Value;

use crate::common::{bin, repo, TestSim};

/// A folder with the browser script, a work folder and a cache folder.
pub(crate) struct Desk {
    pub work: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    pub browser: PathBuf,
    _tools: tempfile::TempDir,
}

/// A `BROWSER` command that follows the sign-in address with curl, redirects included, back to
/// the tool's loopback port.
pub(crate) fn browser_script(dir: &Path) -> PathBuf {
    let curl = std::process::Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "these tests need curl (it stands in for the browser)"
    );
    let p = dir.join("follow-sign-in.sh");
    std::fs::write(
        &p,
        "#!/bin/sh\n# Follows the sign-in address as a browser would.\nexec curl -s -L -o /dev/null --max-time 60 \"$1\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    p
}

impl Desk {
    pub(crate) fn new() -> Desk {
        let tools = tempfile::tempdir().unwrap();
        Desk {
            browser: browser_script(tools.path()),
            work: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
            _tools: tools,
        }
    }

    /// The binary pointed at `sim`, signing in through the browser script, with this desk's
    /// cache.
    pub(crate) fn cmd(&self, sim: &TestSim) -> assert_cmd::Command {
        let mut c = bin(self.work.path());
        c.env("MFA_BULK_GRAPH_URL", sim.handle.url())
            .env("MFA_BULK_LOGIN_URL", sim.handle.url())
            .env("AZURE_TENANT_ID", sim::SIM_TENANT_ID)
            .env("MFA_BULK_CACHE_DIR", self.cache.path())
            .env("BROWSER", &self.browser);
        c
    }

    pub(crate) fn cache_file(&self) -> PathBuf {
        self.cache.path().join("sign-in-cache.json")
    }

    /// The refresh tokens in the cache file.
    pub(crate) fn cached_refresh_tokens(&self) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.cache_file()) else {
            return vec![];
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        v["entries"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "index")
            .filter_map(|(_, e)| serde_json::from_str::<Value>(e.as_str()?).ok())
            .filter_map(|e| e["refresh_token"].as_str().map(str::to_string))
            .collect()
    }
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(mut c: assert_cmd::Command) -> Out {
    let o = c.output().unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n{}\n{}", self.code, self.stdout, self.stderr)
    }
}

fn users_file(dir: &Path) -> PathBuf {
    let p = dir.join("users.csv");
    std::fs::write(
        &p,
        "UserPrincipalName\nzoe.lindqvist@northwind.example\nliam.o'connor@northwind.example\n",
    )
    .unwrap();
    p
}

#[test]
fn one_browser_sign_in_for_check_dry_run_and_apply_then_logout_forgets_it() {
    let sim = TestSim::sample();
    let desk = Desk::new();
    let users = users_file(desk.work.path());

    let mut c = desk.cmd(&sim);
    c.args(["check", "--interactive"]);
    let o = run(c);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(
        o.stdout
            .contains("signed in as: it.admin@northwind.example (delegated)")
            && o.stdout.contains("Authentication Policy Administrator"),
        "{o}"
    );
    assert!(
        o.stderr.contains("/oauth2/v2.0/authorize?"),
        "the address is printed: {o}"
    );
    assert_eq!(sim.counters().sign_ins, 1);
    let first = desk.cached_refresh_tokens();
    assert_eq!(first.len(), 1, "one sign-in kept");

    // The cache file is the owner's only, in a folder that is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&desk.cache_file()), 0o600);
    }

    let mut c = desk.cmd(&sim);
    c.arg("dry-run")
        .arg(&users)
        .args(["--interactive", "-o", "plan.csv"]);
    let o = run(c);
    assert!(matches!(o.code, Some(0 | 1)), "{o}");
    assert!(
        o.stdout.contains("signed in as it.admin@northwind.example"),
        "the summary names the admin: {o}"
    );
    let second = desk.cached_refresh_tokens();
    assert_eq!(second.len(), 1);
    assert_ne!(
        first, second,
        "the refresh token Entra sent back replaced the kept one"
    );

    let mut c = desk.cmd(&sim);
    c.arg("apply")
        .arg(&users)
        .args(["--interactive", "--yes", "-o", "applied.csv"]);
    let o = run(c);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(sim.state("zoe.lindqvist@northwind.example"), "enforced");
    assert!(sim.counters().writes > 0);
    let counters = sim.counters();
    assert_eq!(
        counters.sign_ins, 1,
        "check, dry-run and apply: one sign-in"
    );
    assert_eq!(counters.refresh_grants, 2);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(desk.work.path().join("applied.csv.run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["run_by"]["signed_in_admin"],
        "it.admin@northwind.example"
    );

    // logout forgets it: the next command signs in again.
    let mut c = desk.cmd(&sim);
    c.arg("logout");
    let o = run(c);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(
        o.stdout
            .contains("Forgot the sign-in of it.admin@northwind.example"),
        "{o}"
    );
    assert!(!desk.cache_file().exists());
    let mut c = desk.cmd(&sim);
    c.arg("logout");
    let o = run(c);
    assert!(o.stdout.contains("No saved sign-in"), "{o}");
    let mut c = desk.cmd(&sim);
    c.args(["check", "--interactive"]);
    assert_eq!(run(c).code, Some(0));
    assert_eq!(sim.counters().sign_ins, 2);
}

#[test]
fn an_admin_without_a_role_that_may_change_mfa_is_refused_before_any_write() {
    let sim = TestSim::sample();
    let desk = Desk::new();
    let users = users_file(desk.work.path());
    let helpdesk = sim::SIM_DEVICE_HELPDESK_CLIENT_ID;

    let mut c = desk.cmd(&sim);
    c.args(["check", "--interactive", "--client-id", helpdesk]);
    let o = run(c);
    assert_eq!(o.code, Some(3), "{o}");
    assert!(
        o.stdout.contains("apply: NOT allowed") && o.stdout.contains("Helpdesk Administrator"),
        "{o}"
    );

    let mut c = desk.cmd(&sim);
    c.arg("apply").arg(&users).args([
        "--interactive",
        "--client-id",
        helpdesk,
        "--yes",
        "-o",
        "refused.csv",
    ]);
    let o = run(c);
    assert_eq!(o.code, Some(3), "{o}");
    assert!(
        o.stderr.contains("helpdesk@northwind.example")
            && o.stderr.contains("Authentication Policy Administrator"),
        "{o}"
    );
    let counters = sim.counters();
    assert_eq!(counters.writes, 0, "refused before any write");
    assert_eq!(counters.sign_ins, 1, "the check's sign-in was kept");
    assert_eq!(sim.state("zoe.lindqvist@northwind.example"), "disabled");

    // A dry-run only reads: allowed.
    let mut c = desk.cmd(&sim);
    c.arg("dry-run")
        .arg(&users)
        .args(["--interactive", "--client-id", helpdesk, "-o", "plan.csv"]);
    let o = run(c);
    assert!(matches!(o.code, Some(0 | 1)), "{o}");
}

#[test]
fn declined_consent_and_an_unknown_tenant_are_clear_sign_in_errors() {
    let sim = TestSim::sample();
    let desk = Desk::new();
    let mut c = desk.cmd(&sim);
    c.args([
        "check",
        "--interactive",
        "--client-id",
        sim::SIM_CONSENT_DENIED_CLIENT_ID,
    ]);
    let o = run(c);
    assert_eq!(o.code, Some(3), "{o}");
    assert!(
        o.stderr.contains("consent was denied") && o.stderr.contains("access_denied"),
        "{o}"
    );

    let mut c = desk.cmd(&sim);
    c.args(["check", "--interactive", "--tenant", "fabrikam.example"]);
    let o = run(c);
    assert_eq!(o.code, Some(3), "{o}");
    assert!(
        o.stderr.contains("fabrikam.example") && o.stderr.contains("does not exist"),
        "{o}"
    );
    assert!(
        !o.stderr.contains("/authorize"),
        "no browser sent to a tenant that is not there"
    );
    assert_eq!(sim.counters().sign_ins, 0);
    assert!(!desk.cache_file().exists());
}

#[test]
fn no_cache_neither_reads_nor_keeps_a_sign_in() {
    let sim = TestSim::sample();
    let desk = Desk::new();
    for _ in 0..2 {
        let mut c = desk.cmd(&sim);
        c.args(["check", "--interactive", "--no-cache"]);
        assert_eq!(run(c).code, Some(0));
    }
    assert_eq!(sim.counters().sign_ins, 2);
    assert!(!desk.cache_file().exists());
    // A kept sign-in is not used with --no-cache either.
    let mut c = desk.cmd(&sim);
    c.args(["check", "--interactive"]);
    assert_eq!(run(c).code, Some(0));
    let mut c = desk.cmd(&sim);
    c.args(["check", "--interactive", "--no-cache"]);
    assert_eq!(run(c).code, Some(0));
    assert_eq!(sim.counters().sign_ins, 4);
    assert_eq!(sim.counters().refresh_grants, 0);
}

#[test]
fn an_expired_or_revoked_sign_in_asks_again() {
    let mut cfg = SimConfig::sample();
    cfg.limits.refresh_token_lifetime_secs = 2;
    let sim = TestSim::with(cfg);
    let desk = Desk::new();
    let check = || {
        let mut c = desk.cmd(&sim);
        c.args(["check", "--interactive"]);
        run(c)
    };
    assert_eq!(check().code, Some(0));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let o = check();
    assert_eq!(o.code, Some(0), "{o}");
    assert!(
        o.stderr.contains("no longer accepted") && o.stderr.contains("AADSTS700082"),
        "{o}"
    );
    assert_eq!(sim.counters().sign_ins, 2);
    // Revoked sessions (Revoke-MgUserSignInSession): signed in again too.
    sim.handle.revoke_tokens();
    let o = check();
    assert_eq!(o.code, Some(0), "{o}");
    assert!(o.stderr.contains("AADSTS50173"), "{o}");
    assert_eq!(sim.counters().sign_ins, 3);
}

#[test]
fn device_code_sign_in_is_kept_between_commands_too() {
    let mut cfg = SimConfig::sample();
    cfg.limits.device_code_interval_secs = 1;
    cfg.limits.device_code_auto_approve_polls = 1;
    let sim = TestSim::with(cfg);
    let desk = Desk::new();
    let users = users_file(desk.work.path());
    let mut c = desk.cmd(&sim);
    c.args([
        "check",
        "--device-code",
        "--client-id",
        sim::SIM_DEVICE_CLIENT_ID,
    ]);
    let o = run(c);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(o.stderr.contains("microsoft.com/devicelogin"), "{o}");
    let mut c = desk.cmd(&sim);
    c.arg("dry-run").arg(&users).args([
        "--device-code",
        "--client-id",
        sim::SIM_DEVICE_CLIENT_ID,
        "-o",
        "plan.csv",
    ]);
    let o = run(c);
    assert!(matches!(o.code, Some(0 | 1)), "{o}");
    assert!(
        !o.stderr.contains("devicelogin"),
        "no second device code: {o}"
    );
    assert_eq!(sim.counters().sign_ins, 1);
}

#[test]
fn managed_identity_through_the_metadata_service_and_identity_endpoint() {
    let sim = TestSim::sample();
    let desk = Desk::new();
    let users = users_file(desk.work.path());
    // An Azure VM: the metadata service (here the simulator on loopback).
    let mut c = desk.cmd(&sim);
    c.env_remove("AZURE_TENANT_ID")
        .env("MFA_BULK_IMDS_URL", sim.handle.url())
        .arg("apply")
        .arg(&users)
        .args(["--managed-identity", "--yes", "-o", "applied.csv"]);
    let o = run(c);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(sim.state("zoe.lindqvist@northwind.example"), "enforced");
    assert!(sim.counters().managed_identity_tokens >= 1);

    // App Service, Functions, Automation: IDENTITY_ENDPOINT and IDENTITY_HEADER, with a
    // user-assigned identity that may only read.
    let app_service = |c: &mut assert_cmd::Command| {
        c.env_remove("AZURE_TENANT_ID")
            .env(
                "IDENTITY_ENDPOINT",
                format!("{}/msi/token", sim.handle.url()),
            )
            .env("IDENTITY_HEADER", sim::SIM_IDENTITY_HEADER);
    };
    let ro = format!(
        "--managed-identity={}",
        sim::SIM_READONLY_MANAGED_IDENTITY_ID
    );
    let mut c = desk.cmd(&sim);
    app_service(&mut c);
    c.args(["check", &ro]);
    let o = run(c);
    assert_eq!(o.code, Some(3), "read-only: apply not allowed: {o}");
    assert!(
        o.stdout.contains("mi-readonly") && o.stdout.contains("managed identity"),
        "{o}"
    );
    let mut c = desk.cmd(&sim);
    app_service(&mut c);
    c.arg("dry-run").arg(&users).args([&ro, "-o", "plan.csv"]);
    let o = run(c);
    assert!(matches!(o.code, Some(0 | 1)), "{o}");
    let writes = sim.counters().writes;
    let mut c = desk.cmd(&sim);
    app_service(&mut c);
    c.arg("apply")
        .arg(&users)
        .args([&ro, "--yes", "-o", "ro.csv", "--state", "disabled"]);
    assert_eq!(run(c).code, Some(3));
    assert_eq!(sim.counters().writes, writes);

    // A wrong header and an identity that is not there: sign-in errors.
    let mut c = desk.cmd(&sim);
    app_service(&mut c);
    c.env("IDENTITY_HEADER", "not-the-header")
        .args(["check", "--managed-identity"]);
    let o = run(c);
    assert_eq!(o.code, Some(3), "{o}");
    let mut c = desk.cmd(&sim);
    c.env("MFA_BULK_IMDS_URL", sim.handle.url()).args([
        "check",
        "--managed-identity=00000000-0000-4000-8000-000000000000",
    ]);
    let o = run(c);
    assert_eq!(o.code, Some(3), "{o}");
    assert!(o.stderr.contains("Identity not found"), "{o}");
    assert!(!desk.cache_file().exists(), "an app's token is never kept");
}

#[test]
fn sign_in_options_are_checked_before_anything_is_sent() {
    let desk = Desk::new();
    let sample = repo("samples/legacy-portal-bulk.csv");
    for args in [
        vec!["check", "--interactive", "--device-code"],
        vec!["check", "--interactive", "--managed-identity"],
        vec!["check", "--sim", "--interactive"],
    ] {
        let o = run({
            let mut c = bin(desk.work.path());
            c.args(&args);
            c
        });
        assert_eq!(o.code, Some(2), "{args:?}: {o}");
        assert!(o.stderr.contains("cannot be used with"), "{args:?}: {o}");
    }
    // The metadata service's stand-in must be on loopback.
    let mut c = bin(desk.work.path());
    c.env("MFA_BULK_IMDS_URL", "http://10.0.0.1").args([
        "dry-run",
        sample.to_str().unwrap(),
        "--managed-identity",
    ]);
    let o = run(c);
    assert_eq!(o.code, Some(2), "{o}");
}
