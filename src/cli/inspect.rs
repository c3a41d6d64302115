//! `simclr inspect DIR [--out REPORT_DIR]`: a static HTML report of an
//! export written by `simclr export_hlo` (see [`crate::inspect::report`]);
//! it opens from `file://` with no server.

use crate::inspect::report;
use crate::storage::{self, Location};
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Arguments of `simclr inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The folder `simclr export_hlo --out` wrote (a local folder or a
    /// `gs://`/`s3://` prefix).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to write the report (default: `DIR/report`; may be a bucket).
    #[arg(long, value_name = "REPORT_DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `simclr inspect`, printing where the report is to `w`.
///
/// # Errors
/// Those of [`report::build`].
pub fn run(args: &InspectArgs, w: &mut dyn std::io::Write) -> Result<()> {
    let dir = Location::from_path(&args.dir)?;
    let out = match &args.out {
        Some(o) => Location::from_path(o)?,
        None => dir.join("report"),
    };
    // Exports and reports in a bucket go through local copies.
    let staging = storage::staging_dir("inspect")?;
    let local_dir = match &dir {
        Location::Local(p) => p.clone(),
        cloud => {
            let d = staging.path().join("export");
            if storage::download_dir(cloud, &d)? == 0 {
                bail!("{cloud} holds no export; write one with simclr export_hlo --out={cloud}");
            }
            d
        }
    };
    let local_out = match &out {
        Location::Local(p) => p.clone(),
        Location::Cloud { .. } => staging.path().join("report"),
    };
    let mut summary = report::build(&local_dir, &local_out)?;
    if !out.is_local() {
        storage::upload_dir(&local_out, &out)?;
        let rel = summary
            .index_page
            .strip_prefix(&local_out)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "index.html".into());
        summary.index_page = out.join(&rel).to_path_buf();
    }
    writeln!(
        w,
        "wrote {} ({} programs, {} searchable entries)",
        summary.index_page.display(),
        summary.programs,
        summary.search_entries
    )?;
    Ok(())
}
