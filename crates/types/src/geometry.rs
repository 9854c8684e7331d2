//! Overlap measures and distances between boxes.
//!
//! * [`iou`] / [`ios`]: axis-aligned intersection over union, and over the smaller area (SAHI's `IOS`).
//! * [`rotated_iou`] / [`rotated_ios`]: the exact values for rotated boxes, by clipping one rectangle against the
//!   other (Sutherland-Hodgman on convex polygons, computed in `f64`).
//! * [`probiou`]: Ultralytics' ProbIoU (`ultralytics.utils.metrics.probiou`), the measure its OBB NMS uses: one minus
//!   the Hellinger distance between the Gaussians fitted to the two boxes.
//!
//! Degenerate boxes (zero or negative area) overlap nothing: every ratio is 0 for them instead of NaN.

use crate::boxes::{BBox, OrientedBox, Point};

/// Area of the intersection of two axis-aligned boxes.
#[inline]
pub fn intersection_area(a: &BBox, b: &BBox) -> f32 {
    let w = a.x2.min(b.x2) - a.x1.max(b.x1);
    let h = a.y2.min(b.y2) - a.y1.max(b.y1);
    if w <= 0.0 || h <= 0.0 { 0.0 } else { w * h }
}

/// Intersection over union of two axis-aligned boxes, in `[0, 1]`.
#[inline]
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let inter = intersection_area(a, b);
    if inter <= 0.0 {
        return 0.0;
    }
    let union = a.area() + b.area() - inter;
    if union > 0.0 {
        (inter / union).min(1.0)
    } else {
        0.0
    }
}

/// Intersection over the smaller of the two areas (SAHI's `IOS` match metric), in `[0, 1]`.
#[inline]
pub fn ios(a: &BBox, b: &BBox) -> f32 {
    let inter = intersection_area(a, b);
    if inter <= 0.0 {
        return 0.0;
    }
    let smaller = a.area().min(b.area());
    if smaller > 0.0 {
        (inter / smaller).min(1.0)
    } else {
        0.0
    }
}

/// Euclidean distance between two points.
#[inline]
pub fn distance(a: Point, b: Point) -> f64 {
    (a.x - b.x).hypot(a.y - b.y)
}

/// Distance between the centres of two axis-aligned boxes.
#[inline]
pub fn center_distance(a: &BBox, b: &BBox) -> f32 {
    distance(a.center(), b.center()) as f32
}

/// Signed area of a polygon (positive when its vertices turn counter-clockwise in a y-up frame).
pub fn signed_area(poly: &[Point]) -> f64 {
    let n = poly.len();
    let mut s = 0.0;
    for i in 0..n {
        let p = poly[i];
        let q = poly[(i + 1) % n];
        s += p.x * q.y - q.x * p.y;
    }
    s / 2.0
}

/// Area of the intersection of two convex polygons (either orientation), by Sutherland-Hodgman clipping.
pub fn convex_intersection_area(subject: &[Point], clip: &[Point]) -> f64 {
    if subject.len() < 3 || clip.len() < 3 {
        return 0.0;
    }
    if subject.len() + clip.len() <= STACK_VERTICES {
        clip_polygons::<StackPoly>(subject, clip)
    } else {
        clip_polygons::<Vec<Point>>(subject, clip)
    }
}

/// Clipping a convex n-gon by a convex m-gon yields at most n + m vertices; rotated boxes need 8.
const STACK_VERTICES: usize = 16;

/// The vertex buffer of the clipper: on the stack for small polygons (no allocation per box pair).
trait PolyBuf {
    fn with_points(points: &[Point]) -> Self;
    fn push(&mut self, p: Point);
    fn clear(&mut self);
    fn points(&self) -> &[Point];
}

struct StackPoly {
    pts: [Point; STACK_VERTICES],
    len: usize,
}

impl PolyBuf for StackPoly {
    fn with_points(points: &[Point]) -> Self {
        let mut s = Self {
            pts: [Point::default(); STACK_VERTICES],
            len: 0,
        };
        for &p in points {
            s.push(p);
        }
        s
    }
    #[inline]
    fn push(&mut self, p: Point) {
        // Cannot overflow for convex inputs within STACK_VERTICES; guard anyway (drop rather than panic).
        if self.len < STACK_VERTICES {
            self.pts[self.len] = p;
            self.len += 1;
        }
    }
    #[inline]
    fn clear(&mut self) {
        self.len = 0;
    }
    #[inline]
    fn points(&self) -> &[Point] {
        &self.pts[..self.len]
    }
}

impl PolyBuf for Vec<Point> {
    fn with_points(points: &[Point]) -> Self {
        points.to_vec()
    }
    fn push(&mut self, p: Point) {
        Vec::push(self, p);
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
    fn points(&self) -> &[Point] {
        self
    }
}

fn clip_polygons<B: PolyBuf>(subject: &[Point], clip: &[Point]) -> f64 {
    let orient = signed_area(clip).signum();
    if orient == 0.0 {
        return 0.0;
    }
    let mut a = B::with_points(subject);
    let mut b = B::with_points(&[]);
    // Swap references, not buffers, between the clip edges.
    let (mut output, mut input) = (&mut a, &mut b);
    let n = clip.len();
    for i in 0..n {
        let e0 = clip[i];
        let e1 = clip[(i + 1) % n];
        let side =
            |p: Point| orient * ((e1.x - e0.x) * (p.y - e0.y) - (e1.y - e0.y) * (p.x - e0.x));
        std::mem::swap(&mut input, &mut output);
        output.clear();
        let pts = input.points();
        let Some(&last) = pts.last() else { break };
        let mut prev = last;
        let mut prev_side = side(prev);
        for &cur in pts {
            let cur_side = side(cur);
            if cur_side >= 0.0 {
                if prev_side < 0.0 {
                    output.push(segment_cross(prev, cur, prev_side, cur_side));
                }
                output.push(cur);
            } else if prev_side >= 0.0 {
                output.push(segment_cross(prev, cur, prev_side, cur_side));
            }
            prev = cur;
            prev_side = cur_side;
        }
    }
    let out = output.points();
    if out.len() < 3 {
        0.0
    } else {
        signed_area(out).abs()
    }
}

#[inline]
fn segment_cross(p: Point, q: Point, sp: f64, sq: f64) -> Point {
    let t = sp / (sp - sq);
    Point::new(p.x + t * (q.x - p.x), p.y + t * (q.y - p.y))
}

/// IoU of two quadrilaterals exactly as the DOTA devkit's `polyiou.iou_poly(gt, det)` computes it (Task 1
/// evaluation): the intersection is the sum, over every pair of edges, of the signed intersection of the two
/// triangles those edges span with the origin (each clipped by the half-planes of the other, with the devkit's
/// 1e-8 tolerance), and the union uses the polygons' own shoelace areas. It works for any simple polygon, convex
/// or not, and gives the devkit's answer for degenerate and self-intersecting ones too. The operations are the
/// devkit's, in its order, so results agree to the last bit. Both polygons are listed in their label order.
pub fn dota_polygon_iou(gt: &[Point; 4], det: &[Point; 4]) -> f64 {
    let mut p = *gt;
    let mut q = *det;
    let inter = dota::polygons_intersection(&mut p, &mut q);
    let union = dota::area(&p).abs() + dota::area(&q).abs() - inter;
    inter / union
}

/// The devkit's signed shoelace area (`area()` in `polyiou.cpp`, same summation order).
pub fn dota_polygon_area(poly: &[Point]) -> f64 {
    dota::area(poly)
}

mod dota {
    //! The DOTA devkit's polygon intersection (`polyiou.cpp`), operation for operation.
    use crate::Point;

    const EPS: f64 = 1e-8;

    fn sig(d: f64) -> i32 {
        i32::from(d > EPS) - i32::from(d < -EPS)
    }

    fn same(a: Point, b: Point) -> bool {
        sig(a.x - b.x) == 0 && sig(a.y - b.y) == 0
    }

    fn cross(o: Point, a: Point, b: Point) -> f64 {
        (a.x - o.x) * (b.y - o.y) - (b.x - o.x) * (a.y - o.y)
    }

    pub(super) fn area(ps: &[Point]) -> f64 {
        let n = ps.len();
        let mut res = 0.0;
        for i in 0..n {
            let (a, b) = (ps[i], ps[(i + 1) % n]);
            res += a.x * b.y - a.y * b.x;
        }
        res / 2.0
    }

    /// The crossing of line `ab` with segment `cd`; `None` where the devkit leaves its output untouched.
    fn line_cross(a: Point, b: Point, c: Point, d: Point) -> Option<Point> {
        let s1 = cross(a, b, c);
        let s2 = cross(a, b, d);
        if sig(s1) == 0 && sig(s2) == 0 {
            return None;
        }
        if sig(s2 - s1) == 0 {
            return None;
        }
        Some(Point::new(
            (c.x * s2 - d.x * s1) / (s2 - s1),
            (c.y * s2 - d.y * s1) / (s2 - s1),
        ))
    }

    /// Keeps the part of polygon `p` on the left of `ab` (in place, as the devkit's `polygon_cut`).
    fn polygon_cut(p: &mut Vec<Point>, a: Point, b: Point) {
        let n = p.len();
        let mut pp: Vec<Point> = Vec::with_capacity(2 * n + 1);
        for i in 0..n {
            let (pi, pn) = (p[i], p[(i + 1) % n]);
            if sig(cross(a, b, pi)) > 0 {
                pp.push(pi);
            }
            if sig(cross(a, b, pi)) != sig(cross(a, b, pn)) {
                // Where the devkit's crossing is undefined it keeps the previous output point.
                let fallback = pp.last().copied().unwrap_or_default();
                pp.push(line_cross(a, b, pi, pn).unwrap_or(fallback));
            }
        }
        p.clear();
        for i in 0..pp.len() {
            if i == 0 || !same(pp[i], pp[i - 1]) {
                p.push(pp[i]);
            }
        }
        while p.len() > 1 && same(p[p.len() - 1], p[0]) {
            p.pop();
        }
    }

    /// Signed intersection area of triangles (origin, a, b) and (origin, c, d).
    fn triangles(mut a: Point, mut b: Point, mut c: Point, mut d: Point) -> f64 {
        let o = Point::new(0.0, 0.0);
        let s1 = sig(cross(o, a, b));
        let s2 = sig(cross(o, c, d));
        if s1 == 0 || s2 == 0 {
            return 0.0;
        }
        if s1 == -1 {
            std::mem::swap(&mut a, &mut b);
        }
        if s2 == -1 {
            std::mem::swap(&mut c, &mut d);
        }
        let mut p = vec![o, a, b];
        polygon_cut(&mut p, o, c);
        polygon_cut(&mut p, c, d);
        polygon_cut(&mut p, d, o);
        let res = area(&p).abs();
        if s1 * s2 == -1 { -res } else { res }
    }

    /// Intersection area of two polygons; like the devkit, turns either polygon around (in place) when its signed
    /// area is negative.
    pub(super) fn polygons_intersection(p1: &mut [Point], p2: &mut [Point]) -> f64 {
        if area(p1) < 0.0 {
            p1.reverse();
        }
        if area(p2) < 0.0 {
            p2.reverse();
        }
        let (n1, n2) = (p1.len(), p2.len());
        let mut res = 0.0;
        for i in 0..n1 {
            for j in 0..n2 {
                res += triangles(p1[i], p1[(i + 1) % n1], p2[j], p2[(j + 1) % n2]);
            }
        }
        res
    }
}

/// A rotated box with its corners, axis-aligned hull and area computed once, for comparing one box with many (the
/// tracker's candidate pairs): [`prepared_rotated_iou`] gives exactly what [`rotated_iou`] gives for the same boxes,
/// without a sine and cosine per pair (`rotated_iou` computes the corners only for pairs whose hulls overlap, which
/// is cheaper when most pairs do not, as in NMS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PreparedBox {
    corners: [Point; 4],
    hull: BBox,
    area: f32,
}

impl PreparedBox {
    pub fn new(b: &OrientedBox) -> Self {
        Self {
            corners: b.corners(),
            hull: b.aabb(),
            area: b.area(),
        }
    }

    /// The axis-aligned hull (`OrientedBox::aabb`).
    pub fn hull(&self) -> &BBox {
        &self.hull
    }
}

/// Exact area of the intersection of two rotated boxes.
pub fn rotated_intersection_area(a: &OrientedBox, b: &OrientedBox) -> f32 {
    // The corners only when the hulls overlap (most pairs NMS compares do not).
    if a.area() <= 0.0 || b.area() <= 0.0 || intersection_area(&a.aabb(), &b.aabb()) <= 0.0 {
        return 0.0;
    }
    convex_intersection_area(&a.corners(), &b.corners()) as f32
}

/// [`rotated_intersection_area`] of two prepared boxes.
pub fn prepared_intersection_area(a: &PreparedBox, b: &PreparedBox) -> f32 {
    if a.area <= 0.0 || b.area <= 0.0 || intersection_area(&a.hull, &b.hull) <= 0.0 {
        return 0.0;
    }
    convex_intersection_area(&a.corners, &b.corners) as f32
}

/// Exact intersection over union of two rotated boxes, in `[0, 1]`.
pub fn rotated_iou(a: &OrientedBox, b: &OrientedBox) -> f32 {
    let inter = rotated_intersection_area(a, b);
    if inter <= 0.0 {
        return 0.0;
    }
    iou_of_areas(inter, a.area(), b.area())
}

/// Intersection over union from the intersection and the two areas, in `[0, 1]`.
fn iou_of_areas(inter: f32, a: f32, b: f32) -> f32 {
    let union = a + b - inter;
    if union > 0.0 {
        (inter / union).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// [`rotated_iou`] of two prepared boxes.
pub fn prepared_rotated_iou(a: &PreparedBox, b: &PreparedBox) -> f32 {
    let inter = prepared_intersection_area(a, b);
    if inter <= 0.0 {
        return 0.0;
    }
    iou_of_areas(inter, a.area, b.area)
}

/// Exact intersection over the smaller area of two rotated boxes, in `[0, 1]`.
pub fn rotated_ios(a: &OrientedBox, b: &OrientedBox) -> f32 {
    let inter = rotated_intersection_area(a, b);
    if inter <= 0.0 {
        return 0.0;
    }
    let smaller = a.area().min(b.area());
    if smaller > 0.0 {
        (inter / smaller).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The epsilon Ultralytics' `probiou` and `batch_probiou` use.
pub const PROBIOU_EPS: f64 = 1e-7;

/// Covariance `(a, b, c)` of the Gaussian of a rotated box, as Ultralytics' `_get_covariance_matrix`.
#[inline]
fn covariance(o: &OrientedBox) -> (f64, f64, f64) {
    let a = f64::from(o.w).powi(2) / 12.0;
    let b = f64::from(o.h).powi(2) / 12.0;
    let (s, c) = f64::from(o.angle).sin_cos();
    (
        a * c * c + b * s * s,
        a * s * s + b * c * c,
        (a - b) * c * s,
    )
}

/// Ultralytics' ProbIoU between two rotated boxes.
///
/// Computed with Ultralytics' formula and epsilon in `f64`, then clamped to `[0, 1]`: Ultralytics can return a
/// value a few 1e-8 below 0 for far-apart boxes, and returns `1 - sqrt(2e-7) = 0.99955` (not 1) for identical boxes;
/// nsod keeps the latter so that thresholds behave exactly as in Ultralytics.
pub fn probiou(p: &OrientedBox, q: &OrientedBox) -> f32 {
    let eps = PROBIOU_EPS;
    let (x1, y1) = (f64::from(p.cx), f64::from(p.cy));
    let (x2, y2) = (f64::from(q.cx), f64::from(q.cy));
    let (a1, b1, c1) = covariance(p);
    let (a2, b2, c2) = covariance(q);
    let denom = (a1 + a2) * (b1 + b2) - (c1 + c2).powi(2) + eps;
    let t1 = ((a1 + a2) * (y1 - y2).powi(2) + (b1 + b2) * (x1 - x2).powi(2)) / denom * 0.25;
    let t2 = ((c1 + c2) * (x2 - x1) * (y1 - y2)) / denom * 0.5;
    let det1 = (a1 * b1 - c1 * c1).max(0.0);
    let det2 = (a2 * b2 - c2 * c2).max(0.0);
    let t3 = (((a1 + a2) * (b1 + b2) - (c1 + c2).powi(2)) / (4.0 * (det1 * det2).sqrt() + eps)
        + eps)
        .ln()
        * 0.5;
    let bd = (t1 + t2 + t3).clamp(eps, 100.0);
    let bd = if bd.is_nan() { 100.0 } else { bd };
    let hd = (1.0 - (-bd).exp() + eps).sqrt();
    ((1.0 - hd) as f32).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4};

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    /// Values printed by the DOTA devkit's own `polyiou.iou_poly(gt, det)` (dotadevkit 1.3.0): random whole-pixel
    /// labels against float detections, a non-convex label, a self-intersecting one, a degenerate one and two
    /// squares. Equal to the last bit.
    #[test]
    fn dota_polygon_iou_is_the_devkits_to_the_bit() {
        let cases: &[([f64; 8], [f64; 8], f64)] = &[
            (
                [88.0, 45.0, 82.0, 86.0, 77.0, 85.0, 83.0, 45.0],
                [
                    67.42750993792069,
                    41.55001902130505,
                    93.58038876994752,
                    52.48928418058857,
                    83.80786361646713,
                    75.85279740569864,
                    57.654984784440316,
                    64.91353224641512,
                ],
                0.16507065666425413,
            ),
            (
                [73.0, 83.0, 90.0, 137.0, 72.0, 143.0, 55.0, 88.0],
                [
                    77.2999961660715,
                    86.91391099748502,
                    63.01921476511245,
                    134.71314779156845,
                    55.46935545243629,
                    132.4575073737769,
                    69.75013685339532,
                    84.65827057969348,
                ],
                0.2059818062325333,
            ),
            (
                [97.0, 82.0, 132.0, 88.0, 131.0, 93.0, 96.0, 86.0],
                [
                    103.66242467998154,
                    59.13912815843017,
                    138.23943299091425,
                    93.4207772160745,
                    122.83947536388328,
                    108.95341574120766,
                    88.26246705295057,
                    74.67176668356333,
                ],
                0.1463383147151667,
            ),
            (
                [100.0, 74.0, 133.0, 117.0, 114.0, 131.0, 82.0, 88.0],
                [
                    123.91397938723577,
                    78.04069371939629,
                    113.0639563912597,
                    118.35813195182611,
                    90.23283982799,
                    112.21393850612172,
                    101.08286282396608,
                    71.8965002736919,
                ],
                0.40596419351004503,
            ),
            (
                [153.0, 63.0, 141.0, 105.0, 122.0, 99.0, 134.0, 58.0],
                [
                    155.4655497538462,
                    87.53980647333566,
                    120.06746833880632,
                    107.40669750012597,
                    105.4758719292648,
                    81.40793820840591,
                    140.87395334430468,
                    61.541047181615596,
                ],
                0.46433326778659095,
            ),
            (
                [78.0, 68.0, 82.0, 109.0, 79.0, 110.0, 75.0, 68.0],
                [
                    73.50693194006026,
                    60.43201466338454,
                    80.54645623761174,
                    112.89000128914948,
                    75.41674273824101,
                    113.57837583687872,
                    68.37721844068953,
                    61.120389211113796,
                ],
                0.044379767845400396,
            ),
            (
                [99.0, 111.0, 131.0, 150.0, 110.0, 166.0, 79.0, 127.0],
                [
                    109.97949326373615,
                    128.22013705499586,
                    104.46457950310796,
                    145.1794677988242,
                    89.15947404795571,
                    140.20248268322928,
                    94.6743878085839,
                    123.24315193940095,
                ],
                0.22011579971400302,
            ),
            (
                [86.0, 38.0, 79.0, 66.0, 67.0, 62.0, 73.0, 35.0],
                [
                    96.42071482373443,
                    54.41830977781755,
                    56.577428099764674,
                    81.003300888923,
                    41.807057759426854,
                    58.86674654403693,
                    81.65034448339661,
                    32.28175543293148,
                ],
                0.2808919858929802,
            ),
            (
                [86.0, 79.0, 96.0, 81.0, 92.0, 101.0, 82.0, 99.0],
                [
                    76.25345728750736,
                    77.60160899066334,
                    86.79878904237069,
                    78.46405317809202,
                    85.75400773333607,
                    91.23886884227836,
                    75.20867597847274,
                    90.37642465484969,
                ],
                0.05476949701314217,
            ),
            (
                [139.0, 103.0, 145.0, 115.0, 136.0, 119.0, 130.0, 108.0],
                [
                    138.31645261804772,
                    96.5889361915195,
                    145.34782182011833,
                    104.54827166196513,
                    136.16625638727288,
                    112.6593729782778,
                    129.13488718520227,
                    104.70003750783216,
                ],
                0.23647982904581327,
            ),
            (
                [147.0, 65.0, 147.0, 71.0, 118.0, 68.0, 119.0, 61.0],
                [
                    133.51904827841946,
                    58.906776280680496,
                    150.17959126582747,
                    68.7702256351846,
                    143.60735269084995,
                    79.87152086836915,
                    126.94680970344196,
                    70.00807151386505,
                ],
                0.32722126020715103,
            ),
            (
                [113.0, 83.0, 149.0, 114.0, 141.0, 123.0, 105.0, 92.0],
                [
                    114.75822461120728,
                    90.80508114360619,
                    148.08453507870618,
                    93.90453620668514,
                    146.9177120408156,
                    106.45058253740454,
                    113.59140157331672,
                    103.3511274743256,
                ],
                0.2611438465529009,
            ),
            (
                [0.0, 0.0, 10.0, 0.0, 2.0, 2.0, 0.0, 10.0],
                [0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0],
                0.2,
            ),
            (
                [0.0, 0.0, 10.0, 10.0, 10.0, 0.0, 0.0, 10.0],
                [0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0],
                0.0,
            ),
            (
                [0.0, 0.0, 10.0, 0.0, 20.0, 0.0, 5.0, 0.0],
                [0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0],
                0.0,
            ),
            (
                [0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0],
                [5.0, 5.0, 15.0, 5.0, 15.0, 15.0, 5.0, 15.0],
                0.14285714285714285,
            ),
        ];
        let quad = |v: &[f64; 8]| -> [Point; 4] {
            [
                Point::new(v[0], v[1]),
                Point::new(v[2], v[3]),
                Point::new(v[4], v[5]),
                Point::new(v[6], v[7]),
            ]
        };
        for (g, d, want) in cases {
            let got = dota_polygon_iou(&quad(g), &quad(d));
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{g:?} {d:?}: {got} != {want}"
            );
        }
    }
    #[test]
    fn iou_hand_computed() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 5.0, 15.0, 15.0);
        assert_eq!(intersection_area(&a, &b), 25.0);
        assert!(close(iou(&a, &b), 25.0 / 175.0, 1e-7));
        assert!(close(ios(&a, &b), 0.25, 1e-7));
        let small = BBox::new(2.0, 2.0, 4.0, 4.0);
        assert_eq!(iou(&a, &small), 0.04);
        assert_eq!(ios(&a, &small), 1.0);
        assert_eq!(iou(&a, &BBox::new(10.0, 0.0, 20.0, 10.0)), 0.0); // touching edges
        assert_eq!(iou(&BBox::new(1.0, 1.0, 1.0, 5.0), &a), 0.0); // zero width
        assert_eq!(center_distance(&a, &b), 50f32.sqrt());
        assert_eq!(a.diagonal(), 200f32.sqrt());
    }

    #[test]
    fn rotated_iou_hand_computed() {
        // Two unit squares, one rotated by 45 degrees about the same centre: the intersection is a regular octagon
        // of area 2 (sqrt 2 - 1) = 0.828427; IoU = 0.828427 / (2 - 0.828427).
        let a = OrientedBox::new(0.0, 0.0, 1.0, 1.0, 0.0);
        let b = OrientedBox::new(0.0, 0.0, 1.0, 1.0, FRAC_PI_4);
        let inter = 2.0 * (2f32.sqrt() - 1.0);
        assert!(close(rotated_intersection_area(&a, &b), inter, 1e-6));
        assert!(close(rotated_iou(&a, &b), inter / (2.0 - inter), 1e-6));
        // A 4x2 box and the same box turned by 90 degrees: a 2x2 intersection, IoU 4 / 12.
        let c = OrientedBox::new(5.0, 5.0, 4.0, 2.0, 0.0);
        let d = OrientedBox::new(5.0, 5.0, 4.0, 2.0, FRAC_PI_2);
        assert!(close(rotated_iou(&c, &d), 1.0 / 3.0, 1e-6));
        assert!(close(rotated_ios(&c, &d), 0.5, 1e-6));
        // Disjoint.
        assert_eq!(
            rotated_iou(&c, &OrientedBox::new(50.0, 5.0, 4.0, 2.0, 0.3)),
            0.0
        );
        // Identical.
        assert!(close(rotated_iou(&c, &c), 1.0, 1e-6));
    }

    /// The prepared path (the tracker's) gives the very bits `rotated_iou` gives: overlapping, touching, disjoint,
    /// degenerate and identical pairs from a seeded generator, plus the hand-computed cases above.
    #[test]
    fn prepared_rotated_iou_is_rotated_iou_to_the_bit() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut r = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut pairs = vec![
            (
                OrientedBox::new(0.0, 0.0, 1.0, 1.0, 0.0),
                OrientedBox::new(0.0, 0.0, 1.0, 1.0, FRAC_PI_4),
            ),
            (
                OrientedBox::new(5.0, 5.0, 4.0, 2.0, 0.0),
                OrientedBox::new(5.0, 5.0, 4.0, 2.0, FRAC_PI_2),
            ),
            (
                OrientedBox::new(5.0, 5.0, 4.0, 2.0, 0.0),
                OrientedBox::new(9.0, 5.0, 4.0, 2.0, 0.0),
            ),
            (
                OrientedBox::new(5.0, 5.0, 0.0, 2.0, 0.3),
                OrientedBox::new(5.0, 5.0, 4.0, 2.0, 0.3),
            ),
        ];
        for _ in 0..5_000 {
            let mut b = || {
                OrientedBox::new(
                    30.0 * r(),
                    30.0 * r(),
                    0.5 + 15.0 * r(),
                    0.5 + 15.0 * r(),
                    (r() - 0.5) * 7.0,
                )
            };
            pairs.push((b(), b()));
        }
        let (mut overlapping, mut disjoint) = (0, 0);
        for (a, b) in &pairs {
            let (pa, pb) = (PreparedBox::new(a), PreparedBox::new(b));
            let want = rotated_iou(a, b);
            assert_eq!(
                prepared_rotated_iou(&pa, &pb).to_bits(),
                want.to_bits(),
                "{a:?} {b:?}"
            );
            assert_eq!(
                prepared_intersection_area(&pa, &pb).to_bits(),
                rotated_intersection_area(a, b).to_bits()
            );
            assert_eq!(pa.hull(), &a.aabb());
            if want > 0.0 {
                overlapping += 1;
            } else {
                disjoint += 1;
            }
        }
        // Both kinds of pair are exercised.
        assert!(
            overlapping > 1_000 && disjoint > 1_000,
            "{overlapping} {disjoint}"
        );
    }

    #[test]
    fn probiou_matches_ultralytics_values() {
        // Values printed by ultralytics 8.4.190 `ultralytics.utils.metrics.probiou` on float64 tensors.
        let cases = [
            (
                [0.0, 0.0, 10.0, 10.0, 0.0],
                [0.0, 0.0, 10.0, 10.0, 0.0],
                0.9995527864101446,
            ),
            (
                [5.0, 0.0, 10.0, 10.0, 0.0],
                [0.0, 0.0, 10.0, 10.0, 0.0],
                0.440794442662635,
            ),
            (
                [100.0, 50.0, 40.0, 10.0, 0.3],
                [110.0, 55.0, 35.0, 12.0, -0.4],
                0.32689923995408054,
            ),
            (
                [10.0, 20.0, 30.0, 8.0, 1.2],
                [14.0, 18.0, 25.0, 9.0, 2.9],
                0.3069406108777136,
            ),
            // Ultralytics returns -5e-8 here; nsod clamps to 0.
            (
                [0.0, 0.0, 10.0, 10.0, 0.0],
                [1000.0, 0.0, 10.0, 10.0, 0.0],
                0.0,
            ),
        ];
        for (a, b, want) in cases {
            let got = probiou(&OrientedBox::from(a), &OrientedBox::from(b));
            assert!(
                close(got, want as f32, 1e-6),
                "{a:?} {b:?}: {got} vs {want}"
            );
        }
        // A square turned by 90 degrees is the same Gaussian.
        let sq = OrientedBox::new(0.0, 0.0, 10.0, 10.0, 0.0);
        let r = OrientedBox::new(0.0, 0.0, 10.0, 10.0, FRAC_PI_2);
        assert!(close(probiou(&sq, &r), probiou(&sq, &sq), 1e-6));
    }

    #[test]
    fn probiou_zero_size_box_does_not_nan() {
        let a = OrientedBox::new(0.0, 0.0, 0.0, 0.0, 0.0);
        let v = probiou(&a, &a);
        assert!((0.0..=1.0).contains(&v));
    }
}
