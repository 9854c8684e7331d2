//! Multi-object tracking on detections, pure data in and out (no images, no I/O, no metrics).
//!
//! - [`Tracker`]: nsod's tracker. Oriented Kalman state (centre, size, angle and their rates) advanced by elapsed
//!   time; ByteTrack's two-stage association (high-score detections, then low-score ones to keep tracks alive) with
//!   C-BIoU's buffered IoU for small fast objects, OC-SORT's momentum term, observation-centric recovery and
//!   re-update; measurements re-expressed as the equivalent box nearest the prediction (angle wrap, side swap);
//!   class-agnostic matching with a cost for a class change; spatial gating on a grid and one optimal assignment
//!   (`lsap`) per connected component; camera-motion compensation applied to the predictions.
//! - [`kalman`]: the oriented filter.
//! - [`course`]: a track's speed, displacement and heading in the ground frame (window means, so jitter is not
//!   motion), and the ground frame itself (camera motion undone).
//! - [`timeline`]: spatial relations between tracks as time intervals.
//! - [`compat`]: an axis-aligned ByteTrack equal to Roboflow `trackers` 2.6.1's `ByteTrackTracker`, frame by frame.

pub mod compat;
pub mod course;
pub mod kalman;
pub mod timeline;
mod tracker;

pub use tracker::{
    CameraMotion, EndReason, EndedTrack, FrameTracks, Geometry, Observation, TrackError,
    TrackState, TrackView, Tracker, TrackerConfig,
};
