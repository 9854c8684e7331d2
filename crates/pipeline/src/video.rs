//! A video's frames as a [`Feed`] for the runner: decoded on their own thread, named `frame000001.png`, ... in the
//! run (the names of their annotated images), their times and container timestamps put on the [`FrameClock`] the
//! tracking sink reads.
//!
//! Two modes:
//! * **file** (default for files): every kept frame is processed; decoding runs ahead of the model by at most
//!   [`crate::runner::DECODE_AHEAD`] frames and waits for it.
//! * **live** (default for network URLs, `--live`): decoding never waits. Each decoded frame replaces the one
//!   waiting for the model (the newest wins; the replaced one is counted as dropped), so the model always works on
//!   the most recent frame and the lag stays within about two frame times. When the stream ends or fails, it is
//!   opened again after a back-off ([`RECONNECT_BACKOFF`]); times continue across the gap by the wall clock. The stop
//!   flag (SIGINT, SIGTERM) ends the stream like its end: the frames already taken are finished and every output is
//!   written.

use crate::PipelineError;
use crate::inputs::Job;
use crate::runner::{DECODE_AHEAD, Decode, Feed};
use crate::source::LoadedImage;
use crate::track::FrameClock;
pub use nsod_video::{Options, VideoError, VideoInfo, describe, is_url, is_video_path};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Waits before each attempt to open a live stream again; after the last one fails, the stream is over.
pub const RECONNECT_BACKOFF: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// The name of the `n`th kept frame (1-based) in the run.
pub fn frame_name(n: u64) -> String {
    format!("frame{n:06}.png")
}

/// A live stream's counts, shared with the front end (metrics, summary).
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Frames decoded (after `--every`/`--fps`).
    pub decoded: AtomicU64,
    /// Frames decoded but replaced by a newer one before the model took them.
    pub dropped: AtomicU64,
    /// Times the stream was opened again.
    pub reconnects: AtomicU64,
}

/// How to read: live or not, and the flag that ends a live stream.
#[derive(Debug, Clone)]
pub struct Mode {
    pub live: bool,
    /// Set by a signal: a live stream ends (its outputs complete); a file's run is interrupted as usual.
    pub stop: Arc<AtomicBool>,
}

/// A decoded frame waiting for its name, or the end of the stream with an error.
enum Item {
    Frame(nsod_video::Frame, Instant, f64),
    Failed(VideoError, f64),
}

/// The latest frame, waiting for the model (live mode).
#[derive(Default)]
struct Slot {
    item: Option<Item>,
    closed: bool,
}

/// Opens `input` (a file or a URL) and starts decoding it. Opening errors (no such file, no video stream, a codec
/// this FFmpeg cannot decode, a refused URL) come back here, before anything runs; an error mid-stream is the
/// failure of the next frame, and the feed ends (live: after the reconnections failed).
pub fn open(
    input: &str,
    mut opts: Options,
    mode: Mode,
) -> Result<(VideoInfo, Feed, FrameClock, Arc<StreamStats>), PipelineError> {
    if mode.live {
        opts.stop = Some(mode.stop.clone());
    }
    let every = u64::from(opts.every.max(1));
    let clock = FrameClock::default();
    let stats = Arc::new(StreamStats::default());
    let (tx, rx) = mpsc::sync_channel::<Decode>(if mode.live { 0 } else { DECODE_AHEAD });
    // FFmpeg's contexts stay on the thread that opened them: the reader is opened there and says how it went.
    let (opened_tx, opened_rx) = mpsc::sync_channel::<Result<VideoInfo, VideoError>>(1);
    let slot = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
    let decoder = {
        let input = input.to_owned();
        let stats = stats.clone();
        let slot = slot.clone();
        let mode = mode.clone();
        let tx = tx.clone();
        let clock = clock.clone();
        let path = PathBuf::from(&input);
        std::thread::Builder::new()
            .name("nsod-video".into())
            .spawn(move || {
                let reader = match nsod_video::Reader::open(&input, opts.clone()) {
                    Ok(r) => {
                        let _ = opened_tx.send(Ok(r.info().clone()));
                        r
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let mut out = Output {
                    live: mode.live,
                    slot,
                    tx,
                    clock,
                    path,
                    named: 0,
                    stats: stats.clone(),
                };
                decode(reader, &input, &opts, &mode, &stats, &mut out);
                out.close();
            })
            .map_err(|e| {
                PipelineError::Runtime(format!("cannot start the video decoding thread: {e}"))
            })?
    };
    // Live: a relay hands the latest frame to the model, naming it as it goes.
    let relay = if mode.live {
        let slot = slot.clone();
        let clock = clock.clone();
        let path = PathBuf::from(input);
        Some(
            std::thread::Builder::new()
                .name("nsod-video-relay".into())
                .spawn(move || {
                    let mut out = Output {
                        live: false,
                        slot: slot.clone(),
                        tx,
                        clock,
                        path,
                        named: 0,
                        stats: Arc::new(StreamStats::default()),
                    };
                    let (lock, ready) = &*slot;
                    loop {
                        let item = {
                            let mut s = lock
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            loop {
                                if let Some(item) = s.item.take() {
                                    break Some(item);
                                }
                                if s.closed {
                                    break None;
                                }
                                s = ready
                                    .wait(s)
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                            }
                        };
                        let Some(item) = item else { break };
                        if !out.send(item) {
                            break;
                        }
                    }
                })
                .map_err(|e| {
                    PipelineError::Runtime(format!("cannot start the video relay thread: {e}"))
                })?,
        )
    } else {
        drop(tx);
        None
    };
    let info = match opened_rx.recv() {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => {
            let _ = decoder.join();
            close(&slot);
            if let Some(r) = relay {
                let _ = r.join();
            }
            return Err(PipelineError::Video(e));
        }
        Err(_) => {
            let _ = decoder.join();
            close(&slot);
            return Err(PipelineError::Runtime(
                "the video decoding thread ended before opening the video".into(),
            ));
        }
    };
    let expected = if mode.live {
        0
    } else {
        info.frames.map_or(0, |n| {
            usize::try_from(n.div_ceil(every)).unwrap_or(usize::MAX)
        })
    };
    // One thread the runner joins: it waits for the decoder and the relay.
    let thread = std::thread::Builder::new()
        .name("nsod-video-join".into())
        .spawn(move || {
            let _ = decoder.join();
            if let Some(r) = relay {
                let _ = r.join();
            }
        })
        .map_err(|e| PipelineError::Runtime(format!("cannot start a thread: {e}")))?;
    Ok((
        info,
        Feed {
            frames: rx,
            thread,
            expected,
            kept: 0,
            decode_threads: 1,
        },
        clock,
        stats,
    ))
}

fn close(slot: &(Mutex<Slot>, Condvar)) {
    let (lock, ready) = slot;
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .closed = true;
    ready.notify_all();
}

/// Where decoded frames go: straight to the runner (files), or into the slot (live).
struct Output {
    live: bool,
    slot: Arc<(Mutex<Slot>, Condvar)>,
    tx: mpsc::SyncSender<Decode>,
    clock: FrameClock,
    path: PathBuf,
    /// Frames named so far.
    named: u64,
    stats: Arc<StreamStats>,
}

impl Output {
    /// Hands `item` on; false when nobody listens any more.
    fn put(&mut self, item: Item) -> bool {
        if !self.live {
            return self.send(item);
        }
        let (lock, ready) = &*self.slot;
        let mut s = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.closed {
            return false;
        }
        if let Some(Item::Frame(..)) = s.item.replace(item) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ready.notify_all();
        true
    }

    /// Names the item and sends it to the runner (blocking until it is taken, or room is free).
    fn send(&mut self, item: Item) -> bool {
        self.named += 1;
        let job = Job {
            path: self.path.clone(),
            name: frame_name(self.named),
        };
        let d = match item {
            Item::Frame(f, at, time) => {
                self.clock.push_decoded(&job.name, time, Some(f.pts), at);
                (job, Ok(LoadedImage::memory(f.image)), f.decode_seconds)
            }
            Item::Failed(e, time) => {
                self.clock.push(&job.name, time, None);
                (job, Err(PipelineError::Video(e)), 0.0)
            }
        };
        self.tx.send(d).is_ok()
    }

    fn close(&self) {
        close(&self.slot);
    }
}

/// The decoding loop: frames into `out` until the end (live: after reconnections), an error, or the stop flag.
fn decode(
    mut reader: nsod_video::Reader,
    input: &str,
    opts: &Options,
    mode: &Mode,
    stats: &StreamStats,
    out: &mut Output,
) {
    // Seconds added to the reader's times (live: the time before the last reconnection).
    let mut offset = 0.0;
    let mut last: Option<(f64, Instant)> = None;
    loop {
        if mode.live && mode.stop.load(Ordering::SeqCst) {
            return;
        }
        let next = reader.next_frame();
        let failure = match next {
            Ok(Some(f)) => {
                let time = offset + f.time;
                let now = Instant::now();
                last = Some((time, now));
                stats.decoded.fetch_add(1, Ordering::Relaxed);
                if !out.put(Item::Frame(f, now, time)) {
                    return;
                }
                continue;
            }
            Ok(None) => None,
            Err(e) => Some(e),
        };
        let last_time = last.map_or(0.0, |(t, _)| t);
        if !mode.live {
            if let Some(e) = failure {
                out.put(Item::Failed(e, last_time));
            }
            return;
        }
        // Live: open the stream again after a back-off, unless stopped.
        let mut reopened = None;
        for wait in RECONNECT_BACKOFF {
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if mode.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(r) = nsod_video::Reader::open(input, opts.clone()) {
                reopened = Some(r);
                break;
            }
        }
        match reopened {
            Some(r) => {
                reader = r;
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                // The new stream's times start again: continue from the last frame by the wall clock.
                offset = last.map_or(0.0, |(t, at)| t + at.elapsed().as_secs_f64());
            }
            None => {
                if let Some(e) = failure {
                    out.put(Item::Failed(e, last_time));
                }
                return;
            }
        }
    }
}

/// The container of `--save-video`, from the file's extension.
pub fn output_format(path: &std::path::Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4v" => "mp4",
        "mov" => "mov",
        "mkv" => "matroska",
        "avi" => "avi",
        _ => return None,
    })
}

/// `--save-video`: the annotated frames encoded into `target`, written to `<target>.partial` and renamed into place
/// when the run completes (an interrupted run leaves the earlier file, if any, as it was).
#[derive(Debug)]
pub struct VideoOutput {
    target: PathBuf,
    partial: PathBuf,
    format: &'static str,
    /// The input video's time base, whose timestamps the frames carry; `None` for frames timed in seconds.
    time_base: Option<(i32, i32)>,
    writer: Option<nsod_video::Writer>,
}

/// The time base of frames timed in seconds (a folder, a list): 1/90000 s, MPEG's clock.
pub const SECONDS_TIME_BASE: (i32, i32) = (1, 90_000);

impl VideoOutput {
    /// Refuses a target whose container is not known (the message names the extensions that are).
    pub fn new(target: &std::path::Path, time_base: Option<(i32, i32)>) -> Result<Self, String> {
        let format = output_format(target).ok_or_else(|| {
            format!(
                "--save-video {}: the file name must end in .mp4, .m4v, .mov, .mkv or .avi",
                target.display()
            )
        })?;
        if nsod_video::output_encoder().is_none() {
            return Err(
                "--save-video: this FFmpeg has neither an H.264 nor an MPEG-4 encoder".into(),
            );
        }
        let mut partial = target.as_os_str().to_owned();
        partial.push(".partial");
        Ok(Self {
            target: target.to_path_buf(),
            partial: PathBuf::from(partial),
            format,
            time_base,
            writer: None,
        })
    }

    fn sink_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> crate::SinkError {
        crate::SinkError::Io {
            path: self.target.clone(),
            source: std::io::Error::other(e),
        }
    }
}

impl crate::track::FrameWriter for VideoOutput {
    fn write(
        &mut self,
        image: &image::RgbImage,
        time: f64,
        pts: Option<i64>,
    ) -> Result<(), crate::SinkError> {
        let (tb, pts) = match (self.time_base, pts) {
            (Some(tb), Some(pts)) => (tb, pts),
            _ => (
                SECONDS_TIME_BASE,
                (time * f64::from(SECONDS_TIME_BASE.1)).round() as i64,
            ),
        };
        if self.writer.is_none() {
            let w = nsod_video::Writer::create(&self.partial, self.format, image.dimensions(), tb)
                .map_err(|e| self.sink_error(e))?;
            self.writer = Some(w);
        }
        let r = self.writer.as_mut().map(|w| w.write(image, pts));
        match r {
            Some(Err(e)) => Err(self.sink_error(e)),
            _ => Ok(()),
        }
    }

    fn finish(mut self: Box<Self>) -> Result<(), crate::SinkError> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        w.finish().map_err(|e| self.sink_error(e))?;
        std::fs::rename(&self.partial, &self.target).map_err(|source| crate::SinkError::Io {
            path: self.target.clone(),
            source,
        })
    }

    fn abandon(mut self: Box<Self>) {
        drop(self.writer.take());
        let _ = std::fs::remove_file(&self.partial);
    }
}
