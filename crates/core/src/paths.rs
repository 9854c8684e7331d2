//! Default locations of the model and the rule base.
//!
//! The rule base is looked up in `$NSOD_RULES`, then in the source tree the binary was built from (where it is
//! committed), then next to the executable; the model likewise, but `$NSOD_MODEL` is a setting's environment
//! default (nsod_pipeline::settings::ENVIRONMENT) and is applied before this is asked.

use std::path::{Path, PathBuf};

/// File name of the default DOTA model, committed in `models/` (models/README.md).
pub const DEFAULT_MODEL_FILE: &str = "yolov8n-obb.onnx";
/// File name of the default rule base.
pub const DEFAULT_RULES_FILE: &str = "dota.pl";

fn source_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn candidates(env_var: Option<&str>, folder: &str, file: &str) -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(v) = env_var.and_then(std::env::var_os).filter(|v| !v.is_empty()) {
        c.push(PathBuf::from(v));
    }
    c.push(source_tree().join(folder).join(file));
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        c.push(dir.join(folder).join(file));
    }
    c
}

/// The first existing candidate, or the first candidate (to name in a "missing" message).
fn pick(c: Vec<PathBuf>) -> (PathBuf, bool) {
    match c.iter().find(|p| p.is_file()) {
        Some(p) => (normalize(p), true),
        None => (normalize(&c[0]), false),
    }
}

/// `a/b/../c` without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in p.components() {
        match comp {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The default model (`models/yolov8n-obb.onnx`) and whether it exists.
pub fn default_model() -> (PathBuf, bool) {
    pick(candidates(None, "models", DEFAULT_MODEL_FILE))
}

/// The default rule base (`$NSOD_RULES`, `rules/dota.pl`) and whether it exists: the rule base of models with DOTA's
/// classes when no `rules.file` is set.
pub fn default_rules() -> (PathBuf, bool) {
    pick(candidates(Some("NSOD_RULES"), "rules", DEFAULT_RULES_FILE))
}

/// `scripts/quantize.py`, the quantiser nsod drives (in the source tree, else next to the executable).
pub fn quantize_script() -> PathBuf {
    pick(candidates(None, "scripts", "quantize.py")).0
}

/// The Python of the quantiser's virtualenv, `.venv-quantize/` (made by `scripts/setup.sh --quantize`).
pub fn quantize_python() -> PathBuf {
    normalize(&source_tree().join(".venv-quantize/bin/python3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_parent_components() {
        assert_eq!(
            normalize(Path::new("/a/b/../../c/d")),
            PathBuf::from("/c/d")
        );
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }
}
