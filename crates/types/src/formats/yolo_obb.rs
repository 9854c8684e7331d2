//! YOLO-OBB txt: `cls x1 y1 x2 y2 x3 y3 x4 y4` (labels) or with a trailing `conf` (predictions), corners normalised
//! by the image width and height, as Ultralytics' OBB datasets and `save_txt` use.
//!
//! Reading turns the four corners into an [`OrientedBox`] with the minimum-area rectangle (as Ultralytics does with
//! `cv2.minAreaRect`), regularised so that `w >= h` and the angle lies in `[0, pi)`.

use super::{
    FormatError, class_name, data_lines, fmt_f32, parse_class_id, parse_conf, parse_num, read_text,
    write_atomic,
};
use crate::{ClassNames, Detection, GroundTruth, ImageSize, OrientedBox, Point};
use std::io::Write;
use std::path::Path;

/// The four corners of columns `first_column..first_column + 8` (scaled to pixels) and their minimum-area
/// rectangle.
fn parse_corners(
    f: &[&str],
    first_column: usize,
    scale: (f64, f64),
) -> Result<(OrientedBox, [Point; 4]), String> {
    let mut pts = [Point::default(); 4];
    for (i, p) in pts.iter_mut().enumerate() {
        let cx = first_column + 2 * i;
        p.x = parse_num(f[cx], cx + 1, "x")? * scale.0;
        p.y = parse_num(f[cx + 1], cx + 2, "y")? * scale.1;
    }
    let obb = OrientedBox::from_polygon(&pts)
        .ok_or_else(|| "corners do not form a polygon".to_owned())?;
    Ok((obb, pts))
}

pub(crate) fn corner_columns(obb: &OrientedBox, scale: (f64, f64)) -> String {
    let mut s = String::new();
    for (i, p) in obb.corners().iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&fmt_f32((p.x / scale.0) as f32));
        s.push(' ');
        s.push_str(&fmt_f32((p.y / scale.1) as f32));
    }
    s
}

fn size_scale(size: ImageSize) -> (f64, f64) {
    (f64::from(size.width), f64::from(size.height))
}

/// Parses predictions (`cls x1 y1 ... x4 y4 conf`); `path` is used in error messages.
pub fn parse_predictions(
    text: &str,
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<Detection>, FormatError> {
    data_lines(text)
        .map(|(line, f)| {
            let parse = || -> Result<Detection, String> {
                if f.len() != 10 {
                    return Err(format!(
                        "expected 10 columns `cls x1 y1 x2 y2 x3 y3 x4 y4 conf`, found {}",
                        f.len()
                    ));
                }
                let id = parse_class_id(f[0])?;
                let (obb, _) = parse_corners(&f, 1, size_scale(size))?;
                let score = parse_conf(f[9], 10)?;
                Ok(Detection::oriented(id, class_name(names, id)?, score, obb))
            };
            parse().map_err(|m| FormatError::line(path, line, m))
        })
        .collect()
}

/// Parses labels (`cls x1 y1 ... x4 y4`); `path` is used in error messages.
pub fn parse_labels(
    text: &str,
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<GroundTruth>, FormatError> {
    data_lines(text)
        .map(|(line, f)| {
            let parse = || -> Result<GroundTruth, String> {
                if f.len() != 9 {
                    return Err(format!(
                        "expected 9 columns `cls x1 y1 x2 y2 x3 y3 x4 y4`, found {}",
                        f.len()
                    ));
                }
                let id = parse_class_id(f[0])?;
                let (obb, polygon) = parse_corners(&f, 1, size_scale(size))?;
                Ok(GroundTruth {
                    class_id: id,
                    class_name: class_name(names, id)?,
                    bbox: obb.aabb(),
                    obb: Some(obb),
                    difficult: false,
                    polygon: Some(polygon),
                })
            };
            parse().map_err(|m| FormatError::line(path, line, m))
        })
        .collect()
}

pub fn read_predictions(
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<Detection>, FormatError> {
    parse_predictions(&read_text(path)?, path, size, names)
}

pub fn read_labels(
    path: &Path,
    size: ImageSize,
    names: &ClassNames,
) -> Result<Vec<GroundTruth>, FormatError> {
    parse_labels(&read_text(path)?, path, size, names)
}

/// Writes predictions; an axis-aligned detection is written as its rectangle's corners.
pub fn write_predictions(
    path: &Path,
    detections: &[Detection],
    size: ImageSize,
) -> Result<(), FormatError> {
    write_atomic(path, |w: &mut dyn Write| {
        for d in detections {
            writeln!(
                w,
                "{} {} {}",
                d.class_id,
                corner_columns(&d.as_oriented(), size_scale(size)),
                fmt_f32(d.score)
            )?;
        }
        Ok(())
    })
}

/// Writes labels; an axis-aligned label is written as its rectangle's corners.
pub fn write_labels(
    path: &Path,
    labels: &[GroundTruth],
    size: ImageSize,
) -> Result<(), FormatError> {
    write_atomic(path, |w: &mut dyn Write| {
        for g in labels {
            let obb = g.obb.unwrap_or_else(|| g.bbox.to_oriented());
            writeln!(
                w,
                "{} {}",
                g.class_id,
                corner_columns(&obb, size_scale(size))
            )?;
        }
        Ok(())
    })
}
