//! A run folder is never a mix of two runs (issue: run folders that are never a mix): a rerun stopped at each write
//! phase (`NSOD_FAULT`, honoured by debug builds: the process aborts there, as `kill -9` would) leaves every file of
//! the previous complete result as it was, and one stopped after the commit leaves the new result; the same for
//! `nsod merge`; a short shard is refused before anything is replaced; a second merge is told who holds the folder;
//! a complete run leaves no stale file; `--skip-existing` resumes from an interrupted run's staging folder.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir` with its bytes (the staging folders beside it are not in it).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

fn image(path: &Path, seed: u32) {
    image::RgbImage::from_fn(200, 150, |x, y| {
        image::Rgb([
            ((x * 7 + seed * 31) % 251) as u8,
            ((y * 5 + seed) % 253) as u8,
            120,
        ])
    })
    .save(path)
    .unwrap();
}

fn run(args: &[&str], out: &Path, inputs: &Path, fault: Option<&str>) -> std::process::Output {
    let mut c = nsod();
    c.args(["infer", "--no-metrics", "-q", "--threads", "2", "--ort-lib"])
        .arg(ort_lib())
        .args(args)
        .arg("--out")
        .arg(out)
        .arg(inputs);
    if let Some(f) = fault {
        c.env("NSOD_FAULT", f);
    }
    c.output().unwrap()
}

fn aborted(o: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(6)
}

#[test]
fn a_rerun_stopped_at_any_write_phase_leaves_the_previous_result_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old_in, new_in) = (d.join("old"), d.join("new"));
    std::fs::create_dir_all(&old_in).unwrap();
    std::fs::create_dir_all(&new_in).unwrap();
    image(&old_in.join("a.png"), 1);
    image(&old_in.join("b.png"), 2);
    image(&new_in.join("a.png"), 3);
    image(&new_in.join("c.png"), 4);
    let out = d.join("out");
    let args = ["--kg", "--save-vis"];
    let o = run(&args, &out, &old_in, None);
    assert!(o.status.success(), "{}", text(&o).1);
    let previous = snapshot(&out);
    assert!(previous.contains_key(Path::new("labels/b.txt")));
    let staging = d.join(".out.nsod-staging");

    // Stopped before the commit, at each write phase: the previous result, byte for byte.
    for phase in ["labels", "vis", "records", "kg", "coco", "manifest"] {
        let o = run(&args, &out, &new_in, Some(phase));
        assert!(aborted(&o), "{phase}: {:?} {}", o.status, text(&o).1);
        assert!(text(&o).1.contains(&format!("NSOD_FAULT={phase}")));
        assert!(
            snapshot(&out) == previous,
            "stopped at {phase}: the folder is not the previous result"
        );
        assert!(
            staging.join(".nsod-staging").is_file(),
            "{phase}: the work so far is in the staging folder"
        );
    }
    // Stopped after the exchange, before the previous result is removed: the new result, whole.
    let o = run(&args, &out, &new_in, Some("commit"));
    assert!(aborted(&o), "{}", text(&o).1);
    let fresh = d.join("fresh");
    let o = run(&args, &fresh, &new_in, None);
    assert!(o.status.success());
    let committed = snapshot(&out);
    let expected = snapshot(&fresh);
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&expected),
        "the new result's files and no other"
    );
    for (f, bytes) in &expected {
        if f != Path::new("run.json") {
            assert!(
                committed[f] == *bytes,
                "{} differs from a fresh run's",
                f.display()
            );
        }
    }
    // The previous result left at the staging path (marked as nsod's) is removed by the next run, which also leaves
    // no stale file: b.png's outputs are gone.
    let o = run(&args, &out, &new_in, None);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!staging.exists() && !d.join(".out.nsod-lock").exists());
    let last = snapshot(&out);
    assert!(
        !last.contains_key(Path::new("labels/b.txt")) && !last.contains_key(Path::new("vis/b.png"))
    );
    assert!(
        last.contains_key(Path::new("labels/c.txt")) && last.contains_key(Path::new("vis/c.png"))
    );

    // A folder holding files nsod did not write is refused, not emptied.
    let mine = d.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let o = run(&[], &mine, &new_in, None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("holds files nsod did not write (notes.txt)"),
        "{}",
        text(&o).1
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn skip_existing_resumes_from_an_interrupted_runs_staging_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = d.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for (i, n) in ["a.png", "b.png", "c.png"].iter().enumerate() {
        image(&inputs.join(n), i as u32 + 10);
    }
    let out = d.join("out");
    // Stopped after the first image's records.
    let o = run(&["--save-vis"], &out, &inputs, Some("records"));
    assert!(aborted(&o));
    assert!(!out.join("run.json").exists());
    let o = run(&["--save-vis", "--skip-existing"], &out, &inputs, None);
    assert!(o.status.success(), "{}", text(&o).1);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        (m["counts"]["kept"].as_u64(), m["counts"]["images"].as_u64()),
        (Some(1), Some(3))
    );
    let fresh = d.join("fresh");
    assert!(run(&["--save-vis"], &fresh, &inputs, None).status.success());
    for f in [
        "predictions.jsonl",
        "labels/a.txt",
        "labels/c.txt",
        "vis/a.png",
        "coco_results.json",
    ] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(fresh.join(f)).unwrap(),
            "{f}: the resumed run differs from a fresh one"
        );
    }
}

fn plan(inputs: &Path, out: &Path) {
    let o = nsod()
        .args(["plan", "--shards", "2", "--model"])
        .arg(default_model())
        .arg("--out")
        .arg(out)
        .arg(inputs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
}

fn shard(out: &Path, spec: &str) {
    let o = nsod()
        .args([
            "infer",
            "--no-metrics",
            "-q",
            "--threads",
            "2",
            "--shard",
            spec,
            "--plan",
        ])
        .arg(out.join("plan.json"))
        .arg("--out")
        .arg(out)
        .arg("--ort-lib")
        .arg(ort_lib())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
}

fn merge(out: &Path, fault: Option<&str>) -> std::process::Output {
    let mut c = nsod();
    c.args(["merge", "--ort-lib"]).arg(ort_lib()).arg(out);
    if let Some(f) = fault {
        c.env("NSOD_FAULT", f);
    }
    c.output().unwrap()
}

#[test]
fn a_merge_is_committed_whole_checks_its_shards_and_takes_the_folder_lock() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old_in, new_in) = (d.join("old"), d.join("new"));
    std::fs::create_dir_all(&old_in).unwrap();
    std::fs::create_dir_all(&new_in).unwrap();
    image(&old_in.join("x.png"), 5);
    for (i, n) in ["a.png", "b.png", "c.png"].iter().enumerate() {
        image(&new_in.join(n), i as u32 + 20);
    }
    let out = d.join("out");
    // A complete result of other images, then a sharded run of new ones into the same folder.
    let o = run(&[], &out, &old_in, None);
    assert!(o.status.success(), "{}", text(&o).1);
    plan(&new_in, &out);
    shard(&out, "0/2");
    shard(&out, "1/2");
    let previous = snapshot(&out);
    for phase in ["labels", "records", "coco", "manifest"] {
        let o = merge(&out, Some(phase));
        assert!(aborted(&o), "{phase}: {}", text(&o).1);
        assert!(
            snapshot(&out) == previous,
            "merge stopped at {phase}: the folder changed"
        );
    }
    // A short shard (a record missing that its shard.json counts) is refused before anything is replaced.
    let preds = out.join("shards/0-of-2/predictions.jsonl");
    let full = std::fs::read_to_string(&preds).unwrap();
    let first_line = full.lines().next().unwrap().to_owned() + "\n";
    std::fs::write(&preds, &first_line).unwrap();
    let o = merge(&out, None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        error_lines(&text(&o).1),
        [format!(
            "error: {}: holds 1 records, but the shard's shard.json counts 2 images: the shard is incomplete or damaged (rerun it)",
            preds.display()
        )]
    );
    std::fs::write(&preds, &full).unwrap();
    let mut after = snapshot(&out);
    after.remove(Path::new("shards/0-of-2/predictions.jsonl"));
    let mut before = previous.clone();
    before.remove(Path::new("shards/0-of-2/predictions.jsonl"));
    assert!(after == before, "a refused merge changed the folder");
    // Another live process holds the folder: the merge says who, and waits for nothing.
    let lock = d.join(".out.nsod-lock");
    std::fs::create_dir_all(&lock).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        lock.join("holder"),
        format!("{} {}\n", host.trim(), std::process::id()),
    )
    .unwrap();
    let o = merge(&out, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert_eq!(
        error_lines(&text(&o).1),
        [format!(
            "error: {}: in use by nsod on {} (pid {}) (its lock: {}; remove it only if that process is gone)",
            out.display(),
            host.trim(),
            std::process::id(),
            lock.display()
        )]
    );
    std::fs::remove_dir_all(&lock).unwrap();
    // Committed whole: the new images only, the plan and the shards kept.
    let o = merge(&out, None);
    assert!(o.status.success(), "{}", text(&o).1);
    let done = snapshot(&out);
    assert!(
        !done.contains_key(Path::new("labels/x.txt")),
        "the other run's files are gone"
    );
    for f in [
        "labels/a.txt",
        "labels/c.txt",
        "plan.json",
        "shards/1-of-2/_SUCCESS",
        "run.json",
    ] {
        assert!(done.contains_key(Path::new(f)), "{f}");
    }
    let m: serde_json::Value = serde_json::from_slice(&done[Path::new("run.json")]).unwrap();
    assert_eq!(
        (m["complete"].as_bool(), m["sharded"]["shards"].as_u64()),
        (Some(true), Some(2))
    );
    // Two merges at once: the first holds the folder (kept at a write phase), the second is told who. The first,
    // killed there, leaves its lock; the next merge sees its holder gone, takes the lock over and commits.
    let mut first = {
        let mut c = nsod();
        c.args(["merge", "--ort-lib"]).arg(ort_lib()).arg(&out);
        c.env("NSOD_FAULT", "records:hold");
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        KillOnDrop(c.spawn().unwrap())
    };
    {
        use std::io::BufRead;
        let stderr = first.stderr.take().unwrap();
        let held = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("NSOD_FAULT=records:hold"));
        assert!(held);
    }
    let second = merge(&out, None);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second).1);
    assert!(
        text(&second).1.contains(&format!(
            "in use by nsod on {} (pid {})",
            host.trim(),
            first.id()
        )),
        "{}",
        text(&second).1
    );
    let _ = first.kill();
    let _ = first.wait();
    assert!(lock.exists(), "a killed merge leaves its lock");
    assert!(snapshot(&out) == done, "and the folder as it was");
    let o = merge(&out, None);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!lock.exists());
}
