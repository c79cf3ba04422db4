//! Integration tests: one binary, one module per area.
mod common;
mod engine;
mod graph;
mod graph_fake;
mod graph_sim;
mod input;
mod report;
mod report_read;
mod report_record;
mod sim;
mod reliability_props;
