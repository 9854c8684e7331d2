//! The pipeline: a shareable plan ([`Pipeline`]: settings, model information, rule base) and its workers
//! ([`Worker`]: one ONNX Runtime session and one scene-rules session each), which take one image through every
//! stage and return an [`ImageOutcome`] without touching the file system.

use crate::config::{ConfigError, PipelineConfig};
use crate::source::{LoadedImage, Pixels};
use crate::{PipelineError, error_chain};
use image::RgbImage;
use nsod_detect::{
    Detector, DetectorConfig, IoMode, Model, ModelInfo, ModelOptions, Rect, rect_stride,
};
use nsod_runtime::Runtime;
use nsod_symbolic::{ImageContext, RuleBase, Sandbox, SceneSession};
use nsod_types::detection::class_atom;
use nsod_types::geo::{GeoRef, ImageGeo};
use nsod_types::outcome::{DetectStats, ImageOutcome, RulesOutcome, SceneQuery, StageTimings};
use nsod_types::relations::{RelationEdge, RelationParams, extract};
use nsod_types::{ClassNames, Detection, ImageSize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What [`Pipeline::build`] needs beyond the configuration: where things are on this machine.
#[derive(Debug, Clone)]
pub struct Environment {
    /// ONNX Runtime, for pipelines that detect.
    pub runtime: Option<Arc<Runtime>>,
    /// How rule bases run (the rules worker and its limits).
    pub sandbox: Sandbox,
    /// The rule base used when the configuration names none and the model's classes are DOTA's.
    pub default_rules: Option<PathBuf>,
}

/// How long building took and what it found, for the front end's messages and metrics.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    pub model_load_seconds: f64,
    pub rules_load_seconds: f64,
    /// Warnings about the rule base (unknown classes, conflicting weights).
    pub rules_warnings: Vec<String>,
}

#[derive(Debug)]
struct ModelPlan {
    info: Arc<ModelInfo>,
    runtime: Arc<Runtime>,
    detector: DetectorConfig,
    /// The session opened to read the model, handed to the first worker.
    idle: Mutex<Option<Model>>,
}

#[derive(Debug)]
struct Inner {
    config: PipelineConfig,
    model: Option<ModelPlan>,
    names: ClassNames,
    rules: Option<RuleBase>,
    relation_params: RelationParams,
    kg_pairs: Option<HashSet<(String, String)>>,
}

/// The immutable part of a run, cheap to clone and shared by every worker thread.
#[derive(Debug, Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

/// True when the class names are DOTA-v1's (the default rule base is written for them).
pub fn is_dota(names: &ClassNames) -> bool {
    let dota = ClassNames::dota_v1();
    names.len() == dota.len()
        && names
            .as_slice()
            .iter()
            .zip(dota.as_slice())
            .all(|(a, b)| class_atom(a) == class_atom(b))
}

/// Reads a names file (one per line, a YAML `names:` map or a dict literal).
pub fn read_names(path: &Path) -> Result<ClassNames, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    nsod_detect::metadata::parse_names_file(&text).map_err(|message| PipelineError::Names {
        path: path.to_path_buf(),
        message,
    })
}

/// Reads an allow-list of class pairs: one pair per line (`ship harbor`, class names or atoms), `#` comments.
pub fn read_pairs(path: &Path) -> Result<HashSet<(String, String)>, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    let mut set = HashSet::new();
    for (no, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = l
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        let [a, b] = parts[..] else {
            return Err(PipelineError::Names {
                path: path.to_path_buf(),
                message: format!("line {}: expected two class names, found {l:?}", no + 1),
            });
        };
        let (a, b) = (class_atom(a), class_atom(b));
        set.insert(if a <= b { (a, b) } else { (b, a) });
    }
    Ok(set)
}

impl Pipeline {
    /// Builds a pipeline: validates the configuration, loads the model (when `config.model` is set and a runtime
    /// is given), picks and loads the rule base (in the sandboxed rules worker), reads the class-pair list of the
    /// knowledge graph. Without a model the pipeline refines given detections ([`Worker::process_detections`]);
    /// `names` then gives the classes (DOTA-v1 when absent).
    pub fn build(
        config: &PipelineConfig,
        env: &Environment,
        names: Option<ClassNames>,
    ) -> Result<(Self, BuildReport), PipelineError> {
        config.validate()?;
        let mut report = BuildReport::default();
        let given_names = match &config.names {
            Some(p) => Some(read_names(p)?),
            None => names,
        };
        let model = match (&config.model, &env.runtime) {
            (Some(path), Some(runtime)) => {
                let t = Instant::now();
                let m = Model::load(
                    runtime,
                    path,
                    &ModelOptions {
                        device: config.device()?,
                        threads: config.session_threads(),
                        names: given_names.clone(),
                        io: config.io_binding,
                        graph_optimization: config.graph_optimization,
                        spinning: config.spinning,
                    },
                )
                .map_err(PipelineError::Model)?;
                report.model_load_seconds = t.elapsed().as_secs_f64();
                check_rect(config, &m.info)?;
                Some(ModelPlan {
                    info: m.info.clone(),
                    runtime: runtime.clone(),
                    detector: config.detect.detector(),
                    idle: Mutex::new(Some(m)),
                })
            }
            (Some(path), None) => {
                return Err(PipelineError::Runtime(format!(
                    "{}: no ONNX Runtime to run the model with",
                    path.display()
                )));
            }
            (None, _) => None,
        };
        let names = match &model {
            Some(m) => m.info.names.clone(),
            None => given_names.unwrap_or_else(ClassNames::dota_v1),
        };
        let rules_file = if !config.rules.enabled {
            None
        } else if let Some(f) = &config.rules.file {
            Some(f.clone())
        } else if is_dota(&names) {
            env.default_rules.clone().filter(|p| p.is_file())
        } else {
            None
        };
        let rules = match rules_file {
            Some(path) => {
                let t = Instant::now();
                let rb = nsod_symbolic::load_rules(&path, Some(&names), &env.sandbox)
                    .map_err(PipelineError::Rules)?;
                report.rules_load_seconds = t.elapsed().as_secs_f64();
                report.rules_warnings = rb.table.warnings.clone();
                Some(rb)
            }
            None => None,
        };
        let relation_params = rules.as_ref().map(|r| r.table.params).unwrap_or_default();
        let kg_pairs = match (&config.kg.enabled, &config.kg.pairs) {
            (true, Some(p)) => Some(read_pairs(p)?),
            _ => None,
        };
        Ok((
            Self {
                inner: Arc::new(Inner {
                    config: config.clone(),
                    model,
                    names,
                    rules,
                    relation_params,
                    kg_pairs,
                }),
            },
            report,
        ))
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.inner.config
    }

    /// The model's information, for pipelines that detect.
    pub fn model(&self) -> Option<&ModelInfo> {
        self.inner.model.as_ref().map(|m| m.info.as_ref())
    }

    /// The model runs (slices and the full-image pass) one image of `width x height` takes with `overrides`
    /// applied, computed before any of them ([`nsod_detect::model_runs`]); `None` for a pipeline without a model.
    pub fn model_runs(&self, width: u32, height: u32, overrides: &Overrides) -> Option<u64> {
        let info = self.model()?;
        let config = overrides.apply(&self.inner.config).ok()?.detect.detector();
        Some(nsod_detect::model_runs(
            info.input_hw,
            &config,
            width,
            height,
        ))
    }

    /// The class names of the run.
    pub fn names(&self) -> &ClassNames {
        &self.inner.names
    }

    /// The rule base, when the symbolic stage runs.
    pub fn rules(&self) -> Option<&RuleBase> {
        self.inner.rules.as_ref()
    }

    /// Thresholds of the relations (the rule base's when it sets them).
    pub fn relation_params(&self) -> RelationParams {
        self.inner.relation_params
    }

    /// True when detections are oriented boxes (OBB models).
    pub fn oriented(&self) -> bool {
        self.model().is_some_and(|m| m.layout.is_oriented())
    }

    /// A worker: its own ONNX Runtime session (the first worker takes the session the model was read with) and
    /// its own scene-rules session.
    pub fn worker(&self) -> Result<Worker, PipelineError> {
        let detector = match &self.inner.model {
            Some(plan) => {
                let idle = plan.idle.lock().ok().and_then(|mut m| m.take());
                let model = match idle {
                    Some(m) => m,
                    None => Model::open(&plan.runtime, plan.info.clone())
                        .map_err(PipelineError::Model)?,
                };
                // More sessions of the model (`sessions`), each with the same threads.
                let more = (1..self.inner.config.sessions)
                    .map(|_| model.another())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(PipelineError::Model)?;
                Some(Detector::new(model, plan.detector.clone()).with_sessions(more))
            }
            None => None,
        };
        Ok(Worker {
            pipeline: self.clone(),
            detector,
            scene: self.inner.rules.as_ref().and_then(RuleBase::session),
        })
    }
}

/// Per-request settings (`nsod serve`): request parameters ([`crate::settings::by_request`]) and their values as
/// text, applied over the run configuration for one image, above every other layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    params: Vec<(String, String)>,
}

impl Overrides {
    /// Checks `params` (known parameters, values that read and validate over `base`): the error names the
    /// parameter and the key (`parameter conf (detect.conf): 1.5 is outside [0, 1]`).
    pub fn new(
        base: &PipelineConfig,
        params: Vec<(String, String)>,
    ) -> Result<Self, crate::settings::SettingError> {
        let o = Self { params };
        o.apply(base)?;
        Ok(o)
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// These settings and one more (checked when applied).
    pub fn with(&self, param: &str, value: &str) -> Self {
        let mut o = self.clone();
        o.params.push((param.to_owned(), value.to_owned()));
        o
    }

    /// The configuration with these settings applied, validated.
    pub fn apply(
        &self,
        base: &PipelineConfig,
    ) -> Result<PipelineConfig, crate::settings::SettingError> {
        let layers = crate::settings::Layers::new(base.clone())
            .requests(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        layers.validate()?;
        Ok(layers.config)
    }
}

/// One input's detections before the rules ([`Worker::detect_with`]), with what reading it took.
#[derive(Debug, Clone, Default)]
pub struct Detected {
    pub found: nsod_detect::ImageDetections,
    /// Bytes and blocks read from a windowed raster for these detections.
    pub bytes_read: u64,
    pub blocks_read: u64,
}

/// Takes images through the pipeline; one per thread.
#[derive(Debug)]
pub struct Worker {
    pipeline: Pipeline,
    detector: Option<Detector>,
    scene: Option<SceneSession>,
}

impl Worker {
    /// The detector (`None` for a pipeline without a model).
    pub fn detector(&self) -> Option<&Detector> {
        self.detector.as_ref()
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// One image in memory through every stage: detection, the rules, the knowledge graph. No file I/O.
    pub fn process(&mut self, image: &RgbImage, name: &str) -> Result<ImageOutcome, PipelineError> {
        self.process_loaded(&LoadedImage::memory(image.clone()), name, 0.0)
    }

    /// One loaded input (an image in memory or a raster read window by window, with its georeferencing) through
    /// every stage. `decode_seconds` is what loading took (reported in the outcome's timings). Reads the raster's
    /// windows; writes nothing.
    pub fn process_loaded(
        &mut self,
        input: &LoadedImage,
        name: &str,
        decode_seconds: f64,
    ) -> Result<ImageOutcome, PipelineError> {
        self.process_with(input, name, decode_seconds, &Overrides::default())
    }

    /// [`Worker::process_loaded`] with per-request settings (validated: a bad value is a configuration error).
    pub fn process_with(
        &mut self,
        input: &LoadedImage,
        name: &str,
        decode_seconds: f64,
        overrides: &Overrides,
    ) -> Result<ImageOutcome, PipelineError> {
        let detected = self.detect_with(input, overrides)?;
        let rules = if overrides.is_empty() {
            true
        } else {
            overrides.apply(&self.pipeline.inner.config)?.rules.enabled
        };
        self.refine(input, name, decode_seconds, detected, rules)
    }

    /// Detection alone (the first half of [`Worker::process_with`]): the merged detections of `input` in its own
    /// pixels. A raster read window by window has its block cache released afterwards (see
    /// [`nsod_raster::Raster::release_cache`]).
    pub fn detect_with(
        &mut self,
        input: &LoadedImage,
        overrides: &Overrides,
    ) -> Result<Detected, PipelineError> {
        let applied = if overrides.is_empty() {
            None
        } else {
            Some(overrides.apply(&self.pipeline.inner.config)?)
        };
        let Some(detector) = self.detector.as_mut() else {
            return Err(PipelineError::Runtime(
                "this pipeline has no model: use process_detections".into(),
            ));
        };
        let before = input.read_counters();
        let saved = applied.map(|c| std::mem::replace(&mut detector.config, c.detect.detector()));
        let found = match &input.pixels {
            Pixels::Memory(img) => detector.detect(img),
            Pixels::Windowed(r) => detector.detect_source(r),
        };
        if let Some(c) = saved {
            detector.config = c;
        }
        if let Pixels::Windowed(r) = &input.pixels {
            r.0.release_cache();
        }
        let found = found.map_err(PipelineError::Detect)?;
        let after = input.read_counters();
        Ok(Detected {
            found,
            bytes_read: after.bytes - before.bytes,
            blocks_read: after.blocks - before.blocks,
        })
    }

    /// The stages after detection (the second half of [`Worker::process_with`]): the rules (unless `rules` is
    /// false), the knowledge graph's relations and the georeferencing.
    pub fn refine(
        &mut self,
        input: &LoadedImage,
        name: &str,
        decode_seconds: f64,
        detected: Detected,
        rules: bool,
    ) -> Result<ImageOutcome, PipelineError> {
        let Detected {
            found,
            bytes_read,
            blocks_read,
        } = detected;
        let stats = DetectStats {
            slices: found.slices,
            sliced: found.sliced,
            merge_input: found.merge_input,
            merge_seconds: found.merge_seconds,
            run_durations: found.run_durations,
            preprocess_durations: found.preprocess_durations,
            read_durations: found.read_durations,
            skipped_slices: found.skipped,
            bytes_read,
            blocks_read,
        };
        let timings = StageTimings {
            decode: decode_seconds,
            detect: found.elapsed_seconds,
            ..Default::default()
        };
        let (w, h) = input.size();
        self.after_detection(
            name,
            ImageSize::new(w, h),
            found.detections,
            stats,
            timings,
            (input.georef.as_ref(), rules),
        )
    }

    /// The worker's detector, for the pipelined runner (which takes it out for the run's length).
    pub(crate) fn take_detector(&mut self) -> Option<Detector> {
        self.detector.take()
    }

    pub(crate) fn put_detector(&mut self, d: Option<Detector>) {
        if d.is_some() {
            self.detector = d;
        }
    }

    /// Which execution providers ran this worker's model (from its session's first run; `None` before it).
    pub fn placements(&self) -> Option<&Result<Vec<nsod_detect::Placement>, String>> {
        self.detector.as_ref().and_then(|d| d.model.placements())
    }

    /// A flag a signal handler sets: detection stops between batches of slices and the image ends with
    /// [`PipelineError::is_interrupted`].
    pub fn set_interrupt(&mut self, flag: Arc<std::sync::atomic::AtomicBool>) {
        if let Some(d) = self.detector.as_mut() {
            d.interrupt = Some(flag);
        }
    }

    /// Detection only, on the slices of `input` that start in `tile` (one window of a raster split across shards):
    /// their detections unmerged, with [`nsod_detect::ImageDetections::groups`] saying which slice found which.
    pub fn detect_tile(
        &mut self,
        input: &LoadedImage,
        tile: nsod_detect::Region,
    ) -> Result<nsod_detect::ImageDetections, PipelineError> {
        let Some(detector) = self.detector.as_mut() else {
            return Err(PipelineError::Runtime(
                "this pipeline has no model: it cannot run a window".into(),
            ));
        };
        detector.tile = Some(tile);
        let found = match &input.pixels {
            Pixels::Memory(img) => detector.detect(img),
            Pixels::Windowed(r) => detector.detect_source(r),
        };
        detector.tile = None;
        found.map_err(PipelineError::Detect)
    }

    /// The windows of one image ([`Worker::detect_tile`]'s groups and detections) merged as one process would
    /// have merged all its slices, then the rules, the knowledge graph and the georeferencing: the image's outcome.
    pub fn process_windows(
        &mut self,
        name: &str,
        size: ImageSize,
        windows: Vec<nsod_detect::WindowDetections>,
        georef: Option<&GeoRef>,
    ) -> Result<ImageOutcome, PipelineError> {
        let Some(detector) = self.detector.as_ref() else {
            return Err(PipelineError::Runtime(
                "this pipeline has no model: it cannot merge windows".into(),
            ));
        };
        let t = Instant::now();
        let (regions, merge) = detector.regions(size.width, size.height);
        let merge_input = windows.iter().map(|w| w.1.len()).sum();
        let detections =
            nsod_detect::merge_groups(windows, merge, &detector.config).map_err(|m| {
                PipelineError::Detect(nsod_detect::DetectError::Output(format!("{name}: {m}")))
            })?;
        let merge_seconds = t.elapsed().as_secs_f64();
        let stats = DetectStats {
            slices: regions.len(),
            sliced: merge,
            merge_input,
            merge_seconds,
            ..Default::default()
        };
        let timings = StageTimings {
            detect: merge_seconds,
            ..Default::default()
        };
        self.after_detection(name, size, detections, stats, timings, (georef, true))
    }

    /// The stages after detection on given detections (`nsod symbolic`, `nsod kg`, merged shards).
    pub fn process_detections(
        &mut self,
        name: &str,
        size: ImageSize,
        detections: Vec<Detection>,
    ) -> ImageOutcome {
        self.after_detection(
            name,
            size,
            detections,
            DetectStats::default(),
            StageTimings::default(),
            (None, true),
        )
        .expect("no georeferencing, no error")
    }

    fn after_detection(
        &mut self,
        name: &str,
        size: ImageSize,
        detections: Vec<Detection>,
        detect: DetectStats,
        mut timings: StageTimings,
        (georef, rules_on): (Option<&GeoRef>, bool),
    ) -> Result<ImageOutcome, PipelineError> {
        let inner = &self.pipeline.inner;
        let (detections, rules) = match inner.rules.as_ref().filter(|_| rules_on) {
            Some(rb) => {
                let t = Instant::now();
                let ctx = ImageContext {
                    width: size.width,
                    height: size.height,
                    // --gsd wins over the raster's own.
                    gsd: inner.config.rules.gsd.or(georef.and_then(|g| g.gsd)),
                };
                let (adjustment, error) = rb.refine(self.scene.as_mut(), &detections, &ctx);
                let seconds = t.elapsed().as_secs_f64();
                timings.symbolic = seconds;
                let mut refined = detections.clone();
                for (d, &s) in refined.iter_mut().zip(&adjustment.scores) {
                    d.score = s;
                }
                refined.sort_by(|a, b| b.score.total_cmp(&a.score));
                let scene = self.scene.as_ref().map(|_| SceneQuery {
                    seconds,
                    error: error
                        .as_ref()
                        .map(|e| (e.kind().to_owned(), error_chain(e))),
                });
                (
                    refined,
                    Some(RulesOutcome {
                        raw: detections,
                        adjustment,
                        scene,
                    }),
                )
            }
            None => (detections, None),
        };
        let relations = inner.config.kg.enabled.then(|| {
            let t = Instant::now();
            let edges = relations(&detections, &inner.relation_params, inner.kg_pairs.as_ref());
            timings.graph = t.elapsed().as_secs_f64();
            edges
        });
        let geo = match georef {
            Some(g) => Some(geo(name, g, &detections, rules.as_ref())?),
            None => None,
        };
        Ok(ImageOutcome {
            image: name.to_owned(),
            size,
            detections,
            rules,
            relations,
            detect,
            timings,
            geo,
        })
    }
}

/// The detections on the map: per final detection its polygons, its score before the rules and the rules that
/// changed it.
fn geo(
    name: &str,
    georef: &GeoRef,
    detections: &[Detection],
    rules: Option<&RulesOutcome>,
) -> Result<ImageGeo, PipelineError> {
    let (raw_scores, why): (Vec<f32>, Vec<Vec<String>>) = match rules {
        None => (detections.iter().map(|d| d.score).collect(), Vec::new()),
        Some(r) => {
            let order = r.refined_order();
            let raw = order.iter().map(|&i| r.raw[i].score).collect();
            let why = r.rules_per_refined(&order);
            (raw, why)
        }
    };
    let footprints = nsod_raster::georef::footprints(georef, detections, &raw_scores, why)
        .map_err(|message| PipelineError::Georef {
            image: name.to_owned(),
            message,
        })?;
    Ok(ImageGeo {
        georef: georef.clone(),
        footprints,
    })
}

/// The relations of the knowledge graph between `dets`, for every class pair or the allowed ones.
pub fn relations(
    dets: &[Detection],
    params: &RelationParams,
    pairs: Option<&HashSet<(String, String)>>,
) -> Vec<RelationEdge> {
    match pairs {
        None => extract(dets, params, |_, _| true),
        Some(allowed) => {
            let atoms: Vec<String> = dets.iter().map(|d| class_atom(&d.class_name)).collect();
            extract(dets, params, |s, o| {
                let (a, b) = (&atoms[s], &atoms[o]);
                let key = if a <= b {
                    (a.clone(), b.clone())
                } else {
                    (b.clone(), a.clone())
                };
                allowed.contains(&key)
            })
        }
    }
}

/// `detect.rect = "on"` needs a model of dynamic height and width, and IoBinding's fixed-size tensors cannot take
/// minimum rectangles: both refused before any work, naming the model.
fn check_rect(config: &PipelineConfig, info: &ModelInfo) -> Result<(), ConfigError> {
    let (h, w) = info.input_hw;
    if config.detect.rect == Rect::On && !info.dynamic_hw {
        return Err(ConfigError::Invalid {
            key: "detect.rect",
            message: format!(
                "on needs a model of dynamic height and width; {} takes {w} x {h} only (use auto or off)",
                info.path.display()
            ),
        });
    }
    if config.io_binding == IoMode::Bound && rect_stride(info, &config.detect.detector()).is_some()
    {
        return Err(ConfigError::Invalid {
            key: "io_binding",
            message: format!(
                "on binds inputs of {w} x {h}, but {} runs minimum rectangles (detect.rect {}): use --rect off with --io-binding on",
                info.path.display(),
                config.detect.rect
            ),
        });
    }
    Ok(())
}
