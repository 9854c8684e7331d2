//! The run's detections on the map, from the records of `predictions.jsonl` (so a resumed or merged run writes
//! them the same way):
//!
//! * `detections.geojson`: RFC 7946, one FeatureCollection of WGS84 longitude/latitude polygons (closed rings,
//!   exterior rings counter-clockwise, 7 decimals: about 1 cm), properties `image`, `class`, `class_id`, `score`, `raw_score`, `rules`,
//!   `gsd`, `crs` (the source raster's);
//! * `detections.gpkg`: a GeoPackage through OGR with one layer, `detections`, in the CRS of the first
//!   georeferenced raster (features of rasters in another CRS are transformed into it), the same fields and
//!   OGR's spatial index.
//!
//! Both are written to temporary names and renamed, so an earlier complete file is never replaced by a partial one.

use crate::RasterError;
use crate::georef::traditional_pub as traditional;
use gdal::spatial_ref::{CoordTransform, SpatialRef};
use gdal::vector::{
    Feature, FieldDefn, Geometry, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType,
};
use nsod_types::formats::jsonl::ImagePredictions;
use serde_json::json;
use std::io::Write;
use std::path::Path;

pub const GEOJSON: &str = nsod_types::layout::GEOJSON;
pub const GPKG: &str = nsod_types::layout::GPKG;
/// The GeoPackage's layer.
pub const LAYER: &str = "detections";

/// What [`write`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoSummary {
    /// Georeferenced images and their detections.
    pub images: usize,
    pub features: usize,
    /// The GeoPackage layer's CRS (`EPSG:32633`).
    pub crs: String,
}

fn write_err(path: &Path, message: impl Into<String>) -> RasterError {
    RasterError::Write {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Twice the signed area of an unclosed ring (positive when counter-clockwise in x-east, y-north axes).
pub fn signed_area(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum()
}

/// A closed ring with the right-hand rule (counter-clockwise exterior), from unclosed vertices.
pub fn ccw_ring(vertices: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut ring = vertices.to_vec();
    if signed_area(&ring) < 0.0 {
        ring.reverse();
    }
    if let Some(&first) = ring.first() {
        ring.push(first);
    }
    ring
}

/// Degrees to 7 decimals (about 1 cm; the full values are in `predictions.jsonl`).
fn rounded(ring: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    ring.into_iter()
        .map(|p| p.map(|v| (v * 1e7).round() / 1e7))
        .collect()
}

fn wkt_polygon(ring: &[[f64; 2]]) -> String {
    let pts: Vec<String> = ring
        .iter()
        .map(|p| format!("{:?} {:?}", p[0], p[1]))
        .collect();
    format!("POLYGON (({}))", pts.join(", "))
}

/// The GeoJSON feature of one detection.
fn feature(
    image: &str,
    d: &nsod_types::Detection,
    f: &nsod_types::geo::Footprint,
    geo: &nsod_types::geo::ImageGeo,
) -> serde_json::Value {
    json!({
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [rounded(ccw_ring(&f.lonlat))]},
        "properties": {
            "image": image,
            "class": d.class_name,
            "class_id": d.class_id,
            "score": d.score,
            "raw_score": f.raw_score,
            "rules": f.rules,
            "gsd": geo.georef.gsd,
            "crs": geo.georef.crs,
        },
    })
}

/// The GeoJSON FeatureCollection of georeferenced records (what `detections.geojson` holds, in memory).
pub fn feature_collection(records: &[ImagePredictions]) -> serde_json::Value {
    let features: Vec<serde_json::Value> = records
        .iter()
        .filter_map(|r| r.geo.as_ref().map(|g| (r, g)))
        .flat_map(|(r, g)| {
            r.detections
                .iter()
                .zip(&g.footprints)
                .map(|(d, f)| feature(&r.image, d, f, g))
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features})
}

/// Writes `detections.geojson` and `detections.gpkg` into `dir` from `records`; when no record is georeferenced,
/// writes nothing, removes such files left by an earlier run and returns `None`.
pub fn write(
    records: impl IntoIterator<Item = ImagePredictions>,
    dir: &Path,
) -> Result<Option<GeoSummary>, RasterError> {
    let geojson_path = dir.join(GEOJSON);
    let gpkg_path = dir.join(GPKG);
    let tmp_json = dir.join(format!("{GEOJSON}.partial"));
    let tmp_gpkg = dir.join("detections.partial.gpkg");
    let _ = std::fs::remove_file(&tmp_gpkg);
    let mut records = records.into_iter().filter(|r| r.geo.is_some()).peekable();
    let Some(first) = records.peek().and_then(|r| r.geo.as_ref()) else {
        let _ = std::fs::remove_file(&geojson_path);
        let _ = std::fs::remove_file(&gpkg_path);
        let _ = std::fs::remove_file(&tmp_json);
        return Ok(None);
    };
    let (wkt, crs) = (first.georef.wkt.clone(), first.georef.crs.clone());
    let jerr = |e: std::io::Error| write_err(&tmp_json, e.to_string());
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp_json).map_err(jerr)?);
    w.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")
        .map_err(jerr)?;
    let mut gpkg = Gpkg::create(&tmp_gpkg, &wkt, &crs)?;
    let mut summary = GeoSummary {
        crs,
        ..Default::default()
    };
    {
        // One transaction for the whole file (OGR's GeoPackage driver is slow feature by feature otherwise).
        let txn = gpkg
            .ds
            .start_transaction()
            .map_err(|e| write_err(&tmp_gpkg, e.to_string()))?;
        let layer = txn
            .layer_by_name(LAYER)
            .map_err(|e| write_err(&tmp_gpkg, e.to_string()))?;
        for rec in records {
            let Some(geo) = &rec.geo else { continue };
            summary.images += 1;
            for (d, f) in rec.detections.iter().zip(&geo.footprints) {
                let feature = feature(&rec.image, d, f, geo);
                let sep = if summary.features == 0 { "" } else { ",\n" };
                write!(w, "{sep}{feature}").map_err(jerr)?;
                let meta = Meta {
                    path: &tmp_gpkg,
                    wkt: &wkt,
                    from_wgs84: &gpkg.from_wgs84,
                };
                gpkg_feature(&meta, &layer, &rec.image, d, f, geo)?;
                summary.features += 1;
            }
        }
        let _ = layer;
        txn.commit()
            .map_err(|e| write_err(&tmp_gpkg, format!("cannot commit: {e}")))?;
    }
    w.write_all(b"\n]}\n")
        .and_then(|_| w.flush())
        .map_err(jerr)?;
    w.into_inner()
        .map_err(|e| write_err(&tmp_json, e.to_string()))?
        .sync_all()
        .map_err(jerr)?;
    drop(gpkg);
    std::fs::rename(&tmp_json, &geojson_path)
        .map_err(|e| write_err(&geojson_path, e.to_string()))?;
    std::fs::rename(&tmp_gpkg, &gpkg_path).map_err(|e| write_err(&gpkg_path, e.to_string()))?;
    Ok(Some(summary))
}

/// The GeoPackage being written.
struct Gpkg {
    ds: gdal::Dataset,
    /// WGS84 to the layer's CRS, for features of rasters in another CRS.
    from_wgs84: CoordTransform,
}

impl std::fmt::Debug for Gpkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpkg").finish_non_exhaustive()
    }
}

const FIELDS: [(&str, OGRFieldType::Type); 8] = [
    ("image", OGRFieldType::OFTString),
    ("class", OGRFieldType::OFTString),
    ("class_id", OGRFieldType::OFTInteger),
    ("score", OGRFieldType::OFTReal),
    ("raw_score", OGRFieldType::OFTReal),
    ("rules", OGRFieldType::OFTString),
    ("gsd", OGRFieldType::OFTReal),
    ("crs", OGRFieldType::OFTString),
];

impl Gpkg {
    fn create(path: &Path, wkt: &str, crs: &str) -> Result<Self, RasterError> {
        let err = |m: String| write_err(path, m);
        let driver = gdal::DriverManager::get_driver_by_name("GPKG")
            .map_err(|e| err(format!("GDAL has no GeoPackage driver: {e}")))?;
        let mut ds = driver
            .create_vector_only(path)
            .map_err(|e| err(e.to_string()))?;
        let srs =
            traditional(SpatialRef::from_wkt(wkt).map_err(|e| err(format!("CRS {crs}: {e}")))?);
        {
            let layer = ds
                .create_layer(LayerOptions {
                    name: LAYER,
                    srs: Some(&srs),
                    ty: OGRwkbGeometryType::wkbPolygon,
                    options: Some(&["SPATIAL_INDEX=YES", "FID=fid"]),
                })
                .map_err(|e| err(e.to_string()))?;
            for (name, ty) in FIELDS {
                FieldDefn::new(name, ty)
                    .and_then(|f| f.add_to_layer(&layer))
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        let wgs84 = traditional(SpatialRef::from_epsg(4326).map_err(|e| err(e.to_string()))?);
        let from_wgs84 = CoordTransform::new(&wgs84, &srs).map_err(|e| err(e.to_string()))?;
        Ok(Self { ds, from_wgs84 })
    }
}

struct Meta<'a> {
    path: &'a Path,
    wkt: &'a str,
    from_wgs84: &'a CoordTransform,
}

fn gpkg_feature(
    m: &Meta,
    layer: &gdal::vector::Layer,
    image: &str,
    d: &nsod_types::Detection,
    f: &nsod_types::geo::Footprint,
    geo: &nsod_types::geo::ImageGeo,
) -> Result<(), RasterError> {
    let err = |msg: String| write_err(m.path, format!("{image}: {msg}"));
    let ring = if geo.georef.wkt == m.wkt {
        ccw_ring(&f.map)
    } else {
        let mut x: Vec<f64> = f.lonlat.iter().map(|p| p[0]).collect();
        let mut y: Vec<f64> = f.lonlat.iter().map(|p| p[1]).collect();
        m.from_wgs84
            .transform_coords(&mut x, &mut y, &mut [])
            .map_err(|e| err(format!("cannot transform into the layer's CRS: {e}")))?;
        ccw_ring(
            &x.into_iter()
                .zip(y)
                .map(|(x, y)| [x, y])
                .collect::<Vec<_>>(),
        )
    };
    let geom = Geometry::from_wkt(&wkt_polygon(&ring)).map_err(|e| err(e.to_string()))?;
    let mut feature = Feature::new(layer.defn()).map_err(|e| err(e.to_string()))?;
    let rules = serde_json::to_string(&f.rules).unwrap_or_default();
    (|| -> gdal::errors::Result<()> {
        feature.set_geometry(geom)?;
        feature.set_field_string(0, image)?;
        feature.set_field_string(1, &d.class_name)?;
        feature.set_field_integer(2, d.class_id.min(i32::MAX as u32) as i32)?;
        feature.set_field_double(3, f64::from(d.score))?;
        feature.set_field_double(4, f64::from(f.raw_score))?;
        feature.set_field_string(5, &rules)?;
        match geo.georef.gsd {
            Some(g) => feature.set_field_double(6, g)?,
            None => feature.set_field_null(6)?,
        }
        feature.set_field_string(7, &geo.georef.crs)?;
        feature.create(layer)
    })()
    .map_err(|e| err(e.to_string()))
}
