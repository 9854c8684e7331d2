//! Spatial relations between the detections of one image: the one extractor both the symbolic stage and the
//! knowledge graph use.
//!
//! Definitions (defaults from the reference pipeline; [`RelationParams`] changes them, and the rule base can too):
//!
//! | relation | holds for subject S and object O when | weight |
//! |---|---|---|
//! | `located_near` | centre distance < `near_factor` x the mean of both box diagonals | centre distance (px) |
//! | `adjacent_to` | the boxes do not overlap and the gap between them (between the rotated boxes when there are some) <= `adjacent_factor` x S's diagonal | gap (px) |
//! | `located_on` | intersection / S's area >= `on_ratio` | that ratio |
//! | `overlaps` | the boxes intersect | intersection over union |
//!
//! `located_near` and `overlaps` are symmetric and reported in both directions; `adjacent_to` and `located_on`
//! are directional. Intersections use the rotated boxes when a detection has one. `cooccurs` (same image) needs
//! no geometry and is counted by the knowledge graph from the class counts.
//!
//! A uniform grid limits the pairs examined to boxes within reach of each other, so thousands of detections cost
//! far less than all pairs.

use crate::geometry::{distance, iou};
use crate::index::Grid;
use crate::{BBox, Detection, Point};

/// The relation types.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    LocatedNear,
    AdjacentTo,
    LocatedOn,
    Overlaps,
}

impl Relation {
    pub const ALL: [Relation; 4] = [
        Self::LocatedNear,
        Self::AdjacentTo,
        Self::LocatedOn,
        Self::Overlaps,
    ];

    /// The Prolog atom / label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::LocatedNear => "located_near",
            Self::AdjacentTo => "adjacent_to",
            Self::LocatedOn => "located_on",
            Self::Overlaps => "overlaps",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Geometry thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelationParams {
    pub near_factor: f32,
    pub adjacent_factor: f32,
    pub on_ratio: f32,
}

impl Default for RelationParams {
    fn default() -> Self {
        Self {
            near_factor: 2.0,
            adjacent_factor: 0.1,
            on_ratio: 0.5,
        }
    }
}

/// One relation: `subject relation object`, indices into the detections.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RelationEdge {
    pub subject: usize,
    pub object: usize,
    pub relation: Relation,
    pub weight: f32,
}

/// Intersection area, with the rotated corners precomputed (`None` for axis-aligned detections).
fn intersection_pre(
    a: &Detection,
    b: &Detection,
    ca: Option<&[Point; 4]>,
    cb: Option<&[Point; 4]>,
) -> f32 {
    // `bbox` encloses the rotated box: no overlap there means none at all (and skips the polygon clipping).
    if crate::geometry::intersection_area(&a.bbox, &b.bbox) <= 0.0 {
        return 0.0;
    }
    match (ca, cb) {
        (None, None) => crate::geometry::intersection_area(&a.bbox, &b.bbox),
        _ => {
            let pa = ca.copied().unwrap_or_else(|| a.as_oriented().corners());
            let pb = cb.copied().unwrap_or_else(|| b.as_oriented().corners());
            crate::geometry::convex_intersection_area(&pa, &pb) as f32
        }
    }
}

fn area(d: &Detection) -> f32 {
    d.obb.map_or_else(|| d.bbox.area(), |o| o.area())
}

/// Gap between two detections that do not overlap: between the rotated boxes when either has one (the shortest
/// distance from a corner of one to an edge of the other), else between the rectangles.
fn detection_gap(
    a: &Detection,
    b: &Detection,
    ca: Option<&[Point; 4]>,
    cb: Option<&[Point; 4]>,
) -> f32 {
    if a.obb.is_none() && b.obb.is_none() {
        return gap(&a.bbox, &b.bbox);
    }
    let pa = ca.copied().unwrap_or_else(|| a.as_oriented().corners());
    let pb = cb.copied().unwrap_or_else(|| b.as_oriented().corners());
    let seg = |p: Point, s0: Point, s1: Point| -> f64 {
        let (dx, dy) = (s1.x - s0.x, s1.y - s0.y);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (((p.x - s0.x) * dx + (p.y - s0.y) * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (p.x - (s0.x + t * dx)).hypot(p.y - (s0.y + t * dy))
    };
    let mut best = f64::MAX;
    for (ps, qs) in [(&pa, &pb), (&pb, &pa)] {
        for &p in ps.iter() {
            for k in 0..4 {
                best = best.min(seg(p, qs[k], qs[(k + 1) % 4]));
            }
        }
    }
    best as f32
}

/// Gap between two rectangles (0 when they touch or overlap).
fn gap(a: &BBox, b: &BBox) -> f32 {
    let dx = (a.x1 - b.x2).max(b.x1 - a.x2).max(0.0);
    let dy = (a.y1 - b.y2).max(b.y1 - a.y2).max(0.0);
    dx.hypot(dy)
}

/// Every relation between the detections, sorted by (subject, object, relation). `wanted(s, o)` (indices into
/// `dets`) can restrict the
/// class pairs examined (all pairs by default, or an allow-list like the reference's).
pub fn extract(
    dets: &[Detection],
    params: &RelationParams,
    wanted: impl Fn(usize, usize) -> bool,
) -> Vec<RelationEdge> {
    // The diagonal of the detection's own box (the rotated one for OBB models).
    let diag: Vec<f32> = dets
        .iter()
        .map(|d| d.obb.map_or_else(|| d.bbox.diagonal(), |o| o.diagonal()))
        .collect();
    // Reach of each box: its centre square for "near" and its rectangle grown for "adjacent".
    let search: Vec<BBox> = dets
        .iter()
        .zip(&diag)
        .map(|(d, &g)| {
            let c = d.bbox.center();
            let r = params.near_factor.max(0.0) * g;
            let a = params.adjacent_factor.max(0.0) * g;
            BBox::new(
                (c.x as f32 - r).min(d.bbox.x1 - a),
                (c.y as f32 - r).min(d.bbox.y1 - a),
                (c.x as f32 + r).max(d.bbox.x2 + a),
                (c.y as f32 + r).max(d.bbox.y2 + a),
            )
        })
        .collect();
    let centers: Vec<Point> = dets.iter().map(|d| d.bbox.center()).collect();
    let corners: Vec<Option<[Point; 4]>> =
        dets.iter().map(|d| d.obb.map(|o| o.corners())).collect();
    let mut grid = Grid::new(&search);
    let mut out = Vec::new();
    let mut near = Vec::new();
    for i in 0..dets.len() {
        near.clear();
        grid.for_each_near(&search[i], |j| {
            if j > i {
                near.push(j);
            }
        });
        near.sort_unstable();
        for &j in &near {
            let (a, b) = (&dets[i], &dets[j]);
            let (ab, ba) = (wanted(i, j), wanted(j, i));
            if !ab && !ba {
                continue;
            }
            let mut push = |s: usize, o: usize, relation: Relation, weight: f32| {
                if (s == i && ab) || (s == j && ba) {
                    out.push(RelationEdge {
                        subject: s,
                        object: o,
                        relation,
                        weight,
                    });
                }
            };
            let d = distance(centers[i], centers[j]) as f32;
            if d < params.near_factor * (diag[i] + diag[j]) / 2.0 {
                push(i, j, Relation::LocatedNear, d);
                push(j, i, Relation::LocatedNear, d);
            }
            let (ca, cb) = (corners[i].as_ref(), corners[j].as_ref());
            let inter = intersection_pre(a, b, ca, cb);
            if inter > 0.0 {
                let o = if a.obb.is_some() || b.obb.is_some() {
                    let union = area(a) + area(b) - inter;
                    if union > 0.0 { inter / union } else { 0.0 }
                } else {
                    iou(&a.bbox, &b.bbox)
                };
                push(i, j, Relation::Overlaps, o);
                push(j, i, Relation::Overlaps, o);
                for (s, ob) in [(i, j), (j, i)] {
                    let sa = area(&dets[s]);
                    if sa > 0.0 && inter / sa >= params.on_ratio {
                        push(s, ob, Relation::LocatedOn, inter / sa);
                    }
                }
            } else {
                // The rectangles' gap never exceeds the boxes' own: skip the exact gap when even that is too far.
                let reach = params.adjacent_factor * diag[i].max(diag[j]);
                if gap(&a.bbox, &b.bbox) > reach {
                    continue;
                }
                let g = detection_gap(a, b, ca, cb);
                for (s, ob) in [(i, j), (j, i)] {
                    if g <= params.adjacent_factor * diag[s] {
                        push(s, ob, Relation::AdjacentTo, g);
                    }
                }
            }
        }
    }
    out.sort_by_key(|x| (x.subject, x.object, x.relation));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: &str, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection::new(0, class, 0.9, BBox::new(x1, y1, x2, y2))
    }

    fn rels(edges: &[RelationEdge]) -> Vec<(usize, usize, &'static str)> {
        edges
            .iter()
            .map(|e| (e.subject, e.object, e.relation.as_str()))
            .collect()
    }

    #[test]
    fn each_relation_on_hand_placed_boxes() {
        let p = RelationParams::default();
        // Two 10x10 boxes 25 px apart (centre to centre): diagonal 14.14, near limit 2 x 14.14 = 28.3.
        let d = vec![
            det("a", 0.0, 0.0, 10.0, 10.0),
            det("b", 25.0, 0.0, 35.0, 10.0),
        ];
        assert_eq!(
            rels(&extract(&d, &p, |_, _| true)),
            vec![(0, 1, "located_near"), (1, 0, "located_near")]
        );
        // 30 px apart: not near.
        let d = vec![
            det("a", 0.0, 0.0, 10.0, 10.0),
            det("b", 30.0, 0.0, 40.0, 10.0),
        ];
        assert!(extract(&d, &p, |_, _| true).is_empty());
        // A 1 px gap is adjacent (<= 0.1 x 14.14) and near.
        let d = vec![
            det("a", 0.0, 0.0, 10.0, 10.0),
            det("b", 11.0, 0.0, 21.0, 10.0),
        ];
        let e = extract(&d, &p, |_, _| true);
        assert_eq!(
            rels(&e),
            vec![
                (0, 1, "located_near"),
                (0, 1, "adjacent_to"),
                (1, 0, "located_near"),
                (1, 0, "adjacent_to")
            ]
        );
        assert_eq!(e[1].weight, 1.0);
        // A small box on a big one: on (for the small one only), overlaps both ways, near both ways.
        let d = vec![
            det("ship", 10.0, 10.0, 14.0, 14.0),
            det("harbor", 0.0, 0.0, 100.0, 100.0),
        ];
        let e = extract(&d, &p, |_, _| true);
        assert_eq!(
            rels(&e),
            vec![
                (0, 1, "located_near"),
                (0, 1, "located_on"),
                (0, 1, "overlaps"),
                (1, 0, "located_near"),
                (1, 0, "overlaps")
            ]
        );
        let on = e
            .iter()
            .find(|x| x.relation == Relation::LocatedOn)
            .unwrap();
        assert_eq!(on.weight, 1.0);
    }

    #[test]
    fn thresholds_are_exact_at_the_boundary() {
        let p = RelationParams::default();
        // 3x4 boxes: diagonal 5, near means centre distance < 10.
        let at = |dx: f32| {
            vec![
                det("a", 0.0, 0.0, 3.0, 4.0),
                det("b", dx, 0.0, dx + 3.0, 4.0),
            ]
        };
        let has =
            |e: &[RelationEdge], r: Relation| e.iter().any(|x| x.relation == r && x.subject == 0);
        assert!(!has(
            &extract(&at(10.0), &p, |_, _| true),
            Relation::LocatedNear
        )); // exactly 10: not near
        assert!(has(
            &extract(&at(9.99), &p, |_, _| true),
            Relation::LocatedNear
        ));
        // Adjacent: gap <= 0.1 x 5 = 0.5.
        assert!(has(
            &extract(&at(3.5), &p, |_, _| true),
            Relation::AdjacentTo
        )); // gap exactly 0.5
        assert!(!has(
            &extract(&at(3.51), &p, |_, _| true),
            Relation::AdjacentTo
        ));
        // On: intersection / subject area >= 0.5, exactly half counts.
        let half = vec![
            det("s", 9.0, 0.0, 11.0, 2.0),
            det("o", 10.0, -10.0, 30.0, 10.0),
        ];
        assert!(has(&extract(&half, &p, |_, _| true), Relation::LocatedOn));
        let less = vec![
            det("s", 9.0, 0.0, 11.0, 2.0),
            det("o", 10.01, -10.0, 30.0, 10.0),
        ];
        assert!(!has(&extract(&less, &p, |_, _| true), Relation::LocatedOn));
    }

    #[test]
    fn rotated_boxes_use_their_own_geometry() {
        use crate::OrientedBox;
        let p = RelationParams::default();
        let o = |cx: f32, cy: f32, w: f32, h: f32, a: f32| {
            Detection::oriented(0, "x", 0.9, OrientedBox::new(cx, cy, w, h, a))
        };
        let quarter = std::f32::consts::FRAC_PI_4;
        // Two parallel 40x10 bars at 45 degrees, 11 px apart centre to centre across their short side: a 1 px gap,
        // although their enclosing rectangles overlap widely.
        let (nx, ny) = (-quarter.sin(), quarter.cos());
        let bars = vec![
            o(100.0, 100.0, 40.0, 10.0, quarter),
            o(100.0 + 11.0 * nx, 100.0 + 11.0 * ny, 40.0, 10.0, quarter),
        ];
        let e = extract(&bars, &p, |_, _| true);
        let adj = e
            .iter()
            .find(|x| x.relation == Relation::AdjacentTo)
            .expect("adjacent");
        assert!((adj.weight - 1.0).abs() < 1e-3, "{adj:?}");
        assert!(!e.iter().any(|x| x.relation == Relation::Overlaps));
        // A small rotated box inside a big rotated one: on, for the small one only.
        let nested = vec![o(0.0, 0.0, 6.0, 4.0, 1.0), o(1.0, 1.0, 60.0, 40.0, 0.3)];
        let e = extract(&nested, &p, |_, _| true);
        let on: Vec<_> = e
            .iter()
            .filter(|x| x.relation == Relation::LocatedOn)
            .map(|x| (x.subject, x.weight))
            .collect();
        assert_eq!(on.len(), 1);
        assert_eq!(on[0].0, 0);
        assert!((on[0].1 - 1.0).abs() < 1e-4);
    }

    #[test]
    fn class_filter_and_thresholds_apply() {
        let d = vec![
            det("a", 0.0, 0.0, 10.0, 10.0),
            det("b", 25.0, 0.0, 35.0, 10.0),
        ];
        assert!(
            extract(&d, &RelationParams::default(), |s, _| d[s].class_name
                == "a")
            .iter()
            .all(|e| e.subject == 0)
        );
        let tight = RelationParams {
            near_factor: 1.0,
            ..Default::default()
        };
        assert!(extract(&d, &tight, |_, _| true).is_empty());
    }

    #[test]
    fn grid_search_finds_what_all_pairs_find() {
        let mut s = 7u64;
        let mut rnd = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 33) as f32 / (1u64 << 31) as f32
        };
        let d: Vec<Detection> = (0..300)
            .map(|_| {
                let (x, y, w, h) = (
                    rnd() * 500.0,
                    rnd() * 500.0,
                    3.0 + rnd() * 40.0,
                    3.0 + rnd() * 40.0,
                );
                det("x", x, y, x + w, y + h)
            })
            .collect();
        let p = RelationParams::default();
        let got = extract(&d, &p, |_, _| true);
        // Brute force with the same definitions, one pair at a time.
        let mut want = Vec::new();
        for i in 0..d.len() {
            for j in i + 1..d.len() {
                want.extend(
                    extract(&[d[i].clone(), d[j].clone()], &p, |_, _| true)
                        .into_iter()
                        .map(|mut e| {
                            (e.subject, e.object) = if e.subject == 0 { (i, j) } else { (j, i) };
                            e
                        }),
                );
            }
        }
        want.sort_by(|x, y| {
            (x.subject, x.object, x.relation).cmp(&(y.subject, y.object, y.relation))
        });
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);
    }
}
