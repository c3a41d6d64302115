//! Reference evaluator: rng-bit-generator with Threefry and Philox, checked
//! against the Random123 known-answer vectors through the op, plus the
//! output layout and state update of XLA's expansion.

use simclr::interp::{evaluate, Value};
use simclr::ir::{Builder, ElementType, RngAlgorithm, Shape};

/// Runs rng-bit-generator once: (new state, bits).
fn rng(alg: RngAlgorithm, ty: ElementType, dims: &[i64], state: [u64; 2]) -> (Vec<u64>, Value) {
    let b = Builder::new("rng", 1);
    let s = b.parameter("state", Shape::new(ElementType::U64, [2]));
    let t = s.rng_bit_generator(alg, Shape::new(ty, dims));
    let m = b
        .build(&[&t.get_tuple_element(0), &t.get_tuple_element(1)])
        .unwrap();
    let mut out = evaluate(&m, &[vec![Value::from_u64(&[2], state.to_vec()).unwrap()]]).unwrap();
    let mut r = out.remove(0);
    let bits = r.remove(1);
    (r[0].to_u64_vec().unwrap(), bits)
}

#[test]
fn threefry_u64_bits_are_the_block_function_of_key_and_counter() {
    // key = state[0] = (lo 0x13198a2e, hi 0x03707344), counter = state[1].
    let (st, bits) = rng(
        RngAlgorithm::ThreeFry,
        ElementType::U64,
        &[1],
        [0x0370_7344_1319_8a2e, 0x85a3_08d3_243f_6a88],
    );
    assert_eq!(bits.to_u64_vec().unwrap(), vec![0x483d_f7a0_c492_3a9c]);
    assert_eq!(st, vec![0x0370_7344_1319_8a2e, 0x85a3_08d3_243f_6a89]);
    let (_, bits) = rng(RngAlgorithm::ThreeFry, ElementType::U64, &[1], [0, 0]);
    assert_eq!(bits.to_u64_vec().unwrap(), vec![0x99ba_4efe_6b20_0159]);
}

#[test]
fn threefry_u32_bits_interleave_the_two_words_along_the_split_dimension() {
    let state = [0x1234_5678_9abc_def0, 42];
    let (st, bits) = rng(RngAlgorithm::ThreeFry, ElementType::U32, &[4, 8], state);
    // Half shape [2,1,8]: 16 counters.
    assert_eq!(st, vec![state[0], 42 + 16]);
    let (_, words) = rng(RngAlgorithm::ThreeFry, ElementType::U64, &[16], state);
    let words = words.to_u64_vec().unwrap();
    let bits = bits.to_u32_vec().unwrap();
    for k in 0..4 {
        for j in 0..8 {
            let w = words[(k / 2) * 8 + j];
            let want = if k % 2 == 0 {
                w as u32
            } else {
                (w >> 32) as u32
            };
            assert_eq!(bits[k * 8 + j], want, "element [{k},{j}]");
        }
    }
    // Odd dimensions: split along the largest, then cropped.
    let (st, bits) = rng(RngAlgorithm::ThreeFry, ElementType::U32, &[3, 5], state);
    assert_eq!(st, vec![state[0], 42 + 9]);
    let (_, words) = rng(RngAlgorithm::ThreeFry, ElementType::U64, &[9], state);
    let words = words.to_u64_vec().unwrap();
    let bits = bits.to_u32_vec().unwrap();
    for i in 0..3 {
        for k in 0..5 {
            let w = words[i * 3 + k / 2];
            let want = if k % 2 == 0 {
                w as u32
            } else {
                (w >> 32) as u32
            };
            assert_eq!(bits[i * 5 + k], want, "element [{i},{k}]");
        }
    }
}

#[test]
fn philox_bits_are_the_block_function_of_key_and_counter() {
    let (st, bits) = rng(RngAlgorithm::Philox, ElementType::U32, &[4], [0, 0]);
    assert_eq!(
        bits.to_u32_vec().unwrap(),
        vec![0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
    );
    assert_eq!(st, vec![0, 1]);
    // The 128-bit counter is (state[1], state[0]); the low word wraps.
    let (st, bits) = rng(
        RngAlgorithm::Philox,
        ElementType::U32,
        &[2, 2],
        [u64::MAX, u64::MAX],
    );
    assert_eq!(
        bits.to_u32_vec().unwrap(),
        vec![0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
    );
    assert_eq!(st, vec![u64::MAX, 0]);
}

#[test]
fn philox_u64_bits_pair_consecutive_words() {
    let state = [7, 1000];
    let (st32, b32) = rng(RngAlgorithm::Philox, ElementType::U32, &[4, 8], state);
    assert_eq!(st32, vec![7, 1008]);
    let (st64, b64) = rng(RngAlgorithm::Philox, ElementType::U64, &[3, 5], state);
    // 15 u64 need 30 words: 8 blocks.
    assert_eq!(st64, vec![7, 1008]);
    let w = b32.to_u32_vec().unwrap();
    let want: Vec<u64> = (0..15)
        .map(|i| u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32))
        .collect();
    assert_eq!(b64.to_u64_vec().unwrap(), want);
}

/// Outputs recorded from the XLA CPU PJRT plugin (`xla-cpu-pjrt` 0.0.1) for
/// the same programs and state.
#[test]
fn outputs_match_values_recorded_from_the_xla_cpu_plugin() {
    let state = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
    let (st, bits) = rng(RngAlgorithm::ThreeFry, ElementType::U32, &[3, 5], state);
    assert_eq!(st, vec![state[0], 0xfedc_ba98_7654_3219]);
    assert_eq!(
        bits.to_u32_vec().unwrap(),
        vec![
            0xaed4a37f, 0x1130d111, 0xc3cc4d02, 0x798e402e, 0xaee5264e, 0x49b105a8, 0xaf0a8d99,
            0xe8e52210, 0xdde94182, 0xf0a39a78, 0xe2a77238, 0x403dbb94, 0xace8e6a6, 0xc3dc607f,
            0x56cf7af2
        ]
    );
    let (st, bits) = rng(RngAlgorithm::ThreeFry, ElementType::U64, &[3], state);
    assert_eq!(st, vec![state[0], 0xfedc_ba98_7654_3213]);
    assert_eq!(
        bits.to_u64_vec().unwrap(),
        vec![0x1130d111aed4a37f, 0x798e402ec3cc4d02, 0xb089da7aaee5264e]
    );
    let (st, bits) = rng(RngAlgorithm::Philox, ElementType::U32, &[7], state);
    assert_eq!(st, vec![state[0], 0xfedc_ba98_7654_3212]);
    assert_eq!(
        bits.to_u32_vec().unwrap(),
        vec![0x1ec53d42, 0xcfa390b5, 0xf2235702, 0xe71ff917, 0xcb472319, 0xd682777a, 0xa09c7b98]
    );
    let (st, bits) = rng(RngAlgorithm::Philox, ElementType::U64, &[2, 3], state);
    assert_eq!(st, vec![state[0], 0xfedc_ba98_7654_3213]);
    assert_eq!(
        bits.to_u64_vec().unwrap(),
        vec![
            0xcfa390b51ec53d42,
            0xe71ff917f2235702,
            0xd682777acb472319,
            0x304e9f89a09c7b98,
            0x3e1b9c679f63dd49,
            0x1ece479b5d43b2cf
        ]
    );
}
