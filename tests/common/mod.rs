//! Helpers shared by the end-to-end tests of the `nsod` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn nsod() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nsod"));
    // Every test's server on its own free port.
    c.env("NSOD_METRICS_ADDR", "127.0.0.1:0");
    c.env_remove("ORT_DYLIB_PATH")
        .env_remove("NSOD_ORT_SETUP_DIR")
        .env_remove("NSOD_MODEL")
        .env_remove("NSOD_RULES");
    c
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A test asset: `$var`, else `default` under the repository root. Missing: `None` (the test skips with a
/// message), except under `CI=true`, where it is a failure.
pub fn test_asset(var: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default));
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing (set {var}; for ONNX Runtime run scripts/setup.sh --skip-models --skip-build)",
        p.display()
    );
    eprintln!("skipping: {} not found (set {var})", p.display());
    None
}

/// The ONNX Runtime 1.31.1 library for tests.
pub fn ort_lib() -> Option<PathBuf> {
    test_asset(
        "NSOD_TEST_ORT_LIB",
        "third_party/onnxruntime/libonnxruntime.so.1.31.1",
    )
}

/// `nsod infer` with the test runtime, the shared yolov8n-obb model, one input and an output folder.
pub fn infer(lib: &Path, models: &Path, input: &Path, out: &Path) -> Command {
    let mut c = nsod();
    c.args(["infer", "--threads", "2", "--ort-lib"])
        .arg(lib)
        .arg(input)
        .arg("--model")
        .arg(models.join("yolov8n-obb_1024.onnx"))
        .arg("--out")
        .arg(out);
    c
}

/// The `error:` lines of a run's stderr (info lines such as the metrics address may precede them).
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `$NSOD_TEST_MODELS` and `$NSOD_TEST_DATA` (../shared in CI).
pub fn shared_assets() -> Option<(PathBuf, PathBuf)> {
    Some((
        test_asset("NSOD_TEST_MODELS", "../shared/models")?,
        test_asset("NSOD_TEST_DATA", "../shared/data")?,
    ))
}
