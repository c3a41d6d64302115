//! Native checkpoints: bit-exact round trips, atomic writes, keep-N
//! pruning, fall-back past a damaged newest checkpoint, clear errors.

use simclr::ckpt::native::{self, file_name};
use simclr::ckpt::{DType, Error, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn tmpdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ckpt_native_{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sample(seed: u64) -> BTreeMap<String, Tensor> {
    let mut m = BTreeMap::new();
    // f32 with arbitrary bit patterns (NaN payloads, subnormals, -0).
    let mut f = bytes(4 * 3 * 3 * 3 * 8, seed);
    f[0..4].copy_from_slice(&0x7fc0_1234u32.to_le_bytes());
    f[4..8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    f[8..12].copy_from_slice(&1u32.to_le_bytes());
    m.insert(
        "base_model/conv2d/kernel".into(),
        Tensor::new(DType::F32, vec![3, 3, 3, 8], f).expect("f32"),
    );
    m.insert(
        "base_model/conv2d/kernel/Momentum".into(),
        Tensor::new(DType::F32, vec![3, 3, 3, 8], bytes(4 * 216, seed + 1)).expect("f32"),
    );
    m.insert(
        "global_step".into(),
        Tensor::scalar_i64(seed as i64 * 1000 + 7),
    );
    for (i, (dt, dims)) in [
        (DType::F64, vec![2, 3]),
        (DType::F16, vec![5]),
        (DType::BF16, vec![5]),
        (DType::I32, vec![4]),
        (DType::U8, vec![3]),
        (DType::I8, vec![3]),
        (DType::U16, vec![2]),
        (DType::I16, vec![2]),
        (DType::U32, vec![2]),
        (DType::U64, vec![2]),
        (DType::Bool, vec![3]),
        (DType::F32, vec![0, 4]),
    ]
    .into_iter()
    .enumerate()
    {
        let n = dims.iter().product::<u64>() as usize * dt.size().expect("fixed");
        let mut b = bytes(n, seed + 10 + i as u64);
        if dt == DType::Bool {
            b.iter_mut().for_each(|x| *x &= 1);
        }
        m.insert(
            format!("extra/{dt}"),
            Tensor::new(dt, dims, b).expect("tensor"),
        );
    }
    m
}

fn meta(step: u64) -> serde_json::Value {
    serde_json::json!({"data": {"epoch": 3, "position": step * 512, "seed": 42},
                       "flags": {"resnet_depth": 18, "train_batch_size": 512}})
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = tmpdir("roundtrip");
    let t = sample(1);
    let saved = native::save(&dir, 100, &t, &meta(100), 5).expect("save");
    assert_eq!(saved.path, dir.join("ckpt-100.safetensors"));
    assert!(dir.join(native::INDEX_FILE).is_file());
    let c = native::load(&saved.path).expect("load");
    assert_eq!(c.step, 100);
    assert_eq!(c.meta, meta(100));
    assert_eq!(c.tensors, t, "every tensor comes back bit for bit");
    let l = native::latest(&dir).expect("latest").expect("some");
    assert_eq!(
        (l.step, l.path.clone(), l.skipped.len()),
        (100, saved.path, 0)
    );
}

#[test]
fn keeps_only_the_newest_n() {
    let dir = tmpdir("keep");
    let t = sample(2);
    for step in [10u64, 20, 30, 40, 50, 60, 70] {
        let s = native::save(&dir, step, &t, &meta(step), 3).expect("save");
        if step == 40 {
            assert_eq!(s.pruned, vec![dir.join(file_name(10))]);
        }
    }
    let steps: Vec<u64> = native::list(&dir).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        steps,
        vec![50, 60, 70],
        "index lists the newest 3, oldest first"
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            "ckpt-50.safetensors",
            "ckpt-60.safetensors",
            "ckpt-70.safetensors"
        ]
    );
    // keep 0 keeps everything
    for step in [80u64, 90, 100, 110] {
        native::save(&dir, step, &t, &meta(step), 0).expect("save");
    }
    assert_eq!(native::list(&dir).len(), 7);
}

#[test]
fn leftover_temp_file_and_truncated_newest_fall_back() {
    let dir = tmpdir("atomic");
    let t = sample(3);
    for step in [1u64, 2, 3] {
        native::save(&dir, step, &t, &meta(step), 5).expect("save");
    }
    // A crash mid-write leaves a temp file: ignored.
    std::fs::write(dir.join(".ckpt-4.safetensors.tmp-999-1"), b"partial").expect("tmp");
    let l = native::latest(&dir).expect("latest").expect("some");
    assert_eq!(l.step, 3);
    assert!(l.skipped.is_empty());
    // Truncate the newest checkpoint: latest falls back to step 2 and says so.
    let newest = dir.join(file_name(3));
    let len = std::fs::metadata(&newest).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let l = native::latest(&dir).expect("latest").expect("some");
    assert_eq!(l.step, 2);
    assert_eq!(l.skipped.len(), 1);
    assert_eq!(l.skipped[0].path, newest);
    assert!(
        l.skipped[0].reason.contains("ckpt-3.safetensors"),
        "{}",
        l.skipped[0].reason
    );
    // The loaded fallback is intact.
    assert_eq!(native::load(&l.path).expect("load").tensors, t);
    // A new save cleans the temp file and goes on.
    native::save(&dir, 4, &t, &meta(4), 5).expect("save");
    assert!(!dir.join(".ckpt-4.safetensors.tmp-999-1").exists());
    assert_eq!(native::latest(&dir).expect("ok").expect("some").step, 4);
}

#[test]
fn missing_or_corrupt_index_falls_back_to_the_files() {
    let dir = tmpdir("index");
    let t = sample(4);
    for step in [5u64, 15] {
        native::save(&dir, step, &t, &meta(step), 5).expect("save");
    }
    std::fs::write(dir.join(native::INDEX_FILE), b"{ not json").expect("write");
    assert_eq!(native::latest(&dir).expect("ok").expect("some").step, 15);
    std::fs::remove_file(dir.join(native::INDEX_FILE)).expect("rm");
    assert_eq!(native::latest(&dir).expect("ok").expect("some").step, 15);
    assert!(native::latest(&dir.join("nonexistent"))
        .expect("ok")
        .is_none());
}

#[test]
fn flipped_byte_gives_a_checksum_error_naming_file_and_tensor() {
    let dir = tmpdir("flip");
    let t = sample(5);
    let p = native::save(&dir, 9, &t, &meta(9), 5).expect("save").path;
    let mut b = std::fs::read(&p).expect("read");
    let n = b.len();
    b[n - 3] ^= 0x40; // inside the data section (last tensor)
    std::fs::write(&p, &b).expect("write");
    let err = native::load(&p).expect_err("corrupted");
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("ckpt-9.safetensors"), "{msg}");
    assert!(msg.contains("checksum mismatch for tensor"), "{msg}");
    // Every checkpoint broken: latest is an error, not a silent None.
    let err = native::latest(&dir).expect_err("all unreadable");
    assert!(err.to_string().contains("ckpt-9.safetensors"), "{err}");
    // Garbage and empty files.
    std::fs::write(&p, b"").expect("write");
    let msg = native::load(&p).expect_err("empty").to_string();
    assert!(
        msg.contains("ckpt-9.safetensors") && msg.contains("corrupted or truncated"),
        "{msg}"
    );
}

#[test]
fn python_safetensors_reads_the_file() {
    let dir = tmpdir("python");
    let mut t = sample(6);
    t.retain(|_, v| v.dtype != DType::BF16 && v.dtype != DType::U16); // no numpy bf16
    t.retain(|_, v| v.dtype != DType::U32 && v.dtype != DType::U64 && v.dtype != DType::I16);
    let p = native::save(&dir, 12, &t, &meta(12), 5).expect("save").path;
    let out = dir.join("py");
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/tf_ckpt/run");
    let o = std::process::Command::new(&tool)
        .arg("read.py")
        .arg(&p)
        .arg(&out)
        .output()
        .expect("run tools/tf_ckpt/run");
    assert!(
        o.status.success(),
        "tools/tf_ckpt/run read.py failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("values.json")).expect("values.json"))
            .expect("json");
    let blob = std::fs::read(out.join("values.bin")).expect("values.bin");
    let tensors = json["tensors"].as_object().expect("tensors");
    assert_eq!(tensors.len(), t.len());
    for (name, want) in &t {
        let e = &tensors[name];
        let off = e["offset"].as_u64().expect("offset") as usize;
        let size = e["size"].as_u64().expect("size") as usize;
        assert_eq!(&blob[off..off + size], want.bytes.as_slice(), "{name}");
        let shape: Vec<u64> = e["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim"))
            .collect();
        assert_eq!(shape, want.dims, "{name}");
    }
    assert_eq!(json["metadata"]["simclr.step"], "12");
}
