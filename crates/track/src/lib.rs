//! Multi-object tracking on detections, pure data in and out (no images, no I/O, no metrics).
//!
//! - [`compat`]: an axis-aligned ByteTrack equal to Roboflow `trackers` 2.6.1's `ByteTrackTracker`, frame by frame.

pub mod compat;
