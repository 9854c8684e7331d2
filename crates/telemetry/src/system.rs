//! Process, system and GPU metrics, read on each scrape.
//!
//! | metric | source |
//! |---|---|
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_start_time_seconds`, `process_open_fds` | this process (sysinfo) |
//! | `nsod_system_cpu_usage_ratio`, `nsod_system_memory_used_bytes`, `nsod_system_memory_available_bytes` | the machine |
//! | `nsod_disk_read_bytes_total`, `nsod_disk_written_bytes_total` | bytes this process read from and wrote to storage |
//! | `nsod_gpu_memory_used_bytes`, `nsod_gpu_memory_total_bytes`, `nsod_gpu_utilization_ratio`, `nsod_gpu_temperature_celsius`, `nsod_gpu_power_watts` (label `gpu`) | NVML; absent without an NVIDIA driver |

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Mutex;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Every family the collector can report, with its type (names as in the classic text format): what dashboards and
/// alert rules may use besides the [`Catalog`](crate::Catalog). GPU families appear only with an NVIDIA driver.
pub const COLLECTED_METRICS: &[(&str, &str)] = &[
    ("process_cpu_seconds_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_open_fds", "gauge"),
    ("nsod_disk_read_bytes_total", "counter"),
    ("nsod_disk_written_bytes_total", "counter"),
    ("nsod_system_cpu_usage_ratio", "gauge"),
    ("nsod_system_memory_used_bytes", "gauge"),
    ("nsod_system_memory_available_bytes", "gauge"),
    ("nsod_gpu_memory_used_bytes", "gauge"),
    ("nsod_gpu_memory_total_bytes", "gauge"),
    ("nsod_gpu_utilization_ratio", "gauge"),
    ("nsod_gpu_temperature_celsius", "gauge"),
    ("nsod_gpu_power_watts", "gauge"),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabel {
    gpu: String,
}

/// Reads process, system and GPU state when Prometheus scrapes.
#[derive(Debug)]
pub struct SystemCollector {
    sys: Mutex<System>,
    pid: Option<Pid>,
    /// NVML, opened on a background thread (`nvmlInit` can take a noticeable time on GPU machines: a short run
    /// must not wait for it) and awaited at the first scrape.
    gpus: Mutex<GpuInit>,
}

#[derive(Debug)]
enum GpuInit {
    Pending(Option<std::thread::JoinHandle<Result<nsod_gpu::Gpus, String>>>),
    Ready(Option<Box<nsod_gpu::Gpus>>, Option<String>),
}

impl GpuInit {
    fn wait(&mut self) {
        if let GpuInit::Pending(handle) = self {
            let result = handle
                .take()
                .map(|h| h.join().unwrap_or_else(|_| Err("NVML probe failed".into())))
                .unwrap_or_else(|| Err("NVML probe failed".into()));
            *self = match result {
                Ok(g) => GpuInit::Ready(Some(Box::new(g)), None),
                Err(e) => GpuInit::Ready(None, Some(e)),
            };
        }
    }
}

impl Default for SystemCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemCollector {
    /// Starts opening NVML in the background; without an NVIDIA driver there are simply no GPU series
    /// ([`SystemCollector::gpu_note`] says why).
    pub fn new() -> Self {
        let probe = std::thread::Builder::new()
            .name("nsod-nvml".into())
            .spawn(|| nsod_gpu::Gpus::open().map_err(|e| e.to_string()))
            .ok();
        let gpus = match probe {
            Some(h) => GpuInit::Pending(Some(h)),
            None => GpuInit::Ready(None, Some("cannot start the NVML probe".into())),
        };
        let mut sys = System::new();
        sys.refresh_cpu_usage();
        Self {
            sys: Mutex::new(sys),
            pid: sysinfo::get_current_pid().ok(),
            gpus: Mutex::new(gpus),
        }
    }

    /// Why there are no GPU series, if there are none (waits for the NVML probe).
    pub fn gpu_note(&self) -> Option<String> {
        let mut g = self.gpus.lock().ok()?;
        g.wait();
        match &*g {
            GpuInit::Ready(_, note) => note.clone(),
            GpuInit::Pending(_) => None,
        }
    }
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// The collector as registered (the registry owns a box; the telemetry keeps a handle for the GPU note).
#[derive(Debug)]
pub struct SharedCollector(pub std::sync::Arc<SystemCollector>);

impl Collector for SharedCollector {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(enc)
    }
}

impl Collector for SystemCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(mut sys) = self.sys.lock() else {
            return Ok(());
        };
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        if let Some(pid) = self.pid {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::everything(),
            );
            if let Some(p) = sys.process(pid) {
                counter(
                    &mut enc,
                    "process_cpu_seconds",
                    "User and system CPU time of this process",
                    p.accumulated_cpu_time() as f64 / 1000.0,
                )?;
                gauge(
                    &mut enc,
                    "process_resident_memory_bytes",
                    "Resident memory of this process",
                    p.memory() as f64,
                )?;
                gauge(
                    &mut enc,
                    "process_start_time_seconds",
                    "Start time of this process since the Unix epoch",
                    p.start_time() as f64,
                )?;
                if let Some(fds) = p.open_files() {
                    gauge(
                        &mut enc,
                        "process_open_fds",
                        "Open file descriptors of this process",
                        fds as f64,
                    )?;
                }
                let d = p.disk_usage();
                counter(
                    &mut enc,
                    "nsod_disk_read_bytes",
                    "Bytes this process read from storage",
                    d.total_read_bytes as f64,
                )?;
                counter(
                    &mut enc,
                    "nsod_disk_written_bytes",
                    "Bytes this process wrote to storage",
                    d.total_written_bytes as f64,
                )?;
            }
        }
        gauge(
            &mut enc,
            "nsod_system_cpu_usage_ratio",
            "CPU usage of the machine since the last scrape, 0-1",
            f64::from(sys.global_cpu_usage()) / 100.0,
        )?;
        gauge(
            &mut enc,
            "nsod_system_memory_used_bytes",
            "Memory in use on the machine",
            sys.used_memory() as f64,
        )?;
        gauge(
            &mut enc,
            "nsod_system_memory_available_bytes",
            "Memory available for new work on the machine",
            sys.available_memory() as f64,
        )?;
        drop(sys);

        let readings = self.gpus.lock().ok().and_then(|mut g| {
            g.wait();
            match &*g {
                GpuInit::Ready(Some(gpus), _) => gpus.readings().ok(),
                _ => None,
            }
        });
        let Some(readings) = readings else {
            return Ok(());
        };
        type Pick = fn(&nsod_gpu::GpuReading) -> Option<f64>;
        let series: [(&str, &str, Pick); 5] = [
            ("nsod_gpu_memory_used_bytes", "GPU memory in use", |r| {
                r.memory_used_bytes.map(|v| v as f64)
            }),
            ("nsod_gpu_memory_total_bytes", "GPU memory in total", |r| {
                r.memory_total_bytes.map(|v| v as f64)
            }),
            ("nsod_gpu_utilization_ratio", "GPU busy time, 0-1", |r| {
                r.utilization_ratio
            }),
            ("nsod_gpu_temperature_celsius", "GPU temperature", |r| {
                r.temperature_celsius.map(f64::from)
            }),
            ("nsod_gpu_power_watts", "GPU power draw", |r| r.power_watts),
        ];
        for (name, help, pick) in series {
            let values: Vec<(GpuLabel, f64)> = readings
                .iter()
                .filter_map(|r| {
                    pick(r).map(|v| {
                        (
                            GpuLabel {
                                gpu: r.index.to_string(),
                            },
                            v,
                        )
                    })
                })
                .collect();
            if values.is_empty() {
                continue;
            }
            let mut fam = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (label, v) in &values {
                ConstGauge::new(*v).encode(fam.encode_family(label)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod collected_tests {
    use super::COLLECTED_METRICS;

    #[test]
    fn collected_metrics_lists_what_the_collector_reports() {
        let t = crate::Telemetry::new();
        let gpu_note = t.gpu_note();
        let text = t.classic();
        let reported: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| {
                n.starts_with("process_")
                    || n.starts_with("nsod_system_")
                    || n.starts_with("nsod_disk_")
                    || n.starts_with("nsod_gpu_")
            })
            .collect();
        for name in &reported {
            assert!(
                COLLECTED_METRICS.iter().any(|(n, _)| n == name),
                "{name} is reported but not in COLLECTED_METRICS"
            );
        }
        for (name, kind) in COLLECTED_METRICS {
            if name.starts_with("nsod_gpu_") && gpu_note.is_some() {
                continue;
            }
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} ({kind}) is not reported:\n{text}"
            );
        }
    }
}

#[cfg(test)]
mod families_tests {
    #[test]
    fn families_lists_the_whole_catalog_with_types() {
        let f = crate::Telemetry::families();
        let has = |n: &str, k: &str| f.iter().any(|(a, b)| a == n && b == k);
        assert!(has("nsod_errors_total", "counter"));
        assert!(has("nsod_inference_duration_seconds", "histogram"));
        assert!(has("nsod_validation_map", "gauge"));
        assert!(has("nsod_training_process_cpu_seconds_total", "counter"));
        assert!(has("nsod_gpu_temperature_celsius", "gauge"));
        assert!(
            f.iter()
                .all(|(n, _)| n.starts_with("nsod_") || n.starts_with("process_"))
        );
        assert!(has("nsod_model_busy_ratio", "gauge"));
        // The batch result nsod merge pushes (8 gauges).
        assert!(has("nsod_batch_last_success_timestamp_seconds", "gauge"));
        assert!(has("nsod_tracks_ended_total", "counter"));
        assert!(has("nsod_frames_dropped_total", "counter"));
        assert_eq!(f.len(), 81, "{f:#?}");
    }
}
