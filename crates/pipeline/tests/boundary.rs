//! The pipeline's boundary, without ONNX Runtime: hand-built detections stand in for the detector, go through the
//! rules and the knowledge graph (`Worker::process_detections`), and the run folder sink writes exactly the
//! expected files. Data-driven: each case is a rule base, detections and what must come out.

use nsod_pipeline::sink::{RunInfo, RunSummary};
use nsod_pipeline::{Environment, Pipeline, PipelineConfig, RunDirOptions, RunDirSink, Sink};
use nsod_symbolic::{Sandbox, WorkerCommand};
use nsod_types::{BBox, ClassNames, Detection, ImageSize};
use std::path::Path;

fn env() -> Environment {
    Environment {
        runtime: None,
        sandbox: Sandbox::new(WorkerCommand::new(
            env!("CARGO_BIN_EXE_pipeline-rules-worker"),
            Vec::<String>::new(),
        )),
        default_rules: None,
    }
}

fn det(class: &str, score: f32, b: [f32; 4]) -> Detection {
    let id = ClassNames::dota_v1()
        .as_slice()
        .iter()
        .position(|c| c == class)
        .unwrap() as u32;
    Detection::new(id, class, score, BBox::new(b[0], b[1], b[2], b[3]))
}

struct Case {
    name: &'static str,
    rules: &'static str,
    gsd: Option<f64>,
    detections: Vec<Detection>,
    /// (class, refined score), best first.
    refined: Vec<(&'static str, f32)>,
    /// report.csv rows without the image name.
    rows: Vec<&'static str>,
    /// (relation, subject class, object class) of the scene graph.
    relations: Vec<(&'static str, &'static str, &'static str)>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pair boost near a harbour",
            rules: "confidence_modifier(ship, harbor, 1.25).\n",
            gsd: None,
            detections: vec![
                det("ship", 0.6, [0.0, 0.0, 10.0, 10.0]),
                det("harbor", 0.5, [20.0, 0.0, 30.0, 10.0]),
            ],
            refined: vec![("ship", 0.75), ("harbor", 0.625)],
            rows: vec![
                "BOOST,\"confidence_modifier(ship, harbor, 1.25)\",harbor#1,0.500000,0.625000,ship#0,0.600000,0.750000,,,,",
            ],
            relations: vec![
                ("located_near", "ship", "harbor"),
                ("located_near", "harbor", "ship"),
            ],
        },
        Case {
            name: "size penalty with a GSD, and a scene rule",
            rules: "size_range(small_vehicle, 2, 7).\nadjust(I, 0.5, alone) :- detection(I, ship, _, _, _, _, _, _), \\+ relation(located_near, I, _).\n",
            gsd: Some(0.5),
            detections: vec![
                det("small vehicle", 0.8, [0.0, 0.0, 40.0, 8.0]),
                det("ship", 0.4, [500.0, 500.0, 510.0, 510.0]),
            ],
            refined: vec![("small vehicle", 0.4), ("ship", 0.2)],
            rows: vec![
                "PENALTY,\"size_range(small_vehicle, 2, 7)\",small vehicle#0,0.800000,0.400000,,,,,,,\"long side 20.00 m (40.0 px at 0.5 m/px) is above the small_vehicle range [2, 7] m\"",
                "PENALTY,adjust/3,ship#1,0.400000,0.200000,,,,,,,alone",
            ],
            relations: vec![],
        },
    ]
}

fn run_case(case: &Case, dir: &Path) {
    let rules = dir.join("rules.pl");
    std::fs::write(&rules, case.rules).unwrap();
    let mut config = PipelineConfig::default();
    config.rules.file = Some(rules);
    config.rules.gsd = case.gsd;
    config.kg.enabled = true;
    let out = dir.join("out");
    config.output.out = out.clone();
    let (pipeline, _) = Pipeline::build(&config, &env(), None).unwrap();
    let mut worker = pipeline.worker().unwrap();
    let outcome =
        worker.process_detections("img.png", ImageSize::new(600, 600), case.detections.clone());
    let got: Vec<(String, f32)> = outcome
        .detections
        .iter()
        .map(|d| (d.class_name.clone(), d.score))
        .collect();
    let want: Vec<(String, f32)> = case
        .refined
        .iter()
        .map(|(c, s)| ((*c).to_owned(), *s))
        .collect();
    assert_eq!(got.len(), want.len(), "{}", case.name);
    for ((gc, gs), (wc, ws)) in got.iter().zip(&want) {
        assert_eq!(gc, wc, "{}", case.name);
        assert!((gs - ws).abs() < 1e-6, "{}: {gs} != {ws}", case.name);
    }
    let mut rels: Vec<(String, String, String)> = outcome
        .relations
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e.relation.as_str().to_owned(),
                nsod_types::detection::class_atom(&outcome.detections[e.subject].class_name),
                nsod_types::detection::class_atom(&outcome.detections[e.object].class_name),
            )
        })
        .collect();
    rels.sort();
    let mut want_rels: Vec<(String, String, String)> = case
        .relations
        .iter()
        .map(|(r, s, o)| ((*r).to_owned(), (*s).to_owned(), (*o).to_owned()))
        .collect();
    want_rels.sort();
    assert_eq!(rels, want_rels, "{}", case.name);

    // The run folder.
    let mut sink = RunDirSink::open(&out, RunDirOptions::infer(&config), &pipeline).unwrap();
    sink.begin(&RunInfo {
        pipeline: &pipeline,
        inputs: &[],
        jobs: 1,
    })
    .unwrap();
    sink.image(&outcome, None).unwrap();
    let summary = sink
        .finish(RunSummary {
            processed: 1,
            ..RunSummary::default()
        })
        .unwrap();
    assert_eq!(summary.per_class.values().sum::<usize>(), want.len());
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    let want_rows: Vec<String> = case.rows.iter().map(|r| format!("img.png,{r}")).collect();
    assert_eq!(rows, want_rows, "{}", case.name);
    let raw = nsod_types::formats::jsonl::read_all(&out.join("predictions_raw.jsonl")).unwrap();
    assert_eq!(raw[0].detections, case.detections, "{}", case.name);
    let refined = nsod_types::formats::jsonl::read_all(&out.join("predictions.jsonl")).unwrap();
    assert_eq!(refined[0].detections, outcome.detections);
    let labels = std::fs::read_to_string(out.join("labels/img.txt")).unwrap();
    assert_eq!(labels.lines().count(), want.len());
    let facts = std::fs::read_to_string(out.join("kg_facts.pl")).unwrap();
    assert!(facts.contains("images(1).\n"), "{facts}");
    for (r, s, o) in &case.relations {
        assert!(
            facts.contains(&format!("fact({r}, '{s}', '{o}', 1).\n")),
            "{}: {facts}",
            case.name
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["counts"]["images"], 1);
    assert_eq!(
        manifest["config"]["rules"]["gsd"],
        serde_json::json!(case.gsd)
    );
    assert_eq!(
        manifest["rules"]["sha256"].as_str().map(str::len),
        Some(64),
        "{manifest}"
    );
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "coco_images.json",
            "coco_results.json",
            "kg.dot",
            "kg.graphml",
            "kg.json",
            "kg_facts.pl",
            "kg_svg",
            "labels",
            "predictions.jsonl",
            "predictions_raw.jsonl",
            "report.csv",
            "report.jsonl",
            "run.json",
            "scene_graphs.jsonl",
        ],
        "{}",
        case.name
    );
}

#[test]
fn detections_through_rules_graph_and_run_folder() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        run_case(&case, dir.path());
    }
}

#[test]
fn a_pipeline_without_rules_or_graph_passes_detections_through() {
    let mut config = PipelineConfig::default();
    config.rules.enabled = false;
    let (pipeline, _) = Pipeline::build(&config, &env(), None).unwrap();
    assert!(pipeline.rules().is_none());
    let dets = vec![det("plane", 0.9, [0.0, 0.0, 50.0, 50.0])];
    let o = pipeline.worker().unwrap().process_detections(
        "a.png",
        ImageSize::new(100, 100),
        dets.clone(),
    );
    assert_eq!(o.detections, dets);
    assert!(o.rules.is_none() && o.relations.is_none());
}

#[test]
fn an_invalid_configuration_is_refused_before_anything_loads() {
    let mut config = PipelineConfig::default();
    config.detect.overlap = 1.0;
    let e = Pipeline::build(&config, &env(), None).unwrap_err();
    assert_eq!(e.to_string(), "detect.overlap: 1 is outside [0, 1)");
    assert!(e.is_configuration());
}
