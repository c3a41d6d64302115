//! A loaded executable: replicated execution with arguments checked on the
//! Rust side first (the plugin silently accepts a wrong dtype of the same
//! byte size), outputs flattened from the root tuple, and the optional
//! queries (optimized program, cost analysis, memory statistics, output
//! types and dims, fingerprint) that report absence as
//! [`Error::Unimplemented`] instead of crashing.

use std::sync::Arc;

use prost::Message;

use crate::proto::HloModuleProtoWithConfig;

use super::buffer::Buffer;
use super::client::{Client, ClientInner};
use super::compile::ModuleSignature;
use super::device::Device;
use super::element_type::{ArrayShape, ElementType};
use super::error::{Error, ErrorCode, Result};
use super::event::Event;
use super::ffi::{self, slot, RawBuffer, RawEvent, RawExecutable, RawLoadedExecutable};
use super::host::HostArray;
use super::named_value::{self, NamedValue};
use super::plugin::copy_str;

/// `PJRT_Executable_GetCompiledMemoryStats`, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompiledMemoryStats {
    /// Generated code.
    pub generated_code_size_in_bytes: i64,
    /// Arguments.
    pub argument_size_in_bytes: i64,
    /// Outputs.
    pub output_size_in_bytes: i64,
    /// Outputs aliased to (donated) arguments.
    pub alias_size_in_bytes: i64,
    /// Temporaries.
    pub temp_size_in_bytes: i64,
    /// Host-side generated code.
    pub host_generated_code_size_in_bytes: i64,
    /// Host-side arguments.
    pub host_argument_size_in_bytes: i64,
    /// Host-side outputs.
    pub host_output_size_in_bytes: i64,
    /// Host-side aliases.
    pub host_alias_size_in_bytes: i64,
    /// Host-side temporaries.
    pub host_temp_size_in_bytes: i64,
    /// Peak memory.
    pub peak_memory_in_bytes: i64,
}

/// A compiled module loaded on R devices.
pub struct LoadedExecutable {
    client: Arc<ClientInner>,
    raw: *mut RawLoadedExecutable,
    signature: ModuleSignature,
    num_replicas: usize,
    num_outputs: usize,
    devices: Vec<Device>,
    pub(crate) from_cache: bool,
}

// SAFETY: PJRT loaded executables may be executed and queried from any
// thread; the handle is destroyed once, in `Drop`.
unsafe impl Send for LoadedExecutable {}
// SAFETY: see `Send`.
unsafe impl Sync for LoadedExecutable {}

impl std::fmt::Debug for LoadedExecutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedExecutable")
            .field("name", &self.signature.name)
            .field("num_replicas", &self.num_replicas)
            .field("num_outputs", &self.num_outputs)
            .finish_non_exhaustive()
    }
}

impl Drop for LoadedExecutable {
    fn drop(&mut self) {
        let mut a = ffi::LoadedExecutableDestroyArgs::new();
        a.executable = self.raw;
        let _ = self
            .client
            .plugin
            .call(slot::LOADED_EXECUTABLE_DESTROY, &mut a);
    }
}

/// The unloaded `PJRT_Executable*` of a loaded one, destroyed on drop.
struct ExecutableView<'a> {
    client: &'a ClientInner,
    raw: *mut RawExecutable,
}

impl Drop for ExecutableView<'_> {
    fn drop(&mut self) {
        let mut a = ffi::ExecutableDestroyArgs::new();
        a.executable = self.raw;
        let _ = self.client.plugin.call(slot::EXECUTABLE_DESTROY, &mut a);
    }
}

/// An execution in flight ([`LoadedExecutable::execute_async`]):
/// `outputs[replica][i]` and the devices' completion events.
pub struct Running {
    /// The output buffers, per replica (filled when the devices finish).
    pub outputs: Vec<Vec<Buffer>>,
    events: Vec<Event>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("replicas", &self.outputs.len())
            .field("pending_events", &self.events.len())
            .finish()
    }
}

impl Running {
    /// Waits until every device finished; returns the outputs or the first
    /// device's error.
    pub fn wait(self) -> Result<Vec<Vec<Buffer>>> {
        let Running { outputs, events } = self;
        let mut first_err = None;
        for e in events {
            if let Err(err) = e.wait() {
                first_err.get_or_insert(err);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    }

    /// Splits off the completion events, leaving the outputs to be used
    /// (e.g. as the next step's inputs) while the events are awaited later.
    pub fn into_parts(self) -> (Vec<Vec<Buffer>>, Pending) {
        (self.outputs, Pending(self.events))
    }
}

/// The completion events of an execution whose outputs were taken.
pub struct Pending(Vec<Event>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({} events)", self.0.len())
    }
}

impl Pending {
    /// Waits for the devices; the first device's error, if any.
    pub fn wait(self) -> Result<()> {
        let mut first_err = None;
        for e in self.0 {
            if let Err(err) = e.wait() {
                first_err.get_or_insert(err);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl LoadedExecutable {
    /// Takes ownership of a freshly compiled executable and reads its
    /// output count and devices.
    pub(crate) fn new(
        client: &Client,
        raw: *mut RawLoadedExecutable,
        signature: ModuleSignature,
        num_replicas: usize,
    ) -> Result<LoadedExecutable> {
        if raw.is_null() {
            return Err(Error::Pjrt {
                function: "PJRT_Client_Compile",
                code: ErrorCode::Internal,
                message: "returned no executable".into(),
            });
        }
        let mut exe = LoadedExecutable {
            client: client.inner.clone(),
            raw,
            signature,
            num_replicas,
            num_outputs: 0,
            from_cache: false,
            devices: Vec::new(),
        };
        exe.num_outputs = {
            let view = exe.view()?;
            let mut n = ffi::ExecutableCountArgs::new();
            n.executable = view.raw;
            exe.client
                .plugin
                .call(slot::EXECUTABLE_NUM_OUTPUTS, &mut n)?;
            n.value
        };
        let mut d = ffi::LoadedExecutableDevicesArgs::new();
        d.executable = raw;
        exe.client
            .plugin
            .call(slot::LOADED_EXECUTABLE_ADDRESSABLE_DEVICES, &mut d)?;
        // SAFETY: `num_devices` device pointers owned by the live client.
        let raws = unsafe { copy_array(d.devices, d.num_devices) };
        exe.devices = raws
            .into_iter()
            .map(|r| {
                client
                    .devices()
                    .iter()
                    .find(|dev| dev.raw == r)
                    .cloned()
                    .map_or_else(|| Device::describe(&exe.client.plugin, r), Ok)
            })
            .collect::<Result<Vec<_>>>()?;
        // In a multi-process job each process holds only its replicas.
        let expected = if client.num_global_devices() > client.devices().len() {
            exe.devices.len().min(num_replicas).max(1)
        } else {
            num_replicas
        };
        if exe.devices.len() != expected {
            return Err(Error::InvalidArgument(format!(
                "module '{}' was compiled for {num_replicas} replicas but runs on {} devices",
                exe.signature.name,
                exe.devices.len()
            )));
        }
        Ok(exe)
    }

    fn view(&self) -> Result<ExecutableView<'_>> {
        let mut a = ffi::LoadedExecutableGetExecutableArgs::new();
        a.loaded_executable = self.raw;
        self.client
            .plugin
            .call(slot::LOADED_EXECUTABLE_GET_EXECUTABLE, &mut a)?;
        Ok(ExecutableView {
            client: &self.client,
            raw: a.executable,
        })
    }

    /// The plugin's serialization of this executable
    /// (`PJRT_Executable_Serialize`), which the same plugin build loads
    /// back without compiling (see [`super::cache`]).
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let view = self.view()?;
        let mut a = ffi::ExecutableSerializeArgs::new();
        a.executable = view.raw;
        self.client
            .plugin
            .call(slot::EXECUTABLE_SERIALIZE, &mut a)?;
        let bytes = if a.serialized_bytes.is_null() {
            Vec::new()
        } else {
            // SAFETY: the plugin returned `serialized_bytes_size` bytes that
            // live until the deleter below runs.
            unsafe {
                std::slice::from_raw_parts(a.serialized_bytes.cast::<u8>(), a.serialized_bytes_size)
            }
            .to_vec()
        };
        if let Some(delete) = a.serialized_executable_deleter {
            // SAFETY: called once, on the object the plugin returned.
            unsafe { delete(a.serialized_executable) };
        }
        if bytes.is_empty() {
            return Err(Error::Pjrt {
                function: "PJRT_Executable_Serialize",
                code: ErrorCode::Internal,
                message: "returned no bytes".into(),
            });
        }
        Ok(bytes)
    }

    /// Whether this executable was loaded from the compilation cache
    /// instead of compiled.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// Module name.
    pub fn name(&self) -> &str {
        &self.signature.name
    }

    /// Number of replicas R (= number of argument lists execute takes).
    pub fn num_replicas(&self) -> usize {
        self.num_replicas
    }

    /// Number of outputs per replica (a root tuple is flattened).
    pub fn num_outputs(&self) -> usize {
        self.num_outputs
    }

    /// The devices the replicas run on: argument list r goes to `devices()[r]`.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The entry parameters every replica's arguments must match.
    pub fn parameters(&self) -> &[ArrayShape] {
        &self.signature.parameters
    }

    /// Per parameter: whether an execute consumes (donates) the buffer passed.
    pub fn donated_parameters(&self) -> &[bool] {
        &self.signature.donated
    }

    /// Checks `args` (one list per replica) against the module's parameters
    /// and the replica devices, without calling the plugin.
    pub fn check_arguments<'a, L: AsRef<[&'a Buffer]>>(&self, args: &[L]) -> Result<()> {
        if args.len() != self.devices.len() {
            return Err(Error::InvalidArgument(format!(
                "module '{}' runs on {} replicas, got {} argument lists",
                self.signature.name,
                self.devices.len(),
                args.len()
            )));
        }
        let params = &self.signature.parameters;
        for (replica, list) in args.iter().enumerate() {
            let list = list.as_ref();
            if list.len() != params.len() {
                return Err(Error::InvalidArgument(format!(
                    "module '{}' takes {} arguments, replica {replica} got {}",
                    self.signature.name,
                    params.len(),
                    list.len()
                )));
            }
            for (index, (buffer, param)) in list.iter().zip(params).enumerate() {
                if buffer.shape() != param {
                    return Err(Error::ArgumentMismatch {
                        replica,
                        index,
                        expected: param.to_string(),
                        got: buffer.shape().to_string(),
                    });
                }
                let device = &self.devices[replica];
                if !buffer.device.is_null() && buffer.device != device.raw {
                    return Err(Error::ArgumentMismatch {
                        replica,
                        index,
                        expected: format!("a buffer on {device}"),
                        got: "a buffer on another device".into(),
                    });
                }
                if buffer.is_deleted()? {
                    return Err(Error::ArgumentMismatch {
                        replica,
                        index,
                        expected: param.to_string(),
                        got: "a deleted buffer (donated to an earlier execution)".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs all replicas: `args[r]` are the arguments of replica r (on
    /// `devices()[r]`). Returns `outputs[r][i]`, output i of replica r.
    /// Donated parameters (see [`LoadedExecutable::donated_parameters`]) are
    /// consumed: their buffers stay valid handles but reading them fails.
    ///
    /// Errors: [`Error::ArgumentMismatch`] / [`Error::InvalidArgument`] from
    /// the checks, [`Error::Pjrt`] from the plugin.
    pub fn execute<'a, L: AsRef<[&'a Buffer]>>(&self, args: &[L]) -> Result<Vec<Vec<Buffer>>> {
        self.execute_impl(args, false)
    }

    /// Like [`LoadedExecutable::execute`], but no input is donated
    /// (`non_donatable_input_indices` lists every donated parameter): the
    /// inputs stay readable and the outputs get fresh memory.
    pub fn execute_keeping_inputs<'a, L: AsRef<[&'a Buffer]>>(
        &self,
        args: &[L],
    ) -> Result<Vec<Vec<Buffer>>> {
        self.execute_impl(args, true)
    }

    fn execute_impl<'a, L: AsRef<[&'a Buffer]>>(
        &self,
        args: &[L],
        keep_inputs: bool,
    ) -> Result<Vec<Vec<Buffer>>> {
        self.launch(args, keep_inputs)?.wait()
    }

    /// Starts the program and returns at once: the outputs are handles the
    /// runtime fills when the devices finish (they can be passed to the
    /// next execution right away; reading one waits for it). Donated inputs
    /// are consumed. Errors of the run itself surface in
    /// [`Running::wait`].
    pub fn execute_async<'a, L: AsRef<[&'a Buffer]>>(&self, args: &[L]) -> Result<Running> {
        self.launch(args, false)
    }

    fn launch<'a, L: AsRef<[&'a Buffer]>>(&self, args: &[L], keep_inputs: bool) -> Result<Running> {
        self.check_arguments(args)?;
        let num_devices = self.devices.len();
        let num_args = self.signature.parameters.len();
        let arg_ptrs: Vec<Vec<*mut RawBuffer>> = args
            .iter()
            .map(|l| l.as_ref().iter().map(|b| b.raw).collect())
            .collect();
        let arg_lists: Vec<*const *mut RawBuffer> = arg_ptrs.iter().map(|l| l.as_ptr()).collect();
        let mut out_ptrs: Vec<Vec<*mut RawBuffer>> = (0..num_devices)
            .map(|_| vec![std::ptr::null_mut(); self.num_outputs])
            .collect();
        let out_lists: Vec<*mut *mut RawBuffer> =
            out_ptrs.iter_mut().map(|l| l.as_mut_ptr()).collect();
        let mut events: Vec<*mut RawEvent> = vec![std::ptr::null_mut(); num_devices];

        let non_donatable: Vec<i64> = if keep_inputs {
            (0i64..)
                .zip(&self.signature.donated)
                .filter(|(_, &d)| d)
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        let mut options = ffi::ExecuteOptions::new();
        if !non_donatable.is_empty() {
            options.non_donatable_input_indices = non_donatable.as_ptr();
            options.num_non_donatable_input_indices = non_donatable.len();
        }
        let mut a = ffi::ExecuteArgs::new();
        a.executable = self.raw;
        a.options = &mut options;
        a.argument_lists = arg_lists.as_ptr();
        a.num_devices = num_devices;
        a.num_args = num_args;
        a.output_lists = out_lists.as_ptr();
        a.device_complete_events = events.as_mut_ptr();
        let status = self
            .client
            .plugin
            .call(slot::LOADED_EXECUTABLE_EXECUTE, &mut a);

        // Own everything the plugin handed out before looking at the status.
        let plugin = &self.client.plugin;
        let owned_events: Vec<Event> = events
            .iter()
            .filter_map(|&e| Event::from_raw(plugin, e))
            .collect();
        let mut outputs: Vec<Vec<Result<Buffer>>> = out_ptrs
            .iter()
            .map(|l| {
                l.iter()
                    .filter(|p| !p.is_null())
                    .map(|&p| Buffer::from_raw_query(&self.client, p))
                    .collect()
            })
            .collect();
        status?;
        let mut result = Vec::with_capacity(num_devices);
        for (r, list) in outputs.drain(..).enumerate() {
            if list.len() != self.num_outputs {
                return Err(Error::Pjrt {
                    function: "PJRT_LoadedExecutable_Execute",
                    code: ErrorCode::Internal,
                    message: format!(
                        "replica {r} returned {} of {} outputs",
                        list.len(),
                        self.num_outputs
                    ),
                });
            }
            result.push(list.into_iter().collect::<Result<Vec<_>>>()?);
        }
        Ok(Running {
            outputs: result,
            events: owned_events,
        })
    }

    /// Uploads `args[r]` to `devices()[r]`, runs, and copies every output
    /// back: `outputs[r][i]`.
    pub fn execute_host(&self, args: &[Vec<HostArray>]) -> Result<Vec<Vec<HostArray>>> {
        if args.len() != self.devices.len() {
            return Err(Error::InvalidArgument(format!(
                "module '{}' runs on {} replicas, got {} argument lists",
                self.signature.name,
                self.devices.len(),
                args.len()
            )));
        }
        let buffers = args
            .iter()
            .zip(&self.devices)
            .map(|(list, device)| {
                list.iter()
                    .map(|a| self.client.upload(a, device.raw))
                    .collect()
            })
            .collect::<Result<Vec<Vec<Buffer>>>>()?;
        let refs: Vec<Vec<&Buffer>> = buffers.iter().map(|l| l.iter().collect()).collect();
        let outputs = self.execute(&refs)?;
        outputs
            .iter()
            .map(|l| l.iter().map(Buffer::to_host).collect())
            .collect()
    }

    /// `PJRT_Executable_OptimizedProgram`, parsed (format `hlo_with_config`).
    pub fn optimized_program(&self) -> Result<HloModuleProtoWithConfig> {
        let view = self.view()?;
        let plugin = &self.client.plugin;
        let mut program = ffi::RawProgram {
            struct_size: ffi::PROGRAM_SIZE,
            extension_start: std::ptr::null_mut(),
            code: std::ptr::null_mut(),
            code_size: 0,
            format: std::ptr::null(),
            format_size: 0,
        };
        let mut a = ffi::ExecutableOptimizedProgramArgs::new();
        a.executable = view.raw;
        a.program = &mut program;
        plugin.call(slot::EXECUTABLE_OPTIMIZED_PROGRAM, &mut a)?;
        // SAFETY: `format` points to the plugin's own string (or is NULL).
        let format = unsafe { copy_str(program.format, program.format_size) };
        if format != "hlo_with_config" && format != "hlo" {
            return Err(Error::Unimplemented {
                function: "PJRT_Executable_OptimizedProgram",
                reason: format!("program format '{format}' is not an HLO proto"),
            });
        }
        let mut code = vec![0u8; program.code_size];
        program.code = code.as_mut_ptr().cast();
        let mut a = ffi::ExecutableOptimizedProgramArgs::new();
        a.executable = view.raw;
        a.program = &mut program;
        plugin.call(slot::EXECUTABLE_OPTIMIZED_PROGRAM, &mut a)?;
        code.truncate(program.code_size);
        if format == "hlo" {
            let module =
                crate::proto::HloModuleProto::decode(code.as_slice()).map_err(|source| {
                    Error::Decode {
                        what: "optimized HloModuleProto",
                        source,
                    }
                })?;
            return Ok(HloModuleProtoWithConfig {
                hlo_module: Some(module),
            });
        }
        HloModuleProtoWithConfig::decode(code.as_slice()).map_err(|source| Error::Decode {
            what: "HloModuleProtoWithConfig",
            source,
        })
    }

    /// `PJRT_Executable_GetCostAnalysis`: `flops`, `transcendentals`,
    /// `bytes accessed` ... (UNIMPLEMENTED on newer CPU plugins).
    pub fn cost_analysis(&self) -> Result<Vec<NamedValue>> {
        let view = self.view()?;
        let mut a = ffi::ExecutableCostAnalysisArgs::new();
        a.executable = view.raw;
        self.client
            .plugin
            .call(slot::EXECUTABLE_GET_COST_ANALYSIS, &mut a)?;
        // SAFETY: the properties are owned by the executable `view`, which
        // is alive until the end of this function; they are copied here.
        Ok(unsafe { named_value::copy_list(a.properties, a.num_properties) })
    }

    /// `PJRT_Executable_GetCompiledMemoryStats`.
    pub fn memory_stats(&self) -> Result<CompiledMemoryStats> {
        let view = self.view()?;
        let mut a = ffi::ExecutableMemoryStatsArgs::new();
        a.executable = view.raw;
        self.client
            .plugin
            .call(slot::EXECUTABLE_GET_COMPILED_MEMORY_STATS, &mut a)?;
        Ok(CompiledMemoryStats {
            generated_code_size_in_bytes: a.generated_code_size_in_bytes,
            argument_size_in_bytes: a.argument_size_in_bytes,
            output_size_in_bytes: a.output_size_in_bytes,
            alias_size_in_bytes: a.alias_size_in_bytes,
            temp_size_in_bytes: a.temp_size_in_bytes,
            host_generated_code_size_in_bytes: a.host_generated_code_size_in_bytes,
            host_argument_size_in_bytes: a.host_argument_size_in_bytes,
            host_output_size_in_bytes: a.host_output_size_in_bytes,
            host_alias_size_in_bytes: a.host_alias_size_in_bytes,
            host_temp_size_in_bytes: a.host_temp_size_in_bytes,
            peak_memory_in_bytes: a.peak_memory_in_bytes,
        })
    }

    /// `PJRT_Executable_OutputElementTypes` and `PJRT_Executable_OutputDimensions`.
    pub fn output_shapes(&self) -> Result<Vec<ArrayShape>> {
        let view = self.view()?;
        let plugin = &self.client.plugin;
        let mut t = ffi::ExecutableOutputTypesArgs::new();
        t.executable = view.raw;
        plugin.call(slot::EXECUTABLE_OUTPUT_ELEMENT_TYPES, &mut t)?;
        // SAFETY: `num_output_types` values owned by `view`; copied at once.
        let types: Vec<i32> = unsafe { copy_array(t.output_types, t.num_output_types) };
        let mut d = ffi::ExecutableOutputDimsArgs::new();
        d.executable = view.raw;
        plugin.call(slot::EXECUTABLE_OUTPUT_DIMENSIONS, &mut d)?;
        // SAFETY: one rank per output, owned by `view`.
        let ranks: Vec<usize> = unsafe { copy_array(d.dim_sizes, d.num_outputs) };
        let total: usize = ranks.iter().sum();
        // SAFETY: the concatenated dims of all outputs, owned by `view`.
        let dims: Vec<i64> = unsafe { copy_array(d.dims, total) };
        if types.len() != ranks.len() {
            return Err(Error::InvalidArgument(format!(
                "plugin reports {} output types but {} output ranks",
                types.len(),
                ranks.len()
            )));
        }
        let mut offset = 0;
        types
            .iter()
            .zip(&ranks)
            .map(|(&ty, &rank)| {
                let element_type = ElementType::from_pjrt(ty).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "output has PJRT element type {ty}, which simclr does not handle"
                    ))
                })?;
                let shape_dims = dims.get(offset..offset + rank).ok_or_else(|| {
                    Error::InvalidArgument("plugin reports fewer output dims than ranks".into())
                })?;
                let shape = ArrayShape::new(element_type, shape_dims.to_vec());
                offset += rank;
                Ok(shape)
            })
            .collect()
    }

    /// `PJRT_Executable_Fingerprint` (a plugin-specific string).
    pub fn fingerprint(&self) -> Result<String> {
        let view = self.view()?;
        let mut a = ffi::ExecutableStringArgs::new();
        a.executable = view.raw;
        self.client
            .plugin
            .call(slot::EXECUTABLE_FINGERPRINT, &mut a)?;
        // SAFETY: owned by `view`; copied at once.
        Ok(unsafe { copy_str(a.value, a.value_size) })
    }
}

/// Copies `len` values from a plugin-owned array (empty when null or 0).
///
/// # Safety
/// A non-null `ptr` must point at `len` initialised values that stay valid
/// for the duration of the call.
unsafe fn copy_array<T: Copy>(ptr: *const T, len: usize) -> Vec<T> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}
