//! Raw PJRT C API declarations: opaque handles, the argument structs simclr
//! passes, and the function-table slot indices of PJRT API 0.81.
//!
//! Owns layout facts only (no logic): every struct here mirrors the C header
//! field for field. Argument structs carry the header's `struct_size`
//! (`offsetof(last field) + sizeof(last field)`, which can be smaller than
//! `size_of`). Safe wrappers live in the sibling files.

use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};

/// The PJRT API major version simclr's structs were written against.
pub const API_MAJOR: i32 = 0;
/// The PJRT API minor version simclr's structs were written against.
pub const API_MINOR: i32 = 81;
/// Byte offset of the first function slot in `PJRT_Api`.
pub const API_TABLE_OFFSET: usize = 40;

/// Opaque `PJRT_Error`.
#[repr(C)]
pub struct RawError {
    _private: [u8; 0],
}
/// Opaque `PJRT_Client`.
#[repr(C)]
pub struct RawClient {
    _private: [u8; 0],
}
/// Opaque `PJRT_Device`.
#[repr(C)]
pub struct RawDevice {
    _private: [u8; 0],
}
/// Opaque `PJRT_DeviceDescription`.
#[repr(C)]
pub struct RawDeviceDescription {
    _private: [u8; 0],
}
/// Opaque `PJRT_Event`.
#[repr(C)]
pub struct RawEvent {
    _private: [u8; 0],
}
/// Opaque `PJRT_Buffer`.
#[repr(C)]
pub struct RawBuffer {
    _private: [u8; 0],
}
/// Opaque `PJRT_LoadedExecutable`.
#[repr(C)]
pub struct RawLoadedExecutable {
    _private: [u8; 0],
}
/// Opaque `PJRT_Executable`.
#[repr(C)]
pub struct RawExecutable {
    _private: [u8; 0],
}

/// `PJRT_Extension_Base`: a node of the extension list.
#[repr(C)]
pub struct ExtensionBase {
    /// Size of the extension struct.
    pub struct_size: usize,
    /// `PJRT_Extension_Type`.
    pub kind: c_int,
    /// Next extension, or NULL.
    pub next: *mut ExtensionBase,
}

/// `PJRT_Api_Version`.
#[repr(C)]
pub struct ApiVersion {
    /// Size of this struct.
    pub struct_size: usize,
    /// Always NULL.
    pub extension_start: *mut ExtensionBase,
    /// Major version; must equal [`API_MAJOR`].
    pub major_version: c_int,
    /// Minor version; may differ.
    pub minor_version: c_int,
}

/// The head of `PJRT_Api`; the function table follows at [`API_TABLE_OFFSET`].
#[repr(C)]
pub struct ApiHeader {
    /// Size of the whole `PJRT_Api` struct of the plugin.
    pub struct_size: usize,
    /// Extension list.
    pub extension_start: *mut ExtensionBase,
    /// API version of the plugin.
    pub pjrt_api_version: ApiVersion,
}

/// Every PJRT function takes a pointer to its argument struct and returns an
/// owned `PJRT_Error*` (NULL on success).
pub type RawFn = unsafe extern "C" fn(*mut c_void) -> *mut RawError;

/// `PJRT_Error_Destroy` and `PJRT_Error_Message` return nothing.
pub type RawVoidFn = unsafe extern "C" fn(*mut c_void);

/// `PJRT_NamedValue_Type`.
pub mod named_value_type {
    /// `PJRT_NamedValue_kString`.
    pub const STRING: i32 = 0;
    /// `PJRT_NamedValue_kInt64`.
    pub const INT64: i32 = 1;
    /// `PJRT_NamedValue_kInt64List`.
    pub const INT64_LIST: i32 = 2;
    /// `PJRT_NamedValue_kFloat` (an f32).
    pub const FLOAT: i32 = 3;
    /// `PJRT_NamedValue_kBool`.
    pub const BOOL: i32 = 4;
}

/// The value union of `PJRT_NamedValue` (8 bytes at offset 40).
#[repr(C)]
#[derive(Clone, Copy)]
pub union NamedValueUnion {
    /// For `STRING`: not NUL-terminated, `value_size` bytes.
    pub string_value: *const c_char,
    /// For `INT64`.
    pub int64_value: i64,
    /// For `INT64_LIST`: `value_size` elements.
    pub int64_array_value: *const i64,
    /// For `FLOAT`.
    pub float_value: f32,
    /// For `BOOL`.
    pub bool_value: bool,
}

/// `PJRT_NamedValue` (56 bytes).
#[repr(C)]
pub struct RawNamedValue {
    /// 56.
    pub struct_size: usize,
    /// NULL.
    pub extension_start: *mut ExtensionBase,
    /// Not NUL-terminated.
    pub name: *const c_char,
    /// Bytes in `name`.
    pub name_size: usize,
    /// One of [`named_value_type`].
    pub kind: c_int,
    /// The value.
    pub value: NamedValueUnion,
    /// Element count for strings and lists, 1 for scalars.
    pub value_size: usize,
}

/// `sizeof(PJRT_NamedValue)` at 0.81.
pub const NAMED_VALUE_SIZE: usize = offset_of!(RawNamedValue, value_size) + size_of::<usize>();

/// `PJRT_Program`.
#[repr(C)]
pub struct RawProgram {
    /// 48.
    pub struct_size: usize,
    /// NULL.
    pub extension_start: *mut ExtensionBase,
    /// Program bytes (in for compile; out buffer for OptimizedProgram).
    pub code: *mut c_char,
    /// Bytes in `code`.
    pub code_size: usize,
    /// Format name, not NUL-terminated.
    pub format: *const c_char,
    /// Bytes in `format`.
    pub format_size: usize,
}

/// `sizeof(PJRT_Program)` at 0.81.
pub const PROGRAM_SIZE: usize = offset_of!(RawProgram, format_size) + size_of::<usize>();

/// Argument structs: each starts with `struct_size` and `extension_start`.
/// `args!` writes the struct and its `STRUCT_SIZE` (up to the end of the
/// named last field) and a zeroed constructor.
macro_rules! args {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } last $last:ident : $lty:ty) => {
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            /// The header's struct size for this struct.
            pub struct_size: usize,
            /// NULL: simclr passes no extensions.
            pub extension_start: *mut ExtensionBase,
            $(
                #[allow(missing_docs)]
                pub $field: $ty,
            )*
        }

        impl $name {
            /// `offsetof(last field) + sizeof(last field)` of the 0.81 header.
            pub const STRUCT_SIZE: usize = offset_of!($name, $last) + size_of::<$lty>();

            /// A zeroed struct with `struct_size` set.
            pub fn new() -> Self {
                // SAFETY: every field is an integer, a bool, a raw pointer,
                // or an `Option` of a fn pointer; all-zero bytes are a valid
                // value for each (0, false, NULL, None).
                let mut args: Self = unsafe { std::mem::zeroed() };
                args.struct_size = Self::STRUCT_SIZE;
                args
            }
        }
    };
}

args!(
    /// `PJRT_Error_Destroy_Args`.
    ErrorDestroyArgs { error: *mut RawError } last error: *mut RawError
);
args!(
    /// `PJRT_Error_Message_Args`.
    ErrorMessageArgs { error: *const RawError, message: *const c_char, message_size: usize }
    last message_size: usize
);
args!(
    /// `PJRT_Error_GetCode_Args`.
    ErrorGetCodeArgs { error: *const RawError, code: c_int } last code: c_int
);
args!(
    /// `PJRT_Plugin_Initialize_Args`.
    PluginInitializeArgs { } last extension_start: *mut ExtensionBase
);
args!(
    /// `PJRT_Plugin_Attributes_Args`.
    PluginAttributesArgs { attributes: *const RawNamedValue, num_attributes: usize }
    last num_attributes: usize
);
args!(
    /// `PJRT_Event_Destroy_Args` (also `PJRT_Event_Await_Args`).
    EventArgs { event: *mut RawEvent } last event: *mut RawEvent
);
args!(
    /// `PJRT_Client_Create_Args`.
    ClientCreateArgs {
        create_options: *const RawNamedValue,
        num_options: usize,
        kv_get_callback: *mut c_void,
        kv_get_user_arg: *mut c_void,
        kv_put_callback: *mut c_void,
        kv_put_user_arg: *mut c_void,
        client: *mut RawClient,
        kv_try_get_callback: *mut c_void,
        kv_try_get_user_arg: *mut c_void,
    }
    last kv_try_get_user_arg: *mut c_void
);
args!(
    /// `PJRT_Client_Destroy_Args`.
    ClientDestroyArgs { client: *mut RawClient } last client: *mut RawClient
);
args!(
    /// `PJRT_Client_PlatformName_Args` and `PJRT_Client_PlatformVersion_Args`
    /// (same layout: client, then a string out).
    ClientStringArgs { client: *mut RawClient, value: *const c_char, value_size: usize }
    last value_size: usize
);
args!(
    /// `PJRT_Client_Devices_Args` and `PJRT_Client_AddressableDevices_Args`.
    ClientDevicesArgs { client: *mut RawClient, devices: *const *mut RawDevice, num_devices: usize }
    last num_devices: usize
);
args!(
    /// `PJRT_Device_GetDescription_Args`.
    DeviceGetDescriptionArgs { device: *mut RawDevice, description: *mut RawDeviceDescription }
    last description: *mut RawDeviceDescription
);
args!(
    /// `PJRT_Device_MemoryStats_Args` (every `*_is_set` flag follows its value).
    DeviceMemoryStatsArgs {
        device: *mut RawDevice,
        bytes_in_use: i64,
        peak_bytes_in_use: i64,
        peak_bytes_in_use_is_set: bool,
        num_allocs: i64,
        num_allocs_is_set: bool,
        largest_alloc_size: i64,
        largest_alloc_size_is_set: bool,
        bytes_limit: i64,
        bytes_limit_is_set: bool,
        bytes_reserved: i64,
        bytes_reserved_is_set: bool,
        peak_bytes_reserved: i64,
        peak_bytes_reserved_is_set: bool,
        bytes_reservable_limit: i64,
        bytes_reservable_limit_is_set: bool,
        largest_free_block_bytes: i64,
        largest_free_block_bytes_is_set: bool,
        pool_bytes: i64,
        pool_bytes_is_set: bool,
        peak_pool_bytes: i64,
        peak_pool_bytes_is_set: bool,
    }
    last peak_pool_bytes_is_set: bool
);
args!(
    /// `PJRT_DeviceDescription_Id_Args` and `_ProcessIndex_Args`.
    DeviceDescriptionIntArgs { description: *mut RawDeviceDescription, value: c_int }
    last value: c_int
);
args!(
    /// `PJRT_DeviceDescription_Kind_Args`, `_ToString_Args`, `_DebugString_Args`.
    DeviceDescriptionStringArgs {
        description: *mut RawDeviceDescription,
        value: *const c_char,
        value_size: usize,
    }
    last value_size: usize
);
args!(
    /// `PJRT_Client_Compile_Args`.
    ClientCompileArgs {
        client: *mut RawClient,
        program: *const RawProgram,
        compile_options: *const c_char,
        compile_options_size: usize,
        executable: *mut RawLoadedExecutable,
    }
    last executable: *mut RawLoadedExecutable
);
args!(
    /// `PJRT_Client_BufferFromHostBuffer_Args`.
    BufferFromHostArgs {
        client: *mut RawClient,
        data: *const c_void,
        buffer_type: c_int,
        dims: *const i64,
        num_dims: usize,
        byte_strides: *const i64,
        num_byte_strides: usize,
        host_buffer_semantics: c_int,
        device: *mut RawDevice,
        memory: *mut c_void,
        device_layout: *mut c_void,
        done_with_host_buffer: *mut RawEvent,
        buffer: *mut RawBuffer,
    }
    last buffer: *mut RawBuffer
);
args!(
    /// `PJRT_ExecuteOptions`.
    ExecuteOptions {
        send_callbacks: *mut c_void,
        recv_callbacks: *mut c_void,
        num_send_ops: usize,
        num_recv_ops: usize,
        launch_id: c_int,
        non_donatable_input_indices: *const i64,
        num_non_donatable_input_indices: usize,
        context: *mut c_void,
        call_location: *const c_char,
        num_tasks: usize,
        task_ids: *mut c_int,
        incarnation_ids: *mut i64,
    }
    last incarnation_ids: *mut i64
);
args!(
    /// `PJRT_LoadedExecutable_Execute_Args`.
    ExecuteArgs {
        executable: *mut RawLoadedExecutable,
        options: *mut ExecuteOptions,
        argument_lists: *const *const *mut RawBuffer,
        num_devices: usize,
        num_args: usize,
        output_lists: *const *mut *mut RawBuffer,
        device_complete_events: *mut *mut RawEvent,
        execute_device: *mut RawDevice,
    }
    last execute_device: *mut RawDevice
);
args!(
    /// `PJRT_Buffer_ToHostBuffer_Args`.
    BufferToHostArgs {
        src: *mut RawBuffer,
        host_layout: *mut c_void,
        dst: *mut c_void,
        dst_size: usize,
        event: *mut RawEvent,
    }
    last event: *mut RawEvent
);
args!(
    /// `PJRT_Buffer_Destroy_Args`.
    BufferDestroyArgs { buffer: *mut RawBuffer } last buffer: *mut RawBuffer
);
args!(
    /// `PJRT_Buffer_Dimensions_Args`.
    BufferDimensionsArgs { buffer: *mut RawBuffer, dims: *const i64, num_dims: usize }
    last num_dims: usize
);
args!(
    /// `PJRT_Buffer_ElementType_Args`.
    BufferElementTypeArgs { buffer: *mut RawBuffer, buffer_type: c_int } last buffer_type: c_int
);
args!(
    /// `PJRT_Buffer_IsDeleted_Args`.
    BufferIsDeletedArgs { buffer: *mut RawBuffer, is_deleted: bool } last is_deleted: bool
);
args!(
    /// `PJRT_Buffer_Device_Args`.
    BufferDeviceArgs { buffer: *mut RawBuffer, device: *mut RawDevice } last device: *mut RawDevice
);
args!(
    /// `PJRT_LoadedExecutable_Destroy_Args`.
    LoadedExecutableDestroyArgs { executable: *mut RawLoadedExecutable }
    last executable: *mut RawLoadedExecutable
);
args!(
    /// `PJRT_LoadedExecutable_GetExecutable_Args`.
    LoadedExecutableGetExecutableArgs {
        loaded_executable: *mut RawLoadedExecutable,
        executable: *mut RawExecutable,
    }
    last executable: *mut RawExecutable
);
args!(
    /// `PJRT_LoadedExecutable_AddressableDevices_Args`.
    LoadedExecutableDevicesArgs {
        executable: *mut RawLoadedExecutable,
        devices: *const *mut RawDevice,
        num_devices: usize,
    }
    last num_devices: usize
);
args!(
    /// `PJRT_Executable_Destroy_Args`.
    ExecutableDestroyArgs { executable: *mut RawExecutable } last executable: *mut RawExecutable
);
args!(
    /// `PJRT_Executable_Name_Args` and `PJRT_Executable_Fingerprint_Args`.
    ExecutableStringArgs { executable: *mut RawExecutable, value: *const c_char, value_size: usize }
    last value_size: usize
);
args!(
    /// `PJRT_Executable_NumOutputs_Args`, `_NumReplicas_Args`, `_NumPartitions_Args`.
    ExecutableCountArgs { executable: *mut RawExecutable, value: usize } last value: usize
);
args!(
    /// `PJRT_Executable_OptimizedProgram_Args`.
    ExecutableOptimizedProgramArgs { executable: *mut RawExecutable, program: *mut RawProgram }
    last program: *mut RawProgram
);
args!(
    /// `PJRT_Executable_Serialize_Args`: the bytes live until
    /// `serialized_executable_deleter(serialized_executable)` is called.
    ExecutableSerializeArgs {
        executable: *const RawExecutable,
        serialized_bytes: *const c_char,
        serialized_bytes_size: usize,
        serialized_executable: *mut c_void,
        serialized_executable_deleter: Option<unsafe extern "C" fn(*mut c_void)>,
    }
    last serialized_executable_deleter: Option<unsafe extern "C" fn(*mut c_void)>
);
args!(
    /// `PJRT_Executable_DeserializeAndLoad_Args` of the 0.81 header (the
    /// compile-options override is left NULL: the serialized options hold).
    ExecutableDeserializeArgs {
        client: *mut RawClient,
        serialized_executable: *const c_char,
        serialized_executable_size: usize,
        loaded_executable: *mut RawLoadedExecutable,
        overridden_serialized_compile_options: *const c_char,
        overridden_serialized_compile_options_size: usize,
    }
    last overridden_serialized_compile_options_size: usize
);
args!(
    /// `PJRT_Executable_GetCostAnalysis_Args`.
    ExecutableCostAnalysisArgs {
        executable: *mut RawExecutable,
        num_properties: usize,
        properties: *const RawNamedValue,
    }
    last properties: *const RawNamedValue
);
args!(
    /// `PJRT_Executable_GetCompiledMemoryStats_Args`.
    ExecutableMemoryStatsArgs {
        executable: *mut RawExecutable,
        generated_code_size_in_bytes: i64,
        argument_size_in_bytes: i64,
        output_size_in_bytes: i64,
        alias_size_in_bytes: i64,
        temp_size_in_bytes: i64,
        host_generated_code_size_in_bytes: i64,
        host_argument_size_in_bytes: i64,
        host_output_size_in_bytes: i64,
        host_alias_size_in_bytes: i64,
        host_temp_size_in_bytes: i64,
        peak_memory_in_bytes: i64,
    }
    last peak_memory_in_bytes: i64
);
args!(
    /// `PJRT_Executable_OutputElementTypes_Args`.
    ExecutableOutputTypesArgs {
        executable: *mut RawExecutable,
        output_types: *const c_int,
        num_output_types: usize,
    }
    last num_output_types: usize
);
args!(
    /// `PJRT_Executable_OutputDimensions_Args`.
    ExecutableOutputDimsArgs {
        executable: *mut RawExecutable,
        num_outputs: usize,
        dims: *const i64,
        dim_sizes: *const usize,
    }
    last dim_sizes: *const usize
);

/// `PJRT_HostBufferSemantics_kImmutableOnlyDuringCall`: the plugin copies the
/// host data before `BufferFromHostBuffer` returns.
pub const HOST_BUFFER_IMMUTABLE_ONLY_DURING_CALL: c_int = 0;

/// Function-table slot indices of PJRT API 0.81 (header order; stable
/// across minor versions, newer functions are appended).
#[allow(missing_docs)]
pub mod slot {
    pub const ERROR_DESTROY: usize = 0;
    pub const ERROR_MESSAGE: usize = 1;
    pub const ERROR_GET_CODE: usize = 2;
    pub const PLUGIN_INITIALIZE: usize = 3;
    pub const PLUGIN_ATTRIBUTES: usize = 4;
    pub const EVENT_DESTROY: usize = 5;
    pub const EVENT_AWAIT: usize = 8;
    pub const CLIENT_CREATE: usize = 10;
    pub const CLIENT_DESTROY: usize = 11;
    pub const CLIENT_PLATFORM_NAME: usize = 12;
    pub const CLIENT_PLATFORM_VERSION: usize = 14;
    pub const CLIENT_DEVICES: usize = 15;
    pub const CLIENT_ADDRESSABLE_DEVICES: usize = 16;
    pub const CLIENT_COMPILE: usize = 20;
    pub const CLIENT_BUFFER_FROM_HOST_BUFFER: usize = 22;
    pub const DEVICE_DESCRIPTION_ID: usize = 23;
    pub const DEVICE_DESCRIPTION_PROCESS_INDEX: usize = 24;
    pub const DEVICE_DESCRIPTION_KIND: usize = 26;
    pub const DEVICE_DESCRIPTION_DEBUG_STRING: usize = 27;
    pub const DEVICE_DESCRIPTION_TO_STRING: usize = 28;
    pub const DEVICE_GET_DESCRIPTION: usize = 29;
    pub const DEVICE_MEMORY_STATS: usize = 34;
    pub const EXECUTABLE_DESTROY: usize = 40;
    pub const EXECUTABLE_NAME: usize = 41;
    pub const EXECUTABLE_NUM_REPLICAS: usize = 42;
    pub const EXECUTABLE_NUM_PARTITIONS: usize = 43;
    pub const EXECUTABLE_NUM_OUTPUTS: usize = 44;
    pub const EXECUTABLE_GET_COST_ANALYSIS: usize = 46;
    pub const EXECUTABLE_OPTIMIZED_PROGRAM: usize = 48;
    pub const EXECUTABLE_SERIALIZE: usize = 49;
    pub const LOADED_EXECUTABLE_DESTROY: usize = 50;
    pub const LOADED_EXECUTABLE_GET_EXECUTABLE: usize = 51;
    pub const LOADED_EXECUTABLE_ADDRESSABLE_DEVICES: usize = 52;
    pub const LOADED_EXECUTABLE_EXECUTE: usize = 55;
    pub const EXECUTABLE_DESERIALIZE_AND_LOAD: usize = 56;
    pub const BUFFER_DESTROY: usize = 58;
    pub const BUFFER_ELEMENT_TYPE: usize = 59;
    pub const BUFFER_DIMENSIONS: usize = 60;
    pub const BUFFER_DEVICE: usize = 65;
    pub const BUFFER_IS_DELETED: usize = 68;
    pub const BUFFER_TO_HOST_BUFFER: usize = 70;
    pub const EXECUTABLE_OUTPUT_ELEMENT_TYPES: usize = 90;
    pub const EXECUTABLE_OUTPUT_DIMENSIONS: usize = 91;
    pub const EXECUTABLE_FINGERPRINT: usize = 94;
    pub const EXECUTABLE_GET_COMPILED_MEMORY_STATS: usize = 96;
    /// Number of slots in the 0.81 table.
    #[allow(dead_code)]
    pub const COUNT_0_81: usize = 118;
}

/// The header name of a slot, for error messages.
pub fn slot_name(index: usize) -> &'static str {
    match index {
        slot::ERROR_DESTROY => "PJRT_Error_Destroy",
        slot::ERROR_MESSAGE => "PJRT_Error_Message",
        slot::ERROR_GET_CODE => "PJRT_Error_GetCode",
        slot::PLUGIN_INITIALIZE => "PJRT_Plugin_Initialize",
        slot::PLUGIN_ATTRIBUTES => "PJRT_Plugin_Attributes",
        slot::EVENT_DESTROY => "PJRT_Event_Destroy",
        slot::EVENT_AWAIT => "PJRT_Event_Await",
        slot::CLIENT_CREATE => "PJRT_Client_Create",
        slot::CLIENT_DESTROY => "PJRT_Client_Destroy",
        slot::CLIENT_PLATFORM_NAME => "PJRT_Client_PlatformName",
        slot::CLIENT_PLATFORM_VERSION => "PJRT_Client_PlatformVersion",
        slot::CLIENT_DEVICES => "PJRT_Client_Devices",
        slot::CLIENT_ADDRESSABLE_DEVICES => "PJRT_Client_AddressableDevices",
        slot::CLIENT_COMPILE => "PJRT_Client_Compile",
        slot::CLIENT_BUFFER_FROM_HOST_BUFFER => "PJRT_Client_BufferFromHostBuffer",
        slot::DEVICE_DESCRIPTION_ID => "PJRT_DeviceDescription_Id",
        slot::DEVICE_DESCRIPTION_PROCESS_INDEX => "PJRT_DeviceDescription_ProcessIndex",
        slot::DEVICE_DESCRIPTION_KIND => "PJRT_DeviceDescription_Kind",
        slot::DEVICE_DESCRIPTION_DEBUG_STRING => "PJRT_DeviceDescription_DebugString",
        slot::DEVICE_DESCRIPTION_TO_STRING => "PJRT_DeviceDescription_ToString",
        slot::DEVICE_GET_DESCRIPTION => "PJRT_Device_GetDescription",
        slot::EXECUTABLE_DESTROY => "PJRT_Executable_Destroy",
        slot::EXECUTABLE_NAME => "PJRT_Executable_Name",
        slot::EXECUTABLE_NUM_REPLICAS => "PJRT_Executable_NumReplicas",
        slot::EXECUTABLE_NUM_PARTITIONS => "PJRT_Executable_NumPartitions",
        slot::EXECUTABLE_NUM_OUTPUTS => "PJRT_Executable_NumOutputs",
        slot::EXECUTABLE_GET_COST_ANALYSIS => "PJRT_Executable_GetCostAnalysis",
        slot::EXECUTABLE_OPTIMIZED_PROGRAM => "PJRT_Executable_OptimizedProgram",
        slot::LOADED_EXECUTABLE_DESTROY => "PJRT_LoadedExecutable_Destroy",
        slot::LOADED_EXECUTABLE_GET_EXECUTABLE => "PJRT_LoadedExecutable_GetExecutable",
        slot::LOADED_EXECUTABLE_ADDRESSABLE_DEVICES => "PJRT_LoadedExecutable_AddressableDevices",
        slot::LOADED_EXECUTABLE_EXECUTE => "PJRT_LoadedExecutable_Execute",
        slot::EXECUTABLE_SERIALIZE => "PJRT_Executable_Serialize",
        slot::EXECUTABLE_DESERIALIZE_AND_LOAD => "PJRT_Executable_DeserializeAndLoad",
        slot::BUFFER_DESTROY => "PJRT_Buffer_Destroy",
        slot::BUFFER_ELEMENT_TYPE => "PJRT_Buffer_ElementType",
        slot::BUFFER_DIMENSIONS => "PJRT_Buffer_Dimensions",
        slot::BUFFER_DEVICE => "PJRT_Buffer_Device",
        slot::BUFFER_IS_DELETED => "PJRT_Buffer_IsDeleted",
        slot::BUFFER_TO_HOST_BUFFER => "PJRT_Buffer_ToHostBuffer",
        slot::EXECUTABLE_OUTPUT_ELEMENT_TYPES => "PJRT_Executable_OutputElementTypes",
        slot::EXECUTABLE_OUTPUT_DIMENSIONS => "PJRT_Executable_OutputDimensions",
        slot::EXECUTABLE_FINGERPRINT => "PJRT_Executable_Fingerprint",
        slot::EXECUTABLE_GET_COMPILED_MEMORY_STATS => "PJRT_Executable_GetCompiledMemoryStats",
        slot::DEVICE_MEMORY_STATS => "PJRT_Device_MemoryStats",
        _ => "PJRT function",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes listed in PJRT.md §2 for the 0.81 header.
    #[test]
    fn struct_sizes_match_the_0_81_header() {
        assert_eq!(NAMED_VALUE_SIZE, 56);
        assert_eq!(PROGRAM_SIZE, 48);
        assert_eq!(ClientCreateArgs::STRUCT_SIZE, 88);
        assert_eq!(ClientCompileArgs::STRUCT_SIZE, 56);
        assert_eq!(BufferFromHostArgs::STRUCT_SIZE, 120);
        assert_eq!(ExecuteOptions::STRUCT_SIZE, 112);
        assert_eq!(ExecuteArgs::STRUCT_SIZE, 80);
        assert_eq!(BufferToHostArgs::STRUCT_SIZE, 56);
        assert_eq!(ExecutableMemoryStatsArgs::STRUCT_SIZE, 112);
        assert_eq!(DeviceMemoryStatsArgs::STRUCT_SIZE, 185);
        assert_eq!(offset_of!(DeviceMemoryStatsArgs, bytes_limit), 80);
        assert_eq!(ExecutableOptimizedProgramArgs::STRUCT_SIZE, 32);
        assert_eq!(ExecutableSerializeArgs::STRUCT_SIZE, 56);
        assert_eq!(ExecutableDeserializeArgs::STRUCT_SIZE, 64);
        assert_eq!(ErrorGetCodeArgs::STRUCT_SIZE, 28);
        assert_eq!(BufferIsDeletedArgs::STRUCT_SIZE, 25);
        assert_eq!(PluginInitializeArgs::STRUCT_SIZE, 16);
        assert_eq!(offset_of!(RawNamedValue, value), 40);
        assert_eq!(
            offset_of!(ApiHeader, pjrt_api_version) + size_of::<ApiVersion>(),
            API_TABLE_OFFSET
        );
        assert_eq!(API_TABLE_OFFSET + 8 * slot::COUNT_0_81, 984);
    }
}
