//! A track's course in the ground frame, for the rules over tracks: speed, displacement and heading measured so
//! that detection jitter does not read as motion.
//!
//! Positions are given in the *ground frame*: the first frame's pixels, reached through the camera motion
//! compensated so far ([`GroundFrame`]), or a georeferenced frame's projected coordinates. A jittering box centre
//! (1 px per frame at 30 fps is 30 px/s of path) would make every parked car move, so the course is measured on
//! *window means*: the observations of each `window` seconds are averaged into one point (time and position), and
//!
//! * speed = path through the window means / time between the first and the last window mean;
//! * displacement = distance from the first window mean to the last;
//! * heading = direction of that displacement (`atan2(dy, dx)`, the ground frame's axes), when it is longer than
//!   the jitter a window mean keeps;
//!
//! all defined only when the track spans at least `min_duration` seconds (`None` before: a track of one or two
//! frames has no measurable speed). Memory is one point per window, whatever the track's length.

use crate::CameraMotion;

/// A similarity transform `p ↦ s·R(θ)·p + t`, from the current frame's pixels to the ground frame (the first
/// frame's pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundFrame {
    a: f64,
    b: f64,
    tx: f64,
    ty: f64,
}

impl Default for GroundFrame {
    fn default() -> Self {
        Self {
            a: 1.0,
            b: 0.0,
            tx: 0.0,
            ty: 0.0,
        }
    }
}

impl GroundFrame {
    /// Moves to the next frame: `motion` maps the previous frame's pixels to this frame's (`None`: the camera did
    /// not move, or its motion was not compensated). Ground = previous-to-ground ∘ motion⁻¹.
    pub fn advance(&mut self, motion: Option<&CameraMotion>) {
        let Some(m) = motion else { return };
        if !(m.scale.is_finite() && m.scale > 0.0) {
            return;
        }
        // motion: p' = s·R·p + t  →  p = R⁻¹(p' − t)/s
        let (sn, cs) = m.rotation.sin_cos();
        let (ia, ib) = (cs / m.scale, -sn / m.scale);
        let (itx, ity) = (-(ia * m.tx - ib * m.ty), -(ib * m.tx + ia * m.ty));
        // self ∘ inverse
        let (a, b) = (self.a * ia - self.b * ib, self.a * ib + self.b * ia);
        let tx = self.a * itx - self.b * ity + self.tx;
        let ty = self.b * itx + self.a * ity + self.ty;
        *self = Self { a, b, tx, ty };
    }

    /// A point of the current frame in the ground frame.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }
}

/// How a course is measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CourseConfig {
    /// Seconds of observations averaged into one point.
    pub window: f64,
    /// Shortest span, seconds, over which speed, displacement and heading are given.
    pub min_duration: f64,
}

impl Default for CourseConfig {
    fn default() -> Self {
        Self {
            window: 1.0,
            min_duration: 2.0,
        }
    }
}

/// The measured course of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CourseSummary {
    /// Seconds from the first observation to the last.
    pub duration: f64,
    /// Ground units per second (pixels of the ground frame, or metres of a projected CRS).
    pub speed: Option<f64>,
    /// Ground units from the first window mean to the last.
    pub displacement: Option<f64>,
    /// Radians, direction of the displacement in the ground frame's axes.
    pub heading: Option<f64>,
}

/// A track's observations in the ground frame, as window means.
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    cfg: CourseConfig,
    first: Option<f64>,
    last: f64,
    /// Closed windows: mean time, mean x, mean y.
    points: Vec<(f64, f64, f64)>,
    /// The open window: its start, sums of time, x and y, and count.
    open: Option<(f64, f64, f64, f64, u32)>,
}

impl Course {
    pub fn new(cfg: CourseConfig) -> Self {
        Self {
            cfg,
            first: None,
            last: 0.0,
            points: Vec::new(),
            open: None,
        }
    }

    /// Adds an observation at `time` seconds, at ground position `(x, y)`. Times must not decrease.
    pub fn push(&mut self, time: f64, x: f64, y: f64) {
        if !(time.is_finite() && x.is_finite() && y.is_finite()) {
            return;
        }
        self.first.get_or_insert(time);
        self.last = time;
        match &mut self.open {
            Some((start, st, sx, sy, n)) if time - *start < self.cfg.window => {
                *st += time;
                *sx += x;
                *sy += y;
                *n += 1;
            }
            open => {
                if let Some((_, st, sx, sy, n)) = open.take() {
                    let k = f64::from(n);
                    self.points.push((st / k, sx / k, sy / k));
                }
                *open = Some((time, time, x, y, 1));
            }
        }
    }

    /// The window means so far, the open window included: `(time, x, y)`.
    pub fn points(&self) -> Vec<(f64, f64, f64)> {
        self.means().collect()
    }

    /// The window means so far, the open window included.
    fn means(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        self.points
            .iter()
            .copied()
            .chain(self.open.map(|(_, st, sx, sy, n)| {
                let k = f64::from(n);
                (st / k, sx / k, sy / k)
            }))
    }

    pub fn summary(&self) -> CourseSummary {
        let duration = self.first.map_or(0.0, |f| self.last - f);
        let mut out = CourseSummary {
            duration,
            speed: None,
            displacement: None,
            heading: None,
        };
        if duration < self.cfg.min_duration {
            return out;
        }
        let mut it = self.means();
        let Some(first) = it.next() else { return out };
        let (mut path, mut prev) = (0.0, first);
        for p in it {
            path += (p.1 - prev.1).hypot(p.2 - prev.2);
            prev = p;
        }
        let span = prev.0 - first.0;
        if span <= 0.0 {
            return out;
        }
        let (dx, dy) = (prev.1 - first.1, prev.2 - first.2);
        let d = dx.hypot(dy);
        out.speed = Some(path / span);
        out.displacement = Some(d);
        // Below half a unit the direction is the jitter's.
        out.heading = (d > 0.5).then(|| dy.atan2(dx));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ground_frame_undoes_the_camera_motion() {
        // A point fixed on the ground, seen through a camera that moves, turns and zooms: its ground position stays.
        let mut g = GroundFrame::default();
        let (mut x, mut y) = (300.0f64, 200.0f64);
        let motions = [
            CameraMotion {
                scale: 1.01,
                rotation: 0.02,
                tx: -5.0,
                ty: 3.0,
            },
            CameraMotion {
                scale: 0.99,
                rotation: -0.05,
                tx: 7.0,
                ty: -1.0,
            },
            CameraMotion::IDENTITY,
        ];
        for m in &motions {
            let (sn, cs) = m.rotation.sin_cos();
            (x, y) = (
                m.scale * (cs * x - sn * y) + m.tx,
                m.scale * (sn * x + cs * y) + m.ty,
            );
            g.advance(Some(m));
            let (gx, gy) = g.apply(x, y);
            assert!(
                (gx - 300.0).abs() < 1e-9 && (gy - 200.0).abs() < 1e-9,
                "{gx} {gy}"
            );
        }
    }

    #[test]
    fn jitter_does_not_read_as_motion_and_motion_does() {
        let cfg = CourseConfig::default();
        // A parked car seen at 30 fps for 6 s, its centre jittering up to ±1 px every frame (about 30 px/s of raw
        // path: 9 m/s at 0.3 m per pixel).
        let mut seed = 12345u64;
        let mut jitter = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let mut still = Course::new(cfg);
        let mut moving = Course::new(cfg);
        let mut raw_path = 0.0;
        let mut prev: Option<(f64, f64)> = None;
        for k in 0..180 {
            let t = f64::from(k) / 30.0;
            let (jx, jy) = (jitter(), jitter());
            still.push(t, 100.0 + jx, 50.0 + jy);
            if let Some((px, py)) = prev {
                raw_path += (jx - px).hypot(jy - py);
            }
            prev = Some((jx, jy));
            // 20 px/s to the south-east with the same jitter.
            moving.push(t, 100.0 + 12.0 * t + jx, 50.0 + 16.0 * t + jy);
        }
        assert!(raw_path / 6.0 > 25.0, "{raw_path}");
        let s = still.summary();
        assert!(s.speed.unwrap() < 1.0, "{s:?}");
        assert!(s.displacement.unwrap() < 0.5, "{s:?}");
        assert_eq!(s.heading, None);
        let m = moving.summary();
        assert!((m.speed.unwrap() - 20.0).abs() < 0.5, "{m:?}");
        assert!(
            (m.heading.unwrap() - 16f64.atan2(12.0)).abs() < 0.02,
            "{m:?}"
        );
        // Under the minimum duration nothing is measured.
        let mut short = Course::new(cfg);
        short.push(0.0, 0.0, 0.0);
        short.push(1.5, 100.0, 0.0);
        assert_eq!(
            short.summary(),
            CourseSummary {
                duration: 1.5,
                speed: None,
                displacement: None,
                heading: None
            }
        );
    }
}
