//! Tests of the network and the step programs against TensorFlow's fixtures and
//! invariants.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "fixtures_support/mod.rs"]
mod fixtures_support;
#[path = "common/pjrt.rs"]
mod pjrt_common;

#[path = "fixtures_tf.rs"]
mod fixtures_tf;
#[path = "loss_metrics.rs"]
mod loss_metrics;
#[path = "nn_model.rs"]
mod nn_model;
#[path = "nn_pool_tf.rs"]
mod nn_pool_tf;
#[path = "precision_bf16.rs"]
mod precision_bf16;
#[path = "step_distill.rs"]
mod step_distill;
#[path = "step_invariants.rs"]
mod step_invariants;
#[path = "step_parallel.rs"]
mod step_parallel;
