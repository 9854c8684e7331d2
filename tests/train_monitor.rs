//! End-to-end tests of `nsod train-monitor` against fake Ultralytics runs written by the test, epoch by epoch.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Monitor {
    child: Child,
    base: String,
}

impl Monitor {
    fn start(run: &Path, extra: &[&str]) -> Self {
        let mut child = nsod()
            .args(["train-monitor", "--poll-interval", "100ms"])
            .arg(run)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("metrics address");
            if let Some(a) = line
                .strip_prefix("metrics: http://")
                .and_then(|r| r.strip_suffix("/metrics"))
            {
                break format!("http://{a}");
            }
        };
        Self { child, base }
    }

    fn scrape(&self) -> HashMap<String, f64> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let body = agent
            .get(&format!("{}/metrics", self.base))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                l.rsplit_once(' ')
                    .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN)))
            })
            .collect()
    }

    /// Scrapes until `ok` holds (10 s at most).
    fn wait(&self, what: &str, ok: impl Fn(&HashMap<String, f64>) -> bool) -> HashMap<String, f64> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.scrape();
            if ok(&m) {
                return m;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; last scrape:\n{m:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap().code()
    }
}

/// A failing test must not leave the monitor running.
impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header(lr_groups: usize, obb: bool) -> String {
    let mut cols = vec![
        "epoch",
        "time",
        "train/box_loss",
        "train/cls_loss",
        "train/dfl_loss",
    ];
    if obb {
        cols.push("train/angle_loss");
    }
    cols.extend([
        "metrics/precision(B)",
        "metrics/recall(B)",
        "metrics/mAP50(B)",
        "metrics/mAP50-95(B)",
        "val/box_loss",
        "val/cls_loss",
        "val/dfl_loss",
    ]);
    let lrs: Vec<String> = (0..lr_groups).map(|g| format!("lr/pg{g}")).collect();
    let mut h: Vec<String> = cols.into_iter().map(str::to_owned).collect();
    h.extend(lrs);
    h.join(",")
}

/// A row for epoch `e`: values derived from the epoch so each one is checkable.
fn row(e: usize, lr_groups: usize, obb: bool) -> (String, Vec<f64>) {
    let f = e as f64;
    let mut v = vec![f, 30.5 * f, 1.5 / f, 1.2 / f, 1.1 / f];
    if obb {
        v.push(0.9 / f);
    }
    v.extend([
        0.5 + 0.01 * f,
        0.4 + 0.01 * f,
        0.3 + 0.02 * f,
        0.2 + 0.02 * f,
        1.6 / f,
        1.3 / f,
        1.2 / f,
    ]);
    v.extend((0..lr_groups).map(|g| 0.01 / f + g as f64 * 0.001));
    (
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(","),
        v,
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{:?}", Instant::now())).unwrap();
}

fn lr_series(m: &HashMap<String, f64>) -> usize {
    m.keys()
        .filter(|k| k.starts_with("nsod_learning_rate{"))
        .count()
}

fn check_row(m: &HashMap<String, f64>, model: &str, v: &[f64], lr_groups: usize, obb: bool) {
    let g = |k: &str| *m.get(k).unwrap_or_else(|| panic!("missing {k}"));
    let mm = format!("model=\"{model}\"");
    assert_eq!(g(&format!("nsod_training_epoch{{{mm}}}")), v[0]);
    let o = usize::from(obb);
    assert_eq!(
        g(&format!(
            "nsod_training_loss{{{mm},component=\"train_box\"}}"
        )),
        v[2]
    );
    assert_eq!(
        g(&format!(
            "nsod_training_loss{{{mm},component=\"train_dfl\"}}"
        )),
        v[4]
    );
    if obb {
        assert_eq!(
            g(&format!(
                "nsod_training_loss{{{mm},component=\"train_angle\"}}"
            )),
            v[5]
        );
    }
    assert_eq!(g(&format!("nsod_validation_precision{{{mm}}}")), v[5 + o]);
    assert_eq!(g(&format!("nsod_validation_recall{{{mm}}}")), v[6 + o]);
    assert_eq!(
        g(&format!("nsod_validation_map{{{mm},iou=\"0.5\"}}")),
        v[7 + o]
    );
    assert_eq!(
        g(&format!("nsod_validation_map{{{mm},iou=\"0.5:0.95\"}}")),
        v[8 + o]
    );
    assert_eq!(
        g(&format!("nsod_training_loss{{{mm},component=\"val_cls\"}}")),
        v[10 + o]
    );
    for k in 0..lr_groups {
        assert_eq!(
            g(&format!("nsod_learning_rate{{{mm},param_group=\"pg{k}\"}}")),
            v[12 + o + k]
        );
    }
    assert_eq!(lr_series(m), lr_groups);
    assert_eq!(
        g(&format!("nsod_training_epoch_duration_seconds{{{mm}}}")),
        30.5
    );
}

fn follow_a_run(lr_groups: usize, obb: bool) {
    let dir = tempfile::tempdir().unwrap();
    let run: PathBuf = dir.path().join("runs/obb/train7");
    // The run folder does not exist yet: the monitor waits for it.
    let mon = Monitor::start(&run, &["--model", "m"]);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("args.yaml"),
        "task: obb\nmodel: yolov8n-obb.pt\ndata: DOTAv1.yaml\nepochs: 3\nimgsz: 1024\n",
    )
    .unwrap();
    let csv = run.join("results.csv");
    let (r1, v1) = row(1, lr_groups, obb);
    append(&csv, &format!("{}\n{r1}\n", header(lr_groups, obb)));
    let m = mon.wait("epoch 1", |m| {
        m.get("nsod_training_epoch{model=\"m\"}") == Some(&1.0)
    });
    check_row(&m, "m", &v1, lr_groups, obb);
    assert_eq!(m["nsod_training_epochs_planned{model=\"m\"}"], 3.0);
    let training: Vec<_> = m.iter().filter(|(k, _)| k.contains("training")).collect();
    assert_eq!(
        m.get("nsod_training_eta_seconds{model=\"m\"}"),
        Some(&(2.0 * 30.5)),
        "{training:?}"
    );
    assert!(
        m.keys()
            .any(|k| k.starts_with("nsod_training_info{") && k.contains("data=\"DOTAv1.yaml\""))
    );
    let progress = m["nsod_training_last_progress_timestamp_seconds{model=\"m\"}"];
    assert!(progress > 1.7e9);

    // Checkpoints: last.pt written.
    touch(&run.join("weights/last.pt"));
    mon.wait("last.pt", |m| {
        m.get("nsod_checkpoint_saves_total{model=\"m\",kind=\"last\"}") == Some(&1.0)
    });

    // Half of epoch 2 written: nothing changes until the line is complete.
    let (r2, v2) = row(2, lr_groups, obb);
    let (head, tail) = r2.split_at(r2.len() / 2);
    append(&csv, head);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(mon.scrape()["nsod_training_epoch{model=\"m\"}"], 1.0);
    append(&csv, &format!("{tail}\n"));
    let m = mon.wait("epoch 2", |m| {
        m.get("nsod_training_epoch{model=\"m\"}") == Some(&2.0)
    });
    check_row(&m, "m", &v2, lr_groups, obb);
    touch(&run.join("weights/best.pt"));
    touch(&run.join("weights/last.pt"));
    let m = mon.wait("best and last again", |m| {
        m.get("nsod_checkpoint_saves_total{model=\"m\",kind=\"best\"}") == Some(&1.0)
            && m.get("nsod_checkpoint_saves_total{model=\"m\",kind=\"last\"}") == Some(&2.0)
    });
    assert!(m["nsod_checkpoint_last_save_timestamp_seconds{model=\"m\"}"] > 1.7e9);
    assert_eq!(mon.stop(), Some(0));
}

#[test]
fn follows_a_detect_run_with_3_learning_rate_groups() {
    follow_a_run(3, false);
}

#[test]
fn follows_an_obb_run_with_8_learning_rate_groups() {
    follow_a_run(8, true);
}

#[test]
fn bad_content_is_counted_and_a_new_run_resets_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("train");
    std::fs::create_dir_all(&run).unwrap();
    let csv = run.join("results.csv");
    let (r1, _) = row(1, 8, false);
    append(&csv, &format!("{}\n{r1}\n", header(8, false)));
    let mon = Monitor::start(&run, &[]);
    let m = mon.wait("epoch 1", |m| {
        m.get("nsod_training_epoch{model=\"train\"}") == Some(&1.0)
    });
    assert_eq!(lr_series(&m), 8);
    let err = |m: &HashMap<String, f64>, t: &str| {
        m.get(&format!(
            "nsod_errors_total{{stage=\"train-monitor\",error_type=\"{t}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };

    append(&csv, "this,is,garbage\n");
    mon.wait("garbage counted", |m| err(m, "csv") == 1.0);
    // NaN and inf values: skipped, counted; the rest of the row still applies.
    let (r2, _) = row(2, 8, false);
    let mut fields: Vec<&str> = r2.split(',').collect();
    fields[2] = "inf";
    fields[3] = "NaN";
    append(&csv, &format!("{}\n", fields.join(",")));
    let m = mon.wait("epoch 2", |m| {
        m.get("nsod_training_epoch{model=\"train\"}") == Some(&2.0)
    });
    assert_eq!(err(&m, "non_finite"), 2.0);
    let mut f = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
    f.write_all(b"3,\xff\xfe,1\n").unwrap();
    mon.wait("non-UTF-8 counted", |m| err(m, "encoding") == 1.0);

    // A new run in the same folder: the file is deleted and recreated with 3 learning-rate groups.
    std::fs::remove_file(&csv).unwrap();
    let (r1, v1) = row(1, 3, false);
    append(&csv, &format!("{}\n{r1}\n", header(3, false)));
    let m = mon.wait("the new run", |m| {
        m.get("nsod_training_epoch{model=\"train\"}") == Some(&1.0) && lr_series(m) == 3
    });
    check_row(&m, "train", &v1, 3, false);
    assert_eq!(mon.stop(), Some(0));
}

#[test]
fn wrap_mode_returns_the_exit_code_and_forwards_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("train");
    let out = nsod()
        .args(["train-monitor", "--poll-interval", "50ms"])
        .arg(&run)
        .args(["--", "sh", "-c", "echo training; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
    assert!(
        text(&out).0.contains("training"),
        "the child's output streams through"
    );

    // SIGTERM to nsod reaches the child, which exits 7 from its handler; nsod exits with that code.
    let marker = dir.path().join("got-term");
    let script = format!(
        "trap 'touch {}; exit 7' TERM; while true; do sleep 0.1; done",
        marker.display()
    );
    let mon = Monitor::start(&run, &["--", "sh", "-c", &script]);
    // The child's memory is sampled on the poll after it is seen up: wait for both.
    let m = mon.wait("child up and sampled", |m| {
        m.get("nsod_training_process_up{model=\"train\"}") == Some(&1.0)
            && m.contains_key("nsod_training_process_resident_memory_bytes{model=\"train\"}")
    });
    assert!(m.contains_key("nsod_training_process_resident_memory_bytes{model=\"train\"}"));
    assert_eq!(mon.stop(), Some(7));
    assert!(marker.exists(), "the child got SIGTERM");
}
