//! Evaluation of detections against ground truth.
//!
//! - [`coco`]: COCO-style evaluation, a line-by-line equivalent of pycocotools' `COCOeval` for boxes (IoU
//!   0.50:0.05:0.95, 101 recall points, maxDets 1/10/100, small/medium/large areas, the 12 summary numbers), with
//!   polygon-IoU matching when the ground truth is oriented.
//!
//! Oriented ground truth (DOTA, YOLO-OBB labels) keeps the label's own four corners ([`Shape::Quad`]): DOTA's
//! corners are whole pixels, so a label is a general quadrilateral, and detections are matched against it with the
//! DOTA devkit's polygon IoU ([`nsod_types::geometry::dota_polygon_iou`], identical to the devkit's to the last
//! bit), never against its minimum-area rectangle.
//! - [`voc`]: VOC/DOTA-style AP at one IoU threshold (all-point or VOC07 11-point), as the DOTA devkit computes it.
//! - [`load`]: ground truth and predictions from COCO JSON, YOLO / YOLO-OBB / DOTA label folders and nsod's
//!   `predictions.jsonl`, with per-file errors collected instead of aborting.
//! - [`mot`]: tracking metrics (HOTA, CLEAR MOT, Identity) equal to TrackEval's, on MOTChallenge text and nsod's
//!   oriented variant.
//! - [`bootstrap`]: the paired spatial block bootstrap of a change between two prediction sets (its interval).
//! - [`report`]: `eval.json`, the markdown report and the terminal table, including before/after deltas.
//!
//! The crate does no image decoding and no printing: the binary passes image sizes in and prints what it gets back.

pub mod bootstrap;
pub mod coco;
pub mod load;
pub mod mot;
pub mod report;
pub mod voc;

use nsod_types::geometry::{convex_intersection_area, dota_polygon_area, dota_polygon_iou};
use nsod_types::{OrientedBox, Point};
use std::path::PathBuf;

/// A box to match: axis-aligned `[x, y, w, h]` (COCO's convention), oriented (detections), or a label's own
/// quadrilateral (oriented ground truth).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Xywh([f64; 4]),
    Oriented(OrientedBox),
    Quad([Point; 4]),
}

impl Shape {
    /// Area of the box itself (`w * h`), as pycocotools computes it for detections; a quadrilateral's polygon
    /// area.
    pub fn box_area(&self) -> f64 {
        match self {
            Shape::Xywh(b) => b[2] * b[3],
            Shape::Oriented(o) => f64::from(o.w) * f64::from(o.h),
            Shape::Quad(q) => dota_polygon_area(q).abs(),
        }
    }

    /// The four corners, in the order the devkit would read them (a label's own order for quadrilaterals).
    fn corners(&self) -> [Point; 4] {
        match self {
            Shape::Quad(q) => *q,
            other => other.oriented().corners(),
        }
    }

    fn oriented(&self) -> OrientedBox {
        match *self {
            Shape::Xywh([x, y, w, h]) => OrientedBox::new(
                (x + w / 2.0) as f32,
                (y + h / 2.0) as f32,
                w as f32,
                h as f32,
                0.0,
            ),
            Shape::Oriented(o) => o,
            Shape::Quad(q) => OrientedBox::from_polygon(&q).unwrap_or_default(),
        }
    }
}

/// IoU of a detection with a ground-truth box; for a crowd box the union is the detection's area, as in
/// pycocotools' `maskUtils.iou`. Axis-aligned pairs follow pycocotools' `bbIou` operation for operation, so results
/// are bit-identical; a label's quadrilateral is matched with the DOTA devkit's polygon IoU (bit-identical to the
/// devkit's); other pairs with an oriented box use the exact convex intersection.
pub fn iou(dt: &Shape, gt: &Shape, crowd: bool) -> f64 {
    match (dt, gt) {
        (d, Shape::Quad(g)) if !crowd => {
            let v = dota_polygon_iou(g, &d.corners());
            if v.is_nan() { 0.0 } else { v }
        }
        (Shape::Xywh(d), Shape::Xywh(g)) => {
            let ga = g[2] * g[3];
            let da = d[2] * d[3];
            let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
            if w <= 0.0 {
                return 0.0;
            }
            let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
            if h <= 0.0 {
                return 0.0;
            }
            let i = w * h;
            let u = if crowd { da } else { da + ga - i };
            i / u
        }
        _ => {
            let (a, b) = (dt.oriented(), gt.oriented());
            let (da, ga) = (dt.box_area(), gt.box_area());
            if da <= 0.0 || ga <= 0.0 {
                return 0.0;
            }
            let i = convex_intersection_area(&a.corners(), &b.corners());
            if i <= 0.0 {
                return 0.0;
            }
            let u = if crowd { da } else { da + ga - i };
            (i / u).clamp(0.0, 1.0)
        }
    }
}

/// One ground-truth object.
#[derive(Debug, Clone, PartialEq)]
pub struct Gt {
    pub category: u32,
    pub shape: Shape,
    /// Area used for the small/medium/large ranges (COCO's `area` field; the box area for label files).
    pub area: f64,
    /// COCO `iscrowd`: may match many detections, and IoU with it divides by the detection's area.
    pub crowd: bool,
    /// Excluded from the counts (DOTA `difficult`): detections matching it are neither true nor false positives.
    pub ignore: bool,
}

/// One detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Dt {
    pub category: u32,
    pub shape: Shape,
    pub score: f64,
}

/// One image of the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: u64,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub gts: Vec<Gt>,
}

/// A category (class) of the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub id: u32,
    pub name: String,
}

/// Ground truth: the images (sorted by id, the evaluation order) and categories (sorted by id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub images: Vec<Image>,
    pub categories: Vec<Category>,
    /// Stems of images left out because their label file was bad (already reported): their predictions are
    /// skipped without a second message.
    pub excluded: std::collections::BTreeSet<String>,
}

impl Dataset {
    /// Sorts images and categories by id, as pycocotools orders `imgIds` and `catIds`.
    pub fn sort(&mut self) {
        self.images.sort_by_key(|i| i.id);
        self.categories.sort_by_key(|c| c.id);
    }

    /// True when any ground-truth box is oriented (then matching uses rotated IoU).
    pub fn is_oriented(&self) -> bool {
        self.images
            .iter()
            .flat_map(|i| &i.gts)
            .any(|g| matches!(g.shape, Shape::Oriented(_) | Shape::Quad(_)))
    }

    pub fn category_name(&self, id: u32) -> String {
        self.categories
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| format!("class {id}"), |c| c.name.clone())
    }
}

/// Detections of one prediction set, per image of a [`Dataset`] (same order as `Dataset::images`).
pub type Detections = Vec<Vec<Dt>>;

/// Errors that stop an evaluation (per-file problems are collected as [`load::Problem`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Format(#[from] nsod_types::FormatError),
    #[error("{0}")]
    Mismatch(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_aligned_iou_and_crowd() {
        let a = Shape::Xywh([0.0, 0.0, 10.0, 10.0]);
        let b = Shape::Xywh([5.0, 0.0, 10.0, 10.0]);
        assert_eq!(iou(&a, &b, false), 50.0 / 150.0);
        // Crowd: intersection over the detection's area.
        assert_eq!(iou(&a, &b, true), 0.5);
        assert_eq!(iou(&a, &Shape::Xywh([10.0, 0.0, 5.0, 5.0]), false), 0.0);
    }

    #[test]
    fn oriented_iou_matches_axis_aligned_at_zero_angle_and_rotates() {
        let a = Shape::Oriented(OrientedBox::new(5.0, 5.0, 10.0, 10.0, 0.0));
        let b = Shape::Xywh([5.0, 0.0, 10.0, 10.0]);
        assert!((iou(&a, &b, false) - 1.0 / 3.0).abs() < 1e-9);
        // A 10x2 bar and the same bar turned 90 degrees about the same centre: intersection 2x2 = 4, union 36.
        let bar = Shape::Oriented(OrientedBox::new(0.0, 0.0, 10.0, 2.0, 0.0));
        let turned = Shape::Oriented(OrientedBox::new(
            0.0,
            0.0,
            10.0,
            2.0,
            std::f32::consts::FRAC_PI_2,
        ));
        assert!((iou(&bar, &turned, false) - 4.0 / 36.0).abs() < 1e-6);
    }
}
