//! Outputs that must never be lost or go stale: one test per defect the pipeline library fixed (each failed on the
//! binary before it).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Resuming with rules and `--kg` keeps every output of the kept images (raw records, report rows, scene graphs,
/// the dataset graph): the result equals a fresh run over all images.
#[test]
fn resume_keeps_every_output_of_the_kept_images() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), input.join("a.png")).unwrap();
    let resumed = dir.path().join("resumed");
    let run = |out: &Path| {
        let o = infer(&lib, &input, out)
            .args(["--skip-existing", "--slice", "0", "--kg", "--no-metrics"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
        text(&o).0
    };
    run(&resumed);
    std::fs::copy(sample("neon_yell_2019_10cm.png"), input.join("b.png")).unwrap();
    let stdout = run(&resumed);
    assert!(
        stdout.starts_with("1 images kept from earlier runs, 1 to process"),
        "{stdout}"
    );
    let fresh = dir.path().join("fresh");
    run(&fresh);
    for f in [
        "predictions.jsonl",
        "predictions_raw.jsonl",
        "report.csv",
        "report.jsonl",
        "scene_graphs.jsonl",
        "kg_facts.pl",
        "kg.json",
        "coco_results.json",
        "coco_images.json",
    ] {
        assert!(
            read(&resumed.join(f)) == read(&fresh.join(f)),
            "{f}: the resumed run differs from a fresh run"
        );
    }
    let raw = std::fs::read_to_string(resumed.join("predictions_raw.jsonl")).unwrap();
    assert_eq!(raw.lines().count(), 2);
}

/// SIGINT before any image is done, in a folder that holds a complete result: the complete result stays as it was.
#[test]
fn an_interrupted_run_never_replaces_a_complete_result() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), one.join("a.png")).unwrap();
    let out = dir.path().join("out");
    let o = infer(&lib, &one, &out)
        .args(["--no-metrics"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let keep = [
        "predictions.jsonl",
        "coco_results.json",
        "coco_images.json",
        "run.json",
    ];
    let before: Vec<Vec<u8>> = keep.iter().map(|f| read(&out.join(f))).collect();

    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..4 {
        std::fs::copy(
            sample("neon_yell_2019_10cm.png"),
            many.join(format!("{i}.png")),
        )
        .unwrap();
    }
    let mut child = KillOnDrop(
        infer(&lib, &many, &out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The metrics line comes after the signal handler is installed and before the first image.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for l in lines.by_ref() {
        if l.unwrap().starts_with("metrics: ") {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    for (f, b) in keep.iter().zip(&before) {
        assert!(
            read(&out.join(f)) == *b,
            "{f} was replaced by an interrupted run"
        );
    }
    assert!(
        rest.iter()
            .any(|l| l.contains("is unchanged (its complete result is kept)")),
        "{rest:?}"
    );
}

/// A run without rules into a folder that held a rules run leaves no stale raw predictions or report behind, so
/// `nsod eval --run` does not compare another run's files.
#[test]
fn a_run_without_rules_removes_the_stale_rules_outputs() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a.png");
    std::fs::copy(sample("neon_soap_10cm.png"), &input).unwrap();
    let out = dir.path().join("out");
    let o = infer(&lib, &input, &out)
        .args(["--no-metrics", "--kg"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    for f in [
        "predictions_raw.jsonl",
        "report.csv",
        "scene_graphs.jsonl",
        "kg_facts.pl",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let o = infer(&lib, &input, &out)
        .args(["--no-metrics", "--no-symbolic"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    for f in [
        "predictions_raw.jsonl",
        "report.csv",
        "report.jsonl",
        "scene_graphs.jsonl",
        "kg_facts.pl",
        "kg_svg",
    ] {
        assert!(!out.join(f).exists(), "{f} is stale");
    }
    let manifest: serde_json::Value = serde_json::from_slice(&read(&out.join("run.json"))).unwrap();
    assert_eq!(manifest["complete"], true);
    assert!(manifest["rules"].is_null());
    let o = nsod()
        .args(["eval", "--gt"])
        .arg(dir.path())
        .arg("--run")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        text(&o)
            .1
            .contains("no predictions_raw.jsonl (the run had no rules)"),
        "{}",
        text(&o).1
    );
}

/// Two inputs that would write the same outputs are refused before anything runs.
#[test]
fn inputs_that_would_overwrite_each_other_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for p in ["a/x.png", "b/x.png", "c/y.jpg", "c/y.png"] {
        let f = dir.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"x").unwrap();
    }
    let out = dir.path().join("out");
    let o = nsod()
        .arg("infer")
        .arg(dir.path().join("a/x.png"))
        .arg(dir.path().join("b/x.png"))
        .args(["--model", "/nonexistent.onnx", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o).1.trim_end(),
        format!(
            "error: {} and {} would both be written as x.png: rename one or process them in separate runs",
            dir.path().join("a/x.png").display(),
            dir.path().join("b/x.png").display()
        )
    );
    let o = nsod()
        .arg("infer")
        .arg(dir.path().join("c"))
        .args(["--model", "/nonexistent.onnx", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("would both be written as labels/y.txt"),
        "{}",
        text(&o).1
    );
    assert!(!out.exists());
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Whole files written atomically get the mode of any new file (0666 less the umask), not 0600: another user or
/// node_exporter's textfile collector can read them.
#[test]
fn atomically_written_files_follow_the_umask() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a.png");
    std::fs::copy(sample("neon_soap_10cm.png"), &input).unwrap();
    let out = dir.path().join("out");
    let prom = dir.path().join("nsod.prom");
    let cmd = format!(
        "umask 022; exec {} infer --threads 2 --no-metrics --ort-lib {} --model {} --out {} --metrics-textfile {} {}",
        env!("CARGO_BIN_EXE_nsod"),
        lib.display(),
        default_model().display(),
        out.display(),
        prom.display(),
        input.display()
    );
    let o = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    for f in [
        out.join("predictions.jsonl"),
        out.join("coco_results.json"),
        out.join("coco_images.json"),
        out.join("run.json"),
        out.join("labels/a.txt"),
        out.join("report.csv"),
        prom,
    ] {
        assert_eq!(mode(&f), 0o644, "{}", f.display());
    }
}

/// Category names become file names of the precision-recall plots: `../x` and `/abs` stay inside `pr/`.
#[test]
fn eval_plots_stay_inside_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt.json");
    std::fs::write(
        &gt,
        r#"{"images":[{"id":1,"file_name":"a.png","width":100,"height":100}],
            "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[10,10,20,20],"area":400,"iscrowd":0},
                           {"id":2,"image_id":1,"category_id":2,"bbox":[50,50,20,20],"area":400,"iscrowd":0}],
            "categories":[{"id":1,"name":"../escape"},{"id":2,"name":"/abs/x"}]}"#,
    )
    .unwrap();
    let results = dir.path().join("results.json");
    std::fs::write(
        &results,
        r#"[{"image_id":1,"category_id":1,"bbox":[10,10,20,20],"score":0.9},
            {"image_id":1,"category_id":2,"bbox":[50,50,20,20],"score":0.8}]"#,
    )
    .unwrap();
    let out = dir.path().join("deep/out");
    let o = nsod()
        .args(["eval", "--plots", "--gt"])
        .arg(&gt)
        .arg("--pred")
        .arg(&results)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let mut pr: Vec<String> = std::fs::read_dir(out.join("pr"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pr.sort();
    assert_eq!(pr, ["___escape.svg", "_abs_x.svg"]);
    let mut outside: Vec<String> = std::fs::read_dir(dir.path().join("deep"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    assert_eq!(outside, ["out"]);
    assert!(!Path::new("/abs/x.svg").exists());
}

/// SIGTERM is seen between batches of slices, not only between images: a run in the middle of an image of
/// hundreds of slices stops within 2 s, with the outputs of the images before it complete.
#[test]
fn sigterm_in_the_middle_of_a_many_slice_image_stops_within_two_seconds() {
    for schedule in ["sequential", "pipelined"] {
        sigterm_stops_within_two_seconds(schedule);
    }
}

fn sigterm_stops_within_two_seconds(schedule: &str) {
    use std::time::{Duration, Instant};
    let lib = ort_lib();
    let dota = sample("neon_yell_2019_10cm.png");
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    // a.png: one slice; b.png: a 2299x2472 orthophoto in slices of 64 px (about 1,700 slices, minutes of work).
    let o = nsod_testkit::tool("gdal_translate")
        .args(["-q", "-of", "PNG", "-srcwin", "0", "0", "64", "64"])
        .arg(&dota)
        .arg(imgs.join("a.png"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::copy(&dota, imgs.join("b.png")).unwrap();
    let out = dir.path().join("out");
    let mut child = KillOnDrop(
        infer(&lib, &imgs, &out)
            .args(["--slice", "64", "--no-symbolic", "--no-metrics", "-q"])
            .args(["--schedule", schedule])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The run writes into its staging folder beside the output folder until it commits.
    let staging = dir.path().join(".out.nsod-staging");
    let partial = staging.join("predictions.jsonl.partial");
    let t = Instant::now();
    while !std::fs::read_to_string(&partial).is_ok_and(|s| s.contains("\"a.png\"")) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "a.png was never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Well inside b.png's slices.
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "b.png takes minutes");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "{schedule}: stopped {took:?} after SIGTERM"
    );
    assert_eq!(status.code(), Some(130));
    // Nothing was committed: the output folder holds no result; the finished image waits in the staging folder
    // for --skip-existing.
    assert!(
        !out.join("run.json").exists(),
        "an interrupted run is not a result"
    );
    let records = std::fs::read_to_string(&partial).unwrap();
    let images: Vec<String> = records
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["image"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        images,
        vec!["a.png"],
        "the finished image's outputs, complete"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(staging.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["complete"], false);
    assert_eq!(run["interrupted"], true);
    assert_eq!(
        run["counts"]["failed"], 0,
        "an interrupted image is not a failure"
    );
}
