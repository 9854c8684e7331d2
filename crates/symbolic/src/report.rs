//! Explanations: one row per rule application, as `report.csv` (the reference pipeline's explainability columns)
//! and `report.jsonl` (full detail). Both are streamed into `.partial` files and renamed by
//! [`ReportWriter::finish`].

use nsod_types::Detection;
use nsod_types::outcome::{Adjustment, Change};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The CSV header: the reference pipeline's report columns, then `reason` (why a scene or size rule fired; empty
/// for pair and relation rules). Size and scene rules concern one object: the `object_2` columns are empty.
pub const CSV_HEADER: &str = "image_name,action,rule_pair,object_1,conf_1_before,conf_1_after,object_2,conf_2_before,conf_2_after,suppressed_object,kept_object,kept_object_conf,reason";

use nsod_types::formats::csv::quote as csv_field;

fn object_name(d: &Detection, i: usize) -> String {
    format!("{}#{i}", d.class_name)
}

/// The CSV row of one change.
pub fn csv_row(image: &str, c: &Change, dets: &[Detection], after: &[f32]) -> String {
    let t = &dets[c.target];
    let n1 = object_name(t, c.target);
    let (n2, before2, after2) = match c.other {
        Some(o) => (
            object_name(&dets[o], o),
            format!("{:.6}", dets[o].score),
            format!("{:.6}", after[o]),
        ),
        None => (String::new(), String::new(), String::new()),
    };
    let (suppressed, kept, kept_conf) = match c.other {
        Some(o) if c.action == "PENALTY" && c.rule.starts_with("confidence_modifier") => {
            (n1.clone(), n2.clone(), format!("{:.6}", after[o]))
        }
        _ => (String::new(), String::new(), String::new()),
    };
    [
        csv_field(image),
        c.action.to_owned(),
        csv_field(&c.rule),
        csv_field(&n1),
        format!("{:.6}", t.score),
        format!("{:.6}", after[c.target]),
        csv_field(&n2),
        before2,
        after2,
        csv_field(&suppressed),
        csv_field(&kept),
        kept_conf,
        csv_field(&c.reason),
    ]
    .join(",")
}

/// The JSON object of one change.
pub fn json_row(image: &str, c: &Change, dets: &[Detection], after: &[f32]) -> serde_json::Value {
    let obj = |i: usize| {
        let d = &dets[i];
        serde_json::json!({
            "index": i,
            "class_id": d.class_id,
            "class_name": d.class_name,
            "bbox": d.bbox,
            "obb": d.obb,
            "conf_before": d.score,
            "conf_after": after[i],
        })
    };
    serde_json::json!({
        "image": image,
        "action": c.action,
        "rule": c.rule,
        "factor": c.factor,
        "changes_both": c.both,
        "object_1": obj(c.target),
        "object_2": c.other.map(obj),
        "reason": c.reason,
    })
}

/// Streams the explanation files.
#[derive(Debug)]
pub struct ReportWriter {
    csv: BufWriter<File>,
    jsonl: BufWriter<File>,
    files: [(PathBuf, PathBuf); 2],
    rows: usize,
}

fn partial(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

impl ReportWriter {
    /// Creates `dir/report.csv` and `dir/report.jsonl` (as `.partial` until [`ReportWriter::finish`]).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let csv_path = dir.join(nsod_types::layout::REPORT_CSV);
        let jsonl_path = dir.join(nsod_types::layout::REPORT_JSONL);
        let mut csv = BufWriter::new(File::create(partial(&csv_path))?);
        writeln!(csv, "{CSV_HEADER}")?;
        let jsonl = BufWriter::new(File::create(partial(&jsonl_path))?);
        Ok(Self {
            csv,
            jsonl,
            files: [
                (partial(&csv_path), csv_path),
                (partial(&jsonl_path), jsonl_path),
            ],
            rows: 0,
        })
    }

    /// Writes every change of one image.
    pub fn write(
        &mut self,
        image: &str,
        dets: &[Detection],
        adj: &Adjustment,
    ) -> std::io::Result<()> {
        for c in &adj.changes {
            writeln!(self.csv, "{}", csv_row(image, c, dets, &adj.scores))?;
            serde_json::to_writer(&mut self.jsonl, &json_row(image, c, dets, &adj.scores))?;
            self.jsonl.write_all(b"\n")?;
            self.rows += 1;
        }
        self.csv.flush()?;
        self.jsonl.flush()
    }

    /// Writes rows an earlier run wrote (a resumed run keeps them): CSV lines without their newline, and the
    /// matching JSON lines.
    pub fn copy_rows(&mut self, csv: &[String], jsonl: &[String]) -> std::io::Result<()> {
        for l in csv {
            writeln!(self.csv, "{l}")?;
        }
        for l in jsonl {
            writeln!(self.jsonl, "{l}")?;
        }
        self.rows += csv.len();
        self.csv.flush()?;
        self.jsonl.flush()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Syncs and renames both files into place.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.csv.flush()?;
        self.jsonl.flush()?;
        self.csv.get_ref().sync_all()?;
        self.jsonl.get_ref().sync_all()?;
        for (from, to) in &self.files {
            std::fs::rename(from, to)?;
        }
        Ok(())
    }
}
