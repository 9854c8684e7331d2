//! Default locations of the model and the rule base.
//!
//! Each is looked up in an environment variable, then in the source tree the binary was built from (where
//! they are committed), then next to the executable.

use std::path::{Path, PathBuf};

/// File name of the default DOTA model, committed in `models/` (models/README.md).
pub const DEFAULT_MODEL_FILE: &str = "yolov8n-obb.onnx";
/// File name of the default rule base.
pub const DEFAULT_RULES_FILE: &str = "dota.pl";

fn source_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn candidates(env_var: &str, folder: &str, file: &str) -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(v) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
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

/// The default model (`$NSOD_MODEL`, `models/yolov8n-obb.onnx`) and whether it exists.
pub fn default_model() -> (PathBuf, bool) {
    pick(candidates("NSOD_MODEL", "models", DEFAULT_MODEL_FILE))
}

/// The default rule base (`$NSOD_RULES`, `rules/dota.pl`) and whether it exists.
pub fn default_rules() -> (PathBuf, bool) {
    pick(candidates("NSOD_RULES", "rules", DEFAULT_RULES_FILE))
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
