//! The metric catalog: every family nsod exports, with its labels and buckets. Names are the contract with
//! dashboards and alerts (see the table in docs/metrics.md).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A gauge holding an `f64`.
pub type GaugeF64 = Gauge<f64, AtomicU64>;
/// A histogram family whose buckets are set by a constructor function.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InferenceLabels {
    pub model: String,
    /// `"true"` when the image was sliced.
    pub sliced: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageStatus {
    pub stage: String,
    /// `success` or `error`.
    pub status: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabel {
    pub query: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorTypeLabel {
    pub error_type: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// `boost` or `penalty`.
    pub action: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelationLabel {
    pub relation: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LossLabels {
    pub model: String,
    pub component: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MapLabels {
    pub model: String,
    /// `"0.5"` or `"0.5:0.95"`.
    pub iou: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LrLabels {
    pub model: String,
    pub param_group: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckpointLabels {
    pub model: String,
    /// `last`, `best` or `epoch`.
    pub kind: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrainingInfoLabels {
    pub model: String,
    pub weights: String,
    pub data: String,
    pub imgsz: String,
    pub task: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub stage: String,
    pub error_type: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub git_sha: String,
    pub ort_version: String,
}

/// The exemplar of the per-image inference histogram: the image's path (relative to its input root), so a slow
/// bucket leads to the image without a high-cardinality label.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImageExemplar {
    pub image: String,
}

impl ImageExemplar {
    /// OpenMetrics limits an exemplar's labels to 128 UTF-8 characters; long paths keep their end.
    pub fn new(path: &str) -> Self {
        const MAX: usize = 128 - "image".len();
        let n = path.chars().count();
        let image = if n <= MAX {
            path.to_owned()
        } else {
            path.chars().skip(n - MAX).collect()
        };
        Self { image }
    }
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteCode {
    pub route: String,
    pub code: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// The exemplar of a request's latency: its request id.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestExemplar {
    pub request_id: String,
}

pub type RequestHistogram = Family<
    RouteLabel,
    HistogramWithExemplars<RequestExemplar>,
    fn() -> HistogramWithExemplars<RequestExemplar>,
>;

fn request_seconds() -> HistogramWithExemplars<RequestExemplar> {
    HistogramWithExemplars::new(IMAGE_SECONDS.iter().copied())
}

/// `nsod serve`.
#[derive(Debug, Clone)]
pub struct ServiceFamilies {
    pub requests: Family<RouteCode, Counter>,
    pub duration: RequestHistogram,
    pub queue_depth: Gauge,
    pub rejected: Family<ReasonLabel, Counter>,
    pub busy_ratio: GaugeF64,
    pub workers: Gauge,
}

pub type InferenceHistogram = Family<
    InferenceLabels,
    HistogramWithExemplars<ImageExemplar>,
    fn() -> HistogramWithExemplars<ImageExemplar>,
>;

macro_rules! buckets {
    ($name:ident, [$($b:expr),* $(,)?]) => {
        pub const $name: &[f64] = &[$($b),*];
    };
}

buckets!(
    IMAGE_SECONDS,
    [
        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0
    ]
);
buckets!(
    RUN_SECONDS,
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
    ]
);
buckets!(
    FAST_SECONDS,
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0
    ]
);
buckets!(
    LOAD_SECONDS,
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
);
buckets!(
    COUNTS,
    [
        0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0
    ]
);
buckets!(SLICES, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
buckets!(
    CONFIDENCE,
    [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
);
buckets!(
    DELTA,
    [
        -0.5, -0.25, -0.1, -0.05, -0.01, 0.0, 0.01, 0.05, 0.1, 0.25, 0.5
    ]
);

fn image_seconds() -> HistogramWithExemplars<ImageExemplar> {
    HistogramWithExemplars::new(IMAGE_SECONDS.iter().copied())
}
fn run_seconds() -> Histogram {
    Histogram::new(RUN_SECONDS.iter().copied())
}
fn fast_seconds() -> Histogram {
    Histogram::new(FAST_SECONDS.iter().copied())
}
fn load_seconds() -> Histogram {
    Histogram::new(LOAD_SECONDS.iter().copied())
}
fn counts() -> Histogram {
    Histogram::new(COUNTS.iter().copied())
}
fn confidence() -> Histogram {
    Histogram::new(CONFIDENCE.iter().copied())
}

/// Inference stage.
#[derive(Debug, Clone)]
pub struct InferenceMetrics {
    pub duration: InferenceHistogram,
    pub model_run: HistogramFamily<ModelLabel>,
    pub preprocess: Histogram,
    pub model_load: HistogramFamily<ModelLabel>,
    pub detections_per_image: HistogramFamily<ModelLabel>,
    pub confidence: HistogramFamily<ModelLabel>,
    pub slices_per_image: Histogram,
    pub images_processed: Family<StageStatus, Counter>,
    pub images_in_flight: Gauge,
    /// Share of the wall time the model's sessions ran.
    pub model_busy: Family<ModelLabel, GaugeF64>,
    /// Rasters read window by window.
    pub slices_skipped: Counter,
    pub raster_bytes: Counter,
    pub raster_blocks: Counter,
}

/// Merging, rules and stage timings.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pub nms_duration: Histogram,
    pub nms_input: Counter,
    pub nms_output: Counter,
    pub stage_duration: HistogramFamily<StageLabel>,
    pub prolog_query_duration: HistogramFamily<QueryLabel>,
    pub prolog_query_failures: Family<ErrorTypeLabel, Counter>,
    pub confidence_delta: Histogram,
    pub rule_applications: Family<ActionLabel, Counter>,
}

/// Knowledge graph.
#[derive(Debug, Clone)]
pub struct GraphMetrics {
    pub construction: Histogram,
    pub nodes: Histogram,
    pub edges: Histogram,
    pub relationships: Family<RelationLabel, Counter>,
    pub prolog_facts: Counter,
}

/// Training runs (`nsod train-monitor`).
#[derive(Debug, Clone)]
pub struct TrainingMetrics {
    pub loss: Family<LossLabels, GaugeF64>,
    pub epoch: Family<ModelLabel, Gauge>,
    pub epochs_planned: Family<ModelLabel, Gauge>,
    pub validation_map: Family<MapLabels, GaugeF64>,
    pub precision: Family<ModelLabel, GaugeF64>,
    pub recall: Family<ModelLabel, GaugeF64>,
    pub learning_rate: Family<LrLabels, GaugeF64>,
    pub epoch_duration: Family<ModelLabel, GaugeF64>,
    pub checkpoint_saves: Family<CheckpointLabels, Counter>,
    pub last_progress: Family<ModelLabel, GaugeF64>,
    pub info: Family<TrainingInfoLabels, Gauge>,
    pub eta: Family<ModelLabel, GaugeF64>,
    pub last_checkpoint: Family<ModelLabel, GaugeF64>,
    pub process_up: Family<ModelLabel, Gauge>,
    pub process_cpu: Family<ModelLabel, Counter<f64, AtomicU64>>,
    pub process_memory: Family<ModelLabel, GaugeF64>,
}

/// The reasons of `nsod_tracks_ended_total`, created at 0 (nsod-track's `EndReason`s).
pub const TRACK_END_REASONS: [&str; 2] = ["lost", "finished"];

/// `nsod track`.
#[derive(Debug, Clone)]
pub struct TrackingMetrics {
    pub frames: Counter,
    pub frame_duration: Histogram,
    pub active: Gauge,
    pub started: Counter,
    pub ended: Family<ReasonLabel, Counter>,
    pub update: Histogram,
    /// Live streams.
    pub dropped: Counter,
    pub lag: GaugeF64,
    pub reconnects: Counter,
}

/// All families, registered in `registry`.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub tracking: TrackingMetrics,
    pub build_info: Family<BuildLabels, Gauge>,
    pub inference: InferenceMetrics,
    pub pipeline: PipelineMetrics,
    pub graph: GraphMetrics,
    pub training: TrainingMetrics,
    pub service: ServiceFamilies,
    pub errors: Family<ErrorLabels, Counter>,
}

impl Catalog {
    /// Creates one series with empty labels in every family, so an encoding lists every family of the catalog
    /// (prometheus-client leaves out families without series). For listing the catalog, never on a live registry.
    pub fn touch_all(&self) {
        let i = &self.inference;
        let _ = i.duration.get_or_create(&Default::default());
        let _ = i.model_run.get_or_create(&Default::default());
        let _ = i.model_load.get_or_create(&Default::default());
        let _ = i.model_busy.get_or_create(&Default::default());
        let _ = i.detections_per_image.get_or_create(&Default::default());
        let _ = i.confidence.get_or_create(&Default::default());
        let _ = i.images_processed.get_or_create(&Default::default());
        let p = &self.pipeline;
        let _ = p.stage_duration.get_or_create(&Default::default());
        let _ = p.prolog_query_duration.get_or_create(&Default::default());
        let _ = p.prolog_query_failures.get_or_create(&Default::default());
        let _ = p.rule_applications.get_or_create(&Default::default());
        let _ = self.graph.relationships.get_or_create(&Default::default());
        let t = &self.training;
        let _ = t.loss.get_or_create(&Default::default());
        let _ = t.epoch.get_or_create(&Default::default());
        let _ = t.epochs_planned.get_or_create(&Default::default());
        let _ = t.validation_map.get_or_create(&Default::default());
        let _ = t.precision.get_or_create(&Default::default());
        let _ = t.recall.get_or_create(&Default::default());
        let _ = t.learning_rate.get_or_create(&Default::default());
        let _ = t.epoch_duration.get_or_create(&Default::default());
        let _ = t.checkpoint_saves.get_or_create(&Default::default());
        let _ = t.last_progress.get_or_create(&Default::default());
        let _ = t.info.get_or_create(&Default::default());
        let _ = t.eta.get_or_create(&Default::default());
        let _ = t.last_checkpoint.get_or_create(&Default::default());
        let _ = t.process_up.get_or_create(&Default::default());
        let _ = t.process_cpu.get_or_create(&Default::default());
        let _ = t.process_memory.get_or_create(&Default::default());
        let v = &self.service;
        let _ = v.requests.get_or_create(&Default::default());
        let _ = v.duration.get_or_create(&Default::default());
        let _ = v.rejected.get_or_create(&Default::default());
        let _ = self.tracking.ended.get_or_create(&Default::default());
        let _ = self.build_info.get_or_create(&Default::default());
        let _ = self.errors.get_or_create(&Default::default());
    }

    pub fn register(r: &mut Registry) -> Self {
        let c = Self {
            tracking: TrackingMetrics {
                frames: Counter::default(),
                frame_duration: Histogram::new(IMAGE_SECONDS.iter().copied()),
                active: Gauge::default(),
                started: Counter::default(),
                ended: Family::default(),
                update: fast_seconds(),
                dropped: Counter::default(),
                lag: GaugeF64::default(),
                reconnects: Counter::default(),
            },
            build_info: Family::default(),
            inference: InferenceMetrics {
                duration: Family::new_with_constructor(image_seconds),
                model_run: Family::new_with_constructor(run_seconds),
                preprocess: fast_seconds(),
                model_load: Family::new_with_constructor(load_seconds),
                detections_per_image: Family::new_with_constructor(counts),
                confidence: Family::new_with_constructor(confidence),
                slices_per_image: Histogram::new(SLICES.iter().copied()),
                images_processed: Family::default(),
                images_in_flight: Gauge::default(),
                model_busy: Family::default(),
                slices_skipped: Counter::default(),
                raster_bytes: Counter::default(),
                raster_blocks: Counter::default(),
            },
            pipeline: PipelineMetrics {
                nms_duration: fast_seconds(),
                nms_input: Counter::default(),
                nms_output: Counter::default(),
                stage_duration: Family::new_with_constructor(fast_seconds),
                prolog_query_duration: Family::new_with_constructor(fast_seconds),
                prolog_query_failures: Family::default(),
                confidence_delta: Histogram::new(DELTA.iter().copied()),
                rule_applications: Family::default(),
            },
            graph: GraphMetrics {
                construction: fast_seconds(),
                nodes: counts(),
                edges: counts(),
                relationships: Family::default(),
                prolog_facts: Counter::default(),
            },
            training: TrainingMetrics {
                loss: Family::default(),
                epoch: Family::default(),
                epochs_planned: Family::default(),
                validation_map: Family::default(),
                precision: Family::default(),
                recall: Family::default(),
                learning_rate: Family::default(),
                epoch_duration: Family::default(),
                checkpoint_saves: Family::default(),
                last_progress: Family::default(),
                info: Family::default(),
                eta: Family::default(),
                last_checkpoint: Family::default(),
                process_up: Family::default(),
                process_cpu: Family::default(),
                process_memory: Family::default(),
            },
            service: ServiceFamilies {
                requests: Family::default(),
                duration: Family::new_with_constructor(request_seconds),
                queue_depth: Gauge::default(),
                rejected: Family::default(),
                busy_ratio: GaugeF64::default(),
                workers: Gauge::default(),
            },
            errors: Family::default(),
        };
        // Counters are registered without `_total`: prometheus-client appends it.
        r.register(
            "nsod_build_info",
            "Build information; always 1",
            c.build_info.clone(),
        );
        let i = &c.inference;
        r.register(
            "nsod_inference_duration_seconds",
            "Time to detect objects in one image, all slices included",
            i.duration.clone(),
        );
        r.register(
            "nsod_model_run_duration_seconds",
            "Time of one ONNX Runtime session run",
            i.model_run.clone(),
        );
        r.register(
            "nsod_model_busy_ratio",
            "Share of the wall time since the run began that the model's sessions were running, per session (0-1): whether the CPU stages keep the model fed",
            i.model_busy.clone(),
        );
        r.register(
            "nsod_preprocess_duration_seconds",
            "Letterboxing time per session run",
            i.preprocess.clone(),
        );
        r.register(
            "nsod_model_load_duration_seconds",
            "Time to load a model",
            i.model_load.clone(),
        );
        r.register(
            "nsod_detections_per_image",
            "Detections per image after merging",
            i.detections_per_image.clone(),
        );
        r.register(
            "nsod_detection_confidence",
            "Confidence of each detection",
            i.confidence.clone(),
        );
        r.register(
            "nsod_sahi_slices_per_image",
            "Slices run per image, the full-image pass included",
            i.slices_per_image.clone(),
        );
        r.register(
            "nsod_slices_skipped",
            "Slices of rasters not run because they held no data (nodata or transparent)",
            i.slices_skipped.clone(),
        );
        r.register(
            "nsod_raster_read_bytes",
            "Bytes of pixel data read from rasters read window by window (decoded, every band read)",
            i.raster_bytes.clone(),
        );
        r.register(
            "nsod_raster_blocks_read",
            "Blocks (tiles or strips, per band) of rasters read window by window that reads touched",
            i.raster_blocks.clone(),
        );
        r.register(
            "nsod_images_processed",
            "Images finished, by stage and status",
            i.images_processed.clone(),
        );
        r.register(
            "nsod_images_in_flight",
            "Images decoded and not yet finished",
            i.images_in_flight.clone(),
        );
        let p = &c.pipeline;
        r.register(
            "nsod_nms_duration_seconds",
            "Time to merge the slice detections of one image",
            p.nms_duration.clone(),
        );
        r.register(
            "nsod_nms_input_detections",
            "Detections entering the merge",
            p.nms_input.clone(),
        );
        r.register(
            "nsod_nms_output_detections",
            "Detections leaving the merge",
            p.nms_output.clone(),
        );
        r.register(
            "nsod_pipeline_stage_duration_seconds",
            "Time per image spent in each pipeline stage",
            p.stage_duration.clone(),
        );
        r.register(
            "nsod_prolog_query_duration_seconds",
            "Time of a Prolog query",
            p.prolog_query_duration.clone(),
        );
        r.register(
            "nsod_prolog_query_failures",
            "Failed Prolog queries by error type",
            p.prolog_query_failures.clone(),
        );
        r.register(
            "nsod_confidence_adjustment_delta",
            "Confidence change made by the rules (new - old)",
            p.confidence_delta.clone(),
        );
        r.register(
            "nsod_rule_applications",
            "Rule applications by action",
            p.rule_applications.clone(),
        );
        let g = &c.graph;
        r.register(
            "nsod_graph_construction_duration_seconds",
            "Time to build one image's scene graph",
            g.construction.clone(),
        );
        r.register("nsod_graph_nodes", "Nodes per scene graph", g.nodes.clone());
        r.register("nsod_graph_edges", "Edges per scene graph", g.edges.clone());
        r.register(
            "nsod_relationships_extracted",
            "Relations extracted by type",
            g.relationships.clone(),
        );
        r.register(
            "nsod_prolog_facts_generated",
            "Prolog facts written",
            g.prolog_facts.clone(),
        );
        let t = &c.training;
        r.register(
            "nsod_training_loss",
            "Training and validation loss by component, last epoch",
            t.loss.clone(),
        );
        r.register(
            "nsod_training_epoch",
            "Last finished epoch (1-based)",
            t.epoch.clone(),
        );
        r.register(
            "nsod_training_epochs_planned",
            "Epochs the run is configured for",
            t.epochs_planned.clone(),
        );
        r.register(
            "nsod_validation_map",
            "Validation mAP by IoU range, as a ratio",
            t.validation_map.clone(),
        );
        r.register(
            "nsod_validation_precision",
            "Validation precision, as a ratio",
            t.precision.clone(),
        );
        r.register(
            "nsod_validation_recall",
            "Validation recall, as a ratio",
            t.recall.clone(),
        );
        r.register(
            "nsod_learning_rate",
            "Learning rate by parameter group",
            t.learning_rate.clone(),
        );
        r.register(
            "nsod_training_epoch_duration_seconds",
            "Duration of the last epoch",
            t.epoch_duration.clone(),
        );
        r.register(
            "nsod_checkpoint_saves",
            "Checkpoint files written, by kind",
            t.checkpoint_saves.clone(),
        );
        r.register(
            "nsod_training_last_progress_timestamp_seconds",
            "Unix time of the last finished epoch",
            t.last_progress.clone(),
        );
        r.register(
            "nsod_training_info",
            "The training run's settings from args.yaml; always 1",
            t.info.clone(),
        );
        r.register(
            "nsod_training_eta_seconds",
            "Estimated time to the last planned epoch",
            t.eta.clone(),
        );
        r.register(
            "nsod_checkpoint_last_save_timestamp_seconds",
            "Unix time of the last checkpoint write",
            t.last_checkpoint.clone(),
        );
        r.register(
            "nsod_training_process_up",
            "1 while the wrapped training command runs",
            t.process_up.clone(),
        );
        r.register(
            "nsod_training_process_cpu_seconds",
            "CPU time used by the wrapped training command",
            t.process_cpu.clone(),
        );
        r.register(
            "nsod_training_process_resident_memory_bytes",
            "Resident memory of the wrapped training command",
            t.process_memory.clone(),
        );
        let v = &c.service;
        r.register(
            "nsod_http_requests",
            "HTTP requests answered by nsod serve, by route and status code",
            v.requests.clone(),
        );
        r.register(
            "nsod_http_request_duration_seconds",
            "Time to answer an HTTP request, by route (exemplar: the request id)",
            v.duration.clone(),
        );
        r.register(
            "nsod_queue_depth",
            "Requests admitted and waiting for a session worker",
            v.queue_depth.clone(),
        );
        r.register(
            "nsod_requests_rejected",
            "Requests refused, by reason (queue_full, timeout, body_too_large, unauthorized, bad_request, not_found, over_budget, client_gone, header_timeout, body_timeout, uploads_full, header_too_large)",
            v.rejected.clone(),
        );
        let k = &c.tracking;
        r.register(
            "nsod_frames",
            "Frames of a sequence tracked by nsod track (failed frames included)",
            k.frames.clone(),
        );
        r.register(
            "nsod_frame_duration_seconds",
            "Time between two consecutive frames leaving the tracker (the sequence's processing pace)",
            k.frame_duration.clone(),
        );
        r.register(
            "nsod_tracks_active",
            "Confirmed tracks alive after the last frame (matched or lost)",
            k.active.clone(),
        );
        r.register("nsod_tracks_started", "Tracks confirmed", k.started.clone());
        r.register(
            "nsod_tracks_ended",
            "Tracks ended, by reason (lost: unmatched longer than --max-lost; finished: the sequence ended)",
            k.ended.clone(),
        );
        r.register(
            "nsod_track_update_duration_seconds",
            "Time of one tracker update (association and filters for one frame)",
            k.update.clone(),
        );
        r.register(
            "nsod_frames_dropped",
            "Frames of a live stream decoded but not processed (the pipeline was behind; the newest frame wins)",
            k.dropped.clone(),
        );
        r.register(
            "nsod_stream_lag_seconds",
            "Live stream: time from a frame's decoding to the end of its tracking, for the last frame",
            k.lag.clone(),
        );
        r.register(
            "nsod_stream_reconnects",
            "Live stream: reconnections after the stream ended or failed",
            k.reconnects.clone(),
        );
        r.register(
            "nsod_worker_busy_ratio",
            "Share of the session workers running an image (0-1)",
            v.busy_ratio.clone(),
        );
        r.register(
            "nsod_workers",
            "Session workers of nsod serve",
            v.workers.clone(),
        );
        r.register("nsod_errors", "Errors by stage and type", c.errors.clone());
        c
    }
}
