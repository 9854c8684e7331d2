//! End-to-end tests of the `nsod` binary.
//!
//! The ONNX Runtime library comes from `NSOD_TEST_ORT_LIB` or the folder `scripts/setup.sh` fills; a missing one
//! fails the test with one line naming the set-up command (nsod-testkit).

mod common;

use common::*;
use std::path::Path;

#[test]
fn doctor_reports_onnxruntime_version_and_providers() {
    let lib = ort_lib();
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
    // FFmpeg's libraries as linked, and the decoders the tests' videos need (Debian 12: FFmpeg 5.1).
    let video = stdout
        .lines()
        .find(|l| l.starts_with("video: "))
        .expect("a video line");
    assert!(
        video.starts_with("video: FFmpeg libavformat 59.")
            && video.contains("decoders: h264, ")
            && video.contains("ffv1")
            && video.contains("--save-video encoder: libx264")
            && video.contains("URL schemes allowed: http, https, rtsp"),
        "{video}"
    );
    assert!(
        stdout.contains("default model: ") && stdout.contains("default rules: "),
        "{stdout}"
    );
}

#[test]
fn doctor_finds_the_library_through_the_environment_and_reports_skipped_candidates() {
    let lib = ort_lib();
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
    let libc = libc.expect("libc.so.6 at one of the usual paths");
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
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    let big = sample("neon_yell_2019_10cm.png");
    std::fs::copy(&big, input.join("big.png")).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), input.join("sub/crop.png")).unwrap();
    let png = std::fs::read(&big).unwrap();
    std::fs::write(input.join("truncated.png"), &png[..png.len() / 3]).unwrap();
    std::fs::write(input.join("empty.png"), b"").unwrap();
    std::fs::write(input.join("notes.txt"), b"not an image").unwrap();
    std::fs::write(input.join("text.jpg"), b"not a jpeg either").unwrap();
    let out_dir = dir.path().join("out");

    let out = infer(&lib, &input, &out_dir)
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
    // A non-image file inside an input folder is counted, not warned about (labels and READMEs are common there).
    assert!(
        stderr.contains(
            "\n1 files in the input folders are not images and were skipped (--verbose lists them)\n"
        ) || stderr.starts_with("1 files in the input folders"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning: "), "{stderr}");
    assert!(
        stdout.starts_with("2 images processed, 3 failed"),
        "{stdout}"
    );

    // predictions.jsonl: valid, one record per good image, relative paths, no partial file left behind.
    let records = nsod_types::formats::jsonl::read_all(&out_dir.join("predictions.jsonl")).unwrap();
    assert!(!out_dir.join("predictions.jsonl.partial").exists());
    let images: Vec<&str> = records.iter().map(|r| r.image.as_str()).collect();
    assert_eq!(images, ["big.png", "sub/crop.png"]);
    assert_eq!((records[0].width, records[0].height), (2299, 2472));
    assert_eq!((records[1].width, records[1].height), (400, 400));
    let n_crop = records[1].detections.len();
    assert!(n_crop > 0 && records[0].detections.len() > 10);
    for r in &records {
        for d in &r.detections {
            assert!(d.obb.is_some() && (0.25..=1.0).contains(&d.score));
        }
    }
    // YOLO labels mirror the folder layout and hold one line per detection.
    let labels = std::fs::read_to_string(out_dir.join("labels/sub/crop.txt")).unwrap();
    assert_eq!(labels.lines().count(), n_crop);
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
    assert!(changed > 500, "only {changed} pixels changed");
    let plane = nsod_detect::vis::class_color(0);
    assert!(vis.pixels().filter(|p| **p == plane).count() > 200);
    assert!(out_dir.join("vis/big.png").exists());
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

    let lib = ort_lib();
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
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), input.join("a.png")).unwrap();
    let out_dir = dir.path().join("out");
    let run = || {
        let out = infer(&lib, &input, &out_dir)
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
    let n = nsod_types::formats::jsonl::read_all(&out_dir.join("predictions.jsonl")).unwrap()[0]
        .detections
        .len();
    assert!(n > 0, "the sample has detections");

    // A second image appears: only it is processed; the first record is carried over unchanged.
    std::fs::copy(sample("neon_soap_10cm.png"), input.join("b.png")).unwrap();
    let (stdout, _) = run();
    assert!(
        stdout.starts_with("1 images kept from earlier runs, 1 to process"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "1 images processed, 0 failed, {} detections (with 1 images kept)",
            2 * n
        )),
        "{stdout}"
    );
    let second = std::fs::read_to_string(out_dir.join("predictions.jsonl")).unwrap();
    assert_eq!(second.lines().next().unwrap(), first.trim_end());
    assert_eq!(second.lines().count(), 2);

    // An interrupted run: its staging folder beside the output folder holds a .partial file whose last line was
    // cut. The intact record is kept, the cut one processed again.
    let a_line = second.lines().next().unwrap();
    let staging = dir.path().join(".out.nsod-staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join(".nsod-staging"), "").unwrap();
    std::fs::write(
        staging.join("predictions.jsonl.partial"),
        format!("{a_line}\n{}", &a_line[..a_line.len() / 2]),
    )
    .unwrap();
    let raw = std::fs::read_to_string(out_dir.join("predictions_raw.jsonl")).unwrap();
    std::fs::write(
        staging.join("predictions_raw.jsonl.partial"),
        format!("{}\n", raw.lines().next().unwrap()),
    )
    .unwrap();
    let (stdout, stderr) = run();
    assert!(
        stdout.starts_with("1 images kept from earlier runs, 1 to process"),
        "{stdout}"
    );
    assert!(
        stderr.contains(".out.nsod-staging/predictions.jsonl.partial:2: ")
            && stderr.contains("ignoring the rest"),
        "{stderr}"
    );
    assert!(!staging.exists(), "committed");
    let records = nsod_types::formats::jsonl::read_all(&out_dir.join("predictions.jsonl")).unwrap();
    let images: Vec<&str> = records.iter().map(|r| r.image.as_str()).collect();
    assert_eq!(images, ["a.png", "b.png"]);
    assert!(records.iter().all(|r| r.detections.len() == n));
}

#[test]
fn cuda_on_a_runtime_without_cuda_is_a_clear_error_not_a_silent_cpu_run() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let out = infer(&lib, dir.path(), &dir.path().join("out"))
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

#[test]
fn version_names_the_commit_and_the_tested_onnx_runtime() {
    let out = nsod().arg("--version").output().unwrap();
    assert!(out.status.success());
    let sha = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        text(&out).0,
        format!(
            "nsod {} (git {sha}, tested with ONNX Runtime {})\n",
            env!("CARGO_PKG_VERSION"),
            nsod_testkit::ORT_VERSION
        )
    );
    // The runtime crate requires the version the tests load.
    assert_eq!(nsod_runtime::EXPECTED_VERSION, nsod_testkit::ORT_VERSION);
}

#[test]
fn errors_are_coloured_on_a_terminal_only_and_never_with_no_color() {
    let run = |no_color: bool| {
        // `script` gives the command a terminal (util-linux, in every Debian install).
        let mut c = tool("script");
        c.args(["-qec"])
            .arg(format!(
                "{} infer /nonexistent/in.png",
                env!("CARGO_BIN_EXE_nsod")
            ))
            .arg("/dev/null")
            .env_remove("CLICOLOR_FORCE");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let line = "/nonexistent/in.png: cannot read: No such file or directory (os error 2)";
    let tty = run(false);
    assert!(
        tty.contains(&format!("\x1b[1m\x1b[31merror:\x1b[0m {line}")),
        "{tty:?}"
    );
    let no_color = run(true);
    assert!(no_color.contains(&format!("error: {line}")), "{no_color:?}");
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    // Not a terminal: no colour either.
    let out = nsod()
        .args(["infer", "/nonexistent/in.png"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out).1, format!("error: {line}\n"));
}

#[test]
fn quiet_prints_errors_only_and_verbose_one_line_per_image() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    image::RgbImage::from_pixel(320, 240, image::Rgb([90, 110, 90]))
        .save(input.join("flat.png"))
        .unwrap();
    std::fs::write(input.join("broken.png"), b"not a png").unwrap();
    std::fs::write(input.join("notes.txt"), b"labels, readmes: not images").unwrap();
    let run = |flag: &str, out: &str| {
        let o = infer(&lib, &input, &dir.path().join(out))
            .args([flag, "--no-symbolic"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        text(&o)
    };
    let (stdout, stderr) = run("--quiet", "q");
    assert_eq!(stdout, "");
    let broken = input.join("broken.png");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("error: {}: ", broken.display())),
        "{stderr}"
    );
    assert!(dir.path().join("q/predictions.jsonl").is_file());

    let (stdout, stderr) = run("--verbose", "v");
    assert!(
        stderr.contains(&format!(
            "1 files in the input folders are not images and were skipped:\n  {}\n",
            input.join("notes.txt").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("flat.png: 0 detections, 0 rule changes (")),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("1 images processed, 1 failed, 0 detections in "),
        "{stdout}"
    );
    assert!(stdout.contains("\noutputs in "), "{stdout}");
    assert!(stdout.contains("  run.json "), "{stdout}");

    // -q and -v together are a usage error.
    let o = nsod().args(["-q", "-v", "doctor"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .starts_with("error: the argument '--quiet' cannot be used with '--verbose'")
    );
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let commands = [
        "doctor",
        "infer",
        "serve",
        "symbolic",
        "track",
        "quantize",
        "rules",
        "kg",
        "train-monitor",
        "eval",
        "completions",
        "man",
        "plan",
        "merge",
        "report",
        "settings",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let o = nsod().args(["completions", shell]).output().unwrap();
        assert!(o.status.success());
        let script = text(&o).0;
        for c in commands {
            assert!(script.contains(c), "{shell} completions lack {c}");
        }
        assert!(!script.contains("rules-worker"), "hidden command completed");
    }
    let dir = tempfile::tempdir().unwrap();
    let o = nsod()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "nsod-completions.1",
            "nsod-doctor.1",
            "nsod-eval.1",
            "nsod-infer.1",
            "nsod-kg.1",
            "nsod-man.1",
            "nsod-merge.1",
            "nsod-plan.1",
            "nsod-quantize.1",
            "nsod-report.1",
            "nsod-rules-check.1",
            "nsod-rules-suggest.1",
            "nsod-rules.1",
            "nsod-serve.1",
            "nsod-settings.1",
            "nsod-symbolic.1",
            "nsod-track.1",
            "nsod-train-monitor.1",
            "nsod.1"
        ]
    );
    let infer = std::fs::read_to_string(dir.path().join("nsod-infer.1")).unwrap();
    assert!(infer.starts_with(".ie \\n(.g .ds Aq \\(aq"), "{infer}");
    assert!(infer.contains(".TH NSOD-INFER 1"), "{infer}");
    assert!(infer.contains("\\-\\-slice"), "{infer}");
}
