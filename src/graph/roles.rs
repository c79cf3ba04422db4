//! Entra directory roles as delegated tokens name them: the `wids` claim holds role *template*
//! ids (the same in every tenant). Only these roles may change the per-user MFA state
//! (Graph reference, "Tokens").

/// Authentication Policy Administrator.
pub const AUTHENTICATION_POLICY_ADMINISTRATOR: &str = "0526716b-113d-4c15-b2c8-68e3c22b9f80";
/// Privileged Authentication Administrator.
pub const PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: &str = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13";
/// Global Administrator.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";

/// The role every member user has ("User"); it grants no admin right.
pub const DEFAULT_USER_ROLE: &str = "b79fbf4d-3ef9-4689-8143-76b194e85509";

/// The roles that may change per-user MFA, least privileged first (the first is the one to
/// ask for).
pub const MAY_CHANGE_MFA: &[&str] = &[
    AUTHENTICATION_POLICY_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
];

/// Names of well-known role templates, for messages (a `wids` entry not listed is shown by id).
const NAMES: &[(&str, &str)] = &[
    (
        AUTHENTICATION_POLICY_ADMINISTRATOR,
        "Authentication Policy Administrator",
    ),
    (
        PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
        "Privileged Authentication Administrator",
    ),
    (GLOBAL_ADMINISTRATOR, "Global Administrator"),
    (
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
    ),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    (
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
    ),
    ("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader"),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    (
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
    ),
    // Every member user has this one ("User"); it grants no admin right.
    (
        "b79fbf4d-3ef9-4689-8143-76b194e85509",
        "User (default role)",
    ),
];

/// The name of a role template id, or the id itself.
pub fn name(template_id: &str) -> String {
    NAMES
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(template_id))
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| template_id.to_string())
}

/// The names of the roles in `wids`, without the default role every user has.
pub fn names(wids: &[String]) -> Vec<String> {
    wids.iter()
        .filter(|w| !w.eq_ignore_ascii_case(DEFAULT_USER_ROLE))
        .map(|w| name(w))
        .collect()
}

/// The first of `wids` that may change per-user MFA (by the order of [`MAY_CHANGE_MFA`]).
pub fn mfa_admin_role(wids: &[String]) -> Option<&'static str> {
    MAY_CHANGE_MFA
        .iter()
        .copied()
        .find(|r| wids.iter().any(|w| w.eq_ignore_ascii_case(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_the_roles_that_may_change_mfa() {
        assert_eq!(name(GLOBAL_ADMINISTRATOR), "Global Administrator");
        assert_eq!(
            name("00000000-0000-0000-0000-000000000001"),
            "00000000-0000-0000-0000-000000000001"
        );
        let helpdesk = vec!["729827E3-9C14-49F7-BB1B-9608F156BBB8".to_string()];
        assert_eq!(mfa_admin_role(&helpdesk), None);
        let both = vec![
            GLOBAL_ADMINISTRATOR.to_string(),
            AUTHENTICATION_POLICY_ADMINISTRATOR.to_uppercase(),
        ];
        assert_eq!(
            mfa_admin_role(&both),
            Some(AUTHENTICATION_POLICY_ADMINISTRATOR)
        );
    }
}
