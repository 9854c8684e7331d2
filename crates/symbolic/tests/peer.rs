//! Peer check: scryer-prolog (through nsod) and SWI-Prolog enumerate the same confidence_modifier/3 and
//! relation_modifier/4 solutions from rules/dota.pl. Needs `swipl` (Debian swi-prolog-nox; scripts/setup.sh --tests).

use nsod_symbolic::{Sandbox, WorkerCommand, load_rules};
use std::collections::BTreeSet;
use std::path::Path;

fn swipl_solutions(rules: &Path, goal: &str) -> BTreeSet<(Vec<String>, String)> {
    let out = nsod_testkit::tool("swipl")
        .args(["-q", "-g", goal, "-t", "halt"])
        .arg(rules)
        .output()
        .expect("swipl runs");
    assert!(
        out.status.success(),
        "swipl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut parts: Vec<String> = l.split(' ').map(str::to_owned).collect();
            let w: f64 = parts.pop().unwrap().parse().unwrap();
            (parts, format!("{w:.6}"))
        })
        .collect()
}

#[test]
fn scryer_and_swi_prolog_agree_on_the_dota_rules() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/dota.pl");
    let swi_pairs = swipl_solutions(
        &rules,
        "forall(confidence_modifier(A,B,W), format('~w ~w ~w~n', [A,B,W]))",
    );
    let swi_rel = swipl_solutions(
        &rules,
        "forall(relation_modifier(S,R,O,W), format('~w ~w ~w ~w~n', [S,R,O,W]))",
    );
    let sandbox = Sandbox::new(WorkerCommand::new(
        env!("CARGO_BIN_EXE_nsod-rules-worker"),
        Vec::<String>::new(),
    ));
    let table = load_rules(&rules, None, &sandbox).unwrap().table;
    let ours_pairs: BTreeSet<(Vec<String>, String)> = table
        .pair_rules
        .iter()
        .map(|r| (vec![r.a.clone(), r.b.clone()], format!("{:.6}", r.weight)))
        .collect();
    let ours_rel: BTreeSet<(Vec<String>, String)> = table
        .relation_rules
        .iter()
        .map(|r| {
            (
                vec![
                    r.subject.clone(),
                    r.relation.as_str().to_owned(),
                    r.object.clone(),
                ],
                format!("{:.6}", r.weight),
            )
        })
        .collect();
    assert_eq!(
        ours_pairs.len(),
        table.pair_rules.len(),
        "no duplicate solutions"
    );
    assert_eq!(ours_pairs, swi_pairs);
    assert_eq!(ours_rel, swi_rel);
    assert!(ours_pairs.len() > 30 && ours_rel.len() > 5);
}
