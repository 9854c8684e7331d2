//! `nsod track`: settings → session → the frames through the pipeline (as `nsod infer` runs them) into a run
//! folder whose sink also tracks them → summary, exit code. The frames and the tracking sink live in
//! nsod-pipeline (`track`), the tracker in nsod-track.

use crate::cli::{GlobalArgs, TrackArgs};
use crate::observe::CliObserver;
use crate::session::{INTERRUPTED, Needs, Session, config_error};
use nsod_pipeline::track::{TrackSink, sequence};
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
    let seq = match sequence(&input, layers.config.track.fps, nsod_detect::is_image_path) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
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
    run_dir.annotate(
        "sequence",
        serde_json::json!({
            "input": input.display().to_string(),
            "frames": seq.frames.len(),
            "fps": seq.fps,
            "times_from": seq.times_from,
        }),
    );
    let report = {
        let handles = handles.clone();
        Box::new(move |r: &nsod_pipeline::track::FrameReport| {
            if let Some(h) = &handles {
                h.tracked_frame(r.failed, r.update_seconds, r.active, r.started, &r.ended);
            }
        })
    };
    let on = config.track.on;
    let cmc = config.track.cmc == nsod_pipeline::config::Cmc::On;
    let mut sink = TrackSink::new(
        run_dir,
        tracker,
        on,
        cmc,
        config.output.save_vis,
        &seq.frames,
        report,
    );
    if config.output.skip_existing {
        let kept = nsod_pipeline::Sink::completed(&sink);
        let todo = seq
            .frames
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
    worker.set_interrupt(interrupted.clone());
    if let Some(s) = &metrics {
        s.set_ready();
    }
    let jobs: Vec<nsod_pipeline::Job> = seq.frames.iter().map(|f| f.job.clone()).collect();
    let inputs: Vec<PathBuf> = vec![input.clone()];
    let mut observer = CliObserver::new(handles.clone(), config.detect.conf);
    let result = nsod_pipeline::run(
        &mut worker,
        jobs,
        &inputs,
        &mut sink,
        &mut observer,
        &interrupted,
    );
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
                "one row per track: class vote, first/last time, frames, mean speed (px/s), heading of its displacement",
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
