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

/// Exact area of the intersection of two rotated boxes.
pub fn rotated_intersection_area(a: &OrientedBox, b: &OrientedBox) -> f32 {
    if a.area() <= 0.0 || b.area() <= 0.0 || intersection_area(&a.aabb(), &b.aabb()) <= 0.0 {
        return 0.0;
    }
    convex_intersection_area(&a.corners(), &b.corners()) as f32
}

/// Exact intersection over union of two rotated boxes, in `[0, 1]`.
pub fn rotated_iou(a: &OrientedBox, b: &OrientedBox) -> f32 {
    let inter = rotated_intersection_area(a, b);
    if inter <= 0.0 {
        return 0.0;
    }
    let union = a.area() + b.area() - inter;
    if union > 0.0 {
        (inter / union).clamp(0.0, 1.0)
    } else {
        0.0
    }
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
