//! Tests of TensorBoard events and JSON summaries.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "summary_events.rs"]
mod summary_events;
#[path = "summary_json.rs"]
mod summary_json;
#[path = "summary_tensorboard.rs"]
mod summary_tensorboard;
