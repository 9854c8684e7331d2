//! Exports of the dataset graph: Prolog facts (loadable by scryer and SWI-Prolog, and read back by
//! [`parse_facts`]), GraphML, DOT, JSON node-link (networkx's `node_link_data` layout) and one SVG picture per
//! relation type. `min_count` drops weaker edges so dense graphs stay readable.

use crate::dataset::DatasetGraph;
use std::collections::BTreeSet;
use std::fmt::Write;

use nsod_types::quote::{dot_string, parse_prolog_atom, prolog_atom as q, prolog_atom_min, xml};

/// The facts file: `images/1`, `class_objects/2`, `class_images/2` and `fact(Relation, Subject, Object, Count)`,
/// sorted, class names as quoted atoms.
pub fn prolog_facts(g: &DatasetGraph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "% nsod knowledge graph: {} images.", g.images);
    let _ = writeln!(
        s,
        "% fact(Relation, Subject, Object, Count): relations between detected objects, counted per pair of"
    );
    let _ = writeln!(
        s,
        "% objects; cooccurs counts object pairs in the same image, cooccurs_images the images with both classes."
    );
    let _ = writeln!(s, "images({}).", g.images);
    for (c, n) in &g.class_objects {
        let _ = writeln!(s, "class_objects({}, {n}).", q(c));
    }
    for (c, n) in &g.class_images {
        let _ = writeln!(s, "class_images({}, {n}).", q(c));
    }
    for ((r, a, b), n) in &g.counts {
        let _ = writeln!(s, "fact({}, {}, {}, {n}).", prolog_atom_min(r), q(a), q(b));
    }
    s
}

/// Reads a facts file written by [`prolog_facts`]; errors name the line.
pub fn parse_facts(text: &str) -> Result<DatasetGraph, String> {
    let mut g = DatasetGraph::default();
    for (no, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('%') {
            continue;
        }
        let err = |m: &str| format!("line {}: {m}: {l:?}", no + 1);
        let (head, rest) = l.split_once('(').ok_or_else(|| err("not a fact"))?;
        let body = rest
            .strip_suffix(").")
            .ok_or_else(|| err("a fact must end with ')'."))?;
        let args = split_args(body).map_err(|m| err(&m))?;
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| err("count is not a non-negative integer"))
        };
        match (head, args.as_slice()) {
            ("images", [n]) => g.images = num(n)?,
            ("class_objects", [c, n]) => {
                g.class_objects.insert(c.clone(), num(n)?);
            }
            ("class_images", [c, n]) => {
                g.class_images.insert(c.clone(), num(n)?);
            }
            ("fact", [r, a, b, n]) => {
                g.counts.insert((r.clone(), a.clone(), b.clone()), num(n)?);
            }
            _ => return Err(err("unknown fact")),
        }
    }
    Ok(g)
}

/// Splits `a, 'b c', 3` into atoms and numbers, unquoting quoted atoms.
fn split_args(body: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut arg = String::new();
        match chars.peek() {
            None => break,
            Some('\'') => {
                // The quoted atom as written (escapes included), then read back as Prolog would.
                let mut raw = String::from(chars.next().unwrap_or('\''));
                let mut closed = false;
                while let Some(c) = chars.next() {
                    raw.push(c);
                    match c {
                        '\\' => raw.push(chars.next().ok_or("unterminated escape")?),
                        '\'' => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return Err("unterminated quoted atom".into());
                }
                arg = parse_prolog_atom(&raw).ok_or_else(|| format!("bad quoted atom {raw}"))?;
            }
            Some(_) => {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    arg.push(c);
                    chars.next();
                }
                arg = arg.trim().to_owned();
            }
        }
        out.push(arg);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(out)
}

fn classes(g: &DatasetGraph) -> BTreeSet<&str> {
    g.class_objects
        .keys()
        .map(String::as_str)
        .chain(
            g.counts
                .keys()
                .flat_map(|(_, a, b)| [a.as_str(), b.as_str()]),
        )
        .collect()
}

fn edges(g: &DatasetGraph, min_count: u64) -> impl Iterator<Item = (&str, &str, &str, u64)> {
    g.counts
        .iter()
        .filter(move |(_, n)| **n >= min_count.max(1))
        .map(|((r, a, b), n)| (r.as_str(), a.as_str(), b.as_str(), *n))
}

/// GraphML: one node per class (attribute `objects`), one edge per (relation, subject, object) with `relation` and
/// `count`.
pub fn graphml(g: &DatasetGraph, min_count: u64) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
    );
    s.push_str("  <key id=\"objects\" for=\"node\" attr.name=\"objects\" attr.type=\"long\"/>\n");
    s.push_str(
        "  <key id=\"relation\" for=\"edge\" attr.name=\"relation\" attr.type=\"string\"/>\n",
    );
    s.push_str("  <key id=\"count\" for=\"edge\" attr.name=\"count\" attr.type=\"long\"/>\n");
    s.push_str("  <graph id=\"nsod\" edgedefault=\"directed\">\n");
    for c in classes(g) {
        let n = g.class_objects.get(c).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "    <node id=\"{}\"><data key=\"objects\">{n}</data></node>",
            xml(c)
        );
    }
    for (i, (r, a, b, n)) in edges(g, min_count).enumerate() {
        let _ = writeln!(
            s,
            "    <edge id=\"e{i}\" source=\"{}\" target=\"{}\"><data key=\"relation\">{}</data><data key=\"count\">{n}</data></edge>",
            xml(a),
            xml(b),
            xml(r)
        );
    }
    s.push_str("  </graph>\n</graphml>\n");
    s
}

/// A track, as a node of the knowledge graph over time.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackNode {
    pub id: u64,
    pub class: String,
    /// Seconds of its first and last matched frame.
    pub first: f64,
    pub last: f64,
    pub frames: u64,
}

/// `a relation b` from `from` to `to` seconds: an edge of the knowledge graph over time.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackEdge {
    pub relation: String,
    pub a: u64,
    pub b: u64,
    pub from: f64,
    pub to: f64,
}

/// The knowledge graph over time as GraphML: one node per track (`class`, `first`, `last`, `frames`), one edge per
/// relation interval (`relation`, `from`, `to`, seconds); a directed multigraph (a pair may hold several relations,
/// or one relation in several intervals).
pub fn temporal_graphml(nodes: &[TrackNode], edges: &[TrackEdge]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
    );
    for (id, on, ty) in [
        ("class", "node", "string"),
        ("first", "node", "double"),
        ("last", "node", "double"),
        ("frames", "node", "long"),
        ("relation", "edge", "string"),
        ("from", "edge", "double"),
        ("to", "edge", "double"),
    ] {
        let _ = writeln!(
            s,
            "  <key id=\"{id}\" for=\"{on}\" attr.name=\"{id}\" attr.type=\"{ty}\"/>"
        );
    }
    s.push_str("  <graph id=\"nsod-tracks\" edgedefault=\"directed\">\n");
    for n in nodes {
        let _ = writeln!(
            s,
            "    <node id=\"{}\"><data key=\"class\">{}</data><data key=\"first\">{:?}</data><data key=\"last\">{:?}</data><data key=\"frames\">{}</data></node>",
            n.id,
            xml(&n.class),
            n.first,
            n.last,
            n.frames
        );
    }
    for (i, e) in edges.iter().enumerate() {
        let _ = writeln!(
            s,
            "    <edge id=\"e{i}\" source=\"{}\" target=\"{}\"><data key=\"relation\">{}</data><data key=\"from\">{:?}</data><data key=\"to\">{:?}</data></edge>",
            e.a,
            e.b,
            xml(&e.relation),
            e.from,
            e.to
        );
    }
    s.push_str("  </graph>\n</graphml>\n");
    s
}

/// The knowledge graph over time as node-link JSON (networkx's `node_link_data` layout).
pub fn temporal_node_link(nodes: &[TrackNode], edges: &[TrackEdge]) -> serde_json::Value {
    let links: Vec<_> = edges
        .iter()
        .map(|e| {
            serde_json::json!({"source": e.a, "target": e.b, "relation": e.relation, "from": e.from, "to": e.to})
        })
        .collect();
    let nodes: Vec<_> = nodes
        .iter()
        .map(|n| {
            serde_json::json!({"id": n.id, "class": n.class, "first": n.first, "last": n.last, "frames": n.frames})
        })
        .collect();
    serde_json::json!({"directed": true, "multigraph": true, "graph": {"kind": "tracks"}, "nodes": nodes, "links": links})
}

/// DOT (Graphviz): a multigraph with one edge per relation, labelled with the count.
pub fn dot(g: &DatasetGraph, min_count: u64) -> String {
    let mut s = String::from("digraph nsod {\n  node [shape=ellipse];\n");
    for c in classes(g) {
        let label = format!("{c}\n{}", g.class_objects.get(c).copied().unwrap_or(0));
        let _ = writeln!(s, "  {} [label={}];", dot_string(c), dot_string(&label));
    }
    for (r, a, b, n) in edges(g, min_count) {
        let _ = writeln!(
            s,
            "  {} -> {} [label={}];",
            dot_string(a),
            dot_string(b),
            dot_string(&format!("{r} {n}"))
        );
    }
    s.push_str("}\n");
    s
}

/// JSON node-link data (networkx's `node_link_data` layout: `directed`, `multigraph`, `nodes`, `links`).
pub fn node_link(g: &DatasetGraph, min_count: u64) -> serde_json::Value {
    let nodes: Vec<_> = classes(g)
        .into_iter()
        .map(|c| serde_json::json!({"id": c, "objects": g.class_objects.get(c).copied().unwrap_or(0), "images": g.class_images.get(c).copied().unwrap_or(0)}))
        .collect();
    let links: Vec<_> = edges(g, min_count)
        .map(
            |(r, a, b, n)| serde_json::json!({"source": a, "target": b, "relation": r, "count": n}),
        )
        .collect();
    serde_json::json!({"directed": true, "multigraph": true, "graph": {"images": g.images}, "nodes": nodes, "links": links})
}

/// One relation type as an SVG picture: classes on a circle, edges with a width that grows with the log of the
/// count, each labelled with its count. Edges below `min_count` are left out.
pub fn svg(g: &DatasetGraph, relation: &str, min_count: u64) -> String {
    let es: Vec<(&str, &str, u64)> = edges(g, min_count)
        .filter(|(r, ..)| *r == relation)
        .map(|(_, a, b, n)| (a, b, n))
        .collect();
    let mut nodes: Vec<&str> = es
        .iter()
        .flat_map(|(a, b, _)| [*a, *b])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    nodes.sort_unstable();
    let (w, h, r) = (900.0f64, 900.0f64, 330.0f64);
    let pos = |name: &str| -> (f64, f64) {
        let i = nodes.iter().position(|n| *n == name).unwrap_or(0);
        let t = std::f64::consts::TAU * i as f64 / nodes.len().max(1) as f64
            - std::f64::consts::FRAC_PI_2;
        (w / 2.0 + r * t.cos(), h / 2.0 + r * t.sin())
    };
    let max = es.iter().map(|e| e.2).max().unwrap_or(1).max(2) as f64;
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">\n"
    );
    s.push_str("  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n");
    s.push_str("  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        s,
        "  <text x=\"20\" y=\"34\" font-size=\"22\">{} ({} images, edges with count &gt;= {})</text>",
        xml(relation),
        g.images,
        min_count.max(1)
    );
    for (a, b, n) in &es {
        let width = 1.0 + 7.0 * (*n as f64).ln() / max.ln();
        let (x1, y1) = pos(a);
        if a == b {
            // A class related to itself: a loop outside the circle.
            let (dx, dy) = ((x1 - w / 2.0) / r, (y1 - h / 2.0) / r);
            let (cx, cy) = (x1 + dx * 40.0, y1 + dy * 40.0);
            let _ = writeln!(
                s,
                "  <circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"26\" fill=\"none\" stroke=\"#555\" stroke-width=\"{width:.2}\" stroke-opacity=\"0.7\"/>"
            );
            let _ = writeln!(
                s,
                "  <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\">{n}</text>",
                cx + dx * 36.0,
                cy + dy * 36.0 + 4.0
            );
            continue;
        }
        let (x2, y2) = pos(b);
        // Stop short of the target circle so the arrow head shows.
        let len = ((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt().max(1.0);
        let (ex, ey) = (x2 - (x2 - x1) / len * 28.0, y2 - (y2 - y1) / len * 28.0);
        let _ = writeln!(
            s,
            "  <line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{ex:.1}\" y2=\"{ey:.1}\" stroke=\"#555\" stroke-width=\"{width:.2}\" stroke-opacity=\"0.7\" marker-end=\"url(#arrow)\"/>"
        );
        let _ = writeln!(
            s,
            "  <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#222\">{n}</text>",
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0
        );
    }
    for n in &nodes {
        let (x, y) = pos(n);
        let _ = writeln!(
            s,
            "  <circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"26\" fill=\"#cfe3ff\" stroke=\"#1f4e99\"/>"
        );
        let _ = writeln!(
            s,
            "  <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\">{}</text>",
            y + 44.0,
            xml(n)
        );
    }
    s.push_str("</svg>\n");
    s
}
