//! Multi-object tracking evaluation: HOTA, CLEAR MOT and Identity metrics, computed as TrackEval computes them.
//!
//! Each metric is a line-by-line equivalent of TrackEval 1.3.0's (`trackeval/metrics/{hota,clear,identity}.py`),
//! including its epsilons, its early returns for empty sequences and the way sequences are combined, so that
//! `nsod eval --mot` gives TrackEval's numbers (the parity test compares them to 1e-6). The optimal assignments use
//! [`lsap`], a port of SciPy's `linear_sum_assignment` (the solver TrackEval calls).
//!
//! Input is MOTChallenge text, one row per box: `frame,id,left,top,width,height,conf,class,...` (ground truth needs
//! the class column; TrackEval's rule), or nsod's oriented variant with the four corners of each box,
//! `frame,id,x1,y1,x2,y2,x3,y3,x4,y4,conf,class` (12 columns), matched by polygon IoU. Preprocessing follows
//! TrackEval's MotChallenge2DBox dataset for the chosen [`Benchmark`].

use nsod_types::Point;
use nsod_types::geometry::{convex_intersection_area, signed_area};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `np.finfo('float').eps` of TrackEval's comparisons.
const EPS: f64 = f64::EPSILON;

/// The most distinct ids (ground truth plus tracker) one sequence may have: the Identity metric solves an assignment
/// over a square matrix of that side, so the bound keeps a hostile file from asking for terabytes.
pub const MAX_IDS_PER_SEQUENCE: usize = 20_000;

/// The 19 HOTA thresholds, `np.arange(0.05, 0.99, 0.05)`.
pub fn hota_alphas() -> [f64; 19] {
    std::array::from_fn(|i| 0.05 + i as f64 * 0.05)
}

#[derive(Debug, thiserror::Error)]
pub enum MotError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// One box of a MOT file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MotShape {
    /// `[left, top, width, height]`.
    Xywh([f64; 4]),
    /// The four corners of an oriented box.
    Quad([Point; 4]),
}

/// One row of a MOT file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotRow {
    pub frame: u32,
    pub id: i64,
    pub shape: MotShape,
    /// Column 7: the tracker's confidence, or ground truth's "consider" flag (0 = ignore).
    pub conf: f64,
    /// Column 8 (the 12th of the oriented variant), `None` when the row has no such column.
    pub class: Option<i64>,
}

/// Which of the two file layouts a MOT file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotLayout {
    /// MOTChallenge: `frame,id,left,top,w,h,conf,class,...`.
    Axis,
    /// nsod's oriented variant: `frame,id,x1,y1,x2,y2,x3,y3,x4,y4,conf,class`.
    Oriented,
}

/// The rows of one MOT file.
#[derive(Debug, Clone, PartialEq)]
pub struct MotFile {
    pub path: PathBuf,
    pub layout: MotLayout,
    pub rows: Vec<MotRow>,
}

/// Whether a file is ground truth (needs the class column) or a tracker's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotRole {
    Gt,
    Tracker,
}

/// TrackEval's preprocessing for the MOTChallenge benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Benchmark {
    /// MOT15 (and any class-agnostic data, nsod's own included): ground-truth rows with `conf == 0` are ignored;
    /// nothing else is removed.
    #[default]
    Mot15,
    /// MOT16/17: only pedestrians (class 1) are evaluated; tracker boxes matched (IoU ≥ 0.5) to a distractor
    /// (person on vehicle, static person, distractor, reflection) are removed first.
    Mot17,
    /// MOT20: as MOT17, with non-MOT vehicles as distractors too.
    Mot20,
}

impl Benchmark {
    pub const NAMES: &'static [&'static str] = &["mot15", "mot17", "mot20"];
}

impl std::str::FromStr for Benchmark {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "mot15" => Ok(Self::Mot15),
            "mot16" | "mot17" => Ok(Self::Mot17),
            "mot20" => Ok(Self::Mot20),
            _ => Err(format!("unknown benchmark {s:?} (mot15, mot17, mot20)")),
        }
    }
}

/// Reads a MOT file (comma- or whitespace-separated; blank lines skipped). The layout is the oriented one when the
/// first row has exactly 12 columns.
pub fn read_mot(path: &Path, role: MotRole) -> Result<MotFile, MotError> {
    let text = std::fs::read_to_string(path).map_err(|error| MotError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_mot(&text, path, role)
}

/// Parses MOT text; `path` names it in errors.
pub fn parse_mot(text: &str, path: &Path, role: MotRole) -> Result<MotFile, MotError> {
    let mut layout = None;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| MotError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let fields: Vec<&str> = if line.contains(',') {
            line.split(',').map(str::trim).collect()
        } else {
            line.split_whitespace().collect()
        };
        // TrackEval drops one trailing empty field (a line ending in a comma).
        let fields: &[&str] = match fields.split_last() {
            Some((&"", rest)) => rest,
            _ => &fields,
        };
        let mut values = Vec::with_capacity(fields.len());
        for f in fields {
            let v: f64 = f
                .parse()
                .map_err(|_| err(format!("{f:?} is not a number")))?;
            if !v.is_finite() {
                return Err(err(format!("{f:?} is not a finite number")));
            }
            values.push(v);
        }
        let this = *layout.get_or_insert(if values.len() == 12 {
            MotLayout::Oriented
        } else {
            MotLayout::Axis
        });
        let (shape, conf_col) = match this {
            MotLayout::Axis => {
                let need = if role == MotRole::Gt { 8 } else { 7 };
                if values.len() < need {
                    return Err(err(format!(
                        "{} columns; a MOTChallenge {} row has at least {need} (frame,id,left,top,width,height,conf{})",
                        values.len(),
                        if role == MotRole::Gt {
                            "ground-truth"
                        } else {
                            "tracker"
                        },
                        if role == MotRole::Gt { ",class" } else { "" }
                    )));
                }
                (
                    MotShape::Xywh([values[2], values[3], values[4], values[5]]),
                    6,
                )
            }
            MotLayout::Oriented => {
                if values.len() != 12 {
                    return Err(err(format!(
                        "{} columns; the oriented layout (set by the first row) has 12: frame,id,x1,y1,x2,y2,x3,y3,x4,y4,conf,class",
                        values.len()
                    )));
                }
                let p = |k: usize| Point::new(values[k], values[k + 1]);
                (MotShape::Quad([p(2), p(4), p(6), p(8)]), 10)
            }
        };
        let frame = values[0];
        if !(1.0..=f64::from(u32::MAX)).contains(&frame) {
            return Err(err(format!("frame {frame}: frames count from 1")));
        }
        if values[1].abs() > 9.0e15 {
            return Err(err(format!("id {} is out of range", values[1])));
        }
        let class_col = conf_col + 1;
        rows.push(MotRow {
            // TrackEval: int(float(frame)), astype(int) for ids and classes (truncation).
            frame: frame as u32,
            id: values[1] as i64,
            shape,
            conf: values[conf_col],
            class: values.get(class_col).map(|&c| c as i64),
        });
    }
    Ok(MotFile {
        path: path.to_path_buf(),
        layout: layout.unwrap_or(MotLayout::Axis),
        rows,
    })
}

/// `seqLength` and `frameRate` of a MOTChallenge `seqinfo.ini`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeqInfo {
    pub length: u32,
    pub frame_rate: Option<f64>,
}

/// Reads a `seqinfo.ini` (`[Sequence]` with `seqLength=`, `frameRate=`).
pub fn read_seqinfo(path: &Path) -> Result<SeqInfo, MotError> {
    let text = std::fs::read_to_string(path).map_err(|error| MotError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let invalid = |message: String| MotError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut length = None;
    let mut frame_rate = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "seqLength" => {
                length = Some(v.trim().parse::<u32>().map_err(|_| {
                    invalid(format!("seqLength={:?} is not a frame count", v.trim()))
                })?)
            }
            "frameRate" => {
                let r: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid(format!("frameRate={:?} is not a number", v.trim())))?;
                if !(r.is_finite() && r > 0.0) {
                    return Err(invalid(format!("frameRate={r} must be positive")));
                }
                frame_rate = Some(r);
            }
            _ => {}
        }
    }
    let length = length.ok_or_else(|| invalid("no seqLength".into()))?;
    Ok(SeqInfo { length, frame_rate })
}

/// A dense row-major matrix of similarities (ground truth × tracker).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sim {
    pub rows: usize,
    pub cols: usize,
    pub v: Vec<f64>,
}

impl Sim {
    fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            v: vec![0.0; rows * cols],
        }
    }
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.v[r * self.cols + c]
    }
}

/// One sequence ready for the metrics: contiguous ids per frame and the similarity matrices (TrackEval's `data`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeqData {
    pub num_timesteps: usize,
    pub gt_ids: Vec<Vec<usize>>,
    pub tracker_ids: Vec<Vec<usize>>,
    pub similarity: Vec<Sim>,
    pub num_gt_ids: usize,
    pub num_tracker_ids: usize,
    pub num_gt_dets: usize,
    pub num_tracker_dets: usize,
}

fn quad_iou(a: &[Point; 4], b: &[Point; 4]) -> f64 {
    let area_a = signed_area(a).abs();
    let area_b = signed_area(b).abs();
    if area_a <= EPS || area_b <= EPS {
        return 0.0;
    }
    let inter = convex_intersection_area(a, b);
    let union = area_a + area_b - inter;
    if union <= EPS || inter <= 0.0 {
        return 0.0;
    }
    (inter / union).clamp(0.0, 1.0)
}

/// TrackEval's `_calculate_box_ious` for `xywh` boxes, one pair.
fn xywh_iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let (ax1, ay1) = (a[0] + a[2], a[1] + a[3]);
    let (bx1, by1) = (b[0] + b[2], b[1] + b[3]);
    let iw = (ax1.min(bx1) - a[0].max(b[0])).max(0.0);
    let ih = (ay1.min(by1) - a[1].max(b[1])).max(0.0);
    let mut inter = iw * ih;
    let area1 = (ax1 - a[0]) * (ay1 - a[1]);
    let area2 = (bx1 - b[0]) * (by1 - b[1]);
    let mut union = area1 + area2 - inter;
    if area1 <= EPS || area2 <= EPS || union <= EPS {
        inter = 0.0;
    }
    if union <= EPS {
        union = 1.0;
    }
    inter / union
}

/// Similarity of two boxes: IoU (polygon IoU when either is oriented).
pub fn similarity(a: &MotShape, b: &MotShape) -> f64 {
    match (a, b) {
        (MotShape::Xywh(a), MotShape::Xywh(b)) => xywh_iou(a, b),
        _ => quad_iou(&quad(a), &quad(b)),
    }
}

fn quad(s: &MotShape) -> [Point; 4] {
    match *s {
        MotShape::Quad(q) => q,
        MotShape::Xywh([x, y, w, h]) => [
            Point::new(x, y),
            Point::new(x + w, y),
            Point::new(x + w, y + h),
            Point::new(x, y + h),
        ],
    }
}

fn similarity_matrix(gt: &[&MotRow], tr: &[&MotRow]) -> Sim {
    let mut m = Sim::zeros(gt.len(), tr.len());
    for (r, g) in gt.iter().enumerate() {
        for (c, t) in tr.iter().enumerate() {
            m.v[r * tr.len() + c] = similarity(&g.shape, &t.shape);
        }
    }
    m
}

/// The optimal assignment maximising `score` (SciPy's `linear_sum_assignment(-score)`), as (row, col) pairs.
fn assign_max(score: &Sim) -> Vec<(usize, usize)> {
    if score.rows == 0 || score.cols == 0 {
        return Vec::new();
    }
    let neg: Vec<f64> = score.v.iter().map(|v| -v).collect();
    match lsap::solve(score.rows, score.cols, &neg, false) {
        Ok((r, c)) => r.into_iter().zip(c).collect(),
        // Only non-finite costs make it fail; every score here is finite.
        Err(_) => Vec::new(),
    }
}

fn rows_by_frame(f: &MotFile, length: u32) -> Vec<Vec<&MotRow>> {
    let mut v: Vec<Vec<&MotRow>> = vec![Vec::new(); length as usize];
    for r in &f.rows {
        v[r.frame as usize - 1].push(r);
    }
    v
}

/// Builds a sequence's [`SeqData`] as TrackEval's MotChallenge2DBox `get_preprocessed_seq_data` does. Frames run
/// from 1 to `length`; rows outside are an error, as are two boxes with one id in one frame.
pub fn prepare(
    gt: &MotFile,
    tracker: &MotFile,
    length: u32,
    benchmark: Benchmark,
) -> Result<SeqData, MotError> {
    for f in [gt, tracker] {
        if let Some(r) = f.rows.iter().find(|r| r.frame > length) {
            return Err(MotError::Invalid {
                path: f.path.clone(),
                message: format!("frame {} is beyond the sequence's {length} frames", r.frame),
            });
        }
    }
    if gt.layout != tracker.layout && benchmark != Benchmark::Mot15 {
        return Err(MotError::Invalid {
            path: tracker.path.clone(),
            message: "oriented boxes are evaluated class-agnostically (--mot-benchmark mot15)"
                .into(),
        });
    }
    if tracker.layout == MotLayout::Axis
        && let Some(r) = tracker.rows.iter().find(|r| r.class.is_some_and(|c| c > 1))
    {
        // TrackEval: "Evaluation is only valid for pedestrian class".
        return Err(MotError::Invalid {
            path: tracker.path.clone(),
            message: format!(
                "frame {}: class {} in column 8; MOTChallenge tracker files have -1 or 1 there",
                r.frame,
                r.class.unwrap_or_default()
            ),
        });
    }
    let gt_frames = rows_by_frame(gt, length);
    let tr_frames = rows_by_frame(tracker, length);
    for (f, frames) in [(gt, &gt_frames), (tracker, &tr_frames)] {
        for (t, rows) in frames.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for r in rows {
                if !seen.insert(r.id) {
                    return Err(MotError::Invalid {
                        path: f.path.clone(),
                        message: format!("frame {}: id {} appears twice", t + 1, r.id),
                    });
                }
            }
        }
    }
    let mut distractors: Vec<i64> = vec![2, 7, 8, 12];
    if benchmark == Benchmark::Mot20 {
        distractors.push(6);
    }
    let preproc = benchmark != Benchmark::Mot15;
    let mut gt_ids_raw: Vec<Vec<i64>> = Vec::with_capacity(length as usize);
    let mut tr_ids_raw: Vec<Vec<i64>> = Vec::with_capacity(length as usize);
    let mut sims = Vec::with_capacity(length as usize);
    for t in 0..length as usize {
        let g = &gt_frames[t];
        let mut tr: Vec<&MotRow> = tr_frames[t].clone();
        let mut sim = similarity_matrix(g, &tr);
        if preproc && !g.is_empty() && !tr.is_empty() {
            if let Some(r) = g
                .iter()
                .find(|r| !r.class.is_some_and(|c| (1..=13).contains(&c)))
            {
                return Err(MotError::Invalid {
                    path: gt.path.clone(),
                    message: format!(
                        "frame {}: class {:?} is not a MOTChallenge class (1-13); evaluate with --mot-benchmark mot15",
                        t + 1,
                        r.class
                    ),
                });
            }
            let mut matching = sim.clone();
            for v in &mut matching.v {
                if *v < 0.5 - EPS {
                    *v = 0.0;
                }
            }
            let remove: BTreeSet<usize> = assign_max(&matching)
                .into_iter()
                .filter(|&(r, c)| matching.at(r, c) > EPS)
                .filter(|&(r, _)| g[r].class.is_some_and(|c| distractors.contains(&c)))
                .map(|(_, c)| c)
                .collect();
            if !remove.is_empty() {
                tr = tr
                    .into_iter()
                    .enumerate()
                    .filter(|(c, _)| !remove.contains(c))
                    .map(|(_, r)| r)
                    .collect();
                sim = similarity_matrix(g, &tr);
            }
        }
        // TrackEval: `zero_marked = conf.astype(int)`, kept when != 0.
        let keep: Vec<usize> = (0..g.len())
            .filter(|&r| (g[r].conf as i64) != 0 && (!preproc || g[r].class == Some(1)))
            .collect();
        let kept = Sim {
            rows: keep.len(),
            cols: sim.cols,
            v: keep
                .iter()
                .flat_map(|&r| sim.v[r * sim.cols..(r + 1) * sim.cols].iter().copied())
                .collect(),
        };
        gt_ids_raw.push(keep.iter().map(|&r| g[r].id).collect());
        tr_ids_raw.push(tr.iter().map(|r| r.id).collect());
        sims.push(kept);
    }
    let relabel = |ids: &[Vec<i64>], path: &Path| -> Result<(Vec<Vec<usize>>, usize), MotError> {
        let unique: BTreeSet<i64> = ids.iter().flatten().copied().collect();
        if unique.len() > MAX_IDS_PER_SEQUENCE {
            return Err(MotError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "{} distinct ids in one sequence; at most {MAX_IDS_PER_SEQUENCE} are evaluated",
                    unique.len()
                ),
            });
        }
        let map: BTreeMap<i64, usize> = unique.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        Ok((
            ids.iter()
                .map(|f| f.iter().map(|id| map[id]).collect())
                .collect(),
            unique.len(),
        ))
    };
    let (gt_ids, num_gt_ids) = relabel(&gt_ids_raw, &gt.path)?;
    let (tracker_ids, num_tracker_ids) = relabel(&tr_ids_raw, &tracker.path)?;
    if num_gt_ids + num_tracker_ids > MAX_IDS_PER_SEQUENCE {
        return Err(MotError::Invalid {
            path: tracker.path.clone(),
            message: format!(
                "{num_gt_ids} ground-truth and {num_tracker_ids} tracker ids in one sequence; at most {MAX_IDS_PER_SEQUENCE} together are evaluated"
            ),
        });
    }
    Ok(SeqData {
        num_timesteps: length as usize,
        num_gt_dets: gt_ids.iter().map(Vec::len).sum(),
        num_tracker_dets: tracker_ids.iter().map(Vec::len).sum(),
        gt_ids,
        tracker_ids,
        similarity: sims,
        num_gt_ids,
        num_tracker_ids,
    })
}

impl SeqData {
    /// Detections per ground-truth id and per tracker id over the sequence.
    fn id_counts(&self) -> (Vec<f64>, Vec<f64>) {
        let mut gt = vec![0.0f64; self.num_gt_ids];
        let mut tr = vec![0.0f64; self.num_tracker_ids];
        for &i in self.gt_ids.iter().flatten() {
            gt[i] += 1.0;
        }
        for &j in self.tracker_ids.iter().flatten() {
            tr[j] += 1.0;
        }
        (gt, tr)
    }
}

/// HOTA at the 19 thresholds of [`hota_alphas`] (TrackEval's `HOTA` fields).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[allow(non_snake_case)]
pub struct Hota {
    pub HOTA: [f64; 19],
    pub DetA: [f64; 19],
    pub AssA: [f64; 19],
    pub DetRe: [f64; 19],
    pub DetPr: [f64; 19],
    pub AssRe: [f64; 19],
    pub AssPr: [f64; 19],
    pub LocA: [f64; 19],
    pub OWTA: [f64; 19],
    pub HOTA_TP: [f64; 19],
    pub HOTA_FN: [f64; 19],
    pub HOTA_FP: [f64; 19],
    #[serde(rename = "HOTA(0)")]
    pub HOTA0: f64,
    #[serde(rename = "LocA(0)")]
    pub LocA0: f64,
    #[serde(rename = "HOTALocA(0)")]
    pub HOTALocA0: f64,
}

impl Default for Hota {
    fn default() -> Self {
        Self {
            HOTA: [0.0; 19],
            DetA: [0.0; 19],
            AssA: [0.0; 19],
            DetRe: [0.0; 19],
            DetPr: [0.0; 19],
            AssRe: [0.0; 19],
            AssPr: [0.0; 19],
            LocA: [0.0; 19],
            OWTA: [0.0; 19],
            HOTA_TP: [0.0; 19],
            HOTA_FN: [0.0; 19],
            HOTA_FP: [0.0; 19],
            HOTA0: 0.0,
            LocA0: 0.0,
            HOTALocA0: 0.0,
        }
    }
}

fn mean(a: &[f64; 19]) -> f64 {
    a.iter().sum::<f64>() / 19.0
}

impl Hota {
    /// The summary TrackEval prints: the mean over the thresholds.
    pub fn hota(&self) -> f64 {
        mean(&self.HOTA)
    }
    pub fn deta(&self) -> f64 {
        mean(&self.DetA)
    }
    pub fn assa(&self) -> f64 {
        mean(&self.AssA)
    }
    pub fn loca(&self) -> f64 {
        mean(&self.LocA)
    }

    fn final_fields(&mut self) {
        for a in 0..19 {
            let (tp, fn_, fp) = (self.HOTA_TP[a], self.HOTA_FN[a], self.HOTA_FP[a]);
            self.DetRe[a] = tp / (tp + fn_).max(1.0);
            self.DetPr[a] = tp / (tp + fp).max(1.0);
            self.DetA[a] = tp / (tp + fn_ + fp).max(1.0);
            self.HOTA[a] = (self.DetA[a] * self.AssA[a]).sqrt();
            self.OWTA[a] = (self.DetRe[a] * self.AssA[a]).sqrt();
        }
        self.HOTA0 = self.HOTA[0];
        self.LocA0 = self.LocA[0];
        self.HOTALocA0 = self.HOTA0 * self.LocA0;
    }

    /// TrackEval's `HOTA.eval_sequence`.
    pub fn eval(data: &SeqData) -> Self {
        let alphas = hota_alphas();
        let mut res = Self::default();
        if data.num_tracker_dets == 0 {
            res.HOTA_FN = [data.num_gt_dets as f64; 19];
            res.LocA = [1.0; 19];
            res.LocA0 = 1.0;
            return res;
        }
        if data.num_gt_dets == 0 {
            res.HOTA_FP = [data.num_tracker_dets as f64; 19];
            res.LocA = [1.0; 19];
            res.LocA0 = 1.0;
            return res;
        }
        let (ng, nt) = (data.num_gt_ids, data.num_tracker_ids);
        let mut potential = vec![0.0f64; ng * nt];
        let (gt_count, tr_count) = data.id_counts();
        for ((g, tr), sim) in data
            .gt_ids
            .iter()
            .zip(&data.tracker_ids)
            .zip(&data.similarity)
        {
            let col_sum: Vec<f64> = (0..sim.cols)
                .map(|c| (0..sim.rows).map(|r| sim.at(r, c)).sum())
                .collect();
            let row_sum: Vec<f64> = (0..sim.rows)
                .map(|r| (0..sim.cols).map(|c| sim.at(r, c)).sum())
                .collect();
            for r in 0..sim.rows {
                for c in 0..sim.cols {
                    let s = sim.at(r, c);
                    let denom = col_sum[c] + row_sum[r] - s;
                    let v = if denom > EPS { s / denom } else { 0.0 };
                    potential[g[r] * nt + tr[c]] += v;
                }
            }
        }
        let global: Vec<f64> = (0..ng * nt)
            .map(|k| {
                let (i, j) = (k / nt, k % nt);
                potential[k] / (gt_count[i] + tr_count[j] - potential[k])
            })
            .collect();
        let mut matches: Vec<Vec<f64>> = vec![vec![0.0; ng * nt]; 19];
        let mut loc_sum = [0.0f64; 19];
        for ((g, tr), sim) in data
            .gt_ids
            .iter()
            .zip(&data.tracker_ids)
            .zip(&data.similarity)
        {
            if g.is_empty() {
                for a in 0..19 {
                    res.HOTA_FP[a] += tr.len() as f64;
                }
                continue;
            }
            if tr.is_empty() {
                for a in 0..19 {
                    res.HOTA_FN[a] += g.len() as f64;
                }
                continue;
            }
            let mut score = Sim::zeros(sim.rows, sim.cols);
            for r in 0..sim.rows {
                for c in 0..sim.cols {
                    score.v[r * sim.cols + c] = global[g[r] * nt + tr[c]] * sim.at(r, c);
                }
            }
            let pairs = assign_max(&score);
            for (a, alpha) in alphas.iter().enumerate() {
                let mut n = 0usize;
                let mut s = 0.0;
                for &(r, c) in &pairs {
                    if sim.at(r, c) >= alpha - EPS {
                        n += 1;
                        s += sim.at(r, c);
                        matches[a][g[r] * nt + tr[c]] += 1.0;
                    }
                }
                res.HOTA_TP[a] += n as f64;
                res.HOTA_FN[a] += (g.len() - n) as f64;
                res.HOTA_FP[a] += (tr.len() - n) as f64;
                if n > 0 {
                    loc_sum[a] += s;
                }
            }
        }
        for a in 0..19 {
            let tp = res.HOTA_TP[a].max(1.0);
            let (mut ass_a, mut ass_re, mut ass_pr) = (0.0, 0.0, 0.0);
            for (k, &m) in matches[a].iter().enumerate() {
                if m == 0.0 {
                    continue;
                }
                let (i, j) = (k / nt, k % nt);
                ass_a += m * (m / (gt_count[i] + tr_count[j] - m).max(1.0));
                ass_re += m * (m / gt_count[i].max(1.0));
                ass_pr += m * (m / tr_count[j].max(1.0));
            }
            res.AssA[a] = ass_a / tp;
            res.AssRe[a] = ass_re / tp;
            res.AssPr[a] = ass_pr / tp;
            res.LocA[a] = loc_sum[a].max(1e-10) / res.HOTA_TP[a].max(1e-10);
        }
        res.final_fields();
        res
    }

    /// TrackEval's `HOTA.combine_sequences`.
    pub fn combine(all: &[&Self]) -> Self {
        let mut res = Self::default();
        for a in 0..19 {
            res.HOTA_TP[a] = all.iter().map(|r| r.HOTA_TP[a]).sum();
            res.HOTA_FN[a] = all.iter().map(|r| r.HOTA_FN[a]).sum();
            res.HOTA_FP[a] = all.iter().map(|r| r.HOTA_FP[a]).sum();
            let w = res.HOTA_TP[a].max(1.0);
            res.AssRe[a] = all.iter().map(|r| r.AssRe[a] * r.HOTA_TP[a]).sum::<f64>() / w;
            res.AssPr[a] = all.iter().map(|r| r.AssPr[a] * r.HOTA_TP[a]).sum::<f64>() / w;
            res.AssA[a] = all.iter().map(|r| r.AssA[a] * r.HOTA_TP[a]).sum::<f64>() / w;
            let loc: f64 = all.iter().map(|r| r.LocA[a] * r.HOTA_TP[a]).sum();
            res.LocA[a] = loc.max(1e-10) / res.HOTA_TP[a].max(1e-10);
        }
        res.final_fields();
        res
    }
}

/// The CLEAR MOT metrics (TrackEval's `CLEAR` fields), at similarity threshold 0.5.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[allow(non_snake_case)]
pub struct Clear {
    pub MOTA: f64,
    pub MOTP: f64,
    pub MODA: f64,
    pub CLR_Re: f64,
    pub CLR_Pr: f64,
    pub MTR: f64,
    pub PTR: f64,
    pub MLR: f64,
    pub sMOTA: f64,
    pub CLR_F1: f64,
    pub FP_per_frame: f64,
    pub MOTAL: f64,
    pub MOTP_sum: f64,
    pub CLR_TP: f64,
    pub CLR_FN: f64,
    pub CLR_FP: f64,
    pub IDSW: f64,
    pub MT: f64,
    pub PT: f64,
    pub ML: f64,
    pub Frag: f64,
    pub CLR_Frames: f64,
}

/// The similarity threshold of CLEAR and Identity.
pub const MATCH_THRESHOLD: f64 = 0.5;

impl Clear {
    fn final_fields(&mut self) {
        let num_gt_ids = self.MT + self.ML + self.PT;
        self.MTR = self.MT / num_gt_ids.max(1.0);
        self.MLR = self.ML / num_gt_ids.max(1.0);
        self.PTR = self.PT / num_gt_ids.max(1.0);
        let gt = (self.CLR_TP + self.CLR_FN).max(1.0);
        self.CLR_Re = self.CLR_TP / gt;
        self.CLR_Pr = self.CLR_TP / (self.CLR_TP + self.CLR_FP).max(1.0);
        self.MODA = (self.CLR_TP - self.CLR_FP) / gt;
        self.MOTA = (self.CLR_TP - self.CLR_FP - self.IDSW) / gt;
        self.MOTP = self.MOTP_sum / self.CLR_TP.max(1.0);
        self.sMOTA = (self.MOTP_sum - self.CLR_FP - self.IDSW) / gt;
        self.CLR_F1 = self.CLR_TP / (self.CLR_TP + 0.5 * self.CLR_FN + 0.5 * self.CLR_FP).max(1.0);
        self.FP_per_frame = self.CLR_FP / self.CLR_Frames.max(1.0);
        let safe_log_idsw = if self.IDSW > 0.0 {
            self.IDSW.log10()
        } else {
            self.IDSW
        };
        self.MOTAL = (self.CLR_TP - self.CLR_FP - safe_log_idsw) / gt;
    }

    /// TrackEval's `CLEAR.eval_sequence`.
    pub fn eval(data: &SeqData) -> Self {
        let mut res = Self::default();
        if data.num_tracker_dets == 0 {
            res.CLR_FN = data.num_gt_dets as f64;
            res.ML = data.num_gt_ids as f64;
            res.MLR = 1.0;
            return res;
        }
        if data.num_gt_dets == 0 {
            res.CLR_FP = data.num_tracker_dets as f64;
            res.MLR = 1.0;
            return res;
        }
        let n = data.num_gt_ids;
        let mut gt_id_count = vec![0.0f64; n];
        let mut gt_matched = vec![0.0f64; n];
        let mut gt_frag = vec![0.0f64; n];
        let mut prev_tracker: Vec<Option<usize>> = vec![None; n];
        let mut prev_step: Vec<Option<usize>> = vec![None; n];
        for ((g, tr), sim) in data
            .gt_ids
            .iter()
            .zip(&data.tracker_ids)
            .zip(&data.similarity)
        {
            if g.is_empty() {
                res.CLR_FP += tr.len() as f64;
                continue;
            }
            if tr.is_empty() {
                res.CLR_FN += g.len() as f64;
                for &i in g {
                    gt_id_count[i] += 1.0;
                }
                continue;
            }
            let mut score = Sim::zeros(sim.rows, sim.cols);
            for r in 0..sim.rows {
                for (c, &tc) in tr.iter().enumerate() {
                    let s = sim.at(r, c);
                    score.v[r * sim.cols + c] = if s < MATCH_THRESHOLD - EPS {
                        0.0
                    } else {
                        let cont = if prev_step[g[r]] == Some(tc) {
                            1000.0
                        } else {
                            0.0
                        };
                        cont + s
                    };
                }
            }
            let pairs: Vec<(usize, usize)> = assign_max(&score)
                .into_iter()
                .filter(|&(r, c)| score.at(r, c) > EPS)
                .collect();
            for &(r, c) in &pairs {
                if prev_tracker[g[r]].is_some_and(|p| p != tr[c]) {
                    res.IDSW += 1.0;
                }
            }
            for &i in g {
                gt_id_count[i] += 1.0;
            }
            let not_previously: Vec<bool> = prev_step.iter().map(Option::is_none).collect();
            prev_step.iter_mut().for_each(|p| *p = None);
            for &(r, c) in &pairs {
                gt_matched[g[r]] += 1.0;
                prev_tracker[g[r]] = Some(tr[c]);
                prev_step[g[r]] = Some(tr[c]);
            }
            for i in 0..n {
                if not_previously[i] && prev_step[i].is_some() {
                    gt_frag[i] += 1.0;
                }
            }
            let m = pairs.len() as f64;
            res.CLR_TP += m;
            res.CLR_FN += g.len() as f64 - m;
            res.CLR_FP += tr.len() as f64 - m;
            if !pairs.is_empty() {
                res.MOTP_sum += pairs.iter().map(|&(r, c)| sim.at(r, c)).sum::<f64>();
            }
        }
        let ratios: Vec<f64> = (0..n)
            .filter(|&i| gt_id_count[i] > 0.0)
            .map(|i| gt_matched[i] / gt_id_count[i])
            .collect();
        res.MT = ratios.iter().filter(|&&r| r > 0.8).count() as f64;
        res.PT = ratios.iter().filter(|&&r| r >= 0.2).count() as f64 - res.MT;
        res.ML = n as f64 - res.MT - res.PT;
        res.Frag = gt_frag.iter().filter(|&&f| f > 0.0).map(|f| f - 1.0).sum();
        res.CLR_Frames = data.num_timesteps as f64;
        res.final_fields();
        res
    }

    /// TrackEval's `CLEAR.combine_sequences`.
    pub fn combine(all: &[&Self]) -> Self {
        let sum = |f: fn(&Self) -> f64| all.iter().map(|r| f(r)).sum::<f64>();
        let mut res = Self {
            CLR_TP: sum(|r| r.CLR_TP),
            CLR_FN: sum(|r| r.CLR_FN),
            CLR_FP: sum(|r| r.CLR_FP),
            IDSW: sum(|r| r.IDSW),
            MT: sum(|r| r.MT),
            PT: sum(|r| r.PT),
            ML: sum(|r| r.ML),
            Frag: sum(|r| r.Frag),
            CLR_Frames: sum(|r| r.CLR_Frames),
            MOTP_sum: sum(|r| r.MOTP_sum),
            ..Self::default()
        };
        res.final_fields();
        res
    }
}

/// The Identity metrics (TrackEval's `Identity` fields), at similarity threshold 0.5.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[allow(non_snake_case)]
pub struct Identity {
    pub IDF1: f64,
    pub IDR: f64,
    pub IDP: f64,
    pub IDTP: f64,
    pub IDFN: f64,
    pub IDFP: f64,
}

impl Identity {
    fn final_fields(&mut self) {
        self.IDR = self.IDTP / (self.IDTP + self.IDFN).max(1.0);
        self.IDP = self.IDTP / (self.IDTP + self.IDFP).max(1.0);
        self.IDF1 = self.IDTP / (self.IDTP + 0.5 * self.IDFP + 0.5 * self.IDFN).max(1.0);
    }

    /// TrackEval's `Identity.eval_sequence`. The square cost matrix over ground-truth plus tracker ids is built
    /// once, its false-negative and false-positive parts recomputed for the chosen cells.
    pub fn eval(data: &SeqData) -> Self {
        let mut res = Self::default();
        if data.num_tracker_dets == 0 {
            res.IDFN = data.num_gt_dets as f64;
            return res;
        }
        if data.num_gt_dets == 0 {
            res.IDFP = data.num_tracker_dets as f64;
            return res;
        }
        let (ng, nt) = (data.num_gt_ids, data.num_tracker_ids);
        let mut potential = vec![0.0f64; ng * nt];
        let (gt_count, tr_count) = data.id_counts();
        for ((g, tr), sim) in data
            .gt_ids
            .iter()
            .zip(&data.tracker_ids)
            .zip(&data.similarity)
        {
            for r in 0..sim.rows {
                for c in 0..sim.cols {
                    if sim.at(r, c) >= MATCH_THRESHOLD {
                        potential[g[r] * nt + tr[c]] += 1.0;
                    }
                }
            }
        }
        let n = ng + nt;
        // fn_mat and fp_mat of TrackEval, as functions of the cell.
        let fn_at = |r: usize, c: usize| -> f64 {
            if r < ng {
                if c < nt {
                    gt_count[r] - potential[r * nt + c]
                } else if c == nt + r {
                    gt_count[r]
                } else {
                    1e10
                }
            } else {
                0.0
            }
        };
        let fp_at = |r: usize, c: usize| -> f64 {
            if c < nt {
                if r < ng {
                    tr_count[c] - potential[r * nt + c]
                } else if r == ng + c {
                    tr_count[c]
                } else {
                    1e10
                }
            } else {
                0.0
            }
        };
        let mut cost = vec![0.0f64; n * n];
        for r in 0..n {
            for c in 0..n {
                cost[r * n + c] = fn_at(r, c) + fp_at(r, c);
            }
        }
        let Ok((rows, cols)) = lsap::solve(n, n, &cost, false) else {
            return res;
        };
        drop(cost);
        let (mut idfn, mut idfp) = (0.0, 0.0);
        for (&r, &c) in rows.iter().zip(&cols) {
            idfn += fn_at(r, c);
            idfp += fp_at(r, c);
        }
        // `.astype(int)`: truncation.
        res.IDFN = idfn.trunc();
        res.IDFP = idfp.trunc();
        res.IDTP = (gt_count.iter().sum::<f64>() - res.IDFN).trunc();
        res.final_fields();
        res
    }

    /// TrackEval's `Identity.combine_sequences`.
    pub fn combine(all: &[&Self]) -> Self {
        let mut res = Self {
            IDTP: all.iter().map(|r| r.IDTP).sum(),
            IDFN: all.iter().map(|r| r.IDFN).sum(),
            IDFP: all.iter().map(|r| r.IDFP).sum(),
            ..Self::default()
        };
        res.final_fields();
        res
    }
}

/// All three metric families for one sequence (or the combination, `sequence == "COMBINED"`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MotResult {
    pub sequence: String,
    pub hota: Hota,
    pub clear: Clear,
    pub identity: Identity,
}

impl MotResult {
    /// Evaluates one prepared sequence.
    pub fn eval(sequence: impl Into<String>, data: &SeqData) -> Self {
        Self {
            sequence: sequence.into(),
            hota: Hota::eval(data),
            clear: Clear::eval(data),
            identity: Identity::eval(data),
        }
    }

    /// TrackEval's COMBINED_SEQ row.
    pub fn combine(all: &[Self]) -> Self {
        Self {
            sequence: "COMBINED".into(),
            hota: Hota::combine(&all.iter().map(|r| &r.hota).collect::<Vec<_>>()),
            clear: Clear::combine(&all.iter().map(|r| &r.clear).collect::<Vec<_>>()),
            identity: Identity::combine(&all.iter().map(|r| &r.identity).collect::<Vec<_>>()),
        }
    }
}

/// One sequence on disk: its ground truth, the tracker's file and, from `seqinfo.ini`, its length.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqFiles {
    pub name: String,
    pub gt: PathBuf,
    pub tracker: PathBuf,
    pub info: Option<SeqInfo>,
}

fn seq_folder_gt(dir: &Path) -> Option<PathBuf> {
    let gt = dir.join("gt").join("gt.txt");
    gt.is_file().then_some(gt)
}

fn seqinfo_near(gt_file: &Path) -> Result<Option<SeqInfo>, MotError> {
    // `SEQ/gt/gt.txt` → `SEQ/seqinfo.ini`; a bare file → a seqinfo.ini beside it.
    let candidates = [
        gt_file
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("seqinfo.ini")),
        gt_file.parent().map(|d| d.join("seqinfo.ini")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return read_seqinfo(&c).map(Some);
        }
    }
    Ok(None)
}

/// Pairs ground truth with tracker output. `gt` is a MOT file, a MOTChallenge sequence folder (`gt/gt.txt`,
/// `seqinfo.ini`) or a folder of sequence folders; `pred` is a file (one sequence) or a folder of `<sequence>.txt`
/// files (TrackEval's tracker layout). Every sequence needs its tracker file.
pub fn discover(gt: &Path, pred: &Path) -> Result<Vec<SeqFiles>, MotError> {
    let invalid = |path: &Path, message: String| MotError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut gts: Vec<(String, PathBuf)> = Vec::new();
    if gt.is_file() {
        // `SEQ/gt/gt.txt` is SEQ; another `gt.txt` is named after its folder; any other file after itself.
        let parent = gt.parent().filter(|p| !p.as_os_str().is_empty());
        let name = if gt.file_name().is_some_and(|n| n == "gt.txt") {
            match parent.and_then(Path::file_name) {
                Some(p) if p == "gt" => parent.and_then(Path::parent).and_then(Path::file_name),
                other => other,
            }
        } else {
            gt.file_stem()
        };
        gts.push((
            name.map_or_else(|| "sequence".into(), |n| n.to_string_lossy().into_owned()),
            gt.to_path_buf(),
        ));
    } else if let Some(file) = seq_folder_gt(gt) {
        let name = gt
            .file_name()
            .map_or_else(|| "sequence".into(), |n| n.to_string_lossy().into_owned());
        gts.push((name, file));
    } else if gt.is_dir() {
        let rd = std::fs::read_dir(gt).map_err(|error| MotError::Io {
            path: gt.to_path_buf(),
            error,
        })?;
        for e in rd.filter_map(Result::ok) {
            if let Some(file) = seq_folder_gt(&e.path()) {
                gts.push((e.file_name().to_string_lossy().into_owned(), file));
            }
        }
        gts.sort();
        if gts.is_empty() {
            return Err(invalid(gt, "no MOT ground truth: expected a gt.txt file, a sequence folder with gt/gt.txt, or a folder of such sequence folders".into()));
        }
    } else {
        return Err(invalid(gt, "no such file or folder".into()));
    }
    let single = gts.len() == 1;
    let mut out = Vec::new();
    for (name, gt_file) in gts {
        let tracker = if pred.is_dir() {
            let f = pred.join(format!("{name}.txt"));
            if !f.is_file() {
                return Err(invalid(pred, format!("no {name}.txt for sequence {name}")));
            }
            f
        } else if pred.is_file() && single {
            pred.to_path_buf()
        } else if pred.is_file() {
            return Err(invalid(
                pred,
                "several sequences need a folder of <sequence>.txt files".into(),
            ));
        } else {
            return Err(invalid(pred, "no such file or folder".into()));
        };
        out.push(SeqFiles {
            info: seqinfo_near(&gt_file)?,
            name,
            gt: gt_file,
            tracker,
        });
    }
    Ok(out)
}

/// Reads and evaluates each sequence, then combines them (the last result is `COMBINED`). A sequence without a
/// `seqinfo.ini` lasts until the last frame either file names.
pub fn evaluate(seqs: &[SeqFiles], benchmark: Benchmark) -> Result<Vec<MotResult>, MotError> {
    let mut results = Vec::with_capacity(seqs.len() + 1);
    for s in seqs {
        let gt = read_mot(&s.gt, MotRole::Gt)?;
        let tr = read_mot(&s.tracker, MotRole::Tracker)?;
        let length = match s.info {
            Some(i) => i.length,
            None => gt
                .rows
                .iter()
                .chain(&tr.rows)
                .map(|r| r.frame)
                .max()
                .unwrap_or(0),
        };
        let data = prepare(&gt, &tr, length, benchmark)?;
        results.push(MotResult::eval(s.name.clone(), &data));
    }
    let combined = MotResult::combine(&results);
    results.push(combined);
    Ok(results)
}

/// A markdown table of the headline numbers (percent, as TrackEval prints them), one row per result.
pub fn markdown_table(results: &[MotResult]) -> String {
    let mut s = String::from(
        "| sequence | HOTA | DetA | AssA | LocA | MOTA | MOTP | IDF1 | IDP | IDR | IDSW | Frag | MT | ML | GT dets | tracker dets |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let c = &r.clear;
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} |\n",
            r.sequence,
            100.0 * r.hota.hota(),
            100.0 * r.hota.deta(),
            100.0 * r.hota.assa(),
            100.0 * r.hota.loca(),
            100.0 * c.MOTA,
            100.0 * c.MOTP,
            100.0 * r.identity.IDF1,
            100.0 * r.identity.IDP,
            100.0 * r.identity.IDR,
            c.IDSW,
            c.Frag,
            c.MT,
            c.ML,
            c.CLR_TP + c.CLR_FN,
            c.CLR_TP + c.CLR_FP,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(rows: &[(u32, i64, [f64; 4])], role: MotRole) -> MotFile {
        let text: String = rows
            .iter()
            .map(|(f, id, b)| format!("{f},{id},{},{},{},{},1,1,1\n", b[0], b[1], b[2], b[3]))
            .collect();
        parse_mot(
            &text,
            Path::new(if role == MotRole::Gt {
                "gt.txt"
            } else {
                "t.txt"
            }),
            role,
        )
        .unwrap()
    }

    #[test]
    fn a_perfect_tracker_scores_one_everywhere() {
        let rows: Vec<(u32, i64, [f64; 4])> = (1..=5)
            .flat_map(|f| {
                [
                    (f, 1, [f64::from(f) * 10.0, 0.0, 10.0, 10.0]),
                    (f, 2, [100.0, f64::from(f), 20.0, 30.0]),
                ]
            })
            .collect();
        let gt = seq(&rows, MotRole::Gt);
        let tr = seq(&rows, MotRole::Tracker);
        let data = prepare(&gt, &tr, 5, Benchmark::Mot15).unwrap();
        let r = MotResult::eval("s", &data);
        assert_eq!(r.hota.hota(), 1.0);
        assert_eq!(r.clear.MOTA, 1.0);
        assert_eq!(r.clear.IDSW, 0.0);
        assert_eq!(r.identity.IDF1, 1.0);
        assert_eq!(r.clear.MT, 2.0);
    }

    #[test]
    fn a_swap_is_one_id_switch_and_halves_the_identity_match() {
        // Two objects far apart; the tracker swaps their ids after frame 2 of 4.
        let gt_rows: Vec<(u32, i64, [f64; 4])> = (1..=4)
            .flat_map(|f| {
                [
                    (f, 1, [0.0, 0.0, 10.0, 10.0]),
                    (f, 2, [50.0, 0.0, 10.0, 10.0]),
                ]
            })
            .collect();
        let tr_rows: Vec<(u32, i64, [f64; 4])> = (1..=4)
            .flat_map(|f| {
                let (a, b) = if f <= 2 { (7, 8) } else { (8, 7) };
                [
                    (f, a, [0.0, 0.0, 10.0, 10.0]),
                    (f, b, [50.0, 0.0, 10.0, 10.0]),
                ]
            })
            .collect();
        let data = prepare(
            &seq(&gt_rows, MotRole::Gt),
            &seq(&tr_rows, MotRole::Tracker),
            4,
            Benchmark::Mot15,
        )
        .unwrap();
        let r = MotResult::eval("s", &data);
        assert_eq!(r.clear.IDSW, 2.0);
        assert_eq!(r.clear.MOTA, (8.0 - 0.0 - 2.0) / 8.0);
        assert_eq!(r.identity.IDTP, 4.0);
        assert_eq!(r.identity.IDF1, 0.5);
        // DetA is 1; each matched id pair shares 2 of the 4 + 4 - 2 frames of its two ids: AssA = 2/6.
        assert_eq!(r.hota.deta(), 1.0);
        assert!((r.hota.assa() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn empty_tracker_and_bad_rows_are_named() {
        let gt = seq(&[(1, 1, [0.0, 0.0, 10.0, 10.0])], MotRole::Gt);
        let tr = parse_mot("", Path::new("t.txt"), MotRole::Tracker).unwrap();
        let r = MotResult::eval("s", &prepare(&gt, &tr, 1, Benchmark::Mot15).unwrap());
        assert_eq!(r.clear.CLR_FN, 1.0);
        assert_eq!(r.hota.LocA, [1.0; 19]);
        let e = parse_mot("1,2,3\n", Path::new("gt.txt"), MotRole::Gt).unwrap_err();
        assert_eq!(
            e.to_string(),
            "gt.txt:1: 3 columns; a MOTChallenge ground-truth row has at least 8 (frame,id,left,top,width,height,conf,class)"
        );
        let e = parse_mot("1,2,3,4,5,x,1\n", Path::new("t.txt"), MotRole::Tracker).unwrap_err();
        assert_eq!(e.to_string(), "t.txt:1: \"x\" is not a number");
        let dup = seq(
            &[(1, 1, [0.0, 0.0, 1.0, 1.0]), (1, 1, [5.0, 0.0, 1.0, 1.0])],
            MotRole::Tracker,
        );
        let e = prepare(&gt, &dup, 1, Benchmark::Mot15).unwrap_err();
        assert_eq!(e.to_string(), "t.txt: frame 1: id 1 appears twice");
        let e = prepare(&gt, &dup, 0, Benchmark::Mot15).unwrap_err();
        assert_eq!(
            e.to_string(),
            "gt.txt: frame 1 is beyond the sequence's 0 frames"
        );
    }

    #[test]
    fn oriented_rows_use_polygon_iou() {
        let gt = parse_mot(
            "1,1,0,0,10,0,10,10,0,10,1,0\n",
            Path::new("gt.txt"),
            MotRole::Gt,
        )
        .unwrap();
        assert_eq!(gt.layout, MotLayout::Oriented);
        // A diamond with corners on the square's edge midpoints: half the square's area, inside it.
        let tr = parse_mot(
            "1,9,5,0,10,5,5,10,0,5,0.9,0\n",
            Path::new("t.txt"),
            MotRole::Tracker,
        )
        .unwrap();
        let data = prepare(&gt, &tr, 1, Benchmark::Mot15).unwrap();
        assert!((data.similarity[0].at(0, 0) - 0.5).abs() < 1e-12);
    }
}
