//! End-to-end tests of `nsod eval`: parity with pycocotools on random datasets, DOTA-style AP on hand-built
//! oriented cases, before/after comparison, and bad input.

mod common;

use common::{assert_trackeval_parity, error_lines, nsod, repo_root, text, trackeval_reference};
use nsod_types::formats::jsonl::{ImagePredictions, JsonlWriter};
use nsod_types::{BBox, Detection, GroundTruth, OrientedBox};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const KEYS: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// The Python with pycocotools (the COCO reference).
fn pycocotools() -> String {
    common::python(&["pycocotools.cocoeval"])
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs pycocotools and `nsod eval` on the same COCO ground truth and results; asserts the 12 numbers agree to 1e-6
/// and returns nsod's `eval.json` with the count of numbers pycocotools defines (not -1).
fn compare_with_pycocotools(py: &str, gt: &Path, results: &Path, out: &Path) -> (Value, usize) {
    let reference = Command::new(py)
        .arg(repo_root().join("scripts/pycocotools_eval.py"))
        .arg(gt)
        .arg(results)
        .output()
        .unwrap();
    assert!(reference.status.success(), "{}", text(&reference).1);
    let reference: Value = serde_json::from_slice(&reference.stdout).unwrap();
    let (o, stdout, stderr) = eval(&[
        os("--gt"),
        gt.as_os_str(),
        os("--pred"),
        results.as_os_str(),
        os("--out"),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("AP50   IoU=0.50"), "{stdout}");
    let ours = read_json(&out.join("eval.json"));
    let mut defined = 0;
    for k in KEYS {
        let (a, b) = (
            ours["coco"][k].as_f64().unwrap(),
            reference["coco"][k].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-6,
            "{}: {k}: nsod {a} pycocotools {b}",
            gt.display()
        );
        defined += usize::from(b > -1.0);
    }
    (ours, defined)
}

#[test]
fn coco_summary_equals_pycocotools_on_random_datasets() {
    let py = pycocotools();
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    let cases: [(u32, u32, u32, bool); 5] = [
        (1, 300, 6, false),
        (2, 500, 3, false),
        (3, 200, 12, false),
        (4, 400, 5, true),
        (5, 150, 2, false),
    ];
    for (seed, images, classes, small) in cases {
        let d = dir.path().join(format!("seed{seed}"));
        let mut gen_cmd = Command::new(&py);
        gen_cmd.arg(root.join("scripts/coco_synth.py")).args([
            "--seed",
            &seed.to_string(),
            "--images",
            &images.to_string(),
            "--classes",
            &classes.to_string(),
            "--out",
        ]);
        gen_cmd.arg(&d);
        if small {
            gen_cmd.arg("--small-only");
        }
        assert!(gen_cmd.status().unwrap().success());
        // The generator gives a category without ground truth and detections on it: no input problems.
        let (ours, defined) = compare_with_pycocotools(
            &py,
            &d.join("gt.json"),
            &d.join("results.json"),
            &d.join("out"),
        );
        if small {
            // Only small objects: medium and large AP/AR are undefined (-1) in both.
            assert_eq!(ours["coco"]["APm"], -1.0);
            assert_eq!(ours["coco"]["ARl"], -1.0);
            assert_eq!(defined, 8);
        } else {
            assert_eq!(defined, 12, "seed {seed}");
        }
    }
}

fn write_jsonl(path: &Path, records: &[ImagePredictions]) {
    let mut w = JsonlWriter::create(path).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

fn record(image: &str, detections: Vec<Detection>) -> ImagePredictions {
    ImagePredictions {
        image: image.into(),
        width: 200,
        height: 200,
        detections,
        geo: None,
    }
}

fn eval(args: &[&std::ffi::OsStr]) -> (std::process::Output, String, String) {
    let o = nsod().arg("eval").args(args).output().unwrap();
    let (out, err) = text(&o);
    (o, out, err)
}

fn os<P: AsRef<std::ffi::OsStr> + ?Sized>(p: &P) -> &std::ffi::OsStr {
    p.as_ref()
}

#[test]
fn dota_labels_are_matched_with_rotated_iou_and_difficult_objects_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("labelTxt");
    std::fs::create_dir(&gt).unwrap();
    // A 20x10 ship at 45 degrees, and a difficult one.
    let ship = OrientedBox::new(100.0, 100.0, 20.0, 10.0, std::f32::consts::FRAC_PI_4);
    let hard = OrientedBox::new(40.0, 40.0, 30.0, 12.0, 0.3);
    let labels = [(ship, false), (hard, true)].map(|(o, difficult)| GroundTruth {
        class_id: 1,
        class_name: "ship".into(),
        bbox: o.aabb(),
        obb: Some(o),
        difficult,
        polygon: None,
    });
    nsod_types::formats::dota::write_labels(&gt.join("P0001.txt"), &labels).unwrap();
    let text = std::fs::read_to_string(gt.join("P0001.txt")).unwrap();
    assert!(text.ends_with(" ship 1\n"), "{text}");
    // The ship's axis-aligned hull first (rotated IoU 0.44: a false positive), then the ship, then the
    // difficult one (neither true nor false positive).
    let side = 30.0 / 2f32.sqrt();
    let hull = OrientedBox::new(100.0, 100.0, side, side, 0.0);
    let det = |o: OrientedBox, s: f32| Detection::oriented(1, "ship", s, o);
    let pred = dir.path().join("predictions.jsonl");
    write_jsonl(
        &pred,
        &[record(
            "P0001.png",
            vec![det(hull, 0.9), det(ship, 0.8), det(hard, 0.7)],
        )],
    );
    for (extra, voc) in [(None, 0.5), (Some("--voc07"), 0.5)] {
        let out = dir.path().join("out");
        let mut args = vec![
            os("--gt"),
            gt.as_os_str(),
            os("--pred"),
            pred.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ];
        args.extend(extra.map(os));
        let (o, stdout, stderr) = eval(&args);
        assert!(o.status.success(), "{stderr}");
        assert!(stdout.contains("IoU type obb"), "{stdout}");
        let j = read_json(&out.join("eval.json"));
        assert_eq!(j["ground_truth"]["gt_format"], "dota");
        assert_eq!(j["ground_truth"]["iou_type"], "obb");
        let v = j["voc"]["mAP"].as_f64().unwrap();
        assert!((v - voc).abs() < 1e-9, "{v}");
        // COCO-style: the false positive ranks first at every threshold: precision 1/2 everywhere.
        assert!((j["coco"]["AP50"].as_f64().unwrap() - 0.5).abs() < 1e-9);
        assert!((j["coco"]["AP"].as_f64().unwrap() - 0.5).abs() < 1e-9);
        let ship_row = &j["per_class"][1];
        assert_eq!(ship_row["name"], "ship");
        assert_eq!(ship_row["gt"], 1);
        assert_eq!(ship_row["true_positives"], 1);
        assert_eq!(ship_row["false_positives"], 1);
    }
}

#[test]
fn run_folder_compares_raw_and_refined_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels");
    std::fs::create_dir(&labels).unwrap();
    // Two 40x40 objects in a 200x200 image.
    std::fs::write(
        labels.join("a.txt"),
        "0 0.2 0.2 0.2 0.2\n0 0.7 0.7 0.2 0.2\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let d = |b: [f32; 4], s: f32| Detection::new(0, "plane", s, BBox::new(b[0], b[1], b[2], b[3]));
    let (hit1, hit2, miss) = (
        [20.0, 20.0, 60.0, 60.0],
        [120.0, 120.0, 160.0, 160.0],
        [150.0, 10.0, 190.0, 50.0],
    );
    // Before the rules a false positive leads; after, it is lowered below the true ones.
    write_jsonl(
        &run.join("predictions_raw.jsonl"),
        &[record(
            "a.png",
            vec![d(miss, 0.9), d(hit1, 0.8), d(hit2, 0.7)],
        )],
    );
    write_jsonl(
        &run.join("predictions.jsonl"),
        &[record(
            "a.png",
            vec![d(miss, 0.3), d(hit1, 0.8), d(hit2, 0.7)],
        )],
    );
    let out = dir.path().join("eval");
    let textfile = dir.path().join("eval.prom");
    let (o, stdout, stderr) = eval(&[
        os("--gt"),
        labels.as_os_str(),
        os("--run"),
        run.as_os_str(),
        os("--out"),
        out.as_os_str(),
        os("--plots"),
        os("--metrics-textfile"),
        textfile.as_os_str(),
    ]);
    assert!(o.status.success(), "{stderr}");
    let header = stdout.lines().find(|l| l.starts_with("metric")).unwrap();
    assert!(
        header.contains("raw") && header.contains("refined") && header.contains("change"),
        "{stdout}"
    );
    let ap50_line = stdout.lines().find(|l| l.starts_with("AP50")).unwrap();
    assert!(
        ap50_line.ends_with("0.6667   1.0000  +0.3333"),
        "{ap50_line}"
    );
    let j = read_json(&out.join("eval.json"));
    // Top level: the last set (refined). Raw: precision 2/3 at every recall (pycocotools' eps included).
    let raw = j["runs"][0]["coco"]["AP50"].as_f64().unwrap();
    assert!((raw - 2.0 / 3.0).abs() < 1e-12, "{raw}");
    assert!((j["coco"]["AP50"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(j["runs"][0]["label"], "raw");
    assert_eq!(j["runs"][1]["label"], "refined");
    let delta = j["delta"]["coco"]["AP50"].as_f64().unwrap();
    assert!((delta - 1.0 / 3.0).abs() < 1e-12, "{delta}");
    assert!((j["delta"]["per_class"][0]["AP50"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("| plane | 2 |"), "{md}");
    assert!(md.contains("Change from **raw** to **refined**"), "{md}");
    let svg = std::fs::read_to_string(out.join("pr/plane.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("refined (AP50 1.0000)"),
        "{svg}"
    );
    let prom = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        prom.contains(r#"nsod_validation_map{model="refined",iou="0.5"} 1.0"#)
            || prom.contains(r#"nsod_validation_map{model="refined",iou="0.5"} 0.99999"#),
        "{prom}"
    );
    assert!(
        prom.contains(r#"nsod_validation_map{model="raw",iou="0.5:0.95"} 0.66"#),
        "{prom}"
    );
    // How sure the change is: 4 blocks of 100 px; the false positive's block (top right) is drawn with the objects'
    // blocks in some replicates and not in others, so AP50's interval spans 0 to +0.5 and recall never moves.
    let (o, stdout, stderr) = eval(&[
        os("--gt"),
        labels.as_os_str(),
        os("--run"),
        run.as_os_str(),
        os("--bootstrap"),
        os("500"),
        os("--out"),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "Change from raw to refined, paired block bootstrap (500 replicates of 4 blocks of 100 px, seed 0):"
        ),
        "{stdout}"
    );
    let j = read_json(&out.join("eval.json"));
    let b = &j["bootstrap"];
    assert_eq!(
        (b["replicates"].as_u64(), b["blocks"].as_u64()),
        (Some(500), Some(4))
    );
    let ap50 = &b["changes"][0];
    assert_eq!(ap50["metric"], "AP50");
    assert!(
        (ap50["estimate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12,
        "{ap50}"
    );
    assert_eq!(ap50["low"].as_f64(), Some(0.0), "{ap50}");
    assert!(ap50["high"].as_f64().unwrap() >= 1.0 / 3.0, "{ap50}");
    assert!(
        stdout.contains("  ΔAP50  +0.3333  95% interval [+0.0000, +"),
        "{stdout}"
    );
    let ar = &b["changes"][2];
    assert_eq!(
        (ar["low"].as_f64(), ar["high"].as_f64()),
        (Some(0.0), Some(0.0)),
        "{ar}"
    );
    // One prediction set has no change to bootstrap.
    let (o, _, stderr) = eval(&[
        os("--gt"),
        labels.as_os_str(),
        os("--pred"),
        run.join("predictions.jsonl").as_os_str(),
        os("--bootstrap"),
        os("500"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--bootstrap: the interval of a change needs two prediction sets (--run, or --pred twice)"),
        "{stderr}"
    );
}

#[test]
fn bad_input_gets_one_line_per_problem_and_the_rest_is_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels");
    std::fs::create_dir(&labels).unwrap();
    std::fs::write(labels.join("a.txt"), "0 0.2 0.2 0.2 0.2\n").unwrap();
    std::fs::write(labels.join("b.txt"), "0 0.5 0.5 0.2\n").unwrap();
    std::fs::write(labels.join("c.txt"), "7 0.5 0.5 0.2 0.2\n").unwrap();
    let d = |id: u32, name: &str| Detection::new(id, name, 0.9, BBox::new(20.0, 20.0, 60.0, 60.0));
    let pred = dir.path().join("predictions.jsonl");
    write_jsonl(
        &pred,
        &[
            record("a.png", vec![d(0, "plane")]),
            record("b.png", vec![d(0, "plane")]),
            record("c.png", vec![d(0, "plane")]),
            record("d.png", vec![d(0, "plane")]),
            record("a.png", vec![d(0, "plane")]),
        ],
    );
    let out = dir.path().join("out");
    let textfile = dir.path().join("eval.prom");
    let (o, _, stderr) = eval(&[
        os("--gt"),
        labels.as_os_str(),
        os("--pred"),
        pred.as_os_str(),
        os("--names"),
        os("plane,ship"),
        os("--out"),
        out.as_os_str(),
        os("--metrics-textfile"),
        textfile.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let errors = error_lines(&stderr);
    let has = |needle: &str| errors.iter().any(|l| l.contains(needle));
    assert!(
        has(&format!(
            "{}:1: expected 5 columns",
            labels.join("b.txt").display()
        )),
        "{stderr}"
    );
    assert!(
        has(&format!(
            "{}:1: class id 7 is not one of the 2 known classes",
            labels.join("c.txt").display()
        )),
        "{stderr}"
    );
    assert!(
        has("predictions for d.png, which has no ground truth"),
        "{stderr}"
    );
    assert!(has("a.png appears more than once"), "{stderr}");
    assert_eq!(errors.len(), 4, "{stderr}");
    // Only a.png is evaluated: one object, found.
    let j = read_json(&out.join("eval.json"));
    assert_eq!(j["ground_truth"]["images"], 1);
    assert_eq!(j["ground_truth"]["problems"], 4);
    assert!((j["coco"]["AP50"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    let prom = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        prom.contains(r#"nsod_errors_total{stage="eval",error_type="bad_label"} 2"#),
        "{prom}"
    );
    assert!(
        prom.contains(r#"nsod_errors_total{stage="eval",error_type="unknown_image"} 1"#),
        "{prom}"
    );
}

#[test]
fn images_without_labels_are_background_and_coco_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let labels = dir.path().join("labels");
    std::fs::create_dir(&images).unwrap();
    std::fs::create_dir(&labels).unwrap();
    for name in ["a.png", "empty.png"] {
        image::RgbImage::new(200, 100)
            .save(images.join(name))
            .unwrap();
    }
    // 40x20 px object in a 200x100 image.
    std::fs::write(labels.join("a.txt"), "3 0.2 0.3 0.2 0.2\n").unwrap();
    let preds = dir.path().join("preds");
    std::fs::create_dir(&preds).unwrap();
    std::fs::write(preds.join("a.txt"), "3 0.2 0.3 0.2 0.2 0.6\n").unwrap();
    // A confident detection on the background image: a false positive ranked first.
    std::fs::write(preds.join("empty.txt"), "3 0.5 0.5 0.2 0.2 0.9\n").unwrap();
    let out = dir.path().join("out");
    let (o, _, stderr) = eval(&[
        os("--gt"),
        labels.as_os_str(),
        os("--pred"),
        preds.as_os_str(),
        os("--images"),
        images.as_os_str(),
        os("--out"),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("info: 1 images in") && stderr.contains("evaluated as background"),
        "{stderr}"
    );
    let j = read_json(&out.join("eval.json"));
    assert_eq!(j["ground_truth"]["images"], 2);
    assert!((j["coco"]["AP50"].as_f64().unwrap() - 0.5).abs() < 1e-9);

    // COCO ground truth: results for an unknown image and an unknown category are named, the rest evaluated.
    let gt = dir.path().join("gt.json");
    std::fs::write(
        &gt,
        r#"{"images":[{"id":1,"file_name":"a.png","width":200,"height":100}],
            "annotations":[{"id":1,"image_id":1,"category_id":5,"bbox":[20,20,40,20],"area":800,"iscrowd":0}],
            "categories":[{"id":5,"name":"plane"}]}"#,
    )
    .unwrap();
    let res = dir.path().join("results.json");
    std::fs::write(
        &res,
        r#"[{"image_id":1,"category_id":5,"bbox":[20,20,40,20],"score":0.8},
            {"image_id":9,"category_id":5,"bbox":[0,0,4,4],"score":0.8},
            {"image_id":1,"category_id":6,"bbox":[0,0,4,4],"score":0.8}]"#,
    )
    .unwrap();
    let (o, stdout, stderr) = eval(&[os("--gt"), gt.as_os_str(), os("--pred"), res.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("results for image_id 9, which is not an image of the ground truth"),
        "{stderr}"
    );
    assert!(
        stderr.contains("results with category_id 6, which is not a ground-truth category"),
        "{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("AP50") && l.ends_with("1.0000")),
        "{stdout}"
    );

    // Missing and broken files: one line, exit 1.
    let missing = dir.path().join("nowhere");
    let (o, _, stderr) = eval(&[
        os("--gt"),
        missing.as_os_str(),
        os("--pred"),
        res.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr.trim(),
        format!("error: --gt {}: no such file or folder", missing.display())
    );
    std::fs::write(&gt, "{\"images\": [").unwrap();
    let (o, _, stderr) = eval(&[os("--gt"), gt.as_os_str(), os("--pred"), res.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!("error: {}: line 1: EOF", gt.display())),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// The real pipeline: `nsod infer` (yolov8n-obb, rules) on the DOTA crop, evaluated against Ultralytics' own
/// predictions on it. Against yolov8n-obb's predictions (as DOTA labels) every detection is a match (the detector
/// has parity), so VOC AP is 1 before and after the rules; against yolo26's (as COCO annotations) the 12 numbers
/// equal pycocotools' on the `coco_results.json` infer wrote.
#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn real_infer_output_against_ultralytics_predictions() {
    let lib = common::ort_lib();
    let data = common::shared_data();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let crop = "P0006_crop1024_x0_y0.png";
    std::fs::copy(data.join(crop), images.join(crop)).unwrap();
    let out = dir.path().join("infer");
    let o = common::infer(&lib, &images, &out)
        .args(["--slice", "0", "--no-metrics"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(out.join("predictions_raw.jsonl").is_file());

    let parity = |name: &str| -> Value {
        read_json(&data.join(format!(
            "parity/ultralytics_{name}_1024{}__crop1024_x0_y0.json",
            if name.starts_with("yolo26") {
                "_e2e"
            } else {
                ""
            }
        )))
    };
    // yolov8n-obb's predictions as DOTA labels.
    let v8 = parity("yolov8n-obb");
    let labels = dir.path().join("labelTxt");
    std::fs::create_dir(&labels).unwrap();
    let mut txt = String::new();
    for d in v8["detections"].as_array().unwrap() {
        let poly: Vec<String> = d["poly"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p.as_array().unwrap().iter().map(|v| v.to_string()))
            .collect();
        let name = d["class_name"].as_str().unwrap().replace(' ', "-");
        txt.push_str(&format!("{} {name} 0\n", poly.join(" ")));
    }
    std::fs::write(labels.join("P0006_crop1024_x0_y0.txt"), txt).unwrap();
    let e1 = dir.path().join("eval-dota");
    let (o, stdout, stderr) = eval(&[
        os("--gt"),
        labels.as_os_str(),
        os("--run"),
        out.as_os_str(),
        os("--out"),
        e1.as_os_str(),
    ]);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("raw") && stdout.contains("refined"),
        "{stdout}"
    );
    let j = read_json(&e1.join("eval.json"));
    assert_eq!(j["ground_truth"]["iou_type"], "obb");
    assert_eq!(j["ground_truth"]["gt_objects"], 107);
    for run in j["runs"].as_array().unwrap() {
        // COCO keeps 100 detections per image and class: 2 of the 102 large vehicles are never matched, so their
        // precision is 1 up to recall 0.98 (99 of 101 recall points) and 0 after; small vehicles are all found.
        let ap50 = run["coco"]["AP50"].as_f64().unwrap();
        let expected = (99.0 / 101.0 + 1.0) / 2.0;
        assert!((ap50 - expected).abs() < 1e-9, "{}: {ap50}", run["label"]);
        assert!((run["voc"]["mAP"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert!(run["coco"]["AP"].as_f64().unwrap() > 0.9, "{run}");
        assert_eq!(run["detections"], 107);
    }
    let classes = j["per_class"].as_array().unwrap();
    let gt = |name: &str| classes.iter().find(|c| c["name"] == name).unwrap()["gt"].clone();
    assert_eq!(gt("large vehicle"), 102);
    assert_eq!(gt("small vehicle"), 5);

    // yolo26's predictions as COCO annotations, with the image id infer gave the crop.
    let py = pycocotools();
    let ids = read_json(&out.join("coco_images.json"));
    let image = &ids["images"][0];
    assert_eq!(image["file_name"], crop);
    let y26 = parity("yolo26n-obb");
    let anns: Vec<Value> = y26["detections"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let b: Vec<f64> = d["aabb_xyxy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let (w, h) = (b[2] - b[0], b[3] - b[1]);
            serde_json::json!({"id": i + 1, "image_id": image["id"], "category_id": d["class_id"],
                               "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        })
        .collect();
    let gt_json = dir.path().join("gt.json");
    std::fs::write(
        &gt_json,
        serde_json::json!({"images": [image], "annotations": anns, "categories": ids["categories"]}).to_string(),
    )
    .unwrap();
    let results = out.join("coco_results.json");
    let (ours, _) =
        compare_with_pycocotools(&py, &gt_json, &results, &dir.path().join("eval-coco"));
    let ap50 = ours["coco"]["AP50"].as_f64().unwrap();
    assert!(ap50 > 0.5 && ap50 < 1.0, "{ap50}");
}

#[test]
fn yolo_obb_labels_and_predictions_are_recognised_and_matched_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let labels = dir.path().join("labels");
    let preds = dir.path().join("preds");
    for d in [&images, &labels, &preds] {
        std::fs::create_dir(d).unwrap();
    }
    image::RgbImage::new(100, 100)
        .save(images.join("a.png"))
        .unwrap();
    // A diamond (a square turned 45 degrees) centred at (50, 50), corners 20 px from the centre.
    let diamond = "0.5 0.3 0.7 0.5 0.5 0.7 0.3 0.5";
    std::fs::write(labels.join("a.txt"), format!("2 {diamond}\n")).unwrap();
    // A 38x38 axis-aligned square on it first (rotated IoU 796 / 1448 = 0.55 minus a little: a match at IoU
    // 0.50 only), then the diamond itself (IoU 1).
    std::fs::write(
        preds.join("a.txt"),
        format!("2 0.31 0.31 0.69 0.31 0.69 0.69 0.31 0.69 0.9\n2 {diamond} 0.8\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let (o, stdout, stderr) = eval(&[
        os("--gt"),
        labels.as_os_str(),
        os("--pred"),
        preds.as_os_str(),
        os("--images"),
        images.as_os_str(),
        os("--out"),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("IoU type obb"), "{stdout}");
    let j = read_json(&out.join("eval.json"));
    assert_eq!(j["ground_truth"]["gt_format"], "yolo-obb");
    // VOC (IoU > 0.5): the square takes the object, the diamond is a duplicate: AP 1.
    assert!((j["voc"]["mAP"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    // COCO: AP50 1 the same way; at 0.55..0.95 the square is a false positive ranked first: precision 1/2.
    assert!((j["coco"]["AP50"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    let ap = j["coco"]["AP"].as_f64().unwrap();
    assert!((ap - (1.0 + 9.0 * 0.5) / 10.0).abs() < 1e-9, "{ap}");
}

/// The Python with the DOTA devkit (dotadevkit 1.3.0, with numpy and shapely).
fn dota_devkit() -> String {
    common::python(&["numpy", "shapely", "dotadevkit.polyiou.polyiou"])
}

/// A random DOTA-style dataset: whole-pixel labels (general quadrilaterals), difficult objects, duplicated labels,
/// background images, and detections near the objects (duplicates, wrong classes, misses and false positives).
fn random_dota(seed: u64, dir: &Path) -> (Vec<String>, Vec<ImagePredictions>) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let names = nsod_types::ClassNames::dota_v1();
    let classes = [0u32, 1, 9, 10, 7];
    let labels = dir.join("labelTxt");
    std::fs::create_dir_all(&labels).unwrap();
    let mut images = Vec::new();
    let mut records = Vec::new();
    for i in 0..24 {
        let image = format!("P{seed:02}{i:03}");
        let mut lines = String::from("imagesource:GoogleEarth\ngsd:0.15\n");
        let mut dets = Vec::new();
        let objects = if i % 6 == 5 {
            0
        } else {
            (rnd() * 14.0) as usize
        };
        for _ in 0..objects {
            let c = classes[(rnd() * classes.len() as f64) as usize % classes.len()];
            let (cx, cy) = (40.0 + rnd() * 900.0, 40.0 + rnd() * 900.0);
            let (w, h, a) = (8.0 + rnd() * 60.0, 4.0 + rnd() * 30.0, rnd() * 3.1);
            let o = OrientedBox::new(cx as f32, cy as f32, w as f32, h as f32, a as f32);
            let corners: Vec<String> = o
                .corners()
                .iter()
                .flat_map(|p| [format!("{}", p.x.round()), format!("{}", p.y.round())])
                .collect();
            let difficult = u8::from(rnd() < 0.12);
            let name = nsod_types::formats::dota::dota_class_name(names.get(c).unwrap());
            let line = format!("{} {name} {difficult}\n", corners.join(" "));
            lines.push_str(&line);
            if rnd() < 0.05 {
                lines.push_str(&line);
            }
            // A detection near it most of the time, sometimes twice, sometimes of another class.
            let mut found = rnd() < 0.8;
            while found {
                let (dx, dy, da) = (rnd() - 0.5, rnd() - 0.5, rnd() - 0.5);
                let (sw, sh) = (0.8 + rnd() * 0.4, 0.8 + rnd() * 0.4);
                let d = OrientedBox::new(
                    (cx + dx * 6.0) as f32,
                    (cy + dy * 6.0) as f32,
                    (w * sw) as f32,
                    (h * sh) as f32,
                    (a + da * 0.3) as f32,
                );
                let dc = if rnd() < 0.08 {
                    classes[(rnd() * 5.0) as usize % 5]
                } else {
                    c
                };
                let score = (0.05 + 0.95 * rnd()) as f32;
                let det = Detection::oriented(dc, names.get(dc).unwrap(), score, d);
                if rnd() < 0.05 {
                    // An exact duplicate (same box, same score).
                    dets.push(det.clone());
                }
                dets.push(det);
                found = rnd() < 0.15;
            }
        }
        // False positives anywhere.
        for _ in 0..(rnd() * 4.0) as usize {
            let c = classes[(rnd() * 5.0) as usize % 5];
            let o = OrientedBox::new(
                (rnd() * 1000.0) as f32,
                (rnd() * 1000.0) as f32,
                (8.0 + rnd() * 50.0) as f32,
                (4.0 + rnd() * 20.0) as f32,
                (rnd() * 3.1) as f32,
            );
            dets.push(Detection::oriented(
                c,
                names.get(c).unwrap(),
                (0.05 + 0.9 * rnd()) as f32,
                o,
            ));
        }
        std::fs::write(labels.join(format!("{image}.txt")), lines).unwrap();
        records.push(record(&format!("{image}.png"), dets));
        images.push(image);
    }
    (images, records)
}

/// DOTA AP per class and mAP, all points and VOC07, equal to the DOTA devkit's own Task 1 evaluation (1e-9) on
/// random datasets with whole-pixel labels; nsod writes the devkit's detection files itself (`--task1`).
#[test]
fn dota_ap_equals_the_dota_devkit_on_random_whole_pixel_datasets() {
    let py = dota_devkit();
    let mut compared = 0;
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().unwrap();
        let (images, records) = random_dota(seed, dir.path());
        let pred = dir.path().join("predictions.jsonl");
        write_jsonl(&pred, &records);
        let imageset = dir.path().join("imageset.txt");
        std::fs::write(&imageset, images.join("\n") + "\n").unwrap();
        let task1 = dir.path().join("task1");
        let labels = dir.path().join("labelTxt");
        let mut ours = Vec::new();
        for voc07 in [false, true] {
            let out = dir.path().join(format!("out{}", u8::from(voc07)));
            let mut args = vec![
                os("--gt"),
                labels.as_os_str(),
                os("--pred"),
                pred.as_os_str(),
                os("--out"),
                out.as_os_str(),
                os("--task1"),
                task1.as_os_str(),
            ];
            if voc07 {
                args.push(os("--voc07"));
            }
            let (o, _, stderr) = eval(&args);
            assert!(o.status.success(), "seed {seed}: {stderr}");
            ours.push(read_json(&out.join("eval.json")));
        }
        let names = nsod_types::ClassNames::dota_v1();
        let devkit_names: Vec<String> = names
            .as_slice()
            .iter()
            .map(|n| nsod_types::formats::dota::dota_class_name(n))
            .collect();
        let reference = Command::new(&py)
            .arg(repo_root().join("scripts/dota_devkit_eval.py"))
            .arg(&labels)
            .arg(&task1)
            .arg(&imageset)
            .arg(devkit_names.join(","))
            .output()
            .unwrap();
        assert!(reference.status.success(), "{}", text(&reference).1);
        let reference: Value = serde_json::from_slice(&reference.stdout).unwrap();
        let reference = reference["classes"].as_object().unwrap();
        for (m, key) in [(0, "ap"), (1, "ap07")] {
            let per_class = ours[m]["per_class"].as_array().unwrap();
            let mut aps = Vec::new();
            for c in per_class {
                let name = nsod_types::formats::dota::dota_class_name(c["name"].as_str().unwrap());
                match reference.get(&name) {
                    Some(r) => {
                        let (a, b) = (c["voc_ap"].as_f64().unwrap(), r[key].as_f64().unwrap());
                        assert!(
                            (a - b).abs() <= 1e-9,
                            "seed {seed} {name} {key}: nsod {a} devkit {b}"
                        );
                        aps.push(b);
                        compared += 1;
                    }
                    // No objects of the class: the devkit cannot define AP; nsod leaves it out of the mean.
                    None => assert!(c["voc_ap"].is_null(), "seed {seed} {name}: {c}"),
                }
            }
            let map = aps.iter().sum::<f64>() / aps.len() as f64;
            let ours_map = ours[m]["voc"]["mAP"].as_f64().unwrap();
            assert!(
                (ours_map - map).abs() <= 1e-9,
                "seed {seed} {key}: mAP {ours_map} vs {map}"
            );
        }
    }
    assert!(compared >= 30, "{compared} class APs compared");
}

/// A data.yaml whose `names:` map has the key 4000000000 once made `nsod eval` ask for 96 GB and abort; it is an
/// error naming the file, under a 2 GB address-space limit.
#[test]
fn an_absurd_class_id_in_data_yaml_is_refused_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("data.yaml"),
        "names:\n  0: plane\n  4000000000: ship\n",
    )
    .unwrap();
    for sub in ["gt", "pred"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        std::fs::write(d.join(sub).join("a.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
    }
    let o = Command::new("prlimit")
        .arg("--as=2000000000")
        .arg(env!("CARGO_BIN_EXE_nsod"))
        .arg("eval")
        .arg("--gt")
        .arg(d.join("gt"))
        .arg("--pred")
        .arg(d.join("pred"))
        .arg("--names")
        .arg(d.join("data.yaml"))
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        error_lines(&err),
        vec![format!(
            "error: {}: class id 4000000000 in `names:` is above the maximum of 65536 classes",
            d.join("data.yaml").display()
        )]
    );
}

// ---- Tracking metrics (`nsod eval --mot`) ----

/// py-motmetrics 1.4.0, in its own virtualenv (numpy < 2).
fn motmetrics() -> String {
    nsod_testkit::python_motmetrics(&["motmetrics"])
}

/// One sequence for the tracking tests: its name, ground truth, tracker output and length.
struct MotSeq {
    name: String,
    gt: String,
    tracker: String,
    length: u32,
}

/// A MOTChallenge split in `dir`: `gt/<seq>/gt/gt.txt` + `seqinfo.ini`, and `trackers/<seq>.txt`; returns the two
/// folders and the `SEQ GT TRACKER LENGTH` arguments of scripts/trackeval_reference.py.
fn write_mot_split(
    dir: &Path,
    seqs: &[MotSeq],
) -> (std::path::PathBuf, std::path::PathBuf, Vec<String>) {
    let gt_root = dir.join("gt");
    let tr_root = dir.join("trackers");
    std::fs::create_dir_all(&tr_root).unwrap();
    let mut args = Vec::new();
    for s in seqs {
        let d = gt_root.join(&s.name);
        std::fs::create_dir_all(d.join("gt")).unwrap();
        std::fs::write(d.join("gt/gt.txt"), &s.gt).unwrap();
        std::fs::write(
            d.join("seqinfo.ini"),
            format!(
                "[Sequence]\nname={}\nframeRate=25\nseqLength={}\n",
                s.name, s.length
            ),
        )
        .unwrap();
        std::fs::write(tr_root.join(format!("{}.txt", s.name)), &s.tracker).unwrap();
        args.extend([
            s.name.clone(),
            d.join("gt/gt.txt").to_string_lossy().into_owned(),
            tr_root
                .join(format!("{}.txt", s.name))
                .to_string_lossy()
                .into_owned(),
            s.length.to_string(),
        ]);
    }
    (gt_root, tr_root, args)
}

/// `nsod eval --mot GT --pred PRED --mot-benchmark B --out OUT`: its `mot_eval.json`, by sequence.
fn nsod_mot(gt: &Path, pred: &Path, benchmark: &str, out: &Path) -> serde_json::Map<String, Value> {
    let (o, stdout, stderr) = eval(&[
        os("--mot"),
        gt.as_os_str(),
        os("--pred"),
        pred.as_os_str(),
        os("--mot-benchmark"),
        os(benchmark),
        os("--out"),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("| COMBINED |"), "{stdout}");
    let list = read_json(&out.join("mot_eval.json"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["sequence"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[test]
fn mot_metrics_equal_trackeval_and_motmetrics_on_the_tud_sequences() {
    // The ground truth and tracker output py-motmetrics ships (unpacked from its wheel, not committed).
    let mm = motmetrics();
    let o = Command::new(&mm)
        .arg(repo_root().join("scripts/motmetrics_reference.py"))
        .arg("--data-dir")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let data = std::path::PathBuf::from(text(&o).0.trim());
    let dir = tempfile::tempdir().unwrap();
    let seqs: Vec<MotSeq> = ["TUD-Campus", "TUD-Stadtmitte"]
        .iter()
        .map(|name| {
            let gt = std::fs::read_to_string(data.join(name).join("gt.txt")).unwrap();
            let tracker = std::fs::read_to_string(data.join(name).join("test.txt")).unwrap();
            let length = gt
                .lines()
                .chain(tracker.lines())
                .filter_map(|l| l.split(',').next()?.parse::<u32>().ok())
                .max()
                .unwrap();
            MotSeq {
                name: name.to_string(),
                gt,
                tracker,
                length,
            }
        })
        .collect();
    let (gt_root, tr_root, args) = write_mot_split(dir.path(), &seqs);
    let ours = nsod_mot(&gt_root, &tr_root, "mot15", &dir.path().join("out"));
    let mut te_args = vec!["MOT15".to_string()];
    te_args.extend(args);
    let compared = assert_trackeval_parity(&ours, &trackeval_reference(&te_args, dir.path()));
    assert_eq!(
        compared,
        3 * (12 * 19 + 3 + 22 + 6),
        "every TrackEval number of 2 sequences + COMBINED"
    );
    // The headline numbers, as TrackEval prints them (rounded here to 3 decimals in percent).
    let c = &ours["COMBINED"];
    assert_eq!(
        format!("{:.3}", 100.0 * c["clear"]["MOTA"].as_f64().unwrap()),
        "55.512"
    );
    assert_eq!(
        format!("{:.3}", 100.0 * c["identity"]["IDF1"].as_f64().unwrap()),
        "62.430"
    );
    assert_eq!(c["clear"]["IDSW"].as_f64(), Some(14.0));

    // py-motmetrics on the same files: MOTA, MOTP (its MOTP is the mean distance 1 - IoU), IDF1/IDP/IDR and the
    // counts.
    let mm_out = dir.path().join("motmetrics.json");
    let o = Command::new(&mm)
        .arg(repo_root().join("scripts/motmetrics_reference.py"))
        .arg(&mm_out)
        .args(seqs.iter().flat_map(|s| {
            [
                s.name.clone(),
                gt_root
                    .join(&s.name)
                    .join("gt/gt.txt")
                    .to_string_lossy()
                    .into_owned(),
                tr_root
                    .join(format!("{}.txt", s.name))
                    .to_string_lossy()
                    .into_owned(),
            ]
        }))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let reference = read_json(&mm_out);
    for (seq, mm_seq) in [
        ("TUD-Campus", "TUD-Campus"),
        ("TUD-Stadtmitte", "TUD-Stadtmitte"),
        ("COMBINED", "OVERALL"),
    ] {
        let (r, n) = (&reference[mm_seq], &ours[seq]);
        let pairs = [
            ("mota", n["clear"]["MOTA"].as_f64().unwrap()),
            ("motp", 1.0 - n["clear"]["MOTP"].as_f64().unwrap()),
            ("idf1", n["identity"]["IDF1"].as_f64().unwrap()),
            ("idp", n["identity"]["IDP"].as_f64().unwrap()),
            ("idr", n["identity"]["IDR"].as_f64().unwrap()),
            ("recall", n["clear"]["CLR_Re"].as_f64().unwrap()),
            ("precision", n["clear"]["CLR_Pr"].as_f64().unwrap()),
            ("num_switches", n["clear"]["IDSW"].as_f64().unwrap()),
            (
                "num_false_positives",
                n["clear"]["CLR_FP"].as_f64().unwrap(),
            ),
            ("num_misses", n["clear"]["CLR_FN"].as_f64().unwrap()),
            ("mostly_tracked", n["clear"]["MT"].as_f64().unwrap()),
            ("mostly_lost", n["clear"]["ML"].as_f64().unwrap()),
        ];
        for (k, got) in pairs {
            let want = r[k].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-6,
                "{seq} {k}: nsod {got}, py-motmetrics {want}"
            );
        }
    }
}

/// xorshift64*: the seeded generator of the synthetic sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// A synthetic sequence: objects moving (and, oriented, turning) through `length` frames, entering and leaving; the
/// tracker sees them jittered (so no assignment has exact ties), misses some, adds false positives, swaps two ids
/// mid-way, fragments tracks, and both are empty for a few frames. With `mot17`, ground truth has distractor and
/// zero-marked rows and the tracker reports some distractors.
fn synthetic_sequence(seed: u64, name: &str, length: u32, oriented: bool, mot17: bool) -> MotSeq {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 9;
    struct Obj {
        start: u32,
        end: u32,
        x: f64,
        y: f64,
        vx: f64,
        vy: f64,
        w: f64,
        h: f64,
        a: f64,
        va: f64,
        class: i64,
        zero: bool,
    }
    let objs: Vec<Obj> = (0..n)
        .map(|i| {
            let start = if i < 5 {
                1
            } else {
                1 + (rng.next() * f64::from(length) * 0.5) as u32
            };
            // Objects 0-2 (the swap and the fragment) live through the whole sequence.
            let end = if i < 3 {
                length
            } else {
                (start + 8 + (rng.next() * f64::from(length)) as u32).min(length)
            };
            Obj {
                start,
                end,
                x: rng.range(0.0, 600.0),
                y: rng.range(0.0, 400.0),
                vx: rng.range(-6.0, 6.0),
                vy: rng.range(-4.0, 4.0),
                w: rng.range(20.0, 60.0),
                h: rng.range(30.0, 90.0),
                a: rng.range(-1.5, 1.5),
                va: rng.range(-0.08, 0.08),
                class: if mot17 && i == 7 {
                    7
                } else if mot17 && i == 8 {
                    12
                } else {
                    1
                },
                zero: mot17 && i == 6,
            }
        })
        .collect();
    let empty = length / 2..length / 2 + 3;
    let swap_at = length / 3;
    let mut gt = String::new();
    let mut tracker = String::new();
    let fmt_box = |x: f64, y: f64, w: f64, h: f64, a: f64| -> String {
        if oriented {
            let (s, c) = a.sin_cos();
            let corners: Vec<String> = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
                .iter()
                .flat_map(|(u, v)| {
                    let (dx, dy) = (u * w, v * h);
                    [
                        format!("{:.4}", x + dx * c - dy * s),
                        format!("{:.4}", y + dx * s + dy * c),
                    ]
                })
                .collect();
            corners.join(",")
        } else {
            format!("{:.4},{:.4},{:.4},{:.4}", x - w / 2.0, y - h / 2.0, w, h)
        }
    };
    for f in 1..=length {
        if empty.contains(&f) {
            continue;
        }
        for (i, o) in objs.iter().enumerate() {
            if f < o.start || f > o.end {
                continue;
            }
            let t = f64::from(f - o.start);
            let (x, y, a) = (o.x + o.vx * t, o.y + o.vy * t, o.a + o.va * t);
            let conf = if o.zero { 0 } else { 1 };
            let gt_id = i + 1;
            if oriented {
                gt.push_str(&format!(
                    "{f},{gt_id},{},{conf},0\n",
                    fmt_box(x, y, o.w, o.h, a)
                ));
            } else {
                gt.push_str(&format!(
                    "{f},{gt_id},{},{conf},{},1\n",
                    fmt_box(x, y, o.w, o.h, a),
                    o.class
                ));
            }
            if rng.next() < 0.12 {
                continue; // missed
            }
            // Ids: objects 0 and 1 swap at `swap_at`; object 2's track fragments (a new id) after 2/3 of the run.
            let mut id = 100 + i;
            if f >= swap_at && i < 2 {
                id = 101 - i;
            }
            if i == 2 && f > 2 * length / 3 {
                id = 200;
            }
            let jitter = |r: &mut Rng, s: f64| r.range(-s, s);
            let b = fmt_box(
                x + jitter(&mut rng, 4.0),
                y + jitter(&mut rng, 4.0),
                o.w * (1.0 + jitter(&mut rng, 0.1)),
                o.h * (1.0 + jitter(&mut rng, 0.1)),
                a + jitter(&mut rng, 0.05),
            );
            let score = rng.range(0.3, 1.0);
            if oriented {
                tracker.push_str(&format!("{f},{id},{b},{score:.4},0\n"));
            } else {
                tracker.push_str(&format!("{f},{id},{b},{score:.4},-1,-1,-1\n"));
            }
        }
        // False positives, with ids of their own.
        if rng.next() < 0.3 {
            let b = fmt_box(
                rng.range(0.0, 600.0),
                rng.range(0.0, 400.0),
                rng.range(20.0, 50.0),
                rng.range(20.0, 50.0),
                rng.range(-1.0, 1.0),
            );
            let id = 300 + (f % 4);
            if oriented {
                tracker.push_str(&format!("{f},{id},{b},0.3000,0\n"));
            } else {
                tracker.push_str(&format!("{f},{id},{b},0.3000,-1,-1,-1\n"));
            }
        }
    }
    MotSeq {
        name: name.into(),
        gt,
        tracker,
        length,
    }
}

#[test]
fn mot_metrics_equal_trackeval_on_synthetic_sequences_with_swaps_fragments_and_empty_frames() {
    for (benchmark, mot17) in [("mot15", false), ("mot17", true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut seqs: Vec<MotSeq> = (1..=3)
            .map(|s| synthetic_sequence(s, &format!("synth-{s}"), 40 + 10 * s as u32, false, mot17))
            .collect();
        // A sequence the tracker never saw (TrackEval's early return), and a one-frame one.
        let mut silent = synthetic_sequence(9, "silent", 12, false, mot17);
        silent.tracker.clear();
        seqs.push(silent);
        seqs.push(synthetic_sequence(10, "single", 1, false, mot17));
        let (gt_root, tr_root, args) = write_mot_split(dir.path(), &seqs);
        let ours = nsod_mot(&gt_root, &tr_root, benchmark, &dir.path().join("out"));
        let mut te_args = vec![benchmark.to_uppercase()];
        te_args.extend(args);
        let compared = assert_trackeval_parity(&ours, &trackeval_reference(&te_args, dir.path()));
        assert_eq!(compared, 6 * (12 * 19 + 3 + 22 + 6), "{benchmark}");
        let c = &ours["COMBINED"];
        // The scripted errors are there: a swap (2 switches) and a fragment (1) in each of the 3 long sequences.
        assert!(
            c["clear"]["IDSW"].as_f64().unwrap() >= 9.0,
            "{benchmark}: {}",
            c["clear"]
        );
        assert!(
            c["identity"]["IDF1"].as_f64().unwrap() < 0.95,
            "{benchmark}"
        );
    }
}

#[test]
fn oriented_mot_metrics_equal_trackevals_metric_classes_on_polygon_iou() {
    let dir = tempfile::tempdir().unwrap();
    let seqs: Vec<MotSeq> = (1..=3)
        .map(|s| synthetic_sequence(20 + s, &format!("obb-{s}"), 30 + 10 * s as u32, true, false))
        .collect();
    let (gt_root, tr_root, args) = write_mot_split(dir.path(), &seqs);
    let ours = nsod_mot(&gt_root, &tr_root, "mot15", &dir.path().join("out"));
    let mut te_args = vec!["oriented".to_string()];
    te_args.extend(args);
    let compared = assert_trackeval_parity(&ours, &trackeval_reference(&te_args, dir.path()));
    assert_eq!(compared, 4 * (12 * 19 + 3 + 22 + 6));
}

#[test]
fn bad_mot_files_are_named_with_the_line_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt.txt");
    std::fs::write(&gt, "1,1,10,10,20,20,1,1,1\n2,1,12,10,20,20,1,1,1\n").unwrap();
    let cases: [(&str, &str); 4] = [
        (
            "1,5,10,10,20,20,0.9,-1,-1,-1\n2,5,10,ten,20,20,0.9,-1,-1,-1\n",
            "t.txt:2: \"ten\" is not a number",
        ),
        (
            "1,5,10,10\n",
            "t.txt:1: 4 columns; a MOTChallenge tracker row has at least 7",
        ),
        (
            "1,5,10,10,20,20,0.9\n1,5,30,10,20,20,0.9\n",
            "t.txt: frame 1: id 5 appears twice",
        ),
        (
            "0,5,10,10,20,20,0.9\n",
            "t.txt:1: frame 0: frames count from 1",
        ),
    ];
    for (tracker, want) in cases {
        let t = dir.path().join("t.txt");
        std::fs::write(&t, tracker).unwrap();
        let (o, _, stderr) = eval(&[os("--mot"), gt.as_os_str(), os("--pred"), t.as_os_str()]);
        assert!(!o.status.success());
        let lines = error_lines(&stderr);
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(want), "{stderr}\nwant: {want}");
        assert!(lines[0].contains(&*t.to_string_lossy()), "{stderr}");
    }
    // Detection-only flags are refused, not ignored.
    let t = dir.path().join("t.txt");
    std::fs::write(&t, "1,5,10,10,20,20,0.9\n").unwrap();
    let (o, _, stderr) = eval(&[
        os("--mot"),
        gt.as_os_str(),
        os("--pred"),
        t.as_os_str(),
        os("--voc07"),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr.contains("--voc07") && stderr.contains("--mot"),
        "{stderr}"
    );
}
