//! `nsod serve` over real HTTP on loopback: the same detections as `nsod infer`, a real KServe v2 client
//! (tritonclient), the OpenAPI document validated, every bad request with its status and JSON error, load shedding
//! with Retry-After, per-request timeouts, and a graceful drain on SIGTERM.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running server and its base URL.
struct Served {
    child: KillOnDrop,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

fn serve(args: &[&str]) -> Served {
    let mut c = nsod();
    c.args([
        "serve",
        "--threads",
        "2",
        "--addr",
        "127.0.0.1:0",
        "--ort-lib",
    ])
    .arg(ort_lib())
    .arg("--model")
    .arg(default_model())
    .args(args)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = KillOnDrop(c.spawn().unwrap());
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("http://").nth(1) {
                let addr = rest.split(' ').next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
            log2.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the server did not start:\n{}", log.lock().unwrap()));
    Served {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, headers we look at, body as JSON or text)
fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(body).unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        r.status().as_u16(),
        retry,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.call().unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"))
        .to_owned()
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn detect_and_kserve_answer_what_nsod_infer_writes() {
    let image = shared_data().join("dota_P0006.png");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = infer(&ort_lib(), &image, &out)
        .arg("--no-metrics")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let record: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("predictions.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let report_rows = std::fs::read_to_string(out.join("report.jsonl"))
        .unwrap()
        .lines()
        .count();
    let s = serve(&[]);
    let bytes = std::fs::read(&image).unwrap();

    // The plain endpoint: the record, the rule changes.
    let (code, _, body) = post(
        &format!("{}/v1/detect?name=dota_P0006.png", s.base),
        &bytes,
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["image"], "dota_P0006.png");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1054), Some(1529))
    );
    let n = record["detections"].as_array().unwrap().len();
    assert!(n > 50);
    assert_eq!(
        v["detections"], record["detections"],
        "the same detections as nsod infer"
    );
    assert_eq!(
        v["changes"].as_array().unwrap().len(),
        report_rows,
        "every rule change explained"
    );
    assert!(
        v.get("geojson").is_none(),
        "a PNG without georeferencing has no GeoJSON"
    );
    // Per-request settings: rules off gives the detector's own scores.
    let (_, _, body) = post(
        &format!("{}/v1/detect?rules=false&conf=0.5", s.base),
        &bytes,
        &[],
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["changes"].as_array().unwrap().is_empty());
    assert!(
        v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["score"].as_f64().unwrap() >= 0.5)
    );

    // A real KServe v2 client: health, metadata, infer with binary input, JSON and binary outputs.
    let py = python(&["tritonclient.http", "numpy", "openapi_spec_validator"]);
    let script = r#"
import json, sys
import numpy as np
import tritonclient.http as http
url, model, image = sys.argv[1], sys.argv[2], sys.argv[3]
c = http.InferenceServerClient(url=url, network_timeout=120.0, connection_timeout=120.0)
assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(model)
meta = c.get_model_metadata(model)
assert meta["inputs"][0]["datatype"] == "BYTES", meta
server = c.get_server_metadata()
assert "binary_tensor_data" in server["extensions"], server
inp = http.InferInput("image", [1], "BYTES")
inp.set_data_from_numpy(np.array([open(image, "rb").read()], dtype=np.object_), binary_data=True)
outs = {}
for binary in (False, True):
    req = [http.InferRequestedOutput(n, binary_data=binary) for n in ("boxes", "obb", "scores", "raw_scores", "class_ids", "class_names")]
    r = c.infer(model, [inp], outputs=req, request_id="dota")
    outs[binary] = {n: r.as_numpy(n) for n in ("boxes", "obb", "scores", "raw_scores", "class_ids", "class_names")}
for n in outs[False]:
    a, b = outs[False][n], outs[True][n]
    assert a.shape == b.shape, (n, a.shape, b.shape)
    if n == "class_names":
        # JSON BYTES elements come back as str, binary ones as bytes.
        text = lambda v: [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
        assert text(a) == text(b), n
    else:
        assert np.allclose(a, b, atol=1e-4), n
r = outs[True]
# No outputs named: every output, binary.
r2 = c.infer(model, [inp], parameters={"rules": False})
print(json.dumps({
    "scores": r["scores"].tolist(), "class_ids": r["class_ids"].tolist(), "boxes": r["boxes"].tolist(),
    "obb": r["obb"].tolist(), "names": [x.decode() for x in r["class_names"].tolist()],
    "raw": r["raw_scores"].tolist(), "norules": r2.as_numpy("scores").tolist(),
    "meta": meta}))
"#;
    let o = Command::new(&py)
        .args([
            "-c",
            script,
            s.base.trim_start_matches("http://"),
            "yolov8n-obb",
        ])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        s.log.lock().unwrap()
    );
    let k: Value = serde_json::from_slice(&o.stdout).unwrap();
    let dets = record["detections"].as_array().unwrap();
    assert_eq!(k["scores"].as_array().unwrap().len(), n);
    for (i, d) in dets.iter().enumerate() {
        let close = |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4;
        assert!(close(&k["scores"][i], &d["score"]), "score {i}");
        assert_eq!(
            k["class_ids"][i].as_u64(),
            d["class_id"].as_u64(),
            "class {i}"
        );
        assert_eq!(k["names"][i].as_str(), d["class_name"].as_str());
        for j in 0..4 {
            assert!(close(&k["boxes"][i][j], &d["bbox"][j]), "box {i}");
        }
        for j in 0..5 {
            assert!(close(&k["obb"][i][j], &d["obb"][j]), "obb {i}");
        }
    }
    assert_eq!(
        k["meta"]["parameters"]["class_names"]
            .as_array()
            .unwrap()
            .len(),
        15
    );
    let raw: Vec<f64> = k["raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut norules: Vec<f64> = k["norules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut raw_sorted = raw.clone();
    raw_sorted.sort_by(|a, b| b.total_cmp(a));
    norules.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(raw_sorted.len(), norules.len());
    for (a, b) in raw_sorted.iter().zip(&norules) {
        assert!((a - b).abs() < 1e-6, "raw scores are the detector's own");
    }

    // The OpenAPI document validates.
    let (code, doc) = get(&format!("{}/openapi.json", s.base), &[]);
    assert_eq!(code, 200);
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, doc).unwrap();
    let o = Command::new(&py)
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "valid",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The service's metrics on the same port, with the pipeline's.
    let (_, m) = get(&format!("{}/metrics", s.base), &[]);
    for want in [
        "nsod_http_requests_total{route=\"/v1/detect\",code=\"200\"} 2",
        "nsod_http_requests_total{route=\"/v2/models/{name}/infer\",code=\"200\"} 3",
        "nsod_images_processed_total{stage=\"infer\",status=\"success\"} 5",
        "nsod_requests_rejected_total{reason=\"queue_full\"} 0",
        "nsod_workers 1",
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
}

#[test]
fn bad_requests_get_their_status_and_a_json_error_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let s = serve(&[
        "--max-body",
        "200000",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    let auth = [("Authorization", "Bearer s3cret-token")];
    let detect = format!("{}/v1/detect", s.base);
    let infer_url = format!("{}/v2/models/yolov8n-obb/infer", s.base);
    let mut png = Vec::new();
    image::RgbImage::from_pixel(96, 64, image::Rgb([120, 110, 100]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &png);
    // (what, url, body, headers, status, message)
    type Case<'a> = (
        &'a str,
        String,
        Vec<u8>,
        Vec<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("missing token", detect.clone(), png.clone(), vec![], 401, "missing or invalid bearer token"),
        ("wrong token", detect.clone(), png.clone(), vec![("Authorization", "Bearer nope")], 401, "missing or invalid bearer token"),
        ("not an image", detect.clone(), b"hello, not an image".to_vec(), auth.to_vec(), 400, "not an image (unrecognised content)"),
        ("truncated image", detect.clone(), png[..png.len() / 2].to_vec(), auth.to_vec(), 400, "cannot decode image"),
        ("empty body", detect.clone(), vec![], auth.to_vec(), 400, "empty body"),
        ("oversize body", detect.clone(), vec![0u8; 300_000], auth.to_vec(), 413, "request body larger than 200000 bytes"),
        ("bad parameter value", format!("{detect}?conf=1.5"), png.clone(), auth.to_vec(), 400, "detect.conf: 1.5 is outside [0, 1]"),
        ("bad slice", format!("{detect}?slice=huge"), png.clone(), auth.to_vec(), 400, "parameter slice"),
        ("unknown parameter", format!("{detect}?confidence=0.3"), png.clone(), auth.to_vec(), 400, "unknown parameter \"confidence\""),
        ("malformed JSON", infer_url.clone(), b"{\"inputs\": [".to_vec(), auth.to_vec(), 400, "malformed JSON"),
        ("wrong datatype", infer_url.clone(), br#"{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [0.5]}]}"#.to_vec(), auth.to_vec(), 400, "datatype \"FP32\", expected \"BYTES\""),
        ("wrong shape", infer_url.clone(), format!(r#"{{"inputs": [{{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["{b64}", "{b64}"]}}]}}"#).into_bytes(), auth.to_vec(), 400, "shape [2], expected [1]"),
        ("unknown model", format!("{}/v2/models/resnet/infer", s.base), png.clone(), auth.to_vec(), 404, "unknown model \"resnet\""),
        ("bad KServe parameter", infer_url.clone(), format!(r#"{{"inputs": [{{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["{b64}"]}}], "parameters": {{"overlap": 1.0}}}}"#).into_bytes(), auth.to_vec(), 400, "detect.overlap: 1 is outside [0, 1)"),
    ];
    for (what, url, body, headers, status, message) in cases {
        let (code, _, text) = post(&url, &body, &headers);
        assert_eq!(code, status, "{what}: {text}");
        let e = error_of(&text);
        assert!(
            e.contains(message),
            "{what}: {e:?} should contain {message:?}"
        );
    }
    // Health stays open; metadata needs the token.
    assert_eq!(get(&format!("{}/v2/health/ready", s.base), &[]).0, 200);
    assert_eq!(
        get(&format!("{}/v2/models/yolov8n-obb", s.base), &[]).0,
        401
    );
    assert_eq!(get(&format!("{}/v2/models/other", s.base), &auth).0, 404);
    // The server kept serving: a good JSON (base64) request answers.
    let body = format!(
        r#"{{"id": "ok", "inputs": [{{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["{b64}"]}}]}}"#
    );
    let (code, _, text) = post(&infer_url, body.as_bytes(), &auth);
    assert_eq!(code, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], "ok");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 6);
    let (_, m) = get(&format!("{}/metrics", s.base), &[]);
    for want in [
        "nsod_requests_rejected_total{reason=\"unauthorized\"} 3",
        "nsod_requests_rejected_total{reason=\"body_too_large\"} 1",
        "nsod_http_requests_total{route=\"/v1/detect\",code=\"413\"} 1",
        "nsod_errors_total{stage=\"decode\",error_type=\"image\"} 2",
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn overload_is_shed_with_503_and_sigterm_drains_accepted_requests() {
    let bytes = std::fs::read(shared_data().join("dota_P0006.png")).unwrap();
    let s = serve(&["--workers", "1", "--queue", "1", "--timeout", "60s"]);
    let url = format!("{}/v1/detect", s.base);
    let start = Instant::now();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (url, bytes) = (url.clone(), bytes.clone());
            std::thread::spawn(move || post(&url, &bytes, &[]))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let shed: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(
        (ok, shed.len()),
        (2, 4),
        "one running, one queued, the rest shed: {results:?}"
    );
    for r in &shed {
        assert_eq!(r.1.as_deref(), Some("1"), "Retry-After");
        assert!(error_of(&r.2).contains("server busy"));
    }
    assert!(start.elapsed() < Duration::from_secs(60));

    // A request that cannot finish in time is answered at the timeout, not later.
    let t = serve(&["--workers", "1", "--queue", "4", "--timeout", "200ms"]);
    let started = Instant::now();
    let (code, retry, body) = post(&format!("{}/v1/detect", t.base), &bytes, &[]);
    assert_eq!((code, retry.as_deref()), (503, Some("1")), "{body}");
    assert!(error_of(&body).contains("no result within"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at the timeout"
    );
    drop(t);

    // SIGTERM while requests run: both accepted requests complete, then the server exits 0.
    let mut s = s;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (url, bytes) = (url.clone(), bytes.clone());
            std::thread::spawn(move || post(&url, &bytes, &[]))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status();
    for h in handles {
        let (code, _, body) = h.join().unwrap();
        assert_eq!(code, 200, "accepted before SIGTERM: {body}");
    }
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", s.log.lock().unwrap());
    assert!(
        s.log
            .lock()
            .unwrap()
            .contains("every accepted request was answered")
    );
}
