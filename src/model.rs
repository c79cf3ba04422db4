//! Our own types, shared by every stage: file → rows → resolved users → plan → changes → result.
//! Graph's wire types stay in `graph`; nothing here knows about HTTP or JSON shapes.

use std::fmt;

/// A per-user MFA state as Entra reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MfaState {
    Disabled,
    Enabled,
    Enforced,
    /// A value we do not know (Graph's `unknownFutureValue` or newer): reported, never guessed.
    Other(Box<str>),
}

impl MfaState {
    /// Parses Graph values and the legacy portal's `Enabled`/`Enforced`/`Disabled`, any case.
    pub fn parse(s: &str) -> Option<MfaState> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(MfaState::Disabled),
            "enabled" => Some(MfaState::Enabled),
            "enforced" => Some(MfaState::Enforced),
            _ => None,
        }
    }

    /// Like [`MfaState::parse`] but keeps unknown values as [`MfaState::Other`] (for Graph replies).
    pub fn from_graph(s: &str) -> MfaState {
        MfaState::parse(s).unwrap_or_else(|| MfaState::Other(s.into()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            MfaState::Disabled => "disabled",
            MfaState::Enabled => "enabled",
            MfaState::Enforced => "enforced",
            MfaState::Other(s) => s,
        }
    }

    /// Strength order: disabled < enabled < enforced. Unknown values have no rank.
    pub fn rank(&self) -> Option<u8> {
        match self {
            MfaState::Disabled => Some(0),
            MfaState::Enabled => Some(1),
            MfaState::Enforced => Some(2),
            MfaState::Other(_) => None,
        }
    }

    /// Whether a user in `self` already satisfies `target`.
    ///
    /// `enabled` means "at least enabled": an `enforced` user satisfies it and is never
    /// weakened. `disabled` is only satisfied by `disabled` (an explicit turn-off).
    pub fn satisfies(&self, target: &MfaState) -> bool {
        match (self, target) {
            (MfaState::Enforced, MfaState::Enabled) => true,
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for MfaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a cell named, once trimmed: an address-like sign-in name, or an object id (GUID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    /// `name@domain`: a UPN or a mail address; which one is only known once resolved.
    Address(String),
    /// An Entra object id (GUID), lower case.
    ObjectId(String),
}

impl UserRef {
    /// The normalised form used for matching (lower case).
    pub fn key(&self) -> &str {
        match self {
            UserRef::Address(s) | UserRef::ObjectId(s) => s,
        }
    }
}

/// Why a row will not be sent to Graph, decided before any network call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowStatus {
    /// A user to look up.
    Ok(UserRef),
    /// Not an address or object id; `reason` is for the admin.
    Invalid { reason: String },
    /// The same user appeared earlier, at spreadsheet row `first_row`.
    Duplicate { first_row: u64, user: UserRef },
    /// Listed in the `--exclude` file: never touched.
    Excluded { user: UserRef },
}

/// One data row of the input, with its row number as the admin sees it in Excel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRow {
    /// 1-based row number in the sheet or file (header and title rows counted).
    pub row: u64,
    /// The cell as written (for display and the result file).
    pub input: String,
    /// A per-row target from an `MFA Status`-like column; overrides `--state`.
    pub state: Option<MfaState>,
    pub status: RowStatus,
}

/// A directory user as the engine sees it (filled from Graph by the `graph` module).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub other_mails: Vec<String>,
    /// As Graph returns them, e.g. `SMTP:first.last@contoso.com`, `smtp:alias@contoso.com`.
    pub proxy_addresses: Vec<String>,
    /// "Member" or "Guest".
    pub user_type: Option<String>,
    pub account_enabled: Option<bool>,
}
