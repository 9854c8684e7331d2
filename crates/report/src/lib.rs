//! `nsod report`: a run folder as a static, self-contained web site, opened from disk (`index.html`; no server, no
//! request to another host).
//!
//! * `index.html`: the summary (images, detections per class counted from `predictions.jsonl`, failures with their
//!   causes, the model, configuration and stage times from `run.json`) and the warnings about the folder.
//! * `gallery/N.html`: pages of thumbnails ([`ReportOptions::page_size`] each), so a run of 10,000 images never
//!   makes one huge page.
//! * `view/K.html` + `data/K.js`: the viewer of image K: the image with its oriented boxes as SVG, class toggles,
//!   a confidence slider, raw or refined scores, and on hover each box's class, scores and every rule that changed
//!   it with its explanation. The detections live in the data file, loaded by that page only.
//! * `rules/N.html`: the rule changes, sortable and filterable, each linked to its detection.
//! * `tracks.html` + `tracks/ID.svg` (`nsod track` runs): the tracks of `track_summary.csv`, sortable, each with
//!   its trajectory drawn over its first frame, the camera's motion since then undone (from `tracks.jsonl`).
//! * `kg.html`: the knowledge graph's relations (nsod's own SVGs, nodes sized by count) and its node table;
//!   `eval.html`: an evaluation in the folder (`nsod eval --out`), its tables and precision-recall plots.
//!
//! Thumbnails and viewer images are made once (named after the image, remade only when the source is newer) from
//! the run's inputs, `--images`, or the annotated copies in `vis/`. A folder with missing files or cut lines gives
//! a report with a visible warning, never an error: only an output that cannot be written is one.
//!
//! Templates are [minijinja](https://docs.rs/minijinja) (HTML-escaped), compiled into the binary with the CSS and
//! JavaScript (plain, no library), so the site works offline.

pub mod load;

use image::RgbImage;
use load::{Change, RunData};
use minijinja::{Environment, context};
use nsod_types::formats::jsonl::ImagePredictions;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What `nsod report` is asked to do.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub run_dir: PathBuf,
    /// Where the site is written (default `RUN_DIR/report`).
    pub out: PathBuf,
    /// Where the images are, when not where the run read them.
    pub images: Option<PathBuf>,
    /// Thumbnails per gallery page.
    pub page_size: usize,
    /// Rule changes per table page.
    pub rules_page_size: usize,
    /// Longest side of a thumbnail and of the viewer's image, px.
    pub thumb_side: u32,
    pub view_side: u32,
    /// How rasters are read (their decimated preview is what the viewer shows).
    pub raster: nsod_raster::RasterOptions,
}

impl ReportOptions {
    pub fn new(run_dir: &Path) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            out: run_dir.join("report"),
            images: None,
            page_size: 100,
            rules_page_size: 1000,
            thumb_side: 256,
            view_side: 2048,
            raster: nsod_raster::RasterOptions::default(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportSummary {
    pub index: PathBuf,
    pub images: usize,
    pub detections: usize,
    pub changes: usize,
    pub gallery_pages: usize,
    pub rule_pages: usize,
    /// Tracks in the tracks page (`nsod track` runs).
    pub tracks: usize,
    /// Images whose thumbnail and viewer image were made, and reused from an earlier report.
    pub pictures_made: usize,
    pub pictures_reused: usize,
    /// The problems the report shows on its front page.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: not a folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template {name}: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("gallery.html", include_str!("../templates/gallery.html")),
    ("view.html", include_str!("../templates/view.html")),
    ("rules.html", include_str!("../templates/rules.html")),
    ("kg.html", include_str!("../templates/kg.html")),
    ("eval.html", include_str!("../templates/eval.html")),
    ("tracks.html", include_str!("../templates/tracks.html")),
];

const ASSETS: &[(&str, &str)] = &[
    ("report.css", include_str!("../assets/report.css")),
    ("viewer.js", include_str!("../assets/viewer.js")),
    ("table.js", include_str!("../assets/table.js")),
];

/// Builds the report of `opts.run_dir` into `opts.out`.
pub fn build(opts: &ReportOptions) -> Result<ReportSummary, ReportError> {
    if !opts.run_dir.is_dir() {
        return Err(ReportError::NotAFolder {
            path: opts.run_dir.clone(),
        });
    }
    let mut data = load::read(&opts.run_dir);
    let mut site = Site::new(opts)?;
    let has_kg = data.kg.is_some() || !data.kg_pictures.is_empty();
    let has_eval = data.eval.is_some();
    site.env.add_global("has_kg", has_kg);
    site.env.add_global("has_eval", has_eval);
    site.env.add_global("has_tracks", data.tracks.is_some());
    let mut summary = ReportSummary {
        index: opts.out.join("index.html"),
        images: data.records.len(),
        detections: data.records.iter().map(|r| r.detections.len()).sum(),
        changes: data.changes.len(),
        ..Default::default()
    };
    for dir in [
        "assets", "gallery", "view", "data", "rules", "thumbs", "img",
    ] {
        site.dir(dir)?;
    }
    for (name, text) in ASSETS {
        site.write(&format!("assets/{name}"), text.as_bytes())?;
    }

    // Pictures first (in parallel): which images have one is part of every page.
    let sources = Sources::new(opts, &data);
    let made: Vec<Result<Picture, String>> = data
        .records
        .par_iter()
        .map(|r| sources.picture(&r.image, &site))
        .collect();
    let mut pictures = Vec::with_capacity(made.len());
    for (r, p) in data.records.iter().zip(made) {
        match p {
            Ok(p) => {
                if p.reused {
                    summary.pictures_reused += 1;
                } else {
                    summary.pictures_made += 1;
                }
                pictures.push(Some(p));
            }
            Err(e) => {
                data.warnings.push(format!(
                    "{}: no picture ({e}); its boxes are shown alone",
                    r.image
                ));
                pictures.push(None);
            }
        }
    }

    // Changes by image, and the index of each image's viewer.
    let index_of: HashMap<&str, usize> = data
        .records
        .iter()
        .enumerate()
        .map(|(k, r)| (r.image.as_str(), k))
        .collect();
    let mut changes_of: HashMap<&str, Vec<&Change>> = HashMap::new();
    for c in &data.changes {
        changes_of.entry(c.image.as_str()).or_default().push(c);
    }
    let names: Vec<&str> = data.records.iter().map(|r| r.image.as_str()).collect();

    // Viewers and their data.
    for (k, r) in data.records.iter().enumerate() {
        let changes = changes_of.get(r.image.as_str()).map_or(&[][..], |v| &v[..]);
        let raw = data.raw.get(&r.image);
        let d = image_data(r, raw, changes, pictures[k].as_ref());
        let js = format!(
            "window.NSOD_IMAGE = {};\n",
            serde_json::to_string(&d).unwrap_or_else(|_| "null".into())
        );
        site.write(&format!("data/{k}.js"), js.as_bytes())?;
        site.render(
            &format!("view/{k}.html"),
            "view.html",
            context! {
                root => "..",
                title => r.image,
                k => k,
                prev => k.checked_sub(1),
                next => (k + 1 < names.len()).then_some(k + 1),
                page => k / opts.page_size + 1,
                detections => r.detections.len(),
                changes => changes.len(),
                width => r.width,
                height => r.height,
            },
        )?;
    }

    // The gallery, page by page.
    let pages = data.records.len().div_ceil(opts.page_size).max(1);
    summary.gallery_pages = pages;
    for page in 1..=pages {
        let items: Vec<Value> = data
            .records
            .iter()
            .enumerate()
            .skip((page - 1) * opts.page_size)
            .take(opts.page_size)
            .map(|(k, r)| {
                json!({
                    "k": k,
                    "image": r.image,
                    "detections": r.detections.len(),
                    "changes": changes_of.get(r.image.as_str()).map_or(0, Vec::len),
                    "thumb": pictures[k].as_ref().map(|p| format!("../thumbs/{}", p.thumb)),
                })
            })
            .collect();
        site.render(
            &format!("gallery/{page}.html"),
            "gallery.html",
            context! {
                root => "..",
                title => format!("Images, page {page} of {pages}"),
                items => items,
                page => page,
                pages => pages,
                first => (page - 1) * opts.page_size + 1,
                last => ((page) * opts.page_size).min(data.records.len()),
                total => data.records.len(),
            },
        )?;
    }

    // Rule changes, page by page.
    let rule_pages = data.changes.len().div_ceil(opts.rules_page_size).max(1);
    summary.rule_pages = rule_pages;
    for page in 1..=rule_pages {
        let rows: Vec<Value> = data
            .changes
            .iter()
            .skip((page - 1) * opts.rules_page_size)
            .take(opts.rules_page_size)
            .map(|c| {
                let o = &c.objects[0];
                json!({
                    "image": c.image,
                    "k": index_of.get(c.image.as_str()),
                    "index": o.index,
                    "rule": c.rule,
                    "action": c.action,
                    "classes": c.objects.iter().map(|o| o.class.as_str()).collect::<Vec<_>>().join(" + "),
                    "before": fmt_score(o.before),
                    "after": fmt_score(o.after),
                    "reason": c.reason,
                })
            })
            .collect();
        site.render(
            &format!("rules/{page}.html"),
            "rules.html",
            context! {
                root => "..",
                title => format!("Rule changes, page {page} of {rule_pages}"),
                rows => rows,
                page => page,
                pages => rule_pages,
                total => data.changes.len(),
            },
        )?;
    }

    // Knowledge graph and evaluation.
    if has_kg {
        site.dir("kg")?;
        let mut pictures = Vec::new();
        for p in &data.kg_pictures {
            let name = format!("{}.svg", safe_name(&p.relation));
            if let Err(e) = copy(&p.path, &site.out.join("kg").join(&name)) {
                data.warnings.push(format!("{}: {e}", p.path.display()));
                continue;
            }
            pictures.push(json!({"relation": p.relation, "file": format!("kg/{name}")}));
        }
        let mut nodes: Vec<Value> = data
            .kg
            .as_ref()
            .and_then(|k| k["nodes"].as_array())
            .cloned()
            .unwrap_or_default();
        nodes.sort_by_key(|n| std::cmp::Reverse(n["objects"].as_u64().unwrap_or(0)));
        let mut links: Vec<Value> = data
            .kg
            .as_ref()
            .and_then(|k| k["links"].as_array())
            .cloned()
            .unwrap_or_default();
        links.sort_by_key(|l| std::cmp::Reverse(l["count"].as_u64().unwrap_or(0)));
        links.truncate(500);
        site.render(
            "kg.html",
            "kg.html",
            context! { root => ".", title => "Knowledge graph", pictures => pictures, nodes => nodes, links => links },
        )?;
    }
    if let Some(e) = &data.eval {
        site.dir("eval")?;
        let mut plots = Vec::new();
        for (class, path) in &e.plots {
            let name = format!("{}.svg", safe_name(class));
            if copy(path, &site.out.join("eval").join(&name)).is_ok() {
                plots.push(json!({"class": class, "file": format!("eval/{name}")}));
            }
        }
        site.render(
            "eval.html",
            "eval.html",
            context! { root => ".", title => "Evaluation", tables => markdown(&e.markdown), plots => plots },
        )?;
    }

    if let Some(t) = &data.tracks {
        summary.tracks = t.rows.len();
        site.dir("tracks")?;
        let paths = trajectories(&t.frames);
        let col = |name: &str| t.header.iter().position(|h| h == name);
        let id_col = col("id");
        // The columns shown (the CSV has them all): numbers sort as numbers.
        let shown: Vec<(&str, bool)> = [
            ("class", false),
            ("first_time", true),
            ("duration_s", true),
            ("frames", true),
            ("ground_speed_px_s", true),
            ("ground_speed_m_s", true),
            ("end", false),
            ("rule_factor", true),
            ("rule_reasons", false),
        ]
        .into_iter()
        .filter(|(c, _)| col(c).is_some())
        .collect();
        let mut rows = Vec::new();
        for r in &t.rows {
            let id: Option<u64> = id_col.and_then(|c| r[c].parse().ok());
            let (mut svg, mut view) = (None, None);
            let (mut k, mut image) = (None, None);
            if let Some((first, points)) = id.and_then(|id| paths.get(&id)) {
                let name = &t.frames[*first].image;
                k = index_of.get(name.as_str()).copied();
                image = Some(name.clone());
                if let Some(k) = k {
                    let rec = &data.records[k];
                    let class = col("class").map_or("", |c| r[c].as_str());
                    let text = trajectory_svg(
                        points,
                        (rec.width, rec.height),
                        pictures[k].as_ref().map(|p| format!("../img/{}", p.view)),
                        class,
                    );
                    let file = format!("tracks/{}.svg", id.unwrap_or(0));
                    site.write(&file, text.as_bytes())?;
                    svg = Some(file);
                    view = pictures[k].as_ref().map(|p| format!("img/{}", p.view));
                }
            }
            let cells: Vec<&str> = shown
                .iter()
                .filter_map(|(c, _)| col(c).map(|i| r[i].as_str()))
                .collect();
            rows.push(
                json!({"id": id, "cells": cells, "svg": svg, "view": view, "k": k, "image": image}),
            );
        }
        let header: Vec<Value> = shown
            .iter()
            .map(|(h, num)| json!({"name": h, "num": num}))
            .collect();
        site.render(
            "tracks.html",
            "tracks.html",
            context! { root => ".", title => "Tracks", header => header, rows => rows, total => t.rows.len(), frames => t.frames.len() },
        )?;
    }

    // The front page, last: its warnings include the pictures' and copies'.
    let mut per_class: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in &data.records {
        for d in &r.detections {
            per_class.entry(&d.class_name).or_default().0 += 1;
        }
    }
    for c in &data.changes {
        for o in &c.objects {
            per_class.entry(&o.class).or_default().1 += 1;
        }
    }
    let m = data.manifest.clone().unwrap_or(Value::Null);
    let stages: Vec<Value> = m["stage_seconds"]
        .as_object()
        .map(|s| {
            s.iter()
                .map(|(k, v)| {
                    let secs = v["seconds"].as_f64().unwrap_or(0.0);
                    let n = v["images"].as_u64().unwrap_or(0);
                    json!({"stage": k, "seconds": format!("{secs:.3}"), "images": n,
                           "mean": if n > 0 { format!("{:.3}", secs / n as f64) } else { "-".into() }})
                })
                .collect()
        })
        .unwrap_or_default();
    summary.warnings = data.warnings.clone();
    site.render(
        "index.html",
        "index.html",
        context! {
            root => ".",
            title => format!("nsod report: {}", opts.run_dir.display()),
            run_dir => opts.run_dir.display().to_string(),
            images => data.records.len(),
            detections => summary.detections,
            changes => data.changes.len(),
            per_class => per_class.iter().map(|(c, (n, ch))| json!({"class": c, "count": n, "changes": ch})).collect::<Vec<_>>(),
            failures => m["failures"].as_array().cloned().unwrap_or_default(),
            failed => m["counts"]["failed"].as_u64(),
            model => m.get("model").map(pretty),
            config => m.get("config").map(pretty),
            rules => m.get("rules").map(pretty),
            stages => stages,
            started => m["started"].as_f64(),
            finished => m["finished"].as_f64(),
            complete => m["complete"].as_bool(),
            nsod => m["nsod"].as_str(),
            warnings => data.warnings,
            rule_pages => rule_pages,
            gallery_pages => pages,
        },
    )?;
    Ok(summary)
}

/// Each track's path in the pixels of its first frame, the camera motion since then undone (where it was
/// compensated): id → (index of its first frame, centres).
pub fn trajectories(frames: &[load::TrackFrame]) -> BTreeMap<u64, (usize, Vec<(f64, f64)>)> {
    use nsod_track::course::GroundFrame;
    // Tracks not seen for this many frames are no longer moved with the camera (they have ended).
    const STALE: usize = 10_000;
    let mut out: BTreeMap<u64, (usize, Vec<(f64, f64)>)> = BTreeMap::new();
    let mut active: HashMap<u64, (GroundFrame, usize)> = HashMap::new();
    for (k, f) in frames.iter().enumerate() {
        active.retain(|_, (g, last)| {
            g.advance(f.camera.as_ref());
            k - *last <= STALE
        });
        for &(id, x, y) in &f.tracked {
            let (g, last) = active
                .entry(id)
                .or_insert_with(|| (GroundFrame::default(), k));
            *last = k;
            out.entry(id)
                .or_insert_with(|| (k, Vec::new()))
                .1
                .push(g.apply(x, y));
        }
    }
    out
}

/// One track's trajectory over its first frame, as SVG in that frame's pixels.
fn trajectory_svg(
    points: &[(f64, f64)],
    (width, height): (u32, u32),
    picture: Option<String>,
    class: &str,
) -> String {
    let (w, h) = (width.max(1), height.max(1));
    let stroke = (f64::from(w.max(h)) / 120.0).max(1.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\">\n"
    );
    if let Some(p) = picture {
        s.push_str(&format!(
            "<image href=\"{}\" x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" preserveAspectRatio=\"none\"/>\n",
            nsod_types::quote::xml(&p)
        ));
    }
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.2},{y:.2}"))
        .collect();
    s.push_str(&format!(
        "<title>{}</title>\n<polyline points=\"{}\" fill=\"none\" stroke=\"#ff2d55\" stroke-width=\"{stroke:.1}\"/>\n",
        nsod_types::quote::xml(class),
        pts.join(" ")
    ));
    if let Some((x, y)) = points.first() {
        s.push_str(&format!(
            "<circle cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"{:.1}\" fill=\"#ffcc00\"/>\n",
            stroke * 1.5
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn fmt_score(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "-".into()
    }
}

/// A file name made of the name's letters and digits (relations and classes are the run's own strings).
fn safe_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    out.push_str(&format!("-{:08x}", fnv(s) as u32));
    out
}

/// FNV-1a, 64 bits: stable file names for images (thumbnails are found again by the next report).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a plain file"));
    }
    let tmp = to.with_extension("partial");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to)
}

/// Markdown (the evaluation's own report) as HTML, without any raw HTML it may hold.
fn markdown(text: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser};
    let parser = Parser::new_ext(text, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        e => e,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

/// One image's data for its viewer (`data/K.js`).
#[derive(Serialize)]
struct ImageData<'a> {
    image: &'a str,
    width: u32,
    height: u32,
    /// The picture, relative to the viewer page.
    src: Option<String>,
    /// The classes present, with their counts.
    classes: Vec<(&'a str, usize)>,
    detections: Vec<Det<'a>>,
    changes: Vec<ChangeData<'a>>,
}

#[derive(Serialize)]
struct Det<'a> {
    class: &'a str,
    /// Refined and raw score (the same when no rules ran).
    score: f32,
    raw: f32,
    /// Corners, x1 y1 .. x4 y4, in image pixels.
    polygon: [f32; 8],
    /// Indices into `changes`.
    changes: Vec<usize>,
}

#[derive(Serialize)]
struct ChangeData<'a> {
    rule: &'a str,
    action: &'a str,
    reason: &'a str,
    before: f64,
    after: f64,
}

fn image_data<'a>(
    r: &'a ImagePredictions,
    raw: Option<&Vec<f32>>,
    changes: &[&'a Change],
    picture: Option<&Picture>,
) -> ImageData<'a> {
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dets: Vec<Det> = r
        .detections
        .iter()
        .enumerate()
        .map(|(i, d)| {
            *classes.entry(&d.class_name).or_default() += 1;
            let o = d.as_oriented();
            let c = o.corners();
            Det {
                class: &d.class_name,
                score: d.score,
                raw: raw
                    .filter(|v| v.len() == r.detections.len())
                    .and_then(|v| v.get(i).copied())
                    .unwrap_or(d.score),
                polygon: [
                    c[0].x, c[0].y, c[1].x, c[1].y, c[2].x, c[2].y, c[3].x, c[3].y,
                ]
                .map(|v| v as f32),
                changes: Vec::new(),
            }
        })
        .collect();
    let mut out = Vec::new();
    for c in changes {
        for o in &c.objects {
            if let Some(d) = dets.get_mut(o.index) {
                d.changes.push(out.len());
                out.push(ChangeData {
                    rule: &c.rule,
                    action: &c.action,
                    reason: &c.reason,
                    before: o.before,
                    after: o.after,
                });
            }
        }
    }
    ImageData {
        image: &r.image,
        width: r.width,
        height: r.height,
        src: picture.map(|p| format!("../img/{}", p.view)),
        classes: classes.into_iter().collect(),
        detections: dets,
        changes: out,
    }
}

/// A thumbnail and a viewer image, file names under `thumbs/` and `img/`.
#[derive(Debug, Clone)]
struct Picture {
    thumb: String,
    view: String,
    reused: bool,
}

/// Where the images of a run are found.
struct Sources<'a> {
    opts: &'a ReportOptions,
    inputs: Vec<PathBuf>,
}

impl<'a> Sources<'a> {
    fn new(opts: &'a ReportOptions, data: &RunData) -> Self {
        let inputs = data
            .manifest
            .as_ref()
            .and_then(|m| m["inputs"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Self { opts, inputs }
    }

    /// The file image `name` was read from, or its annotated copy in `vis/`.
    fn find(&self, name: &str) -> Option<PathBuf> {
        let rel = Path::new(name);
        // Names are relative to the inputs; one that climbs out of them is not followed.
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return None;
        }
        let mut candidates = Vec::new();
        if let Some(d) = &self.opts.images {
            candidates.push(d.join(rel));
        }
        for input in &self.inputs {
            if input.is_dir() {
                candidates.push(input.join(rel));
            } else if input.file_name() == rel.file_name() && rel.components().count() == 1
                || input == rel
            {
                candidates.push(input.clone());
            }
        }
        candidates.push(self.opts.run_dir.join(nsod_types::layout::VIS).join(rel));
        candidates.into_iter().find(|p| p.is_file())
    }

    fn picture(&self, name: &str, site: &Site) -> Result<Picture, String> {
        let src = self.find(name).ok_or_else(|| {
            "the image is not found where the run read it: use --images".to_string()
        })?;
        let key = safe_name(name);
        let thumb = format!("{key}.jpg");
        let view = format!("{key}.jpg");
        let (tp, vp) = (
            site.out.join("thumbs").join(&thumb),
            site.out.join("img").join(&view),
        );
        let src_time = std::fs::metadata(&src).and_then(|m| m.modified()).ok();
        let fresh = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .zip(src_time)
                .is_some_and(|(made, s)| made >= s)
        };
        if fresh(&tp) && fresh(&vp) {
            return Ok(Picture {
                thumb,
                view,
                reused: true,
            });
        }
        let img = self.decode(&src)?;
        let save = |img: &RgbImage, side: u32, path: &Path| -> Result<(), String> {
            let (w, h) = img.dimensions();
            let s = (f64::from(side) / f64::from(w.max(h))).min(1.0);
            let small;
            let img = if s < 1.0 {
                small = image::imageops::thumbnail(
                    img,
                    ((f64::from(w) * s).round() as u32).max(1),
                    ((f64::from(h) * s).round() as u32).max(1),
                );
                &small
            } else {
                img
            };
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
            let mut w = std::io::BufWriter::new(file);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 85)
                .encode_image(img)
                .map_err(|e| e.to_string())?;
            drop(w);
            std::fs::rename(&tmp, path).map_err(|e| e.to_string())
        };
        save(&img, self.opts.view_side, &vp)?;
        save(&img, self.opts.thumb_side, &tp)?;
        Ok(Picture {
            thumb,
            view,
            reused: false,
        })
    }

    fn decode(&self, path: &Path) -> Result<RgbImage, String> {
        let loaded = nsod_pipeline::runner::decode(path, &self.opts.raster)
            .map_err(|e| nsod_pipeline::error_chain(&e))?;
        if let Some(p) = loaded
            .preview(self.opts.view_side)
            .map_err(|e| e.to_string())?
        {
            return Ok(p);
        }
        match loaded.pixels {
            nsod_pipeline::source::Pixels::Memory(m) => Ok(m),
            nsod_pipeline::source::Pixels::Windowed(_) => Err("no preview".into()),
        }
    }
}

/// The output folder and the templates.
struct Site {
    out: PathBuf,
    env: Environment<'static>,
}

impl Site {
    fn new(opts: &ReportOptions) -> Result<Self, ReportError> {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .map_err(|source| ReportError::Template {
                    name: (*name).into(),
                    source,
                })?;
        }
        std::fs::create_dir_all(&opts.out).map_err(|source| ReportError::Write {
            path: opts.out.clone(),
            source,
        })?;
        Ok(Self {
            out: opts.out.clone(),
            env,
        })
    }

    fn dir(&self, name: &str) -> Result<(), ReportError> {
        let p = self.out.join(name);
        std::fs::create_dir_all(&p).map_err(|source| ReportError::Write { path: p, source })
    }

    /// Writes a page through a temporary file and a rename (a reader never sees half a page; a failed write
    /// leaves the previous one). No fsync: a report is remade at will, and thousands of syncs made it slower to
    /// rewrite than to make pictures.
    fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), ReportError> {
        let path = self.out.join(rel);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| {
                let _ = std::fs::remove_file(&tmp);
                ReportError::Write { path, source }
            })
    }

    fn render(&self, rel: &str, template: &str, ctx: minijinja::Value) -> Result<(), ReportError> {
        let text = self
            .env
            .get_template(template)
            .and_then(|t| t.render(ctx))
            .map_err(|source| ReportError::Template {
                name: template.into(),
                source,
            })?;
        self.write(rel, text.as_bytes())
    }
}
