//! Tests of cloud storage whose servers go away: a binary of its own, since
//! it stops the servers that every other storage test of its process uses.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "storage_support/mod.rs"]
mod storage_support;

#[path = "storage_server_gone.rs"]
mod storage_server_gone;
