//! JPEG decoding with libjpeg-turbo, the library behind TensorFlow's
//! `tf.io.decode_jpeg` and `tf.io.decode_image`, called as TF calls it by
//! default (the fast integer IDCT, `JDCT_IFAST`, which TF picks when
//! `dct_method` is empty; fancy upsampling; RGB out). The pixels are
//! therefore TF's, bit for bit (`tests/data_formats.rs` checks it against
//! TensorFlow); pure-Rust decoders round their IDCT and upsampling otherwise
//! (zune-jpeg up to 4 levels apart on the images of `tools/bench/jpeg`), and
//! libjpeg-turbo's SIMD code is the fastest decoder that benchmark measured.
//!
//! libjpeg reports a fatal error by calling `error_exit`, which must not
//! return; here it unwinds (the library is compiled with `-fexceptions`) to
//! [`decode`], which turns it into an error value. A file that ends early is
//! an error too (libjpeg only warns, and pads the image with grey).

use std::os::raw::{c_int, c_ulong};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg_sys as sys;

use super::ImageU8;

/// Largest image decoded, in pixels (a 1 GiB RGB buffer): a corrupt header
/// must not make us allocate whatever it claims.
const MAX_PIXELS: usize = 1 << 28;

/// The payload of the unwinding out of libjpeg: its message.
struct Failure(String);

/// libjpeg's message for the code in `cinfo.err` (`format_message` writes
/// at most `JMSG_LENGTH_MAX` = 200 bytes).
///
/// # Safety
/// `cinfo.err` points to an initialised error manager.
unsafe fn message(cinfo: &mut sys::jpeg_common_struct) -> String {
    let mut buf = [0u8; 200];
    let err = &*cinfo.err;
    if let Some(format) = err.format_message {
        // The binding declares the buffer as `&[u8; 80]`; libjpeg writes up
        // to 200 bytes into it, so it is handed over as a pointer to ours.
        type Format = unsafe extern "C-unwind" fn(&mut sys::jpeg_common_struct, *mut u8);
        let format: Format = std::mem::transmute(format);
        format(cinfo, buf.as_mut_ptr());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut sys::jpeg_common_struct) {
    let m = message(cinfo);
    resume_unwind(Box::new(Failure(m)));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut sys::jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return; // trace messages
    }
    let err = &mut *cinfo.err;
    err.num_warnings += 1;
    if err.msg_code == sys::JWRN_JPEG_EOF as c_int {
        let m = message(cinfo);
        resume_unwind(Box::new(Failure(format!("truncated file ({m})"))));
    }
    // Other warnings (extraneous bytes before a marker, and the like) are
    // recovered from, as by TensorFlow.
}

/// Decodes `bytes` to 8-bit RGB. `Ok(None)` for CMYK and YCCK files, which
/// libjpeg does not convert to RGB (the caller decodes those otherwise).
///
/// # Errors
/// libjpeg's message for a file it cannot decode, a truncated file, or an
/// image larger than 2^28 pixels.
pub fn decode(bytes: &[u8]) -> Result<Option<ImageU8>, String> {
    // SAFETY: the error manager outlives the decompressor that points to
    // it; libjpeg reads `bytes` only between `jpeg_mem_src` and
    // `jpeg_destroy_decompress`, which runs on every path; each row pointer
    // handed to `jpeg_read_scanlines` lies inside `data`, sized from the
    // dimensions libjpeg reports for its output.
    unsafe {
        let mut err: sys::jpeg_error_mgr = std::mem::zeroed();
        let mut d: sys::jpeg_decompress_struct = std::mem::zeroed();
        let handlers = sys::jpeg_std_error(&mut err);
        handlers.error_exit = Some(error_exit);
        handlers.emit_message = Some(emit_message);
        d.common.err = handlers;
        let result = catch_unwind(AssertUnwindSafe(|| {
            sys::jpeg_create_decompress(&mut d);
            sys::jpeg_mem_src(&mut d, bytes.as_ptr(), bytes.len() as c_ulong);
            sys::jpeg_read_header(&mut d, 1);
            if matches!(
                d.jpeg_color_space,
                sys::J_COLOR_SPACE::JCS_CMYK | sys::J_COLOR_SPACE::JCS_YCCK
            ) {
                return Ok(None);
            }
            d.out_color_space = sys::J_COLOR_SPACE::JCS_RGB;
            d.dct_method = sys::J_DCT_METHOD::JDCT_IFAST;
            d.do_fancy_upsampling = 1;
            sys::jpeg_start_decompress(&mut d);
            let (w, h) = (d.output_width as usize, d.output_height as usize);
            if d.output_components != 3 {
                return Err(format!(
                    "{} channels after conversion to RGB",
                    d.output_components
                ));
            }
            if w.saturating_mul(h) > MAX_PIXELS {
                return Err(format!("{w}x{h} is larger than {MAX_PIXELS} pixels"));
            }
            let mut data = vec![0u8; w * h * 3];
            while (d.output_scanline as usize) < h {
                let row = d.output_scanline as usize;
                let mut rows: [*mut u8; 4] = [std::ptr::null_mut(); 4];
                let n = (h - row).min(rows.len());
                for (k, r) in rows.iter_mut().take(n).enumerate() {
                    *r = data.as_mut_ptr().add((row + k) * w * 3);
                }
                if sys::jpeg_read_scanlines(&mut d, rows.as_mut_ptr(), n as u32) == 0 {
                    return Err("no progress reading scanlines".into());
                }
            }
            sys::jpeg_finish_decompress(&mut d);
            Ok(Some(ImageU8 {
                height: h,
                width: w,
                data,
            }))
        }));
        sys::jpeg_destroy_decompress(&mut d);
        match result {
            Ok(r) => r,
            Err(payload) => match payload.downcast::<Failure>() {
                Ok(f) => Err(f.0),
                Err(other) => resume_unwind(other),
            },
        }
    }
}
