//! Every setting of nsod, defined once.
//!
//! [`PipelineConfig`] stores the values (serde: the TOML file, `run.json`); [`SETTINGS`] describes each of them:
//! its TOML key, its command-line flag, its [`Kind`], whether `nsod serve` takes it per request and under which
//! parameter name, its help text, and how a value given as text is read and shown. Everything else is derived
//! from the table: the flags of every command (the binary builds its clap arguments from it), the per-request
//! parameters, what a plan fixes and a shard refuses, the resume identity, `--print-config` and the provenance
//! recorded in `run.json`. Adding a setting is one line here; it cannot be added without a kind.
//!
//! Values are layered in one order for every front end ([`Layers`]): defaults < environment defaults (the explicit
//! list [`ENVIRONMENT`]) < the configuration file < flags < per-request parameters.

use crate::PipelineConfig;
use crate::config::Schedule;
use nsod_detect::{GraphOptimization, IoMode, SliceMode, Spinning};
use nsod_nms::{Geometry, MatchMetric, MergeMethod};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a setting changes, which decides where it may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Changes detections or their scores (model, slicing, thresholds, merge, rules, GSD, bands, names, the
    /// windowed read's threshold, the device): fixed by a plan and refused by a shard; the only input of the
    /// resume identity.
    Result,
    /// How and where a run executes (threads, schedule, batch, IoBinding, decode threads, memory limits, the output
    /// folder, telemetry, the server's limits): applied per shard and per server; never part of the identity.
    Execution,
    /// What is written beside the predictions (annotated images, the knowledge graph): fixed by a plan.
    Output,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Result => "result",
            Self::Execution => "execution",
            Self::Output => "output",
        }
    }
}

/// Which commands offer a setting's flag (each command lists the groups it takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// The model, the device and the session's threads.
    Model,
    /// Class names and the ground sample distance (every command that runs a model or reads predictions).
    Names,
    /// Detection, slicing, the merge and the batch.
    Detect,
    /// Schedules and decoding of batch runs.
    Batch,
    /// The rule base.
    RuleBase,
    /// Turning the rules off.
    Rules,
    /// Turning the knowledge graph on.
    Graph,
    /// The knowledge graph's options.
    GraphOptions,
    /// The output folder.
    Out,
    /// What a run folder holds beside the predictions, and resuming.
    RunFolder,
    /// Reading rasters.
    Raster,
    /// Telemetry of batch runs.
    Metrics,
    /// `nsod serve`'s HTTP service.
    Serve,
    /// `nsod track`'s tracker.
    Track,
}

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `--flag VALUE`.
    Value,
    /// `--flag` alone sets the setting (a boolean) to this value (`--no-full-pass` sets `detect.full_pass` false).
    Switch(bool),
}

/// One setting (see the module documentation).
#[derive(Debug)]
pub struct Setting {
    /// The TOML key (`detect.conf`), also its name in `run.json`'s sources.
    pub key: &'static str,
    /// The long flag without its dashes (`conf`); `None`: set in the file only.
    pub flag: Option<&'static str>,
    pub kind: Kind,
    pub group: Group,
    /// The parameter of `nsod serve`'s requests (query parameters and KServe `parameters`), when a request may
    /// override the setting.
    pub request: Option<&'static str>,
    pub form: Form,
    /// The flag's value placeholder.
    pub value_name: &'static str,
    pub help: &'static str,
    /// The value as TOML (`None`: unset).
    pub get: fn(&PipelineConfig) -> Option<toml::Value>,
    /// Sets the value from text (a flag, an environment variable, a request parameter); the error says why.
    pub set: fn(&mut PipelineConfig, &str) -> Result<(), String>,
}

impl Setting {
    /// `--conf`, or the key for file-only settings.
    pub fn shown(&self) -> String {
        self.flag
            .map_or_else(|| self.key.to_owned(), |f| format!("--{f}"))
    }

    /// The value as one line of text (what `--print-config` and messages show); empty when unset.
    pub fn text(&self, c: &PipelineConfig) -> String {
        match (self.get)(c) {
            None => String::new(),
            Some(toml::Value::String(s)) => s,
            Some(v) => v.to_string(),
        }
    }

    /// The value a switch flag gives its setting, as text.
    pub fn switch_text(&self) -> Option<&'static str> {
        match self.form {
            Form::Switch(true) => Some("true"),
            Form::Switch(false) => Some("false"),
            Form::Value => None,
        }
    }
}

/// How a setting's value is read from text and written to TOML.
pub trait SettingValue: Sized {
    fn from_text(s: &str) -> Result<Self, String>;
    fn to_toml(&self) -> Option<toml::Value>;
}

macro_rules! from_str_value {
    ($($t:ty => $what:literal, |$v:ident| $to:expr;)*) => {$(
        impl SettingValue for $t {
            fn from_text(s: &str) -> Result<Self, String> {
                s.trim().parse::<$t>().map_err(|_| format!("{s:?} is not {}", $what))
            }
            fn to_toml(&self) -> Option<toml::Value> {
                let $v = self;
                Some($to)
            }
        }
    )*};
}

from_str_value! {
    // Through its shortest text, so that 0.3 shows as 0.3, not as the f64 nearest the f32.
    f32 => "a number", |v| toml::Value::Float(v.to_string().parse().unwrap_or(f64::from(*v)));
    f64 => "a number", |v| toml::Value::Float(*v);
    usize => "a whole number", |v| toml::Value::Integer(i64::try_from(*v).unwrap_or(i64::MAX));
    u64 => "a whole number", |v| toml::Value::Integer(i64::try_from(*v).unwrap_or(i64::MAX));
    std::net::SocketAddr => "an address (IP:PORT)", |v| toml::Value::String(v.to_string());
}

impl SettingValue for bool {
    /// Strict: `true`/`false` (and `1`/`0`), nothing else (`yes` is refused, not read as false).
    fn from_text(s: &str) -> Result<Self, String> {
        match s.trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(format!("{other:?} is not true or false")),
        }
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::Boolean(*self))
    }
}

impl SettingValue for String {
    fn from_text(s: &str) -> Result<Self, String> {
        Ok(s.to_owned())
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.clone()))
    }
}

impl SettingValue for PathBuf {
    fn from_text(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("an empty path".into());
        }
        Ok(PathBuf::from(s))
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.display().to_string()))
    }
}

impl SettingValue for Duration {
    fn from_text(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?}: {e} (e.g. 15s, 5m)"))
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(
            humantime::format_duration(*self).to_string(),
        ))
    }
}

macro_rules! named_value {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn from_text(s: &str) -> Result<Self, String> {
                s.trim().parse()
            }
            fn to_toml(&self) -> Option<toml::Value> {
                Some(toml::Value::String(self.to_string()))
            }
        }
    )*};
}

named_value!(
    MergeMethod,
    MatchMetric,
    Geometry,
    Schedule,
    IoMode,
    GraphOptimization,
    Spinning,
    nsod_detect::Rect,
    crate::config::TrackOn,
    crate::config::Cmc,
    crate::config::Live,
    nsod_track::Geometry
);

impl SettingValue for SliceMode {
    fn from_text(s: &str) -> Result<Self, String> {
        s.trim().parse()
    }
    fn to_toml(&self) -> Option<toml::Value> {
        match self {
            SliceMode::Size(n) => Some(toml::Value::Integer(i64::from(*n))),
            _ => Some(toml::Value::String(self.to_string())),
        }
    }
}

impl<T: SettingValue> SettingValue for Option<T> {
    fn from_text(s: &str) -> Result<Self, String> {
        T::from_text(s).map(Some)
    }
    fn to_toml(&self) -> Option<toml::Value> {
        self.as_ref().and_then(T::to_toml)
    }
}

/// Raster bands: `4,3,2` or `1`.
#[derive(Debug, Clone, PartialEq)]
struct Bands(Vec<u32>);

impl SettingValue for Bands {
    fn from_text(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(|b| b.trim().parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
            .map(Bands)
            .map_err(|_| format!("{s:?}: give band numbers separated by commas (4,3,2 or 1)"))
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::Array(
            self.0
                .iter()
                .map(|b| toml::Value::Integer(i64::from(*b)))
                .collect(),
        ))
    }
}

/// A value range: `MIN,MAX`.
#[derive(Debug, Clone, PartialEq)]
struct Range([f64; 2]);

impl SettingValue for Range {
    fn from_text(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: give two numbers MIN,MAX with MIN < MAX");
        let parts: Vec<&str> = s.split(',').collect();
        let [a, b] = parts[..] else {
            return Err(bad());
        };
        match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() && a < b => Ok(Self([a, b])),
            _ => Err(bad()),
        }
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::Array(
            self.0.iter().map(|v| toml::Value::Float(*v)).collect(),
        ))
    }
}

/// `setting!(key, kind, group, flag, request, form, value name, |c| field, help)`: one [`Setting`] whose `get` and
/// `set` read and write `field` through [`SettingValue`]. A field whose type differs from its text form gives the
/// wrapper as `as Type`.
macro_rules! setting {
    ($key:literal, $kind:ident, $group:ident, $flag:expr, $request:expr, $form:expr, $vn:literal,
     |$c:ident| $field:expr, $help:literal) => {
        Setting {
            key: $key,
            flag: $flag,
            kind: Kind::$kind,
            group: Group::$group,
            request: $request,
            form: $form,
            value_name: $vn,
            help: $help,
            get: |$c| SettingValue::to_toml(&$field),
            set: |$c, text| {
                $field = SettingValue::from_text(text)?;
                Ok(())
            },
        }
    };
    ($key:literal, $kind:ident, $group:ident, $flag:expr, $request:expr, $form:expr, $vn:literal,
     |$c:ident| $field:expr, as $wrap:ident, $help:literal) => {
        Setting {
            key: $key,
            flag: $flag,
            kind: Kind::$kind,
            group: Group::$group,
            request: $request,
            form: $form,
            value_name: $vn,
            help: $help,
            get: |$c| $field.clone().map($wrap).to_toml(),
            set: |$c, text| {
                $field = Some($wrap::from_text(text)?.0);
                Ok(())
            },
        }
    };
}

use Form::{Switch, Value};

/// Every setting (see the module documentation). The order is the order of `--help` and `--print-config`.
pub static SETTINGS: &[Setting] = &[
    setting!(
        "model",
        Result,
        Model,
        Some("model"),
        None,
        Value,
        "PATH",
        |c| c.model,
        "YOLO ONNX model (default: $NSOD_MODEL, then models/yolov8n-obb.onnx)."
    ),
    setting!(
        "names",
        Result,
        Names,
        Some("names"),
        None,
        Value,
        "FILE",
        |c| c.names,
        "Class names for models without metadata, or of the predictions read (one per line, a YAML `names:` map, or a dict literal)."
    ),
    setting!(
        "device",
        Result,
        Model,
        Some("device"),
        None,
        Value,
        "DEVICE",
        |c| c.device,
        "cpu, cuda or cuda:N (a result setting: CUDA's floats differ from the CPU's)."
    ),
    setting!(
        "threads",
        Execution,
        Model,
        Some("threads"),
        None,
        Value,
        "N",
        |c| c.threads,
        "ONNX Runtime intra-op threads per session (0: all cores; nsod serve divides them among its workers)."
    ),
    setting!(
        "sessions",
        Execution,
        Model,
        Some("sessions"),
        None,
        Value,
        "N",
        |c| c.sessions,
        "ONNX Runtime sessions running slice batches at once, each with --threads intra-op threads (0 threads: the cores divided among them): an image's batches in the sequential schedule, batches across images in the pipelined one. On a CPU, 2 sessions of 1 thread run sliced images faster than 1 of 2 (docs/infer.md); the outputs do not change."
    ),
    setting!(
        "graph_optimization",
        Result,
        Model,
        Some("graph-optimization"),
        None,
        Value,
        "LEVEL",
        |c| c.graph_optimization,
        "ONNX Runtime's graph optimisation: all (its default; the fastest here for float and INT8 models), extended, basic or off (a result setting: fusions change the floats)."
    ),
    setting!(
        "spinning",
        Execution,
        Model,
        Some("spinning"),
        None,
        Value,
        "MODE",
        |c| c.spinning,
        "ONNX Runtime's intra-op threads spin before sleeping: on (faster runs, more CPU time), off, or auto (on in batch runs, off in nsod serve; measured in docs/quantize.md)."
    ),
    setting!(
        "schedule",
        Execution,
        Batch,
        Some("schedule"),
        None,
        Value,
        "SCHEDULE",
        |c| c.schedule,
        "sequential (one image after the other), pipelined (slices prepared, run and decoded at once, --batch counting slices across images; keeps a GPU busy, same outputs) or auto (pipelined on a GPU or with several --sessions)."
    ),
    setting!(
        "io_binding",
        Execution,
        Batch,
        Some("io-binding"),
        None,
        Value,
        "MODE",
        |c| c.io_binding,
        "ONNX Runtime IoBinding for pipelined runs: on (page-locked host buffers on a GPU), off, or auto (on for CUDA)."
    ),
    setting!(
        "decode_threads",
        Execution,
        Batch,
        Some("decode-threads"),
        None,
        Value,
        "N",
        |c| c.decode_threads,
        "Threads decoding images ahead of the model (0: one in the sequential schedule, half the cores up to 8 in the pipelined one)."
    ),
    setting!(
        "detect.conf",
        Result,
        Detect,
        Some("conf"),
        Some("conf"),
        Value,
        "CONF",
        |c| c.detect.conf,
        "Confidence threshold."
    ),
    setting!(
        "detect.iou",
        Result,
        Detect,
        Some("iou"),
        Some("iou"),
        Value,
        "IOU",
        |c| c.detect.iou,
        "IoU threshold of the model's NMS."
    ),
    setting!(
        "detect.max_det",
        Result,
        Detect,
        Some("max-det"),
        None,
        Value,
        "N",
        |c| c.detect.max_det,
        "Maximum detections per model run."
    ),
    setting!(
        "detect.class_agnostic",
        Result,
        Detect,
        Some("class-agnostic"),
        None,
        Switch(true),
        "",
        |c| c.detect.class_agnostic,
        "Merge and suppress across classes."
    ),
    setting!(
        "detect.slice",
        Result,
        Detect,
        Some("slice"),
        Some("slice"),
        Value,
        "N",
        |c| c.detect.slice,
        "Slice size in pixels, `off` (or 0) for none, `auto`: slices of the model input size for larger images."
    ),
    setting!(
        "detect.overlap",
        Result,
        Detect,
        Some("overlap"),
        Some("overlap"),
        Value,
        "RATIO",
        |c| c.detect.overlap,
        "Overlap ratio between slices."
    ),
    setting!(
        "detect.full_pass",
        Result,
        Detect,
        Some("no-full-pass"),
        Some("full_pass"),
        Switch(false),
        "",
        |c| c.detect.full_pass,
        "Skip SAHI's extra full-image pass when slicing."
    ),
    setting!(
        "detect.merge",
        Result,
        Detect,
        Some("merge"),
        Some("merge"),
        Value,
        "METHOD",
        |c| c.detect.merge,
        "How slice results are merged: greedynmm, nmm or nms."
    ),
    setting!(
        "detect.match_metric",
        Result,
        Detect,
        Some("match-metric"),
        None,
        Value,
        "METRIC",
        |c| c.detect.match_metric,
        "Overlap measure of the merge: ios or iou."
    ),
    setting!(
        "detect.merge_threshold",
        Result,
        Detect,
        Some("merge-threshold"),
        None,
        Value,
        "RATIO",
        |c| c.detect.merge_threshold,
        "Overlap at or above which two slice detections merge."
    ),
    setting!(
        "detect.merge_geometry",
        Result,
        Detect,
        Some("merge-geometry"),
        None,
        Value,
        "GEOMETRY",
        |c| c.detect.merge_geometry,
        "Merge on exact rotated boxes, on their enclosing rectangles (aabb, as SAHI does), or with probiou."
    ),
    setting!(
        "detect.rect",
        Result,
        Detect,
        Some("rect"),
        None,
        Value,
        "MODE",
        |c| c.detect.rect,
        "Minimum-rectangle inputs: auto (on for a model of dynamic height and width, as Ultralytics' predictor), on or off (letterbox into the model's imgsz)."
    ),
    setting!(
        "detect.batch",
        Execution,
        Detect,
        Some("batch"),
        None,
        Value,
        "N",
        |c| c.detect.batch,
        "Slices per model run (models with a dynamic batch axis); the outputs do not change with it."
    ),
    setting!(
        "rules.enabled",
        Result,
        Rules,
        Some("no-symbolic"),
        Some("rules"),
        Switch(false),
        "",
        |c| c.rules.enabled,
        "Skip the symbolic stage."
    ),
    setting!(
        "rules.file",
        Result,
        RuleBase,
        Some("rules"),
        None,
        Value,
        "FILE",
        |c| c.rules.file,
        "Prolog rule base (default: when the model's classes are DOTA's, $NSOD_RULES, then rules/dota.pl)."
    ),
    setting!(
        "rules.gsd",
        Result,
        Names,
        Some("gsd"),
        None,
        Value,
        "METRES",
        |c| c.rules.gsd,
        "Ground sample distance in metres per pixel: turns on the rule base's size plausibility rules (size_range/3) and gives scene rules gsd/1."
    ),
    setting!(
        "kg.enabled",
        Output,
        Graph,
        Some("kg"),
        None,
        Switch(true),
        "",
        |c| c.kg.enabled,
        "Also build the knowledge graph: DIR/scene_graphs.jsonl per image and the dataset graph's exports at the end."
    ),
    setting!(
        "kg.pairs",
        Output,
        GraphOptions,
        Some("kg-pairs"),
        None,
        Value,
        "FILE",
        |c| c.kg.pairs,
        "Compute relations only for these class pairs (one `class class` pair per line; default: all pairs)."
    ),
    setting!(
        "kg.min_count",
        Output,
        GraphOptions,
        Some("kg-min-count"),
        None,
        Value,
        "N",
        |c| c.kg.min_count,
        "Leave edges seen fewer times out of GraphML, DOT, JSON and SVG (the facts keep all)."
    ),
    setting!(
        "output.out",
        Execution,
        Out,
        Some("out"),
        None,
        Value,
        "DIR",
        |c| c.output.out,
        "Output folder (predictions.jsonl, labels/, coco_results.json, run.json...)."
    ),
    setting!(
        "output.save_vis",
        Output,
        RunFolder,
        Some("save-vis"),
        None,
        Switch(true),
        "",
        |c| c.output.save_vis,
        "Also write annotated images (polygons or boxes with class and score) to DIR/vis/."
    ),
    setting!(
        "output.skip_existing",
        Execution,
        RunFolder,
        Some("skip-existing"),
        None,
        Switch(true),
        "",
        |c| c.output.skip_existing,
        "Resume: keep the images already in DIR/predictions.jsonl (or in the .partial files an interrupted run left), with all their outputs, and process only the others."
    ),
    setting!("raster.bands", Result, Raster, Some("bands"), None, Value, "R,G,B", |c| c.raster.bands, as Bands,
        "Raster bands read as red, green, blue (1-based, e.g. 4,3,2), or one band read as grey."),
    setting!("raster.scale", Result, Raster, Some("scale"), None, Value, "MIN,MAX", |c| c.raster.scale, as Range,
        "Values mapped to 0 and 255 for rasters that are not 8-bit (default: each band's 2nd-98th percentile)."),
    setting!(
        "raster.window_above_pixels",
        Result,
        Raster,
        Some("window-above"),
        None,
        Value,
        "PIXELS",
        |c| c.raster.window_above_pixels,
        "Rasters with more pixels are read window by window (slices read as they are run, the full-image pass from a decimated read), smaller ones whole."
    ),
    setting!(
        "raster.max_pixels",
        Execution,
        Raster,
        Some("max-raster-pixels"),
        None,
        Value,
        "PIXELS",
        |c| c.raster.max_pixels,
        "Refuse rasters that declare more pixels than this."
    ),
    setting!(
        "raster.cache_mib",
        Execution,
        Raster,
        Some("raster-cache-mib"),
        None,
        Value,
        "MIB",
        |c| c.raster.cache_mib,
        "GDAL's block cache in MiB, shared by the windowed reads."
    ),
    setting!(
        "raster.max_window_mib",
        Execution,
        Raster,
        Some("max-window-mib"),
        None,
        Value,
        "MIB",
        |c| c.raster.max_window_mib,
        "The largest window read at once, in MiB of 8-bit RGB."
    ),
    setting!(
        "metrics.addr",
        Execution,
        Metrics,
        Some("metrics-addr"),
        None,
        Value,
        "ADDR",
        |c| c.metrics.addr,
        "Address of the /metrics endpoint (0.0.0.0:PORT to listen on every interface; port 0 picks a free port; default: $NSOD_METRICS_ADDR, then 127.0.0.1:8000)."
    ),
    setting!(
        "metrics.enabled",
        Execution,
        Metrics,
        Some("no-metrics"),
        None,
        Switch(false),
        "",
        |c| c.metrics.enabled,
        "Do not serve /metrics (the exports still work)."
    ),
    setting!(
        "metrics.linger",
        Execution,
        Metrics,
        Some("metrics-linger"),
        None,
        Value,
        "DURATION",
        |c| c.metrics.linger,
        "Keep serving /metrics this long after the run (e.g. 30s, 5m), so Prometheus scrapes the final values."
    ),
    setting!(
        "metrics.pushgateway",
        Execution,
        Metrics,
        Some("pushgateway"),
        None,
        Value,
        "URL",
        |c| c.metrics.pushgateway,
        "Pushgateway base URL (e.g. http://127.0.0.1:9091): push at the end and every --export-interval."
    ),
    setting!(
        "metrics.push_job",
        Execution,
        Metrics,
        Some("push-job"),
        None,
        Value,
        "NAME",
        |c| c.metrics.push_job,
        "Pushgateway job label."
    ),
    setting!(
        "metrics.push_instance",
        Execution,
        Metrics,
        Some("push-instance"),
        None,
        Value,
        "NAME",
        |c| c.metrics.push_instance,
        "Pushgateway instance label (default: the host name)."
    ),
    setting!(
        "metrics.textfile",
        Execution,
        Metrics,
        Some("metrics-textfile"),
        None,
        Value,
        "PATH",
        |c| c.metrics.textfile,
        "node_exporter textfile (e.g. /var/lib/node_exporter/textfile/nsod.prom), written atomically at the end and every --export-interval."
    ),
    setting!(
        "metrics.export_interval",
        Execution,
        Metrics,
        Some("export-interval"),
        None,
        Value,
        "DURATION",
        |c| c.metrics.export_interval,
        "Period of Pushgateway and textfile exports during the run."
    ),
    setting!(
        "serve.addr",
        Execution,
        Serve,
        Some("addr"),
        None,
        Value,
        "ADDR",
        |c| c.serve.addr,
        "Address to listen on (127.0.0.1: this machine only; 0.0.0.0:8080 for every interface)."
    ),
    setting!(
        "serve.model_name",
        Execution,
        Serve,
        Some("model-name"),
        None,
        Value,
        "NAME",
        |c| c.serve.model_name,
        "The model's name in the API (/v2/models/NAME; default: the model file's stem)."
    ),
    setting!(
        "serve.workers",
        Execution,
        Serve,
        Some("workers"),
        None,
        Value,
        "N",
        |c| c.serve.workers,
        "Session workers: images processed at once, each with its own ONNX Runtime session."
    ),
    setting!(
        "serve.queue",
        Execution,
        Serve,
        Some("queue"),
        None,
        Value,
        "N",
        |c| c.serve.queue,
        "Requests that may wait for a worker; more are answered 503 with Retry-After."
    ),
    setting!(
        "serve.timeout",
        Execution,
        Serve,
        Some("timeout"),
        None,
        Value,
        "DURATION",
        |c| c.serve.timeout,
        "Longest time a request waits for its result (queue and processing); then 503 and the job is cancelled."
    ),
    setting!(
        "serve.max_body",
        Execution,
        Serve,
        Some("max-body"),
        None,
        Value,
        "BYTES",
        |c| c.serve.max_body,
        "Largest request body in bytes (413 above; a larger Content-Length is refused before reading)."
    ),
    setting!(
        "serve.drain",
        Execution,
        Serve,
        Some("drain"),
        None,
        Value,
        "DURATION",
        |c| c.serve.drain,
        "On SIGTERM/SIGINT, how long accepted requests may take to finish; then what still runs is cancelled."
    ),
    setting!(
        "serve.header_timeout",
        Execution,
        Serve,
        Some("header-timeout"),
        None,
        Value,
        "DURATION",
        |c| c.serve.header_timeout,
        "Longest time a request's headers may take to arrive (then 408 and the connection closed); also how long an idle keep-alive connection stays open."
    ),
    setting!(
        "serve.body_timeout",
        Execution,
        Serve,
        Some("body-timeout"),
        None,
        Value,
        "DURATION",
        |c| c.serve.body_timeout,
        "Longest time a whole request body may take to arrive (a total deadline; then 408)."
    ),
    setting!(
        "serve.max_runs_per_request",
        Execution,
        Serve,
        Some("max-runs-per-request"),
        None,
        Value,
        "N",
        |c| c.serve.max_runs_per_request,
        "The most model runs (slices plus the full-image pass) one request may take; more is refused with 400 before any work."
    ),
    setting!(
        "serve.max_uploads",
        Execution,
        Serve,
        Some("max-uploads"),
        None,
        Value,
        "N",
        |c| c.serve.max_uploads,
        "Request bodies received at once, each up to --max-body in memory (default: workers + queue); more get 503."
    ),
    setting!(
        "serve.max_connections",
        Execution,
        Serve,
        Some("max-connections"),
        None,
        Value,
        "N",
        |c| c.serve.max_connections,
        "Open connections (default: from the open-file limit, RLIMIT_NOFILE, less a reserve for nsod's own files)."
    ),
    setting!(
        "serve.token_file",
        Execution,
        Serve,
        Some("token-file"),
        None,
        Value,
        "FILE",
        |c| c.serve.token_file,
        "File holding a bearer token required on every route except health (also $NSOD_SERVE_TOKEN)."
    ),
    setting!(
        "serve.metrics_token_file",
        Execution,
        Serve,
        Some("metrics-token-file"),
        None,
        Value,
        "FILE",
        |c| c.serve.metrics_token_file,
        "File holding a bearer token required on /metrics (open when absent)."
    ),
    setting!(
        "track.fps",
        Result,
        Track,
        Some("fps"),
        None,
        Value,
        "FPS",
        |c| c.track.fps,
        "Frames per second of a folder of frames (default: a MOTChallenge seqinfo.ini's frameRate, else 30); a list file's times win. Of a video (its own timestamps are used): the most frames per second kept (subsampling)."
    ),
    setting!(
        "track.every",
        Result,
        Track,
        Some("every"),
        None,
        Value,
        "N",
        |c| c.track.every,
        "Of a video: keep every N-th decoded frame (1: all)."
    ),
    setting!(
        "track.live",
        Result,
        Track,
        Some("live"),
        None,
        Value,
        "auto|on|off",
        |c| c.track.live,
        "Of a video: live mode (auto: for network URLs). Frames are dropped when the pipeline is behind (the newest wins), the stream is reconnected when it ends, and a signal ends the run with complete outputs."
    ),
    setting!(
        "track.save_video",
        Execution,
        Track,
        Some("save-video"),
        None,
        Value,
        "FILE",
        |c| c.track.save_video,
        "Also encode the annotated frames (oriented boxes, ids, trails, class colours) as a video at the input's timestamps: H.264 (libx264) where FFmpeg has it, else MPEG-4 Part 2; .mp4, .m4v, .mov, .mkv or .avi."
    ),
    setting!(
        "track.rules_every",
        Result,
        Track,
        Some("track-rules-every"),
        None,
        Value,
        "SECONDS",
        |c| c.track.rules_every,
        "With a rule base that has rules over tracks (adjust_track/3, speed_range/3): also judge the open tracks every SECONDS of the sequence's time (besides each track when it ends); their factor applies to the frames written after it."
    ),
    setting!(
        "track.on",
        Result,
        Track,
        Some("track-on"),
        None,
        Value,
        "refined|raw",
        |c| c.track.on,
        "Scores the tracker's thresholds apply to: refined (after the rules, the default) or raw (the detector's)."
    ),
    setting!(
        "track.cmc",
        Result,
        Track,
        Some("cmc"),
        None,
        Value,
        "on|off",
        |c| c.track.cmc,
        "Camera-motion compensation: each frame's global motion (translation, rotation, scale; Fourier-Mellin phase correlation) applied to the tracks' predictions."
    ),
    setting!(
        "track.geometry",
        Result,
        Track,
        Some("track-geometry"),
        None,
        Value,
        "oriented|axis",
        |c| c.track.geometry,
        "Tracked state: oriented (centre, size, angle; the default) or axis (the axis-aligned hull, as other trackers)."
    ),
    setting!(
        "track.high_score",
        Result,
        Track,
        Some("track-high"),
        None,
        Value,
        "SCORE",
        |c| c.track.high_score,
        "Detections at or above this score are associated first (ByteTrack's track_thresh)."
    ),
    setting!(
        "track.low_score",
        Result,
        Track,
        Some("track-low"),
        None,
        Value,
        "SCORE",
        |c| c.track.low_score,
        "Detections below this score are ignored by the tracker; those up to --track-high only keep tracks alive."
    ),
    setting!(
        "track.new_track_score",
        Result,
        Track,
        Some("track-new"),
        None,
        Value,
        "SCORE",
        |c| c.track.new_track_score,
        "An unmatched detection at or above this score starts a track."
    ),
    setting!(
        "track.match_iou",
        Result,
        Track,
        Some("track-iou"),
        None,
        Value,
        "IOU",
        |c| c.track.match_iou,
        "Minimum buffered rotated IoU of a first-stage match between a track's prediction and a detection."
    ),
    setting!(
        "track.min_hits",
        Result,
        Track,
        Some("min-hits"),
        None,
        Value,
        "N",
        |c| c.track.min_hits,
        "Frames a track must be matched before it is confirmed and written (every track of the first frame is confirmed at once)."
    ),
    setting!(
        "track.max_lost",
        Result,
        Track,
        Some("max-lost"),
        None,
        Value,
        "DURATION",
        |c| c.track.max_lost,
        "How long a track may go unmatched before it ends (e.g. 1s, 500ms)."
    ),
];

/// The setting with this TOML key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// The setting with this long flag (without dashes).
pub fn by_flag(flag: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.flag == Some(flag))
}

/// The setting `nsod serve` takes under this request parameter.
pub fn by_request(param: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.request == Some(param))
}

/// The request parameters of `nsod serve`, in table order.
pub fn request_parameters() -> Vec<&'static str> {
    SETTINGS.iter().filter_map(|s| s.request).collect()
}

/// The environment variables that give settings their defaults (below the configuration file): the explicit,
/// documented list; no other variable changes a setting. (`NSOD_RULES` says where the default rule base is, the one
/// used when `rules.file` is unset and the model's classes are DOTA's; `NSOD_SERVE_TOKEN` is a token, not a
/// setting; `ORT_DYLIB_PATH` finds ONNX Runtime.)
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("NSOD_MODEL", "model"),
    ("NSOD_METRICS_ADDR", "metrics.addr"),
];

/// Where a value came from, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// nsod's default, or the command's own (`nsod symbolic` writes to runs/symbolic).
    Default,
    /// A variable of [`ENVIRONMENT`].
    Environment,
    /// The configuration file (`--config`, or a plan's).
    File,
    /// A flag on the command line.
    Flag,
    /// A request parameter (`nsod serve`).
    Request,
}

/// A value that cannot be used, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}{}: {message}", if key.is_empty() { String::new() } else { format!(" ({key})") })]
pub struct SettingError {
    /// `--conf`, `$NSOD_MODEL`, `parameter conf`, or the file's key.
    pub place: String,
    pub key: &'static str,
    pub message: String,
}

/// The values of a run and where each came from: built layer by layer, lowest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Layers {
    pub config: PipelineConfig,
    sources: BTreeMap<&'static str, Source>,
    /// The defaults the layers started from.
    defaults: PipelineConfig,
}

impl Layers {
    /// The defaults (nsod's, or a command's own).
    pub fn new(defaults: PipelineConfig) -> Self {
        Self {
            config: defaults.clone(),
            sources: BTreeMap::new(),
            defaults,
        }
    }

    /// Environment defaults from `var` (the process environment in front ends, a map in tests).
    pub fn environment(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingError> {
        for (name, key) in ENVIRONMENT {
            let Some(value) = var(name).filter(|v| !v.is_empty()) else {
                continue;
            };
            let s = by_key(key).expect("ENVIRONMENT names settings");
            self.put(s, &value, Source::Environment, format!("${name}"))?;
        }
        Ok(self)
    }

    /// A configuration file over what is there: every key the file names is taken from it.
    pub fn file(mut self, path: &Path) -> Result<Self, crate::ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self = self
            .file_text(&text)
            .map_err(|source| crate::ConfigError::Parse {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        Ok(self)
    }

    /// [`Layers::file`] from text.
    pub fn file_text(mut self, text: &str) -> Result<Self, toml::de::Error> {
        // Checked as a whole (types, unknown keys), then each key it names replaces the value below it.
        let parsed = PipelineConfig::from_toml(text)?;
        let table: toml::Table = toml::from_str(text)?;
        for s in SETTINGS {
            if named(&table, s.key) {
                copy(s, &parsed, &mut self.config);
                self.sources.insert(s.key, Source::File);
            }
        }
        Ok(self)
    }

    /// A plan's configuration as the file layer: the settings `keep` selects come from it.
    pub fn plan_values(mut self, plan: &PipelineConfig, keep: impl Fn(&Setting) -> bool) -> Self {
        for s in SETTINGS.iter().filter(|s| keep(s)) {
            copy(s, plan, &mut self.config);
            self.sources.insert(s.key, Source::File);
        }
        self
    }

    /// Flags given on the command line: `(setting, value)`, the value of a switch being its [`Setting::switch_text`].
    pub fn flags<'a>(
        mut self,
        given: impl IntoIterator<Item = (&'static Setting, &'a str)>,
    ) -> Result<Self, SettingError> {
        for (s, value) in given {
            self.put(s, value, Source::Flag, s.shown())?;
        }
        Ok(self)
    }

    /// Per-request parameters (`nsod serve`), by parameter name; an unknown name is an error.
    pub fn requests<'a>(
        mut self,
        given: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, SettingError> {
        for (param, value) in given {
            let Some(s) = by_request(param) else {
                return Err(SettingError {
                    place: format!("parameter {param}"),
                    key: "",
                    message: format!(
                        "unknown parameter (per-request settings: {})",
                        request_parameters().join(", ")
                    ),
                });
            };
            self.put(s, value, Source::Request, format!("parameter {param}"))?;
        }
        Ok(self)
    }

    fn put(
        &mut self,
        s: &'static Setting,
        value: &str,
        source: Source,
        place: String,
    ) -> Result<(), SettingError> {
        (s.set)(&mut self.config, value).map_err(|message| SettingError {
            place,
            key: s.key,
            message,
        })?;
        self.sources.insert(s.key, source);
        Ok(())
    }

    /// Where `key`'s value came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).copied().unwrap_or(Source::Default)
    }

    /// Where every value came from, by key (what `run.json` records as `config_sources`).
    pub fn sources(&self) -> BTreeMap<&'static str, Source> {
        SETTINGS
            .iter()
            .map(|s| (s.key, self.source(s.key)))
            .collect()
    }

    /// Checks every value; the error names the flag or parameter the bad value came from as well as the key. A
    /// setting given (not left at its default) that would have no effect under the others is refused too: a flag is
    /// applied or refused, never silently ignored.
    pub fn validate(&self) -> Result<(), SettingError> {
        self.check_values()?;
        for (key, needs, why) in NEEDS {
            let s = by_key(key).expect("NEEDS names settings");
            let changed = s.text(&self.config) != s.text(&self.defaults);
            if self.source(key) != Source::Default && changed && !needs(&self.config) {
                return Err(SettingError {
                    place: self.place(s),
                    key: s.key,
                    message: (*why).into(),
                });
            }
        }
        Ok(())
    }

    /// Where `s`'s value came from, as a user names it.
    fn place(&self, s: &Setting) -> String {
        match self.source(s.key) {
            Source::Request => format!("parameter {}", s.request.unwrap_or(s.key)),
            Source::Environment => ENVIRONMENT
                .iter()
                .find(|(_, k)| *k == s.key)
                .map_or_else(|| s.key.to_owned(), |(v, _)| format!("${v}")),
            Source::File => s.key.to_owned(),
            _ => s.shown(),
        }
    }

    fn check_values(&self) -> Result<(), SettingError> {
        self.config.validate().map_err(|e| {
            let (key, message) = match &e {
                crate::ConfigError::Invalid { key, message } => (*key, message.clone()),
                other => ("", other.to_string()),
            };
            let place = match (by_key(key), self.source(key)) {
                (Some(s), Source::Flag) => s.shown(),
                (Some(s), Source::Request) => format!("parameter {}", s.request.unwrap_or(key)),
                (Some(_), Source::Environment) => ENVIRONMENT
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map_or_else(|| key.to_owned(), |(v, _)| format!("${v}")),
                (Some(s), _) => s.flag.map_or_else(|| key.to_owned(), |f| format!("--{f}")),
                (None, _) => key.to_owned(),
            };
            SettingError {
                place,
                key: by_key(key).map_or("", |s| s.key),
                message,
            }
        })
    }
}

/// Settings that act only under others: `(key, when it acts, why it would not)`. One given while it cannot act is
/// refused ([`Layers::validate`]).
type Needs = (&'static str, fn(&PipelineConfig) -> bool, &'static str);

const NEEDS: &[Needs] = &[
    (
        "io_binding",
        |c| c.io_binding != IoMode::Bound || (c.pipelined() && c.sessions <= 1),
        "IoBinding applies to the pipelined schedule with one session (--schedule pipelined, or auto on a GPU; several sessions run from host buffers)",
    ),
    (
        "kg.pairs",
        |c| c.kg.enabled,
        "only the knowledge graph uses it, and it is off (--kg, kg.enabled)",
    ),
    (
        "kg.min_count",
        |c| c.kg.enabled,
        "only the knowledge graph uses it, and it is off (--kg, kg.enabled)",
    ),
    (
        "rules.file",
        |c| c.rules.enabled,
        "the rules are off (--no-symbolic, rules.enabled = false)",
    ),
    (
        "rules.gsd",
        |c| c.rules.enabled,
        "only the rules use it, and they are off (--no-symbolic, rules.enabled = false)",
    ),
    (
        "metrics.linger",
        |c| c.metrics.enabled,
        "the /metrics endpoint is off (--no-metrics)",
    ),
    (
        "metrics.push_instance",
        |c| c.metrics.pushgateway.is_some(),
        "only the Pushgateway export uses it (--pushgateway)",
    ),
    (
        "metrics.export_interval",
        |c| c.metrics.pushgateway.is_some() || c.metrics.textfile.is_some(),
        "only the Pushgateway and textfile exports use it (--pushgateway, --metrics-textfile)",
    ),
];

/// True when the TOML table names `key` (`detect.conf`: the table `detect` holds `conf`).
fn named(table: &toml::Table, key: &str) -> bool {
    let mut t = table;
    let mut parts = key.split('.').peekable();
    while let Some(p) = parts.next() {
        match (t.get(p), parts.peek()) {
            (None, _) => return false,
            (Some(_), None) => return true,
            (Some(toml::Value::Table(inner)), Some(_)) => t = inner,
            (Some(_), Some(_)) => return false,
        }
    }
    false
}

/// Copies one setting's value from `from` to `to` (through their TOML form: an unset value is unset).
fn copy(s: &Setting, from: &PipelineConfig, to: &mut PipelineConfig) {
    let (Ok(src), Ok(mut dst)) = (toml::Table::try_from(from), toml::Table::try_from(&*to)) else {
        return;
    };
    let path: Vec<&str> = s.key.split('.').collect();
    let (last, parents) = path.split_last().expect("keys are not empty");
    let value = parents
        .iter()
        .try_fold(&src, |t, p| t.get(*p).and_then(toml::Value::as_table))
        .and_then(|t| t.get(*last))
        .cloned();
    let mut t = &mut dst;
    for p in parents {
        let entry = t
            .entry((*p).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(inner) = entry.as_table_mut() else {
            return;
        };
        t = inner;
    }
    match value {
        Some(v) => {
            t.insert((*last).to_owned(), v);
        }
        None => {
            t.remove(*last);
        }
    }
    if let Ok(c) = dst.try_into() {
        *to = c;
    }
}

/// The identity of a run's results, for resuming: every [`Kind::Result`] setting, with the files the model, the
/// class names and the rule base name replaced by their contents' hash (`hash`), so that moving a model keeps the
/// identity and editing it changes it. Nothing else enters it.
pub fn identity(c: &PipelineConfig, hash: impl Fn(&Path) -> Option<String>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for s in SETTINGS.iter().filter(|s| s.kind == Kind::Result) {
        let v = match s.key {
            "model" | "names" | "rules.file" => {
                let path = match s.key {
                    "model" => c.model.as_deref(),
                    "names" => c.names.as_deref(),
                    _ => c.rules.file.as_deref(),
                };
                path.map_or(
                    serde_json::Value::Null,
                    |p| serde_json::json!({ "sha256": hash(p) }),
                )
            }
            _ => (s.get)(c)
                .and_then(|v| serde_json::to_value(v).ok())
                .unwrap_or(serde_json::Value::Null),
        };
        m.insert(s.key.to_owned(), v);
    }
    serde_json::Value::Object(m)
}

/// The settings two identities differ in.
pub fn identity_differences(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    SETTINGS
        .iter()
        .filter(|s| s.kind == Kind::Result && a.get(s.key) != b.get(s.key))
        .map(|s| s.key.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_a_key_of_the_configuration_and_reads_its_own_text() {
        let defaults: toml::Table = toml::from_str(&PipelineConfig::default().to_toml()).unwrap();
        let mut keys = std::collections::HashSet::new();
        let mut flags = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(keys.insert(s.key), "{} twice", s.key);
            if let Some(f) = s.flag {
                assert!(flags.insert(f), "--{f} twice");
            }
            let c = PipelineConfig::default();
            if let Some(v) = (s.get)(&c) {
                assert!(
                    named(&defaults, s.key),
                    "{} is not a key of the TOML",
                    s.key
                );
                // The text of the default reads back to the default.
                let mut d = PipelineConfig::default();
                let text = match &v {
                    toml::Value::Array(a) => a
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    toml::Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                (s.set)(&mut d, &text).unwrap_or_else(|e| panic!("{}: {e}", s.key));
                assert_eq!(d, c, "{}", s.key);
            }
            if let Form::Switch(to) = s.form {
                assert!(
                    matches!((s.get)(&PipelineConfig::default()), Some(toml::Value::Boolean(b)) if b != to),
                    "{}: a switch sets the opposite of the default",
                    s.key
                );
            }
        }
        // Every key of the TOML is a setting: nothing is configurable outside the table.
        fn leaves(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(inner) => leaves(inner, &key, out),
                    _ => out.push(key),
                }
            }
        }
        let mut all = Vec::new();
        leaves(&defaults, "", &mut all);
        for k in all {
            assert!(by_key(&k).is_some(), "{k} has no setting");
        }
    }

    #[test]
    fn layers_apply_in_one_order_and_remember_where_each_value_came_from() {
        let env = |k: &str| (k == "NSOD_MODEL").then(|| "env.onnx".to_owned());
        let l = Layers::new(PipelineConfig::default())
            .environment(env)
            .unwrap()
            .file_text("[detect]\nconf = 0.4\niou = 0.5\n")
            .unwrap()
            .flags([
                (by_flag("iou").unwrap(), "0.6"),
                (by_flag("no-full-pass").unwrap(), "false"),
            ])
            .unwrap()
            .requests([("conf", "0.9")])
            .unwrap();
        assert_eq!(l.config.model.as_deref(), Some(Path::new("env.onnx")));
        assert_eq!((l.config.detect.conf, l.config.detect.iou), (0.9, 0.6));
        assert!(!l.config.detect.full_pass);
        assert_eq!(l.source("model"), Source::Environment);
        assert_eq!(l.source("detect.conf"), Source::Request);
        assert_eq!(l.source("detect.iou"), Source::Flag);
        assert_eq!(l.source("detect.full_pass"), Source::Flag);
        assert_eq!(l.source("detect.max_det"), Source::Default);
        // The file is above the environment.
        let l = Layers::new(PipelineConfig::default())
            .environment(env)
            .unwrap()
            .file_text("model = \"file.onnx\"\n")
            .unwrap();
        assert_eq!(l.config.model.as_deref(), Some(Path::new("file.onnx")));
        // Bad values name where they came from.
        let e = Layers::new(PipelineConfig::default())
            .flags([(by_flag("conf").unwrap(), "high")])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--conf (detect.conf): \"high\" is not a number"
        );
        let l = Layers::new(PipelineConfig::default())
            .requests([("overlap", "1.0")])
            .unwrap();
        assert_eq!(
            l.validate().unwrap_err().to_string(),
            "parameter overlap (detect.overlap): 1 is outside [0, 1)"
        );
        let e = Layers::new(PipelineConfig::default())
            .requests([("full_pass", "yes")])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter full_pass (detect.full_pass): \"yes\" is not true or false"
        );
        let e = Layers::new(PipelineConfig::default())
            .requests([("threads", "3")])
            .unwrap_err();
        assert!(e.to_string().starts_with("parameter threads: unknown parameter (per-request settings: conf, iou, slice, overlap, full_pass, merge, rules)"), "{e}");
    }

    /// One value other than the default for every result setting (a new result setting must add one here).
    fn other_value(key: &str) -> &'static str {
        match key {
            "model" => "other.onnx",
            "names" => "names.txt",
            "device" => "cuda:1",
            "graph_optimization" => "extended",
            "detect.conf" => "0.3",
            "detect.iou" => "0.5",
            "detect.max_det" => "100",
            "detect.class_agnostic" => "true",
            "detect.slice" => "512",
            "detect.overlap" => "0.3",
            "detect.full_pass" => "false",
            "detect.merge" => "nms",
            "detect.match_metric" => "iou",
            "detect.merge_threshold" => "0.6",
            "detect.merge_geometry" => "aabb",
            "detect.rect" => "off",
            "rules.enabled" => "false",
            "rules.file" => "other.pl",
            "rules.gsd" => "0.3",
            "raster.bands" => "4,3,2",
            "raster.scale" => "0,4095",
            "raster.window_above_pixels" => "1000",
            "track.fps" => "25",
            "track.every" => "2",
            "track.rules_every" => "5",
            "track.live" => "on",
            "track.on" => "raw",
            "track.cmc" => "off",
            "track.geometry" => "axis",
            "track.high_score" => "0.6",
            "track.low_score" => "0.2",
            "track.new_track_score" => "0.7",
            "track.match_iou" => "0.3",
            "track.min_hits" => "3",
            "track.max_lost" => "2s",
            other => panic!("no other value for the result setting {other}: add one"),
        }
    }

    fn sample(key: &str) -> Option<&'static str> {
        Some(match key {
            "threads" => "3",
            "sessions" => "2",
            "track.save_video" => "tracks.mp4",
            "schedule" => "pipelined",
            "io_binding" => "on",
            "spinning" => "on",
            "decode_threads" => "2",
            "detect.batch" => "4",
            "output.out" => "elsewhere",
            "output.skip_existing" => "true",
            "output.save_vis" => "true",
            "kg.enabled" => "true",
            "kg.pairs" => "pairs.txt",
            "kg.min_count" => "3",
            "raster.max_pixels" => "5000",
            "raster.cache_mib" => "64",
            "raster.max_window_mib" => "64",
            "metrics.addr" => "127.0.0.1:9",
            "metrics.enabled" => "false",
            "metrics.linger" => "5s",
            "metrics.pushgateway" => "http://127.0.0.1:9091",
            "metrics.push_job" => "other",
            "metrics.push_instance" => "h",
            "metrics.textfile" => "m.prom",
            "metrics.export_interval" => "1s",
            k if k.starts_with("serve.") => match k {
                "serve.addr" => "127.0.0.1:9",
                "serve.model_name" => "m",
                "serve.timeout" | "serve.drain" | "serve.header_timeout" | "serve.body_timeout" => {
                    "3s"
                }
                "serve.token_file" | "serve.metrics_token_file" => "t",
                _ => "3",
            },
            _ => return None,
        })
    }

    #[test]
    fn the_identity_changes_with_every_result_setting_and_nothing_else() {
        let hash = |p: &Path| Some(format!("hash of {}", p.display()));
        let base = PipelineConfig {
            model: Some("m.onnx".into()),
            ..Default::default()
        };
        let id = identity(&base, hash);
        for s in SETTINGS {
            let mut c = base.clone();
            let value = match s.kind {
                Kind::Result => other_value(s.key),
                _ => sample(s.key).unwrap_or_else(|| panic!("no sample for {}", s.key)),
            };
            (s.set)(&mut c, value).unwrap_or_else(|e| panic!("{}: {e}", s.key));
            assert_ne!(c, base, "{} = {value} changes the configuration", s.key);
            let changed = identity_differences(&id, &identity(&c, hash));
            if s.kind == Kind::Result {
                assert_eq!(changed, [s.key], "{}", s.key);
            } else {
                assert!(
                    changed.is_empty(),
                    "{} ({:?}) changed the identity: {changed:?}",
                    s.key,
                    s.kind
                );
            }
        }
        // The model's identity is its content, not where it lies.
        let moved = PipelineConfig {
            model: Some("/elsewhere/m2.onnx".into()),
            ..base.clone()
        };
        let same = |_: &Path| Some("same".to_owned());
        assert_eq!(identity(&base, same), identity(&moved, same));
    }
}
