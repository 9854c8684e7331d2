//! The session workers behind the server: one OS thread per pipeline worker (each with its own ONNX Runtime
//! session), fed by a channel; admission is bounded by a semaphore of `workers + queue` permits, so the backlog can
//! never grow past the queue: a request that finds no permit is shed at once (503).
//!
//! Every job carries a cancellation flag, set when its request gives up: the `--timeout`, the client closing the
//! connection (a guard dropped with the request's future) or the end of the `--drain` after SIGTERM
//! ([`Pool::cancel_all`]). A worker that has not started the job skips it; one running it sees the flag between
//! batches of slices (the interrupt check `nsod infer` has for signals) and is free again within one batch.

use crate::ServeError;
use nsod_pipeline::{ImageOutcome, LoadedImage, Overrides, Pipeline, PipelineError, error_chain};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// What a worker returns for one request.
#[derive(Debug)]
pub enum JobError {
    /// The body is not an image nsod can read, or its settings are invalid (400).
    Decode(String),
    /// The pipeline failed on a readable image (500).
    Pipeline(String),
    /// The request gave up (timeout, client gone, shutdown) before or while the job ran.
    Cancelled,
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
    /// Set when the request gives up: a worker that has not started the job skips it, one running it stops between
    /// batches of slices.
    pub cancel: Arc<AtomicBool>,
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
    /// The cancellation flag of the job each worker runs.
    running: Arc<Mutex<Vec<Option<Arc<AtomicBool>>>>>,
    /// Set by [`Pool::cancel_all`]: queued jobs are skipped.
    closing: Arc<AtomicBool>,
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
        let running = Arc::new(Mutex::new(vec![None; workers]));
        let closing = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        // Sessions are opened here, before the server says it is ready.
        for i in 0..workers {
            let mut worker = pipeline
                .worker()
                .map_err(|e| ServeError::Start(error_chain(&e)))?;
            let rx = rx.clone();
            let load = load.clone();
            let on_outcome = on_outcome.clone();
            let running = running.clone();
            let closing = closing.clone();
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
                        if job.cancel.load(Ordering::SeqCst) || closing.load(Ordering::SeqCst) {
                            let result = Err(JobError::Cancelled);
                            on_outcome(&result);
                            drop(job.permit);
                            let _ = job.reply.send(result);
                            continue;
                        }
                        load.busy.fetch_add(1, Ordering::SeqCst);
                        set_running(&running, i, Some(job.cancel.clone()));
                        // Checked again: cancel_all may have run between the first check and the line above.
                        if closing.load(Ordering::SeqCst) {
                            job.cancel.store(true, Ordering::SeqCst);
                        }
                        worker.set_interrupt(job.cancel.clone());
                        let result = run(&mut worker, &job);
                        set_running(&running, i, None);
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
            running,
            closing,
            threads: Mutex::new(threads),
        })
    }

    /// A slot for one job, or `None` when workers and queue are full.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.admission.clone().try_acquire_owned().ok()
    }

    /// Hands an admitted job to the workers; gives it back when they are stopping.
    #[allow(clippy::result_large_err)]
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let guard = self.tx.lock();
        match guard.as_ref().ok().and_then(|g| g.as_ref()) {
            Some(tx) => {
                self.load.queued.fetch_add(1, Ordering::SeqCst);
                tx.send(job).map_err(|e| {
                    self.load.queued.fetch_sub(1, Ordering::SeqCst);
                    e.0
                })
            }
            None => Err(job),
        }
    }

    /// Jobs admitted and not finished.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Cancels every job: the running ones stop at their next batch of slices, the queued ones are skipped.
    pub fn cancel_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Ok(r) = self.running.lock() {
            for flag in r.iter().flatten() {
                flag.store(true, Ordering::SeqCst);
            }
        }
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

fn set_running(
    running: &Mutex<Vec<Option<Arc<AtomicBool>>>>,
    i: usize,
    flag: Option<Arc<AtomicBool>>,
) {
    if let Ok(mut r) = running.lock()
        && let Some(slot) = r.get_mut(i)
    {
        *slot = flag;
    }
}

fn run(worker: &mut nsod_pipeline::Worker, job: &Job) -> JobResult {
    worker
        .process_with(&job.input, &job.name, job.decode_seconds, &job.overrides)
        .map_err(|e| match e {
            e if e.is_interrupted() => JobError::Cancelled,
            PipelineError::Config(c) => JobError::Decode(error_chain(&c)),
            PipelineError::Setting(c) => JobError::Decode(c.to_string()),
            // A raster body whose pixels cannot be read (a truncated or damaged file): the client's bytes, not a
            // failure of the server.
            e if e.is_unreadable_input() => JobError::Decode(error_chain(&e)),
            other => JobError::Pipeline(error_chain(&other)),
        })
}
