//! Round trips and bad-line errors of every file format.

use nsod_types::formats::jsonl::{ImagePredictions, JsonlReader, JsonlWriter};
use nsod_types::formats::{dota, jsonl, yolo, yolo_obb};
use nsod_types::{BBox, ClassNames, Detection, GroundTruth, ImageSize, OrientedBox};
use std::path::Path;

const SIZE: ImageSize = ImageSize::new(1054, 1529);

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

/// Normalised coordinates agree to 1e-6 (pixels to 1e-6 x the image size).
fn same_bbox(a: &BBox, b: &BBox) -> bool {
    let (tx, ty) = (1e-6 * SIZE.width as f32, 1e-6 * SIZE.height as f32);
    close(a.x1, b.x1, tx) && close(a.x2, b.x2, tx) && close(a.y1, b.y1, ty) && close(a.y2, b.y2, ty)
}

fn same_obb(a: &OrientedBox, b: &OrientedBox, tol: f32) -> bool {
    let (a, b) = (a.regularized(), b.regularized());
    let da = (a.angle - b.angle).abs();
    close(a.cx, b.cx, tol)
        && close(a.cy, b.cy, tol)
        && close(a.w, b.w, tol)
        && close(a.h, b.h, tol)
        && (da < 1e-5 || (da - std::f32::consts::PI).abs() < 1e-5)
}

fn sample_detections() -> Vec<Detection> {
    let names = ClassNames::dota_v1();
    vec![
        Detection::new(
            9,
            names.name_or_id(9),
            0.87654,
            BBox::new(10.5, 20.25, 100.125, 60.75),
        ),
        Detection::new(
            0,
            names.name_or_id(0),
            0.25,
            BBox::new(0.0, 0.0, 1054.0, 1529.0),
        ),
        Detection::new(
            14,
            names.name_or_id(14),
            1.0,
            BBox::new(333.3, 444.4, 345.6, 456.7),
        ),
    ]
}

fn sample_oriented() -> Vec<Detection> {
    let names = ClassNames::dota_v1();
    vec![
        Detection::oriented(
            9,
            names.name_or_id(9),
            0.912,
            OrientedBox::new(500.5, 700.25, 40.0, 12.0, 0.4),
        ),
        Detection::oriented(
            1,
            names.name_or_id(1),
            0.3,
            OrientedBox::new(80.0, 90.0, 30.0, 10.0, 2.5),
        ),
        Detection::oriented(
            10,
            names.name_or_id(10),
            0.5,
            OrientedBox::new(1000.0, 1400.0, 8.0, 20.0, 0.0),
        ),
    ]
}

#[test]
fn yolo_predictions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.txt");
    let dets = sample_detections();
    yolo::write_predictions(&p, &dets, SIZE).unwrap();
    let back = yolo::read_predictions(&p, SIZE, &ClassNames::dota_v1()).unwrap();
    assert_eq!(back.len(), dets.len());
    for (a, b) in dets.iter().zip(&back) {
        assert_eq!((a.class_id, &a.class_name), (b.class_id, &b.class_name));
        assert!(close(a.score, b.score, 1e-6));
        assert!(same_bbox(&a.bbox, &b.bbox), "{:?} vs {:?}", a.bbox, b.bbox);
    }
}

#[test]
fn yolo_prediction_line_is_normalised_xywh() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.txt");
    let d = Detection::new(
        3,
        "baseball diamond",
        0.5,
        BBox::new(100.0, 200.0, 300.0, 400.0),
    );
    yolo::write_predictions(&p, &[d], ImageSize::new(1000, 800)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "3 0.2 0.375 0.2 0.25 0.5\n"
    );
}

#[test]
fn yolo_labels_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("labels.txt");
    let labels: Vec<GroundTruth> = sample_detections()
        .into_iter()
        .map(|d| GroundTruth {
            class_id: d.class_id,
            class_name: d.class_name,
            bbox: d.bbox,
            obb: None,
            difficult: false,
            polygon: None,
        })
        .collect();
    yolo::write_labels(&p, &labels, SIZE).unwrap();
    let back = yolo::read_labels(&p, SIZE, &ClassNames::dota_v1()).unwrap();
    assert_eq!(back.len(), labels.len());
    for (a, b) in labels.iter().zip(&back) {
        assert_eq!(a.class_id, b.class_id);
        assert!(same_bbox(&a.bbox, &b.bbox));
    }
}

#[test]
fn yolo_obb_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("obb.txt");
    let dets = sample_oriented();
    yolo_obb::write_predictions(&p, &dets, SIZE).unwrap();
    let back = yolo_obb::read_predictions(&p, SIZE, &ClassNames::dota_v1()).unwrap();
    assert_eq!(back.len(), dets.len());
    for (a, b) in dets.iter().zip(&back) {
        assert_eq!(a.class_id, b.class_id);
        assert!(close(a.score, b.score, 1e-6));
        assert!(
            same_obb(&a.obb.unwrap(), &b.obb.unwrap(), 2e-3),
            "{:?} vs {:?}",
            a.obb,
            b.obb
        );
    }
    // Labels: the same corners without the confidence column.
    let labels: Vec<GroundTruth> = dets
        .iter()
        .map(|d| GroundTruth {
            class_id: d.class_id,
            class_name: d.class_name.clone(),
            bbox: d.bbox,
            obb: d.obb,
            difficult: false,
            polygon: None,
        })
        .collect();
    yolo_obb::write_labels(&p, &labels, SIZE).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.lines().all(|l| l.split_whitespace().count() == 9),
        "{text}"
    );
    let back = yolo_obb::read_labels(&p, SIZE, &ClassNames::dota_v1()).unwrap();
    for (a, b) in labels.iter().zip(&back) {
        assert!(same_obb(&a.obb.unwrap(), &b.obb.unwrap(), 2e-3));
    }
}

#[test]
fn dota_round_trip_with_header_and_difficult() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("P0006.txt");
    let names = ClassNames::dota_v1();
    let labels = vec![
        GroundTruth {
            class_id: 9,
            class_name: "large vehicle".into(),
            bbox: BBox::default(),
            obb: Some(OrientedBox::new(500.5, 700.25, 40.0, 12.0, 0.4)),
            difficult: false,
            polygon: None,
        },
        GroundTruth {
            class_id: 13,
            class_name: "soccer ball field".into(),
            bbox: BBox::default(),
            obb: Some(OrientedBox::new(80.0, 90.0, 60.0, 30.0, 0.0)),
            difficult: true,
            polygon: None,
        },
    ];
    dota::write_labels(&p, &labels).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .ends_with(" soccer-ball-field 1"),
        "{text}"
    );
    std::fs::write(&p, format!("imagesource:GoogleEarth\ngsd:0.146\n{text}")).unwrap();
    let back = dota::read_labels(&p, &names).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!((back[0].class_id, back[0].difficult), (9, false));
    assert_eq!(
        (
            back[1].class_id,
            back[1].class_name.as_str(),
            back[1].difficult
        ),
        (13, "soccer ball field", true)
    );
    for (a, b) in labels.iter().zip(&back) {
        assert!(same_obb(&a.obb.unwrap(), &b.obb.unwrap(), 1e-4));
        assert_eq!(b.bbox, b.obb.unwrap().aabb());
    }
}

#[test]
fn jsonl_round_trip_and_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("predictions.jsonl");
    let records = vec![
        ImagePredictions {
            image: "a.png".into(),
            width: 1054,
            height: 1529,
            detections: sample_oriented(),
            geo: None,
        },
        ImagePredictions {
            image: "sub/b.jpg".into(),
            width: 640,
            height: 480,
            detections: sample_detections(),
            geo: None,
        },
        ImagePredictions {
            image: "empty.png".into(),
            width: 10,
            height: 10,
            detections: vec![],
            geo: None,
        },
    ];
    let mut w = JsonlWriter::create(&p).unwrap();
    w.write(&records[0]).unwrap();
    // Before finish, the finished records are on disk in the .partial file and the final name does not exist.
    let partial = dir.path().join("predictions.jsonl.partial");
    assert_eq!(jsonl::read_all(&partial).unwrap(), records[..1]);
    assert!(!p.exists());
    w.write(&records[1]).unwrap();
    w.write(&records[2]).unwrap();
    assert_eq!(w.records(), 3);
    assert_eq!(w.finish().unwrap(), p);
    assert!(!partial.exists());
    let back = jsonl::read_all(&p).unwrap();
    assert_eq!(back, records); // exact: f32 values survive JSON unchanged
    // Oriented detections carry their corners as `polygon`.
    let first_line = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&first_line).unwrap();
    let poly: Vec<f64> = v["detections"][0]["polygon"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let corners = records[0].detections[0].obb.unwrap().corners();
    assert_eq!(poly.len(), 8);
    assert!((poly[0] - corners[0].x).abs() < 1e-3 && (poly[7] - corners[3].y).abs() < 1e-3);
    assert!(
        std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .find("polygon")
            .is_none()
    );
}

fn expect_line_error(
    result: Result<impl std::fmt::Debug, nsod_types::FormatError>,
    file: &Path,
    line: usize,
    needle: &str,
) {
    let msg = result.expect_err("bad input must fail").to_string();
    let prefix = format!("{}:{line}: ", file.display());
    assert!(
        msg.starts_with(&prefix),
        "{msg:?} should start with {prefix:?}"
    );
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
}

#[test]
fn bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let names = ClassNames::dota_v1();
    let f = dir.path().join("bad.txt");
    let write = |s: &str| std::fs::write(&f, s).unwrap();

    write("0 0.5 0.5 0.1 0.1 0.9\n\n# comment\n1 0.5 0.5 0.1\n");
    expect_line_error(
        yolo::read_predictions(&f, SIZE, &names),
        &f,
        4,
        "expected 6 columns",
    );
    write("0 0.5 0.5 0.1 0.1 0.9\n0 0.5 abc 0.1 0.1 0.9\n");
    expect_line_error(
        yolo::read_predictions(&f, SIZE, &names),
        &f,
        2,
        "column 3 (y centre) is not a number: \"abc\"",
    );
    write("0 0.5 0.5 0.1 0.1 1.5\n");
    expect_line_error(
        yolo::read_predictions(&f, SIZE, &names),
        &f,
        1,
        "confidence) is outside [0, 1]",
    );
    write("0 0.5 0.5 nan 0.1 0.5\n");
    expect_line_error(
        yolo::read_predictions(&f, SIZE, &names),
        &f,
        1,
        "not a finite number",
    );
    write("0 0.5 0.5 0.1 0.1\n-1 0.5 0.5 0.1 0.1\n");
    expect_line_error(
        yolo::read_labels(&f, SIZE, &names),
        &f,
        2,
        "class id) is not a non-negative integer",
    );
    write("15 0.5 0.5 0.1 0.1\n");
    expect_line_error(
        yolo::read_labels(&f, SIZE, &names),
        &f,
        1,
        "class id 15 is not one of the 15 known classes",
    );
    write("0 0.5 0.5 -0.1 0.1\n");
    expect_line_error(
        yolo::read_labels(&f, SIZE, &names),
        &f,
        1,
        "negative box size",
    );
    write("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n");
    expect_line_error(
        yolo_obb::read_predictions(&f, SIZE, &names),
        &f,
        1,
        "expected 10 columns",
    );
    write("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2 0.5\n");
    expect_line_error(
        yolo_obb::read_labels(&f, SIZE, &names),
        &f,
        1,
        "expected 9 columns",
    );
    write("imagesource:x\n1 1 5 1 5 5 1 5 container-crane 0\n");
    expect_line_error(
        dota::read_labels(&f, &names),
        &f,
        2,
        "unknown class \"container-crane\"",
    );
    write("1 1 5 1 5 5 1 5 plane 2\n");
    expect_line_error(
        dota::read_labels(&f, &names),
        &f,
        1,
        "difficult) must be 0 or 1",
    );
    write(
        "{\"image\":\"a\",\"width\":1,\"height\":1,\"detections\":[]}\n{\"image\":\"b\",\"width\":1}\n",
    );
    let mut r = JsonlReader::open(&f).unwrap();
    assert!(r.next().unwrap().is_ok());
    expect_line_error(r.next().unwrap(), &f, 2, "missing field `height`");
    write(
        "{\"image\":\"a\",\"width\":1,\"height\":1,\"detections\":[{\"class_id\":0,\"class_name\":\"p\",\"score\":2,\"bbox\":[0,0,1,1]}]}\n",
    );
    expect_line_error(jsonl::read_all(&f), &f, 1, "score 2 is outside [0, 1]");
    write("not json\n");
    expect_line_error(jsonl::read_all(&f), &f, 1, "expected ident");
}

#[test]
fn missing_file_names_the_file() {
    let p = Path::new("/nonexistent/dir/labels.txt");
    let msg = yolo::read_labels(p, SIZE, &ClassNames::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "/nonexistent/dir/labels.txt: No such file or directory (os error 2)"
    );
    let msg = JsonlReader::open(Path::new("/nonexistent/p.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("/nonexistent/p.jsonl: "), "{msg}");
}

#[test]
fn empty_names_table_uses_ids() {
    let d = yolo::parse_predictions(
        "7 0.5 0.5 0.2 0.2 0.9\n",
        Path::new("x"),
        ImageSize::new(100, 100),
        &ClassNames::default(),
    )
    .unwrap();
    assert_eq!(d[0].class_name, "7");
    assert_eq!(d[0].bbox, BBox::new(40.0, 40.0, 60.0, 60.0));
}
