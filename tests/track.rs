//! End-to-end tests of `nsod track`: the real binary and model on frames cut from the NEON sample by a panning
//! camera (the scene moves by a known velocity, so every real track must move with it), the outputs it writes, and
//! bad input.

mod common;

use common::{error_lines, nsod, ort_lib, sample, text};
use serde_json::Value;
use std::path::Path;

/// `n` 640x640 frames of the NEON sample, the camera moving (+8, +4) px per frame: the scene moves (-8, -4).
fn pan_frames(dir: &Path, n: usize) {
    let img = image::open(sample("neon_yell_2019_10cm.png"))
        .unwrap()
        .to_rgb8();
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..n {
        let (x, y) = (200 + 8 * k as u32, 300 + 4 * k as u32);
        image::imageops::crop_imm(&img, x, y, 640, 640)
            .to_image()
            .save(dir.join(format!("frame{}.png", k + 1)))
            .unwrap();
    }
}

/// The DOTA model sees little in a forest: low thresholds so that its few detections are tracked.
const TRACK_ARGS: [&str; 8] = [
    "--conf",
    "0.05",
    "--track-high",
    "0.1",
    "--track-new",
    "0.1",
    "--track-low",
    "0.05",
];

fn track(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    nsod()
        .args(["track", "--threads", "2", "--ort-lib"])
        .arg(ort_lib())
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(TRACK_ARGS)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn tracks_on_a_panning_camera_move_with_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    pan_frames(&frames, 12);
    let out = dir.path().join("out");
    let textfile = dir.path().join("nsod.prom");
    let o = track(
        &frames,
        &out,
        &[
            "--fps",
            "10",
            "--metrics-textfile",
            textfile.to_str().unwrap(),
            "--save-vis",
        ],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("12 frames tracked (0 failed)"), "{stdout}");

    // tracks.jsonl: one record per frame, in order, with the times of --fps 10.
    let records: Vec<Value> = std::fs::read_to_string(out.join("tracks.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 12);
    for (k, r) in records.iter().enumerate() {
        assert_eq!(r["frame"], k + 1);
        assert_eq!(r["image"], format!("frame{}.png", k + 1));
        assert!((r["time"].as_f64().unwrap() - k as f64 / 10.0).abs() < 1e-12);
    }
    // Every track seen for 5 frames or more moves with the scene: (-80, -40) px/s at 10 fps.
    let mut long = 0;
    for row in std::fs::read_to_string(out.join("track_summary.csv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        let f: Vec<&str> = row.split(',').collect();
        let frames: usize = f[6].parse().unwrap();
        if frames < 5 {
            continue;
        }
        long += 1;
        // Detections of tree crowns by a DOTA model wobble by a few pixels from frame to frame.
        let heading: f64 = f[8].parse().unwrap();
        let want = (-40.0f64).atan2(-80.0).to_degrees();
        assert!(
            (heading - want).abs() < 5.0,
            "{row}: heading {heading}, scene {want:.1}"
        );
        let speed: f64 = f[7].parse().unwrap();
        assert!(
            (speed / 80.0f64.hypot(40.0) - 1.0).abs() < 0.15,
            "{row}: speed {speed}"
        );
    }
    assert!(long >= 3, "long tracks: {long}");
    // --save-vis: every frame drawn with its tracks (boxes, ids, trails), the same size as the frame.
    for k in 1..=12 {
        let drawn = image::open(out.join(format!("vis/frame{k}.png")))
            .unwrap()
            .to_rgb8();
        let frame = image::open(frames.join(format!("frame{k}.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!(drawn.dimensions(), frame.dimensions());
        let changed = drawn
            .pixels()
            .zip(frame.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed > 500, "frame {k}: {changed} pixels drawn");
    }

    // Camera-motion compensation (on by default) finds the pan in every frame after the first, and the tracks'
    // velocities are then the trees' own: still.
    for r in &records[1..] {
        let c = &r["camera"];
        assert_eq!(c["applied"], true, "{r}");
        let (tx, ty) = (c["tx"].as_f64().unwrap(), c["ty"].as_f64().unwrap());
        assert!((tx + 8.0).abs() < 1.0 && (ty + 4.0).abs() < 1.0, "{c}");
        assert!(
            c["rotation"].as_f64().unwrap().abs() < 0.01
                && (c["scale"].as_f64().unwrap() - 1.0).abs() < 0.01,
            "{c}"
        );
    }
    assert!(records[0]["camera"].is_null());
    let mean_velocity = |records: &[Value]| {
        let last = &records[records.len() - 1]["tracks"];
        let moving: Vec<(f64, f64)> = last
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["hits"].as_u64().unwrap() >= 6 && t["state"] == "tracked")
            .map(|t| {
                (
                    t["velocity"][0].as_f64().unwrap(),
                    t["velocity"][1].as_f64().unwrap(),
                )
            })
            .collect();
        assert!(moving.len() >= 3, "{last}");
        let n = moving.len() as f64;
        (
            moving.iter().map(|v| v.0).sum::<f64>() / n,
            moving.iter().map(|v| v.1).sum::<f64>() / n,
            moving,
        )
    };
    let (vx, vy, _) = mean_velocity(&records);
    // (Without compensation the mean is the scene's 89 px/s; what is left is the detections' wobble.)
    assert!(vx.hypot(vy) < 20.0, "({vx}, {vy})");

    // MOTChallenge text with the tracked detections, readable by nsod eval --mot (and TrackEval): against itself
    // every metric is perfect.
    let mot = std::fs::read_to_string(out.join("mot.txt")).unwrap();
    let rows = mot.lines().count();
    assert!(rows >= 30, "{rows} rows");
    let obb_rows = std::fs::read_to_string(out.join("mot_obb.txt"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(obb_rows, rows);
    let gt = dir.path().join("gt.txt");
    std::fs::write(
        &gt,
        mot.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},1,1,1\n", f[..6].join(","))
            })
            .collect::<String>(),
    )
    .unwrap();
    let o = nsod()
        .args(["eval", "--mot"])
        .arg(&gt)
        .arg("--pred")
        .arg(out.join("mot.txt"))
        .arg("--out")
        .arg(dir.path().join("eval"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let ev: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("eval/mot_eval.json")).unwrap(),
    )
    .unwrap();
    let c = &ev.as_array().unwrap()[1];
    assert_eq!(c["clear"]["MOTA"], 1.0);
    assert_eq!(c["identity"]["IDF1"], 1.0);

    // run.json: the sequence and the tracking counts.
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["sequence"]["frames"], 12);
    assert_eq!(run["sequence"]["times_from"], "--fps");
    assert_eq!(run["tracking"]["frames"], 12);
    assert_eq!(run["tracking"]["geometry"], "oriented");
    let tracks = run["tracking"]["tracks"].as_u64().unwrap();
    let ended = &run["tracking"]["ended"];
    assert_eq!(
        ended["lost"].as_u64().unwrap() + ended["finished"].as_u64().unwrap(),
        tracks
    );
    assert_eq!(
        std::fs::read_to_string(out.join("track_summary.csv"))
            .unwrap()
            .lines()
            .count() as u64
            - 1,
        tracks
    );

    // Resume: a run killed after its sixth frame's records (as kill -9 would) leaves the folder untouched; rerun
    // with --skip-existing, it replays the six frames' stored detections through the tracker and detects the other
    // six, and every tracking output equals the uninterrupted run's byte for byte.
    let resumed = dir.path().join("resumed");
    let mut c = nsod();
    c.args(["track", "--threads", "2", "--ort-lib"])
        .arg(ort_lib())
        .arg(&frames)
        .arg("--out")
        .arg(&resumed)
        .args(TRACK_ARGS)
        .args(["--fps", "10", "--save-vis"])
        .env("NSOD_FAULT", "records@6");
    let o = c.output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(6), "{}", text(&o).1);
    assert!(!resumed.join("run.json").exists());
    let o = track(
        &frames,
        &resumed,
        &["--fps", "10", "--save-vis", "--skip-existing"],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("6 frames kept from the interrupted run")
            && stdout.contains("12 frames tracked (0 failed, 6 replayed)"),
        "{stdout}"
    );
    let mut files = vec![
        "tracks.jsonl".to_owned(),
        "mot.txt".into(),
        "mot_obb.txt".into(),
        "track_summary.csv".into(),
        "predictions.jsonl".into(),
    ];
    files.extend((1..=12).map(|k| format!("vis/frame{k}.png")));
    for f in &files {
        assert!(
            std::fs::read(resumed.join(f)).unwrap() == std::fs::read(out.join(f)).unwrap(),
            "{f}: the resumed run differs from the uninterrupted one"
        );
    }
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(resumed.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["tracking"]["replayed"], 6);
    assert_eq!(run["counts"]["kept"], 6);
}

#[test]
fn bad_frames_and_lists_are_named_and_the_sequence_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    pan_frames(&frames, 4);
    // Frame 3 is corrupt: it fails, is counted, and the tracker goes from frame 2 to frame 4.
    std::fs::write(frames.join("frame3.png"), b"not a png").unwrap();
    let out = dir.path().join("out");
    let o = track(&frames, &out, &[]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("3 frames tracked (1 failed)"), "{stdout}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("frame3.png"), "{stderr}");
    let frames_written: Vec<Value> = std::fs::read_to_string(out.join("tracks.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        frames_written
            .iter()
            .map(|r| r["frame"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 4]
    );

    // A list file whose times go backwards: one error naming the file and the line, exit 2, nothing written.
    let list = frames.join("list.txt");
    std::fs::write(&list, "frame1.png 0.0\nframe2.png 0.5\nframe4.png 0.25\n").unwrap();
    let out2 = dir.path().join("out2");
    let o = track(&list, &out2, &[]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        [format!(
            "error: {}:3: time 0.25 s is before the previous frame's",
            list.display()
        )
        .as_str()]
    );
    assert!(!out2.exists());
}
