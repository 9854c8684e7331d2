//! Preprocessing parity with Ultralytics: the letterboxed model input equals OpenCV's (`cv2.resize` INTER_LINEAR
//! then a 114 border, as Ultralytics' LetterBox) bit for bit, and every detection's score equals the score the model
//! gives the same anchor on Ultralytics' input within 1e-3, on non-square images: the 2299 x 2472 sample and a
//! 700 x 480 crop of it with the OBB model, and an A4 page with the document-layout model (shared assets). With the
//! model of dynamic height and width, the input is Ultralytics' minimum rectangle (its predictor's `auto=True`
//! letterbox: padding to the stride only), checked the same way on a 1024 x 720 slice and the whole 1054 x 1529 DOTA
//! image. The peer is `scripts/ultralytics_reference.py` (opencv-python-headless and onnxruntime from PyPI,
//! installed by .ci/run).

mod common;

use common::*;
use nsod_detect::preprocess::{Letterbox, Region, letterbox_fit_into};
use std::path::Path;
use std::process::Command;

/// The Python with OpenCV and onnxruntime (the references: Ultralytics' letterbox is cv2.resize).
fn reference_python() -> String {
    python(&["cv2", "onnxruntime"])
}

/// Checks `model` on `image` against the reference; `stride`: the model's height and width are dynamic (minimum
/// rectangle). Returns the detections compared, the largest score difference and the input's (height, width).
fn check(
    py: &str,
    lib: &Path,
    model: &Path,
    image: &Path,
    dir: &Path,
    stride: Option<u32>,
) -> (usize, f32, (u32, u32)) {
    let raw = dir.join("input.f32");
    let o = Command::new(py)
        .arg(repo_root().join("scripts/ultralytics_reference.py"))
        .arg(model)
        .arg(image)
        .arg("0.25")
        .arg(&raw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    // The model input, bit for bit.
    let img = nsod_detect::load_image(image).unwrap();
    let (w, h) = img.dimensions();
    let fit = Letterbox::fit(w, h, 1024, 1024, stride);
    let mut ours = vec![0f32; 3 * fit.in_w as usize * fit.in_h as usize];
    letterbox_fit_into(
        &img,
        Region {
            x: 0,
            y: 0,
            width: w,
            height: h,
        },
        &fit,
        &mut ours,
    );
    let lb = fit.letterbox;
    assert_eq!(
        reference["input"]["shape"],
        serde_json::json!([1, 3, fit.in_h, fit.in_w]),
        "{}: the reference's input size",
        image.display()
    );
    let theirs: Vec<f32> = std::fs::read(&raw)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let differing = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing,
        0,
        "{}: {differing} input values differ from OpenCV's (cv2 {})",
        image.display(),
        reference["cv2"]
    );
    if stride.is_none() {
        assert_eq!(lb, Letterbox::new(w, h, 1024, 1024).0);
    }

    // Scores: each detection against the anchor with the same class and centre (in model-input pixels).
    let out = dir.join("out");
    let run = nsod()
        .args([
            "infer",
            "--slice",
            "0",
            "--no-symbolic",
            "--no-metrics",
            "--threads",
            "2",
            "--ort-lib",
        ])
        .arg(lib)
        .arg(image)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run).1);
    let records = nsod_types::formats::jsonl::read_all(&out.join("predictions.jsonl")).unwrap();
    let cands = reference["candidates"].as_array().unwrap();
    let mut worst = 0f32;
    for d in &records[0].detections {
        let o = d.as_oriented();
        let (cx, cy) = (
            f64::from(o.cx) * lb.gain_x + lb.pad_x,
            f64::from(o.cy) * lb.gain_y + lb.pad_y,
        );
        let best = cands
            .iter()
            .filter(|c| c[0].as_u64() == Some(u64::from(d.class_id)))
            .map(|c| {
                let dist = (c[2].as_f64().unwrap() - cx).hypot(c[3].as_f64().unwrap() - cy);
                (dist, c[1].as_f64().unwrap() as f32)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or_else(|| panic!("{}: no anchor of class {}", image.display(), d.class_id));
        assert!(
            best.0 < 0.05,
            "{}: no anchor at the detection's centre ({best:?})",
            image.display()
        );
        worst = worst.max((best.1 - d.score).abs());
    }
    assert!(
        worst <= 1e-3,
        "{}: a score differs by {worst}",
        image.display()
    );
    (records[0].detections.len(), worst, (fit.in_h, fit.in_w))
}

/// The OBB model (the committed default) on the 2299x2472 sample and on an upscaled 700x480 crop of it.
#[test]
fn obb_letterbox_equals_opencv_and_scores_equal_ultralytics_preprocessing() {
    let lib = ort_lib();
    let py = reference_python();
    let dir = tempfile::tempdir().unwrap();
    let big = sample("neon_yell_2019_10cm.png");
    let small = dir.path().join("wide.png");
    image::imageops::crop_imm(&image::open(&big).unwrap().to_rgb8(), 300, 900, 700, 480)
        .to_image()
        .save(&small)
        .unwrap();
    for (image, name) in [(big, "big"), (small, "wide")] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        let (n, worst, _) = check(&py, &lib, &default_model(), &image, &sub, None);
        eprintln!(
            "{} on {}: {n} detections, largest score difference {worst:e}",
            default_model().display(),
            image.display()
        );
        assert!(n >= 1, "{}: no detection to compare", image.display());
    }
}

/// The document-layout model (axis-aligned, shared assets only) on a synthetic A4 page.
#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn layout_letterbox_equals_opencv_and_scores_equal_ultralytics_preprocessing() {
    let lib = ort_lib();
    let (models, _) = shared_assets();
    let py = reference_python();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.png");
    let o = Command::new(&py)
        .arg(repo_root().join("scripts/synthetic_page.py"))
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = models.join("yolov8n-doclaynet.onnx");
    let (n, worst, _) = check(&py, &lib, &model, &page, dir.path(), None);
    eprintln!(
        "yolov8n-doclaynet.onnx on the page: {n} detections, largest score difference {worst:e}"
    );
    assert!(n >= 5, "yolov8n-doclaynet.onnx: only {n} detections");
}

/// The model of dynamic height and width runs minimum rectangles by default (`detect.rect = "auto"`), as Ultralytics'
/// predictor does with it: a 1024 x 720 slice is padded to 1024 x 736 (not 1024 x 1024), the whole 1054 x 1529 DOTA
/// image to 736 x 1024; the input equals the reference's bit for bit and every score its anchor's.
#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn dynamic_model_runs_minimum_rectangles_as_ultralytics() {
    let lib = ort_lib();
    let (_, data) = shared_assets();
    let py = reference_python();
    let dir = tempfile::tempdir().unwrap();
    let dota = data.join("dota_P0006.png");
    let slice = dir.path().join("slice.png");
    image::imageops::crop_imm(&image::open(&dota).unwrap().to_rgb8(), 0, 400, 1024, 720)
        .to_image()
        .save(&slice)
        .unwrap();
    for (image, name, want) in [(slice, "slice", (736, 1024)), (dota, "whole", (1024, 736))] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        let (n, worst, hw) = check(&py, &lib, &dynamic_model(), &image, &sub, Some(32));
        eprintln!(
            "yolov8n-obb_dyn.onnx on {}: input {hw:?}, {n} detections, largest score difference {worst:e}",
            image.display()
        );
        assert_eq!(hw, want, "{}", image.display());
        assert!(
            n >= 10,
            "{}: only {n} detections to compare",
            image.display()
        );
    }
}
