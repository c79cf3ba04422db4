//! The one place where parsed arguments become settings (uv's `settings.rs`, fd's
//! `construct_config`): every option is checked here, the same way whether the run goes to a
//! tenant or to the built-in simulator, and no module below the command layer sees a clap type.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{
    ApplyArgs, Cloud as CloudArg, GraphArgs, LogoutArgs, ReportArgs, ReportOnly, RevertArgs,
    RunArgs, RunInputArgs, SimArgs, UserTypeArg,
};
use crate::engine::{ApplyOptions, DirectoryUsers, Rule, RunSettings, Source};
use crate::exit::ExitCode;
use crate::graph::config::{check_base_url, check_pacing, cloud_urls, read_secret_file, Cloud};
use crate::graph::managed_identity::ManagedIdentity;
use crate::graph::token_cache::{self, CacheStore};
use crate::graph::{
    delegated_scopes, AdminSignIn, Connect, Credential, Graph, GraphConfig, GraphError, Secret,
    SignInFlow, GRAPH_CLI_CLIENT_ID,
};
use crate::input::ReadOptions;
use crate::model::MfaState;
use crate::sim::SimConfig;
use anyhow::Context;
use std::net::SocketAddr;

/// Where a run signs in: a tenant, or the built-in simulator started for this run.
#[derive(Debug)]
pub enum GraphTarget {
    Tenant(GraphConfig),
    Simulator {
        /// Seed file (`--sim-tenant`), else the sample tenant.
        tenant: Option<PathBuf>,
        /// Pacing options (checked), applied to the simulator's sign-in.
        pacing: GraphConfig,
    },
}

impl GraphTarget {
    /// From the flags and the process environment.
    pub fn from_args(args: &GraphArgs) -> Result<GraphTarget, GraphError> {
        GraphTarget::from_args_with_env(args, &|k| std::env::var(k).ok())
    }

    /// From the flags, with the environment passed in (tests use a map).
    pub fn from_args_with_env(
        args: &GraphArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GraphTarget, GraphError> {
        check_pacing(
            args.rate,
            args.write_rate,
            args.concurrency,
            args.timeout as f64,
        )?;
        if args.sim {
            let pacing = GraphConfig {
                graph_url: String::new(),
                login_url: String::new(),
                cloud: "simulator".into(),
                tenant: crate::sim::SIM_TENANT_ID.into(),
                client_id: crate::sim::SIM_CLIENT_ID.into(),
                credential: Credential::Secret(Secret::new(crate::sim::SIM_CLIENT_SECRET)),
                ru_per_10s: args.rate,
                writes_per_sec: args.write_rate,
                concurrency: args.concurrency,
                timeout: Duration::from_secs(args.timeout),
            };
            return Ok(GraphTarget::Simulator {
                tenant: args.sim_tenant.clone(),
                pacing,
            });
        }
        Ok(GraphTarget::Tenant(graph_config(args, env)?))
    }

    /// Signs in when awaited (for `--sim`, starts the simulator first and keeps it running as
    /// long as the client lives).
    pub fn connect(self) -> Connect {
        Box::pin(async move {
            match self {
                GraphTarget::Tenant(cfg) => Graph::connect(cfg).await,
                GraphTarget::Simulator { tenant, pacing } => {
                    let seed = match &tenant {
                        Some(path) => crate::sim::SimConfig::with_tenant(
                            crate::sim::SimConfig::load_tenant(path)
                                .map_err(|e| GraphError::Config(format!("{e:#}")))?,
                        ),
                        None => crate::sim::SimConfig::sample(),
                    };
                    let handle = crate::sim::start(seed).await.map_err(|e| {
                        GraphError::Config(format!("cannot start the simulator: {e:#}"))
                    })?;
                    let url = handle.url();
                    let cfg = GraphConfig {
                        graph_url: url.clone(),
                        login_url: url,
                        ..pacing
                    };
                    Graph::connect_keeping(cfg, Some(Box::new(handle))).await
                }
            }
        })
    }

    /// Whether this is the built-in simulator.
    pub fn is_simulator(&self) -> bool {
        matches!(self, GraphTarget::Simulator { .. })
    }

    /// An admin's sign-in also asks to read group members (`--group`).
    pub fn with_group_scope(mut self, group: bool) -> GraphTarget {
        if let GraphTarget::Tenant(GraphConfig {
            credential: Credential::Admin(a),
            ..
        }) = &mut self
        {
            if group && !a.scopes.iter().any(|s| s == "GroupMember.Read.All") {
                a.scopes.push("GroupMember.Read.All".into());
            }
        }
        self
    }

    /// An admin's sign-in asks for what the command needs: changing per-user MFA (`write`) or
    /// only reading it, and the registration report (`registration`). Other sign-ins are
    /// unchanged (an app has what it was granted).
    pub fn with_scopes(mut self, write: bool, registration: bool) -> GraphTarget {
        if let GraphTarget::Tenant(GraphConfig {
            credential: Credential::Admin(a),
            ..
        }) = &mut self
        {
            a.scopes = delegated_scopes(write, registration);
        }
        self
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn cloud(c: CloudArg) -> Cloud {
    match c {
        CloudArg::Global => Cloud::Global,
        CloudArg::Usgov => Cloud::Usgov,
        CloudArg::UsgovDod => Cloud::UsgovDod,
        CloudArg::China => Cloud::China,
    }
}

/// A tenant's configuration: flags first, then the conventional environment. Secrets come from
/// files or the environment, never from plain flags.
fn graph_config(
    args: &GraphArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GraphConfig, GraphError> {
    let env = |k: &str| nonempty(env(k));
    let chosen_cloud = match args.cloud {
        Some(c) => cloud(c),
        None => match env("MFA_BULK_CLOUD").as_deref() {
            None => Cloud::Global,
            Some(name) => match CloudArg::from_name(name) {
                Some(c) => cloud(c),
                None => {
                    return Err(GraphError::Config(format!(
                    "MFA_BULK_CLOUD='{name}' is not a cloud: use global, usgov, usgov-dod or china"
                )))
                }
            },
        },
    };
    let (mut cloud_name, default_login, default_graph) = cloud_urls(chosen_cloud);
    let graph_override = nonempty(args.graph_url.clone()).or_else(|| env("MFA_BULK_GRAPH_URL"));
    let login_override = nonempty(args.login_url.clone())
        .or_else(|| env("MFA_BULK_LOGIN_URL"))
        .or_else(|| env("AZURE_AUTHORITY_HOST"));
    if graph_override.is_some() || login_override.is_some() {
        cloud_name = "custom";
    }
    let graph_url = check_base_url(
        "the Graph URL (--graph-url)",
        graph_override.as_deref().unwrap_or(default_graph),
    )?;
    let login_url = check_base_url(
        "the sign-in URL (--login-url / AZURE_AUTHORITY_HOST)",
        login_override.as_deref().unwrap_or(default_login),
    )?;

    let tenant = nonempty(args.tenant.clone()).or_else(|| env("AZURE_TENANT_ID"));
    let client_id = nonempty(args.client_id.clone()).or_else(|| env("AZURE_CLIENT_ID"));
    let cert_path = args
        .certificate
        .clone()
        .or_else(|| env("AZURE_CLIENT_CERTIFICATE_PATH").map(Into::into));

    let raw_env = |k: &str| env(k);
    let credential = if args.interactive || args.device_code {
        Some(Credential::Admin(AdminSignIn {
            flow: if args.interactive {
                SignInFlow::Browser
            } else {
                SignInFlow::DeviceCode
            },
            scopes: delegated_scopes(true, false),
            cache: (!args.no_cache).then(|| CacheStore::from_env(&raw_env)),
        }))
    } else if let Some(mi) = &args.managed_identity {
        Some(Credential::ManagedIdentity(ManagedIdentity::from_env(
            mi.clone(),
            &raw_env,
        )?))
    } else if let Some(path) = cert_path {
        let password = match &args.certificate_password_file {
            Some(p) => Some(read_secret_file("certificate password", p)?),
            None => env("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new),
        };
        Some(Credential::Certificate { path, password })
    } else if let Some(p) = &args.client_secret_file {
        Some(Credential::Secret(read_secret_file("client secret", p)?))
    } else if let Some(t) = env("MFA_BULK_ACCESS_TOKEN") {
        Some(Credential::AccessToken(Secret::new(t)))
    } else {
        env("AZURE_CLIENT_SECRET").map(|s| Credential::Secret(Secret::new(s)))
    };
    let no_credential = || {
        GraphError::Config(
            "no way to sign in: pass --interactive to sign in as an admin in the browser, \
             --device-code to sign in as an admin at this terminal, --client-secret-file FILE \
             (or set AZURE_CLIENT_SECRET), --certificate FILE (or AZURE_CLIENT_CERTIFICATE_PATH), \
             --managed-identity in Azure, or set MFA_BULK_ACCESS_TOKEN; or use --sim to try the \
             built-in simulator"
                .into(),
        )
    };

    let needs_ids = !matches!(
        credential,
        Some(Credential::AccessToken(_)) | Some(Credential::ManagedIdentity(_))
    );
    let admin = matches!(credential, Some(Credential::Admin(_)));
    let tenant = match tenant {
        Some(t) => t,
        None if !needs_ids => String::new(),
        // An admin's sign-in finds the tenant from the account (as Connect-MgGraph does).
        None if admin => "organizations".to_string(),
        None => {
            return Err(GraphError::Config(
                "no tenant: pass --tenant or set AZURE_TENANT_ID, or use --sim to try the \
                 built-in simulator"
                    .into(),
            ))
        }
    };
    if needs_ids
        && !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Err(GraphError::Config(format!(
            "the tenant '{tenant}' is not a directory id or domain (e.g. contoso.onmicrosoft.com)"
        )));
    }
    let client_id = match client_id {
        Some(c) => c,
        None if !needs_ids => String::new(),
        // Microsoft Graph Command Line Tools: a first try needs no app registration.
        None if admin => GRAPH_CLI_CLIENT_ID.to_string(),
        None => {
            return Err(GraphError::Config(
                "no application (client) id: pass --client-id or set AZURE_CLIENT_ID (the app \
                 registration's \"Application (client) ID\"), or use --sim to try the built-in \
                 simulator"
                    .into(),
            ))
        }
    };
    let credential = credential.ok_or_else(no_credential)?;
    let cfg = GraphConfig {
        graph_url,
        login_url,
        cloud: cloud_name.to_string(),
        tenant,
        client_id,
        credential,
        ru_per_10s: args.rate,
        writes_per_sec: args.write_rate,
        concurrency: args.concurrency,
        timeout: Duration::from_secs(args.timeout),
    };
    cfg.check_pacing()?;
    Ok(cfg)
}

/// How to read a user list.
pub fn read_options(args: &RunInputArgs) -> ReadOptions {
    ReadOptions {
        sheet: args.sheet.clone(),
        column: args.column.clone(),
        encoding: args.encoding.clone(),
        delimiter: args.delimiter.clone(),
    }
}

/// A dry-run or apply: its settings and where it signs in.
pub fn run_settings(
    args: RunArgs,
    rule: Rule,
    yes: bool,
) -> Result<(RunSettings, GraphTarget), GraphError> {
    let target = GraphTarget::from_args(&args.graph)?
        .with_scopes(!matches!(rule, Rule::DryRun), args.registration)
        .with_group_scope(args.input.group.is_some());
    let state: MfaState = args.state.into();
    let mut recorded = serde_json::json!({
        "state": state.as_str(),
        "exclude": args.input.exclude,
        "group": args.input.group,
        "filter": args.input.filter,
        "per_user_reads": args.per_user_reads,
        "registration": args.registration,
        "sim": target.is_simulator(),
        "rate": args.graph.rate,
        "write_rate": args.graph.write_rate,
        "concurrency": args.graph.concurrency,
    });
    if let Rule::Apply(o) = &rule {
        recorded["yes"] = yes.into();
        recorded["max_changes"] = serde_json::json!(o.max_changes);
        recorded["plan"] = serde_json::json!(o.plan);
        recorded["resume"] = o.resume.into();
    }
    let read = read_options(&args.input);
    let RunInputArgs {
        file,
        group,
        filter,
        exclude,
        ..
    } = args.input;
    let source = match (file, group, filter) {
        (Some(file), _, _) => Source::Spreadsheet {
            read,
            file,
            exclude,
            target: state,
        },
        (None, Some(g), _) => Source::Directory {
            users: DirectoryUsers::Group(g),
            exclude,
            target: state,
        },
        (None, None, Some(f)) => Source::Directory {
            users: DirectoryUsers::Filter(f),
            exclude,
            target: state,
        },
        (None, None, None) => {
            return Err(GraphError::Config(
                "no users to work on: give a FILE, --group NAME or --filter ODATA".into(),
            ))
        }
    };
    let settings = RunSettings {
        source,
        rule,
        output: args.output,
        force: args.force,
        yes,
        registration: args.registration,
        json: args.json,
        per_user_reads: args.per_user_reads,
        recorded_options: recorded,
        also_read: sim_seed(&target),
    };
    Ok((settings, target))
}

/// The simulator's seed file, which a run must never write over.
fn sim_seed(target: &GraphTarget) -> Vec<(String, PathBuf)> {
    match target {
        GraphTarget::Simulator {
            tenant: Some(p), ..
        } => vec![("--sim-tenant file".to_string(), p.clone())],
        _ => Vec::new(),
    }
}

/// `apply`'s settings.
pub fn apply_settings(args: ApplyArgs) -> Result<(RunSettings, GraphTarget), GraphError> {
    let ApplyArgs {
        run,
        yes,
        max_changes,
        plan,
        resume,
        notify_list,
    } = args;
    let options = ApplyOptions {
        max_changes,
        plan,
        resume,
        notify_list,
    };
    run_settings(run, Rule::Apply(options), yes)
}

/// `revert`'s settings.
pub fn revert_settings(args: RevertArgs) -> Result<(RunSettings, GraphTarget), GraphError> {
    let target = GraphTarget::from_args(&args.graph)?.with_scopes(true, false);
    let recorded = serde_json::json!({
        "result": args.result,
        "yes": args.yes,
        "sim": target.is_simulator(),
    });
    let settings = RunSettings {
        source: Source::EarlierResult { file: args.result },
        rule: Rule::Revert,
        output: args.output,
        force: args.force,
        yes: args.yes,
        registration: false,
        json: args.json,
        per_user_reads: false,
        recorded_options: recorded,
        also_read: sim_seed(&target),
    };
    Ok((settings, target))
}

/// `report`'s settings.
pub fn report_settings(
    args: ReportArgs,
) -> Result<(crate::tenant_report::ReportSettings, GraphTarget), GraphError> {
    use crate::tenant_report::{Only, ReportSettings, ReportUsers, UserType};
    let target = GraphTarget::from_args(&args.graph)?
        .with_scopes(false, true)
        .with_group_scope(args.group.is_some());
    let only = args.only.map(|o| match o {
        ReportOnly::RegisteredButDisabled => Only::RegisteredButDisabled,
        ReportOnly::Disabled => Only::State(MfaState::Disabled),
        ReportOnly::Enabled => Only::State(MfaState::Enabled),
        ReportOnly::Enforced => Only::State(MfaState::Enforced),
        ReportOnly::NotRegistered => Only::NotRegistered,
    });
    let user_type = match args.user_type {
        UserTypeArg::Member => UserType::Member,
        UserTypeArg::Guest => UserType::Guest,
        UserTypeArg::All => UserType::All,
    };
    let recorded = serde_json::json!({
        "only": args.only.map(|o| format!("{o:?}")),
        "user_type": format!("{:?}", args.user_type).to_ascii_lowercase(),
        "group": args.group,
        "filter": args.filter,
        "per_user_reads": args.per_user_reads,
        "report_rate": args.report_rate,
        "sim": target.is_simulator(),
        "rate": args.graph.rate,
        "concurrency": args.graph.concurrency,
    });
    let users = match (args.group, args.filter) {
        (Some(g), _) => ReportUsers::Group(g),
        (None, Some(f)) => ReportUsers::Filter(f),
        (None, None) => ReportUsers::Tenant,
    };
    let settings = ReportSettings {
        users,
        output: args.output,
        force: args.force,
        only,
        user_type,
        per_user_reads: args.per_user_reads,
        report_rate: args.report_rate,
        json: args.json,
        recorded_options: recorded,
        also_read: sim_seed(&target),
    };
    Ok((settings, target))
}

/// `mfa-bulk logout`: forgets the admin sign-ins kept between commands (all, or those
/// matching the options), from the OS credential store and the cache file. Exit 0, or 3 if a
/// store could not be read.
pub fn logout(args: &LogoutArgs) -> anyhow::Result<ExitCode> {
    let store = CacheStore::from_env(&|k| std::env::var(k).ok());
    let filter = token_cache::LogoutFilter {
        tenant: nonempty(args.tenant.clone()),
        client_id: nonempty(args.client_id.clone()),
        account: nonempty(args.account.clone()),
    };
    let (removed, problems) = token_cache::logout(&store, &filter);
    if removed.is_empty() && problems.is_empty() {
        println!("No saved sign-in to forget.");
    }
    for s in &removed {
        println!(
            "Forgot the sign-in of {} (tenant {}, app {}).",
            s.account, s.key.tenant, s.key.client_id
        );
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    if !removed.is_empty() {
        eprintln!(
            "The refresh token is no longer kept here. To end the admin's sessions everywhere, \
             revoke them in Entra (Revoke-MgUserSignInSession)."
        );
    }
    Ok(if problems.is_empty() {
        ExitCode::Success
    } else {
        ExitCode::AuthOrPermission
    })
}

/// `mfa-bulk sim`'s options: the simulator to start, checked (loopback only, rates and
/// fractions in range).
pub fn sim_config(args: &SimArgs) -> anyhow::Result<SimConfig> {
    let listen: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {}: expected an address like 127.0.0.1:8400",
            args.listen
        )
    })?;
    if !listen.ip().is_loopback() {
        anyhow::bail!(
            "--listen {listen}: the simulator only listens on loopback (127.0.0.1 or [::1])"
        );
    }
    let tenant = if let Some(path) = &args.tenant {
        SimConfig::load_tenant(path)?
    } else if let Some(n) = args.users {
        crate::sim::generate_tenant(n, args.seed)
    } else {
        SimConfig::sample().tenant
    };
    if !(args.time_scale > 0.0 && args.time_scale.is_finite()) {
        anyhow::bail!("--time-scale must be a positive number");
    }
    for (name, v) in [
        ("--error-rate", args.error_rate),
        ("--drop-rate", args.drop_rate),
        ("--lost-write-rate", args.lost_write_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            anyhow::bail!("{name} must be between 0.0 and 1.0");
        }
    }
    let (lo, hi) = crate::sim::parse_latency(&args.latency)?;
    let mut cfg = SimConfig::with_tenant(tenant);
    cfg.listen = listen;
    cfg.time_scale = args.time_scale;
    cfg.seed = args.seed;
    cfg.limits.ru_per_10s = args.ru_budget;
    cfg.limits.writes_per_150s = args.write_limit;
    cfg.limits.token_lifetime_secs = args.token_lifetime;
    cfg.limits.device_code_auto_approve_polls = args.approve_after_polls;
    cfg.limits.report_requests_per_10s = args.report_limit;
    cfg.faults = crate::sim::FaultConfig {
        error_rate: args.error_rate,
        drop_rate: args.drop_rate,
        lost_write_rate: args.lost_write_rate,
        latency_min_ms: lo,
        latency_max_ms: hi,
        premium: None,
    };
    if args.non_premium {
        cfg.tenant.premium = false;
    }
    if args.no_list_mfa_state {
        cfg.tenant.lists_per_user_mfa_state = false;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn args() -> GraphArgs {
        GraphArgs {
            sim: false,
            sim_tenant: None,
            tenant: None,
            client_id: None,
            client_secret_file: None,
            certificate: None,
            certificate_password_file: None,
            device_code: false,
            interactive: false,
            managed_identity: None,
            no_cache: false,
            cloud: None,
            graph_url: None,
            login_url: None,
            rate: None,
            write_rate: None,
            concurrency: 8,
            timeout: 60,
        }
    }

    fn cfg(a: &GraphArgs, env: &[(&str, &str)]) -> Result<GraphConfig, GraphError> {
        let m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match GraphTarget::from_args_with_env(a, &|k| m.get(k).cloned())? {
            GraphTarget::Tenant(c) => Ok(c),
            GraphTarget::Simulator { pacing, .. } => Ok(pacing),
        }
    }

    const ENV: &[(&str, &str)] = &[
        ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
        ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
    ];

    #[test]
    fn clouds_map_to_the_documented_urls() {
        for (c, login, graph) in [
            (
                CloudArg::Global,
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            (
                CloudArg::Usgov,
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            (
                CloudArg::UsgovDod,
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            (
                CloudArg::China,
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        ] {
            let mut a = args();
            a.cloud = Some(c);
            let c = cfg(&a, ENV).unwrap();
            assert_eq!(c.login_url, login);
            assert_eq!(c.graph_url, graph);
        }
        let mut env = ENV.to_vec();
        env.push(("MFA_BULK_CLOUD", "usgov"));
        assert_eq!(cfg(&args(), &env).unwrap().cloud, "usgov");
        env.pop();
        env.push(("MFA_BULK_CLOUD", "mars"));
        assert!(cfg(&args(), &env).is_err());
    }

    #[test]
    fn environment_fills_tenant_client_and_secret() {
        let c = cfg(&args(), ENV).unwrap();
        assert_eq!(c.tenant, "contoso.onmicrosoft.com");
        assert_eq!(c.client_id, "11111111-2222-3333-4444-555555555555");
        assert!(matches!(&c.credential, Credential::Secret(s) if s.expose() == "s3cr3t-value"));
        assert_eq!(c.cloud, "global");
    }

    #[test]
    fn missing_tenant_says_what_to_do() {
        let e = cfg(&args(), &ENV[1..]).unwrap_err().to_string();
        assert!(
            e.contains("--tenant") && e.contains("AZURE_TENANT_ID") && e.contains("--sim"),
            "{e}"
        );
    }

    #[test]
    fn missing_credential_says_what_to_do() {
        let e = cfg(&args(), &ENV[..2]).unwrap_err().to_string();
        assert!(e.starts_with("no way to sign in"), "{e}");
        assert!(
            e.contains("--client-secret-file") && e.contains("--device-code"),
            "{e}"
        );
        // With nothing at all, the tenant is asked for first.
        let e = cfg(&args(), &[]).unwrap_err().to_string();
        assert!(e.starts_with("no tenant"), "{e}");
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.txt");
        std::fs::write(&p, "from-file \r\n").unwrap();
        let mut a = args();
        a.client_secret_file = Some(p);
        let c = cfg(&a, ENV).unwrap();
        assert!(matches!(&c.credential, Credential::Secret(s) if s.expose() == "from-file"));
    }

    #[test]
    fn env_token_needs_no_tenant() {
        let c = cfg(&args(), &[("MFA_BULK_ACCESS_TOKEN", "eyJ.x.y")]).unwrap();
        assert!(matches!(c.credential, Credential::AccessToken(_)));
    }

    #[test]
    fn authority_host_overrides_login_and_makes_cloud_custom() {
        let mut env = ENV.to_vec();
        env.push(("AZURE_AUTHORITY_HOST", "https://login.example.test/"));
        let c = cfg(&args(), &env).unwrap();
        assert_eq!(c.login_url, "https://login.example.test");
        assert_eq!(c.cloud, "custom");
    }

    #[test]
    fn debug_of_config_never_shows_the_secret() {
        let c = cfg(&args(), ENV).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-value"), "{d}");
        assert!(d.contains("[redacted]"));
    }

    #[test]
    fn an_admin_sign_in_needs_no_app_and_no_tenant_and_is_kept_unless_told() {
        let mut a = args();
        a.interactive = true;
        let c = cfg(&a, &[]).unwrap();
        assert_eq!(c.client_id, crate::graph::GRAPH_CLI_CLIENT_ID);
        assert_eq!(c.tenant, "organizations");
        match &c.credential {
            Credential::Admin(s) => {
                assert_eq!(s.flow, SignInFlow::Browser);
                assert_eq!(s.cache, Some(CacheStore::Auto));
                assert!(s
                    .scopes
                    .contains(&"Policy.ReadWrite.AuthenticationMethod".into()));
            }
            other => panic!("{other:?}"),
        }
        // The environment's app and tenant are used; the cache folder can be chosen.
        let c = cfg(&a, &[ENV[0], ENV[1], ("MFA_BULK_CACHE_DIR", "/tmp/x")]).unwrap();
        assert_eq!(c.client_id, "11111111-2222-3333-4444-555555555555");
        assert!(matches!(&c.credential, Credential::Admin(s)
            if s.cache == Some(CacheStore::Folder("/tmp/x".into()))));
        a.no_cache = true;
        a.interactive = false;
        a.device_code = true;
        let c = cfg(&a, &[]).unwrap();
        assert!(matches!(&c.credential, Credential::Admin(s)
            if s.cache.is_none() && s.flow == SignInFlow::DeviceCode));
        // A dry-run asks only to read; --registration adds the report.
        let t = GraphTarget::Tenant(c).with_scopes(false, true);
        let GraphTarget::Tenant(c) = t else {
            unreachable!()
        };
        let Credential::Admin(s) = &c.credential else {
            unreachable!()
        };
        assert_eq!(
            s.scopes,
            vec!["Policy.Read.All", "User.Read.All", "AuditLog.Read.All"]
        );
    }

    #[test]
    fn a_managed_identity_needs_no_tenant_or_app() {
        let mut a = args();
        a.managed_identity = Some(None);
        let c = cfg(&a, &[]).unwrap();
        assert!(matches!(&c.credential, Credential::ManagedIdentity(m) if m.client_id.is_none()));
        a.managed_identity = Some(Some("c-1".into()));
        let c = cfg(&a, &[("MFA_BULK_IMDS_URL", "http://127.0.0.1:1")]).unwrap();
        assert!(matches!(&c.credential,
            Credential::ManagedIdentity(m) if m.client_id.as_deref() == Some("c-1")));
        assert!(cfg(&a, &[("MFA_BULK_IMDS_URL", "http://169.254.1.1")]).is_err());
    }

    #[test]
    fn pacing_is_checked_the_same_with_and_without_the_simulator() {
        for sim in [false, true] {
            let mut a = args();
            a.sim = sim;
            a.rate = Some(0);
            assert!(cfg(&a, ENV).is_err(), "--rate 0, sim {sim}");
            let mut a = args();
            a.sim = sim;
            a.write_rate = Some(f64::NAN);
            assert!(cfg(&a, ENV).is_err(), "--write-rate nan, sim {sim}");
            let mut a = args();
            a.sim = sim;
            a.concurrency = 0;
            assert!(cfg(&a, ENV).is_err(), "--concurrency 0, sim {sim}");
        }
    }

    fn sim_args(extra: &[&str]) -> SimArgs {
        use clap::Parser;
        let mut v = vec!["mfa-bulk", "sim"];
        v.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(v).command {
            crate::cli::Command::Sim(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn sim_options_are_checked() {
        let c = sim_config(&sim_args(&["--listen", "127.0.0.1:0", "--latency", "5-50"])).unwrap();
        assert_eq!((c.faults.latency_min_ms, c.faults.latency_max_ms), (5, 50));
        assert_eq!(c.tenant.users.len(), 17);
        assert!(sim_config(&sim_args(&["--listen", "10.0.0.1:80"])).is_err());
        assert!(sim_config(&sim_args(&["--error-rate", "1.5"])).is_err());
        assert!(sim_config(&sim_args(&["--latency", "50-5"])).is_err());
        assert!(sim_config(&sim_args(&["--time-scale", "0"])).is_err());
        let c = sim_config(&sim_args(&["--users", "700", "--non-premium"])).unwrap();
        assert!(!c.tenant.premium);
        assert_eq!(c.ru_budget(), 8000);
        let c = sim_config(&sim_args(&["--ru-budget", "100"])).unwrap();
        assert_eq!(c.ru_budget(), 100);
    }

    #[test]
    fn loads_a_tenant_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/tenant.json");
        let t = SimConfig::load_tenant(&path).unwrap();
        assert_eq!(t.users.len(), 17);
        let err = SimConfig::load_tenant(std::path::Path::new("no/such/file.json")).unwrap_err();
        assert!(format!("{err:#}").contains("no/such/file.json"));
    }
}
