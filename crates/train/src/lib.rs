//! Following an Ultralytics training run directory and exporting its progress.
//!
//! Ultralytics appends one row to `RUN_DIR/results.csv` per epoch, after validation, and rewrites the file from
//! scratch when a new run starts in the same folder. [`RunWatcher::poll`] is called periodically (polling, not file
//! notifications: one `stat` of a few files per interval, which costs no measurable CPU) and:
//!
//! * reads the bytes appended since the last poll, keeping a half-written last line for the next poll;
//! * notices a new run (the file shrank or was replaced) and resets the run's series;
//! * maps columns by header name: `epoch`, `time` (cumulative seconds), `train/*_loss` and `val/*_loss`
//!   (`nsod_training_loss{component}` with component `train_box`, `val_cls`, ...), `metrics/precision(B)`,
//!   `metrics/recall(B)`, `metrics/mAP50(B)`, `metrics/mAP50-95(B)`, and any number of `lr/pgN`
//!   (`nsod_learning_rate{param_group="pgN"}`); other columns are ignored;
//! * reads `args.yaml` for the planned epochs and the run's settings, and watches `weights/` for `last.pt`,
//!   `best.pt` and `epochN.pt` writes.
//!
//! Bad content (a garbage line, NaN or infinite values, bytes that are not UTF-8) is skipped and reported as an
//! [`Update::Error`] (counted in `nsod_errors_total{stage="train-monitor"}`); nothing here panics or stops the
//! watcher.
//!
//! The watcher reports what it saw as plain data ([`Update`]); it never sees a metrics registry (nsod-telemetry's
//! `TrainMetrics` turns updates into series).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest `results.csv` line kept while waiting for its end (Ultralytics' rows are under 1 KiB).
pub const MAX_LINE: usize = 64 << 10;
/// The most bytes of `results.csv` read in one poll.
pub const MAX_READ: u64 = 8 << 20;

/// What changed in the run, in the order it was seen.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A new run started in the folder (the results file was replaced): the per-run series start over.
    NewRun,
    /// `args.yaml`: the planned epochs and the run's settings.
    Args(RunArgs),
    /// One finished epoch.
    Epoch(EpochRow),
    /// A checkpoint file was written (`last`, `best` or `epoch`), at this Unix time.
    Checkpoint { kind: &'static str, at: f64 },
    /// Bad content skipped: `io`, `encoding`, `csv` or `non_finite`.
    Error(&'static str),
}

/// The values of one `results.csv` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochRow {
    pub epoch: f64,
    /// Unix time the row was read.
    pub at: f64,
    /// `(component, value)`: `train_box`, `val_cls`, ...
    pub losses: Vec<(String, f64)>,
    /// `(param_group, value)`: `pg0`, ...
    pub learning_rates: Vec<(String, f64)>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub map50: Option<f64>,
    pub map50_95: Option<f64>,
    /// Seconds of this epoch (from the cumulative `time` column).
    pub duration: Option<f64>,
    /// Estimated seconds to the last planned epoch.
    pub eta: Option<f64>,
}

/// What one poll saw (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PollReport {
    /// The poll read MAX_READ bytes of `results.csv`: more may be waiting (a final poll drains them).
    pub more: bool,
    pub new_rows: usize,
    pub new_run: bool,
    pub bad_lines: usize,
    pub checkpoints: usize,
}

/// `args.yaml` values nsod uses.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunArgs {
    pub epochs: Option<u64>,
    pub model: Option<String>,
    pub data: Option<String>,
    pub imgsz: Option<String>,
    pub task: Option<String>,
}

impl RunArgs {
    /// Reads the flat `key: value` lines Ultralytics writes (nested or unknown keys are ignored).
    pub fn parse(text: &str) -> Self {
        let mut a = Self::default();
        for line in text.lines() {
            if line.starts_with([' ', '\t', '-', '#']) {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim().trim_matches(['\'', '"']).to_owned();
            match k.trim() {
                "epochs" => a.epochs = v.parse().ok(),
                "model" => a.model = Some(v),
                "data" => a.data = Some(v),
                "imgsz" => a.imgsz = Some(v),
                "task" => a.task = Some(v),
                _ => {}
            }
        }
        a
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Follows one run directory.
#[derive(Debug)]
pub struct RunWatcher {
    dir: PathBuf,
    updates: Vec<Update>,
    /// Identity of the results file being read: (inode-like id, bytes consumed).
    file_id: Option<u64>,
    offset: u64,
    pending: Vec<u8>,
    /// Inside a line longer than [`MAX_LINE`]: its rest is dropped up to the next newline.
    skipping: bool,
    header: Vec<String>,
    last_time: Option<f64>,
    durations: Vec<f64>,
    args_stamp: Option<(SystemTime, u64)>,
    planned: Option<u64>,
    checkpoints: BTreeMap<String, SystemTime>,
    checkpoints_seen: bool,
    last_epoch: Option<f64>,
}

fn file_id(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.ino()
    }
    #[cfg(not(unix))]
    {
        meta.created()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

/// The loss component label of a loss column: `train/box_loss` -> `train_box`.
fn loss_component(col: &str) -> Option<String> {
    let (phase, rest) = col.split_once('/')?;
    let name = rest.strip_suffix("_loss")?;
    ((phase == "train" || phase == "val") && !name.is_empty()).then(|| format!("{phase}_{name}"))
}

impl RunWatcher {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            updates: Vec::new(),
            file_id: None,
            offset: 0,
            pending: Vec::new(),
            skipping: false,
            header: Vec::new(),
            last_time: None,
            durations: Vec::new(),
            args_stamp: None,
            planned: None,
            checkpoints: BTreeMap::new(),
            checkpoints_seen: false,
            last_epoch: None,
        }
    }

    fn error(&mut self, error_type: &'static str) {
        self.updates.push(Update::Error(error_type));
    }

    /// A new run started: the series start over.
    fn reset(&mut self) {
        self.updates.push(Update::NewRun);
        self.header.clear();
        self.pending.clear();
        self.skipping = false;
        self.offset = 0;
        self.last_time = None;
        self.durations.clear();
        self.last_epoch = None;
    }

    /// One look at the run directory: what changed since the last look. Never fails: problems are reported as
    /// [`Update::Error`].
    pub fn poll(&mut self) -> (PollReport, Vec<Update>) {
        let report = self.poll_report();
        (report, std::mem::take(&mut self.updates))
    }

    fn poll_report(&mut self) -> PollReport {
        let mut report = PollReport::default();
        // Checkpoints present at the very first look are the past; any later write counts, even in a weights
        // folder (or run folder) that appears later.
        let first_look = !self.checkpoints_seen;
        self.checkpoints_seen = true;
        if !self.dir.is_dir() {
            return report;
        }
        self.read_args();
        self.read_results(&mut report);
        self.scan_weights(&mut report, first_look);
        report
    }

    fn read_args(&mut self) {
        let path = self.dir.join("args.yaml");
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        // Modification time and size: a file rewritten within the clock's granularity still shows a new size.
        let stamp = meta.modified().ok().map(|t| (t, meta.len()));
        if stamp.is_some() && stamp == self.args_stamp {
            return;
        }
        self.args_stamp = stamp;
        let Ok(bytes) = std::fs::read(&path) else {
            return;
        };
        let text = String::from_utf8_lossy(&bytes);
        let a = RunArgs::parse(&text);
        if let Some(e) = a.epochs {
            self.planned = Some(e);
        }
        self.updates.push(Update::Args(a));
    }

    fn read_results(&mut self, report: &mut PollReport) {
        let path = self.dir.join("results.csv");
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        let id = file_id(&meta);
        let replaced = self.file_id.is_some_and(|old| old != id) || meta.len() < self.offset;
        if replaced {
            self.reset();
            report.new_run = true;
        }
        self.file_id = Some(id);
        if meta.len() == self.offset {
            return;
        }
        let Ok(mut f) = std::fs::File::open(&path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        // At most MAX_READ bytes a poll (the rest comes at the next one), and a partial line of at most MAX_LINE
        // bytes kept: a file that is not a results.csv cannot make the watcher hold it in memory.
        let mut buf = Vec::new();
        if f.take(MAX_READ).read_to_end(&mut buf).is_err() {
            self.error("io");
            return;
        }
        self.offset += buf.len() as u64;
        report.more = buf.len() as u64 == MAX_READ;
        self.pending.extend_from_slice(&buf);
        // Complete lines only; a half-written last line waits for the next poll.
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            if std::mem::take(&mut self.skipping) {
                // The end of a line too long to keep, already counted.
                continue;
            }
            let text = match std::str::from_utf8(&line) {
                Ok(t) => t.to_owned(),
                Err(_) => {
                    self.error("encoding");
                    report.bad_lines += 1;
                    String::from_utf8_lossy(&line).into_owned()
                }
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            if self.header.is_empty() {
                self.header = text.split(',').map(|c| c.trim().to_owned()).collect();
                if !self.header.iter().any(|c| c == "epoch") {
                    self.error("csv");
                    report.bad_lines += 1;
                    self.header.clear();
                }
                continue;
            }
            if self.apply_row(text) {
                report.new_rows += 1;
            } else {
                report.bad_lines += 1;
            }
        }
        if self.pending.len() > MAX_LINE {
            self.pending.clear();
            // One line, one error, however many polls its bytes take.
            if !std::mem::replace(&mut self.skipping, true) {
                self.error("csv");
                report.bad_lines += 1;
            }
        }
    }

    /// Applies one data row; false (and an error counted) when it is not a row of this header.
    fn apply_row(&mut self, line: &str) -> bool {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != self.header.len() {
            self.error("csv");
            return false;
        }
        let mut values: BTreeMap<&str, f64> = BTreeMap::new();
        for (col, raw) in self.header.iter().zip(&fields) {
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    values.insert(col.as_str(), v);
                }
                Ok(_) => self.updates.push(Update::Error("non_finite")),
                Err(_) => self.updates.push(Update::Error("csv")),
            }
        }
        let Some(&epoch) = values.get("epoch") else {
            return false;
        };
        let mut row = EpochRow {
            epoch,
            at: now_secs(),
            ..EpochRow::default()
        };
        for (col, &v) in &values {
            if let Some(component) = loss_component(col) {
                row.losses.push((component, v));
            } else if let Some(pg) = col.strip_prefix("lr/") {
                row.learning_rates.push((pg.to_owned(), v));
            } else {
                match *col {
                    "metrics/precision(B)" => row.precision = Some(v),
                    "metrics/recall(B)" => row.recall = Some(v),
                    "metrics/mAP50(B)" => row.map50 = Some(v),
                    "metrics/mAP50-95(B)" => row.map50_95 = Some(v),
                    _ => {}
                }
            }
        }
        if let Some(&time) = values.get("time") {
            let duration = match self.last_time {
                Some(prev) if time >= prev => Some(time - prev),
                None if epoch <= 1.0 => Some(time),
                _ => None,
            };
            if let Some(d) = duration {
                row.duration = Some(d);
                self.durations.push(d);
            }
            self.last_time = Some(time);
        }
        if let Some(planned) = self.planned
            && !self.durations.is_empty()
        {
            let mean = self.durations.iter().sum::<f64>() / self.durations.len() as f64;
            row.eta = Some(mean * (planned as f64 - epoch).max(0.0));
        }
        self.updates.push(Update::Epoch(row));
        self.last_epoch = Some(epoch);
        true
    }

    fn scan_weights(&mut self, report: &mut PollReport, first_scan: bool) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("weights")) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let kind = match name.as_str() {
                "last.pt" => "last",
                "best.pt" => "best",
                n if n.starts_with("epoch")
                    && n.ends_with(".pt")
                    && n[5..n.len() - 3].chars().all(|c| c.is_ascii_digit()) =>
                {
                    "epoch"
                }
                _ => continue,
            };
            let Ok(mtime) = e.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            let changed = self.checkpoints.get(&name) != Some(&mtime);
            self.checkpoints.insert(name, mtime);
            // Files already there when nsod starts are the past: not counted as saves.
            if changed && !first_scan {
                let at = mtime
                    .duration_since(UNIX_EPOCH)
                    .map_or_else(|_| now_secs(), |d| d.as_secs_f64());
                self.updates.push(Update::Checkpoint { kind, at });
                report.checkpoints += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line without end (a file that is not a results.csv, or a writer gone mad) is dropped once past
    /// MAX_LINE and counted; the rows after its newline are read as usual.
    #[test]
    fn an_endless_line_is_dropped_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("results.csv");
        std::fs::write(&csv, "epoch,train/box_loss\n").unwrap();
        let mut w = RunWatcher::new(dir.path());
        w.poll();
        let mut f = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
        std::io::Write::write_all(&mut f, &vec![b'x'; 3 * MAX_LINE]).unwrap();
        let (report, _) = w.poll();
        assert_eq!(report.bad_lines, 1);
        assert!(w.pending.is_empty(), "{} bytes kept", w.pending.len());
        // More of the same line, over polls of MAX_READ: still the one error already counted.
        std::io::Write::write_all(&mut f, &vec![b'x'; 2 * MAX_READ as usize + 5]).unwrap();
        for _ in 0..3 {
            let (report, _) = w.poll();
            assert_eq!(report.bad_lines, 0);
            assert!(w.pending.len() <= MAX_LINE);
        }
        std::io::Write::write_all(&mut f, b"xxxx\n1,0.5\n").unwrap();
        let (report, updates) = w.poll();
        assert_eq!((report.new_rows, report.bad_lines), (1, 0));
        assert!(
            updates
                .iter()
                .any(|u| matches!(u, Update::Epoch(r) if r.epoch == 1.0)),
            "{updates:?}"
        );
    }

    #[test]
    fn args_and_loss_columns() {
        let a = RunArgs::parse(
            "task: obb\nmode: train\nmodel: yolov8n-obb.pt\ndata: DOTAv1.yaml\nepochs: 100\nimgsz: 1024\naugment:\n  - x\n",
        );
        assert_eq!(a.epochs, Some(100));
        assert_eq!(a.model.as_deref(), Some("yolov8n-obb.pt"));
        assert_eq!(a.task.as_deref(), Some("obb"));
        assert_eq!(
            loss_component("train/box_loss").as_deref(),
            Some("train_box")
        );
        assert_eq!(
            loss_component("val/angle_loss").as_deref(),
            Some("val_angle")
        );
        assert_eq!(loss_component("metrics/mAP50(B)"), None);
        assert_eq!(loss_component("lr/pg0"), None);
    }
}
