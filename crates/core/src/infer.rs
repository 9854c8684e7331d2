//! `nsod infer`: build the pipeline, run the images through it into the run folder, print the summary, exit code.
//! Everything per image lives in nsod-pipeline.

use crate::cli::{GlobalArgs, InferArgs};
use crate::metrics::MetricsSession;
use crate::paths;
use clap::parser::ValueSource;
use nsod_pipeline::inputs::{self, Job};
use nsod_pipeline::sink::Failure;
use nsod_pipeline::{
    ConfigError, Environment, ImageOutcome, Observer, Pipeline, PipelineConfig, PipelineError,
    RunDirOptions, RunDirSink, error_chain,
};
use nsod_runtime::Runtime;
use nsod_telemetry::InferMetrics;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for usage and configuration errors (clap uses 2 as well).
pub const CONFIG_ERROR: u8 = 2;
/// Exit code of a run stopped by SIGINT/SIGTERM.
pub const INTERRUPTED: u8 = 130;

/// The command-line flag of a configuration key, for messages.
fn flag_of(key: &str) -> Option<&'static str> {
    Some(match key {
        "detect.conf" => "--conf",
        "detect.iou" => "--iou",
        "detect.max_det" => "--max-det",
        "detect.slice" => "--slice",
        "detect.overlap" => "--overlap",
        "detect.merge_threshold" => "--merge-threshold",
        "detect.batch" => "--batch",
        "rules.gsd" => "--gsd",
        "threads" => "--threads",
        "decode_threads" => "--decode-threads",
        "device" => "--device",
        _ => return None,
    })
}

/// A configuration error as one line, naming the flag as well as the key.
pub fn config_message(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { key, message } => match flag_of(key) {
            Some(flag) => format!("{flag} ({key}): {message}"),
            None => format!("{key}: {message}"),
        },
        other => error_chain(other),
    }
}

/// A pipeline error as one line (configuration errors name their flag).
pub fn pipeline_message(e: &PipelineError) -> String {
    match e {
        PipelineError::Config(c) => config_message(c),
        other => error_chain(other),
    }
}

/// Defaults, then `--config`, then the flags given on the command line.
pub fn configuration(a: &InferArgs, m: &clap::ArgMatches) -> Result<PipelineConfig, String> {
    let mut c = match &a.config {
        Some(p) => PipelineConfig::from_file(p).map_err(|e| config_message(&e))?,
        None => PipelineConfig::default(),
    };
    let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    if given("model") {
        c.model = a.model.clone();
    }
    if given("names") {
        c.names = a.names.clone();
    }
    if given("out") {
        c.output.out = a.out.clone();
    }
    macro_rules! take {
        ($($id:literal => $field:expr, $value:expr;)*) => {
            $(if given($id) { $field = $value; })*
        };
    }
    take! {
        "conf" => c.detect.conf, a.conf;
        "iou" => c.detect.iou, a.iou;
        "max_det" => c.detect.max_det, a.max_det;
        "slice" => c.detect.slice, a.slice;
        "overlap" => c.detect.overlap, a.overlap;
        "merge" => c.detect.merge, a.merge;
        "match_metric" => c.detect.match_metric, a.match_metric;
        "merge_threshold" => c.detect.merge_threshold, a.merge_threshold;
        "merge_geometry" => c.detect.merge_geometry, a.merge_geometry;
        "batch" => c.detect.batch, a.batch;
        "device" => c.device, a.device.clone();
        "threads" => c.threads, a.threads;
        "schedule" => c.schedule, a.schedule;
        "io_binding" => c.io_binding, a.io_binding;
        "decode_threads" => c.decode_threads, a.decode_threads;
        "rules" => c.rules.file, a.rules.clone();
        "gsd" => c.rules.gsd, a.gsd;
        "kg_pairs" => c.kg.pairs, a.kg_pairs.clone();
        "bands" => c.raster.bands, a.bands.clone();
        "scale" => c.raster.scale, a.scale;
        "window_above" => c.raster.window_above_pixels, a.window_above;
        "max_raster_pixels" => c.raster.max_pixels, a.max_raster_pixels;
    }
    if a.no_full_pass {
        c.detect.full_pass = false;
    }
    if a.class_agnostic {
        c.detect.class_agnostic = true;
    }
    if a.no_symbolic {
        c.rules.enabled = false;
    }
    if a.kg {
        c.kg.enabled = true;
    }
    if a.skip_existing {
        c.output.skip_existing = true;
    }
    if a.save_vis {
        c.output.save_vis = true;
    }
    c.validate().map_err(|e| config_message(&e))?;
    Ok(c)
}

/// Progress on the terminal, metrics, and what the closing summary reports about the rules.
pub(crate) struct CliObserver {
    progress: indicatif::ProgressBar,
    metrics: Option<InferMetrics>,
    /// Confidences the rules raised and lowered, and images they changed.
    boosts: usize,
    penalties: usize,
    images_changed: usize,
    /// Detections the rules took below the confidence threshold.
    demoted: usize,
    conf: f32,
}

impl CliObserver {
    pub(crate) fn new(metrics: Option<InferMetrics>, conf: f32) -> Self {
        Self {
            progress: progress_bar(),
            metrics,
            boosts: 0,
            penalties: 0,
            images_changed: 0,
            demoted: 0,
            conf,
        }
    }

    pub(crate) fn finish(&self) {
        self.progress.finish_and_clear();
    }
}

impl Observer for CliObserver {
    fn finishing(&mut self) {
        crate::release_freed_memory();
    }
    fn released(&mut self) {
        // A large raster's block cache was freed: give it back before its rules, graph and outputs.
        crate::release_freed_memory();
    }
    fn begin(&mut self, jobs: usize, _kept: usize) {
        self.progress.set_length(jobs as u64);
        if let Some(m) = &self.metrics {
            m.run_began(1);
        }
    }
    fn started(&mut self, _job: &Job) {
        if let Some(m) = &self.metrics {
            m.image_started();
        }
    }
    fn finished(&mut self, outcome: &ImageOutcome, write_seconds: f64) {
        self.progress.inc(1);
        if let Some(m) = &self.metrics {
            m.record(outcome);
            m.written(write_seconds);
        }
        let mut changes = 0;
        if let Some(r) = &outcome.rules {
            changes = r.adjustment.changes.len();
            for c in &r.adjustment.changes {
                match c.action {
                    "BOOST" => self.boosts += 1 + usize::from(c.both),
                    _ => self.penalties += 1,
                }
            }
            self.images_changed += usize::from(changes > 0);
            self.demoted += outcome
                .detections
                .iter()
                .filter(|d| d.score < self.conf)
                .count();
        }
        if crate::ui::is_verbose() {
            let t = &outcome.timings;
            self.progress.suspend(|| {
                crate::ui::verbose!(
                    "{}: {} detections, {changes} rule changes ({:.3} s: decode {:.3}, detect {:.3}, rules {:.3}, graph {:.3})",
                    outcome.image,
                    outcome.detections.len(),
                    t.decode + t.detect + t.symbolic + t.graph,
                    t.decode,
                    t.detect,
                    t.symbolic,
                    t.graph
                )
            });
        }
    }
    fn failed(&mut self, f: &Failure) {
        self.progress.inc(1);
        let path = f.path.display().to_string();
        self.progress.suspend(|| {
            if f.message.starts_with(&path) {
                crate::ui::error!("{}", f.message)
            } else {
                crate::ui::error!("{path}: {}", f.message)
            }
        });
        if let Some(m) = &self.metrics {
            m.failed(f.stage, f.error_type);
        }
    }
    fn warning(&mut self, image: &str, message: &str) {
        self.progress
            .suspend(|| crate::ui::warning!("{image}: {message}"));
    }
    fn interrupted(&mut self, done: usize) {
        self.progress.suspend(|| {
            crate::ui::info!(
                "interrupted: stopping after {done} images; the outputs of finished images are kept"
            )
        });
    }
}

/// A progress bar with images/s and ETA on a terminal; hidden when stderr is not a terminal.
fn progress_bar() -> indicatif::ProgressBar {
    if crate::ui::is_quiet() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Where the outputs are, one line each (only those this run wrote).
fn outputs_summary(out: &std::path::Path, config: &PipelineConfig) {
    if crate::ui::is_quiet() {
        return;
    }
    let rules = config.rules.enabled && out.join("report.csv").exists();
    let mut rows: Vec<(&str, &str)> = vec![(
        "predictions.jsonl",
        if rules {
            "detections per image, refined by the rules (predictions_raw.jsonl: the detector's own)"
        } else {
            "detections per image"
        },
    )];
    if rules {
        rows.push((
            "report.csv",
            "every rule application: rule, objects, confidences before and after, reason",
        ));
    }
    if config.output.save_vis {
        rows.push(("vis/", "the images with their detections drawn"));
    }
    if config.kg.enabled {
        rows.push((
            "kg.graphml",
            "knowledge graph of spatial relations (also kg.dot, kg.json, kg_facts.pl, kg_svg/)",
        ));
    }
    rows.push((
        "labels/",
        "YOLO label files; coco_results.json for COCO tools",
    ));
    rows.push((
        "run.json",
        "manifest: model, rules, configuration, counts, failures",
    ));
    let s = crate::ui::EMPHASIS;
    anstream::println!("outputs in {s}{}{s:#}:", out.display());
    for (name, what) in rows {
        anstream::println!("  {:<18} {what}", name);
    }
}

/// What ran the model, and how busy it was: `model: CPUExecutionProvider ran all 233 nodes (cpu); 12 runs took
/// 3.41 s, 93% of the run (pipelined, batch 8)`.
pub fn model_line(m: &nsod_pipeline::sink::ModelRun, device: &str) -> String {
    let providers = match &m.placements {
        Some(Ok(p)) if p.len() == 1 => format!("{} ran all {} nodes", p[0].provider, p[0].nodes),
        Some(Ok(p)) => {
            let total: usize = p.iter().map(|p| p.nodes).sum();
            let parts: Vec<String> = p
                .iter()
                .map(|p| format!("{} {}", p.provider, p.nodes))
                .collect();
            format!("{total} nodes ran on {}", parts.join(", "))
        }
        Some(Err(e)) => format!("providers unknown ({e})"),
        None => "no run".into(),
    };
    format!(
        "model: {providers} ({device}); {} runs took {:.2} s, {:.0}% of the run ({}, batch {})",
        m.runs,
        m.run_seconds,
        100.0 * m.busy_ratio,
        m.schedule,
        m.batch
    )
}

/// The model file's stem: its name in metrics and in the serving API.
pub fn model_name(config: &PipelineConfig) -> String {
    config
        .model
        .as_deref()
        .and_then(|p| p.file_stem())
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

/// The default model, or the one-line error saying how to restore it.
pub fn default_model() -> Result<std::path::PathBuf, String> {
    let (p, ok) = paths::default_model();
    if ok {
        Ok(p)
    } else {
        Err(format!(
            "no model given and the default {} is missing: pass --model, or restore it with git checkout -- models/yolov8n-obb.onnx",
            p.display()
        ))
    }
}

/// Where the pipeline finds ONNX Runtime, the rules worker and the default rule base.
pub fn environment(runtime: Arc<Runtime>) -> anyhow::Result<Environment> {
    Ok(Environment {
        runtime: Some(runtime),
        sandbox: crate::symbolic::sandbox()?,
        default_rules: Some(paths::default_rules().0),
    })
}

/// Warns about each problem `Pipeline::build` found in the rule base.
pub fn warn_rules(pipeline: &Pipeline, built: &nsod_pipeline::BuildReport) {
    if let Some(rb) = pipeline.rules() {
        for w in &built.rules_warnings {
            crate::ui::warning!("rules {}: {w}", rb.table.path.display());
        }
    }
}

pub fn config_error(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    crate::ui::error!("{message}");
    Ok(ExitCode::from(CONFIG_ERROR))
}

pub fn run(global: &GlobalArgs, a: &InferArgs, m: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    if a.plan.is_some() {
        return crate::shard::run_shard(global, a, m);
    }
    let interrupted = crate::metrics::install_signal_flag();
    let mut config = match configuration(a, m) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let mut metrics_args = a.metrics.clone();
    if let Err(e) = metrics_args.overlay(&config.metrics, m) {
        return config_error(format!("{e:#}"));
    }
    if config.model.is_none() {
        config.model = match default_model() {
            Ok(p) => Some(p),
            Err(_) if a.print_config => Some(paths::default_model().0),
            Err(e) => return config_error(e),
        };
    }
    if a.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let (jobs, skipped) = match inputs::collect(&a.inputs, nsod_detect::is_image_path) {
        Ok(j) => j,
        Err(e) => return config_error(error_chain(&e)),
    };
    // A file named on the command line that is not an image is worth a warning; other files in the input
    // folders (labels, READMEs) are expected and only counted.
    let (named, in_folders): (Vec<_>, Vec<_>) = skipped
        .0
        .iter()
        .partition(|f| a.inputs.iter().any(|i| i == *f));
    for f in &named {
        crate::ui::warning!("{}: skipped (not an image file extension)", f.display());
    }
    if !in_folders.is_empty() {
        crate::ui::info!(
            "{} files in the input folders are not images and were skipped{}",
            in_folders.len(),
            if crate::ui::is_verbose() {
                ":"
            } else {
                " (--verbose lists them)"
            }
        );
        for f in &in_folders {
            crate::ui::verbose!("  {}", f.display());
        }
    }
    let runtime = match Runtime::load(global.ort_lib.as_deref()) {
        Ok(r) => Arc::new(r),
        Err(e) => return config_error(e),
    };
    for skipped in runtime.skipped.iter().filter(|s| s.path.is_some()) {
        crate::ui::warning!("ONNX Runtime: skipped {skipped}");
    }
    let metrics = match MetricsSession::start(&metrics_args, &runtime.version()) {
        Ok(m) => m,
        Err(e) => return config_error(format!("{e:#}")),
    };
    let env = environment(runtime)?;
    let (pipeline, built) = match Pipeline::build(&config, &env, None) {
        Ok(p) => p,
        Err(e) => {
            if let (PipelineError::Rules(r), Some(s)) = (&e, &metrics) {
                InferMetrics::new(&s.telemetry, "").prolog_failed(r.kind());
            }
            return config_error(pipeline_message(&e));
        }
    };
    let model_name = model_name(&config);
    let handles = metrics
        .as_ref()
        .map(|s| InferMetrics::new(&s.telemetry, &model_name));
    if let Some(h) = &handles {
        h.model_loaded(built.model_load_seconds);
        if pipeline.rules().is_some() {
            h.rules_loaded(built.rules_load_seconds);
        }
    }
    warn_rules(&pipeline, &built);
    let out = config.output.out.clone();
    let mut sink = match RunDirSink::open(&out, RunDirOptions::infer(&config), &pipeline) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
    };
    for w in &sink.warnings {
        crate::ui::warning!("{w}");
    }
    if config.output.skip_existing {
        let kept = nsod_pipeline::Sink::completed(&sink);
        let todo = jobs.iter().filter(|j| !kept.contains(&j.name)).count();
        println!(
            "{} images kept from earlier runs, {todo} to process",
            kept.len()
        );
    }
    let mut worker = match pipeline.worker() {
        Ok(w) => w,
        Err(e) => return config_error(error_chain(&e)),
    };
    worker.set_interrupt(interrupted.clone());
    if let Some(s) = &metrics {
        s.set_ready();
    }
    let mut observer = CliObserver {
        progress: progress_bar(),
        metrics: handles.clone(),
        boosts: 0,
        penalties: 0,
        images_changed: 0,
        demoted: 0,
        conf: config.detect.conf,
    };
    let result = nsod_pipeline::run(
        &mut worker,
        jobs,
        &a.inputs,
        &mut sink,
        &mut observer,
        &interrupted,
    );
    observer.progress.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            crate::ui::error!("{}", error_chain(&e));
            if let Some(s) = metrics {
                s.finish(&interrupted);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if let (Some(h), true) = (&handles, config.kg.enabled) {
        // kg_facts.pl: every (relation, subject, object) fact, the class counts and the image count.
        if let Ok(text) = std::fs::read_to_string(out.join("kg_facts.pl")) {
            h.facts_written(text.lines().filter(|l| !l.starts_with('%')).count() as u64);
        }
    }
    let total: usize = summary.per_class.values().sum();
    let secs = summary.seconds;
    crate::ui::summary!(
        "{} images processed, {} failed, {total} detections{} in {secs:.2} s ({:.2} images/s)",
        summary.processed,
        summary.failed,
        if summary.kept > 0 {
            format!(" (with {} images kept)", summary.kept)
        } else {
            String::new()
        },
        summary.processed as f64 / secs.max(1e-9),
    );
    for (class, n) in &summary.per_class {
        crate::ui::summary!("  {class}: {n}");
    }
    if let Some(m) = &summary.model {
        crate::ui::summary!("{}", model_line(m, &config.device));
        if let (true, Some(Ok(p))) = (config.device.starts_with("cuda"), &m.placements)
            && !p.iter().any(|p| p.provider.starts_with("CUDA"))
        {
            crate::ui::warning!(
                "--device {}: ONNX Runtime accepted the CUDA provider but ran no node on it",
                config.device
            );
        }
    }
    if let Some(rb) = pipeline.rules() {
        crate::ui::summary!(
            "rules {}: {} confidences raised, {} lowered, in {} images{}",
            rb.table.path.display(),
            observer.boosts,
            observer.penalties,
            observer.images_changed,
            if observer.demoted > 0 {
                format!(
                    "; {} detections now below --conf {}",
                    observer.demoted, config.detect.conf
                )
            } else {
                String::new()
            }
        );
    }
    outputs_summary(&out, &config);
    if summary.interrupted && out.join("predictions.jsonl.partial").exists() {
        eprintln!(
            "interrupted: {} already held a complete result, which is kept; this run's images are in its .partial files (resume with --skip-existing)",
            out.display()
        );
    }
    if let Some(s) = metrics {
        s.finish(&interrupted);
    }
    Ok(if summary.interrupted {
        ExitCode::from(INTERRUPTED)
    } else if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
