//! How sure a change is: a paired spatial block bootstrap of the difference between two prediction sets of the
//! same images (before and after the rules).
//!
//! A few large images are a handful of samples, so the images themselves cannot be resampled. Each image is cut into
//! square blocks of `block` pixels instead; a ground-truth object belongs to the block of its centre and a detection
//! to the block of the ground-truth object it overlaps most (so a detection stays with the object it may match),
//! or of its own centre when it overlaps none. Every replicate draws as many blocks as there are, with replacement
//! (a seeded generator), evaluates both sets on the drawn blocks as COCO does on images, and keeps the difference
//! of each metric (last minus first). The interval is the percentile interval of those differences (linear
//! interpolation between order statistics, as numpy's default `percentile`); the estimate is the difference on the
//! whole images.
//!
//! Blocks are independent samples only as far as their contents are: neighbouring crowns of one stand are alike,
//! so blocks several objects wide (the default 100 px is about two crowns at 10 cm) keep the interval honest.

use crate::coco::{CocoEval, evaluate_with};
use crate::{Dataset, Detections, Dt, Image, iou};

/// What to resample and how often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Replicates (1,000 gives the 2.5 / 97.5 percentiles to about ±0.1 of a standard error).
    pub replicates: usize,
    /// Side of a block, pixels.
    pub block: f64,
    pub seed: u64,
    /// Coverage of the interval (0.95).
    pub level: f64,
    /// COCO's maxDets, as in the evaluation itself.
    pub max_dets: [usize; 3],
}

impl Default for Config {
    fn default() -> Self {
        Self {
            replicates: 1000,
            block: 100.0,
            seed: 0,
            level: 0.95,
            max_dets: crate::coco::MAX_DETS,
        }
    }
}

/// The metrics whose change is bootstrapped: `(name, index in the COCO summary)`.
pub const METRICS: [(&str, usize); 3] = [("AP50", 1), ("AP", 0), ("AR", 8)];

/// The change of one metric with its interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub metric: &'static str,
    /// Last minus first on the whole images.
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// Replicates where the metric was undefined in either set (no ground truth drawn), left out.
    pub undefined: usize,
}

impl Change {
    /// Whether the interval leaves out 0 (the change is significant at the interval's level).
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// A bootstrap's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub replicates: usize,
    pub block: f64,
    pub seed: u64,
    pub level: f64,
    /// Blocks drawn from (every block of every image, empty or not).
    pub blocks: usize,
    pub changes: Vec<Change>,
}

/// One block: its ground truth and both sets' detections.
struct Block {
    image: Image,
    first: Vec<Dt>,
    last: Vec<Dt>,
}

fn centre(shape: &crate::Shape) -> (f64, f64) {
    match shape {
        crate::Shape::Xywh([x, y, w, h]) => (x + w / 2.0, y + h / 2.0),
        crate::Shape::Oriented(o) => (f64::from(o.cx), f64::from(o.cy)),
        crate::Shape::Quad(q) => (
            q.iter().map(|p| p.x).sum::<f64>() / 4.0,
            q.iter().map(|p| p.y).sum::<f64>() / 4.0,
        ),
    }
}

/// Cuts every image into blocks (row-major, image by image).
fn blocks(data: &Dataset, first: &Detections, last: &Detections, side: f64) -> Vec<Block> {
    let mut out = Vec::new();
    for (i, img) in data.images.iter().enumerate() {
        let (w, h) = (f64::from(img.width.max(1)), f64::from(img.height.max(1)));
        let (nx, ny) = ((w / side).ceil() as usize, (h / side).ceil() as usize);
        let index = |(x, y): (f64, f64)| {
            let bx = ((x / side).floor().max(0.0) as usize).min(nx - 1);
            let by = ((y / side).floor().max(0.0) as usize).min(ny - 1);
            by * nx + bx
        };
        let base = out.len();
        for b in 0..nx * ny {
            out.push(Block {
                image: Image {
                    id: (base + b) as u64,
                    name: format!("{}#{b}", img.name),
                    width: side as u32,
                    height: side as u32,
                    gts: Vec::new(),
                },
                first: Vec::new(),
                last: Vec::new(),
            });
        }
        let gt_blocks: Vec<usize> = img.gts.iter().map(|g| index(centre(&g.shape))).collect();
        for (g, &b) in img.gts.iter().zip(&gt_blocks) {
            out[base + b].image.gts.push(g.clone());
        }
        let home = |d: &Dt| -> usize {
            let best = img
                .gts
                .iter()
                .zip(&gt_blocks)
                .map(|(g, &b)| (iou(&d.shape, &g.shape, g.crowd), b))
                .filter(|(v, _)| *v > 0.0)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            best.map_or_else(|| index(centre(&d.shape)), |(_, b)| b)
        };
        for d in first.get(i).map_or(&[][..], Vec::as_slice) {
            let b = home(d);
            out[base + b].first.push(d.clone());
        }
        for d in last.get(i).map_or(&[][..], Vec::as_slice) {
            let b = home(d);
            out[base + b].last.push(d.clone());
        }
    }
    out
}

/// The `q`-quantile (0..=1) of sorted values, linear between order statistics (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn metric(e: &CocoEval, index: usize) -> f64 {
    e.summary.to_array()[index]
}

/// The paired block bootstrap of the change from `first` to `last` (see the module's documentation).
pub fn paired(data: &Dataset, first: &Detections, last: &Detections, config: &Config) -> Outcome {
    let whole_first = evaluate_with(data, first, config.max_dets);
    let whole_last = evaluate_with(data, last, config.max_dets);
    let blocks = blocks(data, first, last, config.block.max(1.0));
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let mut diffs: Vec<Vec<f64>> = vec![Vec::with_capacity(config.replicates); METRICS.len()];
    let mut undefined = [0usize; METRICS.len()];
    for _ in 0..config.replicates {
        let mut sample = Dataset {
            images: Vec::with_capacity(blocks.len()),
            categories: data.categories.clone(),
            excluded: Default::default(),
        };
        let (mut a, mut b): (Detections, Detections) = (Vec::new(), Vec::new());
        for k in 0..blocks.len() {
            let block = &blocks[rng.usize(..blocks.len())];
            let mut image = block.image.clone();
            image.id = k as u64;
            sample.images.push(image);
            a.push(block.first.clone());
            b.push(block.last.clone());
        }
        let (ea, eb) = (
            evaluate_with(&sample, &a, config.max_dets),
            evaluate_with(&sample, &b, config.max_dets),
        );
        for (m, (_, index)) in METRICS.iter().enumerate() {
            let (x, y) = (metric(&ea, *index), metric(&eb, *index));
            if x > -1.0 && y > -1.0 {
                diffs[m].push(y - x);
            } else {
                undefined[m] += 1;
            }
        }
    }
    let tail = (1.0 - config.level) / 2.0;
    let changes = METRICS
        .iter()
        .enumerate()
        .map(|(m, (name, index))| {
            let d = &mut diffs[m];
            d.sort_by(f64::total_cmp);
            Change {
                metric: name,
                estimate: metric(&whole_last, *index) - metric(&whole_first, *index),
                low: quantile(d, tail),
                high: quantile(d, 1.0 - tail),
                undefined: undefined[m],
            }
        })
        .collect();
    Outcome {
        replicates: config.replicates,
        block: config.block,
        seed: config.seed,
        level: config.level,
        blocks: blocks.len(),
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Gt, Shape};

    fn gt(x: f64, y: f64) -> Gt {
        Gt {
            category: 0,
            shape: Shape::Xywh([x, y, 20.0, 20.0]),
            area: 400.0,
            crowd: false,
            ignore: false,
        }
    }

    fn dt(x: f64, y: f64, score: f64) -> Dt {
        Dt {
            category: 0,
            shape: Shape::Xywh([x, y, 20.0, 20.0]),
            score,
        }
    }

    /// A 400 x 400 image with 16 objects on a 100 px grid; `first` finds each (shifted by 1 px) and has 8 false
    /// positives scored above them; `last` is the same without the false positives.
    fn scene() -> (Dataset, Detections, Detections) {
        let mut gts = Vec::new();
        let mut found = Vec::new();
        for i in 0..4 {
            for j in 0..4 {
                let (x, y) = (40.0 + 100.0 * f64::from(i), 40.0 + 100.0 * f64::from(j));
                gts.push(gt(x, y));
                found.push(dt(x + 1.0, y, 0.5 + 0.01 * f64::from(i * 4 + j)));
            }
        }
        let mut first = found.clone();
        for k in 0..8 {
            first.push(dt(5.0 + 50.0 * f64::from(k), 5.0, 0.9));
        }
        let data = Dataset {
            images: vec![Image {
                id: 1,
                name: "a".into(),
                width: 400,
                height: 400,
                gts,
            }],
            categories: vec![Category {
                id: 0,
                name: "tree".into(),
            }],
            excluded: Default::default(),
        };
        (data, vec![first], vec![found])
    }

    #[test]
    fn removing_false_positives_ranked_above_every_object_is_a_change_the_interval_keeps() {
        let (data, first, last) = scene();
        let o = paired(&data, &first, &last, &Config::default());
        assert_eq!(o.blocks, 16);
        let ap50 = &o.changes[0];
        assert_eq!(ap50.metric, "AP50");
        // Whole image: 16 of 16 found at IoU 19*20/(2*400-19*20) = 0.905; first ranks 8 false positives above them.
        let whole_first = evaluate_with(&data, &first, crate::coco::MAX_DETS)
            .summary
            .AP50;
        assert_eq!(ap50.estimate, 1.0 - whole_first);
        assert!(whole_first < 0.7, "{whole_first}");
        assert!(ap50.excludes_zero() && ap50.low > 0.0, "{ap50:?}");
        // Recall does not change: its interval is [0, 0].
        let ar = &o.changes[2];
        assert_eq!((ar.estimate, ar.low, ar.high), (0.0, 0.0, 0.0));
        assert!(!ar.excludes_zero());
    }

    #[test]
    fn the_same_sets_give_a_zero_interval_and_the_same_seed_the_same_interval() {
        let (data, first, last) = scene();
        let o = paired(&data, &first, &first, &Config::default());
        for c in &o.changes {
            assert_eq!((c.estimate, c.low, c.high), (0.0, 0.0, 0.0), "{c:?}");
        }
        let config = Config {
            replicates: 200,
            seed: 7,
            ..Config::default()
        };
        assert_eq!(
            paired(&data, &first, &last, &config),
            paired(&data, &first, &last, &config)
        );
    }

    #[test]
    fn a_detection_goes_with_the_object_it_overlaps_even_across_a_block_border() {
        // The object's centre is in block 0 (x 90 + 10 = 100 is the border: 99.5 < 100), the detection's in
        // block 1; it must land in block 0 with its object, else every replicate would see a miss and a false
        // positive.
        let data = Dataset {
            images: vec![Image {
                id: 1,
                name: "a".into(),
                width: 200,
                height: 100,
                gts: vec![gt(89.5, 40.0)],
            }],
            categories: vec![Category {
                id: 0,
                name: "tree".into(),
            }],
            excluded: Default::default(),
        };
        let dets = vec![vec![dt(91.0, 40.0, 0.9), dt(150.0, 10.0, 0.1)]];
        let b = blocks(&data, &dets, &dets, 100.0);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].image.gts.len(), b[0].first.len()), (1, 1));
        assert_eq!((b[1].image.gts.len(), b[1].first.len()), (0, 1));
    }

    #[test]
    fn quantiles_interpolate_as_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&v, 0.5), 2.5);
        // numpy.percentile([1, 2, 3, 4], 2.5) = 1.075
        assert!((quantile(&v, 0.025) - 1.075).abs() < 1e-12);
    }
}
