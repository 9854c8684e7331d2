//! Suppressing and merging overlapping detections.
//!
//! Two families live here:
//!
//! * [`postprocess`]: SAHI's postprocesses for merging the detections of overlapping slices: `NMS`, `NMM` and
//!   `GREEDYNMM`, with match metric IoU or IoS, class-wise or class-agnostic, on axis-aligned boxes (SAHI's own
//!   behaviour) or on the exact rotated boxes of OBB models. Thresholds match SAHI: a pair matches when
//!   `metric >= threshold`.
//! * [`ultralytics_nms`]: the NMS Ultralytics applies to a model's raw output (`torchvision.ops.nms` for
//!   axis-aligned boxes, its "fast NMS" with ProbIoU for rotated boxes), with Ultralytics' strict `> iou` test,
//!   so that nsod's detections equal Ultralytics' predictor's.
//!
//! Both use a uniform grid over the boxes ([`index::Grid`]), so each box is compared only with its neighbours and
//! thousands of boxes take milliseconds. Order of equal scores: ties are broken by input position (stable sort).

pub mod index;
mod merge;
mod ultralytics;

pub use merge::{Geometry, MatchMetric, MergeConfig, MergeMethod, postprocess};
pub use ultralytics::ultralytics_nms;
