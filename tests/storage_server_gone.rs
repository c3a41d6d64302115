//! A server that goes away mid-read and mid-save: bounded retries, then an
//! error that names the URL and says it is the network. Its own servers
//! (this binary stops them), on gs:// and s3://.

use crate::storage_support;

use simclr::ckpt::{native, Tensor};
use simclr::storage::{self, Location, ReadAhead};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[test]
fn a_server_gone_mid_read_gives_a_network_error_after_bounded_retries() {
    let s = storage_support::servers();
    let roots = storage_support::roots("gone");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut readers = vec![];
    for root in &roots {
        let obj = Location::parse(root).expect("url").join("big.bin");
        storage::put(&obj, data.clone()).expect("put");
        let mut r = storage::open_reader(
            &obj,
            ReadAhead {
                chunk: 16 << 10,
                depth: 2,
            },
        )
        .expect("reader");
        let mut first = vec![0u8; 16 << 10];
        r.read_exact(&mut first).expect("first chunk");
        assert_eq!(first, data[..16 << 10]);
        readers.push((root.clone(), obj, r));
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/storage/servers");
    let st = std::process::Command::new(&script)
        .arg("stop")
        .arg(&s.dir)
        .status()
        .expect("stop runs");
    assert!(st.success());
    for (root, obj, mut r) in readers {
        let t = Instant::now();
        let mut rest = vec![];
        let e = r.read_to_end(&mut rest).expect_err("the server is gone");
        let inner = e
            .get_ref()
            .and_then(|x| x.downcast_ref::<storage::Error>())
            .unwrap_or_else(|| panic!("{root}: not a storage error: {e}"));
        assert!(
            matches!(inner, storage::Error::Network { .. }),
            "{root}: {inner:?}"
        );
        let msg = inner.to_string();
        assert!(
            msg.contains(&obj.to_string()) && msg.contains("network failure"),
            "{msg}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{root}: retries are bounded ({:?})",
            t.elapsed()
        );
        // A save fails with the same kind of error and no panic.
        let dir = PathBuf::from(format!("{root}/model_dir"));
        let mut m = std::collections::BTreeMap::new();
        m.insert("global_step".to_string(), Tensor::scalar_i64(1));
        let e = native::save(&dir, 1, &m, &serde_json::Value::Null, 0).expect_err("gone");
        assert!(e.to_string().contains("network failure"), "{root}: {e}");
    }
}
