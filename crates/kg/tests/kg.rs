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
