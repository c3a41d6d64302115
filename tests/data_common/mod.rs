//! Helpers shared by the `data_*` integration tests: where the shared data and
//! fixtures live.
#![allow(dead_code)]

use std::path::PathBuf;

/// Candidate locations of the project's `shared/` folder: `../shared`
/// relative to the crate root (CI), then `../../shared` (a worktree one level
/// deeper).
fn shared_candidates() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    vec![root.join("../shared"), root.join("../../shared")]
}

/// The CIFAR-10 folder: `SIMCLR_DATA_DIR` if set, else `shared/data/cifar10`.
pub fn cifar_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SIMCLR_DATA_DIR") {
        return PathBuf::from(d);
    }
    for s in shared_candidates() {
        let p = s.join("data/cifar10");
        if p.is_dir() {
            return p;
        }
    }
    panic!("CIFAR-10 not found: set SIMCLR_DATA_DIR or provide ../shared/data/cifar10 next to the crate")
}

/// The augmentation fixtures folder `shared/fixtures/tf-reference/augment`.
pub fn augment_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SIMCLR_FIXTURES_DIR") {
        return PathBuf::from(d).join("augment");
    }
    for s in shared_candidates() {
        let p = s.join("fixtures/tf-reference/augment");
        if p.is_dir() {
            return p;
        }
    }
    panic!("augmentation fixtures not found: set SIMCLR_FIXTURES_DIR or provide ../shared/fixtures/tf-reference")
}
