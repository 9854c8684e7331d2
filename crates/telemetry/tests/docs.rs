//! The metrics table of docs/metrics.md lists exactly the families nsod exposes (`Telemetry::families`): a metric added,
//! renamed or removed without its row fails here.

use std::collections::BTreeSet;

/// The `nsod_*` and `process_*` names in the nsod column (the second) of docs/metrics.md's table.
fn documented() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .unwrap();
    let section = readme
        .split("\n## Metrics")
        .nth(1)
        .expect("a Metrics section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let Some(cell) = row.split('|').nth(2) else {
            continue;
        };
        for prefix in ["`nsod_", "`process_"] {
            let mut rest = cell;
            while let Some(i) = rest.find(prefix) {
                let tail = &rest[i + 1..];
                let end = tail.find('`').unwrap_or(tail.len());
                names.insert(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    names
}

#[test]
fn the_docs_metrics_table_lists_every_family_and_nothing_else() {
    let families: BTreeSet<String> = nsod_telemetry::Telemetry::families()
        .into_iter()
        .map(|(n, kind)| {
            if kind == "counter" && !n.ends_with("_total") {
                format!("{n}_total")
            } else {
                n
            }
        })
        .collect();
    let docs = documented();
    let missing: Vec<_> = families.difference(&docs).collect();
    let extra: Vec<_> = docs.difference(&families).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not in docs/metrics.md's table: {missing:?}\nin the table but not exposed: {extra:?}"
    );
}
