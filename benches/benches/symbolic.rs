//! The symbolic stage on one image with 2,000 detections of mixed DOTA classes at a realistic density (a 4096 x
//! 4096 scene with clusters of vehicles, ships at harbours, courts together):
//!
//! * the decision table (pair, relation and size rules, pure Rust): target <= 5 ms per image;
//! * the rules worker's start-up (spawn, sandbox, load rules/dota.pl): target <= 300 ms;
//! * scene rules (`adjust/3`, all of rules/examples/ in one file) on 500 and 2,000 detections per image, one query
//!   to the worker per image: target <= 100 ms for 2,000.
//!
//! Run: `cargo bench -p nsod-benches --bench symbolic`.

use criterion::{Criterion, criterion_group, criterion_main};
use nsod_symbolic::{ImageContext, Sandbox, WorkerCommand, load_rules};
use nsod_types::{ClassNames, Detection, OrientedBox};
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let sandbox = Sandbox::new(WorkerCommand::new(
        env!("CARGO_BIN_EXE_bench-rules-worker"),
        Vec::<String>::new(),
    ));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rules = root.join("rules/dota.pl");
    let mut loads = Vec::new();
    let mut rb = None;
    for _ in 0..10 {
        let t = Instant::now();
        rb = Some(load_rules(&rules, None, &sandbox).expect("rules/dota.pl loads"));
        loads.push(t.elapsed().as_secs_f64());
    }
    let rb = rb.expect("loaded");
    let table = &rb.table;
    println!(
        "rules/dota.pl in a fresh sandboxed worker (start, confine, read, check, load, compile): median {:.1} ms of 10 (target <= 300 ms); {} pair rules, {} relation rules, {} size ranges",
        median(loads) * 1e3,
        table.pair_rules.len(),
        table.relation_rules.len(),
        table.size_ranges.len()
    );
    let dets = scene();
    let adj = table.adjust_at(&dets, Some(0.3));
    println!(
        "scene: {} detections, {} rule applications (table and size rules at 0.3 m/px)",
        dets.len(),
        adj.changes.len()
    );
    c.bench_function("table_adjust_2000_detections", |b| {
        b.iter(|| table.adjust_at(black_box(&dets), Some(0.3)))
    });

    // Scene rules: every example in one rule base.
    let dir = std::env::temp_dir().join(format!("nsod-bench-scene-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut text = String::new();
    let mut names: Vec<_> = std::fs::read_dir(root.join("rules/examples"))
        .expect("rules/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pl"))
        .collect();
    names.sort();
    for p in &names {
        text.push_str(&std::fs::read_to_string(p).expect("example"));
        text.push('\n');
    }
    let all = dir.join("examples.pl");
    std::fs::write(&all, text).expect("write");
    let srb = load_rules(&all, Some(&ClassNames::dota_v1()), &sandbox).expect("examples load");
    let mut session = srb.session().expect("scene rules");
    let starts: Vec<f64> = (0..10)
        .map(|_| session.restart().expect("restart").as_secs_f64())
        .collect();
    println!(
        "rules worker start-up with rules/examples/ ({} files): median {:.1} ms of 10 (target <= 300 ms)",
        names.len(),
        median(starts) * 1e3
    );
    let ctx = ImageContext {
        width: 4096,
        height: 4096,
        gsd: Some(0.3),
    };
    for n in [500usize, 2000] {
        let sub: Vec<Detection> = dets
            .iter()
            .step_by(dets.len() / n)
            .take(n)
            .cloned()
            .collect();
        let (adj, err) = srb.refine(Some(&mut session), &sub, &ctx);
        assert!(err.is_none(), "{err:?}");
        let (req, _) = session.request(&sub, &ctx);
        let edges: usize = req.relations.iter().map(Vec::len).sum();
        let times: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                let (_, err) = srb.refine(Some(&mut session), black_box(&sub), &ctx);
                assert!(err.is_none(), "{err:?}");
                t.elapsed().as_secs_f64()
            })
            .collect();
        println!(
            "scene rules, {n} detections ({edges} relation facts, {} scene changes): median {:.1} ms per image of 20 (target <= 100 ms for 2,000)",
            adj.changes
                .iter()
                .filter(|c| &*c.rule == "adjust/3")
                .count(),
            median(times) * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
