//! The `simclr` command line.

fn main() -> anyhow::Result<()> {
    Ok(())
}
