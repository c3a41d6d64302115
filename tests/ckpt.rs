//! Tests of checkpoints: simclr's own, TensorFlow's, PyTorch's, and damaged
//! ones.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "fixtures_support/mod.rs"]
mod fixtures_support;

#[path = "ckpt_corrupt.rs"]
mod ckpt_corrupt;
#[path = "ckpt_import.rs"]
mod ckpt_import;
#[path = "ckpt_native.rs"]
mod ckpt_native;
#[path = "ckpt_tf.rs"]
mod ckpt_tf;
#[path = "ckpt_torch.rs"]
mod ckpt_torch;
