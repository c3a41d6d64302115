//! A persistent cache of compiled executables, like JAX's compilation
//! cache: with `SIMCLR_COMPILATION_CACHE_DIR` set, [`super::Client::compile`]
//! first looks for the executable of the same program under that folder
//! (`PJRT_Executable_DeserializeAndLoad`) and stores what it compiles
//! (`PJRT_Executable_Serialize`), so a resumed run, an evaluation job or a
//! second invocation with the same flags skips XLA's compiler.
//!
//! The key is a SHA-256 of everything the executable depends on: the
//! serialized `HloModuleProto` and `CompileOptionsProto`, the plugin (path,
//! size and modification time of the library, platform name and version)
//! and the client's devices. A serialized executable is tied to the plugin
//! build that made it, and the key changes with the plugin file.
//!
//! An entry is `SIMCLR-XLA-EXE-1\n`, the payload's length (u64 LE) and
//! CRC-32C (u32 LE), then the plugin's bytes; it is written to a temporary
//! file and renamed, so a reader sees whole entries only. An entry that is
//! short, corrupt or refused by the plugin is reported on stderr, removed,
//! and the program compiled again: the cache never changes a result, only
//! the time to get it.

use super::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The environment variable that turns the cache on: a local folder
/// (created when missing).
pub const ENV: &str = "SIMCLR_COMPILATION_CACHE_DIR";

const MAGIC: &[u8] = b"SIMCLR-XLA-EXE-1\n";
const HEADER: usize = MAGIC.len() + 8 + 4;

/// A folder of serialized executables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache { dir: dir.into() }
    }

    /// The cache `SIMCLR_COMPILATION_CACHE_DIR` names, if it is set and
    /// not empty.
    pub fn from_env() -> Option<CompileCache> {
        std::env::var_os(ENV)
            .filter(|v| !v.is_empty())
            .map(CompileCache::new)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of a program: hex SHA-256 over `context` (plugin and
    /// devices), the module and the compile options, each length-prefixed.
    pub fn key(context: &[u8], module: &[u8], options: &[u8]) -> String {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            b"simclr-compile-cache-1".as_slice(),
            context,
            module,
            options,
        ] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The file of `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.xla-exe"))
    }

    /// The payload stored under `key`: `Ok(None)` when there is none,
    /// an error when the entry is damaged (the caller removes it).
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(damaged(&path, &e.to_string())),
        };
        decode(&bytes)
            .map(|p| Some(p.to_vec()))
            .map_err(|why| damaged(&path, why))
    }

    /// Stores `payload` under `key` (temporary file, then rename).
    pub fn write(&self, key: &str, payload: &[u8]) -> Result<()> {
        let path = self.path(key);
        let io = |e: std::io::Error| damaged(&path, &format!("cannot write it: {e}"));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = self.dir.join(format!(
            ".{key}.{}.{}.tmp",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let mut data = Vec::with_capacity(HEADER + payload.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        data.extend_from_slice(&crate::crc32c::value(payload).to_le_bytes());
        data.extend_from_slice(payload);
        let result = std::fs::write(&tmp, &data).and_then(|()| std::fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// Removes the entry of `key` (a damaged one), ignoring a missing file.
    pub fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
    }
}

fn damaged(path: &Path, why: &str) -> Error {
    Error::InvalidArgument(format!("compilation cache entry {}: {why}", path.display()))
}

/// The payload of an entry, or why it is not one.
fn decode(bytes: &[u8]) -> std::result::Result<&[u8], &'static str> {
    if bytes.len() < HEADER || !bytes.starts_with(MAGIC) {
        return Err("not a simclr compilation cache entry");
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[MAGIC.len()..MAGIC.len() + 8]);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[MAGIC.len() + 8..HEADER]);
    let payload = &bytes[HEADER..];
    if u64::from_le_bytes(len) != payload.len() as u64 {
        return Err("truncated");
    }
    if crate::crc32c::value(payload) != u32::from_le_bytes(crc) {
        return Err("corrupt (CRC-32C mismatch)");
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = CompileCache::new(dir.path().join("cache"));
        let k = CompileCache::key(b"cpu", b"module", b"options");
        assert_eq!(k.len(), 64);
        assert_ne!(k, CompileCache::key(b"cpu", b"module", b"options2"));
        assert_ne!(k, CompileCache::key(b"gpu", b"module", b"options"));
        // Length prefixes keep the parts apart.
        assert_ne!(
            CompileCache::key(b"ab", b"c", b""),
            CompileCache::key(b"a", b"bc", b"")
        );
        assert_eq!(c.read(&k).expect("absent"), None);
        c.write(&k, b"executable bytes").expect("write");
        assert_eq!(
            c.read(&k).expect("read").as_deref(),
            Some(b"executable bytes".as_slice())
        );
        let path = c.path(&k);
        let mut bytes = std::fs::read(&path).expect("entry");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("flip");
        let err = c.read(&k).expect_err("corrupt").to_string();
        assert!(err.contains("CRC-32C") && err.contains(".xla-exe"), "{err}");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        assert!(c
            .read(&k)
            .expect_err("short")
            .to_string()
            .contains("truncated"));
        std::fs::write(&path, b"garbage").expect("garbage");
        assert!(c
            .read(&k)
            .expect_err("garbage")
            .to_string()
            .contains("not a simclr"));
        c.remove(&k);
        assert_eq!(c.read(&k).expect("removed"), None);
    }
}
