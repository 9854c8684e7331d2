//! SAHI's postprocesses: NMS, NMM (transitive) and greedy NMM.

use crate::index::Grid;
use crate::index::probiou_search_boxes;
use nsod_types::geometry::{ios, iou, probiou, rotated_ios, rotated_iou};
use nsod_types::{BBox, Detection, OrientedBox, Point};

/// What happens to matching boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    /// Keep the best box, drop the ones that match it (SAHI `NMS`).
    Nms,
    /// Merge matching boxes transitively: if A matches B and B matches C, all three merge (SAHI `NMM`).
    Nmm,
    /// The best remaining box absorbs the boxes that match it directly (SAHI `GREEDYNMM`, its default).
    GreedyNmm,
}

/// The overlap measure compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMetric {
    /// Intersection over union.
    Iou,
    /// Intersection over the smaller area (SAHI's default for slices).
    Ios,
}

/// Which boxes the metric is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Geometry {
    /// The axis-aligned boxes (SAHI's behaviour, also for OBB models).
    Aabb,
    /// The exact rotated boxes of oriented detections (axis-aligned detections are used as they are).
    Rotated,
    /// Ultralytics' ProbIoU between the rotated boxes, for either match metric (ProbIoU has no "over the smaller
    /// area" variant, so IoS and IoU both mean ProbIoU here).
    ProbIou,
}

/// Names on the command line and in config files, and their values.
macro_rules! named {
    ($t:ty, $($name:literal => $v:expr),+) => {
        impl $t {
            /// The names this value is written with (command line, config files).
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            pub fn as_str(&self) -> &'static str {
                match self {
                    $(x if *x == $v => $name,)+
                    _ => unreachable!(),
                }
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($v),)+
                    _ => Err(format!("unknown value {s:?}: use one of {}", Self::NAMES.join(", "))),
                }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named!(MergeMethod, "greedynmm" => MergeMethod::GreedyNmm, "nmm" => MergeMethod::Nmm, "nms" => MergeMethod::Nms);
named!(MatchMetric, "ios" => MatchMetric::Ios, "iou" => MatchMetric::Iou);
named!(Geometry, "rotated" => Geometry::Rotated, "aabb" => Geometry::Aabb, "probiou" => Geometry::ProbIou);

/// A postprocess. [`Default`] is SAHI's `get_sliced_prediction` default: greedy NMM, IoS, 0.5, class-wise, with
/// nsod's rotated geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeConfig {
    pub method: MergeMethod,
    pub metric: MatchMetric,
    /// A pair matches when `metric >= threshold`.
    pub threshold: f32,
    pub class_agnostic: bool,
    pub geometry: Geometry,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            method: MergeMethod::GreedyNmm,
            metric: MatchMetric::Ios,
            threshold: 0.5,
            class_agnostic: false,
            geometry: Geometry::Rotated,
        }
    }
}

impl MergeConfig {
    fn overlap(&self, a: &Detection, b: &Detection) -> f32 {
        if self.geometry == Geometry::ProbIou {
            return probiou(&a.as_oriented(), &b.as_oriented());
        }
        let rotated = self.geometry == Geometry::Rotated && (a.obb.is_some() || b.obb.is_some());
        match (rotated, self.metric) {
            (false, MatchMetric::Iou) => iou(&a.bbox, &b.bbox),
            (false, MatchMetric::Ios) => ios(&a.bbox, &b.bbox),
            (true, MatchMetric::Iou) => rotated_iou(&a.as_oriented(), &b.as_oriented()),
            (true, MatchMetric::Ios) => rotated_ios(&a.as_oriented(), &b.as_oriented()),
        }
    }

    fn matches(&self, a: &Detection, b: &Detection) -> bool {
        self.overlap(a, b) >= self.threshold
    }

    /// SAHI's `merge_object_prediction_pair`: the union of the boxes, the higher score, and the class of the
    /// higher-scored box (of `b` on a tie, as SAHI). For oriented boxes the union is the minimum-area rectangle
    /// around both boxes' corners.
    fn merge_pair(&self, a: &Detection, b: &Detection) -> Detection {
        let (class_id, class_name) = if a.score > b.score {
            (a.class_id, &a.class_name)
        } else {
            (b.class_id, &b.class_name)
        };
        let union = BBox::new(
            a.bbox.x1.min(b.bbox.x1),
            a.bbox.y1.min(b.bbox.y1),
            a.bbox.x2.max(b.bbox.x2),
            a.bbox.y2.max(b.bbox.y2),
        );
        let obb = if a.obb.is_some() || b.obb.is_some() {
            let corners: Vec<Point> = a
                .as_oriented()
                .corners()
                .into_iter()
                .chain(b.as_oriented().corners())
                .collect();
            OrientedBox::from_polygon(&corners)
        } else {
            None
        };
        let bbox = match (self.geometry, obb) {
            (Geometry::Rotated | Geometry::ProbIou, Some(o)) => o.aabb(),
            _ => union,
        };
        Detection {
            class_id,
            class_name: class_name.clone(),
            score: a.score.max(b.score),
            bbox,
            obb,
        }
    }
}

/// Applies the postprocess; the result is sorted by score, highest first.
pub fn postprocess(detections: Vec<Detection>, cfg: &MergeConfig) -> Vec<Detection> {
    let mut out = Vec::with_capacity(detections.len());
    if cfg.class_agnostic {
        let all: Vec<usize> = (0..detections.len()).collect();
        out.extend(process_group(&detections, &all, cfg));
    } else {
        let mut by_class: std::collections::BTreeMap<u32, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (i, d) in detections.iter().enumerate() {
            by_class.entry(d.class_id).or_default().push(i);
        }
        for members in by_class.values() {
            out.extend(process_group(&detections, members, cfg));
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The box each detection occupies for neighbour search: any pair with a positive overlap intersects here.
fn search_box(d: &Detection) -> BBox {
    match d.obb {
        Some(o) => {
            let a = o.aabb();
            BBox::new(
                a.x1.min(d.bbox.x1),
                a.y1.min(d.bbox.y1),
                a.x2.max(d.bbox.x2),
                a.y2.max(d.bbox.y2),
            )
        }
        None => d.bbox,
    }
}

/// Neighbours of a box: through the grid when a match needs a positive overlap, everything otherwise.
struct Neighbours {
    grid: Option<Grid>,
    boxes: Vec<BBox>,
}

impl Neighbours {
    fn new(dets: &[&Detection], cfg: &MergeConfig) -> Self {
        if cfg.geometry == Geometry::ProbIou {
            let obbs: Vec<OrientedBox> = dets.iter().map(|d| d.as_oriented()).collect();
            return match probiou_search_boxes(&obbs, cfg.threshold) {
                Some(boxes) => Self {
                    grid: Some(Grid::new(&boxes)),
                    boxes,
                },
                None => Self {
                    grid: None,
                    boxes: vec![BBox::default(); dets.len()],
                },
            };
        }
        let boxes: Vec<BBox> = dets.iter().map(|d| search_box(d)).collect();
        let grid = (cfg.threshold > 0.0).then(|| Grid::new(&boxes));
        Self { grid, boxes }
    }

    fn for_each(&mut self, i: usize, mut f: impl FnMut(usize)) {
        match &mut self.grid {
            Some(g) => g.for_each_near(&self.boxes[i], |j| {
                if j != i {
                    f(j)
                }
            }),
            None => (0..self.boxes.len()).filter(|&j| j != i).for_each(f),
        }
    }
}

fn process_group(all: &[Detection], members: &[usize], cfg: &MergeConfig) -> Vec<Detection> {
    // Local numbering in score order: position = rank (stable, ties by input order).
    let mut order: Vec<usize> = members.to_vec();
    order.sort_by(|&a, &b| all[b].score.total_cmp(&all[a].score));
    let dets: Vec<&Detection> = order.iter().map(|&i| &all[i]).collect();
    let n = dets.len();
    let mut near = Neighbours::new(&dets, cfg);
    let mut matched = Vec::new();
    let collect = |near: &mut Neighbours,
                   i: usize,
                   skip: &dyn Fn(usize) -> bool,
                   matched: &mut Vec<usize>| {
        matched.clear();
        near.for_each(i, |j| {
            if j > i && !skip(j) && cfg.matches(dets[i], dets[j]) {
                matched.push(j);
            }
        });
        matched.sort_unstable();
    };

    let keep_to_merge: Vec<(usize, Vec<usize>)> = match cfg.method {
        MergeMethod::Nms | MergeMethod::GreedyNmm => {
            let mut taken = vec![false; n];
            let mut keeps = Vec::new();
            for i in 0..n {
                if taken[i] {
                    continue;
                }
                collect(&mut near, i, &|j| taken[j], &mut matched);
                for &j in &matched {
                    taken[j] = true;
                }
                keeps.push((
                    i,
                    if cfg.method == MergeMethod::Nms {
                        Vec::new()
                    } else {
                        matched.clone()
                    },
                ));
            }
            keeps
        }
        MergeMethod::Nmm => {
            const NONE: usize = usize::MAX;
            let mut keeper = vec![NONE; n];
            let mut lists: Vec<(usize, Vec<usize>)> = Vec::new();
            let mut slot = vec![NONE; n]; // keeper index -> position in `lists`
            for i in 0..n {
                collect(&mut near, i, &|_| false, &mut matched);
                let k = if keeper[i] == NONE {
                    keeper[i] = i;
                    slot[i] = lists.len();
                    lists.push((i, Vec::new()));
                    i
                } else {
                    keeper[i]
                };
                for &j in &matched {
                    if keeper[j] == NONE {
                        keeper[j] = k;
                        lists[slot[k]].1.push(j);
                    }
                }
            }
            lists
        }
    };

    keep_to_merge
        .into_iter()
        .map(|(k, list)| {
            let mut kept = dets[k].clone();
            for j in list {
                // SAHI re-checks each candidate against the growing merged box and drops it when it no longer matches.
                if cfg.matches(&kept, dets[j]) {
                    kept = cfg.merge_pair(&kept, dets[j]);
                }
            }
            kept
        })
        .collect()
}
