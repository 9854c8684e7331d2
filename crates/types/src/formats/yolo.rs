//! YOLO txt: one object per line, `cls cx cy w h` (labels) or `cls cx cy w h conf` (predictions, as Ultralytics'
//! `save_txt=True, save_conf=True` writes them and as the reference pipeline exchanges them between stages).
//! Coordinates are normalised by the image width and height.

use super::{
    FormatError, class_name, data_lines, fmt_f32, parse_class_id, parse_conf, parse_num, read_text,
    write_atomic,
};
use crate::{BBox, ClassNames, Detection, GroundTruth, ImageSize};
use std::io::Write;
use std::path::Path;

/// Parses one line's box columns 2-5 into pixels.
fn parse_box(fields: &[&str], size: ImageSize) -> Result<BBox, String> {
    let cx = parse_num(fields[1], 2, "x centre")?;
    let cy = parse_num(fields[2], 3, "y centre")?;
    let w = parse_num(fields[3], 4, "width")?;
    let h = parse_num(fields[4], 5, "height")?;
    if w < 0.0 || h < 0.0 {
        return Err(format!("negative box size: width {w}, height {h}"));
    }
    let (iw, ih) = (f64::from(size.width), f64::from(size.height));
    Ok(BBox::new(
        ((cx - w / 2.0) * iw) as f32,
        ((cy - h / 2.0) * ih) as f32,
        ((cx + w / 2.0) * iw) as f32,
        ((cy + h / 2.0) * ih) as f32,
    ))
}

fn box_columns(b: &BBox, size: ImageSize) -> [String; 4] {
    let (iw, ih) = (f64::from(size.width), f64::from(size.height));
    let cx = (f64::from(b.x1) + f64::from(b.x2)) / 2.0 / iw;
    let cy = (f64::from(b.y1) + f64::from(b.y2)) / 2.0 / ih;
    let w = f64::from(b.width()) / iw;
    let h = f64::from(b.height()) / ih;
    [cx, cy, w, h].map(|v| fmt_f32(v as f32))
}

/// Parses predictions (`cls cx cy w h conf`) from text; `path` is used in error messages.
pub fn parse_predictions(
    text: &str,
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<Detection>, FormatError> {
    data_lines(text)
        .map(|(line, f)| {
            let parse = || -> Result<Detection, String> {
                if f.len() != 6 {
                    return Err(format!(
                        "expected 6 columns `cls cx cy w h conf`, found {}",
                        f.len()
                    ));
                }
                let id = parse_class_id(f[0])?;
                let bbox = parse_box(&f, size)?;
                let score = parse_conf(f[5], 6)?;
                Ok(Detection::new(id, class_name(names, id)?, score, bbox))
            };
            parse().map_err(|m| FormatError::line(path, line, m))
        })
        .collect()
}

/// Parses labels (`cls cx cy w h`) from text; `path` is used in error messages.
pub fn parse_labels(
    text: &str,
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<GroundTruth>, FormatError> {
    data_lines(text)
        .map(|(line, f)| {
            let parse = || -> Result<GroundTruth, String> {
                if f.len() != 5 {
                    return Err(format!(
                        "expected 5 columns `cls cx cy w h`, found {}",
                        f.len()
                    ));
                }
                let id = parse_class_id(f[0])?;
                let bbox = parse_box(&f, size)?;
                Ok(GroundTruth {
                    class_id: id,
                    class_name: class_name(names, id)?,
                    bbox,
                    obb: None,
                    difficult: false,
                    polygon: None,
                })
            };
            parse().map_err(|m| FormatError::line(path, line, m))
        })
        .collect()
}

/// Reads a predictions file.
pub fn read_predictions(
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<Detection>, FormatError> {
    parse_predictions(&read_text(path)?, path, size, names)
}

/// Reads a labels file.
pub fn read_labels(
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<GroundTruth>, FormatError> {
    parse_labels(&read_text(path)?, path, size, names)
}

/// Writes predictions as `cls cx cy w h conf`, one per line (atomically).
pub fn write_predictions(
    path: &Path,
    detections: &[Detection],
    size: ImageSize,
) -> Result<(), FormatError> {
    write_atomic(path, |w: &mut dyn Write| {
        for d in detections {
            let [cx, cy, bw, bh] = box_columns(&d.bbox, size);
            writeln!(w, "{} {cx} {cy} {bw} {bh} {}", d.class_id, fmt_f32(d.score))?;
        }
        Ok(())
    })
}

/// Writes labels as `cls cx cy w h`, one per line (atomically).
pub fn write_labels(
    path: &Path,
    labels: &[GroundTruth],
    size: ImageSize,
) -> Result<(), FormatError> {
    write_atomic(path, |w: &mut dyn Write| {
        for g in labels {
            let [cx, cy, bw, bh] = box_columns(&g.bbox, size);
            writeln!(w, "{} {cx} {cy} {bw} {bh}", g.class_id)?;
        }
        Ok(())
    })
}
