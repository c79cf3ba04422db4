//! Integration tests: one binary, one module per area.
mod common;
mod engine;
mod faults;
mod graph;
mod graph_fake;
mod graph_sim;
mod injection;
mod input;
mod interrupt;
mod reliability;
mod reliability_props;
mod reliability_safety;
mod report;
mod report_read;
mod report_record;
mod secrets;
mod sim;
