//! What the terminal shows of a run: the progress bar, one line per failure or warning, the metrics of each image,
//! and what the closing summary reports (the rules' changes, how the model ran). Shared by every command that
//! drives the runner (`infer`, a shard, `merge`, `symbolic`, `kg`).

use nsod_pipeline::inputs::Job;
use nsod_pipeline::sink::Failure;
use nsod_pipeline::{ImageOutcome, Observer};
use nsod_telemetry::InferMetrics;

/// Progress on the terminal, metrics, and what the closing summary reports about the rules.
pub struct CliObserver {
    progress: indicatif::ProgressBar,
    metrics: Option<InferMetrics>,
    /// Confidences the rules raised and lowered, and images they changed.
    pub boosts: usize,
    pub penalties: usize,
    pub images_changed: usize,
    /// Detections the rules took below the confidence threshold.
    pub demoted: usize,
    conf: f32,
    /// Rule applications.
    changes: usize,
}

impl CliObserver {
    pub fn new(metrics: Option<InferMetrics>, conf: f32) -> Self {
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

    pub fn finish(&self) {
        self.progress.finish_and_clear();
    }

    /// Rule applications seen (each change of `report.csv`).
    pub fn rule_changes(&self) -> usize {
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
