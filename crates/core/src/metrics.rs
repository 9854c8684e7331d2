//! Wiring telemetry into a long-running subcommand: the /metrics server, Pushgateway and textfile exports,
//! lingering after a batch run, and SIGINT/SIGTERM handling.

use anyhow::Context;
use clap::Args;
use nsod_telemetry::Telemetry;
use nsod_telemetry::export::{ExportConfig, Exporter, push_url};
use nsod_telemetry::server::MetricsServer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Address of the /metrics endpoint (0.0.0.0:PORT to listen on every interface; port 0 picks a free port).
    #[arg(
        long,
        default_value = "127.0.0.1:8000",
        value_name = "ADDR",
        env = "NSOD_METRICS_ADDR"
    )]
    pub metrics_addr: SocketAddr,
    /// Do not serve /metrics (exports below still work).
    #[arg(long)]
    pub no_metrics: bool,
    /// Keep serving /metrics this long after the run (e.g. 30s, 5m), so Prometheus scrapes the final values.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub metrics_linger: Option<Duration>,
    /// Pushgateway base URL (e.g. http://127.0.0.1:9091): push at the end and every --export-interval.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Pushgateway job label.
    #[arg(long, default_value = "nsod", value_name = "NAME")]
    pub push_job: String,
    /// Pushgateway instance label (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub push_instance: Option<String>,
    /// node_exporter textfile (e.g. /var/lib/node_exporter/textfile/nsod.prom), written atomically at the end and
    /// every --export-interval.
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,
    /// Period of Pushgateway and textfile exports during the run.
    #[arg(long, default_value = "15s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub export_interval: Duration,
}

/// The `[metrics]` table of a run configuration file: the same settings as the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    addr: Option<SocketAddr>,
    enabled: Option<bool>,
    linger: Option<String>,
    pushgateway: Option<String>,
    push_job: Option<String>,
    push_instance: Option<String>,
    textfile: Option<PathBuf>,
    export_interval: Option<String>,
}

impl MetricsArgs {
    /// Takes the `[metrics]` settings of a configuration file for every flag not given on the command line (or in
    /// its environment variable).
    pub fn overlay(&mut self, table: &toml::Table, m: &clap::ArgMatches) -> anyhow::Result<()> {
        if table.is_empty() {
            return Ok(());
        }
        let f: MetricsFile = table
            .clone()
            .try_into()
            .context("[metrics] of the configuration file")?;
        let given = |id: &str| {
            matches!(
                m.value_source(id),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            )
        };
        let duration = |key: &str, v: &str| {
            humantime::parse_duration(v).with_context(|| format!("[metrics] {key} = {v:?}"))
        };
        if let Some(v) = f.addr.filter(|_| !given("metrics_addr")) {
            self.metrics_addr = v;
        }
        if let Some(v) = f.enabled.filter(|_| !given("no_metrics")) {
            self.no_metrics = !v;
        }
        if let Some(v) = f.linger.filter(|_| !given("metrics_linger")) {
            self.metrics_linger = Some(duration("linger", &v)?);
        }
        if let Some(v) = f.pushgateway.filter(|_| !given("pushgateway")) {
            self.pushgateway = Some(v);
        }
        if let Some(v) = f.push_job.filter(|_| !given("push_job")) {
            self.push_job = v;
        }
        if let Some(v) = f.push_instance.filter(|_| !given("push_instance")) {
            self.push_instance = Some(v);
        }
        if let Some(v) = f.textfile.filter(|_| !given("metrics_textfile")) {
            self.metrics_textfile = Some(v);
        }
        if let Some(v) = f.export_interval.filter(|_| !given("export_interval")) {
            self.export_interval = duration("export_interval", &v)?;
        }
        Ok(())
    }
}

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
    pub fn start(args: &MetricsArgs, ort_version: &str) -> anyhow::Result<Option<Self>> {
        if args.no_metrics && args.pushgateway.is_none() && args.metrics_textfile.is_none() {
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
        let server = if args.no_metrics {
            None
        } else {
            let s = MetricsServer::start(args.metrics_addr, telemetry.clone())?;
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
        let exporter = (push.is_some() || args.metrics_textfile.is_some()).then(|| {
            let config = ExportConfig {
                push_url: push,
                textfile: args.metrics_textfile.clone(),
                interval: args.export_interval,
            };
            Exporter::start(telemetry.clone(), config, |w| {
                crate::ui::warning!("metrics export: {w}")
            })
        });
        if let Some(dir) = args
            .metrics_textfile
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
            linger: args.metrics_linger,
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
