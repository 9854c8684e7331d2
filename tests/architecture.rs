//! The dependency rules of ARCHITECTURE.md's code map, checked on the real dependency graph (`cargo metadata`):
//! what each crate must never depend on, directly or through another crate (normal dependencies; dev-dependencies
//! of tests are free).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crate -> what it must never reach.
const RULES: &[(&str, &[&str])] = &[
    (
        "nsod-raster",
        &[
            "ort",
            "scryer-prolog",
            "prometheus-client",
            "nsod-telemetry",
            "nsod-detect",
            "nsod-pipeline",
            "tokio",
            "axum",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-types",
        &[
            "gdal",
            "nsod-runtime",
            "nsod-nms",
            "nsod-detect",
            "nsod-symbolic",
            "nsod-kg",
            "nsod-telemetry",
            "nsod-train",
            "nsod-eval",
            "nsod-gpu",
            "nsod-pipeline",
            "ort",
            "scryer-prolog",
            "prometheus-client",
            "tokio",
            "axum",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-runtime",
        &[
            "scryer-prolog",
            "prometheus-client",
            "clap",
            "anyhow",
            "image",
        ],
    ),
    (
        "nsod-nms",
        &[
            "ort",
            "image",
            "scryer-prolog",
            "prometheus-client",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-detect",
        &[
            "gdal",
            "scryer-prolog",
            "prometheus-client",
            "nsod-telemetry",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-train",
        &[
            "ort",
            "image",
            "scryer-prolog",
            "prometheus-client",
            "nsod-telemetry",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-kg",
        &[
            "ort",
            "scryer-prolog",
            "prometheus-client",
            "nsod-telemetry",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-symbolic",
        &[
            "ort",
            "image",
            "prometheus-client",
            "nsod-telemetry",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-telemetry",
        &[
            "gdal",
            "ort",
            "image",
            "scryer-prolog",
            "nsod-detect",
            "nsod-symbolic",
            "nsod-kg",
            "nsod-pipeline",
            "nsod-runtime",
            "clap",
            "anyhow",
        ],
    ),
    (
        "nsod-eval",
        &[
            "ort",
            "image",
            "scryer-prolog",
            "prometheus-client",
            "clap",
            "anyhow",
        ],
    ),
    ("nsod-gpu", &["ort", "scryer-prolog", "clap", "anyhow"]),
    // (scryer-prolog brings tokio into nsod-symbolic and so into the pipeline; the serving stack, axum, stays out.)
    (
        "nsod-pipeline",
        &[
            "clap",
            "anyhow",
            "prometheus-client",
            "nsod-telemetry",
            "axum",
            "indicatif",
            "nsod-serve",
        ],
    ),
    // The tracker is pure data in and out: detections and frame times in, tracks out.
    (
        "nsod-track",
        &[
            "ort",
            "image",
            "scryer-prolog",
            "prometheus-client",
            "nsod-telemetry",
            "nsod-detect",
            "nsod-pipeline",
            "clap",
            "anyhow",
        ],
    ),
    // Video input is frames and timestamps: no model, no rules, no metrics, no pipeline, no CLI.
    (
        "nsod-video",
        &[
            "ort",
            "scryer-prolog",
            "prometheus-client",
            "nsod-telemetry",
            "nsod-detect",
            "nsod-pipeline",
            "clap",
            "anyhow",
        ],
    ),
    // Quantising is files and a child process: no metrics, no server, no CLI.
    (
        "nsod-quantize",
        &[
            "prometheus-client",
            "nsod-telemetry",
            "nsod-serve",
            "axum",
            "clap",
            "anyhow",
        ],
    ),
    // The server is a library front end: no CLI, no terminal, no anyhow.
    ("nsod-serve", &["clap", "anyhow", "indicatif"]),
    // The report is files on disk (it decodes images through the pipeline's decode stage, and runs nothing else):
    // no metrics, no server, no network client, no CLI.
    (
        "nsod-report",
        &[
            "prometheus-client",
            "nsod-telemetry",
            "nsod-serve",
            "axum",
            "ureq",
            "clap",
            "anyhow",
        ],
    ),
];

#[test]
fn crates_never_depend_on_what_the_code_map_forbids() {
    // This machine's platform only: cargo then needs no package that only other platforms use (a fresh machine's
    // registry has none of those, and --offline cannot fetch them).
    let rustc = Command::new("rustc").arg("-vV").output().unwrap();
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Normal (not dev, not build) dependencies per package id.
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap().to_owned();
        let normal = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        deps.insert(id, normal);
    }
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.to_owned()];
        while let Some(id) = stack.pop() {
            for d in deps.get(&id).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen.into_iter().map(|id| name_of[&id].clone()).collect()
    };
    let id_of = |name: &str| {
        name_of
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no package {name}"))
    };
    let mut violations = Vec::new();
    for (krate, forbidden) in RULES {
        let reached = reach(&id_of(krate));
        for f in *forbidden {
            if reached.contains(*f) {
                violations.push(format!("{krate} depends on {f}"));
            }
        }
    }
    // The test kit is for tests and build scripts only: never a normal dependency.
    let testkit = id_of("nsod-testkit");
    for (id, d) in &deps {
        if d.contains(&testkit) {
            violations.push(format!(
                "{} has nsod-testkit as a normal dependency",
                name_of[id]
            ));
        }
    }
    // Nothing depends on the binary.
    let core = id_of("nsod");
    for (id, d) in &deps {
        if d.contains(&core) {
            violations.push(format!("{} depends on the nsod binary crate", name_of[id]));
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The binary's modules import each other without a circle: each command stands on the shared ones (`session`,
/// `settings`, `observe`, `metrics`, `paths`, `ui`, `cli`), and none of those on a command.
#[test]
fn the_binarys_modules_form_no_import_circle() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let Some(module) = p.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if module == "main" || p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut deps = std::collections::BTreeSet::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if src.join(format!("{name}.rs")).is_file() && name != module && name != "main" {
                deps.insert(name);
            }
            rest = tail;
        }
        graph.insert(module, deps);
    }
    fn visit(
        n: &str,
        g: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!(
                "import circle in crates/core: {}",
                [&path[i..], &[n.to_owned()]].concat().join(" -> ")
            );
        }
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            visit(d, g, path);
        }
        path.pop();
    }
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new());
    }
    assert!(graph["infer"].contains("session") && !graph["session"].contains("infer"));
}
