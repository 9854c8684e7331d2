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

/// TrackEval 1.3.0 (HOTA, CLEAR, Identity), in the tracking virtualenv.
pub fn trackeval() -> String {
    nsod_testkit::python_track(&["trackeval", "shapely"])
}

/// Runs scripts/trackeval_reference.py with `args` and returns its JSON.
pub fn trackeval_reference(args: &[String], dir: &Path) -> serde_json::Value {
    let out = dir.join("trackeval.json");
    let mut cmd = std::process::Command::new(trackeval());
    cmd.arg(repo_root().join("scripts/trackeval_reference.py"));
    match args[0].as_str() {
        "oriented" => cmd.arg("oriented").arg(&out).args(&args[1..]),
        benchmark => cmd.arg("axis").arg(benchmark).arg(&out).args(&args[1..]),
    };
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

/// Every number TrackEval reports for every sequence and the combination equals nsod's to 1e-6 (HOTA's arrays at
/// all 19 thresholds); returns how many numbers were compared.
pub fn assert_trackeval_parity(
    ours: &serde_json::Map<String, serde_json::Value>,
    reference: &serde_json::Value,
) -> usize {
    let reference = reference.as_object().unwrap();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "the same sequences"
    );
    let mut compared = 0;
    for (seq, r) in reference {
        for (family, key) in [
            ("HOTA", "hota"),
            ("CLEAR", "clear"),
            ("Identity", "identity"),
        ] {
            for (field, want) in r[family].as_object().unwrap() {
                let got = &ours[seq][key][field];
                let pairs: Vec<(f64, f64)> = match want {
                    serde_json::Value::Array(w) => {
                        let g = got
                            .as_array()
                            .unwrap_or_else(|| panic!("{seq} {family} {field}: missing"));
                        assert_eq!(g.len(), w.len());
                        g.iter()
                            .zip(w)
                            .map(|(a, b)| (a.as_f64().unwrap(), b.as_f64().unwrap()))
                            .collect()
                    }
                    w => vec![(
                        got.as_f64()
                            .unwrap_or_else(|| panic!("{seq} {family} {field}: missing in nsod")),
                        w.as_f64().unwrap(),
                    )],
                };
                for (i, (a, b)) in pairs.into_iter().enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-6,
                        "{seq} {family} {field}[{i}]: nsod {a}, TrackEval {b}"
                    );
                    compared += 1;
                }
            }
        }
    }
    compared
}
