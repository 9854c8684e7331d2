//! Metric handles resolved once per run (per model), as linkerd2-proxy resolves its metric families: recording an
//! image is a few atomic operations, no label lookups. The pipeline reports in plain data
//! ([`nsod_types::outcome::ImageOutcome`]); only this module knows which series that data feeds.

use crate::Telemetry;
use crate::catalog::GaugeF64;
use crate::catalog::{
    ActionLabel, ErrorLabels, ErrorTypeLabel, ImageExemplar, InferenceLabels, ModelLabel,
    QueryLabel, ReasonLabel, RelationLabel, RequestExemplar, RouteCode, RouteLabel, StageLabel,
    StageStatus,
};
use nsod_types::outcome::{ImageOutcome, Stage};
use nsod_types::relations::Relation;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The `(stage, error_type)` pairs nsod counts in `nsod_errors_total`, created at 0 so that dashboards and
/// `rate()` see zeros from the first scrape.
pub const KNOWN_ERRORS: &[(&str, &str)] = &[
    ("decode", "image"),
    ("detect", "inference"),
    ("write", "io"),
    ("train-monitor", "io"),
    ("train-monitor", "encoding"),
    ("train-monitor", "csv"),
    ("train-monitor", "non_finite"),
    ("eval", "bad_image"),
    ("eval", "bad_label"),
    ("eval", "bad_prediction"),
];

/// The `error_type` values of `nsod_prolog_query_failures_total` (nsod-symbolic's `SymbolicError::kind`), created
/// at 0.
pub const PROLOG_ERROR_TYPES: [&str; 7] = [
    "io",
    "syntax",
    "refused",
    "exception",
    "limit",
    "invalid",
    "crash",
];

/// Creates every series of a known label set at 0 (errors, Prolog failures, relations, rule actions).
pub fn init_known_series(t: &Telemetry) {
    let m = &t.metrics;
    for (stage, error_type) in KNOWN_ERRORS {
        let _ = m.errors.get_or_create(&ErrorLabels {
            stage: (*stage).into(),
            error_type: (*error_type).into(),
        });
    }
    for e in PROLOG_ERROR_TYPES {
        let _ = m
            .pipeline
            .prolog_query_failures
            .get_or_create(&ErrorTypeLabel {
                error_type: e.into(),
            });
    }
    for r in Relation::ALL {
        let _ = m.graph.relationships.get_or_create(&RelationLabel {
            relation: r.as_str().into(),
        });
    }
    for a in ["boost", "penalty"] {
        let _ = m
            .pipeline
            .rule_applications
            .get_or_create(&ActionLabel { action: a.into() });
    }
}

/// What `nsod_model_busy_ratio` is computed from.
#[derive(Debug)]
struct BusyClock {
    began: Instant,
    run_seconds: f64,
    sessions: usize,
}

impl BusyClock {
    fn ratio(&self) -> f64 {
        let wall = self.began.elapsed().as_secs_f64() * self.sessions as f64;
        if wall > 0.0 {
            (self.run_seconds / wall).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Handles for the images of one model.
#[derive(Debug, Clone)]
pub struct InferMetrics {
    /// Per-image detection time, `[unsliced, sliced]`.
    duration: [HistogramWithExemplars<ImageExemplar>; 2],
    model_run: Histogram,
    model_load: Histogram,
    preprocess: Histogram,
    detections: Histogram,
    confidence: Histogram,
    slices: Histogram,
    skipped: Counter,
    raster_bytes: Counter,
    raster_blocks: Counter,
    nms: Histogram,
    nms_in: Counter,
    nms_out: Counter,
    ok: Counter,
    failed: Counter,
    in_flight: Gauge,
    busy: GaugeF64,
    /// The model's time running, the sessions sharing it and when the run began.
    busy_clock: Arc<Mutex<BusyClock>>,
    /// Per stage, in [`Stage::ALL`] order.
    stages: Vec<Histogram>,
    errors: Family<ErrorLabels, Counter>,
    // The rules.
    delta: Histogram,
    boost: Counter,
    penalty: Counter,
    rules_load: Histogram,
    scene_query: Histogram,
    track_query: Histogram,
    prolog_failures: Family<ErrorTypeLabel, Counter>,
    // The scene graph.
    graph_construction: Histogram,
    graph_nodes: Histogram,
    graph_edges: Histogram,
    relations: Vec<Counter>,
    facts: Counter,
    // Tracking.
    frames: Counter,
    frame_duration: Histogram,
    tracks_active: Gauge,
    tracks_started: Counter,
    /// In `TRACK_END_REASONS` order.
    tracks_ended: Vec<Counter>,
    track_update: Histogram,
    last_frame: Arc<Mutex<Option<Instant>>>,
    frames_dropped: Counter,
    stream_lag: GaugeF64,
    stream_reconnects: Counter,
}

impl InferMetrics {
    pub fn new(t: &Telemetry, model: &str) -> Self {
        let m = &t.metrics;
        let i = &m.inference;
        let p = &m.pipeline;
        let g = &m.graph;
        let model_label = ModelLabel {
            model: model.to_owned(),
        };
        let dur = |sliced: &str| {
            i.duration
                .get_or_create(&InferenceLabels {
                    model: model.to_owned(),
                    sliced: sliced.into(),
                })
                .clone()
        };
        let status = |s: &str| {
            i.images_processed
                .get_or_create(&StageStatus {
                    stage: "infer".into(),
                    status: s.into(),
                })
                .clone()
        };
        let action = |a: &str| {
            p.rule_applications
                .get_or_create(&ActionLabel { action: a.into() })
                .clone()
        };
        let query = |q: &str| {
            p.prolog_query_duration
                .get_or_create(&QueryLabel { query: q.into() })
                .clone()
        };
        Self {
            duration: [dur("false"), dur("true")],
            model_run: i.model_run.get_or_create(&model_label).clone(),
            model_load: i.model_load.get_or_create(&model_label).clone(),
            preprocess: i.preprocess.clone(),
            detections: i.detections_per_image.get_or_create(&model_label).clone(),
            confidence: i.confidence.get_or_create(&model_label).clone(),
            slices: i.slices_per_image.clone(),
            skipped: i.slices_skipped.clone(),
            raster_bytes: i.raster_bytes.clone(),
            raster_blocks: i.raster_blocks.clone(),
            nms: p.nms_duration.clone(),
            nms_in: p.nms_input.clone(),
            nms_out: p.nms_output.clone(),
            ok: status("success"),
            failed: status("error"),
            in_flight: i.images_in_flight.clone(),
            busy: i.model_busy.get_or_create(&model_label).clone(),
            busy_clock: Arc::new(Mutex::new(BusyClock {
                began: Instant::now(),
                run_seconds: 0.0,
                sessions: 1,
            })),
            stages: Stage::ALL
                .iter()
                .map(|s| {
                    p.stage_duration
                        .get_or_create(&StageLabel {
                            stage: s.as_str().into(),
                        })
                        .clone()
                })
                .collect(),
            errors: m.errors.clone(),
            delta: p.confidence_delta.clone(),
            boost: action("boost"),
            penalty: action("penalty"),
            rules_load: query("load"),
            scene_query: query("adjust"),
            track_query: query("adjust_track"),
            prolog_failures: p.prolog_query_failures.clone(),
            graph_construction: g.construction.clone(),
            graph_nodes: g.nodes.clone(),
            graph_edges: g.edges.clone(),
            relations: Relation::ALL
                .iter()
                .map(|r| {
                    g.relationships
                        .get_or_create(&RelationLabel {
                            relation: r.as_str().into(),
                        })
                        .clone()
                })
                .collect(),
            facts: g.prolog_facts.clone(),
            frames: m.tracking.frames.clone(),
            frame_duration: m.tracking.frame_duration.clone(),
            tracks_active: m.tracking.active.clone(),
            tracks_started: m.tracking.started.clone(),
            tracks_ended: crate::catalog::TRACK_END_REASONS
                .iter()
                .map(|r| {
                    m.tracking
                        .ended
                        .get_or_create(&ReasonLabel {
                            reason: (*r).into(),
                        })
                        .clone()
                })
                .collect(),
            track_update: m.tracking.update.clone(),
            last_frame: Arc::new(Mutex::new(None)),
            frames_dropped: m.tracking.dropped.clone(),
            stream_lag: m.tracking.lag.clone(),
            stream_reconnects: m.tracking.reconnects.clone(),
        }
    }

    /// The sequence is over: its `finished` remaining tracks end, and no track is active any more (what tells a
    /// finished run from a stalled one).
    pub fn tracking_finished(&self, finished: usize) {
        if let Some(i) = crate::catalog::TRACK_END_REASONS
            .iter()
            .position(|r| *r == "finished")
        {
            self.tracks_ended[i].inc_by(finished as u64);
        }
        self.tracks_active.set(0);
    }

    /// A live stream's state after a frame: totals so far of frames dropped and reconnections (the counters move
    /// by the difference), and the frame's lag from its decoding.
    pub fn stream(&self, dropped_total: u64, reconnects_total: u64, lag_seconds: Option<f64>) {
        let inc = |c: &Counter, total: u64| {
            let now = c.get();
            if total > now {
                c.inc_by(total - now);
            }
        };
        inc(&self.frames_dropped, dropped_total);
        inc(&self.stream_reconnects, reconnects_total);
        if let Some(l) = lag_seconds {
            self.stream_lag.set(l);
        }
    }

    /// One frame of `nsod track` left the tracker: `update_seconds` of tracker work, `active` confirmed tracks,
    /// `started` confirmed in it, `ended` by reason name (`TRACK_END_REASONS`); a failed frame counts as a frame.
    pub fn tracked_frame(
        &self,
        failed: bool,
        update_seconds: f64,
        active: usize,
        started: usize,
        ended: &[(&str, usize)],
    ) {
        self.frames.inc();
        if let Ok(mut last) = self.last_frame.lock() {
            let now = Instant::now();
            if let Some(t) = *last {
                self.frame_duration.observe((now - t).as_secs_f64());
            }
            *last = Some(now);
        }
        if failed {
            return;
        }
        self.track_update.observe(update_seconds);
        self.tracks_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        self.tracks_started.inc_by(started as u64);
        for (reason, n) in ended {
            if let Some(i) = crate::catalog::TRACK_END_REASONS
                .iter()
                .position(|r| r == reason)
            {
                self.tracks_ended[i].inc_by(*n as u64);
            }
        }
    }

    fn stage(&self, s: Stage) -> &Histogram {
        &self.stages[Stage::ALL.iter().position(|x| *x == s).unwrap_or(0)]
    }

    /// Time to load the model.
    pub fn model_loaded(&self, seconds: f64) {
        self.model_load.observe(seconds);
    }

    /// Time to load and compile the rule base.
    pub fn rules_loaded(&self, seconds: f64) {
        self.rules_load.observe(seconds);
    }

    /// Rules over tracks ran (`nsod track`): their boosts and penalties (each track adjusted counts once per
    /// change), and the query's time, or its error type when it failed.
    pub fn track_rules_ran(
        &self,
        boosts: usize,
        penalties: usize,
        outcome: Result<Option<f64>, &str>,
    ) {
        self.boost.inc_by(boosts as u64);
        self.penalty.inc_by(penalties as u64);
        match outcome {
            Ok(Some(seconds)) => self.track_query.observe(seconds),
            Ok(None) => {}
            Err(kind) => self.prolog_failed(kind),
        }
    }

    /// A rule base or query failed with this error type (one of [`PROLOG_ERROR_TYPES`]).
    pub fn prolog_failed(&self, error_type: &str) {
        self.prolog_failures
            .get_or_create(&ErrorTypeLabel {
                error_type: error_type.into(),
            })
            .inc();
    }

    /// The run's images begin now (the origin of `nsod_model_busy_ratio`; by default, when these handles were
    /// made), run by `sessions` sessions at once (a server's workers).
    pub fn run_began(&self, sessions: usize) {
        if let Ok(mut c) = self.busy_clock.lock() {
            *c = BusyClock {
                began: Instant::now(),
                run_seconds: 0.0,
                sessions: sessions.max(1),
            };
        }
        self.busy.set(0.0);
    }

    /// An image entered the pipeline (decoded and waiting, or being processed).
    pub fn image_started(&self) {
        self.in_flight.inc();
    }

    /// One image done: every series its outcome feeds. `exemplar` names the image on the latency histogram.
    pub fn record(&self, o: &ImageOutcome) {
        let d = &o.detect;
        self.duration[usize::from(d.sliced)].observe(
            o.timings.detect,
            Some(ImageExemplar::new(&o.image)),
            None,
        );
        for (stage, secs) in o.timings.iter() {
            if secs > 0.0 || stage == Stage::Detect {
                self.stage(stage).observe(secs);
            }
        }
        d.run_durations
            .iter()
            .for_each(|&s| self.model_run.observe(s));
        if let Ok(mut c) = self.busy_clock.lock() {
            c.run_seconds += d.run_durations.iter().sum::<f64>();
            self.busy.set(c.ratio());
        }
        d.preprocess_durations
            .iter()
            .for_each(|&s| self.preprocess.observe(s));
        self.detections.observe(o.detections.len() as f64);
        o.detections
            .iter()
            .for_each(|x| self.confidence.observe(f64::from(x.score)));
        self.slices.observe(d.slices as f64);
        d.read_durations
            .iter()
            .for_each(|&s| self.stage(Stage::Read).observe(s));
        self.skipped.inc_by(d.skipped_slices as u64);
        self.raster_bytes.inc_by(d.bytes_read);
        self.raster_blocks.inc_by(d.blocks_read);
        if d.sliced {
            self.nms.observe(d.merge_seconds);
            self.nms_in.inc_by(d.merge_input as u64);
            self.nms_out.inc_by(o.detections.len() as u64);
        }
        if let Some(r) = &o.rules {
            for c in &r.adjustment.changes {
                if c.action == "BOOST" {
                    &self.boost
                } else {
                    &self.penalty
                }
                .inc();
            }
            for (x, &s) in r.raw.iter().zip(&r.adjustment.scores) {
                if s != x.score {
                    self.delta.observe(f64::from(s) - f64::from(x.score));
                }
            }
            if let Some(q) = &r.scene {
                match &q.error {
                    None => self.scene_query.observe(q.seconds),
                    Some((kind, _)) => self.prolog_failed(kind),
                }
            }
        }
        if let Some(edges) = &o.relations {
            self.graph_construction.observe(o.timings.graph);
            self.graph_nodes.observe(o.detections.len() as f64);
            self.graph_edges.observe(edges.len() as f64);
            for e in edges {
                let k = Relation::ALL
                    .iter()
                    .position(|r| *r == e.relation)
                    .unwrap_or(0);
                self.relations[k].inc();
            }
        }
    }

    /// The outputs of an image were written (after [`InferMetrics::record`]).
    pub fn written(&self, seconds: f64) {
        self.stage(Stage::Write).observe(seconds);
        self.ok.inc();
        self.in_flight.dec();
    }

    /// An image answered by a server (no outputs written): counted as a success.
    pub fn served(&self) {
        self.ok.inc();
        self.in_flight.dec();
    }

    /// An image that left the pipeline without a result of its own: its request gave up (timeout, client gone,
    /// shutdown) or was refused before detection (over the work budget). Neither a success nor an image's failure.
    pub fn abandoned(&self) {
        self.in_flight.dec();
    }

    /// An image failed at `stage`.
    pub fn failed(&self, stage: Stage, error_type: &str) {
        self.failed.inc();
        self.errors
            .get_or_create(&ErrorLabels {
                stage: stage.as_str().into(),
                error_type: error_type.into(),
            })
            .inc();
        self.in_flight.dec();
    }

    /// Prolog facts written by the knowledge graph's export.
    pub fn facts_written(&self, n: u64) {
        self.facts.inc_by(n);
    }
}

/// Handles for one followed training run (`nsod train-monitor`): turns the watcher's plain-data updates into the
/// training series.
#[derive(Debug)]
pub struct TrainMetrics {
    model: String,
    t: crate::catalog::TrainingMetrics,
    errors: Family<ErrorLabels, Counter>,
}

impl TrainMetrics {
    pub fn new(telemetry: &Telemetry, model: &str) -> Self {
        let t = telemetry.metrics.training.clone();
        // Counters exist from the start at 0, so rate() and increase() see the first save.
        for kind in ["last", "best"] {
            let _ = t
                .checkpoint_saves
                .get_or_create(&crate::catalog::CheckpointLabels {
                    model: model.to_owned(),
                    kind: kind.into(),
                });
        }
        Self {
            model: model.to_owned(),
            t,
            errors: telemetry.metrics.errors.clone(),
        }
    }

    fn label(&self) -> ModelLabel {
        ModelLabel {
            model: self.model.clone(),
        }
    }

    /// Applies one update of the watcher.
    pub fn apply(&self, u: &nsod_train::Update) {
        use crate::catalog::{
            CheckpointLabels, LossLabels, LrLabels, MapLabels, TrainingInfoLabels,
        };
        use nsod_train::Update;
        let t = &self.t;
        let m = self.label();
        match u {
            // One process follows one run: the per-epoch families are cleared whole; counters (checkpoint saves,
            // errors) keep counting, as Prometheus expects.
            Update::NewRun => {
                t.loss.clear();
                t.validation_map.clear();
                t.learning_rate.clear();
                for f in [&t.precision, &t.recall, &t.epoch_duration, &t.eta] {
                    f.remove(&m);
                }
                t.epoch.remove(&m);
            }
            Update::Args(a) => {
                if let Some(e) = a.epochs {
                    t.epochs_planned.get_or_create(&m).set(e as i64);
                }
                t.info.clear();
                t.info
                    .get_or_create(&TrainingInfoLabels {
                        model: self.model.clone(),
                        weights: a.model.clone().unwrap_or_default(),
                        data: a.data.clone().unwrap_or_default(),
                        imgsz: a.imgsz.clone().unwrap_or_default(),
                        task: a.task.clone().unwrap_or_default(),
                    })
                    .set(1);
            }
            Update::Epoch(r) => {
                // The epoch is set last: a scrape that sees epoch N sees every value of epoch N.
                for (component, v) in &r.losses {
                    t.loss
                        .get_or_create(&LossLabels {
                            model: self.model.clone(),
                            component: component.clone(),
                        })
                        .set(*v);
                }
                for (pg, v) in &r.learning_rates {
                    t.learning_rate
                        .get_or_create(&LrLabels {
                            model: self.model.clone(),
                            param_group: pg.clone(),
                        })
                        .set(*v);
                }
                if let Some(v) = r.precision {
                    t.precision.get_or_create(&m).set(v);
                }
                if let Some(v) = r.recall {
                    t.recall.get_or_create(&m).set(v);
                }
                for (iou, v) in [("0.5", r.map50), ("0.5:0.95", r.map50_95)] {
                    if let Some(v) = v {
                        t.validation_map
                            .get_or_create(&MapLabels {
                                model: self.model.clone(),
                                iou: iou.into(),
                            })
                            .set(v);
                    }
                }
                if let Some(d) = r.duration {
                    t.epoch_duration.get_or_create(&m).set(d);
                }
                if let Some(e) = r.eta {
                    t.eta.get_or_create(&m).set(e);
                }
                t.last_progress.get_or_create(&m).set(r.at);
                t.epoch.get_or_create(&m).set(r.epoch as i64);
            }
            Update::Checkpoint { kind, at } => {
                t.checkpoint_saves
                    .get_or_create(&CheckpointLabels {
                        model: self.model.clone(),
                        kind: (*kind).into(),
                    })
                    .inc();
                t.last_checkpoint.get_or_create(&m).set(*at);
            }
            Update::Error(error_type) => {
                self.errors
                    .get_or_create(&ErrorLabels {
                        stage: "train-monitor".into(),
                        error_type: (*error_type).into(),
                    })
                    .inc();
            }
        }
    }
}

/// The routes of `nsod serve` (the `route` label).
pub const ROUTES: &[&str] = &[
    "/v1/detect",
    "/v2/models/{name}/infer",
    "/v2/models/{name}",
    "/v2",
    "health",
    "/openapi.json",
    "/metrics",
    "other",
];

/// Status codes created at 0 for the request routes.
pub const CODES: &[u16] = &[200, 400, 401, 404, 408, 413, 500, 503];

/// Status codes the HTTP layer answers before a route is known (route `other`), created at 0: a malformed request
/// (400), headers not received within `--header-timeout` (408), a request line or headers too large (414, 431).
pub const CONNECTION_CODES: &[u16] = &[400, 408, 414, 431];

/// Why a request was refused (the `reason` label).
pub const REJECT_REASONS: &[&str] = &[
    "queue_full",
    "timeout",
    "body_too_large",
    "unauthorized",
    "bad_request",
    "not_found",
    "over_budget",
    "client_gone",
    "header_timeout",
    "body_timeout",
    "uploads_full",
    "header_too_large",
];

/// Handles of `nsod serve`'s own series, known label sets created at 0.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    families: crate::catalog::ServiceFamilies,
    workers: usize,
}

impl ServiceMetrics {
    pub fn new(t: &Telemetry, workers: usize) -> Self {
        let f = t.metrics.service.clone();
        for route in ["/v1/detect", "/v2/models/{name}/infer"] {
            for code in CODES {
                let _ = f.requests.get_or_create(&RouteCode {
                    route: route.into(),
                    code: code.to_string(),
                });
            }
        }
        for code in CONNECTION_CODES {
            let _ = f.requests.get_or_create(&RouteCode {
                route: "other".into(),
                code: code.to_string(),
            });
        }
        for route in ROUTES {
            let _ = f.duration.get_or_create(&RouteLabel {
                route: (*route).into(),
            });
        }
        for reason in REJECT_REASONS {
            let _ = f.rejected.get_or_create(&ReasonLabel {
                reason: (*reason).into(),
            });
        }
        f.workers.set(workers as i64);
        Self {
            families: f,
            workers: workers.max(1),
        }
    }

    /// One answered request.
    pub fn request(&self, route: &str, code: u16, seconds: f64, request_id: &str) {
        let f = &self.families;
        f.requests
            .get_or_create(&RouteCode {
                route: route.into(),
                code: code.to_string(),
            })
            .inc();
        f.duration
            .get_or_create(&RouteLabel {
                route: route.into(),
            })
            .observe(
                seconds,
                Some(RequestExemplar {
                    request_id: request_id.chars().take(64).collect(),
                }),
                None,
            );
    }

    /// An answer the HTTP layer gave before a route was known (route `other`: 400, 408, 414, 431).
    pub fn connection_answer(&self, code: u16) {
        self.families
            .requests
            .get_or_create(&RouteCode {
                route: "other".into(),
                code: code.to_string(),
            })
            .inc();
    }

    /// A refused request.
    pub fn rejected(&self, reason: &str) {
        self.families
            .rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Requests waiting and workers running.
    pub fn set_load(&self, queued: usize, busy: usize) {
        self.families.queue_depth.set(queued as i64);
        self.families
            .busy_ratio
            .set((busy as f64 / self.workers as f64).min(1.0));
    }
}
