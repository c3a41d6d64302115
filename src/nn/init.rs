//! Initial values of model variables on the host (SPEC §3.2, §4.1),
//! reproducible from a seed: variable k draws from a counter-based
//! generator keyed by (seed, k), so its values depend only on the seed and
//! its creation index.

use super::store::Init;

/// SplitMix64: a small, well-mixed counter-based generator.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Stream {
    key: u64,
    counter: u64,
}

impl Stream {
    fn new(seed: u64, index: u64) -> Stream {
        Stream {
            key: splitmix64(seed ^ splitmix64(index.wrapping_add(0x5EED))),
            counter: 0,
        }
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        self.counter += 1;
        let bits = splitmix64(self.key ^ self.counter.wrapping_mul(0xD1B5_4A32_D192_ED03)) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, one value per pair of uniforms).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// TF's variance-scaling constant: the standard deviation of a standard
/// normal truncated to ±2.
pub const TRUNCATED_NORMAL_STDDEV: f64 = 0.879_625_661_034_239_8;

/// `count` initial values for a variable with rule `init`, the
/// `index`-th variable of the model, under `seed`.
pub fn initial_values(init: &Init, count: usize, seed: u64, index: u64) -> Vec<f32> {
    let mut s = Stream::new(seed, index);
    match init {
        Init::Zeros => vec![0.0; count],
        Init::Ones => vec![1.0; count],
        Init::Normal { std } => (0..count).map(|_| (s.normal() * std) as f32).collect(),
        Init::TruncatedNormalFanIn { fan_in } => {
            let sigma = (1.0 / (*fan_in).max(1) as f64).sqrt() / TRUNCATED_NORMAL_STDDEV;
            (0..count)
                .map(|_| loop {
                    let z = s.normal();
                    if z.abs() <= 2.0 {
                        break (z * sigma) as f32;
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_normal_has_the_fan_in_variance_and_cut() {
        let fan_in = 3 * 3 * 64;
        let v = initial_values(&Init::TruncatedNormalFanIn { fan_in }, 200_000, 7, 3);
        let var: f64 = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / v.len() as f64;
        let want = 1.0 / fan_in as f64;
        assert!((var / want - 1.0).abs() < 0.02, "variance {var} vs {want}");
        let sigma = want.sqrt() / TRUNCATED_NORMAL_STDDEV;
        assert!(v.iter().all(|&x| f64::from(x).abs() <= 2.0 * sigma + 1e-7));
    }

    #[test]
    fn values_depend_only_on_seed_and_index() {
        let a = initial_values(&Init::Normal { std: 0.01 }, 16, 1, 5);
        let b = initial_values(&Init::Normal { std: 0.01 }, 16, 1, 5);
        let c = initial_values(&Init::Normal { std: 0.01 }, 16, 2, 5);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
