//! Sliced inference overhead on a 4096 x 4096 image made by mirror-tiling the DOTA image `dota_P0006.png`, with
//! slices of 1024 and overlap 0.2 (25 slices plus SAHI's full-image pass).
//!
//! Prints the wall time of `Detector::detect`, the sum of the pure `session.run` times (the floor) and the
//! overhead = wall - floor (letterboxing, decoding, NMS, merging). Target: overhead <= 5% of the floor.
//!
//! Needs `NSOD_TEST_MODELS` / `NSOD_TEST_DATA` (../shared) and ONNX Runtime (third_party/onnxruntime or
//! `NSOD_TEST_ORT_LIB`). Run: `cargo bench -p nsod-benches --bench infer_overhead`.
//!
//! Python SAHI on the same model and image, for a side-by-side ratio: `benches/sahi_compare.sh`. This bench writes
//! the tiled image to `$NSOD_BENCH_TILED` when that variable is set (and only that, with `NSOD_BENCH_TILE_ONLY`).

use nsod_detect::{Detector, DetectorConfig, Model, ModelOptions, SliceMode, load_image};
use nsod_runtime::Runtime;
use std::path::PathBuf;
use std::time::Instant;

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches`: nothing to list
    }
    let models = env_path("NSOD_TEST_MODELS", "../../shared/models");
    let data = env_path("NSOD_TEST_DATA", "../../shared/data");
    let lib = env_path(
        "NSOD_TEST_ORT_LIB",
        "../third_party/onnxruntime/libonnxruntime.so.1.31.1",
    );
    if !models.exists() || !data.exists() || !lib.exists() {
        eprintln!(
            "infer_overhead: skipped, needs {} {} {}",
            models.display(),
            data.display(),
            lib.display()
        );
        return;
    }
    let src = load_image(&data.join("dota_P0006.png")).expect("DOTA image");
    let (sw, sh) = (src.width(), src.height());
    let tiled = image::RgbImage::from_fn(4096, 4096, |x, y| {
        let (tx, ty) = (x / sw, y / sh);
        let (mut ix, mut iy) = (x % sw, y % sh);
        if tx % 2 == 1 {
            ix = sw - 1 - ix;
        }
        if ty % 2 == 1 {
            iy = sh - 1 - iy;
        }
        *src.get_pixel(ix, iy)
    });
    if let Some(p) = std::env::var_os("NSOD_BENCH_TILED") {
        tiled.save(&p).expect("write tiled image");
        if std::env::var_os("NSOD_BENCH_TILE_ONLY").is_some() {
            println!("wrote {}", PathBuf::from(p).display());
            return;
        }
    }
    let rt = std::sync::Arc::new(Runtime::load(Some(&lib)).expect("ONNX Runtime"));
    for (model, batch) in [("yolov8n-obb_1024.onnx", 1), ("yolov8n-obb_dyn.onnx", 4)] {
        let m = Model::load(
            &rt,
            &models.join(model),
            &ModelOptions {
                threads: 2,
                ..Default::default()
            },
        )
        .expect("model");
        let mut det = Detector::new(
            m,
            DetectorConfig {
                slice: SliceMode::Size(1024),
                batch,
                ..Default::default()
            },
        );
        det.detect(&tiled).expect("warm-up");
        let t = Instant::now();
        let r = det.detect(&tiled).expect("detect");
        let wall = t.elapsed().as_secs_f64();
        let floor = r.run_seconds;
        println!(
            "{model} batch {batch}: {} slices, {} runs, {} detections ({} before merge); wall {wall:.3} s, session.run {floor:.3} s, \
             overhead {:.3} s = {:.1}% of the floor (preprocess {:.3} s, postprocess+merge {:.3} s)",
            r.slices,
            r.runs,
            r.detections.len(),
            r.merge_input,
            wall - floor,
            100.0 * (wall - floor) / floor,
            r.preprocess_seconds,
            r.postprocess_seconds
        );
    }
}
