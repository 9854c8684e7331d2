//! nsod's knowledge graph.
//!
//! * [`SceneGraph`]: one image; nodes are detections, edges the relations `nsod_types::relations` extracts.
//! * [`DatasetGraph`]: class-level counts aggregated over images, streamed (memory bounded by the number of class
//!   pairs, not of images). Co-occurrence is counted two ways: per pair of objects (`cooccurs`, as the reference
//!   pipeline does: an image with 3 ships and 2 harbors adds 6 ship-harbor pairs) and per image
//!   (`cooccurs_images`: images that contain both classes).
//! * [`export`]: Prolog facts, GraphML, DOT, JSON node-link and SVG pictures.
//! * [`suggest`]: `confidence_modifier/3` proposals from co-occurrence lift.

pub mod dataset;
pub mod export;
pub mod scene;
pub mod suggest;

pub use dataset::DatasetGraph;
pub use scene::SceneGraph;
