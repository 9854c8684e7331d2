//! Sharded runs: a plan every worker agrees on, shard folders written atomically, and one exact merge.
//!
//! * [`Plan::build`] lists the work once: the run's images (sorted, as `nsod infer` would take them) and, for
//!   rasters above `split_above_pixels`, tiles of `window` pixels. A tile owns the slices whose top-left corner lies
//!   in it; it reads them whole (up to one slice beyond its edge, the overlap the SAHI merge needs) and keeps their
//!   detections unmerged. Unit `i` belongs to shard `i % shards`. The plan carries the run's configuration, so every
//!   shard and the merge use the same settings.
//! * [`run_shard`] runs one shard's units into `OUT/shards/I-of-N/` (a hidden `.partial` folder renamed into place,
//!   `_SUCCESS` written last): a normal run folder for its whole images, `windows.jsonl` for its tiles, and
//!   `shard.json` with its counts. Rerunning a shard replaces its folder.
//! * [`merge`] checks that every shard finished, then writes `OUT` as one process would have: the images' records in
//!   plan order (COCO ids, labels, reports, the knowledge graph recomputed from them), and each split raster's
//!   tiles merged with the slices' own merge, then the rules, relations and georeferencing run on the whole raster.

use crate::inputs::{self, Job};
use crate::pipeline::Worker;
use crate::runner::{Observer, PREVIEW_SIDE};
use crate::sink::{Failure, RunDirOptions, RunDirSink, RunInfo, RunSummary, Sink, sha256_file};
use crate::{PipelineConfig, PipelineError, error_chain};
use nsod_detect::Region;
use nsod_types::Detection;
use nsod_types::ImageSize;
use nsod_types::formats::jsonl::{ImagePredictions, JsonlReader};
use nsod_types::formats::write_atomic;
use nsod_types::geo::GeoRef;
use nsod_types::outcome::Stage;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

/// The plan file's format version.
pub const PLAN_FORMAT: u32 = 1;
/// The marker a finished shard writes last.
pub const SUCCESS: &str = nsod_types::layout::SUCCESS;
/// A shard's own manifest.
pub const SHARD_MANIFEST: &str = nsod_types::layout::SHARD_MANIFEST;
/// A shard's tiles: their unmerged detections.
pub const WINDOWS: &str = nsod_types::layout::WINDOWS;
/// The most shards a plan may have.
pub const MAX_SHARDS: usize = 100_000;

/// Why a plan, a shard or a merge cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{}: cannot read or write", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an nsod plan: {message}", path.display())]
    BadPlan { path: PathBuf, message: String },
    /// The shard given cannot be used.
    #[error("{0}")]
    Shard(String),
    /// Shards have not finished.
    #[error("{} of {count} shards have not finished (no {SUCCESS}): {}", missing.len(), missing.join(", "))]
    Missing { count: usize, missing: Vec<String> },
    /// A shard folder does not belong to the plan.
    #[error("{}: {message}", path.display())]
    Mismatch { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ShardError + '_ {
    move |source| ShardError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `rel` (a relative path) inside a shard's folder for reading without following a symbolic link: neither
/// the folder, nor a folder between, nor the file itself may be a link, and the file must be a regular file (a FIFO
/// or device would block or never end). A shard folder comes from another process or machine: it is untrusted input,
/// and a link in it could make the merge read, and copy into the run folder, any file the merge can read.
/// `Ok(None)` when the file does not exist.
pub fn open_in_folder(folder: &Path, rel: &str) -> Result<Option<std::fs::File>, ShardError> {
    use std::os::unix::fs::OpenOptionsExt;
    let rel_path = nsod_types::quote::relative_name(rel).map_err(|e| ShardError::Mismatch {
        path: folder.to_path_buf(),
        message: e.to_string(),
    })?;
    let refuse = |path: &Path, what: &str| ShardError::Mismatch {
        path: path.to_path_buf(),
        message: format!("{what}: shard folders are read without following links"),
    };
    let mut dir = folder.to_path_buf();
    let parts: Vec<_> = rel_path.components().collect();
    for (k, part) in parts.iter().enumerate() {
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => return Err(refuse(&dir, "a symbolic link")),
            Ok(m) if !m.is_dir() => return Err(refuse(&dir, "not a folder")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&dir)(e)),
        }
        if k + 1 < parts.len() {
            dir.push(part);
        }
    }
    let path = folder.join(rel_path);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse(&path, "a symbolic link"));
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let meta = file.metadata().map_err(io(&path))?;
    if !meta.is_file() {
        return Err(refuse(&path, "not a regular file"));
    }
    Ok(Some(file))
}

/// [`open_in_folder`] for a file that must exist.
fn open_required(folder: &Path, rel: &str) -> Result<std::fs::File, ShardError> {
    open_in_folder(folder, rel)?.ok_or_else(|| ShardError::Mismatch {
        path: folder.to_path_buf(),
        message: format!("no {rel}"),
    })
}

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardId {
    pub index: usize,
    pub count: usize,
}

/// Environment variables that carry a shard index, in the order they are read: nsod's own, Kubernetes Indexed
/// Jobs, Slurm array jobs (minus `SLURM_ARRAY_TASK_MIN`), AWS Batch array jobs.
pub const INDEX_VARIABLES: [&str; 4] = [
    "NSOD_SHARD_INDEX",
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "AWS_BATCH_JOB_ARRAY_INDEX",
];

impl ShardId {
    /// `I/N`, or `N` with the index read from the environment (`env` looks a variable up; see
    /// [`INDEX_VARIABLES`]). The count is always given.
    pub fn resolve(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ShardError> {
        let bad = |m: String| ShardError::Shard(format!("--shard {spec}: {m}"));
        let number = |s: &str, what: &str| -> Result<usize, ShardError> {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{what} {s:?} is not a whole number")))
        };
        let (index, count) = match spec.split_once('/') {
            Some((i, n)) => (Some(number(i, "the index")?), number(n, "the count")?),
            None => (None, number(spec, "the count")?),
        };
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(format!("the count must be between 1 and {MAX_SHARDS}")));
        }
        let index = match index {
            Some(i) => i,
            None => Self::index_from_env(&env).map_err(bad)?,
        };
        if index >= count {
            return Err(bad(format!(
                "index {index} is not below the count {count} (indices start at 0)"
            )));
        }
        Ok(Self { index, count })
    }

    fn index_from_env(env: &impl Fn(&str) -> Option<String>) -> Result<usize, String> {
        for var in INDEX_VARIABLES {
            let Some(v) = env(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let parse = |name: &str, v: &str| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{name}={v:?} is not a whole number"))
            };
            let mut i = parse(var, &v)?;
            if var == "SLURM_ARRAY_TASK_ID"
                && let Some(min) = env("SLURM_ARRAY_TASK_MIN").filter(|m| !m.trim().is_empty())
            {
                let min = parse("SLURM_ARRAY_TASK_MIN", &min)?;
                i = i.checked_sub(min).ok_or_else(|| {
                    format!("SLURM_ARRAY_TASK_ID={i} is below SLURM_ARRAY_TASK_MIN={min}")
                })?;
            }
            return Ok(i);
        }
        Err(format!(
            "no index given and none in the environment ({})",
            INDEX_VARIABLES.join(", ")
        ))
    }

    /// The shard's folder name: `I-of-N`.
    pub fn folder(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

/// One tile of a raster split across shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The raster's size and how many tiles it was split into.
    pub image_width: u32,
    pub image_height: u32,
    pub windows: usize,
}

impl Window {
    pub fn region(&self) -> Region {
        Region {
            x: self.x,
            y: self.y,
            width: self.width,
            height: self.height,
        }
    }
}

/// One unit of work: an image, or one tile of a raster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// The image's name in the run (as `nsod infer` names it).
    pub image: String,
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// How a plan splits the work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    pub shards: usize,
    /// Rasters with more pixels than this are split into tiles.
    pub split_above_pixels: u64,
    /// The tiles' side in pixels.
    pub window: u32,
}

/// The work of a sharded run, listed once (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub nsod_plan: u32,
    pub shards: usize,
    pub split_above_pixels: u64,
    pub window: u32,
    /// The inputs as given.
    pub inputs: Vec<PathBuf>,
    /// The run's settings: every shard and the merge use them.
    pub config: PipelineConfig,
    pub units: Vec<Unit>,
}

/// File extensions whose size the plan reads through GDAL to decide whether to split them (PNG's from its header;
/// other image files are never split: they are small or read whole).
const RASTER_EXTENSIONS: [&str; 7] = ["tif", "tiff", "jp2", "j2k", "vrt", "img", "ntf"];

impl Plan {
    /// Lists the work of `inputs` (see the module documentation). A raster that cannot be opened stays one unit:
    /// its shard reports the error.
    pub fn build(
        config: &PipelineConfig,
        inputs: &[PathBuf],
        opts: PlanOptions,
    ) -> Result<(Self, inputs::Skipped), PipelineError> {
        if opts.shards == 0 || opts.shards > MAX_SHARDS {
            return Err(PipelineError::Runtime(format!(
                "--shards must be between 1 and {MAX_SHARDS}"
            )));
        }
        if opts.window < 256 {
            return Err(PipelineError::Runtime(
                "--window must be at least 256 pixels".into(),
            ));
        }
        let (jobs, skipped) = inputs::collect(inputs, nsod_detect::is_image_path)?;
        let mut units = Vec::with_capacity(jobs.len());
        for Job { path, name } in jobs {
            let size = Self::raster_size(&path, config);
            match size {
                Some((w, h)) if u64::from(w) * u64::from(h) > opts.split_above_pixels => {
                    let tiles = tiles(w, h, opts.window);
                    let n = tiles.len();
                    units.extend(tiles.into_iter().map(|r| Unit {
                        image: name.clone(),
                        path: path.clone(),
                        window: Some(Window {
                            x: r.x,
                            y: r.y,
                            width: r.width,
                            height: r.height,
                            image_width: w,
                            image_height: h,
                            windows: n,
                        }),
                    }));
                }
                _ => units.push(Unit {
                    image: name,
                    path,
                    window: None,
                }),
            }
        }
        Ok((
            Self {
                nsod_plan: PLAN_FORMAT,
                shards: opts.shards,
                split_above_pixels: opts.split_above_pixels,
                window: opts.window,
                inputs: inputs.to_vec(),
                config: config.clone(),
                units,
            },
            skipped,
        ))
    }

    fn raster_size(path: &Path, config: &PipelineConfig) -> Option<(u32, u32)> {
        let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
        if ext == "png" {
            return image::image_dimensions(path).ok();
        }
        if !RASTER_EXTENSIONS.contains(&ext.as_str()) {
            return None;
        }
        nsod_raster::Raster::open(path, &config.raster)
            .ok()
            .map(|r| r.size())
    }

    /// The shard of unit `i`.
    pub fn shard_of(&self, i: usize) -> usize {
        i % self.shards
    }

    /// The units of shard `index`, in plan order.
    pub fn units_of(&self, index: usize) -> impl Iterator<Item = &Unit> {
        self.units
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.shard_of(*i) == index)
            .map(|(_, u)| u)
    }

    /// Writes the plan atomically.
    pub fn write(&self, path: &Path) -> Result<(), ShardError> {
        write_atomic(path, |w: &mut dyn Write| {
            serde_json::to_writer(&mut *w, self)?;
            w.write_all(b"\n")
        })
        .map_err(|e| ShardError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })
    }

    /// Reads and checks a plan.
    pub fn read(path: &Path) -> Result<Self, ShardError> {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let plan: Self = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
            ShardError::BadPlan {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        let bad = |message: String| ShardError::BadPlan {
            path: path.to_path_buf(),
            message,
        };
        if plan.nsod_plan != PLAN_FORMAT {
            return Err(bad(format!(
                "format {} (this nsod reads {PLAN_FORMAT})",
                plan.nsod_plan
            )));
        }
        if plan.shards == 0 || plan.shards > MAX_SHARDS {
            return Err(bad(format!("{} shards", plan.shards)));
        }
        plan.config
            .validate()
            .map_err(|e| bad(format!("its configuration: {}", error_chain(&e))))?;
        // Unit names become file names in shard and run folders (labels/, vis/): never outside them.
        for (i, u) in plan.units.iter().enumerate() {
            nsod_types::quote::relative_name(&u.image)
                .map_err(|e| bad(format!("unit {}: {e}", i + 1)))?;
        }
        Ok(plan)
    }
}

/// Tiles of `side` pixels covering a `w x h` raster (the last row and column smaller), row by row.
pub fn tiles(w: u32, h: u32, side: u32) -> Vec<Region> {
    let side = side.max(1);
    let mut out = Vec::new();
    let mut y = 0;
    while y < h {
        let mut x = 0;
        while x < w {
            out.push(Region {
                x,
                y,
                width: side.min(w - x),
                height: side.min(h - y),
            });
            x = x.saturating_add(side);
        }
        y = y.saturating_add(side);
    }
    out
}

/// One tile's result in `windows.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub image: String,
    pub window: Window,
    /// Per slice run: its index among the raster's regions and how many detections it found.
    pub groups: Vec<(usize, usize)>,
    /// Unmerged, in the raster's pixels.
    pub detections: Vec<Detection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub georef: Option<GeoRef>,
}

/// A unit that failed, in `shard.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitFailure {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub stage: String,
    pub error_type: String,
    pub message: String,
}

/// What a shard did, in `shard.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub nsod: String,
    pub index: usize,
    pub count: usize,
    pub plan: PathBuf,
    pub plan_sha256: Option<String>,
    pub units: usize,
    pub images: usize,
    pub windows: usize,
    pub failures: Vec<UnitFailure>,
    /// Final detections of whole images, and unmerged detections of tiles.
    pub detections: usize,
    pub window_detections: usize,
    pub started: f64,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// How a shard ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardOutcome {
    pub manifest: ShardManifest,
    /// Stopped by a signal: nothing was committed.
    pub interrupted: bool,
    /// Where the shard was written.
    pub folder: PathBuf,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `OUT/shards/I-of-N`.
pub fn shard_folder(out: &Path, shard: ShardId) -> PathBuf {
    out.join(nsod_types::layout::SHARDS).join(shard.folder())
}

/// One shard to run: its plan, the shard, where the run folder is, and where its settings came from (recorded in
/// its `run.json`).
#[derive(Debug)]
pub struct ShardRun<'a> {
    pub plan: &'a Plan,
    pub plan_path: &'a Path,
    pub shard: ShardId,
    pub out: &'a Path,
    pub sources: std::collections::BTreeMap<&'static str, crate::settings::Source>,
}

/// Runs one shard of `plan` into `OUT/shards/I-of-N/` (see the module documentation). Failed images and tiles are
/// recorded (their shard still finishes); a sink that cannot write is an error and nothing is committed.
pub fn run_shard(
    worker: &mut Worker,
    run: ShardRun<'_>,
    observer: &mut dyn Observer,
    interrupt: &AtomicBool,
) -> Result<ShardOutcome, PipelineError> {
    let ShardRun {
        plan,
        plan_path,
        shard,
        out,
        sources,
    } = run;
    let shard_err = |e: ShardError| PipelineError::Runtime(error_chain(&e));
    if shard.count != plan.shards {
        return Err(PipelineError::Runtime(format!(
            "--shard {}/{}: {} was planned for {} shards",
            shard.index,
            shard.count,
            plan_path.display(),
            plan.shards
        )));
    }
    let started = SystemTime::now();
    let t0 = Instant::now();
    let folder = shard_folder(out, shard);
    let shards_dir = out.join(nsod_types::layout::SHARDS);
    std::fs::create_dir_all(&shards_dir)
        .map_err(io(&shards_dir))
        .map_err(shard_err)?;
    let tmp = shards_dir.join(format!(".{}.partial", shard.folder()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .map_err(io(&tmp))
            .map_err(shard_err)?;
    }
    let mut opts = RunDirOptions::infer(&plan.config);
    opts.skip_existing = false;
    // The shard's hidden folder is its staging folder: committed by the rename below.
    opts.staged = false;
    let mut sink = RunDirSink::open(&tmp, opts, worker.pipeline()).map_err(PipelineError::Sink)?;
    sink.set_sources(sources);
    let units: Vec<&Unit> = plan.units_of(shard.index).collect();
    let jobs: Vec<Job> = units
        .iter()
        .filter(|u| u.window.is_none())
        .map(|u| Job {
            path: u.path.clone(),
            name: u.image.clone(),
        })
        .collect();
    let mut failures = Vec::new();
    let summary = crate::runner::run(worker, jobs, &plan.inputs, &mut sink, observer, interrupt)?;
    let mut outcome = ShardOutcome {
        manifest: ShardManifest {
            nsod: env!("CARGO_PKG_VERSION").into(),
            index: shard.index,
            count: shard.count,
            plan: std::path::absolute(plan_path).unwrap_or_else(|_| plan_path.to_path_buf()),
            plan_sha256: sha256_file(plan_path),
            units: units.len(),
            images: summary.processed,
            windows: 0,
            failures: Vec::new(),
            detections: summary.per_class.values().sum(),
            window_detections: 0,
            started: unix(started),
            seconds: 0.0,
            peak_rss_bytes: None,
        },
        interrupted: summary.interrupted,
        folder: folder.clone(),
    };
    if summary.interrupted {
        return Ok(outcome);
    }
    // The tiles of split rasters.
    let windows_path = tmp.join(WINDOWS);
    let mut lines: Vec<u8> = Vec::new();
    let mut wfile = std::io::BufWriter::new(
        std::fs::File::create(&windows_path)
            .map_err(io(&windows_path))
            .map_err(shard_err)?,
    );
    for u in units.iter().filter(|u| u.window.is_some()) {
        let Some(window) = u.window else { continue };
        if interrupt.load(Ordering::SeqCst) {
            outcome.interrupted = true;
            observer.interrupted(summary.processed + outcome.manifest.windows);
            return Ok(outcome);
        }
        let mut fail = |stage: Stage, error_type: &str, e: &PipelineError| {
            let f = Failure {
                image: u.image.clone(),
                path: u.path.clone(),
                stage,
                error_type: if error_type == "image" {
                    "image"
                } else {
                    "inference"
                },
                message: format!(
                    "window x={} y={} {}x{}: {}",
                    window.x,
                    window.y,
                    window.width,
                    window.height,
                    error_chain(e)
                ),
            };
            observer.failed(&f);
            UnitFailure {
                image: u.image.clone(),
                window: Some(window),
                stage: stage.as_str().into(),
                error_type: f.error_type.into(),
                message: f.message,
            }
        };
        let loaded = match crate::runner::decode(&u.path, &plan.config.raster) {
            Ok(l) => l,
            Err(e) => {
                failures.push(fail(Stage::Decode, "image", &e));
                continue;
            }
        };
        if loaded.size() != (window.image_width, window.image_height) {
            let e = PipelineError::Runtime(format!(
                "the raster is {}x{}, the plan says {}x{} (it changed since planning)",
                loaded.size().0,
                loaded.size().1,
                window.image_width,
                window.image_height
            ));
            failures.push(fail(Stage::Decode, "image", &e));
            continue;
        }
        let found = match worker.detect_tile(&loaded, window.region()) {
            Ok(f) => f,
            Err(e) if e.is_interrupted() => {
                outcome.interrupted = true;
                observer.interrupted(summary.processed + outcome.manifest.windows);
                return Ok(outcome);
            }
            Err(e) => {
                failures.push(fail(Stage::Detect, "inference", &e));
                continue;
            }
        };
        outcome.manifest.windows += 1;
        outcome.manifest.window_detections += found.detections.len();
        let record = WindowRecord {
            image: u.image.clone(),
            window,
            groups: found.groups,
            detections: found.detections,
            georef: loaded.georef.clone(),
        };
        lines.clear();
        serde_json::to_writer(&mut lines, &record).map_err(|e| {
            shard_err(ShardError::Io {
                path: windows_path.clone(),
                source: e.into(),
            })
        })?;
        lines.push(b'\n');
        wfile
            .write_all(&lines)
            .map_err(io(&windows_path))
            .map_err(shard_err)?;
    }
    wfile
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io(&windows_path))
        .map_err(shard_err)?;
    // The images that failed in the runner, from the shard's run.json, and the tiles that failed.
    let run: serde_json::Value = std::fs::read_to_string(tmp.join(nsod_types::layout::MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut all_failures: Vec<UnitFailure> = run["failures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| serde_json::from_value(f.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    all_failures.extend(failures);
    outcome.manifest.failures = all_failures;
    outcome.manifest.seconds = t0.elapsed().as_secs_f64();
    outcome.manifest.peak_rss_bytes = crate::sink::peak_rss_bytes();
    let manifest_path = tmp.join(SHARD_MANIFEST);
    write_atomic(&manifest_path, |w: &mut dyn Write| {
        serde_json::to_writer_pretty(&mut *w, &outcome.manifest)?;
        w.write_all(b"\n")
    })
    .map_err(|e| PipelineError::Sink(e.into()))?;
    let success = tmp.join(SUCCESS);
    std::fs::File::create(&success)
        .and_then(|f| f.sync_all())
        .map_err(io(&success))
        .map_err(shard_err)?;
    commit(&tmp, &folder).map_err(shard_err)?;
    Ok(outcome)
}

/// Replaces `folder` by `tmp` (a rerun shard replaces its earlier folder whole).
fn commit(tmp: &Path, folder: &Path) -> Result<(), ShardError> {
    if folder.exists() {
        let old = folder.with_file_name(format!(
            ".{}.old-{}",
            folder.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        std::fs::rename(folder, &old).map_err(io(folder))?;
        std::fs::rename(tmp, folder).map_err(io(folder))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(tmp, folder).map_err(io(folder))?;
    }
    Ok(())
}

/// Reads every shard's manifest, checking each finished for this plan; the unfinished ones are listed together.
pub fn check_shards(
    out: &Path,
    plan: &Plan,
    plan_path: &Path,
) -> Result<Vec<ShardManifest>, ShardError> {
    let mut missing = Vec::new();
    let mut manifests = Vec::new();
    let sha = sha256_file(plan_path);
    for index in 0..plan.shards {
        let id = ShardId {
            index,
            count: plan.shards,
        };
        let folder = shard_folder(out, id);
        if open_in_folder(&folder, SUCCESS)?.is_none() {
            missing.push(id.folder());
            continue;
        }
        let path = folder.join(SHARD_MANIFEST);
        let mut text = String::new();
        open_required(&folder, SHARD_MANIFEST)?
            .read_to_string(&mut text)
            .map_err(io(&path))?;
        let m: ShardManifest = serde_json::from_str(&text).map_err(|e| ShardError::Mismatch {
            path: path.clone(),
            message: format!("not a shard manifest: {e}"),
        })?;
        if m.plan_sha256 != sha {
            return Err(ShardError::Mismatch {
                path,
                message: format!(
                    "this shard ran another plan than {} (rerun it, or merge with the plan it ran: {})",
                    plan_path.display(),
                    m.plan.display()
                ),
            });
        }
        manifests.push(m);
    }
    if !missing.is_empty() {
        return Err(ShardError::Missing {
            count: plan.shards,
            missing,
        });
    }
    for m in &manifests {
        let folder = shard_folder(
            out,
            ShardId {
                index: m.index,
                count: m.count,
            },
        );
        // The shard's files hold what its manifest counts (a shard copied in part, or damaged, is refused before
        // anything is replaced).
        for (name, want, what) in [
            (nsod_types::layout::PREDICTIONS, m.images, "images"),
            (WINDOWS, m.windows, "tiles"),
        ] {
            let lines = match open_in_folder(&folder, name)? {
                Some(f) => std::io::BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.trim().is_empty())
                    .count(),
                None => 0,
            };
            if lines != want {
                return Err(ShardError::Mismatch {
                    path: folder.join(name),
                    message: format!(
                        "holds {lines} records, but the shard's {SHARD_MANIFEST} counts {want} {what}: the shard is \
                             incomplete or damaged (rerun it)"
                    ),
                });
            }
        }
    }
    Ok(manifests)
}

/// Lines of a report file grouped by image, read as the merge walks the plan.
struct Rows {
    lines: std::iter::Peekable<std::io::Lines<std::io::BufReader<std::fs::File>>>,
    key: fn(&str) -> Option<String>,
}

impl Rows {
    fn open(f: std::fs::File, key: fn(&str) -> Option<String>, header: bool) -> Self {
        let mut lines = std::io::BufReader::new(f).lines().peekable();
        if header {
            lines.next();
        }
        Self { lines, key }
    }

    /// The rows of `image` at the head of the file.
    fn take(&mut self, image: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Ok(l)) = self.lines.peek() {
            if (self.key)(l).as_deref() != Some(image) {
                break;
            }
            if let Some(Ok(l)) = self.lines.next() {
                out.push(l);
            }
        }
        out
    }
}

fn json_image(l: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(l)
        .ok()
        .and_then(|v| v["image"].as_str().map(str::to_owned))
}

/// One shard's outputs, read in plan order.
struct ShardReader {
    folder: PathBuf,
    records: std::iter::Peekable<JsonlReader>,
    raw: Option<std::iter::Peekable<JsonlReader>>,
    csv: Option<Rows>,
    jsonl: Option<Rows>,
    failures: HashMap<String, UnitFailure>,
}

fn next_if(
    it: &mut std::iter::Peekable<JsonlReader>,
    image: &str,
) -> Result<Option<ImagePredictions>, PipelineError> {
    match it.peek() {
        Some(Ok(r)) if r.image == image => Ok(it.next().and_then(Result::ok)),
        Some(Err(_)) => match it.next() {
            Some(Err(e)) => Err(PipelineError::Sink(e.into())),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// What the merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    pub summary: RunSummary,
    pub shards: Vec<ShardManifest>,
    /// Seconds of the merge itself, and the sum of the shards' run times.
    pub seconds: f64,
    pub shard_seconds: f64,
}

/// Merges the shards of `plan` in `out` into `out`'s run folder (see the module documentation).
pub fn merge(
    worker: &mut Worker,
    plan: &Plan,
    plan_path: &Path,
    out: &Path,
    sources: std::collections::BTreeMap<&'static str, crate::settings::Source>,
    observer: &mut dyn Observer,
) -> Result<MergeOutcome, PipelineError> {
    let t0 = Instant::now();
    let shard_err = |e: ShardError| PipelineError::Runtime(error_chain(&e));
    let manifests = check_shards(out, plan, plan_path).map_err(shard_err)?;
    let mut opts = RunDirOptions::infer(&plan.config);
    opts.skip_existing = false;
    let rules = worker.pipeline().rules().is_some();
    let mut sink =
        RunDirSink::open(out, opts.clone(), worker.pipeline()).map_err(PipelineError::Sink)?;
    sink.set_sources(sources);
    let mut readers = Vec::with_capacity(plan.shards);
    let mut windows: HashMap<String, Vec<WindowRecord>> = HashMap::new();
    let mut window_failures: HashMap<String, Vec<UnitFailure>> = HashMap::new();
    for m in &manifests {
        let folder = shard_folder(
            out,
            ShardId {
                index: m.index,
                count: m.count,
            },
        );
        let open = |name: &str| -> Result<Option<JsonlReader>, PipelineError> {
            Ok(open_in_folder(&folder, name)
                .map_err(shard_err)?
                .map(|f| JsonlReader::from_file(f, &folder.join(name))))
        };
        let rows = |name: &str| -> Result<Option<std::fs::File>, PipelineError> {
            open_in_folder(&folder, name).map_err(shard_err)
        };
        let mut failures = HashMap::new();
        for f in &m.failures {
            if f.window.is_some() {
                window_failures
                    .entry(f.image.clone())
                    .or_default()
                    .push(f.clone());
            } else {
                failures.insert(f.image.clone(), f.clone());
            }
        }
        let wpath = folder.join(WINDOWS);
        let text = open_required(&folder, WINDOWS).map_err(shard_err)?;
        for (n, line) in std::io::BufReader::new(text).lines().enumerate() {
            let line = line.map_err(io(&wpath)).map_err(shard_err)?;
            let r: WindowRecord = serde_json::from_str(&line).map_err(|e| {
                shard_err(ShardError::Mismatch {
                    path: wpath.clone(),
                    message: format!("line {}: {e}", n + 1),
                })
            })?;
            windows.entry(r.image.clone()).or_default().push(r);
        }
        readers.push(ShardReader {
            records: match open(nsod_types::layout::PREDICTIONS)? {
                Some(r) => r.peekable(),
                None => {
                    return Err(shard_err(ShardError::Mismatch {
                        path: folder.clone(),
                        message: "no predictions.jsonl".into(),
                    }));
                }
            },
            raw: if rules {
                open(nsod_types::layout::PREDICTIONS_RAW)?.map(Iterator::peekable)
            } else {
                None
            },
            csv: if rules {
                rows(nsod_types::layout::REPORT_CSV)?
                    .map(|f| Rows::open(f, crate::sink::csv_image_of, true))
            } else {
                None
            },
            jsonl: if rules {
                rows(nsod_types::layout::REPORT_JSONL)?.map(|f| Rows::open(f, json_image, false))
            } else {
                None
            },
            failures,
            folder,
        });
    }
    sink.begin(&RunInfo {
        pipeline: &worker.pipeline().clone(),
        inputs: &plan.inputs,
        jobs: plan.units.len(),
    })
    .map_err(PipelineError::Sink)?;
    let mut summary = RunSummary::default();
    let mut seen_rasters = std::collections::HashSet::new();
    for (i, u) in plan.units.iter().enumerate() {
        let failure = |f: &UnitFailure| Failure {
            image: u.image.clone(),
            path: u.path.clone(),
            stage: Stage::ALL
                .into_iter()
                .find(|s| s.as_str() == f.stage)
                .unwrap_or(Stage::Detect),
            error_type: match f.error_type.as_str() {
                "image" => "image",
                "io" => "io",
                _ => "inference",
            },
            message: f.message.clone(),
        };
        match u.window {
            None => {
                let r = &mut readers[plan.shard_of(i)];
                let Some(record) = next_if(&mut r.records, &u.image)? else {
                    let f = r.failures.get(&u.image).cloned().unwrap_or(UnitFailure {
                        image: u.image.clone(),
                        window: None,
                        stage: "write".into(),
                        error_type: "io".into(),
                        message: format!(
                            "no record in {} (the shard's outputs are incomplete: rerun it)",
                            r.folder.display()
                        ),
                    });
                    let f = failure(&f);
                    observer.failed(&f);
                    sink.failed(&f).map_err(PipelineError::Sink)?;
                    summary.failed += 1;
                    continue;
                };
                let raw = match r.raw.as_mut() {
                    Some(it) => next_if(it, &u.image)?,
                    None => None,
                };
                let csv = r.csv.as_mut().map(|c| c.take(&u.image)).unwrap_or_default();
                let jsonl = r
                    .jsonl
                    .as_mut()
                    .map(|c| c.take(&u.image))
                    .unwrap_or_default();
                sink.replay(&record, raw.as_ref(), &csv, &jsonl)
                    .map_err(PipelineError::Sink)?;
                if opts.vis {
                    copy_vis(&r.folder, out, &u.image).map_err(shard_err)?;
                }
                summary.processed += 1;
            }
            Some(w) => {
                if !seen_rasters.insert(u.image.clone()) {
                    continue;
                }
                let parts = windows.remove(&u.image).unwrap_or_default();
                if let Some(fs) = window_failures.get(&u.image) {
                    let f = failure(&fs[0]);
                    observer.failed(&f);
                    sink.failed(&f).map_err(PipelineError::Sink)?;
                    summary.failed += 1;
                    continue;
                }
                if parts.len() != w.windows {
                    let f = Failure {
                        image: u.image.clone(),
                        path: u.path.clone(),
                        stage: Stage::Detect,
                        error_type: "inference",
                        message: format!(
                            "{} of its {} windows are in the shards (rerun the shards)",
                            parts.len(),
                            w.windows
                        ),
                    };
                    observer.failed(&f);
                    sink.failed(&f).map_err(PipelineError::Sink)?;
                    summary.failed += 1;
                    continue;
                }
                let georef = parts.iter().find_map(|p| p.georef.clone());
                let split: Vec<_> = parts
                    .into_iter()
                    .map(|p| (p.groups, p.detections))
                    .collect();
                let size = ImageSize::new(w.image_width, w.image_height);
                let outcome = match worker.process_windows(&u.image, size, split, georef.as_ref()) {
                    Ok(o) => o,
                    Err(e) => {
                        let f = Failure {
                            image: u.image.clone(),
                            path: u.path.clone(),
                            stage: Stage::Detect,
                            error_type: "inference",
                            message: error_chain(&e),
                        };
                        observer.failed(&f);
                        sink.failed(&f).map_err(PipelineError::Sink)?;
                        summary.failed += 1;
                        continue;
                    }
                };
                let preview = if sink.wants_image() {
                    crate::runner::decode(&u.path, &plan.config.raster)
                        .ok()
                        .and_then(|l| l.preview(PREVIEW_SIDE).ok().flatten())
                } else {
                    None
                };
                let t = Instant::now();
                sink.image(&outcome, preview.as_ref())
                    .map_err(PipelineError::Sink)?;
                observer.finished(&outcome, t.elapsed().as_secs_f64());
                summary.processed += 1;
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let shard_seconds: f64 = manifests.iter().map(|m| m.seconds).sum();
    summary.seconds = seconds;
    // The manifest says the run was sharded, and how.
    sink.annotate(
        "sharded",
        json!({
            "plan": std::path::absolute(plan_path).unwrap_or_else(|_| plan_path.to_path_buf()),
            "plan_sha256": sha256_file(plan_path),
            "shards": plan.shards,
            "units": plan.units.len(),
            "merge_seconds": t0.elapsed().as_secs_f64(),
            "shard_seconds": manifests.iter().map(|m| m.seconds).collect::<Vec<_>>(),
            "shard_peak_rss_bytes": manifests.iter().map(|m| m.peak_rss_bytes).collect::<Vec<_>>(),
        }),
    );
    let summary = sink.finish(summary).map_err(PipelineError::Sink)?;
    Ok(MergeOutcome {
        summary,
        shards: manifests,
        seconds: t0.elapsed().as_secs_f64(),
        shard_seconds,
    })
}

/// Copies an image's annotated picture from a shard folder (under its own name, or as PNG).
fn copy_vis(shard: &Path, out: &Path, image: &str) -> Result<(), ShardError> {
    let rel = Path::new(image);
    for candidate in [rel.to_path_buf(), rel.with_extension("png")] {
        let from = shard.join(nsod_types::layout::VIS).join(&candidate);
        if let Some(mut file) = open_in_folder(
            shard,
            &Path::new(nsod_types::layout::VIS)
                .join(&candidate)
                .to_string_lossy(),
        )? {
            let to = out.join(nsod_types::layout::VIS).join(&candidate);
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p).map_err(io(p))?;
            }
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io(&from))?;
            write_atomic(&to, |w: &mut dyn Write| w.write_all(&bytes)).map_err(|e| {
                ShardError::Io {
                    path: to.clone(),
                    source: std::io::Error::other(e),
                }
            })?;
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_index_comes_from_the_flag_or_each_engine() {
        let none = env(&[]);
        assert_eq!(
            ShardId::resolve("3/8", &none).unwrap(),
            ShardId { index: 3, count: 8 }
        );
        let cases: [(&[(&str, &str)], usize); 6] = [
            (&[("NSOD_SHARD_INDEX", "5")], 5),
            (&[("JOB_COMPLETION_INDEX", "2")], 2),
            (&[("SLURM_ARRAY_TASK_ID", "7")], 7),
            (
                &[("SLURM_ARRAY_TASK_ID", "11"), ("SLURM_ARRAY_TASK_MIN", "4")],
                7,
            ),
            (&[("AWS_BATCH_JOB_ARRAY_INDEX", "1")], 1),
            // nsod's own variable wins over an engine's.
            (
                &[("NSOD_SHARD_INDEX", "0"), ("JOB_COMPLETION_INDEX", "6")],
                0,
            ),
        ];
        for (vars, want) in cases {
            assert_eq!(
                ShardId::resolve("8", env(vars)).unwrap(),
                ShardId {
                    index: want,
                    count: 8
                },
                "{vars:?}"
            );
        }
    }

    #[test]
    fn bad_shards_are_refused_with_the_reason() {
        let none = env(&[]);
        let msg = |s: &str, e: &dyn Fn(&str) -> Option<String>| {
            ShardId::resolve(s, e).unwrap_err().to_string()
        };
        assert_eq!(
            msg("8/8", &none),
            "--shard 8/8: index 8 is not below the count 8 (indices start at 0)"
        );
        assert_eq!(
            msg("1/0", &none),
            "--shard 1/0: the count must be between 1 and 100000"
        );
        assert_eq!(
            msg("x/4", &none),
            "--shard x/4: the index \"x\" is not a whole number"
        );
        assert_eq!(
            msg("4", &none),
            "--shard 4: no index given and none in the environment (NSOD_SHARD_INDEX, JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, AWS_BATCH_JOB_ARRAY_INDEX)"
        );
        assert_eq!(
            msg(
                "4",
                &env(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_MIN", "3")])
            ),
            "--shard 4: SLURM_ARRAY_TASK_ID=2 is below SLURM_ARRAY_TASK_MIN=3"
        );
        assert_eq!(
            msg("4", &env(&[("JOB_COMPLETION_INDEX", "-1")])),
            "--shard 4: JOB_COMPLETION_INDEX=\"-1\" is not a whole number"
        );
    }

    fn write_plan(dir: &Path, shards: usize) -> (Plan, PathBuf) {
        let imgs = dir.join("imgs");
        std::fs::create_dir_all(imgs.join("sub")).unwrap();
        for name in ["b.png", "a.jpg", "sub/c.png", "notes.txt"] {
            std::fs::write(imgs.join(name), b"not decoded by the plan").unwrap();
        }
        let opts = PlanOptions {
            shards,
            split_above_pixels: 64 << 20,
            window: 8192,
        };
        let (plan, skipped) = Plan::build(
            &PipelineConfig::default(),
            std::slice::from_ref(&imgs),
            opts,
        )
        .unwrap();
        assert_eq!(skipped.0, vec![imgs.join("notes.txt")]);
        let path = dir.join("plan.json");
        plan.write(&path).unwrap();
        (plan, path)
    }

    #[test]
    fn plans_are_stable_and_split_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, path) = write_plan(dir.path(), 2);
        let first = std::fs::read(&path).unwrap();
        let (again, _) = write_plan(dir.path(), 2);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            first,
            "same inputs, same plan bytes"
        );
        assert_eq!(plan, again);
        assert_eq!(Plan::read(&path).unwrap(), plan);
        let names = |i| {
            plan.units_of(i)
                .map(|u| u.image.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0), vec!["a.jpg", "sub/c.png"]);
        assert_eq!(names(1), vec!["b.png"]);
    }

    #[test]
    fn unfinished_shards_are_listed_together() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, path) = write_plan(dir.path(), 4);
        let out = dir.path().join("out");
        let finish = |index: usize, plan_path: &Path| {
            let f = shard_folder(&out, ShardId { index, count: 4 });
            std::fs::create_dir_all(&f).unwrap();
            let m = ShardManifest {
                nsod: "test".into(),
                index,
                count: 4,
                plan: plan_path.to_path_buf(),
                plan_sha256: sha256_file(plan_path),
                units: 1,
                images: 0,
                windows: 0,
                failures: vec![],
                detections: 0,
                window_detections: 0,
                started: 0.0,
                seconds: 1.0,
                peak_rss_bytes: None,
            };
            std::fs::write(f.join(SHARD_MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
            std::fs::write(f.join(SUCCESS), b"").unwrap();
        };
        finish(0, &path);
        finish(2, &path);
        // A folder without _SUCCESS (a shard that crashed while writing) counts as missing.
        std::fs::create_dir_all(shard_folder(&out, ShardId { index: 3, count: 4 })).unwrap();
        let e = check_shards(&out, &plan, &path).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 of 4 shards have not finished (no _SUCCESS): 1-of-4, 3-of-4"
        );
        finish(1, &path);
        finish(3, &path);
        assert_eq!(check_shards(&out, &plan, &path).unwrap().len(), 4);
        // A shard that ran another plan is refused.
        let other = dir.path().join("other.json");
        std::fs::write(&other, b"{}").unwrap();
        finish(3, &other);
        let e = check_shards(&out, &plan, &path).unwrap_err();
        assert!(
            e.to_string()
                .contains("3-of-4/shard.json: this shard ran another plan than"),
            "{e}"
        );
    }

    #[test]
    fn tiles_cover_the_raster_once() {
        let t = tiles(12000, 10000, 8192);
        assert_eq!(
            t,
            vec![
                Region {
                    x: 0,
                    y: 0,
                    width: 8192,
                    height: 8192
                },
                Region {
                    x: 8192,
                    y: 0,
                    width: 3808,
                    height: 8192
                },
                Region {
                    x: 0,
                    y: 8192,
                    width: 8192,
                    height: 1808
                },
                Region {
                    x: 8192,
                    y: 8192,
                    width: 3808,
                    height: 1808
                },
            ]
        );
        assert_eq!(tiles(100, 100, 8192).len(), 1);
    }

    /// Every slice of the unsharded run is run by exactly one tile, whatever the sizes: the merge sees the same
    /// slices as one process would, so the tiles' overlap is always enough.
    #[test]
    fn tiles_own_every_slice_exactly_once() {
        for (w, h, side, slice, overlap) in [
            (12000, 12000, 8192, 1024, 0.2),
            (30000, 7000, 4096, 1024, 0.2),
            (5000, 5000, 1000, 640, 0.25),
            (2049, 1025, 1024, 1024, 0.0),
        ] {
            let mut regions =
                nsod_detect::slicing::slice_regions(w, h, slice, slice, overlap, overlap);
            regions.push(Region {
                x: 0,
                y: 0,
                width: w,
                height: h,
            });
            let ts = tiles(w, h, side);
            for (i, r) in regions.iter().enumerate() {
                let owners = ts.iter().filter(|t| t.contains_origin(r)).count();
                assert_eq!(owners, 1, "{w}x{h} tile {side}: region {i} {r:?}");
            }
        }
    }
}
