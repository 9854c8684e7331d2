//! End-to-end tests of `nsod quantize`: every shared model quantised on the shared images (the DOTA image; the
//! document-layout model on the synthetic A4 page), agreeing with its float model and running in `nsod infer`;
//! metadata and provenance kept; the same seed giving the same bytes; a model without a findable head, a corrupt
//! file and a non-YOLO model refused with one clear error; a model that agrees too little not written.
//! Needs the quantiser's virtualenv (scripts/setup.sh --quantize, which --tests runs).

mod common;

use common::{error_lines, nsod, ort_lib, repo_root, text};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The quantiser's Python (`$NSOD_QUANTIZE_PYTHON`, else `.venv-quantize/`); a missing one fails the test.
fn quantizer_python() -> PathBuf {
    let p = std::env::var_os("NSOD_QUANTIZE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv-quantize/bin/python3"));
    assert!(
        p.is_file(),
        "{}: the quantiser's virtualenv is missing: run scripts/setup.sh --quantize",
        p.display()
    );
    p
}

fn quantize(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    nsod()
        .args(["quantize", "--ort-lib"])
        .arg(ort_lib())
        .arg(model)
        .arg("--out")
        .arg(out)
        .arg("--python")
        .arg(quantizer_python())
        .args(extra)
        .output()
        .unwrap()
}

/// The model's metadata (`metadata_props`), read with onnx in the quantiser's virtualenv.
fn metadata(model: &Path) -> serde_json::Map<String, Value> {
    let o = std::process::Command::new(quantizer_python())
        .args([
            "-c",
            "import json, sys, onnx\nm = onnx.load(sys.argv[1])\nprint(json.dumps({p.key: p.value for p in m.metadata_props}))",
        ])
        .arg(model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The recall printed by `nsod quantize`.
fn recall(stdout: &str) -> f64 {
    stdout
        .split("recall ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no recall in {stdout}"))
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn every_shared_model_is_quantised_agrees_and_runs() {
    let models = nsod_testkit::shared_models();
    let data = nsod_testkit::shared_data();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.png");
    let o = std::process::Command::new(common::python(&["cv2", "numpy"]))
        .arg(repo_root().join("scripts/synthetic_page.py"))
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let dota = data.join("dota_P0006.png");
    for (name, image) in [
        ("yolov8n-obb_1024", &dota),
        ("yolov8n-obb_dyn", &dota),
        ("yolo26n-obb_1024_e2e", &dota),
        ("yolov8n-doclaynet", &page),
    ] {
        let model = models.join(format!("{name}.onnx"));
        let out = dir.path().join(format!("{name}.int8.onnx"));
        let o = quantize(&model, &out, &["--calib", image.to_str().unwrap()]);
        let (stdout, stderr) = text(&o);
        assert!(o.status.success(), "{name}: {stderr}");
        let r = recall(&stdout);
        assert!(r >= 0.97, "{name}: recall {r}\n{stdout}");
        assert!(stdout.contains("the head kept in float"), "{stdout}");
        // The Ultralytics metadata nsod reads, unchanged, and the provenance.
        let (float_meta, int8_meta) = (metadata(&model), metadata(&out));
        for (k, v) in &float_meta {
            assert_eq!(int8_meta.get(k), Some(v), "{name}: {k}");
        }
        let p: Value = serde_json::from_str(int8_meta["nsod_quantized"].as_str().unwrap()).unwrap();
        assert_eq!(p["method"], "percentile");
        assert_eq!(p["source"], format!("{name}.onnx"));
        assert_eq!(
            p["source_sha256"],
            nsod_quantize::sha256_file(&model).unwrap(),
            "{name}: the source's digest"
        );
        assert!(p["calibration_slices"].as_u64().unwrap() >= 1);
        // It runs in nsod infer, and run.json says what it is.
        let run = dir.path().join(format!("run-{name}"));
        let o = nsod()
            .args(["infer", "--threads", "2", "--no-symbolic", "--ort-lib"])
            .arg(ort_lib())
            .arg(image)
            .arg("--model")
            .arg(&out)
            .arg("--out")
            .arg(&run)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o).1);
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
        assert_eq!(
            manifest["model"]["quantized"]["source_sha256"], p["source_sha256"],
            "{name}: {}",
            manifest["model"]
        );
    }
    // ONNX Runtime's session options: without graph optimisation the QDQ pairs run unfused (slower, see
    // benches/quantize.sh), and the model finds the same objects; spinning is on by default in batch runs.
    let int8 = dir.path().join("yolov8n-obb_1024.int8.onnx");
    let run_with = |extra: &[&str], name: &str| -> Value {
        let run = dir.path().join(name);
        let o = nsod()
            .args(["infer", "--threads", "2", "--no-symbolic", "--ort-lib"])
            .arg(ort_lib())
            .arg(&dota)
            .arg("--model")
            .arg(&int8)
            .args(extra)
            .arg("--out")
            .arg(&run)
            .output()
            .unwrap();
        assert!(o.status.success(), "{extra:?}: {}", text(&o).1);
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap()
    };
    let fused = &run_with(&[], "run-options-default");
    let unfused = &run_with(
        &["--graph-optimization", "off", "--spinning", "off"],
        "run-options-off",
    );
    assert_eq!(
        (
            &fused["model_run"]["spinning"],
            &fused["config"]["graph_optimization"]
        ),
        (&Value::Bool(true), &Value::from("all"))
    );
    assert_eq!(
        (
            &unfused["model_run"]["spinning"],
            &unfused["config"]["graph_optimization"]
        ),
        (&Value::Bool(false), &Value::from("off"))
    );
    assert_eq!(
        fused["counts"]["per_class"], unfused["counts"]["per_class"],
        "the same objects with and without graph optimisation"
    );
    // nsod doctor --model describes it, provenance included; and says what the CPU has for INT8.
    let o = nsod()
        .args(["doctor", "--ort-lib"])
        .arg(ort_lib())
        .arg("--model")
        .arg(&int8)
        .output()
        .unwrap();
    let (stdout, _) = text(&o);
    let sha = nsod_quantize::sha256_file(&models.join("yolov8n-obb_1024.onnx")).unwrap();
    assert!(
        stdout.contains("task obb, 15 classes, input images 1024x1024")
            && stdout.contains("quantized by nsod quantize: {")
            && stdout.contains(&sha),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("cpu: ")), "{stdout}");
    // The same seed gives the same bytes.
    let again = dir.path().join("again.int8.onnx");
    let model = models.join("yolov8n-obb_1024.onnx");
    let o = quantize(&model, &again, &["--calib", dota.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(
        std::fs::read(&again).unwrap()
            == std::fs::read(dir.path().join("yolov8n-obb_1024.int8.onnx")).unwrap(),
        "same seed, different model bytes"
    );
    // --reduce-range (for CPUs without VNNI, where u8 x s8 products saturate): 7-bit weights, the same agreement.
    let reduced = dir.path().join("reduced.int8.onnx");
    let o = quantize(
        &model,
        &reduced,
        &["--reduce-range", "--calib", dota.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(recall(&stdout) >= 0.97, "{stdout}");
    let weight_range = |m: &Path| -> String {
        let o = std::process::Command::new(quantizer_python())
            .args([
                "-c",
                "import sys, onnx\nfrom onnx import numpy_helper as nh\nm = onnx.load(sys.argv[1])\n\
w = [nh.to_array(i) for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8]\n\
print(min(int(a.min()) for a in w), max(int(a.max()) for a in w))",
            ])
            .arg(m)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
        text(&o).0.trim().to_owned()
    };
    assert_eq!(weight_range(&reduced), "-64 64");
    assert_eq!(
        weight_range(&dir.path().join("yolov8n-obb_1024.int8.onnx")),
        "-127 127"
    );
    // --fp16: float16 weights, float32 inputs and outputs, no calibration; it agrees to the last digits.
    let half = dir.path().join("half.fp16.onnx");
    let o = quantize(
        &model,
        &half,
        &["--fp16", "--calib", dota.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(recall(&stdout) >= 0.999, "{stdout}");
    assert!(stdout.contains("float16: no calibration"), "{stdout}");
    let p: Value =
        serde_json::from_str(metadata(&half)["nsod_quantized"].as_str().unwrap()).unwrap();
    assert_eq!(p["method"], "fp16");
    let o = std::process::Command::new(quantizer_python())
        .args([
            "-c",
            "import sys, onnx\nm = onnx.load(sys.argv[1])\nT = onnx.TensorProto\n\
print(sum(i.data_type == T.FLOAT16 for i in m.graph.initializer), sum(i.data_type == T.FLOAT for i in m.graph.initializer),\n\
      [x.type.tensor_type.elem_type == T.FLOAT for x in list(m.graph.input) + list(m.graph.output)])",
        ])
        .arg(&half)
        .output()
        .unwrap();
    let line = text(&o).0;
    let f: Vec<&str> = line.split_whitespace().collect();
    assert!(f[0].parse::<usize>().unwrap() > 50, "{line}");
    assert!(line.trim_end().ends_with("[True, True]"), "{line}");
    // Calibrated on a black image, the activation ranges are nothing like the DOTA image's: the INT8 model misses
    // detections, and it is not written, with the figures.
    let black = dir.path().join("black.png");
    image::RgbImage::new(1024, 1024).save(&black).unwrap();
    let refused = dir.path().join("refused.int8.onnx");
    let o = quantize(
        &model,
        &refused,
        &[
            "--calib",
            black.to_str().unwrap(),
            "--check",
            dota.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    let r = recall(&stdout);
    assert!(r < 0.97, "{stdout}");
    assert!(
        stderr.contains(&format!(
            "the INT8 model is not written: recall {r:.4} of the float model's detections is below --min-agreement 0.97"
        )),
        "{stderr}"
    );
    assert!(!refused.exists() && !dir.path().join("refused.int8.partial.onnx").exists());
    let o = quantize(
        &data.join("P0006_crop1024_x0_y0.png"),
        &refused,
        &["--calib", dota.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a PNG is no model: {}",
        text(&o).1
    );
    assert!(!refused.exists());
}

/// A small ONNX model made with onnx in the quantiser's virtualenv: `headless` has a YOLO OBB output shape and
/// Ultralytics metadata but no convolution at all; `classifier` ends in a [1, 3] output.
fn toy_model(kind: &str, out: &Path) {
    let script = r#"
import sys, onnx, numpy as np
from onnx import helper, TensorProto, numpy_helper
kind, out = sys.argv[1], sys.argv[2]
x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
if kind == "headless":
    nodes = [helper.make_node("Reshape", ["images", "shape"], ["flat"], name="flat"),
             helper.make_node("Concat", ["flat"] * 7, ["tall"], axis=1, name="tall"),
             helper.make_node("Slice", ["tall", "starts", "ends", "axes"], ["output0"], name="cut")]
    inits = [numpy_helper.from_array(np.array(v, dtype=np.int64), n) for n, v in
             [("shape", [1, 3, 4096]), ("starts", [0, 0]), ("ends", [20, 84]), ("axes", [1, 2])]]
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 20, 84])
else:
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"], name="pool"),
             helper.make_node("Flatten", ["pooled"], ["output0"], name="flat")]
    inits = []
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3])
m = helper.make_model(helper.make_graph(nodes, "toy", [x], [y], inits),
                      opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
names = ["plane", "ship", "storage tank", "baseball diamond", "tennis court", "basketball court",
         "ground track field", "harbor", "bridge", "large vehicle", "small vehicle", "helicopter", "roundabout",
         "soccer ball field", "swimming pool"]
for k, v in {"task": "obb", "names": str(dict(enumerate(names))), "imgsz": "[64, 64]", "stride": "32",
             "batch": "1"}.items():
    p = m.metadata_props.add()
    p.key, p.value = k, v
onnx.save(m, out)
"#;
    let o = std::process::Command::new(quantizer_python())
        .args(["-c", script, kind])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
}

#[test]
fn models_it_cannot_quantise_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let image = common::sample("neon_soap_10cm.png");
    // No learned convolution before the outputs: no head to keep in float, refused by the quantiser.
    let headless = dir.path().join("headless.onnx");
    toy_model("headless", &headless);
    let out = dir.path().join("headless.int8.onnx");
    let o = quantize(&headless, &out, &["--calib", image.to_str().unwrap()]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        [format!(
            "error: {}: cannot find the model's head: no learned convolution feeds its outputs",
            headless.display()
        )
        .as_str()]
    );
    assert!(!out.exists() && !dir.path().join("headless.int8.partial.onnx").exists());
    // Not a YOLO model, and not a model at all: refused when the model loads, before any work.
    let classifier = dir.path().join("classifier.onnx");
    toy_model("classifier", &classifier);
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not a model").unwrap();
    for (model, want) in [
        (&classifier, "unknown output layout"),
        (&garbage, "not a loadable ONNX model"),
    ] {
        let o = quantize(
            model,
            &dir.path().join("x.onnx"),
            &["--calib", image.to_str().unwrap()],
        );
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains(&model.display().to_string()) && errors[0].contains(want),
            "{stderr}"
        );
    }
}
