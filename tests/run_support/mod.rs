//! What the tests that run the `simclr` binary share: the binary, the
//! CIFAR-10 copy, scratch folders and `simclr run` with its stderr.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `simclr` binary cargo built for the tests.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_simclr")
}

/// The real CIFAR-10 copy: `SIMCLR_DATA_DIR`, else `../shared/data/cifar10`.
pub fn data_dir() -> String {
    std::env::var("SIMCLR_DATA_DIR").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/cifar10")
            .display()
            .to_string()
    })
}

/// A fresh (removed) scratch path `simclr-<what>-<pid>-<name>` under the
/// system's temporary folder.
pub fn tmp(what: &str, name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("simclr-{what}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// `simclr run ARGS`, waited for.
pub fn simclr(args: &[String]) -> Output {
    Command::new(exe())
        .arg("run")
        .args(args)
        .output()
        .expect("simclr runs")
}

/// `simclr run ARGS`: whether it succeeded, and its stderr.
pub fn run(args: &[String]) -> (bool, String) {
    let out = simclr(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `simclr run ARGS`, which must succeed; its stderr.
pub fn ok(args: &[String]) -> String {
    let (success, err) = run(args);
    assert!(success, "simclr run {args:?} failed:\n{err}");
    err
}

/// Owned arguments.
pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
