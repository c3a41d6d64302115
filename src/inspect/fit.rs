//! Whether a step program fits one device's memory, and what to change when
//! it does not.
//!
//! The device's memory comes from the plugin (`PJRT_Device_MemoryStats`'s
//! `bytes_limit`, where the plugin has it) or from `--device_memory`, a byte
//! count (`17179869184`, `16GiB`, `80GB`) or the name of a common
//! accelerator ([`ACCELERATORS`]). The need is the per-replica headline of
//! `memory.json` (XLA's compiled buffers, else the analytic estimate).
//!
//! The suggestion uses a linear model of the need in the per-replica batch:
//! the model variables and optimizer state are fixed, everything else
//! (inputs, activations, temporaries, outputs) scales with the examples a
//! replica holds. From it: the fewest replicas that fit at the same global
//! batch, and the largest per-replica batch that fits. With a compiler at
//! hand, [`confirm`] compiles the program at that batch and checks XLA's
//! figure.

use super::memory;
use super::Error;
use crate::pjrt::{Client, LoadedExecutable};
use crate::simclr::StepProgram;
use serde::{Deserialize, Serialize};

/// A common accelerator: memory per device (what one replica gets) and the
/// figures of its roofline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accelerator {
    /// The name `--device_memory` takes (`tpu_v4`, `a100_80gb`, …).
    pub name: &'static str,
    /// What it is, in words.
    pub label: &'static str,
    /// Memory of one device (one TPU core for v3, one chip otherwise), bytes.
    pub memory_bytes: u64,
    /// Peak dense bf16 FLOP/s of one device.
    pub peak_flops: f64,
    /// Memory bandwidth of one device, bytes/s.
    pub bandwidth: f64,
}

const GIB: u64 = 1 << 30;

/// The accelerators `--device_memory` knows by name (vendors' data sheets).
pub const ACCELERATORS: &[Accelerator] = &[
    Accelerator {
        name: "tpu_v3",
        label: "TPU v3 core (16 GiB HBM; a chip has two)",
        memory_bytes: 16 * GIB,
        peak_flops: 61.5e12,
        bandwidth: 450e9,
    },
    Accelerator {
        name: "tpu_v4",
        label: "TPU v4 chip (32 GiB HBM)",
        memory_bytes: 32 * GIB,
        peak_flops: 275e12,
        bandwidth: 1200e9,
    },
    Accelerator {
        name: "tpu_v5e",
        label: "TPU v5e chip (16 GiB HBM)",
        memory_bytes: 16 * GIB,
        peak_flops: 197e12,
        bandwidth: 819e9,
    },
    Accelerator {
        name: "tpu_v5p",
        label: "TPU v5p chip (95 GiB HBM)",
        memory_bytes: 95 * GIB,
        peak_flops: 459e12,
        bandwidth: 2765e9,
    },
    Accelerator {
        name: "a100_40gb",
        label: "NVIDIA A100 40GB",
        memory_bytes: 40 * GIB,
        peak_flops: 312e12,
        bandwidth: 1555e9,
    },
    Accelerator {
        name: "a100_80gb",
        label: "NVIDIA A100 80GB",
        memory_bytes: 80 * GIB,
        peak_flops: 312e12,
        bandwidth: 2039e9,
    },
    Accelerator {
        name: "h100",
        label: "NVIDIA H100 SXM 80GB",
        memory_bytes: 80 * GIB,
        peak_flops: 989e12,
        bandwidth: 3350e9,
    },
    Accelerator {
        name: "h200",
        label: "NVIDIA H200 141GB",
        memory_bytes: 141_000_000_000,
        peak_flops: 989e12,
        bandwidth: 4800e9,
    },
];

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The accelerator called `name` (case, `_`, `-` and spaces ignored; `a100`
/// is the 40 GB one, `v4` is `tpu_v4`).
pub fn accelerator(name: &str) -> Option<&'static Accelerator> {
    let n = normalize(name);
    let n = match n.as_str() {
        "a100" | "a10040g" => "a10040gb".to_string(),
        "a10080g" => "a10080gb".to_string(),
        "h100sxm" | "h10080gb" => "h100".to_string(),
        other => match other.strip_prefix('v') {
            Some(rest) if !other.starts_with("tpu") => format!("tpuv{rest}"),
            _ => other.to_string(),
        },
    };
    ACCELERATORS.iter().find(|a| normalize(a.name) == n)
}

/// The device a step is checked against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// The accelerator's name, `custom` for a byte count, or the plugin's
    /// device kind.
    pub name: String,
    /// Bytes one replica may use.
    pub memory_bytes: u64,
    /// Where `memory_bytes` comes from (`--device_memory`, the plugin).
    pub source: String,
    /// Peak FLOP/s, when known (the accelerator table).
    pub peak_flops: Option<f64>,
    /// Memory bandwidth in bytes/s, when known.
    pub bandwidth: Option<f64>,
}

impl DeviceSpec {
    /// The accelerator `a`, named on the command line.
    pub fn from_accelerator(a: &Accelerator) -> DeviceSpec {
        DeviceSpec {
            name: a.name.to_string(),
            memory_bytes: a.memory_bytes,
            source: format!("--device_memory ({})", a.label),
            peak_flops: Some(a.peak_flops),
            bandwidth: Some(a.bandwidth),
        }
    }

    /// FLOPs per byte at which the device turns from memory- to
    /// compute-bound (peak FLOP/s ÷ bandwidth), when both are known.
    pub fn ridge(&self) -> Option<f64> {
        match (self.peak_flops, self.bandwidth) {
            (Some(f), Some(b)) if b > 0.0 => Some(f / b),
            _ => None,
        }
    }
}

fn bad(value: &str, why: &str) -> Error {
    let names: Vec<&str> = ACCELERATORS.iter().map(|a| a.name).collect();
    Error::Config(format!(
        "--device_memory={value}: {why}; give bytes (17179869184, 16GiB, 80GB) or one of {}",
        names.join(", ")
    ))
}

/// Parses `--device_memory`: a byte count with an optional unit (`B`, `KB`,
/// `MB`, `GB`, `TB` are powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` and the
/// bare `K`, `M`, `G`, `T` powers of 1024) or an accelerator's name.
///
/// # Errors
/// [`Error::Config`] naming the accepted forms.
pub fn parse_device_memory(value: &str) -> Result<DeviceSpec, Error> {
    let v = value.trim();
    if v.is_empty() {
        return Err(bad(value, "empty"));
    }
    if let Some(a) = accelerator(v) {
        return Ok(DeviceSpec::from_accelerator(a));
    }
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    if num.is_empty() {
        return Err(bad(value, "not a known accelerator"));
    }
    let x: f64 = num
        .parse()
        .map_err(|_| bad(value, "not a number of bytes"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => GIB as f64,
        "t" | "tib" => GIB as f64 * 1024.0,
        _ => return Err(bad(value, "unknown unit")),
    };
    let bytes = (x * scale).round();
    if !(1.0..1e19).contains(&bytes) {
        return Err(bad(value, "must be a positive size"));
    }
    Ok(DeviceSpec {
        name: "custom".into(),
        memory_bytes: bytes as u64,
        source: "--device_memory".into(),
        peak_flops: None,
        bandwidth: None,
    })
}

/// The need of one replica as a function of its batch: `fixed_bytes`
/// (variables and optimizer state) plus the rest in proportion to the
/// examples, fitted through the figure at `per_replica_batch`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeedModel {
    /// The need at `per_replica_batch`.
    pub need_bytes: u64,
    /// The part that does not depend on the batch.
    pub fixed_bytes: u64,
    /// The per-replica batch `need_bytes` was measured at.
    pub per_replica_batch: i64,
}

impl NeedModel {
    /// Bytes per example beyond the fixed part.
    pub fn per_example_bytes(&self) -> f64 {
        self.need_bytes.saturating_sub(self.fixed_bytes) as f64
            / self.per_replica_batch.max(1) as f64
    }

    /// The modelled need at a per-replica batch of `batch`.
    pub fn at(&self, batch: i64) -> u64 {
        self.fixed_bytes + (self.per_example_bytes() * batch.max(0) as f64).ceil() as u64
    }

    /// The largest per-replica batch whose modelled need is at most
    /// `have` bytes (0 when the fixed part alone does not fit).
    pub fn max_batch(&self, have: u64) -> i64 {
        if have < self.fixed_bytes {
            return 0;
        }
        let e = self.per_example_bytes();
        if e <= 0.0 {
            return i64::MAX;
        }
        let mut b = ((have - self.fixed_bytes) as f64 / e).floor() as i64;
        while b > 0 && self.at(b) > have {
            b -= 1;
        }
        b
    }
}

/// A compile of the program at the suggested per-replica batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The per-replica batch compiled.
    pub per_replica_batch: i64,
    /// XLA's need at that batch (arguments + temporaries + outputs − aliased).
    pub need_bytes: u64,
    /// Whether it fits the device.
    pub fits: bool,
}

/// The verdict for one program on one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitCheck {
    /// The device checked against.
    pub device: DeviceSpec,
    /// Bytes one replica needs.
    pub need_bytes: u64,
    /// Whether `need_bytes` ≤ the device's memory.
    pub fits: bool,
    /// Replicas the program was made for.
    pub replicas: usize,
    /// The program's global batch (per-replica batch × replicas).
    pub global_batch: i64,
    /// The fewest replicas (dividing the global batch) that fit, when it
    /// does not fit.
    pub min_replicas: Option<usize>,
    /// The largest per-replica batch that fits (by the model, then by
    /// [`confirm`] when a compiler is at hand), when it does not fit.
    pub max_per_replica_batch: Option<i64>,
    /// The compile at `max_per_replica_batch`, when one was made.
    pub confirmed: Option<Confirmation>,
    /// The linear model the suggestions come from.
    pub model: NeedModel,
    /// The verdict in words (what the CLI prints).
    pub message: String,
}

fn gib(b: u64) -> String {
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }
}

impl FitCheck {
    fn describe(&mut self) {
        let dev = format!("{} ({})", self.device.name, self.device.source);
        self.message = if self.fits {
            format!(
                "fits: needs {} per replica, the device {dev} has {}",
                gib(self.need_bytes),
                gib(self.device.memory_bytes)
            )
        } else {
            let mut m = format!(
                "needs {} per replica, the device {dev} has {}",
                gib(self.need_bytes),
                gib(self.device.memory_bytes)
            );
            let mut options = Vec::new();
            if let Some(k) = self.min_replicas {
                options.push(format!("use ≥ {k} replicas"));
            }
            match self.max_per_replica_batch {
                Some(b) if b > 0 => {
                    let how = match &self.confirmed {
                        Some(c) if c.per_replica_batch == b && c.fits => {
                            format!(" (compiled: {})", gib(c.need_bytes))
                        }
                        Some(c) if c.per_replica_batch == b => format!(
                            " (compiled: {}, still too much; the model is off here)",
                            gib(c.need_bytes)
                        ),
                        _ => " (analytic model)".to_string(),
                    };
                    options.push(format!("a per-replica batch ≤ {b}{how}"));
                }
                _ => {}
            }
            if options.is_empty() {
                m.push_str(&format!(
                    ": it does not fit at any batch, about {} do not shrink with the batch \
(variables, gradients, optimizer state)",
                    gib(self.model.fixed_bytes)
                ));
            } else {
                m.push_str(": ");
                m.push_str(&options.join(" or "));
            }
            m
        };
    }
}

/// Checks `model.need_bytes` against `device`, for a program of `replicas`
/// replicas at a per-replica batch of `model.per_replica_batch`.
pub fn check(device: &DeviceSpec, model: NeedModel, replicas: usize) -> FitCheck {
    let have = device.memory_bytes;
    let per = model.per_replica_batch.max(1);
    let global = per * replicas.max(1) as i64;
    let fits = model.need_bytes <= have;
    let (min_replicas, max_batch) = if fits {
        (None, None)
    } else {
        let b = model.max_batch(have);
        let k = if b > 0 {
            let start = ((global + b - 1) / b).max(replicas as i64 + 1);
            (start..=global)
                .find(|k| global % k == 0 && model.at(global / k) <= have)
                .and_then(|k| usize::try_from(k).ok())
        } else {
            None
        };
        (k, (b > 0).then_some(b.min(per)))
    };
    let mut c = FitCheck {
        device: device.clone(),
        need_bytes: model.need_bytes,
        fits,
        replicas,
        global_batch: global,
        min_replicas,
        max_per_replica_batch: max_batch,
        confirmed: None,
        model,
        message: String::new(),
    };
    c.describe();
    c
}

/// Confirms the suggested per-replica batch of a check that does not fit
/// by compiling: `need_at(b)` compiles the program at a per-replica batch
/// of `b` and returns XLA's need. When that is still too much, the next
/// batch comes from the line through the last two compiled figures (the
/// program's own figure first), three compiles at most. The check's
/// `max_per_replica_batch`, `confirmed` and message are updated.
///
/// # Errors
/// What `need_at` returns.
pub fn confirm<E>(
    check: &mut FitCheck,
    mut need_at: impl FnMut(i64) -> Result<u64, E>,
) -> Result<(), E> {
    let Some(mut b) = check.max_per_replica_batch.filter(|&b| b > 0) else {
        return Ok(());
    };
    let have = check.device.memory_bytes as f64;
    let mut last = (check.model.per_replica_batch, check.model.need_bytes);
    for _ in 0..3 {
        let need = need_at(b)?;
        let fits = need <= check.device.memory_bytes;
        check.max_per_replica_batch = Some(b);
        check.confirmed = Some(Confirmation {
            per_replica_batch: b,
            need_bytes: need,
            fits,
        });
        if fits || last.0 == b {
            break;
        }
        let slope = (last.1 as f64 - need as f64) / (last.0 - b) as f64;
        if slope <= 0.0 {
            break;
        }
        let intercept = need as f64 - slope * b as f64;
        let next = (((have - intercept) / slope).floor() as i64).min(b - 1);
        if next < 1 {
            // Even one example per replica is too much: what does not
            // shrink with the batch is more than the device has.
            check.max_per_replica_batch = None;
            check.min_replicas = None;
            check.model.fixed_bytes = intercept.max(0.0) as u64;
            break;
        }
        last = (b, need);
        b = next;
    }
    if let Some(c) = check.confirmed.as_ref().filter(|c| c.fits) {
        let global = check.global_batch;
        let b = c.per_replica_batch.max(1);
        let start = ((global + b - 1) / b).max(check.replicas as i64 + 1);
        check.min_replicas = (start..=global)
            .find(|k| global % k == 0)
            .and_then(|k| usize::try_from(k).ok());
    }
    check.describe();
    Ok(())
}

/// The first device of `client` as a fit-check target, when its plugin
/// reports a memory limit (`PJRT_Device_MemoryStats`; the CPU plugin does
/// not). Peak FLOP/s and bandwidth come from [`ACCELERATORS`] when the
/// device kind names one of them (`NVIDIA H200` → `h200`).
pub fn plugin_device(client: &Client) -> Option<DeviceSpec> {
    let d = client.devices().first()?;
    let limit = client.device_memory_limit(d).ok().flatten()?;
    let kind = normalize(&d.kind);
    let known = ACCELERATORS
        .iter()
        .find(|a| kind.contains(&normalize(a.name)));
    Some(DeviceSpec {
        name: d.kind.clone(),
        memory_bytes: limit,
        source: "PJRT_Device_MemoryStats bytes_limit".into(),
        peak_flops: known.map(|a| a.peak_flops),
        bandwidth: known.map(|a| a.bandwidth),
    })
}

/// The fit check of a compiled step before it runs (`simclr run`): XLA's
/// need of `executable` against `device`, else the plugin's own limit.
/// `None` when no device is known (the CPU plugin, no `device`) or the
/// plugin has no compiled memory statistics. The fixed part of the model
/// is the analytic estimate's variables, gradients and optimizer state.
pub fn check_executable(
    client: &Client,
    program: &StepProgram,
    executable: &LoadedExecutable,
    device: Option<&DeviceSpec>,
    per_replica_batch: i64,
) -> Option<FitCheck> {
    let device = match device {
        Some(d) => d.clone(),
        None => plugin_device(client)?,
    };
    let need = memory::compiled_need(&executable.memory_stats().ok()?).total_bytes;
    let e = memory::estimate(program, &program.module.to_proto());
    let fixed = if e.optimizer_state_bytes > 0 {
        2 * e.parameter_bytes + e.optimizer_state_bytes
    } else {
        e.parameter_bytes
    };
    Some(check(
        &device,
        NeedModel {
            need_bytes: need,
            fixed_bytes: fixed,
            per_replica_batch,
        },
        program.module.num_replicas,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_memory_takes_names_and_sizes_and_refuses_the_rest() {
        let v4 = parse_device_memory("TPU-v4").expect("name");
        assert_eq!(v4.memory_bytes, 32 << 30);
        assert!(v4.ridge().is_some_and(|r| r > 100.0));
        assert_eq!(parse_device_memory("v3").expect("v3").name, "tpu_v3");
        for (text, bytes) in [
            ("a100", 40 << 30),
            ("H200", 141_000_000_000),
            ("16GiB", 16 << 30),
            ("80GB", 80_000_000_000),
            ("1048576", 1 << 20),
            ("1.5g", 3 << 29),
        ] {
            let got = parse_device_memory(text).expect(text).memory_bytes;
            assert_eq!(got, bytes, "{text}");
        }
        for badv in ["", "h300", "12 parsecs", "0", "-5GB"] {
            let e = parse_device_memory(badv).expect_err(badv).to_string();
            assert!(
                e.contains("--device_memory") && e.contains("tpu_v5p"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_step_that_fits_says_so_and_suggests_nothing() {
        let dev = parse_device_memory("h100").expect("h100");
        let c = check(
            &dev,
            NeedModel {
                need_bytes: 10 << 30,
                fixed_bytes: 1 << 30,
                per_replica_batch: 64,
            },
            2,
        );
        assert!(c.fits);
        assert!(c.message.starts_with("fits"), "{}", c.message);
        assert_eq!((c.min_replicas, c.max_per_replica_batch), (None, None));
    }

    #[test]
    fn a_step_that_does_not_fit_gets_replicas_and_a_batch_that_fit_by_the_model() {
        let dev = parse_device_memory("16GiB").expect("16GiB");
        // 4 GiB fixed + 1 GiB per example, 64 examples per replica, 2 replicas.
        let model = NeedModel {
            need_bytes: (4 + 64) << 30,
            fixed_bytes: 4 << 30,
            per_replica_batch: 64,
        };
        let c = check(&dev, model, 2);
        assert!(!c.fits);
        assert_eq!(c.max_per_replica_batch, Some(12));
        // Global batch 128: 11 replicas would do by size, 16 divides it.
        assert_eq!(c.min_replicas, Some(16));
        assert!(
            c.message.contains("needs 68.0 GiB per replica")
                && c.message.contains("has 16.0 GiB")
                && c.message
                    .contains("use ≥ 16 replicas or a per-replica batch ≤ 12"),
            "{}",
            c.message
        );
        // Variables alone too large: no batch helps.
        let c = check(&parse_device_memory("2GiB").expect("2GiB"), model, 2);
        assert_eq!((c.min_replicas, c.max_per_replica_batch), (None, None));
        assert!(
            c.message
                .contains("does not fit at any batch, about 4.0 GiB"),
            "{}",
            c.message
        );
    }

    #[test]
    fn confirm_compiles_the_suggested_batch_and_shrinks_it_when_the_model_was_optimistic() {
        let dev = parse_device_memory("16GiB").expect("16GiB");
        let model = NeedModel {
            need_bytes: (4 + 64) << 30,
            fixed_bytes: 4 << 30,
            per_replica_batch: 64,
        };
        let mut c = check(&dev, model, 2);
        let mut compiled = Vec::new();
        // The "compiler": 10 GiB that do not scale + 58/64 GiB per example
        // (68 GiB at 64, as the model was told; the model puts 4 GiB fixed).
        confirm(&mut c, |b| {
            compiled.push(b);
            Ok::<u64, ()>((10 << 30) + b as u64 * 973_078_528)
        })
        .expect("confirm");
        assert_eq!(compiled, [12, 6]);
        let k = c.confirmed.as_ref().expect("confirmed");
        assert!(k.fits && k.per_replica_batch == 6, "{k:?}");
        assert_eq!(c.max_per_replica_batch, Some(6));
        assert!(
            c.message.contains("batch ≤ 6 (compiled: 15.4 GiB)"),
            "{}",
            c.message
        );
    }
}
