//! The oriented box's Kalman filter, advanced by elapsed time.
//!
//! The state is centre, size and angle with their rates: `[cx, cy, w, h, θ]` and `[vx, vy, vw, vh, vθ]`, a
//! constant-velocity model with the discrete white-noise-acceleration process noise of the elapsed time `dt` (so
//! variable frame rates work). Every measurement is one of those five values with independent noise, and the noise of
//! `cx` and `cy` (and of `w` and `h`) is always the same (it scales with the box's size), so the 10-state filter
//! factors exactly into five (value, rate) filters whose covariances come in three shared 2×2 blocks: one for the
//! centre, one for the size, one for the angle. That is the same filter as the 10×10 one, at a fraction of the cost
//! (10,000 tracks per frame), and it stays exact under a camera rotation: the centre block is isotropic, so rotating
//! it leaves it unchanged.

use nalgebra::{Matrix2, Vector2};

/// One (value, rate) block: a covariance shared by one or two components.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block<const N: usize> {
    /// The components' `(value, rate)`.
    pub mean: [Vector2<f64>; N],
    /// The covariance of each component's `(value, rate)`.
    pub cov: Matrix2<f64>,
}

impl<const N: usize> Block<N> {
    fn new(values: [f64; N], value_sd: f64, rate_sd: f64) -> Self {
        Self {
            mean: values.map(|v| Vector2::new(v, 0.0)),
            cov: Matrix2::new(value_sd * value_sd, 0.0, 0.0, rate_sd * rate_sd),
        }
    }

    /// Advances by `dt` seconds with acceleration noise of standard deviation `accel_sd` (units per s²).
    fn predict(&mut self, dt: f64, accel_sd: f64) {
        let f = Matrix2::new(1.0, dt, 0.0, 1.0);
        for m in &mut self.mean {
            *m = f * *m;
        }
        let a2 = accel_sd * accel_sd;
        let (dt2, dt3, dt4) = (dt * dt, dt * dt * dt, dt * dt * dt * dt);
        let q = Matrix2::new(dt4 / 4.0, dt3 / 2.0, dt3 / 2.0, dt2) * a2;
        self.cov = f * self.cov * f.transpose() + q;
    }

    /// Updates each component with its measured value (noise standard deviation `sd`), Joseph form.
    fn update(&mut self, z: [f64; N], sd: f64) {
        let r = sd * sd;
        let s = self.cov[(0, 0)] + r;
        if !(s > 0.0 && s.is_finite()) {
            return;
        }
        let k = Vector2::new(self.cov[(0, 0)] / s, self.cov[(1, 0)] / s);
        for (m, z) in self.mean.iter_mut().zip(z) {
            *m += k * (z - m[0]);
        }
        let i_kh = Matrix2::new(1.0 - k[0], 0.0, -k[1], 1.0);
        self.cov = i_kh * self.cov * i_kh.transpose() + k * k.transpose() * r;
    }
}

/// Noise settings of the filter, relative to the box's size `s = sqrt(w h)` where they are lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Measurement noise of the centre and the sides, as a fraction of the size.
    pub measure: f64,
    /// Acceleration noise of the centre, in sizes per s².
    pub accel: f64,
    /// Acceleration noise of the sides, in sizes per s².
    pub size_accel: f64,
    /// Angular acceleration noise, rad/s².
    pub angle_accel: f64,
    /// Measurement noise of the angle of a long box, rad; it grows as the box approaches a square.
    pub angle: f64,
    /// Initial standard deviation of the centre's velocity, in sizes per second.
    pub initial_speed: f64,
}

impl Default for Noise {
    fn default() -> Self {
        // ByteTrack's measurement noise (position σ h/20); its process noise (velocity σ h/160 per frame at 30 fps,
        // 5.6 sizes/s²) raised for vehicles that turn (a 90° turn in 0.4 s): see docs/tracking.md.
        Self {
            measure: 0.05,
            accel: 15.0,
            size_accel: 2.0,
            angle_accel: 20.0,
            angle: 0.05,
            initial_speed: 5.6,
        }
    }
}

/// The angle's measurement noise: `base` for an elongated box, up to π/4 for a square, whose angle is undefined.
pub fn angle_sd(w: f64, h: f64, base: f64) -> f64 {
    let long = w.max(h);
    if long.is_nan() || long <= 0.0 {
        return std::f64::consts::FRAC_PI_4;
    }
    let elongation = (w - h).abs() / long;
    (base / elongation.max(1e-3)).min(std::f64::consts::FRAC_PI_4)
}

/// An oriented box's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrientedFilter {
    pub centre: Block<2>,
    pub size: Block<2>,
    pub angle: Block<1>,
}

/// A box as the filter measures it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    pub cx: f64,
    pub cy: f64,
    pub w: f64,
    pub h: f64,
    pub angle: f64,
}

impl Measure {
    pub fn scale(&self) -> f64 {
        (self.w.max(1e-6) * self.h.max(1e-6)).sqrt()
    }
}

impl OrientedFilter {
    pub fn new(z: Measure, noise: &Noise) -> Self {
        let s = z.scale();
        Self {
            centre: Block::new(
                [z.cx, z.cy],
                2.0 * noise.measure * s,
                noise.initial_speed * s,
            ),
            size: Block::new(
                [z.w, z.h],
                2.0 * noise.measure * s,
                noise.size_accel * s * 0.1,
            ),
            angle: Block::new([z.angle], angle_sd(z.w, z.h, noise.angle), 1.0),
        }
    }

    /// Advances by `dt` seconds (nothing when `dt` is 0).
    pub fn predict(&mut self, dt: f64, noise: &Noise) {
        if dt.is_nan() || dt <= 0.0 {
            return;
        }
        let s = self.box_now().scale();
        self.centre.predict(dt, noise.accel * s);
        self.size.predict(dt, noise.size_accel * s);
        self.angle.predict(dt, noise.angle_accel);
        // A side never shrinks below a pixel.
        for m in &mut self.size.mean {
            if m[0] < 1.0 {
                m[0] = 1.0;
                m[1] = m[1].max(0.0);
            }
        }
    }

    /// Updates with a measurement already expressed next to the prediction ([`nearest_equivalent`]).
    pub fn update(&mut self, z: Measure, noise: &Noise) {
        let s = z.scale();
        self.centre.update([z.cx, z.cy], noise.measure * s);
        self.size.update([z.w, z.h], noise.measure * s);
        self.angle
            .update([z.angle], angle_sd(z.w, z.h, noise.angle));
    }

    /// The current box.
    pub fn box_now(&self) -> Measure {
        Measure {
            cx: self.centre.mean[0][0],
            cy: self.centre.mean[1][0],
            w: self.size.mean[0][0],
            h: self.size.mean[1][0],
            angle: self.angle.mean[0][0],
        }
    }

    /// The centre's velocity, px/s.
    pub fn velocity(&self) -> (f64, f64) {
        (self.centre.mean[0][1], self.centre.mean[1][1])
    }

    /// Moves the state by a camera motion: `p' = scale · R(rotation) · p + (tx, ty)`; velocities rotate and scale,
    /// sides scale, the angle turns.
    pub fn apply_motion(&mut self, m: &crate::CameraMotion) {
        let (sn, cs) = m.rotation.sin_cos();
        let [x, y] = self.centre.mean;
        let rot = |a: f64, b: f64| (m.scale * (cs * a - sn * b), m.scale * (sn * a + cs * b));
        let (px, py) = rot(x[0], y[0]);
        let (vx, vy) = rot(x[1], y[1]);
        self.centre.mean = [Vector2::new(px + m.tx, vx), Vector2::new(py + m.ty, vy)];
        self.centre.cov *= m.scale * m.scale;
        for s in &mut self.size.mean {
            *s *= m.scale;
        }
        self.size.cov *= m.scale * m.scale;
        self.angle.mean[0][0] += m.rotation;
    }
}

/// A box moved by a camera motion.
pub fn moved(z: &Measure, m: &crate::CameraMotion) -> Measure {
    let (sn, cs) = m.rotation.sin_cos();
    Measure {
        cx: m.scale * (cs * z.cx - sn * z.cy) + m.tx,
        cy: m.scale * (sn * z.cx + cs * z.cy) + m.ty,
        w: z.w * m.scale,
        h: z.h * m.scale,
        angle: z.angle + m.rotation,
    }
}

/// Wraps an angle into `(-π/2, π/2]`: a rectangle is the same after half a turn.
pub fn wrap_half_turn(a: f64) -> f64 {
    use std::f64::consts::PI;
    let r = a.rem_euclid(PI);
    if r > PI / 2.0 { r - PI } else { r }
}

/// The measurement re-expressed as the equivalent rectangle nearest the prediction: the same box is `(w, h, θ + kπ)`
/// or `(h, w, θ + π/2 + kπ)`; the one whose angle is nearest the predicted angle (ties broken by the sides) is
/// chosen, with the angle unwrapped next to the prediction, so that a box turning through 90° keeps a continuous
/// state instead of jumping when a detector swaps its sides.
pub fn nearest_equivalent(z: Measure, predicted: &Measure) -> Measure {
    use std::f64::consts::FRAC_PI_2;
    let candidates = [
        Measure { ..z },
        Measure {
            w: z.h,
            h: z.w,
            angle: z.angle + FRAC_PI_2,
            ..z
        },
    ];
    let cost = |c: &Measure| {
        let da = wrap_half_turn(c.angle - predicted.angle).abs();
        let dw = (c.w.max(1e-6) / predicted.w.max(1e-6)).ln().abs();
        let dh = (c.h.max(1e-6) / predicted.h.max(1e-6)).ln().abs();
        // The angle decides unless the box is near square, where the sides do.
        let weight = 1.0 - angle_sd(c.w, c.h, 0.05) / std::f64::consts::FRAC_PI_4;
        weight * da + (1.0 - weight) * 0.5 * (dw + dh) + 1e-3 * (dw + dh)
    };
    let best = if cost(&candidates[1]) < cost(&candidates[0]) {
        candidates[1]
    } else {
        candidates[0]
    };
    Measure {
        angle: predicted.angle + wrap_half_turn(best.angle - predicted.angle),
        ..best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::{FRAC_PI_2, PI};

    fn m(w: f64, h: f64, angle: f64) -> Measure {
        Measure {
            cx: 0.0,
            cy: 0.0,
            w,
            h,
            angle,
        }
    }

    #[test]
    fn angle_wraps_and_sides_swap_to_the_box_nearest_the_prediction() {
        let pred = m(40.0, 10.0, 1.5);
        // The detector reports the same box with its sides swapped and the angle a quarter turn back.
        let z = nearest_equivalent(m(10.0, 40.0, 1.5 - FRAC_PI_2 + 0.02), &pred);
        assert_eq!((z.w, z.h), (40.0, 10.0));
        assert!((z.angle - 1.52).abs() < 1e-12, "{}", z.angle);
        // Across the ±π/2 seam: 1.55 rad predicted, -1.55 measured is 0.04 rad away, not 3.1.
        let z = nearest_equivalent(m(40.0, 10.0, -1.55), &m(40.0, 10.0, 1.55));
        assert!((z.angle - (PI - 1.55)).abs() < 1e-12, "{}", z.angle);
        assert_eq!(wrap_half_turn(PI), 0.0);
        assert!((wrap_half_turn(3.0 * FRAC_PI_2 + 0.1) - (-FRAC_PI_2 + 0.1)).abs() < 1e-12);
    }

    #[test]
    fn a_square_box_has_the_widest_angle_noise() {
        assert_eq!(angle_sd(10.0, 10.0, 0.05), std::f64::consts::FRAC_PI_4);
        assert!((angle_sd(40.0, 10.0, 0.05) - 0.05 / 0.75).abs() < 1e-12);
        assert!(angle_sd(11.0, 10.0, 0.05) > angle_sd(20.0, 10.0, 0.05));
    }

    #[test]
    fn velocity_is_learnt_and_dt_scales_the_prediction() {
        let noise = Noise::default();
        let mut f = OrientedFilter::new(
            Measure {
                cx: 0.0,
                cy: 0.0,
                w: 20.0,
                h: 10.0,
                angle: 0.0,
            },
            &noise,
        );
        // 100 px/s along x, frames 0.1 s apart.
        for k in 1..=20 {
            f.predict(0.1, &noise);
            f.update(
                Measure {
                    cx: 10.0 * f64::from(k),
                    cy: 0.0,
                    w: 20.0,
                    h: 10.0,
                    angle: 0.0,
                },
                &noise,
            );
        }
        let (vx, vy) = f.velocity();
        assert!((vx - 100.0).abs() < 2.0 && vy.abs() < 1e-9, "{vx} {vy}");
        let mut a = f;
        let mut b = f;
        a.predict(0.5, &noise);
        b.predict(0.25, &noise);
        b.predict(0.25, &noise);
        assert!((a.box_now().cx - b.box_now().cx).abs() < 1e-9);
        assert!((a.box_now().cx - (200.0 + 0.5 * vx)).abs() < 1.0);
    }
}
