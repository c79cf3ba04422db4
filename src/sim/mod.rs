//! The built-in Microsoft Graph simulator (`mfa-bulk sim`, and in-process with `--sim`).
//! Speaks the subset of Graph and the Entra token endpoint this tool uses, with Graph's
//! documented behaviour: throttling by resource units and writes, `$batch` rules, error shapes,
//! token lifetimes, and injected faults.
//!
//! CONTRACT (the engine, the CLI and the tests rely on these):
//! - [`SimConfig::sample`] is the sample tenant matching `samples/` (embedded in the binary).
//! - [`start`] binds a loopback port (0 = free port) and serves until the handle is shut down.
//! - [`SIM_TENANT_ID`], [`SIM_CLIENT_ID`], [`SIM_CLIENT_SECRET`]: the app `--sim` signs in as
//!   (all permissions granted).

use std::net::SocketAddr;

use crate::cli::SimArgs;

pub const SIM_TENANT_ID: &str = "8d3c2e1a-5b7f-4c6d-9e0a-1f2b3c4d5e6f";
pub const SIM_CLIENT_ID: &str = "3f9a1c52-7d4e-4b8a-a6c1-0e2d5f7b9a13";
pub const SIM_CLIENT_SECRET: &str = "sim-secret-not-a-real-credential";

/// Everything the simulator is started with.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to bind (loopback only); port 0 picks a free port.
    pub listen: SocketAddr,
}

impl SimConfig {
    /// The sample tenant (samples/tenant.json, embedded), Graph's documented limits, no faults.
    pub fn sample() -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    pub fn from_args(args: &SimArgs) -> anyhow::Result<SimConfig> {
        let _ = args;
        anyhow::bail!("the simulator is not built yet")
    }
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
}

impl SimHandle {
    /// Base URL for both `--graph-url` and `--login-url`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts the simulator on a loopback port.
pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
    let _ = cfg;
    anyhow::bail!("the simulator is not built yet")
}
