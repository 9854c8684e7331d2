//! Where outcomes go. A [`Sink`] receives the run's beginning, each image's outcome or failure, and the end; the
//! [`RunDirSink`] writes today's run folder, other sinks (an HTTP response, a shard folder) write elsewhere, and no
//! front end copies pipeline code.
//!
//! # The run folder
//!
//! | file | content |
//! |---|---|
//! | `predictions.jsonl` | one record per image (refined by the rules when they ran) |
//! | `predictions_raw.jsonl` | the detector's own records, with rules only |
//! | `report.csv`, `report.jsonl` | one row per rule application, with rules only |
//! | `labels/<image>.txt`, `labels-obb/<image>.txt` | YOLO and YOLO-OBB text predictions |
//! | `vis/<image>` | annotated images (`save_vis`) |
//! | `coco_results.json`, `coco_images.json` | COCO results with the image ids and categories |
//! | `scene_graphs.jsonl`, `kg_facts.pl`, `kg.graphml`, `kg.dot`, `kg.json`, `kg_svg/` | the knowledge graph (`kg`) |
//! | `run.json` | the manifest: nsod version, model and rule base with their sha256, configuration, inputs, counts, failures, start and end, complete or not |
//!
//! Safety rules:
//! * Everything is written into a staging folder beside the run folder and committed in one step at the end
//!   ([`crate::folder`]): the run folder holds the previous complete result or the new one, never a mix, and a
//!   complete run carries no stale file.
//! * Streams are written to `<file>.partial`, each image's records flushed together, the predictions record last;
//!   they are renamed into place when the run completes. Whole files are written atomically.
//! * An interrupted run leaves the run folder untouched; its finished images stay in the staging folder (their
//!   streams in `.partial` files, `run.json` with `complete: false`) for `skip_existing` to resume.
//! * Resuming (`skip_existing`) keeps every output of the finished images (raw records, report rows, scene
//!   graphs, labels, annotated images), not only their predictions, and refuses a folder whose identity (its result
//!   settings) differs.

use crate::config::PipelineConfig;
use crate::pipeline::Pipeline;
use image::RgbImage;
use nsod_kg::{DatasetGraph, SceneGraph, export};
use nsod_symbolic::report::ReportWriter;
use nsod_types::ClassNames;
use nsod_types::formats::coco::{CocoResult, CocoResultsWriter};
use nsod_types::formats::jsonl::{ImagePredictions, JsonlReader, JsonlWriter};
use nsod_types::formats::{FormatError, write_atomic, yolo, yolo_obb};
use nsod_types::outcome::{ImageOutcome, Stage};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A sink that cannot write.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{}: cannot write", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The folder holds a run this one cannot resume.
    #[error("{}: {message}", path.display())]
    Resume { path: PathBuf, message: String },
    /// The GeoJSON or GeoPackage output could not be written.
    #[error(transparent)]
    Geo(Box<nsod_raster::RasterError>),
    /// Another process writes the folder.
    #[error("{}: in use by {holder} (its lock: {}; remove it only if that process is gone)", path.display(), lock.display())]
    Busy {
        path: PathBuf,
        holder: String,
        lock: PathBuf,
    },
    /// An image name (from a plan, a shard's records or predictions) that would put a file outside the folder.
    #[error("{}: {source}", out.display())]
    Name {
        out: PathBuf,
        #[source]
        source: nsod_types::quote::UnsafeName,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a sink learns when the run begins.
#[derive(Debug)]
pub struct RunInfo<'a> {
    pub pipeline: &'a Pipeline,
    /// The inputs as given.
    pub inputs: &'a [PathBuf],
    /// Images the run will process (after resume).
    pub jobs: usize,
}

/// One image that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub image: String,
    pub path: PathBuf,
    pub stage: Stage,
    /// `image`, `inference`, `io`: the `error_type` of `nsod_errors_total`.
    pub error_type: &'static str,
    /// One line: the error and its causes.
    pub message: String,
}

/// The end of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub processed: usize,
    pub failed: usize,
    /// Images kept from an earlier run (resume).
    pub kept: usize,
    /// Stopped by a signal before every image was done.
    pub interrupted: bool,
    pub seconds: f64,
    /// Detections per class in the outputs (kept images included).
    pub per_class: BTreeMap<String, usize>,
    /// How the model ran, for runs that detect.
    pub model: Option<ModelRun>,
    /// What the knowledge graph holds, for runs that wrote one.
    pub graph: Option<GraphCounts>,
}

/// The size of a run's knowledge graph, as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphCounts {
    /// Facts in `kg_facts.pl` (relations, class counts, the image count).
    pub facts: u64,
    /// Relations between objects (spatial relations, co-occurrence excluded).
    pub relations: u64,
    /// Classes seen.
    pub classes: usize,
}

/// How a run's model ran: its schedule, its session runs and the share of the run's wall time they took (the
/// figure that shows whether a GPU is fed), and which execution providers ran its nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRun {
    pub schedule: &'static str,
    pub batch: usize,
    pub runs: usize,
    pub run_seconds: f64,
    /// `run_seconds` over the run's wall time, 0-1.
    pub busy_ratio: f64,
    /// Pipelined: the most images the stream held at once.
    pub peak_images: Option<usize>,
    /// From the session's first run (`None` when it never ran).
    pub placements: Option<Result<Vec<nsod_detect::Placement>, String>>,
    /// Threads that decoded the images.
    pub decode_threads: usize,
    /// ONNX Runtime intra-op threads of each session (0: ONNX Runtime's default, every core).
    pub threads: usize,
    /// Sessions running an image's batches at once.
    pub sessions: usize,
    /// Whether the pipelined runs used IoBinding.
    pub io_binding: bool,
    /// Whether the session's intra-op threads spun.
    pub spinning: bool,
}

impl ModelRun {
    /// As `run.json` records it.
    pub fn to_json(&self) -> serde_json::Value {
        let providers = match &self.placements {
            Some(Ok(p)) => json!(
                p.iter()
                    .map(|p| json!({"provider": p.provider, "nodes": p.nodes}))
                    .collect::<Vec<_>>()
            ),
            Some(Err(e)) => json!({ "error": e }),
            None => serde_json::Value::Null,
        };
        json!({
            "schedule": self.schedule,
            "batch": self.batch,
            "runs": self.runs,
            "run_seconds": self.run_seconds,
            "busy_ratio": self.busy_ratio,
            "peak_images": self.peak_images,
            "providers": providers,
            "decode_threads": self.decode_threads,
            "threads": self.threads,
            "sessions": self.sessions,
            "io_binding": self.io_binding,
            "spinning": self.spinning,
        })
    }
}

/// Receives a run's outcomes.
pub trait Sink {
    /// Images already done (a resumed run skips them); empty by default.
    fn completed(&self) -> BTreeSet<String> {
        BTreeSet::new()
    }
    fn begin(&mut self, run: &RunInfo) -> Result<(), SinkError>;
    /// One image's outcome; `image` is the decoded image, for sinks that draw on it.
    /// `image` is the image's pixels for annotated outputs (a decimated preview for rasters read window by
    /// window; detections are in the original pixels, scale them to the image's size).
    fn image(&mut self, outcome: &ImageOutcome, image: Option<&RgbImage>) -> Result<(), SinkError>;
    /// True when the sink draws on the image (a raster's preview is only read then).
    fn wants_image(&self) -> bool {
        false
    }
    fn failed(&mut self, failure: &Failure) -> Result<(), SinkError>;
    /// The end of the run (`summary.interrupted` when a signal stopped it). Returns the summary completed with
    /// what the sink knows (kept images, detections per class).
    fn finish(&mut self, summary: RunSummary) -> Result<RunSummary, SinkError>;
}

/// Keeps every outcome in memory (tests, and front ends that answer with them).
#[derive(Debug, Default)]
pub struct MemorySink {
    pub outcomes: Vec<ImageOutcome>,
    pub failures: Vec<Failure>,
    pub summary: Option<RunSummary>,
}

impl Sink for MemorySink {
    fn begin(&mut self, _: &RunInfo) -> Result<(), SinkError> {
        Ok(())
    }
    fn image(&mut self, outcome: &ImageOutcome, _: Option<&RgbImage>) -> Result<(), SinkError> {
        self.outcomes.push(outcome.clone());
        Ok(())
    }
    fn failed(&mut self, failure: &Failure) -> Result<(), SinkError> {
        self.failures.push(failure.clone());
        Ok(())
    }
    fn finish(&mut self, mut summary: RunSummary) -> Result<RunSummary, SinkError> {
        for o in &self.outcomes {
            for d in &o.detections {
                *summary.per_class.entry(d.class_name.clone()).or_default() += 1;
            }
        }
        self.summary = Some(summary.clone());
        Ok(summary)
    }
}

/// Which files a run folder gets.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDirOptions {
    /// `predictions.jsonl` (and, with rules, `predictions_raw.jsonl` and the report).
    pub predictions: bool,
    /// `labels/` (and `labels-obb/` for oriented models).
    pub labels: bool,
    /// `coco_results.json` and `coco_images.json`.
    pub coco: bool,
    /// `vis/`.
    pub vis: bool,
    /// Keep the images an earlier run finished.
    pub skip_existing: bool,
    /// Write into a staging folder and commit it in one step at the end ([`crate::folder`]); off for a shard,
    /// whose hidden folder is committed by the shard itself.
    pub staged: bool,
}

impl RunDirOptions {
    /// Everything `nsod infer` writes.
    pub fn infer(config: &PipelineConfig) -> Self {
        Self {
            predictions: true,
            labels: true,
            coco: true,
            vis: config.output.save_vis,
            skip_existing: config.output.skip_existing,
            staged: true,
        }
    }

    /// Predictions and the rules' outputs only (`nsod symbolic`).
    pub fn records_only() -> Self {
        Self {
            predictions: true,
            labels: false,
            coco: false,
            vis: false,
            skip_existing: false,
            staged: true,
        }
    }

    /// The knowledge graph's outputs only (`nsod kg`).
    pub fn graph_only() -> Self {
        Self {
            predictions: false,
            labels: false,
            coco: false,
            vis: false,
            skip_existing: false,
            staged: true,
        }
    }
}

use nsod_types::layout::{
    COCO_IMAGES, COCO_RESULTS, KG_FILES, MANIFEST, PREDICTIONS, PREDICTIONS_RAW as RAW, REPORT_CSV,
    REPORT_JSONL, SCENE_GRAPHS as SCENES,
};

fn partial(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// An image's report rows: lines an earlier run or a shard wrote, or the rule changes to write (streamed row by
/// row: a mosaic can have millions).
enum ReportRows<'a> {
    Lines(&'a [String], &'a [String]),
    Changes(
        &'a [nsod_types::Detection],
        &'a nsod_types::outcome::Adjustment,
    ),
}

/// Class pairs the knowledge graph is restricted to.
type ClassPairs = std::collections::HashSet<(String, String)>;

/// What an earlier run left for one finished image.
#[derive(Debug, Default)]
struct Kept {
    record: Option<ImagePredictions>,
    raw: Option<ImagePredictions>,
    csv: Vec<String>,
    jsonl: Vec<String>,
}

/// The image name of a report CSV row (its first field, unquoted).
pub(crate) fn csv_image_of(line: &str) -> Option<String> {
    csv_image(line)
}

use nsod_types::formats::csv::first_field as csv_image;

/// Records of a complete file, overridden by the records of its `.partial` file up to the first unreadable line
/// (the one an interruption cut, reported in `warnings`).
fn read_records(path: &Path, warnings: &mut Vec<String>) -> BTreeMap<String, ImagePredictions> {
    let mut by_image = BTreeMap::new();
    for p in [path.to_path_buf(), partial(path)] {
        let Ok(reader) = JsonlReader::open(&p) else {
            continue;
        };
        for r in reader {
            match r {
                Ok(r) => {
                    by_image.insert(r.image.clone(), r);
                }
                Err(e) => {
                    warnings.push(format!(
                        "{}: ignoring the rest of the interrupted run's file",
                        crate::error_chain(&e)
                    ));
                    break;
                }
            }
        }
    }
    by_image
}

/// Complete lines of a file and its `.partial` (the last line of a partial file counts only when it ends).
fn read_lines(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in [path.to_path_buf(), partial(path)] {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let complete = text.ends_with('\n');
        let mut lines: Vec<&str> = text.lines().collect();
        if !complete {
            lines.pop();
        }
        out.extend(lines.into_iter().map(str::to_owned));
    }
    out
}

/// The per-image files (labels, annotated image) of `image` from `from` into `to`: moved from an earlier staging
/// folder, hard-linked (or copied) from a complete result.
fn carry_image_files(from: &Path, to: &Path, image: &str, moved: bool) -> Result<(), SinkError> {
    use nsod_types::layout::{LABELS, LABELS_OBB, VIS};
    let rel = Path::new(image);
    let stem = rel.with_extension("txt");
    let candidates = [
        Path::new(LABELS).join(&stem),
        Path::new(LABELS_OBB).join(&stem),
        Path::new(VIS).join(rel),
        Path::new(VIS).join(rel.with_extension("png")),
    ];
    for c in candidates {
        let (src, dst) = (from.join(&c), to.join(&c));
        if !src.is_file() || dst.exists() {
            continue;
        }
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(io(p))?;
        }
        let done = if moved {
            std::fs::rename(&src, &dst)
        } else {
            std::fs::hard_link(&src, &dst).or_else(|_| std::fs::copy(&src, &dst).map(|_| ()))
        };
        done.map_err(io(&dst))?;
    }
    Ok(())
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).ok()?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(format!("{:x}", h.finalize()))
}

struct Writers {
    predictions: Option<JsonlWriter>,
    raw: Option<JsonlWriter>,
    report: Option<ReportWriter>,
    scenes: Option<BufWriter<File>>,
    coco: Option<CocoResultsWriter>,
}

/// Writes an `nsod infer` run folder (see the module docs).
pub struct RunDirSink {
    /// Where the run writes: the staging folder of `target` (or `target` itself for an unstaged sink).
    out: PathBuf,
    /// The run folder the result is committed to.
    target: PathBuf,
    /// The run folder's lock, held until the sink is dropped.
    _lock: Option<crate::folder::Lock>,
    opts: RunDirOptions,
    kept: Vec<(String, Kept)>,
    writers: Option<Writers>,
    oriented: bool,
    names: ClassNames,
    rules: bool,
    kg: bool,
    kg_min_count: u64,
    dataset: DatasetGraph,
    coco_images: Vec<serde_json::Value>,
    per_class: BTreeMap<String, usize>,
    /// Seconds spent in each stage over the images this run processed, and how many images ran it.
    stages: BTreeMap<&'static str, (f64, usize)>,
    failures: Vec<Failure>,
    manifest: serde_json::Value,
    started: SystemTime,
    files: BTreeSet<&'static str>,
    /// How relations are recomputed for images re-emitted from records (resume, merge).
    relation: Option<(nsod_types::relations::RelationParams, Option<ClassPairs>)>,
    /// What opening the folder noticed (cut lines of an interrupted run), for the front end to show.
    pub warnings: Vec<String>,
    /// Where each setting's value came from (`run.json`'s `config_sources`).
    sources: BTreeMap<&'static str, crate::settings::Source>,
    /// The knowledge graph written, for the summary.
    graph: Option<GraphCounts>,
    /// Fields a front end adds to the manifest.
    extra: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for RunDirSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunDirSink")
            .field("out", &self.out)
            .finish()
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl RunDirSink {
    /// Opens `out` (created if missing). With `skip_existing`, reads what an earlier run there finished: its
    /// predictions, raw records, report rows; an earlier run with another model or other settings (`run.json`) is
    /// an error, not a silent mix.
    pub fn open(
        target: &Path,
        opts: RunDirOptions,
        pipeline: &Pipeline,
    ) -> Result<Self, SinkError> {
        use crate::folder;
        let lock = if opts.staged {
            let lock = folder::Lock::take(target)?;
            folder::recover_preserved(target)?;
            folder::check_target(target)?;
            Some(lock)
        } else {
            None
        };
        let config = pipeline.config();
        let rules = pipeline.rules().is_some();
        let mut kept = Vec::new();
        let mut warnings = Vec::new();
        // Where a resumed run finds what an earlier one finished: an interrupted run's staging folder (or the one a
        // crash left half-renamed), else the complete result.
        let staging = folder::staging_path(target);
        let older = staging.with_extension("nsod-staging-old");
        let from = [&staging, &older]
            .into_iter()
            .find(|p| opts.staged && folder::is_staging(p))
            .cloned()
            .unwrap_or_else(|| target.to_path_buf());
        let out = &from;
        if opts.skip_existing {
            check_resumable(out, pipeline)?;
            let records = read_records(&out.join(PREDICTIONS), &mut warnings);
            let raw = if rules {
                read_records(&out.join(RAW), &mut Vec::new())
            } else {
                BTreeMap::new()
            };
            let mut csv: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut jsonl: BTreeMap<String, Vec<String>> = BTreeMap::new();
            if rules {
                for l in read_lines(&out.join(REPORT_CSV)) {
                    if l.starts_with("image_name,") {
                        continue;
                    }
                    if let Some(img) = csv_image(&l) {
                        csv.entry(img).or_default().push(l);
                    }
                }
                for l in read_lines(&out.join(REPORT_JSONL)) {
                    let img = serde_json::from_str::<serde_json::Value>(&l)
                        .ok()
                        .and_then(|v| v["image"].as_str().map(str::to_owned));
                    if let Some(img) = img {
                        jsonl.entry(img).or_default().push(l);
                    }
                }
            }
            let mut raw = raw;
            for (image, record) in records {
                // An image whose raw record is missing (the earlier run had no rules) is processed again.
                let raw_record = raw.remove(&image);
                if rules && raw_record.is_none() {
                    continue;
                }
                kept.push((
                    image.clone(),
                    Kept {
                        record: Some(record),
                        raw: raw_record,
                        csv: csv.remove(&image).unwrap_or_default(),
                        jsonl: jsonl.remove(&image).unwrap_or_default(),
                    },
                ));
            }
        }
        let out = if opts.staged {
            // The kept images' files are moved over from an earlier staging folder, or linked from the complete
            // result; everything else starts anew, so a complete run leaves no stale file.
            let earlier = if from == staging {
                folder::remove_staging(&older)?;
                std::fs::rename(&staging, &older).map_err(io(&staging))?;
                Some(older.clone())
            } else if from == older {
                Some(older.clone())
            } else {
                None
            };
            let fresh = folder::fresh_staging(target)?;
            let source = earlier.clone().unwrap_or_else(|| target.to_path_buf());
            for (image, _) in &kept {
                carry_image_files(&source, &fresh, image, earlier.is_some())?;
            }
            if let Some(e) = earlier {
                folder::remove_staging(&e)?;
            }
            fresh
        } else {
            std::fs::create_dir_all(target).map_err(io(target))?;
            target.to_path_buf()
        };
        let out = out.as_path();
        Ok(Self {
            out: out.to_path_buf(),
            target: target.to_path_buf(),
            _lock: lock,
            opts,
            kept,
            writers: None,
            oriented: pipeline.oriented(),
            names: pipeline.names().clone(),
            rules,
            kg: config.kg.enabled,
            kg_min_count: config.kg.min_count,
            dataset: DatasetGraph::default(),
            coco_images: Vec::new(),
            per_class: BTreeMap::new(),
            stages: BTreeMap::new(),
            failures: Vec::new(),
            manifest: json!({}),
            started: SystemTime::now(),
            files: BTreeSet::new(),
            relation: None,
            warnings,
            sources: BTreeMap::new(),
            graph: None,
            extra: serde_json::Map::new(),
        })
    }

    /// The records of the images kept from an earlier run (resume), each with its detector record when the rules
    /// ran: what `nsod track` replays through its tracker.
    pub fn kept_records(
        &self,
    ) -> impl Iterator<Item = (&ImagePredictions, Option<&ImagePredictions>)> {
        self.kept
            .iter()
            .filter_map(|(_, k)| k.record.as_ref().map(|r| (r, k.raw.as_ref())))
    }

    /// Adds `key` to the manifest this run writes (`nsod merge`: how the run was sharded).
    pub fn annotate(&mut self, key: &str, value: serde_json::Value) {
        self.extra.insert(key.to_owned(), value);
    }

    /// Where the run writes until it commits: the staging folder (the run folder itself once committed, and for an
    /// unstaged sink).
    pub fn writing_to(&self) -> &Path {
        &self.out
    }

    /// Records where each setting's value came from ([`crate::settings::Layers::sources`]) in `run.json`.
    pub fn set_sources(&mut self, sources: BTreeMap<&'static str, crate::settings::Source>) {
        self.sources = sources;
    }

    /// One image finished elsewhere (a shard), re-emitted into this folder from its records (`nsod merge`): its
    /// predictions, raw record and report rows, its label files, and its relations recomputed from its detections
    /// (the same function the pipeline uses), so the folder is what one process would have written.
    pub fn replay(
        &mut self,
        record: &ImagePredictions,
        raw: Option<&ImagePredictions>,
        csv: &[String],
        jsonl: &[String],
    ) -> Result<(), SinkError> {
        if self.opts.labels {
            let rel = Path::new(&record.image);
            let stem = rel.with_extension("txt");
            let size = nsod_types::ImageSize::new(record.width, record.height);
            yolo::write_predictions(
                &self.in_subfolder(nsod_types::layout::LABELS, &stem)?,
                &record.detections,
                size,
            )?;
            if self.oriented {
                yolo_obb::write_predictions(
                    &self.in_subfolder(nsod_types::layout::LABELS_OBB, &stem)?,
                    &record.detections,
                    size,
                )?;
            }
            crate::folder::fault("labels");
        }
        let edges = match (&self.relation, self.kg) {
            (Some((params, pairs)), true) => Some(crate::pipeline::relations(
                &record.detections,
                params,
                pairs.as_ref(),
            )),
            _ => None,
        };
        let report = self.rules.then_some(ReportRows::Lines(csv, jsonl));
        self.emit(record, raw, report, edges.as_deref())?;
        crate::folder::fault("records");
        Ok(())
    }

    /// `out/sub/rel`, with its parent folders created.
    /// Writes an annotated image of `name` into `vis/` (a front end that draws its own, e.g. tracks).
    pub fn write_vis(&self, name: &str, img: &RgbImage) -> Result<(), SinkError> {
        let path = self.in_subfolder(nsod_types::layout::VIS, Path::new(name))?;
        save_vis(img, &path)
    }

    fn in_subfolder(&self, sub: &str, rel: &Path) -> Result<PathBuf, SinkError> {
        // Every file named after an image goes through here: the name must stay inside the folder.
        nsod_types::quote::relative_name(&rel.to_string_lossy()).map_err(|source| {
            SinkError::Name {
                out: self.out.clone(),
                source,
            }
        })?;
        let path = self.out.join(sub).join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        Ok(path)
    }

    fn emit(
        &mut self,
        record: &ImagePredictions,
        raw: Option<&ImagePredictions>,
        report: Option<ReportRows>,
        relations: Option<&[nsod_types::relations::RelationEdge]>,
    ) -> Result<(), SinkError> {
        let Some(w) = self.writers.as_mut() else {
            return Ok(());
        };
        // Everything of the image first, its predictions record last: a record in predictions.jsonl means the
        // image's other outputs are complete.
        if let (Some(rw), Some(raw)) = (w.raw.as_mut(), raw) {
            rw.write(raw)?;
        }
        match (w.report.as_mut(), report) {
            (Some(rep), Some(ReportRows::Lines(csv, jsonl))) => {
                rep.copy_rows(csv, jsonl).map_err(io(&self.out))?
            }
            (Some(rep), Some(ReportRows::Changes(raw, adjustment))) => rep
                .write(&record.image, raw, adjustment)
                .map_err(io(&self.out))?,
            _ => {}
        }
        if let (Some(scenes), Some(edges)) = (w.scenes.as_mut(), relations) {
            let scene = SceneGraph::from_edges(&record.detections, edges);
            let path = partial(&self.out.join(SCENES));
            serde_json::to_writer(
                &mut *scenes,
                &scene.to_json(&record.image, &record.detections),
            )
            .map_err(|e| io(&path)(e.into()))?;
            scenes.write_all(b"\n").map_err(io(&path))?;
            scenes.flush().map_err(io(&path))?;
            self.dataset.add_image(&record.detections, edges);
        }
        if let Some(coco) = w.coco.as_mut() {
            let image_id = self.coco_images.len() as u64 + 1;
            self.coco_images.push(json!({"id": image_id, "file_name": record.image, "width": record.width, "height": record.height}));
            for d in &record.detections {
                coco.push(&CocoResult::from_detection(image_id, d))?;
            }
        }
        for d in &record.detections {
            *self.per_class.entry(d.class_name.clone()).or_default() += 1;
        }
        if let Some(p) = w.predictions.as_mut() {
            p.write(record)?;
        }
        Ok(())
    }

    fn finish_complete(&mut self, w: Writers) -> Result<(), SinkError> {
        if let Some(p) = w.predictions {
            p.finish()?;
            self.files.insert(PREDICTIONS);
            // The map outputs, from every record of the run (kept ones included).
            let path = self.out.join(PREDICTIONS);
            let reader = JsonlReader::open(&path)?;
            let records = reader.filter_map(Result::ok);
            if nsod_raster::export::write(records, &self.out)
                .map_err(|e| SinkError::Geo(Box::new(e)))?
                .is_some()
            {
                self.files
                    .extend([nsod_raster::export::GEOJSON, nsod_raster::export::GPKG]);
            }
        }
        if let Some(raw) = w.raw {
            raw.finish()?;
            self.files.insert(RAW);
        }
        if let Some(rep) = w.report {
            rep.finish().map_err(io(&self.out))?;
            self.files.extend([REPORT_CSV, REPORT_JSONL]);
        }
        if let Some(mut scenes) = w.scenes {
            let from = partial(&self.out.join(SCENES));
            scenes.flush().map_err(io(&from))?;
            drop(scenes);
            std::fs::rename(&from, self.out.join(SCENES)).map_err(io(&from))?;
            self.files.insert(SCENES);
            self.write_kg()?;
            crate::folder::fault("kg");
        }
        if let Some(coco) = w.coco {
            coco.finish()?;
            self.write_json(
                COCO_IMAGES,
                &json!({"images": self.coco_images, "categories": self.categories()}),
            )?;
            self.files.extend([COCO_RESULTS, COCO_IMAGES]);
            crate::folder::fault("coco");
        }
        Ok(())
    }

    fn categories(&self) -> Vec<serde_json::Value> {
        self.names
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"id": i, "name": n}))
            .collect()
    }

    fn write_json(&self, name: &str, value: &serde_json::Value) -> Result<(), SinkError> {
        write_atomic(&self.out.join(name), |w: &mut dyn Write| {
            serde_json::to_writer(&mut *w, value)?;
            w.write_all(b"\n")
        })?;
        Ok(())
    }

    fn write_kg(&mut self) -> Result<(), SinkError> {
        let g = &self.dataset;
        let m = self.kg_min_count;
        let text = |p: PathBuf, s: String| -> Result<(), SinkError> {
            write_atomic(&p, |w| w.write_all(s.as_bytes()))?;
            Ok(())
        };
        let facts = export::prolog_facts(g);
        self.graph = Some(GraphCounts {
            facts: facts.lines().filter(|l| !l.starts_with('%')).count() as u64,
            relations: g
                .counts
                .iter()
                .filter(|((r, _, _), _)| nsod_types::relations::Relation::parse(r).is_some())
                .map(|(_, n)| *n)
                .sum(),
            classes: g.class_objects.len(),
        });
        let g = &self.dataset;
        text(self.out.join(nsod_types::layout::KG_FACTS), facts)?;
        text(
            self.out.join(nsod_types::layout::KG_GRAPHML),
            export::graphml(g, m),
        )?;
        text(self.out.join(nsod_types::layout::KG_DOT), export::dot(g, m))?;
        text(
            self.out.join(nsod_types::layout::KG_JSON),
            format!("{}\n", export::node_link(g, m)),
        )?;
        let svg_dir = self.out.join(nsod_types::layout::KG_SVG);
        if svg_dir.is_dir() {
            // Pictures of relations this run did not see must not linger.
            for e in std::fs::read_dir(&svg_dir).map_err(io(&svg_dir))?.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        std::fs::create_dir_all(&svg_dir).map_err(io(&svg_dir))?;
        let types = g.relation_types();
        let files = nsod_types::quote::unique_file_names(types.iter().map(String::as_str));
        for (r, name) in types.iter().zip(files) {
            text(svg_dir.join(format!("{name}.svg")), export::svg(g, r, m))?;
        }
        self.files.extend(KG_FILES);
        Ok(())
    }

    /// Removes the run-level outputs this (complete) run did not produce, and stray `.partial` files.
    fn remove_stale(&self) {
        let mut candidates: Vec<&str> = vec![
            nsod_raster::export::GEOJSON,
            nsod_raster::export::GPKG,
            PREDICTIONS,
            RAW,
            REPORT_CSV,
            REPORT_JSONL,
            SCENES,
            COCO_RESULTS,
            COCO_IMAGES,
        ];
        candidates.extend(KG_FILES);
        for name in candidates {
            let p = self.out.join(name);
            if !self.files.contains(name) {
                let _ = std::fs::remove_file(&p);
            }
            let _ = std::fs::remove_file(partial(&p));
        }
        if !self.files.contains(nsod_types::layout::KG_FACTS) {
            let _ = std::fs::remove_dir_all(self.out.join(nsod_types::layout::KG_SVG));
        }
    }

    /// The manifest, completed at the end.
    fn write_manifest(&self, summary: &RunSummary, complete: bool) -> Result<(), SinkError> {
        let mut m = self.manifest.clone();
        m["complete"] = json!(complete);
        m["interrupted"] = json!(summary.interrupted);
        m["finished"] = json!(unix(SystemTime::now()));
        m["counts"] = json!({
            "images": summary.processed + summary.kept,
            "processed": summary.processed,
            "kept": summary.kept,
            "failed": summary.failed,
            "detections": summary.per_class.values().sum::<usize>(),
            "per_class": summary.per_class,
        });
        if let Some(rss) = peak_rss_bytes() {
            m["peak_rss_bytes"] = json!(rss);
        }
        if let Some(model) = &summary.model {
            m["model_run"] = model.to_json();
        }
        // Stage times of the images processed by this run (kept and merged images have none).
        m["stage_seconds"] = self
            .stages
            .iter()
            .map(|(k, (s, n))| ((*k).to_owned(), json!({"seconds": s, "images": n})))
            .collect::<serde_json::Map<_, _>>()
            .into();
        m["failures"] = json!(
            self.failures
                .iter()
                .map(|f| json!({"image": f.image, "stage": f.stage.as_str(), "error_type": f.error_type, "message": f.message}))
                .collect::<Vec<_>>()
        );
        let mut files: Vec<&str> = self.files.iter().copied().collect();
        if self.opts.labels {
            files.push(nsod_types::layout::LABELS_DIR);
            if self.oriented {
                files.push(nsod_types::layout::LABELS_OBB_DIR);
            }
        }
        if self.opts.vis {
            files.push(nsod_types::layout::VIS_DIR);
        }
        if self.files.contains(nsod_types::layout::KG_FACTS) {
            files.push(nsod_types::layout::KG_SVG_DIR);
        }
        m["files"] = json!(files);
        for (k, v) in &self.extra {
            m[k.as_str()] = v.clone();
        }
        self.write_json(MANIFEST, &m)
    }
}

/// The identity of a run for resuming: its result settings ([`crate::settings::identity`]), with the model and
/// rule base actually loaded (a default one included) standing for the files, by their contents.
fn run_identity(pipeline: &Pipeline) -> serde_json::Value {
    let mut c = pipeline.config().clone();
    c.model = pipeline.model().map(|m| m.path.clone());
    c.rules.file = pipeline.rules().map(|r| r.table.path.clone());
    crate::settings::identity(&c, sha256_file)
}

fn check_resumable(out: &Path, pipeline: &Pipeline) -> Result<(), SinkError> {
    let path = out.join(MANIFEST);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(());
    };
    let earlier = &v["identity"];
    if earlier.is_null() {
        return Ok(());
    }
    let now = run_identity(pipeline);
    if *earlier != now {
        let all = crate::settings::identity_differences(earlier, &now);
        // The tracker's settings change no detection: a run tracked with others is replayed through the new ones.
        let mut differs: Vec<String> = all
            .iter()
            .filter(|k| {
                crate::settings::by_key(k).is_none_or(|s| s.group != crate::settings::Group::Track)
            })
            .cloned()
            .collect();
        if all.is_empty() {
            // An identity of an older nsod: another form, not comparable.
            differs.push("version of nsod".into());
        }
        if differs.is_empty() {
            return Ok(());
        }
        return Err(SinkError::Resume {
            path,
            message: format!(
                "cannot resume: the earlier run used another {} (start a new output folder, or run without --skip-existing)",
                differs.join(", ")
            ),
        });
    }
    Ok(())
}

impl Sink for RunDirSink {
    fn wants_image(&self) -> bool {
        self.opts.vis
    }

    fn completed(&self) -> BTreeSet<String> {
        self.kept.iter().map(|(n, _)| n.clone()).collect()
    }

    fn begin(&mut self, run: &RunInfo) -> Result<(), SinkError> {
        let out = self.out.clone();
        let p = run.pipeline;
        let predictions = if self.opts.predictions {
            Some(JsonlWriter::create(&out.join(PREDICTIONS))?)
        } else {
            None
        };
        let raw = if self.rules && self.opts.predictions {
            Some(JsonlWriter::create(&out.join(RAW))?)
        } else {
            None
        };
        let report = if self.rules && self.opts.predictions {
            Some(ReportWriter::create(&out).map_err(io(&out))?)
        } else {
            None
        };
        let scenes = if self.kg {
            let path = partial(&out.join(SCENES));
            Some(BufWriter::new(File::create(&path).map_err(io(&path))?))
        } else {
            None
        };
        let coco = if self.opts.coco {
            Some(CocoResultsWriter::create(&out.join(COCO_RESULTS))?)
        } else {
            None
        };
        self.writers = Some(Writers {
            predictions,
            raw,
            report,
            scenes,
            coco,
        });
        self.started = SystemTime::now();
        let model = p.model().map(|m| {
            let quantized = m
                .metadata
                .quantized
                .as_deref()
                .map(|q| serde_json::from_str::<serde_json::Value>(q).unwrap_or_else(|_| json!(q)));
            json!({"path": m.path, "sha256": sha256_file(&m.path), "task": m.metadata.task.map(|t| format!("{t:?}").to_lowercase()), "classes": m.names.len(), "quantized": quantized})
        });
        let rules = p.rules().map(|r| {
            json!({"path": r.table.path, "sha256": sha256_file(&r.table.path), "scene_rules": r.scene.as_ref().is_some_and(|s| s.per_image), "track_rules": r.has_track_rules()})
        });
        self.manifest = json!({
            "nsod": env!("CARGO_PKG_VERSION"),
            "started": unix(self.started),
            "model": model,
            "rules": rules,
            "config": serde_json::to_value(p.config()).unwrap_or_default(),
            "config_sources": serde_json::to_value(&self.sources).unwrap_or_default(),
            "inputs": run.inputs,
            "identity": run_identity(p),
        });
        // The images kept from an earlier run go first, with all their outputs.
        let kept = std::mem::take(&mut self.kept);
        let params = p.relation_params();
        let pairs = match (&p.config().kg.enabled, &p.config().kg.pairs) {
            (true, Some(f)) => {
                Some(
                    crate::pipeline::read_pairs(f).map_err(|e| SinkError::Resume {
                        path: f.clone(),
                        message: crate::error_chain(&e),
                    })?,
                )
            }
            _ => None,
        };
        for (_, k) in &kept {
            let Some(record) = &k.record else { continue };
            let edges = self
                .kg
                .then(|| crate::pipeline::relations(&record.detections, &params, pairs.as_ref()));
            self.emit(
                record,
                k.raw.as_ref(),
                Some(ReportRows::Lines(&k.csv, &k.jsonl)),
                edges.as_deref(),
            )?;
        }
        self.kept = kept;
        self.relation = Some((params, pairs));
        Ok(())
    }

    fn image(&mut self, o: &ImageOutcome, image: Option<&RgbImage>) -> Result<(), SinkError> {
        for (stage, seconds) in o.timings.iter() {
            let t = self.stages.entry(stage.as_str()).or_default();
            t.0 += seconds;
            t.1 += 1;
        }
        let rel = Path::new(&o.image);
        if self.opts.vis
            && let Some(img) = image
        {
            let mut img = img.clone();
            if img.width() == o.size.width && img.height() == o.size.height {
                nsod_detect::vis::draw_detections(&mut img, &o.detections, 2);
            } else {
                // A raster's decimated preview.
                let s = img.width() as f32 / o.size.width.max(1) as f32;
                let scaled: Vec<_> = o.detections.iter().map(|d| d.scaled(s)).collect();
                nsod_detect::vis::draw_detections(&mut img, &scaled, 2);
            }
            let path = self.in_subfolder(nsod_types::layout::VIS, rel)?;
            save_vis(&img, &path)?;
            crate::folder::fault("vis");
        }
        if self.opts.labels {
            let stem = rel.with_extension("txt");
            yolo::write_predictions(
                &self.in_subfolder(nsod_types::layout::LABELS, &stem)?,
                &o.detections,
                o.size,
            )?;
            if self.oriented {
                yolo_obb::write_predictions(
                    &self.in_subfolder(nsod_types::layout::LABELS_OBB, &stem)?,
                    &o.detections,
                    o.size,
                )?;
            }
            crate::folder::fault("labels");
        }
        let record = prediction_record(o);
        let raw = o.rules.as_ref().map(|r| ImagePredictions {
            image: o.image.clone(),
            width: o.size.width,
            height: o.size.height,
            detections: r.raw.clone(),
            geo: None,
        });
        let rows = o
            .rules
            .as_ref()
            .map(|r| ReportRows::Changes(&r.raw, &r.adjustment));
        self.emit(&record, raw.as_ref(), rows, o.relations.as_deref())?;
        crate::folder::fault("records");
        Ok(())
    }

    fn failed(&mut self, failure: &Failure) -> Result<(), SinkError> {
        self.failures.push(failure.clone());
        Ok(())
    }

    fn finish(&mut self, mut summary: RunSummary) -> Result<RunSummary, SinkError> {
        summary.kept = self.kept.len();
        summary.per_class = self.per_class.clone();
        let Some(w) = self.writers.take() else {
            return Ok(summary);
        };
        if summary.interrupted && self.opts.staged {
            // The run folder is untouched; the finished images stay in the staging folder (their streams in
            // `.partial` files, `run.json` incomplete) for `--skip-existing`.
            drop(w);
            let _ = std::fs::remove_file(partial(&self.out.join(COCO_RESULTS)));
            self.write_manifest(&summary, false)?;
            return Ok(summary);
        }
        self.finish_complete(w)?;
        summary.graph = self.graph;
        if !self.opts.staged && !summary.interrupted && self.opts.coco {
            // An unstaged folder (a shard's) may hold an earlier run's outputs.
            self.remove_stale();
        }
        self.write_manifest(&summary, !summary.interrupted)?;
        crate::folder::fault("manifest");
        if self.opts.staged {
            crate::folder::commit(&self.out, &self.target)?;
            self.out = self.target.clone();
        }
        Ok(summary)
    }
}

/// The `predictions.jsonl` record of an outcome (what every front end answers for an image).
pub fn prediction_record(o: &ImageOutcome) -> ImagePredictions {
    ImagePredictions {
        image: o.image.clone(),
        width: o.size.width,
        height: o.size.height,
        detections: o.detections.clone(),
        geo: o.geo.clone(),
    }
}

/// The process's peak resident memory so far (Linux `VmHWM`), for `run.json`.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Writes an annotated image (atomically): JPEG, BMP and TIFF inputs keep their format, everything else is PNG.
fn save_vis(img: &RgbImage, path: &Path) -> Result<(), SinkError> {
    use image::ImageFormat;
    let (format, path) = match ImageFormat::from_path(path) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Bmp | ImageFormat::Tiff)) => {
            (f, path.to_path_buf())
        }
        _ => (ImageFormat::Png, path.with_extension("png")),
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format)
        .map_err(|e| io(&path)(std::io::Error::other(e)))?;
    write_atomic(&path, |w: &mut dyn Write| w.write_all(bytes.get_ref()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_image_reads_the_first_field() {
        assert_eq!(csv_image("a.png,BOOST,x").as_deref(), Some("a.png"));
        assert_eq!(
            csv_image("\"a,b \"\"c\"\".png\",BOOST").as_deref(),
            Some("a,b \"c\".png")
        );
    }
}
