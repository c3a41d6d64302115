//! The program representation: HLO-level ops traced from Rust.
//!
//! A [`Builder`] records ops as [`Tensor`] methods are called; every op is an
//! HLO instruction with typed attributes ([`Op`]), checked by its shape rule
//! when built. [`Builder::build`] yields a [`Module`], which lowers to an
//! `HloModuleProto` and prints in XLA's own text syntax.
//!
//! Not here: composite layers (convolution with TF padding, batch norm,
//! softmax cross-entropy) live in `nn`/`simclr`; gradients live in `ad`;
//! evaluation lives in `interp`.

mod attrs;
mod builder;
mod error;
pub mod golden;
mod literal;
mod lower;
mod module;
mod op;
mod print;
mod tensor;
mod types;

pub use attrs::{
    ComparisonDirection, ConvDims, DotDims, PadDim, ReplicaGroups, RngAlgorithm, Window, WindowDim,
};
pub use builder::{Builder, ScopeGuard, Tensor};
pub use error::Error;
pub use literal::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, Literal, LiteralData};
pub use module::{Alias, Computation, Module, Node, NodeId};
pub use op::{BinaryOp, CompId, Op, Signature, UnaryOp};
pub use print::{from_proto_bytes, to_text, to_text_with, PrintOptions};
pub use types::{ElementType, Shape, Type};
