//! The pipelined schedule (`--schedule pipelined`: slices prepared, run and decoded on three threads, batches
//! taken across images) writes exactly the run folder the sequential schedule writes, on the sample images with
//! the committed dynamic-batch model at batch 1, 4 and 8 (minimum rectangles at 1 and 8; at 4 the model's size, with
//! IoBinding too), including a raster read window by window, an image that does not decode and the knowledge graph;
//! and the images it holds at once stay bounded.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Every file under `dir`, relative, sorted (run.json aside: it records times and the schedule).
fn outputs(dir: &Path) -> Vec<PathBuf> {
    let mut out = files(dir);
    out.retain(|p| p != Path::new("run.json"));
    out
}

/// `nsod infer` on the dynamic-batch model.
fn infer_dyn(lib: &Path, input: &Path, out: &Path) -> std::process::Command {
    let mut c = nsod();
    c.args(["infer", "--threads", "2", "--ort-lib"])
        .arg(lib)
        .arg(input)
        .arg("--model")
        .arg(dynamic_model())
        .arg("--out")
        .arg(out);
    c
}

fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
}

/// A folder of images of several sizes: the 2299x2472 sample (read window by window: `--window-above` below its
/// size), the 400x400 one, smaller and odd-sized crops, and a file that is not an image.
fn images(dir: &Path) -> PathBuf {
    let imgs = dir.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let big = sample("neon_yell_2019_10cm.png");
    std::fs::copy(&big, imgs.join("a_big.png")).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), imgs.join("b_small.png")).unwrap();
    let big_img = image::open(&big).unwrap().to_rgb8();
    for (name, x, y, w, h) in [
        ("c_small.png", 0, 0, 640, 480),
        ("d_tall.png", 100, 200, 900, 1300),
        ("e_tiny.png", 500, 700, 200, 150),
    ] {
        image::imageops::crop_imm(&big_img, x, y, w, h)
            .to_image()
            .save(imgs.join(name))
            .unwrap();
    }
    std::fs::write(imgs.join("f_broken.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), imgs.join("g_last.png")).unwrap();
    imgs
}

#[test]
fn pipelined_run_folders_equal_sequential_ones_byte_for_byte() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let run = |schedule: &str, batch: usize, io: &str, rect: &str| {
        let out = dir.path().join(format!("{schedule}-{batch}-{io}"));
        let o = infer_dyn(&lib, &imgs, &out)
            .args(["--batch", &batch.to_string(), "--schedule", schedule])
            .args(["--rect", rect])
            .args(["--io-binding", io, "--window-above", "1000000"])
            .args(["--kg", "--save-vis", "--no-metrics"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(1), "one image fails: {stderr}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains("f_broken.png") && errors[0].contains("cannot decode image"),
            "{}",
            errors[0]
        );
        (out, stdout)
    };
    for (batch, rect) in [(1, "auto"), (4, "off"), (8, "auto")] {
        let (seq, _) = run("sequential", batch, "off", rect);
        let (pip, stdout) = run("pipelined", batch, "off", rect);
        let mut variants = vec![pip];
        if batch == 4 {
            variants.push(run("pipelined", batch, "on", rect).0);
        }
        let want = outputs(&seq);
        assert!(want.len() > 20, "{want:?}");
        for other in &variants {
            assert_eq!(outputs(other), want, "{}", other.display());
            for f in &want {
                assert!(
                    std::fs::read(seq.join(f)).unwrap() == std::fs::read(other.join(f)).unwrap(),
                    "batch {batch}: {} differs from the sequential run's in {}",
                    f.display(),
                    other.display()
                );
            }
        }
        // Slices: a_big 10 (windowed), b 1, c 1, d 3, e 1, g 1 = 17, run in batches across images. Minimum
        // rectangles (h x w): a_big 9 of 1024 x 1024 and its full pass 1024 x 960, b 1024 x 1024, c 768 x 1024, d two
        // of 1024 x 928 and its full pass 1024 x 736, e 768 x 1024, g 1024 x 1024: a batch holds one size, so only
        // a_big's and d's slices share batches.
        let (s, p) = (run_json(&seq), run_json(&variants[0]));
        assert_eq!(s["counts"], p["counts"]);
        assert_eq!(s["failures"], p["failures"]);
        assert_eq!(s["model_run"]["schedule"], "sequential");
        assert_eq!(p["model_run"]["schedule"], "pipelined");
        let b = batch as u64;
        let (pipelined, sequential) = if rect == "off" {
            // Sequential batches hold one image's slices: 10, 1, 1, 3, 1, 1.
            let per_image: u64 = [10u64, 1, 1, 3, 1, 1].iter().map(|n| n.div_ceil(b)).sum();
            (17u64.div_ceil(b), per_image)
        } else {
            let n = 9u64.div_ceil(b) + 2u64.div_ceil(b) + 6;
            (n, n)
        };
        assert_eq!(
            p["model_run"]["runs"].as_u64().unwrap(),
            pipelined,
            "batch {batch} rect {rect}"
        );
        assert_eq!(s["model_run"]["runs"].as_u64().unwrap(), sequential);
        assert_eq!(
            p["model_run"]["providers"][0]["provider"],
            "CPUExecutionProvider"
        );
        let busy = p["model_run"]["busy_ratio"].as_f64().unwrap();
        assert!(busy > 0.0 && busy <= 1.0, "{busy}");
        assert!(
            stdout.contains(&format!(
                "model: CPUExecutionProvider ran all 338 nodes (cpu); {} runs took",
                p["model_run"]["runs"]
            )) && stdout.contains(&format!("(pipelined, batch {batch})")),
            "{stdout}"
        );
    }
}

/// The images a pipelined run holds at once are bounded by its queues, not by the folder: 40 images at batch 2
/// never have more than `nsod_detect::stream::max_images_in_flight(2, 1)` (12) in flight.
#[test]
fn a_pipelined_run_holds_a_bounded_number_of_images() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let big = image::open(sample("neon_yell_2019_10cm.png"))
        .unwrap()
        .to_rgb8();
    for i in 0..40u32 {
        image::imageops::crop_imm(&big, 10 * i, 20 * i, 96, 96)
            .to_image()
            .save(imgs.join(format!("{i:03}.png")))
            .unwrap();
    }
    let out = dir.path().join("out");
    let o = infer_dyn(&lib, &imgs, &out)
        .args([
            "--batch",
            "2",
            "--schedule",
            "pipelined",
            "--no-metrics",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let m = &run_json(&out)["model_run"];
    assert_eq!(m["runs"], 20);
    let peak = m["peak_images"].as_u64().unwrap();
    assert!(
        (2..=12).contains(&peak),
        "{peak} images in flight at once (bound 12; at least 2 when batches span images)"
    );
}

/// `--sessions 2 --threads 1` runs an image's slices on two sessions at once and writes the one-session run folder
/// byte for byte (the sliced 2299 x 2472 sample and a small image), in the sequential schedule and in the pipelined
/// one (batches across images, each session taking the next: `auto` with several sessions, also on the CPU);
/// run.json records the schedule, the sessions and their threads.
/// IoBinding with several sessions is refused, naming why.
#[test]
fn two_sessions_write_the_one_session_folder() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::copy(sample("neon_yell_2019_10cm.png"), imgs.join("a_big.png")).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), imgs.join("b_small.png")).unwrap();
    let run = |sessions: &str, schedule: &str| {
        let out = dir.path().join(format!("sessions-{sessions}-{schedule}"));
        let o = nsod()
            .args([
                "infer",
                "--threads",
                "1",
                "--sessions",
                sessions,
                "--schedule",
                schedule,
                "--no-metrics",
            ])
            .arg("--ort-lib")
            .arg(&lib)
            .arg(&imgs)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
        out
    };
    let one = run("1", "sequential");
    let want = outputs(&one);
    assert!(want.len() >= 6, "{want:?}");
    let a = run_json(&one);
    for (schedule, ran) in [("sequential", "sequential"), ("auto", "pipelined")] {
        let two = run("2", schedule);
        assert_eq!(outputs(&two), want, "{schedule}");
        for f in &want {
            assert!(
                std::fs::read(one.join(f)).unwrap() == std::fs::read(two.join(f)).unwrap(),
                "{} differs with two sessions ({schedule})",
                f.display()
            );
        }
        let b = run_json(&two);
        assert_eq!(b["model_run"]["schedule"], ran, "{schedule}");
        assert_eq!(a["counts"], b["counts"]);
        assert_eq!(
            (&b["model_run"]["sessions"], &b["model_run"]["threads"]),
            (&serde_json::json!(2), &serde_json::json!(1))
        );
        // 9 slices and the full pass of the big image, one run of the small one, at batch 1.
        assert_eq!(b["model_run"]["runs"], 11, "{schedule}");
        assert_eq!(b["config"]["sessions"], 2);
    }

    let o = nsod()
        .args([
            "infer",
            "--sessions",
            "2",
            "--schedule",
            "pipelined",
            "--io-binding",
            "on",
            "--no-metrics",
        ])
        .arg("--ort-lib")
        .arg(&lib)
        .arg(&imgs)
        .arg("--out")
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "--io-binding (io_binding): IoBinding applies to the pipelined schedule with one session"
        ) && stderr.contains("several sessions run from host buffers"),
        "{stderr}"
    );
}
