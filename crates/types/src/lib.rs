//! Core types shared by every nsod stage.
//!
//! * [`BBox`], [`OrientedBox`], [`Point`]: boxes in image pixels (x to the right, y down).
//! * [`Detection`] and [`GroundTruth`]: what the detector produces and what labels contain.
//! * [`geometry`]: IoU, IoS, exact rotated IoU, ProbIoU, distances.
//! * [`formats`]: readers and writers for YOLO txt, YOLO-OBB txt, DOTA txt and nsod's JSONL predictions.
//!
//! This crate must stay small and dependency-light: it never depends on ONNX Runtime, Prolog, metrics or any other
//! nsod crate, so that every other crate can depend on it.

pub mod boxes;
pub mod detection;
pub mod formats;
pub mod geo;
pub mod geometry;
pub mod index;
pub mod layout;
pub mod outcome;
pub mod quote;
pub mod relations;

pub use boxes::{BBox, OrientedBox, Point};
pub use detection::{ClassNames, Detection, GroundTruth, ImageSize};
pub use formats::FormatError;
