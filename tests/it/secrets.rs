//! Secrets never leak: a distinctive client secret, the certificate's private key and every
//! access token the simulator issued (JWTs, `eyJ…`) must not appear in anything the tool
//! prints or writes (stdout, stderr, result files CSV and XLSX, run records, the journal of an
//! interrupted run, the notify list), for a representative set of commands, successes and
//! failures alike (wrong secret, read-only app, revoked tokens, Ctrl-C). Admin sign-ins too:
//! the refresh tokens kept between commands (the simulator's start `0.SIMRT`), authorization
//! codes (`1.SIMAC`), ID tokens (JWTs), and a managed identity's `IDENTITY_HEADER`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mfa_bulk::sim::{self, FaultConfig, SimConfig};

use crate::common::TestSim;

const SECRET: &str = "Zebra7781-distinctive-client-secret-Qx9";
const READONLY_SECRET: &str = "Giraffe5512-distinctive-readonly-secret-Wq2";
const WRONG_SECRET: &str = "Okapi3141-distinctive-wrong-secret-Vb7";
const PFX_PASSWORD: &str = "Narwhal2718-distinctive-pfx-password";
const IDENTITY_HEADER: &str = "Quokka1618-distinctive-identity-header";
/// Every refresh token the simulator issues starts so (like Entra's `0.A…`).
const REFRESH_TOKEN_MARK: &str = "SIMRT";
/// Every authorization code the simulator issues starts so.
const AUTH_CODE_MARK: &str = "SIMAC";

/// Every line of the private key's body (any one of them in an output is a leak).
fn key_lines() -> Vec<String> {
    let pem = sim::SIM_CERT_PEM;
    let start = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
    pem[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .filter(|l| l.len() >= 40)
        .map(str::to_string)
        .collect()
}

fn needles() -> Vec<String> {
    let mut v: Vec<String> = [
        SECRET,
        READONLY_SECRET,
        WRONG_SECRET,
        PFX_PASSWORD,
        IDENTITY_HEADER,
        REFRESH_TOKEN_MARK,
        AUTH_CODE_MARK,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(key_lines());
    // Any JWT (the simulator's tokens are `eyJ…` like Entra's).
    v.push("eyJ".into());
    v
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for n in needles() {
        assert!(
            !text.contains(&n),
            "{what} holds a secret ({}…):\n{text}",
            &n[..n.len().min(12)]
        );
    }
}

/// Every file under `dir`, XLSX (zip) entries decompressed.
fn scan_dir(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            assert_clean(&p.display().to_string(), &bytes);
            if bytes.starts_with(b"PK\x03\x04") {
                let mut z = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
                for i in 0..z.len() {
                    let mut f = z.by_index(i).unwrap();
                    let mut inner = Vec::new();
                    std::io::Read::read_to_end(&mut f, &mut inner).unwrap();
                    assert_clean(&format!("{} › entry {i}", p.display()), &inner);
                }
            }
            n += 1;
        }
    }
    n
}

/// The sample tenant, its two secret apps given distinctive secrets.
fn tenant() -> SimConfig {
    let mut cfg = SimConfig::sample();
    for c in &mut cfg.tenant.clients {
        if c.client_id == sim::SIM_CLIENT_ID {
            c.secret = Some(SECRET.into());
        } else if c.client_id == sim::SIM_READONLY_CLIENT_ID {
            c.secret = Some(READONLY_SECRET.into());
        }
    }
    cfg.tenant.identity_header = IDENTITY_HEADER.into();
    cfg
}

/// The binary with no credential at all, pointed at `sim`, in `dir`; panics show a backtrace.
fn base(sim: &TestSim, dir: &Path, client_id: &str) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("mfa-bulk"));
    for v in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_AUTHORITY_HOST",
        "MFA_BULK_ACCESS_TOKEN",
        "MFA_BULK_CLOUD",
    ] {
        c.env_remove(v);
    }
    c.current_dir(dir)
        .env("MFA_BULK_GRAPH_URL", sim.handle.url())
        .env("MFA_BULK_LOGIN_URL", sim.handle.url())
        .env("AZURE_TENANT_ID", sim::SIM_TENANT_ID)
        .env("AZURE_CLIENT_ID", client_id)
        .env("MFA_BULK_CACHE_DIR", crate::common::test_cache_dir())
        .env_remove("BROWSER")
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .env_remove("IMDS_ENDPOINT")
        .env_remove("MFA_BULK_IMDS_URL")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    c
}

/// Runs to the end; checks the exit code and that neither stream holds a secret.
fn run(mut c: Command, code: i32, what: &str) {
    let o = c.output().expect("runs");
    assert_clean(&format!("{what}: stdout"), &o.stdout);
    assert_clean(&format!("{what}: stderr"), &o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn token_from(sim: &TestSim) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        sim.handle.url(),
        sim::SIM_TENANT_ID
    );
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let v: serde_json::Value = reqwest::Client::new()
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", sim::SIM_CLIENT_ID),
                ("client_secret", SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"].as_str().unwrap().to_string()
    })
}

#[test]
fn no_secret_or_token_in_any_output_or_file() {
    // The scan itself finds what it looks for.
    for n in needles() {
        let found =
            std::panic::catch_unwind(|| assert_clean("self-test", format!("a {n} b").as_bytes()));
        assert!(found.is_err(), "the scan misses {n}");
    }
    let sim = TestSim::with(tenant());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // Credentials live outside the scanned folder (they are inputs, not outputs).
    let creds = tempfile::tempdir().unwrap();
    let secret_file = creds.path().join("secret.txt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let cert = creds.path().join("app.pem");
    std::fs::write(&cert, sim::SIM_CERT_PEM).unwrap();
    let users: PathBuf = dir.join("users.csv");
    std::fs::write(
        &users,
        "UserPrincipalName\nzoe.lindqvist@northwind.example\nliam.o'connor@northwind.example\n\
         hyper.link@northwind.example\npriya.raman@northwind.example\nnobody@northwind.example\n",
    )
    .unwrap();

    let app = sim::SIM_CLIENT_ID;
    let mut c = base(&sim, dir, app);
    c.env("AZURE_CLIENT_SECRET", SECRET).arg("check");
    run(c, 0, "check");
    let mut c = base(&sim, dir, app);
    c.env("AZURE_CLIENT_SECRET", SECRET)
        .args(["check", "--json"]);
    run(c, 0, "check --json");

    let mut c = base(&sim, dir, app);
    c.arg("dry-run")
        .arg(&users)
        .arg("--client-secret-file")
        .arg(&secret_file)
        .args(["--registration", "-o", "plan.csv"]);
    run(c, 1, "dry-run");

    let mut c = base(&sim, dir, app);
    c.env("AZURE_CLIENT_SECRET", SECRET)
        .arg("apply")
        .arg(&users)
        .args([
            "--plan",
            "plan.csv",
            "--yes",
            "--json",
            "-o",
            "applied.csv",
            "--notify-list",
            "notify.txt",
        ]);
    run(c, 1, "apply --plan");

    let mut c = base(&sim, dir, app);
    c.env("AZURE_CLIENT_SECRET", SECRET).args([
        "revert",
        "applied.csv",
        "--yes",
        "-o",
        "reverted.xlsx",
    ]);
    run(c, 0, "revert");

    // Certificate sign-in (the key must not show), with a PFX password set in the
    // environment that is never used.
    let mut c = base(&sim, dir, sim::SIM_CERT_CLIENT_ID);
    c.arg("apply")
        .arg(&users)
        .arg("--certificate")
        .arg(&cert)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", PFX_PASSWORD)
        .args(["--yes", "-o", "cert.xlsx"]);
    run(c, 1, "apply with a certificate");

    // A ready token from the environment.
    let token = token_from(&sim);
    let mut c = base(&sim, dir, app);
    c.env("MFA_BULK_ACCESS_TOKEN", &token)
        .arg("dry-run")
        .arg(&users)
        .args(["-o", "token.csv"]);
    run(c, 1, "dry-run with a ready token");
    assert!(
        token.starts_with("eyJ"),
        "the scan for eyJ would miss tokens"
    );

    // Failures: the wrong secret, a read-only app, a revoked ready token.
    let mut c = base(&sim, dir, app);
    c.env("AZURE_CLIENT_SECRET", WRONG_SECRET)
        .arg("apply")
        .arg(&users)
        .args(["--yes", "-o", "wrong.csv"]);
    run(c, 3, "apply with a wrong secret");
    let mut c = base(&sim, dir, sim::SIM_READONLY_CLIENT_ID);
    c.env("AZURE_CLIENT_SECRET", READONLY_SECRET)
        .arg("apply")
        .arg(&users)
        .args(["--yes", "-o", "readonly.csv"]);
    run(c, 3, "apply as a read-only app");
    sim.handle.revoke_tokens();
    let mut c = base(&sim, dir, app);
    c.env("MFA_BULK_ACCESS_TOKEN", &token)
        .arg("apply")
        .arg(&users)
        .args(["--yes", "-o", "revoked.csv"]);
    let o = c.output().unwrap();
    assert_clean("apply with a revoked token: stdout", &o.stdout);
    assert_clean("apply with a revoked token: stderr", &o.stderr);
    assert_ne!(o.status.code(), Some(0));

    // An admin's browser sign-in, kept between commands (the cache is an input here: it lives
    // outside the scanned folder, and holds refresh tokens by design).
    let browser = crate::signin::browser_script(creds.path());
    let cache = creds.path().join("sign-in-cache");
    let admin = |args: &[&str]| {
        let mut c = base(&sim, dir, sim::SIM_GRAPH_CLI_CLIENT_ID);
        c.env("BROWSER", &browser)
            .env("MFA_BULK_CACHE_DIR", &cache)
            .args(args);
        c
    };
    run(admin(&["check", "--interactive"]), 0, "check --interactive");
    run(
        admin(&["check", "--interactive", "--json"]),
        0,
        "check --interactive --json",
    );
    let mut c = admin(&["dry-run", "--interactive", "-o", "admin-plan.csv"]);
    c.arg(&users);
    run(c, 1, "dry-run --interactive");
    let mut c = admin(&[
        "apply",
        "--interactive",
        "--yes",
        "-o",
        "admin-applied.xlsx",
    ]);
    c.arg(&users);
    run(c, 1, "apply --interactive");
    let kept = std::fs::read_to_string(cache.join("sign-in-cache.json")).unwrap();
    assert!(
        kept.contains(REFRESH_TOKEN_MARK),
        "the scan for {REFRESH_TOKEN_MARK} would miss refresh tokens"
    );
    let mut c = admin(&["check", "--interactive", "--client-id"]);
    c.arg(sim::SIM_CONSENT_DENIED_CLIENT_ID);
    run(c, 3, "check --interactive, consent declined");
    run(admin(&["logout"]), 0, "logout");
    assert!(!cache.join("sign-in-cache.json").exists());

    // A managed identity (App Service): its IDENTITY_HEADER never shows.
    let mut c = base(&sim, dir, app);
    c.env(
        "IDENTITY_ENDPOINT",
        format!("{}/msi/token", sim.handle.url()),
    )
    .env("IDENTITY_HEADER", IDENTITY_HEADER)
    .arg("dry-run")
    .arg(&users)
    .args(["--managed-identity", "-o", "mi.csv"]);
    run(c, 1, "dry-run --managed-identity");
    let mut c = base(&sim, dir, app);
    c.env(
        "IDENTITY_ENDPOINT",
        format!("{}/msi/token", sim.handle.url()),
    )
    .env("IDENTITY_HEADER", WRONG_SECRET)
    .args(["check", "--managed-identity"]);
    run(c, 3, "check --managed-identity with a wrong header");

    // Ctrl-C in the middle of slow writes with tokens being revoked: the journal stays.
    sim.handle.set_faults(FaultConfig {
        latency_min_ms: 150,
        latency_max_ms: 150,
        ..FaultConfig::default()
    });
    let mut c = base(&sim, dir, app);
    c.env("AZURE_CLIENT_SECRET", SECRET)
        .arg("apply")
        .arg(&users)
        .args([
            "--state",
            "enforced",
            "--concurrency",
            "1",
            "--yes",
            "-o",
            "stopped.csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let writes = sim.counters().writes;
    let child = c.spawn().unwrap();
    let start = Instant::now();
    while sim.counters().writes == writes {
        assert!(start.elapsed() < Duration::from_secs(60), "no write");
        std::thread::sleep(Duration::from_millis(5));
    }
    sim.handle.revoke_tokens();
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    assert_clean("interrupted apply: stdout", &o.stdout);
    assert_clean("interrupted apply: stderr", &o.stderr);
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let journals = std::fs::read_dir(dir.join(".mfa-bulk")).unwrap().count();
    assert!(journals > 0, "the interrupted run kept its journal");

    // Everything written in the folder: results, run records, journal, notify list.
    let files = scan_dir(dir);
    assert!(files >= 15, "only {files} files scanned");
    for f in [
        "plan.csv",
        "plan.csv.run.json",
        "applied.csv.run.json",
        "notify.txt",
        "reverted.xlsx",
        "cert.xlsx",
        "token.csv",
        "stopped.csv",
        "admin-plan.csv.run.json",
        "admin-applied.xlsx",
        "mi.csv",
    ] {
        assert!(dir.join(f).exists(), "{f} was not written");
    }
}
