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
                Ok(GroundTruth {
                    class_id,
                    class_name,
                    bbox: obb.aabb(),
                    obb: Some(obb),
                    difficult,
                    polygon: Some(pts),
                })
            };
            parse().map_err(|m| FormatError::line(path, line, m))
        })
        .collect()
}

/// Reads a DOTA label file.
pub fn read_labels(path: &Path, names: &ClassNames) -> Result<Vec<GroundTruth>, FormatError> {
    parse_labels(&read_text(path)?, path, names)
}

/// DOTA's spelling of a class name: words joined by hyphens (`large-vehicle`).
pub fn dota_class_name(name: &str) -> String {
    crate::detection::normalize_class_name(name).replace(' ', "-")
}

/// Writes DOTA labels (class names with hyphens, as DOTA spells them), atomically: a label's own corners when it
/// has them (a label read from a DOTA file is written back unchanged), else its box's.
pub fn write_labels(path: &Path, labels: &[GroundTruth]) -> Result<(), FormatError> {
    write_atomic(path, |w: &mut dyn Write| {
        for g in labels {
            let corners = match &g.polygon {
                Some(pts) => pts
                    .iter()
                    .map(|p| format!("{} {}", p.x, p.y))
                    .collect::<Vec<_>>()
                    .join(" "),
                None => corner_columns(&g.obb.unwrap_or_else(|| g.bbox.to_oriented()), (1.0, 1.0)),
            };
            writeln!(
                w,
                "{corners} {} {}",
                dota_class_name(&g.class_name),
                u8::from(g.difficult)
            )?;
        }
        Ok(())
    })
}

/// Writes detections as the DOTA evaluation server's Task 1 submission: one file per class,
/// `Task1_<class>.txt`, each line `image score x1 y1 x2 y2 x3 y3 x4 y4` (the image's name without extension, the
/// corners of the oriented box, or of the axis-aligned box, in pixels, in their shortest exact decimal form).
/// Every class of `names` gets a file, empty when it has no detection.
pub fn write_task1(
    dir: &Path,
    records: &[crate::formats::jsonl::ImagePredictions],
    names: &ClassNames,
) -> Result<(), FormatError> {
    let mut by_class: std::collections::BTreeMap<String, String> = names
        .as_slice()
        .iter()
        .map(|n| (dota_class_name(n), String::new()))
        .collect();
    for r in records {
        let stem = Path::new(&r.image)
            .file_stem()
            .map_or_else(|| r.image.clone(), |s| s.to_string_lossy().into_owned());
        for d in &r.detections {
            let text = by_class.entry(dota_class_name(&d.class_name)).or_default();
            text.push_str(&format!("{stem} {}", f64::from(d.score)));
            for p in d.as_oriented().corners() {
                text.push_str(&format!(" {} {}", p.x, p.y));
            }
            text.push('\n');
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| FormatError::io(dir, e))?;
    for (class, text) in by_class {
        write_atomic(
            &dir.join(format!("Task1_{class}.txt")),
            |w: &mut dyn Write| w.write_all(text.as_bytes()),
        )?;
    }
    Ok(())
}
