//! Records the git commit for `nsod_build_info{git_sha}` (`unknown` outside a git checkout).
use std::process::Command;

fn main() {
    // Tests that need the shared assets run when they are there (and always under CI=true).
    nsod_testkit::emit_shared_assets_cfg();
    let sha = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=NSOD_GIT_SHA={sha}");
    for p in ["../../.git/HEAD", "../../.git/refs/heads"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
