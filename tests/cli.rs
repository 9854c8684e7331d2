//! End-to-end tests of the `nsod` binary.
//!
//! The ONNX Runtime library comes from `NSOD_TEST_ORT_LIB` (a file or folder) or the folder `scripts/setup.sh`
//! fills. Where neither exists the ONNX Runtime tests are skipped with a message, except under `CI=true`, where a
//! missing library is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nsod() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nsod"));
    c.env_remove("ORT_DYLIB_PATH")
        .env_remove("NSOD_ORT_SETUP_DIR")
        .env_remove("NSOD_MODEL")
        .env_remove("NSOD_RULES");
    c
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ONNX Runtime 1.31.1 library for tests, or `None` (skip) outside CI.
fn ort_lib() -> Option<PathBuf> {
    let candidate = std::env::var_os("NSOD_TEST_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("third_party/onnxruntime/libonnxruntime.so.1.31.1"));
    if candidate.exists() {
        return Some(candidate);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but ONNX Runtime is missing at {}: run scripts/setup.sh --skip-models --skip-build",
        candidate.display()
    );
    eprintln!(
        "skipping: no ONNX Runtime at {} (run scripts/setup.sh)",
        candidate.display()
    );
    None
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn doctor_reports_onnxruntime_version_and_providers() {
    let Some(lib) = ort_lib() else { return };
    let out = nsod()
        .args(["doctor", "--ort-lib"])
        .arg(&lib)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("onnxruntime: "))
        .expect("an onnxruntime line");
    assert!(line.starts_with("onnxruntime: 1.31.1 found at "), "{line}");
    assert!(line.ends_with("(via --ort-lib)"), "{line}");
    let eps = stdout
        .lines()
        .find(|l| l.starts_with("execution providers: "))
        .expect("providers line");
    assert!(eps.contains("CPUExecutionProvider"), "{eps}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("gpus: ") || l.starts_with("gpus (NVML")),
        "{stdout}"
    );
    assert!(
        stdout.contains("default model: ") && stdout.contains("default rules: "),
        "{stdout}"
    );
}

#[test]
fn doctor_finds_the_library_through_the_environment_and_reports_skipped_candidates() {
    let Some(lib) = ort_lib() else { return };
    let empty = tempfile::tempdir().unwrap();
    let out = nsod()
        .args(["doctor", "--ort-lib", "/nonexistent/libonnxruntime.so"])
        .env("ORT_DYLIB_PATH", &lib)
        .env("NSOD_ORT_SETUP_DIR", empty.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("(via ORT_DYLIB_PATH)"), "{stdout}");
    assert!(
        stdout.contains("skipped --ort-lib /nonexistent/libonnxruntime.so: does not exist"),
        "{stdout}"
    );
}

#[test]
fn missing_onnxruntime_is_one_clear_line_naming_every_attempt_and_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let bogus = empty.path().join("libonnxruntime.so");
    std::fs::write(&bogus, b"this is not a shared library").unwrap();
    let out = nsod()
        .args(["doctor", "--ort-lib"])
        .arg(&bogus)
        .env("NSOD_ORT_SETUP_DIR", empty.path().join("missing"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("onnxruntime: not found"), "{stdout}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "exactly one error line, got:\n{stderr}"
    );
    let err = stderr.trim_end();
    assert!(
        err.starts_with("error: ONNX Runtime 1.31.1 not found; tried --ort-lib "),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: cannot load: ", bogus.display())),
        "{err}"
    );
    assert!(err.contains("ORT_DYLIB_PATH: not set"), "{err}");
    assert!(err.contains("/missing: does not exist"), "{err}");
    assert!(err.contains("executable's folder "), "{err}");
    assert!(
        err.ends_with("Run `scripts/setup.sh` or pass --ort-lib /path/to/libonnxruntime.so.1.31.1"),
        "{err}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_non_onnxruntime_library_is_refused_without_panic() {
    // A real shared library that is not ONNX Runtime: libc.
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/libc.so.6",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists());
    let Some(libc) = libc else {
        eprintln!("skipping: no libc.so.6 at the usual paths");
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    let out = nsod()
        .args(["doctor", "--ort-lib"])
        .arg(libc)
        .env("NSOD_ORT_SETUP_DIR", empty.path())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: not an ONNX Runtime library (no OrtGetApiBase)",
            libc.display()
        )),
        "{stderr}"
    );
}
