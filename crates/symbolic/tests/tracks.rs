//! Rules over tracks (`adjust_track/3`, `speed_range/3`) on hand-built track scenes with exact factors and reasons
//! for every track example in rules/examples/; the same answers whatever the order of the facts; the same answers
//! from SWI-Prolog on the same facts (peer); hostile rule bases refused or stopped.

use nsod_symbolic::protocol::{TrackAnswer, TrackFact, TrackRelationFact, TrackRequest};
use nsod_symbolic::{RuleBase, Sandbox, SymbolicError, WorkerCommand, load_rules};
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
    load_rules(path, Some(&nsod_types::ClassNames::dota_v1()), &sandbox())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn rules_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("rules.pl");
    std::fs::write(&p, text).unwrap();
    p
}

/// A track: id, class, first and last time, frames; the course values are set by the callers that need them.
fn track(id: u64, class: &str, first: f64, last: f64, frames: u64) -> TrackFact {
    TrackFact {
        id,
        class: class.to_owned(),
        first,
        last,
        frames,
        speed_px: None,
        speed_m: None,
        heading: None,
        displacement_px: None,
        displacement_m: None,
    }
}

fn rel(relation: &str, a: u64, b: u64, from: f64, to: f64) -> TrackRelationFact {
    TrackRelationFact {
        relation: relation.to_owned(),
        a,
        b,
        from,
        to,
    }
}

fn answers(rb: &RuleBase, req: &TrackRequest) -> Vec<(u64, String, String)> {
    let mut s = rb.track_session().expect("adjust_track/3 is defined");
    s.track_answers(req.clone())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|a: TrackAnswer| (a.id, format!("{:.9}", a.factor), a.reason))
        .collect()
}

/// Checks the answers, then the same with the facts in reverse order, then SWI-Prolog's.
fn check(rb: &RuleBase, req: &TrackRequest, want: &[(u64, f64, &str)]) {
    let got = answers(rb, req);
    let want: Vec<(u64, String, String)> = want
        .iter()
        .map(|(i, f, r)| (*i, format!("{f:.9}"), (*r).to_owned()))
        .collect();
    assert_eq!(got, want);
    let mut rev = req.clone();
    rev.tracks.reverse();
    rev.relations.reverse();
    assert_eq!(
        answers(rb, &rev),
        got,
        "the facts' order changed the answers"
    );
    swi_agrees(rb, req, &got);
}

fn swi_agrees(rb: &RuleBase, req: &TrackRequest, ours: &[(u64, String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("facts.pl");
    std::fs::write(&facts, facts_text(req)).unwrap();
    let rules = &rb.scene.as_ref().unwrap().path;
    let goal = "forall(adjust_track(I, F, R), (format('~w ~w ', [I, F]), write_term(R, [quoted(true), spacing(next_argument)]), nl))";
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
    let swi: BTreeSet<(u64, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let id = it.next().unwrap().parse().unwrap();
            let f: f64 = it.next().unwrap().parse().unwrap();
            (id, format!("{f:.9}"), it.next().unwrap().to_owned())
        })
        .collect();
    let ours: BTreeSet<(u64, String, String)> = ours.iter().cloned().collect();
    assert_eq!(
        ours,
        swi,
        "scryer (nsod) and SWI-Prolog disagree on {}",
        rules.display()
    );
}

/// The request as plain Prolog facts (what a user would write to try a rule base in another Prolog).
fn facts_text(req: &TrackRequest) -> String {
    use std::fmt::Write;
    let f = |x: f64| {
        let s = format!("{x:?}");
        if s.contains('.') { s } else { format!("{s}.0") }
    };
    let mut t = String::new();
    for p in [
        "track/5",
        "track_speed_px/2",
        "track_speed_m/2",
        "track_heading/2",
        "track_displacement_px/2",
        "track_displacement_m/2",
        "track_relation/5",
        "gsd/1",
    ] {
        let _ = writeln!(t, ":- dynamic({p}).");
    }
    for tr in &req.tracks {
        let c = nsod_types::quote::prolog_atom(&tr.class);
        let _ = writeln!(
            t,
            "track({}, {c}, {}, {}, {}).",
            tr.id,
            f(tr.first),
            f(tr.last),
            tr.frames
        );
        for (name, v) in [
            ("track_speed_px", tr.speed_px),
            ("track_speed_m", tr.speed_m),
            ("track_heading", tr.heading),
            ("track_displacement_px", tr.displacement_px),
            ("track_displacement_m", tr.displacement_m),
        ] {
            if let Some(v) = v {
                let _ = writeln!(t, "{name}({}, {}).", tr.id, f(v));
            }
        }
    }
    for r in &req.relations {
        let _ = writeln!(
            t,
            "track_relation({}, {}, {}, {}, {}).",
            r.relation,
            r.a,
            r.b,
            f(r.from),
            f(r.to)
        );
    }
    if let Some(g) = req.gsd {
        let _ = writeln!(t, "gsd({}).", f(g));
    }
    t
}

#[test]
fn a_storage_tank_that_moves() {
    let rb = load(&example("moving_storage_tank.pl"));
    assert!(rb.has_track_rules());
    assert!(rb.session().is_none(), "no adjust/3: no per-image query");
    let mut still = track(1, "storage_tank", 0.0, 10.0, 300);
    still.displacement_m = Some(0.4);
    let mut moved = track(2, "storage_tank", 0.0, 8.0, 240);
    moved.displacement_m = Some(12.6);
    // Exactly 5 m is not over 5 m.
    let mut edge = track(3, "storage_tank", 0.0, 8.0, 240);
    edge.displacement_m = Some(5.0);
    // Too short to be measured: no displacement fact, no answer.
    let short = track(4, "storage_tank", 0.0, 1.0, 30);
    let mut car = track(5, "small_vehicle", 0.0, 8.0, 240);
    car.displacement_m = Some(80.0);
    let req = TrackRequest {
        gsd: Some(0.3),
        tracks: vec![still, moved, edge, short, car],
        relations: vec![],
    };
    check(&rb, &req, &[(2, 0.3, "storage_tank_moved(metres(13))")]);
}

#[test]
fn flicker_in_a_stable_scene() {
    let rb = load(&example("flicker.pl"));
    let stable = |id| track(id, "small_vehicle", 0.0, 5.0, 150);
    let req = TrackRequest {
        gsd: None,
        tracks: vec![
            stable(1),
            stable(2),
            stable(3),
            // Two frames inside the stable tracks' lives: flicker.
            track(10, "plane", 2.0, 2.04, 2),
            // Three frames: an object.
            track(11, "plane", 2.0, 2.07, 3),
            // Two frames, but after the scene's tracks ended: nothing says the scene is stable then.
            track(12, "plane", 6.0, 6.04, 2),
        ],
        relations: vec![],
    };
    check(
        &rb,
        &req,
        &[(10, 0.5, "flicker(frames(2), stable_tracks(3))")],
    );
}

#[test]
fn a_ship_crossing_land() {
    let rb = load(&example("ship_over_land.pl"));
    let req = TrackRequest {
        gsd: Some(0.3),
        tracks: vec![
            track(1, "ship", 0.0, 10.0, 300),
            track(2, "small_vehicle", 0.0, 10.0, 300),
            track(3, "tennis_court", 0.0, 10.0, 300),
            track(4, "ship", 0.0, 10.0, 300),
            track(5, "harbor", 0.0, 10.0, 300),
            track(6, "ship", 0.0, 10.0, 300),
        ],
        relations: vec![
            // Ship 1 on a car for 2 s and over a court for 1.5 s: two land neighbours.
            rel("overlaps", 1, 2, 1.0, 3.0),
            rel("located_on", 1, 3, 4.0, 5.5),
            // Ship 4 near land and at a harbour: near is not contact, a harbour is not land.
            rel("located_near", 4, 2, 0.0, 9.0),
            rel("located_near", 4, 3, 0.0, 9.0),
            rel("overlaps", 4, 5, 0.0, 9.0),
            // Ship 6 touches two land objects, one of them only for half a second.
            rel("adjacent_to", 6, 2, 0.0, 4.0),
            rel("overlaps", 6, 3, 2.0, 2.5),
        ],
    };
    check(&rb, &req, &[(1, 0.4, "ship_over_land(land_neighbours(2))")]);
}

#[test]
fn every_track_fact_reaches_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rb = load(&rules_file(
        dir.path(),
        "adjust_track(T, 1.5, seen(C, F, L, N, S, M, H, P, D, G)) :- \
           track(T, C, F, L, N), track_speed_px(T, S), track_speed_m(T, M), track_heading(T, H), \
           track_displacement_px(T, P), track_displacement_m(T, D), gsd(G).\n\
         adjust_track(T, 0.9, unmeasured) :- track(T, _, _, _, _), \\+ track_speed_px(T, _).\n",
    ));
    let mut full = track(7, "large_vehicle", 0.5, 4.25, 112);
    full.speed_px = Some(33.25);
    full.speed_m = Some(9.975);
    full.heading = Some(-1.5);
    full.displacement_px = Some(100.5);
    full.displacement_m = Some(30.15);
    let req = TrackRequest {
        gsd: Some(0.3),
        tracks: vec![full, track(8, "ship", 0.0, 0.5, 3)],
        relations: vec![],
    };
    check(
        &rb,
        &req,
        &[
            (
                7,
                1.5,
                "seen(large_vehicle, 0.5, 4.25, 112, 33.25, 9.975, -1.5, 100.5, 30.15, 0.3)",
            ),
            (8, 0.9, "unmeasured"),
        ],
    );
}

#[test]
fn speed_ranges_compile_like_size_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let rb = load(&rules_file(
        dir.path(),
        "speed_range(storage_tank, 0, 0.5).\nspeed_range(small_vehicle, 0, 70).\nspeed_penalty(0.25).\n",
    ));
    assert!(rb.has_track_rules());
    assert!(rb.track_session().is_none(), "no adjust_track/3: no query");
    let t = &rb.table;
    assert_eq!(t.speed_penalty, 0.25);
    assert_eq!(
        t.speed_change("storage_tank", 0.5),
        None,
        "a bound is plausible"
    );
    assert_eq!(
        t.speed_change("storage_tank", 2.0),
        Some((
            0.25,
            "speed_range(storage_tank, 0, 0.5)".to_owned(),
            "ground speed 2.00 m/s is above the storage_tank range [0, 0.5] m/s".to_owned()
        ))
    );
    assert_eq!(t.speed_change("small_vehicle", 30.0), None);
    assert_eq!(t.speed_change("plane", 300.0), None, "no range, no penalty");
    // The DOTA rule base: one range per class, the structures' near 0.
    let dota = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/dota.pl"));
    let classes: BTreeSet<String> = nsod_types::ClassNames::dota_v1()
        .as_slice()
        .iter()
        .map(|c| nsod_symbolic::class_atom(c))
        .collect();
    let ranged: BTreeSet<String> = dota
        .table
        .speed_ranges
        .iter()
        .map(|r| r.class.clone())
        .collect();
    assert_eq!(ranged, classes);
    for r in &dota.table.speed_ranges {
        let moving = [
            "plane",
            "ship",
            "large_vehicle",
            "small_vehicle",
            "helicopter",
        ];
        assert_eq!(
            r.max_mps > 2.0,
            moving.contains(&r.class.as_str()),
            "{}",
            r.head()
        );
    }
    assert_eq!(
        dota.table.speed_change("storage_tank", 3.0).map(|c| c.0),
        Some(0.5)
    );
    for (text, want) in [
        (
            "speed_range(ship, 5, 1).\n",
            "speed_range(ship, 5, 1): needs 0 <= MinMps <= MaxMps, both numbers",
        ),
        (
            "speed_range(S, 0, 1) :- S = ship.\nspeed_range(_, 0, 1).\n",
            "the class must be an atom",
        ),
        (
            "speed_penalty(1.5).\n",
            "speed_penalty(1.5): the factor must be a number in (0, 1)",
        ),
    ] {
        let e = load_rules(&rules_file(dir.path(), text), None, &sandbox()).unwrap_err();
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
}

#[test]
fn hostile_track_rules_are_refused_or_stopped() {
    let dir = tempfile::tempdir().unwrap();
    // Redefining a track fact is refused when the file is read.
    let e = load_rules(
        &rules_file(
            dir.path(),
            "track(1, ship, 0, 1, 2).\nadjust_track(1, 2.0, x).\n",
        ),
        None,
        &sandbox(),
    )
    .unwrap_err();
    assert!(
        matches!(e, SymbolicError::Refused { .. }) && e.to_string().contains("line 1"),
        "{e}"
    );
    // A loop stops at the inference limit (low here, and the wall-clock limit high, so that a loaded machine hits
    // the inference limit first): an error for this query.
    let mut limited = sandbox();
    limited.limits.query_inferences = 200_000;
    limited.limits.query_timeout = std::time::Duration::from_secs(60);
    let rb = load_rules(
        &rules_file(
            dir.path(),
            "adjust_track(T, 0.5, looped) :- track(T, _, _, _, _), spin(0).\nspin(N) :- M is N + 1, spin(M).\n",
        ),
        None,
        &limited,
    )
    .unwrap();
    let mut s = rb.track_session().unwrap();
    let req = TrackRequest {
        gsd: None,
        tracks: vec![track(1, "ship", 0.0, 3.0, 90)],
        relations: vec![],
    };
    let e = s.track_answers(req.clone()).unwrap_err();
    assert!(
        matches!(e, SymbolicError::Limit { .. }) && e.to_string().contains("adjust_track/3"),
        "{e}"
    );
    // An answer naming a track the query does not have is an error, not a silent miss.
    let rb = load(&rules_file(dir.path(), "adjust_track(99, 0.5, ghost).\n"));
    let e = rb
        .track_session()
        .unwrap()
        .track_answers(req)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adjust_track(99, 0.5, ghost): the id is not a track of this query"),
        "{e}"
    );
}
