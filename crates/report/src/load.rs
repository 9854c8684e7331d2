//! Reading a run folder for the report, tolerantly: every file is optional, bad lines are skipped, and each problem
//! becomes a warning the report shows instead of an error.

use nsod_types::formats::jsonl::{ImagePredictions, JsonlReader};
use serde_json::Value;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Warnings listed one by one; past this many of one file, they are counted.
const MAX_LISTED: usize = 20;

/// One rule change, as `report.jsonl` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub image: String,
    pub rule: String,
    pub action: String,
    pub reason: String,
    pub factor: f64,
    /// The detections it changed: index in the image's record, class, confidence before and after.
    pub objects: Vec<Object>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub index: usize,
    pub class: String,
    pub before: f64,
    pub after: f64,
}

/// A knowledge-graph picture (`kg_svg/RELATION.svg`).
#[derive(Debug, Clone, PartialEq)]
pub struct KgPicture {
    pub relation: String,
    pub path: PathBuf,
}

/// An evaluation found in the run folder (`nsod eval --out RUN_DIR` or `RUN_DIR/eval`).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub markdown: String,
    /// Precision-recall plots (`pr/CLASS.svg`), by class.
    pub plots: Vec<(String, PathBuf)>,
}

/// What the report is made from.
#[derive(Debug, Default)]
pub struct RunData {
    pub dir: PathBuf,
    /// `run.json`, when readable.
    pub manifest: Option<Value>,
    pub records: Vec<ImagePredictions>,
    /// Scores before the rules (`predictions_raw.jsonl`), by image, in record order.
    pub raw: HashMap<String, Vec<f32>>,
    pub changes: Vec<Change>,
    pub kg: Option<Value>,
    pub kg_pictures: Vec<KgPicture>,
    pub eval: Option<Evaluation>,
    /// `nsod track`'s outputs, when the folder has them.
    pub tracks: Option<Tracks>,
    pub warnings: Vec<String>,
}

/// `nsod track`'s outputs: `track_summary.csv` and, from `tracks.jsonl`, each frame's camera motion and matched
/// tracks.
#[derive(Debug, Default)]
pub struct Tracks {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub frames: Vec<TrackFrame>,
}

/// One frame of `tracks.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackFrame {
    pub image: String,
    /// The camera motion from the previous frame, when it was compensated.
    pub camera: Option<nsod_track::CameraMotion>,
    /// Matched tracks: id and box centre.
    pub tracked: Vec<(u64, f64, f64)>,
}

/// Collects warnings of one file, listing the first [`MAX_LISTED`].
struct FileWarnings<'a> {
    out: &'a mut Vec<String>,
    file: String,
    count: usize,
}

impl FileWarnings<'_> {
    fn add(&mut self, message: String) {
        self.count += 1;
        if self.count <= MAX_LISTED {
            self.out.push(message);
        }
    }
}

impl Drop for FileWarnings<'_> {
    fn drop(&mut self) {
        if self.count > MAX_LISTED {
            self.out.push(format!(
                "{}: {} more problems not listed",
                self.file,
                self.count - MAX_LISTED
            ));
        }
    }
}

/// Reads everything the report uses from `dir`.
pub fn read(dir: &Path) -> RunData {
    let mut d = RunData {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    let manifest = dir.join(nsod_types::layout::MANIFEST);
    match std::fs::read(&manifest) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.is_object() => {
                if v["complete"] == Value::Bool(false) {
                    d.warnings.push(format!(
                        "{}: the run did not finish (complete: false){}; the outputs may be partial",
                        manifest.display(),
                        if v["interrupted"] == Value::Bool(true) {
                            ", it was interrupted"
                        } else {
                            ""
                        }
                    ));
                }
                d.manifest = Some(v);
            }
            Ok(_) => d.warnings.push(format!(
                "{}: not a JSON object; the summary lacks the run's configuration",
                manifest.display()
            )),
            Err(e) => d.warnings.push(format!(
                "{}: cannot be read ({e}); the summary lacks the run's configuration",
                manifest.display()
            )),
        },
        Err(e) => d.warnings.push(format!(
            "{}: {}; the summary lacks the run's configuration",
            manifest.display(),
            io_text(&e)
        )),
    }
    let preds = dir.join(nsod_types::layout::PREDICTIONS);
    d.records = records(&preds, &mut d.warnings, true);
    let raw_path = dir.join(nsod_types::layout::PREDICTIONS_RAW);
    if raw_path.exists() {
        for r in records(&raw_path, &mut d.warnings, false) {
            d.raw.insert(
                r.image.clone(),
                r.detections.iter().map(|x| x.score).collect(),
            );
        }
    }
    d.changes = changes(&dir.join(nsod_types::layout::REPORT_JSONL), &mut d.warnings);
    let kg = dir.join(nsod_types::layout::KG_JSON);
    if let Ok(bytes) = std::fs::read(&kg) {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => d.kg = Some(v),
            Err(e) => d
                .warnings
                .push(format!("{}: cannot be read ({e})", kg.display())),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join(nsod_types::layout::KG_SVG)) {
        let mut pics: Vec<KgPicture> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "svg"))
            .filter_map(|p| {
                Some(KgPicture {
                    relation: p.file_stem()?.to_string_lossy().into_owned(),
                    path: p,
                })
            })
            .collect();
        pics.sort_by(|a, b| a.relation.cmp(&b.relation));
        d.kg_pictures = pics;
    }
    d.eval = [dir.to_path_buf(), dir.join("eval")]
        .into_iter()
        .find_map(|e| evaluation(&e));
    d.tracks = tracks(dir, &mut d.warnings);
    d
}

use nsod_types::formats::csv::fields as csv_fields;

fn tracks(dir: &Path, warnings: &mut Vec<String>) -> Option<Tracks> {
    let summary = dir.join(nsod_types::layout::TRACK_SUMMARY);
    let text = std::fs::read_to_string(&summary).ok()?;
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or_default());
    let mut t = Tracks {
        header,
        ..Default::default()
    };
    let mut w = FileWarnings {
        out: warnings,
        file: summary.display().to_string(),
        count: 0,
    };
    for (i, l) in lines.enumerate() {
        let f = csv_fields(l);
        if f.len() == t.header.len() {
            t.rows.push(f);
        } else {
            w.add(format!(
                "{}:{}: {} fields, the header has {} (skipped)",
                summary.display(),
                i + 2,
                f.len(),
                t.header.len()
            ));
        }
    }
    drop(w);
    let path = dir.join(nsod_types::layout::TRACKS);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            warnings.push(format!(
                "{}: {}; no trajectories",
                path.display(),
                io_text(&e)
            ));
            return Some(t);
        }
    };
    let mut w = FileWarnings {
        out: warnings,
        file: path.display().to_string(),
        count: 0,
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let Ok(line) = line else { break };
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                w.add(format!("{}:{}: {e} (skipped)", path.display(), i + 1));
                continue;
            }
        };
        let Some(image) = v["image"].as_str() else {
            // The end-of-run record (rules over tracks) has no frame.
            continue;
        };
        let c = &v["camera"];
        let camera = (c["applied"] == Value::Bool(true))
            .then(|| {
                Some(nsod_track::CameraMotion {
                    scale: c["scale"].as_f64()?,
                    rotation: c["rotation"].as_f64()?,
                    tx: c["tx"].as_f64()?,
                    ty: c["ty"].as_f64()?,
                })
            })
            .flatten();
        let tracked = v["tracks"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| t["state"] == "tracked")
                    .filter_map(|t| {
                        Some((
                            t["id"].as_u64()?,
                            t["obb"][0].as_f64()?,
                            t["obb"][1].as_f64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        t.frames.push(TrackFrame {
            image: image.to_owned(),
            camera,
            tracked,
        });
    }
    Some(t)
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "missing".into(),
        _ => format!("cannot be read ({e})"),
    }
}

fn records(path: &Path, warnings: &mut Vec<String>, required: bool) -> Vec<ImagePredictions> {
    let reader = match JsonlReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            if required {
                warnings.push(format!("{e}: no detections can be shown"));
            }
            return Vec::new();
        }
    };
    let mut w = FileWarnings {
        out: warnings,
        file: path.display().to_string(),
        count: 0,
    };
    let mut out = Vec::new();
    for r in reader {
        match r {
            Ok(r) => out.push(r),
            Err(e) => w.add(format!("{e} (skipped)")),
        }
    }
    out
}

fn changes(path: &Path, warnings: &mut Vec<String>) -> Vec<Change> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut w = FileWarnings {
        out: warnings,
        file: path.display().to_string(),
        count: 0,
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let Ok(line) = line else {
            w.add(format!(
                "{}:{}: not UTF-8 text (skipped)",
                path.display(),
                i + 1
            ));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line)
            .map_err(|e| e.to_string())
            .and_then(|v| change(&v))
        {
            Ok(c) => out.push(c),
            Err(m) => w.add(format!("{}:{}: {m} (skipped)", path.display(), i + 1)),
        }
    }
    out
}

fn change(v: &Value) -> Result<Change, String> {
    let text = |k: &str| -> Result<String, String> {
        v[k].as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{k} missing"))
    };
    let mut objects = Vec::new();
    for k in ["object_1", "object_2"] {
        let o = &v[k];
        if o.is_null() {
            continue;
        }
        objects.push(Object {
            index: o["index"]
                .as_u64()
                .ok_or_else(|| format!("{k}.index missing"))? as usize,
            class: o["class_name"].as_str().unwrap_or("").to_owned(),
            before: o["conf_before"].as_f64().unwrap_or(f64::NAN),
            after: o["conf_after"].as_f64().unwrap_or(f64::NAN),
        });
    }
    if objects.is_empty() {
        return Err("object_1 missing".into());
    }
    Ok(Change {
        image: text("image")?,
        rule: text("rule")?,
        action: text("action")?,
        reason: v["reason"].as_str().unwrap_or("").to_owned(),
        factor: v["factor"].as_f64().unwrap_or(f64::NAN),
        objects,
    })
}

fn evaluation(dir: &Path) -> Option<Evaluation> {
    let markdown = std::fs::read_to_string(dir.join("eval.md")).ok()?;
    let mut plots: Vec<(String, PathBuf)> = std::fs::read_dir(dir.join("pr"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .filter_map(|p| Some((p.file_stem()?.to_string_lossy().into_owned(), p)))
        .collect();
    plots.sort();
    Some(Evaluation { markdown, plots })
}
