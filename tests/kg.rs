//! End-to-end tests of the knowledge graph on a real aerial image (the 2299x2472 sample at a low threshold: 120
//! planes and harbors the model sees in the shrubs, dense enough for every spatial relation).

mod common;

use common::*;
use nsod_types::Detection;
use nsod_types::detection::class_atom;
use nsod_types::formats::jsonl::read_all;
use nsod_types::geometry::rotated_intersection_area;
use std::collections::BTreeMap;

/// Relation counts by (relation, subject class, object class), computed here pair by pair from the definitions.
fn brute_force_counts(dets: &[Detection]) -> BTreeMap<(String, String, String), u64> {
    let mut out: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let o: Vec<_> = dets.iter().map(|d| d.obb.expect("OBB model")).collect();
    let gap = |i: usize, j: usize| -> f64 {
        let (a, b) = (o[i].corners(), o[j].corners());
        let mut best = f64::MAX;
        for (ps, qs) in [(a, b), (b, a)] {
            for p in ps {
                for k in 0..4 {
                    let (s0, s1) = (qs[k], qs[(k + 1) % 4]);
                    let (vx, vy) = (s1.x - s0.x, s1.y - s0.y);
                    let t = (((p.x - s0.x) * vx + (p.y - s0.y) * vy) / (vx * vx + vy * vy))
                        .clamp(0.0, 1.0);
                    best = best.min(
                        ((p.x - s0.x - t * vx).powi(2) + (p.y - s0.y - t * vy).powi(2)).sqrt(),
                    );
                }
            }
        }
        best
    };
    for i in 0..dets.len() {
        for j in 0..dets.len() {
            if i == j {
                continue;
            }
            let key = |r: &str| {
                (
                    r.to_owned(),
                    class_atom(&dets[i].class_name),
                    class_atom(&dets[j].class_name),
                )
            };
            let (ci, cj) = (o[i].center(), o[j].center());
            let dist = ((ci.x - cj.x).powi(2) + (ci.y - cj.y).powi(2)).sqrt() as f32;
            if dist < 2.0 * (o[i].diagonal() + o[j].diagonal()) / 2.0 {
                *out.entry(key("located_near")).or_default() += 1;
            }
            let inter = rotated_intersection_area(&o[i], &o[j]);
            if inter > 0.0 {
                *out.entry(key("overlaps")).or_default() += 1;
                if inter / o[i].area() >= 0.5 {
                    *out.entry(key("located_on")).or_default() += 1;
                }
            } else if gap(i, j) <= 0.1 * f64::from(o[i].diagonal()) {
                *out.entry(key("adjacent_to")).or_default() += 1;
            }
        }
    }
    out
}

#[test]
fn infer_kg_on_an_aerial_image_matches_independent_counts_and_loads_in_both_prologs() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = infer(&lib, &sample("neon_yell_2019_10cm.png"), &out_dir)
        .args(["--kg", "--no-symbolic", "--conf", "0.05"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let records = read_all(&out_dir.join("predictions.jsonl")).unwrap();
    let dets = &records[0].detections;
    assert!(dets.len() > 100);

    let facts_path = out_dir.join("kg_facts.pl");
    let facts = std::fs::read_to_string(&facts_path).unwrap();
    let g = nsod_kg::export::parse_facts(&facts).unwrap();
    let want = brute_force_counts(dets);
    let got: BTreeMap<_, _> = g
        .counts
        .iter()
        .filter(|(k, _)| !k.0.starts_with("cooccurs"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(got, want);
    for relation in ["adjacent_to", "located_near", "located_on", "overlaps"] {
        assert!(want.keys().any(|k| k.0 == relation), "{relation}: {want:?}");
    }
    let n = |c: &str| {
        dets.iter()
            .filter(|d| class_atom(&d.class_name) == c)
            .count() as u64
    };
    assert!(n("harbor") > 0 && n("plane") > 0);
    assert_eq!(
        g.count("cooccurs", "harbor", "plane"),
        n("harbor") * n("plane")
    );

    // The facts load in scryer (through nsod) and in SWI-Prolog with the same number of facts.
    let n_facts = facts.lines().filter(|l| l.starts_with("fact(")).count();
    let scryer = nsod_symbolic::count_solutions(
        &facts_path,
        "fact",
        4,
        &nsod_symbolic::Sandbox::new(nsod_symbolic::WorkerCommand::new(
            env!("CARGO_BIN_EXE_nsod"),
            ["rules-worker"],
        )),
    )
    .unwrap();
    assert_eq!(scryer, n_facts);
    let o = tool("swipl")
        .args([
            "-q",
            "-g",
            "aggregate_all(count, fact(_,_,_,_), N), write(N), nl",
            "-t",
            "halt",
        ])
        .arg(&facts_path)
        .output()
        .expect("swipl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        n_facts.to_string()
    );

    // Scene graphs: one line for the image, with one node per detection.
    let scenes = std::fs::read_to_string(out_dir.join("scene_graphs.jsonl")).unwrap();
    let scene: serde_json::Value = serde_json::from_str(scenes.lines().next().unwrap()).unwrap();
    assert_eq!(scene["nodes"].as_array().unwrap().len(), dets.len());
    assert_eq!(
        scene["edges"].as_array().unwrap().len() as u64,
        want.values().sum::<u64>()
    );
    for svg in std::fs::read_dir(out_dir.join("kg_svg")).unwrap() {
        let text = std::fs::read_to_string(svg.unwrap().path()).unwrap();
        roxmltree::Document::parse(&text).expect("well-formed SVG");
    }

    // nsod kg on the predictions gives the same facts; suggestions pass rules check.
    let kg_dir = dir.path().join("kg");
    let out = nsod()
        .args(["kg", "--pred"])
        .arg(out_dir.join("predictions.jsonl"))
        .arg("--out")
        .arg(&kg_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_to_string(kg_dir.join("kg_facts.pl")).unwrap(),
        facts
    );
    let suggested = dir.path().join("suggested.pl");
    let out = nsod()
        .args(["rules", "suggest", "--facts"])
        .arg(&facts_path)
        .arg("--out")
        .arg(&suggested)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let out = nsod()
        .args(["rules", "check"])
        .arg(&suggested)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}
