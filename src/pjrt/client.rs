//! A PJRT client: creation with typed create options, platform name and
//! version, devices, compilation of an `HloModuleProto`, and uploads of
//! host arrays. Buffers and executables keep the client alive (shared
//! `Arc`), so `PJRT_Client_Destroy` runs after the last of them is gone.

use std::ffi::c_char;
use std::sync::Arc;

use prost::Message;

use crate::proto::HloModuleProto;

use super::buffer::Buffer;
use super::compile::{check_module, CompileOptions};
use super::device::Device;
use super::error::{Error, Result};
use super::event;
use super::executable::LoadedExecutable;
use super::ffi::{self, slot, RawClient, RawDevice, RawLoadedExecutable};
use super::gpu;
use super::host::HostArray;
use super::named_value::{NamedValue, Value};
use super::plugin::{copy_str, Plugin, PluginKind};

/// Options for `PJRT_Client_Create`. Only the options that fit the plugin's
/// platform are passed (the CUDA plugin rejects unknown names; the CPU
/// plugin aborts on a wrongly typed `cpu_device_count`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientOptions {
    /// CPU plugins: number of CPU devices (`cpu_device_count`, int64). The
    /// plugin's default is 4.
    pub cpu_device_count: Option<usize>,
    /// GPU plugins: allocator settings (see [`gpu::GpuOptions::from_env`]).
    pub gpu: gpu::GpuOptions,
    /// A process of a multi-process job: its node id, the node count and
    /// the job's key-value store, handed to the plugin's KV callbacks.
    pub multi_process: Option<MultiProcess>,
}

/// This process's place in a multi-process job, for `PJRT_Client_Create`:
/// GPU plugins take `node_id`/`num_nodes` as create options; every plugin
/// gets the key-value callbacks (the CPU plugin ignores them).
#[derive(Clone)]
pub struct MultiProcess {
    /// This process (`node_id`).
    pub node_id: usize,
    /// Processes in the job (`num_nodes`).
    pub num_nodes: usize,
    /// The job's key-value store.
    pub store: Arc<dyn super::kv::KeyValueStore>,
}

impl std::fmt::Debug for MultiProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiProcess")
            .field("node_id", &self.node_id)
            .field("num_nodes", &self.num_nodes)
            .finish()
    }
}

impl PartialEq for MultiProcess {
    fn eq(&self, o: &Self) -> bool {
        self.node_id == o.node_id
            && self.num_nodes == o.num_nodes
            && Arc::ptr_eq(&self.store, &o.store)
    }
}

impl ClientOptions {
    /// Defaults, with GPU options taken from the `XLA_PYTHON_CLIENT_*`
    /// environment variables.
    pub fn from_env() -> Self {
        Self {
            cpu_device_count: None,
            gpu: gpu::GpuOptions::from_env(),
            multi_process: None,
        }
    }

    /// The typed create options for a plugin of `kind`.
    pub fn named_values(&self, kind: PluginKind) -> Result<Vec<NamedValue>> {
        let mut out = Vec::new();
        match kind {
            PluginKind::Cpu => {
                if let Some(n) = self.cpu_device_count {
                    let n = i64::try_from(n).map_err(|_| {
                        Error::InvalidArgument(format!("cpu_device_count {n} is too large"))
                    })?;
                    out.push(NamedValue::new("cpu_device_count", Value::Int64(n)));
                }
            }
            PluginKind::Cuda | PluginKind::Rocm => {
                out.extend(self.gpu.named_values()?);
                if let Some(m) = &self.multi_process {
                    let id = |n: usize| {
                        i64::try_from(n).map_err(|_| {
                            Error::InvalidArgument(format!("node id {n} is too large"))
                        })
                    };
                    out.push(NamedValue::new("node_id", Value::Int64(id(m.node_id)?)));
                    out.push(NamedValue::new("num_nodes", Value::Int64(id(m.num_nodes)?)));
                }
            }
            PluginKind::Tpu => {}
        }
        Ok(out)
    }
}

/// The owned `PJRT_Client*`, shared by everything created from it.
pub(crate) struct ClientInner {
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) raw: *mut RawClient,
    /// The KV callbacks' `user_arg`; dropped after the client is destroyed.
    _kv: Option<Box<super::kv::KvBridge>>,
}

// SAFETY: a PJRT client is thread-safe (the C API is called concurrently by
// JAX); the pointer is only destroyed in `Drop`, once.
unsafe impl Send for ClientInner {}
// SAFETY: see `Send`.
unsafe impl Sync for ClientInner {}

impl Drop for ClientInner {
    fn drop(&mut self) {
        let mut args = ffi::ClientDestroyArgs::new();
        args.client = self.raw;
        let _ = self.plugin.call(slot::CLIENT_DESTROY, &mut args);
    }
}

/// A PJRT client with its devices.
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
    platform_name: String,
    platform_version: String,
    devices: Vec<Device>,
    num_global_devices: usize,
    compile_cache: Option<super::cache::CompileCache>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("plugin", &self.inner.plugin.path())
            .field("platform_name", &self.platform_name)
            .field("devices", &self.devices.len())
            .finish()
    }
}

impl Client {
    /// Creates a client of `plugin`. For CUDA plugins the CUDA libraries of
    /// the `nvidia-*` wheels are preloaded first (best effort).
    ///
    /// Errors: [`Error::Pjrt`] from `PJRT_Client_Create` or a device query.
    pub fn new(plugin: Arc<Plugin>, options: &ClientOptions) -> Result<Client> {
        if plugin.kind() == PluginKind::Cuda {
            gpu::preload_cuda_libraries(&super::discover::python_site_packages());
        }
        let values = options.named_values(plugin.kind())?;
        let raw_values: Vec<ffi::RawNamedValue> = values.iter().map(NamedValue::to_raw).collect();
        let mut args = ffi::ClientCreateArgs::new();
        args.create_options = if raw_values.is_empty() {
            std::ptr::null()
        } else {
            raw_values.as_ptr()
        };
        args.num_options = raw_values.len();
        let kv = options
            .multi_process
            .as_ref()
            .map(|m| super::kv::KvBridge::new(m.store.clone()));
        if let Some(bridge) = &kv {
            let user = &**bridge as *const super::kv::KvBridge as *mut std::ffi::c_void;
            args.kv_get_callback = super::kv::kv_get as *mut std::ffi::c_void;
            args.kv_get_user_arg = user;
            args.kv_try_get_callback = super::kv::kv_try_get as *mut std::ffi::c_void;
            args.kv_try_get_user_arg = user;
            args.kv_put_callback = super::kv::kv_put as *mut std::ffi::c_void;
            args.kv_put_user_arg = user;
        }
        plugin.call(slot::CLIENT_CREATE, &mut args)?;
        drop(raw_values);
        if args.client.is_null() {
            return Err(Error::Pjrt {
                function: "PJRT_Client_Create",
                code: super::error::ErrorCode::Internal,
                message: "returned no client".into(),
            });
        }
        let inner = Arc::new(ClientInner {
            plugin,
            raw: args.client,
            _kv: kv,
        });
        let platform_name = inner.string(slot::CLIENT_PLATFORM_NAME)?;
        let platform_version = inner
            .string(slot::CLIENT_PLATFORM_VERSION)
            .unwrap_or_default();
        let mut d = ffi::ClientDevicesArgs::new();
        d.client = inner.raw;
        inner
            .plugin
            .call(slot::CLIENT_ADDRESSABLE_DEVICES, &mut d)?;
        let raws: Vec<*mut RawDevice> = if d.devices.is_null() || d.num_devices == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin returned `num_devices` device pointers owned
            // by the client, which is alive.
            unsafe { std::slice::from_raw_parts(d.devices, d.num_devices) }.to_vec()
        };
        let devices = raws
            .into_iter()
            .map(|r| Device::describe(&inner.plugin, r))
            .collect::<Result<Vec<_>>>()?;
        let mut all = ffi::ClientDevicesArgs::new();
        all.client = inner.raw;
        let num_global_devices = match inner.plugin.call(slot::CLIENT_DEVICES, &mut all) {
            Ok(()) => all.num_devices.max(devices.len()),
            Err(_) => devices.len(),
        };
        Ok(Client {
            inner,
            platform_name,
            platform_version,
            devices,
            num_global_devices,
            compile_cache: super::cache::CompileCache::from_env(),
        })
    }

    /// Discovers a plugin (see [`super::discover`]: `explicit`, then
    /// `PJRT_PLUGIN_PATH`, the simclr cache, python3's site-packages; libtpu
    /// only when `want_tpu`), loads it and creates a client.
    ///
    /// Errors: [`Error::PluginNotFound`] listing every place tried, or any
    /// error of [`Plugin::load`] and [`Client::new`].
    pub fn discover(
        explicit: Option<&std::path::Path>,
        want_tpu: bool,
        options: &ClientOptions,
    ) -> Result<Client> {
        let path = super::discover::discover(explicit, want_tpu)?;
        Client::new(Plugin::load(path)?, options)
    }

    /// The plugin this client runs on.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.inner.plugin
    }

    /// `PJRT_Client_PlatformName`: `"cpu"`, `"cuda"`, `"tpu"` ...
    pub fn platform_name(&self) -> &str {
        &self.platform_name
    }

    /// `PJRT_Client_PlatformVersion` (may be empty).
    pub fn platform_version(&self) -> &str {
        &self.platform_version
    }

    /// The addressable devices, in the plugin's order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Every device of the job (`PJRT_Client_Devices`): the addressable ones
    /// plus, in a multi-process job whose plugin joined the others, theirs.
    pub fn num_global_devices(&self) -> usize {
        self.num_global_devices
    }

    /// The addressable device with global id `id`.
    pub fn device(&self, id: i32) -> Result<&Device> {
        self.devices.iter().find(|d| d.id == id).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no addressable device with id {id} (the client has {})",
                self.devices.len()
            ))
        })
    }

    /// `PJRT_Device_MemoryStats` of `device`: the bytes the plugin lets
    /// programs allocate on it (`bytes_limit`), when the plugin says.
    ///
    /// Errors: [`Error::Unimplemented`] where the plugin has no memory
    /// statistics (the CPU plugin), [`Error::Pjrt`] otherwise.
    pub fn device_memory_limit(&self, device: &Device) -> Result<Option<u64>> {
        let mut a = ffi::DeviceMemoryStatsArgs::new();
        a.device = device.raw;
        self.inner.plugin.call(slot::DEVICE_MEMORY_STATS, &mut a)?;
        Ok(if a.bytes_limit_is_set && a.bytes_limit > 0 {
            u64::try_from(a.bytes_limit).ok()
        } else {
            None
        })
    }

    /// Compiles `module` (program format `"hlo"`) for `options.num_replicas`
    /// replicas. The module's parameters are kept to check execute arguments.
    ///
    /// Errors: [`Error::InvalidArgument`] for what the plugin would crash on
    /// (see `compile.rs`) or more replicas than devices; [`Error::Pjrt`] with
    /// the compiler's message otherwise.
    pub fn compile(
        &self,
        module: &HloModuleProto,
        options: &CompileOptions,
    ) -> Result<LoadedExecutable> {
        self.compile_impl(module, options, false)
    }

    /// [`Client::compile`] that always runs XLA's compiler, never the
    /// compilation cache: for figures of the compile itself (`bench`,
    /// `export_hlo`).
    pub fn compile_uncached(
        &self,
        module: &HloModuleProto,
        options: &CompileOptions,
    ) -> Result<LoadedExecutable> {
        self.compile_impl(module, options, true)
    }

    fn compile_impl(
        &self,
        module: &HloModuleProto,
        options: &CompileOptions,
        uncached: bool,
    ) -> Result<LoadedExecutable> {
        let signature = check_module(module)?;
        if options.num_replicas > self.num_global_devices {
            return Err(Error::InvalidArgument(format!(
                "module '{}' asks for {} replicas, but the client has {} devices",
                module.name, options.num_replicas, self.num_global_devices
            )));
        }
        let compile_options = options.encode()?;
        let code = module.encode_to_vec();
        let Some(cache) = self.compile_cache.as_ref().filter(|_| !uncached) else {
            let raw = self.compile_raw(&code, &compile_options)?;
            return LoadedExecutable::new(self, raw, signature, options.num_replicas);
        };
        let key = super::cache::CompileCache::key(&self.cache_context(), &code, &compile_options);
        let cached = cache
            .read(&key)
            .and_then(|hit| hit.map(|bytes| self.deserialize_raw(&bytes)).transpose())
            .and_then(|raw| {
                raw.map(|raw| {
                    LoadedExecutable::new(self, raw, signature.clone(), options.num_replicas)
                })
                .transpose()
            });
        match cached {
            Ok(Some(mut exe)) => {
                exe.from_cache = true;
                return Ok(exe);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("warning: {e}; removed, compiling again");
                cache.remove(&key);
            }
        }
        let raw = self.compile_raw(&code, &compile_options)?;
        let exe = LoadedExecutable::new(self, raw, signature, options.num_replicas)?;
        if let Err(e) = exe.serialize().and_then(|bytes| cache.write(&key, &bytes)) {
            eprintln!("warning: the compiled program is not cached: {e}");
        }
        Ok(exe)
    }

    /// The cache of compiled executables this client uses, if any
    /// (`SIMCLR_COMPILATION_CACHE_DIR` when the client was created).
    pub fn compile_cache(&self) -> Option<&super::cache::CompileCache> {
        self.compile_cache.as_ref()
    }

    /// Uses `cache` (or none) for the following compiles.
    pub fn set_compile_cache(&mut self, cache: Option<super::cache::CompileCache>) {
        self.compile_cache = cache;
    }

    /// What an executable depends on besides its program: the plugin
    /// library (path, size, modification time), its platform, and the
    /// devices.
    fn cache_context(&self) -> Vec<u8> {
        let path = self.inner.plugin.path();
        let (len, mtime) = std::fs::metadata(path)
            .map(|m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                (m.len(), t)
            })
            .unwrap_or((0, 0));
        let devices: Vec<String> = self.devices.iter().map(|d| d.to_string()).collect();
        format!(
            "{}\n{len}\n{mtime}\n{}\n{}\n{}\n{}",
            path.display(),
            self.platform_name,
            self.platform_version,
            self.num_global_devices,
            devices.join("\n")
        )
        .into_bytes()
    }

    /// `PJRT_Client_Compile` of a serialized module.
    fn compile_raw(&self, code: &[u8], compile_options: &[u8]) -> Result<*mut RawLoadedExecutable> {
        let format = "hlo";
        let program = ffi::RawProgram {
            struct_size: ffi::PROGRAM_SIZE,
            extension_start: std::ptr::null_mut(),
            code: code.as_ptr().cast::<c_char>().cast_mut(),
            code_size: code.len(),
            format: format.as_ptr().cast::<c_char>(),
            format_size: format.len(),
        };
        let mut args = ffi::ClientCompileArgs::new();
        args.client = self.inner.raw;
        args.program = &program;
        args.compile_options = compile_options.as_ptr().cast::<c_char>();
        args.compile_options_size = compile_options.len();
        self.inner.plugin.call(slot::CLIENT_COMPILE, &mut args)?;
        Ok(args.executable)
    }

    /// `PJRT_Executable_DeserializeAndLoad` of what
    /// [`LoadedExecutable::serialize`] returned.
    fn deserialize_raw(&self, bytes: &[u8]) -> Result<*mut RawLoadedExecutable> {
        let mut args = ffi::ExecutableDeserializeArgs::new();
        args.client = self.inner.raw;
        args.serialized_executable = bytes.as_ptr().cast::<c_char>();
        args.serialized_executable_size = bytes.len();
        self.inner
            .plugin
            .call(slot::EXECUTABLE_DESERIALIZE_AND_LOAD, &mut args)?;
        Ok(args.loaded_executable)
    }

    /// Copies `array` to `device` (dense row-major; the plugin copies the
    /// bytes before returning).
    ///
    /// Errors: a device of another client, a malformed array, or the plugin's error.
    pub fn buffer_from_host(&self, array: &HostArray, device: &Device) -> Result<Buffer> {
        if !self.devices.iter().any(|d| d == device) {
            return Err(Error::InvalidArgument(format!(
                "{device} is not a device of this client"
            )));
        }
        self.inner.upload(array, device.raw)
    }

    /// Uploads `array` to the device with id `device_id`.
    pub fn buffer_from_host_to(&self, array: &HostArray, device_id: i32) -> Result<Buffer> {
        let device = self.device(device_id)?.clone();
        self.buffer_from_host(array, &device)
    }
}

impl ClientInner {
    /// Copies `array` to `device` (a device of this client).
    pub(crate) fn upload(
        self: &Arc<Self>,
        array: &HostArray,
        device: *mut RawDevice,
    ) -> Result<Buffer> {
        let shape = array.shape();
        if shape.byte_size() != Some(array.bytes.len()) {
            return Err(Error::InvalidArgument(format!(
                "host array {shape} has {} bytes, expected {:?}",
                array.bytes.len(),
                shape.byte_size()
            )));
        }
        // A non-NULL pointer even for zero-sized arrays.
        static EMPTY: [u8; 8] = [0; 8];
        let data: *const u8 = if array.bytes.is_empty() {
            EMPTY.as_ptr()
        } else {
            array.bytes.as_ptr()
        };
        let mut args = ffi::BufferFromHostArgs::new();
        args.client = self.raw;
        args.data = data.cast();
        args.buffer_type = array.element_type.to_pjrt();
        args.dims = array.dims.as_ptr();
        args.num_dims = array.dims.len();
        args.host_buffer_semantics = ffi::HOST_BUFFER_IMMUTABLE_ONLY_DURING_CALL;
        args.device = device;
        self.plugin
            .call(slot::CLIENT_BUFFER_FROM_HOST_BUFFER, &mut args)?;
        // Own the buffer first, so it is destroyed even if the event fails.
        let buffer = Buffer::from_raw_known(self, args.buffer, shape, device)?;
        event::wait_raw(&self.plugin, args.done_with_host_buffer)?;
        Ok(buffer)
    }

    fn string(&self, index: usize) -> Result<String> {
        let mut a = ffi::ClientStringArgs::new();
        a.client = self.raw;
        self.plugin.call(index, &mut a)?;
        // SAFETY: the string is owned by the live client; copied at once.
        Ok(unsafe { copy_str(a.value, a.value_size) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_go_only_to_the_platform_they_belong_to() {
        let o = ClientOptions {
            cpu_device_count: Some(2),
            gpu: gpu::GpuOptions {
                preallocate: Some(false),
                ..Default::default()
            },
            multi_process: None,
        };
        let cpu = o.named_values(PluginKind::Cpu).unwrap();
        assert_eq!(
            cpu,
            vec![NamedValue::new("cpu_device_count", Value::Int64(2))]
        );
        let cuda = o.named_values(PluginKind::Cuda).unwrap();
        assert_eq!(
            cuda,
            vec![NamedValue::new("preallocate", Value::Bool(false))]
        );
        assert!(o.named_values(PluginKind::Tpu).unwrap().is_empty());
    }
}
