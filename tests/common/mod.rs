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

#[allow(unused_imports)]
pub use nsod_testkit::{default_model, dynamic_model, python, repo_root, sample, tool};

/// `$NSOD_TEST_DATA` alone (the DOTA image and its crop; the default model is committed).
pub fn shared_data() -> PathBuf {
    nsod_testkit::shared_data()
}

/// The ONNX Runtime 1.31.1 library for tests (a missing one fails the test, naming the set-up command).
pub fn ort_lib() -> PathBuf {
    nsod_testkit::ort_lib()
}

/// `nsod infer` with the test runtime, the default model (the committed yolov8n-obb, the same export as the
/// shared yolov8n-obb_1024), one input and an output folder.
pub fn infer(lib: &Path, input: &Path, out: &Path) -> Command {
    let mut c = nsod();
    c.args(["infer", "--threads", "2", "--ort-lib"])
        .arg(lib)
        .arg(input)
        .arg("--model")
        .arg(default_model())
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

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `$NSOD_TEST_MODELS` and `$NSOD_TEST_DATA` (../shared in CI). Tests that call this carry
/// `#[cfg_attr(not(nsod_shared_assets), ignore = ...)]` (see nsod-testkit).
pub fn shared_assets() -> (PathBuf, PathBuf) {
    (nsod_testkit::shared_models(), nsod_testkit::shared_data())
}

/// A child process killed and reaped when the test ends, pass or fail.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
