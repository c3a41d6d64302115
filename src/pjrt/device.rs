//! Devices of a client: id, kind, process index and the plugin's strings,
//! read once from `PJRT_DeviceDescription` when the client is created.
//! The device handle itself stays owned by the client.

use super::error::Result;
use super::ffi::{self, slot, RawDevice};
use super::plugin::{copy_str, Plugin};

/// One device of a client (for example `CpuDevice(id=2)`).
#[derive(Clone, Debug)]
pub struct Device {
    pub(crate) raw: *mut RawDevice,
    /// Global device id (`PJRT_DeviceDescription_Id`).
    pub id: i32,
    /// Index of the process that owns the device (0 on one host).
    pub process_index: i32,
    /// Device kind, e.g. `"cpu"`.
    pub kind: String,
    /// `PJRT_DeviceDescription_ToString`, e.g. `CpuDevice(id=0)`.
    pub description: String,
    /// `PJRT_DeviceDescription_DebugString`, e.g. `TFRT_CPU_0`.
    pub debug_string: String,
}

// SAFETY: `raw` is an opaque handle owned by the (thread-safe) client; a
// `Device` never dereferences it and only passes it back to the same client.
unsafe impl Send for Device {}
// SAFETY: see `Send`.
unsafe impl Sync for Device {}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Device {
    /// Reads the description of `raw`, a device of a live client.
    pub(crate) fn describe(plugin: &Plugin, raw: *mut RawDevice) -> Result<Device> {
        let mut d = ffi::DeviceGetDescriptionArgs::new();
        d.device = raw;
        plugin.call(slot::DEVICE_GET_DESCRIPTION, &mut d)?;
        let desc = d.description;

        let int = |index: usize| -> Result<i32> {
            let mut a = ffi::DeviceDescriptionIntArgs::new();
            a.description = desc;
            plugin.call(index, &mut a)?;
            Ok(a.value)
        };
        let string = |index: usize| -> Result<String> {
            let mut a = ffi::DeviceDescriptionStringArgs::new();
            a.description = desc;
            plugin.call(index, &mut a)?;
            // SAFETY: the string is owned by the description, which lives as
            // long as the client; it is copied at once.
            Ok(unsafe { copy_str(a.value, a.value_size) })
        };
        let id = int(slot::DEVICE_DESCRIPTION_ID)?;
        Ok(Device {
            raw,
            id,
            process_index: int(slot::DEVICE_DESCRIPTION_PROCESS_INDEX).unwrap_or(0),
            kind: string(slot::DEVICE_DESCRIPTION_KIND).unwrap_or_default(),
            description: string(slot::DEVICE_DESCRIPTION_TO_STRING)
                .unwrap_or_else(|_| format!("Device(id={id})")),
            debug_string: string(slot::DEVICE_DESCRIPTION_DEBUG_STRING).unwrap_or_default(),
        })
    }
}
