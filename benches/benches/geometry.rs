//! Cost of one overlap computation: axis-aligned IoU, exact rotated IoU and ProbIoU.
//!
//! Each iteration computes one pair out of a fixed set of 1,024 random, mostly overlapping pairs (seeded), so the
//! time criterion prints per iteration is the time per pair. Run: `cargo bench -p nsod-benches --bench geometry`.

use criterion::{Criterion, criterion_group, criterion_main};
use nsod_types::geometry::{iou, probiou, rotated_iou};
use nsod_types::{BBox, OrientedBox};
use std::hint::black_box;

/// A small deterministic generator (xorshift64*), so the benchmark needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }
}

fn pairs(n: usize) -> Vec<(OrientedBox, OrientedBox)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            let a = OrientedBox::new(
                rng.range(0.0, 1000.0),
                rng.range(0.0, 1000.0),
                rng.range(8.0, 80.0),
                rng.range(8.0, 80.0),
                rng.range(-3.1, 3.1),
            );
            let b = OrientedBox::new(
                a.cx + rng.range(-30.0, 30.0),
                a.cy + rng.range(-30.0, 30.0),
                rng.range(8.0, 80.0),
                rng.range(8.0, 80.0),
                rng.range(-3.1, 3.1),
            );
            (a, b)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let obbs = pairs(1024);
    let aabbs: Vec<(BBox, BBox)> = obbs.iter().map(|(a, b)| (a.aabb(), b.aabb())).collect();
    let overlapping = obbs.iter().filter(|(a, b)| rotated_iou(a, b) > 0.0).count();
    println!("pairs: {} ({overlapping} overlapping)", obbs.len());

    let mut g = c.benchmark_group("per_pair");
    let mut i = 0usize;
    g.bench_function("iou_axis_aligned", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let (p, q) = &aabbs[i];
            iou(black_box(p), black_box(q))
        })
    });
    g.bench_function("rotated_iou_exact", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let (p, q) = &obbs[i];
            rotated_iou(black_box(p), black_box(q))
        })
    });
    g.bench_function("probiou", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let (p, q) = &obbs[i];
            probiou(black_box(p), black_box(q))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
