//! The registered clients of the sample tenant (`samples/tenant.json`), as constants for the
//! CLI (`--sim`) and the tests. These are simulator credentials only: they open nothing
//! anywhere else.

pub const SIM_TENANT_ID: &str = "8d3c2e1a-5b7f-4c6d-9e0a-1f2b3c4d5e6f";
pub const SIM_CLIENT_ID: &str = "3f9a1c52-7d4e-4b8a-a6c1-0e2d5f7b9a13";
pub const SIM_CLIENT_SECRET: &str = "sim-secret-not-a-real-credential";

/// `readonly-app`: `Policy.Read.All` and `User.Read.All` only (PATCH answers 403).
pub const SIM_READONLY_CLIENT_ID: &str = "5b0e7f3c-2a41-4d8e-9c6b-7a1d2e3f4b50";
pub const SIM_READONLY_CLIENT_SECRET: &str = "sim-readonly-secret-not-a-real-credential";
/// `users-only-app`: `User.Read.All` only (reading the MFA state answers 403).
pub const SIM_USERS_ONLY_CLIENT_ID: &str = "6c1f8a4d-3b52-4e9f-8d7c-8b2e3f4a5c61";
pub const SIM_USERS_ONLY_CLIENT_SECRET: &str = "sim-usersonly-secret-not-a-real-credential";
/// `cert-app`: all permissions, signs in with the certificate in [`SIM_CERT_PEM`].
pub const SIM_CERT_CLIENT_ID: &str = "7d2a9b5e-4c63-4fa0-9e8d-9c3f4a5b6d72";
/// Certificate and private key (PEM, unencrypted PKCS#8) of `cert-app`. A test credential of
/// the simulator only: it opens nothing anywhere else.
pub const SIM_CERT_PEM: &str = include_str!("sim-app-cert.pem");
/// Public client for the device code flow; the signed-in admin is `it.admin@northwind.example`
/// (Authentication Policy Administrator).
pub const SIM_DEVICE_CLIENT_ID: &str = "8e3bac6f-5d74-40b1-af9e-ad4a5b6c7e83";
/// Public client whose signed-in user is only a Helpdesk Administrator (delegated writes of the
/// MFA state answer 403).
pub const SIM_DEVICE_HELPDESK_CLIENT_ID: &str = "9f4cbd70-6e85-41c2-b0af-be5b6c7d8f94";
/// `pubkey-app`: registered with a bare public key (the key of [`SIM_CERT_PEM`]), read-only.
pub const SIM_PUBKEY_CLIENT_ID: &str = "a05dce81-7f96-42d3-81b0-cf6c7d8e9fa5";
/// Microsoft Graph Command Line Tools, as registered in the sample tenant: what `--interactive`
/// and `--device-code` sign in with when no `--client-id` is given. Admin
/// `it.admin@northwind.example`, redirect URI `http://localhost`.
pub const SIM_GRAPH_CLI_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
/// Public client whose admin declines the consent page (`error=access_denied`).
pub const SIM_CONSENT_DENIED_CLIENT_ID: &str = "b16edf92-8fa7-43e4-92c1-d07d8eafb0b6";
/// The system-assigned managed identity (`Policy.ReadWrite.AuthenticationMethod`,
/// `Policy.Read.All`, `User.Read.All`).
pub const SIM_MANAGED_IDENTITY_ID: &str = "c27f0a13-9b18-44f5-a3d2-e18e9fb0c1c7";
/// A user-assigned managed identity that may only read (`Policy.Read.All`, `User.Read.All`).
pub const SIM_READONLY_MANAGED_IDENTITY_ID: &str = "d3801b24-ac29-45a6-b4e3-f29fa0c1d2d8";
