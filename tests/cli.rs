//! Tests of the command line as a user runs it: run, distill, bench, model
//! flags.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "run_support/mod.rs"]
mod run_support;

#[path = "cli_bench.rs"]
mod cli_bench;
#[path = "cli_model.rs"]
mod cli_model;
#[path = "pjrt_cli.rs"]
mod pjrt_cli;
#[path = "run_cli.rs"]
mod run_cli;
#[path = "run_distill.rs"]
mod run_distill;
#[path = "run_precision.rs"]
mod run_precision;
