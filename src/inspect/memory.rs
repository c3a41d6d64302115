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
use serde::{Deserialize, Serialize};
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

/// The memory one replica needs according to XLA's compiled buffer sizes
/// (`PJRT_Executable_GetCompiledMemoryStats`), device and host together.
///
/// `total_bytes` = arguments + temporaries + outputs − aliased outputs: the
/// buffers the executable holds while it runs. The plugin's own
/// `peak_memory_in_bytes` is kept apart: on the CPU plugin it is about the
/// argument size and leaves the temporaries out, so it is never the
/// headline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledNeed {
    /// Arguments (device + host).
    pub argument_bytes: u64,
    /// Temporaries (device + host).
    pub temporary_bytes: u64,
    /// Outputs (device + host).
    pub output_bytes: u64,
    /// Outputs aliased to donated arguments (device + host).
    pub alias_bytes: u64,
    /// Generated code (device + host); not part of `total_bytes`.
    pub generated_code_bytes: u64,
    /// Arguments + temporaries + outputs − aliased.
    pub total_bytes: u64,
    /// The plugin's `peak_memory_in_bytes`, as reported.
    pub plugin_peak_bytes: u64,
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The per-replica need from XLA's compiled statistics.
pub fn compiled_need(s: &CompiledMemoryStats) -> CompiledNeed {
    let argument_bytes = nonneg(s.argument_size_in_bytes) + nonneg(s.host_argument_size_in_bytes);
    let temporary_bytes = nonneg(s.temp_size_in_bytes) + nonneg(s.host_temp_size_in_bytes);
    let output_bytes = nonneg(s.output_size_in_bytes) + nonneg(s.host_output_size_in_bytes);
    let alias_bytes = nonneg(s.alias_size_in_bytes) + nonneg(s.host_alias_size_in_bytes);
    CompiledNeed {
        argument_bytes,
        temporary_bytes,
        output_bytes,
        alias_bytes,
        generated_code_bytes: nonneg(s.generated_code_size_in_bytes)
            + nonneg(s.host_generated_code_size_in_bytes),
        total_bytes: (argument_bytes + temporary_bytes + output_bytes).saturating_sub(alias_bytes),
        plugin_peak_bytes: nonneg(s.peak_memory_in_bytes),
    }
}

/// Where a per-replica headline figure comes from.
pub const SOURCE_COMPILED: &str = "compiled buffers (arguments + temporaries + outputs - aliased)";
/// The headline is the analytic estimate (no compiled statistics).
pub const SOURCE_ESTIMATE: &str = "analytic estimate (arguments + activation peak)";

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
    /// The figures derived from `compiled`, when compiled.
    pub compiled_need: Option<CompiledNeed>,
    /// The headline: bytes one replica needs (`compiled_need.total_bytes`
    /// when compiled, else `estimate.total_bytes`). The CLI summary and the
    /// report's index show this figure.
    pub per_replica_bytes: u64,
    /// Which figure `per_replica_bytes` is ([`SOURCE_COMPILED`] or
    /// [`SOURCE_ESTIMATE`]).
    pub per_replica_source: String,
}

impl MemoryReport {
    /// A report with the estimate only (`status` and `message` say why).
    pub fn from_estimate(
        program: &str,
        replicas: usize,
        status: &str,
        message: Option<String>,
        estimate: MemoryEstimate,
    ) -> MemoryReport {
        MemoryReport {
            program: program.to_string(),
            replicas,
            status: status.to_string(),
            out_of_memory: false,
            message,
            compiled: None,
            estimate,
            compiled_need: None,
            per_replica_bytes: estimate.total_bytes,
            per_replica_source: SOURCE_ESTIMATE.into(),
        }
    }

    /// Records XLA's compiled statistics and makes the headline theirs.
    pub fn set_compiled(&mut self, stats: CompiledMemoryStats) {
        let need = compiled_need(&stats);
        self.compiled = Some(stats);
        self.compiled_need = Some(need);
        self.per_replica_bytes = need.total_bytes;
        self.per_replica_source = SOURCE_COMPILED.into();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the CPU plugin reported for the R152 3×+SK 224² B4096 pretraining
    /// step on 4 replicas: its "peak" is about the arguments and leaves out
    /// 1.2 TB of temporaries.
    fn r152_on_cpu() -> CompiledMemoryStats {
        CompiledMemoryStats {
            argument_size_in_bytes: 8_252_615_752,
            output_size_in_bytes: 7_019_500_588,
            alias_size_in_bytes: 7_019_486_280,
            temp_size_in_bytes: 1_242_387_080_832,
            peak_memory_in_bytes: 8_255_038_536,
            ..CompiledMemoryStats::default()
        }
    }

    #[test]
    fn the_headline_is_arguments_plus_temporaries_plus_outputs_minus_aliased_not_the_plugin_peak() {
        let s = r152_on_cpu();
        let mut r =
            MemoryReport::from_estimate("pretrain", 4, "compiled", None, MemoryEstimate::default());
        r.set_compiled(s);
        let want = 8_252_615_752 + 1_242_387_080_832 + 7_019_500_588 - 7_019_486_280;
        assert_eq!(r.per_replica_bytes, want);
        assert_ne!(
            r.per_replica_bytes, s.peak_memory_in_bytes as u64,
            "the plugin's peak must not be the headline"
        );
        assert!(r.per_replica_bytes > 100 * s.peak_memory_in_bytes as u64);
        let need = r.compiled_need.expect("need");
        assert_eq!(need.plugin_peak_bytes, 8_255_038_536);
        assert_eq!(r.per_replica_source, SOURCE_COMPILED);
    }

    #[test]
    fn host_buffers_count_and_negative_figures_count_as_zero() {
        let s = CompiledMemoryStats {
            argument_size_in_bytes: 100,
            temp_size_in_bytes: -1,
            output_size_in_bytes: 40,
            alias_size_in_bytes: 30,
            host_argument_size_in_bytes: 5,
            host_temp_size_in_bytes: 7,
            host_output_size_in_bytes: 3,
            host_alias_size_in_bytes: 2,
            ..CompiledMemoryStats::default()
        };
        let n = compiled_need(&s);
        assert_eq!(n.total_bytes, 105 + 7 + 43 - 32);
    }
}
