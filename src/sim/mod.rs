//! The built-in Microsoft Graph simulator (`mfa-bulk sim`, and in-process with `--sim`).
//! Speaks the subset of Graph and the Entra token endpoint this tool uses, with Graph's
//! documented behaviour: throttling by resource units and writes, `$batch` rules, error shapes,
//! token lifetimes, and injected faults.
//!
//! CONTRACT (the engine, the CLI and the tests rely on these):
//! - [`SimConfig::sample`] is the sample tenant matching `samples/` (embedded in the binary).
//! - [`start`] binds a loopback port (0 = free port) and serves until the handle is shut down
//!   (or dropped).
//! - [`SIM_TENANT_ID`], [`SIM_CLIENT_ID`], [`SIM_CLIENT_SECRET`]: the app `--sim` signs in as
//!   (all permissions granted). More test clients: [`SIM_READONLY_CLIENT_ID`],
//!   [`SIM_USERS_ONLY_CLIENT_ID`], [`SIM_CERT_CLIENT_ID`], [`SIM_DEVICE_CLIENT_ID`].
//!
//! Time scaling: with `time_scale` X every simulated duration (the 10 s RU window, the 150 s
//! write window, token and device code lifetimes) passes X times faster in real time, and
//! `Retry-After` tells the client *real* seconds: the wait is rounded up to whole simulated
//! seconds (at least 1, as Graph sends) and divided by X, so with X = 1 it is an integer as
//! from Graph and with X = 10 it is a decimal such as `0.3`. `expires_in` is real seconds too.
//!
//! Inspection: in-process through [`SimHandle`] (`users_state`, `counters`, `request_log`,
//! `revoke_tokens`, `set_faults`, `set_limits`, `reset_counters`, `approve_device_codes`), and over HTTP
//! under `/_sim/` (see `README.md` in this directory) for a simulator running as a child
//! process.

// Layers (each file uses only files above it, so there is no import circle):
// `wire` (shapes), `throttle`, `clients`, `config`, `state`, `filter`, `query`, `faults`,
// `tokens`, `signin`, `auth`, `managed_identity`, `users`, `groups`, `methods`, `policies`,
// `requirements`, `graph` (one request), `batch`, `inspect`,
// `server` (listener and dispatcher), and this file (the public API).
mod auth;
mod batch;
mod clients;
mod config;
mod faults;
mod filter;
mod graph;
mod groups;
mod inspect;
mod managed_identity;
mod methods;
mod policies;
mod query;
mod requirements;
mod server;
mod signin;
mod state;
mod throttle;
mod tokens;
mod users;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;

pub use clients::{
    SIM_CERT_CLIENT_ID, SIM_CERT_PEM, SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_DEVICE_CLIENT_ID,
    SIM_DEVICE_HELPDESK_CLIENT_ID, SIM_PUBKEY_CLIENT_ID, SIM_READONLY_CLIENT_ID,
    SIM_READONLY_CLIENT_SECRET, SIM_TENANT_ID, SIM_USERS_ONLY_CLIENT_ID,
    SIM_USERS_ONLY_CLIENT_SECRET,
};
pub use clients::{
    SIM_CONSENT_DENIED_CLIENT_ID, SIM_GRAPH_CLI_CLIENT_ID, SIM_MANAGED_IDENTITY_ID,
    SIM_READONLY_MANAGED_IDENTITY_ID,
};
pub use config::parse_latency;
pub use config::{
    generate_tenant, AdminSeed, ClientSeed, FaultConfig, GroupSeed, Limits, LimitsChange,
    LimitsNow, ManagedIdentitySeed, ObjectSeed, SimConfig, TenantSeed, UserExtra, UserSeed,
    SAMPLE_TENANT_JSON, SIM_IDENTITY_HEADER,
};
pub use state::{Counters, LogEntry, UserState};

use crate::exit::ExitCode;

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    pub addr: SocketAddr,
    sim: Arc<state::Sim>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl SimHandle {
    /// Base URL for both `--graph-url` and `--login-url`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections (requests in flight finish).
    pub fn shutdown(&self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }

    /// Every user's per-user MFA state, in tenant order.
    pub fn users_state(&self) -> Vec<UserState> {
        self.sim.users_state()
    }

    /// The per-user MFA state of one user (by UPN or id, any case).
    pub fn user_state(&self, key: &str) -> Option<String> {
        let st = self.sim.lock();
        st.find_user(key).map(|i| st.users[i].state().to_string())
    }

    pub fn counters(&self) -> Counters {
        self.sim.lock().counters.clone()
    }

    pub fn request_log(&self) -> Vec<LogEntry> {
        self.sim.lock().log.iter().cloned().collect()
    }

    /// Every token issued so far stops working (401 `InvalidAuthenticationToken`).
    pub fn revoke_tokens(&self) {
        self.sim.lock().token_generation += 1;
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        self.sim.lock().faults = faults;
    }

    pub fn faults(&self) -> FaultConfig {
        self.sim.lock().faults.clone()
    }

    pub fn reset_counters(&self) {
        let mut st = self.sim.lock();
        st.counters = Counters::default();
        st.log.clear();
    }

    /// Approves pending device codes (one by user code, or all). Returns how many.
    pub fn approve_device_codes(&self, user_code: Option<&str>) -> usize {
        auth::approve(&mut self.sim.lock(), user_code)
    }

    /// The RU budget per 10 s in force.
    pub fn ru_budget(&self) -> u32 {
        self.sim.lock().limits.ru as u32
    }

    /// The throttling limits in force.
    pub fn limits(&self) -> LimitsNow {
        LimitsNow::from(self.sim.lock().limits)
    }

    /// Changes throttling limits while the simulator runs (fields left `None` keep their
    /// value): a tenant whose real budget is below the documented one, or one where another
    /// app starts writing (`tenant_writes_per_300s`). What is already in a window stays there.
    pub fn set_limits(&self, change: LimitsChange) -> LimitsNow {
        let mut st = self.sim.lock();
        change.apply(&mut st.limits);
        LimitsNow::from(st.limits)
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the simulator on a loopback port (on the current tokio runtime) and returns at once.
pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
    if !cfg.listen.ip().is_loopback() {
        anyhow::bail!(
            "the simulator only listens on loopback addresses, not {}",
            cfg.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(state::Sim::new(cfg));
    let app = axum::Router::new()
        .fallback(server::handle)
        .with_state(sim.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        server::SimListener(listener),
        app.into_make_service_with_connect_info::<server::ConnKill>(),
    )
    .with_graceful_shutdown(async move {
        let _ = rx.await;
    });
    tokio::spawn(async move {
        let _ = server.await;
    });
    Ok(SimHandle {
        addr,
        sim,
        stop: Mutex::new(Some(tx)),
    })
}

/// `mfa-bulk sim`: prints `listening on http://…` and serves until Ctrl-C.
pub fn run_cli(cfg: SimConfig) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let tenant = cfg.tenant.display_name.clone();
        let users = cfg.tenant.users.len();
        let budget = cfg.ru_budget();
        let handle = start(cfg).await?;
        let url = handle.url();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {url}")?;
            out.flush()?;
        }
        eprintln!(
            "Simulated tenant \"{tenant}\" ({users} users), {budget} RU per 10 s. Point mfa-bulk at it:\n  \
             MFA_BULK_GRAPH_URL={url} MFA_BULK_LOGIN_URL={url} AZURE_CLIENT_SECRET={SIM_CLIENT_SECRET} \\\n  \
             mfa-bulk dry-run samples/new-starters.xlsx --tenant {SIM_TENANT_ID} --client-id {SIM_CLIENT_ID}\n\
             Inspect: {url}/_sim/state  {url}/_sim/counters  {url}/_sim/log. Ctrl-C stops."
        );
        tokio::signal::ctrl_c().await?;
        handle.shutdown();
        anyhow::Ok(ExitCode::Success)
    })
}

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handle_and_config_cross_threads() {
        send_sync::<super::SimHandle>();
        send_sync::<super::SimConfig>();
    }
}
