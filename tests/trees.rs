//! The tree-crown model (issue 35) on its test images: the committed evaluation table exactly, nsod's COCO figures
//! equal to pycocotools' on the same predictions, and the training's scraped series equal to its results.csv.

mod common;

use common::{nsod, ort_lib, repo_root, text};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// What `scripts/trees/evaluate.sh` committed of an `eval.json`: each set's label, detections and COCO summary,
/// and the bootstrap.
fn table(eval: &Value) -> Value {
    json!({
        "runs": eval["runs"].as_array().unwrap().iter().map(|r| json!({
            "label": r["label"],
            "detections": r["detections"],
            "coco": r["coco"],
        })).collect::<Vec<_>>(),
        "bootstrap": eval["bootstrap"],
    })
}

/// A predictions.jsonl as COCO results against `gt` (image ids by file name; `bbox` corners to x, y, w, h).
fn coco_results(predictions: &Path, gt: &Value, out: &Path) {
    let ids: std::collections::HashMap<&str, u64> = gt["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["file_name"].as_str().unwrap(), i["id"].as_u64().unwrap()))
        .collect();
    let mut results = Vec::new();
    for line in std::fs::read_to_string(predictions).unwrap().lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let id = ids[rec["image"].as_str().unwrap()];
        for d in rec["detections"].as_array().unwrap() {
            let b: Vec<f64> = d["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            results.push(json!({
                "image_id": id,
                "category_id": d["class_id"],
                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                "score": d["score"],
            }));
        }
    }
    std::fs::write(out, serde_json::to_string(&results).unwrap()).unwrap();
}

#[test]
fn the_tree_model_on_its_test_images_gives_the_committed_table_and_pycocotools_agrees() {
    let model = nsod_testkit::tree_model();
    let images = [
        nsod_testkit::sample("neon_osbs_10cm.tif"),
        nsod_testkit::sample("neon_soap_10cm.png"),
    ];
    let gt = repo_root().join("models/trees/test-gt.json");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // As scripts/trees/evaluate.sh runs it.
    let o = nsod()
        .args([
            "infer",
            "--conf",
            "0.001",
            "--gsd",
            "0.1",
            "--no-metrics",
            "-q",
        ])
        .arg("--ort-lib")
        .arg(ort_lib())
        .args(&images)
        .arg("--model")
        .arg(&model)
        .arg("--rules")
        .arg(repo_root().join("rules/trees.pl"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let out = dir.path().join("eval");
    let o = nsod()
        .args(["eval", "--max-dets", "10000", "--bootstrap", "1000"])
        .args(["--bootstrap-block", "100", "--bootstrap-seed", "0"])
        .arg("--gt")
        .arg(&gt)
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("paired block bootstrap (1000 replicates of 32 blocks of 100 px, seed 0)"),
        "{stdout}"
    );
    let eval = read_json(&out.join("eval.json"));
    let committed = read_json(&repo_root().join("models/trees/eval-test.json"));
    assert_eq!(
        table(&eval),
        committed,
        "the committed evaluation table (scripts/trees/evaluate.sh) differs"
    );
    // pycocotools on the same predictions, before and after the rules, with the same maxDets.
    let gt_json = read_json(&gt);
    let py = common::python(&["pycocotools.cocoeval"]);
    for (k, file) in ["predictions_raw.jsonl", "predictions.jsonl"]
        .into_iter()
        .enumerate()
    {
        let results = dir.path().join(format!("results-{k}.json"));
        coco_results(&run.join(file), &gt_json, &results);
        let o = Command::new(&py)
            .arg(repo_root().join("scripts/pycocotools_eval.py"))
            .arg(&gt)
            .arg(&results)
            .args(["--max-dets", "10000"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
        let reference: Value = serde_json::from_slice(&o.stdout).unwrap();
        for (key, ours) in eval["runs"][k]["coco"].as_object().unwrap() {
            let (a, b) = (
                ours.as_f64().unwrap(),
                reference["coco"][key].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-6,
                "{file}: {key}: nsod {a}, pycocotools {b}"
            );
        }
    }
}

/// One row of results.csv by header name.
fn results_rows() -> Vec<std::collections::HashMap<String, f64>> {
    let text = std::fs::read_to_string(repo_root().join("models/trees/results.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|h| h.trim().to_owned())
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(|v| v.trim().parse::<f64>().unwrap()))
                .collect()
        })
        .collect()
}

#[test]
fn the_scraped_training_series_equal_results_csv_at_every_scrape() {
    let rows = results_rows();
    let planned = 100.0;
    assert_eq!(rows.len(), 100, "epochs in results.csv");
    let scrapes = read_json(&repo_root().join("models/trees/scrapes.json"));
    let series = scrapes.as_array().unwrap();
    // Each scrape's epoch; then every other series at the same timestamp must be that epoch's row.
    let find = |name: &str, label: Option<(&str, &str)>| -> Vec<(f64, f64)> {
        let s = series
            .iter()
            .find(|s| {
                s["metric"]["__name__"] == name && label.is_none_or(|(k, v)| s["metric"][k] == v)
            })
            .unwrap_or_else(|| panic!("no series {name} {label:?} in scrapes.json"));
        s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v[0].as_f64().unwrap(),
                    v[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    let epochs = find("nsod_training_epoch", None);
    assert!(epochs.len() >= 500, "{} scrapes", epochs.len());
    let seen: std::collections::BTreeSet<u64> = epochs.iter().map(|e| e.1 as u64).collect();
    assert_eq!(seen.len(), 100, "epochs seen by the scrapes");
    // (series, its label, the results.csv column)
    type Check = (
        &'static str,
        Option<(&'static str, &'static str)>,
        &'static str,
    );
    let checks: [Check; 10] = [
        (
            "nsod_training_loss",
            Some(("component", "train_box")),
            "train/box_loss",
        ),
        (
            "nsod_training_loss",
            Some(("component", "train_cls")),
            "train/cls_loss",
        ),
        (
            "nsod_training_loss",
            Some(("component", "train_dfl")),
            "train/dfl_loss",
        ),
        (
            "nsod_training_loss",
            Some(("component", "val_box")),
            "val/box_loss",
        ),
        (
            "nsod_validation_map",
            Some(("iou", "0.5")),
            "metrics/mAP50(B)",
        ),
        (
            "nsod_validation_map",
            Some(("iou", "0.5:0.95")),
            "metrics/mAP50-95(B)",
        ),
        ("nsod_validation_precision", None, "metrics/precision(B)"),
        ("nsod_validation_recall", None, "metrics/recall(B)"),
        ("nsod_learning_rate", Some(("param_group", "pg0")), "lr/pg0"),
        ("nsod_learning_rate", Some(("param_group", "pg2")), "lr/pg2"),
    ];
    let mut compared = 0;
    for (name, label, column) in checks {
        let values: std::collections::HashMap<u64, f64> = find(name, label)
            .into_iter()
            .map(|(t, v)| ((t * 1000.0) as u64, v))
            .collect();
        for (t, epoch) in &epochs {
            let Some(v) = values.get(&((t * 1000.0) as u64)) else {
                continue;
            };
            let row = &rows[*epoch as usize - 1];
            assert_eq!(*v, row[column], "{name} {label:?} at epoch {epoch}");
            compared += 1;
        }
    }
    assert!(compared >= 10 * 500, "{compared} samples compared");
    // The ETA at each scrape: the mean epoch duration so far times the epochs left.
    let eta: std::collections::HashMap<u64, f64> = find("nsod_training_eta_seconds", None)
        .into_iter()
        .map(|(t, v)| ((t * 1000.0) as u64, v))
        .collect();
    for (t, epoch) in &epochs {
        let e = *epoch as usize;
        let Some(v) = eta.get(&((t * 1000.0) as u64)) else {
            continue;
        };
        let mean = rows[e - 1]["time"] / e as f64;
        let want = mean * (planned - *epoch);
        assert!(
            (v - want).abs() <= 1e-6 * want.max(1.0),
            "ETA at epoch {epoch}: {v}, from results.csv {want}"
        );
    }
}
