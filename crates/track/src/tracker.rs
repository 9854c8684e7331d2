//! The oriented tracker: ByteTrack's two-stage association with OC-SORT's observation-centric momentum, recovery
//! and re-update, on oriented Kalman states advanced by elapsed time.

use crate::kalman::{Measure, Noise, OrientedFilter, nearest_equivalent};
use nsod_types::geometry::{PreparedBox, prepared_rotated_iou};
use nsod_types::index::Grid;
use nsod_types::{BBox, OrientedBox};
use std::collections::VecDeque;

/// One detection given to the tracker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub obb: OrientedBox,
    /// The score the thresholds apply to (by default the rule-refined one).
    pub score: f32,
    pub class_id: u32,
}

/// A global camera motion between the previous frame and this one: `p' = scale · R(rotation) · p + (tx, ty)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraMotion {
    pub scale: f64,
    pub rotation: f64,
    pub tx: f64,
    pub ty: f64,
}

impl CameraMotion {
    pub const IDENTITY: Self = Self {
        scale: 1.0,
        rotation: 0.0,
        tx: 0.0,
        ty: 0.0,
    };
}

/// Which geometry the tracker keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Geometry {
    /// Centre, size and angle (the default).
    #[default]
    Oriented,
    /// The axis-aligned hull of each detection, angle fixed at 0: the usual trackers' state, for comparison.
    Axis,
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Oriented => "oriented",
            Self::Axis => "axis",
        })
    }
}

impl std::str::FromStr for Geometry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "oriented" => Ok(Self::Oriented),
            "axis" => Ok(Self::Axis),
            _ => Err(format!("{s:?} is not oriented or axis")),
        }
    }
}

/// Tracker parameters, with their defaults (ByteTrack's and OC-SORT's published settings where they have one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    pub geometry: Geometry,
    /// Detections at or above this score are associated first and may start tracks (ByteTrack `track_thresh`).
    pub high_score: f32,
    /// Detections below this score are ignored; those between it and `high_score` only keep tracks alive.
    pub low_score: f32,
    /// A track starts from an unmatched detection at or above this score (ByteTrack `new_track_thresh`).
    pub new_track_score: f32,
    /// Minimum buffered IoU of a first-stage match (ByteTrack's `match_thresh` 0.8 as a cost).
    pub match_iou: f64,
    /// Minimum IoU of a second-stage (low-score) match.
    pub low_match_iou: f64,
    /// Minimum IoU of an observation-centric recovery (a lost track's last observation against a detection).
    pub recovery_iou: f64,
    /// The centre-distance fallback for what the IoU stages left (a small fast object, a thin one whose box no
    /// longer overlaps its prediction after a turn or an occlusion): a track and a high-score detection are a
    /// candidate when the detection's centre is within this fraction of the longer side (of the track's prediction
    /// or the detection, whichever is longer) from the predicted centre; the nearest win. 0 turns it off.
    pub distance_gate: f64,
    /// C-BIoU's buffer: each box's sides are enlarged by `2 · buffer` times themselves before the first stage's IoU,
    /// so small fast objects that no longer overlap their prediction are still matched.
    pub buffer: f64,
    /// Consecutive matched frames before a track is confirmed (and given to the outputs).
    pub min_hits: u32,
    /// Seconds a lost track is kept before it ends.
    pub max_lost_seconds: f64,
    /// OC-SORT's momentum weight: how much agreement of a detection with the track's observed direction counts.
    pub momentum: f64,
    /// Cost of a class change in an association (class-agnostic matching; the track's class is the score-weighted
    /// vote of its detections).
    pub class_change_cost: f64,
    pub noise: Noise,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            geometry: Geometry::Oriented,
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            recovery_iou: 0.3,
            distance_gate: 0.5,
            buffer: 0.3,
            min_hits: 2,
            max_lost_seconds: 1.0,
            momentum: 0.2,
            class_change_cost: 0.1,
            noise: Noise::default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrackError {
    #[error("{name} {value} must be in [{lo}, {hi}]")]
    Setting {
        name: &'static str,
        value: f64,
        lo: f64,
        hi: f64,
    },
    #[error("frame time {time} s is not finite")]
    Time { time: f64 },
    #[error("frame time {time} s is before the previous frame's {previous} s")]
    Backwards { time: f64, previous: f64 },
    #[error("camera motion {0:?} is not a finite similarity transform")]
    Motion(CameraMotion),
}

impl TrackerConfig {
    pub fn validate(&self) -> Result<(), TrackError> {
        let checks: [(&'static str, f64, f64, f64); 11] = [
            ("high score", f64::from(self.high_score), 0.0, 1.0),
            ("low score", f64::from(self.low_score), 0.0, 1.0),
            ("new track score", f64::from(self.new_track_score), 0.0, 1.0),
            ("match IoU", self.match_iou, 0.0, 1.0),
            ("low match IoU", self.low_match_iou, 0.0, 1.0),
            ("recovery IoU", self.recovery_iou, 0.0, 1.0),
            ("buffer", self.buffer, 0.0, 2.0),
            ("distance gate", self.distance_gate, 0.0, 4.0),
            ("max lost seconds", self.max_lost_seconds, 0.0, 86_400.0),
            ("momentum", self.momentum, 0.0, 1.0),
            ("class change cost", self.class_change_cost, 0.0, 1.0),
        ];
        for (name, value, lo, hi) in checks {
            if !(value >= lo && value <= hi) {
                return Err(TrackError::Setting {
                    name,
                    value,
                    lo,
                    hi,
                });
            }
        }
        if self.low_score > self.high_score {
            return Err(TrackError::Setting {
                name: "low score",
                value: f64::from(self.low_score),
                lo: 0.0,
                hi: f64::from(self.high_score),
            });
        }
        Ok(())
    }
}

/// A track's life stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackState {
    /// Seen, not yet confirmed (fewer than `min_hits` frames).
    Tentative,
    /// Matched in this frame.
    Tracked,
    /// Confirmed, not matched in this frame; its box is the prediction.
    Lost,
}

/// Why a track ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Not matched for longer than `max_lost_seconds`.
    Lost,
    /// The sequence ended.
    Finished,
}

impl EndReason {
    pub const ALL: [Self; 2] = [Self::Lost, Self::Finished];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lost => "lost",
            Self::Finished => "finished",
        }
    }
}

/// A confirmed track as one frame sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackView {
    pub id: u64,
    pub class_id: u32,
    /// The filtered box (the prediction for a lost track).
    pub obb: OrientedBox,
    /// The matched detection's score (the last one for a lost track).
    pub score: f32,
    /// Index of the matched detection in this frame's input.
    pub detection: Option<usize>,
    pub state: TrackState,
    /// Seconds since the track's first detection.
    pub age: f64,
    pub hits: u32,
    /// Centre velocity, px/s.
    pub velocity: (f64, f64),
    /// Direction of motion, radians (image axes: x right, y down), from the velocity; `None` when nearly still.
    pub heading: Option<f64>,
}

/// A track that ended, with its whole life.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedTrack {
    pub id: u64,
    pub reason: EndReason,
    pub class_id: u32,
    pub first_time: f64,
    pub last_time: f64,
    pub hits: u32,
}

/// What one frame did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameTracks {
    /// Confirmed tracks: matched (`Tracked`) and `Lost`, by id.
    pub tracks: Vec<TrackView>,
    /// Ids confirmed in this frame.
    pub started: Vec<u64>,
    pub ended: Vec<EndedTrack>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    time: f64,
    z: Measure,
}

#[derive(Debug, Clone)]
struct Track {
    /// 0 while tentative.
    id: u64,
    filter: OrientedFilter,
    /// The filter right after the last observation, for OC-SORT's re-update.
    at_last_seen: OrientedFilter,
    /// Times of frames the track was predicted through without a match since its last observation.
    missed: Vec<f64>,
    history: VecDeque<Seen>,
    first_time: f64,
    hits: u32,
    class_votes: Vec<(u32, f64)>,
    score: f32,
    tracked_now: bool,
    detection: Option<usize>,
}

/// Observations kept per track for the momentum (OC-SORT's Δt = 3).
const HISTORY: usize = 4;
/// Missed frames replayed at most by a re-update.
const MAX_REPLAY: usize = 256;

impl Track {
    fn last(&self) -> Seen {
        *self.history.back().expect("a track has an observation")
    }

    fn class_id(&self) -> u32 {
        self.class_votes
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |v| v.0)
    }

    /// The observed direction: from the observation about three frames back to the last one (OC-SORT).
    fn direction(&self) -> Option<(f64, f64)> {
        let first = self.history.front()?;
        let last = self.history.back()?;
        let (dx, dy) = (last.z.cx - first.z.cx, last.z.cy - first.z.cy);
        let n = dx.hypot(dy);
        (n > 1e-6 && self.history.len() >= 2).then(|| (dx / n, dy / n))
    }

    fn vote(&mut self, class_id: u32, score: f32) {
        match self.class_votes.iter_mut().find(|v| v.0 == class_id) {
            Some(v) => v.1 += f64::from(score),
            None => self.class_votes.push((class_id, f64::from(score))),
        }
    }
}

fn to_measure(o: &OrientedBox, geometry: Geometry) -> Measure {
    match geometry {
        Geometry::Oriented => Measure {
            cx: f64::from(o.cx),
            cy: f64::from(o.cy),
            w: f64::from(o.w),
            h: f64::from(o.h),
            angle: f64::from(o.angle),
        },
        Geometry::Axis => {
            let b = o.aabb();
            let c = b.center();
            Measure {
                cx: c.x,
                cy: c.y,
                w: f64::from(b.width()),
                h: f64::from(b.height()),
                angle: 0.0,
            }
        }
    }
}

fn to_obb(m: &Measure) -> OrientedBox {
    OrientedBox::new(
        m.cx as f32,
        m.cy as f32,
        m.w.max(0.0) as f32,
        m.h.max(0.0) as f32,
        crate::kalman::wrap_half_turn(m.angle) as f32,
    )
}

fn buffered(m: &Measure, b: f64) -> Measure {
    Measure {
        w: m.w * (1.0 + 2.0 * b),
        h: m.h * (1.0 + 2.0 * b),
        ..*m
    }
}

/// The multi-object tracker. Feed it frames in time order with [`Tracker::update`]; [`Tracker::finish`] ends the
/// remaining tracks.
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    last_time: Option<f64>,
    frames: u64,
}

/// How one association stage compares tracks with detections.
#[derive(Debug, Clone, Copy)]
struct Spec {
    /// C-BIoU buffer (0: plain IoU).
    buffer: f64,
    /// Minimum similarity of a match.
    threshold: f64,
    /// Add OC-SORT's momentum term.
    momentum: bool,
    /// Compare with the track's last observation instead of its prediction (OC-SORT's recovery).
    from_last_observation: bool,
}

/// Candidate pairs of one association stage, per connected component, solved with `lsap`.
struct Stage<'a> {
    rows: &'a [usize],
    cols: &'a [usize],
    /// (row index into `rows`, col index into `cols`, similarity, score)
    edges: Vec<(usize, usize, f64, f64)>,
}

impl Stage<'_> {
    /// Solves the stage and records its matches: the tracks and detections used, the (track, detection) pairs.
    fn assign(
        self,
        track_used: &mut [bool],
        det_used: &mut [bool],
        matched: &mut Vec<(usize, usize)>,
    ) {
        for (r, c) in self.solve() {
            let (t, d) = (self.rows[r], self.cols[c]);
            track_used[t] = true;
            det_used[d] = true;
            matched.push((t, d));
        }
    }

    /// Optimal matches: the assignment maximising the number of valid pairs, then their total score.
    fn solve(&self) -> Vec<(usize, usize)> {
        let (nr, nc) = (self.rows.len(), self.cols.len());
        if self.edges.is_empty() {
            return Vec::new();
        }
        // Union-find over rows (0..nr) and cols (nr..nr+nc).
        let mut parent: Vec<usize> = (0..nr + nc).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for &(r, c, _, _) in &self.edges {
            let (a, b) = (find(&mut parent, r), find(&mut parent, nr + c));
            if a != b {
                parent[a] = b;
            }
        }
        // The edges of each connected component, by root.
        let mut comps: std::collections::BTreeMap<usize, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (k, &(r, _, _, _)) in self.edges.iter().enumerate() {
            let root = find(&mut parent, r);
            comps.entry(root).or_default().push(k);
        }
        let mut out = Vec::new();
        for es in comps.into_values() {
            if es.len() == 1 {
                let (r, c, _, _) = self.edges[es[0]];
                out.push((r, c));
                continue;
            }
            let mut rs: Vec<usize> = es.iter().map(|&k| self.edges[k].0).collect();
            let mut cs: Vec<usize> = es.iter().map(|&k| self.edges[k].1).collect();
            rs.sort_unstable();
            rs.dedup();
            cs.sort_unstable();
            cs.dedup();
            let mut m = vec![0.0; rs.len() * cs.len()];
            for &k in &es {
                let (r, c, _, score) = self.edges[k];
                let (i, j) = (
                    rs.binary_search(&r).expect("row of the component"),
                    cs.binary_search(&c).expect("col of the component"),
                );
                // Valid pairs are worth more than any number of invalid ones (ByteTrack's cost limit).
                m[i * cs.len() + j] = 1.0 + score;
            }
            if let Ok((ri, ci)) = lsap::solve(rs.len(), cs.len(), &m, true) {
                for (i, j) in ri.into_iter().zip(ci) {
                    if m[i * cs.len() + j] > 0.0 {
                        out.push((rs[i], cs[j]));
                    }
                }
            }
        }
        out
    }
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Result<Self, TrackError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
            last_time: None,
            frames: 0,
        })
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Tracks alive (tentative ones included).
    pub fn live(&self) -> usize {
        self.tracks.len()
    }

    /// The centre-distance fallback's edges: similarity `1 - d / gate`, `d` the distance from the track's predicted
    /// centre to the detection's, `gate` [`TrackerConfig::distance_gate`] times the longer side of the two boxes.
    fn distance_edges(
        &self,
        rows: &[usize],
        cols: &[usize],
        dets: &[Measure],
        obs: &[Observation],
    ) -> Vec<(usize, usize, f64, f64)> {
        if rows.is_empty() || cols.is_empty() {
            return Vec::new();
        }
        let det_boxes: Vec<BBox> = cols.iter().map(|&c| to_obb(&dets[c]).aabb()).collect();
        let mut grid = Grid::new(&det_boxes);
        let mut edges = Vec::new();
        let longest = cols
            .iter()
            .map(|&c| dets[c].w.max(dets[c].h))
            .fold(0.0f64, f64::max);
        for (i, &r) in rows.iter().enumerate() {
            let t = &self.tracks[r];
            let p = t.filter.box_now();
            // A lost track's prediction drifts with the time it has been unseen: the gate grows by half the distance
            // it was predicted to travel meanwhile.
            let (vx, vy) = t.filter.velocity();
            let drift =
                0.5 * vx.hypot(vy) * (self.last_time.unwrap_or(0.0) - t.last().time).max(0.0);
            let reach = self.cfg.distance_gate * p.w.max(p.h).max(longest) + drift;
            let q = BBox::new(
                (p.cx - reach) as f32,
                (p.cy - reach) as f32,
                (p.cx + reach) as f32,
                (p.cy + reach) as f32,
            );
            let class = t.class_id();
            grid.for_each_near(&q, |j| {
                let d = &dets[cols[j]];
                let gate = self.cfg.distance_gate * p.w.max(p.h).max(d.w.max(d.h)) + drift;
                let dist = (d.cx - p.cx).hypot(d.cy - p.cy);
                if dist.is_nan() || dist >= gate {
                    return;
                }
                let sim = 1.0 - dist / gate;
                let mut score = sim;
                if obs[cols[j]].class_id != class {
                    score -= self.cfg.class_change_cost;
                }
                edges.push((i, j, sim, score));
            });
        }
        edges
    }

    /// Builds the edges between `rows` (tracks) and `cols` (detections) whose gated similarity reaches
    /// `threshold`. `box_of` gives a track's box for this stage (prediction or last observation).
    fn edges(
        &self,
        rows: &[usize],
        cols: &[usize],
        dets: &[Measure],
        obs: &[Observation],
        spec: Spec,
    ) -> Vec<(usize, usize, f64, f64)> {
        let Spec {
            buffer,
            threshold,
            momentum,
            from_last_observation,
        } = spec;
        let box_of = |t: &Track| {
            if from_last_observation {
                t.last().z
            } else {
                t.filter.box_now()
            }
        };
        if rows.is_empty() || cols.is_empty() {
            return Vec::new();
        }
        // Boxes as the stage compares them (buffered or not), once each; a pair is a candidate only when their
        // axis-aligned hulls overlap (the grid finds those), the necessary condition for a positive IoU.
        let as_obb = |m: &Measure| {
            if buffer > 0.0 {
                to_obb(&buffered(m, buffer))
            } else {
                to_obb(m)
            }
        };
        // Corners and hulls once per box, not once per candidate pair.
        let det_obbs: Vec<PreparedBox> = cols
            .iter()
            .map(|&c| PreparedBox::new(&as_obb(&dets[c])))
            .collect();
        let det_boxes: Vec<BBox> = det_obbs.iter().map(|p| *p.hull()).collect();
        let mut grid = Grid::new(&det_boxes);
        let mut edges = Vec::with_capacity(rows.len().min(cols.len()) * 2);
        for (i, &r) in rows.iter().enumerate() {
            let t = &self.tracks[r];
            let tb = PreparedBox::new(&as_obb(&box_of(t)));
            let q = *tb.hull();
            let dir = if momentum { t.direction() } else { None };
            let last = t.last().z;
            let class = t.class_id();
            grid.for_each_near(&q, |j| {
                let b = &det_boxes[j];
                if b.x1 >= q.x2 || q.x1 >= b.x2 || b.y1 >= q.y2 || q.y1 >= b.y2 {
                    return;
                }
                // IoU does not depend on how the rectangle is expressed (sides, angle).
                let sim = f64::from(prepared_rotated_iou(&tb, &det_obbs[j]));
                if sim < threshold || sim <= 0.0 {
                    return;
                }
                let d = &dets[cols[j]];
                let o = &obs[cols[j]];
                let mut score = sim;
                if let Some((ux, uy)) = dir {
                    let (dx, dy) = (d.cx - last.cx, d.cy - last.cy);
                    let n = dx.hypot(dy);
                    if n > 1e-6 {
                        // OC-SORT: (π/2 - |angle between directions|) / π, weighted by the detection's score.
                        let cos = ((ux * dx + uy * dy) / n).clamp(-1.0, 1.0);
                        let diff = cos.acos();
                        score += self.cfg.momentum * (std::f64::consts::FRAC_PI_2 - diff)
                            / std::f64::consts::PI
                            * f64::from(o.score);
                    }
                }
                if o.class_id != class {
                    score -= self.cfg.class_change_cost;
                }
                edges.push((i, j, sim, score));
            });
        }
        edges
    }

    /// Tracks one frame at `time` seconds. `motion` maps the previous frame's pixels to this one's (camera-motion
    /// compensation); detections below `low_score` are ignored.
    pub fn update(
        &mut self,
        time: f64,
        observations: &[Observation],
        motion: Option<&CameraMotion>,
    ) -> Result<FrameTracks, TrackError> {
        if !time.is_finite() {
            return Err(TrackError::Time { time });
        }
        if let Some(previous) = self.last_time
            && time < previous
        {
            return Err(TrackError::Backwards { time, previous });
        }
        if let Some(m) = motion {
            let ok = [m.scale, m.rotation, m.tx, m.ty]
                .iter()
                .all(|v| v.is_finite())
                && m.scale > 0.0;
            if !ok {
                return Err(TrackError::Motion(*m));
            }
        }
        let dt = self.last_time.map_or(0.0, |p| time - p);
        self.last_time = Some(time);
        let first_frame = self.frames == 0;
        self.frames += 1;
        let noise = self.cfg.noise;
        let geometry = self.cfg.geometry;
        for t in &mut self.tracks {
            if let Some(m) = motion {
                t.filter.apply_motion(m);
                t.at_last_seen.apply_motion(m);
                for s in &mut t.history {
                    s.z = crate::kalman::moved(&s.z, m);
                }
            }
            t.filter.predict(dt, &noise);
            t.tracked_now = false;
            t.detection = None;
        }
        let valid: Vec<usize> = (0..observations.len())
            .filter(|&i| {
                let o = &observations[i];
                o.score >= self.cfg.low_score
                    && o.score.is_finite()
                    && [o.obb.cx, o.obb.cy, o.obb.w, o.obb.h, o.obb.angle]
                        .iter()
                        .all(|v| v.is_finite())
                    && o.obb.w > 0.0
                    && o.obb.h > 0.0
            })
            .collect();
        let dets: Vec<Measure> = observations
            .iter()
            .map(|o| to_measure(&o.obb, geometry))
            .collect();
        let high: Vec<usize> = valid
            .iter()
            .copied()
            .filter(|&i| observations[i].score >= self.cfg.high_score)
            .collect();
        let low: Vec<usize> = valid
            .iter()
            .copied()
            .filter(|&i| observations[i].score < self.cfg.high_score)
            .collect();
        let all_tracks: Vec<usize> = (0..self.tracks.len()).collect();
        let mut matched: Vec<(usize, usize)> = Vec::new();

        // Stage 1: high-score detections against every track's prediction, buffered IoU, with momentum.
        let e = self.edges(
            &all_tracks,
            &high,
            &dets,
            observations,
            Spec {
                buffer: self.cfg.buffer,
                threshold: self.cfg.match_iou,
                momentum: true,
                from_last_observation: false,
            },
        );
        let mut track_used = vec![false; self.tracks.len()];
        let mut det_used = vec![false; observations.len()];
        Stage {
            rows: &all_tracks,
            cols: &high,
            edges: e,
        }
        .assign(&mut track_used, &mut det_used, &mut matched);

        // Stage 2: low-score detections keep tracks that were matched in the previous frame (ByteTrack).
        let recent: Vec<usize> = (0..self.tracks.len())
            .filter(|&r| {
                !track_used[r] && self.tracks[r].missed.is_empty() && self.tracks[r].id != 0
            })
            .collect();
        let e = self.edges(
            &recent,
            &low,
            &dets,
            observations,
            Spec {
                buffer: 0.0,
                threshold: self.cfg.low_match_iou,
                momentum: false,
                from_last_observation: false,
            },
        );
        Stage {
            rows: &recent,
            cols: &low,
            edges: e,
        }
        .assign(&mut track_used, &mut det_used, &mut matched);

        // Stage 3: OC-SORT's recovery: tracks left against high-score detections left, by last observation.
        let rest_tracks: Vec<usize> = (0..self.tracks.len()).filter(|&r| !track_used[r]).collect();
        let rest_high: Vec<usize> = high.iter().copied().filter(|&c| !det_used[c]).collect();
        let e = self.edges(
            &rest_tracks,
            &rest_high,
            &dets,
            observations,
            Spec {
                buffer: 0.0,
                threshold: self.cfg.recovery_iou,
                momentum: false,
                from_last_observation: true,
            },
        );
        Stage {
            rows: &rest_tracks,
            cols: &rest_high,
            edges: e,
        }
        .assign(&mut track_used, &mut det_used, &mut matched);

        // Stage 4: the centre-distance fallback for confirmed tracks and high-score detections still left.
        if self.cfg.distance_gate > 0.0 {
            let rest_tracks: Vec<usize> = (0..self.tracks.len())
                .filter(|&r| !track_used[r] && self.tracks[r].id != 0)
                .collect();
            let rest_high: Vec<usize> = high.iter().copied().filter(|&c| !det_used[c]).collect();
            let e = self.distance_edges(&rest_tracks, &rest_high, &dets, observations);
            Stage {
                rows: &rest_tracks,
                cols: &rest_high,
                edges: e,
            }
            .assign(&mut track_used, &mut det_used, &mut matched);
        }

        let mut out = FrameTracks::default();
        for (r, c) in matched {
            let o = observations[c];
            let z = dets[c];
            let t = &mut self.tracks[r];
            let pred = t.filter.box_now();
            if t.missed.is_empty() {
                t.filter.update(nearest_equivalent(z, &pred), &noise);
            } else {
                // OC-SORT's re-update: back to the last observation, then along a straight virtual trajectory
                // from it to this detection through the missed frames' times, then this detection.
                let last = t.last();
                let mut f = t.at_last_seen;
                let mut prev = last.time;
                let span = (time - last.time).max(1e-9);
                for &tm in t.missed.iter().take(MAX_REPLAY) {
                    f.predict(tm - prev, &noise);
                    let a = (tm - last.time) / span;
                    let zz = nearest_equivalent(z, &last.z);
                    let virt = Measure {
                        cx: last.z.cx + a * (zz.cx - last.z.cx),
                        cy: last.z.cy + a * (zz.cy - last.z.cy),
                        w: last.z.w + a * (zz.w - last.z.w),
                        h: last.z.h + a * (zz.h - last.z.h),
                        angle: last.z.angle + a * (zz.angle - last.z.angle),
                    };
                    let p = f.box_now();
                    f.update(nearest_equivalent(virt, &p), &noise);
                    prev = tm;
                }
                f.predict(time - prev, &noise);
                let p = f.box_now();
                f.update(nearest_equivalent(z, &p), &noise);
                t.filter = f;
                t.missed.clear();
            }
            t.at_last_seen = t.filter;
            let zz = nearest_equivalent(z, &pred);
            t.history.push_back(Seen { time, z: zz });
            while t.history.len() > HISTORY {
                t.history.pop_front();
            }
            t.hits += 1;
            t.score = o.score;
            t.vote(o.class_id, o.score);
            t.tracked_now = true;
            t.detection = Some(c);
            if t.id == 0 && (t.hits >= self.cfg.min_hits || first_frame) {
                t.id = self.next_id;
                self.next_id += 1;
                out.started.push(t.id);
            }
        }

        // Births: unmatched high-score detections.
        for &c in &high {
            if det_used[c] || observations[c].score < self.cfg.new_track_score {
                continue;
            }
            let o = observations[c];
            let z = dets[c];
            let filter = OrientedFilter::new(z, &noise);
            let mut t = Track {
                id: 0,
                filter,
                at_last_seen: filter,
                missed: Vec::new(),
                history: VecDeque::from([Seen { time, z }]),
                first_time: time,
                hits: 1,
                class_votes: Vec::new(),
                score: o.score,
                tracked_now: true,
                detection: Some(c),
            };
            t.vote(o.class_id, o.score);
            if first_frame || self.cfg.min_hits <= 1 {
                t.id = self.next_id;
                self.next_id += 1;
                out.started.push(t.id);
            }
            self.tracks.push(t);
        }

        // Deaths: tentative tracks missed once, lost tracks past their time.
        // In place (the tracks kept stay in order and are not moved unless one before them goes).
        let max_lost = self.cfg.max_lost_seconds;
        self.tracks.retain_mut(|t| {
            if t.tracked_now {
                return true;
            }
            if t.id == 0 {
                return false;
            }
            t.missed.push(time);
            let last = t.last().time;
            if time - last > max_lost {
                out.ended.push(EndedTrack {
                    id: t.id,
                    reason: EndReason::Lost,
                    class_id: t.class_id(),
                    first_time: t.first_time,
                    last_time: last,
                    hits: t.hits,
                });
                return false;
            }
            true
        });
        let mut views: Vec<TrackView> = self
            .tracks
            .iter()
            .filter(|t| t.id != 0)
            .map(|t| self.view(t, time))
            .collect();
        views.sort_by_key(|v| v.id);
        out.tracks = views;
        Ok(out)
    }

    fn view(&self, t: &Track, time: f64) -> TrackView {
        let b = t.filter.box_now();
        let (vx, vy) = t.filter.velocity();
        let speed = vx.hypot(vy);
        // Heading only when the object moves more than a tenth of its size per second.
        let heading = (speed > 0.1 * b.scale()).then(|| vy.atan2(vx));
        TrackView {
            id: t.id,
            class_id: t.class_id(),
            obb: to_obb(&b),
            score: t.score,
            detection: t.detection,
            state: if t.tracked_now {
                TrackState::Tracked
            } else {
                TrackState::Lost
            },
            age: time - t.first_time,
            hits: t.hits,
            velocity: (vx, vy),
            heading,
        }
    }

    /// Ends every remaining confirmed track (`finished`), e.g. at the end of the sequence.
    pub fn finish(&mut self) -> Vec<EndedTrack> {
        let mut ended: Vec<EndedTrack> = self
            .tracks
            .drain(..)
            .filter(|t| t.id != 0)
            .map(|t| EndedTrack {
                id: t.id,
                reason: EndReason::Finished,
                class_id: t.class_id(),
                first_time: t.first_time,
                last_time: t.last().time,
                hits: t.hits,
            })
            .collect();
        ended.sort_by_key(|e| e.id);
        ended
    }
}
