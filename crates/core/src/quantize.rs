//! `nsod quantize`: settings → session (the float model) → calibration tensors → the quantiser → the agreement
//! check against the float model → the INT8 model written, or refused with the figures. The work lives in
//! nsod-quantize.

use crate::cli::{GlobalArgs, QuantizeArgs};
use crate::session::{Needs, Session, config_error, fail};
use nsod_pipeline::settings::Source;
use nsod_pipeline::{Environment, Pipeline, error_chain};
use nsod_quantize::{CheckImage, Quantizer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(global: &GlobalArgs, a: &QuantizeArgs) -> anyhow::Result<ExitCode> {
    let mut layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if a.config.print_config {
        return crate::session::print_config(layers);
    }
    if let Some(m) = &a.model_file {
        if layers.source("model") != Source::Default {
            return config_error("give the model once: as MODEL or with --model");
        }
        layers.config.model = Some(m.clone());
    }
    // The agreement is the model's: rules would move both models' scores alike and hide nothing, so they stay out.
    layers.config.rules.enabled = false;
    if !(0.0..=1.0).contains(&a.min_agreement) {
        return config_error(format!(
            "--min-agreement {}: a recall, in [0, 1]",
            a.min_agreement
        ));
    }
    if a.calib_max == 0 {
        return config_error("--calib-max 0: at least one calibration slice");
    }
    let python = a
        .python
        .clone()
        .or_else(|| std::env::var_os("NSOD_QUANTIZE_PYTHON").map(PathBuf::from))
        .unwrap_or_else(crate::paths::quantize_python);
    let script = crate::paths::quantize_script();
    let images = |inputs: &[PathBuf]| -> Result<Vec<PathBuf>, String> {
        nsod_pipeline::inputs::collect(inputs, nsod_detect::is_image_path)
            .map(|(jobs, _)| jobs.into_iter().map(|j| j.path).collect())
            .map_err(|e| error_chain(&e))
    };
    let (calib_all, check_given) = match (images(&a.calib), images(&a.check)) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) | (_, Err(e)) => return config_error(e),
    };
    if calib_all.is_empty() {
        return config_error("--calib: no images there");
    }
    let session = match Session::open(
        global,
        layers,
        Needs {
            model: true,
            metrics: false,
            names: None,
        },
    ) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let config = session.config.clone();
    let Some(model) = config.model.clone() else {
        return config_error("no model");
    };
    let out = a
        .out_file
        .clone()
        .unwrap_or_else(|| model.with_extension(if a.fp16 { "fp16.onnx" } else { "int8.onnx" }));
    if out == model {
        return config_error(format!(
            "--out {}: the float model itself; name another file",
            out.display()
        ));
    }
    let calib_worker = match session.pipeline.worker() {
        Ok(w) => w,
        Err(e) => return config_error(error_chain(&e)),
    };
    let Some(detector) = calib_worker.detector() else {
        return config_error("the pipeline has no model");
    };
    let (calib, check, same) = if a.fp16 && check_given.is_empty() {
        // No calibration: every image given is a check image.
        (Vec::new(), calib_all.clone(), false)
    } else {
        nsod_quantize::split(&calib_all, &check_given, a.seed)
    };
    let kind = if a.fp16 { "FP16" } else { "INT8" };
    let dir = match nsod_quantize::calibration_dir() {
        Ok(d) => d,
        Err(e) => {
            return fail(
                1,
                format!("cannot make a folder for the calibration tensors: {e}"),
            );
        }
    };
    let slices = if a.fp16 {
        println!("float16: no calibration");
        0
    } else {
        let cal = match nsod_quantize::calibrate(
            detector,
            &calib,
            &config.raster,
            a.calib_max,
            a.seed,
            dir.path(),
        ) {
            Ok(c) => c,
            Err(e) => return fail(1, error_chain(&e)),
        };
        println!(
            "calibration: {} slices of {} from {} images (seed {}); {} method",
            cal.slices, cal.available, cal.images, a.seed, a.method
        );
        cal.slices
    };
    let source_sha = match nsod_quantize::sha256_file(&model) {
        Ok(s) => s,
        Err(e) => return fail(1, format!("{}: {e}", model.display())),
    };
    let provenance = serde_json::json!({
        "source": model.file_name().map(|n| n.to_string_lossy().into_owned()),
        "source_sha256": source_sha,
        "method": if a.fp16 { "fp16".to_owned() } else { a.method.to_string() },
        "calibration_slices": slices,
        "seed": a.seed,
        "reduce_range": a.reduce_range,
        "nsod": env!("CARGO_PKG_VERSION"),
    });
    let partial = partial_path(&out);
    let _ = std::fs::remove_file(&partial);
    let q = Quantizer { python, script };
    let report = match nsod_quantize::run_quantizer(
        &q,
        &model,
        dir.path(),
        &partial,
        a.method,
        &provenance,
        (a.reduce_range, a.fp16),
    ) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return fail(1, error_chain(&e));
        }
    };
    drop(dir);
    if a.fp16 {
        println!(
            "converted to float16: {} nodes, {} casts (inputs and outputs stay float32)",
            report["nodes"], report["casts"]
        );
    } else {
        println!(
            "quantised: {} QuantizeLinear nodes; the head kept in float ({} nodes after the last {} learned convolutions: {})",
            report["quantize_nodes"],
            report["head_nodes"],
            report["last_convolutions"],
            report["head_ops"]
                .as_array()
                .map(|v| v
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    // The check: the float model at the run's threshold, the INT8 model at 0.001, on the held-out images, both
    // merged by NMS (greedy NMM would fold the INT8 model's boxes under 0.001 into its real ones and move them).
    let check_config = |model: &Path, conf: f32| {
        let mut c = config.clone();
        c.model = Some(model.to_path_buf());
        c.detect.conf = conf;
        c.detect.merge = nsod_nms::MergeMethod::Nms;
        c
    };
    let env = Environment {
        runtime: session.runtime.clone(),
        sandbox: match crate::session::sandbox() {
            Ok(s) => s,
            Err(e) => return fail(1, format!("{e:#}")),
        },
        default_rules: None,
    };
    let float = match Pipeline::build(&check_config(&model, config.detect.conf), &env, None) {
        Ok((p, _)) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return fail(1, error_chain(&e));
        }
    };
    let mut worker = match float.worker() {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return fail(1, error_chain(&e));
        }
    };
    let int8 = match Pipeline::build(&check_config(&partial, 0.001), &env, None) {
        Ok((p, _)) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return fail(
                1,
                format!("the {kind} model does not load: {}", error_chain(&e)),
            );
        }
    };
    let mut int8_worker = match int8.worker() {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return fail(1, error_chain(&e));
        }
    };
    let mut checks = Vec::new();
    for path in &check {
        let name = path.to_string_lossy();
        let run = |w: &mut nsod_pipeline::Worker| -> Result<nsod_pipeline::ImageOutcome, String> {
            let loaded =
                nsod_pipeline::source::load(path, &config.raster).map_err(|e| error_chain(&e))?;
            w.process_loaded(&loaded, &name, 0.0)
                .map_err(|e| error_chain(&e))
        };
        match (run(&mut worker), run(&mut int8_worker)) {
            (Ok(f), Ok(q)) => checks.push(CheckImage {
                width: f.size.width,
                height: f.size.height,
                float: f.detections,
                int8: q.detections,
                float_runs: f.detect.run_durations,
                int8_runs: q.detect.run_durations,
            }),
            (Err(e), _) | (_, Err(e)) => {
                let _ = std::fs::remove_file(&partial);
                return fail(1, format!("check image {}: {e}", path.display()));
            }
        }
    }
    let ag = nsod_quantize::agreement(&checks);
    println!(
        "agreement on {} held-out image{}{}: recall {:.4} ({} of {} float detections at conf {}; {kind} at 0.001, NMS for both), |Δscore| mean {:.4} max {:.4}, mAP50 {:.4}, mAP50-95 {:.4} (the float detections as ground truth)",
        ag.images,
        if ag.images == 1 { "" } else { "s" },
        if same {
            " (the calibration image itself: give --check or more images)"
        } else {
            ""
        },
        ag.recall,
        ag.matched,
        ag.float_detections,
        config.detect.conf,
        ag.mean_abs_delta,
        ag.max_abs_delta,
        ag.map50,
        ag.map50_95
    );
    println!(
        "session.run: float {:.1} ms, {kind} {:.1} ms per slice ({:.2}x)",
        ag.float_run_seconds * 1e3,
        ag.int8_run_seconds * 1e3,
        ag.float_run_seconds / ag.int8_run_seconds.max(1e-12)
    );
    if ag.recall < a.min_agreement {
        let _ = std::fs::remove_file(&partial);
        return fail(
            1,
            format!(
                "the {kind} model is not written: recall {:.4} of the float model's detections is below --min-agreement {}",
                ag.recall, a.min_agreement
            ),
        );
    }
    if let Err(e) = std::fs::rename(&partial, &out) {
        let _ = std::fs::remove_file(&partial);
        return fail(1, format!("{}: cannot write: {e}", out.display()));
    }
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `OUT` without its extension, `.partial.onnx`: where the model is written until it is checked.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_default();
    name.push(".partial.onnx");
    out.with_file_name(name)
}
