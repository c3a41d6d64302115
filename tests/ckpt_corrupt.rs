//! Corrupted checkpoints give clear errors, never panics: truncated and
//! byte-flipped `.index` and data files, wrong stored CRCs, and damaged
//! native files (proptest).

use proptest::prelude::*;
use simclr::ckpt::tf::table::TableBuilder;
use simclr::ckpt::{native, tf, DType, Error, Source, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static CASE: AtomicUsize = AtomicUsize::new(0);

fn case_dir(kind: &str) -> PathBuf {
    let n = CASE.fetch_add(1, Ordering::Relaxed);
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ckpt_corrupt/{kind}_{n}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn tensors() -> BTreeMap<String, Tensor> {
    let mut m = BTreeMap::new();
    for i in 0..40u32 {
        // Many names, so the index has several restart points and long
        // shared prefixes.
        let vals: Vec<f32> = (0..(i % 7 + 1) * 5).map(|j| (i * 100 + j) as f32).collect();
        m.insert(
            format!("base_model/batch_normalization_{i}/moving_variance"),
            Tensor::from_f32(&[vals.len() as u64], &vals).expect("f32"),
        );
    }
    m.insert("global_step".into(), Tensor::scalar_i64(5));
    m.insert(
        "x/str".into(),
        tf::string_tensor(&[2], &[b"ab", b"cde"]).expect("str"),
    );
    m
}

/// Opens and reads everything; returns the first error.
fn read_all(prefix: &Path) -> Result<BTreeMap<String, Tensor>, Error> {
    let src = Source::open(prefix)?;
    let mut out = BTreeMap::new();
    for e in src.entries() {
        out.insert(e.name.clone(), src.read(&e.name)?);
    }
    Ok(out)
}

fn write_bundle(dir: &Path) -> PathBuf {
    let prefix = dir.join("model.ckpt-5");
    tf::write(&prefix, &tensors(), false).expect("write");
    prefix
}

fn index_of(prefix: &Path) -> PathBuf {
    PathBuf::from(format!("{}.index", prefix.display()))
}

fn data_of(prefix: &Path) -> PathBuf {
    PathBuf::from(format!("{}.data-00000-of-00001", prefix.display()))
}

#[test]
fn intact_bundle_reads_back() {
    let prefix = write_bundle(&case_dir("intact"));
    assert_eq!(read_all(&prefix).expect("intact"), tensors());
}

#[test]
fn wrong_stored_crc_is_a_checksum_error() {
    // Re-encode the index with one entry's CRC changed.
    let prefix = write_bundle(&case_dir("crc"));
    let index = std::fs::read(index_of(&prefix)).expect("index");
    let kvs = tf::table::read_all(&index).expect("table");
    let mut b = TableBuilder::new();
    for (k, v) in &kvs {
        let mut v = v.clone();
        if k.as_slice() == b"global_step" {
            use prost::Message;
            let mut e = tf::proto::BundleEntryProto::decode(v.as_slice()).expect("entry");
            e.crc32c ^= 1;
            v = e.encode_to_vec();
        }
        b.add(k, &v).expect("add");
    }
    std::fs::write(index_of(&prefix), b.finish()).expect("write");
    let err = read_all(&prefix).expect_err("bad crc");
    assert!(
        matches!(err, Error::Checksum { ref tensor, .. } if tensor == "global_step"),
        "{err}"
    );
    assert!(
        err.to_string().contains("model.ckpt-5.data-00000-of-00001"),
        "{err}"
    );
}

#[test]
fn missing_files_are_named() {
    let dir = case_dir("missing");
    let prefix = write_bundle(&dir);
    std::fs::remove_file(data_of(&prefix)).expect("rm");
    let msg = read_all(&prefix).expect_err("no data").to_string();
    assert!(
        msg.contains("data-00000-of-00001") && msg.contains("missing"),
        "{msg}"
    );
    let msg = Source::open(&dir.join("nope"))
        .expect_err("no index")
        .to_string();
    assert!(msg.contains("nope.index"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn truncated_index_is_an_error(cut in 0.0f64..1.0) {
        let prefix = write_bundle(&case_dir("tidx"));
        let p = index_of(&prefix);
        let b = std::fs::read(&p).expect("read");
        let n = ((b.len() as f64) * cut) as usize;
        std::fs::write(&p, &b[..n.min(b.len() - 1)]).expect("write");
        let err = read_all(&prefix).expect_err("truncated index");
        prop_assert!(err.to_string().contains("model.ckpt-5.index"), "{}", err);
    }

    #[test]
    fn flipped_index_byte_never_panics(pos in 0.0f64..1.0, bit in 0u8..8) {
        let prefix = write_bundle(&case_dir("fidx"));
        let p = index_of(&prefix);
        let mut b = std::fs::read(&p).expect("read");
        let i = ((b.len() as f64) * pos) as usize % b.len();
        b[i] ^= 1 << bit;
        std::fs::write(&p, &b).expect("write");
        // Blocks are CRC-protected; only the footer's zero padding is not.
        match read_all(&prefix) {
            Ok(t) => prop_assert_eq!(t, tensors()),
            Err(e) => prop_assert!(e.to_string().contains("model.ckpt-5"), "{}", e),
        }
    }

    #[test]
    fn truncated_data_is_an_error(cut in 0.0f64..1.0) {
        let prefix = write_bundle(&case_dir("tdata"));
        let p = data_of(&prefix);
        let b = std::fs::read(&p).expect("read");
        let n = ((b.len() as f64) * cut) as usize;
        std::fs::write(&p, &b[..n.min(b.len() - 1)]).expect("write");
        let err = read_all(&prefix).expect_err("truncated data");
        prop_assert!(err.to_string().contains("data-00000-of-00001"), "{}", err);
        prop_assert!(err.to_string().contains("truncated"), "{}", err);
    }

    #[test]
    fn flipped_data_byte_is_detected(pos in 0.0f64..1.0, bit in 0u8..8) {
        let prefix = write_bundle(&case_dir("fdata"));
        let p = data_of(&prefix);
        let mut b = std::fs::read(&p).expect("read");
        let i = ((b.len() as f64) * pos) as usize % b.len();
        b[i] ^= 1 << bit;
        std::fs::write(&p, &b).expect("write");
        let err = read_all(&prefix).expect_err("flipped data");
        let msg = err.to_string();
        prop_assert!(msg.contains("data-00000-of-00001"), "{}", msg);
    }

    #[test]
    fn damaged_native_file_is_an_error(pos in 0.0f64..1.0, bit in 0u8..8, truncate in any::<bool>()) {
        let dir = case_dir("native");
        let mut t = tensors();
        t.retain(|_, v| v.dtype != DType::String);
        let p = native::save(&dir, 3, &t, &serde_json::json!({"k": 1}), 2).expect("save").path;
        let mut b = std::fs::read(&p).expect("read");
        let i = ((b.len() as f64) * pos) as usize % b.len();
        if truncate {
            b.truncate(i);
        } else {
            b[i] ^= 1 << bit;
        }
        std::fs::write(&p, &b).expect("write");
        match native::load(&p) {
            // A flip inside the header's JSON can be harmless (whitespace
            // padding) — then every tensor must still be intact.
            Ok(c) => {
                prop_assert_eq!(c.tensors, t);
                prop_assert_eq!(c.meta, serde_json::json!({"k": 1}));
                prop_assert_eq!(c.step, 3);
            }
            Err(e) => prop_assert!(e.to_string().contains("ckpt-3.safetensors"), "{}", e),
        }
    }

    #[test]
    fn table_parser_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = tf::table::read_all(&bytes);
        let _ = tf::table::parse_block(&bytes);
    }
}
