//! Device buffers: an owned `PJRT_Buffer*` with its shape and device,
//! destroyed exactly once on drop (also after donation), and the copy back
//! to a [`HostArray`].

use std::sync::Arc;

use super::client::ClientInner;
use super::element_type::{ArrayShape, ElementType};
use super::error::{Error, ErrorCode, Result};
use super::event;
use super::ffi::{self, slot, RawBuffer, RawDevice};
use super::host::HostArray;

/// An array on a device.
pub struct Buffer {
    client: Arc<ClientInner>,
    pub(crate) raw: *mut RawBuffer,
    shape: ArrayShape,
    pub(crate) device: *mut RawDevice,
}

// SAFETY: PJRT buffers may be used from any thread; the handle is
// destroyed once, in `Drop`.
unsafe impl Send for Buffer {}
// SAFETY: all methods taking `&self` are thread-safe PJRT queries.
unsafe impl Sync for Buffer {}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({})", self.shape)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut args = ffi::BufferDestroyArgs::new();
        args.buffer = self.raw;
        let _ = self.client.plugin.call(slot::BUFFER_DESTROY, &mut args);
    }
}

impl Buffer {
    /// Takes ownership of a buffer whose shape and device are known.
    pub(crate) fn from_raw_known(
        client: &Arc<ClientInner>,
        raw: *mut RawBuffer,
        shape: ArrayShape,
        device: *mut RawDevice,
    ) -> Result<Buffer> {
        if raw.is_null() {
            return Err(Error::Pjrt {
                function: "PJRT_Client_BufferFromHostBuffer",
                code: ErrorCode::Internal,
                message: "returned no buffer".into(),
            });
        }
        Ok(Buffer {
            client: client.clone(),
            raw,
            shape,
            device,
        })
    }

    /// Takes ownership of `raw` (non-NULL) and asks the plugin for its
    /// element type, dims and device. The buffer is owned (and destroyed)
    /// even when a query fails.
    pub(crate) fn from_raw_query(client: &Arc<ClientInner>, raw: *mut RawBuffer) -> Result<Buffer> {
        let placeholder = ArrayShape::new(ElementType::U8, Vec::new());
        let mut buffer = Buffer {
            client: client.clone(),
            raw,
            shape: placeholder,
            device: std::ptr::null_mut(),
        };
        let plugin = &client.plugin;
        let mut t = ffi::BufferElementTypeArgs::new();
        t.buffer = raw;
        plugin.call(slot::BUFFER_ELEMENT_TYPE, &mut t)?;
        let element_type = ElementType::from_pjrt(t.buffer_type).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "buffer has PJRT element type {}, which simclr does not handle",
                t.buffer_type
            ))
        })?;
        let mut d = ffi::BufferDimensionsArgs::new();
        d.buffer = raw;
        plugin.call(slot::BUFFER_DIMENSIONS, &mut d)?;
        let dims = if d.dims.is_null() || d.num_dims == 0 {
            Vec::new()
        } else {
            // SAFETY: `num_dims` dims owned by the live buffer; copied at once.
            unsafe { std::slice::from_raw_parts(d.dims, d.num_dims) }.to_vec()
        };
        buffer.shape = ArrayShape::new(element_type, dims);
        if plugin.has(slot::BUFFER_DEVICE) {
            let mut dev = ffi::BufferDeviceArgs::new();
            dev.buffer = raw;
            plugin.call(slot::BUFFER_DEVICE, &mut dev)?;
            buffer.device = dev.device;
        }
        Ok(buffer)
    }

    /// Element type and dims.
    pub fn shape(&self) -> &ArrayShape {
        &self.shape
    }

    /// Element type.
    pub fn element_type(&self) -> ElementType {
        self.shape.element_type
    }

    /// Dimensions.
    pub fn dims(&self) -> &[i64] {
        &self.shape.dims
    }

    /// Whether the device memory is gone (the buffer was donated to an
    /// execution). `Ok(false)` when the plugin lacks the query.
    pub fn is_deleted(&self) -> Result<bool> {
        if !self.client.plugin.has(slot::BUFFER_IS_DELETED) {
            return Ok(false);
        }
        let mut a = ffi::BufferIsDeletedArgs::new();
        a.buffer = self.raw;
        self.client.plugin.call(slot::BUFFER_IS_DELETED, &mut a)?;
        Ok(a.is_deleted)
    }

    /// Copies the buffer to the host (blocking).
    ///
    /// Errors: [`Error::Pjrt`] (`INVALID_ARGUMENT`) for a donated buffer, or
    /// any transfer error of the plugin.
    pub fn to_host(&self) -> Result<HostArray> {
        let size = self.shape.byte_size().ok_or_else(|| {
            Error::InvalidArgument(format!("buffer shape {} has no byte size", self.shape))
        })?;
        let plugin = &self.client.plugin;
        // First call: the plugin's size for the dense default layout.
        let mut q = ffi::BufferToHostArgs::new();
        q.src = self.raw;
        plugin.call(slot::BUFFER_TO_HOST_BUFFER, &mut q)?;
        event::wait_raw(plugin, q.event)?;
        if q.dst_size != size {
            return Err(Error::InvalidArgument(format!(
                "plugin reports {} bytes for a {} buffer, expected {size}",
                q.dst_size, self.shape
            )));
        }
        let mut bytes = vec![0u8; size];
        if size > 0 {
            let mut a = ffi::BufferToHostArgs::new();
            a.src = self.raw;
            a.dst = bytes.as_mut_ptr().cast();
            a.dst_size = size;
            plugin.call(slot::BUFFER_TO_HOST_BUFFER, &mut a)?;
            // `bytes` must stay alive and untouched until the event fires.
            event::wait_raw(plugin, a.event)?;
        }
        HostArray::from_bytes(self.shape.element_type, &self.shape.dims, bytes)
    }
}
