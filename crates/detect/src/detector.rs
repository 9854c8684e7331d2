//! One image through the model: slicing, batched runs, decoding, NMS and merging.

use crate::DetectError;
use crate::model::Model;
use crate::preprocess::{Letterbox, Region, letterbox_into};
use crate::slicing::slice_regions;
use image::RgbImage;
use nsod_nms::{MergeConfig, postprocess, ultralytics_nms};
use nsod_types::{BBox, Detection, OrientedBox};
use rayon::prelude::*;
use std::time::Instant;

/// When to slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SliceMode {
    /// Slice images larger than the model input, with slices of the input size.
    #[default]
    Auto,
    /// Never slice (`--slice 0`): the whole image is letterboxed into the input.
    Off,
    /// Square slices of this many pixels.
    Size(u32),
}

/// Inference settings. [`Default`] matches Ultralytics' predictor (conf 0.25, IoU 0.7, 300 detections) and SAHI's
/// sliced prediction (overlap 0.2, full-image pass, greedy NMM on IoS 0.5).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    /// Class-agnostic NMS on each run's output.
    pub agnostic_nms: bool,
    pub slice: SliceMode,
    pub overlap: f32,
    pub full_pass: bool,
    pub merge: MergeConfig,
    /// Slices per session run for models with a dynamic batch axis.
    pub batch: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            agnostic_nms: false,
            slice: SliceMode::Auto,
            overlap: 0.2,
            full_pass: true,
            merge: MergeConfig::default(),
            batch: 1,
        }
    }
}

/// Detections of one image and how they were obtained.
#[derive(Debug, Clone, Default)]
pub struct ImageDetections {
    /// In original image pixels, best first.
    pub detections: Vec<Detection>,
    /// Slices run (1 when not sliced; the full-image pass counts as a slice).
    pub slices: usize,
    /// Detections before the merge across slices.
    pub merge_input: usize,
    /// Session runs and their total time.
    pub runs: usize,
    pub run_seconds: f64,
    pub preprocess_seconds: f64,
    pub postprocess_seconds: f64,
    /// Duration of each session run, and of the letterboxing before it.
    pub run_durations: Vec<f64>,
    pub preprocess_durations: Vec<f64>,
    /// Time of the merge across slices (0 when the image was not sliced).
    pub merge_seconds: f64,
    /// Whether the image was sliced (and merged).
    pub sliced: bool,
}

/// A model with its settings and reusable buffers.
#[derive(Debug)]
pub struct Detector {
    pub model: Model,
    pub config: DetectorConfig,
    input: Vec<f32>,
}

impl Detector {
    pub fn new(model: Model, config: DetectorConfig) -> Self {
        Self {
            model,
            config,
            input: Vec::new(),
        }
    }

    /// The regions of an image this detector runs, and whether the result needs the SAHI merge.
    pub fn regions(&self, width: u32, height: u32) -> (Vec<Region>, bool) {
        let (mh, mw) = self.model.info.input_hw;
        let full = Region {
            x: 0,
            y: 0,
            width,
            height,
        };
        let slice = match self.config.slice {
            SliceMode::Off => None,
            SliceMode::Size(s) => Some((s, s)),
            SliceMode::Auto => (width > mw || height > mh).then_some((mw, mh)),
        };
        let Some((sw, sh)) = slice else {
            return (vec![full], false);
        };
        let mut regions = slice_regions(
            width,
            height,
            sw,
            sh,
            self.config.overlap,
            self.config.overlap,
        );
        if regions.len() > 1 && self.config.full_pass {
            regions.push(full);
        }
        let merge = regions.len() > 1;
        (regions, merge)
    }

    /// Runs the model over `img`.
    pub fn detect(&mut self, img: &RgbImage) -> Result<ImageDetections, DetectError> {
        if img.width() == 0 || img.height() == 0 {
            return Err(DetectError::Output(format!(
                "the image has no pixels ({} x {})",
                img.width(),
                img.height()
            )));
        }
        let (regions, merge_needed) = self.regions(img.width(), img.height());
        let (mh, mw) = self.model.info.input_hw;
        let per_image = 3 * (mh * mw) as usize;
        let batch = self.model.info.max_batch(self.config.batch);
        let mut result = ImageDetections {
            slices: regions.len(),
            ..Default::default()
        };
        let mut all = Vec::new();
        for chunk in regions.chunks(batch) {
            // A fixed batch larger than the chunk is filled with padding images whose output is ignored.
            let n_run = self.model.info.fixed_batch.unwrap_or(chunk.len());
            let t = Instant::now();
            self.input.resize(n_run * per_image, 114.0 / 255.0);
            let letterboxes: Vec<Letterbox> = chunk
                .par_iter()
                .zip(self.input.par_chunks_exact_mut(per_image))
                .map(|(r, buf)| letterbox_into(img, *r, mw, mh, buf))
                .collect();
            let pre = t.elapsed().as_secs_f64();
            result.preprocess_seconds += pre;
            result.preprocess_durations.push(pre);
            let t = Instant::now();
            let (shape, data) = self.model.run(&self.input, n_run)?;
            let run = t.elapsed().as_secs_f64();
            result.run_seconds += run;
            result.run_durations.push(run);
            result.runs += 1;
            let t = Instant::now();
            let [b, d1, d2] = shape[..] else {
                return Err(DetectError::Output(format!(
                    "output shape {shape:?} is not [batch, a, b]"
                )));
            };
            if b < chunk.len() {
                return Err(DetectError::Output(format!(
                    "output batch {b} is smaller than the {} inputs",
                    chunk.len()
                )));
            }
            for (i, (region, lb)) in chunk.iter().zip(&letterboxes).enumerate() {
                let out = &data[i * d1 * d2..(i + 1) * d1 * d2];
                let dets = self.postprocess_run(out, [d1, d2])?;
                all.extend(dets.into_iter().map(|d| to_image(d, lb, region)));
            }
            result.postprocess_seconds += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        result.merge_input = all.len();
        result.detections = if merge_needed {
            postprocess(all, &self.config.merge)
        } else {
            all.sort_by(|a, b| b.score.total_cmp(&a.score));
            all
        };
        let merge = t.elapsed().as_secs_f64();
        result.postprocess_seconds += merge;
        if merge_needed {
            result.merge_seconds = merge;
        }
        result.sliced = merge_needed;
        Ok(result)
    }

    /// Decoding and Ultralytics' NMS for one run's output of one input.
    fn postprocess_run(
        &self,
        out: &[f32],
        dims: [usize; 2],
    ) -> Result<Vec<Detection>, DetectError> {
        let layout = self.model.info.layout;
        let c = &self.config;
        let mut dets = layout
            .decode(out, dims, c.conf, &self.model.info.names, c.max_det)
            .map_err(DetectError::Output)?;
        if !layout.is_end_to_end() {
            let keep = ultralytics_nms(
                &dets,
                c.iou,
                c.agnostic_nms,
                layout.is_oriented(),
                c.max_det,
            );
            let mut taken: Vec<Option<Detection>> = dets.into_iter().map(Some).collect();
            dets = keep.into_iter().filter_map(|i| taken[i].take()).collect();
        }
        Ok(dets)
    }
}

/// Maps a detection from model-input pixels back to the original image (Ultralytics' `scale_boxes`, then the
/// slice offset). Axis-aligned boxes are clipped to their region; rotated boxes are regularised.
fn to_image(mut d: Detection, lb: &Letterbox, region: &Region) -> Detection {
    let (gx, gy) = (lb.gain_x as f32, lb.gain_y as f32);
    let (px, py) = (lb.pad_x as f32, lb.pad_y as f32);
    let (ox, oy) = (region.x as f32, region.y as f32);
    match d.obb {
        Some(o) => {
            let o = OrientedBox::new(
                (o.cx - px) / gx + ox,
                (o.cy - py) / gy + oy,
                o.w / gx,
                o.h / gy,
                o.angle,
            )
            .regularized();
            d.obb = Some(o);
            d.bbox = o.aabb();
        }
        None => {
            let b = d.bbox;
            let local = BBox::new(
                (b.x1 - px) / gx,
                (b.y1 - py) / gy,
                (b.x2 - px) / gx,
                (b.y2 - py) / gy,
            )
            .clip(region.width as f32, region.height as f32);
            d.bbox = local.translate(ox, oy);
        }
    }
    d
}
