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
        let r = (f64::from(dst_h) / f64::from(h)).min(f64::from(dst_w) / f64::from(w));
        let new_w = round_py(f64::from(w) * r).max(1) as u32;
        let new_h = round_py(f64::from(h) * r).max(1) as u32;
        let dw = f64::from(dst_w - new_w.min(dst_w)) / 2.0;
        let dh = f64::from(dst_h - new_h.min(dst_h)) / 2.0;
        let lb = Self {
            gain_x: f64::from(new_w) / f64::from(w),
            gain_y: f64::from(new_h) / f64::from(h),
            pad_x: round_py(dw - 0.1) as f64,
            pad_y: round_py(dh - 0.1) as f64,
        };
        (lb, new_w, new_h)
    }
}

/// The padding value Ultralytics uses, normalised.
const PAD: f32 = 114.0 / 255.0;

/// Letterboxes `region` of `img` into `out`, a `3 x dst_h x dst_w` planar RGB buffer of values in `[0, 1]`.
///
/// The resize is bilinear with OpenCV's `INTER_LINEAR` sampling (half-pixel centres, edge clamping) and rounds to
/// 8 bits before normalising, as `cv2.resize` on a `uint8` image does. A region that already has the target size is
/// copied without resampling.
pub fn letterbox_into(
    img: &RgbImage,
    region: Region,
    dst_w: u32,
    dst_h: u32,
    out: &mut [f32],
) -> Letterbox {
    let plane = (dst_w * dst_h) as usize;
    debug_assert_eq!(out.len(), 3 * plane);
    let (lb, new_w, new_h) = Letterbox::new(region.width, region.height, dst_w, dst_h);
    let (left, top) = (lb.pad_x as u32, lb.pad_y as u32);
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
        return lb;
    }
    // Bilinear: precompute source columns and weights once per row of output.
    let sx = f64::from(region.width) / f64::from(new_w);
    let sy = f64::from(region.height) / f64::from(new_h);
    let taps = |dst: u32, scale: f64, len: u32| -> Vec<(usize, usize, f32)> {
        (0..dst)
            .map(|d| {
                let f = (f64::from(d) + 0.5) * scale - 0.5;
                let i0 = f.floor();
                let t = (f - i0) as f32;
                let i0 = i0 as i64;
                let max = i64::from(len) - 1;
                let a = i0.clamp(0, max) as usize;
                let b = (i0 + 1).clamp(0, max) as usize;
                // Outside the source, OpenCV repeats the edge pixel.
                let t = if i0 < 0 || i0 >= max { 0.0 } else { t };
                (a, b, t)
            })
            .collect()
    };
    let xs = taps(new_w, sx, region.width);
    let ys = taps(new_h, sy, region.height);
    let px = |x: usize, y: usize, c: usize| {
        f32::from(raw[(region.y as usize + y) * stride + (region.x as usize + x) * 3 + c])
    };
    for (oy, &(y0, y1, ty)) in ys.iter().enumerate() {
        let o = (top as usize + oy) * dst_w as usize + left as usize;
        for (ox, &(x0, x1, tx)) in xs.iter().enumerate() {
            for (c, plane) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
                let top_v = px(x0, y0, c) * (1.0 - tx) + px(x1, y0, c) * tx;
                let bot_v = px(x0, y1, c) * (1.0 - tx) + px(x1, y1, c) * tx;
                let v = (top_v * (1.0 - ty) + bot_v * ty).round().clamp(0.0, 255.0);
                plane[o + ox] = lut[v as usize];
            }
        }
    }
    lb
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
