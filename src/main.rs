//! The `simclr` command line. Errors reach this edge as `anyhow::Error` and
//! are printed with their causes, without a backtrace.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match simclr::cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<simclr::train::Error>() {
                Some(simclr::train::Error::Preempted { .. }) => {
                    ExitCode::from(simclr::train::preempt::EXIT_PREEMPTED)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}
