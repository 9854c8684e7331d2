//! The NMS Ultralytics applies to raw model output (`ultralytics.utils.nms.non_max_suppression`).

use crate::index::Grid;
use nsod_types::geometry::{PROBIOU_EPS, iou, probiou};
use nsod_types::{BBox, Detection};

/// Indices of the detections Ultralytics' NMS keeps, best first, at most `max_det`.
///
/// * Axis-aligned (`rotated == false`): greedy NMS as `torchvision.ops.nms` (a box is dropped when its IoU with a
///   kept, higher-scored box is `> iou_thres`).
/// * Rotated: Ultralytics' fast NMS (`TorchNMS.fast_nms` with `batch_probiou`): a box is dropped when its ProbIoU
///   with *any* higher-scored box is `> iou_thres`, whether that box was kept or not.
///
/// Class-wise unless `agnostic` (Ultralytics offsets boxes by `class * 7680` px, which separates classes the same
/// way). Candidates are sorted by score (stable) and capped at 30,000 as Ultralytics' `max_nms`.
pub fn ultralytics_nms(
    dets: &[Detection],
    iou_thres: f32,
    agnostic: bool,
    rotated: bool,
    max_det: usize,
) -> Vec<usize> {
    const MAX_NMS: usize = 30_000;
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
    order.truncate(MAX_NMS);
    let n = order.len();
    let same_group =
        |i: usize, j: usize| agnostic || dets[order[i]].class_id == dets[order[j]].class_id;
    let mut suppressed = vec![false; n];
    let mut keep = Vec::new();

    if rotated {
        // ProbIoU > t needs the Bhattacharyya distance below bd_max; bd >= |d|^2 / (4 tr(S1 + S2)), so a pair can only
        // pass when the centre distance is below max(r_i, r_j) with r = sqrt(8 bd_max (w^2 + h^2) / 12).
        let target = (1.0 - f64::from(iou_thres)).powi(2) - PROBIOU_EPS;
        let bd_max = if target < 1.0 && target > 0.0 {
            -(1.0 - target).ln() * 1.5 + 1e-6
        } else {
            f64::INFINITY
        };
        let search: Vec<BBox> = order
            .iter()
            .map(|&k| {
                let o = dets[k].as_oriented();
                let t = (f64::from(o.w).powi(2) + f64::from(o.h).powi(2)) / 12.0;
                let r = ((8.0 * bd_max * t).sqrt() + 1e-3).min(1e7) as f32;
                BBox::new(o.cx - r, o.cy - r, o.cx + r, o.cy + r)
            })
            .collect();
        let obbs: Vec<_> = order.iter().map(|&k| dets[k].as_oriented()).collect();
        if bd_max.is_finite() {
            let mut grid = Grid::new(&search);
            for i in 0..n {
                grid.for_each_near(&search[i], |j| {
                    if j > i
                        && !suppressed[j]
                        && same_group(i, j)
                        && probiou(&obbs[i], &obbs[j]) > iou_thres
                    {
                        suppressed[j] = true;
                    }
                });
            }
        } else {
            for i in 0..n {
                for j in i + 1..n {
                    if !suppressed[j] && same_group(i, j) && probiou(&obbs[i], &obbs[j]) > iou_thres
                    {
                        suppressed[j] = true;
                    }
                }
            }
        }
        keep.extend((0..n).filter(|&i| !suppressed[i]));
    } else {
        let boxes: Vec<BBox> = order.iter().map(|&k| dets[k].bbox).collect();
        let mut grid = (iou_thres >= 0.0).then(|| Grid::new(&boxes));
        for i in 0..n {
            if suppressed[i] {
                continue;
            }
            keep.push(i);
            let mut check = |j: usize| {
                if j > i
                    && !suppressed[j]
                    && same_group(i, j)
                    && iou(&boxes[i], &boxes[j]) > iou_thres
                {
                    suppressed[j] = true;
                }
            };
            match grid.as_mut() {
                Some(g) => g.for_each_near(&boxes[i], &mut check),
                None => (0..n).for_each(&mut check),
            }
        }
    }
    keep.truncate(max_det);
    keep.into_iter().map(|i| order[i]).collect()
}
