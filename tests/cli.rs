//! End-to-end tests of the `nsod` binary.
//!
//! The ONNX Runtime library comes from `NSOD_TEST_ORT_LIB` (a file or folder) or the folder `scripts/setup.sh`
//! fills. Where neither exists the ONNX Runtime tests are skipped with a message, except under `CI=true`, where a
//! missing library is a failure.

mod common;

use common::*;
use std::path::Path;

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

#[test]
fn infer_processes_good_images_and_names_each_bad_file() {
    let Some(lib) = ort_lib() else { return };
    let Some((models, data)) = shared_assets() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::copy(data.join("dota_P0006.png"), input.join("dota.png")).unwrap();
    std::fs::copy(
        data.join("P0006_crop1024_x0_y0.png"),
        input.join("sub/crop.png"),
    )
    .unwrap();
    let png = std::fs::read(data.join("dota_P0006.png")).unwrap();
    std::fs::write(input.join("truncated.png"), &png[..png.len() / 3]).unwrap();
    std::fs::write(input.join("empty.png"), b"").unwrap();
    std::fs::write(input.join("notes.txt"), b"not an image").unwrap();
    std::fs::write(input.join("text.jpg"), b"not a jpeg either").unwrap();
    let out_dir = dir.path().join("out");

    let out = infer(&lib, &models, &input, &out_dir)
        .arg("--save-vis")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    let has = |name: &str, cause: &str| {
        errors
            .iter()
            .any(|l| l.contains(&format!("{name}: ")) && l.contains(cause))
    };
    assert!(has("empty.png", "empty file"), "{stderr}");
    assert!(has("truncated.png", "cannot decode image"), "{stderr}");
    assert!(has("text.jpg", "cannot decode image"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("notes.txt")),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("2 images processed, 3 failed"),
        "{stdout}"
    );

    // predictions.jsonl: valid, one record per good image, relative paths, no partial file left behind.
    let records = nsod_types::formats::jsonl::read_all(&out_dir.join("predictions.jsonl")).unwrap();
    assert!(!out_dir.join("predictions.jsonl.partial").exists());
    let images: Vec<&str> = records.iter().map(|r| r.image.as_str()).collect();
    assert_eq!(images, ["dota.png", "sub/crop.png"]);
    assert_eq!((records[0].width, records[0].height), (1054, 1529));
    // The crop is exactly the model input: no slicing, so the result is Ultralytics' 107 detections.
    assert_eq!(records[1].detections.len(), 107);
    assert!(records[0].detections.len() > 100);
    for r in &records {
        for d in &r.detections {
            assert!(d.obb.is_some() && (0.25..=1.0).contains(&d.score));
        }
    }
    // YOLO labels mirror the folder layout and hold one line per detection.
    let labels = std::fs::read_to_string(out_dir.join("labels/sub/crop.txt")).unwrap();
    assert_eq!(labels.lines().count(), 107);
    let obb_labels = std::fs::read_to_string(out_dir.join("labels-obb/sub/crop.txt")).unwrap();
    assert!(
        obb_labels
            .lines()
            .all(|l| l.split_whitespace().count() == 10)
    );
    let coco: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("coco_results.json")).unwrap())
            .unwrap();
    let n_dets: usize = records.iter().map(|r| r.detections.len()).sum();
    assert_eq!(coco.as_array().unwrap().len(), n_dets);
    // --save-vis: an annotated copy of each good image, same size, with class-coloured outlines drawn in.
    let original = image::open(input.join("sub/crop.png")).unwrap().into_rgb8();
    let vis = image::open(out_dir.join("vis/sub/crop.png"))
        .unwrap()
        .into_rgb8();
    assert_eq!(vis.dimensions(), original.dimensions());
    let changed = vis
        .pixels()
        .zip(original.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 5_000, "only {changed} pixels changed");
    let large_vehicle = nsod_detect::vis::class_color(9);
    assert!(vis.pixels().filter(|p| **p == large_vehicle).count() > 1_000);
    assert!(out_dir.join("vis/dota.png").exists());
    assert!(!out_dir.join("vis/truncated.png").exists());
}

#[test]
fn infer_configuration_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = nsod()
        .arg("infer")
        .arg(dir.path())
        .args(["--model", "/nonexistent/model.onnx", "--conf", "1.5"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: --conf (detect.conf): 1.5 is outside [0, 1]"
    );

    let Some(lib) = ort_lib() else { return };
    let models = tempfile::tempdir().unwrap();
    let bogus = models.path().join("model.onnx");
    std::fs::write(&bogus, b"not a model").unwrap();
    let out = nsod()
        .args(["infer", "--ort-lib"])
        .arg(&lib)
        .arg(dir.path())
        .arg("--model")
        .arg(&bogus)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    let stderr = errors[0];
    assert!(
        stderr.starts_with(&format!(
            "error: model {}: not a loadable ONNX model",
            bogus.display()
        )),
        "{stderr}"
    );
}

#[test]
fn infer_skip_existing_resumes_from_complete_and_interrupted_runs() {
    let Some(lib) = ort_lib() else { return };
    let Some((models, data)) = shared_assets() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(data.join("P0006_crop1024_x0_y0.png"), input.join("a.png")).unwrap();
    let out_dir = dir.path().join("out");
    let run = || {
        let out = infer(&lib, &models, &input, &out_dir)
            .args(["--skip-existing", "--slice", "0"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        (stdout, stderr)
    };
    let (stdout, _) = run();
    assert!(
        stdout.starts_with("0 images kept from earlier runs, 1 to process"),
        "{stdout}"
    );
    let first = std::fs::read_to_string(out_dir.join("predictions.jsonl")).unwrap();

    // A second image appears: only it is processed; the first record is carried over unchanged.
    std::fs::copy(data.join("P0006_crop1024_x0_y0.png"), input.join("b.png")).unwrap();
    let (stdout, _) = run();
    assert!(
        stdout.starts_with("1 images kept from earlier runs, 1 to process"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 images processed, 0 failed, 214 detections (with 1 images kept)"),
        "{stdout}"
    );
    let second = std::fs::read_to_string(out_dir.join("predictions.jsonl")).unwrap();
    assert_eq!(second.lines().next().unwrap(), first.trim_end());
    assert_eq!(second.lines().count(), 2);

    // An interrupted run: only a .partial file whose last line was cut. The intact record is kept.
    let a_line = second.lines().next().unwrap();
    std::fs::remove_file(out_dir.join("predictions.jsonl")).unwrap();
    std::fs::write(
        out_dir.join("predictions.jsonl.partial"),
        format!("{a_line}\n{}", &a_line[..a_line.len() / 2]),
    )
    .unwrap();
    let (stdout, stderr) = run();
    assert!(
        stdout.starts_with("1 images kept from earlier runs, 1 to process"),
        "{stdout}"
    );
    assert!(
        stderr.contains("predictions.jsonl.partial:2: ") && stderr.contains("ignoring the rest"),
        "{stderr}"
    );
    let records = nsod_types::formats::jsonl::read_all(&out_dir.join("predictions.jsonl")).unwrap();
    let images: Vec<&str> = records.iter().map(|r| r.image.as_str()).collect();
    assert_eq!(images, ["a.png", "b.png"]);
    assert!(records.iter().all(|r| r.detections.len() == 107));
}

#[test]
fn cuda_on_a_runtime_without_cuda_is_a_clear_error_not_a_silent_cpu_run() {
    let Some(lib) = ort_lib() else { return };
    let Some((models, _)) = shared_assets() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = infer(&lib, &models, dir.path(), &dir.path().join("out"))
        .args(["--device", "cuda:0"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    let stderr = errors[0];
    assert!(
        stderr.starts_with("error: --device cuda:0: the ONNX Runtime at "),
        "{stderr}"
    );
    assert!(
        stderr.contains("has no CUDA execution provider (it offers ")
            && stderr.contains("CPUExecutionProvider"),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with("run scripts/setup.sh --gpu"),
        "{stderr}"
    );
    let out = nsod()
        .args(["infer", "--device", "tpu"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out).1.trim_end(),
        "error: --device (device): unknown device \"tpu\": use cpu, cuda or cuda:N"
    );
}
