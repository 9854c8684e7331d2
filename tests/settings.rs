//! The settings model end to end (issue: one settings model): the public interface (every setting's key, flag,
//! kind and request parameter, every command's flags) is kept by a snapshot; every setting flag of `infer`, `plan`,
//! a shard run, `merge`, `serve`, `symbolic` and `kg` is either applied (asserted on what ran: run.json's
//! effective configuration and its sources, `model_run`, the files written, the server's limits) or refused with a
//! message naming it; one layering order for every command; the Slurm scripts' variables never change a plain run;
//! resuming follows the result settings only.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn listing() -> Value {
    let o = nsod().args(["settings", "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_public_interface_is_kept_by_a_snapshot() {
    let o = nsod().args(["settings", "--json"]).output().unwrap();
    let now = String::from_utf8(o.stdout).unwrap();
    let path = repo_root().join("tests/fixtures/settings.json");
    if std::env::var_os("NSOD_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &now).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap();
    assert!(
        now == kept,
        "flag names, TOML keys, kinds and request parameters are public interface: {} differs from `nsod settings \
         --json` (a deliberate change: rerun with NSOD_UPDATE_SNAPSHOTS=1 and say so in the changelog)",
        path.display()
    );
    // Every key of the snapshot is a key of the example configuration.
    let example = std::fs::read_to_string(repo_root().join("config/run.example.toml")).unwrap();
    for s in listing()["settings"].as_array().unwrap() {
        let key = s["key"].as_str().unwrap();
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            example.contains(&format!("{leaf} =")),
            "{key} in config/run.example.toml"
        );
    }
}

/// The setting flags a command takes: `(flag without dashes, key, kind)`.
fn flags_of(listing: &Value, command: &str) -> Vec<(String, String, String)> {
    listing["settings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["commands"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == command)
        })
        .filter_map(|s| {
            Some((
                s["flag"].as_str()?.trim_start_matches("--").to_owned(),
                s["key"].as_str().unwrap().to_owned(),
                s["kind"].as_str().unwrap().to_owned(),
            ))
        })
        .collect()
}

/// Files the runs below use.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    images: PathBuf,
    model: PathBuf,
    rules: PathBuf,
    names: PathBuf,
    pairs: PathBuf,
}

const DOTA: [&str; 15] = [
    "plane",
    "ship",
    "storage tank",
    "baseball diamond",
    "tennis court",
    "basketball court",
    "ground track field",
    "harbor",
    "bridge",
    "large vehicle",
    "small vehicle",
    "helicopter",
    "roundabout",
    "soccer ball field",
    "swimming pool",
];

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let images = root.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let png = images.join("a.png");
    image::RgbImage::from_fn(160, 120, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, 90])
    })
    .save(&png)
    .unwrap();
    // A GeoTIFF read through GDAL (bands, scale and the window threshold act on it).
    let o = tool("gdal_translate")
        .args(["-q", "-of", "GTiff"])
        .arg(&png)
        .arg(images.join("b.tif"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let model = root.join("model.onnx");
    std::fs::copy(default_model(), &model).unwrap();
    let rules = root.join("rules.pl");
    std::fs::copy(repo_root().join("rules/dota.pl"), &rules).unwrap();
    let names = root.join("names.txt");
    std::fs::write(&names, DOTA.join("\n") + "\n").unwrap();
    let pairs = root.join("pairs.txt");
    std::fs::write(&pairs, "plane ship\n").unwrap();
    Fixture {
        _dir: dir,
        root,
        images,
        model,
        rules,
        names,
        pairs,
    }
}

/// A value other than the default for every setting a test gives (a setting without one fails the test: a new
/// flag must be added here, and so be checked).
fn sample(f: &Fixture, key: &str, gateway: u16) -> String {
    let p = |p: &Path| p.display().to_string();
    match key {
        "model" => p(&f.model),
        "names" => p(&f.names),
        "device" => "cpu".into(),
        "threads" => "1".into(),
        "sessions" => "1".into(),
        "graph_optimization" => "extended".into(),
        "spinning" => "off".into(),
        "schedule" => "pipelined".into(),
        "io_binding" => "on".into(),
        "decode_threads" => "2".into(),
        "detect.conf" => "0.3".into(),
        "detect.iou" => "0.6".into(),
        "detect.max_det" => "100".into(),
        "detect.slice" => "64".into(),
        "detect.overlap" => "0.1".into(),
        "detect.merge" => "nms".into(),
        "detect.match_metric" => "iou".into(),
        "detect.merge_threshold" => "0.6".into(),
        "detect.merge_geometry" => "aabb".into(),
        "detect.rect" => "off".into(),
        "detect.batch" => "2".into(),
        "rules.file" => p(&f.rules),
        "rules.gsd" => "0.5".into(),
        "kg.pairs" => p(&f.pairs),
        "kg.min_count" => "2".into(),
        "output.out" => p(&f.root.join("run")),
        "raster.bands" => "3,2,1".into(),
        "raster.scale" => "0,200".into(),
        "raster.window_above_pixels" => "1000".into(),
        "raster.max_pixels" => "100000000".into(),
        "raster.cache_mib" => "64".into(),
        "raster.max_window_mib" => "64".into(),
        "metrics.addr" => "127.0.0.1:0".into(),
        "metrics.linger" => "100ms".into(),
        "metrics.pushgateway" => format!("http://127.0.0.1:{gateway}"),
        "metrics.push_job" => "walk".into(),
        "metrics.push_instance" => "host-7".into(),
        "metrics.textfile" => p(&f.root.join("nsod.prom")),
        "metrics.export_interval" => "1s".into(),
        "serve.addr" => "127.0.0.1:0".into(),
        "serve.model_name" => "walked".into(),
        "serve.workers" => "2".into(),
        "serve.queue" => "3".into(),
        "serve.timeout" => "7s".into(),
        "serve.max_body" => "5000000".into(),
        "serve.drain" => "2s".into(),
        "serve.header_timeout" => "3s".into(),
        "serve.body_timeout" => "4s".into(),
        "serve.max_runs_per_request" => "77".into(),
        "serve.max_uploads" => "5".into(),
        "serve.max_connections" => "50".into(),
        "serve.token_file" => p(&f.root.join("token")),
        "serve.metrics_token_file" => p(&f.root.join("metrics-token")),
        // Switches take no value.
        "detect.class_agnostic"
        | "detect.full_pass"
        | "rules.enabled"
        | "kg.enabled"
        | "output.save_vis"
        | "output.skip_existing"
        | "metrics.enabled" => String::new(),
        other => panic!("no sample value for {other}: add one to this test"),
    }
}

/// `--flag value` (or `--flag` for a switch).
fn arg(flag: &str, value: &str) -> Vec<String> {
    if value.is_empty() {
        vec![format!("--{flag}")]
    } else {
        vec![format!("--{flag}"), value.to_owned()]
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The effective value of `key` in a run.json's or plan's `config`, as text.
fn config_text(config: &Value, key: &str) -> String {
    let mut v = config;
    for part in key.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The value as given, as the configuration shows it.
fn expected(key: &str, given: &str) -> String {
    match key {
        "detect.class_agnostic" | "output.save_vis" | "output.skip_existing" | "kg.enabled" => {
            "true".into()
        }
        "detect.full_pass" | "rules.enabled" | "metrics.enabled" => "false".into(),
        "raster.scale" => "0.0,200.0".into(),
        _ => given.to_owned(),
    }
}

/// Equal as text, or as numbers to f32's precision (run.json holds f32 settings widened to f64).
fn same(a: &str, b: &str) -> bool {
    a == b
        || a.split(',')
            .zip(b.split(','))
            .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                _ => x == y,
            })
            && a.split(',').count() == b.split(',').count()
}

fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

/// A loopback HTTP server that answers 200 to everything and records the request lines.
fn fake_gateway() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Read, Write};
        for c in listener.incoming().flatten() {
            let mut r = std::io::BufReader::new(c);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            s.lock().unwrap().push(line.trim().to_owned());
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, seen)
}

#[test]
fn every_setting_flag_is_applied_or_refused() {
    let f = fixture();
    let l = listing();
    let (gateway, pushes) = fake_gateway();
    let lib = ort_lib();
    let base = |c: &mut Command| {
        c.arg("--ort-lib").arg(&lib);
    };

    // ---- nsod infer: every flag it offers, in two runs (the rules and the endpoint on, then off).
    let infer_flags = flags_of(&l, "infer");
    let apart = ["rules.enabled", "metrics.enabled", "output.skip_existing"];
    let mut given: Vec<(String, String, String)> = Vec::new();
    let mut c = nsod();
    c.arg("infer").arg(&f.images);
    base(&mut c);
    for (flag, key, _) in infer_flags
        .iter()
        .filter(|(_, k, _)| !apart.contains(&k.as_str()))
    {
        let value = sample(&f, key, gateway);
        c.args(arg(flag, &value));
        given.push((flag.clone(), key.clone(), value));
    }
    let o = run(&mut c);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let out = f.root.join("run");
    let m = json(&out.join("run.json"));
    for (flag, key, value) in &given {
        assert_eq!(
            m["config_sources"][key], "flag",
            "--{flag}: source of {key}"
        );
        let (got, want) = (config_text(&m["config"], key), expected(key, value));
        assert!(same(&got, &want), "{got} != {want}: --{flag} ({key})");
    }
    // What ran: the model's run, the files written, the endpoint and the exports.
    let r = &m["model_run"];
    assert_eq!(
        (
            r["schedule"].as_str(),
            r["batch"].as_u64(),
            r["decode_threads"].as_u64(),
            r["threads"].as_u64()
        ),
        (Some("pipelined"), Some(2), Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(r["io_binding"], true, "{r}");
    assert_eq!(r["spinning"], false, "--spinning off: {r}");
    assert_eq!(m["model"]["path"], f.model.display().to_string());
    assert_eq!(m["rules"]["path"], f.rules.display().to_string());
    // --window-above: the images were read window by window (the textfile's raster counters).
    let prom = std::fs::read_to_string(f.root.join("nsod.prom")).unwrap();
    let read_bytes: f64 = prom
        .lines()
        .find_map(|l| l.strip_prefix("nsod_raster_read_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(read_bytes > 0.0, "windowed reads: {prom}");
    for file in [
        "vis/a.png",
        "kg_facts.pl",
        "kg.graphml",
        "scene_graphs.jsonl",
        "labels/b.txt",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    assert!(f.root.join("nsod.prom").is_file(), "--metrics-textfile");
    assert!(err.contains("metrics: http://127.0.0.1:"), "{err}");
    assert!(err.contains("for 100ms more"), "--metrics-linger: {err}");
    let pushed = pushes.lock().unwrap().clone();
    assert!(
        pushed
            .iter()
            .any(|p| p.starts_with("PUT /metrics/job/walk/instance/host-7")),
        "--pushgateway, --push-job, --push-instance: {pushed:?}"
    );
    // --conf acted on the detector's own scores.
    for line in std::fs::read_to_string(out.join("predictions_raw.jsonl"))
        .unwrap()
        .lines()
    {
        let r: Value = serde_json::from_str(line).unwrap();
        for d in r["detections"].as_array().unwrap() {
            assert!(d["score"].as_f64().unwrap() >= 0.3 - 1e-6, "{d}");
        }
    }
    // The switches kept apart: no rules, no endpoint.
    let out2 = f.root.join("run2");
    let mut c = nsod();
    c.args(["infer", "--no-symbolic", "--no-metrics", "--out"])
        .arg(&out2)
        .arg(&f.images);
    base(&mut c);
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o).1);
    let m2 = json(&out2.join("run.json"));
    assert_eq!(
        (
            m2["rules"].is_null(),
            m2["config"]["rules"]["enabled"].as_bool()
        ),
        (true, Some(false))
    );
    assert_eq!(m2["config_sources"]["metrics.enabled"], "flag");
    assert!(!text(&o).1.contains("metrics: http://"), "{}", text(&o).1);
    // --skip-existing: resumes when only execution settings differ; refuses another result setting, naming it.
    let resume = |extra: &[&str]| {
        let mut c = nsod();
        c.args(["infer", "--skip-existing", "--no-metrics", "--out"])
            .arg(&out2)
            .arg(&f.images);
        c.args(["--no-symbolic"]).args(extra);
        base(&mut c);
        run(&mut c)
    };
    let o = resume(&["--batch", "3", "--threads", "1"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(
        text(&o)
            .0
            .contains("2 images kept from earlier runs, 0 to process"),
        "{}",
        text(&o).0
    );
    let o = resume(&["--conf", "0.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("cannot resume: the earlier run used another detect.conf"),
        "{}",
        text(&o).1
    );
    // Refused: settings that would not act, and contradictions.
    for (args, message) in [
        (
            vec!["--kg-pairs", f.pairs.to_str().unwrap()],
            "error: --kg-pairs (kg.pairs): only the knowledge graph uses it, and it is off (--kg, kg.enabled)",
        ),
        (
            vec!["--io-binding", "on"],
            "error: --io-binding (io_binding): IoBinding applies to the pipelined schedule with one session (--schedule pipelined, or auto on a GPU; several sessions run from host buffers)",
        ),
        (
            vec!["--gsd", "0.3", "--no-symbolic"],
            "error: --gsd (rules.gsd): only the rules use it, and they are off (--no-symbolic, rules.enabled = false)",
        ),
        (
            vec!["--no-metrics", "--metrics-linger", "5s"],
            "error: --metrics-linger (metrics.linger): the /metrics endpoint is off (--no-metrics)",
        ),
        (
            vec!["--conf", "1.5"],
            "error: --conf (detect.conf): 1.5 is outside [0, 1]",
        ),
    ] {
        let mut c = nsod();
        c.arg("infer").arg(&f.images).args(&args);
        base(&mut c);
        let o = run(&mut c);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(error_lines(&text(&o).1), [message], "{args:?}");
    }

    // ---- nsod plan: every infer flag is recorded in the plan; --skip-existing is refused.
    let planned = f.root.join("planned");
    let mut c = nsod();
    c.args(["plan", "--shards", "1"]).arg(&f.images);
    let plan_flags: Vec<_> = given
        .iter()
        .filter(|(_, k, _)| !k.starts_with("metrics.") && k != "output.out")
        .collect();
    for (flag, _, value) in &plan_flags {
        c.args(arg(flag, value));
    }
    c.arg("--out").arg(&planned);
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o).1);
    let plan = json(&planned.join("plan.json"));
    for (flag, key, value) in &plan_flags {
        // (Paths in a plan are absolute; these already are.)
        let (got, want) = (config_text(&plan["config"], key), expected(key, value));
        assert!(same(&got, &want), "{got} != {want}: nsod plan --{flag}");
    }
    let o = run(nsod()
        .args(["plan", "--shards", "1", "--skip-existing"])
        .arg(&f.images));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        error_lines(&text(&o).1),
        [
            "error: --skip-existing: a sharded run does not resume; rerun the shards that did not finish"
        ]
    );

    // ---- a shard: every result and output flag refused, naming it; every execution flag applied.
    let plan_file = planned.join("plan.json");
    for (flag, key, kind) in &infer_flags {
        if kind == "execution" && key != "output.skip_existing" {
            continue;
        }
        let value = sample(&f, key, gateway);
        let mut c = nsod();
        c.args(["infer", "--shard", "0/1", "--plan"])
            .arg(&plan_file)
            .args(arg(flag, &value));
        base(&mut c);
        let o = run(&mut c);
        assert_eq!(o.status.code(), Some(4), "shard --{flag}: {}", text(&o).1);
        assert_eq!(
            error_lines(&text(&o).1),
            [format!(
                "error: --{flag}: a shard's result and output settings come from its plan (give them to nsod plan); \
                 it takes execution settings only"
            )],
            "shard --{flag}"
        );
    }
    let mut c = nsod();
    c.args(["infer", "--shard", "0/1", "--plan"])
        .arg(&plan_file);
    base(&mut c);
    let exec: Vec<_> = infer_flags
        .iter()
        .filter(|(_, k, kind)| {
            kind == "execution" && !apart.contains(&k.as_str()) && k != "output.out"
        })
        .collect();
    let mut shard_given = Vec::new();
    for (flag, key, _) in &exec {
        let value = match key.as_str() {
            "schedule" => "sequential".to_owned(),
            "io_binding" => "off".to_owned(),
            "decode_threads" => "3".to_owned(),
            "detect.batch" => "1".to_owned(),
            "metrics.textfile" => f.root.join("shard.prom").display().to_string(),
            _ => sample(&f, key, gateway),
        };
        c.args(arg(flag, &value));
        shard_given.push((flag, key, value));
    }
    c.arg("--out").arg(&planned);
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o).1);
    let sm = json(&planned.join("shards/0-of-1/run.json"));
    for (flag, key, value) in &shard_given {
        assert_eq!(sm["config_sources"][key.as_str()], "flag", "shard --{flag}");
        let (got, want) = (config_text(&sm["config"], key), expected(key, value));
        assert!(same(&got, &want), "{got} != {want}: shard --{flag}");
    }
    let r = &sm["model_run"];
    assert_eq!(
        (
            r["schedule"].as_str(),
            r["batch"].as_u64(),
            r["decode_threads"].as_u64(),
            r["threads"].as_u64()
        ),
        (Some("sequential"), Some(1), Some(3), Some(1)),
        "the shard ran with its own execution settings: {r}"
    );
    // The plan's result settings, untouched.
    assert!(same(&config_text(&sm["config"], "detect.conf"), "0.3"));
    assert!(f.root.join("shard.prom").is_file());

    // ---- nsod merge: its threads.
    let mut c = nsod();
    c.args(["merge", "--threads", "2"]).arg(&planned);
    base(&mut c);
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o).1);
    let mm = json(&planned.join("run.json"));
    assert_eq!(mm["config"]["threads"], 2);
    assert_eq!(mm["config_sources"]["threads"], "flag");

    // ---- nsod symbolic and nsod kg.
    let preds = out.join("predictions_raw.jsonl");
    let sym = f.root.join("sym");
    let mut c = nsod();
    c.args(["symbolic", "--pred"]).arg(&preds);
    let mut sym_given = Vec::new();
    for (flag, key, _) in flags_of(&l, "symbolic") {
        let value = if key == "output.out" {
            sym.display().to_string()
        } else {
            sample(&f, &key, gateway)
        };
        c.args(arg(&flag, &value));
        sym_given.push((flag, key, value));
    }
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o).1);
    let sj = json(&sym.join("run.json"));
    for (flag, key, value) in &sym_given {
        assert_eq!(
            sj["config_sources"][key.as_str()],
            "flag",
            "symbolic --{flag}"
        );
        let (got, want) = (config_text(&sj["config"], key), expected(key, value));
        assert!(same(&got, &want), "{got} != {want}: symbolic --{flag}");
    }
    assert_eq!(sj["rules"]["path"], f.rules.display().to_string());
    let kg = f.root.join("kg");
    let mut c = nsod();
    c.args(["kg", "--pred"]).arg(&preds);
    let mut kg_given = Vec::new();
    for (flag, key, _) in flags_of(&l, "kg") {
        if key == "rules.gsd" {
            continue;
        }
        let value = if key == "output.out" {
            kg.display().to_string()
        } else {
            sample(&f, &key, gateway)
        };
        c.args(arg(&flag, &value));
        kg_given.push((flag, key, value));
    }
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o).1);
    let kj = json(&kg.join("run.json"));
    for (flag, key, value) in &kg_given {
        assert_eq!(kj["config_sources"][key.as_str()], "flag", "kg --{flag}");
        let (got, want) = (config_text(&kj["config"], key), expected(key, value));
        assert!(same(&got, &want), "{got} != {want}: kg --{flag}");
    }
    assert!(kg.join("kg_facts.pl").is_file());
    // nsod kg runs no rules: a ground sample distance is refused.
    let o = run(nsod().args(["kg", "--gsd", "0.3", "--pred"]).arg(&preds));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        error_lines(&text(&o).1),
        [
            "error: --gsd (rules.gsd): only the rules use it, and they are off (--no-symbolic, rules.enabled = false)"
        ]
    );

    // ---- nsod serve: every flag recorded with its source (--print-config), and applied where it shows.
    std::fs::write(f.root.join("token"), "t0ken\n").unwrap();
    std::fs::write(f.root.join("metrics-token"), "m3trics\n").unwrap();
    let serve_flags = flags_of(&l, "serve");
    let mut serve_args: Vec<String> = Vec::new();
    for (flag, key, _) in serve_flags
        .iter()
        .filter(|(_, k, _)| !apart.contains(&k.as_str()))
    {
        serve_args.extend(arg(flag, &sample(&f, key, gateway)));
    }
    let mut c = nsod();
    c.arg("serve").args(&serve_args).arg("--print-config");
    base(&mut c);
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o).1);
    let printed = text(&o).0;
    for (flag, key, _) in serve_flags
        .iter()
        .filter(|(_, k, _)| !apart.contains(&k.as_str()))
    {
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with(&format!("# {key} = "))
                    && l.ends_with("(from the command line)")),
            "serve --{flag} in --print-config:\n{printed}"
        );
    }
    let mut c = nsod();
    c.arg("serve")
        .args(&serve_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    base(&mut c);
    let mut child = KillOnDrop(c.spawn().unwrap());
    let mut log = String::new();
    {
        use std::io::BufRead;
        let stderr = child.stderr.take().unwrap();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            log.push_str(&line);
            log.push('\n');
            if line.contains("limits:") {
                break;
            }
        }
    }
    assert!(
        log.contains("model walked, 2 workers x 1 threads, queue 3"),
        "{log}"
    );
    assert!(
        log.contains("limits: 50 connections, 5 uploads of up to 5000000 bytes, headers within 3s, bodies within 4s, 77 model runs per request, results within 7s"),
        "{log}"
    );
    drop(child);
}

#[test]
fn one_layering_order_for_every_command_and_the_slurm_variables_change_nothing() {
    let f = fixture();
    let lib = ort_lib();
    let file = f.root.join("run.toml");
    std::fs::write(
        &file,
        "[detect]\nconf = 0.4\niou = 0.5\n[metrics]\naddr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let print = |cmd: &str, extra: &[&str], env: &[(&str, &str)]| -> String {
        let mut c = nsod();
        c.arg(cmd)
            .args(extra)
            .arg("--print-config")
            .arg("--ort-lib")
            .arg(&lib);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
        text(&o).0
    };
    // defaults < environment < file < flag, the same for infer and serve; run.json records the same.
    for cmd in ["infer", "serve"] {
        let env = [("NSOD_MODEL", f.model.to_str().unwrap())];
        let t = print(cmd, &[], &env);
        assert!(
            t.contains(&format!(
                "# model = {} (from the environment)",
                f.model.display()
            )),
            "{cmd}: {t}"
        );
        let t = print(cmd, &["--config", file.to_str().unwrap()], &env);
        assert!(
            t.contains("# detect.conf = 0.4 (from the configuration file)"),
            "{cmd}: {t}"
        );
        let other = f.root.join("other.onnx");
        std::fs::copy(&f.model, &other).unwrap();
        let t = print(
            cmd,
            &[
                "--config",
                file.to_str().unwrap(),
                "--conf",
                "0.45",
                "--model",
                other.to_str().unwrap(),
            ],
            &env,
        );
        assert!(
            t.contains("# detect.conf = 0.45 (from the command line)"),
            "{cmd}: {t}"
        );
        assert!(
            t.contains("# detect.iou = 0.5 (from the configuration file)"),
            "{cmd}: {t}"
        );
        assert!(
            t.contains(&format!(
                "# model = {} (from the command line)",
                other.display()
            )),
            "{cmd}: {t}"
        );
    }
    // The file above the environment.
    let t = print(
        "infer",
        &["--config", file.to_str().unwrap()],
        &[("NSOD_METRICS_ADDR", "127.0.0.1:9")],
    );
    assert!(
        t.contains("# metrics.addr = 127.0.0.1:0 (from the configuration file)"),
        "{t}"
    );
    // The Slurm scripts' variables never turn a plain nsod infer into something else.
    let out = f.root.join("plain");
    let mut c = nsod();
    c.args(["infer", "--no-metrics", "--out"])
        .arg(&out)
        .arg(&f.images)
        .arg("--ort-lib")
        .arg(&lib);
    for (k, v) in [
        ("NSOD_OUT", "/nonexistent/out"),
        ("NSOD_PLAN", "/nonexistent/plan.json"),
        ("NSOD_SHARDS", "16"),
        ("NSOD_RETRIES", "9"),
        ("SLURM_ARRAY_TASK_ID", "3"),
    ] {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let m = json(&out.join("run.json"));
    assert_eq!(m["counts"]["processed"], 2);
    assert!(!out.join("shards").exists());
    let sources: BTreeMap<String, String> =
        serde_json::from_value(m["config_sources"].clone()).unwrap();
    let not_default: Vec<_> = sources.iter().filter(|(_, s)| *s != "default").collect();
    assert_eq!(
        not_default,
        [
            (&"metrics.addr".to_owned(), &"environment".to_owned()),
            (&"metrics.enabled".to_owned(), &"flag".to_owned()),
            (&"output.out".to_owned(), &"flag".to_owned()),
        ],
        "only the flags given and NSOD_METRICS_ADDR (set by the tests' harness)"
    );
}

/// The request layer is the top one: a server started with `--conf 0.6` answers a request's `conf=0.3` with the
/// detections between 0.3 and 0.6 too, and without the parameter with none below 0.6.
#[test]
fn a_request_parameter_is_above_the_servers_flags() {
    let image = std::fs::read(common::sample("neon_yell_2019_10cm.png")).unwrap();
    let mut c = nsod();
    c.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--no-symbolic",
        "--conf",
        "0.6",
        "--ort-lib",
    ])
    .arg(ort_lib())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = KillOnDrop(c.spawn().unwrap());
    let addr = {
        use std::io::BufRead;
        let stderr = child.stderr.take().unwrap();
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split("http://")
                    .nth(1)
                    .map(|r| r.split(' ').next().unwrap_or("").to_owned())
            })
            .expect("the server's address")
    };
    let scores = |query: &str| -> Vec<f64> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .post(format!("http://{addr}/v1/detect{query}"))
            .send(&image[..])
            .unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["detections"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|d| d["score"].as_f64().unwrap())
            .collect()
    };
    let flag = scores("");
    let request = scores("?conf=0.3");
    assert!(flag.iter().all(|s| *s >= 0.6 - 1e-6), "{flag:?}");
    assert!(
        request.iter().any(|s| *s < 0.6),
        "the request's conf is applied: {request:?}"
    );
    assert!(request.len() > flag.len());
    drop(child);
}
