//! `simclr inspect DIR [--out REPORT_DIR]`: a static HTML report of an
//! export written by `simclr export_hlo` (see [`crate::inspect::report`]);
//! it opens from `file://` with no server.

use crate::inspect::report;
use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `simclr inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The folder `simclr export_hlo --out` wrote.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to write the report (default: `DIR/report`).
    #[arg(long, value_name = "REPORT_DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `simclr inspect`, printing where the report is to `w`.
///
/// # Errors
/// Those of [`report::build`].
pub fn run(args: &InspectArgs, w: &mut dyn std::io::Write) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.dir.join("report"));
    let summary = report::build(&args.dir, &out)?;
    writeln!(
        w,
        "wrote {} ({} programs, {} searchable entries)",
        summary.index_page.display(),
        summary.programs,
        summary.search_entries
    )?;
    Ok(())
}
