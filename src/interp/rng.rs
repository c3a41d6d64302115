//! `rng-bit-generator` as XLA expands it (`RngBitGeneratorExpander` and
//! `prng.cc`): Threefry-2x32 (20 rounds) and Philox-4x32 (10 rounds) on a
//! `u64[2]` state.
//!
//! * Threefry: key = `state[0]` (low word first), counter = `state[1]` plus
//!   the row-major index. 32-bit outputs are made on a half-size shape
//!   (split along the first even dimension, else the largest) and the two
//!   output words are interleaved along that dimension; the new state is
//!   `[state[0], state[1] + elements made]`.
//! * Philox: key = `state[0]`, 128-bit counter = `(low: state[1], high:
//!   state[0])` plus the block index; each block gives 4 consecutive u32
//!   outputs (2 consecutive u64); the new state is `[state[0], low word of
//!   counter + blocks]`.
//!
//! The block functions are checked against the Random123 known-answer
//! vectors, and whole outputs (u32 and u64 bits, odd and even shapes, new
//! states) against values recorded from the XLA CPU plugin
//! (`tests/interp_rng.rs`).

use super::value::Value;
use super::Error;
use crate::ir::{ElementType, RngAlgorithm, Shape};
use ndarray::{ArrayD, IxDyn};

/// The Threefry-2x32 block function with 20 rounds.
pub(crate) fn threefry2x32(key: [u32; 2], ctr: [u32; 2]) -> [u32; 2] {
    const ROT: [u32; 8] = [13, 15, 26, 6, 17, 29, 16, 24];
    let ks = [key[0], key[1], 0x1BD1_1BDA ^ key[0] ^ key[1]];
    let mut x = [ctr[0].wrapping_add(ks[0]), ctr[1].wrapping_add(ks[1])];
    for block in 0..5u32 {
        let rots = if block % 2 == 0 { &ROT[..4] } else { &ROT[4..] };
        for &r in rots {
            x[0] = x[0].wrapping_add(x[1]);
            x[1] = x[1].rotate_left(r) ^ x[0];
        }
        let s = (block + 1) as usize;
        x[0] = x[0].wrapping_add(ks[s % 3]);
        x[1] = x[1].wrapping_add(ks[(s + 1) % 3]).wrapping_add(block + 1);
    }
    x
}

/// The Philox-4x32 block function with 10 rounds.
pub(crate) fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;
    let (mut x, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = M0 * u64::from(x[0]);
        let p1 = M1 * u64::from(x[2]);
        x = [
            ((p1 >> 32) as u32) ^ x[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ x[3] ^ k[1],
            p0 as u32,
        ];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    x
}

fn split(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

fn array<T>(dims: &[usize], data: Vec<T>) -> Result<ArrayD<T>, Error> {
    ArrayD::from_shape_vec(IxDyn(dims), data)
        .map_err(|_| Error::Invalid("rng-bit-generator: result size mismatch".into()))
}

/// Threefry u32 bits: made on the half shape, interleaved along the split
/// dimension.
fn threefry_u32(key: [u32; 2], counter: u64, dims: &[usize]) -> (Vec<u32>, u64) {
    if dims.is_empty() {
        let out = threefry2x32(key, split(counter));
        return (vec![out[0]], 1);
    }
    let split_dim = dims.iter().position(|d| d % 2 == 0).unwrap_or_else(|| {
        // No even dimension: the first largest one.
        let mut best = 0;
        for (i, &d) in dims.iter().enumerate() {
            if d > dims[best] {
                best = i;
            }
        }
        best
    });
    let mut half = dims.to_vec();
    half[split_dim] = dims[split_dim].div_ceil(2);
    let half_n: usize = half.iter().product();
    let pairs: Vec<[u32; 2]> = (0..half_n as u64)
        .map(|i| threefry2x32(key, split(counter.wrapping_add(i))))
        .collect();
    // Row-major strides of the half shape.
    let mut strides = vec![1usize; half.len()];
    for i in (0..half.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * half[i + 1];
    }
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..n {
        let mut flat = 0;
        for (d, &i) in idx.iter().enumerate() {
            let h = if d == split_dim { i / 2 } else { i };
            flat += h * strides[d];
        }
        out.push(pairs[flat][idx[split_dim] % 2]);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    (out, half_n as u64)
}

/// Philox blocks for `n32` 32-bit words: the words in block order and the
/// number of blocks used.
fn philox_words(key: [u32; 2], low: u64, high: u64, n32: usize) -> (Vec<[u32; 4]>, u64) {
    let blocks = n32.div_ceil(4) as u64;
    let words = (0..blocks)
        .map(|i| {
            let lo = low.wrapping_add(i);
            let hi = if lo < low { high.wrapping_add(1) } else { high };
            let [a, b] = split(lo);
            let [c, d] = split(hi);
            philox4x32([a, b, c, d], key)
        })
        .collect();
    (words, blocks)
}

/// `rng-bit-generator(state)`: the tuple `(new_state, bits)`.
pub(crate) fn rng_bit_generator(
    algorithm: RngAlgorithm,
    state: &Value,
    shape: &Shape,
) -> Result<Value, Error> {
    let s = state.to_u64_vec()?;
    let [s0, s1] = s[..] else {
        return Err(Error::Invalid(format!(
            "rng-bit-generator state must be u64[2], got {}",
            state.type_string()
        )));
    };
    let dims: Vec<usize> = shape.dims.iter().map(|&d| d.max(0) as usize).collect();
    let n: usize = dims.iter().product();
    let key = split(s0);
    let (bits, new_s1) = match (algorithm, shape.ty) {
        (RngAlgorithm::ThreeFry, ElementType::U32) => {
            let (v, used) = threefry_u32(key, s1, &dims);
            (Value::U32(array(&dims, v)?), s1.wrapping_add(used))
        }
        (RngAlgorithm::ThreeFry, ElementType::U64) => {
            let v = (0..n as u64)
                .map(|i| {
                    let o = threefry2x32(key, split(s1.wrapping_add(i)));
                    join(o[0], o[1])
                })
                .collect();
            (Value::U64(array(&dims, v)?), s1.wrapping_add(n as u64))
        }
        (RngAlgorithm::Philox, ElementType::U32) => {
            let (w, blocks) = philox_words(key, s1, s0, n);
            let v = w.iter().flatten().copied().take(n).collect();
            (Value::U32(array(&dims, v)?), s1.wrapping_add(blocks))
        }
        (RngAlgorithm::Philox, ElementType::U64) => {
            let (w, blocks) = philox_words(key, s1, s0, 2 * n);
            let v = w
                .iter()
                .flat_map(|b| [join(b[0], b[1]), join(b[2], b[3])])
                .take(n)
                .collect();
            (Value::U64(array(&dims, v)?), s1.wrapping_add(blocks))
        }
        (_, ty) => {
            return Err(Error::UnsupportedType {
                opcode: "rng-bit-generator".into(),
                ty: ty.to_string(),
            })
        }
    };
    Ok(Value::Tuple(vec![
        Value::U64(array(&[2], vec![s0, new_s1])?),
        bits,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors of the Random123 library (threefry2x32_20 and
    // philox4x32_10).
    #[test]
    fn threefry_matches_known_answers() {
        assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b20_0159, 0x99ba_4efe]);
        assert_eq!(
            threefry2x32([u32::MAX, u32::MAX], [u32::MAX, u32::MAX]),
            [0x1cb9_96fc, 0xbb00_2be7]
        );
        assert_eq!(
            threefry2x32([0x1319_8a2e, 0x0370_7344], [0x243f_6a88, 0x85a3_08d3]),
            [0xc492_3a9c, 0x483d_f7a0]
        );
    }

    #[test]
    fn philox_matches_known_answers() {
        assert_eq!(
            philox4x32([0; 4], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX, u32::MAX]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }
}
