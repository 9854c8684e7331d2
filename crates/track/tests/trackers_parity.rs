//! The compatibility ByteTrack gives the same ids as Roboflow `trackers` 2.6.1's `ByteTrackTracker`, frame by frame,
//! on seeded synthetic detection streams: fixed rate, timestamps with variable gaps and a repeated timestamp, no
//! confidences, crossings, occlusions, low-score detections and false positives.

use nsod_track::compat::{ByteTrackCompat, ByteTrackConfig};
use serde_json::{Value, json};
use std::process::Command;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

struct Frame {
    timestamp: Option<f64>,
    boxes: Vec<[f64; 4]>,
    confidences: Option<Vec<f32>>,
}

/// Objects on straight lines (two of them crossing), hidden for a few frames now and then, with noisy boxes,
/// random confidences and false positives. Coordinates are f32 values, as detectors give them.
fn stream(seed: u64, frames: usize, timestamps: bool, with_conf: bool) -> Vec<Frame> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 14;
    let objs: Vec<[f64; 7]> = (0..n)
        .map(|i| {
            if i < 2 {
                // A crossing: two objects on the same row moving towards each other.
                let dir = if i == 0 { 1.0 } else { -1.0 };
                [300.0 - dir * 150.0, 200.0, dir * 5.0, 0.0, 40.0, 30.0, 0.0]
            } else {
                let start = (rng.next() * frames as f64 * 0.6).floor();
                [
                    rng.range(0.0, 1200.0),
                    rng.range(0.0, 700.0),
                    rng.range(-8.0, 8.0),
                    rng.range(-6.0, 6.0),
                    rng.range(12.0, 60.0),
                    rng.range(12.0, 60.0),
                    start,
                ]
            }
        })
        .collect();
    let mut t = 10.0;
    let mut out = Vec::new();
    for f in 0..frames {
        let mut boxes = Vec::new();
        let mut conf = Vec::new();
        for o in &objs {
            let k = f as f64 - o[6];
            if k < 0.0 || rng.next() < 0.1 {
                continue;
            }
            let (cx, cy) = (
                o[0] + o[2] * k + rng.range(-1.5, 1.5),
                o[1] + o[3] * k + rng.range(-1.5, 1.5),
            );
            let (w, h) = (o[4] * rng.range(0.92, 1.08), o[5] * rng.range(0.92, 1.08));
            boxes.push([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]);
            conf.push(rng.range(0.15, 1.0) as f32);
        }
        for _ in 0..(rng.next() * 3.0) as usize {
            let (x, y) = (rng.range(0.0, 1200.0), rng.range(0.0, 700.0));
            boxes.push([x, y, x + rng.range(10.0, 40.0), y + rng.range(10.0, 40.0)]);
            conf.push(rng.range(0.1, 0.8) as f32);
        }
        // Shuffle, so that input order carries no information.
        for i in (1..boxes.len()).rev() {
            let j = (rng.next() * (i + 1) as f64) as usize;
            boxes.swap(i, j);
            conf.swap(i, j);
        }
        let boxes = boxes
            .into_iter()
            .map(|b| b.map(|v| f64::from(v as f32)))
            .collect();
        let timestamp = timestamps.then(|| {
            // Variable gaps around 1/25 s, and one repeated timestamp.
            if f != 17 {
                t += rng.range(0.6, 1.8) / 25.0;
            }
            t
        });
        out.push(Frame {
            timestamp,
            boxes,
            confidences: with_conf.then_some(conf),
        });
    }
    out
}

/// A confirmed track's id and box, as `trackers` reports it.
type TrackedBox = (i64, f64, f64, f64, f64);

/// `trackers`' answer: per frame, every detection's id and the confirmed tracks' boxes.
struct Reference {
    ids: Vec<Vec<(usize, i64)>>,
    tracked: Vec<Vec<TrackedBox>>,
}

fn reference(cfg: &Value, frames: &[Frame]) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({
        "config": cfg,
        "frames": frames.iter().map(|f| json!({
            "timestamp": f.timestamp,
            "boxes": f.boxes,
            "confidences": f.confidences,
        })).collect::<Vec<_>>(),
    });
    let input = dir.path().join("in.json");
    let out = dir.path().join("out.json");
    std::fs::write(&input, spec.to_string()).unwrap();
    let py = nsod_testkit::python_track(&["trackers", "supervision"]);
    let o = Command::new(py)
        .arg(nsod_testkit::repo_root().join("scripts/trackers_reference.py"))
        .arg(&input)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    Reference {
        ids: serde_json::from_value(v["ids"].clone()).unwrap(),
        tracked: serde_json::from_value(v["tracked"].clone()).unwrap(),
    }
}

#[test]
fn compat_bytetrack_gives_trackers_ids_frame_by_frame() {
    let cases: [(&str, u64, bool, bool, ByteTrackConfig); 4] = [
        (
            "defaults, fixed rate",
            1,
            false,
            true,
            ByteTrackConfig::default(),
        ),
        (
            "timestamps with variable gaps, 25 fps, short buffer",
            2,
            true,
            true,
            ByteTrackConfig {
                frame_rate: 25.0,
                lost_track_buffer: 10,
                ..ByteTrackConfig::default()
            },
        ),
        (
            "no confidences, ids at once",
            3,
            false,
            false,
            ByteTrackConfig {
                minimum_consecutive_frames: 1,
                ..ByteTrackConfig::default()
            },
        ),
        (
            "loose thresholds, 60 fps",
            4,
            false,
            true,
            ByteTrackConfig {
                frame_rate: 60.0,
                track_activation_threshold: 0.5,
                high_conf_det_threshold: 0.45,
                minimum_iou_threshold: 0.3,
                minimum_consecutive_frames: 3,
                lost_track_buffer: 45,
            },
        ),
    ];
    for (name, seed, timestamps, with_conf, cfg) in cases {
        let frames = stream(seed, 120, timestamps, with_conf);
        let cfg_json = json!({
            "lost_track_buffer": cfg.lost_track_buffer,
            "frame_rate": cfg.frame_rate,
            "track_activation_threshold": cfg.track_activation_threshold,
            "minimum_consecutive_frames": cfg.minimum_consecutive_frames,
            "minimum_iou_threshold": cfg.minimum_iou_threshold,
            "high_conf_det_threshold": cfg.high_conf_det_threshold,
        });
        let want = reference(&cfg_json, &frames);
        let mut bt = ByteTrackCompat::new(cfg).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        let mut assigned = 0;
        for (i, f) in frames.iter().enumerate() {
            let got = bt.update(&f.boxes, f.confidences.as_deref(), f.timestamp);
            assert_eq!(got, want.ids[i], "{name}: frame {i}");
            // The Kalman states too (trackers returns them as float32).
            let states = bt.tracked();
            assert_eq!(states.len(), want.tracked[i].len(), "{name}: frame {i}");
            for ((id, b), w) in states.iter().zip(&want.tracked[i]) {
                assert_eq!(*id, w.0, "{name}: frame {i}");
                for (a, e) in b.iter().zip([w.1, w.2, w.3, w.4]) {
                    assert!(
                        (a - e).abs() <= 1e-3,
                        "{name}: frame {i}: track {id}: {b:?} vs {w:?}"
                    );
                }
            }
            ids.extend(got.iter().map(|a| a.1).filter(|&id| id >= 0));
            assigned += got.iter().filter(|a| a.1 >= 0).count();
        }
        // The streams exercise the tracker: many tracks, most detections tracked.
        assert!(ids.len() >= 10, "{name}: {} ids", ids.len());
        let total: usize = frames.iter().map(|f| f.boxes.len()).sum();
        assert!(
            assigned * 2 > total,
            "{name}: {assigned} of {total} detections tracked"
        );
    }
}
