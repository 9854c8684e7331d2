//! A video's frames as a [`Feed`] for the runner: decoded on their own thread (ahead of the model by at most
//! [`crate::runner::DECODE_AHEAD`] frames), named `frame000001.png`, ... in the run (the names of their annotated
//! images), their times and container timestamps put on the [`FrameClock`] the tracking sink reads.

use crate::PipelineError;
use crate::inputs::Job;
use crate::runner::{DECODE_AHEAD, Decode, Feed};
use crate::source::LoadedImage;
use crate::track::FrameClock;
pub use nsod_video::{Options, VideoError, VideoInfo, is_url, is_video_path};
use std::path::PathBuf;
use std::sync::mpsc;

/// The name of the `n`th kept frame (1-based) in the run.
pub fn frame_name(n: u64) -> String {
    format!("frame{n:06}.png")
}

/// Opens `input` (a file or a URL) and starts decoding it. Opening errors (no such file, no video stream, a codec
/// this FFmpeg cannot decode, a refused URL) come back here, before anything runs; an error mid-stream is the
/// failure of the next frame, and the feed ends.
pub fn open(input: &str, opts: Options) -> Result<(VideoInfo, Feed, FrameClock), PipelineError> {
    let every = u64::from(opts.every.max(1));
    let clock = FrameClock::default();
    let (tx, rx) = mpsc::sync_channel::<Decode>(DECODE_AHEAD);
    // FFmpeg's contexts stay on the thread that opened them: the reader is opened there and says how it went.
    let (opened_tx, opened_rx) = mpsc::sync_channel::<Result<VideoInfo, VideoError>>(1);
    let path = PathBuf::from(input);
    let input = input.to_owned();
    let thread_clock = clock.clone();
    let thread = std::thread::Builder::new()
        .name("nsod-video".into())
        .spawn(move || {
            let mut reader = match nsod_video::Reader::open(&input, opts) {
                Ok(r) => {
                    let _ = opened_tx.send(Ok(r.info().clone()));
                    r
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    return;
                }
            };
            let mut n = 0u64;
            let mut last_time = 0.0;
            loop {
                let start = std::time::Instant::now();
                let next = reader.next_frame();
                n += 1;
                let job = Job {
                    path: path.clone(),
                    name: frame_name(n),
                };
                let item = match next {
                    Ok(None) => break,
                    Ok(Some(f)) => {
                        last_time = f.time;
                        thread_clock.push(&job.name, f.time, Some(f.pts));
                        (job, Ok(LoadedImage::memory(f.image)), f.decode_seconds)
                    }
                    Err(e) => {
                        thread_clock.push(&job.name, last_time, None);
                        let secs = start.elapsed().as_secs_f64();
                        let _ = tx.send((job, Err(PipelineError::Video(e)), secs));
                        break;
                    }
                };
                if tx.send(item).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| {
            PipelineError::Runtime(format!("cannot start the video decoding thread: {e}"))
        })?;
    let info = match opened_rx.recv() {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(PipelineError::Video(e));
        }
        Err(_) => {
            let _ = thread.join();
            return Err(PipelineError::Runtime(
                "the video decoding thread ended before opening the video".into(),
            ));
        }
    };
    let expected = info.frames.map_or(0, |n| {
        usize::try_from(n.div_ceil(every)).unwrap_or(usize::MAX)
    });
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
    ))
}
