//! Hand-built cases for every postprocess, metric and geometry, and for Ultralytics' NMS.

use nsod_nms::{Geometry, MatchMetric, MergeConfig, MergeMethod, postprocess, ultralytics_nms};
use nsod_types::{BBox, Detection, OrientedBox};
use std::f32::consts::FRAC_PI_4;

fn det(class_id: u32, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
    Detection::new(
        class_id,
        format!("c{class_id}"),
        score,
        BBox::new(x1, y1, x2, y2),
    )
}

fn cfg(method: MergeMethod, metric: MatchMetric) -> MergeConfig {
    MergeConfig {
        method,
        metric,
        threshold: 0.5,
        class_agnostic: false,
        geometry: Geometry::Aabb,
    }
}

fn boxes(out: &[Detection]) -> Vec<(f32, [f32; 4])> {
    out.iter()
        .map(|d| (d.score, [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2]))
        .collect()
}

#[test]
fn nms_iou_drops_the_overlapping_lower_box() {
    // IoU(A, B) = 81 / 119 = 0.68; C is apart.
    let dets = vec![
        det(0, 0.8, 1.0, 1.0, 11.0, 11.0),
        det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
        det(0, 0.7, 20.0, 20.0, 30.0, 30.0),
    ];
    let out = postprocess(dets, &cfg(MergeMethod::Nms, MatchMetric::Iou));
    assert_eq!(
        boxes(&out),
        vec![
            (0.9, [0.0, 0.0, 10.0, 10.0]),
            (0.7, [20.0, 20.0, 30.0, 30.0])
        ]
    );
}

#[test]
fn ios_matches_a_box_inside_another_where_iou_does_not() {
    // A 2x2 box inside a 10x10 box: IoU 0.04, IoS 1.
    let dets = vec![
        det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
        det(0, 0.6, 2.0, 2.0, 4.0, 4.0),
    ];
    assert_eq!(
        postprocess(dets.clone(), &cfg(MergeMethod::Nms, MatchMetric::Iou)).len(),
        2
    );
    assert_eq!(
        boxes(&postprocess(dets, &cfg(MergeMethod::Nms, MatchMetric::Ios))),
        vec![(0.9, [0.0, 0.0, 10.0, 10.0])]
    );
}

/// A(0..10), B(5..15), C(10..20) along x, all 10 high: IoS(A,B) = IoS(B,C) = 0.5, IoS(A,C) = 0.
fn chain() -> Vec<Detection> {
    vec![
        det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
        det(0, 0.8, 5.0, 0.0, 15.0, 10.0),
        det(0, 0.7, 10.0, 0.0, 20.0, 10.0),
    ]
}

#[test]
fn greedy_nmm_merges_direct_matches_only() {
    let out = postprocess(chain(), &cfg(MergeMethod::GreedyNmm, MatchMetric::Ios));
    assert_eq!(
        boxes(&out),
        vec![
            (0.9, [0.0, 0.0, 15.0, 10.0]),
            (0.7, [10.0, 0.0, 20.0, 10.0])
        ]
    );
}

#[test]
fn nmm_merges_transitively() {
    // B joins A; C matches B, so it joins A's group too; the grown box (0..15) still matches C (IoS 50/100).
    let out = postprocess(chain(), &cfg(MergeMethod::Nmm, MatchMetric::Ios));
    assert_eq!(boxes(&out), vec![(0.9, [0.0, 0.0, 20.0, 10.0])]);
}

#[test]
fn nmm_with_iou_keeps_all_when_nothing_reaches_the_threshold() {
    // IoU(A,B) = 50 / 150 = 0.33 < 0.5.
    let out = postprocess(chain(), &cfg(MergeMethod::Nmm, MatchMetric::Iou));
    assert_eq!(out.len(), 3);
}

#[test]
fn class_wise_by_default_agnostic_on_request() {
    let dets = vec![
        det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
        det(1, 0.95, 0.0, 0.0, 10.0, 10.5),
    ];
    let c = cfg(MergeMethod::GreedyNmm, MatchMetric::Iou);
    assert_eq!(postprocess(dets.clone(), &c).len(), 2);
    let out = postprocess(
        dets,
        &MergeConfig {
            class_agnostic: true,
            ..c
        },
    );
    assert_eq!(out.len(), 1);
    // The merged box takes the class and score of the higher-scored box, and the union of both boxes.
    assert_eq!(
        (out[0].class_id, out[0].class_name.as_str(), out[0].score),
        (1, "c1", 0.95)
    );
    assert_eq!(out[0].bbox, BBox::new(0.0, 0.0, 10.0, 10.5));
}

#[test]
fn rotated_geometry_keeps_crossing_bars_that_aabb_geometry_merges() {
    // Two 100x10 bars crossing in an X: identical enclosing rectangles, rotated IoU = 100 / 1900.
    let a = Detection::oriented(
        9,
        "large vehicle",
        0.9,
        OrientedBox::new(50.0, 50.0, 100.0, 10.0, FRAC_PI_4),
    );
    let b = Detection::oriented(
        9,
        "large vehicle",
        0.8,
        OrientedBox::new(50.0, 50.0, 100.0, 10.0, -FRAC_PI_4),
    );
    let mut c = cfg(MergeMethod::Nms, MatchMetric::Iou);
    assert_eq!(postprocess(vec![a.clone(), b.clone()], &c).len(), 1);
    c.geometry = Geometry::Rotated;
    assert_eq!(postprocess(vec![a, b], &c).len(), 2);
}

#[test]
fn rotated_greedy_nmm_unions_into_a_rotated_box() {
    // Two 20x10 boxes at angle 0.5 shifted by 5 px along their long axis: the union is 25x10 at the same angle.
    let (s, co) = 0.5f32.sin_cos();
    let a = Detection::oriented(
        1,
        "ship",
        0.9,
        OrientedBox::new(100.0, 100.0, 20.0, 10.0, 0.5),
    );
    let b = Detection::oriented(
        1,
        "ship",
        0.7,
        OrientedBox::new(100.0 + 5.0 * co, 100.0 + 5.0 * s, 20.0, 10.0, 0.5),
    );
    let c = MergeConfig {
        geometry: Geometry::Rotated,
        ..cfg(MergeMethod::GreedyNmm, MatchMetric::Iou)
    };
    let out = postprocess(vec![a, b], &c);
    assert_eq!(out.len(), 1);
    let o = out[0].obb.unwrap();
    assert!(
        (o.w - 25.0).abs() < 1e-3 && (o.h - 10.0).abs() < 1e-3,
        "{o:?}"
    );
    assert!((o.angle - 0.5).abs() < 1e-4, "{o:?}");
    assert!(
        (o.cx - (100.0 + 2.5 * co)).abs() < 1e-3 && (o.cy - (100.0 + 2.5 * s)).abs() < 1e-3,
        "{o:?}"
    );
    assert_eq!(out[0].bbox, o.aabb());
    assert_eq!(out[0].score, 0.9);
}

#[test]
fn zero_threshold_matches_disjoint_boxes_too() {
    let dets = vec![
        det(0, 0.9, 0.0, 0.0, 1.0, 1.0),
        det(0, 0.5, 100.0, 100.0, 101.0, 101.0),
    ];
    let c = MergeConfig {
        threshold: 0.0,
        ..cfg(MergeMethod::Nms, MatchMetric::Iou)
    };
    assert_eq!(postprocess(dets, &c).len(), 1);
}

#[test]
fn order_of_input_does_not_change_the_result() {
    let mut dets = chain();
    dets.push(det(0, 0.85, 3.0, 3.0, 8.0, 8.0));
    dets.push(det(2, 0.6, 0.0, 0.0, 12.0, 12.0));
    for method in [MergeMethod::Nms, MergeMethod::Nmm, MergeMethod::GreedyNmm] {
        let c = cfg(method, MatchMetric::Ios);
        let want = boxes(&postprocess(dets.clone(), &c));
        let mut rev = dets.clone();
        rev.reverse();
        assert_eq!(boxes(&postprocess(rev, &c)), want, "{method:?}");
    }
}

#[test]
fn ultralytics_axis_aligned_is_greedy_but_rotated_is_fast_nms() {
    // A, B, C 10x10 squares at x = 0, 3, 6. IoU(A,B) = 0.54, IoU(A,C) = 0.25, ProbIoU(A,B) = ProbIoU(B,C) = 0.645,
    // ProbIoU(A,C) = 0.354.
    let sq = |x: f32, s: f32| {
        Detection::oriented(
            0,
            "plane",
            s,
            OrientedBox::new(x + 5.0, 5.0, 10.0, 10.0, 0.0),
        )
    };
    let dets = vec![sq(6.0, 0.7), sq(0.0, 0.9), sq(3.0, 0.8)];
    // torchvision-style greedy NMS keeps A and C (C's only big overlap is with the dropped B).
    assert_eq!(ultralytics_nms(&dets, 0.5, false, false, 300), vec![1, 0]);
    // Fast NMS drops C too: B has a higher score, even though B itself was dropped.
    assert_eq!(ultralytics_nms(&dets, 0.5, false, true, 300), vec![1]);
    // Strict threshold: ProbIoU(A,B) = 0.645 is not > 0.7.
    assert_eq!(ultralytics_nms(&dets, 0.7, false, true, 300), vec![1, 2, 0]);
    // Different classes never suppress each other unless agnostic; max_det caps the result.
    let mut other = dets.clone();
    other[0].class_id = 1; // C
    assert_eq!(ultralytics_nms(&other, 0.5, false, true, 300), vec![1, 0]);
    assert_eq!(ultralytics_nms(&other, 0.5, true, true, 300), vec![1]);
    assert_eq!(ultralytics_nms(&dets, 0.99, false, true, 2), vec![1, 2]);
}

#[test]
fn ultralytics_rotated_index_finds_every_pair_the_full_scan_finds() {
    // Pseudo-random boxes; compare the grid-pruned result with a brute-force fast NMS.
    let mut state = 12345u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f32 / (1u64 << 31) as f32
    };
    let dets: Vec<Detection> = (0..600)
        .map(|_| {
            let o = OrientedBox::new(
                rnd() * 300.0,
                rnd() * 300.0,
                4.0 + rnd() * 40.0,
                4.0 + rnd() * 40.0,
                rnd() * std::f32::consts::PI,
            );
            Detection::oriented((rnd() * 2.0) as u32, "x", rnd(), o)
        })
        .collect();
    for thr in [0.1, 0.3, 0.7] {
        let got = ultralytics_nms(&dets, thr, false, true, usize::MAX);
        let mut order: Vec<usize> = (0..dets.len()).collect();
        order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
        let want: Vec<usize> = (0..order.len())
            .filter(|&j| {
                !(0..j).any(|i| {
                    let (a, b) = (&dets[order[i]], &dets[order[j]]);
                    a.class_id == b.class_id
                        && nsod_types::geometry::probiou(&a.as_oriented(), &b.as_oriented()) > thr
                })
            })
            .map(|j| order[j])
            .collect();
        assert_eq!(got, want, "threshold {thr}");
    }
}

#[test]
fn probiou_geometry_merges_like_its_measure_says() {
    // Squares at x = 0, 3, 6 (ProbIoU 0.645 for neighbours, 0.354 for A and C), and one far away.
    let sq = |x: f32, s: f32| {
        Detection::oriented(
            0,
            "plane",
            s,
            OrientedBox::new(x + 5.0, 5.0, 10.0, 10.0, 0.0),
        )
    };
    let dets = vec![sq(0.0, 0.9), sq(3.0, 0.8), sq(6.0, 0.7), sq(500.0, 0.6)];
    let c = MergeConfig {
        geometry: Geometry::ProbIou,
        threshold: 0.6,
        ..cfg(MergeMethod::Nms, MatchMetric::Iou)
    };
    // Greedy NMS: A drops B (0.645 >= 0.6); C survives (0.354 with A).
    let out = postprocess(dets.clone(), &c);
    assert_eq!(
        out.iter().map(|d| d.score).collect::<Vec<_>>(),
        vec![0.9, 0.7, 0.6]
    );
    // Threshold 0.3 with NMM: A takes B and C (0.354); the far square stays alone.
    let c = MergeConfig {
        method: MergeMethod::Nmm,
        threshold: 0.3,
        ..c
    };
    let out = postprocess(dets.clone(), &c);
    assert_eq!(out.len(), 2);
    assert!((out[0].obb.unwrap().w - 16.0).abs() < 1e-3, "{:?}", out[0]);
    // Threshold 0: ProbIoU is clamped to [0, 1], so every pair matches, the far square too.
    let c0 = MergeConfig {
        threshold: 0.0,
        method: MergeMethod::Nms,
        ..c
    };
    assert_eq!(postprocess(dets, &c0).len(), 1);
}
