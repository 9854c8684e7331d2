//! COCO-style evaluation, equivalent to pycocotools' `COCOeval(iouType="bbox")` step by step:
//! `evaluate` (per image and category: detections sorted by score with a stable sort, cut to the largest maxDets,
//! greedy matching per IoU threshold with crowd and ignore rules), `accumulate` (101-point interpolated precision)
//! and `summarize` (the 12 standard numbers, -1 where undefined).
//!
//! Differences from pycocotools, both only where pycocotools has no answer: a ground-truth box with
//! [`Gt::ignore`](crate::Gt::ignore) set (DOTA `difficult`) is treated like a crowd box for ignoring, and oriented
//! ground truth is matched with rotated IoU.

use crate::{Dataset, Dt, iou};
use rayon::prelude::*;
use serde::Serialize;

/// Area ranges `all`, `small`, `medium`, `large` (bounds inclusive on both ends, as in pycocotools).
pub const AREA_RANGES: [(f64, f64); 4] = [
    (0.0, 1e10),
    (0.0, 32.0 * 32.0),
    (32.0 * 32.0, 96.0 * 96.0),
    (96.0 * 96.0, 1e10),
];
pub const AREA_LABELS: [&str; 4] = ["all", "small", "medium", "large"];
pub const MAX_DETS: [usize; 3] = [1, 10, 100];
const T: usize = 10;
const R: usize = 101;
const A: usize = 4;
const M: usize = 3;
/// numpy's `np.spacing(1)`.
const SPACING_1: f64 = f64::EPSILON;

/// `np.linspace(start, stop, num)`, element for element.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut v = [0.0; N];
    for (i, x) in v.iter_mut().enumerate() {
        *x = i as f64 * step + start;
    }
    v[N - 1] = stop;
    v
}

/// IoU thresholds 0.50, 0.55, ... 0.95 exactly as pycocotools builds them.
pub fn iou_thresholds() -> [f64; T] {
    linspace::<T>(0.5, 0.95)
}

/// Recall thresholds 0.00, 0.01, ... 1.00 exactly as pycocotools builds them.
pub fn recall_thresholds() -> [f64; R] {
    linspace::<R>(0.0, 1.0)
}

/// The 12 summary numbers in pycocotools' order; -1 where undefined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[allow(non_snake_case)]
pub struct Summary {
    pub AP: f64,
    pub AP50: f64,
    pub AP75: f64,
    pub APs: f64,
    pub APm: f64,
    pub APl: f64,
    pub AR1: f64,
    pub AR10: f64,
    pub AR100: f64,
    pub ARs: f64,
    pub ARm: f64,
    pub ARl: f64,
}

impl Summary {
    pub const KEYS: [&'static str; 12] = [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ];

    pub fn from_array(s: [f64; 12]) -> Self {
        Self {
            AP: s[0],
            AP50: s[1],
            AP75: s[2],
            APs: s[3],
            APm: s[4],
            APl: s[5],
            AR1: s[6],
            AR10: s[7],
            AR100: s[8],
            ARs: s[9],
            ARm: s[10],
            ARl: s[11],
        }
    }

    pub fn to_array(&self) -> [f64; 12] {
        [
            self.AP, self.AP50, self.AP75, self.APs, self.APm, self.APl, self.AR1, self.AR10,
            self.AR100, self.ARs, self.ARm, self.ARl,
        ]
    }
}

/// Per-category results (area `all`, maxDets 100).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassResult {
    pub id: u32,
    pub name: String,
    /// Ground-truth objects that count (not crowd, not ignored).
    pub gt: usize,
    /// Detections (before the maxDets cut).
    pub detections: usize,
    /// AP over IoU 0.50:0.95, at 0.50 and at 0.75; -1 when the category has no ground truth.
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    /// Recall at IoU 0.50 with all detections (maxDets 100); -1 without ground truth.
    pub recall50: f64,
    /// At IoU 0.50: the precision, recall and score threshold where F1 is highest (-1 when undefined).
    pub best_f1: f64,
    pub precision_at_best_f1: f64,
    pub recall_at_best_f1: f64,
    pub score_at_best_f1: f64,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone)]
pub struct CocoEval {
    pub summary: Summary,
    pub per_class: Vec<ClassResult>,
    /// `precision[t][r][k][a][m]`, flattened, as pycocotools' `eval['precision']`.
    pub precision: Vec<f64>,
    /// `recall[t][k][a][m]`, flattened.
    pub recall: Vec<f64>,
    /// The interpolated precision-recall curve at IoU 0.50 (area all, maxDets 100) per category: 101 precision
    /// values at recall 0.00..1.00, empty when undefined. For plots.
    pub pr_curves: Vec<Vec<f64>>,
    k: usize,
}

impl CocoEval {
    fn p_index(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> usize {
        (((t * R + r) * self.k + k) * A + a) * M + m
    }
    fn r_index(&self, t: usize, k: usize, a: usize, m: usize) -> usize {
        ((t * self.k + k) * A + a) * M + m
    }
}

/// What `evaluateImg` keeps for one image, category and area range.
#[derive(Debug, Clone, Default)]
struct ImgEval {
    /// Scores of the detections kept, in descending order (stable).
    scores: Vec<f64>,
    /// Bit `t` set: matched at IoU threshold `t` (`dtMatches != 0`).
    matched: Vec<u16>,
    /// Bit `t` set: ignored at threshold `t` (`dtIgnore`).
    ignored: Vec<u16>,
    /// Ground truth not ignored (`gtIgnore == 0`).
    npig: usize,
}

/// Stable order of `dts` by descending score (`np.argsort(-scores, kind="mergesort")`).
fn score_order(dts: &[&Dt]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..dts.len()).collect();
    idx.sort_by(|&a, &b| dts[b].score.total_cmp(&dts[a].score));
    idx
}

/// `evaluateImg` for every area range, for one image and category.
fn evaluate_img(
    gts: &[&crate::Gt],
    dts: &[&Dt],
    thresholds: &[f64; T],
    max_det: usize,
) -> [ImgEval; A] {
    let mut order = score_order(dts);
    order.truncate(max_det);
    let dts: Vec<&Dt> = order.iter().map(|&i| dts[i]).collect();
    let g = gts.len();
    let d = dts.len();
    // ious[di * g + gi], with detections in score order and ground truth in file order.
    let mut ious = vec![0.0; d * g];
    for (di, dt) in dts.iter().enumerate() {
        for (gi, gt) in gts.iter().enumerate() {
            ious[di * g + gi] = iou(&dt.shape, &gt.shape, gt.crowd);
        }
    }
    let scores: Vec<f64> = dts.iter().map(|d| d.score).collect();
    let dt_areas: Vec<f64> = dts.iter().map(|d| d.shape.box_area()).collect();
    std::array::from_fn(|a| {
        let (lo, hi) = AREA_RANGES[a];
        let gt_ig: Vec<bool> = gts
            .iter()
            .map(|gt| gt.crowd || gt.ignore || gt.area < lo || gt.area > hi)
            .collect();
        // Ground truth sorted with the ignored ones last (stable).
        let mut gorder: Vec<usize> = (0..g).collect();
        gorder.sort_by_key(|&i| gt_ig[i]);
        let ig_sorted: Vec<bool> = gorder.iter().map(|&i| gt_ig[i]).collect();
        let crowd_sorted: Vec<bool> = gorder.iter().map(|&i| gts[i].crowd).collect();
        let mut matched = vec![0u16; d];
        let mut ignored = vec![0u16; d];
        if d > 0 && g > 0 {
            let mut gt_taken = vec![false; g];
            for (t, &thr) in thresholds.iter().enumerate() {
                gt_taken.iter_mut().for_each(|x| *x = false);
                let bit = 1u16 << t;
                for di in 0..d {
                    let mut best = thr.min(1.0 - 1e-10);
                    let mut m: Option<usize> = None;
                    for (k, &gi) in gorder.iter().enumerate() {
                        if gt_taken[k] && !crowd_sorted[k] {
                            continue;
                        }
                        if let Some(mk) = m
                            && !ig_sorted[mk]
                            && ig_sorted[k]
                        {
                            break;
                        }
                        let v = ious[di * g + gi];
                        if v < best {
                            continue;
                        }
                        best = v;
                        m = Some(k);
                    }
                    if let Some(k) = m {
                        matched[di] |= bit;
                        if ig_sorted[k] {
                            ignored[di] |= bit;
                        }
                        gt_taken[k] = true;
                    }
                }
            }
        }
        // Unmatched detections outside the area range are ignored.
        for di in 0..d {
            if dt_areas[di] < lo || dt_areas[di] > hi {
                ignored[di] |= !matched[di] & ((1u16 << T) - 1);
            }
        }
        ImgEval {
            scores: scores.clone(),
            matched,
            ignored,
            npig: ig_sorted.iter().filter(|&&x| !x).count(),
        }
    })
}

/// Evaluates `detections` (one list per image of `data`, in the same order) against `data`.
///
/// Categories are those of `data`; detections of other categories are not evaluated (the loaders report them).
pub fn evaluate(data: &Dataset, detections: &[Vec<Dt>]) -> CocoEval {
    evaluate_with(data, detections, MAX_DETS)
}

/// [`evaluate`] with other maxDets (pycocotools' `params.maxDets`): the last is the cut of AP and of the per-category
/// results. For images with more than 100 objects of a class (a large raster, a mosaic), where COCO's 100 would cap
/// the recall.
pub fn evaluate_with(data: &Dataset, detections: &[Vec<Dt>], max_dets: [usize; 3]) -> CocoEval {
    let thresholds = iou_thresholds();
    let rec_thrs = recall_thresholds();
    let cats: Vec<u32> = data.categories.iter().map(|c| c.id).collect();
    let k_count = cats.len();
    let cat_index = |id: u32| cats.binary_search(&id).ok();
    let max_det = max_dets[M - 1];

    // evaluate: per image (in parallel), per category present in the image.
    let per_image: Vec<Vec<(usize, [ImgEval; A])>> = data
        .images
        .par_iter()
        .enumerate()
        .map(|(i, img)| {
            let dts = detections.get(i).map_or(&[][..], Vec::as_slice);
            let mut by_cat: Vec<(usize, Vec<&crate::Gt>, Vec<&Dt>)> = Vec::new();
            fn slot<G, D>(by_cat: &mut Vec<(usize, Vec<G>, Vec<D>)>, k: usize) -> usize {
                match by_cat.iter().position(|e| e.0 == k) {
                    Some(p) => p,
                    None => {
                        by_cat.push((k, Vec::new(), Vec::new()));
                        by_cat.len() - 1
                    }
                }
            }
            for g in &img.gts {
                if let Some(k) = cat_index(g.category) {
                    let p = slot(&mut by_cat, k);
                    by_cat[p].1.push(g);
                }
            }
            for d in dts {
                if let Some(k) = cat_index(d.category) {
                    let p = slot(&mut by_cat, k);
                    by_cat[p].2.push(d);
                }
            }
            by_cat
                .into_iter()
                .map(|(k, g, d)| (k, evaluate_img(&g, &d, &thresholds, max_det)))
                .collect()
        })
        .collect();

    // Regroup by category, images in order (pycocotools' evalImgs layout without the Nones).
    let mut by_cat: Vec<Vec<&[ImgEval; A]>> = vec![Vec::new(); k_count];
    for img in &per_image {
        for (k, e) in img {
            by_cat[*k].push(e);
        }
    }
    let mut det_counts = vec![0usize; k_count];
    for dts in detections {
        for d in dts {
            if let Some(k) = cat_index(d.category) {
                det_counts[k] += 1;
            }
        }
    }

    // accumulate, in parallel over categories.
    struct CatAcc {
        precision: Vec<f64>, // [t][r][a][m]
        recall: Vec<f64>,    // [t][a][m]
        f1: (f64, f64, f64, f64),
        pr50: Vec<f64>,
    }
    let accs: Vec<CatAcc> = by_cat
        .par_iter()
        .map(|entries| {
            let mut precision = vec![-1.0; T * R * A * M];
            let mut recall = vec![-1.0; T * A * M];
            let mut f1 = (-1.0, -1.0, -1.0, -1.0);
            let mut pr50 = Vec::new();
            for a in 0..A {
                let npig: usize = entries.iter().map(|e| e[a].npig).sum();
                if entries.is_empty() || npig == 0 {
                    continue;
                }
                for (m, &md) in max_dets.iter().enumerate() {
                    let mut rows: Vec<(f64, u16, u16)> = Vec::new();
                    for e in entries {
                        let e = &e[a];
                        let n = e.scores.len().min(md);
                        rows.extend((0..n).map(|i| (e.scores[i], e.matched[i], e.ignored[i])));
                    }
                    rows.sort_by(|x, y| y.0.total_cmp(&x.0));
                    let nd = rows.len();
                    let mut rc = vec![0.0; nd];
                    let mut pr = vec![0.0; nd];
                    for t in 0..T {
                        let bit = 1u16 << t;
                        let (mut tp, mut fp) = (0u64, 0u64);
                        for (i, &(_, mt, ig)) in rows.iter().enumerate() {
                            if ig & bit == 0 {
                                if mt & bit != 0 {
                                    tp += 1;
                                } else {
                                    fp += 1;
                                }
                            }
                            let (tpf, fpf) = (tp as f64, fp as f64);
                            rc[i] = tpf / npig as f64;
                            pr[i] = tpf / (fpf + tpf + SPACING_1);
                        }
                        recall[(t * A + a) * M + m] = if nd > 0 { rc[nd - 1] } else { 0.0 };
                        if t == 0 && a == 0 && m == M - 1 {
                            // Best F1 on the raw (not interpolated) curve.
                            for i in 0..nd {
                                let (p, r) = (pr[i], rc[i]);
                                let f = if p + r > 0.0 {
                                    2.0 * p * r / (p + r)
                                } else {
                                    0.0
                                };
                                if f > f1.0 {
                                    f1 = (f, p, r, rows[i].0);
                                }
                            }
                            if nd > 0 && f1.0 < 0.0 {
                                f1 = (0.0, 0.0, 0.0, rows[nd - 1].0);
                            }
                        }
                        for i in (1..nd).rev() {
                            if pr[i] > pr[i - 1] {
                                pr[i - 1] = pr[i];
                            }
                        }
                        // searchsorted(rc, recThrs, side="left"); past the end the rest stay 0.
                        let mut i = 0;
                        for (r, &thr) in rec_thrs.iter().enumerate() {
                            while i < nd && rc[i] < thr {
                                i += 1;
                            }
                            let q = if i < nd { pr[i] } else { 0.0 };
                            precision[((t * R + r) * A + a) * M + m] = q;
                        }
                        if t == 0 && a == 0 && m == M - 1 {
                            pr50 = (0..R).map(|r| precision[(r * A) * M + m]).collect();
                        }
                    }
                }
            }
            CatAcc {
                precision,
                recall,
                f1,
                pr50,
            }
        })
        .collect();

    let mut eval = CocoEval {
        summary: Summary::from_array([-1.0; 12]),
        per_class: Vec::new(),
        precision: vec![-1.0; T * R * k_count * A * M],
        recall: vec![-1.0; T * k_count * A * M],
        pr_curves: Vec::new(),
        k: k_count,
    };
    for (k, acc) in accs.iter().enumerate() {
        for t in 0..T {
            for a in 0..A {
                for m in 0..M {
                    for r in 0..R {
                        let i = eval.p_index(t, r, k, a, m);
                        eval.precision[i] = acc.precision[((t * R + r) * A + a) * M + m];
                    }
                    let i = eval.r_index(t, k, a, m);
                    eval.recall[i] = acc.recall[(t * A + a) * M + m];
                }
            }
        }
    }

    // summarize
    let t50 = thresholds.iter().position(|&t| t == 0.5);
    let t75 = thresholds.iter().position(|&t| t == 0.75);
    let all_t: Vec<usize> = (0..T).collect();
    let pick = |t: Option<usize>| t.map_or_else(Vec::new, |t| vec![t]);
    let ap = |ts: &[usize], ks: &[usize], a: usize, m: usize| {
        let mut sum = 0.0;
        let mut n = 0usize;
        for &t in ts {
            for r in 0..R {
                for &k in ks {
                    let v = eval.precision[eval.p_index(t, r, k, a, m)];
                    if v > -1.0 {
                        sum += v;
                        n += 1;
                    }
                }
            }
        }
        if n == 0 { -1.0 } else { sum / n as f64 }
    };
    let ar = |ks: &[usize], a: usize, m: usize| {
        let mut sum = 0.0;
        let mut n = 0usize;
        for t in 0..T {
            for &k in ks {
                let v = eval.recall[eval.r_index(t, k, a, m)];
                if v > -1.0 {
                    sum += v;
                    n += 1;
                }
            }
        }
        if n == 0 { -1.0 } else { sum / n as f64 }
    };
    let ks: Vec<usize> = (0..k_count).collect();
    let summary = Summary::from_array([
        ap(&all_t, &ks, 0, 2),
        ap(&pick(t50), &ks, 0, 2),
        ap(&pick(t75), &ks, 0, 2),
        ap(&all_t, &ks, 1, 2),
        ap(&all_t, &ks, 2, 2),
        ap(&all_t, &ks, 3, 2),
        ar(&ks, 0, 0),
        ar(&ks, 0, 1),
        ar(&ks, 0, 2),
        ar(&ks, 1, 2),
        ar(&ks, 2, 2),
        ar(&ks, 3, 2),
    ]);
    let mut per_class = Vec::new();

    for (k, cat) in data.categories.iter().enumerate() {
        let gt = by_cat[k].iter().map(|e| e[0].npig).sum();
        let acc = &accs[k];
        let recall50 = t50.map_or(-1.0, |t| eval.recall[eval.r_index(t, k, 0, 2)]);
        per_class.push(ClassResult {
            id: cat.id,
            name: cat.name.clone(),
            gt,
            detections: det_counts[k],
            ap: ap(&all_t, &[k], 0, 2),
            ap50: ap(&pick(t50), &[k], 0, 2),
            ap75: ap(&pick(t75), &[k], 0, 2),
            recall50,
            best_f1: acc.f1.0,
            precision_at_best_f1: acc.f1.1,
            recall_at_best_f1: acc.f1.2,
            score_at_best_f1: acc.f1.3,
        });
    }
    eval.pr_curves = accs.iter().map(|a| a.pr50.clone()).collect();
    eval.summary = summary;
    eval.per_class = per_class;
    eval
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Gt, Image, Shape};

    #[test]
    fn thresholds_are_numpy_linspace_bit_for_bit() {
        // Values printed by numpy 2.x for pycocotools' iouThrs and recThrs.
        assert_eq!(
            iou_thresholds(),
            [
                0.5,
                0.55,
                0.6,
                0.65,
                0.7,
                0.75,
                0.8,
                0.85,
                0.8999999999999999,
                0.95
            ]
        );
        let r = recall_thresholds();
        assert_eq!(
            [r[1], r[3], r[7], r[29], r[57], r[99], r[100]],
            [0.01, 0.03, 0.07, 0.29, 0.5700000000000001, 0.99, 1.0]
        );
    }

    fn gt(x: f64, crowd: bool) -> Gt {
        let shape = Shape::Xywh([x, 0.0, 10.0, 10.0]);
        Gt {
            category: 1,
            shape,
            area: 100.0,
            crowd,
            ignore: false,
        }
    }

    fn dt(x: f64, score: f64) -> Dt {
        Dt {
            category: 1,
            shape: Shape::Xywh([x, 0.0, 10.0, 10.0]),
            score,
        }
    }

    fn data(gts: Vec<Gt>) -> Dataset {
        Dataset {
            images: vec![Image {
                id: 1,
                name: "a.png".into(),
                width: 100,
                height: 100,
                gts,
            }],
            categories: vec![Category {
                id: 1,
                name: "plane".into(),
            }],
            excluded: Default::default(),
        }
    }

    #[test]
    fn false_positive_first_gives_half_precision_everywhere() {
        // One object; the best-scored detection misses it, the second hits it exactly: precision 1/2 at every
        // recall, at every IoU threshold; pycocotools adds eps to the denominator.
        let d = data(vec![gt(0.0, false)]);
        let e = evaluate(&d, &[vec![dt(50.0, 0.9), dt(0.0, 0.8)]]);
        let half = 1.0 / (2.0 + f64::EPSILON);
        assert_eq!(e.summary.AP, half);
        assert_eq!(e.summary.AP50, half);
        assert_eq!(e.summary.AR100, 1.0);
        // maxDets 1 keeps only the false positive.
        assert_eq!(e.summary.AR1, 0.0);
        // 10x10 boxes are small: medium and large are undefined.
        assert_eq!(e.summary.APm, -1.0);
        assert_eq!(e.summary.ARl, -1.0);
        assert_eq!(e.per_class[0].gt, 1);
        assert_eq!(e.per_class[0].detections, 2);
        assert_eq!(e.per_class[0].score_at_best_f1, 0.8);
    }

    #[test]
    fn crowd_boxes_absorb_detections_and_do_not_count() {
        // A crowd box alone: the detection inside it is ignored, nothing counts, everything is undefined.
        let d = data(vec![gt(0.0, true)]);
        let e = evaluate(&d, &[vec![dt(0.0, 0.9), dt(1.0, 0.8)]]);
        assert_eq!(e.summary.to_array(), [-1.0; 12]);
        // With a regular object too: crowd matches are ignored and the regular one is found. The detection shifted
        // by one pixel covers 90% of its area in the crowd box, so at IoU 0.95 it is a false positive ranked
        // first: AP 0.95 (pycocotools prints [0.95, 0.9999999999999999, ...] for this case).
        let d = data(vec![gt(0.0, true), gt(40.0, false)]);
        let e = evaluate(&d, &[vec![dt(0.0, 0.95), dt(1.0, 0.9), dt(40.0, 0.5)]]);
        assert!((e.summary.AP - 0.95).abs() < 1e-12, "{}", e.summary.AP);
        assert!((e.summary.AP50 - 1.0).abs() < 1e-12);
        assert_eq!(e.summary.AR1, 0.0);
        assert_eq!(e.summary.AR10, 1.0);
    }

    #[test]
    fn no_detections_means_zero_not_undefined() {
        let d = data(vec![gt(0.0, false)]);
        let e = evaluate(&d, &[vec![]]);
        assert_eq!(e.summary.AP, 0.0);
        assert_eq!(e.summary.AR100, 0.0);
    }
}
