//! `mfa-bulk check`: sign in, show who we are and which permissions are present or missing for
//! a dry-run and for an apply, and prove the token works with one harmless read. Changes
//! nothing. Exit 0 if an apply would be allowed, 3 if not (sign-in failed, Graph rejects the
//! token, or a permission is missing), 2 for a configuration error. A token Graph rejects is
//! reported as a sign-in failure only: nothing it claims (who, which permissions) is shown as
//! if it held.

use serde::Serialize;

use crate::exit::ExitCode;
use crate::graph::{
    missing_message, roles, Access, Graph, GraphError, Identity, Requirement, RequirementKind,
};
use crate::settings::GraphTarget;

#[derive(Serialize)]
struct Mode {
    allowed: bool,
    requirements: Vec<Requirement>,
}

#[derive(Serialize)]
struct Probe {
    ok: bool,
    request_id: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    signed_in: bool,
    /// Signed in as the managed identity of this Azure resource.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    managed_identity: bool,
    simulator: bool,
    #[serde(flatten)]
    identity: Identity,
    /// Whether roles/scopes could be read from the token.
    permissions_known: bool,
    probe: Probe,
    dry_run: Mode,
    apply: Mode,
    /// Optional: `--registration` (whether users registered an MFA method).
    registration: Requirement,
    /// What to do, when something is missing.
    advice: Option<String>,
    /// Security defaults and Conditional Access MFA policies (see the end of this file).
    mfa_policies: crate::graph::MfaPolicies,
}

/// Runs `check` (builds its own runtime: the rest of dispatch is synchronous).
/// `target` is where to sign in, or the configuration error found building it.
pub(crate) fn run(target: Result<GraphTarget, GraphError>, json: bool) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(target, json))
}

async fn run_async(
    target: Result<GraphTarget, GraphError>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let simulator = target.as_ref().is_ok_and(GraphTarget::is_simulator);
    let connected = match target {
        Ok(t) => t.connect().await,
        Err(e) => Err(e),
    };
    let graph = match connected {
        Ok(g) => g,
        Err(e) => return failed(&e, json),
    };
    let report = build(&graph, simulator).await;
    if let Some(e) = graph.token_rejected() {
        // The probe's 401 (after one renewal where the credential can renew): the token
        // does not work, whatever its claims say.
        let e = GraphError::Auth(format!(
            "Microsoft Graph rejected the token ({e}); get a new token (or check the \
             credential) and run check again"
        ));
        return failed(&e, json);
    }
    let code = if report.apply.allowed && report.probe.ok {
        ExitCode::Success
    } else {
        ExitCode::AuthOrPermission
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(code)
}

/// Sign-in failed (or Graph rejected the token): the error alone.
fn failed(e: &GraphError, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        let v = serde_json::json!({
            "signed_in": false,
            "error": e.to_string(),
            "kind": match e { GraphError::Config(_) => "config", _ => "auth" },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        eprintln!("error: {e}");
    }
    Ok(e.exit_code())
}

async fn build(graph: &Graph, simulator: bool) -> Report {
    let identity = graph.identity();
    let known = graph.permissions_known();
    let mode = |a: Access| {
        let requirements = graph.requirements(a);
        Mode {
            allowed: !known || requirements.iter().all(|r| r.found.is_some()),
            requirements,
        }
    };
    let (dry_run, apply) = (mode(Access::Read), mode(Access::Write));
    let probe = match graph.probe().await {
        Ok(rid) => Probe {
            ok: true,
            request_id: rid,
            error: None,
        },
        Err(e) => Probe {
            ok: false,
            request_id: e.request_id.clone(),
            error: Some(e.to_string()),
        },
    };
    let registration = {
        let granted = if identity.user.is_some() {
            &identity.scopes
        } else {
            &identity.roles
        };
        let any_of = ["UserAuthenticationMethod.Read.All", "AuditLog.Read.All"];
        Requirement {
            kind: RequirementKind::Permission,
            purpose: "show MFA registration (--registration)".into(),
            any_of: any_of.iter().map(|s| s.to_string()).collect(),
            found: any_of
                .iter()
                .find(|p| granted.iter().any(|g| g.eq_ignore_ascii_case(p)))
                .map(|s| s.to_string()),
        }
    };
    let missing: Vec<&Requirement> = apply
        .requirements
        .iter()
        .filter(|r| r.found.is_none())
        .collect();
    let advice = (known && !missing.is_empty()).then(|| missing_message(&identity, &missing));
    Report {
        signed_in: true,
        managed_identity: matches!(
            graph.config().credential,
            crate::graph::Credential::ManagedIdentity(_)
        ),
        simulator,
        identity,
        permissions_known: known,
        probe,
        dry_run,
        apply,
        registration,
        advice,
        mfa_policies: graph.mfa_policies().await,
    }
}

fn text(r: &Report) -> String {
    let id = &r.identity;
    let mut s = String::new();
    let mut line = |k: &str, v: &str| s.push_str(&format!("  {k:<14}{v}\n"));
    line("tenant:", &id.tenant_id);
    line(
        "app:",
        &match &id.app_name {
            Some(n) => format!("{n} ({})", id.app_id),
            None => id.app_id.clone(),
        },
    );
    line(
        "signed in as:",
        &match &id.user {
            Some(u) => format!("{u} (delegated)"),
            None if r.managed_identity => {
                "this Azure resource's managed identity (application permissions)".into()
            }
            None => "the app itself (application permissions)".into(),
        },
    );
    line(
        "cloud:",
        &if r.simulator {
            "built-in simulator (--sim)".to_string()
        } else {
            id.cloud.clone()
        },
    );
    line("Graph:", &id.graph_url);
    if id.user.is_some() && id.directory_roles.is_none() && r.permissions_known {
        line(
            "admin roles:",
            "not listed in the sign-in (writes need Authentication Policy Administrator, \
             Privileged Authentication Administrator or Global Administrator)",
        );
    }
    if let (Some(_), Some(wids)) = (&id.user, &id.directory_roles) {
        let held = roles::names(wids);
        let list = if held.is_empty() {
            "none".to_string()
        } else {
            held.join(", ")
        };
        line(
            "admin roles:",
            &match roles::mfa_admin_role(wids) {
                Some(r) => format!("{list} ({} may change per-user MFA)", roles::name(r)),
                None => format!(
                    "{list}: NOT one that may change per-user MFA (Authentication Policy \
                     Administrator, Privileged Authentication Administrator or Global \
                     Administrator)"
                ),
            },
        );
    }
    let perms = if id.user.is_some() {
        &id.scopes
    } else {
        &id.roles
    };
    line(
        "permissions:",
        &if !r.permissions_known {
            "could not be read from the token (not a JWT)".to_string()
        } else if perms.is_empty() {
            "none".to_string()
        } else {
            perms.join(", ")
        },
    );
    line(
        "token works:",
        &match (&r.probe.ok, &r.probe.error) {
            (true, _) => format!(
                "yes (read one user; request-id {})",
                r.probe.request_id.as_deref().unwrap_or("-")
            ),
            (false, e) => format!("NO: {}", e.as_deref().unwrap_or("?")),
        },
    );
    let mut out = format!("Signed in.\n{s}");
    for (name, m) in [("dry-run", &r.dry_run), ("apply", &r.apply)] {
        out.push_str(&format!(
            "{name}: {}\n",
            if m.allowed { "allowed" } else { "NOT allowed" }
        ));
        for req in &m.requirements {
            let state = match &req.found {
                Some(p) => format!("ok ({p})"),
                None if !r.permissions_known => "unknown".into(),
                None => format!("MISSING {}", req.any_of[0]),
            };
            out.push_str(&format!("  {:<28}{state}\n", format!("{}:", req.purpose)));
        }
    }
    out.push_str(&format!(
        "optional: {}: {}\n",
        r.registration.purpose,
        match &r.registration.found {
            Some(p) => format!("ok ({p})"),
            None => format!("not granted ({})", r.registration.any_of.join(" or ")),
        }
    ));
    out.push_str(&mfa_policies_text(&r.mfa_policies));
    if let Some(a) = &r.advice {
        out.push('\n');
        out.push_str(a);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------
// MFA policies (issue 14): Microsoft advises against combining per-user MFA with Security
// defaults or with Conditional Access policies that require MFA, so `check` says whether
// they are on. Read by `Graph::mfa_policies` (src/graph/listing.rs); never a reason to fail.

/// The lines `check` prints about Security defaults and Conditional Access.
fn mfa_policies_text(p: &crate::graph::MfaPolicies) -> String {
    let mut out = String::from("MFA policies of the tenant:\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<22}{v}\n"));
    line(
        "Security defaults:",
        match p.security_defaults {
            Some(true) => "ON (Microsoft advises not to combine them with per-user MFA)".into(),
            Some(false) => "off".into(),
            None => "could not be read".into(),
        },
    );
    line(
        "Conditional Access:",
        match (p.ca_requiring_mfa, p.ca_report_only) {
            (Some(0), Some(0)) => "no policy requires MFA".into(),
            (Some(on), Some(ro)) => {
                let names = if p.ca_names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.ca_names.join(", "))
                };
                format!(
                    "{on} {} MFA{names}; {ro} more in report-only mode (Microsoft \
                     advises not to combine per-user MFA with Conditional Access MFA \
                     policies)",
                    if on == 1 {
                        "policy on requires"
                    } else {
                        "policies on require"
                    }
                )
            }
            _ => "could not be read".into(),
        },
    );
    for e in &p.errors {
        out.push_str(&format!("  ({e})\n"));
    }
    out
}
