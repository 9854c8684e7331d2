//! COCO evaluation core: 5,000 images x 50 detections (250,000 detections, ~15 objects per image, 10 classes),
//! in memory (no JSON). The target (<= 2 s) is for the whole command; `benches/eval_compare.sh` times that
//! against pycocotools on the same data. This bench isolates evaluate + accumulate + summarize, and the VOC pass.
//!
//! Run: `cargo bench -p nsod-benches --bench eval`.

use criterion::{Criterion, criterion_group, criterion_main};
use nsod_eval::voc::ApMethod;
use nsod_eval::{Category, Dataset, Dt, Gt, Image, Shape, coco, voc};
use std::hint::black_box;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn data(images: usize, dets: usize) -> (Dataset, Vec<Vec<Dt>>) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut d = Dataset {
        categories: (0..10)
            .map(|id| Category {
                id,
                name: format!("c{id}"),
            })
            .collect(),
        ..Dataset::default()
    };
    let mut all = Vec::new();
    for i in 0..images {
        let mut gts = Vec::new();
        let mut dts = Vec::new();
        for _ in 0..(r.f() * 30.0) as usize {
            let (w, h) = (4.0 + r.f() * 200.0, 4.0 + r.f() * 200.0);
            let b = [r.f() * 800.0, r.f() * 600.0, w, h];
            let category = (r.f() * 10.0) as u32;
            gts.push(Gt {
                category,
                shape: Shape::Xywh(b),
                area: w * h,
                crowd: false,
                ignore: false,
            });
            if dts.len() < dets && r.f() < 0.8 {
                let mut j = |v: f64, s: f64| v + (r.f() - 0.5) * s;
                let jb = [j(b[0], w * 0.2), j(b[1], h * 0.2), w, h];
                dts.push(Dt {
                    category,
                    shape: Shape::Xywh(jb),
                    score: (r.f() * 100.0).round() / 100.0,
                });
            }
        }
        while dts.len() < dets {
            dts.push(Dt {
                category: (r.f() * 10.0) as u32,
                shape: Shape::Xywh([
                    r.f() * 800.0,
                    r.f() * 600.0,
                    8.0 + r.f() * 100.0,
                    8.0 + r.f() * 100.0,
                ]),
                score: (r.f() * 100.0).round() / 100.0,
            });
        }
        d.images.push(Image {
            id: i as u64 + 1,
            name: format!("{i}.png"),
            width: 1000,
            height: 800,
            gts,
        });
        all.push(dts);
    }
    (d, all)
}

fn bench(c: &mut Criterion) {
    let (d, dets) = data(5000, 50);
    let start = Instant::now();
    let e = coco::evaluate(&d, &dets);
    println!(
        "COCO evaluation, 5,000 images x 50 detections: {:.3} s (AP {:.4}, AP50 {:.4})",
        start.elapsed().as_secs_f64(),
        e.summary.AP,
        e.summary.AP50
    );
    let mut g = c.benchmark_group("eval");
    g.sample_size(10);
    g.bench_function("coco_5000x50", |b| {
        b.iter(|| black_box(coco::evaluate(black_box(&d), black_box(&dets))))
    });
    g.bench_function("voc_5000x50", |b| {
        b.iter(|| {
            black_box(voc::evaluate(
                black_box(&d),
                black_box(&dets),
                0.5,
                ApMethod::AllPoints,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
