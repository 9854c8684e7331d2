//! Many images through the model's sessions with the model kept busy ([`Detector::detect_stream`], the pipelined
//! schedule): three stages on threads of their own (the model stage one thread per session), joined by bounded
//! channels, while the caller's thread takes the finished images in input order.
//!
//! ```text
//! inputs ─▶ prepare ─────────────────▶ model ──────────────▶ post ──────────────────────────▶ caller
//!           slices read (windowed       session.run on one    decoding, Ultralytics' NMS,      images in input
//!           sources) and letterboxed    batch after another   back to image pixels; the SAHI   order
//!           into batches that take      (several sessions:    merge once an image's slices
//!           slices of several images    each the next batch)  are all in
//! ```
//!
//! While the model runs batch k, batch k+1 is filled and batch k-1 decoded. [`INPUT_BUFFERS`] input buffers (and
//! one more for each session beyond the first) circulate between prepare and model (page-locked tensors with
//! IoBinding, see [`crate::IoMode`]), each channel holds at most [`QUEUE`] batches and the caller's at most
//! [`QUEUE`] images, so the images held at once are bounded by [`max_images_in_flight`] whatever the number of
//! inputs. The prepare stage numbers its messages and the post stage handles them in that order, so with several
//! sessions a batch that finishes before an earlier one waits for it: the outputs are those of one session. The
//! batches between the prepare stage's send and the post stage's handling are at most [`batches_in_flight`] (tokens
//! the post stage gives back), so those waiting for an earlier one stay bounded too.
//!
//! Image by image the result equals [`Detector::detect`] (images in memory) and [`Detector::detect_source`]
//! (windowed sources): the same regions, letterboxes, decoding and merge, the detections gathered in region order.
//! Only the composition of batches differs, and ONNX Runtime computes each image of a batch on its own (the CPU
//! provider bit for bit: `tests/pipelined.rs` compares whole run folders byte for byte).

use crate::DetectError;
use crate::detector::{
    Detector, DetectorConfig, ImageDetections, SliceInput, check_slices, decode_run, fit, input_hw,
    letterbox_slices, merge_into, output_dims, read_slice, rect_stride, regions, to_image,
};
use crate::model::{InputBuffer, ModelInfo, OutputBuffer};
use crate::preprocess::{Letterbox, Region};
use crate::source::ImageSource;
use image::RgbImage;
use nsod_types::Detection;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

/// Input buffers circulating between the prepare and model stages: one being filled, one waiting, one running.
pub const INPUT_BUFFERS: usize = 3;
/// Batches waiting between two stages, and finished images waiting for the caller.
pub const QUEUE: usize = 1;

/// The most images a stream holds at once with batches of `batch` slices and `sessions` sessions: those with a
/// slice in a batch being filled, waiting or running (the input buffers), waiting for or in the post stage (a
/// batch finished early waits there for the earlier ones), and those finished but not yet taken by the caller.
pub fn max_images_in_flight(batch: usize, sessions: usize) -> usize {
    (input_buffers(sessions) + QUEUE + 1) * batch + QUEUE + 1
}

/// The input buffers of a stream on `sessions` sessions: one more for each session beyond the first, so that each
/// can run while the next batch is filled.
fn input_buffers(sessions: usize) -> usize {
    INPUT_BUFFERS + sessions.max(1) - 1
}

/// The batches sent by the prepare stage and not yet handled by the post stage: waiting, running (one per session),
/// run and waiting for the post stage, and in it. A session that finishes before an earlier batch's session takes
/// the next batch only within this bound, so the batches waiting in the post stage for an earlier one stay bounded
/// (with one session the channels bound them already).
pub fn batches_in_flight(sessions: usize) -> usize {
    input_buffers(sessions) + QUEUE
}

/// What the prepare stage takes before it sends a batch: a token (one of [`batches_in_flight`], given back by the
/// post stage) and an input buffer (given back by the session that ran it).
struct Pool {
    tokens: Receiver<()>,
    free: Receiver<InputBuffer>,
}

/// An image's pixels as the stream reads them.
#[derive(Clone, Copy)]
pub enum StreamPixels<'a> {
    /// Decoded in memory: slices are letterboxed from it directly.
    Memory(&'a RgbImage),
    /// Read window by window (a large raster): each slice read when its batch is filled.
    Source(&'a dyn ImageSource),
}

impl std::fmt::Debug for StreamPixels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory(m) => write!(f, "Memory({}x{})", m.width(), m.height()),
            Self::Source(s) => write!(f, "Source({:?})", s.size()),
        }
    }
}

/// What a stream detects on: anything that holds an image (the caller's own record of it travels along).
pub trait StreamImage: Send + Sync {
    fn pixels(&self) -> StreamPixels<'_>;
}

/// One input of a stream: an image, or a value passed through to the output in its place (an image that could
/// not be decoded).
#[derive(Debug)]
pub enum StreamInput<I, E> {
    Image(Arc<I>),
    Pass(E),
}

/// One output of a stream, in input order.
#[derive(Debug)]
// Moved once per image: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum StreamOutput<I, E> {
    Detected(Arc<I>, Result<ImageDetections, DetectError>),
    Pass(E),
}

/// What a stream did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    /// Session runs and the time they took.
    pub runs: usize,
    pub run_seconds: f64,
    /// From the start of the stream to its last output.
    pub wall_seconds: f64,
    /// Slices run, and slots run in all (a fixed or bound batch pads the last one).
    pub slices: usize,
    pub slots: usize,
    /// The most images held by the stream at once.
    pub peak_images: usize,
    /// The sessions that ran the batches.
    pub sessions: usize,
    /// Whether the batches went through IoBinding (asked for, one session, the model's own input size).
    pub bound: bool,
}

impl StreamStats {
    /// The share of the wall time the model's sessions were running, per session, 0-1.
    pub fn busy_ratio(&self) -> f64 {
        if self.wall_seconds > 0.0 {
            (self.run_seconds / (self.wall_seconds * self.sessions.max(1) as f64)).min(1.0)
        } else {
            0.0
        }
    }
}

/// A slice waiting for its batch.
struct Pending<I> {
    seq: usize,
    placed: Region,
    /// The model input's (height, width): a batch holds slices of one size.
    hw: (u32, u32),
    pixels: PendingPixels<I>,
}

enum PendingPixels<I> {
    /// A region of the image in memory.
    Shared(Arc<I>),
    /// Pixels read from a windowed source.
    Read(RgbImage),
}

/// Where one slot of a batch goes back to.
struct Slot {
    seq: usize,
    letterbox: Letterbox,
    placed: Region,
}

struct Prepared {
    input: InputBuffer,
    n_run: usize,
    hw: (u32, u32),
    slots: Vec<Slot>,
    preprocess_seconds: f64,
}

struct Ran {
    slots: Vec<Slot>,
    output: Result<OutputBuffer, DetectError>,
    run_seconds: f64,
    preprocess_seconds: f64,
}

/// What the stages say of an image, in input order: its start and end around its slices, its failure, or a
/// value passed through in its place.
enum Event<I, E> {
    Begin {
        seq: usize,
        image: Arc<I>,
        slices: usize,
        merge: bool,
        started: Instant,
    },
    End {
        seq: usize,
        slots: usize,
        skipped: usize,
        reads: Vec<f64>,
    },
    Fail {
        seq: usize,
        error: DetectError,
    },
    Pass {
        seq: usize,
        value: E,
    },
}

/// The messages between stages: events and batches (`B`: prepared for the model, then run).
enum Msg<I, E, B> {
    Event(Event<I, E>),
    Batch(B),
}

/// A message with its number in the prepare stage's order: the post stage handles them in that order, whichever
/// session ran a batch first.
struct Numbered<M> {
    n: usize,
    msg: M,
}

/// The prepare stage's settings.
struct Plan {
    info: Arc<ModelInfo>,
    config: DetectorConfig,
    batch: usize,
    bound: bool,
}

impl Plan {
    /// The model input's (height, width) for a slice placed at `r`.
    fn hw(&self, r: Region) -> (u32, u32) {
        input_hw(&self.info, &self.config, r.width, r.height)
    }

    /// Letterboxes the pending slices into a buffer from the pool.
    fn fill<I: StreamImage>(
        &self,
        pending: &mut Vec<Pending<I>>,
        mut input: InputBuffer,
    ) -> Result<Prepared, DetectError> {
        let t = Instant::now();
        let n_run = if self.bound {
            self.batch
        } else {
            self.info.fixed_batch.unwrap_or(pending.len())
        };
        let inputs: Vec<SliceInput> = pending
            .iter()
            .map(|p| match &p.pixels {
                PendingPixels::Shared(image) => match image.pixels() {
                    StreamPixels::Memory(m) => Ok(SliceInput {
                        image: m,
                        within: p.placed,
                        placed: p.placed,
                    }),
                    StreamPixels::Source(_) => {
                        Err(DetectError::Output("a windowed slice was not read".into()))
                    }
                },
                PendingPixels::Read(img) => Ok(SliceInput::read(img, p.placed)),
            })
            .collect::<Result<_, _>>()?;
        let fits: Vec<_> = inputs
            .iter()
            .map(|s| fit(&self.info, &self.config, s.within.width, s.within.height))
            .collect();
        let hw = fits
            .first()
            .map_or(self.info.input_hw, |f| (f.in_h, f.in_w));
        let out = input.slots(n_run, 3 * hw.0 as usize * hw.1 as usize)?;
        let letterboxes = letterbox_slices(&inputs, &fits, out);
        drop(inputs);
        let slots = pending
            .drain(..)
            .zip(letterboxes)
            .map(|(p, letterbox)| Slot {
                seq: p.seq,
                letterbox,
                placed: p.placed,
            })
            .collect();
        Ok(Prepared {
            input,
            n_run,
            hw,
            slots,
            preprocess_seconds: t.elapsed().as_secs_f64(),
        })
    }
}

/// The state of one image in the post stage.
struct Image<I> {
    image: Arc<I>,
    merge: bool,
    started: Instant,
    found: Vec<Detection>,
    result: ImageDetections,
    /// Slots the prepare stage put in batches (known at the image's end).
    expected: Option<usize>,
    got: usize,
    error: Option<DetectError>,
}

enum Entry<I, E> {
    Image(Box<Image<I>>),
    Pass(E),
}

/// The post stage: images in flight by input number, released in input order.
struct Post<I, E> {
    info: Arc<ModelInfo>,
    config: DetectorConfig,
    entries: BTreeMap<usize, Entry<I, E>>,
    next: usize,
}

impl<I, E> Post<I, E> {
    fn image(&mut self, seq: usize) -> Option<&mut Image<I>> {
        match self.entries.get_mut(&seq) {
            Some(Entry::Image(i)) => Some(i),
            _ => None,
        }
    }

    /// Each slot's detections in a run's output.
    fn decode(
        &self,
        out: &OutputBuffer,
        slots: &[Slot],
    ) -> Result<Vec<Result<Vec<Detection>, DetectError>>, DetectError> {
        let data = out.data()?;
        let dims = output_dims(&out.shape, data.len(), slots.len())?;
        let per = dims[0] * dims[1];
        // The slots are independent: decoded in parallel (a GPU's batch must not wait for one CPU core), collected
        // in slot order.
        let (info, config) = (&*self.info, &self.config);
        Ok((0..slots.len())
            .into_par_iter()
            .map(|i| decode_run(info, config, &data[i * per..(i + 1) * per], dims))
            .collect())
    }

    /// A batch's outputs into its images (a failed run fails every image it held); returns the output's host
    /// buffer for reuse.
    fn ran(&mut self, ran: Ran) -> Option<Vec<f32>> {
        let first = ran.slots.first().map(|s| s.seq);
        if let Some(img) = first.and_then(|s| self.image(s)) {
            // Each run is counted once, with the image of its first slot.
            img.result.runs += 1;
            img.result.run_seconds += ran.run_seconds;
            img.result.run_durations.push(ran.run_seconds);
            img.result.preprocess_seconds += ran.preprocess_seconds;
            img.result.preprocess_durations.push(ran.preprocess_seconds);
        }
        let t = Instant::now();
        let (decoded, buffer) = match ran.output {
            Err(e) => (Err(e), None),
            Ok(out) => {
                let decoded = self.decode(&out, &ran.slots);
                (decoded, out.into_host())
            }
        };
        let seconds = t.elapsed().as_secs_f64();
        match decoded {
            Err(e) => {
                let message = error_chain(&e);
                let mut original = Some(e);
                for s in &ran.slots {
                    if let Some(img) = self.image(s.seq).filter(|i| i.error.is_none()) {
                        img.got += 1;
                        img.error = Some(original.take().unwrap_or_else(|| {
                            DetectError::Output(format!(
                                "a batch shared with another image failed: {message}"
                            ))
                        }));
                    }
                }
            }
            Ok(found) => {
                let n = found.len().max(1) as f64;
                for (s, dets) in ran.slots.iter().zip(found) {
                    let Some(img) = self.image(s.seq) else {
                        continue;
                    };
                    img.got += 1;
                    img.result.postprocess_seconds += seconds / n;
                    match dets {
                        Ok(d) => img
                            .found
                            .extend(d.into_iter().map(|d| to_image(d, &s.letterbox, &s.placed))),
                        Err(e) => {
                            img.error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        buffer
    }

    /// The next outputs in input order, as far as they are complete.
    fn ready(&mut self) -> Vec<StreamOutput<I, E>> {
        let mut out = Vec::new();
        loop {
            let done = match self.entries.get(&self.next) {
                Some(Entry::Pass(_)) => true,
                Some(Entry::Image(i)) => {
                    i.expected.is_some_and(|n| i.got >= n || i.error.is_some())
                }
                None => false,
            };
            if !done {
                return out;
            }
            match self.entries.remove(&self.next) {
                Some(Entry::Pass(e)) => out.push(StreamOutput::Pass(e)),
                Some(Entry::Image(img)) => out.push(self.finish(*img)),
                None => {}
            }
            self.next += 1;
        }
    }

    fn finish(&self, img: Image<I>) -> StreamOutput<I, E> {
        let Image {
            image,
            merge,
            started,
            found,
            mut result,
            error,
            ..
        } = img;
        if let Some(e) = error {
            return StreamOutput::Detected(image, Err(e));
        }
        merge_into(&mut result, found, merge, &self.config);
        result.elapsed_seconds = started.elapsed().as_secs_f64();
        StreamOutput::Detected(image, Ok(result))
    }
}

type WorkMsg<I, E> = Numbered<Msg<I, E, Prepared>>;
type RanMsg<I, E> = Numbered<Msg<I, E, Ran>>;
type Shared<T> = Arc<std::sync::Mutex<T>>;

impl Detector {
    /// Runs `inputs` through the pipelined schedule (see the [module](self)): `consume` is called on this thread
    /// with each output, in input order; returning [`ControlFlow::Break`] stops the stream. Batches take
    /// [`DetectorConfig::batch`] slices, from as many images as it takes (a fixed-batch model: its own size), and
    /// run on every session of the detector ([`Detector::with_sessions`]), each taking the next batch (several
    /// sessions run from host buffers: IoBinding's belong to one session). The
    /// interrupt flag is checked before each batch: the stream then ends with [`DetectError::Interrupted`] after
    /// the images finished before it. An image that cannot be read or run is an error output, and the stream goes
    /// on.
    pub fn detect_stream<I, E, It>(
        &mut self,
        inputs: It,
        mut consume: impl FnMut(StreamOutput<I, E>) -> ControlFlow<()>,
    ) -> Result<StreamStats, DetectError>
    where
        I: StreamImage,
        E: Send,
        It: Iterator<Item = StreamInput<I, E>> + Send,
    {
        let start = Instant::now();
        let info = self.model.info.clone();
        // IoBinding's tensors have the model's input size and belong to one session: minimum rectangles and several
        // sessions run from host buffers (the pipeline refuses an explicit --io-binding on with either).
        let bound = self.model.is_bound()
            && rect_stride(&info, &self.config).is_none()
            && self.helpers.is_empty();
        let plan = Plan {
            batch: info.max_batch(self.config.batch),
            info: info.clone(),
            config: self.config.clone(),
            bound,
        };
        let batch = plan.batch;
        let stop = AtomicBool::new(false);
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let mut stats = StreamStats {
            sessions: self.sessions(),
            bound,
            ..Default::default()
        };
        let buffers = input_buffers(stats.sessions);
        let (free_tx, free_rx) = sync_channel::<InputBuffer>(buffers);
        for b in self.model.input_buffers(buffers, batch, bound)? {
            let _ = free_tx.send(b);
        }
        let tokens = batches_in_flight(stats.sessions);
        let (token_tx, token_rx) = sync_channel::<()>(tokens);
        for _ in 0..tokens {
            let _ = token_tx.send(());
        }
        let pool = Pool {
            tokens: token_rx,
            free: free_rx,
        };
        let (work_tx, work_rx) = sync_channel::<WorkMsg<I, E>>(QUEUE);
        let (ran_tx, ran_rx) = sync_channel::<RanMsg<I, E>>(QUEUE);
        let (out_tx, out_rx) = sync_channel::<StreamOutput<I, E>>(QUEUE);
        let (spare_tx, spare_rx) = sync_channel::<Vec<f32>>(buffers);
        // Shared by the session threads: the work channel closes (and the prepare stage ends) when the last of them
        // ends.
        let work_rx: Shared<_> = Arc::new(std::sync::Mutex::new(work_rx));
        let spare_rx: Shared<_> = Arc::new(std::sync::Mutex::new(spare_rx));
        let interrupt = self.interrupt.clone();
        let sessions = std::iter::once(&mut self.model).chain(self.helpers.iter_mut());
        let result = std::thread::scope(|scope| -> Result<(), DetectError> {
            let prepare = std::thread::Builder::new()
                .name("nsod-prepare".into())
                .spawn_scoped(scope, || {
                    prepare_stage(&plan, inputs, pool, work_tx, &stop, &in_flight, &peak)
                })
                .map_err(thread_error)?;
            let mut runners = Vec::new();
            for (k, model) in sessions.enumerate() {
                let (free, work, ran, spare) = (
                    free_tx.clone(),
                    work_rx.clone(),
                    ran_tx.clone(),
                    spare_rx.clone(),
                );
                let interrupt = interrupt.as_deref();
                let runner = std::thread::Builder::new()
                    .name(format!("nsod-model-{k}"))
                    .spawn_scoped(scope, move || {
                        model_stage(model, free, work, ran, spare, interrupt)
                    })
                    .map_err(thread_error)?;
                runners.push(runner);
            }
            drop((free_tx, work_rx, ran_tx, spare_rx));
            let post_info = info.clone();
            let post_config = self.config.clone();
            let post = std::thread::Builder::new()
                .name("nsod-post".into())
                .spawn_scoped(scope, move || {
                    post_stage(post_info, post_config, ran_rx, out_tx, spare_tx, token_tx)
                })
                .map_err(thread_error)?;
            for out in out_rx.iter() {
                if matches!(out, StreamOutput::Detected(..)) {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                if consume(out).is_break() {
                    stop.store(true, Ordering::SeqCst);
                    break;
                }
            }
            drop(out_rx);
            let mut ran = Vec::new();
            for runner in runners {
                ran.push(joined("model", runner.join()));
            }
            for r in ran {
                let (runs, slices, slots) = r?;
                stats.runs += runs.len();
                stats.run_seconds += runs.iter().sum::<f64>();
                stats.slices += slices;
                stats.slots += slots;
            }
            joined("prepare", prepare.join())?;
            joined("post", post.join())?;
            if interrupt
                .as_deref()
                .is_some_and(|f| f.load(Ordering::SeqCst))
                && !stop.load(Ordering::SeqCst)
            {
                return Err(DetectError::Interrupted);
            }
            Ok(())
        });
        stats.wall_seconds = start.elapsed().as_secs_f64();
        stats.peak_images = peak.load(Ordering::SeqCst);
        result.map(|()| stats)
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A stage's result, a panic as an error.
fn joined<T>(name: &str, r: std::thread::Result<Result<T, DetectError>>) -> Result<T, DetectError> {
    r.unwrap_or_else(|_| Err(DetectError::Output(format!("the {name} thread panicked"))))
}

fn thread_error(e: std::io::Error) -> DetectError {
    DetectError::Output(format!("cannot start a pipeline thread: {e}"))
}

/// Slices every image into batches; images and passed values are numbered in input order.
fn prepare_stage<I: StreamImage, E, It: Iterator<Item = StreamInput<I, E>>>(
    plan: &Plan,
    inputs: It,
    pool: Pool,
    work: SyncSender<WorkMsg<I, E>>,
    stop: &AtomicBool,
    in_flight: &AtomicUsize,
    peak: &AtomicUsize,
) -> Result<(), DetectError> {
    let mut pending: Vec<Pending<I>> = Vec::with_capacity(plan.batch);
    // A closed channel means a later stage stopped (the caller, an interrupt): end quietly.
    let sent = std::cell::Cell::new(0);
    let send = |msg: Msg<I, E, Prepared>| {
        let n = sent.replace(sent.get() + 1);
        work.send(Numbered { n, msg }).is_ok()
    };
    let flush = |pending: &mut Vec<Pending<I>>| -> Result<bool, DetectError> {
        if pending.is_empty() {
            return Ok(true);
        }
        if pool.tokens.recv().is_err() {
            return Ok(false);
        }
        let Ok(buffer) = pool.free.recv() else {
            return Ok(false);
        };
        let prepared = plan.fill(pending, buffer)?;
        Ok(send(Msg::Batch(prepared)))
    };
    for (seq, input) in inputs.enumerate() {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let image = match input {
            StreamInput::Pass(value) => {
                if !send(Msg::Event(Event::Pass { seq, value })) {
                    return Ok(());
                }
                continue;
            }
            StreamInput::Image(i) => i,
        };
        let started = Instant::now();
        let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(n, Ordering::SeqCst);
        let pixels = image.pixels();
        let (width, height) = match pixels {
            StreamPixels::Memory(m) => m.dimensions(),
            StreamPixels::Source(s) => s.size(),
        };
        let planned = if width == 0 || height == 0 {
            Err(DetectError::Output(format!(
                "the image has no pixels ({width} x {height})"
            )))
        } else {
            check_slices(&plan.info, &plan.config, width, height)
                .map(|()| regions(&plan.info, &plan.config, width, height))
        };
        let (regions, merge) = match planned {
            Ok(r) => r,
            Err(error) => {
                let ok = send(Msg::Event(Event::Begin {
                    seq,
                    image,
                    slices: 0,
                    merge: false,
                    started,
                })) && send(Msg::Event(Event::Fail { seq, error }));
                if !ok {
                    return Ok(());
                }
                continue;
            }
        };
        if !send(Msg::Event(Event::Begin {
            seq,
            image: image.clone(),
            slices: regions.len(),
            merge,
            started,
        })) {
            return Ok(());
        }
        let (mut slots, mut skipped, mut reads) = (0, 0, Vec::new());
        let mut failed = None;
        for r in regions {
            let pixels = match pixels {
                StreamPixels::Memory(_) => PendingPixels::Shared(image.clone()),
                StreamPixels::Source(src) => {
                    let t = Instant::now();
                    let read = read_slice(src, r, (plan.info.input_hw.1, plan.info.input_hw.0));
                    reads.push(t.elapsed().as_secs_f64());
                    match read {
                        Ok(Some(p)) => PendingPixels::Read(p),
                        Ok(None) => {
                            skipped += 1;
                            continue;
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            };
            let hw = plan.hw(r);
            if pending.first().is_some_and(|p| p.hw != hw) && !flush(&mut pending)? {
                return Ok(());
            }
            pending.push(Pending {
                seq,
                placed: r,
                hw,
                pixels,
            });
            slots += 1;
            if pending.len() == plan.batch && !flush(&mut pending)? {
                return Ok(());
            }
        }
        let last = match failed {
            Some(error) => Msg::Event(Event::Fail { seq, error }),
            None => Msg::Event(Event::End {
                seq,
                slots,
                skipped,
                reads,
            }),
        };
        if !send(last) {
            return Ok(());
        }
    }
    flush(&mut pending)?;
    Ok(())
}

/// One session's thread: runs the next batch as long as there is one; returns each run's time, the slices and the
/// slots run. Events pass through to the post stage with their numbers.
fn model_stage<I, E>(
    model: &mut crate::model::Model,
    free: SyncSender<InputBuffer>,
    work: Shared<Receiver<WorkMsg<I, E>>>,
    ran: SyncSender<RanMsg<I, E>>,
    spare: Shared<Receiver<Vec<f32>>>,
    interrupt: Option<&AtomicBool>,
) -> Result<(Vec<f64>, usize, usize), DetectError> {
    let (mut runs, mut slices, mut slots) = (Vec::new(), 0, 0);
    loop {
        // The lock is held while waiting for the next message: the other sessions would wait for it anyway.
        let received = match work.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(Numbered { n, msg }) = received else {
            break;
        };
        let next = match msg {
            Msg::Batch(p) => {
                if interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) {
                    break;
                }
                let t = Instant::now();
                let reuse = spare.lock().ok().and_then(|rx| rx.try_recv().ok());
                // A run that panics fails its batch's images, as a run error does: the batch still reaches the post
                // stage, which waits for every batch in order (and gives back its token).
                let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    model.run_buffer(&p.input, p.n_run, p.hw, reuse)
                }))
                .unwrap_or_else(|_| Err(DetectError::Output("the model run panicked".into())));
                let seconds = t.elapsed().as_secs_f64();
                runs.push(seconds);
                slices += p.slots.len();
                slots += p.n_run;
                let _ = free.send(p.input);
                Msg::Batch(Ran {
                    slots: p.slots,
                    output,
                    run_seconds: seconds,
                    preprocess_seconds: p.preprocess_seconds,
                })
            }
            Msg::Event(e) => Msg::Event(e),
        };
        if ran.send(Numbered { n, msg: next }).is_err() {
            break;
        }
    }
    Ok((runs, slices, slots))
}

/// Decodes each run into its images and hands finished images on in input order.
fn post_stage<I, E>(
    info: Arc<ModelInfo>,
    config: DetectorConfig,
    ran: Receiver<RanMsg<I, E>>,
    out: SyncSender<StreamOutput<I, E>>,
    spare: SyncSender<Vec<f32>>,
    tokens: SyncSender<()>,
) -> Result<(), DetectError> {
    let mut post = Post {
        info,
        config,
        entries: BTreeMap::new(),
        next: 0,
    };
    // Messages that came before an earlier one (another session still running its batch), by number.
    let mut early = BTreeMap::new();
    let mut next = 0;
    for Numbered { n, msg } in ran.iter() {
        early.insert(n, msg);
        while let Some(msg) = early.remove(&next) {
            next += 1;
            let batch = matches!(msg, Msg::Batch(_));
            post.handle(msg, &spare);
            if batch {
                // The batch is handled: the prepare stage may send another.
                let _ = tokens.send(());
            }
        }
        for o in post.ready() {
            if out.send(o).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

impl<I, E> Post<I, E> {
    /// One message, in the prepare stage's order.
    fn handle(&mut self, msg: Msg<I, E, Ran>, spare: &SyncSender<Vec<f32>>) {
        match msg {
            Msg::Event(Event::Begin {
                seq,
                image,
                slices,
                merge,
                started,
            }) => {
                let result = ImageDetections {
                    slices,
                    ..Default::default()
                };
                self.entries.insert(
                    seq,
                    Entry::Image(Box::new(Image {
                        image,
                        merge,
                        started,
                        found: Vec::new(),
                        result,
                        expected: None,
                        got: 0,
                        error: None,
                    })),
                );
            }
            Msg::Event(Event::End {
                seq,
                slots,
                skipped,
                reads,
            }) => {
                if let Some(img) = self.image(seq) {
                    img.expected = Some(slots);
                    img.result.skipped = skipped;
                    img.result.read_durations = reads;
                }
            }
            Msg::Event(Event::Fail { seq, error }) => {
                if let Some(img) = self.image(seq) {
                    img.expected = Some(0);
                    img.error.get_or_insert(error);
                }
            }
            Msg::Event(Event::Pass { seq, value }) => {
                self.entries.insert(seq, Entry::Pass(value));
            }
            Msg::Batch(r) => {
                if let Some(buffer) = self.ran(r) {
                    let _ = spare.try_send(buffer);
                }
            }
        }
    }
}
