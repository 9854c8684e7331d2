//! The documentation stays true (issue: a newcomer's first hour): the README is a front page (at most 12 KB), every
//! link in the repository's Markdown resolves inside the repository, and every flag a documented `nsod` example
//! uses exists in that command's clap definition (`nsod settings --json`). The metrics table is checked against the
//! catalog by nsod-telemetry's `docs` test.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The Markdown files of the repository (not dependencies' or build folders').
fn markdown() -> Vec<PathBuf> {
    let root = repo_root();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !name.starts_with('.')
                    && !["target", "node_modules", "third_party", "samples", "runs"]
                        .contains(&name.as_str())
                {
                    stack.push(p);
                }
            } else if name.ends_with(".md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_readme_is_a_front_page() {
    let size = std::fs::metadata(repo_root().join("README.md"))
        .unwrap()
        .len();
    assert!(
        size <= 12 * 1024,
        "README.md is {size} bytes: keep it a front page (docs/ holds the manual)"
    );
}

#[test]
fn every_link_resolves_inside_the_repository() {
    let root = repo_root().canonicalize().unwrap();
    let mut bad = Vec::new();
    for md in markdown() {
        let text = std::fs::read_to_string(&md).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            let tail = &rest[i + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            let target = &tail[..end];
            rest = &tail[end..];
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with('#')
                || target.starts_with("mailto:")
            {
                continue;
            }
            let path = target.split('#').next().unwrap_or("");
            let resolved = md.parent().unwrap().join(path);
            match resolved.canonicalize() {
                Ok(p) if p.starts_with(&root) => {}
                Ok(p) => bad.push(format!(
                    "{}: {target} leaves the repository ({})",
                    md.display(),
                    p.display()
                )),
                Err(_) => bad.push(format!("{}: {target} does not exist", md.display())),
            }
        }
        if text.contains("../shared") {
            bad.push(format!(
                "{}: names ../shared, outside the repository",
                md.display()
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn every_flag_of_a_documented_example_exists() {
    let o = nsod().args(["settings", "--json"]).output().unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let commands: BTreeMap<String, BTreeSet<String>> = listing["commands"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    let global: BTreeSet<&str> =
        ["--ort-lib", "--quiet", "--verbose", "--help", "--version"].into();
    let mut checked = 0;
    let mut bad = Vec::new();
    for md in markdown() {
        let text = std::fs::read_to_string(&md).unwrap();
        let mut in_block = false;
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with("```") {
                in_block = l.len() > 3 && (l.ends_with("sh") || l.ends_with("bash")) && !in_block;
                continue;
            }
            if !in_block {
                continue;
            }
            // The command itself: comments and a wrapped program after `--` are not nsod's.
            let cmd = l.split(" #").next().unwrap_or("");
            let cmd = cmd.split(" -- ").next().unwrap_or("");
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let Some(start) = words
                .iter()
                .position(|w| *w == "nsod" || w.ends_with("/nsod"))
            else {
                continue;
            };
            let args = &words[start + 1..];
            let mut sub = String::new();
            for w in args {
                if w.starts_with('-') {
                    break;
                }
                let candidate = if sub.is_empty() {
                    (*w).to_owned()
                } else {
                    format!("{sub} {w}")
                };
                if commands.contains_key(&candidate) {
                    sub = candidate;
                } else {
                    break;
                }
            }
            let Some(flags) = commands.get(&sub) else {
                continue;
            };
            for w in args.iter().filter(|w| w.starts_with("--")) {
                let flag = w.split('=').next().unwrap();
                checked += 1;
                if !flags.contains(flag) && !global.contains(flag) {
                    bad.push(format!("{}: `nsod {sub}` has no {flag}: {l}", md.display()));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} flags found in the documentation's examples"
    );
    assert!(bad.is_empty(), "{bad:#?}");
}
