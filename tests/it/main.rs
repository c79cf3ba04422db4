//! Integration tests: one binary, one module per area.
mod graph;
mod graph_fake;
mod graph_sim;
mod sim;
