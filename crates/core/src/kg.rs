//! Glue for the knowledge graph: `nsod kg`, `nsod infer --kg` and `nsod rules suggest`.

use crate::cli::KgArgs;
use anyhow::Context;
use nsod_kg::{DatasetGraph, SceneGraph, export, suggest};
use nsod_types::Detection;
use nsod_types::formats::write_atomic;
use nsod_types::relations::{RelationParams, extract};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Streams per-image scene graphs to `scene_graphs.jsonl` and aggregates the dataset graph; memory is bounded by
/// the dataset graph, not the number of images.
pub struct KgWriter {
    /// Unordered class pairs relations are computed for (`None`: all pairs).
    pairs: Option<std::collections::HashSet<(String, String)>>,
    out: PathBuf,
    scenes: BufWriter<File>,
    partial: PathBuf,
    pub dataset: DatasetGraph,
    params: RelationParams,
}

impl KgWriter {
    pub fn create(
        out: &Path,
        params: RelationParams,
        pairs: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let pairs = pairs.map(read_pairs).transpose()?;
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let partial = out.join("scene_graphs.jsonl.partial");
        let scenes = BufWriter::new(
            File::create(&partial).with_context(|| format!("{}", partial.display()))?,
        );
        Ok(Self {
            pairs,
            out: out.to_path_buf(),
            scenes,
            partial,
            dataset: DatasetGraph::default(),
            params,
        })
    }

    /// Adds one image; returns its scene graph's node and edge counts.
    pub fn add(&mut self, image: &str, dets: &[Detection]) -> anyhow::Result<(usize, usize)> {
        let edges = match &self.pairs {
            None => extract(dets, &self.params, |_, _| true),
            Some(allowed) => {
                let atoms: Vec<String> = dets
                    .iter()
                    .map(|d| nsod_types::detection::class_atom(&d.class_name))
                    .collect();
                extract(dets, &self.params, |s, o| {
                    let (a, b) = (&atoms[s], &atoms[o]);
                    let key = if a <= b {
                        (a.clone(), b.clone())
                    } else {
                        (b.clone(), a.clone())
                    };
                    allowed.contains(&key)
                })
            }
        };
        let scene = SceneGraph::from_edges(dets, &edges);
        serde_json::to_writer(&mut self.scenes, &scene.to_json(image, dets))
            .with_context(|| format!("{}", self.partial.display()))?;
        self.scenes
            .write_all(b"\n")
            .with_context(|| format!("{}", self.partial.display()))?;
        self.dataset.add_image(dets, &edges);
        Ok((scene.graph.node_count(), scene.graph.edge_count()))
    }

    /// Writes the dataset graph's exports and renames the scene graphs into place.
    pub fn finish(mut self, min_count: u64) -> anyhow::Result<()> {
        self.scenes.flush()?;
        std::fs::rename(&self.partial, self.out.join("scene_graphs.jsonl"))?;
        let g = &self.dataset;
        let text = |p: PathBuf, s: String| -> anyhow::Result<()> {
            write_atomic(&p, |w| w.write_all(s.as_bytes()))?;
            Ok(())
        };
        text(self.out.join("kg_facts.pl"), export::prolog_facts(g))?;
        text(self.out.join("kg.graphml"), export::graphml(g, min_count))?;
        text(self.out.join("kg.dot"), export::dot(g, min_count))?;
        text(
            self.out.join("kg.json"),
            format!("{}\n", export::node_link(g, min_count)),
        )?;
        let svg_dir = self.out.join("kg_svg");
        std::fs::create_dir_all(&svg_dir)
            .with_context(|| format!("cannot create {}", svg_dir.display()))?;
        for r in g.relation_types() {
            text(
                svg_dir.join(format!("{r}.svg")),
                export::svg(g, &r, min_count),
            )?;
        }
        Ok(())
    }
}

/// Reads an allow-list of class pairs: one pair per line (`ship harbor`, class names or atoms), `#` comments.
fn read_pairs(path: &Path) -> anyhow::Result<std::collections::HashSet<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut set = std::collections::HashSet::new();
    for (no, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = l
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        let [a, b] = parts[..] else {
            anyhow::bail!(
                "{}:{}: expected two class names, found {:?}",
                path.display(),
                no + 1,
                l
            );
        };
        let (a, b) = (
            nsod_types::detection::class_atom(a),
            nsod_types::detection::class_atom(b),
        );
        set.insert(if a <= b { (a, b) } else { (b, a) });
    }
    Ok(set)
}

/// `nsod kg`.
pub fn run(a: &KgArgs) -> anyhow::Result<ExitCode> {
    let names = crate::symbolic::read_names(a.names.as_deref())?;
    let records = match crate::inputs::read_predictions(&a.pred, a.images.as_deref(), &names) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut kg = match KgWriter::create(&a.out, RelationParams::default(), a.pairs.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let (mut images, mut failed, mut edges) = (0usize, 0usize, 0usize);
    for r in records {
        match r {
            Ok(r) => {
                edges += kg.add(&r.image, &r.detections)?.1;
                images += 1;
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    let classes = kg.dataset.class_objects.len();
    kg.finish(a.min_count)?;
    println!(
        "{images} images, {failed} failed, {edges} relations between objects, {classes} classes; knowledge graph in {}",
        a.out.display()
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `nsod rules suggest`.
pub fn suggest_rules(facts: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(facts).with_context(|| format!("{}", facts.display()))?;
    let g = export::parse_facts(&text).map_err(|e| anyhow::anyhow!("{}: {e}", facts.display()))?;
    let opts = suggest::SuggestOptions::default();
    let s = suggest::suggest(&g, &opts);
    let prolog = suggest::to_prolog(&g, &s, &opts);
    match out {
        Some(p) => {
            write_atomic(p, |w| w.write_all(prolog.as_bytes()))?;
            println!(
                "{} suggestions from {} images written to {}",
                s.len(),
                g.images,
                p.display()
            );
        }
        None => print!("{prolog}"),
    }
    Ok(ExitCode::SUCCESS)
}
