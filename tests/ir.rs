//! Tests of the IR: building, validation and conformance of every op with XLA.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "conformance_support/mod.rs"]
mod conformance_support;

#[path = "conformance_ops.rs"]
mod conformance_ops;
#[path = "ir_build.rs"]
mod ir_build;
#[path = "ir_invalid.rs"]
mod ir_invalid;
