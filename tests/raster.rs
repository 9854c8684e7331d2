//! Large rasters and geospatial outputs, end to end with the real binary and GDAL's own tools as the peer:
//! a 12000 x 12000 tiled deflate GeoTIFF (EPSG:32633) mirror-tiled from a sample aerial image, windowed reads equal to the
//! in-memory path, every vertex against `gdaltransform`, the GeoPackage through `ogrinfo`, the GeoJSON through
//! `geojson-validator`, 16-bit multi-band input, GSD against pyproj's geodesics, and absurd declared sizes.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn run(c: &mut Command) -> std::process::Output {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn gdal(tool_name: &str, args: &[&str]) -> std::process::Output {
    run(tool(tool_name).args(args))
}

fn record(out: &Path, file: &str) -> Value {
    let text = std::fs::read_to_string(out.join(file)).unwrap();
    let mut lines = text.lines();
    let r = serde_json::from_str(lines.next().expect("one record")).unwrap();
    assert!(lines.next().is_none(), "one image, one record");
    r
}

/// `nsod infer` of one raster, quiet, no metrics server.
fn infer_raster(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = infer(&ort_lib(), input, out);
    c.args(["--no-metrics", "-q"]).args(extra);
    run(&mut c)
}

/// Detections as comparable tuples: class, score, oriented box.
fn dets(r: &Value) -> Vec<(String, f64, Vec<f64>)> {
    r["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["class_name"].as_str().unwrap().to_owned(),
                d["score"].as_f64().unwrap(),
                d["obb"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

fn assert_same_detections(a: &Value, b: &Value, what: &str) {
    let (a, b) = (dets(a), dets(b));
    assert!(!a.is_empty(), "{what}: no detections to compare");
    assert_eq!(a.len(), b.len(), "{what}: detection counts");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.0, y.0, "{what}: class of detection {i}");
        assert!(
            (x.1 - y.1).abs() <= 1e-5,
            "{what}: score of {i}: {} vs {}",
            x.1,
            y.1
        );
        for (u, v) in x.2.iter().zip(&y.2) {
            assert!(
                (u - v).abs() <= 1e-3,
                "{what}: box of {i}: {:?} vs {:?}",
                x.2,
                y.2
            );
        }
    }
}

/// Every vertex of every footprint against `gdaltransform -t_srs EPSG:4326` on the same pixel.
fn check_vertices_with_gdaltransform(raster: &Path, r: &Value) -> usize {
    let footprints = r["geo"]["footprints"].as_array().unwrap();
    let mut input = String::new();
    let mut ours = Vec::new();
    for f in footprints {
        for (p, ll) in f["pixel"]
            .as_array()
            .unwrap()
            .iter()
            .zip(f["lonlat"].as_array().unwrap())
        {
            input.push_str(&format!(
                "{:?} {:?}\n",
                p[0].as_f64().unwrap(),
                p[1].as_f64().unwrap()
            ));
            ours.push((ll[0].as_f64().unwrap(), ll[1].as_f64().unwrap()));
        }
    }
    let mut child = tool("gdaltransform")
        .args(["-t_srs", "EPSG:4326", "-output_xy"])
        .arg(raster)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Write on another thread: gdaltransform answers line by line and would block on a full stdout pipe.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(input.as_bytes()).unwrap();
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(o.status.success());
    let theirs: Vec<(f64, f64)> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<f64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (v[0], v[1])
        })
        .collect();
    assert_eq!(theirs.len(), ours.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (a.0 - b.0).abs() <= 1e-7 && (a.1 - b.1).abs() <= 1e-7,
            "vertex {i}: nsod {a:?}, gdaltransform {b:?}"
        );
    }
    ours.len()
}

#[test]
fn a_12000_pixel_geotiff_is_read_window_by_window_and_lands_on_the_map() {
    // The 2299x2472 sample mirrored into a 12000x12000 mosaic.
    let src = sample("neon_yell_2019_10cm.png");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = d.join("mosaic.tif");
    run(Command::new(repo_root().join("scripts/mirror-raster.sh"))
        .arg(&src)
        .arg("12000")
        .arg(&big));
    let info = String::from_utf8(gdal("gdalinfo", &[big.to_str().unwrap()]).stdout).unwrap();
    assert!(
        info.contains("Size is 12000, 12000") && info.contains("Block=256x256"),
        "{info}"
    );
    assert!(
        info.contains("COMPRESSION=DEFLATE") && info.contains("ID[\"EPSG\",32633]"),
        "{info}"
    );

    // The whole raster, window by window (144 megapixels, above the 64-megapixel default).
    let out = d.join("big");
    infer_raster(&big, &out, &[]);
    let rec = record(&out, "predictions.jsonl");
    assert_eq!(
        (rec["width"].as_u64(), rec["height"].as_u64()),
        (Some(12000), Some(12000))
    );
    let n = rec["detections"].as_array().unwrap().len();
    // 584 with the default model and settings: about 25 mirrored copies of the sample's 21, and those on the seams.
    assert!(
        n > 400,
        "the mosaic gives hundreds of detections, found {n}"
    );
    assert_eq!(rec["geo"]["crs"], "EPSG:32633");
    assert_eq!(
        rec["geo"]["gsd"].as_f64(),
        Some(0.5),
        "projected GSD is the pixel size"
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let rss = manifest["peak_rss_bytes"].as_u64().unwrap();
    eprintln!(
        "12000 x 12000 GeoTIFF: {n} detections, peak RSS {:.0} MiB",
        rss as f64 / 1048576.0
    );
    assert!(
        rss < 2 << 30,
        "memory is bounded by the slices in flight, not the 432 MB raster"
    );
    let vertices = check_vertices_with_gdaltransform(&big, &rec);
    assert_eq!(vertices, 4 * n);

    // The GeoPackage: the right CRS, every detection, the fields, a spatial index.
    let gpkg = out.join("detections.gpkg");
    let info =
        String::from_utf8(gdal("ogrinfo", &["-so", "-al", gpkg.to_str().unwrap()]).stdout).unwrap();
    assert!(info.contains("Layer name: detections"), "{info}");
    assert!(info.contains(&format!("Feature Count: {n}")), "{info}");
    assert!(info.contains("ID[\"EPSG\",32633]"), "{info}");
    for field in [
        "image: String",
        "class: String",
        "class_id: Integer",
        "score: Real",
        "raw_score: Real",
        "rules: String",
        "gsd: Real",
        "crs: String",
    ] {
        assert!(info.contains(field), "{field} in\n{info}");
    }
    let index = String::from_utf8(
        gdal(
            "ogrinfo",
            &[
                gpkg.to_str().unwrap(),
                "-sql",
                "SELECT HasSpatialIndex('detections', 'geom')",
            ],
        )
        .stdout,
    )
    .unwrap();
    assert!(index.contains("= 1"), "{index}");

    // The GeoJSON: RFC 7946 by geojson-validator, and by hand (order, closed counter-clockwise rings, values).
    let py = python(&["geojson_validator", "shapely"]);
    let check = r#"
import json, sys, geojson_validator
from shapely.geometry import LinearRing
fc = json.load(open(sys.argv[1]))
r = geojson_validator.validate_structure(fc)
assert not r, r
g = geojson_validator.validate_geometries(fc)
assert not g["invalid"], sorted(g["invalid"])
# 7 decimals (1 cm) is deliberate: RFC 7946 only recommends 6 (11 cm), and small vehicles are 2 m long.
assert set(g["problematic"]) <= {"excessive_coordinate_precision"}, sorted(g["problematic"])
feats = fc["features"]
for f in feats:
    ring = f["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert LinearRing(ring).is_ccw
    assert all(14 < x < 16 and 44 < y < 46 for x, y in ring), ring
    p = f["properties"]
    assert p["crs"] == "EPSG:32633" and p["gsd"] == 0.5 and p["image"] == "mosaic.tif"
    assert 0 <= p["score"] <= 1 and 0 <= p["raw_score"] <= 1
print(len(feats))
"#;
    let o = run(Command::new(&py)
        .args(["-c", check])
        .arg(out.join("detections.geojson")));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), n.to_string());
    // ... and its coordinates are the predictions' within 1e-7 degrees (7 decimals, about 1 cm).
    let fc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("detections.geojson")).unwrap())
            .unwrap();
    for (f, fp) in fc["features"]
        .as_array()
        .unwrap()
        .iter()
        .zip(rec["geo"]["footprints"].as_array().unwrap())
    {
        let ring = f["geometry"]["coordinates"][0].as_array().unwrap();
        for v in fp["lonlat"].as_array().unwrap() {
            assert!(
                ring.iter()
                    .any(
                        |w| (w[0].as_f64().unwrap() - v[0].as_f64().unwrap()).abs() <= 1e-7
                            && (w[1].as_f64().unwrap() - v[1].as_f64().unwrap()).abs() <= 1e-7
                    )
            );
        }
    }

    // A crop that both paths can read: the in-memory decoder on a PNG, windowed reads on a GeoTIFF with 256-pixel
    // tiles that slices straddle (the full-image pass is off: windowed rasters see a decimated overview there).
    let crop_png = d.join("crop.png");
    let crop_tif = d.join("crop.tif");
    let win = ["-srcwin", "4100", "3000", "2600", "2600"];
    gdal(
        "gdal_translate",
        &[
            &["-q", "-of", "PNG"][..],
            &win[..],
            &[big.to_str().unwrap(), crop_png.to_str().unwrap()],
        ]
        .concat(),
    );
    let _ = std::fs::remove_file(d.join("crop.png.aux.xml"));
    gdal(
        "gdal_translate",
        &[
            &["-q", "-co", "TILED=YES", "-co", "COMPRESS=DEFLATE"][..],
            &win[..],
            &[big.to_str().unwrap(), crop_tif.to_str().unwrap()],
        ]
        .concat(),
    );
    let plain = ["--no-full-pass", "--no-symbolic"];
    infer_raster(&crop_png, &d.join("png"), &plain);
    infer_raster(
        &crop_tif,
        &d.join("tif"),
        &[&plain[..], &["--window-above", "0"]].concat(),
    );
    let (mem, win_rec) = (
        record(&d.join("png"), "predictions.jsonl"),
        record(&d.join("tif"), "predictions.jsonl"),
    );
    assert!(
        mem.get("geo").is_none(),
        "a PNG without a world file has no georeferencing"
    );
    assert!(!d.join("png/detections.geojson").exists());
    assert_same_detections(&mem, &win_rec, "windowed GeoTIFF vs in-memory PNG");
    check_vertices_with_gdaltransform(&crop_tif, &win_rec);

    // 16-bit, four bands in another order: with --bands and the --scale that undoes the conversion, the same
    // detections (x257 then /257 is exact, so the tolerance is the comparison's: scores within 1e-5).
    let crop16 = d.join("crop16.tif");
    gdal(
        "gdal_translate",
        &[
            "-q",
            "-ot",
            "UInt16",
            "-scale",
            "0",
            "255",
            "0",
            "65535",
            "-b",
            "3",
            "-b",
            "2",
            "-b",
            "1",
            "-b",
            "1",
            "-co",
            "TILED=YES",
            crop_tif.to_str().unwrap(),
            crop16.to_str().unwrap(),
        ],
    );
    infer_raster(
        &crop16,
        &d.join("t16"),
        &[
            &plain[..],
            &[
                "--window-above",
                "0",
                "--bands",
                "3,2,1",
                "--scale",
                "0,65535",
            ],
        ]
        .concat(),
    );
    assert_same_detections(
        &win_rec,
        &record(&d.join("t16"), "predictions.jsonl"),
        "16-bit 4-band with --bands",
    );
}

#[test]
fn gsd_of_a_geographic_raster_is_geodesic() {
    let crop = sample("neon_soap_10cm.png");
    let dir = tempfile::tempdir().unwrap();
    let tif = dir.path().join("wgs84.tif");
    // 400 pixels over 0.004 degrees of longitude and 0.003 of latitude at 60 N: pixels of about 0.56 x 0.83 m.
    gdal(
        "gdal_translate",
        &[
            "-q",
            "-a_srs",
            "EPSG:4326",
            "-a_ullr",
            "10.0",
            "60.003",
            "10.004",
            "60.0",
            crop.to_str().unwrap(),
            tif.to_str().unwrap(),
        ],
    );
    let out = dir.path().join("out");
    infer_raster(&tif, &out, &["--no-symbolic"]);
    let rec = record(&out, "predictions.jsonl");
    let ours = rec["geo"]["gsd"].as_f64().unwrap();
    // The peer: pyproj's geodesics along the raster's centre lines, per pixel, geometric mean.
    let py = python(&["pyproj"]);
    let o = run(Command::new(&py).args([
        "-c",
        "from pyproj import Geod\n\
         g = Geod(ellps='WGS84')\n\
         dx = g.inv(10.0, 60.0015, 10.004, 60.0015)[2] / 400\n\
         dy = g.inv(10.002, 60.003, 10.002, 60.0)[2] / 400\n\
         print((dx * dy) ** 0.5)",
    ]));
    let theirs: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(
        (ours - theirs).abs() / theirs < 0.005,
        "GSD {ours} m vs pyproj {theirs} m"
    );
    assert_eq!(rec["geo"]["crs"], "EPSG:4326");
    check_vertices_with_gdaltransform(&tif, &rec);
}

#[test]
fn a_raster_declaring_a_trillion_pixels_is_refused_with_one_clear_error() {
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
    let o = infer(&ort_lib(), dir.path(), &out)
        .args(["--no-metrics"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "one bad image: exit 1\n{err}");
    assert_eq!(
        error_lines(&err),
        vec![format!(
            "error: {}: cannot use the raster: the raster declares 1000000 x 1000000 pixels (1.000e12), more than \
             the limit of 1.000e11 (raster.max_pixels, --max-raster-pixels)",
            vrt.display()
        )
        .as_str()],
        "{err}"
    );
    // The run went on: the good image has its record.
    let text = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    assert!(
        text.contains("\"small.png\"") && !text.contains("huge.vrt"),
        "{text}"
    );
}
