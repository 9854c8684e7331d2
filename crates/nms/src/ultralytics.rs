//! The NMS Ultralytics applies to raw model output (`ultralytics.utils.nms.non_max_suppression`).

use crate::index::Grid;
use crate::index::probiou_search_boxes;
use nsod_types::geometry::{iou, probiou};
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
        let obbs: Vec<_> = order.iter().map(|&k| dets[k].as_oriented()).collect();
        let search = probiou_search_boxes(&obbs, iou_thres);
        if let Some(search) = search {
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
