//! Loading rule bases: the shipped DOTA rules, and every kind of bad file.

use nsod_symbolic::{Limits, Sandbox, SymbolicError, WorkerCommand, load_rules};
use nsod_types::ClassNames;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn sandbox() -> Sandbox {
    Sandbox::new(WorkerCommand::new(
        env!("CARGO_BIN_EXE_nsod-rules-worker"),
        Vec::<String>::new(),
    ))
}

fn dota_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/dota.pl")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_dota_rule_base_compiles_without_warnings() {
    let t = load_rules(&dota_rules(), Some(&ClassNames::dota_v1()), &sandbox())
        .unwrap()
        .table;
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_eq!(t.pair_rule("harbor", "ship").unwrap().weight, 1.25);
    assert_eq!(
        t.pair_rule("small_vehicle", "soccer_ball_field")
            .unwrap()
            .weight,
        0.8
    );
    assert_eq!(
        t.pair_rule("tennis_court", "basketball_court")
            .unwrap()
            .weight,
        1.1
    );
    // 6 sports facilities: 15 unordered pairs; 2 vehicles x 5 fields: 10; plus 4 + 4 facts.
    assert_eq!(t.pair_rules.len(), 15 + 10 + 8);
    assert_eq!(t.relation_rules.len(), 5 + 2);
    assert_eq!(
        (
            t.params.near_factor,
            t.overlap_ratio,
            t.params.adjacent_factor,
            t.params.on_ratio
        ),
        (2.0, 0.5, 0.1, 0.5)
    );
}

fn load_err(path: &Path) -> SymbolicError {
    let sandbox = Sandbox {
        limits: Limits {
            load_inferences: 200_000,
            ..Limits::default()
        },
        ..sandbox()
    };
    load_rules(path, Some(&ClassNames::dota_v1()), &sandbox).expect_err("must fail")
}

#[test]
fn bad_rule_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pl");
    let e = load_err(&missing);
    assert_eq!(e.kind(), "io");
    assert_eq!(
        format!(
            "{e}: {}",
            std::error::Error::source(&e).expect("the io error is kept")
        ),
        format!(
            "rules {}: No such file or directory (os error 2)",
            missing.display()
        )
    );

    let p = write(
        dir.path(),
        "syntax.pl",
        "near_factor(2.0).\nconfidence_modifier(ship, harbor 1.25).\n",
    );
    let e = load_err(&p);
    assert!(matches!(e, SymbolicError::Syntax { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("rules {}: line 2: syntax error", p.display())),
        "{e}"
    );

    let p = write(
        dir.path(),
        "loop.pl",
        "loop :- loop.\nconfidence_modifier(ship, harbor, W) :- loop, W = 1.2.\n",
    );
    let t = Instant::now();
    let e = load_err(&p);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "the inference limit must stop a loop quickly"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "rules {}: confidence_modifier/3 did not finish within the inference limit (200000): a rule that loops?",
            p.display()
        )
    );
    assert_eq!(e.kind(), "limit");

    let p = write(dir.path(), "directive.pl", "loop :- loop.\n\n:- loop.\n");
    let e = load_err(&p);
    assert_eq!(
        e.to_string(),
        format!(
            "rules {}: line 3: directive loop/0 is not allowed: only discontiguous/1, dynamic/1 and use_module/1,2 of an allowed library are accepted",
            p.display()
        )
    );
    assert_eq!(e.kind(), "refused");

    let p = write(
        dir.path(),
        "word.pl",
        "confidence_modifier(ship, harbor, high).\n",
    );
    assert_eq!(
        load_err(&p).to_string(),
        format!(
            "rules {}: confidence_modifier(ship, harbor, high): weight high is not a number",
            p.display()
        )
    );
    let p = write(
        dir.path(),
        "zero.pl",
        "confidence_modifier(ship, harbor, 0).\n",
    );
    assert_eq!(
        load_err(&p).to_string(),
        format!(
            "rules {}: confidence_modifier(ship, harbor, 0): weight 0 is out of range (0, 10]",
            p.display()
        )
    );
    let p = write(
        dir.path(),
        "big.pl",
        "relation_modifier(ship, located_near, harbor, 11.5).\n",
    );
    assert!(
        load_err(&p)
            .to_string()
            .ends_with("weight 11.5 is out of range (0, 10]")
    );
    let p = write(
        dir.path(),
        "rel.pl",
        "relation_modifier(ship, inside, harbor, 1.2).\n",
    );
    assert!(load_err(&p).to_string().contains("unknown relation inside"));
    let p = write(
        dir.path(),
        "unbound.pl",
        "confidence_modifier(_, harbor, 1.2).\n",
    );
    assert!(
        load_err(&p)
            .to_string()
            .contains("both classes must be atoms")
    );
    let p = write(dir.path(), "thr.pl", "overlap_ratio(1.5).\n");
    assert!(
        load_err(&p)
            .to_string()
            .contains("overlap_ratio(1.5): must be a positive number <= 1")
    );
    let p = write(
        dir.path(),
        "throw.pl",
        "confidence_modifier(ship, harbor, W) :- W is 1 / 0.\n",
    );
    let e = load_err(&p).to_string();
    assert!(
        e.contains("confidence_modifier/3 raised error(evaluation_error"),
        "{e}"
    );
}

#[test]
fn unknown_classes_and_conflicts_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "warn.pl",
        "confidence_modifier(ship, container_crane, 1.2).\nconfidence_modifier(ship, harbor, 1.2).\nconfidence_modifier(harbor, ship, 1.3).\n",
    );
    let t = load_rules(&p, Some(&ClassNames::dota_v1()), &sandbox())
        .unwrap()
        .table;
    assert_eq!(
        t.warnings,
        vec![
            "confidence_modifier(harbor, ship, 1.3) conflicts with confidence_modifier(ship, harbor, 1.2); the first one is used".to_owned(),
            "class container_crane is not one of the model's classes; its rules never fire".to_owned(),
        ]
    );
    assert_eq!(t.pair_rule("harbor", "ship").unwrap().weight, 1.2);
}

#[test]
fn a_failed_load_does_not_poison_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.pl",
        "confidence_modifier(ship, harbor, 1.2\n",
    );
    assert!(load_rules(&bad, None, &sandbox()).is_err());
    assert!(load_rules(&dota_rules(), None, &sandbox()).is_ok());
}
