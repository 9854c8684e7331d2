//! The symbolic stage on one image with 2,000 detections of mixed DOTA classes at a realistic density (a 4096 x
//! 4096 scene with clusters of vehicles, ships at harbours, courts together): target <= 5 ms per image. Also
//! prints the time to load and compile rules/dota.pl.
//! Run: `cargo bench -p nsod-benches --bench symbolic`.

use criterion::{Criterion, criterion_group, criterion_main};
use nsod_symbolic::{LoadLimits, load_rules};
use nsod_types::{Detection, OrientedBox};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

fn scene() -> Vec<Detection> {
    let mut s = 0x1234_5678_9ABC_DEF1u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    // (class, size range) groups placed in clusters, as in aerial scenes.
    let groups: [(&str, f32, f32, usize); 8] = [
        ("large vehicle", 30.0, 80.0, 700),
        ("small vehicle", 10.0, 25.0, 700),
        ("ship", 40.0, 200.0, 200),
        ("harbor", 150.0, 500.0, 40),
        ("plane", 40.0, 80.0, 120),
        ("storage tank", 20.0, 60.0, 140),
        ("tennis court", 30.0, 60.0, 60),
        ("bridge", 100.0, 400.0, 40),
    ];
    let mut out = Vec::with_capacity(2000);
    for (class, lo, hi, n) in groups {
        let mut left = n;
        while left > 0 {
            let (cx, cy) = (rnd() * 4096.0, rnd() * 4096.0);
            let cluster = left.min(5 + (rnd() * 30.0) as usize);
            for _ in 0..cluster {
                let size = lo + (hi - lo) * rnd();
                let o = OrientedBox::new(
                    cx + (rnd() - 0.5) * 400.0,
                    cy + (rnd() - 0.5) * 400.0,
                    size,
                    size * (0.3 + 0.5 * rnd()),
                    rnd() * 3.1,
                );
                out.push(Detection::oriented(0, class, 0.25 + 0.75 * rnd(), o));
            }
            left -= cluster;
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/dota.pl");
    let t = Instant::now();
    let table = load_rules(&rules, None, LoadLimits::default()).expect("rules/dota.pl loads");
    println!(
        "rules/dota.pl: loaded and compiled in {:.3} s ({} pair rules, {} relation rules)",
        t.elapsed().as_secs_f64(),
        table.pair_rules.len(),
        table.relation_rules.len()
    );
    let dets = scene();
    let adj = table.adjust(&dets);
    println!(
        "scene: {} detections, {} rule applications",
        dets.len(),
        adj.changes.len()
    );
    c.bench_function("adjust_2000_detections", |b| {
        b.iter(|| table.adjust(black_box(&dets)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
