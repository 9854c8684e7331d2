//! One image through the model: slicing, batched runs, decoding, NMS and merging.

use crate::DetectError;
use crate::model::{Model, ModelInfo};
use crate::preprocess::{Fit, Letterbox, Region, letterbox_fit_into};
use crate::slicing::slice_regions;
use crate::source::ImageSource;
use image::RgbImage;
use nsod_nms::{MergeConfig, postprocess, ultralytics_nms};
use nsod_types::{BBox, Detection, OrientedBox};
use rayon::prelude::*;
use std::time::Instant;

/// The most slices one image may be cut into (a 100,000 px square raster in slices of 1024 with 20% overlap is
/// about 15,000); above it the image is refused with the numbers, never cut into millions of regions.
pub const MAX_SLICES: u64 = 250_000;

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

/// In a configuration file: `"auto"`, `"off"` (or 0) or a size in pixels.
impl serde::Serialize for SliceMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Off => s.serialize_str("off"),
            Self::Size(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SliceMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Size(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) if t == "auto" => Ok(Self::Auto),
            Raw::Text(t) if t == "off" => Ok(Self::Off),
            Raw::Size(0) => Ok(Self::Off),
            Raw::Size(n) if n > 0 && n <= i64::from(u32::MAX) => Ok(Self::Size(n as u32)),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "slice {t:?}: use \"auto\", \"off\" or a size in pixels"
            ))),
            Raw::Size(n) => Err(serde::de::Error::custom(format!(
                "slice {n}: use \"auto\", \"off\" or a size in pixels"
            ))),
        }
    }
}

impl std::str::FromStr for SliceMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "off" | "0" => Ok(Self::Off),
            n => n
                .parse::<u32>()
                .map(Self::Size)
                .map_err(|_| format!("{s:?}: use auto, off (or 0) or a size in pixels")),
        }
    }
}

impl std::fmt::Display for SliceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Off => f.write_str("off"),
            Self::Size(n) => write!(f, "{n}"),
        }
    }
}

/// How a region is padded into the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Rect {
    /// The minimum rectangle when the model's height and width are dynamic (what Ultralytics' predictor does with
    /// such a model), else the model's input size.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// The minimum rectangle: resized as into the model's `imgsz`, then padded only to a multiple of its stride (a
    /// 1024 x 720 slice runs as 1024 x 736, a 1280 x 720 frame's full-image pass as 1024 x 576). Needs a model of
    /// dynamic height and width.
    #[serde(rename = "on")]
    On,
    /// Always letterboxed into the model's `imgsz` (as a fixed-size model takes it).
    #[serde(rename = "off")]
    Off,
}

setting_words!(Rect, "rect", { Auto => "auto", On => "on", Off => "off" });

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
    /// Minimum-rectangle inputs for models of dynamic height and width.
    pub rect: Rect,
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
            rect: Rect::Auto,
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
    /// Windowed sources ([`Detector::detect_source`]): time spent reading each slice (overlapped with the model
    /// runs, so not part of the detection's wall time) and the slices skipped because they held no data.
    pub read_durations: Vec<f64>,
    pub skipped: usize,
    /// With a [`Detector::tile`]: per slice run, its index among the image's regions and how many of
    /// `detections` (in order, unmerged) it found.
    pub groups: Vec<(usize, usize)>,
    /// Wall time from the image's first slice to its merge.
    pub elapsed_seconds: f64,
}

/// One model input: a region of `image` (`within`) that stands for `placed` in the original image (the same size,
/// or smaller for a decimated full-image pass).
pub(crate) struct SliceInput<'a> {
    pub(crate) image: &'a RgbImage,
    pub(crate) within: Region,
    pub(crate) placed: Region,
}

impl<'a> SliceInput<'a> {
    /// Pixels read from a windowed source for `placed` (all of `image`, at full or decimated resolution).
    pub(crate) fn read(image: &'a RgbImage, placed: Region) -> Self {
        Self {
            image,
            within: Region {
                x: 0,
                y: 0,
                width: image.width(),
                height: image.height(),
            },
            placed,
        }
    }
}

/// A model with its settings and reusable buffers.
#[derive(Debug)]
pub struct Detector {
    pub model: Model,
    pub config: DetectorConfig,
    /// Run only the regions whose top-left corner lies in this tile, and return their detections unmerged, with
    /// [`ImageDetections::groups`] (one window of a raster split across shards; [`merge_groups`] merges them).
    pub tile: Option<Region>,
    /// Set by a signal handler: detection stops between batches of slices with [`DetectError::Interrupted`].
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    input: Vec<f32>,
    /// More sessions of the model ([`Detector::with_sessions`]).
    pub(crate) helpers: Vec<Model>,
}

impl Detector {
    pub fn new(model: Model, config: DetectorConfig) -> Self {
        Self {
            model,
            config,
            tile: None,
            interrupt: None,
            input: Vec::new(),
            helpers: Vec::new(),
        }
    }

    /// Adds sessions of the same model (each with its own intra-op threads): [`Detector::detect`] and
    /// [`Detector::detect_source`] then run an image's batches on all of them at once, each session taking the next
    /// batch. On a CPU, two sessions of one thread each run more slices per second than one session of two threads
    /// (ONNX Runtime's operators do not scale perfectly over threads). The result is the same: batches are gathered
    /// in region order.
    pub fn with_sessions(mut self, more: Vec<Model>) -> Self {
        self.helpers = more;
        self
    }

    /// The sessions this detector runs (1 and [`Detector::with_sessions`]'s).
    pub fn sessions(&self) -> usize {
        1 + self.helpers.len()
    }

    fn check_interrupt(&self) -> Result<(), DetectError> {
        match &self.interrupt {
            Some(f) if f.load(std::sync::atomic::Ordering::SeqCst) => Err(DetectError::Interrupted),
            _ => Ok(()),
        }
    }

    /// The regions to run, with their index among all of [`Detector::regions`] (those of the tile only).
    fn owned_regions(&self, width: u32, height: u32) -> (Vec<(usize, Region)>, bool) {
        let (regions, merge) = self.regions(width, height);
        let owned = regions
            .into_iter()
            .enumerate()
            .filter(|(_, r)| self.tile.is_none_or(|t| t.contains_origin(r)))
            .collect();
        (owned, merge)
    }

    /// An error when `width x height` would be cut into more than [`MAX_SLICES`] slices.
    pub fn check_slices(&self, width: u32, height: u32) -> Result<(), DetectError> {
        check_slices(&self.model.info, &self.config, width, height)
    }

    /// The regions of an image this detector runs, and whether the result needs the SAHI merge.
    pub fn regions(&self, width: u32, height: u32) -> (Vec<Region>, bool) {
        regions(&self.model.info, &self.config, width, height)
    }

    /// The model's input for each slice of `img` as [`Detector::detect`] feeds it (the same regions, SAHI's
    /// full-image pass included, and the same letterbox), always of the model's input size: one tensor of
    /// `3 x H x W` floats per slice, in region order. For calibrating a quantised model on the user's own images
    /// (ONNX Runtime's calibrators need one input shape, so a model of dynamic height and width is calibrated on
    /// inputs letterboxed into its `imgsz`, not on minimum rectangles).
    pub fn slice_tensors(&self, img: &RgbImage) -> Result<Vec<Vec<f32>>, DetectError> {
        if img.width() == 0 || img.height() == 0 {
            return Err(DetectError::Output(format!(
                "the image has no pixels ({} x {})",
                img.width(),
                img.height()
            )));
        }
        self.check_slices(img.width(), img.height())?;
        let (regions, _) = self.owned_regions(img.width(), img.height());
        let square = DetectorConfig {
            rect: Rect::Off,
            ..self.config.clone()
        };
        Ok(regions
            .into_iter()
            .map(|(_, r)| {
                let mut buf = Vec::new();
                letterbox_batch(
                    &self.model.info,
                    &square,
                    &[SliceInput {
                        image: img,
                        within: r,
                        placed: r,
                    }],
                    &mut buf,
                );
                buf
            })
            .collect())
    }

    /// Runs the model over `img`.
    pub fn detect(&mut self, img: &RgbImage) -> Result<ImageDetections, DetectError> {
        let start = Instant::now();
        if img.width() == 0 || img.height() == 0 {
            return Err(DetectError::Output(format!(
                "the image has no pixels ({} x {})",
                img.width(),
                img.height()
            )));
        }
        self.check_slices(img.width(), img.height())?;
        let (regions, merge_needed) = self.owned_regions(img.width(), img.height());
        let batch = self.model.info.max_batch(self.config.batch);
        let mut result = ImageDetections {
            slices: regions.len(),
            ..Default::default()
        };
        let mut all = Vec::new();
        let chunks = batches(&self.model.info, &self.config, &regions, batch);
        let (info, config) = (self.model.info.clone(), self.config.clone());
        let prepare =
            |chunk: &[(usize, Region)], mut input: Vec<f32>| -> Result<Ready, DetectError> {
                let t = Instant::now();
                let inputs: Vec<SliceInput> = chunk
                    .iter()
                    .map(|(_, r)| SliceInput {
                        image: img,
                        within: *r,
                        placed: *r,
                    })
                    .collect();
                let (letterboxes, hw) = letterbox_batch(&info, &config, &inputs, &mut input);
                Ok(Ready {
                    input,
                    hw,
                    letterboxes,
                    placed: chunk.iter().map(|(_, r)| *r).collect(),
                    indices: chunk.iter().map(|(i, _)| *i).collect(),
                    skipped: 0,
                    read_secs: Vec::new(),
                    pre_secs: t.elapsed().as_secs_f64(),
                })
            };
        if !self.helpers.is_empty() && chunks.len() > 1 {
            self.run_concurrently(&chunks, &prepare, &mut result, &mut all)?;
            return self.finish(all, merge_needed, result, start);
        }
        let tiled = self.tile.is_some();
        for chunk in chunks {
            self.check_interrupt()?;
            let ready = prepare(chunk, std::mem::take(&mut self.input))?;
            let (done, input) = run_ready(&mut self.model, &self.config, tiled, ready)?;
            self.input = input;
            done.add_to(&mut result, &mut all);
        }
        self.finish(all, merge_needed, result, start)
    }

    /// Runs the model over an image read window by window: each slice is read when its batch comes (the next
    /// batch is read on a second thread while the model runs), slices without data are skipped, and SAHI's
    /// full-image pass sees the whole image decimated to the model's input size by the source (an overview), so
    /// memory holds two batches of slices whatever the image size. On an image that fits the model input, and with
    /// the full-image pass off, the result equals [`Detector::detect`] on the same pixels.
    pub fn detect_source(&mut self, src: &dyn ImageSource) -> Result<ImageDetections, DetectError> {
        let start = Instant::now();
        let (width, height) = src.size();
        if width == 0 || height == 0 {
            return Err(DetectError::Output(format!(
                "the image has no pixels ({width} x {height})"
            )));
        }
        self.check_slices(width, height)?;
        let (regions, merge_needed) = self.owned_regions(width, height);
        let (mh, mw) = self.model.info.input_hw;
        let batch = self.model.info.max_batch(self.config.batch);
        let mut result = ImageDetections {
            slices: regions.len(),
            ..Default::default()
        };
        let info = self.model.info.clone();
        let config = self.config.clone();
        // One batch made ready off the model's thread: its slices read (None: no data) and letterboxed.
        let prepare =
            |chunk: &[(usize, Region)], mut input: Vec<f32>| -> Result<Ready, DetectError> {
                let mut read_secs = Vec::with_capacity(chunk.len());
                let mut images = Vec::with_capacity(chunk.len());
                for (i, r) in chunk {
                    let t = Instant::now();
                    let pixels = read_slice(src, *r, (mw, mh))?;
                    read_secs.push(t.elapsed().as_secs_f64());
                    if let Some(p) = pixels {
                        images.push((*i, *r, p));
                    }
                }
                let t = Instant::now();
                let inputs: Vec<SliceInput> = images
                    .iter()
                    .map(|(_, placed, img)| SliceInput::read(img, *placed))
                    .collect();
                let (letterboxes, hw) = if inputs.is_empty() {
                    (Vec::new(), info.input_hw)
                } else {
                    letterbox_batch(&info, &config, &inputs, &mut input)
                };
                Ok(Ready {
                    input,
                    hw,
                    letterboxes,
                    placed: inputs.iter().map(|s| s.placed).collect(),
                    indices: images.iter().map(|(i, _, _)| *i).collect(),
                    skipped: chunk.len() - inputs.len(),
                    read_secs,
                    pre_secs: t.elapsed().as_secs_f64(),
                })
            };
        let chunks = batches(&info, &config, &regions, batch);
        let mut all = Vec::new();
        if !self.helpers.is_empty() && chunks.len() > 1 {
            // Each session reads and letterboxes the batch it takes while the others run theirs.
            self.run_concurrently(&chunks, &prepare, &mut result, &mut all)?;
            return self.finish(all, merge_needed, result, start);
        }
        let mut spare = std::mem::take(&mut self.input);
        let tiled = self.tile.is_some();
        std::thread::scope(|scope| -> Result<(), DetectError> {
            let mut next = chunks.first().map(|c| prepare(c, Vec::new()));
            for k in 0..chunks.len() {
                let ready = next.take().expect("a batch per chunk")?;
                self.check_interrupt()?;
                // The next batch is read and letterboxed while the model runs on this one.
                let ahead = chunks.get(k + 1).map(|c| {
                    let c: &[(usize, Region)] = c;
                    let prepare = &prepare;
                    let buf = std::mem::take(&mut spare);
                    std::thread::Builder::new()
                        .name("nsod-read".into())
                        .spawn_scoped(scope, move || prepare(c, buf))
                });
                let (done, input) = run_ready(&mut self.model, &self.config, tiled, ready)?;
                done.add_to(&mut result, &mut all);
                spare = input;
                next = match ahead {
                    None => None,
                    Some(Ok(handle)) => Some(handle.join().unwrap_or_else(|_| {
                        Err(DetectError::Output("the reading thread panicked".into()))
                    })),
                    Some(Err(e)) => {
                        return Err(DetectError::Output(format!(
                            "cannot start the reading thread: {e}"
                        )));
                    }
                };
            }
            Ok(())
        })?;
        self.input = spare;
        self.finish(all, merge_needed, result, start)
    }

    /// Runs `chunks` on every session at once: each session's thread takes the next chunk, makes its input with
    /// `prepare` and runs it; the outcomes are added in chunk order, so the result equals the one-session loop's. The
    /// first error in chunk order is returned (the others stop taking chunks); the interrupt flag is checked before
    /// each chunk.
    fn run_concurrently<P>(
        &mut self,
        chunks: &[&[(usize, Region)]],
        prepare: &P,
        result: &mut ImageDetections,
        all: &mut Vec<Detection>,
    ) -> Result<(), DetectError>
    where
        P: Fn(&[(usize, Region)], Vec<f32>) -> Result<Ready, DetectError> + Sync,
    {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let outcomes: Vec<Mutex<Option<Result<Done, DetectError>>>> =
            chunks.iter().map(|_| Mutex::new(None)).collect();
        let (config, tiled) = (&self.config, self.tile.is_some());
        let interrupt = self.interrupt.as_deref();
        let sessions = std::iter::once(&mut self.model).chain(self.helpers.iter_mut());
        // Joined here, not by the scope: a session thread that panics is an error of this image, not a panic of the
        // caller's thread.
        let spawned = std::thread::scope(|scope| -> Result<(), DetectError> {
            let mut handles = Vec::new();
            let mut spawn_error = None;
            for (k, model) in sessions.enumerate() {
                let mut input = Vec::new();
                let (next, failed, outcomes) = (&next, &failed, &outcomes);
                let work = move || {
                    while !failed.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(chunk) = chunks.get(i) else {
                            break;
                        };
                        let outcome = match interrupt {
                            Some(f) if f.load(Ordering::SeqCst) => Err(DetectError::Interrupted),
                            _ => prepare(chunk, std::mem::take(&mut input))
                                .and_then(|ready| run_ready(model, config, tiled, ready))
                                .map(|(done, buffer)| {
                                    input = buffer;
                                    done
                                }),
                        };
                        if outcome.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        if let Ok(mut slot) = outcomes[i].lock() {
                            *slot = Some(outcome);
                        }
                    }
                };
                match std::thread::Builder::new()
                    .name(format!("nsod-session-{k}"))
                    .spawn_scoped(scope, work)
                {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        spawn_error = Some(format!("cannot start a session thread: {e}"));
                        break;
                    }
                }
            }
            let mut panicked = false;
            for h in handles {
                panicked |= h.join().is_err();
            }
            match (spawn_error, panicked) {
                (Some(e), _) => Err(DetectError::Output(e)),
                (None, true) => Err(DetectError::Output("a session thread panicked".into())),
                (None, false) => Ok(()),
            }
        });
        spawned?;
        let mut error = None;
        for slot in outcomes {
            match slot.into_inner().ok().flatten() {
                Some(Ok(done)) if error.is_none() => done.add_to(result, all),
                Some(Err(e)) if error.is_none() => error = Some(e),
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None if next.load(Ordering::SeqCst) < chunks.len() => Err(DetectError::Output(
                "a session thread stopped before its batches were run".into(),
            )),
            None => Ok(()),
        }
    }

    /// The SAHI merge across slices (or the sort of a single run's detections).
    fn finish(
        &self,
        all: Vec<Detection>,
        merge_needed: bool,
        mut result: ImageDetections,
        start: Instant,
    ) -> Result<ImageDetections, DetectError> {
        if self.tile.is_some() {
            result.merge_input = all.len();
            // One window of a split raster: merged later with the other windows' slices (merge_groups).
            result.detections = all;
            result.elapsed_seconds = start.elapsed().as_secs_f64();
            return Ok(result);
        }
        merge_into(&mut result, all, merge_needed, &self.config);
        result.elapsed_seconds = start.elapsed().as_secs_f64();
        Ok(result)
    }
}

/// One batch made ready for the model: its input, how each slice was placed, and the reading it took (a windowed
/// source: slices without data are skipped).
struct Ready {
    input: Vec<f32>,
    hw: (u32, u32),
    letterboxes: Vec<Letterbox>,
    placed: Vec<Region>,
    indices: Vec<usize>,
    skipped: usize,
    read_secs: Vec<f64>,
    pre_secs: f64,
}

impl Ready {
    fn batch(&self) -> Batch<'_> {
        Batch {
            input: &self.input,
            hw: self.hw,
            letterboxes: &self.letterboxes,
            placed: &self.placed,
            indices: &self.indices,
        }
    }
}

/// A letterboxed batch: inputs of `hw` (height, width), where each came from, and its index among the regions.
struct Batch<'a> {
    input: &'a [f32],
    hw: (u32, u32),
    letterboxes: &'a [Letterbox],
    placed: &'a [Region],
    indices: &'a [usize],
}

/// One batch run: its detections in image pixels, its groups (a tiled detector), and its times.
struct Ran {
    detections: Vec<Detection>,
    groups: Vec<(usize, usize)>,
    run_seconds: f64,
    post_seconds: f64,
}

impl Ran {
    fn add_to(self, result: &mut ImageDetections, all: &mut Vec<Detection>) {
        result.run_seconds += self.run_seconds;
        result.run_durations.push(self.run_seconds);
        result.runs += 1;
        result.postprocess_seconds += self.post_seconds;
        result.groups.extend(self.groups);
        all.extend(self.detections);
    }
}

/// A chunk done: what reading and letterboxing it took, and its run (none when no slice held data).
struct Done {
    skipped: usize,
    read_secs: Vec<f64>,
    pre_secs: f64,
    ran: Option<Ran>,
}

impl Done {
    fn add_to(self, result: &mut ImageDetections, all: &mut Vec<Detection>) {
        result.read_durations.extend(&self.read_secs);
        result.skipped += self.skipped;
        if let Some(ran) = self.ran {
            result.preprocess_seconds += self.pre_secs;
            result.preprocess_durations.push(self.pre_secs);
            ran.add_to(result, all);
        }
    }
}

/// Runs a prepared chunk on `model` (when a slice held data); returns it done, and its input buffer for reuse.
fn run_ready(
    model: &mut Model,
    config: &DetectorConfig,
    tiled: bool,
    ready: Ready,
) -> Result<(Done, Vec<f32>), DetectError> {
    let ran = if ready.placed.is_empty() {
        None
    } else {
        Some(run_on(model, config, tiled, &ready.batch())?)
    };
    let done = Done {
        skipped: ready.skipped,
        read_secs: ready.read_secs,
        pre_secs: ready.pre_secs,
        ran,
    };
    Ok((done, ready.input))
}

/// Runs `model` on a batch, decodes each input's output (Ultralytics' NMS) and maps it back to the original image.
fn run_on(
    model: &mut Model,
    config: &DetectorConfig,
    tiled: bool,
    b: &Batch,
) -> Result<Ran, DetectError> {
    let n_run = model.info.fixed_batch.unwrap_or(b.placed.len());
    let t = Instant::now();
    let (shape, data) = model.run_hw(b.input, n_run, b.hw)?;
    let run_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let [d1, d2] = output_dims(&shape, data.len(), b.placed.len())?;
    let (mut detections, mut groups) = (Vec::new(), Vec::new());
    for (i, (region, lb)) in b.placed.iter().zip(b.letterboxes).enumerate() {
        let out = &data[i * d1 * d2..(i + 1) * d1 * d2];
        let dets = decode_run(&model.info, config, out, [d1, d2])?;
        if tiled {
            groups.push((b.indices[i], dets.len()));
        }
        detections.extend(dets.into_iter().map(|d| to_image(d, lb, region)));
    }
    Ok(Ran {
        detections,
        groups,
        run_seconds,
        post_seconds: t.elapsed().as_secs_f64(),
    })
}

/// An error when `width x height` would be cut into more than [`MAX_SLICES`] slices.
pub(crate) fn check_slices(
    info: &ModelInfo,
    config: &DetectorConfig,
    width: u32,
    height: u32,
) -> Result<(), DetectError> {
    let (mh, mw) = info.input_hw;
    let (sw, sh) = match config.slice {
        SliceMode::Off => return Ok(()),
        SliceMode::Size(s) => (s, s),
        SliceMode::Auto => (mw, mh),
    };
    let o = config.overlap;
    let n = crate::slicing::slice_count(width, height, sw, sh, o, o);
    if n > MAX_SLICES {
        return Err(DetectError::Output(format!(
            "{width} x {height} px in slices of {sw} px with overlap {o} makes {n} slices, above the maximum of {MAX_SLICES} per image: use larger slices (--slice)"
        )));
    }
    Ok(())
}

/// The model runs (slices, plus the full-image pass when the image is sliced) one image of `width x height` takes
/// with a model of input `input_hw` (height, width), computed without cutting it: the work a request asks for,
/// known before any of it is done. Equals the number of [`Detector::regions`].
pub fn model_runs(input_hw: (u32, u32), config: &DetectorConfig, width: u32, height: u32) -> u64 {
    let (mh, mw) = input_hw;
    let (sw, sh) = match config.slice {
        SliceMode::Off => return 1,
        SliceMode::Size(s) => (s, s),
        SliceMode::Auto if width > mw || height > mh => (mw, mh),
        SliceMode::Auto => return 1,
    };
    let o = config.overlap;
    let n = crate::slicing::slice_count(width, height, sw, sh, o, o);
    if n > 1 && config.full_pass { n + 1 } else { n }
}

/// The regions of an image (SAHI's slices, then the full-image pass), and whether the result needs the merge.
pub(crate) fn regions(
    info: &ModelInfo,
    config: &DetectorConfig,
    width: u32,
    height: u32,
) -> (Vec<Region>, bool) {
    regions_hw(info.input_hw, config, width, height)
}

fn regions_hw(
    input_hw: (u32, u32),
    config: &DetectorConfig,
    width: u32,
    height: u32,
) -> (Vec<Region>, bool) {
    let (mh, mw) = input_hw;
    let full = Region {
        x: 0,
        y: 0,
        width,
        height,
    };
    let slice = match config.slice {
        SliceMode::Off => None,
        SliceMode::Size(s) => Some((s, s)),
        SliceMode::Auto => (width > mw || height > mh).then_some((mw, mh)),
    };
    let Some((sw, sh)) = slice else {
        return (vec![full], false);
    };
    let mut regions = slice_regions(width, height, sw, sh, config.overlap, config.overlap);
    if regions.len() > 1 && config.full_pass {
        regions.push(full);
    }
    let merge = regions.len() > 1;
    (regions, merge)
}

/// The dimensions of each input's output in a run of `n` inputs (`[batch, a, b]`, batch at least `n`).
pub(crate) fn output_dims(
    shape: &[usize],
    values: usize,
    n: usize,
) -> Result<[usize; 2], DetectError> {
    let [b, d1, d2] = shape[..] else {
        return Err(DetectError::Output(format!(
            "output shape {shape:?} is not [batch, a, b]"
        )));
    };
    if b < n {
        return Err(DetectError::Output(format!(
            "output batch {b} is smaller than the {n} inputs"
        )));
    }
    if d1.checked_mul(d2).and_then(|p| p.checked_mul(b)) != Some(values) {
        return Err(DetectError::Output(format!(
            "output shape {shape:?} does not match its {values} values"
        )));
    }
    Ok([d1, d2])
}

/// Decoding and Ultralytics' NMS for one run's output of one input.
pub(crate) fn decode_run(
    info: &ModelInfo,
    c: &DetectorConfig,
    out: &[f32],
    dims: [usize; 2],
) -> Result<Vec<Detection>, DetectError> {
    let layout = info.layout;
    let mut dets = layout
        .decode(out, dims, c.conf, &info.names, c.max_det)
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

/// The SAHI merge of an image's slice detections (in region order) into `result`, timed (postprocessing, and the
/// merge when there was one).
pub(crate) fn merge_into(
    result: &mut ImageDetections,
    all: Vec<Detection>,
    merge: bool,
    config: &DetectorConfig,
) {
    let t = Instant::now();
    result.merge_input = all.len();
    result.detections = merge_slices(all, merge, config);
    let seconds = t.elapsed().as_secs_f64();
    result.postprocess_seconds += seconds;
    if merge {
        result.merge_seconds = seconds;
    }
    result.sliced = merge;
}

/// SAHI's merge of the detections of an image's slices (in region order), or the sort of a single run's.
pub fn merge_slices(
    mut all: Vec<Detection>,
    merge_needed: bool,
    config: &DetectorConfig,
) -> Vec<Detection> {
    if merge_needed {
        postprocess(all, &config.merge)
    } else {
        all.sort_by(|a, b| b.score.total_cmp(&a.score));
        all
    }
}

/// One window's slices: per slice run, its region index and how many detections it found; and the detections.
pub type WindowDetections = (Vec<(usize, usize)>, Vec<Detection>);

/// The detections of an image split into windows ([`Detector::tile`]), each given as its groups
/// ([`ImageDetections::groups`]) and detections, merged as if one process had run every slice: the slices put back
/// in region order, then [`merge_slices`]. The same slice given twice is an error (overlapping tiles).
pub fn merge_groups(
    windows: Vec<WindowDetections>,
    merge_needed: bool,
    config: &DetectorConfig,
) -> Result<Vec<Detection>, String> {
    let mut slices: Vec<(usize, Vec<Detection>)> = Vec::new();
    for (groups, dets) in windows {
        let total: usize = groups.iter().map(|g| g.1).sum();
        if total != dets.len() {
            return Err(format!(
                "a window lists {total} detections in its slices but holds {}",
                dets.len()
            ));
        }
        let mut it = dets.into_iter();
        for (index, n) in groups {
            slices.push((index, it.by_ref().take(n).collect()));
        }
    }
    slices.sort_by_key(|s| s.0);
    if let Some(w) = slices.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("slice {} was run by two windows", w[0].0));
    }
    let all: Vec<Detection> = slices.into_iter().flat_map(|s| s.1).collect();
    Ok(merge_slices(all, merge_needed, config))
}

/// One region of a windowed source as the model will see it: at full resolution, or for the full-image pass of an
/// image larger than the model input, the whole image decimated by the source to its letterboxed size (`None`: the
/// region holds no data).
pub(crate) fn read_slice(
    src: &dyn ImageSource,
    r: Region,
    (mw, mh): (u32, u32),
) -> Result<Option<RgbImage>, DetectError> {
    let (width, height) = src.size();
    let (_, nw, nh) = Letterbox::new(r.width, r.height, mw, mh);
    let whole = r.width == width && r.height == height;
    if whole && (nw < r.width || nh < r.height) {
        Ok(Some(src.read_decimated(nw, nh)?))
    } else {
        src.read(r)
    }
}

/// The stride of minimum-rectangle inputs ([`Rect`] applied to the model): `None` when regions are letterboxed into
/// the model's input size.
pub fn rect_stride(info: &ModelInfo, config: &DetectorConfig) -> Option<u32> {
    (info.dynamic_hw && config.rect != Rect::Off).then_some(info.stride)
}

/// How a source of `w x h` goes into the model's input.
pub(crate) fn fit(info: &ModelInfo, config: &DetectorConfig, w: u32, h: u32) -> Fit {
    let (mh, mw) = info.input_hw;
    Letterbox::fit(w, h, mw, mh, rect_stride(info, config))
}

/// The model input's `(height, width)` for a region of `w x h`.
pub(crate) fn input_hw(info: &ModelInfo, config: &DetectorConfig, w: u32, h: u32) -> (u32, u32) {
    let f = fit(info, config, w, h);
    (f.in_h, f.in_w)
}

/// Consecutive regions cut into batches of at most `batch` whose inputs have one size (a batch is one tensor;
/// with minimum rectangles, SAHI's full-image pass usually has a size of its own). Region order is kept.
pub(crate) fn batches<'a>(
    info: &ModelInfo,
    config: &DetectorConfig,
    regions: &'a [(usize, Region)],
    batch: usize,
) -> Vec<&'a [(usize, Region)]> {
    let key = |r: &Region| input_hw(info, config, r.width, r.height);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=regions.len() {
        if i == regions.len()
            || i - start >= batch.max(1)
            || key(&regions[i].1) != key(&regions[start].1)
        {
            out.push(&regions[start..i]);
            start = i;
        }
    }
    out
}

/// Letterboxes `inputs` (of one input size) into `buf` (resized to the model's batch; a fixed batch larger than the
/// inputs is padded with images whose output is ignored); returns how each was placed and the input's
/// `(height, width)`.
fn letterbox_batch(
    info: &ModelInfo,
    config: &DetectorConfig,
    inputs: &[SliceInput],
    buf: &mut Vec<f32>,
) -> (Vec<Letterbox>, (u32, u32)) {
    let fits: Vec<Fit> = inputs
        .iter()
        .map(|s| fit(info, config, s.within.width, s.within.height))
        .collect();
    let hw = fits.first().map_or(info.input_hw, |f| (f.in_h, f.in_w));
    let per_image = 3 * (hw.0 as usize) * (hw.1 as usize);
    let n_run = info.fixed_batch.unwrap_or(inputs.len());
    buf.resize(n_run * per_image, crate::preprocess::PAD);
    (letterbox_slices(inputs, &fits, buf), hw)
}

/// Letterboxes `inputs` as placed by `fits` (all of one input size) into the first images of `out` (one model input
/// after the other), in parallel.
pub(crate) fn letterbox_slices(
    inputs: &[SliceInput],
    fits: &[Fit],
    out: &mut [f32],
) -> Vec<Letterbox> {
    let Some(first) = fits.first() else {
        return Vec::new();
    };
    debug_assert!(
        fits.iter()
            .all(|f| (f.in_w, f.in_h) == (first.in_w, first.in_h))
    );
    let per_image = 3 * (first.in_h as usize) * (first.in_w as usize);
    inputs
        .par_iter()
        .zip(fits)
        .zip(out.par_chunks_exact_mut(per_image))
        .map(|((s, fit), out)| {
            letterbox_fit_into(s.image, s.within, fit, out);
            let mut lb = fit.letterbox;
            if s.within.width != s.placed.width || s.within.height != s.placed.height {
                // A decimated read: the gain is from the original region to the model input.
                lb.gain_x *= f64::from(s.within.width) / f64::from(s.placed.width);
                lb.gain_y *= f64::from(s.within.height) / f64::from(s.placed.height);
            }
            lb
        })
        .collect()
}

/// Maps a detection from model-input pixels back to the original image (Ultralytics' `scale_boxes`, then the
/// slice offset). Axis-aligned boxes are clipped to their region; rotated boxes are regularised.
pub(crate) fn to_image(mut d: Detection, lb: &Letterbox, region: &Region) -> Detection {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        Detection::new(0, "plane", score, BBox::new(x, 0.0, x + 10.0, 10.0))
    }

    /// Windows given in any order merge as the slices of one process, in region order; a slice run twice or a
    /// window whose counts do not add up is an error.
    #[test]
    fn windows_merge_as_one_process_would() {
        let config = DetectorConfig::default();
        // Region order: slice 0 found a, b; slice 1 found c (overlapping a); slice 2 found d; slice 3 nothing.
        let (a, b, c, d) = (
            det(0.0, 0.9),
            det(100.0, 0.5),
            det(2.0, 0.8),
            det(300.0, 0.7),
        );
        let whole = merge_slices(
            vec![a.clone(), b.clone(), c.clone(), d.clone()],
            true,
            &config,
        );
        let w1 = (vec![(2, 1), (1, 1)], vec![d.clone(), c.clone()]);
        let w0 = (vec![(0, 2), (3, 0)], vec![a.clone(), b.clone()]);
        let merged = merge_groups(vec![w1.clone(), w0.clone()], true, &config).unwrap();
        assert_eq!(merged, whole);
        assert_eq!(merged.len(), 3, "c merged into a");
        let e = merge_groups(vec![w0.clone(), w0.clone()], true, &config).unwrap_err();
        assert_eq!(e, "slice 0 was run by two windows");
        let bad = (vec![(5, 2)], vec![a]);
        let e = merge_groups(vec![bad], true, &config).unwrap_err();
        assert_eq!(e, "a window lists 2 detections in its slices but holds 1");
    }

    /// The work budget of a request is computed before any work: it must count exactly the regions run.
    #[test]
    fn model_runs_counts_the_regions_without_cutting() {
        let sizes = [1u32, 31, 32, 100, 640, 641, 1000, 1024, 1025, 2000, 4097];
        for slice in [
            SliceMode::Auto,
            SliceMode::Off,
            SliceMode::Size(32),
            SliceMode::Size(640),
        ] {
            for overlap in [0.0f32, 0.2, 0.5, 0.99] {
                for full_pass in [false, true] {
                    let config = DetectorConfig {
                        slice,
                        overlap,
                        full_pass,
                        ..Default::default()
                    };
                    for &w in &sizes {
                        for &h in &sizes {
                            let (regions, _) = regions_hw((640, 1024), &config, w, h);
                            assert_eq!(
                                model_runs((640, 1024), &config, w, h),
                                regions.len() as u64,
                                "{w}x{h} {slice:?} overlap {overlap} full pass {full_pass}"
                            );
                        }
                    }
                }
            }
        }
        // The request: 512^2 in slices of 32 with overlap 0.99 is 481^2 slices and the full-image pass.
        let config = DetectorConfig {
            slice: SliceMode::Size(32),
            overlap: 0.99,
            ..Default::default()
        };
        assert_eq!(model_runs((1024, 1024), &config, 512, 512), 231_362);
    }
}
