//! Small canonical programs whose HLO text is kept under `hlo/` as golden
//! files (`hlo/<name>.hlo`, plus the proto bytes as `hlo/<name>.pb` for
//! XLA's own parser and printer, `tools/hlo_check/run`).
//!
//! The programs are defined once here and used by the golden test
//! (`tests/hlo_golden.rs`) and by the regeneration command
//! `SIMCLR_BLESS=1 cargo test --test hlo_golden`.
//!
//! Metadata records the Rust source position of every op, which would make
//! the goldens change whenever this file is edited. Golden protos therefore
//! have `source_file`/`source_line` cleared ([`golden_proto`]); the op type
//! and scoped op name stay.
//!
//! Not here: the printer itself (`print.rs`), model code (these programs
//! are written out with raw ops on purpose, so they do not move when the
//! `nn` layers change).

use super::attrs::{ComparisonDirection, ConvDims, ReplicaGroups, Window, WindowDim};
use super::builder::Builder;
use super::error::Error;
use super::module::Module;
use super::op::BinaryOp;
use super::print::{to_text_with, PrintOptions};
use super::types::{ElementType, Shape, Type};
use crate::proto;

fn f32s(dims: &[i64]) -> Shape {
    Shape::new(ElementType::F32, dims)
}

/// Conv (NHWC, 3×3, stride 1, SAME padding) → batch norm composed from
/// reduces (mean and biased variance over N,H,W, `rsqrt(var + 1e-5)`, γ, β)
/// → relu. Inputs: images `f32[2,8,8,3]`, kernel `f32[3,3,3,4]` (HWIO),
/// gamma `f32[4]`, beta `f32[4]`; output `f32[2,8,8,4]`.
///
/// # Errors
/// Only if the IR rejects the program (a bug).
pub fn conv_bn_relu() -> Result<Module, Error> {
    let b = Builder::new("conv_bn_relu", 1);
    let x = b.parameter("images", f32s(&[2, 8, 8, 3]));
    let w = b.parameter("kernel", f32s(&[3, 3, 3, 4]));
    let gamma = b.parameter("gamma", f32s(&[4]));
    let beta = b.parameter("beta", f32s(&[4]));
    let y = {
        let _s = b.scope("conv2d");
        let window = Window::new(vec![WindowDim::new(3).pad(1, 1); 2]);
        x.conv_general(&w, window, ConvDims::nhwc(), 1, 1)
    };
    let normed = {
        let _s = b.scope("batch_norm");
        let mean = y.mean(&[0, 1, 2]);
        let centered = &y - &mean;
        let var = (&centered * &centered).mean(&[0, 1, 2]);
        let scale = (var + 1e-5).rsqrt() * &gamma;
        &centered * &scale + &beta
    };
    let out = {
        let _s = b.scope("relu");
        normed.relu()
    };
    b.build(&[&out])
}

/// Softmax cross-entropy of logits `f32[8,10]` against one-hot labels
/// `f32[8,10]`, averaged over the batch (a scalar), with the max-shifted
/// log-sum-exp.
///
/// # Errors
/// Only if the IR rejects the program (a bug).
pub fn softmax_cross_entropy() -> Result<Module, Error> {
    let b = Builder::new("softmax_cross_entropy", 1);
    let logits = b.parameter("logits", f32s(&[8, 10]));
    let labels = b.parameter("labels", f32s(&[8, 10]));
    let _s = b.scope("softmax_cross_entropy");
    let max = logits.reduce_max(&[1]).broadcast_in_dim(&[8, 10], &[0]);
    let shifted = &logits - &max;
    let lse = shifted
        .exp()
        .sum(&[1])
        .log()
        .broadcast_in_dim(&[8, 10], &[0]);
    let log_probs = &shifted - &lse;
    let loss = (&labels * &log_probs).sum(&[1]).mean(&[0]).neg();
    b.build(&[&loss])
}

/// An all-reduce (sum) of `f32[4,3]` across 4 replicas, then divided by 4
/// (the cross-replica mean of a gradient).
///
/// # Errors
/// Only if the IR rejects the program (a bug).
pub fn all_reduce_mean() -> Result<Module, Error> {
    let b = Builder::new("all_reduce_mean", 4);
    let g = b.parameter("grad", f32s(&[4, 3]));
    let _s = b.scope("cross_replica_mean");
    let mean = g.all_reduce_sum(ReplicaGroups::All) * 0.25;
    b.build(&[&mean])
}

/// The module of HLO.md §9: 3×3 stride-2 max pool (pad 1) of
/// `f32[2,3,8,8]` (NCHW) as `reduce-window`, its gradient for
/// dy `f32[2,3,4,4]` as `select-and-scatter` (`ge`, `add`), and a 2×2
/// sum pool.
///
/// # Errors
/// Only if the IR rejects the program (a bug).
pub fn maxpool_and_grad() -> Result<Module, Error> {
    let b = Builder::new("maxpool_and_grad", 1);
    let max = b.reducer(BinaryOp::Maximum, ElementType::F32);
    let scalar = Type::Array(Shape::scalar(ElementType::F32));
    let ge = b.computation("ge", &[scalar.clone(), scalar], |p| {
        p[0].compare(ComparisonDirection::Ge, &p[1])
    });
    let add = b.reducer(BinaryOp::Add, ElementType::F32);
    let x = b.parameter("x", f32s(&[2, 3, 8, 8]));
    let dy = b.parameter("dy", f32s(&[2, 3, 4, 4]));
    let pool = Window::new(vec![
        WindowDim::new(1),
        WindowDim::new(1),
        WindowDim::new(3).stride(2).pad(1, 1),
        WindowDim::new(3).stride(2).pad(1, 1),
    ]);
    let pooled = x.reduce_window(&x.scalar_like(f64::NEG_INFINITY), pool.clone(), max);
    let zero = x.scalar_like(0.0);
    let dx = x.select_and_scatter(&dy, &zero, pool, ge, add);
    let sum_pool = Window::new(vec![
        WindowDim::new(1),
        WindowDim::new(1),
        WindowDim::new(2).stride(2),
        WindowDim::new(2).stride(2),
    ]);
    let summed = x.reduce_window(&zero, sum_pool, add);
    b.build(&[&pooled, &dx, &summed])
}

/// A function that builds one golden program.
pub type Program = fn() -> Result<Module, Error>;

/// Every golden program by file stem (`hlo/<name>.hlo`).
pub fn programs() -> Vec<(&'static str, Program)> {
    vec![
        ("conv_bn_relu", conv_bn_relu as Program),
        ("softmax_cross_entropy", softmax_cross_entropy),
        ("all_reduce_mean", all_reduce_mean),
        ("maxpool_and_grad", maxpool_and_grad),
    ]
}

/// A module as it is written to files: the lowered proto, its serialized
/// bytes and its HLO text. The golden files (`hlo/<name>.{hlo,pb}`) and
/// `simclr export_hlo` (`module.hlo.txt`, `module.pb`) both come from here,
/// so what the golden test checks is what users export.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifacts {
    /// The lowered module.
    pub proto: proto::HloModuleProto,
    /// `proto` serialized (what PJRT compiles).
    pub bytes: Vec<u8>,
    /// `proto` printed in XLA's text syntax, with the module's replica count.
    pub text: String,
}

/// Lowers and prints `m`. With `source_positions` false, `source_file` and
/// `source_line` are cleared from every instruction's metadata (golden
/// files must not change when code moves); the op type and scoped op name
/// stay either way.
///
/// # Errors
/// Those of [`super::to_text_with`] (none for a built module).
pub fn artifacts(m: &Module, source_positions: bool) -> Result<Artifacts, Error> {
    let p = if source_positions {
        m.to_proto()
    } else {
        golden_proto(m)
    };
    let text = to_text_with(
        &p,
        &PrintOptions {
            replica_count: m.num_replicas,
            source_positions,
            ..PrintOptions::default()
        },
    )?;
    let bytes = prost::Message::encode_to_vec(&p);
    Ok(Artifacts {
        proto: p,
        bytes,
        text,
    })
}

/// The module's proto with source positions cleared from metadata, so the
/// golden files do not depend on where the program's code sits.
pub fn golden_proto(m: &Module) -> proto::HloModuleProto {
    let mut p = m.to_proto();
    for c in &mut p.computations {
        for i in &mut c.instructions {
            if let Some(md) = &mut i.metadata {
                md.source_file.clear();
                md.source_line = 0;
            }
        }
    }
    p
}

/// The golden text of a module: [`artifacts`] without source positions.
///
/// # Errors
/// Those of [`super::to_text_with`] (none for a built module).
pub fn golden_text(m: &Module) -> Result<String, Error> {
    artifacts(m, false).map(|a| a.text)
}
