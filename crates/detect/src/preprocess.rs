//! Ultralytics' letterbox, fused with the conversion to normalised planar RGB `f32`.

use image::RgbImage;

/// Python's `round` (ties to even), which Ultralytics' letterbox arithmetic uses.
fn round_py(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// A rectangle of the source image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Region {
    /// Whether `other`'s top-left corner lies in this region (tiles of a plan own the slices that start in them).
    pub fn contains_origin(&self, other: &Region) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && u64::from(other.x) < u64::from(self.x) + u64::from(self.width)
            && u64::from(other.y) < u64::from(self.y) + u64::from(self.height)
    }
}

/// How a region was placed in the model input: `input = source * gain + pad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub gain_x: f64,
    pub gain_y: f64,
    pub pad_x: f64,
    pub pad_y: f64,
}

impl Letterbox {
    /// Ultralytics' `LetterBox(new_shape, auto=False, scaleup=True, center=True)` parameters for a `w x h` source.
    pub fn new(w: u32, h: u32, dst_w: u32, dst_h: u32) -> (Self, u32, u32) {
        let f = Self::fit(w, h, dst_w, dst_h, None);
        (f.letterbox, f.new_w, f.new_h)
    }

    /// Ultralytics' `LetterBox(new_shape=(dst_h, dst_w), auto=stride.is_some(), stride, scaleup=True,
    /// center=True)`: the source is resized by `r = min(dst_h / h, dst_w / w)` as in [`Letterbox::new`]; with a
    /// stride (the minimum rectangle its predictor uses for models of dynamic height and width) the padding is only
    /// what the stride needs (`(dst - new) mod stride`), so the input is smaller than `dst_w x dst_h` when the
    /// source is not of the target's aspect.
    pub fn fit(w: u32, h: u32, dst_w: u32, dst_h: u32, stride: Option<u32>) -> Fit {
        let r = (f64::from(dst_h) / f64::from(h)).min(f64::from(dst_w) / f64::from(w));
        let new_w = (round_py(f64::from(w) * r).max(1) as u32).min(dst_w);
        let new_h = (round_py(f64::from(h) * r).max(1) as u32).min(dst_h);
        let (mut dw, mut dh) = (dst_w - new_w, dst_h - new_h);
        if let Some(s) = stride.filter(|&s| s > 0) {
            dw %= s;
            dh %= s;
        }
        Fit {
            letterbox: Self {
                gain_x: f64::from(new_w) / f64::from(w),
                gain_y: f64::from(new_h) / f64::from(h),
                pad_x: round_py(f64::from(dw) / 2.0 - 0.1) as f64,
                pad_y: round_py(f64::from(dh) / 2.0 - 0.1) as f64,
            },
            new_w,
            new_h,
            in_w: new_w + dw,
            in_h: new_h + dh,
        }
    }
}

/// Where a source goes in a model input ([`Letterbox::fit`]): the placement, the resized size and the input's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub letterbox: Letterbox,
    pub new_w: u32,
    pub new_h: u32,
    /// The model input's width and height (the target's, or smaller for a minimum rectangle).
    pub in_w: u32,
    pub in_h: u32,
}

/// The padding value Ultralytics uses, normalised.
pub(crate) const PAD: f32 = 114.0 / 255.0;

/// Letterboxes `region` of `img` into `out`, a `3 x dst_h x dst_w` planar RGB buffer of values in `[0, 1]`.
///
/// The resize is `cv2.resize(..., INTER_LINEAR)` on a `uint8` image, as Ultralytics' `LetterBox` calls it, in
/// OpenCV's own fixed-point arithmetic: half-pixel centres in `f32`, 11-bit weights, an integer horizontal pass and
/// the vertical pass's two roundings (vector and scalar loops), so that model inputs, and so scores, match
/// Ultralytics' preprocessing on non-square and resized images. A region that already has the target size is
/// copied without resampling.
pub fn letterbox_into(
    img: &RgbImage,
    region: Region,
    dst_w: u32,
    dst_h: u32,
    out: &mut [f32],
) -> Letterbox {
    let fit = Letterbox::fit(region.width, region.height, dst_w, dst_h, None);
    letterbox_fit_into(img, region, &fit, out);
    fit.letterbox
}

/// [`letterbox_into`] with the placement given ([`Letterbox::fit`] of the region's size): `out` holds
/// `3 x fit.in_h x fit.in_w` values.
pub fn letterbox_fit_into(img: &RgbImage, region: Region, fit: &Fit, out: &mut [f32]) {
    let (dst_w, dst_h) = (fit.in_w, fit.in_h);
    let plane = (dst_w * dst_h) as usize;
    debug_assert_eq!(out.len(), 3 * plane);
    let (new_w, new_h) = (fit.new_w, fit.new_h);
    let (left, top) = (fit.letterbox.pad_x as u32, fit.letterbox.pad_y as u32);
    let full = left == 0 && top == 0 && new_w == dst_w && new_h == dst_h;
    if !full {
        out.fill(PAD);
    }
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let raw = img.as_raw();
    let stride = img.width() as usize * 3;
    let lut: [f32; 256] = std::array::from_fn(|i| i as f32 / 255.0);
    if new_w == region.width && new_h == region.height {
        for y in 0..new_h as usize {
            let src = &raw[(region.y as usize + y) * stride + region.x as usize * 3..]
                [..new_w as usize * 3];
            let o = (top as usize + y) * dst_w as usize + left as usize;
            for (x, px) in src.chunks_exact(3).enumerate() {
                r[o + x] = lut[px[0] as usize];
                g[o + x] = lut[px[1] as usize];
                b[o + x] = lut[px[2] as usize];
            }
        }
        return;
    }
    let taps_x = linear_taps(new_w, region.width);
    let taps_y = row_taps(new_h, region.height);
    // OpenCV's vertical pass works on one interleaved row of `3 * new_w` values with vector instructions (the last,
    // partial vector is redone over the row's end); only rows shorter than 8 values take its scalar loop, which
    // rounds differently. (Checked bit for bit against cv2 4.13 and 5.0 by tests/parity.rs.)
    let row_len = 3 * new_w as usize;
    let vector = row_len >= 8;
    // Horizontal pass: each source row needed, resampled once to `new_w` (fixed point, 11-bit weights).
    let mut rows: Vec<Option<Vec<i32>>> = vec![None; region.height as usize];
    let hrow = |y: usize, rows: &mut Vec<Option<Vec<i32>>>| {
        if rows[y].is_none() {
            let src = &raw[(region.y as usize + y) * stride + region.x as usize * 3..]
                [..region.width as usize * 3];
            let mut out = vec![0i32; row_len];
            for (dx, &(sx, a0, a1)) in taps_x.iter().enumerate() {
                for c in 0..3 {
                    let p0 = i32::from(src[sx * 3 + c]);
                    let p1 = if a1 != 0 {
                        i32::from(src[(sx + 1) * 3 + c])
                    } else {
                        0
                    };
                    out[dx * 3 + c] = p0 * i32::from(a0) + p1 * i32::from(a1);
                }
            }
            rows[y] = Some(out);
        }
    };
    for (oy, &(sy, y1, b0, b1)) in taps_y.iter().enumerate() {
        hrow(sy, &mut rows);
        hrow(y1, &mut rows);
        let (Some(s0), Some(s1)) = (rows[sy].as_ref(), rows[y1].as_ref()) else {
            continue;
        };
        let o = (top as usize + oy) * dst_w as usize + left as usize;
        for ox in 0..new_w as usize {
            for (c, plane) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
                let k = ox * 3 + c;
                let v = if vector {
                    vertical_simd(s0[k], s1[k], b0, b1)
                } else {
                    vertical_scalar(s0[k], s1[k], b0, b1)
                };
                plane[o + ox] = lut[usize::from(v)];
            }
        }
        // Rows above the current one are not needed again.
        if sy > 0 {
            rows[sy - 1] = None;
        }
    }
}

/// OpenCV's fixed-point weights (`INTER_RESIZE_COEF_BITS`).
const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// Per destination index: the first source index and the two 11-bit weights of `cv::resize` with `INTER_LINEAR`
/// (half-pixel centres computed in `f32`, the edge pixel repeated outside the source).
fn linear_taps(dst: u32, src: u32) -> Vec<(usize, i16, i16)> {
    // OpenCV keeps the inverse scale and takes its reciprocal.
    let scale = 1.0 / (f64::from(dst) / f64::from(src));
    let last = i64::from(src) - 1;
    (0..dst)
        .map(|d| {
            let mut f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            f -= s as f32;
            if s < 0 {
                f = 0.0;
                s = 0;
            }
            if s >= last {
                f = 0.0;
                s = last;
            }
            // saturate_cast<short> of a float rounds to nearest, ties to even.
            let w = |x: f32| (x * COEF_SCALE).round_ties_even() as i16;
            (s as usize, w(1.0 - f), w(f))
        })
        .collect()
}

/// The vertical taps: source rows and weights per output row. Unlike the horizontal ones, OpenCV does not clamp the
/// weight at the borders: it clips the row indices (`ResizeInvoker`), so an upscaled first or last row blends a row
/// with itself at the unclamped weights, which rounds differently from weight 1 (seen on every upscale).
fn row_taps(dst: u32, src: u32) -> Vec<(usize, usize, i16, i16)> {
    let scale = 1.0 / (f64::from(dst) / f64::from(src));
    let last = i64::from(src) - 1;
    (0..dst)
        .map(|d| {
            let mut f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
            let s = f.floor() as i64;
            f -= s as f32;
            let w = |x: f32| (x * COEF_SCALE).round_ties_even() as i16;
            (
                s.clamp(0, last) as usize,
                (s + 1).clamp(0, last) as usize,
                w(1.0 - f),
                w(f),
            )
        })
        .collect()
}

/// OpenCV's vector vertical pass (`VResizeLinearVec_32s8u`): `((s0 >> 4) * b0 >> 16) + ((s1 >> 4) * b1 >> 16)`,
/// rounded by `(v + 2) >> 2`.
fn vertical_simd(s0: i32, s1: i32, b0: i16, b1: i16) -> u8 {
    let hi = |s: i32, b: i16| ((i32::from((s >> 4) as i16) * i32::from(b)) >> 16) as i16;
    let v = i32::from(hi(s0, b0).wrapping_add(hi(s1, b1)));
    ((v + 2) >> 2).clamp(0, 255) as u8
}

/// OpenCV's scalar vertical pass (`FixedPtCast<int, uchar, 22>`): `(s0 * b0 + s1 * b1 + 2^21) >> 22`.
fn vertical_scalar(s0: i32, s1: i32, b0: i16, b1: i16) -> u8 {
    let v = s0 * i32::from(b0) + s1 * i32::from(b1);
    ((v + (1 << 21)) >> 22).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_parameters_match_ultralytics() {
        // 1054 x 1529 into 1024: r = 1024 / 1529, new 706 x 1024, pad (1024 - 706) / 2 = 159.
        let (lb, w, h) = Letterbox::new(1054, 1529, 1024, 1024);
        assert_eq!((w, h), (706, 1024));
        assert_eq!((lb.pad_x, lb.pad_y), (159.0, 0.0));
        assert!(
            (lb.gain_x - 706.0 / 1054.0).abs() < 1e-12
                && (lb.gain_y - 1024.0 / 1529.0).abs() < 1e-12
        );
        // Odd padding: 1000 x 999 -> 1024: new 1024 x 1023, dh = 0.5 -> top = round(0.4) = 0.
        let (lb, w, h) = Letterbox::new(1000, 999, 1024, 1024);
        assert_eq!((w, h, lb.pad_y), (1024, 1023, 0.0));
        // Ties go to even, as Python: 3 x 5 into 4 x 4 -> r = 0.8, new w = round(2.4) = 2, dw = 1.
        let (lb, w, _) = Letterbox::new(3, 5, 4, 4);
        assert_eq!((w, lb.pad_x), (2, 1.0));
    }

    /// Ultralytics' minimum rectangle (`auto=True`, stride 32), worked by hand from its `LetterBox.__call__`.
    #[test]
    fn minimum_rectangle_pads_to_the_stride_only() {
        // A 1024 x 720 slice: r = 1, dh = 304 mod 32 = 16 -> 8 rows above and below, input 1024 x 736.
        let f = Letterbox::fit(1024, 720, 1024, 1024, Some(32));
        assert_eq!((f.new_w, f.new_h, f.in_w, f.in_h), (1024, 720, 1024, 736));
        assert_eq!((f.letterbox.pad_x, f.letterbox.pad_y), (0.0, 8.0));
        // The whole 1054 x 1529 DOTA image: r = 1024 / 1529, new 706 x 1024, dw = 318 mod 32 = 30 -> 15 left.
        let f = Letterbox::fit(1054, 1529, 1024, 1024, Some(32));
        assert_eq!((f.new_w, f.in_w, f.in_h), (706, 736, 1024));
        assert_eq!(f.letterbox.pad_x, 15.0);
        // Same scale as the square letterbox, whatever the padding.
        let (sq, _, _) = Letterbox::new(1054, 1529, 1024, 1024);
        assert_eq!(
            (f.letterbox.gain_x, f.letterbox.gain_y),
            (sq.gain_x, sq.gain_y)
        );
        // A 1280 x 720 frame, the full-image pass: r = 0.8, 1024 x 576, a multiple of 32 already: no padding.
        let f = Letterbox::fit(1280, 720, 1024, 1024, Some(32));
        assert_eq!((f.in_w, f.in_h, f.letterbox.pad_y), (1024, 576, 0.0));
        // Odd padding: 1000 x 999 -> new 1024 x 1023, dh = 1 -> top round(0.4) = 0, input 1024 x 1024.
        let f = Letterbox::fit(1000, 999, 1024, 1024, Some(32));
        assert_eq!((f.in_h, f.letterbox.pad_y), (1024, 0.0));
        // dh = 17: top round(8.4) = 8, bottom 9.
        let f = Letterbox::fit(64, 47, 64, 64, Some(32));
        assert_eq!((f.new_h, f.in_h, f.letterbox.pad_y), (47, 64, 8.0));
        // Without a stride, the target's size.
        let f = Letterbox::fit(1024, 720, 1024, 1024, None);
        assert_eq!((f.in_w, f.in_h, f.letterbox.pad_y), (1024, 1024, 152.0));
    }

    #[test]
    fn border_rows_of_an_upscale_clip_the_row_not_the_weight() {
        // 480 rows up to 702: the first output row sits at source y = 0.5 * 480 / 702 - 0.5 = -0.158, so it blends
        // row 0 with itself at weights 0.158 and 0.842 (as OpenCV does), not row 0 at weight 1; the last one likewise.
        let taps = row_taps(702, 480);
        let (r0, r1, b0, b1) = taps[0];
        assert_eq!((r0, r1), (0, 0));
        assert_eq!((b0, b1), (324, 1724));
        let (r0, r1, _, b1) = taps[701];
        assert_eq!((r0, r1), (479, 479));
        assert_ne!(b1, 0);
        // Inside, consecutive rows; the columns clamp the weight instead.
        assert_eq!((taps[351].0 + 1, taps[351].1), (taps[351].1, taps[351].1));
        assert_eq!(linear_taps(702, 480)[0], (0, 2048, 0));
    }

    #[test]
    fn exact_size_is_a_copy_and_padding_is_114() {
        let mut img = RgbImage::new(4, 2);
        img.put_pixel(1, 0, image::Rgb([255, 0, 51]));
        let mut out = vec![0.0; 3 * 16];
        let lb = letterbox_into(
            &img,
            Region {
                x: 0,
                y: 0,
                width: 4,
                height: 2,
            },
            4,
            4,
            &mut out,
        );
        assert_eq!((lb.pad_x, lb.pad_y, lb.gain_x), (0.0, 1.0, 1.0));
        assert_eq!(out[0], PAD); // row 0 is padding
        assert_eq!(out[4 + 1], 1.0); // R of pixel (1, 0) lands on row 1
        assert_eq!(out[16 + 4 + 1], 0.0);
        assert_eq!(out[32 + 4 + 1], 0.2);
        assert_eq!(out[15], PAD);
    }

    #[test]
    fn downscale_by_two_averages_pixel_pairs() {
        // INTER_LINEAR at scale 2 samples exactly between two source pixels.
        let img = RgbImage::from_fn(4, 4, |x, _| {
            if x % 2 == 0 {
                image::Rgb([100, 100, 100])
            } else {
                image::Rgb([200, 200, 200])
            }
        });
        let mut out = vec![0.0; 3 * 4];
        letterbox_into(
            &img,
            Region {
                x: 0,
                y: 0,
                width: 4,
                height: 4,
            },
            2,
            2,
            &mut out,
        );
        assert!(out.iter().all(|&v| v == 150.0 / 255.0), "{out:?}");
    }

    #[test]
    fn a_region_is_read_in_place() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 10) as u8, (y * 10) as u8, 0]));
        let mut out = vec![0.0; 3 * 4];
        letterbox_into(
            &img,
            Region {
                x: 5,
                y: 3,
                width: 2,
                height: 2,
            },
            2,
            2,
            &mut out,
        );
        assert_eq!(out[0], 50.0 / 255.0);
        assert_eq!(out[4], 30.0 / 255.0);
        assert_eq!(out[3], 60.0 / 255.0);
    }
}
