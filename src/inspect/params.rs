//! The parameter table of a step program: every model variable with its
//! shape, size, whether it is trainable, whether this program's optimizer
//! updates it, which optimizer rule applies (`simclr::optim::rule_name`)
//! and its optimizer slots. Written as `params.tsv` and `params.json`.

use crate::simclr::optim::{rule_name, OptimizerKind};
use crate::simclr::StepProgram;
use serde::{Deserialize, Serialize};

/// One row of the parameter table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamRow {
    /// TF1 variable name (`base_model/conv2d/kernel`).
    pub name: String,
    /// Shape with element type (`f32[3,3,3,64]`).
    pub shape: String,
    /// Number of elements.
    pub elements: u64,
    /// Bytes of the variable.
    pub bytes: u64,
    /// Trainable in the model (BN moving statistics are not).
    pub trainable: bool,
    /// Updated by the optimizer in this program.
    pub optimized: bool,
    /// The optimizer rule, `not optimized`, or `not trainable`.
    pub rule: String,
    /// Bytes of its optimizer slots in this program.
    pub slot_bytes: u64,
}

/// The table for `program` under optimizer `kind`.
pub fn table(program: &StepProgram, kind: OptimizerKind) -> Vec<ParamRow> {
    program
        .vars
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let rule = if v.optimized {
                rule_name(kind, &v.name).to_string()
            } else if v.trainable {
                "not optimized".to_string()
            } else {
                "not trainable".to_string()
            };
            let slot_bytes = program
                .slots
                .iter()
                .filter(|s| s.var == i)
                .map(|s| s.shape.byte_size() as u64)
                .sum();
            ParamRow {
                name: v.name.clone(),
                shape: v.shape.to_string(),
                elements: v.shape.numel() as u64,
                bytes: v.shape.byte_size() as u64,
                trainable: v.trainable,
                optimized: v.optimized,
                rule,
                slot_bytes,
            }
        })
        .collect()
}

/// The table as tab-separated values with a header line.
pub fn to_tsv(rows: &[ParamRow]) -> String {
    let mut s =
        String::from("name\tshape\telements\tbytes\ttrainable\toptimized\trule\tslot_bytes\n");
    for r in rows {
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.name, r.shape, r.elements, r.bytes, r.trainable, r.optimized, r.rule, r.slot_bytes
        ));
    }
    s
}
