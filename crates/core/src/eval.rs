//! `nsod eval`: glue between the inputs on disk, the evaluation crate and the outputs.

use crate::metrics::{MetricsSession, install_signal_flag};
use crate::settings::{MetricsSet, SettingFlags};
use anyhow::{Context, bail};
use clap::Args;
use nsod_eval::load::{self, GtFormat, LabelOptions, Problem};
use nsod_eval::report::{self, Meta, Run};
use nsod_eval::voc::ApMethod;
use nsod_eval::{Detections, coco, voc};
use nsod_pipeline::error_chain;
use nsod_pipeline::inputs::read_predictions;
use nsod_telemetry::catalog::{ErrorLabels, MapLabels, ModelLabel};
use nsod_types::formats::jsonl::ImagePredictions;
use nsod_types::{ClassNames, ImageSize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--gt-format`: the names nsod-eval's `GtFormat` reads, offered as clap's possible values.
fn gt_format_parser() -> impl clap::builder::TypedValueParser<Value = GtFormat> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(GtFormat::NAMES).try_map(|s| s.parse::<GtFormat>())
}

/// `--mot-benchmark`: the names nsod-eval's `Benchmark` reads.
fn benchmark_parser() -> impl clap::builder::TypedValueParser<Value = nsod_eval::mot::Benchmark> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(nsod_eval::mot::Benchmark::NAMES)
        .try_map(|s| s.parse::<nsod_eval::mot::Benchmark>())
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Ground truth: a COCO annotations .json, or a folder of YOLO / YOLO-OBB / DOTA label files named after the
    /// images.
    #[arg(long, value_name = "PATH", required_unless_present = "mot")]
    pub gt: Option<PathBuf>,
    /// Tracking evaluation (HOTA, CLEAR MOT, Identity, as TrackEval): MOTChallenge ground truth, a gt.txt, a
    /// sequence folder (gt/gt.txt, seqinfo.ini) or a folder of sequence folders; --pred is the tracker's file or a
    /// folder of <sequence>.txt. Rows with 12 columns are nsod's oriented layout, matched by polygon IoU.
    #[arg(long, value_name = "GT", conflicts_with_all = ["gt", "gt_format", "run", "images", "names", "voc07", "plots", "task1", "max_dets", "bootstrap"])]
    pub mot: Option<PathBuf>,
    /// TrackEval's preprocessing for --mot: mot15 (class-agnostic; ground-truth rows with conf 0 ignored), mot17
    /// (pedestrians only, tracker boxes on distractors removed) or mot20.
    #[arg(long, value_name = "BENCHMARK", requires = "mot", default_value = "mot15", value_parser = benchmark_parser())]
    pub mot_benchmark: nsod_eval::mot::Benchmark,
    /// Format of --gt (default: guessed from the file or the first label file).
    #[arg(long, value_name = "FORMAT", value_parser = gt_format_parser())]
    pub gt_format: Option<GtFormat>,
    /// Predictions: an nsod predictions.jsonl, a folder of YOLO or YOLO-OBB txt predictions (`cls cx cy w h conf`,
    /// `cls x1 y1 ... x4 y4 conf`; needs --images) or a COCO results .json. Repeat to compare sets side by side (first = before, last = after).
    #[arg(long = "pred", value_name = "PATH")]
    pub pred: Vec<PathBuf>,
    /// An `nsod infer --rules` output folder: compares its predictions_raw.jsonl (before the rules) with its
    /// predictions.jsonl (after).
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// Names of the prediction sets in the tables, in order (default: `raw`/`refined` for --run, else file names).
    #[arg(long = "label", value_name = "NAME")]
    pub labels: Vec<String>,
    /// Image folder: sizes for normalised labels and predictions; its images without a label file are evaluated as
    /// background (no objects).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Class names, in id order: comma-separated, or a file (one name per line, or an Ultralytics data.yaml).
    /// Default: the names in the predictions (DOTA-v1 for DOTA labels without them).
    #[arg(long, value_name = "NAMES|FILE")]
    pub names: Option<String>,
    /// Write eval.json, eval.md (and with --plots, pr/<class>.svg) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// VOC/DOTA AP with the VOC07 11-point method (the DOTA devkit's) instead of all points.
    #[arg(long)]
    pub voc07: bool,
    /// IoU threshold of the VOC/DOTA AP (matches need IoU strictly above it).
    #[arg(long, default_value_t = 0.5, value_name = "IOU")]
    pub voc_iou: f64,
    /// COCO's last maxDets (pycocotools' `params.maxDets[-1]`): the most detections per image and class counted for
    /// AP and AR. Raise it for images with more than 100 objects (large rasters, dense stands), where 100 caps recall.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub max_dets: u32,
    /// With two or more prediction sets: the interval of the change from the first to the last (AP50, AP, AR) by a
    /// paired spatial block bootstrap with N replicates (see --bootstrap-block).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(100..=100_000))]
    pub bootstrap: Option<u32>,
    /// Side of the bootstrap's blocks, pixels: each image is cut into such blocks, each object goes with its block
    /// and each detection with the object it overlaps most.
    #[arg(long, value_name = "PX", default_value_t = 100, requires = "bootstrap", value_parser = clap::value_parser!(u32).range(8..=100_000))]
    pub bootstrap_block: u32,
    /// Seed of the bootstrap's draws (the same seed, the same interval).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "bootstrap")]
    pub bootstrap_seed: u64,
    /// Write a precision-recall plot (SVG, IoU 0.50) per class to OUT/pr/.
    #[arg(long, requires = "out")]
    pub plots: bool,
    /// Also write the last prediction set as DOTA Task 1 files (Task1_<class>.txt: `image score x1 y1 ... x4 y4`),
    /// the format of the DOTA evaluation server and of the DOTA devkit's task1 evaluation.
    #[arg(long, value_name = "DIR")]
    pub task1: Option<PathBuf>,
    /// Metrics: the results are exported as nsod_validation_map, _precision and _recall through
    /// --metrics-textfile or --pushgateway, or served on /metrics for --metrics-linger.
    #[command(flatten)]
    pub metrics: SettingFlags<MetricsSet>,
}

/// Reads `--names`: a comma list, a file with one name per line, or a data.yaml with a `names:` list or map.
fn parse_names(arg: &str) -> anyhow::Result<ClassNames> {
    let path = Path::new(arg);
    if !path.is_file() {
        if arg.ends_with(".yaml") || arg.ends_with(".yml") || arg.ends_with(".txt") {
            bail!("--names {arg}: no such file");
        }
        return Ok(ClassNames::new(arg.split(',').map(str::trim)));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("--names {arg}"))?;
    let yaml = arg.ends_with(".yaml") || arg.ends_with(".yml");
    if !yaml {
        return Ok(ClassNames::new(
            text.lines().map(str::trim).filter(|l| !l.is_empty()),
        ));
    }
    // `names:` as an inline list, a block list or a block map `0: plane`.
    let unquote = |s: &str| s.trim().trim_matches(|c| c == '\'' || c == '"').to_owned();
    let mut names: BTreeMap<usize, String> = BTreeMap::new();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("names:"));
    let Some(first) = lines.next() else {
        bail!("{arg}: no `names:` key");
    };
    let inline = first["names:".len()..].trim();
    if let Some(list) = inline.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return Ok(ClassNames::new(list.split(',').map(unquote)));
    }
    for l in lines.take_while(|l| l.starts_with(' ') || l.starts_with('-') || l.trim().is_empty()) {
        let t = l.trim();
        if let Some(item) = t.strip_prefix('-') {
            names.insert(names.len(), unquote(item));
        } else if let Some((k, v)) = t.split_once(':')
            && let Ok(k) = k.trim().parse::<usize>()
        {
            names.insert(k, unquote(v));
        }
    }
    if names.is_empty() {
        bail!("{arg}: `names:` is empty");
    }
    let n = names.keys().max().map_or(0, |m| m + 1);
    if n > nsod_types::detection::MAX_CLASSES {
        bail!(
            "{arg}: class id {} in `names:` is above the maximum of {} classes",
            n - 1,
            nsod_types::detection::MAX_CLASSES
        );
    }
    Ok(ClassNames::new((0..n).map(|i| {
        names.get(&i).cloned().unwrap_or_else(|| i.to_string())
    })))
}

/// One prediction source on disk.
enum Source {
    /// Predictions with image names (jsonl, YOLO txt folder).
    Named(Vec<ImagePredictions>),
    /// A COCO results file.
    Coco(PathBuf),
}

fn load_source(
    path: &Path,
    images: Option<&Path>,
    names: &ClassNames,
    problems: &mut Vec<Problem>,
) -> anyhow::Result<Source> {
    if path.is_file() && path.extension().is_some_and(|e| e == "json") {
        return Ok(Source::Coco(path.to_path_buf()));
    }
    let records =
        read_predictions(path, images, names).map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let mut out = Vec::new();
    for r in records {
        match r {
            Ok(p) => out.push(p),
            Err(e) => problems.push(Problem {
                message: error_chain(&e),
                kind: "bad_prediction",
            }),
        }
    }
    Ok(Source::Named(out))
}

fn default_label(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    match name.as_str() {
        nsod_pipeline::layout::PREDICTIONS_RAW => "raw".into(),
        nsod_pipeline::layout::PREDICTIONS | nsod_pipeline::layout::COCO_RESULTS => path
            .parent()
            .and_then(Path::file_name)
            .map_or(name.clone(), |p| p.to_string_lossy().into_owned()),
        _ => name,
    }
}

/// `nsod eval --mot`: tracking metrics per sequence and combined.
fn run_mot(args: &EvalArgs, gt: &Path) -> anyhow::Result<ExitCode> {
    use nsod_eval::mot;
    if !args.metrics.given.is_empty() {
        bail!(
            "--mot: the metrics flags export detection results (mAP); they are not applied to tracking metrics"
        );
    }
    if args.voc_iou != 0.5 {
        bail!(
            "--voc-iou applies to detection AP; tracking metrics match at IoU 0.5 (CLEAR, Identity) and 0.05-0.95 (HOTA)"
        );
    }
    let [pred] = args.pred.as_slice() else {
        bail!(
            "--mot needs exactly one --pred: the tracker's file or folder of <sequence>.txt files"
        );
    };
    let seqs = mot::discover(gt, pred).map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let results =
        mot::evaluate(&seqs, args.mot_benchmark).map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let md = mot::markdown_table(&results);
    print!("{md}");
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let json = serde_json::to_string_pretty(&results)?;
        nsod_types::formats::write_atomic(&out.join("mot_eval.json"), |w| {
            w.write_all(json.as_bytes())
        })?;
        nsod_types::formats::write_atomic(&out.join("mot_eval.md"), |w| {
            w.write_all(md.as_bytes())
        })?;
        crate::ui::info!("wrote {}", out.join("mot_eval.json").display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    if args.bootstrap.is_some() && args.pred.len() + 2 * usize::from(args.run.is_some()) < 2 {
        return crate::ui::config_error(
            "--bootstrap: the interval of a change needs two prediction sets (--run, or --pred twice)",
        );
    }
    if let Some(gt) = &args.mot {
        return run_mot(args, gt);
    }
    let Some(gt) = args.gt.as_deref() else {
        bail!("--gt is required (or --mot for tracking)");
    };
    // The prediction sets, in order.
    let mut preds: Vec<(String, PathBuf)> = Vec::new();
    if let Some(dir) = &args.run {
        let raw = dir.join(nsod_pipeline::layout::PREDICTIONS_RAW);
        let refined = dir.join(nsod_pipeline::layout::PREDICTIONS);
        if !refined.is_file() {
            bail!(
                "--run {}: no predictions.jsonl (is it an `nsod infer` output folder?)",
                dir.display()
            );
        }
        if raw.is_file() {
            preds.push(("raw".into(), raw));
            preds.push(("refined".into(), refined));
        } else {
            crate::ui::warning!(
                "--run {}: no predictions_raw.jsonl (the run had no rules); evaluating predictions.jsonl only",
                dir.display()
            );
            preds.push(("predictions".into(), refined));
        }
    }
    preds.extend(args.pred.iter().map(|p| (default_label(p), p.clone())));
    if !(0.0..1.0).contains(&args.voc_iou) {
        bail!("--voc-iou {}: must be in [0, 1)", args.voc_iou);
    }
    if preds.is_empty() {
        bail!("nothing to evaluate: pass --pred PATH (repeatable) or --run DIR");
    }
    for (i, l) in args.labels.iter().enumerate() {
        if let Some(p) = preds.get_mut(i) {
            p.0 = l.clone();
        }
    }
    for (_, p) in &preds {
        if !p.exists() {
            bail!("--pred {}: no such file or folder", p.display());
        }
    }
    if !gt.exists() {
        bail!("--gt {}: no such file or folder", gt.display());
    }
    let format = match args.gt_format {
        Some(f) => f,
        None => GtFormat::detect(gt)?,
    };
    let given_names = args.names.as_deref().map(parse_names).transpose()?;
    let mut problems: Vec<Problem> = Vec::new();

    // Predictions first: they carry image sizes and class names.
    let names_for_txt = given_names
        .clone()
        .unwrap_or_else(|| ClassNames::new(Vec::<String>::new()));
    let mut sources = Vec::new();
    for (label, path) in &preds {
        sources.push((
            label.clone(),
            path.clone(),
            load_source(path, args.images.as_deref(), &names_for_txt, &mut problems)?,
        ));
    }
    let mut sizes: BTreeMap<String, (String, ImageSize)> = BTreeMap::new();
    let mut pred_names: BTreeMap<u32, String> = BTreeMap::new();
    for (_, _, s) in &sources {
        if let Source::Named(records) = s {
            for r in records {
                sizes
                    .entry(load::stem(&r.image))
                    .or_insert_with(|| (r.image.clone(), ImageSize::new(r.width, r.height)));
                for d in &r.detections {
                    pred_names
                        .entry(d.class_id)
                        .or_insert_with(|| d.class_name.clone());
                }
            }
        }
    }
    let mut background = Vec::new();
    if let Some(dir) = &args.images {
        let rd = std::fs::read_dir(dir).with_context(|| format!("--images {}", dir.display()))?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| nsod_detect::is_image_path(p))
            .collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let s = load::stem(&name);
            background.push(s.clone());
            if sizes.contains_key(&s) || matches!(format, GtFormat::Dota | GtFormat::Coco) {
                continue;
            }
            match image::image_dimensions(&f) {
                Ok((w, h)) => {
                    sizes.insert(s, (name, ImageSize::new(w, h)));
                }
                Err(e) => problems.push(Problem {
                    message: format!("{}: cannot read the image size: {e}", f.display()),
                    kind: "bad_image",
                }),
            }
        }
    }

    // Ground truth.
    let names = given_names.clone().unwrap_or_else(|| {
        if pred_names.is_empty() && format == GtFormat::Dota {
            ClassNames::dota_v1()
        } else {
            let n = pred_names.keys().max().map_or(0, |m| m + 1);
            ClassNames::new(
                (0..n).map(|i| pred_names.get(&i).cloned().unwrap_or_else(|| i.to_string())),
            )
        }
    });
    if let Some(dir) = &args.task1 {
        match sources.last() {
            Some((_, path, Source::Named(records))) => {
                nsod_types::formats::dota::write_task1(dir, records, &names)
                    .with_context(|| format!("--task1 {}", dir.display()))?;
                crate::ui::info!(
                    "info: {} written as DOTA Task 1 files in {}",
                    path.display(),
                    dir.display()
                );
            }
            Some((_, path, _)) => bail!(
                "--task1: {} is COCO results; give predictions.jsonl or a txt folder",
                path.display()
            ),
            None => {}
        }
    }
    let (mut data, gt_problems) = match format {
        GtFormat::Coco => load::load_coco_gt(gt)?,
        _ => {
            let label_names = if format == GtFormat::Dota || given_names.is_some() {
                names.clone()
            } else {
                // YOLO labels carry ids: check them only against a class table the user gave.
                ClassNames::new(Vec::<String>::new())
            };
            let opts = LabelOptions {
                names: label_names,
                images: sizes.clone(),
                background: background.clone(),
            };
            let (mut d, p) = load::load_label_dir(gt, format, &opts)?;
            for c in &mut d.categories {
                if let Some(n) = names.get(c.id) {
                    c.name = n.to_owned();
                }
            }
            let unlabelled = background
                .iter()
                .filter(|s| !gt.join(format!("{s}.txt")).is_file())
                .count();
            if unlabelled > 0 {
                crate::ui::info!(
                    "info: {unlabelled} images in {} have no label file in {}: evaluated as background (no objects)",
                    args.images.as_deref().unwrap_or(Path::new("")).display(),
                    gt.display()
                );
            }
            (d, p)
        }
    };
    problems.extend(gt_problems);
    if data.images.is_empty() {
        bail!("--gt {}: no images with ground truth", gt.display());
    }

    // Detections of every set, matched to the ground truth.
    let closed = format == GtFormat::Coco || given_names.is_some();
    let mut matched: Vec<(String, PathBuf, Detections)> = Vec::new();
    for (label, path, source) in sources {
        let (dets, p) = match source {
            Source::Named(records) => load::match_predictions(
                &mut data,
                &records,
                &path,
                format == GtFormat::Coco,
                closed,
            ),
            Source::Coco(file) => {
                let id_names = if format == GtFormat::Coco {
                    None
                } else {
                    let map = file.with_file_name(nsod_pipeline::layout::COCO_IMAGES);
                    if !map.is_file() {
                        bail!(
                            "--pred {}: COCO results against label files need the image ids' file names: no {} beside it",
                            file.display(),
                            map.display()
                        );
                    }
                    Some(map)
                };
                load::load_coco_results(&data, &file, id_names.as_deref())?
            }
        };
        problems.extend(p);
        matched.push((label, path, dets));
    }

    for p in &problems {
        crate::ui::error!("{p}");
    }

    let method = if args.voc07 {
        ApMethod::Voc07
    } else {
        ApMethod::AllPoints
    };
    let max_dets = [1, 10, args.max_dets as usize];
    let runs: Vec<Run> = matched
        .iter()
        .map(|(label, path, dets)| Run {
            label: label.clone(),
            source: path.display().to_string(),
            detections: dets.iter().map(Vec::len).sum(),
            coco: coco::evaluate_with(&data, dets, max_dets),
            voc: voc::evaluate(&data, dets, args.voc_iou, method),
        })
        .collect();
    let meta = Meta {
        ground_truth: gt.display().to_string(),
        gt_format: format.name().to_owned(),
        iou_type: if data.is_oriented() { "obb" } else { "bbox" }.into(),
        images: data.images.len(),
        gt_objects: data.images.iter().map(|i| i.gts.len()).sum(),
        problems: problems.len(),
        max_dets: args.max_dets as usize,
        bootstrap: args.bootstrap.map(|n| {
            let (first, last) = (&matched[0].2, &matched[matched.len() - 1].2);
            nsod_eval::bootstrap::paired(
                &data,
                first,
                last,
                &nsod_eval::bootstrap::Config {
                    replicates: n as usize,
                    block: f64::from(args.bootstrap_block),
                    seed: args.bootstrap_seed,
                    level: 0.95,
                    max_dets,
                },
            )
        }),
    };
    print!("{}", report::text(&meta, &runs));

    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let json = serde_json::to_string_pretty(&report::to_json(&meta, &runs))?;
        nsod_types::formats::write_atomic(&out.join("eval.json"), |w| {
            w.write_all(json.as_bytes())
        })?;
        let md = report::markdown(&meta, &runs);
        nsod_types::formats::write_atomic(&out.join("eval.md"), |w| w.write_all(md.as_bytes()))?;
        if args.plots {
            let dir = out.join("pr");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // Category names come from the ground truth: file names are made safe (no `/`, no `..`) and unique.
            let files = nsod_types::quote::unique_file_names(
                data.categories
                    .iter()
                    .map(|c| nsod_types::detection::class_atom(&c.name))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            );
            for (k, _) in data.categories.iter().enumerate() {
                if let Some(svg) = report::pr_svg(&runs, k) {
                    let file = dir.join(format!("{}.svg", files[k]));
                    nsod_types::formats::write_atomic(&file, |w| w.write_all(svg.as_bytes()))?;
                }
            }
        }
        crate::ui::info!("wrote {}", out.join("eval.json").display());
    }

    export_metrics(args, &runs, &problems)?;
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Exports the results when the user asked for an export or a lingering endpoint.
fn export_metrics(args: &EvalArgs, runs: &[Run], problems: &[Problem]) -> anyhow::Result<()> {
    let layers = nsod_pipeline::settings::Layers::new(nsod_pipeline::PipelineConfig::default())
        .environment(|k| std::env::var(k).ok())
        .and_then(|l| l.flags(args.metrics.values()))
        .and_then(|l| l.validate().map(|()| l))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut margs = layers.config.metrics;
    if margs.linger.is_none() {
        // A one-shot command: serving /metrics only makes sense while lingering.
        margs.enabled = false;
    }
    let Some(session) = MetricsSession::start(&margs, "")? else {
        return Ok(());
    };
    let t = &session.telemetry.metrics;
    for r in runs {
        let s = &r.coco.summary;
        for (iou, v) in [("0.5", s.AP50), ("0.5:0.95", s.AP)] {
            if v > -1.0 {
                t.training
                    .validation_map
                    .get_or_create(&MapLabels {
                        model: r.label.clone(),
                        iou: iou.into(),
                    })
                    .set(v);
            }
        }
        let with_gt: Vec<&coco::ClassResult> =
            r.coco.per_class.iter().filter(|c| c.gt > 0).collect();
        if !with_gt.is_empty() {
            let n = with_gt.len() as f64;
            let label = ModelLabel {
                model: r.label.clone(),
            };
            t.training.precision.get_or_create(&label).set(
                with_gt
                    .iter()
                    .map(|c| c.precision_at_best_f1.max(0.0))
                    .sum::<f64>()
                    / n,
            );
            t.training.recall.get_or_create(&label).set(
                with_gt
                    .iter()
                    .map(|c| c.recall_at_best_f1.max(0.0))
                    .sum::<f64>()
                    / n,
            );
        }
    }
    for p in problems {
        t.errors
            .get_or_create(&ErrorLabels {
                stage: "eval".into(),
                error_type: p.kind.into(),
            })
            .inc();
    }
    session.set_ready();
    session.finish(&install_signal_flag());
    Ok(())
}
