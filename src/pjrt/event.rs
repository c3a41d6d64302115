//! `PJRT_Event` ownership: an event is always destroyed exactly once,
//! whether it was awaited or not.

use std::sync::Arc;

use super::error::Result;
use super::ffi::{self, slot, RawEvent};
use super::plugin::Plugin;

/// An owned `PJRT_Event`; destroyed on drop.
pub(crate) struct Event {
    plugin: Arc<Plugin>,
    raw: *mut RawEvent,
}

impl Event {
    /// Takes ownership of `raw`; `None` when it is NULL.
    pub(crate) fn from_raw(plugin: &Arc<Plugin>, raw: *mut RawEvent) -> Option<Self> {
        (!raw.is_null()).then(|| Self {
            plugin: plugin.clone(),
            raw,
        })
    }

    /// Blocks until the event fires and returns its error, then destroys it.
    pub(crate) fn wait(self) -> Result<()> {
        let mut args = ffi::EventArgs::new();
        args.event = self.raw;
        self.plugin.call(slot::EVENT_AWAIT, &mut args)
        // `self` drops here: PJRT_Event_Destroy.
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let mut args = ffi::EventArgs::new();
        args.event = self.raw;
        // A failing destroy has nobody to report to; the error value itself
        // is freed inside `call`.
        let _ = self.plugin.call(slot::EVENT_DESTROY, &mut args);
    }
}

/// Awaits a possibly-NULL event and destroys it.
pub(crate) fn wait_raw(plugin: &Arc<Plugin>, raw: *mut RawEvent) -> Result<()> {
    match Event::from_raw(plugin, raw) {
        Some(e) => e.wait(),
        None => Ok(()),
    }
}
