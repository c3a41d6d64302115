//! PJRT C API runtime: load a plugin, create a client, compile HLO, move
//! buffers, execute on R replicas. The only module with `unsafe` code.
//!
//! One file per PJRT concept: [`plugin`] (dlopen, version, function table),
//! [`client`], [`device`], [`buffer`], [`executable`], [`compile`] (compile
//! options and module checks), [`host`] (host arrays), [`element_type`],
//! [`named_value`], [`discover`] (finding a plugin), [`gpu`] (CUDA-only
//! concerns), [`cache`] (compiled executables kept across runs), [`error`];
//! `ffi` holds the raw C layouts.
//!
//! Typical use:
//! ```no_run
//! use simclr::pjrt::{Client, ClientOptions, CompileOptions, HostArray};
//! # fn main() -> Result<(), simclr::pjrt::Error> {
//! # let module = simclr::proto::HloModuleProto::default();
//! let client = Client::discover(None, false, &ClientOptions::default())?;
//! let exe = client.compile(&module, &CompileOptions::new(1))?;
//! let x = HostArray::from_f32(&[2], &[1.0, 2.0])?;
//! let outputs = exe.execute_host(&[vec![x]])?; // outputs[replica][output]
//! # Ok(()) }
//! ```

pub mod buffer;
pub mod cache;
pub mod client;
pub mod compile;
pub mod device;
pub mod discover;
pub mod element_type;
pub mod error;
mod event;
pub mod executable;
mod ffi;
pub mod gpu;
pub mod host;
pub mod kv;
pub mod named_value;
pub mod plugin;

pub use buffer::Buffer;
pub use cache::CompileCache;
pub use client::{Client, ClientOptions};
pub use compile::{CompileOptions, ModuleSignature, OptionValue};
pub use device::Device;
pub use element_type::{ArrayShape, ElementType};
pub use error::{Error, ErrorCode, Result};
pub use executable::{CompiledMemoryStats, LoadedExecutable, Pending, Running};
pub use host::HostArray;
pub use kv::{KeyValueStore, KvError};
pub use named_value::{NamedValue, Value};
pub use plugin::{set_verbose, verbose, Plugin, PluginKind};
