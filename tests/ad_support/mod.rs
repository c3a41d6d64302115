//! Shared helpers of the `ad_*` tests: a small deterministic RNG, input
//! domains, and the dot-product VJP check evaluated on `interp` in f64.
#![allow(dead_code)]

use simclr::ad;
use simclr::interp::{self, Value};
use simclr::ir::{Builder, ElementType, Module, Shape, Tensor};

/// SplitMix64: deterministic, seeded by proptest.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }

    /// True with probability ½.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A random permutation of `0..n`.
    pub fn perm(&mut self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = self.int(0, i as i64) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// Where the inputs of a check are drawn from.
#[derive(Clone, Copy, Debug)]
pub enum Domain {
    /// Uniform in [−2, 2].
    Any,
    /// Uniform in [0.5, 2] (log, sqrt, rsqrt, power base).
    Positive,
    /// |x| in [0.3, 2], random sign (abs, division).
    AwayFromZero,
    /// n + 0.25 ± 0.05 for integers n: away from the kinks of floor, ceil,
    /// round and sign.
    OffGrid,
    /// Uniform in [−0.9, 0.9].
    Small,
}

/// Values of `n` elements drawn from `d`.
pub fn sample(rng: &mut Rng, n: usize, d: Domain) -> Vec<f64> {
    (0..n)
        .map(|_| match d {
            Domain::Any => rng.uniform(-2.0, 2.0),
            Domain::Positive => rng.uniform(0.5, 2.0),
            Domain::AwayFromZero => {
                let m = rng.uniform(0.3, 2.0);
                if rng.coin() {
                    m
                } else {
                    -m
                }
            }
            Domain::OffGrid => rng.int(-3, 3) as f64 + 0.25 + rng.uniform(-0.05, 0.05),
            Domain::Small => rng.uniform(-0.9, 0.9),
        })
        .collect()
}

/// An f64 shape.
pub fn f64s(dims: &[i64]) -> Shape {
    Shape::new(ElementType::F64, dims)
}

fn numel(dims: &[i64]) -> usize {
    dims.iter().product::<i64>().max(0) as usize
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One input of a check: its dimensions and domain.
#[derive(Clone, Debug)]
pub struct Input {
    /// Dimensions.
    pub dims: Vec<i64>,
    /// Where values come from.
    pub domain: Domain,
}

/// An input of `dims` drawn from `domain`.
pub fn input(dims: &[i64], domain: Domain) -> Input {
    Input {
        dims: dims.to_vec(),
        domain,
    }
}

/// Builds `f` with a cotangent parameter and its VJP: the module's outputs
/// are `[f(x), vjp_1, …, vjp_n]`. Parameters: the inputs, then the cotangent.
pub fn vjp_module(
    name: &str,
    inputs: &[Input],
    replicas: usize,
    f: &dyn Fn(&[Tensor]) -> Tensor,
) -> Result<Module, String> {
    let b = Builder::new(name, replicas);
    let xs: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, inp)| b.parameter(&format!("x{i}"), f64s(&inp.dims)))
        .collect();
    let y = f(&xs);
    let c = b.parameter("cotangent", y.shape());
    let grads = ad::vjp(std::slice::from_ref(&y), &[c], &xs).map_err(|e| format!("vjp: {e}"))?;
    let mut outs = vec![&y];
    outs.extend(grads.iter());
    b.build(&outs).map_err(|e| format!("build: {e}"))
}

/// The dot-product check of a VJP in f64: with random tangents `t` and a
/// random cotangent `c`, ⟨c, (f(x+εt) − f(x−εt))/2ε⟩ must equal
/// Σᵢ⟨vjpᵢ(c), tᵢ⟩ to relative tolerance `tol`. On R replicas each replica
/// gets its own x, t and c and both sides are summed over replicas.
pub fn check_vjp(
    name: &str,
    inputs: &[Input],
    replicas: usize,
    seed: u64,
    tol: f64,
    f: &dyn Fn(&[Tensor]) -> Tensor,
) -> Result<(), String> {
    let m = vjp_module(name, inputs, replicas, f)?;
    let out_dims = match m.output_types()[0].array() {
        Some(s) => s.dims.clone(),
        None => return Err(format!("{name}: output is a tuple")),
    };
    let mut rng = Rng(seed);
    let mut xs = vec![];
    let mut ts = vec![];
    let mut cs = vec![];
    for _ in 0..replicas {
        xs.push(
            inputs
                .iter()
                .map(|i| sample(&mut rng, numel(&i.dims), i.domain))
                .collect::<Vec<_>>(),
        );
        ts.push(
            inputs
                .iter()
                .map(|i| sample(&mut rng, numel(&i.dims), Domain::Any))
                .collect::<Vec<_>>(),
        );
        cs.push(sample(&mut rng, numel(&out_dims), Domain::Any));
    }
    let eps = 1e-6;
    let run = |shift: f64| -> Result<Vec<Vec<Value>>, String> {
        let args: Vec<Vec<Value>> = (0..replicas)
            .map(|r| {
                let mut a: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(k, i)| {
                        let v: Vec<f64> = xs[r][k]
                            .iter()
                            .zip(&ts[r][k])
                            .map(|(x, t)| x + shift * t)
                            .collect();
                        Value::from_f64(&i.dims, v).map_err(|e| e.to_string())
                    })
                    .collect::<Result<_, _>>()?;
                a.push(Value::from_f64(&out_dims, cs[r].clone()).map_err(|e| e.to_string())?);
                Ok(a)
            })
            .collect::<Result<_, String>>()?;
        interp::evaluate(&m, &args).map_err(|e| format!("{name}: interp: {e}"))
    };
    let at = run(0.0)?;
    let plus = run(eps)?;
    let minus = run(-eps)?;
    let vecf = |v: &Value| v.to_f64_vec().map_err(|e| e.to_string());
    let (mut lhs, mut rhs, mut scale) = (0.0, 0.0, 0.0);
    for r in 0..replicas {
        for k in 0..inputs.len() {
            let g = vecf(&at[r][1 + k])?;
            lhs += dot(&g, &ts[r][k]);
            scale += g
                .iter()
                .zip(&ts[r][k])
                .map(|(a, b)| (a * b).abs())
                .sum::<f64>();
        }
        let (yp, ym) = (vecf(&plus[r][0])?, vecf(&minus[r][0])?);
        let fd: Vec<f64> = yp
            .iter()
            .zip(&ym)
            .map(|(p, m)| (p - m) / (2.0 * eps))
            .collect();
        rhs += dot(&cs[r], &fd);
        scale += cs[r]
            .iter()
            .zip(&fd)
            .map(|(a, b)| (a * b).abs())
            .sum::<f64>();
    }
    let err = (lhs - rhs).abs();
    if err > tol * scale.max(1e-3) {
        return Err(format!(
            "{name}: ⟨vjp(c), t⟩ = {lhs:.12} but ⟨c, jvp_fd(t)⟩ = {rhs:.12} (|diff| {err:.3e}, \
             scale {scale:.3e}, tol {tol:.1e}); inputs {:?}, output {out_dims:?}",
            inputs.iter().map(|i| i.dims.clone()).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// Evaluates a single-replica module on f64 arguments; returns the outputs
/// as flat vectors.
pub fn eval_f64(m: &Module, args: &[(Vec<i64>, Vec<f64>)]) -> Result<Vec<Vec<f64>>, String> {
    let a: Vec<Value> = args
        .iter()
        .map(|(d, v)| Value::from_f64(d, v.clone()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let out = interp::evaluate(m, &[a]).map_err(|e| e.to_string())?;
    out[0]
        .iter()
        .map(|v| v.to_f64_vec().map_err(|e| e.to_string()))
        .collect()
}

/// Asserts two vectors agree elementwise to `atol + rtol·|b|`.
pub fn assert_close(what: &str, a: &[f64], b: &[f64], atol: f64, rtol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= atol + rtol * y.abs(),
            "{what}: element {i}: got {x}, expected {y} (|diff| {:.3e})",
            (x - y).abs()
        );
    }
}
