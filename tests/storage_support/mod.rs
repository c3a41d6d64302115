//! Starts the GCS emulator and the S3 server of `tools/storage/servers` once
//! per test binary (stopped when the binary exits) and points the storage
//! layer's credentials at them. A server that cannot start fails the test
//! with the script's output; nothing is skipped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

/// The running servers.
pub struct Servers {
    /// Bucket that exists on both servers.
    pub bucket: String,
    /// The state directory (logs, env, service-account JSON).
    pub dir: PathBuf,
}

/// Starts the servers (once) and sets the environment for them.
pub fn servers() -> &'static Servers {
    static S: OnceLock<Servers> = OnceLock::new();
    S.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("simclr-storage-servers-{}", std::process::id()));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/storage/servers");
        let out = std::process::Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg("--until-exit")
            .arg(std::process::id().to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} start failed ({}):\n{}\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.join("env")).expect("servers wrote their env file");
        let mut bucket = String::new();
        for line in env.lines() {
            let (k, v) = line.split_once('=').expect("KEY=value lines");
            if k == "SIMCLR_TEST_BUCKET" {
                bucket = v.to_string();
            }
            std::env::set_var(k, v);
        }
        // Fail fast in tests: a dead server is found after 2 retries.
        std::env::set_var("SIMCLR_STORAGE_RETRIES", "2");
        std::env::set_var("SIMCLR_STORAGE_RETRY_TIMEOUT", "10");
        // The test environment's own credentials must not leak in.
        for k in [
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
        ] {
            std::env::remove_var(k);
        }
        assert!(!bucket.is_empty(), "no SIMCLR_TEST_BUCKET in {env}");
        Servers { bucket, dir }
    })
}

/// `gs://bucket/<prefix>` and `s3://bucket/<prefix>`, with a prefix unique
/// to this process and `name`.
pub fn roots(name: &str) -> Vec<String> {
    let s = servers();
    ["gs", "s3"]
        .iter()
        .map(|scheme| format!("{scheme}://{}/{}-{}", s.bucket, name, std::process::id()))
        .collect()
}

/// The environment a child process (the `simclr` binary) needs.
pub fn child_env() -> Vec<(String, String)> {
    let s = servers();
    let env = std::fs::read_to_string(s.dir.join("env")).expect("env file");
    let mut v: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.push(("SIMCLR_STORAGE_RETRIES".into(), "2".into()));
    v
}
