//! The `simclr` command line: a clap-derived enum of subcommands, each in
//! its own file. Owns argument parsing and printing only; the work is done
//! by the library modules.

use clap::Parser;

pub mod bench;
pub mod bench_input;
pub mod ckpt;
pub mod devices;
pub mod distill;
pub mod export_hlo;
pub mod features;
pub mod flags;
pub mod inspect;
pub mod model;
pub mod probe;
pub mod run;

/// SimCLR as an XLA compiler frontend.
#[derive(Debug, Parser)]
#[command(name = "simclr", version, about)]
pub enum Cli {
    /// List the devices of a PJRT plugin.
    Devices(devices::DevicesArgs),
    /// Inspect checkpoints: `ckpt ls PATH`, `ckpt info PATH`.
    Ckpt(ckpt::CkptArgs),
    /// Train or evaluate, with the flags of the original run.py
    /// (`simclr run --help` lists them).
    Run(run::RunArgs),
    /// Linear probe and k-NN accuracy of a run's network (or of its random
    /// initialisation) on extracted features.
    Probe(probe::ProbeArgs),
    /// Embed a folder of images with an exported network into `.npy` files
    /// of its named intermediates.
    Features(features::FeaturesArgs),
    /// Export the HLO of every step program with XLA's optimized module,
    /// costs, memory and parameters: `export_hlo --out DIR <run flags>`.
    #[command(name = "export_hlo")]
    ExportHlo(export_hlo::ExportArgs),
    /// Build a static HTML report of an export: `inspect DIR [--out REPORT_DIR]`.
    Inspect(inspect::InspectArgs),
    /// Time the pretraining step (JSON lines).
    Bench(bench::BenchArgs),
    /// Parameter counts of a network, per stage and in total (`--json`:
    /// every variable with its TF1 name).
    Model(model::ModelArgs),
}

impl Cli {
    /// Runs the chosen subcommand, writing to stdout.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Cli::Devices(args) => devices::run(&args, &mut std::io::stdout().lock()),
            Cli::Ckpt(args) => ckpt::run(&args, &mut std::io::stdout().lock()),
            Cli::Run(args) => run::run(&args),
            Cli::Probe(args) => probe::run(&args),
            Cli::Features(args) => features::run(&args),
            Cli::ExportHlo(args) => export_hlo::run(&args),
            Cli::Inspect(args) => inspect::run(&args, &mut std::io::stdout().lock()),
            Cli::Bench(args) => bench::run(&args, &mut std::io::stdout().lock()),
            Cli::Model(args) => model::run(&args, &mut std::io::stdout().lock()),
        }
    }
}
