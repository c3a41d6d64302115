//! Tests of HLO text, protos, golden modules and the inspection report.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "hlo_export.rs"]
mod hlo_export;
#[path = "hlo_golden.rs"]
mod hlo_golden;
#[path = "hlo_print.rs"]
mod hlo_print;
#[path = "inspect_export.rs"]
mod inspect_export;
#[path = "inspect_report.rs"]
mod inspect_report;
