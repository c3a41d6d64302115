//! Decodes the same JPEGs with each candidate decoder, one core, and prints
//! milliseconds per image, megapixels per second, the ratio to the `image`
//! crate (simclr's decoder before libjpeg-turbo), and the largest difference
//! of each decoder's pixels from TensorFlow's (libjpeg-turbo with TF's
//! default fast integer IDCT, as simclr decodes).
//!
//! Inputs: `simclr bench --input`'s generated 400×300 texture (4:4:4,
//! quality 75, as `image` writes it) and smooth photo-like 500×375 images
//! with noise and edges (4:2:0, quality 90, like most of ImageNet).

use std::time::Instant;

type Decode = fn(&[u8]) -> Vec<u8>;

fn texture(i: u32) -> Vec<u8> {
    let c = i % 3;
    let img = image::RgbImage::from_fn(400, 300, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ (i * 13 + c * 101);
        image::Rgb([
            (v % 251) as u8,
            ((x / 3 + y / 5 + i) % 256) as u8,
            ((x * y / 7 + c * 40) % 256) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encoding the texture");
    out.into_inner()
}

/// A smooth image with blobs, edges and ±10 of noise, encoded by libjpeg
/// (4:2:0, quality 90).
fn photo(seed: u32) -> Vec<u8> {
    let (w, h) = (500usize, 375usize);
    let mut state = 0x9e37_79b9u32 ^ seed;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 21) as f64 - 10.0
    };
    let s = f64::from(seed);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
            let mut r = 128.0 + 100.0 * (6.0 * fx + s).sin() * (4.0 * fy).cos();
            let mut g = 128.0 + 90.0 * (21.0 * fx * fy + 0.3 * s).sin();
            let b = 128.0 + 80.0 * (9.0 * fy - 2.0 * fx).cos();
            if (x / 37 + y / 23 + seed as usize) % 5 == 0 {
                r = 0.7 * r + 60.0;
                g *= 0.6;
            }
            let n = noise();
            let p = &mut rgb[3 * (y * w + x)..3 * (y * w + x) + 3];
            for (c, v) in [r + n, g + 0.8 * n, b + 1.2 * n].into_iter().enumerate() {
                p[c] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    encode_libjpeg(&rgb, w, h, 90)
}

fn encode_libjpeg(rgb: &[u8], w: usize, h: usize, quality: i32) -> Vec<u8> {
    use mozjpeg_sys::*;
    // SAFETY: the structures are initialised by libjpeg before use; rows
    // point into `rgb`, which outlives the compression; the output buffer is
    // allocated by libjpeg and freed here after copying.
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
        c.input_components = 3;
        c.in_color_space = J_COLOR_SPACE::JCS_RGB;
        jpeg_set_defaults(&mut c);
        // Baseline huffman coding like most cameras (mozjpeg's default is progressive).
        c.scan_info = std::ptr::null();
        c.num_scans = 0;
        jpeg_set_quality(&mut c, quality, 1);
        jpeg_start_compress(&mut c, 1);
        while (c.next_scanline as usize) < h {
            let row = rgb.as_ptr().add(c.next_scanline as usize * w * 3);
            jpeg_write_scanlines(&mut c, &row, 1);
        }
        jpeg_finish_compress(&mut c);
        let out = std::slice::from_raw_parts(buf, len as usize).to_vec();
        jpeg_destroy_compress(&mut c);
        libc_free(buf);
        out
    }
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut u8);
}

fn image_crate(b: &[u8]) -> Vec<u8> {
    image::load_from_memory(b)
        .expect("image decodes")
        .into_rgb8()
        .into_raw()
}

fn zune(b: &[u8]) -> Vec<u8> {
    let opts = zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
    zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(b), opts)
        .decode()
        .expect("zune-jpeg decodes")
}

fn jpeg_decoder(b: &[u8]) -> Vec<u8> {
    jpeg_decoder::Decoder::new(std::io::Cursor::new(b))
        .decode()
        .expect("jpeg-decoder decodes")
}

/// libjpeg-turbo's API as TensorFlow's `decode_jpeg` calls it by default
/// (fast integer IDCT, fancy upsampling, RGB out), as simclr does.
fn libjpeg_turbo(b: &[u8]) -> Vec<u8> {
    use mozjpeg_sys::*;
    // SAFETY: as in `encode_libjpeg`; every row pointer lies inside `out`.
    unsafe {
        let mut err: jpeg_error_mgr = std::mem::zeroed();
        let mut d: jpeg_decompress_struct = std::mem::zeroed();
        d.common.err = jpeg_std_error(&mut err);
        jpeg_create_decompress(&mut d);
        jpeg_mem_src(&mut d, b.as_ptr(), b.len() as _);
        jpeg_read_header(&mut d, 1);
        d.out_color_space = J_COLOR_SPACE::JCS_RGB;
        d.dct_method = J_DCT_METHOD::JDCT_IFAST;
        jpeg_start_decompress(&mut d);
        let (w, h) = (d.output_width as usize, d.output_height as usize);
        let mut out = vec![0u8; w * h * 3];
        while (d.output_scanline as usize) < h {
            let mut row = out.as_mut_ptr().add(d.output_scanline as usize * w * 3);
            jpeg_read_scanlines(&mut d, &mut row, 1);
        }
        jpeg_finish_decompress(&mut d);
        jpeg_destroy_decompress(&mut d);
        out
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("rounds: a number"))
        .unwrap_or(5);
    let decoders: [(&str, Decode); 4] = [
        ("image 0.25 (zune-jpeg)", image_crate),
        ("zune-jpeg 0.5, direct", zune),
        ("jpeg-decoder 0.3", jpeg_decoder),
        ("libjpeg-turbo (mozjpeg-sys; simclr's)", libjpeg_turbo),
    ];
    let sets = [
        (
            "400x300 texture, 4:4:4 q75",
            (0..8).map(texture).collect::<Vec<_>>(),
        ),
        ("500x375 photo-like, 4:2:0 q90", (0..8).map(photo).collect()),
    ];
    println!(
        "| images | decoder | ms per image | Mpixel/s | vs image | largest difference from TF |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, files) in &sets {
        let kb = files.iter().map(Vec::len).sum::<usize>() as f64 / files.len() as f64 / 1024.0;
        let reference: Vec<Vec<u8>> = files.iter().map(|f| libjpeg_turbo(f)).collect();
        let pixels = reference[0].len() / 3;
        let mut base = None;
        for (dname, decode) in decoders {
            // Best of `rounds` rounds of 50 decodes: the figure least disturbed
            // by whatever else the machine runs.
            let mut best = f64::INFINITY;
            let mut check = 0u64;
            for _ in 0..rounds {
                let t = Instant::now();
                for k in 0..50 {
                    let px = decode(&files[k % files.len()]);
                    check += u64::from(px[px.len() / 2]);
                }
                best = best.min(t.elapsed().as_secs_f64() / 50.0);
            }
            let diff = files
                .iter()
                .zip(&reference)
                .map(|(f, r)| {
                    decode(f)
                        .iter()
                        .zip(r)
                        .map(|(&a, &b)| a.abs_diff(b))
                        .max()
                        .unwrap_or(0)
                })
                .max()
                .unwrap_or(0);
            let base_ms = *base.get_or_insert(best);
            println!(
                "| {name} ({kb:.0} KiB) | {dname} | {:.3} | {:.1} | {:.2}× | {diff} |{}",
                best * 1e3,
                pixels as f64 / best / 1e6,
                base_ms / best,
                if check == 0 { " (all zero?)" } else { "" }
            );
        }
    }
}
