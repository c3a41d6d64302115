//! Tests of several processes as one job.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "dist_job.rs"]
mod dist_job;
