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

/// `nsod serve` with the test runtime and the default model on a free port, and `args`.
fn serve_command(args: &[&str]) -> Command {
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
    .args(args);
    c
}

fn serve(args: &[&str]) -> Served {
    start(serve_command(args))
}

/// Starts a prepared `nsod serve` command and waits for its address.
fn start(mut c: Command) -> Served {
    c.stdout(Stdio::null()).stderr(Stdio::piped());
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
fn detect_and_kserve_answer_what_nsod_infer_writes() {
    // The 2299x2472 sample (sliced) at its 0.1 m per pixel, where the size rules change scores.
    let image = sample("neon_yell_2019_10cm.png");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = infer(&ort_lib(), &image, &out)
        .args(["--no-metrics", "--gsd", "0.1"])
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
    assert!(report_rows > 0, "the rules change scores");
    let s = serve(&["--gsd", "0.1"]);
    let bytes = std::fs::read(&image).unwrap();

    // The plain endpoint: the record, the rule changes.
    let (code, _, body) = post(&format!("{}/v1/detect?name=yell.png", s.base), &bytes, &[]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["image"], "yell.png");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(2299), Some(2472))
    );
    let n = record["detections"].as_array().unwrap().len();
    assert!(n > 10);
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
    r = c.infer(model, [inp], outputs=req, request_id="sample")
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
        ("bad parameter value", format!("{detect}?conf=1.5"), png.clone(), auth.to_vec(), 400, "parameter conf (detect.conf): 1.5 is outside [0, 1]"),
        ("bad slice", format!("{detect}?slice=huge"), png.clone(), auth.to_vec(), 400, "parameter slice"),
        ("unknown parameter", format!("{detect}?confidence=0.3"), png.clone(), auth.to_vec(), 400, "unknown parameter \"confidence\""),
        ("malformed JSON", infer_url.clone(), b"{\"inputs\": [".to_vec(), auth.to_vec(), 400, "malformed JSON"),
        ("wrong datatype", infer_url.clone(), br#"{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [0.5]}]}"#.to_vec(), auth.to_vec(), 400, "datatype \"FP32\", expected \"BYTES\""),
        ("wrong shape", infer_url.clone(), format!(r#"{{"inputs": [{{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["{b64}", "{b64}"]}}]}}"#).into_bytes(), auth.to_vec(), 400, "shape [2], expected [1]"),
        ("unknown model", format!("{}/v2/models/resnet/infer", s.base), png.clone(), auth.to_vec(), 404, "unknown model \"resnet\""),
        ("bad KServe parameter", infer_url.clone(), format!(r#"{{"inputs": [{{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["{b64}"]}}], "parameters": {{"overlap": 1.0}}}}"#).into_bytes(), auth.to_vec(), 400, "parameter overlap (detect.overlap): 1 is outside [0, 1)"),
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
fn overload_is_shed_with_503_and_sigterm_drains_accepted_requests() {
    let bytes = std::fs::read(sample("neon_yell_2019_10cm.png")).unwrap();
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

// ---- Untrusted requests: what a request body can reach, how much work it can ask for, how long it can hold a
// connection (issue: untrusted input, part 2). Bounds come from the timeouts each server is given, set small here.

/// A PNG of `w x h` pixels of one grey.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(w, h, image::Rgb([120, 110, 100]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A loopback HTTP server that only counts the connections it receives.
fn connection_counter() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut c) = c {
                use std::io::Write;
                let _ = c.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
            }
        }
    });
    (port, hits)
}

fn vrt(source: &str) -> Vec<u8> {
    format!(
        r#"<VRTDataset rasterXSize="64" rasterYSize="64">
  <VRTRasterBand dataType="Byte" band="1">
    <SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"#
    )
    .into_bytes()
}

fn metric(base: &str, series: &str) -> f64 {
    let (_, m) = get(&format!("{base}/metrics"), &[]);
    m.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{m}"))
}

#[test]
fn request_bodies_never_reach_the_servers_files_or_urls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A file on the server a body could name, and what GDAL's own tool makes of the formats that name others.
    let secret = d.join("secret.png");
    std::fs::write(&secret, png(64, 64)).unwrap();
    let tif = d.join("small.tif");
    let gdal = |args: &[&str]| {
        let o = tool("gdal_translate").args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    gdal(&[
        "-q",
        "-of",
        "GTiff",
        secret.to_str().unwrap(),
        tif.to_str().unwrap(),
    ]);
    // (GDAL driver, file written, the file sent, the format named in the refusal)
    let families = [
        ("HFA", "a.img", "a.img", "an ERDAS Imagine (HFA) file"),
        ("ERS", "b.ers", "b.ers", "an ER Mapper (ERS) header"),
        ("ENVI", "c.envi", "c.hdr", "an ENVI header"),
        ("PCIDSK", "d.pix", "d.pix", "a PCIDSK file"),
        ("ISIS3", "e.lbl", "e.lbl", "an ISIS3 cube"),
        ("PDS4", "f.xml", "f.xml", "a PDS4 label"),
        ("RST", "g.rst", "g.rdc", "an Idrisi (RST) header"),
        ("SAGA", "h.sdat", "h.sgrd", "a SAGA grid header"),
        ("NITF", "i.ntf", "i.ntf", "a NITF file"),
    ];
    let mut bodies: Vec<(String, Vec<u8>, String)> = Vec::new();
    for (driver, written, sent, name) in families {
        let out = d.join(written);
        let band: &[&str] = if driver == "SAGA" { &["-b", "1"] } else { &[] };
        gdal(
            &[
                &["-q", "-of", driver][..],
                band,
                &[tif.to_str().unwrap(), out.to_str().unwrap()],
            ]
            .concat(),
        );
        bodies.push((
            driver.into(),
            std::fs::read(d.join(sent)).unwrap(),
            name.into(),
        ));
    }
    let (port, hits) = connection_counter();
    let vsicurl = format!("/vsicurl/http://127.0.0.1:{port}/x.tif");
    let refused = |what: &str| {
        format!(
            "{what} is not accepted as a request body: send the image itself (GeoTIFF, PNG, JPEG, WebP, BMP or \
             GIF); formats that name other files or URLs are refused"
        )
    };
    bodies.push(("WMS".into(), format!("<GDAL_WMS><Service name=\"WMS\"><ServerUrl>http://127.0.0.1:{port}/wms</ServerUrl><Layers>x</Layers></Service></GDAL_WMS>").into_bytes(), "a GDAL WMS description".into()));

    let s = serve(&[]);
    let detect = |body: &[u8]| post(&format!("{}/v1/detect?name=probe", s.base), body, &[]);
    // A VRT naming a file on the server, one naming a file that does not exist: the same answer (nothing to probe).
    let existing = detect(&vrt(secret.to_str().unwrap()));
    let missing = detect(&vrt(d.join("no-such.png").to_str().unwrap()));
    assert_eq!(existing.0, 400, "{}", existing.2);
    assert_eq!(
        error_of(&existing.2),
        format!("probe: {}", refused("a GDAL virtual raster (VRT)"))
    );
    assert_eq!(
        existing, missing,
        "an existing and a missing file answer alike"
    );
    // Another request's in-memory buffer, and a URL.
    for source in ["/vsimem/nsod-1-1.png", vsicurl.as_str()] {
        let (code, _, body) = detect(&vrt(source));
        assert_eq!(
            (code, error_of(&body)),
            (
                400,
                format!("probe: {}", refused("a GDAL virtual raster (VRT)"))
            )
        );
    }
    // The same body over KServe.
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vrt(&vsicurl));
    let (code, _, body) = post(
        &format!("{}/v2/models/yolov8n-obb/infer", s.base),
        format!(r#"{{"id": "k", "inputs": [{{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["{b64}"]}}]}}"#).as_bytes(),
        &[],
    );
    assert_eq!(
        (code, error_of(&body)),
        (
            400,
            format!("k: {}", refused("a GDAL virtual raster (VRT)"))
        )
    );
    // A damaged JPEG 2000 file on which the system's OpenJPEG aborts the process (found by the body fuzz target).
    bodies.push((
        "JP2OpenJPEG".into(),
        std::fs::read(repo_root().join("fuzz/regressions/body/jp2-openjpeg-assert")).unwrap(),
        "a JPEG 2000 file (the system's OpenJPEG library aborts the process on some damaged files; convert it with \
         gdal_translate -of COG)"
            .into(),
    ));
    for (driver, bytes, name) in &bodies {
        let (code, _, body) = detect(bytes);
        assert_eq!(code, 400, "{driver}: {body}");
        assert_eq!(
            error_of(&body),
            format!("probe: {}", refused(name)),
            "{driver}"
        );
    }
    // A self-contained GeoTIFF is read (through GDAL, from memory).
    let (code, _, body) = detect(&std::fs::read(&tif).unwrap());
    assert_eq!(code, 200, "{body}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the server fetched a URL a body named"
    );
    let refusals = 5.0 + bodies.len() as f64;
    assert_eq!(
        metric(
            &s.base,
            "nsod_errors_total{stage=\"decode\",error_type=\"image\"}"
        ),
        refusals
    );
    assert_eq!(
        metric(&s.base, "nsod_images_in_flight"),
        0.0,
        "never below 0 (one dec per image)"
    );
}

/// A raw HTTP/1.1 request on its own connection; `send_all` false leaves the body unsent after the headers.
fn raw_request(base: &str, head: &str, body: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    c
}

/// Reads an answer until the server closes the connection or `wait` passes: (status, text, seconds taken).
fn read_answer(c: &mut std::net::TcpStream, wait: Duration) -> (u16, String, f64) {
    use std::io::Read;
    let start = Instant::now();
    c.set_read_timeout(Some(wait)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                // One complete answer (headers and a body of its content-length) is enough.
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok());
                    if len.is_some_and(|n| body.len() >= n) {
                        break;
                    }
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text, start.elapsed().as_secs_f64())
}

#[test]
fn work_is_budgeted_before_it_runs_and_cancelled_when_its_request_gives_up() {
    let timeout = Duration::from_secs(2);
    let drain = Duration::from_secs(1);
    let mut s = serve(&[
        "--workers",
        "1",
        "--timeout",
        "2s",
        "--drain",
        "1s",
        "--max-runs-per-request",
        "400",
    ]);
    let image = png(512, 512);
    let small = png(96, 64);
    let detect =
        |query: &str, body: &[u8]| post(&format!("{}/v1/detect?{query}", s.base), body, &[]);

    // The issue's request (231,361 slices) is refused before any work, with the numbers.
    let (code, _, body) = detect("name=big.png&slice=32&overlap=0.99", &image);
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        error_of(&body),
        "big.png: 512 x 512 px with these settings takes 231362 model runs (231361 slices and the full-image pass), \
         more than this server's maximum of 400 per request (--max-runs-per-request): use larger slices, less \
         overlap or a smaller image"
    );
    // Just under the budget (15 x 15 slices and the full pass: 226 runs, far longer than the timeout): answered at
    // the timeout and cancelled. The next request has the same timeout: it can only be answered 200 if the worker
    // left the cancelled one within a batch of slices (one model run here).
    let long = "name=long.png&slice=64&overlap=0.5";
    let (code, retry, body) = detect(long, &image);
    assert_eq!((code, retry.as_deref()), (503, Some("1")), "{body}");
    assert!(
        error_of(&body).contains("no result within 2s (--timeout); the request was cancelled"),
        "{body}"
    );
    let (code, _, body) = detect("name=next.png", &small);
    assert_eq!(
        code, 200,
        "the worker is free again within the next request's {timeout:?}: {body}"
    );

    // A client that disconnects: its job is cancelled the same way.
    let head = format!(
        "POST /v1/detect?{long} HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\ncontent-length: {}\r\n\r\n",
        image.len()
    );
    let c = raw_request(&s.base, &head, &image);
    std::thread::sleep(Duration::from_millis(500));
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let (code, _, body) = detect("name=after-disconnect.png", &small);
    assert_eq!(code, 200, "the disconnected request was cancelled: {body}");
    assert_eq!(
        metric(
            &s.base,
            "nsod_requests_rejected_total{reason=\"client_gone\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &s.base,
            "nsod_requests_rejected_total{reason=\"over_budget\"}"
        ),
        1.0
    );
    // Undecodable bodies, refusals and cancellations leave the gauge at 0, never below.
    for _ in 0..3 {
        assert_eq!(detect("", b"not an image").0, 400);
    }
    assert_eq!(metric(&s.base, "nsod_images_in_flight"), 0.0);

    // SIGTERM while a long request runs: the drain ends, the job is cancelled, the client is answered 503 and the
    // process exits (it used to run on for minutes).
    let mut c = raw_request(&s.base, &head, &image);
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status();
    let (code, text, _) = read_answer(&mut c, Duration::from_secs(30));
    assert_eq!(code, 503, "{text}");
    assert!(
        text.contains("the request was cancelled: the server is stopping"),
        "{text}"
    );
    let status = s.child.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", s.log.lock().unwrap());
    // The drain, then at most one batch of slices and the cancelled request's answer (CANCEL_GRACE bounds it).
    assert!(
        took < drain + Duration::from_secs(5),
        "exited {took:?} after SIGTERM with --drain {drain:?}"
    );
    assert!(
        s.log
            .lock()
            .unwrap()
            .contains("stopped at the --drain deadline")
    );
}

#[test]
fn slow_and_oversized_requests_are_cut_off_by_the_servers_own_limits() {
    let (header_timeout, body_timeout) = (Duration::from_secs(1), Duration::from_secs(1));
    let s = serve(&[
        "--header-timeout",
        "1s",
        "--body-timeout",
        "1s",
        "--max-uploads",
        "2",
        "--max-body",
        "100000",
    ]);
    let late = |took: f64, limit: Duration| {
        // Answered at the limit: not before it, and well before the next one would have passed.
        assert!(
            took >= limit.as_secs_f64() * 0.9 && took < limit.as_secs_f64() * 3.0,
            "answered after {took} s, limit {limit:?}"
        );
    };
    // Half-sent headers: 408 at the header timeout, then the connection closes.
    let mut c = raw_request(
        &s.base,
        "POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-le",
        b"",
    );
    let (code, text, took) = read_answer(&mut c, Duration::from_secs(10));
    assert_eq!(code, 408, "{text}");
    assert!(
        text.contains("request headers not received within 1s (--header-timeout)"),
        "{text}"
    );
    late(took, header_timeout);
    // A body dripped a byte at a time keeps arriving but never completes: the deadline is for the whole body.
    let mut c = raw_request(
        &s.base,
        "POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n",
        b"",
    );
    let drip = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            for _ in 0..40 {
                if w.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (code, text, took) = read_answer(&mut c, Duration::from_secs(10));
    assert_eq!(code, 408, "{text}");
    assert!(
        text.contains("request body not received in full within 1s (--body-timeout)"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    late(took, body_timeout);
    drop(c);
    drip.join().unwrap();
    // Two uploads in progress fill --max-uploads 2: a third is shed at once.
    let head = "POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-length: 50000\r\n\r\n";
    let held: Vec<_> = (0..2)
        .map(|_| raw_request(&s.base, head, b"partial"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (code, retry, body) = post(&format!("{}/v1/detect", s.base), &png(32, 32), &[]);
    assert_eq!((code, retry.as_deref()), (503, Some("1")), "{body}");
    assert_eq!(
        error_of(&body),
        "server busy: 2 request bodies are being received (--max-uploads); retry later"
    );
    assert!(started.elapsed() < body_timeout, "shed without waiting");
    // A declared Content-Length above --max-body is refused from the header, even while the uploads are full (its
    // final answer is 413, never a 503 that says to retry): a client that waits for 100 Continue never has to send
    // the body.
    let mut c = raw_request(
        &s.base,
        "POST /v1/detect HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 1000000000\r\n\r\n",
        b"",
    );
    let (code, text, took) = read_answer(&mut c, Duration::from_secs(10));
    assert_eq!(code, 413, "{text}");
    assert!(
        text.contains("request body larger than 100000 bytes (--max-body)"),
        "{text}"
    );
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(
        took < body_timeout.as_secs_f64(),
        "refused before any body byte: {took} s"
    );
    drop(held);
    // The HTTP layer's own answers: a request line too long (414), headers too large (431), a malformed head (400).
    for (head, want) in [
        (
            format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000)),
            414,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "a".repeat(500_000)
            ),
            431,
        ),
        ("GET / HTTP/1.1\r\nhost x\r\n\r\n".to_string(), 400),
    ] {
        let mut c = raw_request(&s.base, &head, b"");
        assert_eq!(read_answer(&mut c, Duration::from_secs(10)).0, want);
    }
    std::thread::sleep(Duration::from_millis(200));
    for (series, want) in [
        (
            "nsod_http_requests_total{route=\"other\",code=\"408\"}",
            1.0,
        ),
        (
            "nsod_http_requests_total{route=\"/v1/detect\",code=\"408\"}",
            1.0,
        ),
        (
            "nsod_http_requests_total{route=\"/v1/detect\",code=\"413\"}",
            1.0,
        ),
        (
            "nsod_http_requests_total{route=\"other\",code=\"414\"}",
            1.0,
        ),
        (
            "nsod_http_requests_total{route=\"other\",code=\"431\"}",
            1.0,
        ),
        (
            "nsod_http_requests_total{route=\"other\",code=\"400\"}",
            1.0,
        ),
        (
            "nsod_requests_rejected_total{reason=\"header_timeout\"}",
            1.0,
        ),
        ("nsod_requests_rejected_total{reason=\"body_timeout\"}", 1.0),
        ("nsod_requests_rejected_total{reason=\"uploads_full\"}", 1.0),
        (
            "nsod_requests_rejected_total{reason=\"header_too_large\"}",
            2.0,
        ),
    ] {
        assert_eq!(metric(&s.base, series), want, "{series}");
    }
}

#[test]
fn health_is_answered_under_a_low_open_file_limit_with_connections_held_open() {
    let header_timeout = Duration::from_secs(1);
    let mut c = Command::new(tool("prlimit").get_program());
    let inner = serve_command(&["--header-timeout", "1s"]);
    c.arg("--nofile=128:128")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let s = start(c);
    let deadline = Instant::now() + Duration::from_secs(30);
    let cap: usize = loop {
        let log = s.log.lock().unwrap().clone();
        if let Some(n) = log
            .split("limits: ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
        {
            break n;
        }
        assert!(Instant::now() < deadline, "no limits line:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(cap < 128, "the cap comes from RLIMIT_NOFILE: {cap}");
    // 130 half-sent requests: more than the process could hold open.
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let held: Vec<_> = (0..130)
        .filter_map(|_| {
            let mut c =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
            use std::io::Write;
            c.write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n")
                .ok()?;
            Some(c)
        })
        .collect();
    assert!(held.len() > cap, "{} connections opened", held.len());
    // Each header timeout frees `cap` slots: the health check (queued behind them) is answered within as many.
    let rounds = (held.len() + 1).div_ceil(cap) as u32 + 1;
    let started = Instant::now();
    let mut c = raw_request(
        &s.base,
        "GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n",
        b"",
    );
    let (code, text, _) = read_answer(&mut c, header_timeout * rounds + Duration::from_secs(2));
    assert_eq!(
        code,
        200,
        "health after {:?} ({rounds} rounds of {header_timeout:?}): {text}\n{}",
        started.elapsed(),
        s.log.lock().unwrap()
    );
    assert!(
        !s.log.lock().unwrap().contains("error"),
        "{}",
        s.log.lock().unwrap()
    );
    drop(held);
}

#[test]
fn settings_that_would_turn_a_protection_off_are_refused_and_the_api_says_what_it_requires() {
    // An empty or blank token would serve without authentication: refused, as an empty token file is.
    for blank in ["", "  \t"] {
        let o = serve_command(&[])
            .env("NSOD_SERVE_TOKEN", blank)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{blank:?}");
        assert_eq!(
            error_lines(&text(&o).1),
            [
                "error: NSOD_SERVE_TOKEN is set but empty: set a token, or unset the variable to serve without one"
            ]
        );
    }
    for (flags, message) in [
        (
            &["--max-body", "0"][..],
            "error: --max-body (serve.max_body): must be at least 1",
        ),
        (
            &["--timeout", "0s"][..],
            "error: --timeout (serve.timeout): must be longer than 0s",
        ),
        (
            &["--header-timeout", "0s"][..],
            "error: --header-timeout (serve.header_timeout): must be longer than 0s",
        ),
        (
            &["--body-timeout", "0s"][..],
            "error: --body-timeout (serve.body_timeout): must be longer than 0s",
        ),
        (
            &["--max-runs-per-request", "0"][..],
            "error: --max-runs-per-request (serve.max_runs_per_request): must be at least 1",
        ),
        (
            &["--max-uploads", "0"][..],
            "error: --max-uploads (serve.max_uploads): must be at least 1",
        ),
    ] {
        let o = serve_command(flags).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{flags:?}");
        assert_eq!(error_lines(&text(&o).1), [message], "{flags:?}");
    }

    // With a token from the environment: the scheme is case-insensitive (RFC 7235); booleans are strict.
    let mut c = serve_command(&[]);
    c.env("NSOD_SERVE_TOKEN", " s3cret ");
    let s = start(c);
    let small = png(64, 48);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &small);
    for auth in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
        let (code, _, body) = post(
            &format!("{}/v1/detect", s.base),
            &small,
            &[("Authorization", auth)],
        );
        assert_eq!(code, 200, "{auth}: {body}");
    }
    for auth in ["Bearer s3cret2", "Basic s3cret", "Bearer", "s3cret"] {
        let (code, _, _) = post(
            &format!("{}/v1/detect", s.base),
            &small,
            &[("Authorization", auth)],
        );
        assert_eq!(code, 401, "{auth}");
    }
    let infer = format!("{}/v2/models/yolov8n-obb/infer", s.base);
    for (value, shown) in [("\"yes\"", "\"yes\""), ("1", "1")] {
        let body = format!(
            r#"{{"inputs": [{{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["{b64}"]}}], "parameters": {{"binary_data_output": {value}}}}}"#
        );
        let (code, _, text) = post(
            &infer,
            body.as_bytes(),
            &[("Authorization", "Bearer s3cret")],
        );
        assert_eq!(code, 400, "{text}");
        assert_eq!(
            error_of(&text),
            format!("binary_data_output: {shown} is not true or false")
        );
    }

    // The OpenAPI document declares bearer security exactly when a token is required, lists the merge methods and
    // requires an input's data (or its binary size); both variants validate.
    let (_, with_token) = get(
        &format!("{}/openapi.json", s.base),
        &[("Authorization", "Bearer s3cret")],
    );
    drop(s);
    let s = serve(&[]);
    let (_, without) = get(&format!("{}/openapi.json", s.base), &[]);
    let with: Value = serde_json::from_str(&with_token).unwrap();
    let without_v: Value = serde_json::from_str(&without).unwrap();
    assert_eq!(with["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        with["paths"]["/v2/health/live"]["get"]["security"],
        serde_json::json!([])
    );
    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.push(k.clone());
                keys(v, out)
            }),
            Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    keys(&without_v, &mut names);
    assert!(
        !names
            .iter()
            .any(|k| k == "security" || k == "securitySchemes"),
        "{without}"
    );
    assert_eq!(without_v["servers"][0]["url"], serde_json::json!(s.base));
    let merge = without_v["paths"]["/v1/detect"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "merge")
        .unwrap();
    assert_eq!(
        merge["schema"]["enum"],
        serde_json::json!(["greedynmm", "nmm", "nms"])
    );
    let input =
        &without_v["components"]["schemas"]["InferRequest"]["properties"]["inputs"]["items"];
    assert_eq!(input["anyOf"][0]["required"], serde_json::json!(["data"]));
    assert_eq!(
        input["anyOf"][1]["properties"]["parameters"]["required"],
        serde_json::json!(["binary_data_size"])
    );
    let py = python(&["openapi_spec_validator"]);
    let dir = tempfile::tempdir().unwrap();
    for (name, doc) in [("with", &with_token), ("without", &without)] {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, doc).unwrap();
        let o = Command::new(&py)
            .args(["-c", "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "valid",
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A truncated 60000 x 60000 PNG: read window by window, its first window fails; that is the client's bad image
/// (400, counted at the decode stage), and the answer names the request, never an internal file.
#[test]
fn a_truncated_decompression_bomb_is_a_bad_request_without_internal_paths() {
    let bomb = std::fs::read(repo_root().join("fuzz/seeds/body/bomb_60000.png")).unwrap();
    let s = serve(&[]);
    // At the default settings it is over the work budget.
    let (code, _, body) = post(&format!("{}/v1/detect?name=bomb.png", s.base), &bomb, &[]);
    assert_eq!(code, 400, "{body}");
    assert!(error_of(&body).starts_with("bomb.png: 60000 x 60000 px with these settings takes 5330 model runs (5329 slices and the full-image pass)"), "{body}");
    // In large slices it is read, and fails where the data ends.
    let (code, _, body) = post(
        &format!(
            "{}/v1/detect?name=bomb.png&slice=4096&full_pass=false",
            s.base
        ),
        &bomb,
        &[],
    );
    assert_eq!(code, 400, "{body}");
    let e = error_of(&body);
    assert!(e.starts_with("bomb.png: cannot read"), "{e}");
    assert!(!e.contains("/vsimem") && !body.contains("vsimem"), "{e}");
    assert_eq!(
        metric(
            &s.base,
            "nsod_errors_total{stage=\"decode\",error_type=\"image\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &s.base,
            "nsod_errors_total{stage=\"detect\",error_type=\"inference\"}"
        ),
        0.0
    );
    assert_eq!(metric(&s.base, "nsod_images_in_flight"), 0.0);
}
