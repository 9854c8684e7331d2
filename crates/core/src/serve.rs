//! `nsod serve`: configuration, runtime and pipeline as `nsod infer` builds them, then the HTTP service of
//! nsod-serve until SIGTERM/SIGINT.

use crate::cli::{GlobalArgs, ServeArgs};
use crate::session::{Needs, Session, config_error};
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
    let mut layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    // The cores are shared among the workers' sessions.
    if layers.config.threads == 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        layers.config.threads = (cores / layers.config.serve.workers.max(1)).max(1);
    }
    // Between requests a spinning session only burns the cores (and a container's CPU quota) the other workers need.
    if layers.config.spinning == nsod_detect::Spinning::Auto {
        layers.config.spinning = nsod_detect::Spinning::Off;
    }
    if a.config.print_config {
        return crate::session::print_config(layers);
    }
    // More descriptors, more connections (the cap on open connections is taken from this limit).
    nsod_serve::conn::raise_nofile_limit();
    let v = layers.config.serve.clone();
    let token = match (&v.token_file, std::env::var_os("NSOD_SERVE_TOKEN")) {
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
    let metrics_token = match &v.metrics_token_file {
        Some(f) => match read_token(f) {
            Ok(t) => Some(t),
            Err(e) => return config_error(e),
        },
        None => None,
    };
    // The service's own settings are checked before the model is loaded.
    let model_name = v.model_name.clone().unwrap_or_else(|| {
        let model = layers
            .config
            .model
            .clone()
            .unwrap_or_else(|| crate::paths::default_model().0);
        model
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    });
    let serve = ServeConfig {
        addr: v.addr,
        model_name: model_name.clone(),
        workers: v.workers,
        queue: v.queue,
        timeout: v.timeout,
        max_body: v.max_body,
        drain: v.drain,
        token,
        metrics_token,
        header_timeout: v.header_timeout,
        body_timeout: v.body_timeout,
        max_runs_per_request: v.max_runs_per_request,
        max_uploads: v.max_uploads,
        max_connections: v.max_connections,
    };
    if let Err(e) = serve.validate() {
        return config_error(e);
    }
    let session = match Session::open(
        global,
        layers,
        Needs {
            model: true,
            ..Needs::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let telemetry = Telemetry::new();
    telemetry.set_build_info(
        env!("CARGO_PKG_VERSION"),
        env!("NSOD_GIT_SHA"),
        &session.runtime_version,
    );
    let telemetry = Arc::new(telemetry);
    let metrics = InferMetrics::new(&telemetry, &model_name);
    metrics.model_loaded(session.built.model_load_seconds);
    metrics.run_began(v.workers.max(1));
    if session.pipeline.rules().is_some() {
        metrics.rules_loaded(session.built.rules_load_seconds);
    }
    let threads = session.config.threads;
    let pipeline = session.pipeline;
    let server = match Server::bind(serve, pipeline, telemetry, Some(metrics)) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    crate::ui::info!(
        "nsod serve: http://{} (model {model_name}, {} workers x {} threads, queue {}; /openapi.json, /metrics)",
        server.local_addr(),
        v.workers,
        threads,
        v.queue
    );
    crate::ui::info!(
        "nsod serve: limits: {} connections, {} uploads of up to {} bytes, headers within {:?}, bodies within {:?}, \
         {} model runs per request, results within {:?}",
        server.max_connections(),
        server.max_uploads(),
        v.max_body,
        v.header_timeout,
        v.body_timeout,
        v.max_runs_per_request,
        v.timeout
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
