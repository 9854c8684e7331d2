//! An axis-aligned ByteTrack that gives the same tracks as Roboflow's `trackers` 2.6.1 `ByteTrackTracker` (PyPI,
//! Apache-2.0), frame by frame: its XYXY constant-velocity Kalman state (P = I, R = 0.1 I, Q = 0.01 I, and the
//! discrete white-noise-acceleration Q when a frame step is off the nominal rate), its two-stage association
//! (high-confidence detections against every track, then low-confidence ones against the tracks left, by IoU with
//! an optimal assignment), `minimum_consecutive_frames` before an id is given, the lost buffer scaled by the frame
//! rate (frames) or counted in seconds when timestamps are given, and class-agnostic matching.
//!
//! It is the reference point the oriented tracker ([`crate::Tracker`]) is measured against and a compatibility mode
//! for users who compare with `trackers`; the parity test runs both on the same detections.

use nalgebra::{SMatrix, SVector};

type M8 = SMatrix<f64, 8, 8>;
type V8 = SVector<f64, 8>;
type M4 = SMatrix<f64, 4, 4>;
type M48 = SMatrix<f64, 4, 8>;

/// `trackers`' `ByteTrackTracker` parameters, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteTrackConfig {
    /// Frames (at 30 fps) a lost track is kept.
    pub lost_track_buffer: u32,
    /// The video's frame rate; scales the lost buffer.
    pub frame_rate: f64,
    /// Minimum confidence of a detection that starts a track (compared in f64, as `float(conf) >= threshold`).
    pub track_activation_threshold: f64,
    /// Consecutive updates before a track gets an id.
    pub minimum_consecutive_frames: u32,
    /// Minimum IoU of a match.
    pub minimum_iou_threshold: f64,
    /// Detections at or above this confidence are associated first (compared in f32, as NumPy compares a float32
    /// array with a Python float).
    pub high_conf_det_threshold: f32,
}

impl Default for ByteTrackConfig {
    fn default() -> Self {
        Self {
            lost_track_buffer: 30,
            frame_rate: 30.0,
            track_activation_threshold: 0.7,
            minimum_consecutive_frames: 2,
            minimum_iou_threshold: 0.1,
            high_conf_det_threshold: 0.6,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("frame rate {0} must be a finite positive number")]
    FrameRate(f64),
    #[error("{name} {value} must be in [0, 1]")]
    Threshold { name: &'static str, value: f64 },
}

impl ByteTrackConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.frame_rate.is_finite() && self.frame_rate > 0.0) {
            return Err(ConfigError::FrameRate(self.frame_rate));
        }
        for (name, value) in [
            (
                "track activation threshold",
                self.track_activation_threshold,
            ),
            ("minimum IoU threshold", self.minimum_iou_threshold),
            (
                "high confidence threshold",
                f64::from(self.high_conf_det_threshold),
            ),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Threshold { name, value });
            }
        }
        Ok(())
    }
}

/// How far one call moves the filters (`trackers`' `PredictTiming`).
#[derive(Debug, Clone, Copy)]
struct Timing {
    frame_step: f64,
    elapsed: Option<f64>,
    skip_update: bool,
    frame_rate: Option<f64>,
}

/// The constant-velocity filter over `[x1, y1, x2, y2, vx1, vy1, vx2, vy2]`.
#[derive(Debug, Clone)]
struct Filter {
    x: V8,
    p: M8,
    r: M4,
    /// The baseline process noise (the tuned 0.01 I) and the per-axis acceleration variance derived from it.
    q0: M8,
    cached_step: Option<f64>,
    f: M8,
    q: M8,
}

fn transition(step: f64) -> M8 {
    let mut f = M8::identity();
    for i in 0..4 {
        f[(i, i + 4)] = step;
    }
    f
}

impl Filter {
    fn new(b: [f64; 4]) -> Self {
        let mut x = V8::zeros();
        for i in 0..4 {
            x[i] = b[i];
        }
        Self {
            x,
            p: M8::identity(),
            // ByteTrack's tuning of `trackers`: R * 0.1, Q * 0.01.
            r: M4::identity() * 0.1,
            q0: M8::identity() * 0.01,
            cached_step: None,
            f: M8::identity(),
            q: M8::identity(),
        }
    }

    /// `ScalableProcessNoise.build_Q`: the baseline near the nominal step, else the DWNA matrix.
    fn build_q(&self, step: f64, frame_rate: Option<f64>) -> M8 {
        let tolerance = match frame_rate {
            Some(r) if r > 0.0 => 0.004 * r,
            _ => 0.1,
        };
        if (step - 1.0).abs() <= tolerance {
            return self.q0;
        }
        let mut q = M8::zeros();
        let dt2 = step * step;
        let dt3 = dt2 * step;
        let dt4 = dt2 * dt2;
        for k in 0..4 {
            let (p, v) = (k, k + 4);
            let sa2 = self.q0[(v, v)];
            q[(p, p)] = sa2 * dt4 / 4.0;
            q[(p, v)] = sa2 * dt3 / 2.0;
            q[(v, p)] = sa2 * dt3 / 2.0;
            q[(v, v)] = sa2 * dt2;
        }
        q
    }

    fn predict(&mut self, step: f64, frame_rate: Option<f64>) {
        if self.cached_step != Some(step) {
            self.f = transition(step);
            self.q = self.build_q(step, frame_rate);
            self.cached_step = Some(step);
        }
        self.x = self.f * self.x;
        self.p = self.f * self.p * self.f.transpose() + self.q;
    }

    fn update(&mut self, z: [f64; 4]) {
        let h = M48::identity();
        let z = SVector::<f64, 4>::from(z);
        let y = z - h * self.x;
        let pht = self.p * h.transpose();
        let s = h * pht + self.r;
        let Some(s_inv) = s.try_inverse() else {
            return;
        };
        let k = pht * s_inv;
        self.x += k * y;
        let i_kh = M8::identity() - k * h;
        self.p = i_kh * self.p * i_kh.transpose() + k * self.r * k.transpose();
    }

    fn bbox(&self) -> [f64; 4] {
        [self.x[0], self.x[1], self.x[2], self.x[3]]
    }
}

#[derive(Debug, Clone)]
struct Tracklet {
    filter: Filter,
    id: i64,
    time_since_update: u32,
    seconds_since_update: f64,
    consecutive: u32,
}

impl Tracklet {
    fn predict(&mut self, t: &Timing) {
        self.filter.predict(t.frame_step, t.frame_rate);
        if self.time_since_update > 0 {
            self.consecutive = 0;
        }
        self.time_since_update += 1;
        self.seconds_since_update = match t.elapsed {
            Some(e) => self.seconds_since_update + e,
            None => 0.0,
        };
    }

    fn update(&mut self, b: [f64; 4]) {
        self.filter.update(b);
        self.time_since_update = 0;
        self.seconds_since_update = 0.0;
        self.consecutive += 1;
    }

    fn within_budget(&self, frames: u32, seconds: Option<f64>) -> bool {
        match seconds {
            Some(s) => self.seconds_since_update <= s,
            None => self.time_since_update <= frames,
        }
    }
}

/// `supervision.box_iou_batch`: IoU in f64, returned as f32 (then widened for the assignment, as SciPy does).
fn iou_f32(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let union = area_a + area_b - inter;
    if union > 0.0 {
        f64::from((inter / union) as f32)
    } else {
        0.0
    }
}

/// `_get_associated_indices`: the optimal assignment maximising IoU, matches at or above the threshold; the
/// unmatched rows and columns in ascending order.
fn associate(
    rows: &[[f64; 4]],
    cols: &[[f64; 4]],
    threshold: f64,
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut matched = Vec::new();
    let mut row_free = vec![true; rows.len()];
    let mut col_free = vec![true; cols.len()];
    if !rows.is_empty() && !cols.is_empty() {
        let sim: Vec<f64> = rows
            .iter()
            .flat_map(|r| cols.iter().map(move |c| iou_f32(r, c)))
            .collect();
        if let Ok((rr, cc)) = lsap::solve(rows.len(), cols.len(), &sim, true) {
            for (r, c) in rr.into_iter().zip(cc) {
                if sim[r * cols.len() + c] >= threshold {
                    matched.push((r, c));
                    row_free[r] = false;
                    col_free[c] = false;
                }
            }
        }
    }
    let free = |v: Vec<bool>| {
        v.into_iter()
            .enumerate()
            .filter(|x| x.1)
            .map(|x| x.0)
            .collect()
    };
    (matched, free(row_free), free(col_free))
}

/// One detection's answer: its index in the input and its track id (`-1` until the track is confirmed).
pub type Assignment = (usize, i64);

/// `trackers`' `ByteTrackTracker`, step for step.
#[derive(Debug, Clone)]
pub struct ByteTrackCompat {
    cfg: ByteTrackConfig,
    max_frames_without_update: u32,
    max_seconds_without_update: f64,
    tracks: Vec<Tracklet>,
    next_id: i64,
    last_timestamp: Option<f64>,
}

impl ByteTrackCompat {
    pub fn new(cfg: ByteTrackConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let max_frames_without_update = if cfg.lost_track_buffer == 0 {
            0
        } else {
            ((cfg.frame_rate / 30.0 * f64::from(cfg.lost_track_buffer)).ceil() as u32).max(1)
        };
        Ok(Self {
            cfg,
            max_frames_without_update,
            max_seconds_without_update: f64::from(cfg.lost_track_buffer) / 30.0,
            tracks: Vec::new(),
            next_id: 0,
            last_timestamp: None,
        })
    }

    fn timing(&mut self, timestamp: Option<f64>) -> Timing {
        let rate = self.cfg.frame_rate;
        let Some(ts) = timestamp else {
            self.last_timestamp = None;
            return Timing {
                frame_step: 1.0,
                elapsed: None,
                skip_update: false,
                frame_rate: None,
            };
        };
        let skip = Timing {
            frame_step: 0.0,
            elapsed: None,
            skip_update: true,
            frame_rate: None,
        };
        if !ts.is_finite() {
            return skip;
        }
        match self.last_timestamp {
            None => {
                self.last_timestamp = Some(ts);
                let elapsed = 1.0 / rate;
                Timing {
                    frame_step: elapsed * rate,
                    elapsed: Some(elapsed),
                    skip_update: false,
                    frame_rate: Some(rate),
                }
            }
            Some(last) if ts < last => skip,
            Some(last) if ts == last => Timing {
                frame_step: 0.0,
                elapsed: Some(0.0),
                skip_update: false,
                frame_rate: None,
            },
            Some(last) => {
                let elapsed = ts - last;
                self.last_timestamp = Some(ts);
                Timing {
                    frame_step: elapsed * rate,
                    elapsed: Some(elapsed),
                    skip_update: false,
                    frame_rate: Some(rate),
                }
            }
        }
    }

    fn allocate(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// One frame: `boxes` as `[x1, y1, x2, y2]`, `confidences` (`None`: all 1), `timestamp` in seconds (`None`:
    /// one frame at the nominal rate). Returns every detection's id in `trackers`' output order.
    pub fn update(
        &mut self,
        boxes: &[[f64; 4]],
        confidences: Option<&[f32]>,
        timestamp: Option<f64>,
    ) -> Vec<Assignment> {
        let t = self.timing(timestamp);
        if t.skip_update {
            return (0..boxes.len()).map(|i| (i, -1)).collect();
        }
        if self.tracks.is_empty() && boxes.is_empty() {
            return Vec::new();
        }
        let conf = |i: usize| confidences.map_or(1.0, |c| c[i]);
        let mut out = Vec::with_capacity(boxes.len());
        if t.frame_step > 0.0 {
            for tr in &mut self.tracks {
                tr.predict(&t);
            }
        }
        let budget = t.elapsed.map(|_| self.max_seconds_without_update);
        if let Some(b) = budget {
            self.tracks.retain(|tr| tr.seconds_since_update <= b);
        }
        let high: Vec<usize> = (0..boxes.len())
            .filter(|&i| conf(i) >= self.cfg.high_conf_det_threshold)
            .collect();
        let low: Vec<usize> = (0..boxes.len())
            .filter(|&i| conf(i) < self.cfg.high_conf_det_threshold)
            .collect();
        let predicted: Vec<[f64; 4]> = self.tracks.iter().map(|t| t.filter.bbox()).collect();
        let high_boxes: Vec<[f64; 4]> = high.iter().map(|&i| boxes[i]).collect();
        let (matched, unmatched_tracks, unmatched_high) =
            associate(&predicted, &high_boxes, self.cfg.minimum_iou_threshold);
        for (row, col) in matched {
            self.update_track(row, high_boxes[col]);
            out.push((high[col], self.tracks[row].id));
        }
        let remaining: Vec<[f64; 4]> = unmatched_tracks.iter().map(|&r| predicted[r]).collect();
        let low_boxes: Vec<[f64; 4]> = low.iter().map(|&i| boxes[i]).collect();
        let (matched, _, unmatched_low) =
            associate(&remaining, &low_boxes, self.cfg.minimum_iou_threshold);
        for (row, col) in matched {
            let r = unmatched_tracks[row];
            self.update_track(r, low_boxes[col]);
            out.push((low[col], self.tracks[r].id));
        }
        for c in unmatched_low {
            out.push((low[c], -1));
        }
        for c in unmatched_high {
            let i = high[c];
            out.push((i, -1));
            if f64::from(conf(i)) >= self.cfg.track_activation_threshold {
                self.tracks.push(Tracklet {
                    filter: Filter::new(boxes[i]),
                    id: -1,
                    time_since_update: 0,
                    seconds_since_update: 0.0,
                    consecutive: 1,
                });
            }
        }
        let (min_consecutive, max_frames) = (
            self.cfg.minimum_consecutive_frames,
            self.max_frames_without_update,
        );
        self.tracks.retain(|tr| {
            let mature = tr.id != -1 || tr.consecutive >= min_consecutive;
            let active = tr.time_since_update == 0;
            tr.within_budget(max_frames, budget) && (mature || active)
        });
        out
    }

    fn update_track(&mut self, i: usize, b: [f64; 4]) {
        self.tracks[i].update(b);
        if self.tracks[i].consecutive >= self.cfg.minimum_consecutive_frames
            && self.tracks[i].id == -1
        {
            let id = self.allocate();
            self.tracks[i].id = id;
        }
    }

    /// The confirmed tracks' current boxes (`tracked_objects`), with their ids.
    pub fn tracked(&self) -> Vec<(i64, [f64; 4])> {
        self.tracks
            .iter()
            .filter(|t| t.id != -1)
            .map(|t| (t.id, t.filter.bbox()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_gets_an_id_on_its_second_frame_and_keeps_it() {
        let mut bt = ByteTrackCompat::new(ByteTrackConfig::default()).unwrap();
        let b = |x: f64| [x, 10.0, x + 20.0, 40.0];
        assert_eq!(bt.update(&[b(0.0)], Some(&[0.9]), None), vec![(0, -1)]);
        assert_eq!(bt.update(&[b(2.0)], Some(&[0.9]), None), vec![(0, 0)]);
        assert_eq!(
            bt.update(&[b(4.0)], Some(&[0.4]), None),
            vec![(0, 0)],
            "low-score detections keep the track"
        );
        // Lost for a while, then found again near the prediction.
        for _ in 0..5 {
            assert_eq!(bt.update(&[], None, None), vec![]);
        }
        let x = bt.tracked()[0].1[0];
        assert_eq!(bt.update(&[b(x)], Some(&[0.9]), None), vec![(0, 0)]);
    }

    #[test]
    fn bad_configuration_is_refused() {
        let cfg = ByteTrackConfig {
            frame_rate: 0.0,
            ..ByteTrackConfig::default()
        };
        assert_eq!(
            ByteTrackCompat::new(cfg).unwrap_err().to_string(),
            "frame rate 0 must be a finite positive number"
        );
    }
}
