//! `nsod infer`: settings → session → the images through the pipeline into the run folder → summary, exit code.
//! Everything per image lives in nsod-pipeline; the set-up is [`crate::session`].

use crate::cli::{GlobalArgs, InferArgs};
use crate::session::{INTERRUPTED, Needs, Session, config_error};
use nsod_pipeline::inputs::{self, Job};
use nsod_pipeline::layout;
use nsod_pipeline::sink::Failure;
use nsod_pipeline::{
    ImageOutcome, Observer, PipelineConfig, RunDirOptions, RunDirSink, error_chain,
};
use nsod_telemetry::InferMetrics;
use std::process::ExitCode;

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
    /// Rule applications.
    changes: usize,
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
            changes: 0,
        }
    }

    pub(crate) fn finish(&self) {
        self.progress.finish_and_clear();
    }

    /// Rule applications seen (each change of `report.csv`).
    pub(crate) fn rule_changes(&self) -> usize {
        self.changes
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
            self.changes += changes;
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
    let rules = config.rules.enabled && out.join(layout::REPORT_CSV).exists();
    let mut rows: Vec<(&str, &str)> = vec![(
        layout::PREDICTIONS,
        if rules {
            "detections per image, refined by the rules (predictions_raw.jsonl: the detector's own)"
        } else {
            "detections per image"
        },
    )];
    if rules {
        rows.push((
            layout::REPORT_CSV,
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
        layout::MANIFEST,
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

/// `--print-config`: the layers, with the model a run would use when none is set.
pub fn print_config(mut layers: nsod_pipeline::settings::Layers) -> anyhow::Result<ExitCode> {
    if layers.config.model.is_none() {
        layers.config.model = Some(crate::paths::default_model().0);
    }
    print!("{}", crate::settings::print_config(&layers));
    Ok(ExitCode::SUCCESS)
}

pub fn run(global: &GlobalArgs, a: &InferArgs) -> anyhow::Result<ExitCode> {
    if a.plan.is_some() {
        return crate::shard::run_shard(global, a);
    }
    let interrupted = crate::metrics::install_signal_flag();
    let layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if a.config.print_config {
        return print_config(layers);
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
    let session = match Session::open(
        global,
        layers,
        Needs {
            model: true,
            metrics: true,
            names: None,
        },
    ) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let Session {
        config,
        sources,
        pipeline,
        metrics,
        handles,
        ..
    } = session;
    let out = config.output.out.clone();
    let mut sink = match RunDirSink::open(&out, RunDirOptions::infer(&config), &pipeline) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
    };
    sink.set_sources(sources);
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
    let mut observer = CliObserver::new(handles.clone(), config.detect.conf);
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
    if let (Some(h), Some(g)) = (&handles, summary.graph) {
        h.facts_written(g.facts);
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
    if summary.interrupted && out.join(layout::partial(layout::PREDICTIONS)).exists() {
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
