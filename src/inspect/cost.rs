//! Analytic cost of an HLO module, per instruction and per layer.
//!
//! PJRT's cost analysis is per program only (and unimplemented on newer CPU
//! plugins), so the costs here are computed from shapes, the same way for
//! the module we lower and for the optimized module a plugin hands back:
//!
//! * **FLOPs**: `dot` 2·(result elements)·(contracted size); `convolution`
//!   2·(result elements)·(kernel spatial taps)·(kernel input features), i.e.
//!   2·N·Ho·Wo·Cout·kh·kw·Cin/groups, counting every tap of a dense
//!   implementation (taps on padding and dilation holes included; XLA's
//!   own per-program analysis counts only taps on real input, so it reports
//!   fewer FLOPs for padded and dilated convolutions);
//!   elementwise arithmetic one per result element; `reduce` one per input
//!   element; `reduce-window` one per window tap; `select-and-scatter` one
//!   per window tap plus one per source element.
//! * **Transcendentals**: one per result element of `exp`, `log`, `tanh`,
//!   `rsqrt`, `sqrt`, `power`, … (as XLA counts them).
//! * **Bytes accessed**: operand bytes plus result bytes of each top-level
//!   instruction of the entry computation; a fusion reads its operands and
//!   writes its result once (its members' traffic stays in registers).
//!   Parameters, tuples, `get-tuple-element` and `bitcast` move nothing.
//!
//! A fusion (or `call`) attributes its members' FLOPs to the members' own
//! layers; its bytes go to the fusion's layer. The layer of an instruction
//! is the scope of its `metadata.op_name` (the name without the last
//! component); gradient ops (`gradients/<forward scope>/…`) count towards
//! the forward layer, as backward work. Instructions XLA creates without
//! metadata are `unattributed`, in the layer `(unscoped)`.
//!
//! Not here: timings (XLA's cost model per backend), and `while` trip
//! counts (a loop body counts once).

use crate::proto::{self, HloComputationProto, HloInstructionProto, HloModuleProto, ShapeProto};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Costs of one instruction (FLOPs, transcendentals, bytes accessed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Floating-point operations (a multiply-add counts two).
    pub flops: f64,
    /// Transcendental function evaluations.
    pub transcendentals: f64,
    /// Bytes read and written from memory.
    pub bytes_accessed: f64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.flops += o.flops;
        self.transcendentals += o.transcendentals;
        self.bytes_accessed += o.bytes_accessed;
    }
}

/// Which pass of the step an instruction belongs to, by its `op_name`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// Forward (and loss, optimizer, everything not under `gradients/`).
    #[default]
    Forward,
    /// Gradient ops (`gradients/…`).
    Backward,
    /// No `op_name`: instructions XLA created without metadata (for
    /// example the weight-gradient convolutions it rewrites).
    Unattributed,
}

impl Pass {
    /// `forward`, `backward` or `unattributed`.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Backward => "backward",
            Pass::Unattributed => "unattributed",
        }
    }
}

/// One instruction with its cost; fusions and calls carry their members.
#[derive(Clone, Debug, Serialize)]
pub struct InstrCost {
    /// Instruction id in the module.
    pub id: i64,
    /// Instruction name (`fusion.12`, `convolution.40`).
    pub name: String,
    /// HLO opcode.
    pub opcode: String,
    /// Result shape without layout (`f32[8,32,32,64]`).
    pub shape: String,
    /// `metadata.op_name` (empty when the instruction has none).
    pub op_name: String,
    /// The layer: the forward scope of `op_name` (see the module docs).
    pub layer: String,
    /// Forward, backward (`op_name` under `gradients/`) or unattributed.
    pub pass: Pass,
    /// FLOPs and transcendentals of this instruction including its members;
    /// bytes accessed of this instruction alone.
    pub cost: Cost,
    /// Members of a fusion or `call`, in the callee's order.
    pub members: Vec<InstrCost>,
    /// The element type of a floating-point result (`bf16`, `f32`, …);
    /// `None` for integer, predicate and tuple results.
    pub float_type: Option<String>,
    /// Bytes of the result.
    pub result_bytes: f64,
    /// Bytes the result would take in f32 minus its bytes: what a bf16
    /// (or f16) result saves (0 for f32 and wider).
    pub bytes_saved: f64,
}

/// Costs summed over a layer and everything under it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerCost {
    /// Scope path (`base_model/block_group2`), `(unscoped)` for ops without one.
    pub layer: String,
    /// Number of `/`-separated components.
    pub depth: usize,
    /// All costs.
    pub total: Cost,
    /// FLOPs of forward ops.
    pub forward_flops: f64,
    /// FLOPs of gradient ops.
    pub backward_flops: f64,
    /// FLOPs of instructions without metadata.
    pub unattributed_flops: f64,
    /// Instructions counted (fusion members included, fusions themselves not).
    pub instructions: usize,
    /// Result bytes of the floating-point instructions counted, by element
    /// type (`bf16`, `f32`, …).
    pub float_result_bytes: BTreeMap<String, f64>,
    /// Result bytes saved against f32 by narrower float results (see
    /// [`InstrCost::bytes_saved`]).
    pub bytes_saved: f64,
}

impl LayerCost {
    /// The float element types of the layer's results with their share of
    /// the result bytes, largest first: `bf16 71% · f32 29%`, or `f32`
    /// alone; `-` when the layer has no float result.
    pub fn dtype_summary(&self) -> String {
        let total: f64 = self.float_result_bytes.values().sum();
        if total <= 0.0 {
            return "-".into();
        }
        let mut v: Vec<(&String, &f64)> = self.float_result_bytes.iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        if v.len() == 1 {
            return v[0].0.clone();
        }
        v.iter()
            .map(|(t, b)| {
                let share = 100.0 * **b / total;
                if share < 0.5 {
                    format!("{t} <1%")
                } else {
                    format!("{t} {share:.0}%")
                }
            })
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// Costs of one opcode, forward and backward apart.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpcodeCost {
    /// HLO opcode.
    pub opcode: String,
    /// Forward, backward or unattributed.
    pub pass: Pass,
    /// Number of instructions.
    pub count: usize,
    /// Their FLOPs.
    pub flops: f64,
    /// Their transcendentals.
    pub transcendentals: f64,
}

/// The analytic cost of a module.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleCost {
    /// Sums over the entry computation.
    pub totals: Cost,
    /// Every layer prefix, sorted by path.
    pub layers: Vec<LayerCost>,
    /// Per opcode and direction (fusion members counted under their own
    /// opcode, fusions not).
    pub by_opcode: Vec<OpcodeCost>,
    /// The entry computation's instructions, in the proto's order.
    #[serde(skip)]
    pub instructions: Vec<InstrCost>,
}

/// Name of the layer of instructions without a scope.
pub const UNSCOPED: &str = "(unscoped)";

/// Bytes of one element of `ty` (`proto::PrimitiveType` as i32); 0 for
/// tuples, tokens and unknown types.
pub fn element_bytes(ty: i32) -> u64 {
    use proto::PrimitiveType as P;
    match P::try_from(ty) {
        Ok(P::Pred | P::S8 | P::U8) => 1,
        Ok(P::S16 | P::U16 | P::F16 | P::Bf16) => 2,
        Ok(P::S32 | P::U32 | P::F32) => 4,
        Ok(P::S64 | P::U64 | P::F64 | P::C64) => 8,
        Ok(P::C128) => 16,
        _ => 0,
    }
}

/// Number of elements of an array shape (1 for a scalar, 0 for a tuple).
pub fn elements(s: &ShapeProto) -> u64 {
    if !s.tuple_shapes.is_empty() || s.element_type == proto::PrimitiveType::Tuple as i32 {
        return 0;
    }
    s.dimensions.iter().map(|&d| d.max(0) as u64).product()
}

/// Bytes of a shape, tuple elements summed.
pub fn shape_bytes(s: &ShapeProto) -> u64 {
    if s.element_type == proto::PrimitiveType::Tuple as i32 || !s.tuple_shapes.is_empty() {
        return s.tuple_shapes.iter().map(shape_bytes).sum();
    }
    elements(s) * element_bytes(s.element_type)
}

/// A shape as text without layout: `f32[8,32]`, `(f32[2], s32[])`.
pub fn shape_text(s: &ShapeProto) -> String {
    use proto::PrimitiveType as P;
    if s.element_type == P::Tuple as i32 || !s.tuple_shapes.is_empty() {
        let parts: Vec<String> = s.tuple_shapes.iter().map(shape_text).collect();
        return format!("({})", parts.join(", "));
    }
    let ty = P::try_from(s.element_type)
        .map(|p| p.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| "?".into());
    let dims: Vec<String> = s.dimensions.iter().map(|d| d.to_string()).collect();
    format!("{ty}[{}]", dims.join(","))
}

/// The layer of an `op_name` and whether it is a gradient op:
/// `gradients/base_model/conv2d/convolution` → (`base_model/conv2d`, true).
pub fn layer_of(op_name: &str) -> (String, bool) {
    let mut rest = op_name;
    let mut backward = false;
    // The step builds gradients under `gradients/`, and autodiff scopes each
    // gradient op as `gradients/<forward scope>` inside it.
    while let Some(r) = rest.strip_prefix("gradients/") {
        rest = r;
        backward = true;
    }
    let scope = rest.rsplit_once('/').map(|(s, _)| s).unwrap_or("");
    let scope = if scope.is_empty() { UNSCOPED } else { scope };
    (scope.to_string(), backward)
}

const TRANSCENDENTAL: &[&str] = &[
    "exponential",
    "exponential-minus-one",
    "log",
    "log-plus-one",
    "tanh",
    "rsqrt",
    "sqrt",
    "cbrt",
    "power",
    "logistic",
    "sine",
    "cosine",
    "tan",
    "atan2",
    "erf",
];

const ELEMENTWISE: &[&str] = &[
    "add",
    "subtract",
    "multiply",
    "divide",
    "remainder",
    "maximum",
    "minimum",
    "abs",
    "negate",
    "sign",
    "floor",
    "ceil",
    "round-nearest-afz",
    "round-nearest-even",
    "compare",
    "select",
    "clamp",
    "and",
    "or",
    "xor",
    "not",
    "is-finite",
    "shift-left",
    "shift-right-logical",
    "shift-right-arithmetic",
    "popcnt",
    "count-leading-zeros",
    "real",
    "imag",
    "stochastic-convert",
];

/// Opcodes that move no memory of their own.
const FREE: &[&str] = &[
    "parameter",
    "constant",
    "tuple",
    "get-tuple-element",
    "bitcast",
    "after-all",
    "partition-id",
    "replica-id",
];

struct Ctx<'a> {
    comps: HashMap<i64, &'a HloComputationProto>,
}

impl<'a> Ctx<'a> {
    fn instr(
        &self,
        by_id: &HashMap<i64, &'a HloInstructionProto>,
        i: &HloInstructionProto,
        top_level: bool,
    ) -> InstrCost {
        let empty = ShapeProto::default();
        let shape = i.shape.as_ref().unwrap_or(&empty);
        let operands: Vec<&ShapeProto> = i
            .operand_ids
            .iter()
            .filter_map(|id| by_id.get(id).and_then(|x| x.shape.as_ref()))
            .collect();
        let op = i.opcode.as_str();
        let out = elements(shape) as f64;
        let mut cost = Cost::default();
        let mut members = Vec::new();
        match op {
            "fusion" | "call" | "while" | "conditional" | "async-start" => {
                for cid in &i.called_computation_ids {
                    if let Some(callee) = self.comps.get(cid) {
                        let inner: HashMap<i64, &HloInstructionProto> =
                            callee.instructions.iter().map(|x| (x.id, x)).collect();
                        for m in &callee.instructions {
                            let mc = self.instr(&inner, m, false);
                            cost.flops += mc.cost.flops;
                            cost.transcendentals += mc.cost.transcendentals;
                            members.push(mc);
                        }
                    }
                }
            }
            "dot" => {
                let contracted: f64 = match (&i.dot_dimension_numbers, operands.first()) {
                    (Some(d), Some(lhs)) => d
                        .lhs_contracting_dimensions
                        .iter()
                        .filter_map(|&k| lhs.dimensions.get(k as usize))
                        .map(|&v| v as f64)
                        .product(),
                    _ => 1.0,
                };
                cost.flops = 2.0 * out * contracted;
            }
            "convolution" => {
                if let (Some(d), Some(rhs)) = (&i.convolution_dimension_numbers, operands.get(1)) {
                    let taps: f64 = d
                        .kernel_spatial_dimensions
                        .iter()
                        .filter_map(|&k| rhs.dimensions.get(k as usize))
                        .map(|&v| v as f64)
                        .product();
                    let cin = rhs
                        .dimensions
                        .get(d.kernel_input_feature_dimension as usize)
                        .copied()
                        .unwrap_or(1) as f64;
                    cost.flops = 2.0 * out * taps * cin;
                }
            }
            "reduce" => {
                let n = operands.len() / 2;
                let input: f64 = operands
                    .iter()
                    .take(n.max(1))
                    .map(|s| elements(s) as f64)
                    .sum();
                cost.flops = input;
            }
            "reduce-window" => {
                let taps: f64 = i
                    .window
                    .as_ref()
                    .map(|w| w.dimensions.iter().map(|d| d.size.max(1) as f64).product())
                    .unwrap_or(1.0);
                cost.flops = out * taps;
            }
            "select-and-scatter" => {
                let taps: f64 = i
                    .window
                    .as_ref()
                    .map(|w| w.dimensions.iter().map(|d| d.size.max(1) as f64).product())
                    .unwrap_or(1.0);
                let source = operands.get(1).map(|s| elements(s) as f64).unwrap_or(0.0);
                cost.flops = source * taps + source;
            }
            "all-reduce" | "reduce-scatter" => {
                cost.flops = operands.iter().map(|s| elements(s) as f64).sum();
            }
            o if TRANSCENDENTAL.contains(&o) => cost.transcendentals = out,
            o if ELEMENTWISE.contains(&o) => cost.flops = out,
            _ => {}
        }
        if top_level && !FREE.contains(&op) {
            let read: u64 = operands.iter().map(|s| shape_bytes(s)).sum();
            cost.bytes_accessed = (read + shape_bytes(shape)) as f64;
        }
        let op_name = i
            .metadata
            .as_ref()
            .map(|m| m.op_name.clone())
            .unwrap_or_default();
        let (layer, pass) = if op_name.is_empty() {
            // A fusion without metadata takes the layer of its root member.
            members
                .last()
                .map(|m: &InstrCost| (m.layer.clone(), m.pass))
                .unwrap_or_else(|| (UNSCOPED.to_string(), Pass::Unattributed))
        } else {
            let (l, backward) = layer_of(&op_name);
            (
                l,
                if backward {
                    Pass::Backward
                } else {
                    Pass::Forward
                },
            )
        };
        let (float_type, result_bytes, bytes_saved) = float_result(shape);
        InstrCost {
            id: i.id,
            name: i.name.clone(),
            opcode: i.opcode.clone(),
            shape: shape_text(shape),
            op_name,
            layer,
            pass,
            cost,
            members,
            float_type,
            result_bytes,
            bytes_saved,
        }
    }
}

/// The float element type of an array shape, its bytes, and the bytes it
/// saves against f32.
fn float_result(s: &ShapeProto) -> (Option<String>, f64, f64) {
    use proto::PrimitiveType as P;
    let bytes = shape_bytes(s) as f64;
    match P::try_from(s.element_type) {
        Ok(p @ (P::Bf16 | P::F16 | P::F32 | P::F64)) if s.tuple_shapes.is_empty() => {
            let n = elements(s) as f64;
            let saved = (4.0 * n - bytes).max(0.0);
            (Some(p.as_str_name().to_ascii_lowercase()), bytes, saved)
        }
        _ => (None, bytes, 0.0),
    }
}

fn entry(m: &HloModuleProto) -> Option<&HloComputationProto> {
    m.computations
        .iter()
        .find(|c| c.id == m.entry_computation_id)
        .or_else(|| {
            m.computations
                .iter()
                .find(|c| c.name == m.entry_computation_name)
        })
        .or_else(|| m.computations.last())
}

fn add_leaf(
    layers: &mut BTreeMap<String, LayerCost>,
    ops: &mut BTreeMap<(String, Pass), OpcodeCost>,
    i: &InstrCost,
) {
    let mut self_cost = i.cost;
    if !i.members.is_empty() {
        // Members carry the compute; the fusion itself carries the bytes.
        self_cost.flops = 0.0;
        self_cost.transcendentals = 0.0;
        for m in i.members.iter().filter(|m| m.opcode != "parameter") {
            add_leaf(layers, ops, m);
        }
    } else {
        let o = ops
            .entry((i.opcode.clone(), i.pass))
            .or_insert_with(|| OpcodeCost {
                opcode: i.opcode.clone(),
                pass: i.pass,
                ..OpcodeCost::default()
            });
        o.count += 1;
        o.flops += i.cost.flops;
        o.transcendentals += i.cost.transcendentals;
    }
    let parts: Vec<&str> = i.layer.split('/').collect();
    for d in 1..=parts.len() {
        let path = parts[..d].join("/");
        let l = layers.entry(path.clone()).or_insert_with(|| LayerCost {
            layer: path,
            depth: d,
            ..LayerCost::default()
        });
        l.total += self_cost;
        match i.pass {
            Pass::Forward => l.forward_flops += self_cost.flops,
            Pass::Backward => l.backward_flops += self_cost.flops,
            Pass::Unattributed => l.unattributed_flops += self_cost.flops,
        }
        if i.members.is_empty() {
            l.instructions += 1;
        }
        if i.members.is_empty() && i.opcode != "parameter" && i.opcode != "constant" {
            if let Some(t) = &i.float_type {
                *l.float_result_bytes.entry(t.clone()).or_insert(0.0) += i.result_bytes;
                l.bytes_saved += i.bytes_saved;
            }
        }
    }
}

/// The analytic cost of `module` (see the module docs for the rules).
/// A module without computations has zero cost.
pub fn analyze(module: &HloModuleProto) -> ModuleCost {
    let ctx = Ctx {
        comps: module.computations.iter().map(|c| (c.id, c)).collect(),
    };
    let mut instructions = Vec::new();
    if let Some(e) = entry(module) {
        let by_id: HashMap<i64, &HloInstructionProto> =
            e.instructions.iter().map(|x| (x.id, x)).collect();
        for i in &e.instructions {
            instructions.push(ctx.instr(&by_id, i, true));
        }
    }
    let mut totals = Cost::default();
    let mut layers = BTreeMap::new();
    let mut ops = BTreeMap::new();
    for i in &instructions {
        totals += i.cost;
        add_leaf(&mut layers, &mut ops, i);
    }
    ModuleCost {
        totals,
        layers: layers.into_values().collect(),
        by_opcode: ops.into_values().collect(),
        instructions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_of_strips_gradients_and_the_opcode() {
        assert_eq!(
            layer_of("gradients/gradients/base_model/conv2d/convolution"),
            ("base_model/conv2d".to_string(), true)
        );
        assert_eq!(layer_of("add"), (UNSCOPED.to_string(), false));
    }
}
