//! A built program: computations of typed nodes in dependency order. This is
//! what lowering, printing, the reference evaluator and inspection read.

use super::op::{CompId, Op, Signature};
use super::types::Type;

/// Index of a node within its computation.
pub type NodeId = usize;

/// One instruction: its op, operands (earlier nodes of the same
/// computation), result type and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The op and its attributes.
    pub op: Op,
    /// Operand node ids, in HLO order.
    pub operands: Vec<NodeId>,
    /// Result type.
    pub ty: Type,
    /// Name scope when built (`base_model/block_group1/...`), empty at top level.
    pub scope: String,
    /// Source file and line of the call that built it.
    pub source: Option<(String, u32)>,
}

/// A computation: the entry program or a sub-computation (reducer, selector).
#[derive(Clone, Debug, PartialEq)]
pub struct Computation {
    /// Unique name within the module.
    pub name: String,
    /// Nodes, operands before users.
    pub nodes: Vec<Node>,
    /// Parameter node ids by parameter number.
    pub params: Vec<NodeId>,
    /// The result node.
    pub root: NodeId,
}

impl Computation {
    /// The computation's signature (parameter types and result type).
    pub fn signature(&self) -> Signature {
        Signature {
            params: self
                .params
                .iter()
                .map(|&p| self.nodes[p].ty.clone())
                .collect(),
            result: self.nodes[self.root].ty.clone(),
        }
    }

    /// Names of the parameters, by number.
    pub fn param_names(&self) -> Vec<String> {
        self.params
            .iter()
            .map(|&p| match &self.nodes[p].op {
                Op::Parameter { name, .. } => name.clone(),
                _ => String::new(),
            })
            .collect()
    }
}

/// Input–output aliasing: entry output `output` reuses the buffer of
/// parameter `param` (donation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alias {
    /// Index of the output in the flattened result.
    pub output: usize,
    /// Parameter number of the donated input.
    pub param: usize,
}

/// A complete program, ready to lower to `HloModuleProto`.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    /// Module name.
    pub name: String,
    /// All computations; callees have lower ids than their callers.
    pub computations: Vec<Computation>,
    /// The entry computation.
    pub entry: CompId,
    /// Number of replicas the program is written for (collectives are
    /// checked against it).
    pub num_replicas: usize,
    /// Donated parameters and the outputs that reuse them.
    pub aliases: Vec<Alias>,
    /// True when the entry's result is a tuple of outputs (several outputs).
    pub tuple_result: bool,
}

impl Module {
    /// The entry computation.
    pub fn entry(&self) -> &Computation {
        &self.computations[self.entry]
    }

    /// The entry's output types, flattened (one per PJRT output buffer).
    pub fn output_types(&self) -> Vec<Type> {
        let e = self.entry();
        let root = &e.nodes[e.root];
        if self.tuple_result {
            root.operands
                .iter()
                .map(|&o| e.nodes[o].ty.clone())
                .collect()
        } else {
            vec![root.ty.clone()]
        }
    }

    /// The entry's parameter types, by number.
    pub fn param_types(&self) -> Vec<Type> {
        self.entry().signature().params
    }

    /// Number of instructions in all computations.
    pub fn instruction_count(&self) -> usize {
        self.computations.iter().map(|c| c.nodes.len()).sum()
    }
}
