//! Lowering: a built [`Module`] becomes an `xla.HloModuleProto` (program
//! format `"hlo"`). Since the IR's ops are HLO instructions, this is plain
//! serialization: one module-wide id counter from 1 for computations and
//! instructions, names `<opcode>.<id>`, callees before callers, row-major
//! layouts on every array shape, explicit window strides and dilations.

use super::module::{Module, Node};
use super::op::Op;
use super::types::Type;
use crate::proto;
use prost::Message;

impl Module {
    /// The `HloModuleProto` of this module.
    pub fn to_proto(&self) -> proto::HloModuleProto {
        let mut next_id: i64 = 1;
        let mut comp_ids = Vec::with_capacity(self.computations.len());
        let mut comps = Vec::with_capacity(self.computations.len());
        for c in &self.computations {
            let comp_id = next_id;
            next_id += 1;
            comp_ids.push(comp_id);
            let mut ids = Vec::with_capacity(c.nodes.len());
            let mut instrs = Vec::with_capacity(c.nodes.len());
            for n in &c.nodes {
                let id = next_id;
                next_id += 1;
                ids.push(id);
                instrs.push(self.lower_node(n, id, &ids, &comp_ids));
            }
            let sig = c.signature();
            comps.push(proto::HloComputationProto {
                name: c.name.clone(),
                instructions: instrs,
                program_shape: Some(proto::ProgramShapeProto {
                    parameters: sig.params.iter().map(Type::to_proto).collect(),
                    result: Some(sig.result.to_proto()),
                    parameter_names: c
                        .params
                        .iter()
                        .map(|&p| node_name(&c.nodes[p], ids[p]))
                        .collect(),
                }),
                id: comp_id,
                root_id: ids[c.root],
                is_fusion_computation: false,
                execution_thread: String::new(),
            });
        }
        let entry = self.entry();
        let sig = entry.signature();
        let entry_comp = &comps[self.entry];
        let input_output_alias = if self.aliases.is_empty() {
            None
        } else {
            Some(proto::HloInputOutputAliasProto {
                entries: self
                    .aliases
                    .iter()
                    .map(|a| proto::hlo_input_output_alias_proto::AliasEntryProto {
                        output_shape_index: if self.tuple_result {
                            vec![a.output as i64]
                        } else {
                            vec![]
                        },
                        parameter_number: a.param as i64,
                        parameter_shape_index: vec![],
                        kind: proto::Kind::MayAlias as i32,
                    })
                    .collect(),
            })
        };
        proto::HloModuleProto {
            name: self.name.clone(),
            entry_computation_name: entry.name.clone(),
            entry_computation_id: entry_comp.id,
            host_program_shape: Some(proto::ProgramShapeProto {
                parameters: sig.params.iter().map(Type::to_proto).collect(),
                result: Some(sig.result.to_proto()),
                parameter_names: entry.param_names(),
            }),
            id: entry_comp.id,
            input_output_alias,
            computations: comps,
            buffer_donor: None,
            frontend_attributes: None,
            schedule: None,
        }
    }

    /// The serialized `HloModuleProto` bytes (what PJRT compiles).
    pub fn to_proto_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    fn lower_node(
        &self,
        n: &Node,
        id: i64,
        ids: &[i64],
        comp_ids: &[i64],
    ) -> proto::HloInstructionProto {
        let opcode = n.op.opcode();
        let metadata = {
            let op_name = if n.scope.is_empty() {
                opcode.to_string()
            } else {
                format!("{}/{}", n.scope, opcode)
            };
            let (source_file, source_line) = n
                .source
                .as_ref()
                .map(|(f, l)| (f.clone(), i32::try_from(*l).unwrap_or(i32::MAX)))
                .unwrap_or_default();
            Some(proto::OpMetadata {
                op_type: opcode.to_string(),
                op_name,
                source_file,
                source_line,
            })
        };
        let mut p = proto::HloInstructionProto {
            name: node_name(n, id),
            opcode: opcode.to_string(),
            shape: Some(n.ty.to_proto()),
            metadata,
            id,
            operand_ids: n.operands.iter().map(|&o| ids[o]).collect(),
            called_computation_ids: n.op.called().iter().map(|&c| comp_ids[c]).collect(),
            ..Default::default()
        };
        let groups = |g: &super::attrs::ReplicaGroups| g.to_proto(self.num_replicas);
        match &n.op {
            Op::Parameter { number, .. } => p.parameter_number = *number as i64,
            Op::Constant(lit) => p.literal = Some(lit.to_proto()),
            Op::Iota { dim, .. } => p.dimensions = vec![*dim],
            Op::Compare(dir) => p.comparison_direction = dir.name().to_string(),
            Op::Broadcast { dims, .. } => p.dimensions = dims.clone(),
            Op::Transpose { perm } => p.dimensions = perm.clone(),
            Op::Reverse { dims } => p.dimensions = dims.clone(),
            Op::Slice {
                start,
                limit,
                stride,
            } => {
                p.slice_dimensions = (0..start.len())
                    .map(|d| proto::hlo_instruction_proto::SliceDimensions {
                        start: start[d],
                        limit: limit[d],
                        stride: stride[d],
                    })
                    .collect()
            }
            Op::DynamicSlice { sizes } => p.dynamic_slice_sizes = sizes.clone(),
            Op::Concatenate { dim } => p.dimensions = vec![*dim],
            Op::Pad { dims } => {
                p.padding_config = Some(proto::PaddingConfig {
                    dimensions: dims
                        .iter()
                        .map(|d| proto::padding_config::PaddingConfigDimension {
                            edge_padding_low: d.lo,
                            edge_padding_high: d.hi,
                            interior_padding: d.interior,
                        })
                        .collect(),
                })
            }
            Op::Dot(dn) => p.dot_dimension_numbers = Some(dn.to_proto()),
            Op::Convolution {
                window,
                dnums,
                feature_group_count,
                batch_group_count,
            } => {
                p.window = Some(window.to_proto());
                p.convolution_dimension_numbers = Some(dnums.to_proto());
                p.feature_group_count = *feature_group_count;
                p.batch_group_count = *batch_group_count;
            }
            Op::Reduce { dims, .. } => p.dimensions = dims.clone(),
            Op::ReduceWindow { window, .. } | Op::SelectAndScatter { window, .. } => {
                p.window = Some(window.to_proto())
            }
            Op::AllReduce { groups: g, .. } => p.replica_groups = groups(g),
            Op::AllGather { dim, groups: g } | Op::ReduceScatter { dim, groups: g, .. } => {
                p.replica_groups = groups(g);
                p.dimensions = vec![*dim];
            }
            Op::RngBitGenerator { algorithm, .. } => p.rng_algorithm = algorithm.to_proto() as i32,
            Op::GetTupleElement { index } => p.tuple_index = *index as i64,
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Select
            | Op::Clamp
            | Op::Convert(_)
            | Op::BitcastConvert(_)
            | Op::Reshape { .. }
            | Op::DynamicUpdateSlice
            | Op::ReplicaId
            | Op::Tuple => {}
        }
        p
    }
}

/// `<opcode with - → _>.<id>`, XLA's own naming convention.
fn node_name(n: &Node, id: i64) -> String {
    format!("{}.{}", n.op.opcode().replace('-', "_"), id)
}
