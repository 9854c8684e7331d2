//! The batch loop every front end shares: images decoded on a second thread (at most two ahead of the model, so
//! memory does not grow with the folder), each taken through a [`Worker`], each outcome or failure given to the
//! sink and to an [`Observer`] (progress, metrics), a signal flag checked between images.

use crate::inputs::Job;
use crate::pipeline::Worker;
use crate::sink::{Failure, RunInfo, RunSummary, Sink};
use crate::source::{LoadedImage, Pixels};
use crate::{PipelineError, error_chain};
use nsod_types::outcome::{ImageOutcome, Stage};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Images decoded ahead of the model.
pub const DECODE_AHEAD: usize = 2;

/// Hooks for what a front end shows or counts; every method has an empty default.
pub trait Observer {
    /// The run starts with this many images to process, `kept` of them already done.
    fn begin(&mut self, _jobs: usize, _kept: usize) {}
    /// An image was decoded and enters the pipeline.
    fn started(&mut self, _job: &Job) {}
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

/// Runs `jobs` through `worker` into `sink`. Images the sink already has (resume) are skipped. A failed image is
/// reported and the run goes on; a sink that cannot write ends the run with its error (the outputs of finished
/// images stay intact). `interrupt` is checked between images.
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
    sink.begin(&RunInfo {
        pipeline: &pipeline,
        inputs,
        jobs: jobs.len(),
    })
    .map_err(PipelineError::Sink)?;
    observer.begin(jobs.len(), done.len());
    let start = Instant::now();
    let mut summary = RunSummary::default();
    let (tx, rx) = mpsc::sync_channel(DECODE_AHEAD);
    let raster_opts = pipeline.config().raster.clone();
    let decoder = std::thread::Builder::new()
        .name("nsod-decode".into())
        .spawn(move || {
            for job in jobs {
                let t = Instant::now();
                let img = decode(&job.path, &raster_opts);
                if tx.send((job, img, t.elapsed().as_secs_f64())).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| PipelineError::Runtime(format!("cannot start the decoding thread: {e}")))?;
    let result = (|| -> Result<(), PipelineError> {
        for (job, img, decode_seconds) in rx.iter() {
            if interrupt.load(Ordering::SeqCst) {
                summary.interrupted = true;
                observer.interrupted(summary.processed);
                break;
            }
            observer.started(&job);
            let fail = |stage: Stage, error_type: &'static str, e: &PipelineError| Failure {
                image: job.name.clone(),
                path: job.path.clone(),
                stage,
                error_type,
                message: error_chain(e),
            };
            let img = match img {
                Ok(img) => img,
                Err(e) => {
                    let f = fail(Stage::Decode, "image", &e);
                    observer.failed(&f);
                    sink.failed(&f).map_err(PipelineError::Sink)?;
                    summary.failed += 1;
                    continue;
                }
            };
            let outcome = match worker.process_loaded(&img, &job.name, decode_seconds) {
                Ok(o) => o,
                Err(e) if e.is_interrupted() => {
                    summary.interrupted = true;
                    observer.interrupted(summary.processed);
                    break;
                }
                Err(e) => {
                    let f = fail(Stage::Detect, "inference", &e);
                    observer.failed(&f);
                    sink.failed(&f).map_err(PipelineError::Sink)?;
                    summary.failed += 1;
                    continue;
                }
            };
            if let Some((_, message)) = outcome
                .rules
                .as_ref()
                .and_then(|r| r.scene.as_ref())
                .and_then(|s| s.error.as_ref())
            {
                observer.warning(
                    &outcome.image,
                    &format!("scene rules skipped for this image: {message}"),
                );
            }
            let t = Instant::now();
            let preview = match &img.pixels {
                Pixels::Memory(m) => Ok(Some(std::borrow::Cow::Borrowed(m))),
                Pixels::Windowed(_) if sink.wants_image() => img
                    .preview(PREVIEW_SIDE)
                    .map(|p| p.map(std::borrow::Cow::Owned)),
                Pixels::Windowed(_) => Ok(None),
            };
            let preview = match preview {
                Ok(p) => p,
                Err(e) => {
                    observer.warning(
                        &job.name,
                        &format!("no annotated image: {}", error_chain(&e)),
                    );
                    None
                }
            };
            if let Err(e) = sink.image(&outcome, preview.as_deref()) {
                let e = PipelineError::Sink(e);
                observer.failed(&fail(Stage::Write, "io", &e));
                return Err(e);
            }
            observer.finished(&outcome, t.elapsed().as_secs_f64());
            summary.processed += 1;
        }
        Ok(())
    })();
    // Stop the decoder (it ends when the channel closes) before finishing.
    drop(rx);
    let _ = decoder.join();
    result?;
    summary.seconds = start.elapsed().as_secs_f64();
    observer.finishing();
    sink.finish(summary).map_err(PipelineError::Sink)
}
