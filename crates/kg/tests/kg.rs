//! Dataset counts, exports (parsed back as XML / facts) and rule suggestions.

use nsod_kg::dataset::{COOCCURS, COOCCURS_IMAGES};
use nsod_kg::export::{graphml, node_link, parse_facts, prolog_facts, svg};
use nsod_kg::suggest::{SuggestOptions, suggest, to_prolog};
use nsod_kg::{DatasetGraph, SceneGraph};
use nsod_types::relations::{Relation, RelationParams, extract};
use nsod_types::{BBox, Detection};

fn det(class: &str, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
    Detection::new(0, class, 0.9, BBox::new(x1, y1, x2, y2))
}

/// Three ships along a harbor quay, two harbors, one lonely plane.
fn harbour_image() -> Vec<Detection> {
    vec![
        det("ship", 0.0, 0.0, 10.0, 4.0),
        det("ship", 20.0, 0.0, 30.0, 4.0),
        det("ship", 40.0, 0.0, 50.0, 4.0),
        det("harbor", 0.0, 2.0, 60.0, 40.0),
        det("harbor", 100.0, 2.0, 160.0, 40.0),
        det("plane", 500.0, 500.0, 520.0, 520.0),
    ]
}

fn graph_of(images: &[Vec<Detection>]) -> DatasetGraph {
    let mut g = DatasetGraph::default();
    for dets in images {
        g.add_image(
            dets,
            &extract(dets, &RelationParams::default(), |_, _| true),
        );
    }
    g
}

#[test]
fn cooccurrence_is_counted_per_object_pair_and_per_image() {
    let g = graph_of(&[harbour_image(), vec![det("ship", 0.0, 0.0, 5.0, 5.0)]]);
    assert_eq!(g.images, 2);
    assert_eq!(g.class_objects["ship"], 4);
    assert_eq!(g.class_images["ship"], 2);
    assert_eq!(g.count(COOCCURS, "ship", "harbor"), 6); // 3 ships x 2 harbors
    assert_eq!(g.count(COOCCURS, "harbor", "ship"), 6);
    assert_eq!(g.count(COOCCURS, "ship", "ship"), 3); // 3 choose 2
    assert_eq!(g.count(COOCCURS, "harbor", "harbor"), 1);
    assert_eq!(g.count(COOCCURS_IMAGES, "ship", "harbor"), 1);
    // Each ship stands half on the first harbor (4x10 box, 2 rows inside): located_on for all three.
    assert_eq!(g.count("located_on", "ship", "harbor"), 3);
    assert_eq!(g.count("located_on", "harbor", "ship"), 0);
    let scene = SceneGraph::build(&harbour_image(), &RelationParams::default());
    assert_eq!(scene.graph.node_count(), 6);
    assert_eq!(scene.count(Relation::LocatedOn), 3);
}

#[test]
fn facts_round_trip_and_graphml_and_svg_are_valid_xml() {
    let g = graph_of(&[harbour_image(), harbour_image()]);
    let facts = prolog_facts(&g);
    assert!(
        facts.contains("fact(located_on, 'ship', 'harbor', 6).\n"),
        "{facts}"
    );
    assert!(facts.contains("class_objects('plane', 2).\n"));
    assert_eq!(parse_facts(&facts).unwrap(), g);
    assert!(
        parse_facts("fact(x, 'a', 'b', -1).\n")
            .unwrap_err()
            .starts_with("line 1: count is not a non-negative integer")
    );

    let xml = graphml(&g, 1);
    let doc = roxmltree::Document::parse(&xml).expect("GraphML is XML");
    let nodes = doc.descendants().filter(|n| n.has_tag_name("node")).count();
    let edges: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("edge"))
        .collect();
    assert_eq!(nodes, g.class_objects.len());
    assert_eq!(edges.len(), g.counts.len());
    // Re-import: the edges carry the same (relation, source, target, count).
    let mut reimported = std::collections::BTreeMap::new();
    for e in edges {
        let data = |key: &str| {
            e.children()
                .find(|c| c.attribute("key") == Some(key))
                .and_then(|c| c.text())
                .unwrap()
                .to_owned()
        };
        reimported.insert(
            (
                data("relation"),
                e.attribute("source").unwrap().to_owned(),
                e.attribute("target").unwrap().to_owned(),
            ),
            data("count").parse::<u64>().unwrap(),
        );
    }
    assert_eq!(reimported, g.counts);
    assert_eq!(
        graphml(&g, 3).matches("<edge ").count(),
        g.counts.values().filter(|&&n| n >= 3).count()
    );

    for r in g.relation_types() {
        let s = svg(&g, &r, 1);
        let doc = roxmltree::Document::parse(&s).unwrap_or_else(|e| panic!("{r}.svg: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }
    let json = node_link(&g, 1);
    assert_eq!(json["links"].as_array().unwrap().len(), g.counts.len());
    assert_eq!(json["multigraph"], true);
}

#[test]
fn suggestions_follow_lift() {
    // 40 images: ships and harbors always together (20 images); planes in 20 other images, cars in every image.
    let mut images = Vec::new();
    for i in 0..40 {
        let mut d = vec![det("small vehicle", 0.0, 0.0, 3.0, 3.0)];
        if i < 20 {
            d.push(det("ship", 100.0, 100.0, 110.0, 104.0));
            d.push(det("harbor", 100.0, 100.0, 200.0, 200.0));
        } else {
            d.push(det("plane", 300.0, 300.0, 320.0, 320.0));
        }
        images.push(d);
    }
    let g = graph_of(&images);
    let o = SuggestOptions::default();
    let s = suggest(&g, &o);
    let find = |a: &str, b: &str| {
        s.iter()
            .find(|x| (x.a == a && x.b == b) || (x.a == b && x.b == a))
    };
    // ship-harbor: lift = 20 x 40 / (20 x 20) = 2: a boost of 1 + 0.1 log2(2) = 1.1.
    let sh = find("harbor", "ship").expect("ship-harbor boost");
    assert_eq!((sh.weight, sh.together), (1.1, 20));
    assert!((sh.lift - 2.0).abs() < 1e-9);
    // plane-ship: 20 x 20 / 40 = 10 images expected together, none seen: a penalty.
    assert_eq!(find("plane", "ship").unwrap().weight, 0.8);
    // Cars are everywhere: lift 1 with everything, no suggestion.
    assert!(find("small_vehicle", "ship").is_none());
    let p = to_prolog(&g, &s, &o);
    assert!(p.contains("confidence_modifier('harbor', 'ship', 1.10).  % lift 2.00: 20 images together, 10.0 expected"), "{p}");
}

/// Class names come from model metadata and prediction files: quotes, backslashes, line breaks, markup and
/// non-ASCII must come out escaped in every export, and read back as the same names.
#[test]
fn hostile_class_names_are_escaped_in_every_export() {
    let names = [
        "it's",
        "back\\slash",
        "two\nlines",
        "avion café 飛機",
        "x'), shell('rm -rf /'). %",
        "<b>&\"quoted\"</b>",
    ];
    let image: Vec<Detection> = names
        .iter()
        .enumerate()
        .map(|(i, n)| det(n, i as f32 * 12.0, 0.0, i as f32 * 12.0 + 10.0, 10.0))
        .collect();
    let g = graph_of(&[image.clone(), image]);
    let atoms: Vec<String> = names
        .iter()
        .map(|n| nsod_types::detection::class_atom(n))
        .collect();
    assert!(atoms.iter().all(|a| !a.contains('\n')), "{atoms:?}");

    // Prolog facts: one fact per line, read back to the same graph, and loadable by SWI-Prolog.
    let facts = prolog_facts(&g);
    for line in facts.lines().filter(|l| !l.starts_with('%')) {
        assert!(line.ends_with(").") || line.ends_with(")."), "{line}");
    }
    assert_eq!(parse_facts(&facts).unwrap(), g);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facts.pl");
    std::fs::write(&path, &facts).unwrap();
    let n_facts = facts.lines().filter(|l| l.starts_with("fact(")).count();
    let o = nsod_testkit::tool("swipl")
        .args([
            "-q",
            "-g",
            "aggregate_all(count, fact(_,_,_,_), N), write(N), nl, forall(class_objects(C, _), (write_canonical(C), nl))",
            "-t",
            "halt",
        ])
        .arg(&path)
        .output()
        .expect("swipl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), n_facts.to_string());
    let mut read: Vec<String> = lines
        .map(|l| nsod_types::quote::parse_prolog_atom(l).unwrap_or_else(|| l.to_owned()))
        .collect();
    read.sort();
    let mut want = atoms.clone();
    want.sort();
    assert_eq!(read, want);

    // GraphML and SVG: well-formed XML whose node ids / labels are the names.
    let xml = graphml(&g, 1);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let mut ids: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("node"))
        .map(|n| n.attribute("id").unwrap().to_owned())
        .collect();
    ids.sort();
    let mut want = atoms.clone();
    want.sort();
    assert_eq!(ids, want);
    let pic = svg(&g, "located_near", 1);
    let doc = roxmltree::Document::parse(&pic).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for a in &atoms {
        assert!(texts.contains(&a.as_str()), "{a} missing in {texts:?}");
    }

    // DOT: every statement on its own line, every quoted string closed.
    let d = nsod_kg::export::dot(&g, 1);
    for line in d.lines().skip(2).filter(|l| *l != "}") {
        let unescaped_quotes = line
            .char_indices()
            .filter(|&(i, c)| c == '"' && (i == 0 || line.as_bytes()[i - 1] != b'\\'))
            .count();
        assert_eq!(unescaped_quotes % 2, 0, "{line}");
        assert!(line.ends_with("];"), "{line}");
    }

    // Rule suggestions: each proposal reads back to the same two classes.
    let opts = SuggestOptions {
        min_support: 1,
        boost_lift: 0.5,
        ..SuggestOptions::default()
    };
    let s = suggest(&g, &opts);
    assert!(!s.is_empty());
    let text = to_prolog(&g, &s, &opts);
    for (x, line) in s.iter().zip(
        text.lines()
            .filter(|l| l.starts_with("confidence_modifier(")),
    ) {
        let body = line.strip_prefix("confidence_modifier(").unwrap();
        let (a, rest) = split_quoted(body);
        let (b, _) = split_quoted(rest.trim_start_matches([',', ' ']));
        assert_eq!((a, b), (x.a.clone(), x.b.clone()), "{line}");
    }
}

/// The first quoted atom of `s` and the rest.
fn split_quoted(s: &str) -> (String, &str) {
    let bytes = s.as_bytes();
    assert_eq!(bytes[0], b'\'');
    let mut i = 1;
    while bytes[i] != b'\'' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    (
        nsod_types::quote::parse_prolog_atom(&s[..=i]).unwrap(),
        &s[i + 1..],
    )
}
