//! The semantics of the decision table on hand-placed boxes.

use nsod_symbolic::{DecisionTable, Sandbox, WorkerCommand, load_rules};
use nsod_types::{BBox, Detection, OrientedBox};
use std::path::Path;

fn sandbox() -> Sandbox {
    Sandbox::new(WorkerCommand::new(
        env!("CARGO_BIN_EXE_nsod-rules-worker"),
        Vec::<String>::new(),
    ))
}

fn table(rules: &str) -> DecisionTable {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.pl");
    std::fs::write(&p, rules).unwrap();
    load_rules(&p, None, &sandbox()).unwrap().table
}

fn det(class: &str, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
    Detection::new(0, class, score, BBox::new(x1, y1, x2, y2))
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn boost_applies_only_within_the_near_distance_and_caps_at_one() {
    let t = table("confidence_modifier(ship, harbor, 1.25).\n");
    // 10x10 boxes (diagonal 14.14): near means centre distance < 28.28.
    let near = vec![
        det("ship", 0.6, 0.0, 0.0, 10.0, 10.0),
        det("harbor", 0.9, 25.0, 0.0, 35.0, 10.0),
    ];
    let a = t.adjust(&near);
    assert!(
        close(a.scores[0], 0.75) && close(a.scores[1], 1.0),
        "{:?}",
        a.scores
    ); // 0.9 x 1.25 capped at 1
    assert_eq!(a.changes.len(), 1);
    assert_eq!(
        (a.changes[0].action, a.changes[0].rule.as_ref()),
        ("BOOST", "confidence_modifier(ship, harbor, 1.25)")
    );
    let far = vec![
        det("ship", 0.6, 0.0, 0.0, 10.0, 10.0),
        det("harbor", 0.9, 30.0, 0.0, 40.0, 10.0),
    ];
    let a = t.adjust(&far);
    assert_eq!(a.scores, vec![0.6, 0.9]);
    assert!(a.changes.is_empty());
}

#[test]
fn penalty_hits_the_lower_confidence_only_above_the_overlap_ratio() {
    let t = table("confidence_modifier(ship, bridge, 0.5).\noverlap_ratio(0.5).\n");
    // Ship 10x10 half on the bridge: intersection / smaller = 0.5, not > 0.5: no change.
    let half = vec![
        det("ship", 0.6, 0.0, 0.0, 10.0, 10.0),
        det("bridge", 0.8, 5.0, 0.0, 100.0, 10.0),
    ];
    assert_eq!(t.adjust(&half).scores, vec![0.6, 0.8]);
    // 60% on the bridge: the ship (lower confidence) is halved, the bridge stays.
    let on = vec![
        det("ship", 0.6, 0.0, 0.0, 10.0, 10.0),
        det("bridge", 0.8, 4.0, 0.0, 100.0, 10.0),
    ];
    let a = t.adjust(&on);
    assert!(
        close(a.scores[0], 0.3) && close(a.scores[1], 0.8),
        "{:?}",
        a.scores
    );
    assert_eq!(
        (a.changes[0].action, a.changes[0].target, a.changes[0].other),
        ("PENALTY", 0, Some(1))
    );
    // When the bridge is the less confident one, the bridge is penalised.
    let on = vec![
        det("ship", 0.9, 0.0, 0.0, 10.0, 10.0),
        det("bridge", 0.4, 4.0, 0.0, 100.0, 10.0),
    ];
    assert!(close(t.adjust(&on).scores[1], 0.2));
}

#[test]
fn relation_rules_change_the_subject_and_combine_strongest_boost_and_penalty() {
    let t = table(
        "relation_modifier(plane, located_on, harbor, 0.5).\nconfidence_modifier(plane, helicopter, 1.2).\nconfidence_modifier(plane, ship, 1.1).\n",
    );
    let dets = vec![
        det("plane", 0.5, 10.0, 10.0, 20.0, 20.0),
        det("harbor", 0.9, 0.0, 0.0, 100.0, 100.0),
        det("helicopter", 0.5, 25.0, 10.0, 35.0, 20.0),
        det("ship", 0.5, 10.0, 25.0, 20.0, 35.0),
    ];
    let a = t.adjust(&dets);
    // plane: strongest boost 1.2 (not 1.2 x 1.1), penalty 0.5: 0.5 x 1.2 x 0.5 = 0.3.
    assert!(close(a.scores[0], 0.3), "{:?}", a.scores);
    assert!(close(a.scores[1], 0.9)); // the harbor is the object, not the subject
    assert!(close(a.scores[2], 0.6) && close(a.scores[3], 0.55));
    let mut rules: Vec<&str> = a.changes.iter().map(|c| c.rule.as_ref()).collect();
    rules.sort_unstable();
    assert_eq!(
        rules,
        [
            "confidence_modifier(plane, helicopter, 1.2)",
            "confidence_modifier(plane, ship, 1.1)",
            "relation_modifier(plane, located_on, harbor, 0.5)"
        ]
    );
}

#[test]
fn shuffled_input_gives_the_same_result_and_unruled_classes_are_untouched() {
    let t = load_rules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/dota.pl"),
        None,
        &sandbox(),
    )
    .unwrap()
    .table;
    let mut s = 99u64;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f32 / (1u64 << 31) as f32
    };
    let classes = [
        "ship",
        "harbor",
        "bridge",
        "large vehicle",
        "small vehicle",
        "tennis court",
        "soccer ball field",
        "plane",
        "helicopter",
        "storage tank",
    ];
    let dets: Vec<Detection> = (0..400)
        .map(|_| {
            let c = classes[(rnd() * classes.len() as f32) as usize % classes.len()];
            let o = OrientedBox::new(
                rnd() * 600.0,
                rnd() * 600.0,
                5.0 + rnd() * 60.0,
                5.0 + rnd() * 30.0,
                rnd() * 3.0,
            );
            Detection::oriented(0, c, 0.2 + 0.8 * rnd(), o)
        })
        .collect();
    let key = |d: &Detection, score: f32| {
        (
            d.class_name.clone(),
            d.bbox.x1.to_bits(),
            d.bbox.y1.to_bits(),
            score.to_bits(),
        )
    };
    let result = |input: &[Detection]| {
        let a = t.adjust(input);
        let mut v: Vec<_> = input
            .iter()
            .zip(&a.scores)
            .map(|(d, &s)| key(d, s))
            .collect();
        v.sort();
        (v, a.changes.len())
    };
    let want = result(&dets);
    assert!(want.1 > 20, "the scene should fire rules: {}", want.1);
    let mut rev = dets.clone();
    rev.reverse();
    assert_eq!(result(&rev), want);
    let mut shuffled = dets.clone();
    for i in (1..shuffled.len()).rev() {
        let j = (rnd() * (i + 1) as f32) as usize % (i + 1);
        shuffled.swap(i, j);
    }
    assert_eq!(result(&shuffled), want);
    // A class with no rule (storage tank has rules only with harbor; swimming pool has none as subject of pairs).
    let lonely = vec![
        det("roundabout", 0.7, 0.0, 0.0, 50.0, 50.0),
        det("large vehicle", 0.6, 10.0, 10.0, 20.0, 20.0),
    ];
    assert_eq!(t.adjust(&lonely).scores, vec![0.7, 0.6]);
}

/// Predictions read from files can name any number of classes: the table is sized by the classes the rules name,
/// not by the image's (50,000 distinct classes once asked for an n x n table of 2.5 billion cells).
#[test]
fn many_distinct_classes_cost_no_more_than_the_rules_name() {
    let t = table("confidence_modifier(ship, harbor, 1.25).\n");
    let mut dets: Vec<Detection> = (0..50_000)
        .map(|i| {
            det(
                &format!("class{i}"),
                0.5,
                i as f32,
                0.0,
                i as f32 + 1.0,
                1.0,
            )
        })
        .collect();
    dets.push(det("ship", 0.6, 0.0, 100.0, 10.0, 110.0));
    dets.push(det("harbor", 0.9, 25.0, 100.0, 35.0, 110.0));
    let a = t.adjust(&dets);
    assert_eq!(a.changes.len(), 1);
    assert!(close(a.scores[50_000], 0.75), "{}", a.scores[50_000]);
}
