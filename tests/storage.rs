//! Tests of cloud storage against real GCS and S3 servers.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "storage_support/mod.rs"]
mod storage_support;

#[path = "storage_cloud.rs"]
mod storage_cloud;
#[path = "storage_data.rs"]
mod storage_data;
#[path = "storage_run.rs"]
mod storage_run;
