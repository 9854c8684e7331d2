//! `nsod serve`: configuration, runtime and pipeline as `nsod infer` builds them, then the HTTP service of
//! nsod-serve until SIGTERM/SIGINT.

use crate::cli::{GlobalArgs, ServeArgs};
use crate::infer::{config_error, config_message, pipeline_message};
use nsod_pipeline::{Pipeline, PipelineConfig};
use nsod_runtime::Runtime;
use nsod_serve::{ServeConfig, Server};
use nsod_telemetry::{InferMetrics, Telemetry};
use std::process::ExitCode;
use std::sync::Arc;

/// A token from a file (trimmed); an empty or unreadable file is an error.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let t = t.trim().to_owned();
    if t.is_empty() {
        return Err(format!("{}: the token file is empty", path.display()));
    }
    Ok(t)
}

pub fn run(global: &GlobalArgs, a: &ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &a.config {
        Some(p) => match PipelineConfig::from_file(p) {
            Ok(c) => c,
            Err(e) => return config_error(config_message(&e)),
        },
        None => PipelineConfig::default(),
    };
    if a.model.is_some() {
        config.model = a.model.clone();
    }
    if a.rules.is_some() {
        config.rules.file = a.rules.clone();
    }
    if a.no_symbolic {
        config.rules.enabled = false;
    }
    if let Some(d) = &a.device {
        config.device = d.clone();
    }
    if a.workers == 0 || a.workers > 256 {
        return config_error(format!("--workers {}: use 1 to 256", a.workers));
    }
    // More descriptors, more connections (the cap on open connections is taken from this limit).
    nsod_serve::conn::raise_nofile_limit();
    // The cores are shared among the workers' sessions.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    config.threads = a.threads.unwrap_or(if config.threads == 0 {
        (cores / a.workers).max(1)
    } else {
        config.threads
    });
    if config.model.is_none() {
        match crate::infer::default_model() {
            Ok(p) => config.model = Some(p),
            Err(e) => return config_error(e),
        }
    }
    if let Err(e) = config.validate() {
        return config_error(config_message(&e));
    }
    let token = match (&a.token_file, std::env::var_os("NSOD_SERVE_TOKEN")) {
        (Some(f), _) => match read_token(f) {
            Ok(t) => Some(t),
            Err(e) => return config_error(e),
        },
        (None, Some(t)) => match t.to_str().map(str::trim) {
            // Set but empty would silently turn authentication off: refused, as an empty token file is.
            Some("") => {
                return config_error(
                    "NSOD_SERVE_TOKEN is set but empty: set a token, or unset the variable to serve without one",
                );
            }
            Some(t) => Some(t.to_owned()),
            None => return config_error("NSOD_SERVE_TOKEN is not valid UTF-8"),
        },
        (None, None) => None,
    };
    let metrics_token = match &a.metrics_token_file {
        Some(f) => match read_token(f) {
            Ok(t) => Some(t),
            Err(e) => return config_error(e),
        },
        None => None,
    };
    // The service's own settings are checked before the model is loaded.
    let model_name = a
        .model_name
        .clone()
        .unwrap_or_else(|| crate::infer::model_name(&config));
    let serve = ServeConfig {
        addr: a.addr,
        model_name: model_name.clone(),
        workers: a.workers,
        queue: a.queue,
        timeout: a.timeout,
        max_body: a.max_body,
        drain: a.drain,
        token,
        metrics_token,
        header_timeout: a.header_timeout,
        body_timeout: a.body_timeout,
        max_runs_per_request: a.max_runs_per_request,
        max_uploads: a.max_uploads,
        max_connections: a.max_connections,
    };
    if let Err(e) = serve.validate() {
        return config_error(e);
    }
    let runtime = match Runtime::load(global.ort_lib.as_deref()) {
        Ok(r) => Arc::new(r),
        Err(e) => return config_error(e),
    };
    let telemetry = Telemetry::new();
    telemetry.set_build_info(
        env!("CARGO_PKG_VERSION"),
        env!("NSOD_GIT_SHA"),
        &runtime.version(),
    );
    let telemetry = Arc::new(telemetry);
    let env = crate::infer::environment(runtime)?;
    let (pipeline, built) = match Pipeline::build(&config, &env, None) {
        Ok(p) => p,
        Err(e) => return config_error(pipeline_message(&e)),
    };
    let metrics = InferMetrics::new(&telemetry, &model_name);
    metrics.model_loaded(built.model_load_seconds);
    metrics.run_began(a.workers.max(1));
    if pipeline.rules().is_some() {
        metrics.rules_loaded(built.rules_load_seconds);
    }
    crate::infer::warn_rules(&pipeline, &built);
    let server = match Server::bind(serve, pipeline, telemetry, Some(metrics)) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    crate::ui::info!(
        "nsod serve: http://{} (model {model_name}, {} workers x {} threads, queue {}; /openapi.json, /metrics)",
        server.local_addr(),
        a.workers,
        config.threads,
        a.queue
    );
    crate::ui::info!(
        "nsod serve: limits: {} connections, {} uploads of up to {} bytes, headers within {:?}, bodies within {:?}, \
         {} model runs per request, results within {:?}",
        server.max_connections(),
        server.max_uploads(),
        a.max_body,
        a.header_timeout,
        a.body_timeout,
        a.max_runs_per_request,
        a.timeout
    );
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    match server.run(shutdown) {
        Ok(true) => {
            crate::ui::info!("nsod serve: stopped; every accepted request was answered");
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            crate::ui::warning!(
                "nsod serve: stopped at the --drain deadline with requests still running"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            crate::ui::error!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
