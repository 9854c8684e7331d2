//! Sharded runs end to end with the real binary: shards and the merge against one process on the same inputs, a
//! missing, a rerun and a bad shard, exit codes, the Pushgateway (Debian's prometheus-pushgateway), a real Slurm
//! array job (scripts/slurm-local.sh's one-node cluster) with a shard that crashes once and is requeued, and the
//! Kubernetes manifests validated offline (kubectl kustomize, kubernetes-validate --strict, the Prometheus
//! Operator's CRD schemas).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run_ok(c: &mut Command) -> Output {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn plan(inputs: &Path, shards: usize, out: &Path, extra: &[&str]) -> Output {
    let mut c = nsod();
    c.arg("plan")
        .arg(inputs)
        .args(["--shards", &shards.to_string(), "--model"])
        .arg(default_model())
        .arg("--out")
        .arg(out)
        .args(extra);
    run_ok(&mut c)
}

fn shard(lib: &Path, plan: &Path, spec: &str, out: &Path) -> Command {
    let mut c = nsod();
    c.args(["infer", "--threads", "2", "--no-metrics", "-q", "--ort-lib"])
        .arg(lib)
        .arg("--plan")
        .arg(plan)
        .args(["--shard", spec])
        .arg("--out")
        .arg(out);
    c
}

fn merge(lib: &Path, out: &Path) -> Command {
    let mut c = nsod();
    c.args(["merge", "--ort-lib"]).arg(lib).arg(out);
    c
}

/// The files a merged run must share byte for byte with one process's run.
const SAME_FILES: [&str; 9] = [
    "predictions.jsonl",
    "predictions_raw.jsonl",
    "report.csv",
    "report.jsonl",
    "coco_results.json",
    "coco_images.json",
    "scene_graphs.jsonl",
    "kg_facts.pl",
    "kg.json",
];

fn assert_same_run(single: &Path, merged: &Path, extra: &[&str]) {
    for f in SAME_FILES.iter().chain(extra) {
        let a = std::fs::read(single.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        let b = std::fs::read(merged.join(f)).unwrap_or_else(|e| panic!("merged {f}: {e}"));
        assert!(
            a == b,
            "{f} differs between one process and the merged shards"
        );
    }
    let labels = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = walk(&root.join("labels-obb"))
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(labels(single), labels(merged), "labels-obb/");
    let manifest = |root: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root.join("run.json")).unwrap()).unwrap()
    };
    let (a, b) = (manifest(single), manifest(merged));
    assert_eq!(a["counts"], b["counts"], "run.json counts");
    // Equal empty outputs would prove nothing: the images must give detections to merge.
    assert!(
        a["counts"]["detections"].as_u64().unwrap_or(0) > 0,
        "no detections to compare: {}",
        a["counts"]
    );
    assert_eq!(a["failures"], b["failures"], "run.json failures");
    assert_eq!(b["complete"], true);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn shards_merge_exactly_and_missing_bad_and_rerun_shards_are_handled() {
    let lib = ort_lib();
    let crop = sample("neon_yell_2019_10cm.png");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let imgs = d.join("imgs");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    for name in ["a.png", "b.png", "sub/c.png"] {
        std::fs::copy(&crop, imgs.join(name)).unwrap();
    }
    std::fs::write(imgs.join("bad.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();

    // One process.
    let single = d.join("single");
    let o = infer(&lib, &imgs, &single)
        .args(["--kg", "--no-metrics", "-q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "one bad image: {}", text(&o).1);

    // The plan: a, b, bad, sub/c round robin over 3 shards: 0 = a, sub/c; 1 = b; 2 = bad.
    let out = d.join("sharded");
    let p = plan(&imgs, 3, &out, &["--kg"]);
    assert!(
        text(&p)
            .0
            .contains("4 units (4 images, 0 rasters in 0 tiles of 8192 px) over 3 shards"),
        "{}",
        text(&p).0
    );
    let plan_file = out.join("plan.json");
    run_ok(&mut shard(&lib, &plan_file, "0/3", &out));
    let o = shard(&lib, &plan_file, "2/3", &out).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "bad input in the shard: {err}");
    assert!(err.contains("bad.png"), "{err}");
    assert!(
        out.join("shards/2-of-3/_SUCCESS").is_file(),
        "committed all the same"
    );

    // Shard 1 missing: the merge names it and writes nothing.
    let o = merge(&lib, &out).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        error_lines(&err),
        vec!["error: 1 of 3 shards have not finished (no _SUCCESS): 1-of-3"]
    );
    assert!(!out.join("predictions.jsonl").exists());

    // Bad shard settings are configuration errors (4): not worth a retry.
    let o = shard(&lib, &plan_file, "3/3", &out).output().unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        error_lines(&text(&o).1),
        vec!["error: --shard 3/3: index 3 is not below the count 3 (indices start at 0)"]
    );
    let o = shard(&lib, &plan_file, "1/3", &out)
        .args(["--conf", "0.5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        error_lines(&text(&o).1),
        vec![
            "error: --conf: a shard's result and output settings come from its plan (give them to nsod plan); it takes execution settings only"
        ]
    );

    // Shard 1 with its index from the environment, run twice: the rerun replaces the folder whole.
    run_ok(shard(&lib, &plan_file, "3", &out).env("NSOD_SHARD_INDEX", "1"));
    std::fs::write(out.join("shards/1-of-3/stale"), b"from the first try").unwrap();
    run_ok(shard(&lib, &plan_file, "3", &out).env("JOB_COMPLETION_INDEX", "1"));
    assert!(!out.join("shards/1-of-3/stale").exists());
    assert!(out.join("shards/1-of-3/_SUCCESS").exists());

    // The merge, pushing its result to a real Pushgateway.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _gateway = KillOnDrop(
        tool("prometheus-pushgateway")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while http_get(&addr, "/-/ready").is_none_or(|r| !r.contains("200 OK")) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the Pushgateway did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = merge(&lib, &out)
        .args(["--pushgateway", &format!("http://{addr}")])
        .output()
        .unwrap();
    let (stdout, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "one image failed: {stdout}{err}");
    assert!(
        stdout.contains("merged 3 shards: 3 images, 1 failed,"),
        "{stdout}"
    );
    assert!(err.contains("bad.png"), "{err}");
    assert_same_run(&single, &out, &[]);
    let metrics = http_get(&addr, "/metrics").unwrap();
    let value = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    assert_eq!(value("nsod_batch_images"), Some(4.0), "{metrics}");
    assert_eq!(value("nsod_batch_failed_images"), Some(1.0));
    assert_eq!(value("nsod_batch_shards"), Some(3.0));
    let detections: usize = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(single.join("run.json")).unwrap(),
    )
    .unwrap()["counts"]["detections"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(value("nsod_batch_detections"), Some(detections as f64));
    assert!(detections > 0);
    assert_eq!(
        value("nsod_batch_last_success_timestamp_seconds"),
        None,
        "a run with a failure is no success"
    );
    assert!(
        metrics.contains("nsod_batch_images{instance=\"\",job=\"nsod_merge\"} 4"),
        "one group per batch job, no run or shard labels: {metrics}"
    );
}

fn slurm_up() -> bool {
    tool("scontrol")
        .arg("ping")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("is UP"))
}

/// `scontrol show job ID` as text (empty when the job is gone).
fn show_job(id: &str) -> String {
    Command::new("scontrol")
        .args(["show", "job", id])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn a_slurm_array_job_with_a_crashing_shard_equals_one_process() {
    tool("sbatch");
    assert!(
        slurm_up(),
        "missing test asset: no Slurm cluster answers (scontrol ping): run scripts/slurm-local.sh start"
    );
    let lib = ort_lib();
    let dir = tempfile::Builder::new()
        .prefix("nsod-slurm")
        .tempdir_in(
            std::env::var_os("NSOD_SLURM_TMP").map_or_else(std::env::temp_dir, PathBuf::from),
        )
        .unwrap();
    let d = dir.path();
    let imgs = d.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::copy(sample("neon_soap_10cm.png"), imgs.join("crop.png")).unwrap();
    std::fs::copy(sample("neon_yell_2019_10cm.png"), imgs.join("dota.png")).unwrap();
    run_ok(
        Command::new(repo_root().join("scripts/mirror-raster.sh"))
            .arg(sample("neon_yell_2019_10cm.png"))
            .arg("12000")
            .arg(imgs.join("mosaic.tif")),
    );
    let settings = ["--kg", "--threads", "1"];

    // One process.
    let single = d.join("single");
    run_ok(infer(&lib, &imgs, &single).args(["--kg", "--no-metrics", "-q"]));

    // nsod as the array tasks run it, except that task 1's first try is killed (SIGKILL, as the OOM killer does).
    let marker = d.join("crashed-once");
    let wrapper = d.join("nsod-crash-once.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport ORT_DYLIB_PATH='{}'\nif [ \"${{SLURM_ARRAY_TASK_ID:-}}\" = 1 ] && [ ! -e '{}' ]; then\n  touch '{}'\n  kill -9 $$\nfi\nexec '{}' \"$@\"\n",
            lib.display(),
            marker.display(),
            marker.display(),
            env!("CARGO_BIN_EXE_nsod")
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = d.join("run");
    let o = run_ok(
        Command::new(repo_root().join("deploy/slurm/submit.sh"))
            .env("NSOD", &wrapper)
            .env("NSOD_RETRIES", "2")
            .args(["--shards", "3", "--out"])
            .arg(&out)
            .arg("--")
            .arg(&imgs)
            .args(["--window", "6000", "--model"])
            .arg(default_model())
            .args(settings),
    );
    let ids = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let (array, merge_job) = ids.split_once(' ').expect("two job ids");
    let plan_text = std::fs::read_to_string(out.join("plan.json")).unwrap();
    let plan: serde_json::Value = serde_json::from_str(&plan_text).unwrap();
    let windows = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["window"].is_object())
        .count();
    assert_eq!(windows, 4, "12000 px in tiles of 6000");

    // Wait for the merge. Slurm holds a requeued job for about two minutes before it may start again; the test
    // releases it at once.
    let t = Instant::now();
    let task1 = format!("{array}_1");
    let mut requeued = false;
    loop {
        let job = show_job(&task1);
        if job.contains("Restarts=1") {
            requeued = true;
            if job.contains("JobState=PENDING") && job.contains("Reason=BeginTime") {
                let _ = Command::new("scontrol")
                    .args(["update", &format!("jobid={task1}"), "StartTime=now"])
                    .output();
            }
        }
        let merge_state = show_job(merge_job);
        if merge_state.is_empty()
            || merge_state.contains("JobState=COMPLETED")
            || merge_state.contains("JobState=FAILED")
        {
            break;
        }
        assert!(
            !merge_state.contains("DependencyNeverSatisfied"),
            "the merge will never run: {merge_state}\n{}",
            show_job(array)
        );
        assert!(
            t.elapsed() < Duration::from_secs(900),
            "the Slurm run did not finish in 15 minutes:\n{}\n{merge_state}",
            show_job(array)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        marker.exists() && requeued,
        "task 1 crashed once and was requeued"
    );
    let log = std::fs::read_to_string(out.join(format!("logs/nsod-merge-{merge_job}.out")))
        .unwrap_or_default();
    assert!(log.contains("merged 3 shards: 3 images, 0 failed"), "{log}");
    assert_same_run(&single, &out, &["detections.geojson"]);
}

#[test]
fn kubernetes_manifests_validate_offline() {
    let dir = tempfile::tempdir().unwrap();
    let base = repo_root().join("deploy/k8s/base");
    let rendered = run_ok(tool("kubectl").arg("kustomize").arg(&base)).stdout;
    let yaml = dir.path().join("all.yaml");
    std::fs::write(&yaml, &rendered).unwrap();
    let py = python(&["kubernetes_validate", "yaml"]);
    let venv_bin = Path::new(&py).parent().unwrap().to_path_buf();
    let validate = |file: &Path| {
        Command::new(venv_bin.join("kubernetes-validate"))
            .args(["--strict", "--no-warn"])
            .arg(file)
            .output()
            .unwrap()
    };
    let o = validate(&yaml);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    let kinds = |s: &str| {
        s.lines()
            .filter(|l| l.contains(" passed for resource "))
            .count()
    };
    assert_eq!(kinds(&stdout), 7, "every core kind validated: {stdout}");
    for kind in [
        "job/nsod-shards",
        "job/nsod-merge",
        "job/nsod-plan",
        "deployment/nsod-serve",
        "horizontalpodautoscaler/nsod-serve",
    ] {
        assert!(
            stdout.contains(&format!("passed for resource {kind} ")),
            "{kind}: {stdout}"
        );
    }
    // The Indexed Job maps nsod's exit codes.
    let docs: Vec<serde_json::Value> = serde_json::from_str(
        &String::from_utf8(
            run_ok(Command::new(&py).args([
                "-c",
                "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            ]).arg(&yaml))
            .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    let is_shards_job =
        |d: &serde_json::Value| d["kind"] == "Job" && d["metadata"]["name"] == "nsod-shards";
    let job = docs.iter().find(|d| is_shards_job(d)).unwrap();
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let rules = job["spec"]["podFailurePolicy"]["rules"].as_array().unwrap();
    let action_of = |code: i64| {
        rules
            .iter()
            .find(|r| {
                r["onExitCodes"]["values"]
                    .as_array()
                    .is_some_and(|v| v.contains(&code.into()))
            })
            .map(|r| r["action"].as_str().unwrap().to_owned())
    };
    assert_eq!(action_of(3).as_deref(), Some("FailIndex"));
    assert_eq!(action_of(4).as_deref(), Some("FailJob"));
    assert_eq!(action_of(1), None, "other codes are retried");
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(
        args.contains(&format!("--shard={}", job["spec"]["completions"]).into()),
        "--shard N equals completions: {args:?}"
    );

    // The Prometheus Operator kinds against the operator's CRD schemas.
    let json = dir.path().join("all.json");
    std::fs::write(&json, serde_json::to_vec(&docs).unwrap()).unwrap();
    let k8s = repo_root().join("tests/k8s");
    assert!(
        k8s.join("node_modules/@kubernetes-models/prometheus-operator")
            .is_dir(),
        "missing test asset: tests/k8s/node_modules: run scripts/setup.sh --tests"
    );
    let o = Command::new("node")
        .arg(k8s.join("validate-crds.mjs"))
        .arg(&json)
        .output()
        .unwrap();
    let (stdout, _) = text(&o);
    assert!(o.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        "ok PodMonitor/nsod-shards\nok ServiceMonitor/nsod-serve\n"
    );

    // Both validators catch a broken manifest.
    let mut broken = docs.clone();
    for d in &mut broken {
        if d["kind"] == "PodMonitor" {
            d["spec"]["podMetricsEndpoints"][0]["interval"] = "every minute".into();
        }
        if is_shards_job(d) {
            d["spec"]["completionMode"] = "Sorted".into();
            d["spec"]["template"]["spec"]["containers"][0]["resource"] = serde_json::json!({});
        }
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&broken).unwrap()).unwrap();
    let o = Command::new("node")
        .arg(k8s.join("validate-crds.mjs"))
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).0.starts_with("FAIL PodMonitor/nsod-shards: data/spec/podMetricsEndpoints/0/interval must match pattern"), "{}", text(&o).0);
    let bad_yaml = dir.path().join("bad.yaml");
    let job_only: Vec<_> = broken
        .iter()
        .filter(|d| is_shards_job(d))
        .cloned()
        .collect();
    std::fs::write(&bad_yaml, serde_json::to_string(&job_only[0]).unwrap()).unwrap();
    let o = validate(&bad_yaml);
    assert!(
        !o.status.success(),
        "kubernetes-validate --strict refuses the broken Job: {}",
        text(&o).0
    );
}

/// Names read from files never put a file outside its folder, and a shard folder is read without following links
/// (issue: untrusted input, part 2): plan units named `../..` or absolute are refused by the shard and the merge,
/// a link in a shard folder stops the merge, and predictions naming an image outside are refused by
/// `nsod symbolic` with the file and line.
#[test]
fn names_from_files_stay_inside_their_folders_and_shard_links_are_not_followed() {
    let lib = ort_lib();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let imgs = d.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    for name in ["a.png", "b.png"] {
        image::RgbImage::from_pixel(96, 64, image::Rgb([90, 100, 110]))
            .save(imgs.join(name))
            .unwrap();
    }
    let out = d.join("run");
    plan(&imgs, 1, &out, &[]);
    let plan_file = out.join("plan.json");
    let good = std::fs::read_to_string(&plan_file).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    for (name, why) in [
        (
            "../../escaped.png",
            "climbs out of its folder (a .. component)",
        ),
        (
            "/tmp/abs.png",
            "is an absolute path (names are relative to their folder)",
        ),
    ] {
        v["units"][0]["image"] = serde_json::json!(name);
        std::fs::write(&plan_file, v.to_string()).unwrap();
        for mut c in [shard(&lib, &plan_file, "0/1", &out), merge(&lib, &out)] {
            let o = c.output().unwrap();
            let (_, err) = text(&o);
            assert_eq!(o.status.code(), Some(4), "{err}");
            assert_eq!(
                error_lines(&err),
                [format!(
                    "error: {}: not an nsod plan: unit 1: the name {name:?} {why}",
                    plan_file.display()
                )]
            );
        }
        assert!(!out.join("shards").exists(), "nothing written");
    }
    assert!(!d.join("escaped.txt").exists() && !Path::new("/tmp/abs.txt").exists());

    // A complete shard whose predictions.jsonl is a link (to a file the merge could otherwise copy into the run).
    std::fs::write(&plan_file, &good).unwrap();
    run_ok(&mut shard(&lib, &plan_file, "0/1", &out));
    let folder = out.join("shards/0-of-1");
    let elsewhere = d.join("elsewhere.jsonl");
    std::fs::rename(folder.join("predictions.jsonl"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, folder.join("predictions.jsonl")).unwrap();
    let o = merge(&lib, &out).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert_eq!(
        error_lines(&text(&o).1),
        [format!(
            "error: {}: a symbolic link: shard folders are read without following links",
            folder.join("predictions.jsonl").display()
        )]
    );
    assert!(
        !out.join("predictions.jsonl").exists(),
        "the merge wrote nothing"
    );
    // The shard folder itself a link.
    std::fs::remove_file(folder.join("predictions.jsonl")).unwrap();
    std::fs::rename(&elsewhere, folder.join("predictions.jsonl")).unwrap();
    let moved = d.join("moved-shard");
    std::fs::rename(&folder, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &folder).unwrap();
    let o = merge(&lib, &out).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert_eq!(
        error_lines(&text(&o).1),
        [format!(
            "error: {}: a symbolic link: shard folders are read without following links",
            folder.display()
        )]
    );
    // Put back, the merge succeeds.
    std::fs::remove_file(&folder).unwrap();
    std::fs::rename(&moved, &folder).unwrap();
    run_ok(&mut merge(&lib, &out));
    assert!(out.join("labels/a.txt").is_file());

    // Predictions naming an image outside the output folder: refused with the file and line.
    let pred = d.join("pred.jsonl");
    let record = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    let first = record
        .lines()
        .next()
        .unwrap()
        .replace("\"a.png\"", "\"../../escaped.png\"");
    std::fs::write(&pred, format!("{first}\n")).unwrap();
    let sym = d.join("sym");
    let o = nsod()
        .args(["symbolic", "--pred"])
        .arg(&pred)
        .arg("--out")
        .arg(&sym)
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(
        err.contains(&format!(
            "{}:1: the name \"../../escaped.png\" climbs out of its folder (a .. component)",
            pred.display()
        )),
        "{err}"
    );
    assert!(!d.join("escaped.txt").exists() && !d.join("labels").exists());
}
