//! Detections, ground-truth objects, image sizes and class-name tables.

use crate::boxes::{BBox, OrientedBox};
use serde::{Deserialize, Serialize};

/// One detected object, in the pixels of the original image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class_id: u32,
    pub class_name: String,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Axis-aligned box; for an oriented detection, the rectangle that encloses [`Detection::obb`].
    pub bbox: BBox,
    /// The rotated box of OBB models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obb: Option<OrientedBox>,
}

impl Detection {
    /// An axis-aligned detection.
    pub fn new(class_id: u32, class_name: impl Into<String>, score: f32, bbox: BBox) -> Self {
        Self {
            class_id,
            class_name: class_name.into(),
            score,
            bbox,
            obb: None,
        }
    }

    /// An oriented detection; its `bbox` is the rectangle that encloses `obb`.
    pub fn oriented(
        class_id: u32,
        class_name: impl Into<String>,
        score: f32,
        obb: OrientedBox,
    ) -> Self {
        Self {
            class_id,
            class_name: class_name.into(),
            score,
            bbox: obb.aabb(),
            obb: Some(obb),
        }
    }

    /// The detection in an image scaled by `s` (a decimated preview).
    pub fn scaled(&self, s: f32) -> Self {
        let mut d = self.clone();
        let b = self.bbox;
        d.bbox = BBox::new(b.x1 * s, b.y1 * s, b.x2 * s, b.y2 * s);
        d.obb = self
            .obb
            .map(|o| OrientedBox::new(o.cx * s, o.cy * s, o.w * s, o.h * s, o.angle));
        d
    }

    /// The rotated box, or the axis-aligned box as a rotated box with angle 0.
    pub fn as_oriented(&self) -> OrientedBox {
        self.obb.unwrap_or_else(|| self.bbox.to_oriented())
    }
}

/// One labelled object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub class_id: u32,
    pub class_name: String,
    pub bbox: BBox,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obb: Option<OrientedBox>,
    /// DOTA's `difficult` flag (COCO's `iscrowd` plays the same role): matched detections are neither true nor
    /// false positives.
    #[serde(default)]
    pub difficult: bool,
    /// The four corners exactly as the label file gives them (DOTA, YOLO-OBB). DOTA's corners are whole pixels, so
    /// the quadrilateral is generally not a rectangle; `obb` is its minimum-area rectangle, this is what the DOTA
    /// devkit evaluates against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<[crate::Point; 4]>,
}

/// Width and height of an image in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

impl ImageSize {
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

/// The most classes a names table may declare (class ids are below it): a names map whose keys go beyond is
/// refused, instead of allocating a table up to its largest key.
pub const MAX_CLASSES: usize = 65_536;

/// The class-name table of a model: index = class id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassNames(Vec<String>);

impl ClassNames {
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// The DOTA-v1 classes in the order of Ultralytics' `DOTAv1.yaml` (and the shared models' metadata).
    pub fn dota_v1() -> Self {
        Self::new([
            "plane",
            "ship",
            "storage tank",
            "baseball diamond",
            "tennis court",
            "basketball court",
            "ground track field",
            "harbor",
            "bridge",
            "large vehicle",
            "small vehicle",
            "helicopter",
            "roundabout",
            "soccer ball field",
            "swimming pool",
        ])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The name of `id`, if the table has it.
    pub fn get(&self, id: u32) -> Option<&str> {
        self.0.get(id as usize).map(String::as_str)
    }

    /// The name of `id`, or the id as text when the table is empty or too short.
    pub fn name_or_id(&self, id: u32) -> String {
        self.get(id).map_or_else(|| id.to_string(), str::to_owned)
    }

    /// The id of `name`. Names match ignoring case and treating `-`, `_` and spaces alike, so DOTA's
    /// `large-vehicle` finds Ultralytics' `large vehicle`.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        let key = normalize_class_name(name);
        self.0
            .iter()
            .position(|n| normalize_class_name(n) == key)
            .map(|i| i as u32)
    }
}

/// The Prolog atom of a class name: lower case, words joined by `_` (`large vehicle` -> `large_vehicle`). The rules
/// and the knowledge graph use it.
pub fn class_atom(name: &str) -> String {
    normalize_class_name(name).replace(' ', "_")
}

/// Lower case, with runs of `-`, `_` and whitespace turned into one space.
pub fn normalize_class_name(name: &str) -> String {
    name.split(|c: char| c == '-' || c == '_' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lookup_normalises_separators() {
        let names = ClassNames::dota_v1();
        assert_eq!(names.id_of("large-vehicle"), Some(9));
        assert_eq!(names.id_of("Small_Vehicle"), Some(10));
        assert_eq!(names.id_of("soccer-ball-field"), Some(13));
        assert_eq!(names.id_of("container-crane"), None);
        assert_eq!(names.name_or_id(99), "99");
        assert_eq!(names.name_or_id(0), "plane");
    }

    #[test]
    fn oriented_detection_has_enclosing_bbox() {
        let d = Detection::oriented(
            1,
            "ship",
            0.9,
            OrientedBox::new(10.0, 10.0, 4.0, 2.0, std::f32::consts::FRAC_PI_2),
        );
        assert!((d.bbox.width() - 2.0).abs() < 1e-5 && (d.bbox.height() - 4.0).abs() < 1e-5);
    }
}
