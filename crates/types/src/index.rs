//! A uniform grid over axis-aligned boxes for neighbour queries: each box is compared only with the boxes in the
//! cells it touches, so pairwise work over thousands of boxes stays near linear.

use crate::BBox;

/// Boxes bucketed into square cells; a box is listed in every cell it touches.
#[derive(Debug)]
pub struct Grid {
    x0: f32,
    y0: f32,
    inv_cell: f32,
    nx: usize,
    ny: usize,
    cells: Vec<Vec<u32>>,
    stamps: Vec<u32>,
    stamp: u32,
}

impl Grid {
    /// Builds the grid. The cell side is the median of the boxes' larger sides, enlarged if needed so that the grid
    /// has at most about four cells per box.
    pub fn new(boxes: &[BBox]) -> Self {
        let finite: Vec<&BBox> = boxes.iter().filter(|b| b.is_finite()).collect();
        if finite.is_empty() {
            return Self {
                x0: 0.0,
                y0: 0.0,
                inv_cell: 1.0,
                nx: 1,
                ny: 1,
                cells: vec![Vec::new()],
                stamps: vec![0; boxes.len()],
                stamp: 0,
            };
        }
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        let mut sides: Vec<f32> = Vec::with_capacity(finite.len());
        for b in &finite {
            x0 = x0.min(b.x1);
            y0 = y0.min(b.y1);
            x1 = x1.max(b.x2);
            y1 = y1.max(b.y2);
            sides.push(b.width().max(b.height()));
        }
        let mid = sides.len() / 2;
        let median = *sides.select_nth_unstable_by(mid, f32::total_cmp).1;
        let (w, h) = ((x1 - x0).max(1e-3), (y1 - y0).max(1e-3));
        let max_cells = (4 * finite.len()).max(16) as f32;
        let mut cell = median.max(1e-3);
        if (w / cell).ceil() * (h / cell).ceil() > max_cells {
            cell = (w * h / max_cells).sqrt().max(cell);
            // sqrt(area / max_cells) can still leave ceil() overshoot; grow until it fits.
            while (w / cell).ceil() * (h / cell).ceil() > max_cells * 1.5 {
                cell *= 1.25;
            }
        }
        let nx = ((w / cell).ceil() as usize).max(1);
        let ny = ((h / cell).ceil() as usize).max(1);
        let mut grid = Self {
            x0,
            y0,
            inv_cell: 1.0 / cell,
            nx,
            ny,
            cells: vec![Vec::new(); nx * ny],
            stamps: vec![0; boxes.len()],
            stamp: 0,
        };
        for (i, b) in boxes.iter().enumerate() {
            if b.is_finite() {
                let (cx0, cy0, cx1, cy1) = grid.cell_range(b);
                for cy in cy0..=cy1 {
                    for cx in cx0..=cx1 {
                        grid.cells[cy * nx + cx].push(i as u32);
                    }
                }
            }
        }
        grid
    }

    fn cell_range(&self, b: &BBox) -> (usize, usize, usize, usize) {
        let clamp = |v: f32, n: usize| -> usize {
            if v.is_nan() || v <= 0.0 {
                0
            } else {
                (v as usize).min(n - 1)
            }
        };
        (
            clamp((b.x1 - self.x0) * self.inv_cell, self.nx),
            clamp((b.y1 - self.y0) * self.inv_cell, self.ny),
            clamp((b.x2 - self.x0) * self.inv_cell, self.nx),
            clamp((b.y2 - self.y0) * self.inv_cell, self.ny),
        )
    }

    /// Calls `visit` once for every indexed box listed in a cell that `query` touches (a superset of the boxes whose
    /// rectangles intersect `query`).
    pub fn for_each_near(&mut self, query: &BBox, mut visit: impl FnMut(usize)) {
        if !query.is_finite() {
            return;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.stamps.iter_mut().for_each(|s| *s = 0);
            self.stamp = 1;
        }
        let (cx0, cy0, cx1, cy1) = self.cell_range(query);
        for cy in cy0..=cy1 {
            for cx in cx0..=cx1 {
                for &j in &self.cells[cy * self.nx + cx] {
                    let j = j as usize;
                    if self.stamps[j] != self.stamp {
                        self.stamps[j] = self.stamp;
                        visit(j);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_intersecting_boxes_among_candidates() {
        let boxes: Vec<BBox> = (0..400)
            .map(|i| {
                let (x, y) = ((i % 20) as f32 * 30.0, (i / 20) as f32 * 30.0);
                BBox::new(x, y, x + 20.0 + (i % 7) as f32 * 10.0, y + 20.0)
            })
            .collect();
        let mut grid = Grid::new(&boxes);
        for q in &boxes {
            let mut found = Vec::new();
            grid.for_each_near(q, |j| found.push(j));
            let want: Vec<usize> = (0..boxes.len())
                .filter(|&j| crate::geometry::intersection_area(q, &boxes[j]) > 0.0)
                .collect();
            for w in &want {
                assert!(found.contains(w), "missed {w}");
            }
            let mut dedup = found.clone();
            dedup.sort_unstable();
            dedup.dedup();
            assert_eq!(dedup.len(), found.len(), "a box was visited twice");
        }
    }

    #[test]
    fn empty_and_non_finite_input() {
        let mut g = Grid::new(&[]);
        g.for_each_near(&BBox::new(0.0, 0.0, 1.0, 1.0), |_| {
            panic!("nothing indexed")
        });
        let mut g = Grid::new(&[
            BBox {
                x1: f32::NAN,
                y1: 0.0,
                x2: 1.0,
                y2: 1.0,
            },
            BBox::new(0.0, 0.0, 1.0, 1.0),
        ]);
        let mut n = 0;
        g.for_each_near(&BBox::new(0.0, 0.0, 1.0, 1.0), |j| {
            assert_eq!(j, 1);
            n += 1;
        });
        assert_eq!(n, 1);
    }
}
