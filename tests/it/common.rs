//! Shared by the integration tests: an in-process simulator on a loopback port and the real
//! binary pointed at it. Nothing here reaches any address off this machine.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mfa_bulk::sim::{self, SimConfig, SimHandle};

/// Environment variables that could point the binary elsewhere; cleared for every test run.
pub const CLEARED: &[&str] = &[
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
];

/// A path inside the repository (samples, fixtures).
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The binary, with no tenant configuration from the environment, run in `dir`.
pub fn bin(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("mfa-bulk").expect("binary");
    for v in CLEARED {
        c.env_remove(v);
    }
    c.current_dir(dir);
    c
}

/// A simulator running in this test process, on its own runtime.
pub struct TestSim {
    pub handle: SimHandle,
    rt: tokio::runtime::Runtime,
}

impl TestSim {
    /// The sample tenant (the one `samples/` is written for).
    pub fn sample() -> TestSim {
        TestSim::with(SimConfig::sample())
    }

    pub fn with(cfg: SimConfig) -> TestSim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = rt.block_on(sim::start(cfg)).expect("simulator starts");
        TestSim { handle, rt }
    }

    /// The binary, signed in to this simulator as the sample app (all permissions).
    pub fn cmd(&self, dir: &Path) -> Command {
        self.cmd_as(dir, sim::SIM_CLIENT_ID, sim::SIM_CLIENT_SECRET)
    }

    /// The binary, signed in to this simulator as `client_id` with `secret`.
    pub fn cmd_as(&self, dir: &Path, client_id: &str, secret: &str) -> Command {
        let mut c = bin(dir);
        c.env("MFA_BULK_GRAPH_URL", self.handle.url())
            .env("MFA_BULK_LOGIN_URL", self.handle.url())
            .env("AZURE_TENANT_ID", sim::SIM_TENANT_ID)
            .env("AZURE_CLIENT_ID", client_id)
            .env("AZURE_CLIENT_SECRET", secret);
        c
    }

    /// A user's per-user MFA state now (by UPN or id).
    pub fn state(&self, key: &str) -> String {
        self.handle
            .user_state(key)
            .unwrap_or_else(|| panic!("no user {key} in the simulator"))
    }

    pub fn counters(&self) -> sim::Counters {
        self.handle.counters()
    }

    /// Most writes any one user received.
    pub fn max_writes_per_user(&self) -> u64 {
        self.counters()
            .writes_per_user
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A result CSV read as header → value maps, one per row (BOM stripped).
pub fn read_csv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
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
pub fn row<'a>(
    rows: &'a [std::collections::HashMap<String, String>],
    input: &str,
) -> &'a std::collections::HashMap<String, String> {
    rows.iter()
        .find(|r| r["input"].eq_ignore_ascii_case(input))
        .unwrap_or_else(|| panic!("no row for {input}"))
}
