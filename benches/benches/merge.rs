//! Merging slice detections: 3,000 rotated boxes (1,000 objects, each seen by about three overlapping slices with
//! a little jitter, as SAHI produces), greedy NMM on rotated IoS 0.5, class-wise. Target: <= 5 ms.
//! Also Ultralytics' rotated fast NMS (ProbIoU) on the same boxes. Run: `cargo bench -p nsod-benches --bench merge`.

use criterion::{Criterion, criterion_group, criterion_main};
use nsod_nms::{MergeConfig, postprocess, ultralytics_nms};
use nsod_types::{Detection, OrientedBox};
use std::hint::black_box;

fn boxes() -> Vec<Detection> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut out = Vec::with_capacity(3000);
    for _ in 0..1000 {
        let (cx, cy) = (rnd() * 4096.0, rnd() * 4096.0);
        let (w, h, a) = (10.0 + rnd() * 60.0, 6.0 + rnd() * 20.0, rnd() * 3.1);
        let class = (rnd() * 3.0) as u32;
        for _ in 0..3 {
            let o = OrientedBox::new(
                cx + rnd() * 2.0,
                cy + rnd() * 2.0,
                w * (0.95 + rnd() * 0.1),
                h * (0.95 + rnd() * 0.1),
                a + rnd() * 0.05,
            );
            out.push(Detection::oriented(class, "c", 0.25 + rnd() * 0.75, o));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let dets = boxes();
    let merged = postprocess(dets.clone(), &MergeConfig::default());
    println!(
        "greedy NMM (rotated IoS 0.5): {} boxes -> {} merged",
        dets.len(),
        merged.len()
    );
    c.bench_function("greedy_nmm_rotated_3000", |b| {
        b.iter(|| postprocess(black_box(dets.clone()), &MergeConfig::default()))
    });
    c.bench_function("ultralytics_fast_nms_probiou_3000", |b| {
        b.iter(|| ultralytics_nms(black_box(&dets), 0.7, false, true, 300))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
