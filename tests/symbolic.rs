//! End-to-end tests of the symbolic stage: `nsod rules check`, `nsod symbolic`, and rules inside `nsod infer`.

mod common;

use common::*;
use nsod_types::formats::jsonl::{ImagePredictions, JsonlWriter, read_all};
use nsod_types::{BBox, Detection};

#[test]
fn rules_check_prints_the_decision_table() {
    let out = nsod()
        .args(["rules", "check"])
        .arg(repo_root().join("rules/dota.pl"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "thresholds: near_factor 2, overlap_ratio 0.5, adjacent_factor 0.1, on_ratio 0.5"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("confidence_modifier/3: 33 pairs\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  boost    confidence_modifier(ship, harbor, 1.25)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  penalty  confidence_modifier(ship, bridge, 0.7)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("relation_modifier/4: 7 rules\n")
            && stdout.trim_end().ends_with("0 warnings"),
        "{stdout}"
    );
}

#[test]
fn rules_check_reports_errors_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pl");
    std::fs::write(
        &bad,
        "near_factor(2.0).\nconfidence_modifier(ship, harbor 1.25).\n",
    )
    .unwrap();
    let out = nsod().args(["rules", "check"]).arg(&bad).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(error_lines(&stderr).len(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: rules {}: line 2: syntax error",
            bad.display()
        )),
        "{stderr}"
    );
    let warn = dir.path().join("warn.pl");
    std::fs::write(&warn, "confidence_modifier(ship, crane, 1.2).\n").unwrap();
    let out = nsod().args(["rules", "check"]).arg(&warn).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: rules")
            && stderr.contains("class crane is not one of the model's classes"),
        "{stderr}"
    );
    assert!(stdout.trim_end().ends_with("1 warnings"), "{stdout}");
}

#[test]
fn symbolic_refines_a_predictions_file_and_explains_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.pl");
    std::fs::write(
        &rules,
        "confidence_modifier(ship, harbor, 1.25).\nconfidence_modifier(ship, bridge, 0.5).\n",
    )
    .unwrap();
    let pred = dir.path().join("predictions.jsonl");
    let mut w = JsonlWriter::create(&pred).unwrap();
    let det = |c: u32, name: &str, s: f32, b: [f32; 4]| {
        Detection::new(c, name, s, BBox::new(b[0], b[1], b[2], b[3]))
    };
    w.write(&ImagePredictions {
        image: "harbour.png".into(),
        width: 200,
        height: 200,
        detections: vec![
            det(1, "ship", 0.6, [0.0, 0.0, 10.0, 10.0]),
            det(7, "harbor", 0.5, [20.0, 0.0, 30.0, 10.0]),
        ],
        geo: None,
    })
    .unwrap();
    w.write(&ImagePredictions {
        image: "bridge.png".into(),
        width: 200,
        height: 200,
        detections: vec![
            det(1, "ship", 0.4, [0.0, 0.0, 10.0, 10.0]),
            det(8, "bridge", 0.9, [2.0, 0.0, 100.0, 10.0]),
        ],
        geo: None,
    })
    .unwrap();
    w.finish().unwrap();
    let out_dir = dir.path().join("out");
    let out = nsod()
        .args(["symbolic", "--pred"])
        .arg(&pred)
        .arg("--rules")
        .arg(&rules)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        format!(
            "2 images refined, 0 failed, 2 rule applications; output in {}",
            out_dir.display()
        )
    );
    let refined = read_all(&out_dir.join("predictions.jsonl")).unwrap();
    let scores = |i: usize| {
        refined[i]
            .detections
            .iter()
            .map(|d| (d.class_name.clone(), d.score))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        scores(0),
        vec![("ship".to_owned(), 0.75), ("harbor".to_owned(), 0.625)]
    );
    assert_eq!(
        scores(1),
        vec![("bridge".to_owned(), 0.9), ("ship".to_owned(), 0.2)]
    );
    let csv = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "image_name,action,rule_pair,object_1,conf_1_before,conf_1_after,object_2,conf_2_before,conf_2_after,suppressed_object,kept_object,kept_object_conf,reason"
    );
    assert_eq!(
        lines[1],
        "harbour.png,BOOST,\"confidence_modifier(ship, harbor, 1.25)\",harbor#1,0.500000,0.625000,ship#0,0.600000,0.750000,,,,"
    );
    assert_eq!(
        lines[2],
        "bridge.png,PENALTY,\"confidence_modifier(ship, bridge, 0.5)\",ship#0,0.400000,0.200000,bridge#1,0.900000,0.900000,ship#0,bridge#1,0.900000,"
    );
    let jsonl = std::fs::read_to_string(out_dir.join("report.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["rule"], "confidence_modifier(ship, harbor, 1.25)");
    assert_eq!(
        first["object_1"]["bbox"],
        serde_json::json!([20.0, 0.0, 30.0, 10.0])
    );

    // A missing rules file: one error line, exit 2, nothing written.
    let out = nsod()
        .args(["symbolic", "--pred"])
        .arg(&pred)
        .args(["--rules", "/nonexistent/rules.pl", "--out"])
        .arg(dir.path().join("o2"))
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr.trim_end(),
        "error: rules /nonexistent/rules.pl: No such file or directory (os error 2)"
    );
    assert!(!dir.path().join("o2").exists());
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn infer_applies_the_dota_rules_by_default_and_not_with_no_symbolic() {
    let lib = ort_lib();
    let data = shared_data();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("crop.png");
    std::fs::copy(data.join("P0006_crop1024_x0_y0.png"), &input).unwrap();
    let out_dir = dir.path().join("out");
    let out = infer(&lib, &input, &out_dir).output().unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let raw = read_all(&out_dir.join("predictions_raw.jsonl")).unwrap();
    let refined = read_all(&out_dir.join("predictions.jsonl")).unwrap();
    assert_eq!(raw[0].detections.len(), 107);
    assert_eq!(refined[0].detections.len(), 107);
    let csv = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
    let rows = csv.lines().count() - 1;
    assert!(
        rows > 0,
        "vehicles next to each other should fire the vehicle rules"
    );
    // Only boosts here (large and small vehicles together): no score went down, some went up.
    let sum = |r: &ImagePredictions| r.detections.iter().map(|d| f64::from(d.score)).sum::<f64>();
    assert!(sum(&refined[0]) > sum(&raw[0]));
    assert!(csv.lines().skip(1).all(|l| l.contains(",BOOST,")), "{csv}");

    let off = dir.path().join("off");
    let out = infer(&lib, &input, &off)
        .arg("--no-symbolic")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!off.join("report.csv").exists() && !off.join("predictions_raw.jsonl").exists());
    let plain = read_all(&off.join("predictions.jsonl")).unwrap();
    assert_eq!(sum(&plain[0]), sum(&raw[0]));
}

/// The hostile rule bases of crates/symbolic/tests/hostile through the binary: `rules check` and `symbolic` exit 2
/// with one error line naming the file, and nothing is created or deleted in the working directory.
#[test]
fn hostile_rule_bases_are_configuration_errors_and_touch_nothing() {
    let hostile = repo_root().join("crates/symbolic/tests/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&hostile)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 12);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("canary"), "alive").unwrap();
    let pred = dir.join("p.jsonl");
    let mut w = JsonlWriter::create(&pred).unwrap();
    w.write(&ImagePredictions {
        image: "a.png".into(),
        width: 10,
        height: 10,
        detections: vec![],
        geo: None,
    })
    .unwrap();
    w.finish().unwrap();
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    for f in &files {
        let rules = dir.join(f.file_name().unwrap());
        let body = std::fs::read_to_string(f)
            .unwrap()
            .replace("@DIR@", &dir.to_string_lossy());
        std::fs::write(&rules, body).unwrap();
        let before = listing();
        let out = nsod()
            .current_dir(dir)
            .args(["rules", "check"])
            .arg(&rules)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", f.display());
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].starts_with(&format!("error: rules {}: ", rules.display())),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(listing(), before, "{}", f.display());
        let out = nsod()
            .current_dir(dir)
            .args(["symbolic", "--pred"])
            .arg(&pred)
            .arg("--rules")
            .arg(&rules)
            .arg("--out")
            .arg(dir.join("out"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", f.display());
        assert!(!dir.join("out").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("canary")).unwrap(),
            "alive"
        );
        std::fs::remove_file(&rules).unwrap();
    }
    // The next run is unaffected.
    let out = nsod()
        .args(["rules", "check"])
        .arg(repo_root().join("rules/dota.pl"))
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// Scene rules and size plausibility through `nsod symbolic`: the reasons in report.csv, and `rules check` saying
/// whether the size rules are active.
#[test]
fn symbolic_runs_scene_rules_and_size_rules_with_a_gsd() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.pl");
    std::fs::write(
        &rules,
        "size_range(small_vehicle, 2, 7).\nadjust(H, 0.8, no_ship_near) :- detection(H, harbor, _, _, _, _, _, _), \\+ (relation(located_near, H, S), detection(S, ship, _, _, _, _, _, _)).\n",
    )
    .unwrap();
    let out = nsod()
        .args(["rules", "check"])
        .arg(&rules)
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(
            "size_range/3: 1 classes, size_penalty 0.5; inactive: no ground sample distance (--gsd)"
        ) && stdout.contains(
            "adjust/3: scene rules, queried once per image; relations they use: located_near"
        ),
        "{stdout}"
    );
    let pred = dir.path().join("p.jsonl");
    let mut w = JsonlWriter::create(&pred).unwrap();
    let det = |c: u32, name: &str, s: f32, b: [f32; 4]| {
        Detection::new(c, name, s, BBox::new(b[0], b[1], b[2], b[3]))
    };
    w.write(&ImagePredictions {
        image: "quay.png".into(),
        width: 500,
        height: 500,
        detections: vec![
            det(7, "harbor", 0.5, [0.0, 0.0, 40.0, 30.0]),
            det(10, "small vehicle", 0.6, [300.0, 300.0, 340.0, 310.0]), // 40 px = 20 m at 0.5 m/px
        ],
        geo: None,
    })
    .unwrap();
    w.finish().unwrap();
    let out_dir = dir.path().join("out");
    let out = nsod()
        .args(["symbolic", "--gsd", "0.5", "--pred"])
        .arg(&pred)
        .arg("--rules")
        .arg(&rules)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("1 images refined, 0 failed, 2 rule applications"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(
        rows,
        vec![
            "quay.png,PENALTY,\"size_range(small_vehicle, 2, 7)\",small vehicle#1,0.600000,0.300000,,,,,,,\"long side 20.00 m (40.0 px at 0.5 m/px) is above the small_vehicle range [2, 7] m\"",
            "quay.png,PENALTY,adjust/3,harbor#0,0.500000,0.400000,,,,,,,no_ship_near",
        ]
    );
    let refined = read_all(&out_dir.join("predictions.jsonl")).unwrap();
    let scores: Vec<f32> = refined[0].detections.iter().map(|d| d.score).collect();
    assert_eq!(scores, vec![0.4, 0.3]);
    // A bad GSD is a configuration error.
    let out = nsod()
        .args(["symbolic", "--gsd", "0", "--pred"])
        .arg(&pred)
        .arg("--rules")
        .arg(&rules)
        .arg("--out")
        .arg(dir.path().join("o3"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("--gsd (rules.gsd): 0: the ground sample distance must be a positive number")
    );
}

/// A scene rule that loops on every image of a real run: each image keeps its table-only result, the failures are
/// counted in nsod_prolog_query_failures_total, and the run finishes with exit 0.
#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn infer_survives_scene_rules_that_fail_and_counts_them() {
    let lib = ort_lib();
    let data = shared_data();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for name in ["a.png", "b.png"] {
        std::fs::copy(data.join("P0006_crop1024_x0_y0.png"), images.join(name)).unwrap();
    }
    let rules = dir.path().join("spin.pl");
    std::fs::write(
        &rules,
        "confidence_modifier(large_vehicle, small_vehicle, 1.1).\nspin :- spin.\nadjust(I, 0.5, never) :- detection(I, large_vehicle, _, _, _, _, _, _), spin.\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let textfile = dir.path().join("nsod.prom");
    let out = infer(&lib, &images, &out_dir)
        .arg("--rules")
        .arg(&rules)
        .arg("--metrics-textfile")
        .arg(&textfile)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("2 images processed, 0 failed"),
        "{stdout}"
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("scene rules skipped for this image"))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].starts_with("warning: a.png: scene rules skipped for this image: rules ")
            && warnings[0].contains("adjust/3 did not finish within"),
        "{stderr}"
    );
    let metrics = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        metrics.contains("nsod_prolog_query_failures_total{error_type=\"limit\"} 2"),
        "{metrics}"
    );
    // The table rules still applied: every report row is the pair boost, none is a scene rule.
    let csv = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
    assert!(csv.lines().count() > 1);
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.contains("confidence_modifier(large_vehicle, small_vehicle, 1.1)"))
    );
}
