//! Cost of recording: a labelled counter increment and a histogram observation (target <= 100 ns/op), through
//! the pre-resolved handles nsod's stages hold, and through a family lookup per call for comparison.
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
    c.bench_function("encode_openmetrics_catalog", |b| {
        b.iter(|| black_box(t.openmetrics()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
