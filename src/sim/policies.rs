//! `GET /policies/identitySecurityDefaultsEnforcementPolicy` and
//! `GET /identity/conditionalAccess/policies` (both need `Policy.Read.All`), from the tenant
//! seed (`securityDefaults`, `conditionalAccessPolicies`).

use serde_json::json;

use super::state::{Ident, Sim};
use super::wire::{Ctx, GErr, Resp, Ver};

const POLICY_READ: &[&str] = &[
    "Policy.Read.All",
    "Policy.ReadWrite.ConditionalAccess",
    "Policy.ReadWrite.SecurityDefaults",
];
const POLICY_ADMIN: &[&str] = &[
    "Security Reader",
    "Security Administrator",
    "Conditional Access Administrator",
    "Global Reader",
    "Global Administrator",
    "Authentication Policy Administrator",
];

pub(super) fn security_defaults(
    sim: &Sim,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
) -> Result<Resp, GErr> {
    if !ident.allows(POLICY_READ, POLICY_ADMIN) {
        return Err(GErr::denied());
    }
    Ok(Resp::json(
        200,
        json!({
            "@odata.context": format!(
                "{}/{}/$metadata#policies/identitySecurityDefaultsEnforcementPolicy/$entity",
                ctx.base, ver.as_str()
            ),
            "id": "00000000-0000-0000-0000-000000000005",
            "displayName": "Security Defaults",
            "description": "Security defaults is a set of basic identity security mechanisms recommended by Microsoft. When enabled, these recommendations will be automatically enforced in your organization. Administrators and users will be better protected from common identity related attacks.",
            "isEnabled": sim.cfg.tenant.security_defaults,
        }),
    ))
}

pub(super) fn conditional_access(
    sim: &Sim,
    ctx: &Ctx,
    ident: &Ident,
    ver: Ver,
) -> Result<Resp, GErr> {
    if !ident.allows(POLICY_READ, POLICY_ADMIN) {
        return Err(GErr::denied());
    }
    Ok(Resp::json(
        200,
        json!({
            "@odata.context": format!(
                "{}/{}/$metadata#identity/conditionalAccess/policies",
                ctx.base, ver.as_str()
            ),
            "value": sim.cfg.tenant.conditional_access_policies,
        }),
    ))
}
