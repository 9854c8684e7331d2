//! nsod's telemetry: one [`Telemetry`] value owns the prometheus-client registry and the typed metric families of
//! the [`catalog`]; stages clone the handles they need once (no registry lookups on hot paths).
//!
//! * [`catalog`]: the metric families (names are the contract with dashboards and alerts).
//! * [`system`]: process, machine and GPU metrics read at scrape time.
//! * [`server`]: `GET /metrics` (OpenMetrics with exemplars when the scraper asks for it, the classic text format
//!   otherwise), `/healthz`, `/readyz`.
//! * [`export`]: Pushgateway pushes and node_exporter textfiles for short batch runs.

pub mod catalog;
pub mod export;
pub mod handles;
pub mod server;
pub mod system;

pub use catalog::Catalog;
pub use handles::{InferMetrics, ServiceMetrics, TrainMetrics};
use prometheus_client::registry::Registry;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {message}")]
    Bind { addr: String, message: String },
    /// The server thread could not start.
    #[error("metrics server: {0}")]
    Server(String),
    /// A push to the Pushgateway failed.
    #[error("push to {url} failed: {message}")]
    Push { url: String, message: String },
    /// The textfile could not be written.
    #[error("{0}")]
    Textfile(#[from] nsod_types::FormatError),
}

/// The registry and every metric family.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    pub metrics: Catalog,
    system: Option<std::sync::Arc<system::SystemCollector>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Creates the registry with the catalog and the process/system/GPU collector (NVML opens in the background:
    /// [`Telemetry::gpu_note`]).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Catalog::register(&mut registry);
        let collector = std::sync::Arc::new(system::SystemCollector::new());
        registry.register_collector(Box::new(system::SharedCollector(collector.clone())));
        let t = Self {
            registry,
            metrics,
            system: Some(collector),
        };
        handles::init_known_series(&t);
        t
    }

    /// Why there are no GPU metrics, if there are none (for one info line; waits for the NVML probe).
    pub fn gpu_note(&self) -> Option<String> {
        self.system.as_ref().and_then(|s| s.gpu_note())
    }

    /// A registry with the catalog only (no system collector): for tests and benchmarks.
    pub fn without_system_metrics() -> Self {
        let mut registry = Registry::default();
        let metrics = Catalog::register(&mut registry);
        let t = Self {
            registry,
            metrics,
            system: None,
        };
        handles::init_known_series(&t);
        t
    }

    /// Sets `nsod_build_info{version, git_sha, ort_version} 1`.
    pub fn set_build_info(&self, version: &str, git_sha: &str, ort_version: &str) {
        self.metrics.build_info.clear();
        self.metrics
            .build_info
            .get_or_create(&catalog::BuildLabels {
                version: version.into(),
                git_sha: git_sha.into(),
                ort_version: ort_version.into(),
            })
            .set(1);
    }

    /// Every metric family nsod can expose and its type (`counter`, `gauge`, `histogram`, `info`...), by the
    /// name of the classic text format (counters with `_total`): the catalog and the collector's families. What
    /// dashboards and alert rules may refer to.
    pub fn families() -> Vec<(String, String)> {
        let t = Self::without_system_metrics();
        t.metrics.touch_all();
        let mut out: Vec<(String, String)> = t
            .classic()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, k)| (n.to_owned(), k.to_owned()))
            .collect();
        out.extend(
            system::COLLECTED_METRICS
                .iter()
                .map(|(n, k)| ((*n).to_owned(), (*k).to_owned())),
        );
        // The batch result `nsod merge` pushes (its own exposition, not the registry's).
        let batch = export::batch_exposition(&export::BatchResult::default());
        out.extend(
            batch
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_once(' '))
                .map(|(n, k)| (n.to_owned(), k.to_owned())),
        );
        out.sort();
        out.dedup();
        out
    }

    /// The OpenMetrics text exposition (with exemplars and `# EOF`).
    pub fn openmetrics(&self) -> String {
        let mut s = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// The classic Prometheus text format (version 0.0.4): what Pushgateway, textfile collectors and scrapers that
    /// do not ask for OpenMetrics read.
    pub fn classic(&self) -> String {
        openmetrics_to_classic(&self.openmetrics())
    }
}

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic text exposition.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Converts OpenMetrics text to the classic format: drops `# EOF`, `# UNIT` and exemplars, and names counter
/// families with their `_total` suffix in `# HELP` / `# TYPE`, as the classic format wants.
pub fn openmetrics_to_classic(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = &line[..7];
            let name = if counters.contains(name) {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            let tail = if kind == "# TYPE " && tail == "unknown" {
                "untyped"
            } else {
                tail
            };
            out.push_str(kind);
            out.push_str(&name);
            out.push(' ');
            out.push_str(tail);
        } else if line.starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(cut_exemplar(line));
        }
        out.push('\n');
    }
    out
}

/// The sample part of a line that carries an exemplar.
fn cut_exemplar(line: &str) -> &str {
    // Samples look like `name{labels} value # {exemplar labels} value`; the exemplar starts at the first " # {"
    // that follows the sample value, i.e. after the label set.
    let start = match line.find('{') {
        Some(open)
            if line[..open]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') =>
        {
            // Skip the quoted label values of the sample's own label set.
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = line.len();
            for (i, c) in line[open..].char_indices() {
                match c {
                    '\\' if in_quotes && !escaped => {
                        escaped = true;
                        continue;
                    }
                    '"' if !escaped => in_quotes = !in_quotes,
                    '}' if !in_quotes => {
                        end = open + i + 1;
                        break;
                    }
                    _ => {}
                }
                escaped = false;
            }
            end
        }
        _ => 0,
    };
    match line[start..].find(" # {") {
        Some(i) => &line[..start + i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_format_renames_counters_and_drops_exemplars() {
        let om = "# HELP nsod_images_processed Images finished.\n\
                  # TYPE nsod_images_processed counter\n\
                  nsod_images_processed_total{stage=\"infer\",status=\"success\"} 3\n\
                  # HELP nsod_inference_duration_seconds Time.\n\
                  # TYPE nsod_inference_duration_seconds histogram\n\
                  # UNIT nsod_inference_duration_seconds seconds\n\
                  nsod_inference_duration_seconds_bucket{le=\"0.5\",model=\"m # {x}\"} 1 # {image=\"a b/c.png\"} 0.3\n\
                  nsod_inference_duration_seconds_sum{model=\"m # {x}\"} 0.3\n\
                  # EOF\n";
        let classic = openmetrics_to_classic(om);
        assert_eq!(
            classic,
            "# HELP nsod_images_processed_total Images finished.\n\
             # TYPE nsod_images_processed_total counter\n\
             nsod_images_processed_total{stage=\"infer\",status=\"success\"} 3\n\
             # HELP nsod_inference_duration_seconds Time.\n\
             # TYPE nsod_inference_duration_seconds histogram\n\
             nsod_inference_duration_seconds_bucket{le=\"0.5\",model=\"m # {x}\"} 1\n\
             nsod_inference_duration_seconds_sum{model=\"m # {x}\"} 0.3\n"
        );
    }

    #[test]
    fn registry_exposes_the_catalog_with_exemplars() {
        let t = Telemetry::without_system_metrics();
        t.set_build_info("0.1.0", "abc123", "1.31.1");
        let labels = catalog::InferenceLabels {
            model: "m".into(),
            sliced: "false".into(),
        };
        t.metrics.inference.duration.get_or_create(&labels).observe(
            0.3,
            Some(catalog::ImageExemplar::new("dir/img.png")),
            None,
        );
        let om = t.openmetrics();
        assert!(
            om.contains(
                "nsod_build_info{version=\"0.1.0\",git_sha=\"abc123\",ort_version=\"1.31.1\"} 1"
            ),
            "{om}"
        );
        assert!(om.contains("# {image=\"dir/img.png\"} 0.3"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        let classic = t.classic();
        assert!(!classic.contains("# {") && !classic.contains("# EOF"));
        assert!(classic.contains("# TYPE nsod_nms_input_detections_total counter\nnsod_nms_input_detections_total 0\n"), "{classic}");
    }

    #[test]
    fn exemplar_paths_are_cut_to_the_openmetrics_limit() {
        let long = "x".repeat(300) + "/end.png";
        let e = catalog::ImageExemplar::new(&long);
        assert_eq!(e.image.chars().count() + "image".len(), 128);
        assert!(e.image.ends_with("/end.png"));
    }
}
