//! Reading predictions produced by nsod or other tools.

use anyhow::{Context, bail};
use nsod_types::formats::jsonl::{ImagePredictions, JsonlReader};
use nsod_types::{ClassNames, ImageSize};
use std::path::{Path, PathBuf};

/// Reads predictions: a predictions.jsonl, or a folder of YOLO or YOLO-OBB txt files with their images (for the
/// sizes).
pub fn read_predictions(
    pred: &Path,
    images: Option<&Path>,
    names: &ClassNames,
) -> anyhow::Result<Vec<anyhow::Result<ImagePredictions>>> {
    if pred.is_file() {
        return Ok(JsonlReader::open(pred)?
            .map(|r| r.map_err(anyhow::Error::from))
            .collect());
    }
    if !pred.is_dir() {
        bail!("{}: no such file or folder", pred.display());
    }
    let Some(images) = images else {
        bail!(
            "--pred {} is a folder of YOLO txt files: pass --images DIR for the image sizes",
            pred.display()
        )
    };
    let mut txts: Vec<PathBuf> = std::fs::read_dir(pred)
        .with_context(|| format!("{}", pred.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    txts.sort();
    Ok(txts
        .into_iter()
        .map(|txt| {
            let stem = txt
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let image = nsod_detect::IMAGE_EXTENSIONS
                .iter()
                .map(|e| images.join(format!("{stem}.{e}")))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: no image named {stem}.* in {}",
                        txt.display(),
                        images.display()
                    )
                })?;
            let (w, h) =
                image::image_dimensions(&image).with_context(|| format!("{}", image.display()))?;
            let size = ImageSize::new(w, h);
            // `cls cx cy w h conf` (YOLO) or `cls x1 y1 ... x4 y4 conf` (YOLO-OBB), told apart by the first line.
            let obb = std::fs::read_to_string(&txt).ok().is_some_and(|t| {
                t.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .is_some_and(|l| l.split_whitespace().count() == 10)
            });
            let detections = if obb {
                nsod_types::formats::yolo_obb::read_predictions(&txt, size, names)?
            } else {
                nsod_types::formats::yolo::read_predictions(&txt, size, names)?
            };
            let file_name = image
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            Ok(ImagePredictions {
                image: file_name,
                width: w,
                height: h,
                detections,
            })
        })
        .collect())
}
