//! Finding, loading and describing the ONNX Runtime shared library.
//!
//! nsod links ONNX Runtime dynamically (ort's `load-dynamic`), so the same binary runs with the CPU library of the
//! PyPI wheel `onnxruntime` or the CUDA one of `onnxruntime-gpu`. [`Runtime::load`] looks for the library, in order:
//!
//! 1. the path given on the command line (`--ort-lib`, a file or a folder),
//! 2. the `ORT_DYLIB_PATH` environment variable,
//! 3. the folder `scripts/setup.sh` fills (`third_party/onnxruntime/` in the source tree the binary was built from,
//!    or `$NSOD_ORT_SETUP_DIR`),
//! 4. the folder of the running executable.
//!
//! The first candidate that loads wins. When none does, [`RuntimeError::NotFound`] lists every attempt and why it
//! failed, and says which command fixes it. Loading never panics: ort's own loader panics when the library is
//! missing, so nsod always loads through [`ort::init_from`], which returns errors.
//!
//! This crate owns the `ort` dependency's features; model sessions are built by the detection crate on top of the
//! [`Runtime`] value, which must be kept alive while sessions exist.

use std::ffi::CStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// The ONNX Runtime version nsod is built and tested against (ort's `api-31`; 1.30 and older are refused).
pub const EXPECTED_VERSION: &str = "1.31.1";

/// Name of the environment variable ort and nsod read the library path from.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// Environment variable that moves the setup folder (for packaged installs, e.g. `/opt/nsod/lib`).
pub const SETUP_DIR_VAR: &str = "NSOD_ORT_SETUP_DIR";

/// The folder `scripts/setup.sh` extracts the library into: `$NSOD_ORT_SETUP_DIR`, or `third_party/onnxruntime/`
/// in the source tree this binary was built from.
pub fn setup_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(SETUP_DIR_VAR).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    // CARGO_MANIFEST_DIR is crates/runtime; its grandparent is the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .join("third_party/onnxruntime")
}

/// The command that installs the library, for error messages.
pub const FIX_COMMAND: &str = "scripts/setup.sh";

/// Where a candidate library path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    SetupDir,
    ExeDir,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--ort-lib",
            Self::Env => ENV_VAR,
            Self::SetupDir => "setup folder",
            Self::ExeDir => "executable's folder",
        })
    }
}

/// One place that was tried, and what happened.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub source: Source,
    pub path: Option<PathBuf>,
    pub outcome: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} {}: {}", self.source, p.display(), self.outcome),
            None => write!(f, "{}: {}", self.source, self.outcome),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No candidate loaded.
    #[error("ONNX Runtime {EXPECTED_VERSION} not found; tried {}. Run `{FIX_COMMAND}` or pass --ort-lib /path/to/libonnxruntime.so.{EXPECTED_VERSION}", join_attempts(.attempts))]
    NotFound { attempts: Vec<Attempt> },
    /// The library loaded but ONNX Runtime refused to start.
    #[error("ONNX Runtime at {} loaded but failed to start: {message}", path.display())]
    Environment { path: PathBuf, message: String },
}

fn join_attempts(a: &[Attempt]) -> String {
    a.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A loaded ONNX Runtime with its environment. Keep it alive while sessions are in use.
#[derive(Debug)]
pub struct Runtime {
    /// The library file that was loaded.
    pub path: PathBuf,
    /// How it was found.
    pub source: Source,
    /// Candidates that were tried before it and failed.
    pub skipped: Vec<Attempt>,
    _env: ort::environment::Environment,
}

impl Runtime {
    /// Finds and loads the library (see the crate docs for the search order) and creates the ort environment.
    ///
    /// Only one runtime can be loaded per process; a second call fails.
    pub fn load(flag: Option<&Path>) -> Result<Self, RuntimeError> {
        let env_value = std::env::var_os(ENV_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let candidates = [
            (Source::Flag, flag.map(Path::to_path_buf)),
            (Source::Env, env_value),
            (Source::SetupDir, Some(setup_dir())),
            (Source::ExeDir, exe_dir),
        ];
        let mut attempts = Vec::new();
        for (source, path) in candidates {
            let Some(path) = path else {
                if source != Source::Flag {
                    attempts.push(Attempt {
                        source,
                        path: None,
                        outcome: "not set".into(),
                    });
                }
                continue;
            };
            let file = match resolve(&path) {
                Ok(f) => f,
                Err(outcome) => {
                    attempts.push(Attempt {
                        source,
                        path: Some(path),
                        outcome,
                    });
                    continue;
                }
            };
            match ort::init_from(&file) {
                Ok(builder) => {
                    let env = builder.with_name("nsod").build().map_err(|e| {
                        RuntimeError::Environment {
                            path: file.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    return Ok(Self {
                        path: file,
                        source,
                        skipped: attempts,
                        _env: env,
                    });
                }
                Err(e) => attempts.push(Attempt {
                    source,
                    path: Some(file),
                    outcome: load_error_text(&e),
                }),
            }
        }
        Err(RuntimeError::NotFound { attempts })
    }

    /// The version the library reports (e.g. `1.31.1`).
    pub fn version(&self) -> String {
        ffi::version_string(&self.path).unwrap_or_else(|e| format!("unknown ({e})"))
    }

    /// The ort environment sessions are built in.
    pub fn environment(&self) -> &ort::environment::Environment {
        &self._env
    }

    /// ONNX Runtime's build description.
    pub fn build_info(&self) -> &'static str {
        ort::info()
    }

    /// The execution providers compiled into the loaded library, e.g. `CPUExecutionProvider`,
    /// `CUDAExecutionProvider`. Being listed does not guarantee that the provider's own dependencies (CUDA, cuDNN)
    /// are installed; that shows when a session registers it.
    pub fn available_providers(&self) -> Result<Vec<String>, String> {
        ffi::available_providers()
    }
}

/// Turns a file or folder into the library file to load.
fn resolve(path: &Path) -> Result<PathBuf, String> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.exists() {
        return Err("does not exist".into());
    }
    if !path.is_dir() {
        return Err("is not a file or folder".into());
    }
    let versioned = format!("libonnxruntime.so.{EXPECTED_VERSION}");
    for name in [
        "libonnxruntime.so",
        versioned.as_str(),
        "libonnxruntime.dylib",
        "onnxruntime.dll",
    ] {
        let f = path.join(name);
        if f.is_file() {
            return Ok(f);
        }
    }
    // Any other versioned library, so a wrong version is reported as such rather than as "missing".
    let mut others: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list folder: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so."))
        })
        .collect();
    others.sort();
    others
        .pop()
        .ok_or_else(|| "no libonnxruntime.so in this folder".into())
}

fn load_error_text(e: &ort::LoadDynamicError) -> String {
    match e {
        ort::LoadDynamicError::Dlopen { error, .. } => format!("cannot load: {error}"),
        ort::LoadDynamicError::MissingApi { .. } => {
            "not an ONNX Runtime library (no OrtGetApiBase)".into()
        }
        ort::LoadDynamicError::InvalidVersionString => "reports a malformed version".into(),
        ort::LoadDynamicError::BadVersion { version_str, .. } => {
            format!("version {version_str} is too old (nsod needs {EXPECTED_VERSION})")
        }
    }
}

#[allow(unsafe_code)]
mod ffi {
    use super::CStr;
    use std::path::Path;

    /// `OrtApiBase::GetVersionString` of the library at `path` (already loaded, so this only bumps its refcount).
    pub(super) fn version_string(path: &Path) -> Result<String, String> {
        // SAFETY: the library at `path` is the ONNX Runtime ort already loaded; its initialisers have run.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            unsafe { lib.get(b"OrtGetApiBase") }.map_err(|e| e.to_string())?;
        // SAFETY: returns a pointer to a static struct, or null.
        let base = unsafe { get_base() };
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        // SAFETY: `base` is valid; the version string is a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(((*base).GetVersionString)()) };
        Ok(v.to_string_lossy().into_owned())
    }

    /// `OrtApi::GetAvailableProviders`, which ort keeps private.
    pub(super) fn available_providers() -> Result<Vec<String>, String> {
        let api = ort::api();
        let mut list: *mut *mut core::ffi::c_char = std::ptr::null_mut();
        let mut len: core::ffi::c_int = 0;
        // SAFETY: the runtime is loaded (the caller holds a `Runtime`); both out-pointers are valid for writes.
        let status = unsafe { (api.GetAvailableProviders)(&mut list, &mut len) };
        if !status.0.is_null() {
            // SAFETY: a non-null status is a valid OrtStatus that we own and release once.
            let msg = unsafe { CStr::from_ptr((api.GetErrorMessage)(status.0)) }
                .to_string_lossy()
                .into_owned();
            unsafe { (api.ReleaseStatus)(status.0) };
            return Err(msg);
        }
        if list.is_null() {
            return Ok(Vec::new());
        }
        let n = usize::try_from(len).unwrap_or(0);
        // SAFETY: ONNX Runtime returned `len` valid NUL-terminated strings in `list`.
        let names = (0..n)
            .map(|i| {
                unsafe { CStr::from_ptr(*list.add(i)) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        // SAFETY: releases exactly the array returned above.
        let status = unsafe { (api.ReleaseAvailableProviders)(list, len) };
        if !status.0.is_null() {
            unsafe { (api.ReleaseStatus)(status.0) };
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_reports_missing_and_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(&dir.path().join("nope")).unwrap_err(),
            "does not exist"
        );
        assert_eq!(
            resolve(dir.path()).unwrap_err(),
            "no libonnxruntime.so in this folder"
        );
        std::fs::write(dir.path().join("libonnxruntime.so.1.30.0"), b"").unwrap();
        assert_eq!(
            resolve(dir.path()).unwrap(),
            dir.path().join("libonnxruntime.so.1.30.0")
        );
        std::fs::write(dir.path().join("libonnxruntime.so"), b"").unwrap();
        assert_eq!(
            resolve(dir.path()).unwrap(),
            dir.path().join("libonnxruntime.so")
        );
    }

    #[test]
    fn not_found_message_lists_attempts_and_fix() {
        let e = RuntimeError::NotFound {
            attempts: vec![
                Attempt {
                    source: Source::Env,
                    path: None,
                    outcome: "not set".into(),
                },
                Attempt {
                    source: Source::SetupDir,
                    path: Some("/x/third_party/onnxruntime".into()),
                    outcome: "does not exist".into(),
                },
            ],
        };
        let s = e.to_string();
        assert_eq!(
            s,
            "ONNX Runtime 1.31.1 not found; tried ORT_DYLIB_PATH: not set; setup folder /x/third_party/onnxruntime: does not exist. \
             Run `scripts/setup.sh` or pass --ort-lib /path/to/libonnxruntime.so.1.31.1"
        );
    }
}
