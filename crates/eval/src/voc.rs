//! VOC/DOTA-style average precision at one IoU threshold, as the DOTA devkit's `voc_eval` computes it: all
//! detections of a class sorted by score, each matched to the ground-truth box it overlaps most; a match needs
//! IoU strictly above the threshold, the box must not be taken already (else the detection is a false positive),
//! and a match with a `difficult` (or crowd) box counts neither way. AP is the area under the precision envelope
//! (VOC2010+, "all points") or the VOC07 11-point mean.

use crate::{Dataset, Dt, iou};
use serde::Serialize;

/// How AP is read off the precision-recall curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApMethod {
    /// Area under the monotone precision envelope (VOC2010 and later).
    AllPoints,
    /// Mean of the best precision at recall 0, 0.1, ... 1 (VOC2007; the DOTA devkit's default).
    Voc07,
}

/// VOC AP of one category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VocClass {
    pub id: u32,
    pub name: String,
    /// Ground-truth objects that count (not difficult).
    pub gt: usize,
    pub detections: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    /// AP; `None` without ground truth.
    pub ap: Option<f64>,
    /// Recall and precision with all detections; `None` when undefined.
    pub recall: Option<f64>,
    pub precision: Option<f64>,
}

/// VOC/DOTA-style results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VocEval {
    pub iou_threshold: f64,
    pub method: ApMethod,
    /// Mean AP over the categories with ground truth; `None` when there are none.
    pub map: Option<f64>,
    pub per_class: Vec<VocClass>,
}

/// AP from a recall/precision curve, as the devkit's `voc_ap`.
pub fn voc_ap(rec: &[f64], prec: &[f64], method: ApMethod) -> f64 {
    match method {
        ApMethod::Voc07 => {
            let mut ap = 0.0;
            for i in 0..=10 {
                // numpy's arange(0.0, 1.1, 0.1): i * 0.1, so 0.3, 0.6 and 0.7 are a hair above the decimals.
                let t = f64::from(i) * 0.1;
                let p = rec
                    .iter()
                    .zip(prec)
                    .filter(|(r, _)| **r >= t)
                    .map(|(_, p)| *p)
                    .fold(0.0, f64::max);
                ap += p / 11.0;
            }
            ap
        }
        ApMethod::AllPoints => {
            let mut mrec = Vec::with_capacity(rec.len() + 2);
            mrec.push(0.0);
            mrec.extend_from_slice(rec);
            mrec.push(1.0);
            let mut mpre = Vec::with_capacity(prec.len() + 2);
            mpre.push(0.0);
            mpre.extend_from_slice(prec);
            mpre.push(0.0);
            for i in (1..mpre.len()).rev() {
                mpre[i - 1] = mpre[i - 1].max(mpre[i]);
            }
            (1..mrec.len())
                .filter(|&i| mrec[i] != mrec[i - 1])
                .map(|i| (mrec[i] - mrec[i - 1]) * mpre[i])
                .sum()
        }
    }
}

/// Evaluates every category of `data` at `iou_threshold`.
pub fn evaluate(
    data: &Dataset,
    detections: &[Vec<Dt>],
    iou_threshold: f64,
    method: ApMethod,
) -> VocEval {
    let per_class: Vec<VocClass> = data
        .categories
        .iter()
        .map(|cat| {
            let gt: usize = data
                .images
                .iter()
                .flat_map(|i| &i.gts)
                .filter(|g| g.category == cat.id && !g.ignore && !g.crowd)
                .count();
            // (score, image, detection) for this class, by descending score (stable).
            let mut dets: Vec<(f64, usize, &Dt)> = detections
                .iter()
                .enumerate()
                .flat_map(|(i, ds)| ds.iter().map(move |d| (d.score, i, d)))
                .filter(|(_, _, d)| d.category == cat.id)
                .collect();
            dets.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut taken: Vec<Vec<bool>> = data
                .images
                .iter()
                .map(|i| vec![false; i.gts.len()])
                .collect();
            let (mut tp, mut fp) = (0usize, 0usize);
            let mut rec = Vec::with_capacity(dets.len());
            let mut prec = Vec::with_capacity(dets.len());
            for &(_, img, d) in &dets {
                let gts = &data.images[img].gts;
                let mut best = f64::NEG_INFINITY;
                let mut jmax = None;
                for (j, g) in gts.iter().enumerate() {
                    if g.category != cat.id {
                        continue;
                    }
                    let v = iou(&d.shape, &g.shape, false);
                    if v > best {
                        best = v;
                        jmax = Some(j);
                    }
                }
                match jmax {
                    Some(j) if best > iou_threshold => {
                        if !(gts[j].ignore || gts[j].crowd) {
                            if taken[img][j] {
                                fp += 1;
                            } else {
                                taken[img][j] = true;
                                tp += 1;
                            }
                        }
                    }
                    _ => fp += 1,
                }
                if gt > 0 {
                    rec.push(tp as f64 / gt as f64);
                }
                prec.push(tp as f64 / ((tp + fp) as f64).max(f64::EPSILON));
            }
            let ap = (gt > 0).then(|| voc_ap(&rec, &prec, method));
            VocClass {
                id: cat.id,
                name: cat.name.clone(),
                gt,
                detections: dets.len(),
                true_positives: tp,
                false_positives: fp,
                ap,
                recall: (gt > 0).then(|| tp as f64 / gt as f64),
                precision: (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64),
            }
        })
        .collect();
    let aps: Vec<f64> = per_class.iter().filter_map(|c| c.ap).collect();
    VocEval {
        iou_threshold,
        method,
        map: (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64),
        per_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Gt, Image, Shape};
    use nsod_types::OrientedBox;
    use std::f32::consts::FRAC_PI_4;

    fn obb(cx: f32, cy: f32, w: f32, h: f32, a: f32) -> Shape {
        Shape::Oriented(OrientedBox::new(cx, cy, w, h, a))
    }

    fn dataset(gts: Vec<Gt>) -> Dataset {
        Dataset {
            images: vec![Image {
                id: 1,
                name: "P0001.png".into(),
                width: 200,
                height: 200,
                gts,
            }],
            categories: vec![Category {
                id: 0,
                name: "ship".into(),
            }],
            excluded: Default::default(),
        }
    }

    fn g(shape: Shape, difficult: bool) -> Gt {
        Gt {
            category: 0,
            area: shape.box_area(),
            shape,
            crowd: false,
            ignore: difficult,
        }
    }

    fn d(shape: Shape, score: f64) -> Dt {
        Dt {
            category: 0,
            shape,
            score,
        }
    }

    #[test]
    fn voc_ap_known_curves() {
        // TP, FP, TP with 3 objects: recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
        let rec = [1.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0];
        let prec = [1.0, 0.5, 2.0 / 3.0];
        assert!((voc_ap(&rec, &prec, ApMethod::AllPoints) - 5.0 / 9.0).abs() < 1e-12);
        assert!((voc_ap(&rec, &prec, ApMethod::Voc07) - 6.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn rotated_ground_truth_is_matched_with_rotated_iou() {
        // A 20x10 ship at 45 degrees. Its axis-aligned hull (a 21.2 px square) has IoU 200/450 = 0.44 with it:
        // a false positive, though it would be a perfect match for axis-aligned IoU.
        let ship = obb(100.0, 100.0, 20.0, 10.0, FRAC_PI_4);
        let side = 30.0 / 2f32.sqrt();
        let hull = obb(100.0, 100.0, side, side, 0.0);
        let data = dataset(vec![g(ship, false)]);
        let dets = vec![vec![
            d(hull, 0.9),
            d(obb(100.0, 100.0, 20.0, 10.0, FRAC_PI_4), 0.8),
        ]];
        let e = evaluate(&data, &dets, 0.5, ApMethod::AllPoints);
        assert_eq!(e.per_class[0].true_positives, 1);
        assert_eq!(e.per_class[0].false_positives, 1);
        assert!((e.map.unwrap() - 0.5).abs() < 1e-12);
        assert!((evaluate(&data, &dets, 0.5, ApMethod::Voc07).map.unwrap() - 0.5).abs() < 1e-12);
        // COCO-style on the same data: precision 1/2 at every recall and threshold.
        let c = crate::coco::evaluate(&data, &dets);
        assert!((c.summary.AP50 - 0.5).abs() < 1e-12);
        assert!((c.summary.AP - 0.5).abs() < 1e-12);
    }

    #[test]
    fn difficult_objects_count_neither_way_and_duplicates_are_false_positives() {
        let a = obb(50.0, 50.0, 30.0, 12.0, 0.3);
        let b = obb(150.0, 150.0, 30.0, 12.0, -0.7);
        let data = dataset(vec![g(a, true), g(b, false)]);
        // The difficult object's detection is ignored; the duplicate of b is a false positive.
        let dets = vec![vec![d(a, 0.95), d(b, 0.9), d(b, 0.6)]];
        let e = evaluate(&data, &dets, 0.5, ApMethod::AllPoints);
        let c = &e.per_class[0];
        assert_eq!((c.gt, c.true_positives, c.false_positives), (1, 1, 1));
        assert_eq!(c.ap, Some(1.0));
        assert_eq!(c.precision, Some(0.5));
        // The matching threshold is strict: IoU exactly 1/3 does not pass 1/3.
        let data = dataset(vec![g(Shape::Xywh([0.0, 0.0, 10.0, 10.0]), false)]);
        let half = vec![vec![d(Shape::Xywh([5.0, 0.0, 10.0, 10.0]), 0.9)]];
        assert_eq!(
            evaluate(&data, &half, 1.0 / 3.0, ApMethod::AllPoints).map,
            Some(0.0)
        );
        assert_eq!(
            evaluate(&data, &half, 0.3, ApMethod::AllPoints).map,
            Some(1.0)
        );
    }

    #[test]
    fn classes_without_ground_truth_do_not_enter_the_mean() {
        let mut data = dataset(vec![g(Shape::Xywh([0.0, 0.0, 10.0, 10.0]), false)]);
        data.categories.push(Category {
            id: 1,
            name: "plane".into(),
        });
        let dets = vec![vec![
            d(Shape::Xywh([0.0, 0.0, 10.0, 10.0]), 0.9),
            Dt {
                category: 1,
                shape: Shape::Xywh([50.0, 50.0, 10.0, 10.0]),
                score: 0.99,
            },
        ]];
        let e = evaluate(&data, &dets, 0.5, ApMethod::AllPoints);
        assert_eq!(e.map, Some(1.0));
        assert_eq!(e.per_class[1].ap, None);
        assert_eq!(e.per_class[1].false_positives, 1);
    }

    /// The devkit samples VOC07 recall at numpy's `arange(0.0, 1.1, 0.1)`: 0.30000000000000004,
    /// 0.6000000000000001 and 0.7000000000000001 are above 3/10, 3/5 and 7/10, so a curve that ends exactly there
    /// does not reach that point.
    #[test]
    fn voc07_recall_of_exactly_three_six_and_seven_tenths_misses_that_point() {
        let ap = |found: usize, objects: usize| {
            let rec: Vec<f64> = (1..=found).map(|k| k as f64 / objects as f64).collect();
            voc_ap(&rec, &vec![1.0; found], ApMethod::Voc07)
        };
        let points = |k: usize| (0..k).fold(0.0, |a, _| a + 1.0 / 11.0);
        // Recall 3/10: points 0, 0.1, 0.2 only.
        assert_eq!(ap(3, 10), points(3));
        // Recall 3/5 (33 of 55 in the issue): 0 to 0.5.
        assert_eq!(ap(3, 5), points(6));
        assert_eq!(ap(33, 55), points(6));
        // Recall 7/10: 0 to 0.6.
        assert_eq!(ap(7, 10), points(7));
        // Recall 4/10 does reach 0.4.
        assert_eq!(ap(4, 10), points(5));
    }

    /// A whole-pixel DOTA label (a thin quadrilateral, not a rectangle): against its own polygon, as the devkit
    /// matches, the detection has IoU 0.46 (a false positive); against the label's minimum-area rectangle it would
    /// have 0.56 (a true positive).
    #[test]
    fn a_non_rectangular_label_is_matched_with_its_own_polygon() {
        use nsod_types::Point;
        let quad = [
            Point::new(54.0, 66.0),
            Point::new(58.0, 66.0),
            Point::new(56.0, 41.0),
            Point::new(53.0, 41.0),
        ];
        let det = obb(56.440845, 53.88172, 28.117456, 3.764528, 1.5662035);
        let rect = OrientedBox::from_polygon(&quad).unwrap();
        let as_label = crate::iou(&det, &Shape::Quad(quad), false);
        let as_rect = crate::iou(&det, &Shape::Oriented(rect), false);
        assert!((as_label - 0.4617840469903543).abs() < 1e-12, "{as_label}");
        assert!(as_rect > 0.55, "{as_rect}");
        let dets = vec![vec![d(det, 0.9)]];
        let e = evaluate(
            &dataset(vec![g(Shape::Quad(quad), false)]),
            &dets,
            0.5,
            ApMethod::AllPoints,
        );
        assert_eq!(
            (
                e.per_class[0].true_positives,
                e.per_class[0].false_positives
            ),
            (0, 1)
        );
        let e = evaluate(
            &dataset(vec![g(Shape::Oriented(rect), false)]),
            &dets,
            0.5,
            ApMethod::AllPoints,
        );
        assert_eq!(
            (
                e.per_class[0].true_positives,
                e.per_class[0].false_positives
            ),
            (1, 0)
        );
    }
}
