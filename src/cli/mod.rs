//! The `simclr` command line: a clap-derived enum of subcommands, each in
//! its own file. Owns argument parsing and printing only; the work is done
//! by the library modules.

use clap::Parser;

pub mod ckpt;
pub mod devices;
pub mod features;
pub mod flags;
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
        }
    }
}
