//! The `simclr` command line: a clap-derived enum of subcommands, each in
//! its own file. Owns argument parsing and printing only; the work is done
//! by the library modules.

use clap::Parser;

pub mod bench;
pub mod devices;

/// SimCLR as an XLA compiler frontend.
#[derive(Debug, Parser)]
#[command(name = "simclr", version, about)]
pub enum Cli {
    /// List the devices of a PJRT plugin.
    Devices(devices::DevicesArgs),
    /// Time the pretraining step (JSON lines).
    Bench(bench::BenchArgs),
}

impl Cli {
    /// Runs the chosen subcommand, writing to stdout.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Cli::Devices(args) => devices::run(&args, &mut std::io::stdout().lock()),
            Cli::Bench(args) => bench::run(&args, &mut std::io::stdout().lock()),
        }
    }
}
