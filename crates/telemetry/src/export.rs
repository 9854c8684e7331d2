//! Exports for runs that end before a scrape: a Pushgateway push and a node_exporter textfile, both at the end of
//! the run and every `interval` while it lasts ([`Exporter`]).

use crate::{CLASSIC_CONTENT_TYPE, Telemetry, TelemetryError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Writes the classic exposition to `path` atomically (textfile collector format: node_exporter reads `*.prom`).
pub fn write_textfile(telemetry: &Telemetry, path: &Path) -> Result<(), TelemetryError> {
    let text = telemetry.classic();
    nsod_types::formats::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    Ok(())
}

/// The Pushgateway URL for a job and instance: `{base}/metrics/job/{job}/instance/{instance}`.
pub fn push_url(base: &str, job: &str, instance: &str) -> String {
    format!("{}/instance/{}", push_job_url(base, job), encode(instance))
}

/// The Pushgateway URL of a job's group without an instance (`{base}/metrics/job/{job}`): one group per batch
/// job, whatever machine runs it.
pub fn push_job_url(base: &str, job: &str) -> String {
    format!("{}/metrics/job/{}", base.trim_end_matches('/'), encode(job))
}

fn encode(s: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    enc(s)
}

/// PUTs the classic exposition to the Pushgateway (replacing the group's metrics).
pub fn push(telemetry: &Telemetry, url: &str) -> Result<(), TelemetryError> {
    put_classic(url, &telemetry.classic())
}

/// PUTs a classic exposition to a Pushgateway group URL, with a 10 s limit.
fn put_classic(url: &str, text: &str) -> Result<(), TelemetryError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .put(url)
        .header("Content-Type", CLASSIC_CONTENT_TYPE)
        .send(text.as_bytes())
        .map_err(|e| TelemetryError::Push {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    Ok(())
}

/// Where and how often to export.
#[derive(Debug, Clone, Default)]
pub struct ExportConfig {
    /// Full push URL (see [`push_url`]).
    pub push_url: Option<String>,
    pub textfile: Option<PathBuf>,
    pub interval: Duration,
}

/// Exports periodically on a background thread and once more in [`Exporter::finish`]. Failures are warnings
/// (returned to `warn`), never errors.
#[derive(Debug)]
pub struct Exporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    config: ExportConfig,
    telemetry: Arc<Telemetry>,
    warn: fn(&str),
}

fn export_once(t: &Telemetry, c: &ExportConfig, warn: fn(&str)) {
    if let Some(url) = &c.push_url
        && let Err(e) = push(t, url)
    {
        warn(&e.to_string());
    }
    if let Some(path) = &c.textfile
        && let Err(e) = write_textfile(t, path)
    {
        warn(&e.to_string());
    }
}

impl Exporter {
    pub fn start(telemetry: Arc<Telemetry>, config: ExportConfig, warn: fn(&str)) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let (t, c) = (telemetry.clone(), config.clone());
        let thread =
            (config.push_url.is_some() || config.textfile.is_some()) && !config.interval.is_zero();
        let thread = thread.then(|| {
            std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(c.interval) {
                    export_once(&t, &c, warn);
                }
            })
        });
        Self {
            stop: Some(tx),
            thread,
            config,
            telemetry,
            warn,
        }
    }

    /// Stops the periodic exports and exports the final state.
    pub fn finish(mut self) {
        self.stop_thread();
        export_once(&self.telemetry, &self.config, self.warn);
    }

    fn stop_thread(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls_escape_job_and_instance() {
        assert_eq!(
            push_url("http://127.0.0.1:9091/", "nsod infer", "host:1"),
            "http://127.0.0.1:9091/metrics/job/nsod%20infer/instance/host%3A1"
        );
    }

    #[test]
    fn textfile_is_the_classic_format() {
        let t = Telemetry::without_system_metrics();
        t.metrics.pipeline.nms_input.inc_by(5);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nsod.prom");
        write_textfile(&t, &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("# TYPE nsod_nms_input_detections_total counter\nnsod_nms_input_detections_total 5\n"), "{text}");
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn a_failed_push_is_an_error_naming_the_url() {
        let t = Telemetry::without_system_metrics();
        // Port 9 on loopback: nothing listens there.
        let e = push(&t, "http://127.0.0.1:9/metrics/job/nsod")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("push to http://127.0.0.1:9/metrics/job/nsod failed: "),
            "{e}"
        );
    }
}

/// The result of a finished batch run (`nsod merge`), pushed once to the Pushgateway: the series Prometheus
/// recommends for batch jobs (the last success time, what the run did), without per-run or per-shard labels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchResult {
    /// Unix time the run finished; pushed as the last success only when `failed == 0`.
    pub finished: f64,
    pub images: u64,
    pub failed: u64,
    pub detections: u64,
    pub shards: u64,
    /// The merge's own time and the shards' summed run time.
    pub merge_seconds: f64,
    pub shard_seconds: f64,
}

/// The classic exposition of a [`BatchResult`].
pub fn batch_exposition(r: &BatchResult) -> String {
    use prometheus_client::metrics::gauge::Gauge;
    use std::sync::atomic::AtomicU64;
    let mut reg = prometheus_client::registry::Registry::default();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let g: Gauge<f64, AtomicU64> = Gauge::default();
        g.set(v);
        reg.register(name, help, g);
    };
    gauge(
        "nsod_batch_last_run_timestamp_seconds",
        "Unix time the last sharded run was merged",
        r.finished,
    );
    if r.failed == 0 {
        gauge(
            "nsod_batch_last_success_timestamp_seconds",
            "Unix time the last sharded run without failures was merged",
            r.finished,
        );
    }
    gauge(
        "nsod_batch_images",
        "Images of the last sharded run",
        r.images as f64,
    );
    gauge(
        "nsod_batch_failed_images",
        "Images of the last sharded run that failed",
        r.failed as f64,
    );
    gauge(
        "nsod_batch_detections",
        "Detections of the last sharded run",
        r.detections as f64,
    );
    gauge(
        "nsod_batch_shards",
        "Shards of the last sharded run",
        r.shards as f64,
    );
    gauge(
        "nsod_batch_merge_duration_seconds",
        "Time the last merge took",
        r.merge_seconds,
    );
    gauge(
        "nsod_batch_shard_duration_seconds",
        "Summed run time of the last sharded run's shards",
        r.shard_seconds,
    );
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &reg);
    crate::openmetrics_to_classic(&text)
}

/// PUTs a [`BatchResult`] to the Pushgateway group `url` (see [`push_url`]), replacing what the last run pushed.
pub fn push_batch(result: &BatchResult, url: &str) -> Result<(), TelemetryError> {
    put_classic(url, &batch_exposition(result))
}
