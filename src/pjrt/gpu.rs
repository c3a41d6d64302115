//! GPU-only concerns, kept apart from the CPU path: the CUDA plugin's
//! create options (from JAX's `XLA_PYTHON_CLIENT_*` environment variables)
//! and best-effort preloading of the CUDA libraries shipped in the
//! `nvidia-*` pip wheels (the plugin loads CUDA lazily and does not search
//! site-packages itself).
//!
//! Not exercised on the CPU-only development machine.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::error::{Error, Result};
use super::named_value::{NamedValue, Value};

/// Allocator options of the CUDA plugin; `None` leaves the plugin default
/// (BFC allocator, preallocate 75% of device memory).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuOptions {
    /// `preallocate` (bool); env `XLA_PYTHON_CLIENT_PREALLOCATE`.
    pub preallocate: Option<bool>,
    /// `memory_fraction` (an f32); env `XLA_PYTHON_CLIENT_MEM_FRACTION`
    /// or `XLA_CLIENT_MEM_FRACTION`.
    pub memory_fraction: Option<f32>,
    /// `allocator` (`default`, `platform`, `bfc`, `cuda_async`); env
    /// `XLA_PYTHON_CLIENT_ALLOCATOR`.
    pub allocator: Option<String>,
}

impl GpuOptions {
    /// Options from this process's environment (unparsable values ignored).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Options from a variable lookup (pure; for tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let preallocate = get("XLA_PYTHON_CLIENT_PREALLOCATE").and_then(|v| {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => Some(true),
                "0" | "false" | "no" => Some(false),
                _ => None,
            }
        });
        let memory_fraction = get("XLA_PYTHON_CLIENT_MEM_FRACTION")
            .or_else(|| get("XLA_CLIENT_MEM_FRACTION"))
            .and_then(|v| v.trim().parse::<f32>().ok());
        let allocator = get("XLA_PYTHON_CLIENT_ALLOCATOR")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Self {
            preallocate,
            memory_fraction,
            allocator,
        }
    }

    /// The typed create options (only for GPU plugins).
    pub fn named_values(&self) -> Result<Vec<NamedValue>> {
        let mut out = Vec::new();
        if let Some(p) = self.preallocate {
            out.push(NamedValue::new("preallocate", Value::Bool(p)));
        }
        if let Some(f) = self.memory_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return Err(Error::InvalidArgument(format!(
                    "GPU memory fraction {f} is not in (0, 1]"
                )));
            }
            out.push(NamedValue::new("memory_fraction", Value::Float(f)));
        }
        if let Some(a) = &self.allocator {
            out.push(NamedValue::new("allocator", Value::String(a.clone())));
        }
        Ok(out)
    }
}

/// `dlopen`s (RTLD_GLOBAL, never closed) every `nvidia/*/lib/*.so*` under
/// the given site-packages, retrying until no more load (libraries depend on
/// each other). Runs once per process; returns how many loaded.
pub fn preload_cuda_libraries(site_packages: &[PathBuf]) -> usize {
    static DONE: OnceLock<usize> = OnceLock::new();
    *DONE.get_or_init(|| {
        let mut pending: Vec<PathBuf> = site_packages
            .iter()
            .flat_map(|sp| nvidia_libraries(sp))
            .collect();
        let mut loaded = 0;
        loop {
            let before = pending.len();
            pending.retain(|p| {
                use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
                // SAFETY: these are the CUDA runtime libraries of NVIDIA's
                // wheels; their initializers only set up their own state.
                match unsafe { Library::open(Some(p), RTLD_NOW | RTLD_GLOBAL) } {
                    Ok(lib) => {
                        std::mem::forget(lib);
                        loaded += 1;
                        false
                    }
                    Err(_) => true,
                }
            });
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        loaded
    })
}

fn nvidia_libraries(site_packages: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(packages) = std::fs::read_dir(site_packages.join("nvidia")) else {
        return out;
    };
    for pkg in packages.flatten() {
        let Ok(libs) = std::fs::read_dir(pkg.path().join("lib")) else {
            continue;
        };
        for lib in libs.flatten() {
            let name = lib.file_name().to_string_lossy().into_owned();
            if name.contains(".so") {
                out.push(lib.path());
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_maps_to_typed_options() {
        let o = GpuOptions::from_vars(|k| match k {
            "XLA_PYTHON_CLIENT_PREALLOCATE" => Some("false".into()),
            "XLA_CLIENT_MEM_FRACTION" => Some("0.5".into()),
            _ => None,
        });
        assert_eq!(o.preallocate, Some(false));
        assert_eq!(o.memory_fraction, Some(0.5));
        let v = o.named_values().unwrap();
        assert_eq!(v[0], NamedValue::new("preallocate", Value::Bool(false)));
        assert_eq!(v[1], NamedValue::new("memory_fraction", Value::Float(0.5)));
    }
}
