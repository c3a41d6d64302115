//! The key-value store a PJRT client bootstraps a multi-process runtime
//! from (`PJRT_Client_Create`'s `kv_get`, `kv_try_get` and `kv_put`
//! callbacks). The store itself lives elsewhere ([`crate::dist::store`]);
//! this file adapts any [`KeyValueStore`] to the C callbacks.
//!
//! The callbacks must be thread-safe and `get` must block; returned values
//! are copied into an allocation the plugin frees through the deleter set
//! in the same call.

use super::ffi::RawError;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

/// Why a store operation failed, as the plugin should see it.
#[derive(Debug, Clone, PartialEq)]
pub enum KvError {
    /// `get` waited its whole timeout (`DEADLINE_EXCEEDED`).
    Timeout(String),
    /// The store could not be reached (`UNAVAILABLE`).
    Unavailable(String),
}

/// A key-value store shared by the processes of a job.
pub trait KeyValueStore: Send + Sync {
    /// The value of `key`, waiting up to `timeout` for it to be put.
    fn get(&self, key: &[u8], timeout: Duration) -> Result<Vec<u8>, KvError>;
    /// The value of `key` if present now.
    fn try_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Stores `value` under `key`.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError>;
}

/// `PJRT_CallbackError`: makes a `PJRT_Error` from a code and a message.
pub(crate) type CallbackError =
    Option<unsafe extern "C" fn(code: c_int, message: *const c_char, size: usize) -> *mut RawError>;

type Deleter = Option<unsafe extern "C" fn(value: *mut c_char)>;

/// `PJRT_KeyValueGetCallback_Args`.
#[repr(C)]
pub(crate) struct GetArgs {
    pub struct_size: usize,
    pub extension_start: *mut c_void,
    pub key: *const c_char,
    pub key_size: usize,
    pub timeout_in_ms: c_int,
    pub callback_error: *mut CallbackError,
    pub user_arg: *mut c_void,
    pub value: *mut c_char,
    pub value_size: usize,
    pub value_deleter_callback: Deleter,
}

/// `PJRT_KeyValueTryGetCallback_Args`.
#[repr(C)]
pub(crate) struct TryGetArgs {
    pub struct_size: usize,
    pub extension_start: *mut c_void,
    pub key: *const c_char,
    pub key_size: usize,
    pub callback_error: *mut CallbackError,
    pub user_arg: *mut c_void,
    pub value: *mut c_char,
    pub value_size: usize,
    pub value_deleter_callback: Deleter,
}

/// `PJRT_KeyValuePutCallback_Args`.
#[repr(C)]
pub(crate) struct PutArgs {
    pub struct_size: usize,
    pub extension_start: *mut c_void,
    pub key: *const c_char,
    pub key_size: usize,
    pub value: *const c_char,
    pub value_size: usize,
    pub callback_error: *mut CallbackError,
    pub user_arg: *mut c_void,
}

/// `PJRT_Error_Code` values the callbacks return.
const DEADLINE_EXCEEDED: c_int = 4;
const NOT_FOUND: c_int = 5;
const INVALID_ARGUMENT: c_int = 3;
const UNAVAILABLE: c_int = 14;

/// What the client keeps alive for the callbacks' `user_arg`.
pub(crate) struct KvBridge {
    store: Arc<dyn KeyValueStore>,
}

impl KvBridge {
    pub(crate) fn new(store: Arc<dyn KeyValueStore>) -> Box<KvBridge> {
        Box::new(KvBridge { store })
    }
}

/// Copies `bytes` into an allocation whose length sits just before the
/// returned pointer, so that [`free_value`] can rebuild it from the pointer
/// alone.
fn leak_value(bytes: &[u8]) -> *mut c_char {
    let mut v = Vec::with_capacity(8 + bytes.len());
    v.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    v.extend_from_slice(bytes);
    let boxed: Box<[u8]> = v.into_boxed_slice();
    let p = Box::into_raw(boxed) as *mut u8;
    // SAFETY: the allocation holds at least 8 bytes.
    unsafe { p.add(8) as *mut c_char }
}

unsafe extern "C" fn free_value(value: *mut c_char) {
    if value.is_null() {
        return;
    }
    // SAFETY: `value` came from `leak_value`: 8 length bytes precede it.
    unsafe {
        let base = (value as *mut u8).sub(8);
        let mut len = [0u8; 8];
        std::ptr::copy_nonoverlapping(base, len.as_mut_ptr(), 8);
        let n = u64::from_le_bytes(len) as usize;
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            base,
            8 + n,
        )));
    }
}

/// # Safety
/// `cb` is the plugin's `PJRT_CallbackError*` (or null).
unsafe fn error(cb: *mut CallbackError, code: c_int, message: &str) -> *mut RawError {
    // SAFETY: the plugin passes a valid pointer to its error factory.
    match unsafe { cb.as_ref() }.copied().flatten() {
        Some(f) => unsafe { f(code, message.as_ptr() as *const c_char, message.len()) },
        None => std::ptr::null_mut(),
    }
}

/// # Safety
/// `key` points to `len` bytes (or is null with `len` 0).
unsafe fn bytes<'a>(key: *const c_char, len: usize) -> &'a [u8] {
    if key.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: per the caller.
        unsafe { std::slice::from_raw_parts(key as *const u8, len) }
    }
}

/// # Safety
/// `user_arg` is the `KvBridge` the client registered.
unsafe fn bridge<'a>(user_arg: *mut c_void) -> Option<&'a KvBridge> {
    // SAFETY: per the caller; the client outlives every callback.
    unsafe { (user_arg as *const KvBridge).as_ref() }
}

fn kv_error_code(e: &KvError) -> (c_int, String) {
    match e {
        KvError::Timeout(m) => (DEADLINE_EXCEEDED, m.clone()),
        KvError::Unavailable(m) => (UNAVAILABLE, m.clone()),
    }
}

/// Hands the outcome of a get to the plugin: the value (copied, with its
/// deleter) or a `PJRT_Error` with the matching code.
///
/// # Safety
/// `cb` is the plugin's error factory pointer (or null).
unsafe fn answer(
    out: (&mut *mut c_char, &mut usize, &mut Deleter),
    cb: *mut CallbackError,
    key: &[u8],
    res: std::thread::Result<Result<Option<Vec<u8>>, KvError>>,
) -> *mut RawError {
    match res {
        Ok(Ok(Some(v))) => {
            *out.1 = v.len();
            *out.0 = leak_value(&v);
            *out.2 = Some(free_value);
            std::ptr::null_mut()
        }
        Ok(Ok(None)) => unsafe {
            error(
                cb,
                NOT_FOUND,
                &format!("key {} not found", String::from_utf8_lossy(key)),
            )
        },
        Ok(Err(e)) => {
            let (code, m) = kv_error_code(&e);
            unsafe { error(cb, code, &m) }
        }
        Err(_) => unsafe { error(cb, UNAVAILABLE, "the key-value store panicked") },
    }
}

/// Defines a get-style callback (`kv_get_callback`, `kv_try_get_callback`):
/// the arguments' store and key, the lookup `$lookup(bridge, key, args)`
/// guarded against panics, and its answer handed back by [`answer`].
macro_rules! get_callback {
    ($(#[$doc:meta])* $name:ident, $args:ty, $lookup:expr) => {
        $(#[$doc])*
        pub(crate) unsafe extern "C" fn $name(args: *mut $args) -> *mut RawError {
            // SAFETY: the plugin passes valid args for the duration of the call.
            let Some(a) = (unsafe { args.as_mut() }) else {
                return std::ptr::null_mut();
            };
            let Some(b) = (unsafe { bridge(a.user_arg) }) else {
                return unsafe { error(a.callback_error, INVALID_ARGUMENT, "no key-value store") };
            };
            let key = unsafe { bytes(a.key, a.key_size) };
            let lookup: fn(&KvBridge, &[u8], &$args) -> Result<Option<Vec<u8>>, KvError> = $lookup;
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lookup(b, key, a)));
            let out = (
                &mut a.value,
                &mut a.value_size,
                &mut a.value_deleter_callback,
            );
            unsafe { answer(out, a.callback_error, key, res) }
        }
    };
}

get_callback!(
    /// `kv_get_callback`: waits up to the plugin's timeout.
    kv_get,
    GetArgs,
    |b, key, a| {
        let timeout = Duration::from_millis(a.timeout_in_ms.max(0) as u64);
        b.store.get(key, timeout).map(Some)
    }
);

get_callback!(
    /// `kv_try_get_callback`: answers at once.
    kv_try_get,
    TryGetArgs,
    |b, key, _| b.store.try_get(key)
);

/// `kv_put_callback`.
pub(crate) unsafe extern "C" fn kv_put(args: *mut PutArgs) -> *mut RawError {
    // SAFETY: the plugin passes valid args for the duration of the call.
    let Some(a) = (unsafe { args.as_mut() }) else {
        return std::ptr::null_mut();
    };
    let Some(b) = (unsafe { bridge(a.user_arg) }) else {
        return unsafe { error(a.callback_error, INVALID_ARGUMENT, "no key-value store") };
    };
    let key = unsafe { bytes(a.key, a.key_size) };
    let value = unsafe { bytes(a.value, a.value_size) };
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.store.put(key, value)));
    match res {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => {
            let (code, m) = kv_error_code(&e);
            unsafe { error(a.callback_error, code, &m) }
        }
        Err(_) => unsafe {
            error(
                a.callback_error,
                UNAVAILABLE,
                "the key-value store panicked",
            )
        },
    }
}

#[cfg(test)]
mod tests {
    //! The callbacks called the way a plugin calls them: through the C
    //! function pointers, with the plugin's error factory.
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MapStore(Mutex<HashMap<Vec<u8>, Vec<u8>>>);

    impl KeyValueStore for MapStore {
        fn get(&self, key: &[u8], timeout: Duration) -> Result<Vec<u8>, KvError> {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                if let Some(v) = self.0.lock().unwrap().get(key) {
                    return Ok(v.clone());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(KvError::Timeout("no such key yet".into()));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        fn try_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
            self.0.lock().unwrap().insert(key.to_vec(), value.to_vec());
            Ok(())
        }
    }

    static CODES: Mutex<Vec<(c_int, String)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn record_error(code: c_int, m: *const c_char, n: usize) -> *mut RawError {
        let msg = String::from_utf8_lossy(unsafe { bytes(m, n) }).into_owned();
        CODES.lock().unwrap().push((code, msg));
        // Any non-null pointer: the tests only check that one came back.
        std::ptr::NonNull::<RawError>::dangling().as_ptr()
    }

    #[test]
    fn put_then_get_copies_the_value_and_the_deleter_frees_it() {
        let bridge = KvBridge::new(Arc::new(MapStore::default()));
        let user = &*bridge as *const KvBridge as *mut c_void;
        let mut cb: CallbackError = Some(record_error);
        let (key, val) = (b"gpu:topology/0", b"\x00\x01binary\xff");
        let mut put = PutArgs {
            struct_size: std::mem::size_of::<PutArgs>(),
            extension_start: std::ptr::null_mut(),
            key: key.as_ptr() as *const c_char,
            key_size: key.len(),
            value: val.as_ptr() as *const c_char,
            value_size: val.len(),
            callback_error: &mut cb,
            user_arg: user,
        };
        assert!(unsafe { kv_put(&mut put) }.is_null());
        let mut get = GetArgs {
            struct_size: std::mem::size_of::<GetArgs>(),
            extension_start: std::ptr::null_mut(),
            key: key.as_ptr() as *const c_char,
            key_size: key.len(),
            timeout_in_ms: 1000,
            callback_error: &mut cb,
            user_arg: user,
            value: std::ptr::null_mut(),
            value_size: 0,
            value_deleter_callback: None,
        };
        assert!(unsafe { kv_get(&mut get) }.is_null());
        assert_eq!(unsafe { bytes(get.value, get.value_size) }, val);
        let deleter = get.value_deleter_callback.expect("a deleter");
        unsafe { deleter(get.value) };
        // An empty value still comes back as a pointer the deleter accepts.
        put.value_size = 0;
        assert!(unsafe { kv_put(&mut put) }.is_null());
        assert!(unsafe { kv_get(&mut get) }.is_null());
        assert_eq!(get.value_size, 0);
        unsafe { (get.value_deleter_callback.expect("a deleter"))(get.value) };
    }

    #[test]
    fn missing_keys_come_back_as_plugin_errors_with_codes() {
        let bridge = KvBridge::new(Arc::new(MapStore::default()));
        let user = &*bridge as *const KvBridge as *mut c_void;
        let mut cb: CallbackError = Some(record_error);
        let key = b"never-put";
        let mut try_get = TryGetArgs {
            struct_size: std::mem::size_of::<TryGetArgs>(),
            extension_start: std::ptr::null_mut(),
            key: key.as_ptr() as *const c_char,
            key_size: key.len(),
            callback_error: &mut cb,
            user_arg: user,
            value: std::ptr::null_mut(),
            value_size: 0,
            value_deleter_callback: None,
        };
        assert!(!unsafe { kv_try_get(&mut try_get) }.is_null());
        let mut get = GetArgs {
            struct_size: std::mem::size_of::<GetArgs>(),
            extension_start: std::ptr::null_mut(),
            key: key.as_ptr() as *const c_char,
            key_size: key.len(),
            timeout_in_ms: 30,
            callback_error: &mut cb,
            user_arg: user,
            value: std::ptr::null_mut(),
            value_size: 0,
            value_deleter_callback: None,
        };
        assert!(!unsafe { kv_get(&mut get) }.is_null());
        let codes = CODES.lock().unwrap().clone();
        assert!(
            codes
                .iter()
                .any(|(c, m)| *c == NOT_FOUND && m.contains("never-put")),
            "{codes:?}"
        );
        assert!(
            codes.iter().any(|(c, _)| *c == DEADLINE_EXCEEDED),
            "{codes:?}"
        );
    }

    #[test]
    fn layouts_match_the_c_header() {
        // Field offsets of pjrt_c_api.h on a 64-bit target.
        assert_eq!(std::mem::size_of::<GetArgs>(), 80);
        assert_eq!(std::mem::offset_of!(GetArgs, timeout_in_ms), 32);
        assert_eq!(std::mem::offset_of!(GetArgs, callback_error), 40);
        assert_eq!(std::mem::size_of::<TryGetArgs>(), 72);
        assert_eq!(std::mem::offset_of!(TryGetArgs, callback_error), 32);
        assert_eq!(std::mem::size_of::<PutArgs>(), 64);
        assert_eq!(std::mem::offset_of!(PutArgs, callback_error), 48);
    }
}
