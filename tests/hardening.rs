//! Every command on hostile inputs under a 2 GB address-space limit (`prlimit --as`, as a container's memory limit
//! would be): each ends with one clear error naming the file and the cause, and an exit code, never an allocation
//! abort or a signal. The inputs are the cases of the hardening issue: sizes and counts that ask for more memory
//! than the input justifies, records without end, rule bases that allocate or loop.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// The address-space limit every command here runs under.
const LIMIT: &str = "--as=2000000000";

/// `nsod ARGS` under the limit.
fn limited(args: &[&std::ffi::OsStr]) -> Output {
    let nsod = nsod();
    let mut c = Command::new("prlimit");
    c.arg(LIMIT).arg(nsod.get_program()).args(args);
    for (k, v) in nsod.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.output().expect("prlimit (util-linux) runs")
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

/// Exit code `code` (not a signal, not an abort) and the one error line `expected`.
fn refused(o: &Output, code: i32, expected: &str) {
    let (_, err) = text(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "status {:?} (a signal is an abort):\n{err}",
        o.status
    );
    assert!(
        !err.contains("memory allocation of"),
        "an allocation abort:\n{err}"
    );
    assert_eq!(error_lines(&err), vec![expected], "{err}");
}

fn p(path: &Path) -> &std::ffi::OsStr {
    path.as_os_str()
}

#[test]
fn a_slice_size_that_makes_millions_of_slices_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("grey.png");
    image::RgbImage::from_pixel(1024, 1024, image::Rgb([90, 90, 90]))
        .save(&img)
        .unwrap();
    let out = dir.path().join("out");
    let lib = ort_lib();
    let model = default_model();
    let o = limited(args![
        "infer",
        "--no-metrics",
        "--ort-lib",
        p(&lib),
        "--model",
        p(&model),
        "--slice",
        "32",
        "--overlap",
        "0.97",
        p(&img),
        "--out",
        p(&out),
    ]);
    refused(
        &o,
        1,
        &format!(
            "error: {}: inference failed: 1024 x 1024 px in slices of 32 px with overlap 0.97 makes 986049 slices, \
             above the maximum of 250000 per image: use larger slices (--slice)",
            img.display()
        ),
    );
}

#[test]
fn a_trillion_pixel_raster_past_the_size_limit_is_stopped_by_the_slice_limit() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([90, 90, 90]))
        .save(&small)
        .unwrap();
    let vrt = dir.path().join("huge.vrt");
    std::fs::write(
        &vrt,
        format!(
            r#"<VRTDataset rasterXSize="1000000" rasterYSize="1000000">
  <VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename>{}</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>
</VRTDataset>"#,
            small.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let lib = ort_lib();
    let model = default_model();
    // The pixel limit raised past the raster: the slice count is what stops it, before any pixel is read.
    let o = limited(args![
        "infer",
        "--no-metrics",
        "--ort-lib",
        p(&lib),
        "--model",
        p(&model),
        "--max-raster-pixels",
        "10000000000000",
        p(&vrt),
        "--out",
        p(&out),
    ]);
    refused(
        &o,
        1,
        &format!(
            "error: {}: inference failed: 1000000 x 1000000 px in slices of 1024 px with overlap 0.2 makes 1488400 \
             slices, above the maximum of 250000 per image: use larger slices (--slice)",
            vrt.display()
        ),
    );
}

#[test]
fn coco_ground_truth_with_thousands_of_categories_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cats: Vec<_> = (0..5000)
        .map(|i: u64| serde_json::json!({"id": i * 100_000 + 1, "name": format!("c{i}")}))
        .collect();
    let gt = dir.path().join("gt.json");
    std::fs::write(
        &gt,
        serde_json::json!({
            "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100}],
            "annotations": [],
            "categories": cats,
        })
        .to_string(),
    )
    .unwrap();
    let pred = dir.path().join("results.json");
    std::fs::write(&pred, "[]").unwrap();
    let o = limited(args!["eval", "--gt", p(&gt), "--pred", p(&pred)]);
    refused(
        &o,
        1,
        &format!(
            "error: {}: 5000 categories, above the maximum of 4096 nsod eval accumulates",
            gt.display()
        ),
    );
}

#[test]
fn a_predictions_record_without_end_is_refused_by_its_line_and_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let pred = dir.path().join("predictions.jsonl");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&pred).unwrap());
        writeln!(
            f,
            r#"{{"image":"a.png","width":100,"height":100,"detections":[]}}"#
        )
        .unwrap();
        // 300 MiB without a newline: more than one record may take (256 MiB), under a 2 GB limit.
        let chunk = vec![b' '; 1 << 20];
        f.write_all(b"{\"image\":\"b.png\",\"width\":100,\"height\":100,\"detections\":[")
            .unwrap();
        for _ in 0..300 {
            f.write_all(&chunk).unwrap();
        }
    }
    let out = dir.path().join("kg");
    let o = limited(args!["kg", "--pred", p(&pred), "--out", p(&out)]);
    refused(
        &o,
        1,
        &format!(
            "error: {}:2: longer than 256 MiB, the most one image's record may take",
            pred.display()
        ),
    );
}

#[test]
fn a_record_nested_a_million_deep_is_read_without_overflowing_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let pred = dir.path().join("predictions.jsonl");
    // A million levels in a field the reader skips (iteratively), then a million where a detection should be.
    let deep = |field: &str| {
        format!(
            "{{\"image\":\"a.png\",\"width\":1,\"height\":1,\"detections\":[],\"{field}\":{}{}}}\n",
            "[".repeat(1_000_000),
            "]".repeat(1_000_000)
        )
    };
    std::fs::write(
        &pred,
        deep("note") + &deep("detections").replacen("\"detections\":[],", "", 1),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = limited(args!["symbolic", "--pred", p(&pred), "--out", p(&out)]);
    refused(
        &o,
        1,
        &format!(
            "error: {}:2: invalid type: sequence, expected u32 at line 1 column 53",
            pred.display()
        ),
    );
    // The first record went through.
    let written = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
}

#[test]
fn a_rule_base_that_allocates_without_end_is_stopped_by_the_worker_limit() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("greedy.pl");
    std::fs::write(
        &rules,
        "% A decision table that builds a list of 400 million cells first.\n\
         confidence_modifier(plane, airport, 1.2) :- length(L, 400000000), maplist(=(x), L).\n",
    )
    .unwrap();
    let o = limited(args!["rules", "check", p(&rules)]);
    // The worker's own address-space limit (1 GiB, under the 2 GB of nsod) ends the query; nsod reports it.
    refused(
        &o,
        2,
        &format!(
            "error: rules {}: confidence_modifier/3 ran out of memory (the rules worker's limit is 1024 MiB)",
            rules.display()
        ),
    );
}

#[test]
fn a_results_csv_line_without_end_is_dropped_and_counted_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("train");
    std::fs::create_dir_all(&run).unwrap();
    let prom = dir.path().join("train.prom");
    // The "training" writes a header, then 200 MB without a newline, then one good row.
    let script = format!(
        "printf 'epoch,train/box_loss\\n' > {csv}; head -c 200000000 /dev/zero | tr '\\0' x >> {csv}; \
         printf '\\n1,0.5\\n' >> {csv}; sleep 1",
        csv = run.join("results.csv").display()
    );
    let o = limited(args![
        "train-monitor",
        p(&run),
        "--no-metrics",
        "--poll-interval",
        "50ms",
        "--metrics-textfile",
        p(&prom),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let metrics = std::fs::read_to_string(&prom).unwrap();
    let sample = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(
        sample("nsod_errors_total{stage=\"train-monitor\",error_type=\"csv\"}"),
        1.0
    );
    assert_eq!(sample("nsod_training_epoch{"), 1.0);
}
