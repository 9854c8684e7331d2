//! The oriented tracker on scripted scenes: crossings, a 90° turn in the detector's angle convention, a track lost
//! and recovered, empty frames, one frame, variable frame times, a moving camera, 10,000 objects, bad input.

use nsod_track::{
    CameraMotion, EndReason, Geometry, Observation, TrackError, TrackState, Tracker, TrackerConfig,
};
use nsod_types::OrientedBox;
use std::collections::BTreeMap;
use std::f32::consts::{FRAC_PI_2, FRAC_PI_4};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn noise(&mut self, s: f64) -> f32 {
        ((self.next() * 2.0 - 1.0) * s) as f32
    }
}

/// A ground-truth object's box in one frame, or `None` when it is not detected.
type Scene = Vec<Vec<Option<OrientedBox>>>;

/// Runs the tracker over a scene (frames at `times`) and returns, per object, the track id given to it in each
/// frame it was detected and matched.
fn run(
    cfg: TrackerConfig,
    scene: &Scene,
    times: &[f64],
    motion: &[Option<CameraMotion>],
) -> Vec<Vec<Option<u64>>> {
    let mut tracker = Tracker::new(cfg).unwrap();
    let n = scene[0].len();
    let mut ids = vec![Vec::new(); n];
    for (f, objs) in scene.iter().enumerate() {
        let mut obs = Vec::new();
        let mut who = Vec::new();
        for (k, b) in objs.iter().enumerate() {
            if let Some(b) = b {
                obs.push(Observation {
                    obb: *b,
                    score: 0.9,
                    class_id: 0,
                });
                who.push(k);
            }
        }
        let out = tracker
            .update(times[f], &obs, motion.get(f).copied().flatten().as_ref())
            .unwrap();
        let mut by_det = BTreeMap::new();
        for t in &out.tracks {
            if let Some(d) = t.detection {
                assert_eq!(t.state, TrackState::Tracked);
                by_det.insert(d, t.id);
            }
        }
        for (k, id) in ids.iter_mut().enumerate() {
            let det = who.iter().position(|&w| w == k);
            id.push(det.and_then(|d| by_det.get(&d).copied()));
        }
    }
    ids
}

/// ID switches as CLEAR MOT counts them: a matched object whose id differs from its previous matched id.
fn id_switches(ids: &[Vec<Option<u64>>]) -> usize {
    ids.iter()
        .map(|per| {
            let seen: Vec<u64> = per.iter().flatten().copied().collect();
            seen.windows(2).filter(|w| w[0] != w[1]).count()
        })
        .sum()
}

fn times(n: usize, fps: f64) -> Vec<f64> {
    (0..n).map(|i| i as f64 / fps).collect()
}

fn axis() -> TrackerConfig {
    TrackerConfig {
        geometry: Geometry::Axis,
        ..TrackerConfig::default()
    }
}

/// Two long thin vehicles crossing in an X, each oriented along its motion, slowly (their axis-aligned hulls
/// overlap for dozens of frames), with detector noise.
fn crossing(seed: u64) -> Scene {
    let mut rng = Rng(seed | 1);
    (0..80)
        .map(|f| {
            let t = f as f32 - 40.0;
            let a = (200.0 + t * 1.2, 200.0 + t * 1.2, FRAC_PI_4);
            let b = (200.0 + t * 1.2, 200.0 - t * 1.2, -FRAC_PI_4);
            [a, b]
                .iter()
                .map(|&(x, y, ang)| {
                    Some(OrientedBox::new(
                        x + rng.noise(1.5),
                        y + rng.noise(1.5),
                        60.0 + rng.noise(3.0),
                        9.0 + rng.noise(1.0),
                        ang + rng.noise(0.04),
                    ))
                })
                .collect()
        })
        .collect()
}

#[test]
fn crossing_vehicles_keep_their_ids_with_oriented_boxes_and_swap_with_axis_aligned_ones() {
    let (mut oriented, mut axis_aligned) = (0, 0);
    for seed in 1..=10 {
        let scene = crossing(seed);
        let t = times(scene.len(), 30.0);
        let o = run(TrackerConfig::default(), &scene, &t, &[]);
        let a = run(axis(), &scene, &t, &[]);
        // Every detection is tracked after the first frame, in both modes.
        for ids in o.iter().chain(&a) {
            assert!(ids.iter().all(Option::is_some), "seed {seed}: {ids:?}");
        }
        oriented += id_switches(&o);
        axis_aligned += id_switches(&a);
    }
    println!("crossing, 10 seeds: ID switches oriented {oriented}, axis-aligned {axis_aligned}");
    assert_eq!(oriented, 0);
    assert!(axis_aligned > oriented, "axis-aligned {axis_aligned}");
}

/// Vehicles in neighbouring lanes (`lanes`: offsets to the right of the first, px; 48 × 12 px boxes) that drive
/// right at `speed` px per frame, turn 90° together over `turn_frames` frames from frame 25 and drive down, as an
/// Ultralytics OBB model reports them (angle regularised into [0, π/2), sides swapped when it passes π/2), the first
/// one hidden in frames `hide`. During the turn their axis-aligned hulls become large squares that overlap each
/// other.
fn turn_with(
    seed: u64,
    lanes: &[f32],
    turn_frames: usize,
    hide: std::ops::Range<usize>,
    speed: f32,
) -> Scene {
    let mut rng = Rng(seed | 1);
    let mut pos = (100.0f32, 200.0f32);
    let mut heading = 0.0f32;
    (0..70)
        .map(|f| {
            if (25..25 + turn_frames).contains(&f) {
                heading += FRAC_PI_2 / turn_frames as f32;
            }
            pos = (pos.0 + speed * heading.cos(), pos.1 + speed * heading.sin());
            let normal = (-heading.sin(), heading.cos());
            lanes
                .iter()
                .enumerate()
                .map(|(k, &off)| {
                    let b = OrientedBox::new(
                        pos.0 + off * normal.0 + rng.noise(1.0),
                        pos.1 + off * normal.1 + rng.noise(1.0),
                        48.0 + rng.noise(2.0),
                        12.0 + rng.noise(1.0),
                        heading + rng.noise(0.03),
                    )
                    .regularized();
                    (k != 0 || !hide.contains(&f)).then_some(b)
                })
                .collect()
        })
        .collect()
}

/// Two lanes 22 px apart, a gentle turn (12 frames at 4 px per frame), the first vehicle hidden for three frames
/// mid-turn.
fn turn(seed: u64) -> Scene {
    turn_with(seed, &[0.0, 22.0], 12, 30..33, 4.0)
}

#[test]
fn a_vehicle_turning_through_90_degrees_keeps_its_identity() {
    let (mut oriented, mut axis_aligned) = (0, 0);
    for seed in 1..=10 {
        let scene = turn(seed);
        let t = times(scene.len(), 30.0);
        let o = run(TrackerConfig::default(), &scene, &t, &[]);
        let a = run(axis(), &scene, &t, &[]);
        let hidden = |k: usize, f: usize| k == 0 && (30..33).contains(&f);
        for (k, ids) in o.iter().enumerate() {
            for (f, id) in ids.iter().enumerate() {
                assert_eq!(
                    id.is_some(),
                    !hidden(k, f),
                    "seed {seed}: object {k} frame {f}"
                );
            }
        }
        oriented += id_switches(&o);
        axis_aligned += id_switches(&a);
    }
    println!(
        "gentle 90° turn, 10 seeds: ID switches oriented {oriented}, axis-aligned {axis_aligned}"
    );
    // Measured: 0 and 0: a gentle turn is easy for both.
    assert_eq!((oriented, axis_aligned), (0, 0));

    // An abrupt turn (4 frames) of three vehicles in lanes 16 px apart (4 px gaps), the first hidden for three
    // frames as the turn ends: the axis-aligned hulls swap identities, the oriented boxes do not.
    let (mut oriented, mut axis_aligned) = (0, 0);
    for seed in 1..=10 {
        let scene = turn_with(seed, &[0.0, 16.0, 32.0], 4, 27..30, 4.0);
        let t = times(scene.len(), 30.0);
        oriented += id_switches(&run(TrackerConfig::default(), &scene, &t, &[]));
        axis_aligned += id_switches(&run(axis(), &scene, &t, &[]));
    }
    println!(
        "abrupt 90° turn, 10 seeds: ID switches oriented {oriented}, axis-aligned {axis_aligned}"
    );
    // Measured: 0 and 28.
    assert_eq!(oriented, 0);
    assert!(axis_aligned >= 20, "axis-aligned {axis_aligned}");
}

/// 90° turns over a grid of scenes: 2 or 3 lanes 16 or 22 px apart, turns over 4, 8 or 12 frames, no occlusion or
/// the first vehicle hidden for 3 or 5 frames as the turn ends, 4 or 8 px per frame (at 30 fps, up to a sixth of
/// the vehicle's length per frame), 5 seeds each.
#[test]
fn ninety_degree_turns_over_a_grid_of_scenes() {
    let (mut oriented, mut axis_aligned, mut worse) = (0, 0, Vec::new());
    for lanes in [
        &[0.0f32, 22.0][..],
        &[0.0, 16.0],
        &[0.0, 16.0, 32.0],
        &[-16.0, 0.0, 16.0],
    ] {
        for turn_frames in [4, 8, 12] {
            for hide in [0..0, 27..30, 27..32] {
                for speed in [4.0, 8.0] {
                    let (mut o, mut a) = (0, 0);
                    for seed in 1..=5 {
                        let scene = turn_with(seed, lanes, turn_frames, hide.clone(), speed);
                        let t = times(scene.len(), 30.0);
                        o += id_switches(&run(TrackerConfig::default(), &scene, &t, &[]));
                        a += id_switches(&run(axis(), &scene, &t, &[]));
                    }
                    if o > a {
                        worse.push(format!(
                            "lanes {lanes:?}, turn over {turn_frames} frames, hidden {hide:?}, {speed} px/frame: {o} > {a}"
                        ));
                    }
                    oriented += o;
                    axis_aligned += a;
                }
            }
        }
    }
    println!(
        "90° turns, 72 scenes × 5 seeds: ID switches oriented {oriented}, axis-aligned {axis_aligned}"
    );
    println!("scenes where oriented is worse: {worse:#?}");
    // Measured: 26 and 264, oriented worse in no scene. Its switches are in the hardest scenes (a vehicle hidden for
    // 5 frames while turning 22.5° per frame beside others 4 px away), where the constant-velocity prediction lags
    // the turn by more than the gap between the thin boxes. (Before the centre-distance fallback and the noise
    // retuned for turning vehicles it was 253 against 242.)
    assert!(oriented <= 30, "oriented {oriented}");
    assert!(
        axis_aligned >= 8 * oriented,
        "axis-aligned {axis_aligned}, oriented {oriented}"
    );
    assert!(worse.is_empty(), "{worse:#?}");
}

#[test]
fn the_state_follows_the_turn_and_heading_comes_from_the_velocity() {
    let scene = turn(3);
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let mut last = None;
    for (f, objs) in scene.iter().enumerate() {
        let obs = vec![Observation {
            obb: objs[1].unwrap(),
            score: 0.9,
            class_id: 2,
        }];
        last = Some(tracker.update(f as f64 / 30.0, &obs, None).unwrap());
    }
    let t = &last.unwrap().tracks[0];
    // Driving down (+y) at 4 px per frame = 120 px/s; heading π/2 from the velocity.
    let h = t.heading.expect("moving");
    assert!((h - std::f64::consts::FRAC_PI_2).abs() < 0.1, "heading {h}");
    assert!((t.velocity.1 - 120.0).abs() < 10.0, "{:?}", t.velocity);
    // The box is the 48x12 vehicle along the heading, whatever side order the detector used.
    let b = t.obb;
    let along = if b.w > b.h {
        b.angle
    } else {
        b.angle + FRAC_PI_2
    };
    let d = nsod_track::kalman::wrap_half_turn(f64::from(along) - std::f64::consts::FRAC_PI_2);
    assert!(d.abs() < 0.1, "{b:?}");
    assert!(
        (b.w.max(b.h) - 48.0).abs() < 3.0 && (b.w.min(b.h) - 12.0).abs() < 2.0,
        "{b:?}"
    );
}

#[test]
fn a_track_lost_for_a_while_is_recovered_with_its_id() {
    // Moving right at 5 px per frame; not detected for frames 20-31 (0.4 s), found again where it went.
    let scene: Scene = (0..50)
        .map(|f| {
            let b = OrientedBox::new(50.0 + 5.0 * f as f32, 100.0, 30.0, 12.0, 0.1);
            vec![(!(20..32).contains(&f)).then_some(b)]
        })
        .collect();
    let ids = run(TrackerConfig::default(), &scene, &times(50, 30.0), &[]);
    let seen: Vec<u64> = ids[0].iter().flatten().copied().collect();
    assert_eq!(seen.len(), 38);
    assert!(seen.iter().all(|&i| i == seen[0]), "{:?}", ids[0]);
    // Past max_lost_seconds (1 s by default) it ends, with the reason.
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let obs = |x: f32| {
        vec![Observation {
            obb: OrientedBox::new(x, 100.0, 30.0, 12.0, 0.1),
            score: 0.9,
            class_id: 0,
        }]
    };
    tracker.update(0.0, &obs(50.0), None).unwrap();
    tracker.update(0.1, &obs(55.0), None).unwrap();
    let lost = tracker.update(0.5, &[], None).unwrap();
    assert_eq!(lost.tracks[0].state, TrackState::Lost);
    assert!(lost.ended.is_empty());
    let gone = tracker.update(1.2, &[], None).unwrap();
    assert!(gone.tracks.is_empty());
    assert_eq!(gone.ended.len(), 1);
    assert_eq!(gone.ended[0].reason, EndReason::Lost);
    assert_eq!(
        (gone.ended[0].first_time, gone.ended[0].last_time),
        (0.0, 0.1)
    );
}

#[test]
fn empty_frames_one_frame_and_finish() {
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    for k in 0..3 {
        let out = tracker.update(f64::from(k), &[], None).unwrap();
        assert!(out.tracks.is_empty() && out.started.is_empty());
    }
    // The first frame with detections confirms them at once (ByteTrack); later births wait for a second hit.
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let det = |x: f32, score: f32| Observation {
        obb: OrientedBox::new(x, 50.0, 20.0, 10.0, 0.0),
        score,
        class_id: 1,
    };
    let out = tracker
        .update(0.0, &[det(10.0, 0.9), det(100.0, 0.3)], None)
        .unwrap();
    assert_eq!(out.started, vec![1], "a low-score detection starts nothing");
    assert_eq!(out.tracks.len(), 1);
    let out = tracker
        .update(0.04, &[det(11.0, 0.9), det(300.0, 0.9)], None)
        .unwrap();
    assert!(out.started.is_empty(), "tentative until its second frame");
    let out = tracker
        .update(0.08, &[det(12.0, 0.9), det(301.0, 0.9)], None)
        .unwrap();
    assert_eq!(out.started, vec![2]);
    let ended = tracker.finish();
    assert_eq!(
        ended.iter().map(|e| (e.id, e.reason)).collect::<Vec<_>>(),
        vec![(1, EndReason::Finished), (2, EndReason::Finished)]
    );
    assert_eq!(ended[0].hits, 3);
}

#[test]
fn variable_frame_times_predict_by_elapsed_time() {
    // 150 px/s to the right, frames at irregular times (20 to 100 ms apart).
    let mut rng = Rng(7);
    let mut t = 0.0;
    let mut times = Vec::new();
    for _ in 0..40 {
        times.push(t);
        t += 0.02 + 0.08 * rng.next();
    }
    let scene: Scene = times
        .iter()
        .map(|&t| {
            vec![Some(OrientedBox::new(
                20.0 + 150.0 * t as f32,
                60.0,
                20.0,
                20.0,
                0.0,
            ))]
        })
        .collect();
    let cfg = TrackerConfig::default();
    let ids = run(cfg, &scene, &times, &[]);
    assert!(ids[0].iter().all(Option::is_some), "{:?}", ids[0]);
    assert_eq!(id_switches(&ids), 0);
    let mut tracker = Tracker::new(cfg).unwrap();
    let mut last = None;
    for (f, &t) in times.iter().enumerate() {
        let obs = [Observation {
            obb: scene[f][0].unwrap(),
            score: 0.9,
            class_id: 0,
        }];
        last = Some(tracker.update(t, &obs, None).unwrap());
    }
    let v = last.unwrap().tracks[0].velocity;
    assert!((v.0 - 150.0).abs() < 3.0 && v.1.abs() < 1.0, "{v:?}");
}

#[test]
fn camera_motion_compensation_keeps_small_objects_on_a_moving_camera() {
    // Still 10x10 objects; the camera pans 25 px per frame, so in the image they jump 25 px every frame.
    let pan = 25.0f32;
    let scene: Scene = (0..30)
        .map(|f| {
            (0..5)
                .map(|k| {
                    Some(OrientedBox::new(
                        400.0 + 60.0 * k as f32 - pan * f as f32,
                        300.0,
                        10.0,
                        10.0,
                        0.0,
                    ))
                })
                .collect()
        })
        .collect();
    let t = times(30, 30.0);
    let motion: Vec<Option<CameraMotion>> = (0..30)
        .map(|f| {
            (f > 0).then_some(CameraMotion {
                scale: 1.0,
                rotation: 0.0,
                tx: -f64::from(pan),
                ty: 0.0,
            })
        })
        .collect();
    let cfg = TrackerConfig {
        buffer: 0.0,
        ..TrackerConfig::default()
    };
    let with = run(cfg, &scene, &t, &motion);
    assert_eq!(id_switches(&with), 0);
    assert!(with.iter().all(|ids| ids.iter().all(Option::is_some)));
    // Without it the first jumps break every track (the boxes stop overlapping before a velocity is learnt), and
    // lost tracks are recovered on the wrong objects.
    let without = run(cfg, &scene, &t, &[]);
    let tracked = |ids: &[Vec<Option<u64>>]| ids.iter().flatten().flatten().count();
    assert_eq!(tracked(&with), 5 * 30);
    assert!(tracked(&without) < 5 * 30 / 2, "{without:?}");
    assert!(id_switches(&without) > 0, "{without:?}");
}

#[test]
fn ten_thousand_objects_are_tracked_through_the_gating_grid() {
    // A 100x100 grid of 12x6 boxes 20 px apart, all drifting and jittering; every object keeps its id.
    let mut rng = Rng(11);
    let n = 100;
    let scene: Scene = (0..4)
        .map(|f| {
            (0..n * n)
                .map(|k| {
                    let (i, j) = ((k % n) as f32, (k / n) as f32);
                    Some(OrientedBox::new(
                        20.0 * i + 1.5 * f as f32 + rng.noise(0.3),
                        20.0 * j + 0.5 * f as f32 + rng.noise(0.3),
                        12.0,
                        6.0,
                        0.3 + rng.noise(0.02),
                    ))
                })
                .collect()
        })
        .collect();
    let ids = run(TrackerConfig::default(), &scene, &times(4, 10.0), &[]);
    assert_eq!(id_switches(&ids), 0);
    let distinct: std::collections::BTreeSet<u64> =
        ids.iter().flatten().flatten().copied().collect();
    assert_eq!(distinct.len(), n * n);
    assert!(ids.iter().all(|per| per.iter().all(Option::is_some)));
}

#[test]
fn bad_input_is_refused_or_ignored() {
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    tracker.update(1.0, &[], None).unwrap();
    assert_eq!(
        tracker.update(0.5, &[], None).unwrap_err(),
        TrackError::Backwards {
            time: 0.5,
            previous: 1.0
        }
    );
    assert_eq!(
        tracker.update(f64::NAN, &[], None).unwrap_err().to_string(),
        "frame time NaN s is not finite"
    );
    // Non-finite or empty boxes are not tracked, and do not disturb the others.
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let bad = [
        Observation {
            obb: OrientedBox::new(f32::NAN, 1.0, 5.0, 5.0, 0.0),
            score: 0.9,
            class_id: 0,
        },
        Observation {
            obb: OrientedBox::new(10.0, 10.0, 0.0, 5.0, 0.0),
            score: 0.9,
            class_id: 0,
        },
        Observation {
            obb: OrientedBox::new(50.0, 50.0, 10.0, 5.0, 0.0),
            score: 0.9,
            class_id: 0,
        },
    ];
    let out = tracker.update(0.0, &bad, None).unwrap();
    assert_eq!(out.tracks.len(), 1);
    assert_eq!(out.tracks[0].detection, Some(2));
    let cfg = TrackerConfig {
        low_score: 0.8,
        high_score: 0.5,
        ..TrackerConfig::default()
    };
    assert_eq!(
        Tracker::new(cfg).unwrap_err().to_string(),
        "low score 0.800000011920929 must be in [0, 0.5]"
    );
}
