//! JPEG decoding (`simclr::data::jpeg` through `folder::decode_image`): the
//! pixels TensorFlow's `decode_image` gives, bit for bit (checked against a
//! pinned TensorFlow, `tools/tf_ckpt/run decode_jpeg.py`), for 4:4:4, 4:2:0
//! and grayscale files of sizes that end inside an MCU; truncated and
//! corrupted files are errors, never panics; CMYK files still decode.

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use simclr::data::folder::decode_image;
use simclr::data::Error;

/// A photo-like RGB image: smooth gradients, blocks and a little noise.
fn pixels(w: usize, h: usize, seed: u32) -> Vec<u8> {
    let mut state = 0x9e37_79b9u32 ^ seed;
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let n = (state % 17) as i32 - 8;
            let block = if (x / 7 + y / 5 + seed as usize) % 4 == 0 {
                70
            } else {
                0
            };
            for c in 0..3i32 {
                let v = (x * (3 + c as usize) + y * (5 - c as usize)) as i32 / 2 + block + n;
                out.push(v.clamp(0, 255) as u8);
            }
        }
    }
    out
}

/// Encodes with libjpeg: `components` 3 (RGB in, YCbCr with `subsample`
/// 4:2:0 or 4:4:4), 1 (grayscale) or 4 (CMYK, stored as CMYK).
fn encode(data: &[u8], w: usize, h: usize, components: i32, subsample: bool) -> Vec<u8> {
    use mozjpeg_sys::*;
    // SAFETY: libjpeg initialises the structures; each row lies inside
    // `data`; the output buffer is libjpeg's, copied and then freed.
    unsafe {
        let mut err: jpeg_error_mgr = std::mem::zeroed();
        let mut c: jpeg_compress_struct = std::mem::zeroed();
        c.common.err = jpeg_std_error(&mut err);
        jpeg_create_compress(&mut c);
        let mut buf: *mut u8 = std::ptr::null_mut();
        let mut len: std::os::raw::c_ulong = 0;
        jpeg_mem_dest(&mut c, &mut buf, &mut len);
        c.image_width = w as u32;
        c.image_height = h as u32;
        c.input_components = components;
        c.in_color_space = match components {
            1 => J_COLOR_SPACE::JCS_GRAYSCALE,
            4 => J_COLOR_SPACE::JCS_CMYK,
            _ => J_COLOR_SPACE::JCS_RGB,
        };
        jpeg_set_defaults(&mut c);
        if components == 4 {
            jpeg_set_colorspace(&mut c, J_COLOR_SPACE::JCS_CMYK);
        }
        // Baseline, sequential: what cameras write (mozjpeg's default is
        // progressive).
        c.scan_info = std::ptr::null();
        c.num_scans = 0;
        jpeg_set_quality(&mut c, 90, 1);
        if components == 3 && !subsample {
            (*c.comp_info).h_samp_factor = 1;
            (*c.comp_info).v_samp_factor = 1;
        }
        jpeg_start_compress(&mut c, 1);
        let stride = w * components as usize;
        while (c.next_scanline as usize) < h {
            let row = data.as_ptr().add(c.next_scanline as usize * stride);
            jpeg_write_scanlines(&mut c, &row, 1);
        }
        jpeg_finish_compress(&mut c);
        let out = std::slice::from_raw_parts(buf, len as usize).to_vec();
        jpeg_destroy_compress(&mut c);
        free(buf.cast());
        out
    }
}

extern "C" {
    fn free(p: *mut std::ffi::c_void);
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("data_jpeg_{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn tf_decode(dir: &Path) -> String {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tf_ckpt/run");
    let o = Command::new(&tool)
        .arg("decode_jpeg.py")
        .arg(dir)
        .output()
        .expect("tools/tf_ckpt/run starts");
    assert!(
        o.status.success(),
        "tools/tf_ckpt/run decode_jpeg.py failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn jpeg_pixels_are_tensorflows_bit_for_bit() {
    let dir = tmp("tf");
    let mut files = Vec::new();
    for (i, &(w, h)) in [(64, 48), (37, 23), (301, 199), (8, 9)].iter().enumerate() {
        let rgb = pixels(w, h, i as u32);
        let gray: Vec<u8> = rgb.chunks(3).map(|p| p[1]).collect();
        for (kind, bytes) in [
            ("420", encode(&rgb, w, h, 3, true)),
            ("444", encode(&rgb, w, h, 3, false)),
            ("gray", encode(&gray, w, h, 1, false)),
        ] {
            let name = format!("{kind}_{w}x{h}.jpg");
            std::fs::write(dir.join(&name), &bytes).expect("write jpeg");
            files.push((name, w, h));
        }
    }
    let listing = tf_decode(&dir);
    assert_eq!(listing.lines().count(), files.len(), "{listing}");
    for (name, w, h) in &files {
        let bytes = std::fs::read(dir.join(name)).expect("read jpeg");
        let ours = decode_image(&bytes, name).expect("decodes");
        assert_eq!((ours.height, ours.width), (*h, *w), "{name}");
        let tf = std::fs::read(dir.join(format!("{name}.tf.raw"))).expect("TF's pixels");
        let differing = ours.data.iter().zip(&tf).filter(|(a, b)| a != b).count();
        assert!(
            ours.data == tf,
            "{name}: {differing} of {} values differ from TensorFlow's decode_image",
            tf.len()
        );
        if name.starts_with("gray") {
            assert!(ours.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        }
    }
}

#[test]
fn truncated_and_corrupt_jpegs_are_errors() {
    let (w, h) = (96, 64);
    let good = encode(&pixels(w, h, 7), w, h, 3, true);
    assert!(decode_image(&good, "good.jpg").is_ok());
    for cut in [good.len() / 2, good.len() * 9 / 10, good.len() - 2] {
        match decode_image(&good[..cut], "cut.jpg") {
            Err(Error::Decode { path, reason }) => {
                assert_eq!(path, "cut.jpg");
                assert!(reason.contains("truncated"), "cut at {cut}: {reason}");
            }
            other => panic!("cut at {cut}: expected a decode error, got {other:?}"),
        }
    }
    for bad in [
        &b"\xff\xd8"[..],
        b"\xff\xd8\xff\xe0 not a jpeg",
        &good[..20],
    ] {
        let e = decode_image(bad, "bad.jpg").expect_err("not decodable");
        assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    }
}

#[test]
fn cmyk_jpegs_decode_to_rgb() {
    let (w, h) = (24, 16);
    let cmyk: Vec<u8> = pixels(w, h * 2, 3)[..w * h * 4].to_vec();
    let bytes = encode(&cmyk, w, h, 4, false);
    let img = decode_image(&bytes, "cmyk.jpg").expect("CMYK decodes");
    assert_eq!((img.height, img.width, img.data.len()), (h, w, w * h * 3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn damaged_jpegs_never_panic(pos in 0.0f64..1.0, val in any::<u8>(), cut in 0.0f64..1.0) {
        let (w, h) = (40, 32);
        let mut b = encode(&pixels(w, h, 1), w, h, 3, true);
        let i = ((b.len() - 1) as f64 * pos) as usize;
        b[i] = val;
        let keep = 2 + ((b.len() - 2) as f64 * cut) as usize;
        b.truncate(keep);
        if let Ok(img) = decode_image(&b, "damaged.jpg") {
            prop_assert_eq!(img.data.len(), img.height * img.width * 3);
        }
    }
}
