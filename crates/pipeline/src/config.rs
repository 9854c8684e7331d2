//! The run configuration: one value, one documented file format (`nsod infer --config run.toml`, the served model's
//! settings, a shard's), with today's Ultralytics/SAHI defaults. See `config/run.example.toml` for every key.

use nsod_detect::{DetectorConfig, Device, GraphOptimization, IoMode, Rect, SliceMode, Spinning};
use nsod_nms::{Geometry, MatchMetric, MergeConfig, MergeMethod};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A configuration that cannot be used, with the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid configuration", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// How images go through the model (`schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Pipelined on a GPU or with several sessions (`sessions`: each takes the next batch, across images, so none
    /// waits for an image's last slice), otherwise sequential.
    #[default]
    Auto,
    /// One image after the other; batches hold one image's slices (the CPU's fastest: the model has every core).
    Sequential,
    /// Slices prepared, run and decoded on threads of their own at once (one model thread per session), batches
    /// filled with slices of several images (`detect.batch` counts slices across images), so that a GPU never waits
    /// for the CPU. The outputs are identical.
    Pipelined,
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "sequential" => Ok(Self::Sequential),
            "pipelined" => Ok(Self::Pipelined),
            _ => Err(format!(
                "unknown schedule {s:?}: use auto, sequential or pipelined"
            )),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Sequential => "sequential",
            Self::Pipelined => "pipelined",
        })
    }
}

/// Detection: Ultralytics' predictor and SAHI's sliced prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectSettings {
    /// Confidence threshold.
    pub conf: f32,
    /// IoU threshold of the model's NMS.
    pub iou: f32,
    /// Maximum detections per model run.
    pub max_det: usize,
    /// Merge and suppress across classes.
    pub class_agnostic: bool,
    pub slice: SliceMode,
    /// Overlap ratio between slices.
    pub overlap: f32,
    /// SAHI's extra full-image pass when slicing.
    pub full_pass: bool,
    pub merge: MergeMethod,
    pub match_metric: MatchMetric,
    /// Overlap at or above which two slice detections merge.
    pub merge_threshold: f32,
    pub merge_geometry: Geometry,
    /// Slices per model run (models with a dynamic batch axis).
    pub batch: usize,
    /// Minimum-rectangle inputs (models of dynamic height and width).
    pub rect: Rect,
}

impl Default for DetectSettings {
    fn default() -> Self {
        let d = DetectorConfig::default();
        Self {
            conf: d.conf,
            iou: d.iou,
            max_det: d.max_det,
            class_agnostic: d.agnostic_nms,
            slice: d.slice,
            overlap: d.overlap,
            full_pass: d.full_pass,
            merge: d.merge.method,
            match_metric: d.merge.metric,
            merge_threshold: d.merge.threshold,
            merge_geometry: d.merge.geometry,
            batch: d.batch,
            rect: d.rect,
        }
    }
}

impl DetectSettings {
    /// The detector's settings.
    pub fn detector(&self) -> DetectorConfig {
        DetectorConfig {
            conf: self.conf,
            iou: self.iou,
            max_det: self.max_det,
            agnostic_nms: self.class_agnostic,
            slice: self.slice,
            overlap: self.overlap,
            full_pass: self.full_pass,
            merge: MergeConfig {
                method: self.merge,
                metric: self.match_metric,
                threshold: self.merge_threshold,
                class_agnostic: self.class_agnostic,
                geometry: self.merge_geometry,
            },
            batch: self.batch.max(1),
            rect: self.rect,
        }
    }
}

/// The symbolic stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesSettings {
    /// Run the rules (`--no-symbolic` turns this off).
    pub enabled: bool,
    /// The rule base; by default the DOTA rules when the model's classes are DOTA's.
    pub file: Option<PathBuf>,
    /// Ground sample distance, metres per pixel: size rules and scene rules' `gsd/1`.
    pub gsd: Option<f64>,
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            file: None,
            gsd: None,
        }
    }
}

/// The knowledge graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KgSettings {
    pub enabled: bool,
    /// Compute relations only for these class pairs (one `class class` pair per line).
    pub pairs: Option<PathBuf>,
    /// Edges seen fewer times are left out of GraphML, DOT, JSON and SVG (the facts keep all).
    pub min_count: u64,
}

impl Default for KgSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            pairs: None,
            min_count: 1,
        }
    }
}

/// Where a run folder's outputs go and which ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSettings {
    pub out: PathBuf,
    /// Annotated copies of the images in `vis/`.
    pub save_vis: bool,
    /// Keep the images an earlier (possibly interrupted) run of the same folder finished.
    pub skip_existing: bool,
}

impl Default for OutputSettings {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/infer"),
            save_vis: false,
            skip_existing: false,
        }
    }
}

/// Which scores the tracker's thresholds apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackOn {
    /// After the rules (the default: the rules act before association).
    #[default]
    Refined,
    /// The detector's own scores.
    Raw,
}

impl std::fmt::Display for TrackOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Refined => "refined",
            Self::Raw => "raw",
        })
    }
}

impl std::str::FromStr for TrackOn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "refined" => Ok(Self::Refined),
            "raw" => Ok(Self::Raw),
            _ => Err(format!("{s:?} is not refined or raw")),
        }
    }
}

/// Camera-motion compensation of `nsod track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cmc {
    /// Estimate each frame's camera motion and apply it to the predictions (the default).
    #[default]
    On,
    Off,
}

impl std::fmt::Display for Cmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

impl std::str::FromStr for Cmc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            _ => Err(format!("{s:?} is not on or off")),
        }
    }
}

/// Live mode of `nsod track` on a video: frames dropped when the pipeline is behind (the newest wins), the stream
/// reconnected when it ends, a signal ending the run with complete outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Live {
    /// Live for a network URL, not for a file (the default).
    #[default]
    Auto,
    On,
    Off,
}

impl Live {
    /// Whether a video from `input` is read live.
    pub fn for_input(self, network: bool) -> bool {
        match self {
            Self::Auto => network,
            Self::On => true,
            Self::Off => false,
        }
    }
}

impl std::fmt::Display for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

impl std::str::FromStr for Live {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            _ => Err(format!("{s:?} is not auto, on or off")),
        }
    }
}

/// `nsod track`'s tracker (`[track]`); the values map onto `nsod_track::TrackerConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackSettings {
    /// Frames per second of a folder of frames without times (a MOTChallenge `seqinfo.ini`'s `frameRate` is used
    /// when this is not set).
    pub fps: Option<f64>,
    /// Of a video, keep every `every`-th decoded frame (1: all).
    pub every: usize,
    /// Of a video: live mode.
    pub live: Live,
    /// The annotated frames (tracks, ids, trails) encoded as a video (`.mp4`, `.m4v`, `.mov`, `.mkv`, `.avi`).
    pub save_video: Option<PathBuf>,
    /// Seconds of the sequence between rounds of the rules over tracks on the open tracks (besides each track's
    /// end); `None`: only when tracks end.
    pub rules_every: Option<f64>,
    pub on: TrackOn,
    pub cmc: Cmc,
    pub geometry: nsod_track::Geometry,
    pub high_score: f32,
    pub low_score: f32,
    pub new_track_score: f32,
    pub match_iou: f64,
    pub min_hits: usize,
    #[serde(with = "duration_text")]
    pub max_lost: std::time::Duration,
}

impl Default for TrackSettings {
    fn default() -> Self {
        let t = nsod_track::TrackerConfig::default();
        Self {
            fps: None,
            every: 1,
            live: Live::Auto,
            save_video: None,
            rules_every: None,
            on: TrackOn::Refined,
            cmc: Cmc::On,
            geometry: t.geometry,
            high_score: t.high_score,
            low_score: t.low_score,
            new_track_score: t.new_track_score,
            match_iou: t.match_iou,
            min_hits: t.min_hits as usize,
            max_lost: std::time::Duration::from_secs_f64(t.max_lost_seconds),
        }
    }
}

impl TrackSettings {
    /// The tracker's configuration.
    pub fn tracker(&self) -> nsod_track::TrackerConfig {
        nsod_track::TrackerConfig {
            geometry: self.geometry,
            high_score: self.high_score,
            low_score: self.low_score,
            new_track_score: self.new_track_score,
            match_iou: self.match_iou,
            min_hits: u32::try_from(self.min_hits).unwrap_or(u32::MAX),
            max_lost_seconds: self.max_lost.as_secs_f64(),
            ..nsod_track::TrackerConfig::default()
        }
    }
}

/// Durations in TOML as humantime text (`"15s"`, `"5m"`, `"250ms"`).
mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let t = String::deserialize(d)?;
        humantime::parse_duration(&t)
            .map_err(|e| serde::de::Error::custom(format!("{t:?}: {e} (e.g. \"15s\", \"5m\")")))
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// Telemetry of a run (`[metrics]`): the `/metrics` endpoint and the exports. Read by the front end; the pipeline
/// itself never sees metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address of `/metrics`, `/healthz`, `/readyz` (port 0: a free port).
    pub addr: std::net::SocketAddr,
    /// Serve `/metrics` (the exports below work either way).
    pub enabled: bool,
    /// Keep serving this long after the run, for a last scrape.
    #[serde(
        with = "duration_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub linger: Option<std::time::Duration>,
    /// Pushgateway base URL: pushed at the end and every `export_interval`.
    pub pushgateway: Option<String>,
    /// Pushgateway job label.
    pub push_job: String,
    /// Pushgateway instance label (default: the host name).
    pub push_instance: Option<String>,
    /// node_exporter textfile, written atomically at the end and every `export_interval`.
    pub textfile: Option<PathBuf>,
    /// Period of the Pushgateway and textfile exports.
    #[serde(with = "duration_text")]
    pub export_interval: std::time::Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8000)),
            enabled: true,
            linger: None,
            pushgateway: None,
            push_job: "nsod".into(),
            push_instance: None,
            textfile: None,
            export_interval: std::time::Duration::from_secs(15),
        }
    }
}

/// `nsod serve` (`[serve]`): the HTTP service around the pipeline. See nsod-serve's `ServeConfig` for what each
/// limit guards against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on (127.0.0.1: this machine only).
    pub addr: std::net::SocketAddr,
    /// The model's name in the API (`/v2/models/NAME`; default: the model file's stem).
    pub model_name: Option<String>,
    /// Session workers: images processed at once, each with its own ONNX Runtime session.
    pub workers: usize,
    /// Requests that may wait for a worker; more get 503.
    pub queue: usize,
    /// Longest time a request waits for its result (queue and processing).
    #[serde(with = "duration_text")]
    pub timeout: std::time::Duration,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// On SIGTERM, how long accepted requests may take to finish; then what still runs is cancelled.
    #[serde(with = "duration_text")]
    pub drain: std::time::Duration,
    /// Longest time a request's headers may take to arrive; also the idle keep-alive limit.
    #[serde(with = "duration_text")]
    pub header_timeout: std::time::Duration,
    /// Longest time a whole request body may take to arrive.
    #[serde(with = "duration_text")]
    pub body_timeout: std::time::Duration,
    /// The most model runs (slices and the full-image pass) one request may take.
    pub max_runs_per_request: u64,
    /// Bodies received at once (default: workers + queue).
    pub max_uploads: Option<usize>,
    /// Open connections (default: from RLIMIT_NOFILE).
    pub max_connections: Option<usize>,
    /// File holding the bearer token every route but health requires (or `$NSOD_SERVE_TOKEN`).
    pub token_file: Option<PathBuf>,
    /// File holding the bearer token `/metrics` requires (open when absent).
    pub metrics_token_file: Option<PathBuf>,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            model_name: None,
            workers: 1,
            queue: 8,
            timeout: std::time::Duration::from_secs(60),
            max_body: 256 << 20,
            drain: std::time::Duration::from_secs(30),
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(60),
            max_runs_per_request: 4096,
            max_uploads: None,
            max_connections: None,
            token_file: None,
            metrics_token_file: None,
        }
    }
}

/// Everything a run needs. [`Default`] is today's Ultralytics/SAHI defaults; [`PipelineConfig::validate`] checks
/// every value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// The YOLO ONNX model (the front end's default when absent).
    pub model: Option<PathBuf>,
    /// Class names for models without metadata.
    pub names: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// ONNX Runtime intra-op threads per session (0: all cores, divided among the sessions when there are several).
    pub threads: usize,
    /// ONNX Runtime sessions of the model running an image's batches at once (the sequential schedule).
    pub sessions: usize,
    /// ONNX Runtime's graph optimisation level.
    pub graph_optimization: GraphOptimization,
    /// Whether ONNX Runtime's intra-op threads spin.
    pub spinning: Spinning,
    /// `auto`, `sequential` or `pipelined` (see [`Schedule`]).
    pub schedule: Schedule,
    /// `auto`, `on` or `off` (see [`nsod_detect::IoMode`]).
    pub io_binding: IoMode,
    /// Threads decoding images ahead of the model (0: one in the sequential schedule, half the cores up to 8 in
    /// the pipelined one, where decoding must keep up with a GPU).
    pub decode_threads: usize,
    pub detect: DetectSettings,
    pub rules: RulesSettings,
    pub kg: KgSettings,
    pub output: OutputSettings,
    /// How rasters are read (bands, bit depth, windowed reads, limits).
    pub raster: nsod_raster::RasterOptions,
    /// Telemetry (`[metrics]`), read by the front end.
    pub metrics: MetricsSettings,
    /// `nsod serve`'s own settings (`[serve]`).
    pub serve: ServeSettings,
    /// `nsod track`'s tracker (`[track]`).
    pub track: TrackSettings,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            model: None,
            names: None,
            device: "cpu".into(),
            threads: 0,
            sessions: 1,
            graph_optimization: GraphOptimization::All,
            spinning: Spinning::Auto,
            schedule: Schedule::Auto,
            io_binding: IoMode::Auto,
            decode_threads: 0,
            detect: DetectSettings::default(),
            rules: RulesSettings::default(),
            kg: KgSettings::default(),
            track: TrackSettings::default(),
            output: OutputSettings::default(),
            raster: nsod_raster::RasterOptions::default(),
            metrics: MetricsSettings::default(),
            serve: ServeSettings::default(),
        }
    }
}

/// The most slices a model run may take.
pub const MAX_BATCH: usize = 256;
/// The most detections per model run.
pub const MAX_DETECTIONS: usize = 100_000;
/// The smallest slice size (smaller slices multiply model runs without helping small objects).
pub const MIN_SLICE: u32 = 32;

impl PipelineConfig {
    /// Reads a TOML file (unknown keys are errors: a typo must not silently keep a default).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The configuration as TOML (what `nsod infer --print-config` shows and `run.json` records).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The device to run on.
    pub fn device(&self) -> Result<Device, ConfigError> {
        self.device
            .parse()
            .map_err(|m: String| invalid("device", m))
    }

    /// Whether images go through the pipelined schedule ([`Schedule::Auto`]: on a GPU or with several sessions).
    pub fn pipelined(&self) -> bool {
        match self.schedule {
            Schedule::Auto => self.sessions > 1 || matches!(self.device(), Ok(Device::Cuda(_))),
            Schedule::Sequential => false,
            Schedule::Pipelined => true,
        }
    }

    /// Intra-op threads of each session: [`PipelineConfig::threads`], or with several sessions and 0 threads the
    /// cores divided among them (never more threads than cores by default).
    pub fn session_threads(&self) -> usize {
        if self.sessions > 1 && self.threads == 0 {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / self.sessions).max(1)
        } else {
            self.threads
        }
    }

    /// The decoding threads of a run in this schedule ([`PipelineConfig::decode_threads`]).
    pub fn decode_threads_for(&self, pipelined: bool) -> usize {
        match (self.decode_threads, pipelined) {
            (0, false) => 1,
            (0, true) => std::thread::available_parallelism()
                .map_or(1, |n| n.get() / 2)
                .clamp(1, 8),
            (n, _) => n,
        }
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.detect;
        let unit = |key: &'static str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(key, format!("{v} is outside [0, 1]")))
            }
        };
        self.raster.validate().map_err(|m| invalid("raster", m))?;
        if let Some(e) = self.track.rules_every
            && !(e.is_finite() && e > 0.0 && e <= 86_400.0)
        {
            return Err(invalid(
                "track.rules_every",
                format!("{e} is outside (0, 86400] seconds"),
            ));
        }
        if let Some(fps) = self.track.fps
            && !(fps.is_finite() && fps > 0.0 && fps <= 10_000.0)
        {
            return Err(invalid("track.fps", format!("{fps} is outside (0, 10000]")));
        }
        if !(1..=10_000).contains(&self.track.every) {
            return Err(invalid(
                "track.every",
                format!("{} is outside [1, 10000]", self.track.every),
            ));
        }
        if self.track.min_hits > 1_000 {
            return Err(invalid(
                "track.min_hits",
                format!("{} is above 1000", self.track.min_hits),
            ));
        }
        self.track
            .tracker()
            .validate()
            .map_err(|e| invalid("track", e.to_string()))?;
        unit("detect.conf", d.conf)?;
        unit("detect.iou", d.iou)?;
        unit("detect.merge_threshold", d.merge_threshold)?;
        if !(0.0..1.0).contains(&d.overlap) {
            return Err(invalid(
                "detect.overlap",
                format!("{} is outside [0, 1)", d.overlap),
            ));
        }
        if d.max_det == 0 || d.max_det > MAX_DETECTIONS {
            return Err(invalid(
                "detect.max_det",
                format!("{} is outside 1..={MAX_DETECTIONS}", d.max_det),
            ));
        }
        if d.batch == 0 || d.batch > MAX_BATCH {
            return Err(invalid(
                "detect.batch",
                format!("{} is outside 1..={MAX_BATCH}", d.batch),
            ));
        }
        if let SliceMode::Size(n) = d.slice
            && n < MIN_SLICE
        {
            return Err(invalid(
                "detect.slice",
                format!("{n} px is smaller than {MIN_SLICE} px (use off or 0 to turn slicing off)"),
            ));
        }
        if let Some(g) = self.rules.gsd
            && !(g.is_finite() && g > 0.0)
        {
            return Err(invalid(
                "rules.gsd",
                format!(
                    "{g}: the ground sample distance must be a positive number of metres per pixel"
                ),
            ));
        }
        if self.threads > 1024 {
            return Err(invalid(
                "threads",
                format!("{} is more than 1024", self.threads),
            ));
        }
        if !(1..=64).contains(&self.sessions) {
            return Err(invalid(
                "sessions",
                format!("{} is outside 1..=64", self.sessions),
            ));
        }
        if self.decode_threads > 64 {
            return Err(invalid(
                "decode_threads",
                format!("{} is more than 64", self.decode_threads),
            ));
        }
        if self.kg.min_count == 0 {
            return Err(invalid("kg.min_count", "must be at least 1"));
        }
        if self.metrics.export_interval.is_zero() {
            return Err(invalid("metrics.export_interval", "must be longer than 0s"));
        }
        let v = &self.serve;
        for (key, zero) in [
            ("serve.timeout", v.timeout.is_zero()),
            ("serve.header_timeout", v.header_timeout.is_zero()),
            ("serve.body_timeout", v.body_timeout.is_zero()),
        ] {
            if zero {
                return Err(invalid(key, "must be longer than 0s"));
            }
        }
        for (key, zero) in [
            ("serve.max_body", v.max_body == 0),
            ("serve.max_runs_per_request", v.max_runs_per_request == 0),
            ("serve.max_uploads", v.max_uploads == Some(0)),
            ("serve.max_connections", v.max_connections == Some(0)),
        ] {
            if zero {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if v.workers == 0 || v.workers > 256 {
            return Err(invalid(
                "serve.workers",
                format!("{}: use 1 to 256", v.workers),
            ));
        }
        self.device()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ultralytics_and_sahi() {
        let c = PipelineConfig::default();
        assert_eq!(
            (c.detect.conf, c.detect.iou, c.detect.max_det),
            (0.25, 0.7, 300)
        );
        assert_eq!(c.detect.slice, SliceMode::Auto);
        assert_eq!(c.detect.merge, MergeMethod::GreedyNmm);
        assert_eq!(c.detect.match_metric, MatchMetric::Ios);
        assert_eq!(c.detect.detector(), DetectorConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn a_file_overrides_what_it_names_and_refuses_typos() {
        let c = PipelineConfig::from_toml(
            "model = \"m.onnx\"\n[detect]\nconf = 0.4\nslice = 512\nmerge = \"nms\"\n[rules]\ngsd = 0.3\n",
        )
        .unwrap();
        assert_eq!(c.model.as_deref(), Some(Path::new("m.onnx")));
        assert_eq!(c.detect.conf, 0.4);
        assert_eq!(c.detect.iou, 0.7);
        assert_eq!(c.detect.slice, SliceMode::Size(512));
        assert_eq!(c.detect.merge, MergeMethod::Nms);
        assert_eq!(c.rules.gsd, Some(0.3));
        let e = PipelineConfig::from_toml("[detect]\nconff = 0.4\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `conff`"), "{e}");
        let e = PipelineConfig::from_toml("[detect]\nslice = \"big\"\n").unwrap_err();
        assert!(e.to_string().contains("use \"auto\", \"off\""), "{e}");
        // Round trip through TOML.
        assert_eq!(PipelineConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = PipelineConfig::default();
        c.detect.conf = 1.5;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "detect.conf: 1.5 is outside [0, 1]"
        );
        let mut c = PipelineConfig::default();
        c.detect.slice = SliceMode::Size(1);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("detect.slice: 1 px")
        );
        let c = PipelineConfig {
            device: "tpu".into(),
            ..PipelineConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("device: unknown device")
        );
        let mut c = PipelineConfig::default();
        c.rules.gsd = Some(0.0);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("rules.gsd: 0")
        );
    }
}

#[cfg(test)]
mod example {
    use super::*;

    /// config/run.example.toml holds every key with its default value.
    #[test]
    fn the_example_file_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/run.example.toml");
        let c = PipelineConfig::from_file(&path).unwrap();
        assert_eq!(c, PipelineConfig::default());
        // Every key of the defaults appears in the example (commented-out keys are the optional ones).
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults: toml::Table = toml::from_str(&PipelineConfig::default().to_toml()).unwrap();
        for (section, v) in &defaults {
            match v {
                toml::Value::Table(t) => {
                    assert!(text.contains(&format!("[{section}]")), "[{section}]");
                    for k in t.keys() {
                        assert!(text.contains(&format!("\n{k} = ")), "{section}.{k}");
                    }
                }
                _ => assert!(text.contains(&format!("\n{section} = ")), "{section}"),
            }
        }
    }
}
