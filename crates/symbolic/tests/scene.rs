//! Scene rules (`adjust/3`) on hand-built scenes with exact expected confidences and reasons, for every example in
//! rules/examples/; order independence; the same answers from SWI-Prolog on the same facts (peer); and size
//! plausibility at the range boundaries.

use nsod_symbolic::protocol::{SceneAnswer, SceneRequest};
use nsod_symbolic::{ImageContext, RuleBase, Sandbox, WorkerCommand, load_rules};
use nsod_types::{BBox, ClassNames, Detection, OrientedBox};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn sandbox() -> Sandbox {
    Sandbox::new(WorkerCommand::new(
        env!("CARGO_BIN_EXE_nsod-rules-worker"),
        Vec::<String>::new(),
    ))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../rules/examples")
        .join(name)
}

fn load(path: &Path) -> RuleBase {
    load_rules(path, Some(&ClassNames::dota_v1()), &sandbox()).unwrap_or_else(|e| panic!("{e}"))
}

fn aabb(class: &str, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
    let id = ClassNames::dota_v1()
        .as_slice()
        .iter()
        .position(|c| c == class)
        .unwrap_or_else(|| panic!("{class}")) as u32;
    Detection::new(id, class, score, BBox::new(x1, y1, x2, y2))
}

fn obb(class: &str, score: f32, cx: f32, cy: f32, w: f32, h: f32, a: f32) -> Detection {
    let id = aabb(class, score, 0.0, 0.0, 1.0, 1.0).class_id;
    Detection::oriented(id, class, score, OrientedBox::new(cx, cy, w, h, a))
}

fn ctx(gsd: Option<f64>) -> ImageContext {
    ImageContext {
        width: 1024,
        height: 1024,
        gsd,
    }
}

/// Refines `dets` and checks the new scores and the (target, reason) of every change.
fn check(
    rb: &RuleBase,
    dets: &[Detection],
    c: ImageContext,
    want: &[f32],
    reasons: &[(usize, &str)],
) {
    let mut session = rb.session().expect("scene rules");
    let (adj, err) = rb.refine(Some(&mut session), dets, &c);
    assert!(err.is_none(), "{err:?}");
    for (i, (&got, &w)) in adj.scores.iter().zip(want).enumerate() {
        assert!(
            (got - w).abs() < 1e-6,
            "detection {i}: {got} != {w} ({:?})",
            adj.scores
        );
    }
    let mut got: Vec<(usize, String)> = adj
        .changes
        .iter()
        .map(|c| (c.target, c.reason.clone()))
        .collect();
    got.sort();
    let mut want: Vec<(usize, String)> =
        reasons.iter().map(|(i, r)| (*i, (*r).to_owned())).collect();
    want.sort();
    assert_eq!(got, want);
    for c in &adj.changes {
        assert_eq!(&*c.rule, "adjust/3");
        assert_eq!(c.other, None);
    }
    // Shuffled input: the same scores per detection and the same reasons.
    let mut rev: Vec<Detection> = dets.to_vec();
    rev.reverse();
    let (adj2, _) = rb.refine(Some(&mut session), &rev, &c);
    let n = dets.len();
    for i in 0..n {
        assert_eq!(
            adj2.scores[n - 1 - i],
            adj.scores[i],
            "order changed the result"
        );
    }
    let mut got2: Vec<(usize, String)> = adj2
        .changes
        .iter()
        .map(|c| (n - 1 - c.target, c.reason.clone()))
        .collect();
    got2.sort();
    assert_eq!(got2, got);
    swi_agrees(rb, &mut session, dets, &c);
}

#[test]
fn harbor_without_ships() {
    let rb = load(&example("harbor_without_ships.pl"));
    // Harbours of diagonal 50 and ships of diagonal 14.1: near below 2 x 32.07 = 64.1 px between centres.
    let dets = vec![
        aabb("harbor", 0.6, 80.0, 85.0, 120.0, 115.0), // H1 at (100, 100)
        aabb("ship", 0.9, 145.0, 95.0, 155.0, 105.0),  // 50 px from H1: near
        aabb("harbor", 0.7, 980.0, 985.0, 1020.0, 1015.0), // H2: no ship at all around
        aabb("harbor", 0.5, 80.0, 385.0, 120.0, 415.0), // H3 at (100, 400)
        aabb("ship", 0.4, 95.0, 465.0, 105.0, 475.0),  // 70 px from H3: not near
        aabb("harbor", 0.8, 480.0, 85.0, 520.0, 115.0), // H4 with a ship on it
        aabb("ship", 0.3, 495.0, 95.0, 505.0, 105.0),
    ];
    check(
        &rb,
        &dets,
        ctx(None),
        &[0.6, 0.9, 0.56, 0.4, 0.4, 0.8, 0.3],
        &[(2, "no_ship_near"), (3, "no_ship_near")],
    );
}

#[test]
fn vehicle_alone_on_field() {
    let rb = load(&example("vehicle_alone_on_field.pl"));
    let dets = vec![
        aabb("tennis court", 0.9, 0.0, 0.0, 40.0, 20.0),
        aabb("small vehicle", 0.6, 10.0, 5.0, 14.0, 9.0), // alone on the court
        aabb("soccer ball field", 0.8, 200.0, 0.0, 300.0, 60.0),
        aabb("small vehicle", 0.5, 220.0, 20.0, 224.0, 24.0), // on the pitch, with company
        aabb("small vehicle", 0.5, 228.0, 20.0, 232.0, 24.0),
        aabb("small vehicle", 0.7, 500.0, 500.0, 504.0, 504.0), // alone, not on a field
    ];
    check(
        &rb,
        &dets,
        ctx(None),
        &[0.9, 0.42, 0.8, 0.5, 0.5, 0.7],
        &[(1, "alone_on(tennis_court)")],
    );
}

fn planes() -> Vec<Detection> {
    vec![
        obb("plane", 0.5, 100.0, 100.0, 40.0, 38.0, 0.1),
        obb("plane", 0.9, 150.0, 100.0, 40.0, 38.0, 0.15),
        obb("plane", 0.6, 200.0, 100.0, 40.0, 38.0, 0.05),
        obb("plane", 0.7, 400.0, 100.0, 40.0, 38.0, 1.2), // another heading, too far
        obb("plane", 0.8, 100.0, 300.0, 40.0, 38.0, 0.1), // same heading, 200 px away
    ]
}

#[test]
fn planes_in_a_row() {
    let rb = load(&example("planes_in_a_row.pl"));
    let row = "in_a_row_with(2, planes)";
    let boosted = [0.575, 1.0, 0.69, 0.7, 0.8];
    // 40 x 38 planes: located near below 2 x 55.2 = 110.3 px; the row's ends are 100 px apart. At 0.5 m/px that
    // is 50 m, within 60 m.
    check(
        &rb,
        &planes(),
        ctx(None),
        &boosted,
        &[(0, row), (1, row), (2, row)],
    );
    check(
        &rb,
        &planes(),
        ctx(Some(0.5)),
        &boosted,
        &[(0, row), (1, row), (2, row)],
    );
    // At 2 m/px neighbours 50 px apart are 100 m apart: no plane has two within 60 m.
    check(
        &rb,
        &planes(),
        ctx(Some(2.0)),
        &[0.5, 0.9, 0.6, 0.7, 0.8],
        &[],
    );
}

#[test]
fn lone_ship_inland() {
    let rb = load(&example("lone_ship_inland.pl"));
    let ship = aabb("ship", 0.8, 10.0, 10.0, 30.0, 20.0);
    let lone = "lone_ship_without(harbor, bridge)";
    check(
        &rb,
        std::slice::from_ref(&ship),
        ctx(None),
        &[0.68],
        &[(0, lone)],
    );
    let harbour = aabb("harbor", 0.7, 0.0, 0.0, 100.0, 100.0);
    check(&rb, &[ship.clone(), harbour], ctx(None), &[0.8, 0.7], &[]);
    let two = aabb("ship", 0.6, 50.0, 10.0, 70.0, 20.0);
    check(&rb, &[ship, two], ctx(None), &[0.8, 0.6], &[]);
}

#[test]
fn scene_rules_combine_with_the_table_by_strongest_boost_and_penalty() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("both.pl");
    std::fs::write(
        &p,
        "confidence_modifier(ship, harbor, 1.25).\nadjust(I, 1.1, near_harbor) :- detection(I, ship, _, _, _, _, _, _).\nadjust(I, 0.5, suspicious) :- detection(I, ship, C, _, _, _, _, _), C < 0.5.\n",
    )
    .unwrap();
    let rb = load(&p);
    let dets = vec![
        aabb("ship", 0.4, 0.0, 0.0, 10.0, 10.0),
        aabb("harbor", 0.6, 20.0, 0.0, 30.0, 10.0),
    ];
    let mut s = rb.session().unwrap();
    let (adj, err) = rb.refine(Some(&mut s), &dets, &ctx(None));
    assert!(err.is_none());
    // Ship: boosts 1.25 (pair) and 1.1 (scene): the strongest, 1.25; penalty 0.5: 0.4 x 1.25 x 0.5 = 0.25.
    assert!((adj.scores[0] - 0.25).abs() < 1e-6, "{:?}", adj.scores);
    assert!((adj.scores[1] - 0.75).abs() < 1e-6, "{:?}", adj.scores);
    assert_eq!(adj.changes.len(), 3);
}

/// SWI-Prolog on the same facts: the rule file consulted with the scene as plain facts.
fn swi_agrees(
    rb: &RuleBase,
    session: &mut nsod_symbolic::SceneSession,
    dets: &[Detection],
    c: &ImageContext,
) {
    let (req, _) = session.request(dets, c);
    let ours: BTreeSet<(usize, String, String)> = session
        .answers(req.clone())
        .unwrap()
        .into_iter()
        .map(|a: SceneAnswer| (a.id, format!("{:.9}", a.factor), a.reason))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("facts.pl");
    std::fs::write(&facts, facts_text(&req)).unwrap();
    let rules = &rb.scene.as_ref().unwrap().path;
    let goal = "forall(adjust(I, F, R), (format('~w ~w ', [I, F]), write_term(R, [quoted(true), spacing(next_argument)]), nl))";
    let out = nsod_testkit::tool("swipl")
        .args(["-q", "-g", goal, "-t", "halt"])
        .arg(&facts)
        .arg(rules)
        .output()
        .expect("swipl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let swi: BTreeSet<(usize, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let id = it.next().unwrap().parse().unwrap();
            let f: f64 = it.next().unwrap().parse().unwrap();
            (id, format!("{f:.9}"), it.next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        ours,
        swi,
        "scryer (nsod) and SWI-Prolog disagree on {}",
        rules.display()
    );
}

fn facts_text(req: &SceneRequest) -> String {
    use std::fmt::Write;
    let f = |x: f32| {
        let s = format!("{x:?}");
        if s.contains('.') { s } else { format!("{s}.0") }
    };
    let mut t = String::from(":- dynamic(relation/3).\n:- dynamic(gsd/1).\n");
    for (i, d) in req.detections.iter().enumerate() {
        let _ = writeln!(
            t,
            "detection({i}, {}, {}, {}, {}, {}, {}, {}).",
            nsod_types::quote::prolog_atom(&d.class),
            f(d.conf),
            f(d.cx),
            f(d.cy),
            f(d.w),
            f(d.h),
            f(d.angle)
        );
    }
    let names = ["located_near", "adjacent_to", "located_on", "overlaps"];
    for (s, out) in req.relations.iter().enumerate() {
        for (r, o) in out {
            let _ = writeln!(t, "relation({}, {s}, {o}).", names[*r as usize]);
        }
    }
    for (c, n) in &req.class_counts {
        let _ = writeln!(
            t,
            "class_count({}, {n}).",
            nsod_types::quote::prolog_atom(c)
        );
    }
    let _ = writeln!(t, "image_size({}, {}).", req.width, req.height);
    if let Some(g) = req.gsd {
        let _ = writeln!(t, "gsd({g:?}).");
    }
    t
}

#[test]
fn size_plausibility_penalises_outside_the_closed_range_and_needs_a_gsd() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("size.pl");
    std::fs::write(&p, "size_range(small_vehicle, 2, 7).\n").unwrap();
    let rb = load(&p);
    assert!(rb.scene.is_none(), "no adjust/3: no scene rules");
    let car = |w: f32| obb("small vehicle", 0.8, 50.0, 50.0, w, 2.0, 0.3);
    // At 0.5 m/px: 4 px = 2 m and 14 px = 7 m are on the bounds (plausible); 3.9 px and 14.2 px are not.
    let dets = vec![car(4.0), car(3.9), car(14.0), car(14.2)];
    let adj = rb.table.adjust_at(&dets, Some(0.5));
    assert_eq!(adj.scores, vec![0.8, 0.4, 0.8, 0.4]);
    assert_eq!(
        adj.changes.iter().map(|c| c.target).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(&*adj.changes[0].rule, "size_range(small_vehicle, 2, 7)");
    assert_eq!(
        adj.changes[1].reason,
        "long side 7.10 m (14.2 px at 0.5 m/px) is above the small_vehicle range [2, 7] m"
    );
    // The long side of an oriented box, whichever of w and h it is.
    let tall = obb("small vehicle", 0.8, 50.0, 50.0, 2.0, 16.0, 1.0);
    assert_eq!(rb.table.adjust_at(&[tall], Some(0.5)).scores, vec![0.4]);
    // Without a GSD the rule is inactive.
    assert_eq!(rb.table.adjust_at(&dets, None).scores, vec![0.8; 4]);
    // size_penalty/1 sets the factor.
    std::fs::write(
        &p,
        "size_range(small_vehicle, 2, 7).\nsize_penalty(0.25).\n",
    )
    .unwrap();
    let rb = load(&p);
    assert_eq!(
        rb.table.adjust_at(&dets, Some(0.5)).scores,
        vec![0.8, 0.2, 0.8, 0.2]
    );
}

/// The tree-crown rules (rules/trees.pl and the candidates in rules/trees/, docs/trees.md) on a hand-built stand:
/// exact scores and reasons, and SWI-Prolog giving the same answers on the same facts.
#[test]
fn tree_rules_on_a_hand_built_stand() {
    let trees = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    let names = ClassNames::new(["tree"]);
    let tree = |score: f32, x1: f32, y1: f32, x2: f32, y2: f32| {
        Detection::new(0, "tree", score, BBox::new(x1, y1, x2, y2))
    };
    let dets = vec![
        tree(0.9, 100.0, 100.0, 140.0, 140.0), // 0: a crown of 40 px (4 m at 0.1 m/px)
        tree(0.5, 105.0, 105.0, 139.0, 139.0), // 1: the same crown again, centre 2.8 px away (< 34 / 3)
        tree(0.4, 200.0, 200.0, 210.0, 210.0), // 2: a 10 px part inside 3, centre 7.1 px away (> 10 / 3)
        tree(0.8, 180.0, 180.0, 240.0, 240.0), // 3: a crown of 60 px
        tree(0.7, 500.0, 500.0, 540.0, 540.0), // 4: alone
        tree(0.6, 800.0, 800.0, 808.0, 808.0), // 5: 0.8 m, nothing within 5 m
    ];
    let c = ImageContext {
        width: 1024,
        height: 1024,
        gsd: Some(0.1),
    };
    for (file, want, reasons) in [
        (
            "trees.pl",
            [0.9, 0.3, 0.4, 0.8, 0.7, 0.6],
            vec![(1, "same_crown_as(0)")],
        ),
        (
            "trees/split.pl",
            [0.9, 0.3, 0.4, 0.8, 0.7, 0.6],
            vec![(1, "same_crown_as(0)")],
        ),
        (
            "trees/nested.pl",
            [0.9, 0.5, 0.2, 0.8, 0.7, 0.6],
            // Ids in the facts (and so in reasons) are the detections ranked by confidence, as report.csv's
            // tree#N: 3 (0.8) is the second.
            vec![(2, "inside_larger_crown(1)")],
        ),
        (
            "trees/isolated.pl",
            [0.9, 0.5, 0.4, 0.8, 0.7, 0.36],
            vec![(5, "small_and_isolated")],
        ),
        (
            "trees/stand.pl",
            // 3 has 0, 1 and 2 near it (centres within twice the mean diagonal); 0 only 1 and 3.
            [0.9, 0.5, 0.4, 0.88, 0.7, 0.6],
            vec![(3, "in_a_stand(3)")],
        ),
    ] {
        let rb = load_rules(&trees.join(file), Some(&names), &sandbox())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut session = rb.session().expect("scene rules");
        let (adj, err) = rb.refine(Some(&mut session), &dets, &c);
        assert!(err.is_none(), "{file}: {err:?}");
        for (i, (&got, &w)) in adj.scores.iter().zip(&want).enumerate() {
            assert!(
                (got - w).abs() < 1e-6,
                "{file}: detection {i}: {got} != {w}"
            );
        }
        let mut got: Vec<(usize, String)> = adj
            .changes
            .iter()
            .map(|c| (c.target, c.reason.clone()))
            .collect();
        got.sort();
        let want: Vec<(usize, String)> =
            reasons.iter().map(|(i, r)| (*i, (*r).to_owned())).collect();
        assert_eq!(got, want, "{file}");
        swi_agrees(&rb, &mut session, &dets, &c);
    }
    // size.pl: the 0.8 m box is below the 1 m a crown takes (a size rule, no query).
    let rb = load_rules(&trees.join("trees/size.pl"), Some(&names), &sandbox()).unwrap();
    let (adj, err) = rb.refine(None, &dets, &c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(adj.scores, vec![0.9, 0.5, 0.4, 0.8, 0.7, 0.3]);
}

/// An answer naming a detection the image does not have, or a factor outside (0, 10], is an error that quotes the
/// answer, never a silent miss; the image keeps its table-only result.
#[test]
fn bad_scene_answers_are_errors_that_quote_them() {
    let dir = tempfile::tempdir().unwrap();
    let dets = vec![aabb("ship", 0.4, 0.0, 0.0, 10.0, 10.0)];
    for (text, want) in [
        (
            "adjust(99, 0.5, ghost).\n",
            "adjust(99, 0.5, ghost): the id is not a detection of this image",
        ),
        (
            "adjust(0, 11, huge).\n",
            "adjust(0, 11, huge): the factor must be a number in (0, 10]",
        ),
    ] {
        let p = dir.path().join("bad.pl");
        std::fs::write(&p, text).unwrap();
        let rb = load(&p);
        let mut s = rb.session().unwrap();
        let (adj, err) = rb.refine(Some(&mut s), &dets, &ctx(None));
        let err = err.expect("a bad answer is an error").to_string();
        assert!(err.contains(want), "{err}");
        assert_eq!(adj.scores, vec![0.4], "{text}");
    }
}
