//! Bad input gives a clear error value and never crashes the process:
//! malformed modules, wrong argument counts, shapes, dtypes, replica counts
//! and devices, and a missing or unusable plugin.

use crate::pjrt_common as common;

use std::ffi::OsString;
use std::path::PathBuf;

use common::{client, shape, tuple_shape, ModuleBuilder};
use simclr::pjrt::discover::{find_plugin, SearchInputs};
use simclr::pjrt::{Buffer, CompileOptions, Error, HostArray, LoadedExecutable, Plugin};
use simclr::proto::{HloModuleProto, PrimitiveType::F32};

/// `(x + y)` over f32[2,3] in a 1-tuple.
fn add_module() -> HloModuleProto {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[2, 3]));
    let y = b.param(&mut e, 1, shape(F32, &[2, 3]));
    let s = b.op(&mut e, "add", shape(F32, &[2, 3]), &[x, y]);
    let t = b.op(
        &mut e,
        "tuple",
        tuple_shape(vec![shape(F32, &[2, 3])]),
        &[s],
    );
    b.module("add", e, t)
}

fn upload(a: &HostArray, device: usize) -> Buffer {
    client()
        .buffer_from_host(a, &client().devices()[device])
        .unwrap()
}

fn f32s(dims: &[i64]) -> HostArray {
    let n: i64 = dims.iter().product();
    HostArray::from_f32(dims, &vec![1.0; n as usize]).unwrap()
}

fn compiled(replicas: usize) -> LoadedExecutable {
    client()
        .compile(&add_module(), &CompileOptions::new(replicas))
        .unwrap()
}

#[test]
fn unknown_opcode_is_a_compile_error_with_the_plugin_message() {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[4]));
    let r = b.op(&mut e, "frobnicate", shape(F32, &[4]), &[x]);
    let m = b.module("bad_opcode", e, r);
    match client().compile(&m, &CompileOptions::new(1)) {
        Err(e @ Error::Pjrt { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("PJRT_Client_Compile")
                    && s.contains("INVALID_ARGUMENT")
                    && s.contains("frobnicate"),
                "{s}"
            );
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn wrong_result_shape_is_a_verifier_error() {
    let mut b = ModuleBuilder::new();
    let mut e = b.comp("main");
    let x = b.param(&mut e, 0, shape(F32, &[4]));
    let r = b.op(&mut e, "negate", shape(F32, &[5]), &[x]);
    let m = b.module("bad_shape", e, r);
    let err = client().compile(&m, &CompileOptions::new(1)).unwrap_err();
    assert!(err.code().is_some(), "{err}");
    assert!(err.to_string().contains("f32[5]"), "{err}");
}

#[test]
fn module_without_program_shape_is_rejected_before_the_plugin() {
    let mut m = add_module();
    m.host_program_shape = None;
    let err = client().compile(&m, &CompileOptions::new(1)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("host_program_shape"), "{err}");
}

#[test]
fn zero_or_too_many_replicas_are_rejected_before_the_plugin() {
    let e0 = client()
        .compile(&add_module(), &CompileOptions::new(0))
        .unwrap_err()
        .to_string();
    assert!(e0.contains("num_replicas must be at least 1"), "{e0}");
    let e5 = client()
        .compile(&add_module(), &CompileOptions::new(5))
        .unwrap_err()
        .to_string();
    assert!(
        e5.contains("5 replicas") && e5.contains("4 devices"),
        "{e5}"
    );
}

#[test]
fn wrong_argument_count_names_the_replica() {
    let exe = compiled(1);
    let x = upload(&f32s(&[2, 3]), 0);
    let err = exe.execute(&[vec![&x]]).unwrap_err().to_string();
    assert!(err.contains("takes 2 arguments, replica 0 got 1"), "{err}");
}

#[test]
fn wrong_buffer_shape_names_replica_argument_expected_and_got() {
    let exe = compiled(1);
    let x = upload(&f32s(&[2, 3]), 0);
    let y = upload(&f32s(&[3, 2]), 0);
    let err = exe.execute(&[vec![&x, &y]]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ArgumentMismatch {
                replica: 0,
                index: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "replica 0, argument 1: expected f32[2,3], got f32[3,2]"
    );
}

#[test]
fn wrong_dtype_of_the_same_byte_size_is_caught() {
    let exe = compiled(1);
    let x = upload(&f32s(&[2, 3]), 0);
    let y = upload(&HostArray::from_s32(&[2, 3], &[1; 6]).unwrap(), 0);
    let err = exe.execute(&[vec![&y, &x]]).unwrap_err().to_string();
    assert_eq!(
        err,
        "replica 0, argument 0: expected f32[2,3], got s32[2,3]"
    );
}

#[test]
fn wrong_number_of_replicas_and_wrong_device_are_caught() {
    let exe = compiled(4);
    let bufs: Vec<(Buffer, Buffer)> = (0..4)
        .map(|d| (upload(&f32s(&[2, 3]), d), upload(&f32s(&[2, 3]), d)))
        .collect();
    let one = exe
        .execute(&[vec![&bufs[0].0, &bufs[0].1]])
        .unwrap_err()
        .to_string();
    assert!(
        one.contains("runs on 4 replicas, got 1 argument lists"),
        "{one}"
    );
    // Replica 2's arguments on device 1.
    let lists: Vec<Vec<&Buffer>> = (0..4)
        .map(|d| vec![&bufs[d].0, &bufs[if d == 2 { 1 } else { d }].1])
        .collect();
    let err = exe.execute(&lists).unwrap_err().to_string();
    assert!(
        err.starts_with("replica 2, argument 1: expected a buffer on CpuDevice(id=2)"),
        "{err}"
    );
    // The right placement runs.
    let lists: Vec<Vec<&Buffer>> = (0..4).map(|d| vec![&bufs[d].0, &bufs[d].1]).collect();
    let out = exe.execute(&lists).unwrap();
    assert_eq!(out[3][0].to_host().unwrap().to_f32().unwrap(), vec![2.0; 6]);
}

#[test]
fn malformed_host_arrays_are_errors() {
    let e = HostArray::from_f32(&[2, 3], &[1.0; 5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs 6 elements"), "{e}");
    let bad = HostArray {
        element_type: simclr::pjrt::ElementType::F32,
        dims: vec![2],
        bytes: vec![0; 3],
    };
    let e = client()
        .buffer_from_host(&bad, &client().devices()[0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32[2] has 3 bytes"), "{e}");
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("simclr-pjrt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn missing_plugin_gives_the_discovery_error() {
    let empty_cache = temp_dir("empty-cache");
    // Nothing anywhere: the error lists each place and says how to fix it.
    let inputs = SearchInputs {
        simclr_cache_dir: Some(OsString::from(&empty_cache)),
        home: Some(OsString::from("/nonexistent-home")),
        ..Default::default()
    };
    let err = find_plugin(&inputs).unwrap_err();
    let s = err.to_string();
    assert!(matches!(err, Error::PluginNotFound { .. }), "{s}");
    assert!(
        s.contains(
            &empty_cache
                .join("plugins/xla-cpu-pjrt-0.0.1/xla_cpu_pjrt.so")
                .display()
                .to_string()
        ),
        "{s}"
    );
    assert!(
        s.contains("run tools/setup to install the CPU plugin"),
        "{s}"
    );
    assert!(s.contains("--pjrt_plugin"), "{s}");

    // PJRT_PLUGIN_PATH at a missing file: that path is reported, nothing else is used.
    let env = SearchInputs {
        env_plugin_path: Some(OsString::from("/nonexistent/plugin.so")),
        ..inputs.clone()
    };
    let s = find_plugin(&env).unwrap_err().to_string();
    assert!(
        s.contains("/nonexistent/plugin.so (PJRT_PLUGIN_PATH): not found"),
        "{s}"
    );
    assert!(s.contains("run tools/setup"), "{s}");

    // An explicit path wins over everything.
    let explicit = SearchInputs {
        explicit: Some("/nonexistent/explicit.so".into()),
        ..env
    };
    let s = find_plugin(&explicit).unwrap_err().to_string();
    assert!(
        s.contains("/nonexistent/explicit.so (--pjrt_plugin): not found"),
        "{s}"
    );
    assert!(!s.contains("PJRT_PLUGIN_PATH"), "{s}");
    let _ = std::fs::remove_dir_all(&empty_cache);
}

#[test]
fn unloadable_plugins_are_load_errors() {
    let err = Plugin::load("/nonexistent/plugin.so").unwrap_err();
    assert!(
        matches!(err, Error::Load { .. }) && err.to_string().contains("no such file"),
        "{err}"
    );
    let not_elf = temp_dir("not-elf").join("plugin.so");
    std::fs::write(&not_elf, b"not a shared library").unwrap();
    let err = Plugin::load(&not_elf).unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err}");
    let _ = std::fs::remove_file(&not_elf);
}
