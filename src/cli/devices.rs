//! `simclr devices`: which plugin was found, its platform, PJRT API
//! version, and one line per device (or the same as JSON with `--json`).

use std::io::Write;
use std::path::PathBuf;

use crate::pjrt::{Client, ClientOptions};

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
    let mut options = ClientOptions::from_env();
    options.cpu_device_count = args.cpu_device_count;
    let client = Client::discover(args.pjrt_plugin.as_deref(), args.use_tpu, &options)?;
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
    Ok(())
}
