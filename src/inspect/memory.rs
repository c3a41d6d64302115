//! Memory of a step program per replica: what XLA reports after compiling
//! (`PJRT_Executable_GetCompiledMemoryStats`), and an analytic estimate
//! from the unoptimized module that needs no compiler, for configurations
//! that do not compile or do not fit.
//!
//! The estimate: arguments are the entry parameters, split into data
//! inputs, model variables and optimizer state (slots and the global
//! step) by the step program's parameter map; activations are the peak of
//! the bytes live at once when the entry computation runs in program order,
//! each value living from its instruction to its last use (no fusion, no
//! rematerialization, so it is an upper bound of what XLA needs beside the
//! arguments). Outputs aliased to donated arguments need no memory of
//! their own.

use super::cost::shape_bytes;
use crate::pjrt::CompiledMemoryStats;
use crate::proto::{HloComputationProto, HloModuleProto};
use crate::simclr::StepProgram;
use serde::Serialize;
use std::collections::HashMap;

/// An analytic memory estimate of one replica's step, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// Data inputs (images, labels).
    pub input_bytes: u64,
    /// Model variables (weights, BN statistics).
    pub parameter_bytes: u64,
    /// Optimizer slots and the global step.
    pub optimizer_state_bytes: u64,
    /// All entry parameters (the three above).
    pub argument_bytes: u64,
    /// The entry computation's result.
    pub output_bytes: u64,
    /// Outputs aliased to donated arguments.
    pub alias_bytes: u64,
    /// Peak bytes of intermediate values live at once (program order).
    pub activation_peak_bytes: u64,
    /// Arguments plus the activation peak: what one replica would need.
    pub total_bytes: u64,
}

/// Opcodes whose result takes no memory of its own (views and constants
/// folded into their users).
const NO_BUFFER: &[&str] = &[
    "parameter",
    "tuple",
    "get-tuple-element",
    "bitcast",
    "reshape",
    "constant",
    "after-all",
];

fn entry(m: &HloModuleProto) -> Option<&HloComputationProto> {
    m.computations
        .iter()
        .find(|c| c.id == m.entry_computation_id)
        .or_else(|| m.computations.last())
}

/// The estimate for `program` from its unoptimized `module` proto.
pub fn estimate(program: &StepProgram, module: &HloModuleProto) -> MemoryEstimate {
    let mut e = MemoryEstimate::default();
    let Some(c) = entry(module) else {
        return e;
    };
    let n_inputs = program.inputs.len() as i64;
    let n_vars = program.vars.len() as i64;
    for i in c.instructions.iter().filter(|i| i.opcode == "parameter") {
        let b = i.shape.as_ref().map(shape_bytes).unwrap_or(0);
        let p = i.parameter_number;
        if p < n_inputs {
            e.input_bytes += b;
        } else if p < n_inputs + n_vars {
            e.parameter_bytes += b;
        } else {
            e.optimizer_state_bytes += b;
        }
    }
    e.argument_bytes = e.input_bytes + e.parameter_bytes + e.optimizer_state_bytes;
    let index: HashMap<i64, usize> = c
        .instructions
        .iter()
        .enumerate()
        .map(|(k, i)| (i.id, k))
        .collect();
    let n = c.instructions.len();
    let mut last_use: Vec<usize> = (0..n).collect();
    for (k, i) in c.instructions.iter().enumerate() {
        for o in &i.operand_ids {
            if let Some(&j) = index.get(o) {
                last_use[j] = last_use[j].max(k);
            }
        }
    }
    let root = index.get(&c.root_id).copied();
    if let Some(r) = root {
        e.output_bytes = c.instructions[r]
            .shape
            .as_ref()
            .map(shape_bytes)
            .unwrap_or(0);
        // Values the root tuple returns stay live to the end.
        for o in &c.instructions[r].operand_ids {
            if let Some(&j) = index.get(o) {
                last_use[j] = n;
            }
        }
        last_use[r] = n;
    }
    if let (Some(alias), Some(r)) = (&module.input_output_alias, root) {
        let out = c.instructions[r].shape.as_ref();
        for a in &alias.entries {
            let b = match (out, a.output_shape_index.first()) {
                (Some(s), Some(&k)) => s.tuple_shapes.get(k as usize).map(shape_bytes),
                (Some(s), None) => Some(shape_bytes(s)),
                _ => None,
            };
            e.alias_bytes += b.unwrap_or(0);
        }
    }
    // Sweep: add each value at its definition, free it after its last use.
    let mut frees: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    let mut live: u64 = 0;
    let mut peak: u64 = 0;
    for (k, i) in c.instructions.iter().enumerate() {
        if !NO_BUFFER.contains(&i.opcode.as_str()) {
            live += i.shape.as_ref().map(shape_bytes).unwrap_or(0);
            frees[last_use[k].min(n)].push(k);
        }
        peak = peak.max(live);
        for &j in &frees[k] {
            live -= c.instructions[j]
                .shape
                .as_ref()
                .map(shape_bytes)
                .unwrap_or(0);
        }
    }
    e.activation_peak_bytes = peak;
    e.total_bytes = e.argument_bytes + peak;
    e
}

/// What `memory.json` holds for one program.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryReport {
    /// Program name (`pretrain`, `finetune`, `eval`).
    pub program: String,
    /// Replicas the program runs on; every figure is per replica.
    pub replicas: usize,
    /// `compiled`, `compile_failed` or `not_compiled` (`--no_compile`).
    pub status: String,
    /// True when the compiler or plugin refused for lack of memory.
    pub out_of_memory: bool,
    /// Why there are no compiled statistics, when there are none.
    pub message: Option<String>,
    /// XLA's compiled memory statistics, when compiled.
    pub compiled: Option<CompiledMemoryStats>,
    /// The analytic estimate (always present).
    pub estimate: MemoryEstimate,
}

/// Whether a compiler or plugin error message says memory ran out.
pub fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "resource_exhausted",
        "resource exhausted",
        "out of memory",
        "oom",
        "failed to allocate",
        "cannot allocate",
        "exceeds the memory",
        "bad_alloc",
    ]
    .iter()
    .any(|k| m.contains(k))
}
