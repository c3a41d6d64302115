//! Counter-based random numbers for the data pipeline (SIMCLR.md §2).
//!
//! Owns reproducibility: every random decision of an augmentation draws from a
//! stream keyed by `(seed, epoch, example index, view)` (or, for the blur σ and
//! the shuffle buffer, by the step / epoch), so a given seed yields the same
//! batches byte for byte whatever the number of worker threads or replicas.
//! The generator is a SplitMix64-style mixer applied to `key + counter`; it is
//! not TensorFlow's Philox, so individual draws differ from the original while
//! their distributions are the same.

/// Purpose tags that separate independent streams derived from one seed.
pub mod stream {
    /// Augmentation of one view of one example.
    pub const AUGMENT: u64 = 1;
    /// Shuffle buffer of one epoch.
    pub const SHUFFLE: u64 = 2;
    /// Blur of one view of one per-replica batch.
    pub const BLUR: u64 = 3;
    /// File order of one epoch.
    pub const FILES: u64 = 4;
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A small deterministic random generator: `next = mix(key + counter·γ)`.
#[derive(Debug, Clone)]
pub struct Rng {
    key: u64,
    counter: u64,
}

impl Rng {
    /// A stream keyed by `seed` and a list of coordinates, e.g.
    /// `Rng::new(seed, &[stream::AUGMENT, epoch, index, view])`.
    pub fn new(seed: u64, coords: &[u64]) -> Rng {
        let mut key = mix64(seed ^ 0x5EED_0000_0000_0001);
        for &c in coords {
            key = mix64(
                key.wrapping_add(GOLDEN)
                    .wrapping_add(mix64(c.wrapping_add(0x1234_5678))),
            );
        }
        Rng { key, counter: 0 }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        mix64(self.key.wrapping_add(self.counter.wrapping_mul(GOLDEN)))
    }

    /// Uniform float in [0, 1) with 24 random bits (exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform float in [lo, hi) computed as `lo + u·(hi − lo)` in f32, the
    /// way `tf.random.uniform` scales its unit draw.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = self.next_f32();
        let v = u * (hi - lo) + lo;
        // Rounding can land exactly on `hi`; keep the half-open interval.
        if v >= hi && hi > lo {
            lo.max(hi - (hi - lo) * f32::EPSILON)
        } else {
            v
        }
    }

    /// Uniform integer in `[0, n)` without modulo bias; `n = 0` gives 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        // Lemire's multiply-and-reject method.
        loop {
            let x = self.next_u64();
            let m = (x as u128) * (n as u128);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// True with probability `p` (`u < p` for `u` uniform in [0, 1)).
    pub fn bernoulli(&mut self, p: f32) -> bool {
        self.next_f32() < p
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
        v
    }
}
