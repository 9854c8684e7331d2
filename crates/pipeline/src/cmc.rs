//! Camera-motion compensation: the global similarity transform (translation, rotation, scale) between two frames,
//! estimated by Fourier-Mellin phase correlation (Reddy & Chatterji, 1996) on downscaled grey frames: the magnitude
//! spectra, which do not move with a translation, are resampled on a log-polar grid where a rotation and a scale
//! become a shift that phase correlation finds; the second frame is then turned and scaled back and phase
//! correlation gives the translation. FFTs by `rustfft`.
//!
//! The result maps the previous frame's pixels to this frame's (`nsod_track::CameraMotion`), in full-resolution
//! pixels about the image origin, with the strength of the translation's correlation peak so a caller can tell a
//! confident estimate from noise (a frame of water, a cut).

use image::{GrayImage, RgbImage};
use nsod_track::CameraMotion;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;
use std::f32::consts::PI;

/// Side of the square the frames are analysed at.
pub const SIDE: usize = 256;

/// A frame prepared for motion estimation: its grey, windowed, downscaled pixels and their spectrum's log-polar
/// magnitude.
#[derive(Clone)]
pub struct Prepared {
    /// Full-resolution size.
    width: u32,
    height: u32,
    /// Downscale factor (full-resolution pixels per analysed pixel).
    factor: f32,
    /// The grey frame at `SIDE`×`SIDE` (letterboxed, mean-filled), windowed.
    grey: Vec<f32>,
    log_polar: Vec<f32>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// A motion estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub motion: CameraMotion,
    /// Peak of the translation's normalised cross-power spectrum, 0-1 (about 1 for a clean shift; a few hundredths
    /// for unrelated frames).
    pub confidence: f32,
}

fn hann(n: usize, i: usize) -> f32 {
    0.5 - 0.5 * (2.0 * PI * i as f32 / (n as f32 - 1.0)).cos()
}

fn fft2(data: &mut [Complex32], n: usize, inverse: bool, planner: &mut FftPlanner<f32>) {
    let fft = if inverse {
        planner.plan_fft_inverse(n)
    } else {
        planner.plan_fft_forward(n)
    };
    for row in data.chunks_exact_mut(n) {
        fft.process(row);
    }
    let mut col = vec![Complex32::default(); n];
    for x in 0..n {
        for y in 0..n {
            col[y] = data[y * n + x];
        }
        fft.process(&mut col);
        for y in 0..n {
            data[y * n + x] = col[y];
        }
    }
}

/// Bilinear sample of an `n`×`n` grid, 0 outside.
fn sample(img: &[f32], n: usize, x: f32, y: f32) -> f32 {
    if !(x >= 0.0 && y >= 0.0 && x <= (n - 1) as f32 && y <= (n - 1) as f32) {
        return 0.0;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let a = img[y0 * n + x0] * (1.0 - fx) + img[y0 * n + x1] * fx;
    let b = img[y1 * n + x0] * (1.0 - fx) + img[y1 * n + x1] * fx;
    a * (1.0 - fy) + b * fy
}

/// Phase correlation of two `n`×`n` real grids: the shift `(dx, dy)` that moves `a` onto `b` (sub-pixel, by a
/// parabola through the peak and its neighbours) and the peak's height.
fn phase_correlate(
    a: &[f32],
    b: &[f32],
    n: usize,
    planner: &mut FftPlanner<f32>,
) -> (f32, f32, f32) {
    let mut fa: Vec<Complex32> = a.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    let mut fb: Vec<Complex32> = b.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    fft2(&mut fa, n, false, planner);
    fft2(&mut fb, n, false, planner);
    let mut r: Vec<Complex32> = fa
        .iter()
        .zip(&fb)
        .map(|(x, y)| {
            let c = y * x.conj();
            let m = c.norm();
            if m > 1e-12 {
                c / m
            } else {
                Complex32::default()
            }
        })
        .collect();
    fft2(&mut r, n, true, planner);
    let scale = 1.0 / (n * n) as f32;
    let re: Vec<f32> = r.iter().map(|c| c.re * scale).collect();
    let (mut best, mut peak) = (0usize, f32::MIN);
    for (i, &v) in re.iter().enumerate() {
        if v > peak {
            peak = v;
            best = i;
        }
    }
    let (px, py) = (best % n, best / n);
    let at = |x: isize, y: isize| {
        re[(y.rem_euclid(n as isize) as usize) * n + x.rem_euclid(n as isize) as usize]
    };
    let refine = |m: f32, c: f32, p: f32| {
        let d = m - 2.0 * c + p;
        if d.abs() > 1e-12 {
            0.5 * (m - p) / d
        } else {
            0.0
        }
    };
    let (xi, yi) = (px as isize, py as isize);
    let sx = refine(at(xi - 1, yi), peak, at(xi + 1, yi));
    let sy = refine(at(xi, yi - 1), peak, at(xi, yi + 1));
    let wrap = |p: usize| {
        if p > n / 2 {
            p as f32 - n as f32
        } else {
            p as f32
        }
    };
    (wrap(px) + sx, wrap(py) + sy, peak)
}

/// Log-polar grid of the (centred, high-passed) magnitude spectrum: `SIDE` angles over [0, π) by `SIDE` radii.
fn log_polar(grey: &[f32], planner: &mut FftPlanner<f32>) -> Vec<f32> {
    let n = SIDE;
    let mut f: Vec<Complex32> = grey.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    fft2(&mut f, n, false, planner);
    // Centred magnitude with the high-pass filter of Reddy & Chatterji.
    let mut mag = vec![0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let (sx, sy) = ((x + n / 2) % n, (y + n / 2) % n);
            let (u, v) = (
                (sx as f32 - n as f32 / 2.0) / n as f32,
                (sy as f32 - n as f32 / 2.0) / n as f32,
            );
            let c = (PI * u).cos() * (PI * v).cos();
            let h = (1.0 - c) * (2.0 - c);
            mag[sy * n + sx] = f[y * n + x].norm() * h;
        }
    }
    let max_r = (n / 2) as f32;
    let log_base = max_r.ln() / n as f32;
    let mut out = vec![0f32; n * n];
    for t in 0..n {
        let theta = PI * t as f32 / n as f32;
        let (s, c) = theta.sin_cos();
        for k in 0..n {
            let r = (k as f32 * log_base).exp();
            out[t * n + k] = sample(&mag, n, n as f32 / 2.0 + r * c, n as f32 / 2.0 + r * s);
        }
    }
    out
}

/// Grey, downscaled into a `SIDE`×`SIDE` square (aspect kept, the rest filled with the mean), windowed.
pub fn prepare(img: &RgbImage) -> Prepared {
    let (w, h) = img.dimensions();
    let factor = w.max(h) as f32 / SIDE as f32;
    let (sw, sh) = (
        ((w as f32 / factor).round() as u32).clamp(1, SIDE as u32),
        ((h as f32 / factor).round() as u32).clamp(1, SIDE as u32),
    );
    let grey: GrayImage = image::imageops::grayscale(img);
    let small = image::imageops::resize(&grey, sw, sh, image::imageops::FilterType::Triangle);
    let mean = small.pixels().map(|p| f32::from(p.0[0])).sum::<f32>() / (sw * sh) as f32;
    let n = SIDE;
    let (ox, oy) = ((n as u32 - sw) / 2, (n as u32 - sh) / 2);
    let mut g = vec![0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let (xi, yi) = (x as u32, y as u32);
            let v = if xi >= ox && xi < ox + sw && yi >= oy && yi < oy + sh {
                f32::from(small.get_pixel(xi - ox, yi - oy).0[0])
            } else {
                mean
            };
            g[y * n + x] = (v - mean) * hann(n, x) * hann(n, y);
        }
    }
    let mut planner = FftPlanner::new();
    let log_polar = log_polar(&g, &mut planner);
    Prepared {
        width: w,
        height: h,
        factor,
        grey: g,
        log_polar,
    }
}

/// Turns and scales an analysed grid about its centre (the inverse of rotation `angle` and scale `scale`).
fn unwarp(g: &[f32], angle: f32, scale: f32) -> Vec<f32> {
    let n = SIDE;
    let c = n as f32 / 2.0;
    let (s, co) = angle.sin_cos();
    let mut out = vec![0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            // The pixel (x, y) of the output is where the current frame has it: p' = scale R (p - c) + c.
            let (dx, dy) = (x as f32 - c, y as f32 - c);
            let (px, py) = (
                scale * (co * dx - s * dy) + c,
                scale * (s * dx + co * dy) + c,
            );
            out[y * n + x] = sample(g, n, px, py);
        }
    }
    out
}

/// The motion from `prev` to `cur` (frames of the same size).
pub fn estimate(prev: &Prepared, cur: &Prepared) -> Option<Estimate> {
    if (prev.width, prev.height) != (cur.width, cur.height) {
        return None;
    }
    let n = SIDE;
    let mut planner = FftPlanner::new();
    // Rotation and scale: a shift of the log-polar spectra.
    let (dr, dt, _) = phase_correlate(&prev.log_polar, &cur.log_polar, n, &mut planner);
    let log_base = ((n / 2) as f32).ln() / n as f32;
    // cur's log-polar spectrum is prev's moved by (-ln s / log_base, θ n / π): a zoom by s scales frequencies by
    // 1/s, a turn by θ turns them by θ.
    let scale = (-dr * log_base).exp();
    let base_angle = PI * dt / n as f32;
    // The magnitude spectrum has a half-turn symmetry: try both.
    let mut best: Option<(f32, f32, f32, f32)> = None;
    for angle in [base_angle, base_angle + PI] {
        let back = unwarp(&cur.grey, angle, scale);
        let (tx, ty, peak) = phase_correlate(&prev.grey, &back, n, &mut planner);
        if best.is_none_or(|b| peak > b.3) {
            best = Some((angle, tx, ty, peak));
        }
    }
    let (angle, tx, ty, peak) = best?;
    // `back` is `cur` turned back about the analysed centre; `prev` shifted by (tx, ty) is `back`: in analysed
    // pixels, cur(p') with p' = scale R (p + t - c) + c. In full-resolution pixels about the origin:
    let f = prev.factor;
    let (cw, ch) = (prev.width as f32 / 2.0, prev.height as f32 / 2.0);
    let (s, c) = angle.sin_cos();
    // p' = scale R (p - C + f t) + C, with C the full-resolution centre.
    let (ax, ay) = (f * tx - cw, f * ty - ch);
    let tx_full = scale * (c * ax - s * ay) + cw;
    let ty_full = scale * (s * ax + c * ay) + ch;
    let mut rotation = f64::from(angle);
    if rotation > std::f64::consts::PI {
        rotation -= 2.0 * std::f64::consts::PI;
    }
    Some(Estimate {
        motion: CameraMotion {
            scale: f64::from(scale),
            rotation,
            tx: f64::from(tx_full),
            ty: f64::from(ty_full),
        },
        confidence: peak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured test image: a few hundred random rectangles.
    fn texture(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::from_pixel(w, h, image::Rgb([90, 110, 80]));
        let mut s: u64 = 0x2545_F491_4F6C_DD1D;
        let mut r = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..400 {
            let (x, y) = ((r() * f64::from(w)) as u32, (r() * f64::from(h)) as u32);
            let (rw, rh) = (4 + (r() * 30.0) as u32, 4 + (r() * 30.0) as u32);
            let c = image::Rgb([
                (r() * 255.0) as u8,
                (r() * 255.0) as u8,
                (r() * 255.0) as u8,
            ]);
            for yy in y..(y + rh).min(h) {
                for xx in x..(x + rw).min(w) {
                    img.put_pixel(xx, yy, c);
                }
            }
        }
        img
    }

    /// `src` seen through the motion `m` (p' = s R p + t): each output pixel p' samples src at the inverse.
    fn warp(src: &RgbImage, m: &CameraMotion) -> RgbImage {
        let (w, h) = src.dimensions();
        let (s, c) = m.rotation.sin_cos();
        RgbImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (f64::from(x) - m.tx, f64::from(y) - m.ty);
            let (px, py) = ((c * dx + s * dy) / m.scale, (-s * dx + c * dy) / m.scale);
            if px >= 0.0 && py >= 0.0 && px < f64::from(w - 1) && py < f64::from(h - 1) {
                *src.get_pixel(px as u32, py as u32)
            } else {
                image::Rgb([90, 110, 80])
            }
        })
    }

    fn check(m: CameraMotion) {
        let world = texture(1280, 720);
        let prev = prepare(&world);
        let cur = prepare(&warp(&world, &m));
        let e = estimate(&prev, &cur).unwrap();
        // A point near the middle maps to within 3 px of where the true motion puts it.
        for (x, y) in [(640.0, 360.0), (400.0, 200.0), (900.0, 500.0)] {
            let apply = |m: &CameraMotion| {
                let (s, c) = m.rotation.sin_cos();
                (
                    m.scale * (c * x - s * y) + m.tx,
                    m.scale * (s * x + c * y) + m.ty,
                )
            };
            let (a, b) = (apply(&m), apply(&e.motion));
            assert!(
                (a.0 - b.0).hypot(a.1 - b.1) < 3.0,
                "true {m:?}, estimated {:?}: ({x}, {y}) -> {a:?} vs {b:?}",
                e.motion
            );
        }
        assert!(e.confidence > 0.1, "{e:?}");
    }

    #[test]
    fn translation_rotation_and_zoom_are_recovered() {
        check(CameraMotion {
            scale: 1.0,
            rotation: 0.0,
            tx: 25.0,
            ty: -12.0,
        });
        // 4° about the centre, with a shift.
        let (a, s) = (4f64.to_radians(), 1.0);
        let (cx, cy) = (640.0, 360.0);
        check(CameraMotion {
            scale: s,
            rotation: a,
            tx: cx - s * (a.cos() * cx - a.sin() * cy) + 10.0,
            ty: cy - s * (a.sin() * cx + a.cos() * cy) + 6.0,
        });
        // 8°, a 3% zoom out, off-centre.
        let (a, s) = (8f64.to_radians(), 0.97);
        check(CameraMotion {
            scale: s,
            rotation: a,
            tx: 500.0 - s * (a.cos() * 500.0 - a.sin() * 300.0) - 14.0,
            ty: 300.0 - s * (a.sin() * 500.0 + a.cos() * 300.0) + 9.0,
        });
        // A 3% zoom about the centre and a turn the other way.
        let (a, s) = (-2.5f64.to_radians(), 1.03);
        check(CameraMotion {
            scale: s,
            rotation: a,
            tx: cx - s * (a.cos() * cx - a.sin() * cy),
            ty: cy - s * (a.sin() * cx + a.cos() * cy),
        });
    }

    #[test]
    fn unrelated_frames_have_a_low_confidence() {
        let a = prepare(&texture(640, 480));
        let b = prepare(&RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([((x * 7 + y * 3) % 251) as u8, ((x * y) % 253) as u8, 40])
        }));
        let e = estimate(&a, &b).unwrap();
        assert!(e.confidence < 0.1, "{e:?}");
    }
}
