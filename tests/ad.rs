//! Tests of automatic differentiation: every rule against finite differences
//! and the plugin.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "ad_support/mod.rs"]
mod ad_support;
#[path = "conformance_support/mod.rs"]
mod conformance_support;

#[path = "ad_api.rs"]
mod ad_api;
#[path = "ad_collective.rs"]
mod ad_collective;
#[path = "ad_composite.rs"]
mod ad_composite;
#[path = "ad_elementwise.rs"]
mod ad_elementwise;
#[path = "ad_linalg.rs"]
mod ad_linalg;
#[path = "ad_pjrt.rs"]
mod ad_pjrt;
#[path = "ad_structural.rs"]
mod ad_structural;
#[path = "ad_window.rs"]
mod ad_window;
