//! Shared helpers of the `pjrt_*` tests: a process-wide client on the real
//! CPU plugin (panicking with the discovery error when it is missing, so a
//! test never silently skips) and a tiny builder for hand-written
//! `HloModuleProto`s. Include with `#[path = "common/pjrt.rs"] mod common;`.
#![allow(dead_code)]

use std::sync::OnceLock;

use simclr::pjrt::{Client, ClientOptions};
use simclr::proto::{
    HloComputationProto, HloInstructionProto, HloModuleProto, LayoutProto, PrimitiveType,
    ProgramShapeProto, ShapeProto,
};

/// The CPU plugin's client (4 devices), created once per test binary.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(
        || match Client::discover(None, false, &ClientOptions::default()) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        },
    )
}

/// An array shape with a row-major layout (a scalar gets an empty layout).
pub fn shape(ty: PrimitiveType, dims: &[i64]) -> ShapeProto {
    ShapeProto {
        element_type: ty as i32,
        dimensions: dims.to_vec(),
        layout: Some(LayoutProto {
            minor_to_major: (0..dims.len() as i64).rev().collect(),
        }),
        ..Default::default()
    }
}

/// A tuple shape.
pub fn tuple_shape(elements: Vec<ShapeProto>) -> ShapeProto {
    ShapeProto {
        element_type: PrimitiveType::Tuple as i32,
        tuple_shapes: elements,
        ..Default::default()
    }
}

/// Builds modules: one id counter for all computations and instructions.
#[derive(Default)]
pub struct ModuleBuilder {
    next_id: i64,
    computations: Vec<HloComputationProto>,
}

/// A computation under construction.
pub struct Comp {
    pub name: String,
    pub id: i64,
    pub instructions: Vec<HloInstructionProto>,
    pub params: Vec<ShapeProto>,
}

impl ModuleBuilder {
    pub fn new() -> Self {
        Self {
            next_id: 1,
            computations: Vec::new(),
        }
    }

    fn id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn comp(&mut self, name: &str) -> Comp {
        Comp {
            name: name.to_string(),
            id: self.id(),
            instructions: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Adds `inst` (name and id filled in) to `comp`; returns its id.
    pub fn push(&mut self, comp: &mut Comp, mut inst: HloInstructionProto) -> i64 {
        let id = self.id();
        inst.id = id;
        inst.name = format!("{}.{id}", inst.opcode.replace('-', "_"));
        comp.instructions.push(inst);
        id
    }

    pub fn param(&mut self, comp: &mut Comp, number: i64, s: ShapeProto) -> i64 {
        comp.params.push(s.clone());
        self.push(
            comp,
            HloInstructionProto {
                opcode: "parameter".into(),
                shape: Some(s),
                parameter_number: number,
                ..Default::default()
            },
        )
    }

    pub fn op(&mut self, comp: &mut Comp, opcode: &str, s: ShapeProto, operands: &[i64]) -> i64 {
        self.push(
            comp,
            HloInstructionProto {
                opcode: opcode.into(),
                shape: Some(s),
                operand_ids: operands.to_vec(),
                ..Default::default()
            },
        )
    }

    /// Finishes a computation with root `root`; returns its id.
    pub fn finish(&mut self, comp: Comp, root: i64) -> i64 {
        let id = comp.id;
        self.computations.push(HloComputationProto {
            name: comp.name,
            instructions: comp.instructions,
            id,
            root_id: root,
            ..Default::default()
        });
        id
    }

    /// A scalar `add` computation over `ty` (for reductions).
    pub fn add_computation(&mut self, ty: PrimitiveType) -> i64 {
        let mut c = self.comp(&format!("add_{}", ty.as_str_name().to_lowercase()));
        let a = self.param(&mut c, 0, shape(ty, &[]));
        let b = self.param(&mut c, 1, shape(ty, &[]));
        let r = self.op(&mut c, "add", shape(ty, &[]), &[a, b]);
        self.finish(c, r)
    }

    /// The module: `entry` last, host program shape from its parameters
    /// and root.
    pub fn module(mut self, name: &str, entry: Comp, root: i64) -> HloModuleProto {
        let result = entry
            .instructions
            .iter()
            .find(|i| i.id == root)
            .and_then(|i| i.shape.clone());
        let params = entry.params.clone();
        let entry_name = entry.name.clone();
        let entry_id = self.finish(entry, root);
        HloModuleProto {
            name: name.into(),
            entry_computation_name: entry_name,
            entry_computation_id: entry_id,
            id: entry_id,
            host_program_shape: Some(ProgramShapeProto {
                parameter_names: (0..params.len()).map(|i| format!("p{i}")).collect(),
                parameters: params,
                result,
            }),
            computations: self.computations,
            ..Default::default()
        }
    }
}

/// Resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("parse statm");
    pages * 4096
}
