//! Test assets and reference tools for nsod's tests.
//!
//! Two kinds of asset:
//! - **Set up by the project** (`scripts/setup.sh --tests`): ONNX Runtime, the committed default model, the
//!   reference tools (SWI-Prolog, Prometheus, promtool, amtool) and the Python references (pycocotools, the DOTA
//!   devkit, OpenCV, onnxruntime) in `.venv/`. Tests find them without any variable; a missing one fails the test
//!   with one line naming the command that sets it up. Nothing is skipped.
//! - **Shared assets** (`$NSOD_TEST_MODELS`, `$NSOD_TEST_DATA`): models that take PyTorch to export and a DOTA
//!   image that cannot be redistributed. Tests that need them carry
//!   `#[cfg_attr(not(nsod_shared_assets), ignore = "...")]`; the build scripts of the crates holding such tests call
//!   [`emit_shared_assets_cfg`], which sets the cfg when both variables name folders, or under `CI=true` (where a
//!   missing asset is then a failure). Ignored tests show in cargo's output with their reason, and
//!   `scripts/test.sh` lists them in its closing summary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The ONNX Runtime version the tests load and nsod is tested with.
pub const ORT_VERSION: &str = "1.31.1";

const SETUP: &str = "scripts/setup.sh --tests";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

fn missing(what: &str, fix: &str) -> ! {
    panic!("missing test asset: {what}: run {fix}")
}

fn from_var_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or(default)
}

/// The ONNX Runtime library: `$NSOD_TEST_ORT_LIB`, else the one `scripts/setup.sh` extracts into
/// `third_party/onnxruntime/`.
pub fn ort_lib() -> PathBuf {
    let p = from_var_or(
        "NSOD_TEST_ORT_LIB",
        repo_root().join(format!(
            "third_party/onnxruntime/libonnxruntime.so.{ORT_VERSION}"
        )),
    );
    if !p.exists() {
        missing(
            &format!("ONNX Runtime {ORT_VERSION} ({})", p.display()),
            "scripts/setup.sh --skip-build",
        );
    }
    p
}

/// The default model, committed as `models/yolov8n-obb.onnx` (the same export as the shared
/// `yolov8n-obb_1024.onnx`).
pub fn default_model() -> PathBuf {
    let p = repo_root().join("models/yolov8n-obb.onnx");
    if !p.exists() {
        missing(
            &format!("the default model ({})", p.display()),
            "git checkout -- models/yolov8n-obb.onnx",
        );
    }
    p
}

/// The dynamic-batch export of the same weights, committed as `models/yolov8n-obb_dyn.onnx` (the same file as the
/// shared `yolov8n-obb_dyn.onnx`): for the tests of batching and of the pipelined schedule.
pub fn dynamic_model() -> PathBuf {
    let p = repo_root().join("models/yolov8n-obb_dyn.onnx");
    if !p.exists() {
        missing(
            &format!("the dynamic-batch model ({})", p.display()),
            "git checkout -- models/yolov8n-obb_dyn.onnx",
        );
    }
    p
}

/// The tree-crown detector, committed as `models/trees-yolov8n.onnx` (scripts/train-trees.sh; models/README.md).
pub fn tree_model() -> PathBuf {
    let p = repo_root().join("models/trees-yolov8n.onnx");
    if !p.exists() {
        missing(
            &format!("the tree-crown model ({})", p.display()),
            "git checkout -- models/trees-yolov8n.onnx",
        );
    }
    p
}

/// A sample image `scripts/setup.sh` fetches into `samples/` (NEON orthophotos from the deepforest wheel:
/// `neon_soap_10cm.png`, 400x400; `neon_yell_2019_10cm.png`, 2299x2472; `neon_osbs_10cm.tif`, a 400x400 GeoTIFF):
/// real aerial images for the tests of
/// mechanics (resume, interruption, schedules, shards, serving) that need no DOTA content.
pub fn sample(name: &str) -> PathBuf {
    let p = repo_root().join("samples").join(name);
    if !p.is_file() {
        missing(
            &format!("the sample image {}", p.display()),
            "scripts/fetch-samples.sh (scripts/test.sh and scripts/demo.sh fetch them)",
        );
    }
    p
}

fn shared(var: &str) -> PathBuf {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(p) if Path::new(&p).is_dir() => PathBuf::from(p),
        Some(p) => panic!(
            "missing shared test asset: {var}={} is not a folder (tests/README.md says where the shared assets come from)",
            Path::new(&p).display()
        ),
        None => panic!(
            "missing shared test asset: {var} is not set (this test runs when NSOD_TEST_MODELS and NSOD_TEST_DATA name the shared assets, and always under CI=true; see tests/README.md)"
        ),
    }
}

/// `$NSOD_TEST_MODELS`: the shared models (yolov8n-obb_1024, _dyn, yolo26n-obb_1024_e2e, yolov8n-doclaynet).
pub fn shared_models() -> PathBuf {
    shared("NSOD_TEST_MODELS")
}

/// `$NSOD_TEST_DATA`: the shared DOTA image, its 1024 crop and Ultralytics' predictions on it.
pub fn shared_data() -> PathBuf {
    shared("NSOD_TEST_DATA")
}

/// A file inside a shared folder, which must exist.
pub fn shared_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    if !p.exists() {
        panic!(
            "missing shared test asset: {} (see tests/README.md)",
            p.display()
        );
    }
    p
}

/// Debian package that provides each reference tool.
fn package_of(tool: &str) -> Option<&'static str> {
    match tool {
        "swipl" => Some("swi-prolog-nox"),
        "prometheus" | "promtool" => Some("prometheus"),
        "amtool" => Some("prometheus-alertmanager"),
        "gdal_translate" | "gdaltransform" | "gdalinfo" | "gdalwarp" | "gdalbuildvrt"
        | "gdal_edit.py" | "ogrinfo" => Some("gdal-bin"),
        "sbatch" | "scontrol" | "squeue" => Some("slurm-wlm"),
        "prometheus-pushgateway" => Some("prometheus-pushgateway"),
        "kubectl" => Some("kubectl"),
        "ffmpeg" | "ffprobe" => Some("ffmpeg"),
        _ => None,
    }
}

/// A reference tool on `PATH` (swipl, prometheus, promtool, amtool): a [`Command`] for it.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        missing(
            &format!(
                "{name}{} is not on PATH",
                package_of(name)
                    .map(|p| format!(" (Debian package {p})"))
                    .unwrap_or_default()
            ),
            SETUP,
        );
    }
    Command::new(name)
}

/// The Python interpreter with the reference packages: `$NSOD_PYTHON`, else the virtualenv `scripts/setup.sh
/// --tests` makes (`$NSOD_VENV`, else `.venv/`), else `python3`. Every module in `imports` must import.
pub fn python(imports: &[&str]) -> String {
    let py = std::env::var("NSOD_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            let p = main_venv().join("bin/python3");
            p.is_file().then(|| p.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "python3".into());
    check_imports(py, imports, "scripts/test-requirements.txt")
}

fn main_venv() -> PathBuf {
    from_var_or("NSOD_VENV", repo_root().join(".venv"))
}

/// The tracking references (TrackEval, `trackers`, supervision; numpy >= 2.3), in their own virtualenv:
/// `$NSOD_VENV-track` (`.venv-track/`), made by `scripts/setup.sh --tests` from
/// scripts/test-requirements-track.txt.
pub fn python_track(imports: &[&str]) -> String {
    side_venv("track", imports)
}

/// py-motmetrics 1.4.0 (numpy < 2), in its own virtualenv: `$NSOD_VENV-motmetrics` (`.venv-motmetrics/`), made by
/// `scripts/setup.sh --tests` from scripts/test-requirements-motmetrics.txt.
pub fn python_motmetrics(imports: &[&str]) -> String {
    side_venv("motmetrics", imports)
}

fn side_venv(suffix: &str, imports: &[&str]) -> String {
    let mut dir = main_venv().into_os_string();
    dir.push(format!("-{suffix}"));
    let py = PathBuf::from(dir).join("bin/python3");
    check_imports(
        py.to_string_lossy().into_owned(),
        imports,
        &format!("scripts/test-requirements-{suffix}.txt"),
    )
}

fn check_imports(py: String, imports: &[&str], requirements: &str) -> String {
    let code = format!("import {}", imports.join(", "));
    let ok = Command::new(&py)
        .args(["-c", &code])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        missing(
            &format!("`{py} -c '{code}'` fails (Python references, {requirements})"),
            SETUP,
        );
    }
    py
}

/// For build scripts of crates with tests that need the shared assets: sets `cfg(nsod_shared_assets)` when
/// `$NSOD_TEST_MODELS` and `$NSOD_TEST_DATA` name folders, or under `CI=true`.
pub fn emit_shared_assets_cfg() {
    println!("cargo::rustc-check-cfg=cfg(nsod_shared_assets)");
    for v in ["NSOD_TEST_MODELS", "NSOD_TEST_DATA", "CI"] {
        println!("cargo::rerun-if-env-changed={v}");
    }
    let dir = |v: &str| {
        std::env::var_os(v)
            .filter(|p| !p.is_empty())
            .is_some_and(|p| Path::new(&p).is_dir())
    };
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if ci || (dir("NSOD_TEST_MODELS") && dir("NSOD_TEST_DATA")) {
        println!("cargo::rustc-cfg=nsod_shared_assets");
    }
}

/// Runs the `ffmpeg` tool (quiet, overwriting) with `args`; a failure fails the test with its message.
pub fn ffmpeg(args: &[&str]) {
    let o = tool("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `ffprobe`'s integer pts of every frame of the first video stream, in presentation order.
pub fn ffprobe_pts(video: &Path) -> Vec<i64> {
    let o = tool("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=pts", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut pts: Vec<i64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let field = l.split(',').next().unwrap_or_default();
            field
                .parse()
                .unwrap_or_else(|e| panic!("ffprobe's pts {l:?}: {e}"))
        })
        .collect();
    pts.sort_unstable();
    pts
}

/// How many frames of the first video stream `ffprobe` decodes.
pub fn ffprobe_frames(video: &Path) -> usize {
    let o = tool("ffprobe")
        .args(["-v", "quiet", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .unwrap();
    let probed = String::from_utf8_lossy(&o.stdout);
    probed
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| panic!("ffprobe's frame count {probed:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_the_setup_command_in_one_line() {
        let err = std::panic::catch_unwind(|| tool("nsod-no-such-tool-xyz")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert_eq!(
            msg,
            "missing test asset: nsod-no-such-tool-xyz is not on PATH: run scripts/setup.sh --tests"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn a_python_without_the_module_names_the_setup_command() {
        let err = std::panic::catch_unwind(|| python(&["nsod_no_such_module_xyz"])).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with("missing test asset: `"), "{msg}");
        assert!(msg.ends_with(": run scripts/setup.sh --tests"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
