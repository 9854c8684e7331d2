//! The reader against FFmpeg's own command-line tools: frames made with `ffmpeg`, timestamps checked against
//! `ffprobe`'s, pixels against the images the video was made from; subsampling; bad input.

use image::RgbImage;
use nsod_testkit::{ffmpeg, ffprobe_frames, ffprobe_pts};
use nsod_video::{Options, Reader, VideoError};
use std::path::Path;
use std::time::Duration;

/// `n` 96x64 PNG frames with distinct, busy content (`frame001.png`, ...).
fn frames(dir: &Path, n: u32) {
    for k in 0..n {
        RgbImage::from_fn(96, 64, |x, y| {
            image::Rgb([
                ((x * 7 + k * 13) % 256) as u8,
                ((y * 11 + k * 5) % 256) as u8,
                ((x * y + k) % 256) as u8,
            ])
        })
        .save(dir.join(format!("frame{:03}.png", k + 1)))
        .unwrap();
    }
}

fn read_all(video: &Path, opts: Options) -> (Reader, Vec<nsod_video::Frame>) {
    let mut r = Reader::open(video.to_str().unwrap(), opts).unwrap();
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.push(f);
    }
    (r, out)
}

#[test]
fn lossless_video_gives_the_frames_pixels_and_ffprobes_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    frames(d, 24);
    let video = d.join("lossless.mkv");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        d.join("frame%03d.png").to_str().unwrap(),
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "gbrp",
        video.to_str().unwrap(),
    ]);
    let (r, got) = read_all(&video, Options::default());
    let info = r.info().clone();
    assert_eq!(
        (info.width, info.height, info.codec.as_str()),
        (96, 64, "ffv1")
    );
    assert_eq!(
        info.time_base,
        (1, 1000),
        "matroska's millisecond time base"
    );
    assert_eq!(got.len(), 24);
    for (k, f) in got.iter().enumerate() {
        let png = image::open(d.join(format!("frame{:03}.png", k + 1)))
            .unwrap()
            .to_rgb8();
        assert!(f.image == png, "frame {}: pixels differ", k + 1);
        assert_eq!(f.decoded, k as u64);
    }
    let pts: Vec<i64> = got.iter().map(|f| f.pts).collect();
    assert_eq!(pts, ffprobe_pts(&video));
    assert!(
        (got[23].time - 23.0 / 30.0).abs() < 1e-3,
        "{}",
        got[23].time
    );

    // --every 3 and --fps 10 keep the same frames here (30 fps): 0, 3, 6, ...
    let (_, every) = read_all(
        &video,
        Options {
            every: 3,
            ..Options::default()
        },
    );
    let (_, fps) = read_all(
        &video,
        Options {
            fps: Some(10.0),
            ..Options::default()
        },
    );
    let idx = |v: &[nsod_video::Frame]| v.iter().map(|f| f.decoded).collect::<Vec<_>>();
    assert_eq!(idx(&every), (0..24).step_by(3).collect::<Vec<u64>>());
    assert_eq!(idx(&fps), idx(&every));
}

#[test]
fn variable_frame_rate_timestamps_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    frames(d, 30);
    // Frame n at (n + floor(n / 3)) / 30 s: every third gap is twice as long.
    for (name, codec) in [("vfr.mkv", "ffv1"), ("vfr.mp4", "mpeg4")] {
        let video = d.join(name);
        ffmpeg(&[
            "-framerate",
            "30",
            "-i",
            d.join("frame%03d.png").to_str().unwrap(),
            "-vf",
            "setpts='(N+floor(N/3))/(30*TB)'",
            "-fps_mode",
            "vfr",
            "-c:v",
            codec,
            video.to_str().unwrap(),
        ]);
        let (r, got) = read_all(&video, Options::default());
        assert_eq!(got.len(), 30, "{name}");
        let pts: Vec<i64> = got.iter().map(|f| f.pts).collect();
        assert_eq!(pts, ffprobe_pts(&video), "{name}");
        let gaps: Vec<f64> = got.windows(2).map(|w| w[1].time - w[0].time).collect();
        let (lo, hi) = gaps
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), g| (a.min(*g), b.max(*g)));
        assert!(
            (lo - 1.0 / 30.0).abs() < 2e-3 && (hi - 2.0 / 30.0).abs() < 2e-3,
            "{name}: gaps {lo}..{hi} in time base {:?}",
            r.info().time_base
        );
    }
}

#[test]
fn mpeg_ts_timestamps_that_wrap_at_33_bits_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    frames(d, 30);
    // Offset so that the 90 kHz timestamps pass 2^33 (95443.7 s; the muxer adds 1.4 s) a third of the way in.
    let video = d.join("wrap.ts");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        d.join("frame%03d.png").to_str().unwrap(),
        "-c:v",
        "mpeg4",
        "-output_ts_offset",
        "95441.984",
        "-f",
        "mpegts",
        video.to_str().unwrap(),
    ]);
    let (r, got) = read_all(&video, Options::default());
    assert_eq!(r.info().time_base, (1, 90_000));
    assert_eq!(got.len(), 30);
    let pts: Vec<i64> = got.iter().map(|f| f.pts).collect();
    // libavformat itself corrects a wrap it sees in a file (the frames before it get negative timestamps, as
    // ffprobe shows); nsod's timestamps are the same, and go on by 3000 ticks a frame across it.
    assert_eq!(pts, ffprobe_pts(&video));
    assert!(pts[0] < 0 && pts[29] > 0, "{pts:?}");
    for w in pts.windows(2) {
        assert_eq!(w[1] - w[0], 3000, "{pts:?}");
    }
    assert!(
        (got[29].time - 29.0 / 30.0).abs() < 1e-9,
        "{}",
        got[29].time
    );
}

#[test]
fn bad_input_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    frames(d, 30);
    let open = |p: &str| Reader::open(p, Options::default());

    // Not a video.
    let text = d.join("notes.mp4");
    std::fs::write(&text, "not a video").unwrap();
    let e = open(text.to_str().unwrap()).unwrap_err();
    assert!(
        matches!(e, VideoError::Open { .. }) && e.to_string().starts_with(text.to_str().unwrap()),
        "{e}"
    );
    // No video stream: audio only.
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
    let e = open(audio.to_str().unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: no video stream", audio.display())
    );
    // Truncated: the frames before the cut are read (as many as ffprobe counts), then one error.
    let full = d.join("full.mp4");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        d.join("frame%03d.png").to_str().unwrap(),
        "-c:v",
        "mpeg4",
        "-movflags",
        "+faststart",
        full.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&full).unwrap();
    let cut = d.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let mut r = open(cut.to_str().unwrap()).unwrap();
    let mut n = 0;
    loop {
        match r.next_frame() {
            Ok(Some(_)) => n += 1,
            Ok(None) => break,
            Err(e) => {
                assert!(
                    e.to_string()
                        .starts_with(&format!("{}: damaged: ", cut.display())),
                    "{e}"
                );
                break;
            }
        }
    }
    assert!((1..30).contains(&n), "{n} frames before the cut");
    assert_eq!(n, ffprobe_frames(&cut));
    // A playlist or concat list cannot reach other files: the protocols are the input's own.
    let e = open(&format!("concat:{}|{}", full.display(), full.display())).unwrap_err();
    assert!(matches!(e, VideoError::Open { .. }), "{e}");
    let list = d.join("list.ffconcat");
    std::fs::write(
        &list,
        format!("ffconcat version 1.0\nfile '{}'\n", full.display()),
    )
    .unwrap();
    let e = open(list.to_str().unwrap()).unwrap_err();
    assert!(matches!(e, VideoError::Open { .. }), "{e}");
    // An unsupported scheme, and a server that accepts and never answers: the read times out.
    let e = open("gopher://127.0.0.1/x").unwrap_err();
    assert!(e.to_string().contains("gopher:// is not supported"), "{e}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/live.ts", listener.local_addr().unwrap());
    let start = std::time::Instant::now();
    let e = Reader::open(
        &url,
        Options {
            timeout: Duration::from_millis(500),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.to_string().starts_with(&format!("{url}: cannot open")),
        "{e}"
    );
    drop(listener);
}
