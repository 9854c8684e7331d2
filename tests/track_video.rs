//! `nsod track` on video (issue 33): a video made with the `ffmpeg` command-line tool from the flight's frames gives
//! exactly the frame folder's tracks when lossless (FFV1, planar RGB) and nearly them when H.264; every frame's
//! timestamp is the container's, as `ffprobe` reads it; bad videos are one clear error each.
#![cfg(feature = "video")]

mod common;

use common::{error_lines, nsod, ort_lib, repo_root, sample, text, trackeval};
use nsod_testkit::{ffmpeg, ffprobe_frames, ffprobe_pts, tool};
use serde_json::Value;
use std::path::Path;

fn track(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    nsod()
        .args(["track", "--threads", "2", "--no-metrics", "--ort-lib"])
        .arg(ort_lib())
        .arg("--model")
        .arg(common::default_model())
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn records(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("tracks.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Tracks of at least 10 frames in a run's track_summary.csv.
fn long_tracks(run: &Path) -> usize {
    std::fs::read_to_string(run.join("track_summary.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|r| r.split(',').nth(6).unwrap().parse::<usize>().unwrap() >= 10)
        .count()
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn a_video_of_the_flight_tracks_as_its_frames_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The first 30 frames of the flight, lossless.
    let o = std::process::Command::new(trackeval())
        .arg(repo_root().join("scripts/flight.py"))
        .arg(common::shared_data().join("dota_P0006.png"))
        .arg(sample("neon_yell_2019_10cm.png"))
        .arg(d)
        .args(["30", "png"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let pattern = d.join("frames/frame%04d.png");
    let pattern = pattern.to_str().unwrap();
    let folder = d.join("folder");
    let folder_mp4 = d.join("folder.mp4");
    let o = track(
        &d.join("frames"),
        &folder,
        &["--fps", "30", "--save-video", folder_mp4.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o).1);

    // FFV1 in planar RGB (AVI: time base 1/30, so the times are the folder's too): the same tracks, byte for byte.
    let avi = d.join("flight.avi");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        pattern,
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "gbrp",
        avi.to_str().unwrap(),
    ]);
    let lossless = d.join("lossless");
    let annotated = d.join("annotated.mkv");
    let o = track(
        &avi,
        &lossless,
        &["--save-vis", "--save-video", annotated.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("30 frames tracked (0 failed)"), "{stdout}");
    for f in ["mot.txt", "mot_obb.txt", "track_summary.csv"] {
        assert!(
            std::fs::read(lossless.join(f)).unwrap() == std::fs::read(folder.join(f)).unwrap(),
            "{f}: the video's tracks differ from the frames'"
        );
    }
    let (v, f) = (records(&lossless), records(&folder));
    assert_eq!(v.len(), 30);
    let pts = ffprobe_pts(&avi);
    for (k, (a, b)) in v.iter().zip(&f).enumerate() {
        assert_eq!(a["pts"], pts[k], "frame {}", k + 1);
        assert_eq!(a["image"], format!("frame{:06}.png", k + 1));
        for key in ["time", "camera", "tracks"] {
            assert_eq!(a[key], b[key], "frame {}: {key}", k + 1);
        }
    }
    // --save-video: H.264 at the input's timestamps (in the output's own time base), the frames as drawn in vis/.
    for (video, input_tb) in [(&annotated, 1.0 / 30.0), (&folder_mp4, 1.0 / 30.0)] {
        let o = tool("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=codec_name,width,height,time_base",
                "-of",
                "csv=p=0",
            ])
            .arg(video)
            .output()
            .unwrap();
        let info = text(&o).0;
        let f: Vec<&str> = info.trim().split(',').collect();
        assert_eq!(&f[..3], ["h264", "1280", "720"], "{info}");
        let (num, den) = f[3].split_once('/').unwrap();
        let tb = num.parse::<f64>().unwrap() / den.parse::<f64>().unwrap();
        let out_pts = ffprobe_pts(video);
        assert_eq!(out_pts.len(), 30, "{}", video.display());
        for (k, p) in out_pts.iter().enumerate() {
            // Exact up to the output's own time base (Matroska's is 1 ms).
            assert!(
                (*p as f64 * tb - k as f64 * input_tb).abs() <= tb / 2.0 + 1e-9,
                "{}: frame {k} at {p} x {tb}",
                video.display()
            );
        }
    }
    let png = d.join("decoded%02d.png");
    ffmpeg(&[
        "-i",
        annotated.to_str().unwrap(),
        "-frames:v",
        "10",
        png.to_str().unwrap(),
    ]);
    let png = d.join("decoded10.png");
    let decoded = image::open(&png).unwrap().to_rgb8();
    let drawn = image::open(lossless.join("vis/frame000010.png"))
        .unwrap()
        .to_rgb8();
    let raw = image::open(d.join("frames/frame0010.png"))
        .unwrap()
        .to_rgb8();
    let mean_diff = |a: &image::RgbImage, b: &image::RgbImage| {
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| f64::from(x.abs_diff(*y)))
            .sum::<f64>()
            / a.as_raw().len() as f64
    };
    let (to_drawn, to_raw) = (mean_diff(&decoded, &drawn), mean_diff(&decoded, &raw));
    // Measured: 11.2 from vis/ (H.264 at CRF 20 and 4:2:0 chroma on thin coloured lines and labels), 25.4 from the
    // raw frame; the frames before and after it are 61 away.
    assert!(
        to_drawn < 0.6 * to_raw,
        "video frame vs vis/ {to_drawn}, vs the raw frame {to_raw}"
    );
    let run: Value =
        serde_json::from_slice(&std::fs::read(lossless.join("run.json")).unwrap()).unwrap();
    let seq = &run["sequence"];
    assert_eq!(seq["times_from"], "container");
    assert_eq!(seq["video"]["codec"], "ffv1");
    assert_eq!(seq["video"]["time_base"], serde_json::json!([1, 30]));

    // H.264 at high quality (MP4, time base 1/15360): as many tracks of 10 frames or more, HOTA against the frames'
    // tracks at least 0.98 (measured 0.9947), every frame at ffprobe's timestamp.
    let mp4 = d.join("flight.mp4");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        pattern,
        "-c:v",
        "libx264",
        "-crf",
        "12",
        "-pix_fmt",
        "yuv420p",
        mp4.to_str().unwrap(),
    ]);
    let h264 = d.join("h264");
    let o = track(&mp4, &h264, &[]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(long_tracks(&h264), long_tracks(&folder));
    let pts = ffprobe_pts(&mp4);
    let v = records(&h264);
    assert_eq!(
        v.iter()
            .map(|r| r["pts"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        pts
    );
    // The frames' tracks as ground truth (conf 1).
    let gt = d.join("gt_obb.txt");
    let rows: String = std::fs::read_to_string(folder.join("mot_obb.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f[10] = "1";
            format!("{}\n", f.join(","))
        })
        .collect();
    std::fs::write(&gt, rows).unwrap();
    let o = nsod()
        .args(["eval", "--mot"])
        .arg(&gt)
        .arg("--pred")
        .arg(h264.join("mot_obb.txt"))
        .arg("--out")
        .arg(d.join("eval"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let ev: Value =
        serde_json::from_slice(&std::fs::read(d.join("eval/mot_eval.json")).unwrap()).unwrap();
    let hota = ev[1]["hota"]["HOTA"].as_array().unwrap();
    let hota = hota.iter().map(|v| v.as_f64().unwrap()).sum::<f64>() / hota.len() as f64;
    println!("H.264 (crf 12) against the frames' tracks: HOTA {hota:.4}");
    assert!(hota >= 0.98, "HOTA {hota}");

    // --every 3: frames 1, 4, 7, ... at their own timestamps.
    let every = d.join("every");
    let o = track(&avi, &every, &["--every", "3"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let v = records(&every);
    assert_eq!(
        v.iter()
            .map(|r| r["pts"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        (0..30).step_by(3).collect::<Vec<i64>>()
    );
}

/// Small frames of the NEON sample, panning: quick to detect.
fn small_frames(dir: &Path, n: u32) {
    let img = image::open(sample("neon_soap_10cm.png")).unwrap().to_rgb8();
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..n {
        image::imageops::crop_imm(&img, k, k / 2, 256, 192)
            .to_image()
            .save(dir.join(format!("f{:03}.png", k + 1)))
            .unwrap();
    }
}

#[test]
fn bad_videos_are_one_clear_error_and_finished_frames_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_frames(&d.join("frames"), 40);
    let pattern = d.join("frames/f%03d.png");
    let mp4 = d.join("pan.mp4");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        pattern.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-crf",
        "18",
        // A keyframe every 5 frames, so that a cut leaves frames to decode.
        "-g",
        "5",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        mp4.to_str().unwrap(),
    ]);
    // Truncated: the frames before the cut (as many as ffprobe decodes) are tracked and written; the damage is one
    // error naming the file, the run's exit code 1.
    let bytes = std::fs::read(&mp4).unwrap();
    let cut = d.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let decodable = ffprobe_frames(&cut);
    let out = d.join("cut");
    let o = track(&cut, &out, &[]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!("error: {}: damaged: ", cut.display())),
        "{stderr}"
    );
    assert_eq!(records(&out).len(), decodable, "{stdout}");
    assert!((1..40).contains(&decodable), "{decodable}");
    assert!(
        stdout.contains(&format!("{} frames tracked (1 failed)", decodable)),
        "{stdout}"
    );

    // No video stream, a text file named .mp4, a codec without a decoder, a URL scheme that is not supported:
    // refused before anything runs.
    let audio = d.join("tone.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=0.5",
        "-c:a",
        "flac",
        audio.to_str().unwrap(),
    ]);
    let text_mp4 = d.join("notes.mp4");
    std::fs::write(&text_mp4, "not a video").unwrap();
    // A codec FFmpeg has no decoder for: an MPEG-4 AVI whose FourCC (strh and strf) is rewritten to one no codec has.
    let avi = d.join("clip.avi");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        pattern.to_str().unwrap(),
        "-frames:v",
        "5",
        "-c:v",
        "mpeg4",
        avi.to_str().unwrap(),
    ]);
    let mut bytes = std::fs::read(&avi).unwrap();
    let head = bytes.len().min(8192);
    let tags: Vec<usize> = bytes[..head]
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"FMP4")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(tags.len(), 2, "the stream header's and the format's FourCC");
    for i in tags {
        bytes[i..i + 4].copy_from_slice(b"QQQQ");
    }
    let odd = d.join("odd.avi");
    std::fs::write(&odd, bytes).unwrap();
    for (input, want) in [
        (
            odd.to_str().unwrap().to_owned(),
            format!(
                "error: {}: unsupported video codec: the container's codec tag is not one FFmpeg knows",
                odd.display()
            ),
        ),
        (
            audio.to_str().unwrap().to_owned(),
            format!("error: {}: no video stream", audio.display()),
        ),
        (
            text_mp4.to_str().unwrap().to_owned(),
            format!("error: {}: cannot open", text_mp4.display()),
        ),
        (
            "gopher://127.0.0.1/x".to_owned(),
            "error: gopher://127.0.0.1/x: URL scheme gopher:// is not supported".to_owned(),
        ),
    ] {
        let out = d.join("refused");
        let o = track(Path::new(&input), &out, &[]);
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].starts_with(&want), "{stderr}");
        assert!(!out.exists());
    }
    // A server that accepts and never answers: the open times out (FFmpeg's rw_timeout, 10 s) with one error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/live.ts", listener.local_addr().unwrap());
    let start = std::time::Instant::now();
    let o = track(Path::new(&url), &d.join("silent"), &[]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(error_lines(&stderr).len(), 1, "{stderr}");
    assert!(
        error_lines(&stderr)[0].starts_with(&format!("error: {url}: cannot open")),
        "{stderr}"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    drop(listener);
    // Flags a video run cannot honour are refused.
    let o = track(&mp4, &d.join("r2"), &["--skip-existing"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("--skip-existing: a video is tracked whole"),
        "{}",
        text(&o).1
    );
    let o = track(&d.join("frames"), &d.join("r3"), &["--every", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("--every: only a video's frames are subsampled"),
        "{}",
        text(&o).1
    );
}

/// A free loopback port (a moment's race with other tests is acceptable: the server fails loudly).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ffmpeg -re` serving frames `first..first+count` of `pattern` at `fps` as MPEG-TS over HTTP on `port`, once.
fn serve(pattern: &Path, first: u32, count: u32, fps: f64, port: u16) -> common::KillOnDrop {
    common::KillOnDrop(
        tool("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-framerate", &format!("{fps:.3}")])
            .args(["-start_number", &first.to_string()])
            .arg("-i")
            .arg(pattern)
            .args(["-frames:v", &count.to_string()])
            .args(["-c:v", "mpeg4", "-q:v", "3", "-f", "mpegts", "-listen", "1"])
            .arg(format!("http://127.0.0.1:{port}/live.ts"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// A metric's value in a Prometheus text file.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_live_stream_drops_frames_when_behind_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_frames(&d.join("frames"), 120);
    let pattern = d.join("frames/f%03d.png");
    // nsod's own rate on these frames, as a file.
    let ts = d.join("first40.ts");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        pattern.to_str().unwrap(),
        "-frames:v",
        "40",
        "-c:v",
        "mpeg4",
        "-q:v",
        "3",
        ts.to_str().unwrap(),
    ]);
    let o = track(&ts, &d.join("file"), &[]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let rate: f64 = stdout
        .split(" frames/s)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.5, "{stdout}");

    // Served live at twice that rate, in two parts (the stream is cut after 60 frames and served again).
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/live.ts");
    let fps = 2.0 * rate;
    let first = serve(&pattern, 1, 60, fps, port);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let textfile = d.join("live.prom");
    let out = d.join("live");
    let child = nsod()
        .args(["track", "--threads", "2", "--ort-lib"])
        .arg(ort_lib())
        .arg("--model")
        .arg(common::default_model())
        .arg(&url)
        .arg("--out")
        .arg(&out)
        .arg("--metrics-textfile")
        .arg(&textfile)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The second part starts as soon as the first has been sent.
    let mut first = first;
    assert!(first.0.wait().unwrap().success());
    let _second = serve(&pattern, 61, 60, fps, port);
    let o = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let prom = std::fs::read_to_string(&textfile).unwrap();
    let processed = records(&out).len();
    let dropped = metric(&prom, "nsod_frames_dropped_total") as usize;
    let reconnects = metric(&prom, "nsod_stream_reconnects_total");
    let lag = metric(&prom, "nsod_stream_lag_seconds");
    println!(
        "live at {fps:.1} frames/s (nsod: {rate:.2}): {processed} processed, {dropped} dropped, {reconnects} reconnections, lag {lag:.3} s"
    );
    assert!(
        stderr.contains(&format!(
            "video: 120 frames decoded, {dropped} dropped, 1 reconnections (live)"
        )),
        "{stderr}"
    );
    assert_eq!(processed + dropped, 120, "decoded = processed + dropped");
    assert_eq!(metric(&prom, "nsod_frames_total") as usize, processed);
    assert!(dropped >= 20, "{dropped} dropped at twice the rate");
    assert_eq!(reconnects, 1.0);
    // Lag of the last frame: within two of nsod's frame times and the first back-off.
    assert!(lag <= 2.0 / rate + 0.5, "lag {lag} s at {rate} frames/s");
    let run: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["sequence"]["live"], true);
    assert!(
        stdout.contains(&format!("{processed} frames tracked (0 failed)")),
        "{stdout}"
    );
}

#[test]
fn sigterm_ends_a_live_stream_with_complete_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    small_frames(&d.join("frames"), 120);
    let port = free_port();
    let _server = serve(&d.join("frames/f%03d.png"), 1, 120, 10.0, port);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = d.join("live");
    let child = nsod()
        .args(["track", "--threads", "2", "--no-metrics", "--ort-lib"])
        .arg(ort_lib())
        .arg("--model")
        .arg(common::default_model())
        .arg(format!("http://127.0.0.1:{port}/live.ts"))
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once three frames are finished (their records are in the staging folder: a loaded machine starts slower), the
    // signal.
    let staged = d.join(".live.nsod-staging/predictions.jsonl.partial");
    let waited = std::time::Instant::now();
    while std::fs::read_to_string(&staged).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "no three frames in {}",
            staged.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let start = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let n = records(&out).len();
    assert!((3..120).contains(&n), "{n} frames");
    assert!(stdout.contains(&format!("{n} frames tracked")), "{stdout}");
    let run: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["complete"], true, "{run}");
    assert_eq!(run["tracking"]["frames"], n);
}
