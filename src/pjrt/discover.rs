//! Finding a PJRT plugin on disk. Order: an explicit path
//! (`--pjrt_plugin=PATH`), the `PJRT_PLUGIN_PATH` environment variable, the
//! project cache where `tools/setup` puts the CPU plugin, then the Python
//! site-packages of `python3` (CPU, then CUDA 12, then CUDA 13 plugins).
//!
//! libtpu is considered only when TPU is asked for (`want_tpu`): on a
//! non-TPU host it queries the GCE metadata server for minutes.
//!
//! The search itself is a pure function of [`SearchInputs`], so tests can
//! pass their own environment without touching the process's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::error::{Error, Result};

/// Version directory of the CPU plugin that `tools/setup` installs.
pub const CPU_PLUGIN_DIR: &str = "xla-cpu-pjrt-0.0.1";
/// File name of the CPU plugin.
pub const CPU_PLUGIN_FILE: &str = "xla_cpu_pjrt.so";

/// Plugins looked for inside each site-packages directory, in order.
const SITE_PACKAGES_PLUGINS: &[&str] = &[
    "xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so",
    "jax_plugins/xla_cuda12/xla_cuda_plugin.so",
    "jax_plugins/xla_cuda13/xla_cuda_plugin.so",
];

/// The TPU plugin inside site-packages.
const SITE_PACKAGES_TPU: &str = "libtpu/libtpu.so";

/// Everything the search looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchInputs {
    /// `--pjrt_plugin=PATH`: used alone when given.
    pub explicit: Option<PathBuf>,
    /// `PJRT_PLUGIN_PATH`: used alone when set (and no explicit path).
    pub env_plugin_path: Option<OsString>,
    /// `SIMCLR_CACHE_DIR`.
    pub simclr_cache_dir: Option<OsString>,
    /// `XDG_CACHE_HOME`.
    pub xdg_cache_home: Option<OsString>,
    /// `HOME`.
    pub home: Option<OsString>,
    /// Python site-packages directories to search.
    pub site_packages: Vec<PathBuf>,
    /// Search for libtpu (and only libtpu) after the explicit/env paths.
    pub want_tpu: bool,
    /// `TPU_LIBRARY_PATH` (read only when `want_tpu`).
    pub tpu_library_path: Option<OsString>,
}

impl SearchInputs {
    /// Inputs from this process's environment and `python3`'s site-packages.
    pub fn from_env(explicit: Option<PathBuf>, want_tpu: bool) -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let env_plugin_path = var("PJRT_PLUGIN_PATH");
        let explicit_or_env = explicit.is_some() || env_plugin_path.is_some();
        Self {
            explicit,
            env_plugin_path,
            simclr_cache_dir: var("SIMCLR_CACHE_DIR"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME"),
            // python3 is asked only when its answer can matter.
            site_packages: if explicit_or_env {
                Vec::new()
            } else {
                python_site_packages()
            },
            want_tpu,
            tpu_library_path: if want_tpu {
                var("TPU_LIBRARY_PATH")
            } else {
                None
            },
        }
    }
}

/// `${SIMCLR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/simclr}`; `None`
/// when none of the three is set.
pub fn cache_dir(
    simclr_cache_dir: Option<&OsString>,
    xdg_cache_home: Option<&OsString>,
    home: Option<&OsString>,
) -> Option<PathBuf> {
    if let Some(d) = simclr_cache_dir {
        return Some(PathBuf::from(d));
    }
    if let Some(x) = xdg_cache_home {
        return Some(Path::new(x).join("simclr"));
    }
    home.map(|h| Path::new(h).join(".cache").join("simclr"))
}

/// A place the search looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The shared library path.
    pub path: PathBuf,
    /// Where the path came from (`--pjrt_plugin`, `PJRT_PLUGIN_PATH` ...).
    pub source: &'static str,
}

/// Every candidate, in search order. An explicit path or `PJRT_PLUGIN_PATH`
/// is the only candidate when given (a typo must not silently pick another
/// plugin). libtpu appears only when `want_tpu`.
pub fn candidates(inputs: &SearchInputs) -> Vec<Candidate> {
    if let Some(p) = &inputs.explicit {
        return vec![Candidate {
            path: p.clone(),
            source: "--pjrt_plugin",
        }];
    }
    if let Some(p) = &inputs.env_plugin_path {
        return vec![Candidate {
            path: PathBuf::from(p),
            source: "PJRT_PLUGIN_PATH",
        }];
    }
    let mut out = Vec::new();
    if inputs.want_tpu {
        if let Some(p) = &inputs.tpu_library_path {
            out.push(Candidate {
                path: PathBuf::from(p),
                source: "TPU_LIBRARY_PATH",
            });
        }
        for sp in &inputs.site_packages {
            out.push(Candidate {
                path: sp.join(SITE_PACKAGES_TPU),
                source: "python3 site-packages",
            });
        }
        return out;
    }
    if let Some(cache) = cache_dir(
        inputs.simclr_cache_dir.as_ref(),
        inputs.xdg_cache_home.as_ref(),
        inputs.home.as_ref(),
    ) {
        out.push(Candidate {
            path: cache
                .join("plugins")
                .join(CPU_PLUGIN_DIR)
                .join(CPU_PLUGIN_FILE),
            source: "simclr cache (tools/setup)",
        });
    }
    for sp in &inputs.site_packages {
        for rel in SITE_PACKAGES_PLUGINS {
            out.push(Candidate {
                path: sp.join(rel),
                source: "python3 site-packages",
            });
        }
    }
    out
}

/// The first candidate that is a file.
///
/// Errors: [`Error::PluginNotFound`] listing every candidate (and that
/// `python3` found no site-packages, if so).
pub fn find_plugin(inputs: &SearchInputs) -> Result<PathBuf> {
    let all = candidates(inputs);
    if let Some(c) = all.iter().find(|c| c.path.is_file()) {
        return Ok(c.path.clone());
    }
    let mut tried: Vec<String> = all
        .iter()
        .map(|c| format!("{} ({}): not found", c.path.display(), c.source))
        .collect();
    if inputs.explicit.is_none() && inputs.env_plugin_path.is_none() {
        if inputs.site_packages.is_empty() {
            tried.push("python3 site-packages: none found (is python3 installed?)".into());
        }
        if !inputs.want_tpu
            && cache_dir(
                inputs.simclr_cache_dir.as_ref(),
                inputs.xdg_cache_home.as_ref(),
                inputs.home.as_ref(),
            )
            .is_none()
        {
            tried.push(
                "simclr cache: SIMCLR_CACHE_DIR, XDG_CACHE_HOME and HOME are all unset".into(),
            );
        }
    }
    Err(Error::PluginNotFound { tried })
}

/// Discovers a plugin from this process's environment (see the module doc).
pub fn discover(explicit: Option<&Path>, want_tpu: bool) -> Result<PathBuf> {
    find_plugin(&SearchInputs::from_env(
        explicit.map(Path::to_path_buf),
        want_tpu,
    ))
}

/// The site-packages directories of `python3` (system, user, and any on
/// `sys.path`), existing ones only; empty when python3 is missing. Queried
/// once per process.
pub fn python_site_packages() -> Vec<PathBuf> {
    static CACHE: OnceLock<Vec<PathBuf>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let script = "import site, sys\n\
                p = []\n\
                try:\n    p += site.getsitepackages()\nexcept Exception:\n    pass\n\
                try:\n    p.append(site.getusersitepackages())\nexcept Exception:\n    pass\n\
                p += [x for x in sys.path if x.endswith(('site-packages', 'dist-packages'))]\n\
                print('\\n'.join(dict.fromkeys(p)))\n";
            let Ok(out) = std::process::Command::new("python3")
                .arg("-c")
                .arg(script)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
            else {
                return Vec::new();
            };
            if !out.status.success() {
                return Vec::new();
            }
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from)
                .filter(|p| p.is_dir())
                .collect()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn cache_dir_follows_the_setup_script() {
        assert_eq!(
            cache_dir(os("/c").as_ref(), os("/x").as_ref(), os("/h").as_ref()),
            Some("/c".into())
        );
        assert_eq!(
            cache_dir(None, os("/x").as_ref(), os("/h").as_ref()),
            Some("/x/simclr".into())
        );
        assert_eq!(
            cache_dir(None, None, os("/h").as_ref()),
            Some("/h/.cache/simclr".into())
        );
        assert_eq!(cache_dir(None, None, None), None);
    }

    #[test]
    fn explicit_path_wins_and_stands_alone() {
        let inputs = SearchInputs {
            explicit: Some("/a.so".into()),
            env_plugin_path: os("/b.so"),
            home: os("/h"),
            ..Default::default()
        };
        assert_eq!(
            candidates(&inputs),
            vec![Candidate {
                path: "/a.so".into(),
                source: "--pjrt_plugin"
            }]
        );
        let inputs = SearchInputs {
            explicit: None,
            ..inputs
        };
        assert_eq!(candidates(&inputs)[0].path, PathBuf::from("/b.so"));
        assert_eq!(candidates(&inputs).len(), 1);
    }

    #[test]
    fn order_is_cache_then_site_packages() {
        let inputs = SearchInputs {
            home: os("/h"),
            site_packages: vec!["/sp".into()],
            ..Default::default()
        };
        let paths: Vec<PathBuf> = candidates(&inputs).into_iter().map(|c| c.path).collect();
        assert_eq!(
            paths,
            vec![
                PathBuf::from("/h/.cache/simclr/plugins/xla-cpu-pjrt-0.0.1/xla_cpu_pjrt.so"),
                "/sp/xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so".into(),
                "/sp/jax_plugins/xla_cuda12/xla_cuda_plugin.so".into(),
                "/sp/jax_plugins/xla_cuda13/xla_cuda_plugin.so".into(),
            ]
        );
    }

    #[test]
    fn libtpu_only_when_asked_for() {
        let inputs = SearchInputs {
            home: os("/h"),
            site_packages: vec!["/sp".into()],
            tpu_library_path: os("/t/libtpu.so"),
            ..Default::default()
        };
        assert!(candidates(&inputs)
            .iter()
            .all(|c| !c.path.to_string_lossy().contains("libtpu")));
        let tpu = SearchInputs {
            want_tpu: true,
            ..inputs
        };
        let paths: Vec<PathBuf> = candidates(&tpu).into_iter().map(|c| c.path).collect();
        assert_eq!(
            paths,
            vec![PathBuf::from("/t/libtpu.so"), "/sp/libtpu/libtpu.so".into()]
        );
    }
}
