//! Tests of the reference interpreter.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "common/mod.rs"]
mod common;

#[path = "interp_collective.rs"]
mod interp_collective;
#[path = "interp_elementwise.rs"]
mod interp_elementwise;
#[path = "interp_errors.rs"]
mod interp_errors;
#[path = "interp_linalg.rs"]
mod interp_linalg;
#[path = "interp_prop.rs"]
mod interp_prop;
#[path = "interp_reduce.rs"]
mod interp_reduce;
#[path = "interp_rng.rs"]
mod interp_rng;
#[path = "interp_shape.rs"]
mod interp_shape;
