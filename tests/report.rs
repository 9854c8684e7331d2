//! `nsod report` in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (tests/browser/check.mjs) over the report of a real run on a sample aerial image; a 2,000-image run folder
//! paged; a damaged run folder reported with a visible warning. Screenshots are kept in `$NSOD_ARTIFACTS/report`
//! (CI sets it) or the test's temporary folder.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs tests/browser/check.mjs over a report and returns what it saw.
fn browse(report: &Path, k: Option<usize>, shots: &Path) -> Value {
    let root = repo_root();
    let module = root.join("tests/browser/node_modules/playwright-core");
    assert!(
        module.is_dir(),
        "missing test asset: tests/browser/node_modules: run scripts/setup.sh --tests"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "missing test tool: {chromium}: run scripts/setup.sh --tests (Debian package chromium)"
    );
    let o = Command::new("node")
        .arg(root.join("tests/browser/check.mjs"))
        .arg(report)
        .arg(k.map_or("-".to_string(), |k| k.to_string()))
        .arg(shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let (out, err) = text(&o);
    assert!(o.status.success(), "check.mjs failed:\n{out}\n{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["console_errors"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["failed_requests"], serde_json::json!([]), "{v:#}");
    v
}

fn report(run: &Path, out: &Path, extra: &[&str]) -> (String, String) {
    let o = nsod()
        .arg("report")
        .arg(run)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "nsod report failed:\n{}\n{}", t.0, t.1);
    t
}

/// Where screenshots are kept: `$NSOD_ARTIFACTS/report/NAME`, or under `tmp`.
fn shots_dir(tmp: &Path, name: &str) -> PathBuf {
    match std::env::var_os("NSOD_ARTIFACTS") {
        Some(a) => PathBuf::from(a).join("report").join(name),
        None => tmp.join("shots").join(name),
    }
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_report_of_a_real_run_shows_its_counts_rules_and_classes_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // The 2299x2472 sample at its 0.1 m per pixel: planes and harbors the size rules demote.
    let o = infer(&ort_lib(), &sample("neon_yell_2019_10cm.png"), &run)
        .args(["--no-metrics", "-q", "--gsd", "0.1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let site = dir.path().join("site");
    let (out, _) = report(&run, &site, &[]);
    assert!(out.contains("1 pictures made, 0 reused"), "{out}");

    // What the run folder says.
    let records = jsonl(&run.join("predictions.jsonl"));
    let changes = jsonl(&run.join("report.jsonl"));
    let dets = records[0]["detections"].as_array().unwrap();
    let mut per_class: BTreeMap<String, u64> = BTreeMap::new();
    for d in dets {
        *per_class
            .entry(d["class_name"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(!changes.is_empty(), "the sample has rule changes to show");
    assert!(per_class.len() >= 2, "classes to toggle: {per_class:?}");

    let v = browse(&site, Some(0), &shots_dir(dir.path(), "sample"));
    let index = &v["pages"]["index"];
    assert_eq!(index["images"], 1);
    assert_eq!(index["detections"], dets.len());
    assert_eq!(index["changes"], changes.len());
    assert_eq!(index["per_class"], serde_json::json!(per_class));
    assert_eq!(index["warnings"], serde_json::json!([]));
    assert_eq!(v["pages"]["gallery"]["thumbnails"], 1);
    assert_eq!(v["pages"]["gallery"]["broken"], 0);

    // The viewer: every box, the hovered refined box explained by its own rule, the class toggle.
    let view = &v["pages"]["view"];
    assert_eq!(view["boxes"], dets.len());
    assert_eq!(view["picture"], true);
    let hovered = view["hovered"].as_u64().expect("a refined box was hovered") as usize;
    let tip = view["tooltip"].as_str().unwrap();
    let own: Vec<&Value> = changes
        .iter()
        .filter(|c| {
            [&c["object_1"], &c["object_2"]]
                .iter()
                .any(|o| o["index"].as_u64() == Some(hovered as u64))
        })
        .collect();
    assert!(!own.is_empty());
    for c in &own {
        assert!(
            tip.contains(c["rule"].as_str().unwrap()),
            "tooltip {tip:?} lacks {}",
            c["rule"]
        );
    }
    let class = dets[hovered]["class_name"].as_str().unwrap();
    assert!(tip.starts_with(&format!("{class} #{hovered}")), "{tip}");
    let raw = jsonl(&run.join("predictions_raw.jsonl"));
    let raw_score = raw[0]["detections"][hovered]["score"].as_f64().unwrap();
    assert!(tip.contains(&format!("raw {raw_score:.4}")), "{tip}");
    let toggled = view["toggle_class"].as_str().unwrap();
    assert_eq!(view["visible_before"], per_class[toggled]);
    assert_eq!(view["visible_after"], 0, "the class toggle hides its boxes");
    assert_eq!(view["shown_after"], dets.len() as u64 - per_class[toggled]);

    let rules = &v["pages"]["rules"];
    assert_eq!(rules["rows"], changes.len());
    assert_eq!(rules["sorted_desc"], true);
    assert_eq!(rules["filtered_match"], true);

    let shots = shots_dir(dir.path(), "sample");
    for shot in ["index.png", "gallery.png", "viewer.png", "viewer-hover.png"] {
        let len = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(len > 10_000, "screenshot {shot}: {len} bytes");
    }

    // A second report reuses the pictures.
    let (out, _) = report(&run, &site, &[]);
    assert!(out.contains("0 pictures made, 1 reused"), "{out}");
}

/// A run folder of `n` small images written by hand (two detections each, a rule change on every tenth).
fn synthetic_run(dir: &Path, n: usize) -> PathBuf {
    let run = dir.join("run");
    let images = dir.join("images");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    let mut preds = String::new();
    let mut changes = String::new();
    for i in 0..n {
        let name = format!("img_{i:05}.png");
        image::RgbImage::from_fn(96, 64, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 3) as u8, (i % 251) as u8])
        })
        .save(images.join(&name))
        .unwrap();
        preds.push_str(&format!(
            r#"{{"image":"{name}","width":96,"height":64,"detections":[{{"class_id":0,"class_name":"plane","score":0.8,"bbox":[10,10,30,20]}},{{"class_id":1,"class_name":"ship","score":0.4,"bbox":[50,30,70,50],"obb":[60,40,20,20,0.5]}}]}}"#
        ));
        preds.push('\n');
        if i % 10 == 0 {
            changes.push_str(&format!(
                r#"{{"action":"PENALTY","factor":0.5,"image":"{name}","object_1":{{"index":1,"class_name":"ship","conf_before":0.8,"conf_after":0.4}},"object_2":null,"reason":"a ship on land","rule":"on_land(ship)"}}"#
            ));
            changes.push('\n');
        }
    }
    std::fs::write(run.join("predictions.jsonl"), preds).unwrap();
    std::fs::write(run.join("report.jsonl"), changes).unwrap();
    std::fs::write(
        run.join("run.json"),
        serde_json::json!({"complete": true, "inputs": [images], "counts": {"failed": 0},
                           "failures": [], "nsod": "0.1.0"})
        .to_string(),
    )
    .unwrap();
    run
}

#[test]
fn two_thousand_images_are_paged_and_their_pictures_made_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = synthetic_run(dir.path(), 2000);
    let site = dir.path().join("site");
    let (out, _) = report(&run, &site, &[]);
    assert!(
        out.contains("report: 2000 images (20 gallery pages), 4000 detections, 200 rule changes; 2000 pictures made, 0 reused"),
        "{out}"
    );
    let mut largest = (0, PathBuf::new());
    for sub in ["", "gallery", "view", "rules"] {
        for e in std::fs::read_dir(site.join(sub)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "html") {
                largest = largest.max((e.metadata().unwrap().len(), p));
            }
        }
    }
    assert!(
        largest.0 < 1 << 20,
        "{} is {} bytes",
        largest.1.display(),
        largest.0
    );
    let page = std::fs::read_to_string(site.join("gallery/20.html")).unwrap();
    assert_eq!(page.matches("<li>").count(), 100);
    assert!(page.contains("img_01999.png") && !page.contains("img_01899.png"));
    assert!(!site.join("gallery/21.html").exists());
    assert!(site.join("view/1999.html").exists() && site.join("data/1999.js").exists());
    let (out, _) = report(&run, &site, &[]);
    assert!(out.contains("0 pictures made, 2000 reused"), "{out}");
}

#[test]
fn a_damaged_run_folder_gives_a_report_with_a_visible_warning() {
    let dir = tempfile::tempdir().unwrap();
    let run = synthetic_run(dir.path(), 3);
    // run.json gone, a record cut in the middle (a crash while writing), a garbage rule line, an image moved.
    std::fs::remove_file(run.join("run.json")).unwrap();
    let preds = std::fs::read_to_string(run.join("predictions.jsonl")).unwrap();
    std::fs::write(run.join("predictions.jsonl"), &preds[..preds.len() - 40]).unwrap();
    let mut rules = std::fs::read_to_string(run.join("report.jsonl")).unwrap();
    rules.push_str("{\"action\": \"BOOST\", \"image\n");
    std::fs::write(run.join("report.jsonl"), rules).unwrap();
    let images = dir.path().join("images");
    std::fs::remove_file(images.join("img_00001.png")).unwrap();
    let site = dir.path().join("site");
    let (out, err) = report(&run, &site, &["--images", images.to_str().unwrap()]);
    assert!(
        out.contains("report: 2 images (1 gallery pages), 4 detections, 1 rule changes; 1 pictures made, 0 reused"),
        "{out}"
    );
    let expected = [
        format!(
            "{}: missing; the summary lacks the run's configuration",
            run.join("run.json").display()
        ),
        format!(
            "{}:3: EOF while parsing a list",
            run.join("predictions.jsonl").display()
        ),
        format!(
            "{}:2: EOF while parsing a string",
            run.join("report.jsonl").display()
        ),
        "img_00001.png: no picture (the image is not found where the run read it: use --images); its boxes are shown alone".to_string(),
    ];
    for w in &expected {
        assert!(
            err.lines().any(|l| l.starts_with(&format!("warning: {w}"))),
            "{w:?} not in\n{err}"
        );
    }
    let v = browse(&site, Some(1), &shots_dir(dir.path(), "damaged"));
    let index = &v["pages"]["index"];
    assert_eq!(index["warning_visible"], true);
    let shown: Vec<&str> = index["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(shown.len(), 4, "{shown:?}");
    for (w, s) in expected.iter().zip(&shown) {
        assert!(s.starts_with(w.as_str()), "{s:?} vs {w:?}");
    }
    assert_eq!(index["images"], 2);
    // The image without a picture still shows its boxes.
    assert_eq!(v["pages"]["view"]["boxes"], 2);
    assert_eq!(v["pages"]["view"]["picture"], false);
}

#[test]
fn a_missing_run_folder_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = nsod()
        .arg("report")
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        error_lines(&err),
        vec![format!("error: {}: not a folder", dir.path().join("nope").display()).as_str()]
    );
}
