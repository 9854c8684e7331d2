//! Knowledge graph costs:
//! * relation extraction + scene graph for 2,000 detections (target <= 10 ms);
//! * the dataset graph over 10,000 synthetic images, streamed: peak RSS printed after 1,000 and after 10,000
//!   images (flat = memory bounded by the dataset graph, not the number of images).
//!
//! Run: `cargo bench -p nsod-benches --bench kg`.

use criterion::{Criterion, criterion_group, criterion_main};
use nsod_kg::{DatasetGraph, SceneGraph};
use nsod_types::relations::{RelationParams, extract};
use nsod_types::{Detection, OrientedBox};
use std::hint::black_box;

const CLASSES: [&str; 15] = [
    "plane",
    "ship",
    "storage tank",
    "baseball diamond",
    "tennis court",
    "basketball court",
    "ground track field",
    "harbor",
    "bridge",
    "large vehicle",
    "small vehicle",
    "helicopter",
    "roundabout",
    "soccer ball field",
    "swimming pool",
];

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `n` detections in clusters over a `side` x `side` image.
fn image(rng: &mut Rng, n: usize, side: f32) -> Vec<Detection> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (cx, cy) = (rng.f() * side, rng.f() * side);
        let class = CLASSES[(rng.f() * 15.0) as usize % 15];
        for _ in 0..(5 + (rng.f() * 25.0) as usize).min(n - out.len()) {
            let size = 10.0 + rng.f() * 60.0;
            let o = OrientedBox::new(
                cx + (rng.f() - 0.5) * 300.0,
                cy + (rng.f() - 0.5) * 300.0,
                size,
                size * (0.3 + 0.6 * rng.f()),
                rng.f() * 3.1,
            );
            out.push(Detection::oriented(0, class, 0.3 + 0.7 * rng.f(), o));
        }
    }
    out
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let dets = image(&mut rng, 2000, 4096.0);
    let p = RelationParams::default();
    let g = SceneGraph::build(&dets, &p);
    println!(
        "scene graph: {} nodes, {} edges",
        g.graph.node_count(),
        g.graph.edge_count()
    );
    c.bench_function("relations_and_scene_graph_2000", |b| {
        b.iter(|| SceneGraph::build(black_box(&dets), &p))
    });

    // Streaming 10,000 images of 100 detections into the dataset graph.
    let mut dataset = DatasetGraph::default();
    let start = std::time::Instant::now();
    for i in 1..=10_000 {
        let d = image(&mut rng, 100, 1024.0);
        let e = extract(&d, &p, |_, _| true);
        dataset.add_image(&d, &e);
        if i == 1_000 {
            println!(
                "dataset graph after 1,000 images: {} counters, peak RSS {:.1} MB",
                dataset.counts.len(),
                peak_rss_mb()
            );
        }
    }
    println!(
        "dataset graph after 10,000 images: {} counters, peak RSS {:.1} MB, {:.1} s",
        dataset.counts.len(),
        peak_rss_mb(),
        start.elapsed().as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
