//! End-to-end tests of `nsod track`: the real binary and model on frames cut from the NEON sample by a panning
//! camera (the scene moves by a known velocity, so every real track must move with it), the outputs it writes, and
//! bad input.

mod common;

use common::{
    assert_trackeval_parity, error_lines, nsod, ort_lib, repo_root, sample, text, trackeval,
    trackeval_reference,
};
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
        stdout.contains("6 frames kept from the earlier run")
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

/// The value of one sample in a Prometheus text file (0 when absent).
fn prom(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `track_summary.csv` as maps from column name to value (RFC 4180 fields: quoted when they hold a comma or a
/// quote, doubled inside).
fn summary_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    use nsod_types::formats::csv::fields;
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = fields(lines.next().unwrap());
    lines
        .map(|l| {
            let f = fields(l);
            assert_eq!(f.len(), header.len(), "{l}");
            header.iter().cloned().zip(f).collect()
        })
        .collect()
}

/// `nsod report` of a track run: a tracks page with a row per track, and each track's trajectory over its first
/// frame, the camera's pan undone: the trees' paths stay where they started while their boxes cross the frame.
fn report_tracks(out: &Path, records: &[Value]) {
    let site = out.join("report");
    let o = nsod()
        .arg("report")
        .arg(out)
        .arg("--out")
        .arg(&site)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let page = std::fs::read_to_string(site.join("tracks.html")).unwrap();
    let summary = summary_rows(&out.join("track_summary.csv"));
    assert_eq!(page.matches("<tr id=\"track-").count(), summary.len());
    assert!(
        std::fs::read_to_string(site.join("index.html"))
            .unwrap()
            .contains("tracks.html")
    );
    let mut checked = 0;
    for row in &summary {
        let id: u64 = row["id"].parse().unwrap();
        // The track's centres, frame by frame, as tracks.jsonl has them.
        let centres: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| {
                r["tracks"]
                    .as_array()?
                    .iter()
                    .find(|t| t["id"] == id && t["state"] == "tracked")
            })
            .map(|t| (t["obb"][0].as_f64().unwrap(), t["obb"][1].as_f64().unwrap()))
            .collect();
        let svg = std::fs::read_to_string(site.join(format!("tracks/{id}.svg"))).unwrap();
        let points: Vec<(f64, f64)> = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), centres.len(), "track {id}");
        assert!(
            (points[0].0 - centres[0].0).abs() < 0.01 && (points[0].1 - centres[0].1).abs() < 0.01,
            "track {id}: {:?} vs {:?}",
            points[0],
            centres[0]
        );
        if centres.len() >= 10 {
            checked += 1;
            let last = centres[centres.len() - 1];
            let moved = (last.0 - centres[0].0).hypot(last.1 - centres[0].1);
            let stays = points
                .iter()
                .map(|p| (p.0 - points[0].0).hypot(p.1 - points[0].1))
                .fold(0.0f64, f64::max);
            // Tree-crown detections wobble by a few pixels: the path stays within a fifth of the pan.
            assert!(
                moved > 60.0 && stays < moved / 5.0,
                "track {id}: moved {moved}, stays within {stays}"
            );
        }
    }
    assert!(checked >= 2, "{checked}");
}

/// `--kg`: the knowledge graph over time. Each relation interval is checked against the frames (the relation's
/// boxes are the tracks' matched detections: both tracks are tracked at its ends), and networkx reads the GraphML
/// into the same graph as the node-link JSON.
fn knowledge_graph_over_time(out: &Path, records: &[Value]) {
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("track_graph.json")).unwrap())
            .unwrap();
    let nodes = g["nodes"].as_array().unwrap();
    let links = g["links"].as_array().unwrap();
    let summary = summary_rows(&out.join("track_summary.csv"));
    assert_eq!(nodes.len(), summary.len());
    assert!(!links.is_empty(), "{g}");
    let tracked_at = |id: &Value, time: f64| {
        records.iter().any(|r| {
            r["time"].as_f64() == Some(time)
                && r["tracks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| &t["id"] == id && t["state"] == "tracked")
        })
    };
    for l in links {
        let (from, to) = (l["from"].as_f64().unwrap(), l["to"].as_f64().unwrap());
        assert!(from <= to, "{l}");
        for id in [&l["source"], &l["target"]] {
            assert!(
                tracked_at(id, from) && tracked_at(id, to),
                "{l}: track {id} is not tracked at the interval's ends"
            );
            let node = nodes.iter().find(|n| &n["id"] == id).unwrap();
            assert!(
                node["first"].as_f64().unwrap() <= from && to <= node["last"].as_f64().unwrap()
            );
        }
    }
    let script = "import json, sys, networkx as nx\n\
g = nx.read_graphml(sys.argv[1], node_type=int)\n\
print(json.dumps({'nodes': sorted([n, d['class'], d['first'], d['last'], d['frames']] for n, d in g.nodes(data=True)),\n\
  'edges': sorted([a, b, d['relation'], d['from'], d['to']] for a, b, d in g.edges(data=True)),\n\
  'directed': g.is_directed()}))\n";
    let o = std::process::Command::new(nsod_testkit::python_track(&["networkx"]))
        .args(["-c", script])
        .arg(out.join("track_graph.graphml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let nx: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut want_nodes: Vec<Value> = nodes
        .iter()
        .map(|n| serde_json::json!([n["id"], n["class"], n["first"], n["last"], n["frames"]]))
        .collect();
    let mut want_edges: Vec<Value> = links
        .iter()
        .map(|l| serde_json::json!([l["source"], l["target"], l["relation"], l["from"], l["to"]]))
        .collect();
    let key = |v: &Value| v.to_string();
    want_nodes.sort_by_key(key);
    want_edges.sort_by_key(key);
    let mut got_nodes = nx["nodes"].as_array().unwrap().clone();
    let mut got_edges = nx["edges"].as_array().unwrap().clone();
    got_nodes.sort_by_key(key);
    got_edges.sort_by_key(key);
    assert_eq!(got_nodes, want_nodes);
    assert_eq!(got_edges, want_edges);
    assert_eq!(nx["directed"], true);
}

#[test]
fn rules_over_tracks_judge_ground_speed_after_camera_motion() {
    // The trees of the panning camera stand still on the ground: with camera-motion compensation their ground speed
    // is the detections' wobble; without it, the pan's 44.7 px/s at 5 fps (4.47 m/s at 0.1 m per pixel) reads as
    // motion. The 12 frames span 2.2 s: the tracks that last are long enough (2 s) to have a speed.
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    pan_frames(&frames, 12);
    let rules = dir.path().join("rules.pl");
    std::fs::write(
        &rules,
        "adjust_track(T, 0.5, still(C, Frames)) :- track(T, C, _, _, Frames), track_speed_m(T, V), V < 1.0.\n\
         adjust_track(T, 2.0, moving(C, Frames)) :- track(T, C, _, _, Frames), track_speed_m(T, V), V >= 1.0.\n",
    )
    .unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let textfile = dir.path().join(format!("{name}.prom"));
        let mut args = vec![
            "--fps",
            "5",
            "--gsd",
            "0.1",
            "--rules",
            rules.to_str().unwrap(),
            "--track-rules-every",
            "1",
            "--metrics-textfile",
            textfile.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = track(&frames, &out, &args);
        let (_, stderr) = text(&o);
        assert!(o.status.success(), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
        (out, std::fs::read_to_string(textfile).unwrap())
    };
    for (name, extra, factor, reason, speeds) in [
        ("cmc", &["--kg"][..], 0.5, "still(", (0.0, 1.0)),
        // The pan: (40, 20) px/s at 5 fps, 44.7 px/s, 4.47 m/s.
        ("no-cmc", &["--cmc", "off"][..], 2.0, "moving(", (4.2, 4.8)),
    ] {
        let (out, prom_text) = run(name, extra);
        let rows = summary_rows(&out.join("track_summary.csv"));
        let long: Vec<_> = rows
            .iter()
            .filter(|r| r["duration_s"].parse::<f64>().unwrap() >= 2.0)
            .collect();
        assert!(long.len() >= 2, "{name}: {rows:?}");
        for r in &long {
            let v: f64 = r["ground_speed_m_s"].parse().unwrap();
            assert!(v >= speeds.0 && v < speeds.1, "{name}: {r:?}");
            assert_eq!(r["rule_factor"], factor.to_string(), "{name}: {r:?}");
            assert!(
                r["rule_reasons"].starts_with(&format!("adjust_track/3 {factor}: {reason}")),
                "{name}: {r:?}"
            );
        }
        // Short tracks have no speed, so no rule about it applies.
        for r in rows
            .iter()
            .filter(|r| r["duration_s"].parse::<f64>().unwrap() < 2.0)
        {
            assert_eq!(r["ground_speed_m_s"], "", "{name}: {r:?}");
            assert_eq!(r["rule_factor"], "", "{name}: {r:?}");
        }
        let records = jsonl(&out.join("tracks.jsonl"));
        assert_eq!(records.len(), 13, "12 frames and the end-of-run record");
        // The round at t = 2.0 s (frame 11) judged the open tracks: frame 12's rows carry the factor, applied.
        let round: Vec<&Value> = records[10]["track_rules"]
            .as_array()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        assert!(!round.is_empty(), "{name}: {}", records[10]);
        for v in &round {
            assert_eq!(v["final"], false);
            assert_eq!(v["time"], 2.0);
        }
        for row in records[11]["tracks"].as_array().unwrap() {
            if round.iter().any(|v| v["id"] == row["id"]) {
                assert_eq!(row["track_factor"], factor, "{name}: {row}");
            }
        }
        // Frames written before a decision keep their scores: no track_factor before frame 12.
        for r in &records[..11] {
            for row in r["tracks"].as_array().unwrap() {
                assert!(row["track_factor"].is_null(), "{name}: {row}");
            }
        }
        // The end-of-run record: the final decisions about the tracks the sequence's end finished.
        let end = &records[12];
        assert_eq!(end["end"], true);
        let finals = end["track_rules"].as_array().unwrap();
        assert_eq!(finals.len(), long.len(), "{name}: {end}");
        for v in finals {
            assert_eq!(v["final"], true);
            assert_eq!(v["factor"], factor);
            assert_eq!(v["changes"][0]["rule"], "adjust_track/3");
        }
        if name == "cmc" {
            knowledge_graph_over_time(&out, &records);
            report_tracks(&out, &records);
        }
        let action = if factor < 1.0 { "penalty" } else { "boost" };
        assert!(
            prom(
                &prom_text,
                &format!("nsod_rule_applications_total{{action=\"{action}\"}}")
            ) >= (2 * long.len()) as f64,
            "{name}: {prom_text}"
        );
        assert!(
            prom(
                &prom_text,
                "nsod_prolog_query_duration_seconds_count{query=\"adjust_track\"}"
            ) >= 2.0,
            "{name}"
        );
    }

    // A rule base whose track rules loop: each round fails at the inference limit, is said and counted, and the
    // run goes on to complete outputs.
    std::fs::write(
        &rules,
        "adjust_track(T, 0.5, x) :- track(T, _, _, _, _), spin(0).\nspin(N) :- M is N + 1, spin(M).\n",
    )
    .unwrap();
    let out = dir.path().join("loop");
    let textfile = dir.path().join("loop.prom");
    let o = track(
        &frames,
        &out,
        &[
            "--fps",
            "5",
            "--rules",
            rules.to_str().unwrap(),
            "--metrics-textfile",
            textfile.to_str().unwrap(),
        ],
    );
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("rules over tracks skipped for this round")
            // The inference limit, or on a loaded machine the wall-clock limit, whichever comes first.
            && (stderr.contains("adjust_track/3 did not finish within the inference limit")
                || stderr.contains("did not finish within 2.0 s")),
        "{stderr}"
    );
    let prom_text = std::fs::read_to_string(textfile).unwrap();
    assert!(
        prom(
            &prom_text,
            "nsod_prolog_query_failures_total{error_type=\"limit\"}"
        ) >= 1.0,
        "{prom_text}"
    );
    assert!(out.join("track_summary.csv").is_file());

    // Refused, never ignored: speed_range/3 without a GSD, --track-rules-every without rules over tracks.
    std::fs::write(&rules, "speed_range(small_vehicle, 0, 70).\n").unwrap();
    let o = track(
        &frames,
        &dir.path().join("refused"),
        &["--rules", rules.to_str().unwrap()],
    );
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("speed_range/3 needs a ground sample distance") && stderr.contains("--gsd"),
        "{stderr}"
    );
    let o = track(
        &frames,
        &dir.path().join("refused2"),
        &["--track-rules-every", "1"],
    );
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--track-rules-every: the rule base has no rules over tracks"),
        "{stderr}"
    );
}

#[test]
fn georeferenced_frames_give_trajectories_on_the_map() {
    // Repeated passes over the same ground: the panning frames as GeoTIFFs in UTM 31N (EPSG:32631) at 0.3 m per
    // pixel, each frame's origin where its crop lies, so the trees stand still on the map.
    let dir = tempfile::tempdir().unwrap();
    let pngs = dir.path().join("pngs");
    pan_frames(&pngs, 12);
    let frames = dir.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let (x0, y0, gsd) = (440_000.0f64, 5_000_000.0f64, 0.3f64);
    for k in 0..12u32 {
        let (ulx, uly) = (
            x0 + f64::from(200 + 8 * k) * gsd,
            y0 - f64::from(300 + 4 * k) * gsd,
        );
        let o = nsod_testkit::tool("gdal_translate")
            .args(["-q", "-of", "GTiff", "-a_srs", "EPSG:32631", "-a_ullr"])
            .args([ulx, uly, ulx + 640.0 * gsd, uly - 640.0 * gsd].map(|v| format!("{v}")))
            .arg(pngs.join(format!("frame{}.png", k + 1)))
            .arg(frames.join(format!("frame{}.tif", k + 1)))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
    }
    let out = dir.path().join("out");
    let o = track(&frames, &out, &["--fps", "5"]);
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };
    let lines = read("trajectories.geojson");
    let points = read("track_points.geojson");
    let n_lines = lines["features"].as_array().unwrap().len();
    let n_points = points["features"].as_array().unwrap().len();
    // Every matched detection of a track is a point: one per row of mot.txt.
    let mot_rows = std::fs::read_to_string(out.join("mot.txt"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(n_points, mot_rows);
    assert!(n_lines >= 2, "{lines}");
    // The trees stand still on the map: their geodesic speed is the detections' wobble.
    let mut measured = 0;
    for f in lines["features"].as_array().unwrap() {
        let p = &f["properties"];
        if let Some(v) = p["speed_m_s"].as_f64() {
            measured += 1;
            assert!(v < 1.0, "{p}");
        }
        assert_eq!(p["crs"], "EPSG:32631");
    }
    assert!(measured >= 1, "{lines}");
    // GSD from the georeferencing (no --gsd): the ground speeds in metres are there too.
    let summary = summary_rows(&out.join("track_summary.csv"));
    assert!(
        summary.iter().any(|r| !r["ground_speed_m_s"].is_empty()),
        "{summary:?}"
    );
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["trajectories"]["lines"], n_lines);
    assert_eq!(run["trajectories"]["points"], n_points);

    // RFC 7946 by geojson-validator; every length, speed and heading recomputed with pyproj.Geod (PROJ's
    // GeographicLib) from the file's own vertices and times, equal to 1e-6 relative.
    let check = r#"
import json, sys, geojson_validator
from pyproj import Geod
g = Geod(ellps="WGS84")
n = 0
for name in sys.argv[1:]:
    fc = json.load(open(name))
    r = geojson_validator.validate_structure(fc)
    assert not r, r
    v = geojson_validator.validate_geometries(fc)
    assert not v["invalid"], sorted(v["invalid"])
    assert set(v["problematic"]) <= {"excessive_coordinate_precision"}, sorted(v["problematic"])
    for f in fc["features"]:
        if f["geometry"]["type"] != "LineString":
            continue
        c, p = f["geometry"]["coordinates"], f["properties"]
        t = p["times"]
        assert len(t) == len(c) >= 2 and t == sorted(t)
        length = sum(g.inv(a[0], a[1], b[0], b[1])[2] for a, b in zip(c, c[1:]))
        az, _, disp = g.inv(c[0][0], c[0][1], c[-1][0], c[-1][1])
        rel = lambda x, y: abs(x - y) <= 1e-6 * max(abs(y), 1e-9)
        assert rel(p["length_m"], length), (p["length_m"], length)
        assert rel(p["displacement_m"], disp), (p["displacement_m"], disp)
        if p["speed_m_s"] is not None:
            assert rel(p["speed_m_s"], length / (t[-1] - t[0])), p
            n += 1
        if p["heading_deg"] is not None:
            assert abs(p["heading_deg"] - az % 360) < 1e-6, (p["heading_deg"], az)
        assert all(2.0 < x < 2.3 and 45.0 < y < 45.2 for x, y in c), c
print(n)
"#;
    let o = std::process::Command::new(nsod_testkit::python(&["geojson_validator", "pyproj"]))
        .args(["-c", check])
        .arg(out.join("trajectories.geojson"))
        .arg(out.join("track_points.geojson"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        measured.to_string()
    );
    // speed_range/3 without --gsd: the georeferenced frames give the GSD, so it is applied, not refused. Every class
    // gets a range no tree can keep (they wobble at 0.1-0.5 m/s): each track with a speed is penalised by it.
    let rules = dir.path().join("speeds.pl");
    std::fs::write(
        &rules,
        [
            "plane",
            "harbor",
            "ship",
            "storage_tank",
            "small_vehicle",
            "large_vehicle",
        ]
        .map(|c| format!("speed_range({c}, 0, 0.01).\n"))
        .concat()
            + "speed_penalty(0.25).\n",
    )
    .unwrap();
    let ranged = dir.path().join("ranged");
    let o = track(
        &frames,
        &ranged,
        &["--fps", "5", "--rules", rules.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let rows = summary_rows(&ranged.join("track_summary.csv"));
    let with_speed: Vec<_> = rows
        .iter()
        .filter(|r| !r["ground_speed_m_s"].is_empty())
        .collect();
    assert!(!with_speed.is_empty(), "{rows:?}");
    for r in with_speed {
        assert_eq!(r["rule_factor"], "0.25", "{r:?}");
        assert!(
            r["rule_reasons"].starts_with(&format!(
                "speed_range({}, 0, 0.01) 0.25: ground speed ",
                r["class"].replace(' ', "_")
            )),
            "{r:?}"
        );
    }

    // The GeoPackage through GDAL's own ogrinfo: both layers, every feature, the frames' CRS.
    let info = text(
        &nsod_testkit::tool("ogrinfo")
            .args(["-so", "-al"])
            .arg(out.join("trajectories.gpkg"))
            .output()
            .unwrap(),
    )
    .0;
    for want in [
        "Layer name: tracks".to_owned(),
        "Geometry: Line String".to_owned(),
        format!("Feature Count: {n_lines}"),
        "Layer name: track_points".to_owned(),
        format!("Feature Count: {n_points}"),
        "ID[\"EPSG\",32631]".to_owned(),
        "speed_m_s: Real".to_owned(),
        "track_id: Integer64".to_owned(),
    ] {
        assert!(info.contains(&want), "{want} in\n{info}");
    }
}

/// `nsod eval --mot GT --pred PRED --out OUT`: its `mot_eval.json` by sequence.
fn mot_eval(gt: &Path, pred: &Path, out: &Path) -> serde_json::Map<String, Value> {
    let o = nsod()
        .args(["eval", "--mot"])
        .arg(gt)
        .arg("--pred")
        .arg(pred)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let list: Value =
        serde_json::from_slice(&std::fs::read(out.join("mot_eval.json")).unwrap()).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["sequence"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

/// The synthetic flight of issue 32: scripts/flight.py pastes the shared DOTA image (a bus depot: rows of long
/// vehicles parked at an angle, whose axis-aligned hulls overlap) into the NEON sample and flies a 1280x720 camera
/// over it for 150 frames at 30 fps, moving 700 px, turning through 100° and zooming in by 10 %. The ground truth
/// is the still mosaic's detections (`nsod infer`, the same model) moved by the known transforms, kept where the
/// whole box is in the frame. `nsod track` runs once (oriented, camera-motion compensation); the other three modes
/// re-track its stored detections (`--skip-existing` with other tracker settings), and every result is evaluated
/// with rotated IoU by `nsod eval --mot` and by TrackEval's metric classes on the same files.
#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn a_synthetic_flight_is_tracked_and_evaluated_like_motchallenge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = std::process::Command::new(trackeval())
        .arg(repo_root().join("scripts/flight.py"))
        .arg(common::shared_data().join("dota_P0006.png"))
        .arg(sample("neon_yell_2019_10cm.png"))
        .arg(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let transforms: Value =
        serde_json::from_slice(&std::fs::read(d.join("transforms.json")).unwrap()).unwrap();
    let m: Vec<[f64; 6]> = transforms["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let v: Vec<f64> = t
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            [v[0], v[1], v[2], v[3], v[4], v[5]]
        })
        .collect();
    assert_eq!(m.len(), 150);

    // The ground truth: the still image's detections, moved into each frame.
    let model = common::default_model();
    let still = d.join("still");
    let o = common::infer(&ort_lib(), &d.join("mosaic.png"), &still)
        .args(["--no-metrics", "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let record: Value = serde_json::from_str(
        std::fs::read_to_string(still.join("predictions.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let objects = record["detections"].as_array().unwrap();
    assert!(objects.len() >= 150, "{} still detections", objects.len());
    let mut gt = String::new();
    let mut gt_rows = 0;
    for (k, t) in m.iter().enumerate() {
        for (i, det) in objects.iter().enumerate() {
            let p: Vec<f64> = det["polygon"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let corners: Vec<(f64, f64)> = (0..4)
                .map(|j| {
                    let (x, y) = (p[2 * j], p[2 * j + 1]);
                    (t[0] * x + t[1] * y + t[2], t[3] * x + t[4] * y + t[5])
                })
                .collect();
            if corners
                .iter()
                .all(|&(x, y)| (0.0..=1280.0).contains(&x) && (0.0..=720.0).contains(&y))
            {
                let xy: Vec<String> = corners
                    .iter()
                    .flat_map(|(x, y)| [format!("{x:.3}"), format!("{y:.3}")])
                    .collect();
                gt.push_str(&format!("{},{},{},1,1\n", k + 1, i + 1, xy.join(",")));
                gt_rows += 1;
            }
        }
    }
    assert!(gt_rows > 10_000, "{gt_rows} ground-truth boxes");
    let gt_path = d.join("gt_obb.txt");
    std::fs::write(&gt_path, gt).unwrap();

    // Tracked once with the defaults (oriented, compensation on), then re-tracked from the stored detections.
    let run = d.join("run");
    let modes = [
        ("oriented", "on"),
        ("axis", "on"),
        ("oriented", "off"),
        ("axis", "off"),
    ];
    let mut results = Vec::new();
    for (k, (geometry, cmc)) in modes.iter().enumerate() {
        let mut c = nsod();
        c.args(["track", "--threads", "2", "--no-metrics", "--ort-lib"])
            .arg(ort_lib())
            .arg("--model")
            .arg(&model)
            .arg(d.join("frames"))
            .args([
                "--fps",
                "30",
                "--track-geometry",
                geometry,
                "--cmc",
                cmc,
                "--out",
            ])
            .arg(&run);
        if k > 0 {
            c.arg("--skip-existing");
        }
        let o = c.output().unwrap();
        let (stdout, stderr) = text(&o);
        assert!(o.status.success(), "{stderr}");
        assert!(stdout.contains("150 frames tracked (0 failed"), "{stdout}");
        if k > 0 {
            assert!(stdout.contains("150 replayed"), "{stdout}");
        } else {
            // Camera-motion compensation against the known transforms: every frame after the first, rotation
            // within 0.002 rad (measured 0.0007), scale within 0.002 (0.0009), translation within 2 px (1.26).
            let records: Vec<Value> = std::fs::read_to_string(run.join("tracks.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            for f in 1..150 {
                let c = &records[f]["camera"];
                assert_eq!(c["applied"], true, "frame {}: {c}", f + 1);
                // The true motion from frame f-1 to f: M_f · M_{f-1}^-1.
                let (a, b) = (m[f - 1], m[f]);
                let det = a[0] * a[4] - a[1] * a[3];
                let inv = [
                    a[4] / det,
                    -a[1] / det,
                    (a[1] * a[5] - a[4] * a[2]) / det,
                    -a[3] / det,
                    a[0] / det,
                    (a[3] * a[2] - a[0] * a[5]) / det,
                ];
                let r = [
                    b[0] * inv[0] + b[1] * inv[3],
                    b[0] * inv[1] + b[1] * inv[4],
                    b[0] * inv[2] + b[1] * inv[5] + b[2],
                    b[3] * inv[0] + b[4] * inv[3],
                    b[3] * inv[1] + b[4] * inv[4],
                    b[3] * inv[2] + b[4] * inv[5] + b[5],
                ];
                let rotation = r[3].atan2(r[0]);
                let scale = r[0].hypot(r[3]);
                let g = |k: &str| c[k].as_f64().unwrap();
                assert!(
                    (g("rotation") - rotation).abs() < 0.002
                        && (g("scale") - scale).abs() < 0.002
                        && (g("tx") - r[2]).hypot(g("ty") - r[5]) < 2.0,
                    "frame {}: estimated {c}, true rotation {rotation} scale {scale} translation ({}, {})",
                    f + 1,
                    r[2],
                    r[5]
                );
            }
        }
        let pred = d.join(format!("{geometry}-{cmc}.txt"));
        std::fs::copy(run.join("mot_obb.txt"), &pred).unwrap();
        let ours = mot_eval(&gt_path, &pred, &d.join(format!("eval-{geometry}-{cmc}")));
        let reference = trackeval_reference(
            &[
                "oriented".into(),
                "gt_obb".into(),
                gt_path.to_string_lossy().into_owned(),
                pred.to_string_lossy().into_owned(),
                "150".into(),
            ],
            d,
        );
        let compared = assert_trackeval_parity(&ours, &reference);
        assert!(compared > 100, "{compared} numbers compared");
        let c = &ours["COMBINED"];
        let hota = c["hota"]["HOTA"].as_array().unwrap();
        let hota = hota.iter().map(|v| v.as_f64().unwrap()).sum::<f64>() / hota.len() as f64;
        let idf1 = c["identity"]["IDF1"].as_f64().unwrap();
        let idsw = c["clear"]["IDSW"].as_f64().unwrap();
        println!(
            "flight, {geometry} boxes, camera-motion compensation {cmc}: HOTA {hota:.4}, IDF1 {idf1:.4}, ID switches {idsw}"
        );
        results.push((hota, idf1, idsw));
    }
    // Measured (2-core machine, yolov8n-obb): oriented + CMC HOTA 0.8403, IDF1 0.9406, 13 ID switches; axis + CMC
    // 0.8400, 0.9404, 13; oriented without CMC 0.8374, 0.9387, 16; axis without 0.8372, 0.9385, 16. The vehicles
    // are parked, so every mode follows them; the floors leave room for ONNX Runtime's arithmetic on other CPUs.
    let [oc, ac, on, an] = [results[0], results[1], results[2], results[3]];
    assert!(oc.0 >= 0.82 && oc.1 >= 0.92 && oc.2 <= 20.0, "{oc:?}");
    assert!(
        oc.2 <= ac.2 && on.2 <= an.2,
        "oriented {oc:?} {on:?}, axis {ac:?} {an:?}"
    );
    assert!(oc.0 >= on.0 - 1e-9, "compensation on {oc:?}, off {on:?}");
}
