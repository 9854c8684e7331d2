//! From pixels to the map: the raster's geotransform and CRS, detection polygons in map coordinates and in WGS84
//! longitude/latitude (through PROJ, GDAL's coordinate transformations, in the traditional GIS axis order), and
//! the ground sample distance.

use crate::{Raster, RasterError};
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use geographiclib_rs::{Geodesic, InverseGeodesic};
use nsod_types::Detection;
use nsod_types::geo::{Footprint, GeoRef};

/// The raster's georeferencing: `None` when it has no geotransform or no CRS (pixel outputs only, no error).
pub fn georeference(raster: &Raster) -> Result<Option<GeoRef>, RasterError> {
    let (gt, srs) = {
        let ds = raster.lock();
        let (Ok(gt), Ok(srs)) = (ds.geo_transform(), ds.spatial_ref()) else {
            return Ok(None);
        };
        (gt, srs)
    };
    // GDAL reports [0, 1, 0, 0, 0, 1] for rasters without one in some drivers: that is not a georeference.
    if gt == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0] || gt[1] * gt[5] - gt[2] * gt[4] == 0.0 {
        return Ok(None);
    }
    let err = |message: &str, source: Option<gdal::errors::GdalError>| RasterError::Georef {
        path: raster.path().to_path_buf(),
        message: message.into(),
        source: source.map(|e| Box::new(raster.renamed(e))),
    };
    let wkt = srs
        .to_wkt()
        .map_err(|e| err("the CRS cannot be written as WKT", Some(e)))?;
    let crs = match (srs.auth_name(), srs.auth_code()) {
        (Some(name), Ok(code)) => format!("{name}:{code}"),
        _ => srs.name().unwrap_or_else(|| "unknown".into()),
    };
    let mut georef = GeoRef {
        crs,
        wkt,
        geotransform: gt,
        gsd: None,
    };
    let (w, h) = raster.size();
    georef.gsd = Some(
        gsd(&georef, &srs, f64::from(w) / 2.0, f64::from(h) / 2.0).map_err(|m| err(&m, None))?,
    );
    Ok(Some(georef))
}

/// Pixel/line to map coordinates.
pub fn pixel_to_map(gt: &[f64; 6], [px, py]: [f64; 2]) -> [f64; 2] {
    [
        gt[0] + px * gt[1] + py * gt[2],
        gt[3] + px * gt[4] + py * gt[5],
    ]
}

/// `srs` with longitude/easting first whatever the CRS's axis order.
pub fn traditional_pub(srs: SpatialRef) -> SpatialRef {
    traditional(srs)
}

fn traditional(mut srs: SpatialRef) -> SpatialRef {
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    srs
}

/// Transforms map coordinates of `georef`'s CRS to WGS84 longitude/latitude. Not `Send` (a PROJ object): make
/// one per thread or per image.
#[derive(Debug)]
pub struct ToLonLat {
    transform: Option<CoordTransform>,
}

impl ToLonLat {
    pub fn new(georef: &GeoRef) -> Result<Self, String> {
        let src = traditional(
            SpatialRef::from_wkt(&georef.wkt)
                .map_err(|e| format!("the CRS is not valid WKT: {e}"))?,
        );
        let dst = traditional(SpatialRef::from_epsg(4326).map_err(|e| format!("EPSG:4326: {e}"))?);
        let same = src.is_geographic()
            && src
                .auth_code()
                .is_ok_and(|c| c == 4326 && src.auth_name().as_deref() == Some("EPSG"));
        Ok(Self {
            transform: if same {
                None
            } else {
                Some(
                    CoordTransform::new(&src, &dst).map_err(|e| {
                        format!("no transformation from {} to WGS84: {e}", georef.crs)
                    })?,
                )
            },
        })
    }

    /// Longitude, latitude of each point, in place.
    pub fn transform(&self, points: &mut [[f64; 2]]) -> Result<(), String> {
        let Some(t) = &self.transform else {
            return Ok(());
        };
        let mut x: Vec<f64> = points.iter().map(|p| p[0]).collect();
        let mut y: Vec<f64> = points.iter().map(|p| p[1]).collect();
        t.transform_coords(&mut x, &mut y, &mut [])
            .map_err(|e| format!("cannot transform to WGS84: {e}"))?;
        for (p, (x, y)) in points.iter_mut().zip(x.into_iter().zip(y)) {
            *p = [x, y];
        }
        Ok(())
    }
}

/// Ground sample distance at pixel `(px, py)`, in metres per pixel: for projected CRSs the pixel's side from the
/// geotransform (the square root of its area, for non-square or rotated pixels) times the CRS's linear unit; for
/// geographic CRSs the geometric mean of the geodesic lengths (WGS84 ellipsoid, Karney's algorithm) of the pixel's
/// two sides.
pub fn gsd(georef: &GeoRef, srs: &SpatialRef, px: f64, py: f64) -> Result<f64, String> {
    let gt = &georef.geotransform;
    if srs.is_projected() {
        let area = (gt[1] * gt[5] - gt[2] * gt[4]).abs();
        return Ok(area.sqrt() * srs.linear_units());
    }
    let to = ToLonLat::new(georef)?;
    let mut pts = [
        pixel_to_map(gt, [px, py]),
        pixel_to_map(gt, [px + 1.0, py]),
        pixel_to_map(gt, [px, py + 1.0]),
    ];
    to.transform(&mut pts)?;
    let g = Geodesic::wgs84();
    let dist = |a: [f64; 2], b: [f64; 2]| -> f64 { g.inverse(a[1], a[0], b[1], b[0]) };
    let (dx, dy) = (dist(pts[0], pts[1]), dist(pts[0], pts[2]));
    let v = (dx * dy).sqrt();
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("cannot measure a pixel at {px}, {py}"))
    }
}

/// The polygon of a detection in pixels: an oriented box's corners, or the box's.
pub fn pixel_polygon(d: &Detection) -> Vec<[f64; 2]> {
    match d.obb {
        Some(o) => o.corners().iter().map(|c| [c.x, c.y]).collect(),
        None => {
            let b = d.bbox;
            let (x1, y1, x2, y2) = (
                f64::from(b.x1),
                f64::from(b.y1),
                f64::from(b.x2),
                f64::from(b.y2),
            );
            vec![[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
        }
    }
}

/// Every detection on the map. `raw_scores` and `rules` are per detection (same order).
pub fn footprints(
    georef: &GeoRef,
    detections: &[Detection],
    raw_scores: &[f32],
    mut rules: Vec<Vec<String>>,
) -> Result<Vec<Footprint>, String> {
    let to = ToLonLat::new(georef)?;
    rules.resize(detections.len(), Vec::new());
    detections
        .iter()
        .zip(raw_scores)
        .zip(rules)
        .map(|((d, &raw_score), rules)| {
            let pixel = pixel_polygon(d);
            let map: Vec<[f64; 2]> = pixel
                .iter()
                .map(|&p| pixel_to_map(&georef.geotransform, p))
                .collect();
            let mut lonlat = map.clone();
            to.transform(&mut lonlat)?;
            Ok(Footprint {
                pixel,
                map,
                lonlat,
                raw_score,
                rules,
            })
        })
        .collect()
}
