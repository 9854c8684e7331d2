//! End-to-end tests of nsod's telemetry: a real `nsod infer` run scraped over HTTP, the Pushgateway push and the
//! textfile export. `promtool check metrics` lints the expositions.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A parsed classic exposition: family types and sample values by `name{labels}` as written.
struct Exposition {
    types: HashMap<String, String>,
    samples: HashMap<String, f64>,
}

fn parse(text: &str) -> Exposition {
    let mut types = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (key, value) = line.rsplit_once(' ').expect("sample line");
            samples.insert(
                key.to_owned(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line}")),
            );
        }
    }
    Exposition { types, samples }
}

impl Exposition {
    fn value(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key}"))
    }
}

fn http_get(url: &str, accept: Option<&str>) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    req.call().unwrap().body_mut().read_to_string().unwrap()
}

/// Runs `promtool check metrics` on `text`; returns its complaints (empty when clean).
fn promtool_complaints(text: &str) -> String {
    let mut child = tool("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut complaints = String::from_utf8_lossy(&out.stdout).into_owned();
    complaints.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() && complaints.is_empty() {
        complaints = format!("promtool exited with {}", out.status);
    }
    complaints
}

/// Two copies of the 400x400 sample (not sliced: smaller than the model's input) and an empty file.
fn good_and_bad_images(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), input.join("a.png")).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), input.join("sub/b.png")).unwrap();
    std::fs::write(input.join("empty.png"), b"").unwrap();
    input
}

#[test]
fn a_lingering_infer_run_exposes_the_catalog() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = good_and_bad_images(dir.path());
    let out = dir.path().join("out");
    // At 0.1 m per pixel the size rules demote every "plane" the model sees in the shrubs.
    let mut child = KillOnDrop(
        infer(&lib, &input, &out)
            .args(["--metrics-linger", "2m", "--gsd", "0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addr = None;
    let mut log = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no linger line; stderr so far:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if let Some(a) = line
            .strip_prefix("metrics: http://")
            .and_then(|r| r.strip_suffix("/metrics"))
        {
            addr = Some(a.to_owned());
        }
        if line.starts_with("metrics: run finished") {
            break;
        }
    }
    let base = format!("http://{}", addr.expect("metrics address line"));
    let classic = http_get(&format!("{base}/metrics"), None);
    let om = http_get(
        &format!("{base}/metrics"),
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert_eq!(http_get(&format!("{base}/readyz"), None), "ready\n");

    // Stop the linger with SIGTERM: a graceful exit with the run's own status (1: one bad image).
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "stderr:\n{log}");

    let e = parse(&classic);
    // What the run wrote, to compare the metrics with.
    let (mut detections, mut penalties) = (0.0, 0.0);
    for line in std::fs::read_to_string(out.join("predictions.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        detections += v["detections"].as_array().unwrap().len() as f64;
    }
    for line in std::fs::read_to_string(out.join("report.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        penalties += f64::from(u8::from(v["action"] == "PENALTY"));
    }
    assert!(
        detections >= 4.0 && penalties >= 4.0,
        "{detections} {penalties}"
    );
    let expected = [
        ("nsod_build_info", "gauge"),
        ("nsod_inference_duration_seconds", "histogram"),
        ("nsod_model_run_duration_seconds", "histogram"),
        ("nsod_preprocess_duration_seconds", "histogram"),
        ("nsod_model_load_duration_seconds", "histogram"),
        ("nsod_detections_per_image", "histogram"),
        ("nsod_detection_confidence", "histogram"),
        ("nsod_sahi_slices_per_image", "histogram"),
        ("nsod_slices_skipped_total", "counter"),
        ("nsod_raster_read_bytes_total", "counter"),
        ("nsod_raster_blocks_read_total", "counter"),
        ("nsod_images_processed_total", "counter"),
        ("nsod_images_in_flight", "gauge"),
        ("nsod_nms_duration_seconds", "histogram"),
        ("nsod_nms_input_detections_total", "counter"),
        ("nsod_nms_output_detections_total", "counter"),
        ("nsod_pipeline_stage_duration_seconds", "histogram"),
        ("nsod_errors_total", "counter"),
        ("nsod_prolog_query_duration_seconds", "histogram"),
        ("nsod_rule_applications_total", "counter"),
        ("nsod_confidence_adjustment_delta", "histogram"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_open_fds", "gauge"),
        ("nsod_system_cpu_usage_ratio", "gauge"),
        ("nsod_system_memory_used_bytes", "gauge"),
        ("nsod_system_memory_available_bytes", "gauge"),
        ("nsod_disk_read_bytes_total", "counter"),
        ("nsod_disk_written_bytes_total", "counter"),
    ];
    for (name, kind) in expected {
        assert_eq!(
            e.types.get(name).map(String::as_str),
            Some(kind),
            "{name} in\n{classic}"
        );
    }
    let model = "model=\"yolov8n-obb\"";
    assert_eq!(
        e.value("nsod_images_processed_total{stage=\"infer\",status=\"success\"}"),
        2.0
    );
    assert_eq!(
        e.value("nsod_images_processed_total{stage=\"infer\",status=\"error\"}"),
        1.0
    );
    assert_eq!(
        e.value(&format!(
            "nsod_inference_duration_seconds_count{{{model},sliced=\"false\"}}"
        )),
        2.0
    );
    assert_eq!(
        e.value(&format!("nsod_detections_per_image_count{{{model}}}")),
        2.0
    );
    assert_eq!(
        e.value(&format!("nsod_detections_per_image_sum{{{model}}}")),
        detections
    );
    assert_eq!(
        e.value(&format!("nsod_detection_confidence_count{{{model}}}")),
        detections
    );
    assert_eq!(
        e.value(&format!("nsod_model_run_duration_seconds_count{{{model}}}")),
        2.0
    );
    assert_eq!(
        e.value(&format!(
            "nsod_model_load_duration_seconds_count{{{model}}}"
        )),
        1.0
    );
    assert_eq!(e.value("nsod_sahi_slices_per_image_count"), 2.0);
    assert_eq!(e.value("nsod_preprocess_duration_seconds_count"), 2.0);
    assert_eq!(
        e.value("nsod_pipeline_stage_duration_seconds_count{stage=\"detect\"}"),
        2.0
    );
    assert_eq!(
        e.value("nsod_errors_total{stage=\"decode\",error_type=\"image\"}"),
        1.0
    );
    assert_eq!(e.value("nsod_images_in_flight"), 0.0);
    // The rules ran: loaded once, the penalties report.jsonl lists counted, every one a negative delta.
    assert_eq!(
        e.value("nsod_prolog_query_duration_seconds_count{query=\"load\"}"),
        1.0
    );
    assert_eq!(
        e.value("nsod_rule_applications_total{action=\"penalty\"}"),
        penalties
    );
    assert_eq!(
        e.value("nsod_rule_applications_total{action=\"boost\"}"),
        0.0
    );
    assert_eq!(e.value("nsod_confidence_adjustment_delta_count"), penalties);
    assert_eq!(
        e.value("nsod_confidence_adjustment_delta_bucket{le=\"0.0\"}"),
        penalties
    );
    assert_eq!(
        e.value("nsod_pipeline_stage_duration_seconds_count{stage=\"symbolic\"}"),
        2.0
    );
    let build = e
        .samples
        .keys()
        .find(|k| k.starts_with("nsod_build_info{"))
        .expect("build info");
    assert!(
        build.contains("ort_version=\"1.31.1\"")
            && build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    // No per-image label anywhere: image paths only appear as exemplars, in OpenMetrics.
    assert!(!classic.contains("a.png") && !classic.contains("b.png"));
    assert!(
        om.contains("# {image=\"a.png\"}") || om.contains("# {image=\"sub/b.png\"}"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));
    {
        let complaints = promtool_complaints(&classic);
        assert_eq!(complaints, "", "promtool check metrics");
    }
}

/// A one-request HTTP server that records what it received and answers 200.
fn recording_server() -> (String, mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            // Read headers, then Content-Length bytes of body.
            loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(h) = text.find("\r\n\r\n") {
                    let len = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= h + 4 + len {
                        break;
                    }
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

#[test]
fn batch_runs_push_to_the_pushgateway_and_write_a_textfile() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let input = good_and_bad_images(dir.path());
    let (url, requests) = recording_server();
    let textfile = dir.path().join("textfile/nsod.prom");
    let out = infer(&lib, &input, &dir.path().join("out"))
        .args([
            "--no-metrics",
            "--push-instance",
            "ci-host",
            "--pushgateway",
        ])
        .arg(&url)
        .arg("--metrics-textfile")
        .arg(&textfile)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("metrics: http://"),
        "--no-metrics serves nothing: {stderr}"
    );
    // Periodic pushes may come first on a slow machine: the last one holds the final values.
    let mut req = requests
        .recv_timeout(Duration::from_secs(5))
        .expect("a push");
    while let Ok(later) = requests.recv_timeout(Duration::from_millis(300)) {
        req = later;
    }
    assert!(
        req.starts_with("PUT /metrics/job/nsod/instance/ci-host HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        req.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{req}"
    );
    assert!(
        req.contains("nsod_images_processed_total{stage=\"infer\",status=\"success\"} 2\n"),
        "{req}"
    );
    let file = std::fs::read_to_string(&textfile).unwrap();
    let e = parse(&file);
    assert_eq!(
        e.value("nsod_images_processed_total{stage=\"infer\",status=\"success\"}"),
        2.0
    );
    {
        let complaints = promtool_complaints(&file);
        assert_eq!(complaints, "", "promtool check metrics on the textfile");
    }

    // An unreachable Pushgateway is a warning; the run's result does not change.
    let out = infer(&lib, &input, &dir.path().join("out2"))
        .args(["--no-metrics", "--pushgateway", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with(
            "warning: metrics export: push to http://127.0.0.1:9/metrics/job/nsod/instance/"
        )),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_one_error_line_and_exit_2() {
    let lib = ort_lib();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = infer(&lib, dir.path(), &dir.path().join("out"))
        .args(["--metrics-addr", &addr])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!("error: cannot serve metrics on {addr}: "))
            && errors[0].contains("in use"),
        "{stderr}"
    );
}
