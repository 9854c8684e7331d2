//! `nsod quantize`: a calibrated INT8 model from the user's own images, with its cost in accuracy measured.
//!
//! * [`calibrate`]: the calibration tensors are the slices nsod itself makes from the user's images with the run's
//!   settings (the same regions and letterbox, [`nsod_detect::Detector::slice_tensors`]), a seeded sample capped
//!   in number, written one file per slice so the quantiser reads them one at a time.
//! * [`run_quantizer`]: ONNX Runtime's static quantiser (QDQ, per-channel INT8 weights, UINT8 activations) is
//!   Python; nsod runs `scripts/quantize.py` in the virtualenv `scripts/setup.sh --quantize` makes (pinned
//!   onnxruntime and onnx, no PyTorch). The script finds the head from the graph and keeps it in float, and writes
//!   the Ultralytics metadata back with the provenance (`nsod_quantized`).
//! * [`Agreement`]: the quantised model against the float one on held-out images: recall of the float model's
//!   detections, the score differences of the matched pairs, COCO mAP taking the float detections as ground truth,
//!   and both models' `session.run` time.

use nsod_types::Detection;
use nsod_types::geometry::rotated_iou;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How activation ranges are calibrated (ONNX Runtime's `CalibrationMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The observed minimum and maximum.
    MinMax,
    /// The range minimising the KL divergence of a histogram.
    Entropy,
    /// A percentile of a histogram (ONNX Runtime's 99.999): the default, measured best here (docs/quantize.md).
    #[default]
    Percentile,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minmax" => Ok(Self::MinMax),
            "entropy" => Ok(Self::Entropy),
            "percentile" => Ok(Self::Percentile),
            _ => Err(format!("{s:?} is not minmax, entropy or percentile")),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MinMax => "minmax",
            Self::Entropy => "entropy",
            Self::Percentile => "percentile",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("{}: {message}", path.display())]
    Image { path: PathBuf, message: String },
    #[error("{}: cannot write", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no calibration slices: give images with --calib")]
    NoCalibration,
    #[error("the quantiser cannot start ({}): run scripts/setup.sh --quantize", python.display())]
    NoQuantizer {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The model's head cannot be found: it is refused (quantising the whole graph gives no detections).
    #[error("{}: {message}", model.display())]
    NoHead { model: PathBuf, message: String },
    #[error("{}: the quantiser failed: {message}", model.display())]
    Quantizer { model: PathBuf, message: String },
}

/// The calibration set written by [`calibrate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Slices written (the sample).
    pub slices: usize,
    /// Slices the images have in all.
    pub available: usize,
    pub images: usize,
}

/// The images split into calibration and check sets: with no check images given, a seeded fifth of the
/// calibration images (at least one, when there are two or more) is held out for the check; a single image is used
/// for both (said in the summary).
pub fn split(
    calib: &[PathBuf],
    check: &[PathBuf],
    seed: u64,
) -> (Vec<PathBuf>, Vec<PathBuf>, bool) {
    if !check.is_empty() {
        return (calib.to_vec(), check.to_vec(), false);
    }
    if calib.len() < 2 {
        return (calib.to_vec(), calib.to_vec(), true);
    }
    let mut order: Vec<usize> = (0..calib.len()).collect();
    fastrand::Rng::with_seed(seed).shuffle(&mut order);
    let held = (calib.len() / 5).max(1);
    let mut check_idx: Vec<usize> = order[..held].to_vec();
    check_idx.sort_unstable();
    let (mut c, mut k) = (Vec::new(), Vec::new());
    for (i, p) in calib.iter().enumerate() {
        if check_idx.contains(&i) {
            k.push(p.clone());
        } else {
            c.push(p.clone());
        }
    }
    (c, k, false)
}

fn load(
    path: &Path,
    raster: &nsod_raster::RasterOptions,
) -> Result<image::RgbImage, QuantizeError> {
    let loaded = nsod_pipeline::source::load(path, raster).map_err(|e| QuantizeError::Image {
        path: path.to_path_buf(),
        message: nsod_pipeline::error_chain(&e),
    })?;
    match loaded.pixels {
        nsod_pipeline::Pixels::Memory(img) => Ok(img),
        nsod_pipeline::Pixels::Windowed(_) => Err(QuantizeError::Image {
            path: path.to_path_buf(),
            message: "too large to calibrate on whole: give crops of it (any slice of it is a slice nsod runs)"
                .into(),
        }),
    }
}

/// A new folder for calibration tensors (in the system's temporary folder), removed when dropped.
pub fn calibration_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("nsod-calib-").tempdir()
}

/// Writes up to `max` calibration tensors into `dir` (`calibration.json` and one little-endian float32 file per
/// slice): the slices of `images` as `detector` makes them, a sample drawn with `seed`.
pub fn calibrate(
    detector: &nsod_detect::Detector,
    images: &[PathBuf],
    raster: &nsod_raster::RasterOptions,
    max: usize,
    seed: u64,
    dir: &Path,
) -> Result<Calibration, QuantizeError> {
    // Every (image, slice), from the images' sizes; then a seeded sample.
    let mut all: Vec<(usize, usize)> = Vec::new();
    for (i, path) in images.iter().enumerate() {
        let img = load(path, raster)?;
        let n = detector.regions(img.width(), img.height()).0.len();
        all.extend((0..n).map(|k| (i, k)));
    }
    let available = all.len();
    fastrand::Rng::with_seed(seed).shuffle(&mut all);
    all.truncate(max);
    all.sort_unstable();
    if all.is_empty() {
        return Err(QuantizeError::NoCalibration);
    }
    let (h, w) = detector.model.info.input_hw;
    let mut files = Vec::with_capacity(all.len());
    let mut used = 0;
    for (i, path) in images.iter().enumerate() {
        let wanted: Vec<usize> = all.iter().filter(|s| s.0 == i).map(|s| s.1).collect();
        if wanted.is_empty() {
            continue;
        }
        used += 1;
        let img = load(path, raster)?;
        let tensors = detector
            .slice_tensors(&img)
            .map_err(|e| QuantizeError::Image {
                path: path.clone(),
                message: e.to_string(),
            })?;
        for k in wanted {
            let name = format!("{i}_{k}.f32");
            let file = dir.join(&name);
            let write = || -> std::io::Result<()> {
                let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
                for v in &tensors[k] {
                    f.write_all(&v.to_le_bytes())?;
                }
                f.flush()
            };
            write().map_err(|source| QuantizeError::Write {
                path: file.clone(),
                source,
            })?;
            files.push(name);
        }
    }
    let manifest = serde_json::json!({
        "input": detector.model.info.input_name,
        "shape": [1, 3, h, w],
        "files": files,
    });
    let path = dir.join("calibration.json");
    std::fs::write(&path, manifest.to_string())
        .map_err(|source| QuantizeError::Write { path, source })?;
    Ok(Calibration {
        slices: files.len(),
        available,
        images: used,
    })
}

/// How to run the quantiser.
#[derive(Debug, Clone)]
pub struct Quantizer {
    pub python: PathBuf,
    pub script: PathBuf,
}

/// What the quantiser did (its JSON line).
pub type QuantizerReport = serde_json::Value;

/// Runs the quantiser on `model` with the calibration in `calib`, writing `out`.
pub fn run_quantizer(
    q: &Quantizer,
    model: &Path,
    calib: &Path,
    out: &Path,
    method: Method,
    provenance: &serde_json::Value,
    (reduce_range, fp16): (bool, bool),
) -> Result<QuantizerReport, QuantizeError> {
    let mut cmd = Command::new(&q.python);
    cmd.arg(&q.script)
        .arg("--model")
        .arg(model)
        .arg("--calib")
        .arg(calib)
        .arg("--out")
        .arg(out)
        .args(["--method", &method.to_string()])
        .arg("--provenance")
        .arg(provenance.to_string());
    if reduce_range {
        cmd.arg("--reduce-range");
    }
    if fp16 {
        cmd.arg("--fp16");
    }
    let o = cmd.output().map_err(|source| QuantizeError::NoQuantizer {
        python: q.python.clone(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    // The script's own message is its last line (the quantiser's warnings come first).
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    match o.status.code() {
        Some(0) => serde_json::from_slice(&o.stdout).map_err(|e| QuantizeError::Quantizer {
            model: model.to_path_buf(),
            message: format!("unreadable report ({e})"),
        }),
        Some(3) => Err(QuantizeError::NoHead {
            model: model.to_path_buf(),
            message: last.to_owned(),
        }),
        _ => Err(QuantizeError::Quantizer {
            model: model.to_path_buf(),
            message: last.to_owned(),
        }),
    }
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// The quantised model against the float one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub images: usize,
    /// Float detections at the run's confidence threshold.
    pub float_detections: usize,
    /// Of them, matched by an INT8 detection (INT8 at confidence 0.001) of the same class with rotated IoU >= 0.5.
    pub matched: usize,
    pub recall: f64,
    /// |score difference| of the matched pairs.
    pub mean_abs_delta: f64,
    pub max_abs_delta: f64,
    /// COCO mAP50 and mAP50-95 of the INT8 detections (conf 0.001), the float detections as ground truth, with
    /// maxDets raised to the most detections of an image (COCO's 100 would cap the recall of crowded images).
    pub map50: f64,
    pub map50_95: f64,
    /// Mean `session.run` seconds of each model over the check images' slices.
    pub float_run_seconds: f64,
    pub int8_run_seconds: f64,
}

/// One check image: its size and both models' detections (float at the run's threshold, INT8 at 0.001), and their
/// `session.run` durations.
#[derive(Debug, Clone)]
pub struct CheckImage {
    pub width: u32,
    pub height: u32,
    pub float: Vec<Detection>,
    pub int8: Vec<Detection>,
    pub float_runs: Vec<f64>,
    pub int8_runs: Vec<f64>,
}

/// Matches each float detection to at most one INT8 detection of the same class (rotated IoU >= 0.5, the highest
/// IoU first, each INT8 detection used once) and evaluates the INT8 detections against the float ones.
pub fn agreement(images: &[CheckImage]) -> Agreement {
    let (mut total, mut matched, mut sum, mut max) = (0usize, 0usize, 0.0f64, 0.0f64);
    for im in images {
        total += im.float.len();
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (i, f) in im.float.iter().enumerate() {
            for (j, q) in im.int8.iter().enumerate() {
                if f.class_id == q.class_id {
                    let iou = f64::from(rotated_iou(&f.as_oriented(), &q.as_oriented()));
                    if iou >= 0.5 {
                        pairs.push((iou, i, j));
                    }
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let (mut used_f, mut used_q) = (vec![false; im.float.len()], vec![false; im.int8.len()]);
        for (_, i, j) in pairs {
            if used_f[i] || used_q[j] {
                continue;
            }
            used_f[i] = true;
            used_q[j] = true;
            matched += 1;
            let d = (f64::from(im.float[i].score) - f64::from(im.int8[j].score)).abs();
            sum += d;
            max = max.max(d);
        }
    }
    // COCO evaluation, the float detections as ground truth.
    let mut data = nsod_eval::Dataset::default();
    let mut dets = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for (k, im) in images.iter().enumerate() {
        let gts = im
            .float
            .iter()
            .map(|d| {
                classes.insert(d.class_id);
                let o = d.as_oriented();
                nsod_eval::Gt {
                    category: d.class_id,
                    shape: nsod_eval::Shape::Oriented(o),
                    area: f64::from(o.w) * f64::from(o.h),
                    crowd: false,
                    ignore: false,
                }
            })
            .collect();
        data.images.push(nsod_eval::Image {
            id: k as u64 + 1,
            name: format!("check{k}"),
            width: im.width,
            height: im.height,
            gts,
        });
        dets.push(
            im.int8
                .iter()
                .map(|d| nsod_eval::Dt {
                    category: d.class_id,
                    shape: nsod_eval::Shape::Oriented(d.as_oriented()),
                    score: f64::from(d.score),
                })
                .collect(),
        );
    }
    data.categories = classes
        .into_iter()
        .map(|id| nsod_eval::Category {
            id,
            name: id.to_string(),
        })
        .collect();
    data.sort();
    let (map50_95, map50) = if total > 0 {
        // maxDets raised past the detections of any class in an image: COCO's 100 would cap the recall on images
        // with hundreds of objects (the DOTA image has 150 vehicles).
        let most = images
            .iter()
            .map(|i| i.int8.len().max(i.float.len()))
            .max()
            .unwrap_or(100)
            .max(100);
        let s = nsod_eval::coco::evaluate_with(&data, &dets, [1, 10, most])
            .summary
            .to_array();
        (s[0], s[1])
    } else {
        (0.0, 0.0)
    };
    let mean = |v: Vec<f64>| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Agreement {
        images: images.len(),
        float_detections: total,
        matched,
        recall: if total > 0 {
            matched as f64 / total as f64
        } else {
            1.0
        },
        mean_abs_delta: if matched > 0 {
            sum / matched as f64
        } else {
            0.0
        },
        max_abs_delta: max,
        map50,
        map50_95,
        float_run_seconds: mean(images.iter().flat_map(|i| i.float_runs.clone()).collect()),
        int8_run_seconds: mean(images.iter().flat_map(|i| i.int8_runs.clone()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsod_types::OrientedBox;

    fn det(class: u32, score: f32, cx: f32) -> Detection {
        Detection::oriented(
            class,
            class.to_string(),
            score,
            OrientedBox::new(cx, 50.0, 20.0, 10.0, 0.3),
        )
    }

    #[test]
    fn agreement_counts_same_class_overlaps_once() {
        let im = CheckImage {
            width: 200,
            height: 100,
            float: vec![det(0, 0.9, 20.0), det(1, 0.8, 60.0), det(0, 0.7, 120.0)],
            // The first matched (0.85), the second's class differs, the third matched twice over: once counted.
            int8: vec![
                det(0, 0.85, 21.0),
                det(2, 0.8, 60.0),
                det(0, 0.6, 120.0),
                det(0, 0.5, 121.0),
            ],
            float_runs: vec![0.1, 0.3],
            int8_runs: vec![0.1],
        };
        let a = agreement(&[im]);
        assert_eq!((a.float_detections, a.matched), (3, 2));
        assert!((a.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!(
            (a.mean_abs_delta - (0.05 + 0.1) / 2.0).abs() < 1e-6,
            "{a:?}"
        );
        assert!((a.max_abs_delta - 0.1).abs() < 1e-6);
        assert!((a.float_run_seconds - 0.2).abs() < 1e-12);
        // Class 0: both float boxes found before the extra one (AP 1); class 1: none (AP 0).
        assert_eq!(a.map50, 0.5, "{a:?}");
    }

    #[test]
    fn crowded_images_are_not_capped_at_a_hundred_detections() {
        // 150 objects of one class, all found: AP 1 (COCO's maxDets 100 would stop at 100 of 150).
        let dets: Vec<Detection> = (0..150).map(|i| det(0, 0.9, 30.0 * i as f32)).collect();
        let im = CheckImage {
            width: 4600,
            height: 100,
            float: dets.clone(),
            int8: dets,
            float_runs: vec![],
            int8_runs: vec![],
        };
        let a = agreement(&[im]);
        assert_eq!((a.recall, a.map50), (1.0, 1.0), "{a:?}");
    }

    #[test]
    fn a_fifth_is_held_out_with_a_seed() {
        let imgs: Vec<PathBuf> = (0..10).map(|i| PathBuf::from(format!("{i}.png"))).collect();
        let (c, k, same) = split(&imgs, &[], 7);
        assert_eq!((c.len(), k.len(), same), (8, 2, false));
        assert_eq!(split(&imgs, &[], 7).1, k, "same seed, same split");
        let (c, k, same) = split(&imgs[..1], &[], 7);
        assert_eq!((c.len(), k.len(), same), (1, 1, true));
    }
}
