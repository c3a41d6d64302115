//! Tests of the PJRT C API: buffers, execution, collectives, memory, errors.
//!
//! One test binary for the files below (Cargo.toml's `[[test]]` list;
//! `tools/check_tests` keeps every test file in one group).

#[path = "common/pjrt.rs"]
mod pjrt_common;

#[path = "pjrt_buffers.rs"]
mod pjrt_buffers;
#[path = "pjrt_cache.rs"]
mod pjrt_cache;
#[path = "pjrt_collectives.rs"]
mod pjrt_collectives;
#[path = "pjrt_errors.rs"]
mod pjrt_errors;
#[path = "pjrt_execute.rs"]
mod pjrt_execute;
#[path = "pjrt_memory.rs"]
mod pjrt_memory;
