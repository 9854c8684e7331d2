//! Neighbour search for the merges: the grid lives in `nsod_types::index`; this module adds the ProbIoU search
//! radius.

use nsod_types::geometry::PROBIOU_EPS;
pub use nsod_types::index::Grid;
use nsod_types::{BBox, OrientedBox};

/// Search squares for ProbIoU: any two boxes with `probiou >= threshold` have intersecting squares. `None` when the
/// threshold is too low for any pruning (every pair must be compared).
///
/// ProbIoU >= t needs the Bhattacharyya distance `bd <= bd_max = -ln(1 + eps - (1 - t)^2)`. Since
/// `bd >= |d|^2 / (4 tr(S1 + S2))` (the other term is >= 0 for covariance matrices), a pair can only pass when the
/// centre distance is below `max(r_i, r_j)` with `r = sqrt(8 bd_max (w^2 + h^2) / 12)`. `bd_max` gets a 1.5x margin.
pub fn probiou_search_boxes(obbs: &[OrientedBox], threshold: f32) -> Option<Vec<BBox>> {
    // ProbIoU is clamped to [0, 1]: with a threshold <= 0 even the farthest pair matches.
    let target = (1.0 - f64::from(threshold)).powi(2) - PROBIOU_EPS;
    if threshold <= 0.0 || !(target > 0.0 && target < 1.0) {
        return None;
    }
    let bd_max = -(1.0 - target).ln() * 1.5 + 1e-6;
    Some(
        obbs.iter()
            .map(|o| {
                let t = (f64::from(o.w).powi(2) + f64::from(o.h).powi(2)) / 12.0;
                let r = ((8.0 * bd_max * t).sqrt() + 1e-3).min(1e7) as f32;
                BBox::new(o.cx - r, o.cy - r, o.cx + r, o.cy + r)
            })
            .collect(),
    )
}
