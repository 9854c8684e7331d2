//! Georeferencing of an image's detections, as plain data: the raster's coordinate reference system and
//! geotransform, its ground sample distance, and per detection its polygon in pixels, in the raster's map
//! coordinates and in WGS84 longitude/latitude. Computed by nsod-raster (GDAL/PROJ), written by the sinks.

use serde::{Deserialize, Serialize};

/// Where an image lies on the Earth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoRef {
    /// A short name of the CRS: `EPSG:32633` when it has an EPSG code, else its name.
    pub crs: String,
    /// The CRS as WKT2.
    pub wkt: String,
    /// GDAL's affine transform from pixel/line to map coordinates: `x = g0 + px g1 + py g2`,
    /// `y = g3 + px g4 + py g5` (pixel corners at integer coordinates).
    pub geotransform: [f64; 6],
    /// Ground sample distance in metres per pixel (projected units, or geodesic for geographic CRSs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsd: Option<f64>,
}

/// One detection on the map, in the order of the image's detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// The polygon's vertices in pixels (the oriented box's corners, or the box's), not closed.
    pub pixel: Vec<[f64; 2]>,
    /// The same vertices in the raster's CRS.
    pub map: Vec<[f64; 2]>,
    /// The same vertices as WGS84 longitude, latitude (degrees).
    pub lonlat: Vec<[f64; 2]>,
    /// The detector's score before the rules.
    pub raw_score: f32,
    /// The rules that changed the score (their heads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

/// The georeferenced part of an image's record (`geo` in `predictions.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageGeo {
    #[serde(flatten)]
    pub georef: GeoRef,
    /// One per detection, in the same order.
    pub footprints: Vec<Footprint>,
}
