//! Cost of recording: a labelled counter increment and a histogram observation (target <= 100 ns/op), through
//! the pre-resolved handles nsod's stages hold, and through a family lookup per call for comparison; and the whole
//! per-image cost of telemetry in steady state: `InferMetrics::record` of a realistic outcome (150 detections, 60
//! rule changes, 1,500 relations), which `benches/telemetry.sh` compares with the time of an image.
//! Run: `cargo bench -p nsod-benches --bench telemetry`.

use criterion::{Criterion, criterion_group, criterion_main};
use nsod_telemetry::Telemetry;
use nsod_telemetry::catalog::{ImageExemplar, InferenceLabels, ModelLabel, StageStatus};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let t = Telemetry::without_system_metrics();
    let m = &t.metrics;
    let status = StageStatus {
        stage: "infer".into(),
        status: "success".into(),
    };
    let counter = m.inference.images_processed.get_or_create(&status).clone();
    let model = ModelLabel {
        model: "yolov8n-obb".into(),
    };
    let histogram = m.inference.model_run.get_or_create(&model).clone();
    let labels = InferenceLabels {
        model: "yolov8n-obb".into(),
        sliced: "true".into(),
    };
    let with_exemplar = m.inference.duration.get_or_create(&labels).clone();
    let exemplar = ImageExemplar::new("dir/P0006.png");

    let mut g = c.benchmark_group("telemetry");
    g.bench_function("labelled_counter_inc_handle", |b| {
        b.iter(|| black_box(&counter).inc())
    });
    g.bench_function("labelled_counter_inc_family_lookup", |b| {
        b.iter(|| {
            m.inference
                .images_processed
                .get_or_create(black_box(&status))
                .inc()
        })
    });
    let mut v = 0.0;
    g.bench_function("histogram_observe_handle", |b| {
        b.iter(|| {
            v += 0.001;
            black_box(&histogram).observe(v % 1.0)
        })
    });
    g.bench_function("histogram_observe_with_exemplar", |b| {
        b.iter(|| {
            v += 0.001;
            black_box(&with_exemplar).observe(v % 1.0, Some(exemplar.clone()), None)
        })
    });
    g.finish();

    // The fixed cost of a run with telemetry: the registry with the system collector, the /metrics server's start
    // and its shutdown, the handles of one model (median of 20).
    let mut fixed: Vec<f64> = (0..20)
        .map(|_| {
            let start = std::time::Instant::now();
            let t = Telemetry::new();
            let t = std::sync::Arc::new(t);
            let server = nsod_telemetry::server::MetricsServer::start(
                "127.0.0.1:0".parse().expect("address"),
                t.clone(),
            )
            .expect("server");
            let h = nsod_telemetry::InferMetrics::new(&t, "yolov8n-obb");
            black_box(&h);
            server.shutdown();
            start.elapsed().as_secs_f64()
        })
        .collect();
    fixed.sort_by(f64::total_cmp);
    println!(
        "fixed cost of telemetry per run: {:.2} ms (registry with the system collector, /metrics server start and shutdown, handles)",
        fixed[fixed.len() / 2] * 1e3
    );

    // One image's whole record, through the handles `nsod infer` holds.
    let handles = nsod_telemetry::InferMetrics::new(&t, "yolov8n-obb");
    let outcome = outcome();
    let record_ns = {
        let n = 20_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            handles.image_started();
            handles.record(black_box(&outcome));
            handles.written(0.001);
        }
        start.elapsed().as_nanos() as f64 / f64::from(n)
    };
    println!(
        "per-image telemetry: {record_ns:.0} ns to record one image ({} detections, {} rule changes, {} relations)",
        outcome.detections.len(),
        outcome
            .rules
            .as_ref()
            .map_or(0, |r| r.adjustment.changes.len()),
        outcome.relations.as_ref().map_or(0, Vec::len)
    );
    c.bench_function("record_image_outcome", |b| {
        b.iter(|| {
            handles.image_started();
            handles.record(black_box(&outcome));
            handles.written(0.001);
        })
    });
    c.bench_function("encode_openmetrics_catalog", |b| {
        b.iter(|| black_box(t.openmetrics()))
    });
}

/// An outcome the size of a busy sliced image.
fn outcome() -> nsod_types::outcome::ImageOutcome {
    use nsod_types::outcome::{
        Adjustment, Change, DetectStats, ImageOutcome, RulesOutcome, StageTimings,
    };
    use nsod_types::relations::{Relation, RelationEdge};
    use nsod_types::{BBox, Detection, ImageSize};
    let dets: Vec<Detection> = (0..150)
        .map(|i| {
            let x = (i % 15) as f32 * 60.0;
            let y = (i / 15) as f32 * 60.0;
            Detection::new(
                9,
                "large vehicle",
                0.3 + (i % 7) as f32 * 0.1,
                BBox::new(x, y, x + 40.0, y + 20.0),
            )
        })
        .collect();
    let changes: Vec<Change> = (0..60)
        .map(|i| Change {
            action: if i % 3 == 0 { "PENALTY" } else { "BOOST" },
            rule: "confidence_modifier(large_vehicle, small_vehicle, 1.1)".into(),
            factor: 1.1,
            target: i,
            other: Some(i + 1),
            both: true,
            reason: String::new(),
        })
        .collect();
    let adjustment = Adjustment::from_changes(&dets, changes);
    let relations: Vec<RelationEdge> = (0..1500)
        .map(|i| RelationEdge {
            subject: i % 150,
            object: (i * 7 + 1) % 150,
            relation: Relation::ALL[i % 4],
            weight: 1.0,
        })
        .collect();
    ImageOutcome {
        image: "tiles/P0006_crop1024_x0_y0.png".into(),
        size: ImageSize::new(1054, 1529),
        detections: dets.clone(),
        rules: Some(RulesOutcome {
            raw: dets,
            adjustment,
            scene: None,
        }),
        relations: Some(relations),
        detect: DetectStats {
            slices: 5,
            sliced: true,
            merge_input: 400,
            merge_seconds: 0.004,
            run_durations: vec![0.1; 5],
            preprocess_durations: vec![0.01; 5],
            ..Default::default()
        },
        timings: StageTimings {
            decode: 0.02,
            detect: 0.6,
            symbolic: 0.004,
            graph: 0.01,
        },
        geo: None,
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
