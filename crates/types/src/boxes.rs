//! Box types. All coordinates are image pixels, x to the right and y down, as in Ultralytics and DOTA.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// A point in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }
}

/// An axis-aligned box `x1 <= x2`, `y1 <= y2` in pixels. Serialised as `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "[f32; 4]", into = "[f32; 4]")]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl From<[f32; 4]> for BBox {
    fn from(v: [f32; 4]) -> Self {
        Self::new(v[0], v[1], v[2], v[3])
    }
}

impl From<BBox> for [f32; 4] {
    fn from(b: BBox) -> Self {
        [b.x1, b.y1, b.x2, b.y2]
    }
}

impl BBox {
    /// A box from two corners; the coordinates are ordered so that `x1 <= x2` and `y1 <= y2`.
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self {
            x1: x1.min(x2),
            y1: y1.min(y2),
            x2: x1.max(x2),
            y2: y1.max(y2),
        }
    }

    /// A box from its centre and size (YOLO's `xywh`).
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    /// A box from its top-left corner and size (COCO's `xywh`).
    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self::new(x, y, x + w, y + h)
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> Point {
        Point::new(
            (f64::from(self.x1) + f64::from(self.x2)) / 2.0,
            (f64::from(self.y1) + f64::from(self.y2)) / 2.0,
        )
    }

    /// Length of the diagonal.
    pub fn diagonal(&self) -> f32 {
        self.width().hypot(self.height())
    }

    /// `(cx, cy, w, h)`.
    pub fn to_cxcywh(&self) -> [f32; 4] {
        [
            (self.x1 + self.x2) / 2.0,
            (self.y1 + self.y2) / 2.0,
            self.width(),
            self.height(),
        ]
    }

    /// True when all coordinates are finite numbers.
    pub fn is_finite(&self) -> bool {
        self.x1.is_finite() && self.y1.is_finite() && self.x2.is_finite() && self.y2.is_finite()
    }

    /// The box moved by `(dx, dy)`.
    pub fn translate(&self, dx: f32, dy: f32) -> Self {
        Self {
            x1: self.x1 + dx,
            y1: self.y1 + dy,
            x2: self.x2 + dx,
            y2: self.y2 + dy,
        }
    }

    /// The box clipped to `[0, width] x [0, height]`.
    pub fn clip(&self, width: f32, height: f32) -> Self {
        Self {
            x1: self.x1.clamp(0.0, width),
            y1: self.y1.clamp(0.0, height),
            x2: self.x2.clamp(0.0, width),
            y2: self.y2.clamp(0.0, height),
        }
    }

    /// The axis-aligned box as an [`OrientedBox`] with angle 0.
    pub fn to_oriented(&self) -> OrientedBox {
        let [cx, cy, w, h] = self.to_cxcywh();
        OrientedBox::new(cx, cy, w, h, 0.0)
    }
}

/// A rotated box: centre, width, height and angle in radians, as Ultralytics' `xywhr`.
///
/// The angle turns the width axis from the image x axis towards the y axis (clockwise on screen, since y points
/// down). Serialised as `[cx, cy, w, h, angle]`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "[f32; 5]", into = "[f32; 5]")]
pub struct OrientedBox {
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
    pub angle: f32,
}

impl From<[f32; 5]> for OrientedBox {
    fn from(v: [f32; 5]) -> Self {
        Self::new(v[0], v[1], v[2], v[3], v[4])
    }
}

impl From<OrientedBox> for [f32; 5] {
    fn from(b: OrientedBox) -> Self {
        [b.cx, b.cy, b.w, b.h, b.angle]
    }
}

impl OrientedBox {
    pub const fn new(cx: f32, cy: f32, w: f32, h: f32, angle: f32) -> Self {
        Self {
            cx,
            cy,
            w,
            h,
            angle,
        }
    }

    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    pub fn center(&self) -> Point {
        Point::new(self.cx.into(), self.cy.into())
    }

    pub fn diagonal(&self) -> f32 {
        self.w.hypot(self.h)
    }

    /// The four corners in Ultralytics' `xywhr2xyxyxyxy` order: `c + v1 + v2`, `c + v1 - v2`, `c - v1 - v2`,
    /// `c - v1 + v2`, with `v1 = w/2 (cos a, sin a)` and `v2 = h/2 (-sin a, cos a)`.
    pub fn corners(&self) -> [Point; 4] {
        let (s, c) = f64::from(self.angle).sin_cos();
        let (hw, hh) = (f64::from(self.w) / 2.0, f64::from(self.h) / 2.0);
        let (v1x, v1y) = (hw * c, hw * s);
        let (v2x, v2y) = (-hh * s, hh * c);
        let (cx, cy) = (f64::from(self.cx), f64::from(self.cy));
        [
            Point::new(cx + v1x + v2x, cy + v1y + v2y),
            Point::new(cx + v1x - v2x, cy + v1y - v2y),
            Point::new(cx - v1x - v2x, cy - v1y - v2y),
            Point::new(cx - v1x + v2x, cy - v1y + v2y),
        ]
    }

    /// The smallest axis-aligned box that encloses the rotated box.
    pub fn aabb(&self) -> BBox {
        let (s, c) = f64::from(self.angle).sin_cos();
        let (w, h) = (f64::from(self.w), f64::from(self.h));
        let half_w = (w * c.abs() + h * s.abs()) / 2.0;
        let half_h = (w * s.abs() + h * c.abs()) / 2.0;
        let (cx, cy) = (f64::from(self.cx), f64::from(self.cy));
        BBox::new(
            (cx - half_w) as f32,
            (cy - half_h) as f32,
            (cx + half_w) as f32,
            (cy + half_h) as f32,
        )
    }

    /// Ultralytics' `regularize_rboxes`: the long side becomes `w` and the angle is taken modulo pi, into `[0, pi)`.
    /// The rectangle covered is unchanged.
    pub fn regularized(&self) -> Self {
        let (w, h, a) = if self.w >= self.h {
            (self.w, self.h, f64::from(self.angle))
        } else {
            (self.h, self.w, f64::from(self.angle) + PI / 2.0)
        };
        let mut a = a.rem_euclid(PI);
        if a >= PI {
            a = 0.0;
        }
        Self {
            cx: self.cx,
            cy: self.cy,
            w,
            h,
            angle: a as f32,
        }
    }

    pub fn is_finite(&self) -> bool {
        self.cx.is_finite()
            && self.cy.is_finite()
            && self.w.is_finite()
            && self.h.is_finite()
            && self.angle.is_finite()
    }

    /// The minimum-area rectangle that encloses `points` (OpenCV's `minAreaRect`, used by Ultralytics to turn a
    /// 4-corner polygon into `xywhr`), regularised with [`OrientedBox::regularized`]. Returns `None` when there are
    /// no points or a coordinate is not finite.
    pub fn from_polygon(points: &[Point]) -> Option<Self> {
        if points.is_empty() || points.iter().any(|p| !p.x.is_finite() || !p.y.is_finite()) {
            return None;
        }
        let hull = convex_hull(points);
        if hull.len() < 3 {
            // A point or a segment: a rectangle of zero height along the segment.
            let (a, b) = farthest_pair(&hull);
            let cx = (a.x + b.x) / 2.0;
            let cy = (a.y + b.y) / 2.0;
            let len = (b.x - a.x).hypot(b.y - a.y);
            let angle = if len > 0.0 {
                (b.y - a.y).atan2(b.x - a.x)
            } else {
                0.0
            };
            return Some(
                Self::new(cx as f32, cy as f32, len as f32, 0.0, angle as f32).regularized(),
            );
        }
        let mut best: Option<(f64, Self)> = None;
        for i in 0..hull.len() {
            let p = hull[i];
            let q = hull[(i + 1) % hull.len()];
            let len = (q.x - p.x).hypot(q.y - p.y);
            if len == 0.0 {
                continue;
            }
            let (ux, uy) = ((q.x - p.x) / len, (q.y - p.y) / len);
            let (vx, vy) = (-uy, ux);
            let (mut umin, mut umax, mut vmin, mut vmax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
            for r in &hull {
                let pu = r.x * ux + r.y * uy;
                let pv = r.x * vx + r.y * vy;
                umin = umin.min(pu);
                umax = umax.max(pu);
                vmin = vmin.min(pv);
                vmax = vmax.max(pv);
            }
            let area = (umax - umin) * (vmax - vmin);
            if best.as_ref().is_none_or(|(a, _)| area < *a - 1e-9) {
                let mu = (umin + umax) / 2.0;
                let mv = (vmin + vmax) / 2.0;
                let cx = mu * ux + mv * vx;
                let cy = mu * uy + mv * vy;
                let angle = uy.atan2(ux);
                let obb = Self::new(
                    cx as f32,
                    cy as f32,
                    (umax - umin) as f32,
                    (vmax - vmin) as f32,
                    angle as f32,
                );
                best = Some((area, obb));
            }
        }
        best.map(|(_, b)| b.regularized())
    }
}

fn farthest_pair(points: &[Point]) -> (Point, Point) {
    let mut best = (points[0], points[0], 0.0);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let d = (b.x - a.x).hypot(b.y - a.y);
            if d > best.2 {
                best = (*a, *b, d);
            }
        }
    }
    (best.0, best.1)
}

/// Andrew's monotone chain; counter-clockwise in a y-up frame, collinear points dropped.
pub(crate) fn convex_hull(points: &[Point]) -> Vec<Point> {
    let mut pts: Vec<Point> = points.to_vec();
    pts.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross =
        |o: Point, a: Point, b: Point| (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
    let mut hull: Vec<Point> = Vec::with_capacity(pts.len() * 2);
    // Lower hull, then upper hull; the upper pass never pops into the lower one.
    for &p in &pts {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
            hull.pop();
        }
        hull.push(p);
    }
    let lower_len = hull.len() + 1;
    for &p in pts.iter().rev().skip(1) {
        while hull.len() >= lower_len && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
        {
            hull.pop();
        }
        hull.push(p);
    }
    hull.pop();
    hull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corners_match_ultralytics_order() {
        // xywhr2xyxyxyxy([10, 20, 4, 2, 0]) = [[12, 21], [12, 19], [8, 19], [8, 21]]
        let c = OrientedBox::new(10.0, 20.0, 4.0, 2.0, 0.0).corners();
        let want = [(12.0, 21.0), (12.0, 19.0), (8.0, 19.0), (8.0, 21.0)];
        for (p, (x, y)) in c.iter().zip(want) {
            assert!(
                (p.x - x).abs() < 1e-9 && (p.y - y).abs() < 1e-9,
                "{p:?} != ({x}, {y})"
            );
        }
    }

    #[test]
    fn aabb_of_rotated_square() {
        let b = OrientedBox::new(0.0, 0.0, 2.0, 2.0, std::f32::consts::FRAC_PI_4).aabb();
        let r = 2f32.sqrt();
        assert!(
            (b.x1 + r).abs() < 1e-5
                && (b.x2 - r).abs() < 1e-5
                && (b.y1 + r).abs() < 1e-5
                && (b.y2 - r).abs() < 1e-5
        );
    }

    #[test]
    fn regularized_puts_long_side_first() {
        let r = OrientedBox::new(5.0, 5.0, 2.0, 6.0, 0.1).regularized();
        assert_eq!((r.w, r.h), (6.0, 2.0));
        assert!((r.angle - (0.1 + std::f32::consts::FRAC_PI_2)).abs() < 1e-6);
        let r = OrientedBox::new(5.0, 5.0, 6.0, 2.0, -0.5).regularized();
        assert!((r.angle - (std::f32::consts::PI - 0.5)).abs() < 1e-6);
    }

    #[test]
    fn from_polygon_recovers_rotated_rectangle() {
        let obb = OrientedBox::new(100.0, 50.0, 40.0, 10.0, 0.3);
        let back = OrientedBox::from_polygon(&obb.corners()).unwrap();
        assert!((back.cx - 100.0).abs() < 1e-4 && (back.cy - 50.0).abs() < 1e-4);
        assert!((back.w - 40.0).abs() < 1e-4 && (back.h - 10.0).abs() < 1e-4);
        assert!((back.angle - 0.3).abs() < 1e-5, "{back:?}");
    }

    #[test]
    fn from_polygon_of_irregular_quad_encloses_it() {
        let pts = [
            Point::new(0.0, 0.0),
            Point::new(10.0, 1.0),
            Point::new(11.0, 6.0),
            Point::new(-1.0, 5.0),
        ];
        let r = OrientedBox::from_polygon(&pts).unwrap();
        let aabb = r.aabb();
        for p in pts {
            assert!(p.x >= f64::from(aabb.x1) - 1e-4 && p.x <= f64::from(aabb.x2) + 1e-4);
        }
        assert!(r.area() >= 55.0 - 1e-3, "area {}", r.area()); // the quad itself has area 55 (shoelace)
        assert!(OrientedBox::from_polygon(&[]).is_none());
        assert!(OrientedBox::from_polygon(&[Point::new(f64::NAN, 0.0)]).is_none());
    }

    #[test]
    fn degenerate_polygon_is_a_segment() {
        let r = OrientedBox::from_polygon(&[
            Point::new(0.0, 0.0),
            Point::new(4.0, 0.0),
            Point::new(2.0, 0.0),
        ])
        .unwrap();
        assert_eq!((r.cx, r.cy, r.w, r.h), (2.0, 0.0, 4.0, 0.0));
    }

    #[test]
    fn bbox_serialises_as_array() {
        let b = BBox::new(3.0, 4.0, 1.0, 2.0);
        assert_eq!(serde_json::to_string(&b).unwrap(), "[1.0,2.0,3.0,4.0]");
        let o: OrientedBox = serde_json::from_str("[1,2,3,4,0.5]").unwrap();
        assert_eq!(o, OrientedBox::new(1.0, 2.0, 3.0, 4.0, 0.5));
    }
}
