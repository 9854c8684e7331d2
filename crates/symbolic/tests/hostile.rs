//! Hostile rule bases (one file each in tests/hostile/): each must fail with a clear error naming the file, the
//! line where known and the reason, within 10 s, without creating or deleting any file, without taking the test
//! process down; and a good rule base must load right after, in the same process. The worker's confinement is
//! also checked on its own (what it blocks even if the allow-list let something through).

use nsod_symbolic::{Sandbox, SymbolicError, WorkerCommand, load_rules, probe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn sandbox() -> Sandbox {
    Sandbox::new(WorkerCommand::new(
        env!("CARGO_BIN_EXE_nsod-rules-worker"),
        Vec::<String>::new(),
    ))
}

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// Every hostile file: (file, error kind, line, part of the message).
const CASES: &[(&str, &str, Option<usize>, &str)] = &[
    (
        "shell_directive.pl",
        "refused",
        Some(4),
        "directive initialization/1 is not allowed (it controls the Prolog engine)",
    ),
    (
        "shell_body.pl",
        "refused",
        Some(2),
        "calls shell/1, which is not allowed: it reaches the operating system",
    ),
    (
        "process_create_directive.pl",
        "refused",
        Some(1),
        "use_module(library(process)) is not allowed",
    ),
    (
        "process_create_body.pl",
        "refused",
        Some(2),
        "calls process_create/3, which is not allowed: it reaches the operating system",
    ),
    (
        "open_write.pl",
        "refused",
        Some(2),
        "calls open/3, which is not allowed: it does input/output",
    ),
    (
        "delete_file.pl",
        "refused",
        Some(1),
        "calls delete_file/1, which is not allowed: it does input/output",
    ),
    (
        "halt.pl",
        "refused",
        Some(2),
        "directive halt/0 is not allowed (it controls the Prolog engine)",
    ),
    (
        "abort_initialization.pl",
        "refused",
        Some(1),
        "directive initialization/1 is not allowed",
    ),
    (
        "infinite_loop.pl",
        "limit",
        None,
        // The inference limit or, on a loaded machine, the wall-clock limit stops it first.
        "did not finish within",
    ),
    (
        "backtracking_loop.pl",
        "limit",
        None,
        "did not finish within",
    ),
    (
        "huge_number.pl",
        "limit",
        None,
        "did not finish within 5.0 s (a rule or directive that never ends?); the rules worker was killed",
    ),
    (
        "memory_hog.pl",
        "limit",
        None,
        "confidence_modifier/3 ran out of memory",
    ),
    // Memory, inference or wall-clock limit, whichever comes first.
    ("deep_recursion.pl", "limit", None, ""),
    (
        "consult.pl",
        "refused",
        Some(1),
        "directive consult/1 is not allowed (it controls the Prolog engine)",
    ),
    (
        "asserts.pl",
        "refused",
        Some(2),
        "calls assertz/1, which is not allowed: it changes the database",
    ),
    ("os_call.pl", "refused", Some(2), "module-qualified goal"),
    (
        "call_variable.pl",
        "refused",
        Some(2),
        "call/N on a goal that is not written in the file is not allowed",
    ),
];

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_hostile_rule_base_fails_cleanly_and_a_good_one_loads_after() {
    let files: Vec<String> = listing(&hostile_dir());
    assert_eq!(
        files.len(),
        CASES.len(),
        "one case per file in tests/hostile: {files:?}"
    );
    let sb = sandbox();
    for (file, kind, line, message) in CASES {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        std::fs::write(dir.join("canary"), "alive").unwrap();
        std::fs::write(
            dir.join("other.pl"),
            "confidence_modifier(plane, ship, 9.0).\n",
        )
        .unwrap();
        let text = std::fs::read_to_string(hostile_dir().join(file))
            .unwrap()
            .replace("@DIR@", &dir.to_string_lossy());
        let rules = dir.join(file);
        std::fs::write(&rules, text).unwrap();
        let before = listing(dir);
        let t = Instant::now();
        let e: SymbolicError = load_rules(&rules, None, &sb).expect_err(file);
        let took = t.elapsed();
        let msg = e.to_string();
        eprintln!("{file}: {took:.2?}: {msg}");
        assert!(took < Duration::from_secs(10), "{file}: {took:?}");
        assert_eq!(e.kind(), *kind, "{file}: {msg}");
        let prefix = match line {
            Some(l) => format!("rules {}: line {l}: ", rules.display()),
            None => format!("rules {}: ", rules.display()),
        };
        assert!(msg.starts_with(&prefix), "{file}: {msg}");
        assert!(msg.contains(message), "{file}: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert_eq!(listing(dir), before, "{file}: files created or deleted");
        assert_eq!(
            std::fs::read_to_string(dir.join("canary")).unwrap(),
            "alive"
        );
        // The next rule base is unaffected.
        let good = load_rules(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/dota.pl"),
            None,
            &sb,
        )
        .unwrap_or_else(|e| panic!("after {file}: {e}"));
        assert_eq!(good.table.pair_rule("ship", "harbor").unwrap().weight, 1.25);
    }
}

#[test]
fn a_scene_rule_that_loops_fails_that_image_only() {
    use nsod_symbolic::ImageContext;
    use nsod_types::{BBox, Detection};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scene_loop.pl");
    std::fs::write(
        &p,
        "spin :- spin.\nadjust(I, 0.5, looping) :- detection(I, ship, _, _, _, _, _, _), spin.\nadjust(I, 0.9, fine) :- detection(I, harbor, _, _, _, _, _, _).\n",
    )
    .unwrap();
    let rb = load_rules(&p, None, &sandbox()).unwrap();
    let mut session = rb.session().expect("adjust/3 makes scene rules");
    let ctx = ImageContext {
        width: 100,
        height: 100,
        gsd: None,
    };
    let ship = vec![Detection::new(
        1,
        "ship",
        0.8,
        BBox::new(0.0, 0.0, 10.0, 10.0),
    )];
    let t = Instant::now();
    let (adj, err) = rb.refine(Some(&mut session), &ship, &ctx);
    assert!(t.elapsed() < Duration::from_secs(10));
    let err = err.expect("the loop is an error");
    assert_eq!(err.kind(), "limit", "{err}");
    assert_eq!(
        adj.scores,
        vec![0.8],
        "the image keeps its table-only result"
    );
    // The next image is answered by a fresh worker.
    let harbor = vec![Detection::new(
        7,
        "harbor",
        0.8,
        BBox::new(0.0, 0.0, 10.0, 10.0),
    )];
    let (adj, err) = rb.refine(Some(&mut session), &harbor, &ctx);
    assert!(err.is_none(), "{err:?}");
    assert!((adj.scores[0] - 0.72).abs() < 1e-6, "{:?}", adj.scores);
    assert_eq!(adj.changes[0].reason, "fine");
}

#[test]
fn the_worker_confines_itself_even_without_the_allow_list() {
    let scratch = tempfile::tempdir().unwrap();
    let report = probe(&sandbox(), Some(scratch.path())).unwrap();
    assert_eq!(report.seccomp, Ok(()), "{report:?}");
    assert_eq!(report.rlimits, Ok(()), "{report:?}");
    let blocked: Vec<(&str, bool)> = report
        .checks
        .iter()
        .map(|(what, b)| (what.as_str(), *b))
        .collect();
    let must = ["run a program", "open a socket", "create a file"];
    for m in must {
        assert!(blocked.contains(&(m, true)), "{m} not blocked: {report:?}");
    }
    // Listing a folder is blocked only where the kernel has Landlock.
    if report.landlock.is_ok() {
        assert!(blocked.contains(&("list a folder", true)), "{report:?}");
    }
    assert_eq!(listing(scratch.path()), Vec::<String>::new());
}
