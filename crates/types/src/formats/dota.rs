//! DOTA txt labels: `x1 y1 x2 y2 x3 y3 x4 y4 classname difficult` in pixels, optionally after the `imagesource:` and
//! `gsd:` header lines of DOTA v1.0. Class names use hyphens (`large-vehicle`) and are matched to the model's names
//! with [`ClassNames::id_of`].

use super::yolo_obb::corner_columns;
use super::{FormatError, data_lines, parse_num, read_text, write_atomic};
use crate::{ClassNames, GroundTruth, OrientedBox, Point};
use std::io::Write;
use std::path::Path;

/// Parses DOTA labels from text; `path` is used in error messages.
pub fn parse_labels(
    text: &str,
    path: &Path,
    names: &ClassNames,
) -> Result<Vec<GroundTruth>, FormatError> {
    data_lines(text)
        .filter(|(_, f)| !(f.len() == 1 && (f[0].starts_with("imagesource:") || f[0].starts_with("gsd:"))))
        .map(|(line, f)| {
            let parse = || -> Result<GroundTruth, String> {
                if f.len() != 10 && f.len() != 9 {
                    return Err(format!("expected 10 columns `x1 y1 x2 y2 x3 y3 x4 y4 classname difficult`, found {}", f.len()));
                }
                let mut pts = [Point::default(); 4];
                for (i, p) in pts.iter_mut().enumerate() {
                    p.x = parse_num(f[2 * i], 2 * i + 1, "x")?;
                    p.y = parse_num(f[2 * i + 1], 2 * i + 2, "y")?;
                }
                let obb = OrientedBox::from_polygon(&pts).ok_or("corners do not form a polygon")?;
                let name = f[8];
                let class_id = names.id_of(name).ok_or_else(|| {
                    format!("unknown class {name:?} (known: {})", names.as_slice().join(", "))
                })?;
                let difficult = match f.get(9) {
                    None | Some(&"0") => false,
                    Some(&"1") => true,
                    Some(other) => return Err(format!("column 10 (difficult) must be 0 or 1, found {other:?}")),
                };
                let class_name = names.get(class_id).unwrap_or(name).to_owned();
                Ok(GroundTruth { class_id, class_name, bbox: obb.aabb(), obb: Some(obb), difficult })
            };
            parse().map_err(|m| FormatError::line(path, line, m))
        })
        .collect()
}

/// Reads a DOTA label file.
pub fn read_labels(path: &Path, names: &ClassNames) -> Result<Vec<GroundTruth>, FormatError> {
    parse_labels(&read_text(path)?, path, names)
}

/// Writes DOTA labels (class names with hyphens, as DOTA spells them), atomically.
pub fn write_labels(path: &Path, labels: &[GroundTruth]) -> Result<(), FormatError> {
    write_atomic(path, |w: &mut dyn Write| {
        for g in labels {
            let obb = g.obb.unwrap_or_else(|| g.bbox.to_oriented());
            let name = crate::detection::normalize_class_name(&g.class_name).replace(' ', "-");
            writeln!(
                w,
                "{} {name} {}",
                corner_columns(&obb, (1.0, 1.0)),
                u8::from(g.difficult)
            )?;
        }
        Ok(())
    })
}
