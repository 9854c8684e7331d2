//! One session for every front end: the settings, layered and validated ([`crate::settings::layers`]), then
//! ONNX Runtime, the metrics endpoint and exports, and the pipeline (model and rule base) opened once, in that
//! order. Each command's `run` is flags → session → loop → exit code.

use crate::cli::GlobalArgs;
use crate::metrics::MetricsSession;
use crate::paths;
use nsod_pipeline::settings::{Layers, Source};
use nsod_pipeline::{
    BuildReport, Environment, Pipeline, PipelineConfig, PipelineError, error_chain,
};
use nsod_runtime::Runtime;
use nsod_telemetry::InferMetrics;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

pub use crate::ui::{config_error, fail};
/// Exit code of a run stopped by SIGINT/SIGTERM.
pub const INTERRUPTED: u8 = 130;

/// What a command needs opened.
#[derive(Debug, Default)]
pub struct Needs {
    /// A model (ONNX Runtime is loaded; the default model is used when none is set).
    pub model: bool,
    /// The metrics endpoint and exports of `[metrics]`.
    pub metrics: bool,
    /// Class names of predictions (commands without a model).
    pub names: Option<nsod_types::ClassNames>,
}

/// An open session.
#[derive(Debug)]
pub struct Session {
    pub config: PipelineConfig,
    /// Where each value came from (`run.json`'s `config_sources`).
    pub sources: BTreeMap<&'static str, Source>,
    pub pipeline: Pipeline,
    pub built: BuildReport,
    pub metrics: Option<MetricsSession>,
    /// The run's metric handles (with `Needs::metrics`).
    pub handles: Option<InferMetrics>,
    /// ONNX Runtime's version (`none` without a model).
    pub runtime_version: String,
    /// ONNX Runtime, for a second pipeline over the same library (`nsod quantize`'s check).
    pub runtime: Option<Arc<Runtime>>,
}

impl Session {
    /// Opens what `needs` asks for over the settings of `layers`. The error is one line.
    pub fn open(global: &GlobalArgs, layers: Layers, needs: Needs) -> Result<Self, String> {
        let mut sources = layers.sources();
        let mut config = layers.config;
        if needs.model && config.model.is_none() {
            config.model = Some(default_model()?);
            sources.insert("model", Source::Default);
        }
        let runtime = if needs.model {
            let r = Runtime::load(global.ort_lib.as_deref()).map_err(|e| e.to_string())?;
            for skipped in r.skipped.iter().filter(|s| s.path.is_some()) {
                crate::ui::warning!("ONNX Runtime: skipped {skipped}");
            }
            Some(Arc::new(r))
        } else {
            None
        };
        let runtime_version = runtime
            .as_ref()
            .map_or_else(|| "none".to_owned(), |r| r.version());
        let metrics = if needs.metrics {
            MetricsSession::start(&config.metrics, &runtime_version)
                .map_err(|e| format!("{e:#}"))?
        } else {
            None
        };
        let env = Environment {
            runtime: runtime.clone(),
            sandbox: sandbox().map_err(|e| format!("{e:#}"))?,
            default_rules: needs.model.then(|| paths::default_rules().0),
        };
        let (pipeline, built) = match Pipeline::build(&config, &env, needs.names) {
            Ok(p) => p,
            Err(e) => {
                if let (PipelineError::Rules(r), Some(s)) = (&e, &metrics) {
                    InferMetrics::new(&s.telemetry, "").prolog_failed(r.kind());
                }
                return Err(error_chain(&e));
            }
        };
        let model_name = config
            .model
            .as_deref()
            .and_then(|p| p.file_stem())
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        let handles = metrics
            .as_ref()
            .map(|s| InferMetrics::new(&s.telemetry, &model_name));
        if let Some(h) = &handles {
            h.model_loaded(built.model_load_seconds);
            if pipeline.rules().is_some() {
                h.rules_loaded(built.rules_load_seconds);
            }
        }
        if let Some(rb) = pipeline.rules() {
            for w in &built.rules_warnings {
                crate::ui::warning!("rules {}: {w}", rb.table.path.display());
            }
        }
        Ok(Self {
            config,
            sources,
            pipeline,
            built,
            metrics,
            handles,
            runtime_version,
            runtime,
        })
    }
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

/// Rule bases run in a sandboxed child: this binary, `nsod rules-worker`.
pub fn sandbox() -> anyhow::Result<nsod_symbolic::Sandbox> {
    use anyhow::Context;
    nsod_symbolic::Sandbox::current_exe()
        .context("cannot find the nsod executable to run the rules worker")
}

/// `--print-config`: the layers, with the model a run would use when none is set.
pub fn print_config(mut layers: nsod_pipeline::settings::Layers) -> anyhow::Result<ExitCode> {
    if layers.config.model.is_none() {
        layers.config.model = Some(crate::paths::default_model().0);
    }
    print!("{}", crate::settings::print_config(&layers));
    Ok(ExitCode::SUCCESS)
}
