//! Helpers shared by the `interp_*` tests: building and running one-replica
//! programs, deterministic pseudo-random data and tolerance checks.
#![allow(dead_code)]

use simclr::interp::{evaluate, Value};
use simclr::ir::{Builder, ElementType, Shape, Tensor};

/// An f32 shape.
pub fn f32s(dims: &[i64]) -> Shape {
    Shape::new(ElementType::F32, dims)
}

/// Builds `outs` and evaluates the module on one replica.
pub fn run(b: &Builder, outs: &[&Tensor], args: Vec<Value>) -> Vec<Value> {
    let m = b.build(outs).expect("valid program");
    let mut r = evaluate(&m, &[args]).expect("evaluation succeeds");
    r.remove(0)
}

/// The f32 elements of a value.
pub fn f(v: &Value) -> Vec<f32> {
    v.to_f32_vec().expect("a float array")
}

/// Deterministic pseudo-random numbers in [-1, 1).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number.
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` numbers.
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// Asserts elementwise closeness (absolute + relative tolerance).
pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}
