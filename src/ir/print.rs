//! The HLO text printer: an `xla.HloModuleProto` rendered in the syntax XLA
//! itself prints (`HloModule::ToString`), as in `xla_dump_to` dumps.
//!
//! It reads the proto, not the IR, so it prints our lowered modules and the
//! optimized modules a PJRT plugin hands back alike (fusions, `calls=`,
//! `kind=kLoop`, `backend_config`, any layout, opcodes the IR lacks).
//! Attributes of opcodes it does not know are printed best-effort from the
//! proto fields that are set; it never panics. Only structural damage (an
//! operand, root or callee id that does not exist) is an error.
//!
//! Orders follow XLA: computations callee-first (XLA's computation post
//! order) with `ENTRY` last, and instructions in XLA's post order (a DFS from
//! the unused instructions, operands in order), so parameters appear where
//! first needed; a scheduled module (`schedule` set, as in optimized
//! modules) prints `is_scheduled=true` and each computation in its
//! schedule's order.
//!
//! Not here: parsing text (XLA's parser is the reference, see
//! `tools/hlo_check/`), and anything XLA's proto subset in `proto/xla.proto`
//! does not carry (shardings, newer metadata fields …): such fields are
//! dropped by prost when decoding and cannot be printed.

use super::error::Error;
use super::module::Module;
use crate::proto;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// What to include when printing. The default prints everything XLA's
/// dumps print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintOptions {
    /// Printed as `replica_count=N` in the header when greater than 1. The
    /// proto does not carry it (it is compile configuration).
    pub replica_count: usize,
    /// Print `metadata={...}`.
    pub metadata: bool,
    /// Print `source_file` and `source_line` inside metadata. Off for golden
    /// files, so that they do not change when code moves.
    pub source_positions: bool,
}

impl Default for PrintOptions {
    fn default() -> PrintOptions {
        PrintOptions {
            replica_count: 1,
            metadata: true,
            source_positions: true,
        }
    }
}

/// Decodes serialized `HloModuleProto` bytes.
///
/// # Errors
/// [`Error::Proto`] when the bytes are not a valid `HloModuleProto`.
pub fn from_proto_bytes(bytes: &[u8]) -> Result<proto::HloModuleProto, Error> {
    proto::HloModuleProto::decode(bytes).map_err(|e| Error::Proto(e.to_string()))
}

/// The module in XLA's HLO text syntax, with default [`PrintOptions`].
///
/// # Errors
/// [`Error::Proto`] when an operand, root, callee or entry id names nothing.
pub fn to_text(module: &proto::HloModuleProto) -> Result<String, Error> {
    to_text_with(module, &PrintOptions::default())
}

/// The module in XLA's HLO text syntax.
///
/// # Errors
/// [`Error::Proto`] when an operand, root, callee or entry id names nothing.
pub fn to_text_with(module: &proto::HloModuleProto, opts: &PrintOptions) -> Result<String, Error> {
    Printer::new(module, opts)?.print()
}

impl Module {
    /// This module's HLO text (lowered, then printed with
    /// `replica_count` set from the module).
    pub fn to_text(&self) -> String {
        self.to_text_with(&PrintOptions::default())
    }

    /// This module's HLO text with the given options; `replica_count` is
    /// always taken from the module.
    pub fn to_text_with(&self, opts: &PrintOptions) -> String {
        let opts = PrintOptions {
            replica_count: self.num_replicas,
            ..opts.clone()
        };
        // A lowered module always has consistent ids, so this cannot fail;
        // should it, the error is returned as text rather than a panic.
        to_text_with(&self.to_proto(), &opts).unwrap_or_else(|e| format!("/* {e} */\n"))
    }
}

struct Printer<'a> {
    m: &'a proto::HloModuleProto,
    opts: &'a PrintOptions,
    /// Computation index by id.
    comp_by_id: HashMap<i64, usize>,
    entry: usize,
}

impl<'a> Printer<'a> {
    fn new(m: &'a proto::HloModuleProto, opts: &'a PrintOptions) -> Result<Printer<'a>, Error> {
        if m.computations.is_empty() {
            return Err(Error::Proto("module has no computations".into()));
        }
        let comp_by_id: HashMap<i64, usize> = m
            .computations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        let entry = comp_by_id
            .get(&m.entry_computation_id)
            .copied()
            .or_else(|| {
                m.computations.iter().position(|c| {
                    !m.entry_computation_name.is_empty() && c.name == m.entry_computation_name
                })
            })
            .unwrap_or(m.computations.len() - 1);
        Ok(Printer {
            m,
            opts,
            comp_by_id,
            entry,
        })
    }

    fn comp_name(&self, id: i64) -> Result<String, Error> {
        self.comp_by_id
            .get(&id)
            .map(|&i| format!("%{}", sanitize(&self.m.computations[i].name)))
            .ok_or_else(|| Error::Proto(format!("called computation id {id} does not exist")))
    }

    fn print(&self) -> Result<String, Error> {
        let mut out = String::new();
        self.header(&mut out);
        out.push_str("\n\n");
        for ci in self.computation_order()? {
            if ci == self.entry {
                out.push_str("ENTRY ");
            }
            self.computation(ci, &mut out)?;
            out.push_str("\n\n");
        }
        Ok(out)
    }

    fn header(&self, out: &mut String) {
        let m = self.m;
        let _ = write!(out, "HloModule {}", sanitize(&m.name));
        if m.schedule.is_some() {
            out.push_str(", is_scheduled=true");
        }
        if let Some(a) = m
            .input_output_alias
            .as_ref()
            .filter(|a| !a.entries.is_empty())
        {
            let mut entries: Vec<_> = a.entries.iter().collect();
            entries.sort_by(|x, y| x.output_shape_index.cmp(&y.output_shape_index));
            let parts: Vec<String> = entries
                .iter()
                .map(|e| {
                    let kind = if e.kind == proto::Kind::MustAlias as i32 {
                        "must-alias"
                    } else {
                        "may-alias"
                    };
                    format!(
                        "{}: ({}, {}, {})",
                        shape_index(&e.output_shape_index),
                        e.parameter_number,
                        shape_index(&e.parameter_shape_index),
                        kind
                    )
                })
                .collect();
            let _ = write!(out, ", input_output_alias={{ {} }}", parts.join(", "));
        }
        if let Some(d) = m.buffer_donor.as_ref().filter(|d| !d.entries.is_empty()) {
            let mut entries: Vec<_> = d.entries.iter().collect();
            entries.sort_by(|x, y| {
                (x.parameter_number, &x.parameter_shape_index)
                    .cmp(&(y.parameter_number, &y.parameter_shape_index))
            });
            let parts: Vec<String> = entries
                .iter()
                .map(|e| {
                    format!(
                        "({}, {})",
                        e.parameter_number,
                        shape_index(&e.parameter_shape_index)
                    )
                })
                .collect();
            let _ = write!(out, ", buffer_donor={{ {} }}", parts.join(", "));
        }
        let (params, result) = self.entry_layout();
        let _ = write!(
            out,
            ", entry_computation_layout={{({})->{}}}",
            join_indexed(&params),
            result
        );
        if self.opts.replica_count > 1 {
            let _ = write!(out, ", replica_count={}", self.opts.replica_count);
        }
        if let Some(fa) = m.frontend_attributes.as_ref().filter(|f| !f.map.is_empty()) {
            let _ = write!(out, ", frontend_attributes={}", frontend_attributes(fa));
        }
    }

    /// Parameter and result shapes (with layouts) of the entry: the host
    /// program shape when present, else the entry's own instructions.
    fn entry_layout(&self) -> (Vec<String>, String) {
        if let Some(ps) = &self.m.host_program_shape {
            if let Some(r) = &ps.result {
                return (
                    ps.parameters.iter().map(|s| shape(s, true)).collect(),
                    shape(r, true),
                );
            }
        }
        let c = &self.m.computations[self.entry];
        let params = parameters(c)
            .iter()
            .map(|p| {
                p.shape
                    .as_ref()
                    .map_or_else(String::new, |s| shape(s, true))
            })
            .collect();
        let result = c
            .instructions
            .iter()
            .find(|i| i.id == c.root_id)
            .and_then(|i| i.shape.as_ref())
            .map_or_else(String::new, |s| shape(s, true));
        (params, result)
    }

    /// XLA's `MakeComputationPostOrder`: every computation nobody calls, in
    /// module order, preceded by the computations it calls (depth first);
    /// the entry is moved last.
    fn computation_order(&self) -> Result<Vec<usize>, Error> {
        let comps = &self.m.computations;
        let mut called = HashSet::new();
        for c in comps {
            for i in &c.instructions {
                for id in &i.called_computation_ids {
                    let ci = self.comp_by_id.get(id).copied().ok_or_else(|| {
                        Error::Proto(format!(
                            "instruction {} calls unknown computation id {id}",
                            i.name
                        ))
                    })?;
                    called.insert(ci);
                }
            }
        }
        let mut added = HashSet::new();
        let mut order = Vec::new();
        for root in 0..comps.len() {
            if called.contains(&root) {
                continue;
            }
            for e in self.embedded(root) {
                if added.insert(e) {
                    order.push(e);
                }
            }
            if added.insert(root) {
                order.push(root);
            }
        }
        // Computations only reachable through a call cycle are still printed.
        for i in 0..comps.len() {
            if added.insert(i) {
                order.push(i);
            }
        }
        if let Some(p) = order.iter().position(|&c| c == self.entry) {
            order.remove(p);
            order.push(self.entry);
        }
        Ok(order)
    }

    /// XLA's `MakeEmbeddedComputationsList`: the computations `root` calls,
    /// transitively, callees before callers.
    fn embedded(&self, root: usize) -> Vec<usize> {
        let comps = &self.m.computations;
        let mut visited = HashSet::new();
        let mut post = Vec::new();
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let push_called =
            |ids: &[i64], stack: &mut Vec<(usize, usize)>, visited: &mut HashSet<usize>| {
                for id in ids.iter().rev() {
                    if let Some(&ci) = self.comp_by_id.get(id) {
                        if visited.insert(ci) {
                            stack.push((ci, 0));
                        }
                    }
                }
            };
        for inst in sorted_by_id(&comps[root]) {
            push_called(&inst.called_computation_ids, &mut stack, &mut visited);
            while let Some(top) = stack.last_mut() {
                let (ci, pos) = *top;
                let instrs = sorted_by_id(&comps[ci]);
                if pos >= instrs.len() {
                    stack.pop();
                    post.push(ci);
                } else {
                    top.1 += 1;
                    push_called(
                        &instrs[pos].called_computation_ids,
                        &mut stack,
                        &mut visited,
                    );
                }
            }
        }
        post
    }

    fn computation(&self, ci: usize, out: &mut String) -> Result<(), Error> {
        let c = &self.m.computations[ci];
        let by_id: HashMap<i64, &proto::HloInstructionProto> =
            c.instructions.iter().map(|i| (i.id, i)).collect();
        let root = by_id.get(&c.root_id).ok_or_else(|| {
            Error::Proto(format!(
                "computation {} has no root instruction (root_id {})",
                c.name, c.root_id
            ))
        })?;
        let params: Vec<String> = parameters(c)
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    sanitize(&p.name),
                    p.shape
                        .as_ref()
                        .map_or_else(String::new, |s| shape(s, false))
                )
            })
            .collect();
        let result = root
            .shape
            .as_ref()
            .map_or_else(String::new, |s| shape(s, false));
        let _ = writeln!(
            out,
            "%{} ({}) -> {} {{",
            sanitize(&c.name),
            params.join(", "),
            result
        );
        let sequence = self
            .m
            .schedule
            .as_ref()
            .and_then(|s| s.sequences.get(&c.id));
        let order = match sequence {
            Some(seq) => scheduled_order(c, &by_id, &seq.instruction_ids),
            None => post_order(c, &by_id)?,
        };
        for inst in order {
            out.push_str("  ");
            if inst.id == c.root_id {
                out.push_str("ROOT ");
            }
            self.instruction(inst, &by_id, out)?;
            out.push('\n');
        }
        out.push('}');
        Ok(())
    }

    fn instruction(
        &self,
        inst: &proto::HloInstructionProto,
        by_id: &HashMap<i64, &proto::HloInstructionProto>,
        out: &mut String,
    ) -> Result<(), Error> {
        let operand = |id: &i64| -> Result<&proto::HloInstructionProto, Error> {
            by_id.get(id).copied().ok_or_else(|| {
                Error::Proto(format!(
                    "instruction {} has unknown operand id {id}",
                    inst.name
                ))
            })
        };
        let operands: Vec<&proto::HloInstructionProto> = inst
            .operand_ids
            .iter()
            .map(operand)
            .collect::<Result<_, _>>()?;
        let _ = write!(
            out,
            "%{} = {} {}(",
            sanitize(&inst.name),
            inst.shape
                .as_ref()
                .map_or_else(String::new, |s| shape(s, true)),
            inst.opcode
        );
        match inst.opcode.as_str() {
            "parameter" => {
                let _ = write!(out, "{}", inst.parameter_number);
            }
            "constant" => out.push_str(&constant(inst)),
            _ => {
                let names: Vec<String> = operands
                    .iter()
                    .map(|o| format!("%{}", sanitize(&o.name)))
                    .collect();
                out.push_str(&join_indexed(&names));
            }
        }
        out.push(')');
        let mut attrs = self.op_attrs(inst, &operands);
        attrs.extend(self.called_attrs(inst, &operands)?);
        if let Some(sh) = &inst.sharding {
            attrs.push(format!("sharding={}", sharding(sh)));
        }
        if let Some(fa) = inst
            .frontend_attributes
            .as_ref()
            .filter(|f| !f.map.is_empty())
        {
            attrs.push(format!("frontend_attributes={}", frontend_attributes(fa)));
        }
        if !inst.control_predecessor_ids.is_empty() {
            let preds: Vec<String> = inst
                .control_predecessor_ids
                .iter()
                .map(|id| operand(id).map(|o| format!("%{}", sanitize(&o.name))))
                .collect::<Result<_, _>>()?;
            attrs.push(format!("control-predecessors={{{}}}", preds.join(", ")));
        }
        if self.opts.metadata {
            if let Some(md) = &inst.metadata {
                let s = metadata(md, self.opts.source_positions);
                if !s.is_empty() {
                    attrs.push(format!("metadata={{{s}}}"));
                }
            }
        }
        if !inst.backend_config.is_empty() {
            let cfg = String::from_utf8_lossy(&inst.backend_config);
            if lexes_as_json_dict(&cfg) {
                attrs.push(format!("backend_config={cfg}"));
            } else {
                attrs.push(format!("backend_config=\"{}\"", c_escape(&cfg)));
            }
        }
        for a in attrs {
            out.push_str(", ");
            out.push_str(&a);
        }
        Ok(())
    }

    /// The opcode's own attributes (XLA's `PrintExtraAttributesImpl`).
    fn op_attrs(
        &self,
        i: &proto::HloInstructionProto,
        operands: &[&proto::HloInstructionProto],
    ) -> Vec<String> {
        let mut a = Vec::new();
        let dims = || format!("dimensions={}", list(&i.dimensions));
        match i.opcode.as_str() {
            "parameter" | "constant" => {}
            "broadcast" | "transpose" | "reverse" | "concatenate" | "reduce" | "map" => {
                a.push(dims())
            }
            "sort" => {
                a.push(dims());
                if i.is_stable {
                    a.push("is_stable=true".into());
                }
            }
            "all-reduce" | "all-reduce-start" => {
                self.collective(i, &mut a);
                if i.use_global_device_ids {
                    a.push("use_global_device_ids=true".into());
                }
            }
            "all-gather" | "all-gather-start" | "reduce-scatter" => {
                self.collective(i, &mut a);
                a.push(dims());
                if i.use_global_device_ids {
                    a.push("use_global_device_ids=true".into());
                }
            }
            "all-to-all" => {
                self.collective(i, &mut a);
                if !i.dimensions.is_empty() {
                    a.push(dims());
                }
            }
            "collective-permute"
            | "collective-permute-start"
            | "send"
            | "recv"
            | "send-done"
            | "recv-done" => {
                if i.channel_id > 0 {
                    a.push(format!("channel_id={}", i.channel_id));
                }
            }
            "compare" => {
                a.push(format!("direction={}", i.comparison_direction));
                if !i.comparison_type.is_empty() {
                    let default = operands
                        .first()
                        .and_then(|o| o.shape.as_ref())
                        .map(|s| default_comparison_type(s.element_type));
                    if default != Some(i.comparison_type.as_str()) {
                        a.push(format!("type={}", i.comparison_type));
                    }
                }
            }
            "slice" => a.push(format!("slice={}", slice(&i.slice_dimensions))),
            "dynamic-slice" => a.push(format!(
                "dynamic_slice_sizes={}",
                list(&i.dynamic_slice_sizes)
            )),
            "pad" => {
                if let Some(p) = &i.padding_config {
                    a.push(format!("padding={}", padding(p)));
                }
            }
            "iota" => a.push(format!(
                "iota_dimension={}",
                i.dimensions.first().copied().unwrap_or(0)
            )),
            "get-tuple-element" => a.push(format!("index={}", i.tuple_index)),
            "convolution" => {
                if let Some(w) = i.window.as_ref().filter(|w| !w.dimensions.is_empty()) {
                    a.push(format!("window={{{}}}", window(w)));
                }
                if let Some(d) = &i.convolution_dimension_numbers {
                    a.push(format!("dim_labels={}", dim_labels(d)));
                }
                if i.feature_group_count > 1 {
                    a.push(format!("feature_group_count={}", i.feature_group_count));
                }
                if i.batch_group_count > 1 {
                    a.push(format!("batch_group_count={}", i.batch_group_count));
                }
                a.extend(precision(i.precision_config.as_ref()));
            }
            "dot" => {
                if let Some(d) = &i.dot_dimension_numbers {
                    a.push(dot_dims(d));
                }
                a.extend(precision(i.precision_config.as_ref()));
            }
            "reduce-window" | "select-and-scatter" => {
                if let Some(w) = &i.window {
                    a.push(format!("window={{{}}}", window(w)));
                }
            }
            "rng" => a.push(format!(
                "distribution={}",
                match i.distribution {
                    1 => "rng_uniform".to_string(),
                    2 => "rng_normal".to_string(),
                    d => format!("rng_invalid_{d}"),
                }
            )),
            "rng-bit-generator" => a.push(format!(
                "algorithm={}",
                match i.rng_algorithm {
                    0 => "rng_default".to_string(),
                    1 => "rng_three_fry".to_string(),
                    2 => "rng_philox".to_string(),
                    x => format!("rng_unknown_{x}"),
                }
            )),
            "reduce-precision" => {
                a.push(format!("exponent_bits={}", i.exponent_bits));
                a.push(format!("mantissa_bits={}", i.mantissa_bits));
            }
            "batch-norm-training" | "batch-norm-inference" | "batch-norm-grad" => {
                a.push(format!("epsilon={}", format_g(f64::from(i.epsilon), 6)));
                a.push(format!("feature_index={}", i.feature_index));
            }
            "gather" => {
                if let Some(d) = &i.gather_dimension_numbers {
                    a.push(gather_dims(d));
                }
                a.push(format!("slice_sizes={}", list(&i.gather_slice_sizes)));
                if i.indices_are_sorted {
                    a.push("indices_are_sorted=true".into());
                }
            }
            "scatter" => {
                if let Some(d) = &i.scatter_dimension_numbers {
                    a.push(scatter_dims(d));
                }
                if i.indices_are_sorted {
                    a.push("indices_are_sorted=true".into());
                }
                if i.unique_indices {
                    a.push("unique_indices=true".into());
                }
            }
            "fusion" => {
                if !i.fusion_kind.is_empty() {
                    a.push(format!("kind={}", i.fusion_kind));
                }
            }
            "custom-call" => {
                a.push(format!(
                    "custom_call_target=\"{}\"",
                    c_escape(&i.custom_call_target)
                ));
            }
            // Best effort for the rest: whatever generic fields are set.
            _ => {
                if i.channel_id > 0 {
                    a.push(format!("channel_id={}", i.channel_id));
                }
                if !i.dimensions.is_empty() {
                    a.push(dims());
                }
                if let Some(w) = i.window.as_ref().filter(|w| !w.dimensions.is_empty()) {
                    a.push(format!("window={{{}}}", window(w)));
                }
            }
        }
        a
    }

    /// `channel_id` and `replica_groups` of a collective.
    fn collective(&self, i: &proto::HloInstructionProto, a: &mut Vec<String>) {
        if i.channel_id > 0 {
            a.push(format!("channel_id={}", i.channel_id));
        }
        a.push(format!("replica_groups={}", replica_groups(i)));
    }

    /// References to called computations (`to_apply=`, `body=`, `calls=` …).
    fn called_attrs(
        &self,
        i: &proto::HloInstructionProto,
        operands: &[&proto::HloInstructionProto],
    ) -> Result<Vec<String>, Error> {
        let called: Vec<String> = i
            .called_computation_ids
            .iter()
            .map(|&id| self.comp_name(id))
            .collect::<Result<_, _>>()?;
        if called.is_empty() {
            return Ok(vec![]);
        }
        Ok(match i.opcode.as_str() {
            "while" if called.len() == 2 => vec![
                format!("condition={}", called[1]),
                format!("body={}", called[0]),
            ],
            "select-and-scatter" if called.len() == 2 => vec![
                format!("select={}", called[0]),
                format!("scatter={}", called[1]),
            ],
            "conditional" => {
                let pred = operands
                    .first()
                    .and_then(|o| o.shape.as_ref())
                    .is_some_and(|s| s.element_type == proto::PrimitiveType::Pred as i32);
                if pred && called.len() == 2 {
                    vec![
                        format!("true_computation={}", called[0]),
                        format!("false_computation={}", called[1]),
                    ]
                } else {
                    vec![format!("branch_computations={{{}}}", called.join(", "))]
                }
            }
            "call" | "map" | "reduce-window" | "reduce" | "all-reduce" | "reduce-scatter"
            | "all-reduce-start" | "scatter" | "topk" | "sort" => {
                vec![format!("to_apply={}", called[0])]
            }
            "custom-call" => vec![format!("called_computations={{{}}}", called.join(", "))],
            _ => vec![format!("calls={}", called.join(", "))],
        })
    }
}

/// Parameter instructions by parameter number.
fn parameters(c: &proto::HloComputationProto) -> Vec<&proto::HloInstructionProto> {
    let mut ps: Vec<&proto::HloInstructionProto> = c
        .instructions
        .iter()
        .filter(|i| i.opcode == "parameter")
        .collect();
    ps.sort_by_key(|p| p.parameter_number);
    ps
}

/// Instructions in id order (the order XLA rebuilds a computation in).
fn sorted_by_id(c: &proto::HloComputationProto) -> Vec<&proto::HloInstructionProto> {
    let mut v: Vec<&proto::HloInstructionProto> = c.instructions.iter().collect();
    v.sort_by_key(|i| i.id);
    v
}

/// The order of a scheduled computation: its sequence (unknown ids
/// skipped), then any instruction the sequence leaves out, in id order.
fn scheduled_order<'c>(
    c: &'c proto::HloComputationProto,
    by_id: &HashMap<i64, &'c proto::HloInstructionProto>,
    sequence: &[i64],
) -> Vec<&'c proto::HloInstructionProto> {
    let mut seen = HashSet::new();
    let mut order: Vec<&proto::HloInstructionProto> = sequence
        .iter()
        .filter_map(|id| by_id.get(id).copied())
        .filter(|i| seen.insert(i.id))
        .collect();
    order.extend(sorted_by_id(c).into_iter().filter(|i| seen.insert(i.id)));
    order
}

/// XLA's `MakeInstructionPostOrder`: a depth-first post order from every
/// instruction without users (in id order), operands first in operand
/// order, then control predecessors.
fn post_order<'c>(
    c: &'c proto::HloComputationProto,
    by_id: &HashMap<i64, &'c proto::HloInstructionProto>,
) -> Result<Vec<&'c proto::HloInstructionProto>, Error> {
    let instrs = sorted_by_id(c);
    let mut used = HashSet::new();
    for i in &instrs {
        for o in &i.operand_ids {
            if !by_id.contains_key(o) {
                return Err(Error::Proto(format!(
                    "instruction {} has unknown operand id {o}",
                    i.name
                )));
            }
            used.insert(*o);
        }
    }
    // 0 unvisited, 1 visiting, 2 done.
    let mut state: HashMap<i64, u8> = HashMap::new();
    let mut order = Vec::with_capacity(instrs.len());
    for r in &instrs {
        if used.contains(&r.id) {
            continue;
        }
        let mut stack = vec![r.id];
        while let Some(&top) = stack.last() {
            match state.get(&top).copied().unwrap_or(0) {
                2 => {
                    stack.pop();
                }
                1 => {
                    stack.pop();
                    state.insert(top, 2);
                    order.push(by_id[&top]);
                }
                _ => {
                    state.insert(top, 1);
                    let inst = by_id[&top];
                    for id in inst.control_predecessor_ids.iter().rev() {
                        if by_id.contains_key(id) && state.get(id).copied().unwrap_or(0) == 0 {
                            stack.push(*id);
                        }
                    }
                    for id in inst.operand_ids.iter().rev() {
                        // A cycle (state 1) cannot be printed in post order;
                        // skipping the back edge keeps the printer total.
                        if state.get(id).copied().unwrap_or(0) == 0 {
                            stack.push(*id);
                        }
                    }
                }
            }
        }
    }
    // Anything left (only possible with cycles) in id order.
    for i in instrs {
        if state.get(&i.id).copied().unwrap_or(0) != 2 {
            state.insert(i.id, 2);
            order.push(i);
        }
    }
    Ok(order)
}

/// Names as XLA prints them: characters outside `[A-Za-z0-9_.-]` become `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `{a,b,c}`.
fn list<T: std::fmt::Display>(v: &[T]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("{{{}}}", s.join(","))
}

/// A shape index `{0}`, `{}`.
fn shape_index(v: &[i64]) -> String {
    list(v)
}

/// Joins with `, ` and puts `/*index=N*/` before every 5th element.
fn join_indexed(items: &[String]) -> String {
    let mut s = String::new();
    for (k, it) in items.iter().enumerate() {
        if k > 0 {
            s.push_str(", ");
            if k % 5 == 0 {
                let _ = write!(s, "/*index={k}*/");
            }
        }
        s.push_str(it);
    }
    s
}

/// XLA's spelling of a `PrimitiveType` number (including upstream types the
/// proto subset does not name).
fn element_type_name(t: i32) -> String {
    match t {
        1 => "pred",
        2 => "s8",
        3 => "s16",
        4 => "s32",
        5 => "s64",
        6 => "u8",
        7 => "u16",
        8 => "u32",
        9 => "u64",
        10 => "f16",
        11 => "f32",
        12 => "f64",
        13 => "tuple",
        14 => "opaque",
        15 => "c64",
        16 => "bf16",
        17 => "token",
        18 => "c128",
        19 => "f8e5m2",
        20 => "f8e4m3fn",
        21 => "s4",
        22 => "u4",
        23 => "f8e4m3b11fnuz",
        24 => "f8e5m2fnuz",
        25 => "f8e4m3fnuz",
        26 => "s2",
        27 => "u2",
        28 => "f8e4m3",
        29 => "f8e3m4",
        30 => "s1",
        31 => "u1",
        32 => "f4e2m1fn",
        33 => "f8e8m0fnu",
        34 => "buffer",
        _ => return format!("invalid{t}"),
    }
    .to_string()
}

/// A shape: `f32[2,3]{1,0}` (layout when `with_layout` and present),
/// `(f32[4]{0}, s32[])`, `f32[]`, `token[]`.
fn shape(s: &proto::ShapeProto, with_layout: bool) -> String {
    if s.element_type == proto::PrimitiveType::Tuple as i32 {
        let parts: Vec<String> = s
            .tuple_shapes
            .iter()
            .map(|t| shape(t, with_layout))
            .collect();
        return format!("({})", join_indexed(&parts));
    }
    let dims: Vec<String> = s
        .dimensions
        .iter()
        .enumerate()
        .map(|(k, d)| {
            if s.is_dynamic_dimension.get(k).copied().unwrap_or(false) {
                format!("<={d}")
            } else {
                d.to_string()
            }
        })
        .collect();
    let mut out = format!("{}[{}]", element_type_name(s.element_type), dims.join(","));
    if with_layout && !s.dimensions.is_empty() {
        if let Some(l) = &s.layout {
            out.push_str(&list(&l.minor_to_major));
        }
    }
    out
}

/// `{k="v",…}` sorted by key; values that look like JSON dicts are bare.
fn frontend_attributes(fa: &proto::FrontendAttributes) -> String {
    let mut kv: Vec<(&String, &String)> = fa.map.iter().collect();
    kv.sort();
    let parts: Vec<String> = kv
        .into_iter()
        .map(|(k, v)| {
            if lexes_as_json_dict(v) {
                format!("{k}={v}")
            } else {
                format!("{k}=\"{}\"", c_escape(v))
            }
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// The inside of `metadata={...}`.
fn metadata(md: &proto::OpMetadata, source_positions: bool) -> String {
    let mut parts = Vec::new();
    if !md.op_type.is_empty() {
        parts.push(format!("op_type=\"{}\"", c_escape(&md.op_type)));
    }
    if !md.op_name.is_empty() {
        parts.push(format!("op_name=\"{}\"", c_escape(&md.op_name)));
    }
    if source_positions {
        if !md.source_file.is_empty() {
            parts.push(format!("source_file=\"{}\"", c_escape(&md.source_file)));
        }
        if md.source_line != 0 {
            parts.push(format!("source_line={}", md.source_line));
        }
    }
    parts.join(" ")
}

/// C-style escaping as absl's `CEscape`.
fn c_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out
}

/// Whether XLA would print a backend config without quotes: a `{…}` with
/// balanced braces outside strings.
fn lexes_as_json_dict(s: &str) -> bool {
    let t = s.trim();
    if !t.starts_with('{') || !t.ends_with('}') {
        return false;
    }
    let mut depth = 0i64;
    let mut in_str = false;
    let mut esc = false;
    for (k, c) in t.char_indices() {
        if in_str {
            match c {
                _ if esc => esc = false,
                '\\' => esc = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 && k + 1 != t.len() {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0 && !in_str
}

/// The default comparison type XLA does not print, per operand type.
fn default_comparison_type(t: i32) -> &'static str {
    match t {
        10 | 11 | 12 | 15 | 16 | 18..=20 | 23..=25 | 28 | 29 | 32 | 33 => "FLOAT",
        2..=5 | 21 | 26 | 30 => "SIGNED",
        _ => "UNSIGNED",
    }
}

/// `{[0:2:1], [1:3:1]}`; strides are omitted when all are 1.
fn slice(d: &[proto::hlo_instruction_proto::SliceDimensions]) -> String {
    let omit_stride = d.iter().all(|s| s.stride == 1);
    let parts: Vec<String> = d
        .iter()
        .map(|s| {
            if omit_stride {
                format!("[{}:{}]", s.start, s.limit)
            } else {
                format!("[{}:{}:{}]", s.start, s.limit, s.stride)
            }
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `1_0_0x0_2_1`, or `lo_hi` per dimension when nothing is interior-padded.
fn padding(p: &proto::PaddingConfig) -> String {
    let interior = p.dimensions.iter().any(|d| d.interior_padding != 0);
    let parts: Vec<String> = p
        .dimensions
        .iter()
        .map(|d| {
            if interior {
                format!(
                    "{}_{}_{}",
                    d.edge_padding_low, d.edge_padding_high, d.interior_padding
                )
            } else {
                format!("{}_{}", d.edge_padding_low, d.edge_padding_high)
            }
        })
        .collect();
    parts.join("x")
}

/// The inside of `window={...}` (`window_util::ToString`).
fn window(w: &proto::Window) -> String {
    let d = &w.dimensions;
    let field = |name: &str, f: &dyn Fn(&proto::WindowDimension) -> String| {
        let parts: Vec<String> = d.iter().map(f).collect();
        format!("{name}={}", parts.join("x"))
    };
    let mut s = Vec::new();
    if !d.is_empty() {
        s.push(field("size", &|x| x.size.to_string()));
    }
    if d.iter().any(|x| x.stride != 1) {
        s.push(field("stride", &|x| x.stride.to_string()));
    }
    if d.iter().any(|x| x.padding_low != 0 || x.padding_high != 0) {
        s.push(field("pad", &|x| {
            format!("{}_{}", x.padding_low, x.padding_high)
        }));
    }
    if d.iter().any(|x| x.base_dilation != 1) {
        s.push(field("lhs_dilate", &|x| x.base_dilation.to_string()));
    }
    if d.iter().any(|x| x.window_dilation != 1) {
        s.push(field("rhs_dilate", &|x| x.window_dilation.to_string()));
    }
    if d.iter().any(|x| x.window_reversal) {
        s.push(field("rhs_reversal", &|x| {
            if x.window_reversal { "1" } else { "0" }.to_string()
        }));
    }
    s.join(" ")
}

/// `b01f_01io->b01f`.
fn dim_labels(d: &proto::ConvolutionDimensionNumbers) -> String {
    fn place(n: usize, named: &[(i64, String)]) -> String {
        let mut v = vec!["?".to_string(); n];
        for (k, s) in named {
            if let Some(slot) = usize::try_from(*k).ok().and_then(|k| v.get_mut(k)) {
                *slot = s.clone();
            }
        }
        v.concat()
    }
    let spatial = |dims: &[i64]| -> Vec<(i64, String)> {
        dims.iter()
            .enumerate()
            .map(|(k, &d)| (d, k.to_string()))
            .collect()
    };
    let mut lhs = spatial(&d.input_spatial_dimensions);
    lhs.push((d.input_batch_dimension, "b".into()));
    lhs.push((d.input_feature_dimension, "f".into()));
    let mut rhs = spatial(&d.kernel_spatial_dimensions);
    rhs.push((d.kernel_input_feature_dimension, "i".into()));
    rhs.push((d.kernel_output_feature_dimension, "o".into()));
    let mut out = spatial(&d.output_spatial_dimensions);
    out.push((d.output_batch_dimension, "b".into()));
    out.push((d.output_feature_dimension, "f".into()));
    format!(
        "{}_{}->{}",
        place(d.input_spatial_dimensions.len() + 2, &lhs),
        place(d.kernel_spatial_dimensions.len() + 2, &rhs),
        place(d.output_spatial_dimensions.len() + 2, &out)
    )
}

/// `lhs_batch_dims={0}, lhs_contracting_dims={2}, …` (batch dims only when present).
fn dot_dims(d: &proto::DotDimensionNumbers) -> String {
    let mut v = Vec::new();
    if !d.lhs_batch_dimensions.is_empty() {
        v.push(format!("lhs_batch_dims={}", list(&d.lhs_batch_dimensions)));
    }
    v.push(format!(
        "lhs_contracting_dims={}",
        list(&d.lhs_contracting_dimensions)
    ));
    if !d.rhs_batch_dimensions.is_empty() {
        v.push(format!("rhs_batch_dims={}", list(&d.rhs_batch_dimensions)));
    }
    v.push(format!(
        "rhs_contracting_dims={}",
        list(&d.rhs_contracting_dimensions)
    ));
    v.join(", ")
}

/// `operand_precision={highest,highest}` unless every precision is the default.
fn precision(p: Option<&proto::PrecisionConfig>) -> Option<String> {
    let p = p?;
    if p.operand_precision.iter().all(|&x| x == 0) {
        return None;
    }
    let names: Vec<String> = p
        .operand_precision
        .iter()
        .map(|&x| match x {
            0 => "default".to_string(),
            1 => "high".to_string(),
            2 => "highest".to_string(),
            x => format!("precision{x}"),
        })
        .collect();
    Some(format!("operand_precision={{{}}}", names.join(",")))
}

fn gather_dims(d: &proto::GatherDimensionNumbers) -> String {
    let mut v = vec![
        format!("offset_dims={}", list(&d.offset_dims)),
        format!("collapsed_slice_dims={}", list(&d.collapsed_slice_dims)),
    ];
    if !d.operand_batching_dims.is_empty() || !d.start_indices_batching_dims.is_empty() {
        v.push(format!(
            "operand_batching_dims={}",
            list(&d.operand_batching_dims)
        ));
        v.push(format!(
            "start_indices_batching_dims={}",
            list(&d.start_indices_batching_dims)
        ));
    }
    v.push(format!("start_index_map={}", list(&d.start_index_map)));
    v.push(format!("index_vector_dim={}", d.index_vector_dim));
    v.join(", ")
}

fn scatter_dims(d: &proto::ScatterDimensionNumbers) -> String {
    let mut v = vec![
        format!("update_window_dims={}", list(&d.update_window_dims)),
        format!("inserted_window_dims={}", list(&d.inserted_window_dims)),
    ];
    if !d.input_batching_dims.is_empty() || !d.scatter_indices_batching_dims.is_empty() {
        v.push(format!(
            "input_batching_dims={}",
            list(&d.input_batching_dims)
        ));
        v.push(format!(
            "scatter_indices_batching_dims={}",
            list(&d.scatter_indices_batching_dims)
        ));
    }
    v.push(format!(
        "scatter_dims_to_operand_dims={}",
        list(&d.scatter_dims_to_operand_dims)
    ));
    v.push(format!("index_vector_dim={}", d.index_vector_dim));
    v.join(", ")
}

/// XLA's `HloSharding` text: `{replicated}`, `{maximal device=0}`,
/// `{devices=[2,1]0,1}`, `{devices=[2,1]<=[2]}`, tuples as `{{…}, {…}}`.
fn sharding(s: &proto::OpSharding) -> String {
    match s.r#type {
        0 => "{replicated}".into(),
        4 => "{manual}".into(),
        5 => "{unknown}".into(),
        1 => format!(
            "{{maximal device={}}}",
            s.tile_assignment_devices.first().copied().unwrap_or(0)
        ),
        2 => {
            let parts: Vec<String> = s.tuple_shardings.iter().map(sharding).collect();
            format!("{{{}}}", parts.join(", "))
        }
        _ => {
            let dims = |v: &[i64]| {
                v.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let mut out = format!("{{devices=[{}]", dims(&s.tile_assignment_dimensions));
            if s.iota_reshape_dims.is_empty() {
                out.push_str(&dims(&s.tile_assignment_devices));
            } else {
                let _ = write!(out, "<=[{}]", dims(&s.iota_reshape_dims));
                let identity = s
                    .iota_transpose_perm
                    .iter()
                    .enumerate()
                    .all(|(k, &p)| p as usize == k);
                if !identity {
                    let perm: Vec<String> = s
                        .iota_transpose_perm
                        .iter()
                        .map(|p| p.to_string())
                        .collect();
                    let _ = write!(out, "T({})", perm.join(","));
                }
            }
            if s.replicate_on_last_tile_dim {
                out.push_str(" last_tile_dim_replicate");
            }
            out.push('}');
            out
        }
    }
}

/// `{{0,1},{2,3}}`, or the iota form `[2,2]<=[4]`.
fn replica_groups(i: &proto::HloInstructionProto) -> String {
    let groups = |gs: &[proto::ReplicaGroup]| {
        let parts: Vec<String> = gs.iter().map(|g| list(&g.replica_ids)).collect();
        format!("{{{}}}", parts.join(","))
    };
    if let Some(cdl) = &i.collective_device_list {
        if let Some(iota) = &cdl.iota_replica_group_list {
            if iota.num_replica_groups > 0 || iota.num_devices_per_group > 0 {
                let reshape = if iota.iota_reshape_dims.is_empty() {
                    vec![iota.num_replica_groups * iota.num_devices_per_group]
                } else {
                    iota.iota_reshape_dims.clone()
                };
                let mut s = format!(
                    "[{},{}]<=[{}]",
                    iota.num_replica_groups,
                    iota.num_devices_per_group,
                    reshape
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let identity = iota
                    .iota_transpose_perm
                    .iter()
                    .enumerate()
                    .all(|(k, &p)| p as usize == k);
                if !identity {
                    let perm: Vec<String> = iota
                        .iota_transpose_perm
                        .iter()
                        .map(|p| p.to_string())
                        .collect();
                    let _ = write!(s, "T({})", perm.join(","));
                }
                return s;
            }
        }
        if !cdl.replica_groups.is_empty() {
            return groups(&cdl.replica_groups);
        }
    }
    groups(&i.replica_groups)
}

/// The operand text of a `constant`: its literal, or `{...}` when it has
/// more than 10 elements (XLA's default), is a tuple or cannot be decoded.
fn constant(i: &proto::HloInstructionProto) -> String {
    let Some(lit) = &i.literal else {
        return "{...}".into();
    };
    let Some(s) = lit.shape.as_ref().or(i.shape.as_ref()) else {
        return "{...}".into();
    };
    if s.element_type == proto::PrimitiveType::Tuple as i32 {
        return "{...}".into();
    }
    if s.dimensions.iter().any(|&d| d < 0) {
        return "{...}".into();
    }
    let n = s
        .dimensions
        .iter()
        .try_fold(1i64, |acc, &d| acc.checked_mul(d));
    let Some(n) = n.filter(|&n| n <= 10) else {
        return "{...}".into();
    };
    match literal_elements(lit, s.element_type, n as usize, s.dimensions.is_empty()) {
        Some(elems) => literal_text(&s.dimensions, &elems),
        None => "{...}".into(),
    }
}

/// The elements of a literal as XLA prints them, row-major (a scalar `pred`
/// prints `true`/`false`, array elements `1`/`0`); `None` when the payload
/// does not hold `n` elements of the type.
fn literal_elements(
    lit: &proto::LiteralProto,
    ty: i32,
    n: usize,
    scalar: bool,
) -> Option<Vec<String>> {
    fn chunks<const W: usize>(b: &[u8]) -> impl Iterator<Item = [u8; W]> + '_ {
        b.chunks_exact(W).map(|c| {
            let mut a = [0u8; W];
            a.copy_from_slice(c);
            a
        })
    }
    let v: Vec<String> = match ty {
        1 => lit
            .preds
            .iter()
            .map(|&b| {
                if scalar {
                    if b { "true" } else { "false" }.to_string()
                } else {
                    if b { "1" } else { "0" }.to_string()
                }
            })
            .collect(),
        2 => lit.s8s.iter().map(|&b| (b as i8).to_string()).collect(),
        3 => chunks::<2>(&lit.s16s)
            .map(|c| i16::from_le_bytes(c).to_string())
            .collect(),
        4 => lit.s32s.iter().map(|x| x.to_string()).collect(),
        5 => lit.s64s.iter().map(|x| x.to_string()).collect(),
        6 => lit.u8s.iter().map(|x| x.to_string()).collect(),
        7 => chunks::<2>(&lit.u16s)
            .map(|c| u16::from_le_bytes(c).to_string())
            .collect(),
        8 => lit.u32s.iter().map(|x| x.to_string()).collect(),
        9 => lit.u64s.iter().map(|x| x.to_string()).collect(),
        10 => chunks::<2>(&lit.f16s)
            .map(|c| {
                format_g(
                    f64::from(super::literal::f16_to_f32(u16::from_le_bytes(c))),
                    5,
                )
            })
            .collect(),
        16 => chunks::<2>(&lit.bf16s)
            .map(|c| {
                format_g(
                    f64::from(super::literal::bf16_to_f32(u16::from_le_bytes(c))),
                    4,
                )
            })
            .collect(),
        11 => lit.f32s.iter().map(|&x| format_f32(x)).collect(),
        12 => lit.f64s.iter().map(|&x| format_f64(x)).collect(),
        15 => lit
            .c64s
            .chunks_exact(2)
            .map(|c| format!("({}, {})", format_f32(c[0]), format_f32(c[1])))
            .collect(),
        18 => lit
            .c128s
            .chunks_exact(2)
            .map(|c| format!("({}, {})", format_f64(c[0]), format_f64(c[1])))
            .collect(),
        _ => return None,
    };
    (v.len() == n).then_some(v)
}

/// XLA's `ToStringWithoutShapeOneline`: `2.5`, `{1, 0, 1}`,
/// `{ { 0, 1 }, { 2, 3 } }`.
fn literal_text(dims: &[i64], elems: &[String]) -> String {
    let rank = dims.len();
    if rank == 0 {
        return elems.first().cloned().unwrap_or_default();
    }
    let mut pieces: Vec<String> = Vec::new();
    let mut next = 0usize;
    literal_rec(dims, rank, &mut Vec::new(), elems, &mut next, &mut pieces);
    // Compact to one line as XLA does: split on whitespace, join by spaces.
    pieces
        .concat()
        .split([' ', '\n'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn literal_rec(
    dims: &[i64],
    rank: usize,
    accum: &mut Vec<i64>,
    elems: &[String],
    next: &mut usize,
    pieces: &mut Vec<String>,
) {
    let brace = |b: &str, dims: &[i64], accum: &[i64]| -> String {
        if rank == 1 {
            return b.to_string();
        }
        if dims.len() == 1 {
            return if b == "{" {
                format!("  {b}{}", if dims[0] <= 1 { "" } else { " " })
            } else {
                format!("{}{b}", if dims[0] <= 1 { "" } else { " " })
            };
        }
        if b == "{" {
            if rank > 3 && !accum.is_empty() && accum.len() < rank {
                return format!(
                    "{b} /*i{}={}*/\n",
                    accum.len() - 1,
                    accum.last().copied().unwrap_or(0)
                );
            }
            return format!("{b}\n");
        }
        format!("\n{b}")
    };
    if dims.is_empty() {
        pieces.push(elems.get(*next).cloned().unwrap_or_default());
        *next += 1;
        return;
    }
    pieces.push(brace("{", dims, accum));
    for k in 0..dims[0] {
        accum.push(k);
        literal_rec(&dims[1..], rank, accum, elems, next, pieces);
        accum.pop();
        if k < dims[0] - 1 {
            pieces.push(",".into());
            pieces.push(if dims.len() > 1 { "\n" } else { " " }.into());
        }
    }
    pieces.push(brace("}", dims, accum));
}

/// An f32 as XLA's `RoundTripFpToString`: `%.6g` when it reads back
/// exactly, else `%.9g` (`0.1`, `1e-05`, `0.333333343`, `-0`, `nan`, `inf`).
pub(crate) fn format_f32(x: f32) -> String {
    let s = format_g(f64::from(x), 6);
    if x.is_nan() || s.parse::<f32>().ok() == Some(x) {
        s
    } else {
        format_g(f64::from(x), 9)
    }
}

/// An f64 as XLA prints it: `%.15g`, else `%.17g`.
pub(crate) fn format_f64(x: f64) -> String {
    let s = format_g(x, 15);
    if x.is_nan() || s.parse::<f64>().ok() == Some(x) {
        s
    } else {
        format_g(x, 17)
    }
}

/// C's `%.{p}g`.
pub(crate) fn format_g(x: f64, p: usize) -> String {
    let p = p.max(1);
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{:.*e}", p - 1, x);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i64 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mant), exp.abs())
    } else {
        let decimals = (p as i64 - 1 - exp).max(0) as usize;
        strip(&format!("{x:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_xla() {
        let cases: [(f32, &str); 10] = [
            (1e-5, "1e-05"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.333333343"),
            (3e38, "3e+38"),
            (-0.0, "-0"),
            (123456.79, "123456.789"),
            (f32::NAN, "nan"),
            (f32::INFINITY, "inf"),
            (2.5, "2.5"),
            (100.0, "100"),
        ];
        for (x, want) in cases {
            assert_eq!(format_f32(x), want, "{x:e}");
        }
        assert_eq!(format_g(0.15625, 4), "0.1562");
        assert_eq!(format_g(1099511627776.0, 6), "1.09951e+12");
    }

    #[test]
    fn literals_nest_like_xla() {
        let e = |n: usize| (0..n).map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(literal_text(&[3], &e(3)), "{0, 1, 2}");
        assert_eq!(literal_text(&[2, 3], &e(6)), "{ { 0, 1, 2 }, { 3, 4, 5 } }");
        assert_eq!(literal_text(&[1, 1, 2], &e(2)), "{ { { 0, 1 } } }");
        assert_eq!(literal_text(&[2, 1], &e(2)), "{ {0}, {1} }");
        assert_eq!(literal_text(&[], &e(1)), "0");
    }

    #[test]
    fn json_dicts_are_recognized() {
        assert!(lexes_as_json_dict(r#"{"a":{"n":"5"}}"#));
        assert!(!lexes_as_json_dict("{a}{b}"));
        assert!(!lexes_as_json_dict("plain"));
    }
}
