//! Shared by the integration tests: an in-process simulator on a loopback port and the real
//! binary pointed at it, and [`TestContext`], a simulator with a scratch folder beside it, for
//! the tests that run the binary against it. Nothing here reaches any address off this machine.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use mfa_bulk::sim::{self, SimConfig, SimHandle};

/// Environment variables that could point the binary elsewhere; cleared for every test run.
pub(crate) const CLEARED: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "MFA_BULK_GRAPH_URL",
    "MFA_BULK_LOGIN_URL",
    "MFA_BULK_ACCESS_TOKEN",
    "MFA_BULK_CLOUD",
    "MFA_BULK_IMDS_URL",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "BROWSER",
];

/// A sign-in cache folder of this test process: no test ever reads or writes the real user's
/// credential store or cache folder (`MFA_BULK_CACHE_DIR` keeps sign-ins in a file there).
pub(crate) fn test_cache_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary folder"))
        .path()
        .to_path_buf()
}

/// A path inside the repository (samples, fixtures).
pub(crate) fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The binary, with no tenant configuration from the environment, run in `dir`.
pub(crate) fn bin(dir: &Path) -> Command {
    Command::from_std(bin_process(dir))
}

/// [`bin`] as a plain process: for a child to signal while it runs, or to wrap in another
/// program (a terminal).
pub(crate) fn bin_process(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin!("mfa-bulk"));
    clear_env(&mut c);
    c.current_dir(dir);
    c
}

/// Removes every variable of [`CLEARED`] from what `c` will run with.
pub(crate) fn clear_env(c: &mut std::process::Command) {
    for v in CLEARED {
        c.env_remove(v);
    }
}

/// A simulator running in this test process, on its own runtime.
pub(crate) struct TestSim {
    pub handle: SimHandle,
    rt: tokio::runtime::Runtime,
}

impl TestSim {
    /// The sample tenant (the one `samples/` is written for).
    pub(crate) fn sample() -> TestSim {
        TestSim::with(SimConfig::sample())
    }

    pub(crate) fn with(cfg: SimConfig) -> TestSim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = rt.block_on(sim::start(cfg)).expect("simulator starts");
        TestSim { handle, rt }
    }

    /// The binary, signed in to this simulator as the sample app (all permissions).
    pub(crate) fn cmd(&self, dir: &Path) -> Command {
        self.cmd_as(dir, sim::SIM_CLIENT_ID, sim::SIM_CLIENT_SECRET)
    }

    /// The binary, signed in to this simulator as `client_id` with `secret`.
    pub(crate) fn cmd_as(&self, dir: &Path, client_id: &str, secret: &str) -> Command {
        let mut c = bin(dir);
        c.envs(self.sign_in_env(client_id, secret));
        c
    }

    /// The environment that signs the binary in to this simulator as `client_id` with `secret`.
    pub(crate) fn sign_in_env(&self, client_id: &str, secret: &str) -> [(&'static str, String); 5] {
        [
            ("MFA_BULK_GRAPH_URL", self.handle.url()),
            ("MFA_BULK_LOGIN_URL", self.handle.url()),
            ("AZURE_TENANT_ID", sim::SIM_TENANT_ID.to_string()),
            ("AZURE_CLIENT_ID", client_id.to_string()),
            ("AZURE_CLIENT_SECRET", secret.to_string()),
        ]
    }

    /// [`TestSim::sign_in_env`] for the sample app (all permissions).
    pub(crate) fn sample_app_env(&self) -> [(&'static str, String); 5] {
        self.sign_in_env(sim::SIM_CLIENT_ID, sim::SIM_CLIENT_SECRET)
    }

    /// A user's per-user MFA state now (by UPN or id).
    pub(crate) fn state(&self, key: &str) -> String {
        self.handle
            .user_state(key)
            .unwrap_or_else(|| panic!("no user {key} in the simulator"))
    }

    pub(crate) fn counters(&self) -> sim::Counters {
        self.handle.counters()
    }

    /// Most writes any one user received.
    pub(crate) fn max_writes_per_user(&self) -> u64 {
        self.counters()
            .writes_per_user
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// The UPNs of every user of the tenant, in tenant order.
    pub(crate) fn upns(&self) -> Vec<String> {
        self.handle
            .users_state()
            .into_iter()
            .map(|u| u.user_principal_name)
            .collect()
    }

    /// A user's object id (by UPN, any case).
    pub(crate) fn id_of(&self, upn: &str) -> String {
        self.handle
            .users_state()
            .into_iter()
            .find(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
            .unwrap_or_else(|| panic!("no user {upn} in the simulator"))
            .id
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A test's world: a simulator and a folder the binary runs in, with the steps every test
/// takes written once. It derefs to its [`TestSim`] (`ctx.state(…)`, `ctx.counters()`).
pub(crate) struct TestContext {
    pub sim: TestSim,
    dir: tempfile::TempDir,
}

impl TestContext {
    /// The sample tenant, in a temporary folder on disk.
    pub(crate) fn sample() -> TestContext {
        TestContext::with(SimConfig::sample())
    }

    /// A simulator of `cfg`, in a temporary folder on disk.
    pub(crate) fn with(cfg: SimConfig) -> TestContext {
        TestContext {
            sim: TestSim::with(cfg),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A simulator of `cfg`, in a [`scratch`] folder in memory: for long applies, whose
    /// journal syncs would otherwise make them mostly fsync time.
    pub(crate) fn in_memory(cfg: SimConfig) -> TestContext {
        TestContext {
            sim: TestSim::with(cfg),
            dir: scratch(),
        }
    }

    /// The folder the binary runs in.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `name` in the folder.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// An input CSV `name` in the folder: a `UserPrincipalName` column holding `users`.
    pub(crate) fn input<S: AsRef<str>>(&self, name: &str, users: &[S]) -> PathBuf {
        write_input(self.dir(), name, users)
    }

    /// The binary in the folder, signed in to the simulator as the sample app.
    pub(crate) fn cmd(&self) -> Command {
        self.sim.cmd(self.dir())
    }

    /// The binary in the folder, signed in to the simulator as `client_id` with `secret`.
    pub(crate) fn cmd_as(&self, client_id: &str, secret: &str) -> Command {
        self.sim.cmd_as(self.dir(), client_id, secret)
    }

    /// `apply <input>`, signed in; options follow.
    pub(crate) fn apply(&self, input: &Path) -> Command {
        let mut c = self.cmd();
        c.arg("apply").arg(input);
        c
    }

    /// `dry-run <input>`, signed in; options follow.
    pub(crate) fn dry_run(&self, input: &Path) -> Command {
        let mut c = self.cmd();
        c.arg("dry-run").arg(input);
        c
    }

    /// The binary as a child process with `args`, signed in, in the folder: no input, output
    /// dropped, its standard error kept for [`stderr_of`]. For tests that signal it.
    pub(crate) fn spawn<I, S>(&self, args: I) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        bin_process(self.dir())
            .envs(self.sim.sample_app_env())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts")
    }

    /// Graph requests the simulator logged whose URL contains `part`.
    pub(crate) fn logged(&self, part: &str) -> usize {
        self.handle
            .request_log()
            .iter()
            .filter(|e| e.url.contains(part))
            .count()
    }

    /// The result CSV `name` in the folder, as rows.
    pub(crate) fn rows(&self, name: &str) -> Rows {
        read_csv(&self.path(name))
    }

    /// The text of `name` in the folder.
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Writes `contents` to `name` in the folder.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Whether `name` exists in the folder.
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }
}

impl Deref for TestContext {
    type Target = TestSim;
    fn deref(&self) -> &TestSim {
        &self.sim
    }
}

/// A UTF-8 CSV `name` in `dir` with a `UserPrincipalName` column: `users` in order.
pub(crate) fn write_input<S: AsRef<str>>(dir: &Path, name: &str, users: &[S]) -> PathBuf {
    let path = dir.join(name);
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(["UserPrincipalName"]).unwrap();
    for u in users {
        w.write_record([u.as_ref()]).unwrap();
    }
    w.flush().unwrap();
    path
}

/// A temporary folder in memory (`/dev/shm`) when there is one: an apply syncs its journal to
/// disk twice per user written, which on a disk makes a 100,000-user run mostly fsync time.
/// Durability against a crash of the machine is not what these tests check; a killed process
/// loses nothing from the page cache either way.
pub(crate) fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Sends `sig` (`-INT`, `-TERM`, `-KILL`) to `child`.
pub(crate) fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Waits for `child` to end; kills it and fails after 120 s.
pub(crate) fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the child did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What `child` wrote to its standard error (read to the end, once).
pub(crate) fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// A result file as rows of header → value.
pub(crate) type Rows = Vec<HashMap<String, String>>;

/// A result CSV read as header → value maps, one per row (BOM stripped).
pub(crate) fn read_csv(path: &Path) -> Rows {
    let text = std::fs::read_to_string(path).expect("result file");
    let text = text.trim_start_matches('\u{feff}');
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr.headers().expect("header").clone();
    rdr.records()
        .map(|r| {
            let r = r.expect("record");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The row of a result file whose `input` (any case) is `input`.
pub(crate) fn row<'a>(
    rows: &'a [HashMap<String, String>],
    input: &str,
) -> &'a HashMap<String, String> {
    rows.iter()
        .find(|r| r["input"].eq_ignore_ascii_case(input))
        .unwrap_or_else(|| panic!("no row for {input}"))
}
