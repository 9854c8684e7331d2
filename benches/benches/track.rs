//! Tracker update cost: one frame of `nsod_track::Tracker::update` with 100, 1,000 and 10,000 objects already
//! tracked (a grid of 12x6 oriented boxes 20 px apart, drifting and jittering), and the trackers-compatible
//! axis-aligned ByteTrack on the same scenes. Target (issue 32): ≤ 1 ms per update at 1,000 objects.
//!
//! Run: `cargo bench -p nsod-benches --bench track` (or `benches/track.sh`, which prints the table).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nsod_track::compat::{ByteTrackCompat, ByteTrackConfig};
use nsod_track::{Observation, Tracker, TrackerConfig};
use nsod_types::OrientedBox;
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) as f32
    }
}

/// `frames` frames of `n` objects on a square grid.
fn scene(n: usize, frames: usize) -> Vec<Vec<Observation>> {
    let side = (n as f64).sqrt().ceil() as usize;
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    (0..frames)
        .map(|f| {
            (0..n)
                .map(|k| {
                    let (i, j) = ((k % side) as f32, (k / side) as f32);
                    Observation {
                        obb: OrientedBox::new(
                            20.0 * i + 1.5 * f as f32 + 0.6 * r.f() - 0.3,
                            20.0 * j + 0.5 * f as f32 + 0.6 * r.f() - 0.3,
                            12.0,
                            6.0,
                            0.3 + 0.04 * r.f(),
                        ),
                        score: 0.5 + 0.5 * r.f(),
                        class_id: 0,
                    }
                })
                .collect()
        })
        .collect()
}

fn warm(frames: &[Vec<Observation>]) -> Tracker {
    let mut t = Tracker::new(TrackerConfig::default()).unwrap();
    for (f, obs) in frames.iter().enumerate().take(frames.len() - 1) {
        t.update(f as f64 / 30.0, obs, None).unwrap();
    }
    t
}

fn aabbs(obs: &[Observation]) -> (Vec<[f64; 4]>, Vec<f32>) {
    obs.iter()
        .map(|o| {
            let b = o.obb.aabb();
            ([b.x1, b.y1, b.x2, b.y2].map(f64::from), o.score)
        })
        .unzip()
}

fn warm_compat(frames: &[Vec<Observation>]) -> ByteTrackCompat {
    let mut t = ByteTrackCompat::new(ByteTrackConfig::default()).unwrap();
    for obs in frames.iter().take(frames.len() - 1) {
        let (b, c) = aabbs(obs);
        t.update(&b, Some(&c), None);
    }
    t
}

/// Mean seconds of one update over `rounds` fresh copies of the warmed tracker.
fn mean_update(n: usize, rounds: u32) -> (f64, f64) {
    let frames = scene(n, 6);
    let last = frames.len() - 1;
    let base = warm(&frames);
    let mut ours = Duration::ZERO;
    for _ in 0..rounds {
        let mut t = base.clone();
        let start = Instant::now();
        black_box(t.update(last as f64 / 30.0, &frames[last], None).unwrap());
        ours += start.elapsed();
    }
    let base = warm_compat(&frames);
    let (b, c) = aabbs(&frames[last]);
    let mut compat = Duration::ZERO;
    for _ in 0..rounds {
        let mut t = base.clone();
        let start = Instant::now();
        black_box(t.update(&b, Some(&c), None));
        compat += start.elapsed();
    }
    (
        ours.as_secs_f64() / f64::from(rounds),
        compat.as_secs_f64() / f64::from(rounds),
    )
}

fn bench(c: &mut Criterion) {
    println!("tracker update, one frame, objects already tracked (mean of fresh copies):");
    println!(
        "{:>8} {:>14} {:>22}",
        "objects", "nsod (ms)", "trackers-compat (ms)"
    );
    for (n, rounds) in [(100, 200), (1_000, 50), (10_000, 5)] {
        let (ours, compat) = mean_update(n, rounds);
        println!("{n:>8} {:>14.3} {:>22.3}", ours * 1e3, compat * 1e3);
    }
    let mut g = c.benchmark_group("track");
    g.sample_size(20);
    for n in [100, 1_000] {
        let frames = scene(n, 6);
        let last = frames.len() - 1;
        let base = warm(&frames);
        g.bench_function(format!("update_{n}"), |b| {
            b.iter_batched(
                || base.clone(),
                |mut t| black_box(t.update(last as f64 / 30.0, &frames[last], None).unwrap()),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
