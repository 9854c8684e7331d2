//! Ground truth and predictions from the formats users have.
//!
//! Ground truth: a COCO annotations file, or a folder of label files (YOLO, YOLO-OBB, DOTA), one per image, named
//! after the image (`labels/P0006.txt` for `images/P0006.png`, Ultralytics' convention).
//! Predictions: nsod's `predictions.jsonl` (or any [`ImagePredictions`] list, e.g. YOLO txt read by the binary),
//! or a COCO results file.
//!
//! A bad label file, an unknown image or an unknown class is a [`Problem`]: one line naming the file and the
//! cause. The item is left out and loading goes on; the caller prints and counts the problems.

use crate::{Category, Dataset, Detections, Dt, EvalError, Gt, Image, Shape};
use nsod_types::detection::normalize_class_name;
use nsod_types::formats::{FormatError, dota, jsonl::ImagePredictions, yolo, yolo_obb};
use nsod_types::{ClassNames, ImageSize};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One problem with the input: a one-line message naming the file and the cause, and a short type for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    /// `bad_label`, `unknown_image`, `unknown_class`, `no_image_size`, `bad_prediction`.
    pub kind: &'static str,
}

impl Problem {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::str::FromStr for GtFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Yolo, Self::YoloObb, Self::Dota, Self::Coco]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown format {s:?}: use one of {}",
                    Self::NAMES.join(", ")
                )
            })
    }
}

/// Ground-truth formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GtFormat {
    /// `cls cx cy w h`, normalised.
    Yolo,
    /// `cls x1 y1 x2 y2 x3 y3 x4 y4`, normalised.
    YoloObb,
    /// `x1 y1 x2 y2 x3 y3 x4 y4 classname difficult`, pixels.
    Dota,
    /// A COCO annotations file.
    Coco,
}

impl GtFormat {
    /// The names `--gt-format` takes.
    pub const NAMES: [&'static str; 4] = ["yolo", "yolo-obb", "dota", "coco"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Yolo => "yolo",
            Self::YoloObb => "yolo-obb",
            Self::Dota => "dota",
            Self::Coco => "coco",
        }
    }

    /// Guesses the format: a `.json` file is COCO; for a folder, the first data line of the first label file
    /// decides (5 columns YOLO, 9 YOLO-OBB, 10 with a class name DOTA).
    pub fn detect(path: &Path) -> Result<Self, EvalError> {
        if path.is_file() {
            return if path.extension().is_some_and(|e| e == "json") {
                Ok(Self::Coco)
            } else {
                Err(EvalError::Invalid {
                    path: path.into(),
                    message: "ground truth must be a COCO .json file or a folder of label files"
                        .into(),
                })
            };
        }
        for file in label_files(path)? {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let fields: Option<Vec<&str>> = text
                .lines()
                .map(str::trim)
                .find(|l| {
                    !l.is_empty()
                        && !l.starts_with('#')
                        && !l.starts_with("imagesource:")
                        && !l.starts_with("gsd:")
                })
                .map(|l| l.split_whitespace().collect());
            match fields.as_deref() {
                Some([_, _, _, _, _]) => return Ok(Self::Yolo),
                Some([_, _, _, _, _, _, _, _, _])
                    if fields.as_ref().is_some_and(|f| f[8].parse::<f64>().is_ok()) =>
                {
                    return Ok(Self::YoloObb);
                }
                Some(f) if f.len() == 9 || f.len() == 10 => return Ok(Self::Dota),
                _ => {}
            }
        }
        Err(EvalError::Invalid {
            path: path.into(),
            message: "cannot tell the label format (no label file with 5, 9 or 10 columns): pass --gt-format".into(),
        })
    }
}

/// The `.txt` files of a folder, sorted.
pub fn label_files(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let rd = std::fs::read_dir(dir).map_err(|error| EvalError::Io {
        path: dir.into(),
        error,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    Ok(files)
}

/// The stem of an image or label path (`sub/P0006.png` -> `P0006`): how images and label files are paired.
pub fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned())
}

fn truthy(v: &Option<serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        _ => false,
    }
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    category_id: u32,
    bbox: [f64; 4],
    #[serde(default)]
    area: Option<f64>,
    #[serde(default)]
    iscrowd: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u32,
    #[serde(default)]
    name: Option<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, EvalError> {
    std::fs::read(path).map_err(|error| EvalError::Io {
        path: path.into(),
        error,
    })
}

fn json_error(path: &Path, e: &serde_json::Error) -> EvalError {
    EvalError::Invalid {
        path: path.into(),
        message: format!("line {}: {e}", e.line()),
    }
}

/// The most categories an evaluation accumulates (its arrays hold 10 x 101 x 4 x 3 values per category: about
/// 100 KB each); LVIS has 1,203. A ground truth declaring more is refused; predictions naming more classes than
/// that report the extra ones as unknown.
pub const MAX_CATEGORIES: usize = 4096;

/// Reads a COCO annotations file (`images`, `annotations`, `categories`). An annotation for an image or category
/// the file does not list is a problem, as is a box with a negative size.
pub fn load_coco_gt(path: &Path) -> Result<(Dataset, Vec<Problem>), EvalError> {
    let file: CocoFile = serde_json::from_slice(&read(path)?).map_err(|e| json_error(path, &e))?;
    if file.categories.len() > MAX_CATEGORIES {
        return Err(EvalError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "{} categories, above the maximum of {MAX_CATEGORIES} nsod eval accumulates",
                file.categories.len()
            ),
        });
    }
    let mut problems = Vec::new();
    let mut data = Dataset {
        images: file
            .images
            .into_iter()
            .map(|i| Image {
                id: i.id,
                name: i.file_name.unwrap_or_else(|| i.id.to_string()),
                width: i.width.unwrap_or(0),
                height: i.height.unwrap_or(0),
                gts: Vec::new(),
            })
            .collect(),
        categories: file
            .categories
            .into_iter()
            .map(|c| Category {
                id: c.id,
                name: c.name.unwrap_or_else(|| c.id.to_string()),
            })
            .collect(),
        excluded: Default::default(),
    };
    data.sort();
    let index: HashMap<u64, usize> = data
        .images
        .iter()
        .enumerate()
        .map(|(i, im)| (im.id, i))
        .collect();
    for (n, a) in file.annotations.into_iter().enumerate() {
        let Some(&i) = index.get(&a.image_id) else {
            problems.push(Problem::new(
                "unknown_image",
                format!(
                    "{}: annotation {n}: image_id {} is not in `images`",
                    path.display(),
                    a.image_id
                ),
            ));
            continue;
        };
        if data
            .categories
            .binary_search_by_key(&a.category_id, |c| c.id)
            .is_err()
        {
            problems.push(Problem::new(
                "unknown_class",
                format!(
                    "{}: annotation {n}: category_id {} is not in `categories`",
                    path.display(),
                    a.category_id
                ),
            ));
            continue;
        }
        if !a.bbox.iter().all(|v| v.is_finite()) || a.bbox[2] < 0.0 || a.bbox[3] < 0.0 {
            problems.push(Problem::new(
                "bad_label",
                format!(
                    "{}: annotation {n}: bbox {:?} is not [x, y, width, height] with a size >= 0",
                    path.display(),
                    a.bbox
                ),
            ));
            continue;
        }
        data.images[i].gts.push(Gt {
            category: a.category_id,
            shape: Shape::Xywh(a.bbox),
            area: a.area.unwrap_or(a.bbox[2] * a.bbox[3]),
            crowd: truthy(&a.iscrowd),
            ignore: false,
        });
    }
    Ok((data, problems))
}

/// Options for [`load_label_dir`].
#[derive(Debug, Clone, Default)]
pub struct LabelOptions {
    /// Class names: DOTA labels are mapped to ids through them; for YOLO labels an id outside a non-empty table is
    /// a problem.
    pub names: ClassNames,
    /// Image file name (or stem) and size per stem: needed for normalised (YOLO) labels.
    pub images: BTreeMap<String, (String, ImageSize)>,
    /// Stems of images that belong to the set even without a label file (evaluated as background images, the
    /// Ultralytics convention).
    pub background: Vec<String>,
}

/// Reads a folder of label files. Each label file is one image; images in `opts.background` without a label file
/// are added with no objects. A label file that cannot be read or parsed is a problem and its image is left out.
pub fn load_label_dir(
    dir: &Path,
    format: GtFormat,
    opts: &LabelOptions,
) -> Result<(Dataset, Vec<Problem>), EvalError> {
    let mut problems = Vec::new();
    let mut images: BTreeMap<String, Image> = BTreeMap::new();
    let mut excluded = std::collections::BTreeSet::new();
    for file in label_files(dir)? {
        let s = stem(&file.to_string_lossy());
        let known = opts.images.get(&s);
        let size = known.map(|k| k.1);
        let name = known.map_or_else(|| s.clone(), |k| k.0.clone());
        let parsed: Result<Vec<nsod_types::GroundTruth>, FormatError> = match (format, size) {
            (GtFormat::Dota, _) => dota::read_labels(&file, &opts.names),
            (GtFormat::Yolo, Some(size)) => yolo::read_labels(&file, size, &opts.names),
            (GtFormat::YoloObb, Some(size)) => yolo_obb::read_labels(&file, size, &opts.names),
            (GtFormat::Coco, _) => {
                return Err(EvalError::Invalid {
                    path: dir.into(),
                    message:
                        "a folder of label files cannot be COCO: pass the annotations .json file"
                            .into(),
                });
            }
            (_, None) => {
                excluded.insert(s.clone());
                problems.push(Problem::new(
                    "no_image_size",
                    format!(
                        "{}: no image size for {s}: the labels are normalised; pass --images DIR or predictions that name the image",
                        file.display()
                    ),
                ));
                continue;
            }
        };
        let gts = match parsed {
            Ok(g) => g,
            Err(e) => {
                excluded.insert(s.clone());
                problems.push(Problem::new("bad_label", e.to_string()));
                continue;
            }
        };
        let oriented = !matches!(format, GtFormat::Yolo);
        let gts = gts
            .into_iter()
            .map(|g| {
                let shape = match (g.polygon, g.obb) {
                    (Some(q), _) if oriented => Shape::Quad(q),
                    (None, Some(o)) if oriented => Shape::Oriented(o),
                    _ => Shape::Xywh([
                        f64::from(g.bbox.x1),
                        f64::from(g.bbox.y1),
                        f64::from(g.bbox.width()),
                        f64::from(g.bbox.height()),
                    ]),
                };
                Gt {
                    category: g.class_id,
                    area: shape.box_area(),
                    shape,
                    crowd: false,
                    ignore: g.difficult,
                }
            })
            .collect();
        let (width, height) = size.map_or((0, 0), |s| (s.width, s.height));
        images.insert(
            s,
            Image {
                id: 0,
                name,
                width,
                height,
                gts,
            },
        );
    }
    for s in &opts.background {
        if !images.contains_key(s) {
            let (name, size) = opts
                .images
                .get(s)
                .cloned()
                .unwrap_or_else(|| (s.clone(), ImageSize::new(0, 0)));
            if excluded.contains(s) {
                continue;
            }
            images.insert(
                s.clone(),
                Image {
                    id: 0,
                    name,
                    width: size.width,
                    height: size.height,
                    gts: Vec::new(),
                },
            );
        }
    }
    let mut data = Dataset {
        excluded,
        ..Dataset::default()
    };
    for (i, (_, mut img)) in images.into_iter().enumerate() {
        img.id = i as u64 + 1;
        data.images.push(img);
    }
    let mut ids: Vec<u32> = data
        .images
        .iter()
        .flat_map(|i| &i.gts)
        .map(|g| g.category)
        .collect();
    ids.extend((0..opts.names.len() as u32).collect::<Vec<_>>());
    ids.sort_unstable();
    ids.dedup();
    data.categories = ids
        .into_iter()
        .map(|id| Category {
            id,
            name: opts.names.name_or_id(id),
        })
        .collect();
    Ok((data, problems))
}

/// Matches nsod predictions (image name, class id and name) to the images and categories of `data`.
///
/// Images pair by file stem. With `by_name` (COCO ground truth, whose category ids need not be the model's class
/// ids) classes pair by name, ignoring case and `-`/`_`/space differences; otherwise by id, and a class id
/// `data` lacks is added as a category (it has no ground truth, so it does not change mAP, but its detections are
/// reported) unless `closed` says the class table is known, in which case it is a problem.
pub fn match_predictions(
    data: &mut Dataset,
    preds: &[ImagePredictions],
    source: &Path,
    by_name: bool,
    closed: bool,
) -> (Detections, Vec<Problem>) {
    let mut problems = Vec::new();
    let index: HashMap<String, usize> = data
        .images
        .iter()
        .enumerate()
        .map(|(i, im)| (stem(&im.name), i))
        .collect();
    let names: HashMap<String, u32> = data
        .categories
        .iter()
        .map(|c| (normalize_class_name(&c.name), c.id))
        .collect();
    let mut out: Detections = vec![Vec::new(); data.images.len()];
    let mut seen = std::collections::HashSet::new();
    // One line per unknown class, not per detection.
    let mut reported = std::collections::HashSet::new();
    for p in preds {
        let Some(&i) = index.get(&stem(&p.image)) else {
            if data.excluded.contains(&stem(&p.image)) {
                continue;
            }
            problems.push(Problem::new(
                "unknown_image",
                format!(
                    "{}: predictions for {}, which has no ground truth (no label file or annotation image of that name)",
                    source.display(),
                    p.image
                ),
            ));
            continue;
        };
        if !seen.insert(i) {
            problems.push(Problem::new(
                "bad_prediction",
                format!(
                    "{}: {} appears more than once; later records are ignored",
                    source.display(),
                    p.image
                ),
            ));
            continue;
        }
        for d in &p.detections {
            let category = if by_name {
                names
                    .get(&normalize_class_name(&d.class_name))
                    .copied()
                    .or_else(|| {
                        (d.class_name == d.class_id.to_string()
                            && data.categories.iter().any(|c| c.id == d.class_id))
                        .then_some(d.class_id)
                    })
            } else if data.categories.iter().any(|c| c.id == d.class_id) {
                Some(d.class_id)
            } else if closed || data.categories.len() >= MAX_CATEGORIES {
                // Beyond MAX_CATEGORIES, predictions of new classes are unknown classes (reported once each).
                None
            } else {
                let pos = data.categories.partition_point(|c| c.id < d.class_id);
                data.categories.insert(
                    pos,
                    Category {
                        id: d.class_id,
                        name: d.class_name.clone(),
                    },
                );
                Some(d.class_id)
            };
            let Some(category) = category else {
                if !reported.insert(d.class_id) {
                    continue;
                }
                problems.push(Problem::new(
                    "unknown_class",
                    format!(
                        "{}: {}: class {:?} (id {}) is not a ground-truth category (known: {}); its detections are ignored",
                        source.display(),
                        p.image,
                        d.class_name,
                        d.class_id,
                        data.categories.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
                continue;
            };
            let shape = match d.obb {
                Some(o) => Shape::Oriented(o),
                None => Shape::Xywh([
                    f64::from(d.bbox.x1),
                    f64::from(d.bbox.y1),
                    f64::from(d.bbox.width()),
                    f64::from(d.bbox.height()),
                ]),
            };
            out[i].push(Dt {
                category,
                shape,
                score: f64::from(d.score),
            });
        }
    }
    (out, problems)
}

#[derive(Deserialize)]
struct CocoResult {
    image_id: u64,
    category_id: u32,
    bbox: [f64; 4],
    score: f64,
}

#[derive(Deserialize)]
struct CocoImagesFile {
    images: Vec<CocoImage>,
}

/// Reads a COCO results file and matches it to `data`. Image ids are `data`'s ids; when `id_names` is given
/// (label-folder ground truth, with the `coco_images.json` that `nsod infer` writes beside its results), ids are
/// first turned into file names and paired by stem.
pub fn load_coco_results(
    data: &Dataset,
    path: &Path,
    id_names: Option<&Path>,
) -> Result<(Detections, Vec<Problem>), EvalError> {
    let results: Vec<CocoResult> =
        serde_json::from_slice(&read(path)?).map_err(|e| json_error(path, &e))?;
    let mut problems = Vec::new();
    let by_id: HashMap<u64, usize> = match id_names {
        None => data
            .images
            .iter()
            .enumerate()
            .map(|(i, im)| (im.id, i))
            .collect(),
        Some(map) => {
            let file: CocoImagesFile =
                serde_json::from_slice(&read(map)?).map_err(|e| json_error(map, &e))?;
            let by_stem: HashMap<String, usize> = data
                .images
                .iter()
                .enumerate()
                .map(|(i, im)| (stem(&im.name), i))
                .collect();
            file.images
                .iter()
                .filter_map(|im| {
                    let s = stem(im.file_name.as_deref()?);
                    by_stem.get(&s).map(|&i| (im.id, i))
                })
                .collect()
        }
    };
    let mut out: Detections = vec![Vec::new(); data.images.len()];
    let mut bad_images = std::collections::BTreeSet::new();
    let mut bad_cats = std::collections::BTreeSet::new();
    for (n, r) in results.iter().enumerate() {
        let Some(&i) = by_id.get(&r.image_id) else {
            bad_images.insert(r.image_id);
            continue;
        };
        if data
            .categories
            .binary_search_by_key(&r.category_id, |c| c.id)
            .is_err()
        {
            bad_cats.insert(r.category_id);
            continue;
        }
        if !r.bbox.iter().all(|v| v.is_finite()) || !r.score.is_finite() {
            problems.push(Problem::new(
                "bad_prediction",
                format!("{}: result {n}: non-finite bbox or score", path.display()),
            ));
            continue;
        }
        out[i].push(Dt {
            category: r.category_id,
            shape: Shape::Xywh(r.bbox),
            score: r.score,
        });
    }
    for id in bad_images {
        problems.push(Problem::new(
            "unknown_image",
            format!(
                "{}: results for image_id {id}, which is not an image of the ground truth",
                path.display()
            ),
        ));
    }
    for id in bad_cats {
        problems.push(Problem::new(
            "unknown_class",
            format!(
                "{}: results with category_id {id}, which is not a ground-truth category",
                path.display()
            ),
        ));
    }
    Ok((out, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each category costs the accumulation arrays about 100 KB: a ground truth declaring 5,000 is refused with
    /// the count, not accumulated.
    #[test]
    fn too_many_categories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gt.json");
        let cats: Vec<serde_json::Value> = (0..5000)
            .map(|i| serde_json::json!({"id": i, "name": format!("c{i}")}))
            .collect();
        let file = serde_json::json!({"images": [], "annotations": [], "categories": cats});
        std::fs::write(&path, file.to_string()).unwrap();
        let e = load_coco_gt(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: 5000 categories, above the maximum of 4096 nsod eval accumulates",
                path.display()
            )
        );
    }
}
