//! The `simclr` command line.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    simclr::cli::Cli::parse().run()
}
