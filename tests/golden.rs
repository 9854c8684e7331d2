//! Golden test: `nsod infer` with both OBB models, the default rules and `--kg` on the shared images, in both schedules, writes exactly
//! the files in tests/fixtures/golden/ (produced before the pipeline library refactor). A deliberate change of the
//! outputs regenerates them with `NSOD_UPDATE_GOLDEN=1`.

mod common;

use common::*;

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn infer_outputs_are_byte_identical_to_the_golden_files() {
    let lib = ort_lib();
    let (models, data) = shared_assets();
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for f in ["dota_P0006.png", "P0006_crop1024_x0_y0.png"] {
        std::fs::copy(data.join(f), imgs.join(f)).unwrap();
    }
    let update = std::env::var_os("NSOD_UPDATE_GOLDEN").is_some();
    // Both schedules write the same files (the pipelined one on these fixed-batch models: one slice per run).
    let runs = [
        ("yolov8n-obb_1024", "sequential"),
        ("yolo26n-obb_1024_e2e", "sequential"),
        ("yolov8n-obb_1024", "pipelined"),
        ("yolo26n-obb_1024_e2e", "pipelined"),
    ];
    for (model, schedule) in runs {
        if update && schedule == "pipelined" {
            continue;
        }
        let out = dir.path().join(format!("{model}-{schedule}"));
        let o = nsod()
            .args([
                "infer",
                "--threads",
                "2",
                "--no-metrics",
                "--kg",
                "--schedule",
                schedule,
                "--ort-lib",
            ])
            .arg(&lib)
            .arg(&imgs)
            .arg("--model")
            .arg(models.join(format!("{model}.onnx")))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
        let golden = repo_root().join("tests/fixtures/golden").join(model);
        if update {
            for f in files(&golden) {
                std::fs::copy(out.join(&f), golden.join(&f)).unwrap();
            }
            continue;
        }
        let want = files(&golden);
        assert!(want.len() > 10, "{want:?}");
        for f in &want {
            let (a, b) = (
                std::fs::read(golden.join(f)).unwrap(),
                std::fs::read(out.join(f)).unwrap_or_default(),
            );
            assert!(
                a == b,
                "{model} ({schedule}): {} differs from the golden file ({} vs {} bytes)",
                f.display(),
                b.len(),
                a.len()
            );
        }
    }
}
