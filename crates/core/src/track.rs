//! `nsod track`: settings → session → the frames through the pipeline (as `nsod infer` runs them) into a run
//! folder whose sink also tracks them → summary, exit code. The frames and the tracking sink live in
//! nsod-pipeline (`track`), the tracker in nsod-track.

use crate::cli::{GlobalArgs, TrackArgs};
use crate::observe::CliObserver;
use crate::session::{INTERRUPTED, Needs, Session, config_error};
use nsod_pipeline::config::TrackSettings;
use nsod_pipeline::settings::Source;
use nsod_pipeline::track::{Frame, FrameClock, Sequence, TrackSink, sequence};
use nsod_pipeline::{RunDirOptions, RunDirSink, error_chain, layout};
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(global: &GlobalArgs, a: &TrackArgs) -> anyhow::Result<ExitCode> {
    let interrupted = crate::metrics::install_signal_flag();
    let layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if a.config.print_config {
        return crate::session::print_config(layers);
    }
    let Some(input) = a.input.clone() else {
        return config_error(
            "give the sequence: a folder of frames, a MOTChallenge sequence folder or a list file",
        );
    };
    let input_text = input.to_string_lossy().into_owned();
    let video = is_video(&input);
    if video && layers.config.output.skip_existing {
        return config_error(
            "--skip-existing: a video is tracked whole (its frames cannot be read again one by one); run it again without it",
        );
    }
    if !video && layers.source("track.every") != Source::Default {
        return config_error("--every: only a video's frames are subsampled");
    }
    if !video && layers.source("track.live") != Source::Default {
        return config_error("--live: only a video is read live");
    }
    let live = video
        && layers
            .config
            .track
            .live
            .for_input(input_text.contains("://"));
    // The frames: a folder or list known up front, or a video decoded on its own thread as the run goes.
    let (frames, feed) = if video {
        match open_video(&input_text, &layers.config.track, live, &interrupted) {
            Ok((info, feed, clock, stats)) => (Frames::Video(info, clock, stats), Some(feed)),
            Err(e) => return config_error(e),
        }
    } else {
        match sequence(&input, layers.config.track.fps, nsod_detect::is_image_path) {
            Ok(s) => (Frames::Sequence(s), None),
            Err(e) => return config_error(error_chain(&e)),
        }
    };
    let video_out = match &layers.config.track.save_video {
        None => None,
        Some(path) => match video_output(path, &frames) {
            Ok(w) => Some(w),
            Err(e) => return config_error(e),
        },
    };
    let tracker = match nsod_track::Tracker::new(layers.config.track.tracker()) {
        Ok(t) => t,
        Err(e) => return config_error(format!("[track]: {e}")),
    };
    let session = match Session::open(
        global,
        layers,
        Needs {
            model: true,
            metrics: true,
            names: None,
        },
    ) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let Session {
        config,
        sources,
        pipeline,
        metrics,
        handles,
        ..
    } = session;
    let out = config.output.out.clone();
    // The run folder's own vis/ is replaced by the tracks drawn by the tracking sink.
    let options = RunDirOptions {
        vis: false,
        ..RunDirOptions::infer(&config)
    };
    let mut run_dir = match RunDirSink::open(&out, options, &pipeline) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
    };
    run_dir.set_sources(sources);
    for w in &run_dir.warnings {
        crate::ui::warning!("{w}");
    }
    run_dir.annotate("sequence", frames.describe(&input_text, &config.track));
    let report = {
        let handles = handles.clone();
        let stats = frames.stats();
        Box::new(move |r: &nsod_pipeline::track::FrameReport| {
            if let Some(h) = &handles {
                h.tracked_frame(r.failed, r.update_seconds, r.active, r.started, &r.ended);
                if let Some(s) = &stats {
                    h.stream(s.dropped(), s.reconnects(), r.lag_seconds);
                }
            }
            if let Some(ran) = &r.rules {
                rules_ran(handles.as_ref(), ran);
            }
        })
    };
    // The GSD of the rules over tracks: --gsd, else the first frame's georeferencing (GeoTIFF passes).
    let gsd = config.rules.gsd.or_else(|| {
        let first = frames.list().first()?;
        let raster = nsod_raster::Raster::open(&first.job.path, &config.raster).ok()?;
        nsod_raster::georeference(&raster).ok()??.gsd
    });
    // Rules over tracks: refused rather than ignored when they cannot apply.
    let track_rules = match pipeline.rules() {
        Some(rb) => match nsod_pipeline::track_rules::TrackRules::new(
            rb,
            gsd,
            config.track.rules_every,
            config.rules.file.is_some(),
        ) {
            Ok(r) => r,
            Err(e) => return config_error(e.to_string()),
        },
        None => None,
    };
    if let Some(rb) = pipeline.rules()
        && !rb.table.speed_ranges.is_empty()
        && gsd.is_none()
    {
        crate::ui::info!(
            "speed_range/3 of {} inactive: no ground sample distance (--gsd METRES per pixel)",
            rb.table.path.display()
        );
    }
    if track_rules.is_none() && config.track.rules_every.is_some() {
        return config_error(
            "--track-rules-every: the rule base has no rules over tracks (adjust_track/3 or speed_range/3)",
        );
    }
    let on = config.track.on;
    let cmc = config.track.cmc == nsod_pipeline::config::Cmc::On;
    let mut sink = TrackSink::new(
        run_dir,
        tracker,
        nsod_pipeline::track::TrackOptions {
            on,
            cmc,
            vis: config.output.save_vis,
            gsd: config.rules.gsd,
        },
        frames.list(),
        frames.clock(),
        report,
    );
    if let Some(w) = video_out {
        sink.set_video_output(w);
    }
    if track_rules.is_some() || config.kg.enabled {
        // The rule base's relation thresholds when there is one (the rules' relations and the graph's agree).
        let params = pipeline.rules().map(|r| r.table.params).unwrap_or_default();
        sink.set_timeline(params, config.kg.enabled);
    }
    if let Some(r) = track_rules {
        sink.set_track_rules(r);
    }
    if config.output.skip_existing {
        let kept = nsod_pipeline::Sink::completed(&sink);
        let todo = frames
            .list()
            .iter()
            .filter(|f| !kept.contains(&f.job.name))
            .count();
        println!(
            "{} frames kept from the earlier run (their detections replayed through the tracker), {todo} to process",
            kept.len()
        );
    }
    let mut worker = match pipeline.worker() {
        Ok(w) => w,
        Err(e) => return config_error(error_chain(&e)),
    };
    // A live stream ends on a signal like at its end (the video thread stops reading; the frames taken are
    // finished and every output written): the runner and the worker do not see the signal.
    let run_flag = if live {
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
    } else {
        interrupted.clone()
    };
    worker.set_interrupt(run_flag.clone());
    if let Some(s) = &metrics {
        s.set_ready();
    }
    let inputs: Vec<PathBuf> = vec![input.clone()];
    let mut observer = CliObserver::new(handles.clone(), config.detect.conf);
    let result = match feed {
        Some(feed) => nsod_pipeline::run_feed(
            &mut worker,
            feed,
            &inputs,
            &mut sink,
            &mut observer,
            &run_flag,
        ),
        None => {
            let jobs: Vec<nsod_pipeline::Job> =
                frames.list().iter().map(|f| f.job.clone()).collect();
            nsod_pipeline::run(
                &mut worker,
                jobs,
                &inputs,
                &mut sink,
                &mut observer,
                &run_flag,
            )
        }
    };
    observer.finish();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            crate::ui::error!("{}", error_chain(&e));
            if let Some(s) = metrics {
                s.finish(&interrupted);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let totals = sink.totals().clone();
    if let (Some(h), false) = (&handles, summary.interrupted) {
        // The tracks the sequence's end finished (the others were counted frame by frame).
        h.tracking_finished(totals.ended.get("finished").copied().unwrap_or(0));
    }
    if let Some(ran) = &totals.final_rules {
        rules_ran(handles.as_ref(), ran);
    }
    let secs = summary.seconds;
    crate::ui::summary!(
        "{} frames tracked ({} failed{}) in {secs:.2} s ({:.2} frames/s): {} tracks ({})",
        totals.frames,
        totals.failed_frames,
        if totals.replayed > 0 {
            format!(", {} replayed", totals.replayed)
        } else {
            String::new()
        },
        (totals.frames - totals.replayed) as f64 / secs.max(1e-9),
        totals.tracks,
        totals
            .ended
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if let Some(s) = frames.stats() {
        crate::ui::info!(
            "video: {} frames decoded, {} dropped, {} reconnections{}",
            s.decoded(),
            s.dropped(),
            s.reconnects(),
            if live { " (live)" } else { "" }
        );
    }
    if summary.interrupted {
        crate::ui::info!(
            "interrupted: {} is unchanged; tracks are written only for a complete sequence (--skip-existing resumes, replaying the finished frames' detections)",
            out.display()
        );
    } else if !crate::ui::is_quiet() {
        let s = crate::ui::EMPHASIS;
        anstream::println!("outputs in {s}{}{s:#}:", out.display());
        for (name, what) in [
            (
                layout::TRACKS,
                "per frame: every confirmed track (id, class, oriented box, score, state, velocity, heading)",
            ),
            (
                layout::MOT,
                "MOTChallenge text (frame,id,left,top,w,h,conf,-1,-1,-1), for nsod eval --mot and TrackEval",
            ),
            (
                layout::MOT_OBB,
                "the oriented variant (frame,id,x1,y1,...,x4,y4,conf,class)",
            ),
            (
                layout::TRACK_SUMMARY,
                "one row per track: class vote, first/last time, frames, mean speed (px/s), heading of its displacement, ground speed and displacement, the rules' factor and reasons",
            ),
            (
                layout::PREDICTIONS,
                "each frame's detections, as nsod infer writes them",
            ),
            (
                layout::MANIFEST,
                "manifest: model, settings, the sequence, tracking counts",
            ),
        ] {
            anstream::println!("  {name:<18} {what}");
        }
    }
    if let Some(s) = metrics {
        s.finish(&interrupted);
    }
    Ok(if summary.interrupted {
        ExitCode::from(INTERRUPTED)
    } else if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One round of rules over tracks: counted, and a failed query said (the tracks are then judged by the speed
/// ranges alone and the run goes on).
fn rules_ran(
    handles: Option<&nsod_telemetry::handles::InferMetrics>,
    ran: &nsod_pipeline::track_rules::RulesRan,
) {
    if let Some(h) = handles {
        h.track_rules_ran(
            ran.boosts,
            ran.penalties,
            match &ran.error {
                None => Ok(ran.seconds),
                Some((kind, _)) => Err(kind),
            },
        );
    }
    if let Some((_, message)) = &ran.error {
        crate::ui::warning!("rules over tracks skipped for this round: {message}");
    }
}

/// True when `input` is a video: a URL, or a file with a video extension.
fn is_video(input: &std::path::Path) -> bool {
    let text = input.to_string_lossy();
    (text.contains("://") && !input.exists())
        || (input.is_file()
            && input
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e))))
}

/// File name extensions read as video (the same list as nsod-video's, known without FFmpeg too).
const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "m2ts", "mts", "mpg", "mpeg", "flv", "h264",
    "264", "hevc", "265",
];

/// What the container says about a video, as written to run.json.
#[derive(Debug, Clone, serde::Serialize)]
struct VideoSummary {
    format: String,
    codec: String,
    width: u32,
    height: u32,
    time_base: [i32; 2],
    frame_rate: Option<f64>,
    frames: Option<u64>,
    network: bool,
}

/// The frames of a run.
enum Frames {
    Sequence(Sequence),
    Video(VideoSummary, FrameClock, Stream),
}

impl Frames {
    fn list(&self) -> &[Frame] {
        match self {
            Frames::Sequence(s) => &s.frames,
            Frames::Video(..) => &[],
        }
    }

    fn stats(&self) -> Option<Stream> {
        match self {
            Frames::Sequence(_) => None,
            Frames::Video(_, _, s) => Some(s.clone()),
        }
    }

    fn clock(&self) -> Option<FrameClock> {
        match self {
            Frames::Sequence(_) => None,
            Frames::Video(_, c, _) => Some(c.clone()),
        }
    }

    /// run.json's `sequence`.
    fn describe(&self, input: &str, t: &TrackSettings) -> serde_json::Value {
        match self {
            Frames::Sequence(s) => serde_json::json!({
                "input": input,
                "frames": s.frames.len(),
                "fps": s.fps,
                "times_from": s.times_from,
            }),
            Frames::Video(info, _, stream) => serde_json::json!({
                "input": input,
                "video": info,
                "every": t.every,
                "fps": t.fps,
                "times_from": "container",
                "live": stream.live,
            }),
        }
    }
}

/// A video's counts (decoded, dropped, reconnections), read as the run goes.
#[derive(Clone)]
struct Stream {
    live: bool,
    #[cfg(feature = "video")]
    stats: std::sync::Arc<nsod_pipeline::video::StreamStats>,
}

impl Stream {
    #[cfg(feature = "video")]
    fn get(
        &self,
        f: impl Fn(&nsod_pipeline::video::StreamStats) -> &std::sync::atomic::AtomicU64,
    ) -> u64 {
        f(&self.stats).load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(feature = "video")]
    fn decoded(&self) -> u64 {
        self.get(|s| &s.decoded)
    }
    #[cfg(feature = "video")]
    fn dropped(&self) -> u64 {
        self.get(|s| &s.dropped)
    }
    #[cfg(feature = "video")]
    fn reconnects(&self) -> u64 {
        self.get(|s| &s.reconnects)
    }
    #[cfg(not(feature = "video"))]
    fn decoded(&self) -> u64 {
        0
    }
    #[cfg(not(feature = "video"))]
    fn dropped(&self) -> u64 {
        0
    }
    #[cfg(not(feature = "video"))]
    fn reconnects(&self) -> u64 {
        0
    }
}

/// `--save-video`'s writer: frames at the input video's timestamps, or at their times in seconds.
#[cfg(feature = "video")]
fn video_output(
    path: &std::path::Path,
    frames: &Frames,
) -> Result<Box<dyn nsod_pipeline::track::FrameWriter>, String> {
    let time_base = match frames {
        Frames::Video(info, ..) => Some((info.time_base[0], info.time_base[1])),
        Frames::Sequence(_) => None,
    };
    Ok(Box::new(nsod_pipeline::video::VideoOutput::new(
        path, time_base,
    )?))
}

#[cfg(not(feature = "video"))]
fn video_output(
    _path: &std::path::Path,
    _frames: &Frames,
) -> Result<Box<dyn nsod_pipeline::track::FrameWriter>, String> {
    Err("--save-video: this nsod was built without video support (cargo feature `video`)".into())
}

type OpenedVideo = (VideoSummary, nsod_pipeline::Feed, FrameClock, Stream);

#[cfg(feature = "video")]
fn open_video(
    input: &str,
    t: &TrackSettings,
    live: bool,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<OpenedVideo, String> {
    let opts = nsod_pipeline::video::Options {
        every: u32::try_from(t.every).unwrap_or(u32::MAX),
        fps: t.fps,
        ..Default::default()
    };
    let mode = nsod_pipeline::video::Mode {
        live,
        stop: stop.clone(),
    };
    let (info, feed, clock, stats) =
        nsod_pipeline::video::open(input, opts, mode).map_err(|e| error_chain(&e))?;
    Ok((
        VideoSummary {
            format: info.format,
            codec: info.codec,
            width: info.width,
            height: info.height,
            time_base: [info.time_base.0, info.time_base.1],
            frame_rate: info.frame_rate,
            frames: info.frames,
            network: info.network,
        },
        feed,
        clock,
        Stream { live, stats },
    ))
}

#[cfg(not(feature = "video"))]
fn open_video(
    input: &str,
    _t: &TrackSettings,
    _live: bool,
    _stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<OpenedVideo, String> {
    Err(format!(
        "{input}: this nsod was built without video support (cargo feature `video`, FFmpeg's libraries); track a folder of frames, or rebuild with scripts/setup.sh"
    ))
}
