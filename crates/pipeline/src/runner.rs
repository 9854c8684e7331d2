//! The batch loop every front end shares: images decoded on a second thread (at most two ahead of the model, so
//! memory does not grow with the folder), each taken through a [`Worker`], each outcome or failure given to the
//! sink and to an [`Observer`] (progress, metrics), a signal flag checked between images.
//!
//! Two schedules ([`crate::config::Schedule`]) share everything but detection: *sequential* runs one image after
//! the other ([`Worker::detect_with`], then [`Worker::refine`]); *pipelined* hands the decoded images to
//! [`nsod_detect::Detector::detect_stream`] (slices prepared, run and decoded on three threads, batches taken
//! across images) and refines each image as its detections come back, in input order. Both give the sink the same
//! outcomes in the same order.

use crate::inputs::Job;
use crate::pipeline::{Detected, Overrides, Worker};
use crate::sink::{Failure, ModelRun, RunInfo, RunSummary, Sink};
use crate::source::{LoadedImage, Pixels};
use crate::{PipelineError, error_chain};
use nsod_detect::{StreamImage, StreamInput, StreamOutput, StreamPixels};
use nsod_types::formats::jsonl::ImagePredictions;
use nsod_types::outcome::{ImageOutcome, Stage};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Images decoded ahead of the model.
pub const DECODE_AHEAD: usize = 2;

/// Hooks for what a front end shows or counts; every method has an empty default.
pub trait Observer {
    /// The run starts with this many images to process, `kept` of them already done.
    fn begin(&mut self, _jobs: usize, _kept: usize) {}
    /// An image was decoded and enters the pipeline (in the pipelined schedule: its detections came back).
    fn started(&mut self, _job: &Job) {}
    /// A raster read window by window has its detections, and its block cache was released (before its rules,
    /// graph and outputs): the moment a front end may hand the freed memory back to the system.
    fn released(&mut self) {}
    /// An image went through the pipeline and its outputs were written in `write_seconds`.
    fn finished(&mut self, _outcome: &ImageOutcome, _write_seconds: f64) {}
    /// An image failed.
    fn failed(&mut self, _failure: &Failure) {}
    /// A warning about one image (scene rules skipped).
    fn warning(&mut self, _image: &str, _message: &str) {}
    /// The signal flag was seen: the run stops after this image.
    fn interrupted(&mut self, _done: usize) {}
    /// Every image is done (and its pixels and raster closed); the sink writes the run's outputs next. The moment
    /// a front end may hand the memory the images freed back to the system, so that writing the run-level files
    /// (the map outputs read back record by record) does not add to the peak of the images.
    fn finishing(&mut self) {}
}

/// An observer that does nothing.
#[derive(Debug, Default)]
pub struct Quiet;
impl Observer for Quiet {}

/// Loads an image file (the decode stage): see [`crate::source`].
pub fn decode(
    path: &std::path::Path,
    opts: &nsod_raster::RasterOptions,
) -> Result<LoadedImage, PipelineError> {
    crate::source::load(path, opts).map_err(PipelineError::Decode)
}

/// The longest side of the annotated image of a raster read window by window.
pub const PREVIEW_SIDE: u32 = 4096;

/// Runs `jobs` through `worker` into `sink`, in the configuration's schedule. Images the sink already has (resume)
/// are skipped. A failed image is reported and the run goes on; a sink that cannot write ends the run with its
/// error (the outputs of finished images stay intact). `interrupt` is checked between images (and the worker's own
/// flag, [`Worker::set_interrupt`], between batches of slices).
pub fn run(
    worker: &mut Worker,
    jobs: Vec<Job>,
    inputs: &[PathBuf],
    sink: &mut dyn Sink,
    observer: &mut dyn Observer,
    interrupt: &AtomicBool,
) -> Result<RunSummary, PipelineError> {
    let done = sink.completed();
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter(|j| !done.contains(&j.name))
        .collect();
    let pipeline = worker.pipeline().clone();
    let pipelined = pipeline.config().pipelined() && pipeline.model().is_some();
    let decode_threads = pipeline.config().decode_threads_for(pipelined);
    let expected = jobs.len();
    let feed = spawn_decoders(jobs, decode_threads, pipeline.config().raster.clone())?;
    run_feed(
        worker,
        Feed {
            frames: feed.0,
            thread: feed.1,
            expected,
            kept: done.len(),
            decode_threads,
        },
        inputs,
        sink,
        observer,
        interrupt,
    )
}

/// One decoded image (or why it could not be decoded) and the seconds it took: what a [`Feed`] delivers.
pub type Decode = (Job, Result<LoadedImage, PipelineError>, f64);

/// Images decoded elsewhere (a video's frames), in order, for [`run_feed`].
#[derive(Debug)]
pub struct Feed {
    /// The images; the run ends when the channel closes.
    pub frames: mpsc::Receiver<Decode>,
    /// The thread that decodes them (joined at the end, after the receiver is dropped).
    pub thread: std::thread::JoinHandle<()>,
    /// How many images the feed expects to deliver (for progress; 0 when unknown).
    pub expected: usize,
    /// Images the sink already has (resume).
    pub kept: usize,
    /// Threads decoding (for the run's summary).
    pub decode_threads: usize,
}

/// Runs the images of `feed` through `worker` into `sink`, as [`run`] does with files.
pub fn run_feed(
    worker: &mut Worker,
    feed: Feed,
    inputs: &[PathBuf],
    sink: &mut dyn Sink,
    observer: &mut dyn Observer,
    interrupt: &AtomicBool,
) -> Result<RunSummary, PipelineError> {
    let pipeline = worker.pipeline().clone();
    let Feed {
        frames: rx,
        thread: decoder,
        expected,
        kept,
        decode_threads,
    } = feed;
    sink.begin(&RunInfo {
        pipeline: &pipeline,
        inputs,
        jobs: expected,
    })
    .map_err(PipelineError::Sink)?;
    observer.begin(expected, kept);
    let start = Instant::now();
    let pipelined = pipeline.config().pipelined() && pipeline.model().is_some();
    let mut d = Delivery {
        sink,
        observer,
        summary: RunSummary::default(),
        runs: (0, 0.0),
    };
    let result = if pipelined {
        pipelined_loop(worker, rx, &mut d, interrupt)
    } else {
        sequential_loop(worker, rx, &mut d, interrupt)
    };
    // Stop the decoder (it ends when its channel closes) before finishing.
    let _ = decoder.join();
    let stream = result?;
    let Delivery {
        sink,
        observer,
        mut summary,
        runs,
    } = d;
    summary.seconds = start.elapsed().as_secs_f64();
    if pipeline.model().is_some() {
        let (runs, run_seconds, peak_images, bound) = match stream {
            Some(s) => (s.runs, s.run_seconds, Some(s.peak_images), s.bound),
            None => (runs.0, runs.1, None, false),
        };
        let sessions = worker.detector().map_or(1, |d| d.sessions());
        summary.model = Some(ModelRun {
            schedule: if pipelined { "pipelined" } else { "sequential" },
            batch: pipeline.config().detect.batch,
            runs,
            run_seconds,
            // Per session, as nsod_model_busy_ratio: the runs of several sessions overlap.
            busy_ratio: if summary.seconds > 0.0 {
                (run_seconds / (summary.seconds * sessions as f64)).min(1.0)
            } else {
                0.0
            },
            peak_images,
            placements: worker.placements().cloned(),
            decode_threads,
            threads: pipeline.config().session_threads(),
            sessions,
            io_binding: bound,
            spinning: pipeline.config().spinning.enabled(),
        });
    }
    observer.finishing();
    sink.finish(summary).map_err(PipelineError::Sink)
}

/// Refines existing predictions (`nsod symbolic`, `nsod kg`): each record read from `source` through the stages
/// after detection ([`Worker::process_detections`]: the rules, the relations) into `sink`, as [`run`] takes images:
/// the same sink, observer and summary; a record that cannot be read is reported as a failure and the run goes on;
/// `interrupt` is checked between records.
pub fn refine(
    worker: &mut Worker,
    records: Vec<Result<ImagePredictions, crate::inputs::PredictionsError>>,
    source: &std::path::Path,
    sink: &mut dyn Sink,
    observer: &mut dyn Observer,
    interrupt: &AtomicBool,
) -> Result<RunSummary, PipelineError> {
    let pipeline = worker.pipeline().clone();
    sink.begin(&RunInfo {
        pipeline: &pipeline,
        inputs: &[source.to_path_buf()],
        jobs: records.len(),
    })
    .map_err(PipelineError::Sink)?;
    observer.begin(records.len(), 0);
    let start = Instant::now();
    let mut d = Delivery {
        sink,
        observer,
        summary: RunSummary::default(),
        runs: (0, 0.0),
    };
    for record in records {
        if interrupt.load(Ordering::SeqCst) {
            d.interrupted();
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let job = Job {
                    path: source.to_path_buf(),
                    name: String::new(),
                };
                d.failed(&job, Stage::Decode, "image", &PipelineError::Predictions(e))?;
                continue;
            }
        };
        let job = Job {
            path: source.to_path_buf(),
            name: record.image.clone(),
        };
        d.observer.started(&job);
        let size = nsod_types::ImageSize::new(record.width, record.height);
        let outcome = worker.process_detections(&record.image, size, record.detections);
        d.deliver(&job, None, Ok(outcome))?;
    }
    let Delivery {
        sink,
        observer,
        mut summary,
        ..
    } = d;
    summary.seconds = start.elapsed().as_secs_f64();
    observer.finishing();
    sink.finish(summary).map_err(PipelineError::Sink)
}

/// Decodes `jobs` on `threads` threads (job `i` on thread `i mod threads`, each at most one image ahead) and hands
/// them on in order, at most [`DECODE_AHEAD`] waiting: memory holds `2 x threads + DECODE_AHEAD` decoded images
/// whatever the folder. Everything stops when the receiver is dropped.
fn spawn_decoders(
    jobs: Vec<Job>,
    threads: usize,
    opts: nsod_raster::RasterOptions,
) -> Result<(Decodes, std::thread::JoinHandle<()>), PipelineError> {
    let start_error = |e: std::io::Error| {
        PipelineError::Runtime(format!("cannot start the decoding thread: {e}"))
    };
    let (tx, rx) = mpsc::sync_channel::<Decode>(DECODE_AHEAD);
    let threads = threads.clamp(1, jobs.len().max(1));
    let one = |job: Job, opts: &nsod_raster::RasterOptions| -> Decode {
        let t = Instant::now();
        let img = decode(&job.path, opts);
        (job, img, t.elapsed().as_secs_f64())
    };
    if threads == 1 {
        let handle = std::thread::Builder::new()
            .name("nsod-decode".into())
            .spawn(move || {
                for job in jobs {
                    if tx.send(one(job, &opts)).is_err() {
                        break;
                    }
                }
            })
            .map_err(start_error)?;
        return Ok((rx, handle));
    }
    let n = jobs.len();
    let mut shares: Vec<Vec<Job>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        shares[i % threads].push(job);
    }
    let mut outs = Vec::with_capacity(threads);
    let mut workers = Vec::with_capacity(threads);
    for (k, share) in shares.into_iter().enumerate() {
        let (wtx, wrx) = mpsc::sync_channel::<Decode>(1);
        let opts = opts.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("nsod-decode-{k}"))
                .spawn(move || {
                    for job in share {
                        if wtx.send(one(job, &opts)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(start_error)?,
        );
        outs.push(wrx);
    }
    let handle = std::thread::Builder::new()
        .name("nsod-decode".into())
        .spawn(move || {
            for i in 0..n {
                let Ok(d) = outs[i % threads].recv() else {
                    break;
                };
                if tx.send(d).is_err() {
                    break;
                }
            }
            drop(outs);
            for w in workers {
                let _ = w.join();
            }
        })
        .map_err(start_error)?;
    Ok((rx, handle))
}

/// A decoded image on its way through the pipelined schedule.
struct Decoded {
    job: Job,
    img: LoadedImage,
    decode_seconds: f64,
}

impl StreamImage for Decoded {
    fn pixels(&self) -> StreamPixels<'_> {
        self.img.stream_pixels()
    }
}

type Decodes = mpsc::Receiver<Decode>;

/// Where finished images and failures go: the sink, the observer and the summary.
struct Delivery<'a> {
    sink: &'a mut dyn Sink,
    observer: &'a mut dyn Observer,
    summary: RunSummary,
    /// Session runs and their time, from the outcomes (sequential schedule).
    runs: (usize, f64),
}

impl Delivery<'_> {
    fn failed(
        &mut self,
        job: &Job,
        stage: Stage,
        error_type: &'static str,
        e: &PipelineError,
    ) -> Result<(), PipelineError> {
        let f = Failure {
            image: job.name.clone(),
            path: job.path.clone(),
            stage,
            error_type,
            message: error_chain(e),
        };
        self.observer.failed(&f);
        self.sink.failed(&f).map_err(PipelineError::Sink)?;
        self.summary.failed += 1;
        Ok(())
    }

    fn interrupted(&mut self) {
        self.summary.interrupted = true;
        self.observer.interrupted(self.summary.processed);
    }

    /// A raster's detections are in and its cache released.
    fn detected(&mut self, img: &LoadedImage) {
        if matches!(img.pixels, Pixels::Windowed(_)) {
            self.observer.released();
        }
    }

    /// The refined outcome (or why it failed) to the sink and the observer.
    fn deliver(
        &mut self,
        job: &Job,
        img: Option<&LoadedImage>,
        outcome: Result<ImageOutcome, PipelineError>,
    ) -> Result<(), PipelineError> {
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return self.failed(job, Stage::Detect, "inference", &e),
        };
        self.runs.0 += outcome.detect.run_durations.len();
        self.runs.1 += outcome.detect.run_durations.iter().sum::<f64>();
        if let Some((_, message)) = outcome
            .rules
            .as_ref()
            .and_then(|r| r.scene.as_ref())
            .and_then(|s| s.error.as_ref())
        {
            self.observer.warning(
                &outcome.image,
                &format!("scene rules skipped for this image: {message}"),
            );
        }
        let t = Instant::now();
        let preview = match img.map(|i| (i, &i.pixels)) {
            None => Ok(None),
            Some((_, Pixels::Memory(m))) => Ok(Some(std::borrow::Cow::Borrowed(m))),
            Some((img, Pixels::Windowed(_))) if self.sink.wants_image() => img
                .preview(PREVIEW_SIDE)
                .map(|p| p.map(std::borrow::Cow::Owned)),
            Some((_, Pixels::Windowed(_))) => Ok(None),
        };
        let preview = match preview {
            Ok(p) => p,
            Err(e) => {
                self.observer.warning(
                    &job.name,
                    &format!("no annotated image: {}", error_chain(&e)),
                );
                None
            }
        };
        if let Err(e) = self.sink.image(&outcome, preview.as_deref()) {
            let e = PipelineError::Sink(e);
            let f = Failure {
                image: job.name.clone(),
                path: job.path.clone(),
                stage: Stage::Write,
                error_type: "io",
                message: error_chain(&e),
            };
            self.observer.failed(&f);
            return Err(e);
        }
        self.observer.finished(&outcome, t.elapsed().as_secs_f64());
        self.summary.processed += 1;
        Ok(())
    }
}

/// One image after the other.
fn sequential_loop(
    worker: &mut Worker,
    rx: Decodes,
    d: &mut Delivery,
    interrupt: &AtomicBool,
) -> Result<Option<nsod_detect::StreamStats>, PipelineError> {
    for (job, img, decode_seconds) in rx.iter() {
        if interrupt.load(Ordering::SeqCst) {
            d.interrupted();
            break;
        }
        d.observer.started(&job);
        let img = match img {
            Ok(img) => img,
            Err(e) => {
                d.failed(&job, Stage::Decode, "image", &e)?;
                continue;
            }
        };
        let detected = match worker.detect_with(&img, &Overrides::default()) {
            Ok(found) => found,
            Err(e) if e.is_interrupted() => {
                d.interrupted();
                break;
            }
            Err(e) => {
                d.failed(&job, Stage::Detect, "inference", &e)?;
                continue;
            }
        };
        d.detected(&img);
        let outcome = worker.refine(&img, &job.name, decode_seconds, detected, true);
        d.deliver(&job, Some(&img), outcome)?;
    }
    Ok(None)
}

/// The images through [`nsod_detect::Detector::detect_stream`], refined and delivered as they come back.
fn pipelined_loop(
    worker: &mut Worker,
    rx: Decodes,
    d: &mut Delivery,
    interrupt: &AtomicBool,
) -> Result<Option<nsod_detect::StreamStats>, PipelineError> {
    let Some(mut detector) = worker.take_detector() else {
        return Err(PipelineError::Runtime(
            "this pipeline has no model: use process_detections".into(),
        ));
    };
    let inputs = rx.into_iter().map(|(job, img, decode_seconds)| match img {
        Ok(img) => StreamInput::Image(Arc::new(Decoded {
            job,
            img,
            decode_seconds,
        })),
        Err(e) => StreamInput::Pass((job, e)),
    });
    let mut failure = None;
    let result = detector.detect_stream(inputs, |out| {
        if interrupt.load(Ordering::SeqCst) {
            d.interrupted();
            return ControlFlow::Break(());
        }
        let delivered = match out {
            StreamOutput::Pass((job, e)) => {
                d.observer.started(&job);
                d.failed(&job, Stage::Decode, "image", &e)
            }
            StreamOutput::Detected(image, found) => {
                let Decoded {
                    job,
                    img,
                    decode_seconds,
                } = &*image;
                d.observer.started(job);
                match found {
                    Err(e) => d.failed(job, Stage::Detect, "inference", &PipelineError::Detect(e)),
                    Ok(found) => {
                        if let Pixels::Windowed(r) = &img.pixels {
                            r.0.release_cache();
                        }
                        d.detected(img);
                        let read = img.read_counters();
                        let detected = Detected {
                            found,
                            bytes_read: read.bytes,
                            blocks_read: read.blocks,
                        };
                        let outcome =
                            worker.refine(img, &job.name, *decode_seconds, detected, true);
                        d.deliver(job, Some(img), outcome)
                    }
                }
            }
        };
        match delivered {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    worker.put_detector(Some(detector));
    if let Some(e) = failure {
        return Err(e);
    }
    match result {
        Ok(stats) => Ok(Some(stats)),
        Err(nsod_detect::DetectError::Interrupted) => {
            if !d.summary.interrupted {
                d.interrupted();
            }
            Ok(None)
        }
        Err(e) => Err(PipelineError::Detect(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several decoding threads hand the images on in input order, failures in their place, and stop when the
    /// receiver goes away.
    #[test]
    fn parallel_decoding_keeps_the_input_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = Vec::new();
        for i in 0..23u32 {
            let path = dir.path().join(format!("{i:02}.png"));
            if i % 7 == 3 {
                std::fs::write(&path, b"not an image").unwrap();
            } else {
                image::RgbImage::from_pixel(8 + i, 5, image::Rgb([i as u8, 0, 0]))
                    .save(&path)
                    .unwrap();
            }
            jobs.push(Job {
                path,
                name: format!("{i:02}.png"),
            });
        }
        for threads in [1, 3, 8] {
            let (rx, handle) =
                spawn_decoders(jobs.clone(), threads, nsod_raster::RasterOptions::default())
                    .unwrap();
            let got: Vec<(String, Option<u32>)> = rx
                .iter()
                .map(|(job, img, _)| (job.name, img.ok().map(|i| i.size().0)))
                .collect();
            handle.join().unwrap();
            let want: Vec<(String, Option<u32>)> = (0..23u32)
                .map(|i| (format!("{i:02}.png"), (i % 7 != 3).then_some(8 + i)))
                .collect();
            assert_eq!(got, want, "{threads} threads");
            // Dropping the receiver early ends every thread.
            let (rx, handle) =
                spawn_decoders(jobs.clone(), threads, nsod_raster::RasterOptions::default())
                    .unwrap();
            assert_eq!(rx.recv().unwrap().0.name, "00.png");
            drop(rx);
            handle.join().unwrap();
        }
    }
}
