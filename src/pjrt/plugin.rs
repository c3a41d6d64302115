//! A loaded PJRT plugin: `dlopen` (never closed), `GetPjrtApi`, version and
//! table-size checks, `PJRT_Plugin_Initialize`, plugin attributes, and the
//! one place that calls a slot of the function table and turns a returned
//! `PJRT_Error*` into [`Error`].
//!
//! Does not own clients or discovery (see `client.rs`, `discover.rs`).

use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::error::{Error, ErrorCode, Result};
use super::ffi::{self, slot, RawError, RawFn};
use super::named_value::{self, NamedValue, Value};

/// Which kind of platform a plugin drives, guessed before any client exists
/// (from the plugin's attributes and file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// An XLA CPU plugin (attributes carry no accelerator version).
    Cpu,
    /// A CUDA plugin (attribute `cuda_version`).
    Cuda,
    /// A ROCm plugin (attribute `rocm_version`).
    Rocm,
    /// libtpu.
    Tpu,
}

/// A PJRT plugin loaded into this process. Plugins are loaded once per path
/// and stay loaded for the life of the process.
pub struct Plugin {
    path: PathBuf,
    api: *const u8,
    num_slots: usize,
    version: (i32, i32),
    attributes: Vec<NamedValue>,
    kind: PluginKind,
}

// SAFETY: `api` points to the plugin's immutable, process-lifetime function
// table; the PJRT C API functions are thread-safe.
unsafe impl Send for Plugin {}
// SAFETY: see `Send`; `Plugin` has no interior mutability.
unsafe impl Sync for Plugin {}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Lets the plugin's own log lines through (absl start-up lines, info and
/// warnings, XLA's slow-operation alarms); call before the first plugin
/// is loaded. Without it, or `SIMCLR_XLA_LOGS=1` in the environment, they
/// are silenced by setting `TF_CPP_MIN_LOG_LEVEL=3` (fatal errors only)
/// when the first plugin is loaded, unless the user set that variable.
/// Errors of compiling or running still come back as values.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::SeqCst);
}

/// Whether the plugin's log lines are let through (see [`set_verbose`]).
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::SeqCst)
        || std::env::var("SIMCLR_XLA_LOGS").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn quiet_plugin_logs() {
    if verbose() || std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_some() {
        return;
    }
    // The XLA plugins read this once, at their first log line; it must be
    // in the environment before the library's initializers run.
    std::env::set_var("TF_CPP_MIN_LOG_LEVEL", "3");
}

/// Slots simclr cannot work without; checked at load time.
const REQUIRED_SLOTS: &[usize] = &[
    slot::ERROR_DESTROY,
    slot::ERROR_MESSAGE,
    slot::ERROR_GET_CODE,
    slot::PLUGIN_INITIALIZE,
    slot::EVENT_DESTROY,
    slot::EVENT_AWAIT,
    slot::CLIENT_CREATE,
    slot::CLIENT_DESTROY,
    slot::CLIENT_PLATFORM_NAME,
    slot::CLIENT_ADDRESSABLE_DEVICES,
    slot::DEVICE_GET_DESCRIPTION,
    slot::DEVICE_DESCRIPTION_ID,
    slot::CLIENT_COMPILE,
    slot::LOADED_EXECUTABLE_GET_EXECUTABLE,
    slot::LOADED_EXECUTABLE_ADDRESSABLE_DEVICES,
    slot::LOADED_EXECUTABLE_EXECUTE,
    slot::LOADED_EXECUTABLE_DESTROY,
    slot::EXECUTABLE_NUM_OUTPUTS,
    slot::EXECUTABLE_DESTROY,
    slot::CLIENT_BUFFER_FROM_HOST_BUFFER,
    slot::BUFFER_TO_HOST_BUFFER,
    slot::BUFFER_DIMENSIONS,
    slot::BUFFER_ELEMENT_TYPE,
    slot::BUFFER_DESTROY,
];

fn loaded() -> &'static Mutex<HashMap<PathBuf, Arc<Plugin>>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Plugin>>>> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Plugin {
    /// Loads (or returns the already loaded) plugin at `path`, checks its
    /// API version and table, and initializes it.
    ///
    /// Errors: [`Error::Load`] when the file is missing, not a shared
    /// library, lacks `GetPjrtApi`, or lacks a required function;
    /// [`Error::IncompatibleVersion`] on a major-version mismatch;
    /// [`Error::Pjrt`] when `PJRT_Plugin_Initialize` fails.
    pub fn load(path: impl AsRef<Path>) -> Result<Arc<Plugin>> {
        let path = path.as_ref();
        let load_err = |message: String| Error::Load {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(load_err("no such file".into()));
        }
        let key = path.canonicalize().map_err(|e| load_err(e.to_string()))?;
        let mut cache = loaded().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let plugin = Arc::new(Self::open(&key)?);
        cache.insert(key, plugin.clone());
        Ok(plugin)
    }

    fn open(path: &Path) -> Result<Plugin> {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        let load_err = |message: String| Error::Load {
            path: path.to_path_buf(),
            message,
        };
        quiet_plugin_logs();
        // SAFETY: loading a shared library runs its initializers; a PJRT
        // plugin's initializers only set up its own state. RTLD_LOCAL keeps
        // its symbols from clashing with other plugins.
        let lib = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
            .map_err(|e| load_err(e.to_string()))?;
        // SAFETY: `GetPjrtApi` has the C signature `const PJRT_Api* (void)`
        // in every PJRT plugin.
        let get_api = unsafe { lib.get::<unsafe extern "C" fn() -> *const u8>(b"GetPjrtApi\0") }
            .map_err(|e| load_err(format!("not a PJRT plugin: {e}")))?;
        // SAFETY: calling the plugin's exported entry point with no arguments.
        let api = unsafe { get_api() };
        // Never dlclose: the plugin keeps process-global state.
        std::mem::forget(lib);
        if api.is_null() {
            return Err(load_err("GetPjrtApi returned NULL".into()));
        }
        // SAFETY: `api` is the plugin's `PJRT_Api`, which lives for the
        // process (the library is never closed).
        unsafe { Self::from_api(path, api) }
    }

    /// Checks and initializes the API table at `api`.
    ///
    /// # Safety
    /// `api` must point to a `PJRT_Api` of at least its own `struct_size`
    /// bytes whose non-NULL slots are PJRT functions, alive for the rest of
    /// the process.
    unsafe fn from_api(path: &Path, api: *const u8) -> Result<Plugin> {
        let load_err = |message: String| Error::Load {
            path: path.to_path_buf(),
            message,
        };
        // SAFETY: `api` points to a `PJRT_Api`, which starts with the header
        // read here (struct_size, extension_start, version struct).
        let header = unsafe { &*api.cast::<ffi::ApiHeader>() };
        if header.struct_size < ffi::API_TABLE_OFFSET {
            return Err(load_err(format!(
                "PJRT_Api struct_size {} is too small",
                header.struct_size
            )));
        }
        let (major, minor) = (
            header.pjrt_api_version.major_version,
            header.pjrt_api_version.minor_version,
        );
        if major != ffi::API_MAJOR {
            return Err(Error::IncompatibleVersion {
                path: path.to_path_buf(),
                major,
                minor,
            });
        }
        let num_slots = (header.struct_size - ffi::API_TABLE_OFFSET) / std::mem::size_of::<usize>();
        let mut plugin = Plugin {
            path: path.to_path_buf(),
            api,
            num_slots,
            version: (major, minor),
            attributes: Vec::new(),
            kind: PluginKind::Cpu,
        };
        let missing: Vec<&str> = REQUIRED_SLOTS
            .iter()
            .filter(|&&s| plugin.slot(s).is_none())
            .map(|&s| ffi::slot_name(s))
            .collect();
        if !missing.is_empty() {
            return Err(load_err(format!(
                "the plugin lacks required functions: {}",
                missing.join(", ")
            )));
        }
        let mut init = ffi::PluginInitializeArgs::new();
        plugin.call(slot::PLUGIN_INITIALIZE, &mut init)?;
        plugin.attributes = match plugin.read_attributes() {
            Ok(a) => a,
            Err(Error::Unimplemented { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        plugin.kind = kind_of(path, &plugin.attributes);
        Ok(plugin)
    }

    fn read_attributes(&self) -> Result<Vec<NamedValue>> {
        let mut args = ffi::PluginAttributesArgs::new();
        self.call(slot::PLUGIN_ATTRIBUTES, &mut args)?;
        // SAFETY: the plugin returned `num_attributes` named values that live
        // for the whole process (PJRT.md §4).
        Ok(unsafe { named_value::copy_list(args.attributes, args.num_attributes) })
    }

    /// Path of the shared library.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's PJRT C API version `(major, minor)`.
    pub fn api_version(&self) -> (i32, i32) {
        self.version
    }

    /// Number of function-table slots the plugin provides.
    pub fn num_slots(&self) -> usize {
        self.num_slots
    }

    /// `PJRT_Plugin_Attributes` (e.g. `xla_version`, `cuda_version`); empty
    /// when the plugin does not implement the query.
    pub fn attributes(&self) -> &[NamedValue] {
        &self.attributes
    }

    /// The attribute `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// What platform the plugin drives.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// The function in slot `index`, or `None` when the plugin's table is
    /// shorter or the slot is NULL.
    fn slot(&self, index: usize) -> Option<RawFn> {
        if index >= self.num_slots {
            return None;
        }
        // SAFETY: `index < num_slots`, so the slot lies inside the plugin's
        // `PJRT_Api` struct (struct_size bytes from `api`); each slot is a
        // nullable C function pointer, which `Option<RawFn>` represents.
        unsafe {
            let p = self
                .api
                .add(ffi::API_TABLE_OFFSET + index * std::mem::size_of::<usize>());
            std::ptr::read_unaligned(p.cast::<Option<RawFn>>())
        }
    }

    /// A slot whose C function returns `void` (`PJRT_Error_Destroy`,
    /// `PJRT_Error_Message`).
    fn void_slot(&self, index: usize) -> Option<ffi::RawVoidFn> {
        if index >= self.num_slots {
            return None;
        }
        // SAFETY: as in `slot`; these two slots hold `void (*)(Args*)`.
        unsafe {
            let p = self
                .api
                .add(ffi::API_TABLE_OFFSET + index * std::mem::size_of::<usize>());
            std::ptr::read_unaligned(p.cast::<Option<ffi::RawVoidFn>>())
        }
    }

    /// Whether the plugin provides the function in slot `index`.
    pub(crate) fn has(&self, index: usize) -> bool {
        self.slot(index).is_some()
    }

    /// Calls the function in slot `index` with `args` (a `PJRT_*_Args`
    /// struct from `ffi`). A missing slot or an `UNIMPLEMENTED` /
    /// `UNAVAILABLE` result is [`Error::Unimplemented`]; any other error is
    /// [`Error::Pjrt`] with the plugin's message.
    pub(crate) fn call<A>(&self, index: usize, args: &mut A) -> Result<()> {
        let function = ffi::slot_name(index);
        let Some(f) = self.slot(index) else {
            return Err(Error::Unimplemented {
                function,
                reason: format!(
                    "slot {index} is missing (the plugin has {} slots, PJRT API {}.{})",
                    self.num_slots, self.version.0, self.version.1
                ),
            });
        };
        // SAFETY: `f` is the plugin's function for this slot; every caller
        // passes the `ffi` args struct that mirrors the header's struct for
        // that slot, zero-initialised with the right `struct_size`, with all
        // input pointers valid for the duration of the call.
        let err = unsafe { f((args as *mut A).cast::<c_void>()) };
        if err.is_null() {
            return Ok(());
        }
        let (code, message) = self.take_error(err);
        match code {
            ErrorCode::Unimplemented | ErrorCode::Unavailable => Err(Error::Unimplemented {
                function,
                reason: format!("{code}: {message}"),
            }),
            _ => Err(Error::Pjrt {
                function,
                code,
                message,
            }),
        }
    }

    /// Reads code and message of an owned `PJRT_Error*` and destroys it.
    pub(crate) fn take_error(&self, err: *mut RawError) -> (ErrorCode, String) {
        let mut msg = ffi::ErrorMessageArgs::new();
        msg.error = err;
        let mut code = ffi::ErrorGetCodeArgs::new();
        code.error = err;
        let mut message = String::from("(no message)");
        let mut result_code = ErrorCode::Unknown;
        if let Some(f) = self.void_slot(slot::ERROR_MESSAGE) {
            // SAFETY: `err` is a live error owned by us; the args struct
            // matches PJRT_Error_Message_Args.
            unsafe { f((&mut msg as *mut ffi::ErrorMessageArgs).cast()) };
            // SAFETY: the message bytes live as long as `err`, which is
            // destroyed only below.
            message = unsafe { copy_str(msg.message, msg.message_size) };
        }
        if let Some(f) = self.slot(slot::ERROR_GET_CODE) {
            // SAFETY: as above, with PJRT_Error_GetCode_Args.
            let e = unsafe { f((&mut code as *mut ffi::ErrorGetCodeArgs).cast()) };
            if e.is_null() {
                result_code = ErrorCode::from_raw(code.code);
            } else {
                self.destroy_error(e);
            }
        }
        self.destroy_error(err);
        (result_code, message)
    }

    fn destroy_error(&self, err: *mut RawError) {
        if let Some(f) = self.void_slot(slot::ERROR_DESTROY) {
            let mut d = ffi::ErrorDestroyArgs::new();
            d.error = err;
            // SAFETY: `err` is owned by us and destroyed exactly once here.
            unsafe { f((&mut d as *mut ffi::ErrorDestroyArgs).cast()) };
        }
    }
}

fn kind_of(path: &Path, attributes: &[NamedValue]) -> PluginKind {
    let has = |n: &str| attributes.iter().any(|a| a.name == n);
    if has("cuda_version") {
        PluginKind::Cuda
    } else if has("rocm_version") {
        PluginKind::Rocm
    } else if path
        .file_name()
        .is_some_and(|f| f.to_string_lossy().contains("libtpu"))
    {
        PluginKind::Tpu
    } else {
        PluginKind::Cpu
    }
}

/// Copies a length-delimited C string (lossy UTF-8); NULL gives "".
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable bytes.
pub(crate) unsafe fn copy_str(ptr: *const c_char, len: usize) -> String {
    if ptr.is_null() || len == 0 {
        return String::new();
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    //! A fake in-memory `PJRT_Api` exercises version checks, slot gating and
    //! error conversion without a real plugin.
    use super::*;
    use std::ffi::c_int;

    /// The fake plugin's only error value.
    static FAKE_ERROR: u8 = 0;
    static FAKE_MESSAGE: &str = "fake failure";

    unsafe extern "C" fn ok(_: *mut c_void) -> *mut RawError {
        std::ptr::null_mut()
    }
    unsafe extern "C" fn fail(_: *mut c_void) -> *mut RawError {
        (&FAKE_ERROR as *const u8).cast_mut().cast()
    }
    /// The fake plugin's UNIMPLEMENTED error value.
    static FAKE_UNIMPLEMENTED: u8 = 0;
    unsafe extern "C" fn unimplemented(_: *mut c_void) -> *mut RawError {
        (&FAKE_UNIMPLEMENTED as *const u8).cast_mut().cast()
    }
    unsafe extern "C" fn error_destroy(_: *mut c_void) {}
    unsafe extern "C" fn error_message(args: *mut c_void) {
        // SAFETY: called by `take_error` with an ErrorMessageArgs.
        let a = unsafe { &mut *args.cast::<ffi::ErrorMessageArgs>() };
        a.message = FAKE_MESSAGE.as_ptr().cast();
        a.message_size = FAKE_MESSAGE.len();
    }
    unsafe extern "C" fn error_code(args: *mut c_void) -> *mut RawError {
        // SAFETY: called by `take_error` with an ErrorGetCodeArgs.
        let a = unsafe { &mut *args.cast::<ffi::ErrorGetCodeArgs>() };
        a.code = if std::ptr::eq(a.error.cast::<u8>(), &FAKE_UNIMPLEMENTED) {
            12
        } else {
            3
        } as c_int;
        std::ptr::null_mut()
    }

    /// A leaked table of `slots` slots (all `ok`, slot 30 `fail`).
    fn fake_api(major: i32, slots: usize) -> *const u8 {
        let mut words = vec![0usize; 5 + slots];
        words[0] = ffi::API_TABLE_OFFSET + 8 * slots;
        words[2] = 24;
        words[4] = (major as u32 as usize) | ((81usize) << 32);
        for w in &mut words[5..] {
            *w = ok as *const () as usize;
        }
        words[5 + slot::ERROR_DESTROY] = error_destroy as *const () as usize;
        words[5 + slot::ERROR_MESSAGE] = error_message as *const () as usize;
        words[5 + slot::ERROR_GET_CODE] = error_code as *const () as usize;
        if slots > 31 {
            words[5 + 30] = fail as *const () as usize;
            words[5 + 31] = unimplemented as *const () as usize;
        }
        Box::leak(words.into_boxed_slice()).as_ptr().cast()
    }

    #[test]
    fn slots_beyond_the_table_are_unimplemented_and_errors_carry_message_and_code() {
        // SAFETY: the fake table is leaked and its slots are valid functions.
        let p = unsafe { Plugin::from_api(Path::new("/fake.so"), fake_api(0, 80)) }.unwrap();
        assert_eq!(p.api_version(), (0, 81));
        assert_eq!(p.num_slots(), 80);
        let mut a = ffi::ExecutableMemoryStatsArgs::new();
        let e = p
            .call(slot::EXECUTABLE_GET_COMPILED_MEMORY_STATS, &mut a)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Unimplemented {
                    function: "PJRT_Executable_GetCompiledMemoryStats",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("slot 96 is missing (the plugin has 80 slots"),
            "{e}"
        );
        let mut b = ffi::PluginInitializeArgs::new();
        let e = p.call(30, &mut b).unwrap_err();
        assert!(
            matches!(&e, Error::Pjrt { code: ErrorCode::InvalidArgument, message, .. } if message == "fake failure"),
            "{e}"
        );
        let e = p.call(31, &mut b).unwrap_err();
        assert!(matches!(e, Error::Unimplemented { .. }), "{e}");
        assert!(e.to_string().contains("UNIMPLEMENTED: fake failure"), "{e}");
    }

    #[test]
    fn major_version_mismatch_and_short_tables_are_refused() {
        // SAFETY: as above.
        let e = unsafe { Plugin::from_api(Path::new("/fake.so"), fake_api(1, 118)) }.unwrap_err();
        assert!(
            matches!(
                e,
                Error::IncompatibleVersion {
                    major: 1,
                    minor: 81,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("ABI-incompatible"), "{e}");
        // SAFETY: as above.
        let e = unsafe { Plugin::from_api(Path::new("/fake.so"), fake_api(0, 20)) }.unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("lacks required functions") && s.contains("PJRT_Client_Compile"),
            "{s}"
        );
    }
}
