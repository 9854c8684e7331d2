//! YOLO ONNX inference for nsod.
//!
//! * [`Model`]: an ONNX Runtime session with the Ultralytics metadata (`names`, `imgsz`, `task`, `end2end`) and
//!   the recognised output [`Layout`].
//! * [`preprocess`]: Ultralytics' letterbox fused with RGB `f32` planar conversion.
//! * [`slicing`]: SAHI's `get_slice_bboxes`.
//! * [`Detector`]: one image in, detections in original pixels out: slices (plus SAHI's full-image pass), batched
//!   session runs, decoding, Ultralytics' NMS per run, then the SAHI merge across slices.
//! * [`load_image`]: decoding with errors that name the file and the cause.

pub mod detector;
pub mod layout;
pub mod metadata;
pub mod model;
pub mod preprocess;
pub mod slicing;
pub mod vis;

pub use detector::{Detector, DetectorConfig, ImageDetections, SliceMode};
pub use layout::Layout;
pub use model::{Device, Model, ModelOptions};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The model file cannot be used.
    #[error("model {}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    /// The model's output is not a layout nsod knows.
    #[error("model {}: unknown output layout: {message}", path.display())]
    Layout { path: PathBuf, message: String },
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
    /// ONNX Runtime failed while running the model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// An image could not be read or decoded.
    #[error("{}: {message}", path.display())]
    Image { path: PathBuf, message: String },
}

/// File extensions nsod treats as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp"];

/// True when the path has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Decodes an image file into 8-bit RGB (PNG, JPEG, TIFF, BMP, WebP; the format is taken from the content).
pub fn load_image(path: &Path) -> Result<image::RgbImage, DetectError> {
    let err = |message: String| DetectError::Image {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() == 0 {
        return Err(err("empty file".into()));
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| err(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    if reader.format().is_none() {
        return Err(err("not an image (unrecognised content)".into()));
    }
    let img = reader
        .decode()
        .map_err(|e| err(format!("cannot decode image: {e}")))?;
    Ok(img.into_rgb8())
}
