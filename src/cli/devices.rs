//! `simclr devices`: which plugin was found, its platform, PJRT API
//! version, and one line per device (or the same as JSON with `--json`).

use std::io::Write;
use std::path::PathBuf;

use crate::dist::JobSpec;
use std::time::Duration;

/// Arguments of `simclr devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Path of the PJRT plugin shared library (default: discovered).
    #[arg(long = "pjrt_plugin", value_name = "PATH")]
    pub pjrt_plugin: Option<PathBuf>,
    /// Look for libtpu (only on TPU hosts).
    #[arg(long = "use_tpu")]
    pub use_tpu: bool,
    /// Number of CPU devices for the CPU plugin (plugin default: 4).
    #[arg(long = "cpu_device_count", value_name = "N")]
    pub cpu_device_count: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Join a job of several processes: process 0's `host:port`.
    #[arg(long = "coordinator_address", value_name = "HOST:PORT")]
    pub coordinator_address: Option<String>,
    /// Processes in the job.
    #[arg(long = "num_processes", value_name = "N")]
    pub num_processes: Option<usize>,
    /// This process (0 to N-1).
    #[arg(long = "process_id", value_name = "I")]
    pub process_id: Option<usize>,
    /// Seconds to wait for every process to join.
    #[arg(
        long = "initialization_timeout",
        value_name = "S",
        default_value_t = 300.0
    )]
    pub initialization_timeout: f64,
}

/// What `simclr devices` reports.
#[derive(Debug, serde::Serialize)]
pub struct DevicesReport {
    /// Plugin shared library.
    pub plugin: PathBuf,
    /// Plugin kind guessed from its attributes.
    pub plugin_kind: crate::pjrt::PluginKind,
    /// PJRT C API version of the plugin, `major.minor`.
    pub pjrt_api_version: String,
    /// Plugin attributes (e.g. `xla_version`).
    pub attributes: Vec<crate::pjrt::NamedValue>,
    /// `PJRT_Client_PlatformName`.
    pub platform_name: String,
    /// `PJRT_Client_PlatformVersion`.
    pub platform_version: String,
    /// One entry per addressable device.
    pub devices: Vec<DeviceReport>,
    /// In a job of several processes: this process and the job's replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobReport>,
}

/// The job's view in [`DevicesReport`].
#[derive(Debug, serde::Serialize)]
pub struct JobReport {
    /// This process.
    pub process_id: usize,
    /// Processes in the job.
    pub num_processes: usize,
    /// The coordinator's address.
    pub coordinator_address: String,
    /// Global replicas in order: (process, local device) → replica index.
    pub replicas: Vec<ReplicaReport>,
}

/// One replica of the job.
#[derive(Debug, serde::Serialize)]
pub struct ReplicaReport {
    /// Global replica index.
    pub replica: usize,
    /// The process that feeds it.
    pub process_id: usize,
    /// The device id in that process's plugin.
    pub device_id: i32,
    /// Device kind.
    pub kind: String,
}

/// One device in [`DevicesReport`].
#[derive(Debug, serde::Serialize)]
pub struct DeviceReport {
    /// Global device id.
    pub id: i32,
    /// Device kind (`cpu`, ...).
    pub kind: String,
    /// Owning process index.
    pub process_index: i32,
    /// The plugin's description, e.g. `CpuDevice(id=0)`.
    pub description: String,
}

/// Discovers the plugin, creates a client and collects the report.
pub fn report(args: &DevicesArgs) -> anyhow::Result<DevicesReport> {
    let env = |k: &str| std::env::var(k).ok();
    let spec = JobSpec::resolve(
        args.coordinator_address.as_deref(),
        args.num_processes,
        args.process_id,
        args.use_tpu,
        &env,
    )?
    .map(|mut s| {
        s.initialization_timeout = Duration::from_secs_f64(args.initialization_timeout.max(1.0));
        s
    });
    let (client, job) = super::run::connect(
        spec.as_ref(),
        args.pjrt_plugin.as_deref(),
        args.use_tpu,
        args.cpu_device_count,
    )?;
    let job_report = spec.as_ref().and_then(|s| {
        let topo = job.topology()?;
        let replicas = topo
            .processes
            .iter()
            .flat_map(|p| p.devices.iter().map(move |d| (p.process_id, d)))
            .enumerate()
            .map(|(replica, (process_id, (id, kind)))| ReplicaReport {
                replica,
                process_id,
                device_id: *id,
                kind: kind.clone(),
            })
            .collect();
        Some(JobReport {
            process_id: job.process_id,
            num_processes: job.num_processes,
            coordinator_address: s.coordinator_address.clone(),
            replicas,
        })
    });
    job.finished()?;
    let plugin = client.plugin().clone();
    let path = plugin.path().to_path_buf();
    let (major, minor) = plugin.api_version();
    Ok(DevicesReport {
        plugin: path,
        plugin_kind: plugin.kind(),
        pjrt_api_version: format!("{major}.{minor}"),
        attributes: plugin.attributes().to_vec(),
        platform_name: client.platform_name().to_string(),
        platform_version: client.platform_version().to_string(),
        devices: client
            .devices()
            .iter()
            .map(|d| DeviceReport {
                id: d.id,
                kind: d.kind.clone(),
                process_index: d.process_index,
                description: d.description.clone(),
            })
            .collect(),
        job: job_report,
    })
}

/// Runs `simclr devices`, printing to `out`.
pub fn run(args: &DevicesArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let r = report(args)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &r)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "plugin:           {}", r.plugin.display())?;
    writeln!(
        out,
        "platform:         {} {}",
        r.platform_name, r.platform_version
    )?;
    writeln!(out, "PJRT C API:       {}", r.pjrt_api_version)?;
    for a in &r.attributes {
        writeln!(out, "attribute:        {} = {}", a.name, a.value)?;
    }
    writeln!(out, "devices:          {}", r.devices.len())?;
    for d in &r.devices {
        writeln!(
            out,
            "  {:>3}  {:<8} process {}  {}",
            d.id, d.kind, d.process_index, d.description
        )?;
    }
    if let Some(j) = &r.job {
        writeln!(
            out,
            "job:              process {} of {} (coordinator {}), {} replicas",
            j.process_id,
            j.num_processes,
            j.coordinator_address,
            j.replicas.len()
        )?;
        for rep in &j.replicas {
            writeln!(
                out,
                "  replica {:>3}  process {}  device {}  {}",
                rep.replica, rep.process_id, rep.device_id, rep.kind
            )?;
        }
    }
    Ok(())
}
