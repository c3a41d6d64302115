//! The compilation cache (`SIMCLR_COMPILATION_CACHE_DIR`, `pjrt::cache`):
//! a second client loads what the first compiled and gets the same
//! results; other options are another entry; a damaged entry, or one the
//! plugin refuses, is replaced by compiling again.

use crate::pjrt_common as common;

use common::{shape, ModuleBuilder};
use simclr::pjrt::{Client, ClientOptions, CompileCache, CompileOptions, HostArray};
use simclr::proto::{HloModuleProto, PrimitiveType::F32};
use std::path::Path;

/// `tanh(x) * x + x` over f32[5].
fn module() -> HloModuleProto {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[5]));
    let t = b.op(&mut e, "tanh", shape(F32, &[5]), &[x]);
    let m = b.op(&mut e, "multiply", shape(F32, &[5]), &[t, x]);
    let r = b.op(&mut e, "add", shape(F32, &[5]), &[m, x]);
    b.module("cache_probe", e, r)
}

fn client_with(cache: &Path) -> Client {
    let mut c =
        Client::discover(None, false, &ClientOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    c.set_compile_cache(Some(CompileCache::new(cache)));
    c
}

/// Runs on every replica; returns replica 0's output bits.
fn run(c: &Client, replicas: usize) -> (bool, Vec<u32>) {
    let exe = c
        .compile(&module(), &CompileOptions::new(replicas))
        .expect("compile");
    let x = HostArray::from_f32(&[5], &[-2.0, -0.5, 0.0, 0.7, 3.0]).expect("x");
    let out = exe.execute_host(&vec![vec![x]; replicas]).expect("execute");
    assert_eq!(out.len(), replicas);
    let bits = out[0][0]
        .to_f32()
        .expect("f32")
        .iter()
        .map(|v| v.to_bits())
        .collect();
    (exe.from_cache(), bits)
}

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "xla-exe"));
    v.sort();
    v
}

#[test]
fn a_second_client_loads_the_executable_and_damaged_entries_are_compiled_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let cache = dir.path().join("xla");

    let (hit, want) = run(&client_with(&cache), 2);
    assert!(!hit, "an empty cache compiles");
    let first = entries(&cache);
    assert_eq!(first.len(), 1, "one entry per program");

    // Another client (as another process would) loads it.
    let (hit, got) = run(&client_with(&cache), 2);
    assert!(hit, "the second client loads the cached executable");
    assert_eq!(got, want, "same results from the loaded executable");

    // Other compile options are another program.
    let (hit, got1) = run(&client_with(&cache), 1);
    assert!(!hit);
    assert_eq!(got1, want);
    assert_eq!(entries(&cache).len(), 2);

    // A flipped byte: named, removed, compiled again, stored again.
    let mut bytes = std::fs::read(&first[0]).expect("entry");
    let n = bytes.len();
    bytes[n - 9] ^= 0x40;
    std::fs::write(&first[0], &bytes).expect("damage");
    let (hit, got) = run(&client_with(&cache), 2);
    assert!(!hit, "a damaged entry is not used");
    assert_eq!(got, want);
    let (hit, _) = run(&client_with(&cache), 2);
    assert!(hit, "the entry was written again");

    // Well-framed bytes the plugin cannot load: its error, then a compile.
    let key = first[0]
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("key")
        .to_string();
    CompileCache::new(&cache)
        .write(&key, b"not an executable")
        .expect("write");
    let (hit, got) = run(&client_with(&cache), 2);
    assert!(!hit, "a refused entry is not used");
    assert_eq!(got, want);
    let (hit, _) = run(&client_with(&cache), 2);
    assert!(hit);
}

#[test]
fn without_a_cache_nothing_is_written() {
    let c =
        Client::discover(None, false, &ClientOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os(simclr::pjrt::cache::ENV).is_none() {
        assert!(c.compile_cache().is_none());
    }
    let mut c = c;
    c.set_compile_cache(None);
    let exe = c
        .compile(&module(), &CompileOptions::new(1))
        .expect("compile");
    assert!(!exe.from_cache());
}
