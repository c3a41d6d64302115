//! Tests of input data: formats, crops, augmentation, draws and the pipeline.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "data_common/mod.rs"]
mod data_common;
#[path = "common/pjrt.rs"]
mod pjrt_common;

#[path = "augment_device.rs"]
mod augment_device;
#[path = "data_augment.rs"]
mod data_augment;
#[path = "data_cifar.rs"]
mod data_cifar;
#[path = "data_crop.rs"]
mod data_crop;
#[path = "data_draws.rs"]
mod data_draws;
#[path = "data_formats.rs"]
mod data_formats;
#[path = "data_jpeg.rs"]
mod data_jpeg;
#[path = "data_pipeline.rs"]
mod data_pipeline;
#[path = "data_tfrecord_tf.rs"]
mod data_tfrecord_tf;
