//! Wiring telemetry into a long-running subcommand: the /metrics server, Pushgateway and textfile exports,
//! lingering after a batch run, and SIGINT/SIGTERM handling.

use anyhow::Context;
use nsod_pipeline::config::MetricsSettings;
use nsod_telemetry::Telemetry;
use nsod_telemetry::export::{ExportConfig, Exporter, push_url};
use nsod_telemetry::server::MetricsServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// SIGINT/SIGTERM set this flag; a second signal ends the process at once (exit 130).
pub fn install_signal_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration only fails for forbidden signals, which these are not.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Telemetry of one run with its server and exporter.
#[derive(Debug)]
pub struct MetricsSession {
    pub telemetry: Arc<Telemetry>,
    server: Option<MetricsServer>,
    exporter: Option<Exporter>,
    linger: Option<Duration>,
}

impl MetricsSession {
    /// Starts what `args` asks for; `None` when telemetry is entirely off.
    pub fn start(args: &MetricsSettings, ort_version: &str) -> anyhow::Result<Option<Self>> {
        if !args.enabled && args.pushgateway.is_none() && args.textfile.is_none() {
            return Ok(None);
        }
        let telemetry = Telemetry::new();
        telemetry.set_build_info(env!("CARGO_PKG_VERSION"), env!("NSOD_GIT_SHA"), ort_version);
        let telemetry = Arc::new(telemetry);
        // NVML opens in the background; its verdict is one info line whenever it comes.
        let t = telemetry.clone();
        let _ = std::thread::Builder::new()
            .name("nsod-gpu-note".into())
            .spawn(move || {
                if let Some(note) = t.gpu_note() {
                    crate::ui::info!("info: no GPU metrics: {note}");
                }
            });
        let server = if !args.enabled {
            None
        } else {
            let s = MetricsServer::start(args.addr, telemetry.clone())?;
            crate::ui::info!("metrics: http://{}/metrics", s.local_addr());
            Some(s)
        };
        let push = args.pushgateway.as_ref().map(|base| {
            push_url(
                base,
                &args.push_job,
                &args.push_instance.clone().unwrap_or_else(host_name),
            )
        });
        let exporter = (push.is_some() || args.textfile.is_some()).then(|| {
            let config = ExportConfig {
                push_url: push,
                textfile: args.textfile.clone(),
                interval: args.export_interval,
            };
            Exporter::start(telemetry.clone(), config, |w| {
                crate::ui::warning!("metrics export: {w}")
            })
        });
        if let Some(dir) = args
            .textfile
            .as_ref()
            .and_then(|p| p.parent())
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(Some(Self {
            telemetry,
            server,
            exporter,
            linger: args.linger,
        }))
    }

    /// `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        if let Some(s) = &self.server {
            s.set_ready(true);
        }
    }

    /// Final exports, then serving for the linger time (or until SIGINT/SIGTERM), then a graceful shutdown.
    pub fn finish(mut self, interrupted: &AtomicBool) {
        if let Some(e) = self.exporter.take() {
            e.finish();
        }
        if let (Some(server), Some(linger)) = (&self.server, self.linger)
            && !interrupted.load(Ordering::SeqCst)
        {
            crate::ui::info!(
                "metrics: run finished; serving http://{}/metrics for {} more (Ctrl-C to stop)",
                server.local_addr(),
                humantime::format_duration(linger)
            );
            let end = Instant::now() + linger;
            while Instant::now() < end && !interrupted.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}
