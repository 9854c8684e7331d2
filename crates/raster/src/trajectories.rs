//! Tracks on the map (`nsod track` over georeferenced frames, e.g. GeoTIFFs of repeated passes):
//!
//! * `trajectories.geojson`: RFC 7946, WGS84 longitude/latitude, one LineString per track through its positions
//!   averaged over 1 s windows (the vertices; their times in `times`), with `id`, `class`, `class_id`,
//!   `first_time`, `last_time`, `frames`, and geodesic (WGS84 ellipsoid, Karney's algorithm) `length_m`,
//!   `displacement_m`, `speed_m_s` (length over the time between the first and the last vertex) and `heading_deg`
//!   (the initial azimuth from the first vertex to the last, degrees clockwise from north; `null` under half a
//!   metre), speed and heading `null` for a track shorter than the minimum duration;
//! * `track_points.geojson`: every matched detection of a track as a Point, with `id`, `time`, `frame`, `image`,
//!   `class`, `score`;
//! * `trajectories.gpkg`: both as layers (`tracks`, `track_points`) in the frames' CRS, through OGR.
//!
//! A track needs two vertices (positions in two windows) for a line; shorter tracks have only their points.
//! Coordinates are written in full (shortest round-trip) precision, so the figures can be recomputed from the file.
//! Every file is written to a temporary name and renamed.

use crate::RasterError;
use crate::georef::{ToLonLat, traditional_pub as traditional};
use gdal::spatial_ref::SpatialRef;
use gdal::vector::{
    Feature, FieldDefn, Geometry, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType,
};
use geographiclib_rs::{Geodesic, InverseGeodesic};
use nsod_types::geo::GeoRef;
use serde_json::json;
use std::path::Path;

pub const TRAJECTORIES_GEOJSON: &str = "trajectories.geojson";
pub const POINTS_GEOJSON: &str = "track_points.geojson";
pub const TRAJECTORIES_GPKG: &str = "trajectories.gpkg";

/// One track: its vertices are window means in the frames' CRS, `(time, x, y)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub id: u64,
    pub class: String,
    pub class_id: u32,
    pub first_time: f64,
    pub last_time: f64,
    pub frames: u64,
    pub vertices: Vec<(f64, f64, f64)>,
}

/// One matched detection of a track, its box centre in the frames' CRS.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPoint {
    pub id: u64,
    pub time: f64,
    pub frame: u64,
    pub image: String,
    pub class: String,
    pub score: f64,
    pub map: [f64; 2],
}

/// The geodesic figures of one trajectory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geodesics {
    pub length_m: f64,
    pub displacement_m: f64,
    pub speed_m_s: Option<f64>,
    pub heading_deg: Option<f64>,
}

/// Geodesic length, displacement, speed and heading of a line of `(time, lon, lat)` vertices; speed and heading
/// only when the track lasted `min_duration` seconds or more.
pub fn geodesics(vertices: &[(f64, f64, f64)], duration: f64, min_duration: f64) -> Geodesics {
    let g = Geodesic::wgs84();
    let mut length = 0.0;
    for w in vertices.windows(2) {
        let s: f64 = g.inverse(w[0].2, w[0].1, w[1].2, w[1].1);
        length += s;
    }
    let (mut displacement, mut heading, mut span) = (0.0, None, 0.0);
    if let (Some(a), Some(b)) = (vertices.first(), vertices.last()) {
        let (s12, azi1, _, _): (f64, f64, f64, f64) = g.inverse(a.2, a.1, b.2, b.1);
        displacement = s12;
        heading = (s12 > 0.5).then(|| azi1.rem_euclid(360.0));
        span = b.0 - a.0;
    }
    let measured = duration >= min_duration && span > 0.0;
    Geodesics {
        length_m: length,
        displacement_m: displacement,
        speed_m_s: measured.then(|| length / span),
        heading_deg: heading.filter(|_| measured),
    }
}

/// What [`write`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrajectorySummary {
    pub crs: String,
    pub lines: usize,
    pub points: usize,
}

fn write_err(path: &Path, message: impl Into<String>) -> RasterError {
    RasterError::Write {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes the trajectory files into `dir` (see the module docs); `georef` gives the CRS of every position.
pub fn write(
    dir: &Path,
    georef: &GeoRef,
    tracks: &[Trajectory],
    points: &[TrackPoint],
    min_duration: f64,
) -> Result<TrajectorySummary, RasterError> {
    let to_lonlat = ToLonLat::new(georef).map_err(|m| write_err(dir, m))?;
    let lonlat = |p: [f64; 2]| -> Result<[f64; 2], RasterError> {
        let mut v = [p];
        to_lonlat.transform(&mut v).map_err(|m| write_err(dir, m))?;
        Ok(v[0])
    };
    let mut summary = TrajectorySummary {
        crs: georef.crs.clone(),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let mut line_geo = Vec::new();
    for t in tracks.iter().filter(|t| t.vertices.len() >= 2) {
        let mut ll = Vec::with_capacity(t.vertices.len());
        for &(time, x, y) in &t.vertices {
            let p = lonlat([x, y])?;
            ll.push((time, p[0], p[1]));
        }
        let gd = geodesics(&ll, t.last_time - t.first_time, min_duration);
        lines.push(json!({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": ll.iter().map(|v| [v.1, v.2]).collect::<Vec<_>>()},
            "properties": {
                "id": t.id,
                "class": t.class,
                "class_id": t.class_id,
                "first_time": t.first_time,
                "last_time": t.last_time,
                "frames": t.frames,
                "times": ll.iter().map(|v| v.0).collect::<Vec<_>>(),
                "length_m": gd.length_m,
                "displacement_m": gd.displacement_m,
                "speed_m_s": gd.speed_m_s,
                "heading_deg": gd.heading_deg,
                "crs": georef.crs,
            },
        }));
        line_geo.push((t, gd));
        summary.lines += 1;
    }
    let mut point_features = Vec::with_capacity(points.len());
    for p in points {
        let ll = lonlat(p.map)?;
        point_features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": ll},
            "properties": {"id": p.id, "time": p.time, "frame": p.frame, "image": p.image, "class": p.class, "score": p.score},
        }));
        summary.points += 1;
    }
    for (name, features) in [
        (TRAJECTORIES_GEOJSON, lines),
        (POINTS_GEOJSON, point_features),
    ] {
        let path = dir.join(name);
        let fc = json!({"type": "FeatureCollection", "features": features});
        nsod_types::formats::write_atomic(&path, |w| {
            serde_json::to_writer(&mut *w, &fc).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })
        .map_err(|e| write_err(&path, e.to_string()))?;
    }
    write_gpkg(dir, georef, &line_geo, points)?;
    Ok(summary)
}

fn write_gpkg(
    dir: &Path,
    georef: &GeoRef,
    lines: &[(&Trajectory, Geodesics)],
    points: &[TrackPoint],
) -> Result<(), RasterError> {
    let path = dir.join(TRAJECTORIES_GPKG);
    let tmp = dir.join("trajectories.partial.gpkg");
    let _ = std::fs::remove_file(&tmp);
    let err = |m: String| write_err(&path, m);
    let driver = gdal::DriverManager::get_driver_by_name("GPKG")
        .map_err(|e| err(format!("GDAL has no GeoPackage driver: {e}")))?;
    let mut ds = driver
        .create_vector_only(&tmp)
        .map_err(|e| err(e.to_string()))?;
    let srs = traditional(
        SpatialRef::from_wkt(&georef.wkt).map_err(|e| err(format!("CRS {}: {e}", georef.crs)))?,
    );
    let mut txn = ds.start_transaction().map_err(|e| err(e.to_string()))?;
    {
        let layer = txn
            .create_layer(LayerOptions {
                name: "tracks",
                srs: Some(&srs),
                ty: OGRwkbGeometryType::wkbLineString,
                options: Some(&["SPATIAL_INDEX=YES", "FID=fid"]),
            })
            .map_err(|e| err(e.to_string()))?;
        let fields = [
            ("track_id", OGRFieldType::OFTInteger64),
            ("class", OGRFieldType::OFTString),
            ("class_id", OGRFieldType::OFTInteger),
            ("first_time", OGRFieldType::OFTReal),
            ("last_time", OGRFieldType::OFTReal),
            ("frames", OGRFieldType::OFTInteger64),
            ("times", OGRFieldType::OFTString),
            ("length_m", OGRFieldType::OFTReal),
            ("displacement_m", OGRFieldType::OFTReal),
            ("speed_m_s", OGRFieldType::OFTReal),
            ("heading_deg", OGRFieldType::OFTReal),
        ];
        for (name, ty) in fields {
            FieldDefn::new(name, ty)
                .and_then(|f| f.add_to_layer(&layer))
                .map_err(|e| err(e.to_string()))?;
        }
        for (t, gd) in lines {
            let pts: Vec<String> = t
                .vertices
                .iter()
                .map(|v| format!("{:?} {:?}", v.1, v.2))
                .collect();
            let geom = Geometry::from_wkt(&format!("LINESTRING ({})", pts.join(", ")))
                .map_err(|e| err(e.to_string()))?;
            let times = serde_json::to_string(&t.vertices.iter().map(|v| v.0).collect::<Vec<_>>())
                .unwrap_or_default();
            let mut f = Feature::new(layer.defn()).map_err(|e| err(e.to_string()))?;
            (|| -> gdal::errors::Result<()> {
                f.set_geometry(geom)?;
                f.set_field_integer64(0, t.id.min(i64::MAX as u64) as i64)?;
                f.set_field_string(1, &t.class)?;
                f.set_field_integer(2, t.class_id.min(i32::MAX as u32) as i32)?;
                f.set_field_double(3, t.first_time)?;
                f.set_field_double(4, t.last_time)?;
                f.set_field_integer64(5, t.frames.min(i64::MAX as u64) as i64)?;
                f.set_field_string(6, &times)?;
                f.set_field_double(7, gd.length_m)?;
                f.set_field_double(8, gd.displacement_m)?;
                match gd.speed_m_s {
                    Some(v) => f.set_field_double(9, v)?,
                    None => f.set_field_null(9)?,
                }
                match gd.heading_deg {
                    Some(v) => f.set_field_double(10, v)?,
                    None => f.set_field_null(10)?,
                }
                f.create(&layer)
            })()
            .map_err(|e| err(e.to_string()))?;
        }
    }
    {
        let layer = txn
            .create_layer(LayerOptions {
                name: "track_points",
                srs: Some(&srs),
                ty: OGRwkbGeometryType::wkbPoint,
                options: Some(&["SPATIAL_INDEX=YES", "FID=fid"]),
            })
            .map_err(|e| err(e.to_string()))?;
        let fields = [
            ("track_id", OGRFieldType::OFTInteger64),
            ("time", OGRFieldType::OFTReal),
            ("frame", OGRFieldType::OFTInteger64),
            ("image", OGRFieldType::OFTString),
            ("class", OGRFieldType::OFTString),
            ("score", OGRFieldType::OFTReal),
        ];
        for (name, ty) in fields {
            FieldDefn::new(name, ty)
                .and_then(|f| f.add_to_layer(&layer))
                .map_err(|e| err(e.to_string()))?;
        }
        for p in points {
            let geom = Geometry::from_wkt(&format!("POINT ({:?} {:?})", p.map[0], p.map[1]))
                .map_err(|e| err(e.to_string()))?;
            let mut f = Feature::new(layer.defn()).map_err(|e| err(e.to_string()))?;
            (|| -> gdal::errors::Result<()> {
                f.set_geometry(geom)?;
                f.set_field_integer64(0, p.id.min(i64::MAX as u64) as i64)?;
                f.set_field_double(1, p.time)?;
                f.set_field_integer64(2, p.frame.min(i64::MAX as u64) as i64)?;
                f.set_field_string(3, &p.image)?;
                f.set_field_string(4, &p.class)?;
                f.set_field_double(5, p.score)?;
                f.create(&layer)
            })()
            .map_err(|e| err(e.to_string()))?;
        }
    }
    txn.commit()
        .map_err(|e| err(format!("cannot commit: {e}")))?;
    drop(ds);
    std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geodesics_of_a_line() {
        // Due north along a meridian, then due east: the heading is the first-to-last azimuth.
        let v = [
            (0.0, 2.0, 45.0),
            (10.0, 2.0, 45.009),
            (20.0, 2.0127, 45.009),
        ];
        let g = geodesics(&v, 20.0, 2.0);
        let north: f64 = Geodesic::wgs84().inverse(45.0, 2.0, 45.009, 2.0);
        assert!((north - 999.8).abs() < 1.0, "{north}");
        assert!(g.length_m > 1990.0 && g.length_m < 2010.0, "{g:?}");
        assert!((g.speed_m_s.unwrap() - g.length_m / 20.0).abs() < 1e-12);
        let h = g.heading_deg.unwrap();
        assert!((h - 45.0).abs() < 1.0, "{h}");
        // Too short a track: no speed, no heading; still its length.
        let s = geodesics(&v, 1.0, 2.0);
        assert_eq!((s.speed_m_s, s.heading_deg), (None, None));
        assert_eq!(s.length_m, g.length_m);
    }
}
