//! The host side of training: compiles step programs on a PJRT client,
//! keeps the model state (variables, optimizer slots, global step) on the
//! devices between steps, feeds batches and reads back a few scalars.
//!
//! [`Trainer`] runs the step loop (checkpoints, summaries, k-NN monitor,
//! preemption, several processes) from a [`RunConfig`] the command line
//! builds out of the flags.
//!
//! Not here: flags (`cli`), data (`data`), checkpoint files (`ckpt`),
//! summaries (`summary`), the job of several processes (`dist`).

pub mod config;
pub mod preempt;
pub mod probe;
pub mod status;
pub mod teacher;
pub mod trainer;

pub use config::{DataSpec, Distillation, InitFrom, RunConfig};
pub use status::Status;
pub use trainer::{from_ckpt, step_inputs, to_ckpt, Trainer};

use crate::nn::init::initial_values;
use crate::pjrt::{self, Buffer, Client, CompileOptions, HostArray, LoadedExecutable};
use crate::simclr::step::{Output, StepProgram};
use std::collections::HashMap;
use std::time::Instant;
use thiserror::Error;

/// Errors of the training host loop.
#[derive(Debug, Error)]
pub enum Error {
    /// The runtime refused something.
    #[error(transparent)]
    Pjrt(#[from] pjrt::Error),
    /// Inputs or state do not fit the program.
    #[error("{0}")]
    Mismatch(String),
    /// The run's configuration or data cannot work.
    #[error("{0}")]
    Config(String),
    /// A step program could not be built.
    #[error(transparent)]
    Step(Box<crate::simclr::step::Error>),
    /// The model's variables could not be listed.
    #[error(transparent)]
    Model(#[from] crate::nn::Error),
    /// Reading or augmenting data failed.
    #[error(transparent)]
    Data(#[from] crate::data::Error),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] crate::ckpt::Error),
    /// A summary, metrics or result file could not be written.
    #[error(transparent)]
    Summary(#[from] crate::summary::Error),
    /// The job of several processes failed (a process missing or dead, the
    /// coordinator unreachable).
    #[error(transparent)]
    Dist(#[from] crate::dist::Error),
    /// A file-system operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The loss stopped being finite.
    #[error(
        "the loss became {} at step {step} (total_loss = {value}); stopping. The last good checkpoint is {last_checkpoint}; try a lower --learning_rate or check the data",
        if value.is_nan() { "NaN" } else { "infinite" }
    )]
    NonFinite {
        /// The step whose loss was not finite.
        step: i64,
        /// The loss.
        value: f64,
        /// The newest checkpoint written before it, or `none`.
        last_checkpoint: String,
    },
    /// A signal asked the run to stop; the checkpoint of `step` is written.
    #[error(
        "stopped by {signal} after step {step}; the checkpoint {checkpoint} holds it. Rerun the same command to resume from there"
    )]
    Preempted {
        /// The last step trained and saved.
        step: i64,
        /// `SIGTERM` or `SIGINT`.
        signal: String,
        /// The checkpoint written.
        checkpoint: String,
    },
    /// The distillation teacher cannot be used.
    #[error("{0}")]
    Teacher(String),
}

impl From<crate::simclr::step::Error> for Error {
    fn from(e: crate::simclr::step::Error) -> Self {
        Error::Step(Box::new(e))
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// XLA compiler options simclr passes by default on the CPU plugin: YNNPACK
/// for dots and reductions (batch-norm sums), never for convolutions, which
/// stay on XLA's Eigen path (spec/PJRT.md, "CPU performance options").
pub fn default_compile_options(client: &Client, num_replicas: usize) -> CompileOptions {
    let opts = CompileOptions::new(num_replicas);
    if client.platform_name() == "cpu" {
        opts.with_override(
            "xla_cpu_experimental_ynn_fusion_type",
            "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
        )
    } else {
        opts
    }
}

/// A step program compiled for the client's first R devices.
#[derive(Debug)]
pub struct Compiled {
    /// The traced program and its input/output map.
    pub program: StepProgram,
    /// The executable.
    pub executable: LoadedExecutable,
    /// Seconds spent compiling.
    pub compile_seconds: f64,
}

/// Compiles `program` with `options`.
pub fn compile(
    client: &Client,
    program: StepProgram,
    options: &CompileOptions,
) -> Result<Compiled> {
    let t = Instant::now();
    let executable = client.compile(&program.module.to_proto(), options)?;
    Ok(Compiled {
        program,
        executable,
        compile_seconds: t.elapsed().as_secs_f64(),
    })
}

/// Model state on the devices: one buffer per replica for every variable,
/// slot and the global step (replicas hold identical copies).
#[derive(Debug)]
pub struct DeviceState {
    /// `vars[i][r]`: variable i on replica r.
    pub vars: Vec<Vec<Buffer>>,
    /// `teacher[i][r]`: the distillation teacher's variable i on replica r
    /// (read-only inputs; empty for other programs).
    pub teacher: Vec<Vec<Buffer>>,
    /// `slots[j][r]`: optimizer slot j on replica r.
    pub slots: Vec<Vec<Buffer>>,
    /// The global step on each replica (`s64[]`).
    pub step: Vec<Buffer>,
}

/// Host copy of the state, by name (variables by TF1 name, slots by
/// `<variable>/<slot>`, and `global_step`; a distillation teacher's
/// variables by `teacher/<TF1 name>`).
pub type HostState = HashMap<String, HostArray>;

impl Compiled {
    /// The replicas this process feeds (the executable's addressable
    /// devices; all replicas in a single-process job).
    fn replicas(&self) -> usize {
        self.executable.devices().len()
    }

    /// Fresh state: variables initialised from `seed` (SPEC §3.2, §4.1), slots
    /// zero, step 0. Values given in `overrides` (by name) replace the
    /// initial values, for restoring from a checkpoint. A distillation
    /// program's teacher variables have no initialiser: every one must be
    /// in `overrides` as `teacher/<name>`.
    pub fn init_state(
        &self,
        client: &Client,
        seed: u64,
        overrides: &HostState,
    ) -> Result<DeviceState> {
        let p = &self.program;
        let mut host: Vec<HostArray> = Vec::with_capacity(p.vars.len());
        for (i, v) in p.vars.iter().enumerate() {
            let a = match overrides.get(&v.name) {
                Some(a) => check_host(&v.name, a, &v.shape.dims)?.clone(),
                None => HostArray::from_f32(
                    &v.shape.dims,
                    &initial_values(&v.init, v.shape.numel(), seed, i as u64),
                )?,
            };
            host.push(a);
        }
        let mut slots = Vec::with_capacity(p.slots.len());
        for s in &p.slots {
            let a = match overrides.get(&s.name) {
                Some(a) => check_host(&s.name, a, &s.shape.dims)?.clone(),
                None => HostArray::zeros(pjrt::ElementType::F32, &s.shape.dims)?,
            };
            slots.push(a);
        }
        let step = match overrides.get("global_step") {
            Some(a) => check_host("global_step", a, &[])?.clone(),
            None => HostArray::scalar_s64(0),
        };
        let mut teacher = Vec::with_capacity(p.teacher_vars.len());
        for v in &p.teacher_vars {
            let key = format!("{TEACHER_PREFIX}{}", v.name);
            let a = overrides.get(&key).ok_or_else(|| {
                Error::Mismatch(format!(
                    "the teacher's variable {} has no value (restore the teacher from its checkpoint)",
                    v.name
                ))
            })?;
            teacher.push(check_host(&key, a, &v.shape.dims)?.clone());
        }
        let mut state = self.upload_state(client, &host, &slots, &step)?;
        let devices = self.executable.devices().to_vec();
        state.teacher = teacher
            .iter()
            .map(|a| {
                devices
                    .iter()
                    .map(|d| client.buffer_from_host(a, d).map_err(Error::from))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        Ok(state)
    }

    fn upload_state(
        &self,
        client: &Client,
        vars: &[HostArray],
        slots: &[HostArray],
        step: &HostArray,
    ) -> Result<DeviceState> {
        let devices = self.executable.devices().to_vec();
        let up = |a: &HostArray| -> Result<Vec<Buffer>> {
            devices
                .iter()
                .map(|d| client.buffer_from_host(a, d).map_err(Error::from))
                .collect()
        };
        Ok(DeviceState {
            vars: vars.iter().map(&up).collect::<Result<_>>()?,
            teacher: vec![],
            slots: slots.iter().map(&up).collect::<Result<_>>()?,
            step: up(step)?,
        })
    }

    /// Uploads replica r's data inputs to the executable's r-th device.
    fn upload_inputs(
        &self,
        client: &Client,
        inputs: &[Vec<HostArray>],
    ) -> Result<Vec<Vec<Buffer>>> {
        let devices = self.executable.devices();
        if inputs.len() != devices.len() {
            return Err(Error::Mismatch(format!(
                "{} input lists for {} replicas",
                inputs.len(),
                devices.len()
            )));
        }
        inputs
            .iter()
            .zip(devices)
            .map(|(list, device)| {
                list.iter()
                    .map(|a| client.buffer_from_host(a, device).map_err(Error::from))
                    .collect()
            })
            .collect()
    }

    /// Reads the state back from replica 0.
    pub fn download_state(&self, state: &DeviceState) -> Result<HostState> {
        let p = &self.program;
        let mut out = HostState::new();
        for (v, b) in p.vars.iter().zip(&state.vars) {
            out.insert(v.name.clone(), b[0].to_host()?);
        }
        for (s, b) in p.slots.iter().zip(&state.slots) {
            out.insert(s.name.clone(), b[0].to_host()?);
        }
        if let Some(b) = state.step.first() {
            out.insert("global_step".into(), b.to_host()?);
        }
        Ok(out)
    }

    /// Reads the distillation teacher's variables back from replica `r`,
    /// by TF1 name (they are not part of [`Compiled::download_state`]:
    /// checkpoints hold the student only).
    pub fn download_teacher(&self, state: &DeviceState, r: usize) -> Result<HostState> {
        let mut out = HostState::new();
        for (v, b) in self.program.teacher_vars.iter().zip(&state.teacher) {
            let buf = b
                .get(r)
                .ok_or_else(|| Error::Mismatch(format!("no replica {r} in the state")))?;
            out.insert(v.name.clone(), buf.to_host()?);
        }
        Ok(out)
    }

    /// Uploads replica r's data inputs (images, labels) to its device, so
    /// that the upload of the next step can overlap the running one.
    pub fn upload(&self, client: &Client, inputs: &[Vec<HostArray>]) -> Result<Uploaded> {
        Ok(Uploaded(self.upload_inputs(client, inputs)?))
    }

    /// Starts one training step on uploaded inputs and returns without
    /// waiting for it: the state is updated in place (donated buffers are
    /// replaced by the outputs, which the next step can consume at once) and
    /// the metrics are read later from the returned [`InFlight`].
    pub fn dispatch(&self, state: &mut DeviceState, data: Uploaded) -> Result<InFlight> {
        let r = self.replicas();
        let p = &self.program;
        let args: Vec<Vec<&Buffer>> = (0..r)
            .map(|rep| {
                let mut a: Vec<&Buffer> = data.0[rep].iter().collect();
                a.extend(state.vars.iter().map(|v| &v[rep]));
                a.extend(state.teacher.iter().map(|v| &v[rep]));
                a.extend(state.step.get(rep));
                a.extend(state.slots.iter().map(|s| &s[rep]));
                a
            })
            .collect();
        let running = self.executable.execute_async(&args)?;
        drop(args);
        let (mut outs, pending) = running.into_parts();
        let mut metrics = None;
        // Move each replica's outputs into the state, last output first so
        // indices stay valid while popping.
        for rep in (0..r).rev() {
            let replica_outs = std::mem::take(&mut outs[rep]);
            for (o, buf) in p.outputs.iter().zip(replica_outs) {
                match o {
                    Output::Var(i) => state.vars[*i][rep] = buf,
                    Output::Slot(j) => state.slots[*j][rep] = buf,
                    Output::Step => state.step[rep] = buf,
                    Output::Metrics if rep == 0 => metrics = Some(buf),
                    _ => {}
                }
            }
        }
        let metrics = metrics
            .ok_or_else(|| Error::Mismatch("the step program has no metrics output".into()))?;
        Ok(InFlight {
            metrics,
            pending,
            _inputs: data,
            names: p.metrics.clone(),
        })
    }

    /// Runs one training step: `inputs[r]` are replica r's data inputs
    /// (images, labels). The state is updated in place. Returns the metrics
    /// named by the program's [`StepProgram::metrics`].
    pub fn train_step(
        &self,
        client: &Client,
        state: &mut DeviceState,
        inputs: &[Vec<HostArray>],
    ) -> Result<Vec<(&'static str, f64)>> {
        let data = self.upload(client, inputs)?;
        self.dispatch(state, data)?.metrics()
    }

    /// Runs the eval program on `inputs[r]` (images) with the variables of
    /// `state`; returns `outputs[r][k]` for the program's named outputs.
    pub fn eval_step(
        &self,
        client: &Client,
        state: &DeviceState,
        inputs: &[Vec<HostArray>],
    ) -> Result<Vec<Vec<HostArray>>> {
        let r = self.replicas();
        let data = self.upload_inputs(client, inputs)?;
        let args: Vec<Vec<&Buffer>> = (0..r)
            .map(|rep| {
                let mut a: Vec<&Buffer> = data[rep].iter().collect();
                a.extend(state.vars.iter().map(|v| &v[rep]));
                a
            })
            .collect();
        let outs = self.executable.execute(&args)?;
        outs.into_iter()
            .map(|list| {
                list.iter()
                    .map(|b| b.to_host().map_err(Error::from))
                    .collect()
            })
            .collect()
    }
}

/// A step's data inputs on the devices (per replica: images, labels).
#[derive(Debug)]
pub struct Uploaded(Vec<Vec<Buffer>>);

/// A training step that has been started ([`Compiled::dispatch`]).
#[derive(Debug)]
pub struct InFlight {
    metrics: Buffer,
    pending: pjrt::Pending,
    _inputs: Uploaded,
    names: Vec<&'static str>,
}

impl InFlight {
    /// Waits for the step and reads its metrics (named by the program's
    /// [`StepProgram::metrics`], from replica 0).
    pub fn metrics(self) -> Result<Vec<(&'static str, f64)>> {
        self.pending.wait()?;
        let values = self.metrics.to_host()?.to_f32()?;
        Ok(self
            .names
            .iter()
            .copied()
            .zip(values.into_iter().map(f64::from))
            .collect())
    }
}

/// Prefix of the distillation teacher's variables in a [`HostState`] (and
/// of their parameter names in the program).
pub const TEACHER_PREFIX: &str = "teacher/";

fn check_host<'a>(name: &str, a: &'a HostArray, dims: &[i64]) -> Result<&'a HostArray> {
    if a.dims != dims {
        return Err(Error::Mismatch(format!(
            "{name}: the restored value has shape {:?}, the model needs {:?}",
            a.dims, dims
        )));
    }
    Ok(a)
}
