//! Integration tests: one binary, one module per area.
mod common;
mod engine;
mod input;
mod report;
mod report_read;
mod report_record;
mod sim;
mod reliability_props;
