//! Records the git commit for `nsod_build_info{git_sha}` (`unknown` outside a git checkout).
use std::process::Command;

fn main() {
    // Tests that need the shared assets run when they are there (and always under CI=true).
    nsod_testkit::emit_shared_assets_cfg();
    // A container build has no .git: deploy/Dockerfile passes the commit in NSOD_GIT_SHA.
    println!("cargo:rerun-if-env-changed=NSOD_GIT_SHA");
    let given = std::env::var("NSOD_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty() && s != "unknown");
    let sha = given.unwrap_or_else(git_sha);
    println!("cargo:rustc-env=NSOD_GIT_SHA={sha}");
    for p in ["../../.git/HEAD", "../../.git/refs/heads"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

fn git_sha() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
