//! Writing one step program's inspection files (`simclr export_hlo`):
//!
//! ```text
//! DIR/<program>/module.hlo.txt   our printer, source positions kept
//! DIR/<program>/module.pb        HloModuleProto bytes (what PJRT compiles)
//! DIR/<program>/optimized.hlo.txt  XLA's optimized module, our printer
//! DIR/<program>/optimized.pb     the optimized HloModuleProto
//! DIR/<program>/cost.json        FLOPs / transcendentals / bytes, per layer
//! DIR/<program>/memory.json      compiled memory stats + analytic estimate
//! DIR/<program>/params.tsv, params.json
//! DIR/index.json                 the programs and how they were made
//! ```
//!
//! The unoptimized files come from [`crate::ir::golden::artifacts`], the
//! function that also writes the golden files under `hlo/`. When there is
//! no compiler (`--no_compile`) or compilation fails (out of memory, a
//! plugin that refuses), the optimized files are missing, `cost.json` is
//! computed on the unoptimized module and `memory.json` says why.

use super::cost::{self, Cost, LayerCost, OpcodeCost};
use super::memory::{self, MemoryReport};
use super::params;
use super::Error;
use crate::ir::{golden, to_text_with, PrintOptions};
use crate::pjrt::{Client, CompileOptions, NamedValue};
use crate::simclr::{OptimizerKind, StepProgram};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The compiler to export with: a client and the options `simclr run`
/// would compile with.
pub struct Target<'a> {
    /// The PJRT client.
    pub client: &'a Client,
    /// Compile options (replicas, XLA overrides).
    pub options: CompileOptions,
}

/// What `cost.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    /// Program name.
    pub program: String,
    /// `optimized` when the per-layer figures come from XLA's optimized
    /// module, `unoptimized` when from the lowered module.
    pub source: String,
    /// Totals of the module named by `source`.
    pub totals: Cost,
    /// Totals of the lowered (unoptimized) module.
    pub unoptimized_totals: Cost,
    /// The plugin's own cost analysis (per program), when it has one.
    pub xla: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why `xla` is missing.
    pub xla_message: Option<String>,
    /// Every layer prefix (`base_model`, `base_model/block_group2`, …).
    pub layers: Vec<LayerCost>,
    /// Per opcode, forward and backward apart.
    pub by_opcode: Vec<OpcodeCost>,
}

/// One program's entry in `index.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgramEntry {
    /// Program name, also its folder (`pretrain`, `finetune`, `eval`).
    pub name: String,
    /// The HLO module's name.
    pub module: String,
    /// Instructions of the lowered module.
    pub instructions: usize,
    /// Whether `optimized.pb` / `optimized.hlo.txt` were written.
    pub optimized: bool,
    /// `compiled`, `compile_failed` or `not_compiled`.
    pub status: String,
    /// Seconds XLA took to compile, when it did.
    pub compile_seconds: Option<f64>,
    /// FLOPs per replica and step (from `cost.json`'s source module).
    pub flops: f64,
    /// Bytes one replica needs: arguments + temporaries + outputs −
    /// aliased from XLA's compiled buffer sizes, else the analytic
    /// estimate (`memory.json`'s `per_replica_bytes`).
    pub memory_bytes: u64,
    /// Which figure `memory_bytes` is (`memory.json`'s `per_replica_source`).
    #[serde(default)]
    pub memory_source: String,
    /// The compiled figures `memory_bytes` is made of, when compiled.
    #[serde(default)]
    pub compiled_need: Option<memory::CompiledNeed>,
    /// Model variables, as much again for their gradients, and the
    /// optimizer state of one replica: the part of the need that does not
    /// shrink with the batch, from the estimate (variables alone for a
    /// program without an optimizer).
    #[serde(default)]
    pub variable_bytes: u64,
    /// The fit check against a device, when one was given or known.
    #[serde(default)]
    pub fit: Option<super::fit::FitCheck>,
    /// The compile error, if any.
    pub message: Option<String>,
}

/// Adds the fit check of program `name` to its `memory.json` (key `fit`).
///
/// # Errors
/// [`Error::Io`] / [`Error::Json`] when `memory.json` cannot be read or
/// written.
pub fn record_fit(dir: &Path, name: &str, fit: &super::fit::FitCheck) -> Result<(), Error> {
    let path = dir.join(name).join("memory.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let f = serde_json::to_value(fit).map_err(|e| Error::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if let Some(o) = v.as_object_mut() {
        o.insert("fit".into(), f);
    }
    write_json(&path, &v)
}

/// What `index.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportIndex {
    /// `simclr` version that wrote the export.
    pub simclr_version: String,
    /// The PJRT platform compiled for (`cpu`, `cuda`, `tpu`), if any.
    pub platform: Option<String>,
    /// Replicas every program is traced for.
    pub replicas: usize,
    /// Training examples and classes the step counts were computed from,
    /// and where they came from.
    pub dataset: serde_json::Value,
    /// The flags (`simclr run` names).
    pub flags: serde_json::Value,
    /// The device the programs were checked against (`--device_memory`
    /// or the plugin's memory limit), if any.
    #[serde(default)]
    pub device: Option<super::fit::DeviceSpec>,
    /// The programs, in export order.
    pub programs: Vec<ProgramEntry>,
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write(path, s + "\n")
}

fn xla_costs(values: &[NamedValue]) -> serde_json::Map<String, serde_json::Value> {
    values
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                serde_json::to_value(&v.value).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// Writes the files of `program` (named `name`, e.g. `pretrain`) into
/// `dir/<name>/`, compiling with `target` unless it is `None`. A failed
/// compilation is reported in the returned entry and in `memory.json`, not
/// as an error.
///
/// # Errors
/// [`Error::Io`] when a file cannot be written, [`Error::Ir`] when the
/// module cannot be printed.
pub fn export_program(
    dir: &Path,
    name: &str,
    program: &StepProgram,
    optimizer: OptimizerKind,
    target: Option<&Target<'_>>,
) -> Result<ProgramEntry, Error> {
    let out: PathBuf = dir.join(name);
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    let module = &program.module;
    let replicas = module.num_replicas;
    let art = golden::artifacts(module, true)?;
    write(&out.join("module.hlo.txt"), &art.text)?;
    write(&out.join("module.pb"), &art.bytes)?;

    let rows = params::table(program, optimizer);
    write(&out.join("params.tsv"), params::to_tsv(&rows))?;
    write_json(&out.join("params.json"), &rows)?;

    let estimate = memory::estimate(program, &art.proto);
    let unopt_cost = cost::analyze(&art.proto);

    let mut mem = MemoryReport::from_estimate(
        name,
        replicas,
        "not_compiled",
        Some("not compiled (--no_compile): the figures are the analytic estimate".into()),
        estimate,
    );
    let mut cost_report = CostReport {
        program: name.to_string(),
        source: "unoptimized".into(),
        totals: unopt_cost.totals,
        unoptimized_totals: unopt_cost.totals,
        xla: None,
        xla_message: Some("not compiled".into()),
        layers: unopt_cost.layers.clone(),
        by_opcode: unopt_cost.by_opcode.clone(),
    };
    let mut optimized = false;
    let mut compile_seconds = None;
    if let Some(t) = target {
        let started = Instant::now();
        match t.client.compile_uncached(&art.proto, &t.options) {
            Ok(exe) => {
                compile_seconds = Some(started.elapsed().as_secs_f64());
                mem.status = "compiled".into();
                mem.message = None;
                match exe.memory_stats() {
                    Ok(s) => mem.set_compiled(s),
                    Err(e) => mem.message = Some(format!("no compiled memory statistics: {e}")),
                }
                match exe.cost_analysis() {
                    Ok(v) => {
                        cost_report.xla = Some(xla_costs(&v));
                        cost_report.xla_message = None;
                    }
                    Err(e) => cost_report.xla_message = Some(e.to_string()),
                }
                match exe.optimized_program() {
                    Ok(p) => {
                        if let Some(opt) = p.hlo_module {
                            let text = to_text_with(
                                &opt,
                                &PrintOptions {
                                    replica_count: replicas,
                                    ..PrintOptions::default()
                                },
                            )?;
                            write(&out.join("optimized.hlo.txt"), text)?;
                            write(
                                &out.join("optimized.pb"),
                                prost::Message::encode_to_vec(&opt),
                            )?;
                            let c = cost::analyze(&opt);
                            cost_report.source = "optimized".into();
                            cost_report.totals = c.totals;
                            cost_report.layers = c.layers;
                            cost_report.by_opcode = c.by_opcode;
                            optimized = true;
                        }
                    }
                    Err(e) => {
                        let m = format!("no optimized program: {e}");
                        mem.message = Some(match mem.message.take() {
                            Some(prev) => format!("{prev}; {m}"),
                            None => m,
                        });
                    }
                }
            }
            Err(e) => {
                let m = e.to_string();
                mem.status = "compile_failed".into();
                mem.out_of_memory = memory::is_out_of_memory(&m);
                mem.message = Some(format!(
                    "{} failed to compile: {m}; the figures are the analytic estimate",
                    t.client.platform_name()
                ));
                cost_report.xla_message = Some("compilation failed".into());
            }
        }
    }
    write_json(&out.join("memory.json"), &mem)?;
    write_json(&out.join("cost.json"), &cost_report)?;
    Ok(ProgramEntry {
        name: name.to_string(),
        module: module.name.clone(),
        instructions: module.instruction_count(),
        optimized,
        status: mem.status.clone(),
        compile_seconds,
        flops: cost_report.totals.flops,
        memory_bytes: mem.per_replica_bytes,
        memory_source: mem.per_replica_source.clone(),
        compiled_need: mem.compiled_need,
        variable_bytes: if mem.estimate.optimizer_state_bytes > 0 {
            2 * mem.estimate.parameter_bytes + mem.estimate.optimizer_state_bytes
        } else {
            mem.estimate.parameter_bytes
        },
        fit: None,
        message: mem.message.clone(),
    })
}

/// Writes `dir/index.json`.
///
/// # Errors
/// [`Error::Io`] / [`Error::Json`] when it cannot be written.
pub fn write_index(dir: &Path, index: &ExportIndex) -> Result<(), Error> {
    write_json(&dir.join("index.json"), index)
}

/// Reads `dir/index.json`.
///
/// # Errors
/// [`Error::Io`] when it cannot be read, [`Error::Json`] when it is not an
/// export index.
pub fn read_index(dir: &Path) -> Result<ExportIndex, Error> {
    let path = dir.join("index.json");
    let s = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&s).map_err(|e| Error::Json {
        path,
        message: format!("not an export index of `simclr export_hlo`: {e}"),
    })
}
