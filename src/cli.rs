//! The command line, parsed once into these types (clap derive). Help text is written for an
//! Entra admin, not for a developer.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::MfaState;

#[derive(Debug, Parser)]
#[command(
    name = "mfa-bulk",
    version,
    about = "Turn on per-user MFA for many Microsoft Entra users at once, from a spreadsheet",
    long_about = "Turn on per-user MFA for many Microsoft Entra users at once, from the spreadsheets \
you already have (CSV, XLSX, XLS, ODS, Excel \"Unicode Text\").\n\n\
Users who registered for MFA through Conditional Access still show \"Disabled\" on the legacy \
per-user MFA page and never get the \"Additional security verification\" page \
(https://aka.ms/mfasetup). mfa-bulk sets their per-user MFA state through Microsoft Graph.\n\n\
Typical use: `validate` the file, `dry-run` it, `apply` it, attach the result CSV to the ticket.\n\
Try it with no tenant: `mfa-bulk apply samples/new-starters.xlsx --sim --yes`.",
    after_help = "Exit codes: 0 everything as asked, 1 some rows need attention, 2 usage or input \
error (nothing sent to Graph), 3 sign-in or permission error, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and check a file offline: list the users found (with spreadsheet row numbers)
    /// and the problems. No network.
    ///
    /// Up to 1,000 users are all listed; above that the first 50 are listed and the rest
    /// counted. Problems are listed up to 1,000. `--json` uses the same limits. Exit 0 when every
    /// row is usable, 1 when some rows are invalid or duplicates, 2 when the file is unusable.
    Validate(ValidateArgs),
    /// Resolve every user and read their current MFA state; change nothing. Writes the
    /// result file with the action each row would take.
    DryRun(RunArgs),
    /// Set the MFA state for every user who needs it, read it back, write the result file.
    Apply(ApplyArgs),
    /// Put every user changed in an earlier result file back to their recorded "before" state.
    Revert(RevertArgs),
    /// List the tenant's users (or a group's, or a filter's) with their per-user MFA state and
    /// MFA registration, one row each: find who registered a method but still shows Disabled.
    ///
    /// The file it writes is valid input for `dry-run` and `apply`:
    /// `report --only registered-but-disabled -o todo.xlsx`, then `dry-run todo.xlsx`, then
    /// `apply todo.xlsx`. Reads at list speed (pages of 999 users; the registration report
    /// needs Entra ID P1/P2 and AuditLog.Read.All, else each user's methods are read).
    /// Changes nothing. Exit 0, or 1 when some users could not be read.
    Report(ReportArgs),
    /// Sign in and report tenant, app, cloud and the permissions found and missing. Changes
    /// nothing.
    Check(CheckArgs),
    /// Forget the admin sign-ins kept by --interactive and --device-code (all, or those of a
    /// tenant, app or account). Changes nothing in Entra.
    Logout(LogoutArgs),
    /// Run the built-in Microsoft Graph simulator (for demos and tests; no tenant needed).
    Sim(SimArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The state to set. `enabled` means "at least enabled": users already `enforced` are left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetState {
    Enabled,
    Enforced,
    Disabled,
}

impl From<TargetState> for MfaState {
    fn from(t: TargetState) -> MfaState {
        match t {
            TargetState::Enabled => MfaState::Enabled,
            TargetState::Enforced => MfaState::Enforced,
            TargetState::Disabled => MfaState::Disabled,
        }
    }
}

/// How to read the input file.
#[derive(Clone, Debug, Args)]
pub struct InputArgs {
    /// The user list: CSV, TSV, TXT, XLSX, XLSM, XLS or ODS (detected by content).
    pub file: PathBuf,

    /// Worksheet to read (default: the first sheet with a user column).
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,

    /// Column holding the users, by header name or letter (A, B, ...). Default: found by
    /// header (UPN, UserPrincipalName, User name, Email, Work email, ...).
    #[arg(long, value_name = "NAME|LETTER")]
    pub column: Option<String>,

    /// Text encoding of a CSV/TXT file (utf-8, utf-16le, utf-16be, windows-1252, ...).
    /// Default: detected (BOM, then UTF-8, else Windows-1252).
    #[arg(long, value_name = "ENCODING")]
    pub encoding: Option<String>,

    /// Field delimiter of a CSV/TXT file: ',', ';', 'tab' or '|'. Default: sniffed.
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,

    /// A list of users never to touch (break-glass accounts), read like the input file.
    #[arg(long, value_name = "FILE")]
    pub exclude: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where Graph is and how to sign in.
#[derive(Clone, Debug, Args)]
pub struct GraphArgs {
    /// Use the built-in Graph simulator (seeded with the sample tenant) instead of a real
    /// tenant. Nothing leaves this machine. (Sign-in options and the environment's tenant
    /// settings are not used with it.)
    #[arg(long, conflicts_with_all = [
        "tenant", "client_id", "client_secret_file", "certificate", "certificate_password_file",
        "device_code", "interactive", "managed_identity", "cloud", "graph_url", "login_url",
    ])]
    pub sim: bool,

    /// Seed file for `--sim` (JSON tenant, see samples/tenant.json). Default: the sample tenant.
    #[arg(long, value_name = "FILE", requires = "sim")]
    pub sim_tenant: Option<PathBuf>,

    /// Directory (tenant) id or domain. [env: AZURE_TENANT_ID]
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// Application (client) id of the app registration. [env: AZURE_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// File holding the client secret. (Or set AZURE_CLIENT_SECRET; never on the command line.)
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,

    /// Certificate for the app: PEM (certificate and private key) or PFX/PKCS#12.
    /// [env: AZURE_CLIENT_CERTIFICATE_PATH]
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,

    /// File holding the PFX password (or set AZURE_CLIENT_CERTIFICATE_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub certificate_password_file: Option<PathBuf>,

    /// Sign in as an admin at this terminal with a device code (delegated; needs the
    /// Authentication Policy Administrator role). Kept between commands like --interactive.
    #[arg(long, conflicts_with_all = ["interactive", "managed_identity"])]
    pub device_code: bool,

    /// Sign in as an admin in the browser (delegated; needs the Authentication Policy
    /// Administrator role). Without --client-id, as Microsoft Graph Command Line Tools. The
    /// sign-in is kept for the next commands (OS credential store) until `mfa-bulk logout`.
    #[arg(long, conflicts_with_all = [
        "managed_identity", "client_secret_file", "certificate", "certificate_password_file",
    ])]
    pub interactive: bool,

    /// Sign in as the managed identity of the Azure VM, App Service, Functions or Automation
    /// account this runs on: the system-assigned one, or `--managed-identity=CLIENT_ID` for a
    /// user-assigned one.
    #[arg(
        long,
        value_name = "CLIENT_ID",
        num_args = 0..=1,
        require_equals = true,
        conflicts_with_all = ["client_secret_file", "certificate", "certificate_password_file"],
    )]
    pub managed_identity: Option<Option<String>>,

    /// Neither use nor keep a saved admin sign-in (--interactive, --device-code): sign in anew.
    #[arg(long)]
    pub no_cache: bool,

    /// National cloud [default: global]. [env: MFA_BULK_CLOUD]
    #[arg(long, value_enum)]
    pub cloud: Option<Cloud>,

    /// Graph base URL (overrides --cloud; http only for loopback). [env: MFA_BULK_GRAPH_URL]
    #[arg(long, value_name = "URL")]
    pub graph_url: Option<String>,

    /// Sign-in base URL (overrides --cloud; http only for loopback).
    /// [env: MFA_BULK_LOGIN_URL, AZURE_AUTHORITY_HOST]
    #[arg(long, value_name = "URL")]
    pub login_url: Option<String>,

    /// Resource units per 10 seconds to pace at (default: from the tenant size).
    #[arg(long, value_name = "RU_PER_10S")]
    pub rate: Option<u32>,

    /// Writes per second to pace at (default: just under Graph's 3,000 per 2.5 minutes).
    #[arg(long, value_name = "PER_SEC")]
    pub write_rate: Option<f64>,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,

    /// Seconds before one HTTP request is given up.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Cloud {
    Global,
    Usgov,
    UsgovDod,
    China,
}

impl Cloud {
    /// A cloud by its command-line name (`usgov-dod`), as `MFA_BULK_CLOUD` holds it.
    pub fn from_name(name: &str) -> Option<Cloud> {
        <Cloud as ValueEnum>::from_str(name.trim(), true).ok()
    }
}

/// Which users a `dry-run` or `apply` is for: a user list, a group's members or a directory
/// filter (exactly one), and how to read the list.
#[derive(Clone, Debug, Args)]
#[command(group(
    clap::ArgGroup::new("target").required(true).args(["file", "group", "filter"])
))]
pub struct RunInputArgs {
    /// The user list: CSV, TSV, TXT, XLSX, XLSM, XLS or ODS (detected by content). Or use
    /// --group or --filter instead.
    pub file: Option<PathBuf>,

    /// The users among a group's members, nested groups followed (by display name or object
    /// id; a name several groups share is refused). Needs GroupMember.Read.All.
    #[arg(long, value_name = "NAME|ID")]
    pub group: Option<String>,

    /// The users an OData filter on /users selects, e.g. "department eq 'Sales'" or
    /// "endsWith(mail,'@contoso.com')" (advanced queries are sent as Graph requires).
    #[arg(long, value_name = "ODATA")]
    pub filter: Option<String>,

    /// Worksheet to read (default: the first sheet with a user column).
    #[arg(long, value_name = "NAME", requires = "file")]
    pub sheet: Option<String>,

    /// Column holding the users, by header name or letter (A, B, ...). Default: found by
    /// header (UPN, UserPrincipalName, User name, Email, Work email, ...).
    #[arg(long, value_name = "NAME|LETTER", requires = "file")]
    pub column: Option<String>,

    /// Text encoding of a CSV/TXT file (utf-8, utf-16le, utf-16be, windows-1252, ...).
    /// Default: detected (BOM, then UTF-8, else Windows-1252).
    #[arg(long, value_name = "ENCODING", requires = "file")]
    pub encoding: Option<String>,

    /// Field delimiter of a CSV/TXT file: ',', ';', 'tab' or '|'. Default: sniffed.
    #[arg(long, value_name = "CHAR", requires = "file")]
    pub delimiter: Option<String>,

    /// A list of users never to touch (break-glass accounts), read like the input file.
    #[arg(long, value_name = "FILE")]
    pub exclude: Option<PathBuf>,
}

/// Shared by `dry-run` and `apply`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: RunInputArgs,

    #[command(flatten)]
    pub graph: GraphArgs,

    /// Target per-user MFA state. `enabled` leaves `enforced` users alone; only
    /// `disabled` turns MFA off. A row's own "MFA Status" column overrides this.
    #[arg(long, value_enum, default_value_t = TargetState::Enabled)]
    pub state: TargetState,

    /// Result file (.csv, or .xlsx). Default: <input name>-<command>-<YYYYMMDD-HHMMSS-mmm>.csv in the
    /// current directory.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Overwrite the result file if it exists.
    #[arg(long)]
    pub force: bool,

    /// Also read whether each user has registered an MFA method (needs AuditLog.Read.All and
    /// Entra ID P1/P2, or UserAuthenticationMethod.Read.All).
    #[arg(long)]
    pub registration: bool,

    /// Print the summary as JSON (for automation).
    #[arg(long)]
    pub json: bool,

    /// Read each user's state with the documented per-user GET, never from the user list
    /// (slower; for checking the list answers).
    #[arg(long)]
    pub per_user_reads: bool,
}

#[derive(Clone, Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Refuse to run if the plan would change more than N users.
    #[arg(long, value_name = "N")]
    pub max_changes: Option<u64>,

    /// Apply exactly the rows approved in an earlier dry-run result file; users whose
    /// state changed since are reported as drifted and left alone.
    #[arg(long, value_name = "DRYRUN.csv")]
    pub plan: Option<PathBuf>,

    /// Continue an interrupted apply from its journal (rerunning the same command does too).
    #[arg(long)]
    pub resume: bool,

    /// Write the addresses of changed users who have no MFA method yet (they must visit
    /// https://aka.ms/mfasetup) to this file, one per line.
    #[arg(long, value_name = "FILE")]
    pub notify_list: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct RevertArgs {
    /// A result file from an earlier `apply`.
    pub result: PathBuf,

    #[command(flatten)]
    pub graph: GraphArgs,

    /// Result file of the revert. Default: <result name>-revert-<YYYYMMDD-HHMMSS-mmm>.csv in the
    /// current directory.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Overwrite the result file if it exists.
    #[arg(long)]
    pub force: bool,

    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Print the summary as JSON (for automation).
    #[arg(long)]
    pub json: bool,
}

/// Which rows `report --only` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportOnly {
    /// Registered an MFA method but per-user MFA is disabled: the users to fix.
    RegisteredButDisabled,
    Disabled,
    Enabled,
    Enforced,
    /// No MFA method registered.
    NotRegistered,
}

/// Which users `report` lists by type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UserTypeArg {
    Member,
    Guest,
    All,
}

#[derive(Clone, Debug, Args)]
#[command(group(clap::ArgGroup::new("users").args(["group", "filter"])))]
pub struct ReportArgs {
    #[command(flatten)]
    pub graph: GraphArgs,

    /// Report file (.csv or .xlsx; -o - writes CSV to standard output). Default:
    /// mfa-report-<YYYYMMDD-HHMMSS-mmm>.csv in the current directory.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Overwrite the report file if it exists.
    #[arg(long)]
    pub force: bool,

    /// Keep only these users.
    #[arg(long, value_enum, value_name = "KIND")]
    pub only: Option<ReportOnly>,

    /// Members, guests or both.
    #[arg(long, value_enum, default_value_t = UserTypeArg::All, value_name = "TYPE")]
    pub user_type: UserTypeArg,

    /// Only the users among this group's members, nested groups followed (display name or
    /// object id). Needs GroupMember.Read.All.
    #[arg(long, value_name = "NAME|ID")]
    pub group: Option<String>,

    /// Only the users this OData filter on /users selects, e.g. "department eq 'Sales'".
    #[arg(long, value_name = "ODATA")]
    pub filter: Option<String>,

    /// Read each user's state and methods one by one with the documented per-user GETs,
    /// never from lists (much slower; for checking the list answers).
    #[arg(long)]
    pub per_user_reads: bool,

    /// Registration report requests per 10 seconds to pace at (Graph allows about 5).
    #[arg(long, default_value_t = 4.5, value_name = "N")]
    pub report_rate: f64,

    /// Print the summary as JSON (for automation).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub graph: GraphArgs,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, Args)]
pub struct LogoutArgs {
    /// Only the sign-ins to this tenant (id or domain, as given when signing in).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// Only the sign-ins with this application (client) id.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// Only the sign-ins of this admin (user name).
    #[arg(long, value_name = "UPN")]
    pub account: Option<String>,
}

/// Options of the built-in simulator. Defaults are Graph's documented limits.
#[derive(Clone, Debug, Args)]
#[command(after_long_help = "\
A local stand-in for Microsoft Graph and the Entra sign-in endpoint, seeded with the sample \
tenant \"Northwind Traders\" (the users named in samples/). It throttles, batches, fails and \
expires tokens the way Graph documents. Nothing leaves this machine.

Demo, in two terminals:
  1) mfa-bulk sim --listen 127.0.0.1:8400
     (prints `listening on http://127.0.0.1:8400`, serves until Ctrl-C)
  2) export MFA_BULK_GRAPH_URL=http://127.0.0.1:8400 MFA_BULK_LOGIN_URL=http://127.0.0.1:8400
     export AZURE_CLIENT_SECRET=sim-secret-not-a-real-credential
     mfa-bulk dry-run samples/new-starters.xlsx \\
       --tenant 8d3c2e1a-5b7f-4c6d-9e0a-1f2b3c4d5e6f \\
       --client-id 3f9a1c52-7d4e-4b8a-a6c1-0e2d5f7b9a13
   (or pass --graph-url/--login-url instead of the two variables; `--sim` runs the same
   simulator inside mfa-bulk without a second terminal)

An admin's browser sign-in: add --interactive (without --client-id it signs in as Microsoft \
Graph Command Line Tools; the simulator approves it at once as it.admin@northwind.example). A \
managed identity: MFA_BULK_IMDS_URL=<the simulator's URL> with --managed-identity.

Other sign-ins of the sample tenant: the read-only app 5b0e7f3c-2a41-4d8e-9c6b-7a1d2e3f4b50 \
(secret sim-readonly-secret-not-a-real-credential), the certificate app \
7d2a9b5e-4c63-4fa0-9e8d-9c3f4a5b6d72, the device code client 8e3bac6f-5d74-40b1-af9e-ad4a5b6c7e83 \
(approved after two polls, or by POST /_sim/approve-device-code).

--time-scale 10 makes every Graph window, token lifetime and Retry-After ten times shorter; \
Retry-After is then given in real seconds with decimals (e.g. 0.3).

Watch it work: GET /_sim/state (each user's MFA state), /_sim/counters (requests, RU, writes, \
429s), /_sim/log; POST /_sim/faults {\"error_rate\":0.1} changes faults while it runs; \
POST /_sim/revoke-tokens invalidates every token issued.")]
pub struct SimArgs {
    /// Address to listen on (loopback only). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8400", value_name = "ADDR")]
    pub listen: String,

    /// Seed tenant (JSON). Default: the sample tenant that matches samples/.
    #[arg(long, value_name = "FILE", conflicts_with = "users")]
    pub tenant: Option<PathBuf>,

    /// Generate a tenant of N users instead of loading one.
    #[arg(long, value_name = "N")]
    pub users: Option<usize>,

    /// Seed for the generated tenant and for injected faults.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,

    /// Speed up time by this factor (throttle windows, Retry-After, token lifetime).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub time_scale: f64,

    /// Resource units per 10 s (default: by tenant size, as Graph documents).
    #[arg(long, value_name = "RU")]
    pub ru_budget: Option<u32>,

    /// Writes allowed per 2.5 minutes per app.
    #[arg(long, default_value_t = 3000, value_name = "N")]
    pub write_limit: u32,

    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 3599, value_name = "SECONDS")]
    pub token_lifetime: u64,

    /// Fraction of requests answered with 500/503/504 (0.0–1.0).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub error_rate: f64,

    /// Fraction of requests whose connection is dropped without an answer.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub drop_rate: f64,

    /// Fraction of writes that are applied but whose answer is lost.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub lost_write_rate: f64,

    /// Added latency per request, in milliseconds: MIN or MIN-MAX.
    #[arg(long, default_value = "0", value_name = "MS")]
    pub latency: String,

    /// Answer the registration report with 403 as a tenant without Entra ID P1/P2 does.
    #[arg(long)]
    pub non_premium: bool,

    /// Leave `perUserMfaState` out of `/users` lists (as if Graph stopped answering it there),
    /// so clients must read each user's state.
    #[arg(long)]
    pub no_list_mfa_state: bool,

    /// Device code sign-ins are approved after this many polls (0: only by
    /// POST /_sim/approve-device-code).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub approve_after_polls: u32,

    /// Registration report requests allowed per 10 s per app.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub report_limit: u32,
}
