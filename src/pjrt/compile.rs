//! Compile options (`CompileOptionsProto`) and the Rust-side checks of an
//! `HloModuleProto` made before `PJRT_Client_Compile`.
//!
//! Two inputs abort the plugin process instead of returning an error
//! (PJRT.md §3): compile options without both `num_replicas` and
//! `num_partitions`, and HLO ids of 2^31 or more. Both are rejected here.
//! Compiler options travel as `env_option_overrides` (never as a partial
//! `DebugOptions`, which would zero every compiler default).

use std::collections::BTreeMap;

use prost::Message;

use crate::proto::{
    option_override_proto, CompileOptionsProto, ExecutableBuildOptionsProto, HloModuleProto,
    OptionOverrideProto,
};

use super::element_type::ArrayShape;
use super::error::{Error, Result};

/// A value of an XLA compiler option (`OptionOverrideProto`).
#[derive(Clone, Debug, PartialEq)]
pub enum OptionValue {
    /// `string_field`: strings, enum names, comma-separated repeated enums.
    String(String),
    /// `bool_field`.
    Bool(bool),
    /// `int_field`: int32/int64 fields and enum numbers.
    Int(i64),
    /// `double_field`.
    Double(f64),
}

impl From<&str> for OptionValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_string())
    }
}
impl From<String> for OptionValue {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}
impl From<bool> for OptionValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<i64> for OptionValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<f64> for OptionValue {
    fn from(v: f64) -> Self {
        Self::Double(v)
    }
}

/// How to compile a module: the replica count (one partition always) and
/// XLA compiler options by `DebugOptions` field name.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileOptions {
    /// Number of replicas R ≥ 1; the executable runs on R devices.
    pub num_replicas: usize,
    /// `env_option_overrides`, e.g. `xla_cpu_enable_fast_math = Bool(false)`.
    pub env_option_overrides: BTreeMap<String, OptionValue>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self::new(1)
    }
}

impl CompileOptions {
    /// Options for `num_replicas` replicas and no overrides.
    pub fn new(num_replicas: usize) -> Self {
        Self {
            num_replicas,
            env_option_overrides: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a compiler option.
    pub fn with_override(mut self, name: impl Into<String>, value: impl Into<OptionValue>) -> Self {
        self.env_option_overrides.insert(name.into(), value.into());
        self
    }

    /// The proto, with `num_replicas = R`, `num_partitions = 1` and
    /// `device_ordinal = -1` always set. Errors when R is 0 or too large.
    pub fn to_proto(&self) -> Result<CompileOptionsProto> {
        if self.num_replicas == 0 {
            return Err(Error::InvalidArgument(
                "num_replicas must be at least 1".into(),
            ));
        }
        let num_replicas = i64::try_from(self.num_replicas).map_err(|_| {
            Error::InvalidArgument(format!("num_replicas {} is too large", self.num_replicas))
        })?;
        let env_option_overrides = self
            .env_option_overrides
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    OptionValue::String(s) => option_override_proto::Value::StringField(s.clone()),
                    OptionValue::Bool(b) => option_override_proto::Value::BoolField(*b),
                    OptionValue::Int(i) => option_override_proto::Value::IntField(*i),
                    OptionValue::Double(d) => option_override_proto::Value::DoubleField(*d),
                };
                (k.clone(), OptionOverrideProto { value: Some(value) })
            })
            .collect();
        Ok(CompileOptionsProto {
            executable_build_options: Some(ExecutableBuildOptionsProto {
                device_ordinal: -1,
                num_replicas,
                num_partitions: 1,
                ..Default::default()
            }),
            compile_portable_executable: false,
            env_option_overrides,
        })
    }

    /// Serialized [`CompileOptions::to_proto`].
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(self.to_proto()?.encode_to_vec())
    }
}

/// What simclr keeps of a module to check execute arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleSignature {
    /// Module name.
    pub name: String,
    /// Entry parameters (from `host_program_shape`), in parameter order.
    pub parameters: Vec<ArrayShape>,
    /// Per parameter: whether the module donates it (`input_output_alias`
    /// or `buffer_donor`), so the buffer passed is consumed by execute.
    pub donated: Vec<bool>,
}

/// Ids at or above this crash the plugin (`std::bad_alloc`).
const MAX_ID: i64 = 1 << 31;

/// Checks what the plugin would crash on or simclr needs, and extracts the
/// signature. Errors: missing `host_program_shape`, a non-array parameter,
/// an id outside `0..2^31`, an alias naming a parameter that does not exist.
pub fn check_module(module: &HloModuleProto) -> Result<ModuleSignature> {
    let bad = |m: String| {
        Err(Error::InvalidArgument(format!(
            "module '{}': {m}",
            module.name
        )))
    };
    let Some(program_shape) = &module.host_program_shape else {
        return bad("host_program_shape is missing".into());
    };
    let mut parameters = Vec::with_capacity(program_shape.parameters.len());
    for (i, p) in program_shape.parameters.iter().enumerate() {
        match ArrayShape::from_proto(p) {
            Ok(s) => parameters.push(s),
            Err(e) => return bad(format!("parameter {i}: {e}")),
        }
    }
    let check_id = |what: &str, id: i64| -> Result<()> {
        if (0..MAX_ID).contains(&id) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "module '{}': {what} id {id} is outside 0..2^31",
                module.name
            )))
        }
    };
    check_id("entry computation", module.entry_computation_id)?;
    for c in &module.computations {
        check_id(&format!("computation '{}'", c.name), c.id)?;
        check_id(&format!("root of computation '{}'", c.name), c.root_id)?;
        for inst in &c.instructions {
            let what = format!("instruction '{}'", inst.name);
            check_id(&what, inst.id)?;
            for &id in inst
                .operand_ids
                .iter()
                .chain(&inst.called_computation_ids)
                .chain(&inst.control_predecessor_ids)
            {
                check_id(&format!("reference of {what}"), id)?;
            }
        }
    }
    let mut donated = vec![false; parameters.len()];
    let alias_params = module
        .input_output_alias
        .iter()
        .flat_map(|a| a.entries.iter().map(|e| e.parameter_number))
        .chain(
            module
                .buffer_donor
                .iter()
                .flat_map(|d| d.entries.iter().map(|e| e.parameter_number)),
        );
    for p in alias_params {
        match usize::try_from(p).ok().and_then(|i| donated.get_mut(i)) {
            Some(d) => *d = true,
            None => {
                return bad(format!(
                    "donation names parameter {p}, but there are {} parameters",
                    parameters.len()
                ))
            }
        }
    }
    Ok(ModuleSignature {
        name: module.name.clone(),
        parameters,
        donated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_and_partition_counts_are_always_encoded() {
        let bytes = CompileOptions::new(4).encode().unwrap();
        let p = CompileOptionsProto::decode(bytes.as_slice()).unwrap();
        let b = p.executable_build_options.unwrap();
        assert_eq!(
            (b.num_replicas, b.num_partitions, b.device_ordinal),
            (4, 1, -1)
        );
        assert!(CompileOptions::new(0).encode().is_err());
    }

    #[test]
    fn overrides_keep_their_type() {
        let p = CompileOptions::new(1)
            .with_override("a", true)
            .with_override("b", 3i64)
            .with_override("c", "X")
            .with_override("d", 0.5)
            .to_proto()
            .unwrap();
        use option_override_proto::Value as V;
        assert_eq!(p.env_option_overrides["a"].value, Some(V::BoolField(true)));
        assert_eq!(p.env_option_overrides["b"].value, Some(V::IntField(3)));
        assert_eq!(
            p.env_option_overrides["c"].value,
            Some(V::StringField("X".into()))
        );
        assert_eq!(p.env_option_overrides["d"].value, Some(V::DoubleField(0.5)));
    }

    #[test]
    fn module_without_program_shape_or_with_huge_ids_is_rejected() {
        let m = HloModuleProto {
            name: "m".into(),
            ..Default::default()
        };
        assert!(check_module(&m)
            .unwrap_err()
            .to_string()
            .contains("host_program_shape"));
        let m = HloModuleProto {
            name: "m".into(),
            host_program_shape: Some(Default::default()),
            entry_computation_id: 1 << 31,
            ..Default::default()
        };
        assert!(check_module(&m)
            .unwrap_err()
            .to_string()
            .contains("outside 0..2^31"));
    }
}
