//! Reports: `eval.json`, a markdown report, the terminal table and precision-recall plots (SVG). With several
//! prediction sets (before / after the rules) every table shows them side by side with the change from the first
//! to the last.

use crate::coco::{ClassResult, CocoEval, Summary};
use crate::voc::VocEval;
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// The evaluation of one prediction set.
#[derive(Debug, Clone)]
pub struct Run {
    /// Short name shown in tables (`raw`, `refined`, a file name).
    pub label: String,
    /// Where the predictions came from.
    pub source: String,
    /// Detections evaluated (after matching to the ground truth).
    pub detections: usize,
    pub coco: CocoEval,
    pub voc: VocEval,
}

/// What was evaluated against.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub ground_truth: String,
    pub gt_format: String,
    /// `bbox` (axis-aligned IoU) or `obb` (rotated IoU).
    pub iou_type: String,
    pub images: usize,
    pub gt_objects: usize,
    /// Input problems reported (bad label files, unknown images or classes).
    pub problems: usize,
    /// COCO's last maxDets (100 unless raised: the cut of AP and AR).
    pub max_dets: usize,
    /// The interval of the change from the first set to the last ([`crate::bootstrap`]), when asked for.
    #[serde(skip)]
    pub bootstrap: Option<crate::bootstrap::Outcome>,
}

fn num(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn summary_json(s: &Summary) -> Value {
    let a = s.to_array();
    Value::Object(
        Summary::KEYS
            .iter()
            .zip(a)
            .map(|(k, v)| ((*k).to_owned(), num(v)))
            .collect(),
    )
}

fn per_class_json(run: &Run) -> Value {
    Value::Array(
        run.coco
            .per_class
            .iter()
            .zip(&run.voc.per_class)
            .map(|(c, v)| {
                json!({
                    "id": c.id,
                    "name": c.name,
                    "gt": c.gt,
                    "detections": c.detections,
                    "AP": c.ap,
                    "AP50": c.ap50,
                    "AP75": c.ap75,
                    "recall50": c.recall50,
                    "best_f1": c.best_f1,
                    "precision_at_best_f1": c.precision_at_best_f1,
                    "recall_at_best_f1": c.recall_at_best_f1,
                    "score_at_best_f1": c.score_at_best_f1,
                    "voc_ap": v.ap,
                    "voc_precision": v.precision,
                    "voc_recall": v.recall,
                    "true_positives": v.true_positives,
                    "false_positives": v.false_positives,
                })
            })
            .collect(),
    )
}

fn run_json(run: &Run) -> Value {
    json!({
        "label": run.label,
        "source": run.source,
        "detections": run.detections,
        "coco": summary_json(&run.coco.summary),
        "voc": {
            "iou_threshold": run.voc.iou_threshold,
            "method": run.voc.method,
            "mAP": run.voc.map,
        },
        "per_class": per_class_json(run),
    })
}

/// `a - b` when both are defined (not -1).
fn delta(after: f64, before: f64) -> Option<f64> {
    (after > -1.0 && before > -1.0).then_some(after - before)
}

/// The contents of `eval.json`: the last prediction set's results at the top level (`coco`, `voc`, `per_class`),
/// every set under `runs`, and with two or more sets `delta` (last minus first; null where undefined).
pub fn to_json(meta: &Meta, runs: &[Run]) -> Value {
    let mut v = json!({
        "nsod_version": env!("CARGO_PKG_VERSION"),
        "ground_truth": meta,
        "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
    });
    if let Some(last) = runs.last() {
        let r = run_json(last);
        for key in ["coco", "voc", "per_class"] {
            v[key] = r[key].clone();
        }
    }
    if let (Some(first), Some(last)) = (runs.first(), runs.last())
        && runs.len() > 1
    {
        let (a, b) = (first.coco.summary.to_array(), last.coco.summary.to_array());
        let coco: serde_json::Map<String, Value> = Summary::KEYS
            .iter()
            .enumerate()
            .map(|(i, k)| ((*k).to_owned(), json!(delta(b[i], a[i]))))
            .collect();
        let per_class: Vec<Value> = first
            .coco
            .per_class
            .iter()
            .zip(&last.coco.per_class)
            .zip(first.voc.per_class.iter().zip(&last.voc.per_class))
            .map(|((ca, cb), (va, vb))| {
                json!({
                    "id": cb.id,
                    "name": cb.name,
                    "AP": delta(cb.ap, ca.ap),
                    "AP50": delta(cb.ap50, ca.ap50),
                    "AP75": delta(cb.ap75, ca.ap75),
                    "voc_ap": va.ap.zip(vb.ap).map(|(x, y)| y - x),
                    "detections": cb.detections as i64 - ca.detections as i64,
                })
            })
            .collect();
        v["delta"] = json!({
            "from": first.label,
            "to": last.label,
            "coco": coco,
            "voc_mAP": first.voc.map.zip(last.voc.map).map(|(x, y)| y - x),
            "per_class": per_class,
        });
    }
    if let Some(b) = &meta.bootstrap {
        v["bootstrap"] = json!(b);
    }
    v
}

/// The bootstrap's lines: one per metric, its change and interval.
fn bootstrap_lines(b: &crate::bootstrap::Outcome) -> Vec<String> {
    b.changes
        .iter()
        .map(|c| {
            format!(
                "Δ{:<5} {:+.4}  {:.0}% interval [{:+.4}, {:+.4}]{}",
                c.metric,
                c.estimate,
                100.0 * b.level,
                c.low,
                c.high,
                if c.excludes_zero() {
                    "  (excludes 0)"
                } else {
                    ""
                }
            )
        })
        .collect()
}

fn bootstrap_heading(b: &crate::bootstrap::Outcome, runs: &[Run]) -> String {
    format!(
        "Change from {} to {}, paired block bootstrap ({} replicates of {} blocks of {} px, seed {}):",
        runs.first().map_or("", |r| r.label.as_str()),
        runs.last().map_or("", |r| r.label.as_str()),
        b.replicates,
        b.blocks,
        b.block,
        b.seed
    )
}

const SUMMARY_LABELS: [&str; 12] = [
    "AP     IoU=0.50:0.95 area=all    maxDets=100",
    "AP50   IoU=0.50      area=all    maxDets=100",
    "AP75   IoU=0.75      area=all    maxDets=100",
    "APs    IoU=0.50:0.95 area=small  maxDets=100",
    "APm    IoU=0.50:0.95 area=medium maxDets=100",
    "APl    IoU=0.50:0.95 area=large  maxDets=100",
    "AR1    IoU=0.50:0.95 area=all    maxDets=1",
    "AR10   IoU=0.50:0.95 area=all    maxDets=10",
    "AR100  IoU=0.50:0.95 area=all    maxDets=100",
    "ARs    IoU=0.50:0.95 area=small  maxDets=100",
    "ARm    IoU=0.50:0.95 area=medium maxDets=100",
    "ARl    IoU=0.50:0.95 area=large  maxDets=100",
];

fn cell(v: f64) -> String {
    if v > -1.0 {
        format!("{v:.4}")
    } else {
        "-".into()
    }
}

fn opt_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

fn delta_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:+.4}"))
}

/// Rows of a table: header, then data; the markdown and terminal renderers share them.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn summary_table(meta: &Meta, runs: &[Run]) -> Table {
    let mut header = vec!["metric".to_owned()];
    header.extend(runs.iter().map(|r| r.label.clone()));
    let two = runs.len() > 1;
    if two {
        header.push("change".into());
    }
    let mut rows = Vec::new();
    for (i, label) in SUMMARY_LABELS.iter().enumerate() {
        let mut row = vec![label.replace("maxDets=100", &format!("maxDets={}", meta.max_dets))];
        row.extend(runs.iter().map(|r| cell(r.coco.summary.to_array()[i])));
        if two {
            let (a, b) = (
                runs[0].coco.summary.to_array()[i],
                runs[runs.len() - 1].coco.summary.to_array()[i],
            );
            row.push(delta_cell(delta(b, a)));
        }
        rows.push(row);
    }
    if let Some(r0) = runs.first() {
        let name = match r0.voc.method {
            crate::voc::ApMethod::AllPoints => "VOC mAP IoU>0.50 (all points)",
            crate::voc::ApMethod::Voc07 => "VOC mAP IoU>0.50 (VOC07 11-point)",
        };
        let mut row = vec![name.to_owned()];
        row.extend(runs.iter().map(|r| opt_cell(r.voc.map)));
        if two {
            row.push(delta_cell(
                r0.voc
                    .map
                    .zip(runs[runs.len() - 1].voc.map)
                    .map(|(x, y)| y - x),
            ));
        }
        rows.push(row);
    }
    Table { header, rows }
}

fn class_table(runs: &[Run]) -> Table {
    let two = runs.len() > 1;
    let mut header = vec!["class".to_owned(), "GT".to_owned()];
    for r in runs {
        header.push(format!("dets {}", r.label));
        header.push(format!("AP50 {}", r.label));
        header.push(format!("AP {}", r.label));
    }
    if two {
        header.push("ΔAP50".into());
        header.push("ΔAP".into());
    }
    let Some(first) = runs.first() else {
        return Table {
            header,
            rows: Vec::new(),
        };
    };
    let last = &runs[runs.len() - 1];
    let rows = first
        .coco
        .per_class
        .iter()
        .enumerate()
        .filter(|(k, c)| c.gt > 0 || runs.iter().any(|r| r.coco.per_class[*k].detections > 0))
        .map(|(k, c)| {
            let mut row = vec![c.name.clone(), c.gt.to_string()];
            for r in runs {
                let rc: &ClassResult = &r.coco.per_class[k];
                row.push(rc.detections.to_string());
                row.push(cell(rc.ap50));
                row.push(cell(rc.ap));
            }
            if two {
                let (a, b) = (&first.coco.per_class[k], &last.coco.per_class[k]);
                row.push(delta_cell(delta(b.ap50, a.ap50)));
                row.push(delta_cell(delta(b.ap, a.ap)));
            }
            row
        })
        .collect();
    Table { header, rows }
}

fn render_text(t: &Table, out: &mut String) {
    let n = t.header.len();
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            std::iter::once(&t.header[i])
                .chain(t.rows.iter().map(|r| &r[i]))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String], out: &mut String| {
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i == 0 {
                let _ = write!(out, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{c}", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&t.header, out);
    let total: usize = widths.iter().sum::<usize>() + 2 * (n - 1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for r in &t.rows {
        line(r, out);
    }
}

fn render_markdown(t: &Table, out: &mut String) {
    let _ = writeln!(out, "| {} |", t.header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        t.header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in &t.rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
}

/// The table printed on the terminal.
pub fn text(meta: &Meta, runs: &[Run]) -> String {
    let mut s = format!(
        "{} images, {} ground-truth objects, IoU type {}\n\n",
        meta.images, meta.gt_objects, meta.iou_type
    );
    render_text(&summary_table(meta, runs), &mut s);
    s.push('\n');
    render_text(&class_table(runs), &mut s);
    if let Some(b) = &meta.bootstrap {
        let _ = writeln!(s, "\n{}", bootstrap_heading(b, runs));
        for l in bootstrap_lines(b) {
            let _ = writeln!(s, "  {l}");
        }
    }
    s
}

/// The markdown report (`eval.md`).
pub fn markdown(meta: &Meta, runs: &[Run]) -> String {
    let mut s = String::from("# nsod evaluation\n\n");
    let _ = writeln!(
        s,
        "Ground truth: `{}` ({}, {} images, {} objects, IoU type `{}`).",
        meta.ground_truth, meta.gt_format, meta.images, meta.gt_objects, meta.iou_type
    );
    if meta.problems > 0 {
        let _ = writeln!(
            s,
            "\n**{} input problems** were reported and the items concerned left out.",
            meta.problems
        );
    }
    s.push_str("\nPredictions:\n\n");
    for r in runs {
        let _ = writeln!(
            s,
            "- **{}**: `{}` ({} detections)",
            r.label, r.source, r.detections
        );
    }
    s.push_str("\n## Summary (COCO, as pycocotools)\n\n");
    render_markdown(&summary_table(meta, runs), &mut s);
    s.push_str(
        "\n## Per class\n\nAP50 and AP (IoU 0.50:0.95) are COCO-style, area all, maxDets 100.\n\n",
    );
    render_markdown(&class_table(runs), &mut s);
    if runs.len() > 1 {
        let (a, b) = (&runs[0], &runs[runs.len() - 1]);
        let _ = writeln!(
            s,
            "\nChange from **{}** to **{}**: AP {} , AP50 {}.",
            a.label,
            b.label,
            delta_cell(delta(b.coco.summary.AP, a.coco.summary.AP)),
            delta_cell(delta(b.coco.summary.AP50, a.coco.summary.AP50)),
        );
    }
    if let Some(b) = &meta.bootstrap {
        let _ = writeln!(s, "\n{}\n", bootstrap_heading(b, runs));
        for l in bootstrap_lines(b) {
            let _ = writeln!(s, "- `{l}`");
        }
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A precision-recall plot (IoU 0.50, interpolated at 101 recall points) of category `k` for every run, as SVG;
/// `None` when no run has a curve for it.
pub fn pr_svg(runs: &[Run], k: usize) -> Option<String> {
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    ];
    let name = &runs.first()?.coco.per_class.get(k)?.name;
    if runs
        .iter()
        .all(|r| r.coco.pr_curves.get(k).is_none_or(Vec::is_empty))
    {
        return None;
    }
    let (w, h, m) = (420.0, 320.0, 40.0);
    let (pw, ph) = (w - 2.0 * m, h - 2.0 * m);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">
<title>{t}</title>
<rect x="{m}" y="{m}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>
<text x="{cx}" y="20" text-anchor="middle">{t}: precision-recall at IoU 0.50</text>
<text x="{cx}" y="{by}" text-anchor="middle">recall</text>
<text x="12" y="{cy}" text-anchor="middle" transform="rotate(-90 12 {cy})">precision</text>
"##,
        t = xml_escape(name),
        cx = w / 2.0,
        cy = h / 2.0,
        by = h - 8.0
    );
    for (i, r) in runs.iter().enumerate() {
        let Some(curve) = r.coco.pr_curves.get(k).filter(|c| !c.is_empty()) else {
            continue;
        };
        let pts: Vec<String> = curve
            .iter()
            .enumerate()
            .map(|(j, p)| format!("{:.1},{:.1}", m + pw * j as f64 / 100.0, m + ph * (1.0 - p)))
            .collect();
        let color = COLORS[i % COLORS.len()];
        let ap = r.coco.per_class[k].ap50;
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>
<text x="{}" y="{}" fill="{color}">{} (AP50 {})</text>"#,
            pts.join(" "),
            m + 8.0,
            m + 16.0 + 14.0 * i as f64,
            xml_escape(&r.label),
            cell(ap)
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}
