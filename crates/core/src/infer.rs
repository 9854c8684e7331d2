//! `nsod infer`: images in, predictions.jsonl, YOLO labels and COCO results out.

use crate::cli::{GeometryArg, GlobalArgs, InferArgs, MergeArg, MetricArg};
use crate::metrics::MetricsSession;
use crate::paths;
use anyhow::{Context, bail};
use nsod_detect::{
    Detector, DetectorConfig, Model, ModelOptions, SliceMode, is_image_path, load_image,
};
use nsod_nms::{Geometry, MatchMetric, MergeConfig, MergeMethod};
use nsod_runtime::Runtime;
use nsod_symbolic::report::ReportWriter;
use nsod_symbolic::{ImageContext, RuleBase};
use nsod_telemetry::Telemetry;
use nsod_telemetry::catalog::{
    ErrorLabels, ImageExemplar, InferenceLabels, ModelLabel, StageLabel, StageStatus,
};
use nsod_types::formats::coco::{CocoResult, CocoResultsWriter};
use nsod_types::formats::jsonl::{ImagePredictions, JsonlReader, JsonlWriter};
use nsod_types::formats::{write_atomic, yolo, yolo_obb};
use nsod_types::{ClassNames, ImageSize};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Exit code for usage and configuration errors (clap uses 2 as well).
const CONFIG_ERROR: u8 = 2;

/// Images decoded ahead of the model (bounds memory whatever the folder size).
const DECODE_AHEAD: usize = 2;

struct Job {
    path: PathBuf,
    /// Path relative to its input root, with `/` separators.
    rel: String,
}

struct Prepared {
    detector: Detector,
    jobs: Vec<Job>,
    rules: Option<RuleBase>,
    gsd: Option<f64>,
    metrics: Option<MetricsSession>,
    model_name: String,
}

pub fn run(global: &GlobalArgs, args: &InferArgs) -> anyhow::Result<ExitCode> {
    let interrupted = crate::metrics::install_signal_flag();
    match setup(global, args) {
        Ok(prepared) => process(prepared, args, &interrupted),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(CONFIG_ERROR))
        }
    }
}

fn setup(global: &GlobalArgs, a: &InferArgs) -> anyhow::Result<Prepared> {
    if !(0.0..=1.0).contains(&a.conf)
        || !(0.0..=1.0).contains(&a.iou)
        || !(0.0..=1.0).contains(&a.merge_threshold)
    {
        bail!("--conf, --iou and --merge-threshold must lie in [0, 1]");
    }
    if !(0.0..1.0).contains(&a.overlap) {
        bail!("--overlap must lie in [0, 1)");
    }
    let device = a.device.parse().map_err(anyhow::Error::msg)?;
    let gsd = crate::symbolic::check_gsd(a.gsd)?;
    let model_path = match &a.model {
        Some(p) => p.clone(),
        None => {
            let (p, ok) = paths::default_model();
            if !ok {
                bail!(
                    "no model given and the default {} is missing: pass --model or run scripts/fetch-models.sh",
                    p.display()
                );
            }
            p
        }
    };
    let names = match &a.names {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
            Some(
                nsod_detect::metadata::parse_names_file(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?,
            )
        }
        None => None,
    };
    // Leaked on purpose: the runtime lives for the whole process and sessions borrow its environment.
    let runtime: &'static Runtime = Box::leak(Box::new(Runtime::load(global.ort_lib.as_deref())?));
    for skipped in runtime.skipped.iter().filter(|s| s.path.is_some()) {
        eprintln!("warning: ONNX Runtime: skipped {skipped}");
    }
    let metrics = MetricsSession::start(&a.metrics, &runtime.version())?;
    let model_name = model_path
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let load_start = Instant::now();
    let model = Model::load(
        runtime,
        &model_path,
        &ModelOptions {
            device,
            threads: a.threads,
            names,
        },
    )?;
    if let Some(m) = &metrics {
        let label = ModelLabel {
            model: model_name.clone(),
        };
        m.telemetry
            .metrics
            .inference
            .model_load
            .get_or_create(&label)
            .observe(load_start.elapsed().as_secs_f64());
    }
    let rules = crate::symbolic::load_for_model(
        a.rules.as_deref(),
        a.no_symbolic,
        &model.names,
        metrics.as_ref().map(|m| &*m.telemetry),
    )?;
    let jobs = collect_jobs(&a.inputs)?;
    let config = DetectorConfig {
        conf: a.conf,
        iou: a.iou,
        max_det: a.max_det,
        agnostic_nms: a.class_agnostic,
        slice: match a.slice {
            None => SliceMode::Auto,
            Some(0) => SliceMode::Off,
            Some(n) => SliceMode::Size(n),
        },
        overlap: a.overlap,
        full_pass: !a.no_full_pass,
        merge: MergeConfig {
            method: match a.merge {
                MergeArg::Greedynmm => MergeMethod::GreedyNmm,
                MergeArg::Nmm => MergeMethod::Nmm,
                MergeArg::Nms => MergeMethod::Nms,
            },
            metric: match a.match_metric {
                MetricArg::Ios => MatchMetric::Ios,
                MetricArg::Iou => MatchMetric::Iou,
            },
            threshold: a.merge_threshold,
            class_agnostic: a.class_agnostic,
            geometry: match a.merge_geometry {
                GeometryArg::Rotated => Geometry::Rotated,
                GeometryArg::Aabb => Geometry::Aabb,
                GeometryArg::Probiou => Geometry::ProbIou,
            },
        },
        batch: a.batch.max(1),
    };
    if let Some(m) = &metrics {
        m.set_ready();
    }
    Ok(Prepared {
        detector: Detector::new(model, config),
        jobs,
        rules,
        gsd,
        metrics,
        model_name,
    })
}

/// Files to process: every input file, and every image under every input folder (sorted, recursive). Files
/// without an image extension inside folders are skipped with a warning.
fn collect_jobs(inputs: &[PathBuf]) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).with_context(|| format!("{}", input.display()))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(input, &mut files).with_context(|| format!("{}", input.display()))?;
            files.sort();
            for f in files {
                if is_image_path(&f) {
                    let rel = f
                        .strip_prefix(input)
                        .unwrap_or(&f)
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    jobs.push(Job { path: f, rel });
                } else {
                    eprintln!(
                        "warning: {}: skipped (not an image file extension)",
                        f.display()
                    );
                }
            }
        } else {
            let rel = input.file_name().map_or_else(
                || input.to_string_lossy().into_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            jobs.push(Job {
                path: input.clone(),
                rel,
            });
        }
    }
    Ok(jobs)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

/// Pre-resolved metric handles for one model: no family lookups per image.
struct InferTelemetry {
    /// Per-image duration, `[unsliced, sliced]`.
    duration: [HistogramWithExemplars<ImageExemplar>; 2],
    model_run: Histogram,
    preprocess: Histogram,
    detections: Histogram,
    confidence: Histogram,
    slices: Histogram,
    nms: Histogram,
    nms_in: Counter,
    nms_out: Counter,
    ok: Counter,
    failed: Counter,
    in_flight: Gauge,
    /// `[decode, detect, write]`.
    stages: [Histogram; 3],
    errors: Family<ErrorLabels, Counter>,
}

impl InferTelemetry {
    fn new(t: &Telemetry, model: &str) -> Self {
        let m = &t.metrics;
        let i = &m.inference;
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
        let stage = |s: &str| {
            m.pipeline
                .stage_duration
                .get_or_create(&StageLabel { stage: s.into() })
                .clone()
        };
        Self {
            duration: [dur("false"), dur("true")],
            model_run: i.model_run.get_or_create(&model_label).clone(),
            preprocess: i.preprocess.clone(),
            detections: i.detections_per_image.get_or_create(&model_label).clone(),
            confidence: i.confidence.get_or_create(&model_label).clone(),
            slices: i.slices_per_image.clone(),
            nms: m.pipeline.nms_duration.clone(),
            nms_in: m.pipeline.nms_input.clone(),
            nms_out: m.pipeline.nms_output.clone(),
            ok: status("success"),
            failed: status("error"),
            in_flight: i.images_in_flight.clone(),
            stages: [stage("decode"), stage("detect"), stage("write")],
            errors: m.errors.clone(),
        }
    }

    fn error(&self, stage: &str, error_type: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                stage: stage.into(),
                error_type: error_type.into(),
            })
            .inc();
    }
}

fn process(
    prepared: Prepared,
    a: &InferArgs,
    interrupted: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    let Prepared {
        mut detector,
        jobs,
        rules,
        gsd,
        metrics,
        model_name,
    } = prepared;
    let mut scene = rules.as_ref().and_then(RuleBase::session);
    let tm = metrics
        .as_ref()
        .map(|m| InferTelemetry::new(&m.telemetry, &model_name));

    let out = &a.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let oriented = detector.model.layout.is_oriented();
    let previous = if a.skip_existing {
        load_previous(out)?
    } else {
        Vec::new()
    };
    let done: std::collections::HashSet<&str> = previous.iter().map(|r| r.image.as_str()).collect();
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter(|j| !done.contains(j.rel.as_str()))
        .collect();
    let resumed = previous.len();
    if a.skip_existing {
        println!(
            "{resumed} images kept from earlier runs, {} to process",
            jobs.len()
        );
    }
    let mut jsonl = JsonlWriter::create(&out.join("predictions.jsonl"))?;
    // With rules: the detector's own output next to the refined one, and the explanations.
    let mut raw_jsonl = match &rules {
        Some(_) => Some(JsonlWriter::create(&out.join("predictions_raw.jsonl"))?),
        None => None,
    };
    let mut report = match &rules {
        Some(_) => Some(
            ReportWriter::create(out)
                .with_context(|| format!("cannot write the report in {}", out.display()))?,
        ),
        None => None,
    };
    let mut kg = if a.kg {
        let params = rules.as_ref().map(|t| t.table.params).unwrap_or_default();
        Some(crate::kg::KgWriter::create(
            out,
            params,
            a.kg_pairs.as_deref(),
        )?)
    } else {
        None
    };
    let graph_metrics = metrics.as_ref().map(|m| m.telemetry.metrics.graph.clone());
    let symbolic_telemetry = metrics
        .as_ref()
        .map(|m| crate::symbolic::SymbolicTelemetry::new(&m.telemetry));
    let names: ClassNames = detector.model.names.clone();
    let mut coco = CocoResultsWriter::create(&out.join("coco_results.json"))?;
    let mut coco_images: Vec<serde_json::Value> = Vec::new();
    let mut per_class: BTreeMap<String, usize> = BTreeMap::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    let start = Instant::now();

    // Decode ahead on a second thread while the model runs; the channel bound caps images in memory.
    let (tx, rx) = mpsc::sync_channel(DECODE_AHEAD);
    let n_jobs = jobs.len() as u64;
    let paths: Vec<(PathBuf, String)> = jobs.into_iter().map(|j| (j.path, j.rel)).collect();
    let in_flight = tm.as_ref().map(|t| t.in_flight.clone());
    let decoder = std::thread::spawn(move || {
        for (path, rel) in paths {
            let t = Instant::now();
            let img = load_image(&path);
            let decode_secs = t.elapsed().as_secs_f64();
            if let Some(g) = &in_flight {
                g.inc();
            }
            if tx.send((path, rel, img, decode_secs)).is_err() {
                break;
            }
        }
    });

    let mut emit = |record: ImagePredictions, jsonl: &mut JsonlWriter| -> anyhow::Result<()> {
        let image_id = coco_images.len() + 1;
        coco_images.push(serde_json::json!({"id": image_id, "file_name": record.image, "width": record.width, "height": record.height}));
        for d in &record.detections {
            *per_class.entry(d.class_name.clone()).or_default() += 1;
            coco.push(&CocoResult::from_detection(image_id as u64, d))?;
        }
        jsonl.write(&record)?;
        Ok(())
    };
    for record in previous {
        emit(record, &mut jsonl)?;
    }

    let progress = progress_bar(n_jobs);
    let mut was_interrupted = false;
    for (path, rel, img, decode_secs) in rx {
        if interrupted.load(Ordering::SeqCst) {
            progress.suspend(|| {
                eprintln!("interrupted: stopping; the outputs hold the {ok} images finished so far")
            });
            was_interrupted = true;
            break;
        }
        let image_start = Instant::now();
        if let Some(t) = &tm {
            t.stages[0].observe(decode_secs);
        }
        let decoded = match img {
            Ok(img) => img,
            Err(e) => {
                progress.inc(1);
                progress.suspend(|| eprintln!("error: {e}"));
                if let Some(t) = &tm {
                    t.failed.inc();
                    t.error("decode", "image");
                    t.in_flight.dec();
                }
                failed += 1;
                continue;
            }
        };
        let result = detector.detect(&decoded);
        progress.inc(1);
        let (mut img, dets) = match result {
            Ok(dets) => (decoded, dets),
            Err(e) => {
                progress.suspend(|| eprintln!("error: {}: {e}", path.display()));
                if let Some(t) = &tm {
                    t.failed.inc();
                    t.error("detect", "inference");
                    t.in_flight.dec();
                }
                failed += 1;
                continue;
            }
        };
        let detect_secs = image_start.elapsed().as_secs_f64();
        let write_start = Instant::now();
        let size = ImageSize::new(img.width(), img.height());
        if let Some(t) = &tm {
            t.duration[usize::from(dets.sliced)].observe(
                detect_secs,
                Some(ImageExemplar::new(&rel)),
                None,
            );
            t.stages[1].observe(detect_secs);
            dets.run_durations
                .iter()
                .for_each(|&d| t.model_run.observe(d));
            dets.preprocess_durations
                .iter()
                .for_each(|&d| t.preprocess.observe(d));
            t.detections.observe(dets.detections.len() as f64);
            dets.detections
                .iter()
                .for_each(|d| t.confidence.observe(f64::from(d.score)));
            t.slices.observe(dets.slices as f64);
            if dets.sliced {
                t.nms.observe(dets.merge_seconds);
                t.nms_in.inc_by(dets.merge_input as u64);
                t.nms_out.inc_by(dets.detections.len() as u64);
            }
        }
        let mut dets = dets;
        if let (Some(rule_base), Some(report)) = (&rules, report.as_mut()) {
            let t = Instant::now();
            let raw = dets.detections.clone();
            let ctx = ImageContext {
                width: size.width,
                height: size.height,
                gsd,
            };
            let (adj, scene_error) =
                crate::symbolic::refine(rule_base, scene.as_mut(), &mut dets.detections, &ctx);
            if let Some(e) = &scene_error {
                progress.suspend(|| {
                    eprintln!("warning: {rel}: scene rules skipped for this image: {e}")
                });
            }
            report
                .write(&rel, &raw, &adj)
                .with_context(|| format!("cannot write the report in {}", out.display()))?;
            if let Some(st) = &symbolic_telemetry {
                st.record(&raw, &adj, t.elapsed().as_secs_f64());
                if scene.is_some() {
                    st.record_scene(t.elapsed().as_secs_f64(), scene_error.as_ref());
                }
            }
            if let Some(w) = raw_jsonl.as_mut() {
                w.write(&ImagePredictions {
                    image: rel.clone(),
                    width: size.width,
                    height: size.height,
                    detections: raw,
                })?;
            }
        }
        if let Some(k) = kg.as_mut() {
            let t = Instant::now();
            let (nodes, edges) = k.add(&rel, &dets.detections)?;
            if let Some(g) = &graph_metrics {
                g.construction.observe(t.elapsed().as_secs_f64());
                g.nodes.observe(nodes as f64);
                g.edges.observe(edges as f64);
            }
        }
        let written = (|| -> anyhow::Result<()> {
            if a.save_vis {
                nsod_detect::vis::draw_detections(&mut img, &dets.detections, 2);
                save_vis(&img, &in_subfolder(out, "vis", Path::new(&rel))?)?;
            }
            let stem = Path::new(&rel).with_extension("txt");
            yolo::write_predictions(&in_subfolder(out, "labels", &stem)?, &dets.detections, size)?;
            if oriented {
                yolo_obb::write_predictions(
                    &in_subfolder(out, "labels-obb", &stem)?,
                    &dets.detections,
                    size,
                )?;
            }
            Ok(())
        })();
        drop(img);
        if let Err(e) = written {
            // Output that cannot be written ends the run; the files already finished stay intact.
            if let Some(t) = &tm {
                t.error("write", "io");
            }
            return Err(e);
        }
        emit(
            ImagePredictions {
                image: rel,
                width: size.width,
                height: size.height,
                detections: dets.detections,
            },
            &mut jsonl,
        )?;
        if let Some(t) = &tm {
            t.stages[2].observe(write_start.elapsed().as_secs_f64());
            t.ok.inc();
            t.in_flight.dec();
        }
        ok += 1;
    }
    progress.finish_and_clear();
    let _ = decoder.join();
    jsonl.finish()?;
    if let Some(w) = raw_jsonl {
        w.finish()?;
    }
    if let Some(k) = kg {
        if let Some(g) = &graph_metrics {
            for ((relation, _, _), n) in &k.dataset.counts {
                if nsod_types::relations::Relation::parse(relation).is_some() {
                    g.relationships
                        .get_or_create(&nsod_telemetry::catalog::RelationLabel {
                            relation: relation.clone(),
                        })
                        .inc_by(*n);
                }
            }
            g.prolog_facts
                .inc_by((k.dataset.counts.len() + 2 * k.dataset.class_objects.len() + 1) as u64);
        }
        k.finish(1)?;
    }
    if let Some(r) = report {
        r.finish()
            .with_context(|| format!("cannot write the report in {}", out.display()))?;
    }
    let categories: Vec<serde_json::Value> = names
        .as_slice()
        .iter()
        .enumerate()
        .map(|(i, n)| serde_json::json!({"id": i, "name": n}))
        .collect();
    coco.finish()?;
    write_json(
        &out.join("coco_images.json"),
        &serde_json::json!({"images": coco_images, "categories": categories}),
    )?;

    let secs = start.elapsed().as_secs_f64();
    let total: usize = per_class.values().sum();
    println!(
        "{ok} images processed, {failed} failed, {total} detections{} in {secs:.2} s ({:.2} images/s); output in {}",
        if resumed > 0 {
            format!(" (with {resumed} images kept)")
        } else {
            String::new()
        },
        ok as f64 / secs.max(1e-9),
        out.display()
    );
    for (class, n) in &per_class {
        println!("  {class}: {n}");
    }
    if let Some(m) = metrics {
        m.finish(interrupted);
    }
    Ok(if was_interrupted {
        ExitCode::from(130)
    } else if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The records of earlier runs in `out`: the complete `predictions.jsonl`, overridden by the `.partial` file an
/// interrupted run left, read up to its first unreadable line (the one the interruption cut).
fn load_previous(out: &Path) -> anyhow::Result<Vec<ImagePredictions>> {
    let mut by_image: BTreeMap<String, ImagePredictions> = BTreeMap::new();
    let complete = out.join("predictions.jsonl");
    if complete.exists() {
        for r in JsonlReader::open(&complete)? {
            let r = r?;
            by_image.insert(r.image.clone(), r);
        }
    }
    let partial = out.join("predictions.jsonl.partial");
    if partial.exists() {
        for r in JsonlReader::open(&partial)? {
            match r {
                Ok(r) => {
                    by_image.insert(r.image.clone(), r);
                }
                Err(e) => {
                    eprintln!("warning: {e}: ignoring the rest of the interrupted run's file");
                    break;
                }
            }
        }
    }
    Ok(by_image.into_values().collect())
}

/// A progress bar with images/s and ETA on a terminal; hidden when stderr is not a terminal.
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Writes an annotated image (atomically): JPEG, BMP and TIFF inputs keep their format, everything else is PNG.
fn save_vis(img: &image::RgbImage, path: &Path) -> anyhow::Result<()> {
    use image::ImageFormat;
    let (format, path) = match ImageFormat::from_path(path) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Bmp | ImageFormat::Tiff)) => {
            (f, path.to_path_buf())
        }
        _ => (ImageFormat::Png, path.with_extension("png")),
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format)
        .with_context(|| format!("{}: cannot encode", path.display()))?;
    write_atomic(&path, |w: &mut dyn Write| w.write_all(bytes.get_ref()))?;
    Ok(())
}

/// `out/sub/rel`, with its parent folders created.
fn in_subfolder(out: &Path, sub: &str, rel: &Path) -> anyhow::Result<PathBuf> {
    let path = out.join(sub).join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(path)
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    write_atomic(path, |w: &mut dyn Write| {
        serde_json::to_writer(&mut *w, value)?;
        w.write_all(b"\n")
    })?;
    Ok(())
}
