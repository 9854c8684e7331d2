//! `nsod infer`: settings → session → the images through the pipeline into the run folder → summary, exit code.
//! Everything per image lives in nsod-pipeline; the set-up is [`crate::session`].

use crate::cli::{GlobalArgs, InferArgs};
use crate::observe::{CliObserver, model_line};
use crate::session::{INTERRUPTED, Needs, Session, config_error};
use nsod_pipeline::inputs;
use nsod_pipeline::layout;
use nsod_pipeline::{PipelineConfig, RunDirOptions, RunDirSink, error_chain};
use std::process::ExitCode;

/// Where the outputs are, one line each (only those this run wrote).
fn outputs_summary(out: &std::path::Path, config: &PipelineConfig, rules: bool) {
    if crate::ui::is_quiet() {
        return;
    }
    let mut rows: Vec<(&str, &str)> = vec![(
        layout::PREDICTIONS,
        if rules {
            "detections per image, refined by the rules (predictions_raw.jsonl: the detector's own)"
        } else {
            "detections per image"
        },
    )];
    if rules {
        rows.push((
            layout::REPORT_CSV,
            "every rule application: rule, objects, confidences before and after, reason",
        ));
    }
    if config.output.save_vis {
        rows.push((layout::VIS_DIR, "the images with their detections drawn"));
    }
    if config.kg.enabled {
        rows.push((
            layout::KG_GRAPHML,
            "knowledge graph of spatial relations (also kg.dot, kg.json, kg_facts.pl, kg_svg/)",
        ));
    }
    rows.push((
        layout::LABELS_DIR,
        "YOLO label files; coco_results.json for COCO tools",
    ));
    rows.push((
        layout::MANIFEST,
        "manifest: model, rules, configuration, counts, failures",
    ));
    let s = crate::ui::EMPHASIS;
    anstream::println!("outputs in {s}{}{s:#}:", out.display());
    for (name, what) in rows {
        anstream::println!("  {:<18} {what}", name);
    }
}

pub fn run(global: &GlobalArgs, a: &InferArgs) -> anyhow::Result<ExitCode> {
    let interrupted = crate::metrics::install_signal_flag();
    let layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if a.config.print_config {
        return crate::session::print_config(layers);
    }
    let (jobs, skipped) = match inputs::collect(&a.inputs, nsod_detect::is_image_path) {
        Ok(j) => j,
        Err(e) => return config_error(error_chain(&e)),
    };
    // A file named on the command line that is not an image is worth a warning; other files in the input
    // folders (labels, READMEs) are expected and only counted.
    let (named, in_folders): (Vec<_>, Vec<_>) = skipped
        .0
        .iter()
        .partition(|f| a.inputs.iter().any(|i| i == *f));
    for f in &named {
        crate::ui::warning!("{}: skipped (not an image file extension)", f.display());
    }
    if !in_folders.is_empty() {
        crate::ui::info!(
            "{} files in the input folders are not images and were skipped{}",
            in_folders.len(),
            if crate::ui::is_verbose() {
                ":"
            } else {
                " (--verbose lists them)"
            }
        );
        for f in &in_folders {
            crate::ui::verbose!("  {}", f.display());
        }
    }
    let session = match Session::open(
        global,
        layers,
        Needs {
            model: true,
            metrics: true,
            names: None,
        },
    ) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let Session {
        config,
        sources,
        pipeline,
        metrics,
        handles,
        ..
    } = session;
    let out = config.output.out.clone();
    let mut sink = match RunDirSink::open(&out, RunDirOptions::infer(&config), &pipeline) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
    };
    sink.set_sources(sources);
    for w in &sink.warnings {
        crate::ui::warning!("{w}");
    }
    if config.output.skip_existing {
        let kept = nsod_pipeline::Sink::completed(&sink);
        let todo = jobs.iter().filter(|j| !kept.contains(&j.name)).count();
        println!(
            "{} images kept from earlier runs, {todo} to process",
            kept.len()
        );
    }
    let mut worker = match pipeline.worker() {
        Ok(w) => w,
        Err(e) => return config_error(error_chain(&e)),
    };
    worker.set_interrupt(interrupted.clone());
    if let Some(s) = &metrics {
        s.set_ready();
    }
    let mut observer = CliObserver::new(handles.clone(), config.detect.conf);
    let result = nsod_pipeline::run(
        &mut worker,
        jobs,
        &a.inputs,
        &mut sink,
        &mut observer,
        &interrupted,
    );
    observer.finish();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            crate::ui::error!("{}", error_chain(&e));
            if let Some(s) = metrics {
                s.finish(&interrupted);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if let (Some(h), Some(g)) = (&handles, summary.graph) {
        h.facts_written(g.facts);
    }
    let total: usize = summary.per_class.values().sum();
    let secs = summary.seconds;
    crate::ui::summary!(
        "{} images processed, {} failed, {total} detections{} in {secs:.2} s ({:.2} images/s)",
        summary.processed,
        summary.failed,
        if summary.kept > 0 {
            format!(" (with {} images kept)", summary.kept)
        } else {
            String::new()
        },
        summary.processed as f64 / secs.max(1e-9),
    );
    for (class, n) in &summary.per_class {
        crate::ui::summary!("  {class}: {n}");
    }
    if let Some(m) = &summary.model {
        crate::ui::summary!("{}", model_line(m, &config.device));
        if let (true, Some(Ok(p))) = (config.device.starts_with("cuda"), &m.placements)
            && !p.iter().any(|p| p.provider.starts_with("CUDA"))
        {
            crate::ui::warning!(
                "--device {}: ONNX Runtime accepted the CUDA provider but ran no node on it",
                config.device
            );
        }
    }
    if let Some(rb) = pipeline.rules() {
        crate::ui::summary!(
            "rules {}: {} confidences raised, {} lowered, in {} images{}",
            rb.table.path.display(),
            observer.boosts,
            observer.penalties,
            observer.images_changed,
            if observer.demoted > 0 {
                format!(
                    "; {} detections now below --conf {}",
                    observer.demoted, config.detect.conf
                )
            } else {
                String::new()
            }
        );
    }
    if summary.interrupted {
        // Nothing was committed: the folder is as it was.
        crate::ui::info!(
            "interrupted: {} is unchanged ({}); the {} images this run finished are kept in {} (resume with --skip-existing)",
            out.display(),
            if out.join(layout::MANIFEST).exists() {
                "its complete result is kept"
            } else {
                "no result yet"
            },
            summary.processed + summary.kept,
            nsod_pipeline::folder::staging_path(&out).display()
        );
    } else {
        outputs_summary(&out, &config, pipeline.rules().is_some());
    }
    if let Some(s) = metrics {
        s.finish(&interrupted);
    }
    Ok(if summary.interrupted {
        ExitCode::from(INTERRUPTED)
    } else if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
