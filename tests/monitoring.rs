//! The monitoring stack in `monitoring/` against nsod's real metrics:
//! - every metric name the dashboards, recording rules and alerts use exists in nsod's telemetry catalog;
//! - every alert has a `promtool test rules` case where it fires and one where it does not;
//! - end to end: a real Prometheus (loopback only) scrapes `nsod infer --metrics-linger` and `nsod train-monitor`
//!   with the shipped rule files, and every PromQL expression of the dashboards and recording rules parses and
//!   returns data through its HTTP API.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn monitoring() -> PathBuf {
    repo_root().join("monitoring")
}

/// `(name, expr)` of every rule in a rules file: `expr:` on one line or as a `|` / `>` block.
fn rule_exprs(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut name = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim_start().trim_start_matches("- ");
        if let Some(n) = t
            .strip_prefix("record:")
            .or_else(|| t.strip_prefix("alert:"))
        {
            name = n.trim().to_owned();
        } else if let Some(rest) = t.strip_prefix("expr:") {
            let rest = rest.trim();
            if matches!(rest, "|" | ">" | "|-" | ">-") {
                let indent = l.len() - l.trim_start().len();
                let mut body = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    if !next.trim().is_empty() && next.len() - next.trim_start().len() <= indent {
                        break;
                    }
                    body.push(next.trim());
                    i += 1;
                }
                out.push((name.clone(), body.join(" ").trim().to_owned()));
            } else {
                out.push((name.clone(), rest.to_owned()));
            }
        }
        i += 1;
    }
    out
}

/// `(dashboard / panel title, expr)` of every query of every dashboard.
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = monitoring().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let title = d["title"].as_str().unwrap().to_owned();
        // A datasource variable, and every panel uses it.
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(vars.iter().any(|v| v["type"] == "datasource"), "{title}");
        for p in d["panels"].as_array().unwrap() {
            if p["type"] == "row" {
                continue;
            }
            assert!(
                ["timeseries", "stat", "heatmap", "table"].contains(&p["type"].as_str().unwrap()),
                "{title}: {}",
                p["type"]
            );
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
            for t in p["targets"].as_array().unwrap() {
                out.push((
                    format!("{title} / {}", p["title"].as_str().unwrap()),
                    t["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

/// Identifiers in a PromQL expression that name nsod or process metrics or recorded series.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_string = false;
    let mut cur = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            cur.push(c);
        } else {
            if cur.starts_with("nsod_") || cur.starts_with("nsod:") || cur.starts_with("process_") {
                names.insert(cur.clone());
            }
            cur.clear();
        }
    }
    names
}

/// Every series name nsod can expose (classic text format names), from the catalog and the collector.
fn catalog_series() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in nsod_telemetry::Telemetry::families() {
        if kind == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{s}"));
            }
        } else {
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_metric_used_by_the_stack_exists_in_the_catalog() {
    let series = catalog_series();
    assert!(
        series.contains("nsod_inference_duration_seconds_bucket"),
        "{series:?}"
    );
    assert!(series.contains("nsod_images_processed_total"));
    let recording = rule_exprs(&monitoring().join("recording_rules.yml"));
    let alerts = rule_exprs(&monitoring().join("alert_rules.yml"));
    let recorded: BTreeSet<String> = recording.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(recorded.len(), 19);
    assert_eq!(alerts.len(), 14);
    let mut checked = 0;
    for (place, expr) in recording.iter().chain(&alerts).chain(&dashboard_exprs()) {
        for name in metric_names(expr) {
            let known = if name.starts_with("nsod:") {
                recorded.contains(&name)
            } else {
                series.contains(&name)
            };
            assert!(
                known,
                "{place}: `{name}` is not a metric nsod exposes (expr: {expr})"
            );
            checked += 1;
        }
    }
    assert!(checked > 80, "{checked}");
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let alerts: Vec<String> = rule_exprs(&monitoring().join("alert_rules.yml"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let tests = std::fs::read_to_string(monitoring().join("tests/alert_rules_test.yml")).unwrap();
    // alertname lines, each followed by its exp_alerts line.
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(name) = l.strip_prefix("alertname:") {
            let next = lines.get(i + 1).copied().unwrap_or("");
            let e = cases.entry(name.trim().to_owned()).or_default();
            if next == "exp_alerts: []" {
                e.1 = true;
            } else if next == "exp_alerts:" {
                e.0 = true;
            }
        }
    }
    for a in &alerts {
        assert_eq!(
            cases.get(a),
            Some(&(true, true)),
            "{a}: needs a case where it fires and one where it does not"
        );
    }
    // And promtool agrees with them (when installed; .ci/run installs it and runs it too).
    let o = tool("promtool")
        .arg("test")
        .arg("rules")
        .arg(monitoring().join("tests/alert_rules_test.yml"))
        .output()
        .expect("promtool runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// Children killed (SIGTERM, then SIGKILL) when the test ends, pass or fail.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let end = Instant::now() + Duration::from_secs(10);
        for (name, c) in &mut self.0 {
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(c.try_wait(), Ok(Some(_))) {
                eprintln!("{name} did not stop on SIGTERM: killing it");
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Spawns `cmd` with stderr piped; returns the child and a channel of its stderr lines.
fn spawn(mut cmd: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits for a stderr line containing `needle`; returns it.
fn wait_line(
    rx: &mpsc::Receiver<String>,
    needle: &str,
    what: &str,
    seen: &mut Vec<String>,
) -> String {
    let end = Instant::now() + Duration::from_secs(120);
    while Instant::now() < end {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l.clone());
            if l.contains(needle) {
                return l;
            }
        }
    }
    panic!(
        "{what}: no line with {needle:?}; stderr so far:\n{}",
        seen.join("\n")
    );
}

fn metrics_port(line: &str) -> u16 {
    let addr = line.split("http://").nth(1).unwrap();
    let hostport = addr.split('/').next().unwrap();
    hostport.rsplit(':').next().unwrap().parse().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(url: &str) -> Result<Value, String> {
    let mut resp = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .call()
        .map_err(|e| e.to_string())?;
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

fn query(base: &str, expr: &str) -> Result<Value, String> {
    let mut url = format!("{base}/api/v1/query?query=");
    for b in expr.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    get(&url)
}

/// Grafana's variables, as a dashboard with "All" selected would send them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "20s")
        .replace("$__range", "5m")
        .replace("$__interval", "5s")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$model", ".*")
}

#[test]
fn prometheus_scrapes_nsod_and_every_dashboard_and_recording_expression_returns_data() {
    let lib = ort_lib();
    tool("prometheus");
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Procs(Vec::new());

    // nsod infer on a small folder with one broken file (so error metrics exist), sliced, with rules and the KG.
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), images.join("crop.png")).unwrap();
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    let mut cmd = infer(&lib, &images, &dir.path().join("out"));
    cmd.args([
        "--slice",
        "512",
        "--kg",
        "--metrics-addr",
        "127.0.0.1:0",
        "--metrics-linger",
        "300s",
    ])
    .current_dir(repo_root());
    let (child, infer_rx) = spawn(cmd);
    procs.0.push(("nsod infer".into(), child));
    let mut infer_log = Vec::new();
    let infer_port = metrics_port(&wait_line(
        &infer_rx,
        "metrics: http://",
        "nsod infer",
        &mut infer_log,
    ));

    // nsod train-monitor on a fake Ultralytics run, in wrap mode so the process metrics exist.
    let run = dir.path().join("runs/detect/train");
    std::fs::create_dir_all(run.join("weights")).unwrap();
    std::fs::write(
        run.join("args.yaml"),
        "task: detect\nmodel: yolov8n.pt\ndata: coco8.yaml\nepochs: 10\nimgsz: 640\n",
    )
    .unwrap();
    std::fs::write(
        run.join("results.csv"),
        "epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/precision(B),metrics/recall(B),metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/dfl_loss,lr/pg0,lr/pg1,lr/pg2\n\
         1,30.5,1.2,2.5,1.1,0.41,0.33,0.35,0.2,1.3,2.6,1.2,0.0033,0.0033,0.0033\n\
         2,61.0,1.1,2.1,1.05,0.5,0.4,0.44,0.27,1.2,2.2,1.1,0.0031,0.0031,0.0031\n",
    )
    .unwrap();
    let mut cmd = nsod();
    cmd.arg("train-monitor").arg(&run).args([
        "--model",
        "yolov8n-test",
        "--poll-interval",
        "200ms",
        "--metrics-addr",
        "127.0.0.1:0",
        "--",
        "sleep",
        "600",
    ]);
    let (child, train_rx) = spawn(cmd);
    procs.0.push(("nsod train-monitor".into(), child));
    let mut train_log = Vec::new();
    let train_port = metrics_port(&wait_line(
        &train_rx,
        "metrics: http://",
        "train-monitor",
        &mut train_log,
    ));
    // A checkpoint saved while the monitor runs.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(run.join("weights/last.pt"), b"x").unwrap();

    // nsod serve, with one answered and one refused request (the Service row and its rules).
    let mut cmd = nsod();
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--ort-lib",
    ])
    .arg(&lib)
    .arg("--model")
    .arg(default_model())
    .current_dir(repo_root());
    let (child, serve_rx) = spawn(cmd);
    procs.0.push(("nsod serve".into(), child));
    let mut serve_log = Vec::new();
    let line = wait_line(
        &serve_rx,
        "nsod serve: http://",
        "nsod serve",
        &mut serve_log,
    );
    let serve_addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into();
    let crop = std::fs::read(sample("neon_soap_10cm.png")).unwrap();
    for body in [&crop[..], b"not an image"] {
        agent
            .post(&format!("http://{serve_addr}/v1/detect"))
            .send(body)
            .unwrap();
    }

    // Prometheus with the shipped rule files, scraping every target every second.
    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rec}\n  - {alerts}\n\
             scrape_configs:\n\
             \x20 - job_name: nsod\n    static_configs:\n      - targets: ['127.0.0.1:{infer_port}', '{serve_addr}']\n\
             \x20 - job_name: nsod-train\n    static_configs:\n      - targets: ['127.0.0.1:{train_port}']\n",
            rec = monitoring().join("recording_rules.yml").display(),
            alerts = monitoring().join("alert_rules.yml").display(),
        ),
    )
    .unwrap();
    let mut cmd = tool("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let (child, _prom_rx) = spawn(cmd);
    procs.0.push(("prometheus".into(), child));
    let base = format!("http://127.0.0.1:{prom_port}");

    // The infer run finishes (one error for the broken file) and lingers.
    wait_line(
        &infer_rx,
        "serving http://",
        "nsod infer to finish",
        &mut infer_log,
    );
    assert!(
        infer_log.iter().any(|l| l.contains("broken.png")),
        "{}",
        infer_log.join("\n")
    );

    // Rules loaded: all groups of both files.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(v) = get(&format!("{base}/api/v1/rules")) {
            let groups = v["data"]["groups"].as_array().map_or(0, Vec::len);
            if groups == 8 {
                break;
            }
        }
        assert!(
            Instant::now() < end,
            "Prometheus did not load the 8 rule groups"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every expression: parses (status success) and returns data, once a few scrapes and evaluations happened.
    let mut exprs: Vec<(String, String)> = rule_exprs(&monitoring().join("recording_rules.yml"))
        .into_iter()
        .map(|(n, e)| (format!("recording rule {n}"), e.clone()))
        .collect();
    // The recorded series themselves must exist too.
    exprs.extend(
        rule_exprs(&monitoring().join("recording_rules.yml"))
            .into_iter()
            .map(|(n, _)| (format!("recorded series {n}"), n)),
    );
    exprs.extend(
        dashboard_exprs()
            .into_iter()
            .map(|(p, e)| (p, substitute(&e))),
    );
    // GPU panels have no data on a machine without an NVIDIA driver.
    let scrape = ureq::get(&format!("http://127.0.0.1:{infer_port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let has_gpu = scrape.contains("nsod_gpu_memory_used_bytes{");
    let end = Instant::now() + Duration::from_secs(90);
    let failures = loop {
        let mut failures = Vec::new();
        for (place, expr) in &exprs {
            match query(&base, expr) {
                Err(e) => failures.push(format!("{place}: {expr}: {e}")),
                Ok(v) if v["status"] != "success" => {
                    failures.push(format!("{place}: {expr}: {}", v["error"]))
                }
                Ok(v) => {
                    let empty = v["data"]["result"].as_array().is_some_and(Vec::is_empty);
                    let gpu_absent = expr.contains("nsod_gpu_") && !has_gpu;
                    if empty && !gpu_absent {
                        failures.push(format!("{place}: {expr}: no data"));
                    }
                }
            }
        }
        if failures.is_empty() || Instant::now() > end {
            break failures;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}",
        failures.len(),
        exprs.len(),
        failures.join("\n")
    );
    assert!(exprs.len() > 60, "{}", exprs.len());

    // Every target was scraped and is up.
    let up = query(&base, "up").unwrap();
    let ups = up["data"]["result"].as_array().unwrap();
    assert_eq!(ups.len(), 3, "{up}");
    assert!(ups.iter().all(|s| s["value"][1] == "1"), "{up}");
    drop(procs);
}
