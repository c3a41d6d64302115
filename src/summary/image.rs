//! Images for image summaries, and a minimal PNG encoder for them: 8-bit
//! grayscale, gray + alpha, RGB or RGBA, no filtering, zlib "stored"
//! (uncompressed) deflate blocks. Compression is not worth a dependency for
//! the one small image SimCLR logs per summary (`image` in SPEC §8.7); any PNG
//! decoder reads these files.

use super::crc::{adler32, crc32, crc32_update};
use super::error::{Error, Result};

/// An 8-bit image in row-major HWC layout (TensorFlow's), `channels` in 1..=4
/// (gray, gray + alpha, RGB, RGBA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    height: u32,
    width: u32,
    channels: u8,
    pixels: Vec<u8>,
}

fn check_shape(height: usize, width: usize, channels: usize, len: usize) -> Result<()> {
    let bad = |what: String| Err(Error::Image { what });
    if !(1..=4).contains(&channels) {
        return bad(format!(
            "{channels} channels; expected 1 (gray), 2, 3 (RGB) or 4 (RGBA)"
        ));
    }
    if height == 0 || width == 0 {
        return bad(format!("shape {height}x{width} has no pixels"));
    }
    let max = i32::MAX as usize;
    if height > max || width > max {
        return bad(format!("shape {height}x{width} is too large for a summary"));
    }
    match height
        .checked_mul(width)
        .and_then(|n| n.checked_mul(channels))
    {
        Some(n) if n == len => Ok(()),
        Some(n) => bad(format!(
            "{len} values for shape [{height}, {width}, {channels}], which needs {n}"
        )),
        None => bad(format!("shape {height}x{width}x{channels} overflows")),
    }
}

impl Image {
    /// An image from 8-bit values in HWC order.
    ///
    /// # Errors
    /// [`Error::Image`] when `pixels.len() != height * width * channels`,
    /// `channels` is not 1..=4, or a side is 0.
    pub fn from_u8(height: usize, width: usize, channels: usize, pixels: Vec<u8>) -> Result<Self> {
        check_shape(height, width, channels, pixels.len())?;
        Ok(Image {
            height: height as u32,
            width: width as u32,
            channels: channels as u8,
            pixels,
        })
    }

    /// An image from floats in `[0, 1]` (SimCLR's input range), converted as
    /// TensorFlow's `convert_image_dtype(saturate=True)` does for
    /// `tf.summary.image`: `x * 255.5`, clamped to `[0, 255]`, truncated.
    /// NaN becomes 0.
    ///
    /// # Errors
    /// As [`Image::from_u8`].
    pub fn from_unit_f32(
        height: usize,
        width: usize,
        channels: usize,
        values: &[f32],
    ) -> Result<Self> {
        check_shape(height, width, channels, values.len())?;
        // `as u8` saturates and maps NaN to 0.
        let pixels = values.iter().map(|&x| (x * 255.5) as u8).collect();
        Self::from_u8(height, width, channels, pixels)
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height as usize
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width as usize
    }

    /// Channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA (also the `colorspace`
    /// code of a TensorBoard image summary).
    pub fn channels(&self) -> usize {
        usize::from(self.channels)
    }

    /// The pixels, HWC.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The image as a PNG file.
    pub fn to_png(&self) -> Vec<u8> {
        let color_type = match self.channels {
            1 => 0u8, // grayscale
            2 => 4,   // grayscale + alpha
            3 => 2,   // truecolor
            _ => 6,   // truecolor + alpha
        };
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&self.width.to_be_bytes());
        ihdr.extend_from_slice(&self.height.to_be_bytes());
        // bit depth 8, colour type, deflate, adaptive filtering, no interlace
        ihdr.extend_from_slice(&[8, color_type, 0, 0, 0]);

        // Scanlines, each led by filter type 0 (none).
        let row = self.width() * self.channels();
        let mut raw = Vec::with_capacity(self.height() * (row + 1));
        for line in self.pixels.chunks(row) {
            raw.push(0);
            raw.extend_from_slice(line);
        }

        let mut png = Vec::with_capacity(raw.len() + raw.len() / 65535 * 5 + 64);
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        push_chunk(&mut png, b"IHDR", &ihdr);
        push_chunk(&mut png, b"IDAT", &zlib_stored(&raw));
        push_chunk(&mut png, b"IEND", &[]);
        png
    }
}

/// Appends a PNG chunk: length, type, data, CRC-32 of type and data.
fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32_update(crc32(kind), data).to_be_bytes());
}

/// A zlib stream holding `data` in uncompressed deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 65_535;
    let mut out = Vec::with_capacity(data.len() + data.len() / BLOCK * 5 + 11);
    // CMF: deflate with a 32 KiB window; FLG: no dictionary, check bits so
    // that (CMF * 256 + FLG) % 31 == 0.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        out.push(u8::from(last)); // BFINAL, BTYPE = 00 (stored)
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what [`Image::to_png`] writes (stored blocks, filter 0).
    fn decode(png: &[u8]) -> (u32, u32, u8, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut at = 8;
        let (mut w, mut h, mut ct, mut idat) = (0, 0, 0, Vec::new());
        loop {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32_update(crc32(kind), data), "chunk CRC");
            match kind {
                b"IHDR" => {
                    w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                    h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                    ct = data[9];
                }
                b"IDAT" => idat.extend_from_slice(data),
                b"IEND" => break,
                _ => panic!("unexpected chunk"),
            }
            at += 12 + len;
        }
        assert_eq!((u16::from(idat[0]) * 256 + u16::from(idat[1])) % 31, 0);
        let mut raw = Vec::new();
        let mut p = 2;
        loop {
            let last = idat[p] & 1 == 1;
            let len = u16::from_le_bytes([idat[p + 1], idat[p + 2]]) as usize;
            let nlen = u16::from_le_bytes([idat[p + 3], idat[p + 4]]);
            assert_eq!(!nlen as usize, len);
            raw.extend_from_slice(&idat[p + 5..p + 5 + len]);
            p += 5 + len;
            if last {
                break;
            }
        }
        assert_eq!(
            u32::from_be_bytes(idat[p..p + 4].try_into().unwrap()),
            adler32(&raw)
        );
        (w, h, ct, raw)
    }

    #[test]
    fn png_round_trips_rgb_across_several_deflate_blocks() {
        let (h, w) = (150, 200); // 150 rows of 601 bytes: two stored blocks
        let pixels: Vec<u8> = (0..h * w * 3).map(|i| (i * 7 % 251) as u8).collect();
        let img = Image::from_u8(h, w, 3, pixels.clone()).unwrap();
        let (pw, ph, ct, raw) = decode(&img.to_png());
        assert_eq!((pw, ph, ct), (w as u32, h as u32, 2));
        let rows: Vec<u8> = raw
            .chunks(w * 3 + 1)
            .flat_map(|r| {
                assert_eq!(r[0], 0, "filter byte");
                r[1..].to_vec()
            })
            .collect();
        assert_eq!(rows, pixels);
    }

    #[test]
    fn unit_floats_convert_like_tensorflow() {
        let img = Image::from_unit_f32(1, 5, 1, &[0.0, 0.5, 1.0, -3.0, f32::NAN]).unwrap();
        assert_eq!(img.pixels(), &[0, 127, 255, 0, 0]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Image::from_u8(2, 2, 3, vec![0; 11]).is_err());
        assert!(Image::from_u8(0, 2, 3, vec![]).is_err());
        assert!(Image::from_u8(1, 1, 5, vec![0; 5]).is_err());
    }
}
