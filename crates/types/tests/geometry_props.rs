//! Property tests of the overlap measures.

use nsod_types::geometry::{ios, iou, probiou, rotated_ios, rotated_iou};
use nsod_types::{BBox, OrientedBox};
use proptest::prelude::*;
use std::f32::consts::{FRAC_PI_2, PI};

fn bbox() -> impl Strategy<Value = BBox> {
    (-500f32..500.0, -500f32..500.0, 2f32..200.0, 2f32..200.0)
        .prop_map(|(x, y, w, h)| BBox::from_xywh(x, y, w, h))
}

fn obb() -> impl Strategy<Value = OrientedBox> {
    (
        -300f32..300.0,
        -300f32..300.0,
        2f32..150.0,
        2f32..150.0,
        -PI..PI,
    )
        .prop_map(|(cx, cy, w, h, a)| OrientedBox::new(cx, cy, w, h, a))
}

/// Two boxes that overlap often enough to exercise the clipping code: the second is centred near the first.
fn obb_pair() -> impl Strategy<Value = (OrientedBox, OrientedBox)> {
    (
        obb(),
        -60f32..60.0,
        -60f32..60.0,
        2f32..150.0,
        2f32..150.0,
        -PI..PI,
    )
        .prop_map(|(a, dx, dy, w, h, t)| (a, OrientedBox::new(a.cx + dx, a.cy + dy, w, h, t)))
}

fn rotate_about_origin(o: &OrientedBox, theta: f32) -> OrientedBox {
    let (s, c) = f64::from(theta).sin_cos();
    let (x, y) = (f64::from(o.cx), f64::from(o.cy));
    OrientedBox::new(
        (x * c - y * s) as f32,
        (x * s + y * c) as f32,
        o.w,
        o.h,
        o.angle + theta,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn iou_is_symmetric_and_bounded(a in bbox(), b in bbox()) {
        let v = iou(&a, &b);
        prop_assert!((0.0..=1.0).contains(&v));
        prop_assert_eq!(v, iou(&b, &a));
        let s = ios(&a, &b);
        prop_assert!((0.0..=1.0).contains(&s));
        prop_assert!(s >= v);
    }

    #[test]
    fn iou_with_itself_is_one(a in bbox()) {
        prop_assert_eq!(iou(&a, &a), 1.0);
        prop_assert_eq!(ios(&a, &a), 1.0);
    }

    #[test]
    fn rotated_iou_equals_axis_aligned_at_zero_angle(a in bbox(), dx in -100f32..100.0, dy in -100f32..100.0, w in 2f32..200.0, h in 2f32..200.0) {
        let b = BBox::from_xywh(a.x1 + dx, a.y1 + dy, w, h);
        let want = iou(&a, &b);
        prop_assert!((rotated_iou(&a.to_oriented(), &b.to_oriented()) - want).abs() < 1e-4);
        prop_assert!((rotated_ios(&a.to_oriented(), &b.to_oriented()) - ios(&a, &b)).abs() < 1e-4);
    }

    #[test]
    fn rotated_iou_equals_axis_aligned_at_right_angle_with_swapped_sides(a in bbox(), dx in -100f32..100.0, dy in -100f32..100.0, w in 2f32..200.0, h in 2f32..200.0) {
        let b = BBox::from_xywh(a.x1 + dx, a.y1 + dy, w, h);
        let want = iou(&a, &b);
        let turn = |x: &BBox| {
            let [cx, cy, w, h] = x.to_cxcywh();
            OrientedBox::new(cx, cy, h, w, FRAC_PI_2)
        };
        prop_assert!((rotated_iou(&turn(&a), &turn(&b)) - want).abs() < 1e-4, "{} vs {}", rotated_iou(&turn(&a), &turn(&b)), want);
    }

    #[test]
    fn rotated_iou_is_symmetric_bounded_and_one_with_itself((a, b) in obb_pair()) {
        let v = rotated_iou(&a, &b);
        prop_assert!((0.0..=1.0).contains(&v));
        prop_assert!((v - rotated_iou(&b, &a)).abs() < 1e-5);
        prop_assert!((rotated_iou(&a, &a) - 1.0).abs() < 1e-5);
        prop_assert!(rotated_ios(&a, &b) >= v - 1e-6);
    }

    #[test]
    fn rotated_iou_is_invariant_under_translation((a, b) in obb_pair(), tx in -1000f32..1000.0, ty in -1000f32..1000.0) {
        let shift = |o: &OrientedBox| OrientedBox::new(o.cx + tx, o.cy + ty, o.w, o.h, o.angle);
        prop_assert!((rotated_iou(&a, &b) - rotated_iou(&shift(&a), &shift(&b))).abs() < 1e-3);
    }

    #[test]
    fn rotated_iou_is_invariant_under_rotation((a, b) in obb_pair(), theta in -PI..PI) {
        let v = rotated_iou(&a, &b);
        let r = rotated_iou(&rotate_about_origin(&a, theta), &rotate_about_origin(&b, theta));
        prop_assert!((v - r).abs() < 1e-3, "{v} vs {r}");
    }

    #[test]
    fn probiou_is_bounded_and_symmetric((a, b) in obb_pair()) {
        let v = probiou(&a, &b);
        prop_assert!((0.0..=1.0).contains(&v));
        prop_assert!((v - probiou(&b, &a)).abs() < 1e-5);
        prop_assert!(probiou(&a, &a) > 0.999);
    }
}
