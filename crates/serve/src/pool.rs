//! The session workers behind the server: one OS thread per pipeline worker (each with its own ONNX Runtime
//! session), fed by a channel; admission is bounded by a semaphore of `workers + queue` permits, so the backlog can
//! never grow past the queue: a request that finds no permit is shed at once (503), one that waits past its
//! deadline is abandoned (the worker skips it if it has not started).

use crate::ServeError;
use nsod_pipeline::{ImageOutcome, LoadedImage, Overrides, Pipeline, error_chain};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// What a worker returns for one request.
#[derive(Debug)]
pub enum JobError {
    /// The body is not an image nsod can read (400).
    Decode(String),
    /// The pipeline failed on a readable image (500).
    Pipeline(String),
}

pub type JobResult = Result<ImageOutcome, JobError>;

/// Called on the worker thread after each image (metrics).
pub type OnOutcome = Arc<dyn Fn(&JobResult) + Send + Sync>;

/// One request's work.
#[derive(Debug)]
pub struct Job {
    /// The decoded image (decoded on the HTTP side, so that decoding overlaps the model's runs).
    pub input: LoadedImage,
    pub decode_seconds: f64,
    pub name: String,
    pub overrides: Overrides,
    pub reply: oneshot::Sender<JobResult>,
    /// Set when the request gave up waiting: a worker that has not started it skips it.
    pub cancelled: Arc<AtomicBool>,
    /// Held until the worker is done with the job (the slot counts as taken while the model runs).
    pub permit: OwnedSemaphorePermit,
}

/// Counters the service's metrics read.
#[derive(Debug, Default)]
pub struct Load {
    /// Admitted jobs not yet picked up by a worker.
    pub queued: AtomicUsize,
    /// Workers running a job.
    pub busy: AtomicUsize,
}

/// The workers and their admission control.
#[derive(Debug)]
pub struct Pool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    admission: Arc<Semaphore>,
    pub workers: usize,
    pub capacity: usize,
    pub load: Arc<Load>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Pool {
    /// Starts `workers` threads, each with its own pipeline worker (ONNX Runtime session), and admits at most
    /// `workers + queue` jobs at a time. `on_outcome` is called on the worker thread after each image (metrics).
    pub fn start(
        pipeline: &Pipeline,
        workers: usize,
        queue: usize,
        on_outcome: OnOutcome,
    ) -> Result<Self, ServeError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let load = Arc::new(Load::default());
        let mut threads = Vec::new();
        // Sessions are opened here, before the server says it is ready.
        for i in 0..workers {
            let mut worker = pipeline
                .worker()
                .map_err(|e| ServeError::Start(error_chain(&e)))?;
            let rx = rx.clone();
            let load = load.clone();
            let on_outcome = on_outcome.clone();
            let t = std::thread::Builder::new()
                .name(format!("nsod-serve-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let Ok(rx) = rx.lock() else { return };
                            rx.recv()
                        };
                        let Ok(job) = job else { return };
                        load.queued.fetch_sub(1, Ordering::SeqCst);
                        if job.cancelled.load(Ordering::SeqCst) {
                            continue;
                        }
                        load.busy.fetch_add(1, Ordering::SeqCst);
                        let result = run(&mut worker, &job.input, &job, job.decode_seconds);
                        on_outcome(&result);
                        load.busy.fetch_sub(1, Ordering::SeqCst);
                        drop(job.permit);
                        let _ = job.reply.send(result);
                    }
                })
                .map_err(|e| ServeError::Start(format!("cannot start a worker thread: {e}")))?;
            threads.push(t);
        }
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            admission: Arc::new(Semaphore::new(workers + queue)),
            workers,
            capacity: workers + queue,
            load,
            threads: Mutex::new(threads),
        })
    }

    /// A slot for one job, or `None` when workers and queue are full.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.admission.clone().try_acquire_owned().ok()
    }

    /// Hands an admitted job to the workers; false when they are stopping (the job is dropped).
    pub fn submit(&self, job: Job) -> bool {
        let guard = self.tx.lock();
        match guard.as_ref().ok().and_then(|g| g.as_ref()) {
            Some(tx) => {
                self.load.queued.fetch_add(1, Ordering::SeqCst);
                let sent = tx.send(job).is_ok();
                if !sent {
                    self.load.queued.fetch_sub(1, Ordering::SeqCst);
                }
                sent
            }
            None => false,
        }
    }

    /// Jobs admitted and not finished.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Stops the workers once the queue is empty and joins them.
    pub fn shutdown(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn run(
    worker: &mut nsod_pipeline::Worker,
    input: &LoadedImage,
    job: &Job,
    decode_seconds: f64,
) -> JobResult {
    worker
        .process_with(input, &job.name, decode_seconds, &job.overrides)
        .map_err(|e| match e {
            nsod_pipeline::PipelineError::Config(c) => JobError::Decode(error_chain(&c)),
            other => JobError::Pipeline(error_chain(&other)),
        })
}
