//! mfa-bulk: turn on per-user MFA for many Microsoft Entra users at once, from a spreadsheet.
//!
//! Data flows one way: [`input`] (file → rows) → [`resolve`] (rows → users) → [`engine`]
//! (plan, apply, read back) → [`report`] (result file). [`graph`] is the only module that
//! talks HTTP to Graph; [`sim`] is the built-in Graph simulator.

mod check;
pub mod cli;
mod engine;
pub mod exit;
pub mod graph;
pub mod input;
pub mod model;
pub mod report;
mod resolve;
pub mod run;
pub mod settings;
pub mod sim;
mod tenant_report;
mod validate;

pub use exit::ExitCode;
pub use run::run;
