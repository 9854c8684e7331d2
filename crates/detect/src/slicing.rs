//! SAHI's tiling (`sahi.slicing.get_slice_bboxes`).

use crate::preprocess::Region;

/// The slices SAHI cuts an image into: rows and columns of `slice` pixels stepping by `slice - int(overlap *
/// slice)`, the last slice of each row and column shifted back to end at the image border. Images smaller than a
/// slice give one slice of the whole image.
/// How many regions [`slice_regions`] makes, computed without making them.
pub fn slice_count(
    width: u32,
    height: u32,
    slice_w: u32,
    slice_h: u32,
    overlap_w: f32,
    overlap_h: f32,
) -> u64 {
    let along = |len: u32, s: u32, overlap: f32| -> u64 {
        let (len, s) = (u64::from(len), u64::from(s.max(1)));
        let ov = ((f64::from(overlap) * s as f64) as u64).min(s - 1);
        if len <= s {
            1
        } else {
            1 + (len - s).div_ceil(s - ov)
        }
    };
    along(width, slice_w, overlap_w) * along(height, slice_h, overlap_h)
}

pub fn slice_regions(
    width: u32,
    height: u32,
    slice_w: u32,
    slice_h: u32,
    overlap_w: f32,
    overlap_h: f32,
) -> Vec<Region> {
    let (w, h) = (i64::from(width), i64::from(height));
    let (sw, sh) = (i64::from(slice_w.max(1)), i64::from(slice_h.max(1)));
    // int() truncation as in SAHI; a step of at least one pixel so the loop always ends.
    let x_overlap = ((f64::from(overlap_w) * sw as f64) as i64)
        .min(sw - 1)
        .max(0);
    let y_overlap = ((f64::from(overlap_h) * sh as f64) as i64)
        .min(sh - 1)
        .max(0);
    let mut out = Vec::new();
    let (mut y_min, mut y_max) = (0i64, 0i64);
    while y_max < h {
        let (mut x_min, mut x_max) = (0i64, 0i64);
        y_max = y_min + sh;
        while x_max < w {
            x_max = x_min + sw;
            let (x0, y0, x1, y1) = if y_max > h || x_max > w {
                let xmax = w.min(x_max);
                let ymax = h.min(y_max);
                ((xmax - sw).max(0), (ymax - sh).max(0), xmax, ymax)
            } else {
                (x_min, y_min, x_max, y_max)
            };
            out.push(Region {
                x: x0 as u32,
                y: y0 as u32,
                width: (x1 - x0) as u32,
                height: (y1 - y0) as u32,
            });
            x_min = x_max - x_overlap;
        }
        y_min = y_max - y_overlap;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_count_matches_the_regions() {
        for (w, h, s, o) in [
            (1000, 1000, 1024, 0.2),
            (1054, 1529, 1024, 0.2),
            (12000, 7000, 1024, 0.2),
            (5000, 333, 256, 0.25),
            (640, 641, 640, 0.0),
            (100, 100, 32, 0.9),
        ] {
            assert_eq!(
                slice_count(w, h, s, s, o, o),
                slice_regions(w, h, s, s, o, o).len() as u64,
                "{w}x{h} slices of {s}, overlap {o}"
            );
        }
        assert_eq!(
            slice_count(1_000_000, 1_000_000, 32, 32, 0.2, 0.2),
            38_462 * 38_462
        );
    }

    fn tuples(r: &[Region]) -> Vec<(u32, u32, u32, u32)> {
        r.iter()
            .map(|r| (r.x, r.y, r.x + r.width, r.y + r.height))
            .collect()
    }

    #[test]
    fn matches_sahi_for_the_dota_image() {
        // sahi.slicing.get_slice_bboxes(1529, 1054, 1024, 1024, 0.2, 0.2)
        let r = slice_regions(1054, 1529, 1024, 1024, 0.2, 0.2);
        assert_eq!(
            tuples(&r),
            vec![
                (0, 0, 1024, 1024),
                (30, 0, 1054, 1024),
                (0, 505, 1024, 1529),
                (30, 505, 1054, 1529)
            ]
        );
    }

    #[test]
    fn matches_sahi_for_a_regular_grid() {
        // get_slice_bboxes(1000, 1000, 512, 512, 0.2, 0.2): step 410, last slice shifted to 488.
        let r = slice_regions(1000, 1000, 512, 512, 0.2, 0.2);
        assert_eq!(r.len(), 9);
        assert_eq!(
            tuples(&r)[..3],
            [(0, 0, 512, 512), (410, 0, 922, 512), (488, 0, 1000, 512)]
        );
        assert_eq!(tuples(&r)[8], (488, 488, 1000, 1000));
    }

    #[test]
    fn small_image_is_one_slice_and_degenerate_overlap_terminates() {
        assert_eq!(
            tuples(&slice_regions(300, 200, 1024, 1024, 0.2, 0.2)),
            vec![(0, 0, 300, 200)]
        );
        assert_eq!(slice_regions(100, 10, 10, 10, 1.0, 1.0).len(), 91);
        assert!(slice_regions(0, 0, 1024, 1024, 0.2, 0.2).is_empty());
    }
}
