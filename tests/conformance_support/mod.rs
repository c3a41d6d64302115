//! Shared helpers of the conformance tests: one function, [`check`], runs a
//! built module through the XLA CPU plugin (PJRT) and through the reference
//! evaluator (`interp`) and compares every output of every replica with a
//! per-op [`Tol`]erance; plus deterministic data generation.
//!
//! Include with `#[path = "conformance_support/mod.rs"] mod support;`. The
//! plugin is required: a missing plugin panics with the discovery error, so
//! no test silently skips.
#![allow(dead_code)]

use std::sync::OnceLock;

use simclr::interp::{self, Value};
use simclr::ir::{ElementType, LiteralData, Module, Shape};
use simclr::pjrt::{self, Client, ClientOptions, CompileOptions, HostArray};

/// The CPU plugin's client (4 devices), created once per test binary.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(
        || match Client::discover(None, false, &ClientOptions::default()) {
            Ok(c) => c,
            Err(e) => panic!("the CPU PJRT plugin is required (run tools/setup): {e}"),
        },
    )
}

/// How closely PJRT's result must match the reference evaluator's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tol {
    /// Identical values (floats: identical bits, except that any NaN
    /// matches any NaN). Integer, pred and data-movement ops.
    Exact,
    /// Within this many units in the last place of the element type
    /// (f32/f64; bf16/f16 are measured in their own ulps). Transcendental
    /// functions and short sums.
    Ulp(u64),
    /// `|got − want| ≤ abs + rel·|want|`: accumulated error of long sums
    /// (dot, convolution, reduce), `abs` sized from the number of terms.
    Close {
        /// Absolute bound.
        abs: f64,
        /// Relative bound.
        rel: f64,
    },
}

impl Tol {
    /// The accumulated-error bound of a sum of `terms` products whose
    /// magnitudes are at most `scale`, in element type `ty`:
    /// `abs = 2·terms·ε·scale`, `rel = 4ε`.
    pub fn accumulated(ty: ElementType, terms: usize, scale: f64) -> Tol {
        let eps = epsilon(ty);
        Tol::Close {
            abs: 2.0 * terms.max(1) as f64 * eps * scale,
            rel: 4.0 * eps,
        }
    }
}

/// Machine epsilon of a float type (1 for integers: they are exact anyway).
pub fn epsilon(ty: ElementType) -> f64 {
    match ty {
        ElementType::F64 => f64::EPSILON,
        ElementType::F32 => f64::from(f32::EPSILON),
        ElementType::Bf16 => 2f64.powi(-7),
        ElementType::F16 => 2f64.powi(-10),
        _ => 1.0,
    }
}

fn pjrt_type(ty: ElementType) -> pjrt::ElementType {
    match ty {
        ElementType::Pred => pjrt::ElementType::Pred,
        ElementType::U8 => pjrt::ElementType::U8,
        ElementType::S32 => pjrt::ElementType::S32,
        ElementType::S64 => pjrt::ElementType::S64,
        ElementType::U32 => pjrt::ElementType::U32,
        ElementType::U64 => pjrt::ElementType::U64,
        ElementType::Bf16 => pjrt::ElementType::Bf16,
        ElementType::F16 => pjrt::ElementType::F16,
        ElementType::F32 => pjrt::ElementType::F32,
        ElementType::F64 => pjrt::ElementType::F64,
    }
}

/// An array value as a host array for PJRT.
pub fn to_host(v: &Value) -> HostArray {
    let lit = v.to_literal().expect("an array value");
    let bytes: Vec<u8> = match &lit.data {
        LiteralData::Pred(x) => x.iter().map(|&b| u8::from(b)).collect(),
        LiteralData::U8(x) => x.clone(),
        LiteralData::S32(x) => x.iter().flat_map(|e| e.to_le_bytes()).collect(),
        LiteralData::S64(x) => x.iter().flat_map(|e| e.to_le_bytes()).collect(),
        LiteralData::U32(x) => x.iter().flat_map(|e| e.to_le_bytes()).collect(),
        LiteralData::U64(x) => x.iter().flat_map(|e| e.to_le_bytes()).collect(),
        LiteralData::Bf16(x) | LiteralData::F16(x) => {
            x.iter().flat_map(|e| e.to_le_bytes()).collect()
        }
        LiteralData::F32(x) => x.iter().flat_map(|e| e.to_le_bytes()).collect(),
        LiteralData::F64(x) => x.iter().flat_map(|e| e.to_le_bytes()).collect(),
    };
    HostArray::from_bytes(pjrt_type(lit.data.element_type()), &lit.dims, bytes)
        .expect("a well-formed host array")
}

fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// A host array from PJRT as a value (panics on element types the IR lacks).
pub fn from_host(h: &HostArray) -> Value {
    let b = &h.bytes;
    let data = match h.element_type {
        pjrt::ElementType::Pred => LiteralData::Pred(b.iter().map(|&x| x != 0).collect()),
        pjrt::ElementType::U8 => LiteralData::U8(b.clone()),
        pjrt::ElementType::S32 => LiteralData::S32(chunks(b).map(i32::from_le_bytes).collect()),
        pjrt::ElementType::S64 => LiteralData::S64(chunks(b).map(i64::from_le_bytes).collect()),
        pjrt::ElementType::U32 => LiteralData::U32(chunks(b).map(u32::from_le_bytes).collect()),
        pjrt::ElementType::U64 => LiteralData::U64(chunks(b).map(u64::from_le_bytes).collect()),
        pjrt::ElementType::Bf16 => LiteralData::Bf16(chunks(b).map(u16::from_le_bytes).collect()),
        pjrt::ElementType::F16 => LiteralData::F16(chunks(b).map(u16::from_le_bytes).collect()),
        pjrt::ElementType::F32 => LiteralData::F32(chunks(b).map(f32::from_le_bytes).collect()),
        pjrt::ElementType::F64 => LiteralData::F64(chunks(b).map(f64::from_le_bytes).collect()),
        t => panic!("PJRT returned an element type the IR does not have: {t:?}"),
    };
    let lit = simclr::ir::Literal::new(h.dims.clone(), data).expect("consistent host array");
    Value::from_literal(&lit).expect("a literal value")
}

/// Compiles `module` on the CPU plugin for its replica count and runs it:
/// `outputs[replica][i]`.
pub fn run_pjrt(module: &Module, args: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let exe = client()
        .compile(
            &module.to_proto(),
            &CompileOptions::new(module.num_replicas),
        )
        .unwrap_or_else(|e| panic!("{}: the CPU plugin rejects the module: {e}", module.name));
    let host: Vec<Vec<HostArray>> = args
        .iter()
        .map(|l| l.iter().map(to_host).collect())
        .collect();
    let out = exe
        .execute_host(&host)
        .unwrap_or_else(|e| panic!("{}: execution on the CPU plugin fails: {e}", module.name));
    out.iter()
        .map(|l| l.iter().map(from_host).collect())
        .collect()
}

/// Runs `module` on the reference evaluator: `outputs[replica][i]`.
pub fn run_interp(module: &Module, args: &[Vec<Value>]) -> Vec<Vec<Value>> {
    interp::evaluate(module, args)
        .unwrap_or_else(|e| panic!("{}: the reference evaluator fails: {e}", module.name))
}

/// Orders floats so that adjacent representable values differ by one.
fn ordered(bits: i64) -> i64 {
    if bits < 0 {
        i64::MIN - bits
    } else {
        bits
    }
}

/// Distance in units in the last place of `ty` between two finite floats.
pub fn ulp_distance(ty: ElementType, a: f64, b: f64) -> u64 {
    let key = |x: f64| -> i64 {
        match ty {
            ElementType::F64 => ordered(x.to_bits() as i64),
            ElementType::Bf16 => ordered(i64::from((x as f32).to_bits() as i32)) >> 16,
            ElementType::F16 => {
                // Scale so that an f16 ulp is 2^13 f32 ulps in the normal range.
                ordered(i64::from((x as f32).to_bits() as i32)) >> 13
            }
            _ => ordered(i64::from((x as f32).to_bits() as i32)),
        }
    };
    key(a).abs_diff(key(b))
}

/// The elements of a value as f64 (exact for every type but s64/u64 above
/// 2^53; those are compared through [`exact_bits`]).
fn floats(v: &Value) -> Vec<f64> {
    v.to_f64_vec().expect("an array")
}

fn exact_bits(v: &Value) -> Vec<u64> {
    match v {
        Value::S64(a) => a.iter().map(|&x| x as u64).collect(),
        Value::U64(a) => a.iter().copied().collect(),
        Value::F64(a) => a.iter().map(|x| x.to_bits()).collect(),
        Value::F32(a) | Value::Bf16(a) | Value::F16(a) => {
            a.iter().map(|x| u64::from(x.to_bits())).collect()
        }
        other => floats(other).iter().map(|&x| x as i64 as u64).collect(),
    }
}

/// Compares one output; `Err` says which element and by how much.
pub fn compare(got: &Value, want: &Value, tol: Tol) -> Result<(), String> {
    if got.ty() != want.ty() {
        return Err(format!(
            "type {} differs from the reference's {}",
            got.type_string(),
            want.type_string()
        ));
    }
    let Some(shape) = want.shape() else {
        return Err("tuple outputs are flattened by both backends; got a tuple".into());
    };
    let ty = shape.ty;
    let (g, w) = (floats(got), floats(want));
    let (gb, wb) = (exact_bits(got), exact_bits(want));
    let mut worst: Option<(usize, f64)> = None;
    for i in 0..w.len() {
        let (a, b) = (g[i], w[i]);
        let both_nan = a.is_nan() && b.is_nan();
        let ok = both_nan
            || match tol {
                _ if !ty.is_float() => gb[i] == wb[i],
                Tol::Exact => gb[i] == wb[i],
                Tol::Ulp(n) => {
                    a == b || (a.is_finite() && b.is_finite() && ulp_distance(ty, a, b) <= n)
                }
                Tol::Close { abs, rel } => a == b || (a - b).abs() <= abs + rel * b.abs(),
            };
        if !ok {
            let err = if a.is_finite() && b.is_finite() {
                (a - b).abs()
            } else {
                f64::INFINITY
            };
            if worst.is_none_or(|(_, e)| err > e) {
                worst = Some((i, err));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, err)) => {
            let bad = (0..w.len())
                .filter(|&k| {
                    !(g[k].is_nan() && w[k].is_nan())
                        && (gb[k] != wb[k] || !ty.is_float())
                        && g[k] != w[k]
                })
                .count();
            let index = unravel(i, &shape);
            let same_sign = g[i].is_sign_negative() == w[i].is_sign_negative();
            let ulps = if ty.is_float() && g[i].is_finite() && w[i].is_finite() && same_sign {
                format!(", {} ulp", ulp_distance(ty, g[i], w[i]))
            } else {
                String::new()
            };
            Err(format!(
                "{shape}: element {index:?} is {} on PJRT but {} on interp (off by {err:e}{ulps}; \
                 tolerance {tol:?}; {bad} of {} elements differ)",
                g[i],
                w[i],
                w.len()
            ))
        }
    }
}

fn unravel(mut i: usize, shape: &Shape) -> Vec<i64> {
    let mut idx = vec![0; shape.rank()];
    for d in (0..shape.rank()).rev() {
        let n = shape.dims[d].max(1) as usize;
        idx[d] = (i % n) as i64;
        i /= n;
    }
    idx
}

/// Runs `module` with `args[replica]` on the CPU plugin and on `interp` and
/// asserts that every output of every replica agrees within `tol`; the
/// panic message names the module (name it after the op and its
/// attributes), the output, the replica, the shape and the difference.
/// Returns the (checked) PJRT outputs.
#[track_caller]
pub fn check(module: &Module, args: &[Vec<Value>], tol: Tol) -> Vec<Vec<Value>> {
    check_each(module, args, &|_| tol)
}

/// [`check`] with a tolerance per output index.
#[track_caller]
pub fn check_each(
    module: &Module,
    args: &[Vec<Value>],
    tol: &dyn Fn(usize) -> Tol,
) -> Vec<Vec<Value>> {
    let want = run_interp(module, args);
    let got = run_pjrt(module, args);
    assert_eq!(
        got.len(),
        want.len(),
        "{}: replica counts differ",
        module.name
    );
    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.len(),
            w.len(),
            "{}: replica {r} has {} outputs on PJRT, {} on interp",
            module.name,
            g.len(),
            w.len()
        );
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            if let Err(e) = compare(a, b, tol(i)) {
                let args: Vec<String> = args[r].iter().map(Value::type_string).collect();
                panic!(
                    "{} (arguments {}): output {i} of replica {r}: {e}",
                    module.name,
                    args.join(", ")
                );
            }
        }
    }
    got
}

/// SplitMix64: deterministic data from a proptest-drawn seed.
#[derive(Clone, Debug)]
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

    /// One of `items`.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.int(0, items.len() as i64 - 1) as usize].clone()
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

    /// Random dims: rank in `ranks`, each extent in `1..=max`.
    pub fn dims(&mut self, ranks: std::ops::RangeInclusive<usize>, max: i64) -> Vec<i64> {
        let r = self.int(*ranks.start() as i64, *ranks.end() as i64) as usize;
        (0..r).map(|_| self.int(1, max)).collect()
    }

    /// A value of `shape` with floats uniform in `[lo, hi)` (integers: the
    /// same range truncated; unsigned types clamp at 0; pred: a coin).
    pub fn value(&mut self, shape: &Shape, lo: f64, hi: f64) -> Value {
        let n = shape.numel();
        let d = &shape.dims;
        let v = match shape.ty {
            ElementType::Pred => Value::from_bool(d, (0..n).map(|_| self.coin()).collect()),
            ElementType::F64 => Value::from_f64(d, (0..n).map(|_| self.uniform(lo, hi)).collect()),
            ty => {
                let xs: Vec<f64> = (0..n)
                    .map(|_| {
                        let x = self.uniform(lo, hi);
                        if ty.is_float() {
                            x
                        } else {
                            x.floor()
                        }
                    })
                    .collect();
                let lit = match ty {
                    ElementType::U8 => LiteralData::U8(xs.iter().map(|&x| x as u8).collect()),
                    ElementType::S32 => LiteralData::S32(xs.iter().map(|&x| x as i32).collect()),
                    ElementType::S64 => LiteralData::S64(xs.iter().map(|&x| x as i64).collect()),
                    ElementType::U32 => LiteralData::U32(xs.iter().map(|&x| x as u32).collect()),
                    ElementType::U64 => LiteralData::U64(xs.iter().map(|&x| x as u64).collect()),
                    ElementType::Bf16 => LiteralData::Bf16(
                        xs.iter()
                            .map(|&x| simclr::ir::f32_to_bf16(x as f32))
                            .collect(),
                    ),
                    ElementType::F16 => LiteralData::F16(
                        xs.iter()
                            .map(|&x| simclr::ir::f32_to_f16(x as f32))
                            .collect(),
                    ),
                    _ => LiteralData::F32(xs.iter().map(|&x| x as f32).collect()),
                };
                let lit = simclr::ir::Literal::new(d.clone(), lit).expect("consistent literal");
                return Value::from_literal(&lit).expect("a value");
            }
        };
        v.expect("consistent value")
    }

    /// Random bits of every element of `shape` (integers: any value; floats:
    /// finite values of any magnitude and sign).
    pub fn bits(&mut self, shape: &Shape) -> Value {
        let n = shape.numel();
        let d = &shape.dims;
        match shape.ty {
            ElementType::S32 => {
                Value::from_i32(d, (0..n).map(|_| self.next_u64() as i32).collect())
            }
            ElementType::U32 => {
                Value::from_u32(d, (0..n).map(|_| self.next_u64() as u32).collect())
            }
            ElementType::U64 => Value::from_u64(d, (0..n).map(|_| self.next_u64()).collect()),
            ElementType::S64 => {
                let lit = simclr::ir::Literal::new(
                    d.clone(),
                    LiteralData::S64((0..n).map(|_| self.next_u64() as i64).collect()),
                )
                .expect("literal");
                Value::from_literal(&lit)
            }
            ElementType::U8 => {
                let lit = simclr::ir::Literal::new(
                    d.clone(),
                    LiteralData::U8((0..n).map(|_| self.next_u64() as u8).collect()),
                )
                .expect("literal");
                Value::from_literal(&lit)
            }
            ElementType::F32 => Value::from_f32(
                d,
                (0..n)
                    .map(|_| loop {
                        let x = f32::from_bits(self.next_u64() as u32);
                        if x.is_finite() {
                            break x;
                        }
                    })
                    .collect(),
            ),
            ElementType::F64 => Value::from_f64(
                d,
                (0..n)
                    .map(|_| loop {
                        let x = f64::from_bits(self.next_u64());
                        if x.is_finite() {
                            break x;
                        }
                    })
                    .collect(),
            ),
            ElementType::Pred => Value::from_bool(d, (0..n).map(|_| self.coin()).collect()),
            _ => return self.value(shape, -4.0, 4.0),
        }
        .expect("consistent value")
    }
}

/// A proptest configuration with `cases` cases and no regression files
/// (the seeds are printed on failure).
pub fn cases(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
