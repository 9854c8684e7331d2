//! YOLO ONNX inference for nsod.
//!
//! * [`Model`]: an ONNX Runtime session with the Ultralytics metadata (`names`, `imgsz`, `task`, `end2end`) and
//!   the recognised output [`Layout`].
//! * [`preprocess`]: Ultralytics' letterbox fused with RGB `f32` planar conversion.
//! * [`slicing`]: SAHI's `get_slice_bboxes`.
//! * [`Detector`]: one image in, detections in original pixels out: slices (plus SAHI's full-image pass), batched
//!   session runs, decoding, Ultralytics' NMS per run, then the SAHI merge across slices.
//! * [`ImageSource`]: images read window by window ([`Detector::detect_source`]: each slice is read when it is
//!   run, the next ones while the model runs, and the full-image pass sees a decimated copy).
//! * [`load_image`]: decoding with errors that name the file and the cause.

/// `FromStr` and `Display` of a setting's enum from one table of its words; an unknown word's error names the
/// setting and lists the words (`unknown spinning "x": use auto, on or off`).
macro_rules! setting_words {
    ($t:ty, $setting:literal, { $($v:ident => $w:literal),+ $(,)? }) => {
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($w => Ok(Self::$v),)+
                    _ => {
                        let words = [$($w),+];
                        let (last, rest) = words.split_last().unwrap_or((&"", &[]));
                        Err(format!(
                            "unknown {} {s:?}: use {} or {last}",
                            $setting,
                            rest.join(", ")
                        ))
                    }
                }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $(Self::$v => $w,)+
                })
            }
        }
    };
}

pub mod cuda;
pub mod detector;
pub mod layout;
pub mod metadata;
pub mod model;
pub mod preprocess;
pub mod slicing;
pub mod source;
pub mod stream;
pub mod vis;

pub use detector::{
    Detector, DetectorConfig, ImageDetections, Rect, SliceMode, WindowDetections, merge_groups,
    merge_slices, model_runs, rect_stride,
};
pub use layout::Layout;
pub use model::{
    Device, GraphOptimization, IoMode, Model, ModelInfo, ModelOptions, Placement, Spinning,
};
pub use preprocess::Region;
pub use source::ImageSource;
pub use stream::{StreamImage, StreamInput, StreamOutput, StreamPixels, StreamStats};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The model file cannot be used.
    #[error("model {}: {message}", path.display())]
    Model {
        path: PathBuf,
        message: String,
        #[source]
        source: Option<ort::Error>,
    },
    /// The model's output is not a layout nsod knows.
    #[error("model {}: unknown output layout: {message}", path.display())]
    Layout { path: PathBuf, message: String },
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
    /// ONNX Runtime failed while running the model.
    #[error("inference failed")]
    Run(#[source] ort::Error),
    /// The model's output or the image does not allow inference (shape, empty image).
    #[error("inference failed: {0}")]
    Output(String),
    /// A signal asked the run to stop (checked between batches of slices).
    #[error("interrupted")]
    Interrupted,
    /// An image could not be read or decoded.
    #[error("{}: {message}", path.display())]
    Image {
        path: PathBuf,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// File extensions nsod treats as images.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp", "gif", "jp2", "j2k", "vrt", "img",
];

/// True when the path has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Decodes an image file into 8-bit RGB (PNG, JPEG, TIFF, BMP, WebP; the format is taken from the content).
pub fn load_image(path: &Path) -> Result<image::RgbImage, DetectError> {
    let err = |message: &str, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
        DetectError::Image {
            path: path.to_path_buf(),
            message: message.into(),
            source,
        }
    };
    let meta = std::fs::metadata(path).map_err(|e| err("cannot read", Some(Box::new(e))))?;
    if meta.len() == 0 {
        return Err(err("empty file", None));
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| err("cannot read", Some(Box::new(e))))?
        .with_guessed_format()
        .map_err(|e| err("cannot read", Some(Box::new(e))))?;
    if reader.format().is_none() {
        return Err(err("not an image (unrecognised content)", None));
    }
    let img = reader
        .decode()
        .map_err(|e| err("cannot decode image", Some(Box::new(e))))?;
    Ok(img.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_supported_format_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_fn(16, 8, |x, y| {
            image::Rgb([(x * 16) as u8, (y * 32) as u8, 200])
        });
        for ext in ["png", "jpg", "tif", "bmp", "webp"] {
            let p = dir.path().join(format!("a.{ext}"));
            img.save(&p).unwrap();
            let back = load_image(&p).unwrap_or_else(|e| panic!("{ext}: {e}"));
            assert_eq!(back.dimensions(), (16, 8), "{ext}");
            if ext != "jpg" {
                assert_eq!(back, img, "{ext} is lossless");
            }
            // The content decides, not the extension.
            let renamed = dir.path().join(format!("misnamed-{ext}.png"));
            std::fs::copy(&p, &renamed).unwrap();
            assert_eq!(
                load_image(&renamed).unwrap().dimensions(),
                (16, 8),
                "{ext} named .png"
            );
        }
        assert!(is_image_path(Path::new("x/Y.JPEG")) && !is_image_path(Path::new("notes.txt")));
    }

    #[test]
    fn bad_files_name_the_file_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            load_image(&empty).unwrap_err().to_string(),
            format!("{}: empty file", empty.display())
        );
        let text = dir.path().join("text.bin");
        std::fs::write(&text, b"hello world, not an image").unwrap();
        assert_eq!(
            load_image(&text).unwrap_err().to_string(),
            format!("{}: not an image (unrecognised content)", text.display())
        );
        // The cause is kept as the error's source.
        let chain = |e: DetectError| {
            let mut s = e.to_string();
            let mut cur = std::error::Error::source(&e);
            while let Some(c) = cur {
                s.push_str(&format!(": {c}"));
                cur = c.source();
            }
            s
        };
        let missing = dir.path().join("missing.png");
        assert!(
            chain(load_image(&missing).unwrap_err())
                .starts_with(&format!("{}: cannot read: No such file", missing.display()))
        );
        let mut png = Vec::new();
        image::RgbImage::new(64, 64)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &png[..png.len() / 2]).unwrap();
        assert!(
            chain(load_image(&cut).unwrap_err())
                .starts_with(&format!("{}: cannot decode image: ", cut.display()))
        );
    }
}

#[cfg(test)]
mod setting_words_tests {
    use super::{GraphOptimization, IoMode, Rect, Spinning};

    /// Every word reads back to its value, and an unknown word's error names the setting and lists the words.
    #[test]
    fn words_round_trip_and_unknown_words_are_named() {
        for v in [IoMode::Auto, IoMode::Bound, IoMode::Plain] {
            assert_eq!(v.to_string().parse::<IoMode>(), Ok(v));
        }
        assert_eq!(IoMode::Bound.to_string(), "on");
        for v in [
            GraphOptimization::All,
            GraphOptimization::Extended,
            GraphOptimization::Basic,
            GraphOptimization::Off,
        ] {
            assert_eq!(v.to_string().parse::<GraphOptimization>(), Ok(v));
        }
        for v in [Rect::Auto, Rect::On, Rect::Off] {
            assert_eq!(v.to_string().parse::<Rect>(), Ok(v));
        }
        assert_eq!(
            "x".parse::<IoMode>(),
            Err("unknown io_binding \"x\": use auto, on or off".to_owned())
        );
        assert_eq!(
            "fast".parse::<GraphOptimization>(),
            Err("unknown graph_optimization \"fast\": use all, extended, basic or off".to_owned())
        );
        assert_eq!(
            "yes".parse::<Spinning>(),
            Err("unknown spinning \"yes\": use auto, on or off".to_owned())
        );
        assert_eq!(
            "square".parse::<Rect>(),
            Err("unknown rect \"square\": use auto, on or off".to_owned())
        );
    }
}
