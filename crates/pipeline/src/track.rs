//! `nsod track`'s side of the pipeline: the frames of a sequence in time order, and the sink that tracks the
//! frames' detections (in frame order, whatever order the runner finishes them in) and writes the tracks beside the
//! run folder's own outputs.

use crate::cmc::{self, Prepared};
use crate::config::TrackOn;
use crate::inputs::Job;
use crate::sink::{Failure, RunDirSink, RunInfo, RunSummary, Sink, SinkError};
use crate::track_rules::{RulesRan, TrackRules, TrackVerdict};
use image::RgbImage;
use nsod_track::course::{Course, CourseConfig, GroundFrame};
use nsod_track::timeline::Timeline;
use nsod_track::{
    CameraMotion, EndReason, EndedTrack, FrameTracks, Observation, TrackState, Tracker,
};
use nsod_types::formats::jsonl::ImagePredictions;
use nsod_types::layout;
use nsod_types::outcome::ImageOutcome;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Why a sequence cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    #[error("{}: cannot read", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    List {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// One frame: the image and its time in seconds from the sequence's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub job: Job,
    pub time: f64,
}

/// A sequence of frames in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub frames: Vec<Frame>,
    /// The frame rate used for frames without times (`None` for a list file with times).
    pub fps: Option<f64>,
    /// Where the times come from: `list`, `seqinfo.ini`, `--fps` or `default`.
    pub times_from: &'static str,
}

/// Frames per second when nothing says.
pub const DEFAULT_FPS: f64 = 30.0;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SequenceError + '_ {
    move |source| SequenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a sequence: a folder of frames (natural order: `frame2` before `frame10`), a MOTChallenge sequence folder
/// (`img1/` and `seqinfo.ini`, whose `frameRate` gives the times unless `fps` is set) or a list file (one frame per
/// line: `PATH [SECONDS]`, paths relative to the file; with times on every line they are the frames' times and
/// must not decrease).
pub fn sequence(
    input: &Path,
    fps: Option<f64>,
    is_image: impl Fn(&Path) -> bool,
) -> Result<Sequence, SequenceError> {
    let meta = std::fs::metadata(input).map_err(io(input))?;
    if meta.is_file() {
        return list_file(input, fps);
    }
    let (dir, info_fps) = if input.join("img1").is_dir() && input.join("seqinfo.ini").is_file() {
        let info = input.join("seqinfo.ini");
        let text = std::fs::read_to_string(&info).map_err(io(&info))?;
        let rate = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == "frameRate")
            .map(|(_, v)| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .ok_or_else(|| SequenceError::Invalid {
                        path: info.clone(),
                        message: format!("frameRate={:?} is not a positive number", v.trim()),
                    })
            })
            .transpose()?;
        (input.join("img1"), rate)
    } else {
        (input.to_path_buf(), None)
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    if files.is_empty() {
        return Err(SequenceError::Invalid {
            path: dir,
            message: "no image frames".into(),
        });
    }
    files.sort_by(|a, b| {
        natord::compare(
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    let (rate, times_from) = match (fps, info_fps) {
        (Some(f), _) => (f, "--fps"),
        (None, Some(r)) => (r, "seqinfo.ini"),
        (None, None) => (DEFAULT_FPS, "default"),
    };
    let frames = files
        .into_iter()
        .enumerate()
        .map(|(i, path)| Frame {
            job: Job {
                name: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                path,
            },
            time: i as f64 / rate,
        })
        .collect();
    Ok(Sequence {
        frames,
        fps: Some(rate),
        times_from,
    })
}

fn list_file(path: &Path, fps: Option<f64>) -> Result<Sequence, SequenceError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut entries: Vec<(PathBuf, Option<f64>, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let err = |message: String| SequenceError::List {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let (file, time) = match l.rsplit_once(char::is_whitespace) {
            Some((f, t)) if t.parse::<f64>().is_ok() => {
                let t: f64 = t.parse().unwrap_or_default();
                if !t.is_finite() {
                    return Err(err(format!("time {t} is not finite")));
                }
                (f.trim(), Some(t))
            }
            _ => (l, None),
        };
        let p = Path::new(file);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(err(format!(
                "{file:?}: frames are named relative to the list's folder, without `..`"
            )));
        }
        entries.push((base.join(p), time, i + 1));
    }
    if entries.is_empty() {
        return Err(SequenceError::Invalid {
            path: path.to_path_buf(),
            message: "no frames listed".into(),
        });
    }
    let timed = entries.iter().filter(|e| e.1.is_some()).count();
    if timed != 0 && timed != entries.len() {
        let line = entries.iter().find(|e| e.1.is_none()).map_or(0, |e| e.2);
        return Err(SequenceError::List {
            path: path.to_path_buf(),
            line,
            message: "no time: give a time on every line or on none".into(),
        });
    }
    let rate = fps.unwrap_or(DEFAULT_FPS);
    let first = entries[0].1.unwrap_or(0.0);
    let mut frames = Vec::with_capacity(entries.len());
    let mut names = HashMap::new();
    let mut previous = f64::NEG_INFINITY;
    for (k, (p, t, line)) in entries.into_iter().enumerate() {
        let time = t.map_or(k as f64 / rate, |t| t - first);
        if time < previous {
            return Err(SequenceError::List {
                path: path.to_path_buf(),
                line,
                message: format!("time {} s is before the previous frame's", time + first),
            });
        }
        previous = time;
        let name = p
            .strip_prefix(base)
            .unwrap_or(&p)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if let Some(other) = names.insert(name.clone(), line) {
            return Err(SequenceError::List {
                path: path.to_path_buf(),
                line,
                message: format!("{name} is listed twice (line {other})"),
            });
        }
        frames.push(Frame {
            job: Job { path: p, name },
            time,
        });
    }
    Ok(Sequence {
        frames,
        fps: (timed == 0).then_some(rate),
        times_from: if timed == 0 {
            if fps.is_some() { "--fps" } else { "default" }
        } else {
            "list"
        },
    })
}

/// Each frame's place and time, by its name in the run: known up front for a folder or a list, filled in by the
/// decoding thread as a video's frames are decoded (shared with the [`TrackSink`]).
#[derive(Debug, Clone, Default)]
pub struct FrameClock(std::sync::Arc<std::sync::Mutex<ClockInner>>);

#[derive(Debug, Default)]
struct ClockInner {
    index: HashMap<String, usize>,
    /// Per frame: seconds from the start, the container timestamp (in the stream's time base) for a video, and when
    /// a live stream's frame was decoded.
    stamps: Vec<(f64, Option<i64>, Option<std::time::Instant>)>,
}

impl FrameClock {
    /// The clock of a sequence known up front.
    pub fn of(frames: &[Frame]) -> Self {
        let c = Self::default();
        for f in frames {
            c.push(&f.job.name, f.time, None);
        }
        c
    }

    /// Adds the next frame.
    pub fn push(&self, name: &str, time: f64, pts: Option<i64>) {
        self.add(name, (time, pts, None));
    }

    /// Adds the next frame with the moment it was decoded (its lag is measured from it).
    pub fn push_decoded(&self, name: &str, time: f64, pts: Option<i64>, at: std::time::Instant) {
        self.add(name, (time, pts, Some(at)));
    }

    fn add(&self, name: &str, stamp: (f64, Option<i64>, Option<std::time::Instant>)) {
        let mut c = self.lock();
        let i = c.stamps.len();
        c.stamps.push(stamp);
        c.index.insert(name.to_owned(), i);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.lock().index.get(name).copied()
    }

    fn stamp(&self, i: usize) -> (f64, Option<i64>, Option<std::time::Instant>) {
        self.lock()
            .stamps
            .get(i)
            .copied()
            .unwrap_or((0.0, None, None))
    }

    /// Frames on the clock.
    pub fn len(&self) -> usize {
        self.lock().stamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one tracked frame did, for the front end's metrics and progress.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameReport {
    /// Seconds the tracker's update took.
    pub update_seconds: f64,
    /// Confirmed tracks alive after the frame (matched or lost).
    pub active: usize,
    pub started: usize,
    /// Tracks ended in this frame, by reason.
    pub ended: [(&'static str, usize); 2],
    /// The frame failed (decode or inference) and was left out of the tracks.
    pub failed: bool,
    /// A live stream's frame: seconds from its decoding to the end of its tracking.
    pub lag_seconds: Option<f64>,
    /// The rules over tracks ran in this frame.
    pub rules: Option<RulesRan>,
}

/// Totals of a tracked run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrackTotals {
    pub frames: usize,
    pub failed_frames: usize,
    pub tracks: usize,
    pub ended: BTreeMap<&'static str, usize>,
    /// Frames an earlier, interrupted run finished: their stored detections replayed through the tracker.
    pub replayed: usize,
    /// Seconds in the tracker's updates, and in camera-motion estimation (preparing the frames included).
    pub update_seconds: f64,
    pub cmc_seconds: f64,
    /// The rules over tracks that ran at the end of the sequence (on the tracks it finished).
    pub final_rules: Option<RulesRan>,
}

#[derive(Debug, Clone)]
struct Life {
    class_votes: BTreeMap<u32, f64>,
    first_time: f64,
    last_time: f64,
    frames: usize,
    path: f64,
    first_centre: (f64, f64),
    last_centre: Option<(f64, f64, f64)>,
    /// Its course in the ground frame (camera motion undone).
    course: Course,
    /// Its course on the map (georeferenced frames in the first one's CRS).
    geo_course: Option<Course>,
}

/// A frame waiting for its turn.
struct Pending {
    image: String,
    observations: Vec<Observation>,
    /// For camera-motion compensation: the frame prepared, and detection pixels per prepared-frame pixel.
    pixels: Option<(Prepared, f64)>,
    /// For `vis/`: the frame itself (at the detections' size).
    picture: Option<RgbImage>,
    /// Where the frame lies on the map, for a georeferenced frame.
    georef: Option<nsod_types::geo::GeoRef>,
}

/// Centres kept per track for the trails drawn in `vis/`.
const TRAIL: usize = 30;

/// The camera motion below this peak of the translation's correlation is not trusted (no compensation).
pub const MIN_CMC_CONFIDENCE: f32 = 0.05;

/// Where `--save-video` sends the annotated frames (the `video` feature's encoder): each frame with its time in
/// seconds and, for a video input, its container timestamp.
pub trait FrameWriter {
    fn write(&mut self, image: &RgbImage, time: f64, pts: Option<i64>) -> Result<(), SinkError>;
    /// The run is complete: the video is finished and put in place.
    fn finish(self: Box<Self>) -> Result<(), SinkError>;
    /// The run stopped: nothing is put in place.
    fn abandon(self: Box<Self>);
}

/// How a [`TrackSink`] tracks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackOptions {
    /// The scores the tracker sees: refined by the rules, or the detector's.
    pub on: TrackOn,
    /// Camera-motion compensation.
    pub cmc: bool,
    /// Annotated frames in `vis/`.
    pub vis: bool,
    /// Metres per pixel of the first frame (the ground frame): speeds and displacements in metres.
    pub gsd: Option<f64>,
}

/// Tracks the frames' detections and writes `tracks.jsonl`, `mot.txt`, `mot_obb.txt` and `track_summary.csv`
/// into the run folder, around a [`RunDirSink`] that writes everything `nsod infer` writes.
pub struct TrackSink {
    inner: RunDirSink,
    tracker: Tracker,
    on: TrackOn,
    clock: FrameClock,
    /// The frames' files, read again for the pixels of a replayed frame (camera motion, `vis/`); empty for a video.
    paths: Vec<PathBuf>,
    pending: BTreeMap<usize, Option<Pending>>,
    /// Camera-motion compensation on.
    cmc: bool,
    /// Annotated frames in `vis/`: tracks with their ids and trails.
    vis: bool,
    /// Annotated frames into a video (`--save-video`).
    video_out: Option<Box<dyn FrameWriter>>,
    trails: HashMap<u64, std::collections::VecDeque<(f64, f64)>>,
    /// The last tracked frame's prepared pixels and the factor from them to the detections' pixels.
    previous: Option<(Prepared, f64)>,
    next: usize,
    class_names: BTreeMap<u32, String>,
    writers: Option<[BufWriter<std::fs::File>; 3]>,
    lives: BTreeMap<u64, Life>,
    ended: Vec<EndedTrack>,
    totals: TrackTotals,
    report: Box<dyn FnMut(&FrameReport)>,
    /// From the current frame's pixels to the ground frame (the first frame's pixels).
    ground: GroundFrame,
    gsd: Option<f64>,
    rules: Option<TrackRules>,
    /// Relations between tracks over time (for the rules over tracks and `--kg`), with the thresholds they are
    /// extracted with, and whether the knowledge graph over time is written.
    timeline: Option<(Timeline, nsod_types::relations::RelationParams, bool)>,
    /// Time of the last tracked frame.
    last_time: f64,
    /// Trajectories on the map: the CRS of the first georeferenced frame, every matched detection's centre in it,
    /// and the georeferenced frames in another CRS (left out, said in run.json).
    geo: Option<nsod_types::geo::GeoRef>,
    geo_points: Vec<nsod_raster::trajectories::TrackPoint>,
    geo_other_crs: usize,
}

fn write_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> SinkError {
    move |source| SinkError::Io { path, source }
}

impl std::fmt::Debug for TrackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackSink")
            .field("next", &self.next)
            .field("pending", &self.pending.len())
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl TrackSink {
    /// `frames` in time order (their job names are the run's image names), or for a video an empty list and the
    /// clock its decoding thread fills; `report` sees every frame.
    pub fn new(
        inner: RunDirSink,
        tracker: Tracker,
        TrackOptions { on, cmc, vis, gsd }: TrackOptions,
        frames: &[Frame],
        clock: Option<FrameClock>,
        report: Box<dyn FnMut(&FrameReport)>,
    ) -> Self {
        Self {
            inner,
            tracker,
            on,
            cmc,
            vis,
            video_out: None,
            trails: HashMap::new(),
            previous: None,
            clock: clock.unwrap_or_else(|| FrameClock::of(frames)),
            paths: frames.iter().map(|f| f.job.path.clone()).collect(),
            pending: BTreeMap::new(),
            next: 0,
            class_names: BTreeMap::new(),
            writers: None,
            lives: BTreeMap::new(),
            ended: Vec::new(),
            totals: TrackTotals::default(),
            report,
            ground: GroundFrame::default(),
            gsd,
            rules: None,
            timeline: None,
            last_time: 0.0,
            geo: None,
            geo_points: Vec::new(),
            geo_other_crs: 0,
        }
    }

    /// Keeps the relations between tracks over time, extracted with `params`; with `write`, writes them as the
    /// knowledge graph over time (`track_graph.json`, `track_graph.graphml`).
    pub fn set_timeline(&mut self, params: nsod_types::relations::RelationParams, write: bool) {
        self.timeline = Some((Timeline::default(), params, write));
    }

    /// Judges the tracks with the rule base's rules over tracks (see [`crate::track_rules`]).
    pub fn set_track_rules(&mut self, rules: TrackRules) {
        self.rules = Some(rules);
    }

    /// The facts of track `id` for the rules.
    fn fact(&self, id: u64) -> Option<nsod_symbolic::protocol::TrackFact> {
        let l = self.lives.get(&id)?;
        let class = voted(&l.class_votes);
        let name = self
            .class_names
            .get(&class)
            .cloned()
            .unwrap_or_else(|| class.to_string());
        let c = l.course.summary();
        let metres = |v: Option<f64>| v.and_then(|v| self.gsd.map(|g| v * g));
        Some(nsod_symbolic::protocol::TrackFact {
            id,
            class: nsod_symbolic::class_atom(&name),
            first: l.first_time,
            last: l.last_time,
            frames: l.frames as u64,
            speed_px: c.speed,
            speed_m: metres(c.speed),
            heading: c.heading,
            displacement_px: c.displacement,
            displacement_m: metres(c.displacement),
        })
    }

    /// Runs the rules over `subjects` (see [`TrackRules::judge`]); nothing without rules.
    fn judge(
        &mut self,
        subjects: &std::collections::BTreeSet<u64>,
        open: &[u64],
        time: f64,
        last: bool,
    ) -> (Vec<TrackVerdict>, Option<RulesRan>) {
        let Some(mut rules) = self.rules.take() else {
            return (Vec::new(), None);
        };
        let intervals = self
            .timeline
            .as_ref()
            .map(|t| t.0.involving(subjects))
            .unwrap_or_default();
        let (v, ran) = rules.judge(subjects, open, &intervals, (time, last), |id| self.fact(id));
        self.rules = Some(rules);
        (v, Some(ran))
    }

    /// Sends every tracked frame, annotated, to `writer` too (`--save-video`).
    pub fn set_video_output(&mut self, writer: Box<dyn FrameWriter>) {
        self.video_out = Some(writer);
    }

    /// Whether annotated frames are drawn (`vis/` or a video).
    fn draws(&self) -> bool {
        self.vis || self.video_out.is_some()
    }

    pub fn totals(&self) -> &TrackTotals {
        &self.totals
    }

    /// The run folder's sink (its warnings, where it writes).
    pub fn run_dir(&mut self) -> &mut RunDirSink {
        &mut self.inner
    }

    fn file(&self, name: &str) -> PathBuf {
        self.inner.writing_to().join(name)
    }

    /// Queues frame `i`'s detections (`size`: the detections' image size) with what camera-motion compensation
    /// and `vis/` need of its pixels.
    fn queue(
        &mut self,
        i: usize,
        name: &str,
        dets: &[nsod_types::Detection],
        (width, height): (u32, u32),
        image: Option<&RgbImage>,
        georef: Option<&nsod_types::geo::GeoRef>,
    ) {
        for d in dets {
            self.class_names
                .entry(d.class_id)
                .or_insert_with(|| d.class_name.clone());
        }
        let observations = dets
            .iter()
            .map(|d| Observation {
                obb: d.obb.unwrap_or_else(|| d.bbox.to_oriented()),
                score: d.score,
                class_id: d.class_id,
            })
            .collect();
        // The image may be a decimated preview (rasters): its pixels are scaled to the detections'.
        let prepare_start = Instant::now();
        let pixels = image.filter(|_| self.cmc).map(|img| {
            (
                cmc::prepare(img),
                f64::from(width) / f64::from(img.width().max(1)),
            )
        });
        self.totals.cmc_seconds += prepare_start.elapsed().as_secs_f64();
        let picture = image
            .filter(|img| self.draws() && img.dimensions() == (width, height))
            .cloned();
        self.pending.insert(
            i,
            Some(Pending {
                image: name.to_owned(),
                observations,
                pixels,
                picture,
                georef: georef.cloned(),
            }),
        );
    }

    /// Replays the frames an earlier, interrupted run finished (`skip_existing`): their stored detections (the
    /// detector's own with `--track-on raw` and rules) go through the tracker in frame order as if just detected,
    /// their pixels read again when camera-motion compensation or `vis/` needs them, so the resumed run's tracks
    /// equal an uninterrupted run's.
    fn replay(&mut self, raster: &nsod_raster::RasterOptions) -> Result<(), SinkError> {
        let kept: Vec<(usize, ImagePredictions)> = self
            .inner
            .kept_records()
            .filter_map(|(record, raw)| {
                let i = self.clock.find(&record.image)?;
                self.paths.get(i)?;
                let r = match (self.on, raw) {
                    (TrackOn::Raw, Some(raw)) => raw,
                    _ => record,
                };
                Some((i, r.clone()))
            })
            .collect();
        for (i, record) in kept {
            let picture = if self.cmc || self.draws() {
                let path = &self.paths[i];
                let loaded = crate::source::load(path, raster).map_err(|e| SinkError::Resume {
                    path: path.clone(),
                    message: format!(
                        "cannot read the frame again to replay it: {}",
                        crate::error_chain(&e)
                    ),
                })?;
                match &loaded.pixels {
                    crate::source::Pixels::Memory(m) => Some(m.clone()),
                    crate::source::Pixels::Windowed(_) => loaded
                        .preview(crate::runner::PREVIEW_SIDE)
                        .map_err(|e| SinkError::Resume {
                            path: path.clone(),
                            message: format!(
                                "cannot read the frame again to replay it: {}",
                                crate::error_chain(&e)
                            ),
                        })?,
                }
            } else {
                None
            };
            self.queue(
                i,
                &record.image,
                &record.detections,
                (record.width, record.height),
                picture.as_ref(),
                record.geo.as_ref().map(|g| &g.georef),
            );
            self.totals.replayed += 1;
        }
        self.drain()
    }

    /// Tracks every frame that is next in order.
    fn drain(&mut self) -> Result<(), SinkError> {
        while let Some(entry) = self.pending.remove(&self.next) {
            let frame = self.next;
            self.next += 1;
            let Some(Pending {
                image,
                observations: obs,
                pixels,
                picture,
                georef,
            }) = entry
            else {
                self.totals.failed_frames += 1;
                (self.report)(&FrameReport {
                    update_seconds: 0.0,
                    active: 0,
                    started: 0,
                    ended: EndReason::ALL.map(|r| (r.as_str(), 0)),
                    failed: true,
                    lag_seconds: None,
                    rules: None,
                });
                continue;
            };
            let (time, pts, decoded_at) = self.clock.stamp(frame);
            let cmc_start = Instant::now();
            let camera = match (&self.previous, &pixels) {
                (Some((prev, _)), Some((cur, factor))) => {
                    cmc::estimate(prev, cur).map(|e| (e, *factor))
                }
                _ => None,
            };
            self.totals.cmc_seconds += cmc_start.elapsed().as_secs_f64();
            let motion = camera.and_then(|(e, factor)| {
                (e.confidence >= MIN_CMC_CONFIDENCE).then_some(CameraMotion {
                    tx: e.motion.tx * factor,
                    ty: e.motion.ty * factor,
                    ..e.motion
                })
            });
            if pixels.is_some() {
                self.previous = pixels;
            }
            self.ground.advance(motion.as_ref());
            self.last_time = time;
            let start = Instant::now();
            let out = self
                .tracker
                .update(time, &obs, motion.as_ref())
                .map_err(|e| SinkError::Io {
                    path: self.file(layout::TRACKS),
                    source: std::io::Error::other(e),
                })?;
            let update_seconds = start.elapsed().as_secs_f64();
            self.totals.update_seconds += update_seconds;
            let camera_json = camera.map(|(e, _)| {
                json!({
                    "applied": motion.is_some(),
                    "confidence": e.confidence,
                    "scale": e.motion.scale,
                    "rotation": e.motion.rotation,
                    "tx": motion.map_or(e.motion.tx, |m| m.tx),
                    "ty": motion.map_or(e.motion.ty, |m| m.ty),
                })
            });
            // The frame on the map: in the CRS of the first georeferenced frame (which also gives the GSD when
            // --gsd does not).
            let map = georef.and_then(|g| {
                let first = self.geo.get_or_insert_with(|| g.clone());
                if self.gsd.is_none() {
                    self.gsd = first.gsd;
                }
                if first.wkt == g.wkt {
                    Some(g.geotransform)
                } else {
                    self.geo_other_crs += 1;
                    None
                }
            });
            let (mut record, mot, mot_obb) =
                self.frame_record(frame, (time, pts), &image, &obs, &out, (camera_json, map));
            // The rules over tracks: the tracks that ended in this frame, and the open ones when a round is due.
            let mut rules_ran = None;
            if self.rules.is_some() {
                let mut verdicts = Vec::new();
                let ended: std::collections::BTreeSet<u64> =
                    out.ended.iter().map(|e| e.id).collect();
                let open: Vec<u64> = out
                    .tracks
                    .iter()
                    .map(|t| t.id)
                    .filter(|id| !ended.contains(id) && self.lives.contains_key(id))
                    .collect();
                if let Some((t, _, _)) = self.timeline.as_mut() {
                    for id in &ended {
                        t.end_track(*id);
                    }
                }
                let mut ran: Option<RulesRan> = None;
                let ended_alive: std::collections::BTreeSet<u64> = ended
                    .iter()
                    .copied()
                    .filter(|id| self.lives.contains_key(id))
                    .collect();
                if !ended_alive.is_empty() {
                    let (v, r) = self.judge(&ended_alive, &open, time, true);
                    verdicts.extend(v);
                    ran = r;
                }
                if self.rules.as_mut().is_some_and(|r| r.round_due(time)) && !open.is_empty() {
                    let subjects = open.iter().copied().collect();
                    let (v, r) = self.judge(&subjects, &open, time, false);
                    verdicts.extend(v);
                    ran = merge_ran(ran, r);
                }
                if !verdicts.is_empty() {
                    record["track_rules"] = json!(verdicts);
                }
                rules_ran = ran;
            }
            self.write_lines(&record, mot, mot_obb)?;
            if self.draws() {
                self.draw(&image, picture, &out, motion.as_ref(), (time, pts))?;
            }
            let mut ended = EndReason::ALL.map(|r| (r.as_str(), 0usize));
            for e in &out.ended {
                if let Some(slot) = ended.iter_mut().find(|s| s.0 == e.reason.as_str()) {
                    slot.1 += 1;
                }
            }
            self.ended.extend(out.ended.iter().cloned());
            self.totals.frames += 1;
            self.totals.tracks += out.started.len();
            (self.report)(&FrameReport {
                update_seconds,
                active: out.tracks.len(),
                started: out.started.len(),
                ended,
                failed: false,
                lag_seconds: decoded_at.map(|at| at.elapsed().as_secs_f64()),
                rules: rules_ran,
            });
        }
        Ok(())
    }

    /// One frame's `tracks.jsonl` record and `mot.txt` / `mot_obb.txt` lines; updates the tracks' lives and the
    /// relation timeline.
    fn frame_record(
        &mut self,
        frame: usize,
        (time, pts): (f64, Option<i64>),
        image: &str,
        obs: &[Observation],
        out: &FrameTracks,
        (camera, map): (Option<serde_json::Value>, Option<[f64; 6]>),
    ) -> (serde_json::Value, String, String) {
        let names = self.class_names.clone();
        let class_name = |id: u32| names.get(&id).cloned().unwrap_or_else(|| id.to_string());
        let mut rows = Vec::new();
        let mut mot = String::new();
        let mut mot_obb = String::new();
        let mut matched: Vec<(u64, nsod_types::Detection)> = Vec::new();
        for t in &out.tracks {
            let c = t.obb.corners();
            let factor = self.rules.as_ref().and_then(|r| r.factor(t.id));
            let score = factor.map_or(t.score, |f| (f64::from(t.score) * f).min(1.0) as f32);
            rows.push(json!({
                "id": t.id,
                "class_id": t.class_id,
                "class": class_name(t.class_id),
                "obb": [t.obb.cx, t.obb.cy, t.obb.w, t.obb.h, t.obb.angle],
                "poly": c.iter().flat_map(|p| [p.x, p.y]).collect::<Vec<_>>(),
                "score": score,
                "track_factor": factor,
                "state": t.state,
                "detection": t.detection,
                "age": t.age,
                "hits": t.hits,
                "velocity": [t.velocity.0, t.velocity.1],
                "heading": t.heading,
            }));
            if t.state != TrackState::Tracked {
                continue;
            }
            // The detection itself, as MOTChallenge files hold detections, not filtered states.
            let b = t.detection.map_or(t.obb, |d| obs[d].obb);
            let a = b.aabb();
            mot.push_str(&format!(
                "{},{},{:.2},{:.2},{:.2},{:.2},{:.4},-1,-1,-1\n",
                frame + 1,
                t.id,
                a.x1,
                a.y1,
                a.width(),
                a.height(),
                score
            ));
            let p = b.corners();
            mot_obb.push_str(&format!(
                "{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.4},{}\n",
                frame + 1,
                t.id,
                p[0].x,
                p[0].y,
                p[1].x,
                p[1].y,
                p[2].x,
                p[2].y,
                p[3].x,
                p[3].y,
                score,
                t.class_id
            ));
            let life = self.lives.entry(t.id).or_insert_with(|| Life {
                class_votes: BTreeMap::new(),
                first_time: time,
                last_time: time,
                frames: 0,
                path: 0.0,
                first_centre: (f64::from(b.cx), f64::from(b.cy)),
                last_centre: None,
                course: Course::new(CourseConfig::default()),
                geo_course: None,
            });
            *life.class_votes.entry(t.class_id).or_default() += f64::from(t.score);
            let (cx, cy) = (f64::from(b.cx), f64::from(b.cy));
            if let Some((x, y, _)) = life.last_centre {
                life.path += (cx - x).hypot(cy - y);
            }
            life.last_centre = Some((cx, cy, time));
            life.last_time = time;
            life.frames += 1;
            let (gx, gy) = self.ground.apply(cx, cy);
            life.course.push(time, gx, gy);
            if let Some(gt) = &map {
                let [mx, my] = nsod_raster::georef::pixel_to_map(gt, [cx, cy]);
                life.geo_course
                    .get_or_insert_with(|| Course::new(CourseConfig::default()))
                    .push(time, mx, my);
                self.geo_points.push(nsod_raster::trajectories::TrackPoint {
                    id: t.id,
                    time,
                    frame: frame as u64 + 1,
                    image: image.to_owned(),
                    class: class_name(t.class_id),
                    score: f64::from(score),
                    map: [mx, my],
                });
            }
            if self.timeline.is_some() {
                matched.push((
                    t.id,
                    nsod_types::Detection::oriented(t.class_id, String::new(), t.score, b),
                ));
            }
        }
        if let Some((timeline, params, _)) = self.timeline.as_mut() {
            let dets: Vec<nsod_types::Detection> = matched.iter().map(|m| m.1.clone()).collect();
            let holds: Vec<_> = nsod_types::relations::extract(&dets, params, |_, _| true)
                .into_iter()
                .map(|e| (e.relation, matched[e.subject].0, matched[e.object].0))
                .collect();
            let ids = matched.iter().map(|m| m.0).collect();
            timeline.frame(time, &holds, &ids);
        }
        let mut record = json!({
            "frame": frame + 1,
            "time": time,
            "image": image,
            "camera": camera,
            "tracks": rows,
        });
        if let Some(pts) = pts {
            record["pts"] = json!(pts);
        }
        (record, mot, mot_obb)
    }

    fn write_lines(
        &mut self,
        record: &serde_json::Value,
        mot: String,
        mot_obb: String,
    ) -> Result<(), SinkError> {
        let paths = [layout::TRACKS, layout::MOT, layout::MOT_OBB].map(|n| self.file(n));
        let Some(w) = self.writers.as_mut() else {
            return Err(SinkError::Io {
                path: paths[0].clone(),
                source: std::io::Error::other("the run has not begun"),
            });
        };
        let mut line = serde_json::to_string(record).unwrap_or_default();
        line.push('\n');
        for ((w, text), path) in w.iter_mut().zip([line, mot, mot_obb]).zip(paths) {
            w.write_all(text.as_bytes()).map_err(write_err(path))?;
        }
        Ok(())
    }

    /// `vis/`: the frame with every matched track's box, `#id class score`, and its trail (the centres of its last
    /// frames, moved with the camera when its motion was compensated).
    fn draw(
        &mut self,
        image: &str,
        picture: Option<RgbImage>,
        out: &FrameTracks,
        motion: Option<&CameraMotion>,
        (time, pts): (f64, Option<i64>),
    ) -> Result<(), SinkError> {
        if let Some(m) = motion {
            let (sn, cs) = m.rotation.sin_cos();
            for trail in self.trails.values_mut() {
                for p in trail.iter_mut() {
                    *p = (
                        m.scale * (cs * p.0 - sn * p.1) + m.tx,
                        m.scale * (sn * p.0 + cs * p.1) + m.ty,
                    );
                }
            }
        }
        for e in &out.ended {
            self.trails.remove(&e.id);
        }
        let names = &self.class_names;
        let mut boxes = Vec::new();
        for t in out.tracks.iter().filter(|t| t.state == TrackState::Tracked) {
            let trail = self.trails.entry(t.id).or_default();
            trail.push_back((f64::from(t.obb.cx), f64::from(t.obb.cy)));
            while trail.len() > TRAIL {
                trail.pop_front();
            }
            let class = names
                .get(&t.class_id)
                .cloned()
                .unwrap_or_else(|| t.class_id.to_string());
            boxes.push(nsod_types::Detection::oriented(
                t.class_id,
                format!("#{} {class}", t.id),
                t.score,
                t.obb,
            ));
        }
        let Some(mut img) = picture else {
            return Ok(());
        };
        for t in out.tracks.iter().filter(|t| t.state == TrackState::Tracked) {
            let color = nsod_detect::vis::class_color(t.class_id);
            if let Some(trail) = self.trails.get(&t.id) {
                let points: Vec<(f32, f32)> =
                    trail.iter().map(|p| (p.0 as f32, p.1 as f32)).collect();
                nsod_detect::vis::draw_polyline(&mut img, &points, color);
            }
        }
        nsod_detect::vis::draw_detections(&mut img, &boxes, 2);
        if let Some(w) = self.video_out.as_mut() {
            w.write(&img, time, pts)?;
        }
        if self.vis {
            self.inner.write_vis(image, &img)?;
        }
        Ok(())
    }

    /// Georeferenced frames: the tracks on the map (`nsod_raster::trajectories`).
    fn write_trajectories(&mut self) -> Result<(), SinkError> {
        let Some(georef) = self.geo.clone() else {
            return Ok(());
        };
        let tracks: Vec<nsod_raster::trajectories::Trajectory> = self
            .lives
            .iter()
            .filter_map(|(id, l)| {
                let class_id = voted(&l.class_votes);
                Some(nsod_raster::trajectories::Trajectory {
                    id: *id,
                    class: self
                        .class_names
                        .get(&class_id)
                        .cloned()
                        .unwrap_or_else(|| class_id.to_string()),
                    class_id,
                    first_time: l.first_time,
                    last_time: l.last_time,
                    frames: l.frames as u64,
                    vertices: l.geo_course.as_ref()?.points(),
                })
            })
            .collect();
        let dir = self.inner.writing_to().to_path_buf();
        let summary = nsod_raster::trajectories::write(
            &dir,
            &georef,
            &tracks,
            &self.geo_points,
            CourseConfig::default().min_duration,
        )
        .map_err(|e| SinkError::Io {
            path: dir.join(nsod_raster::trajectories::TRAJECTORIES_GEOJSON),
            source: std::io::Error::other(e),
        })?;
        self.inner.annotate(
            "trajectories",
            json!({
                "crs": summary.crs,
                "lines": summary.lines,
                "points": summary.points,
                "frames_in_another_crs": self.geo_other_crs,
                "outputs": [
                    nsod_raster::trajectories::TRAJECTORIES_GEOJSON,
                    nsod_raster::trajectories::POINTS_GEOJSON,
                    nsod_raster::trajectories::TRAJECTORIES_GPKG,
                ],
            }),
        );
        Ok(())
    }

    /// `--kg`: the knowledge graph over time, every confirmed track and the intervals of the relations between them.
    fn write_graph(&self) -> Result<(), SinkError> {
        let Some((timeline, _, true)) = &self.timeline else {
            return Ok(());
        };
        let nodes: Vec<nsod_kg::export::TrackNode> = self
            .lives
            .iter()
            .map(|(id, l)| {
                let class = voted(&l.class_votes);
                nsod_kg::export::TrackNode {
                    id: *id,
                    class: self
                        .class_names
                        .get(&class)
                        .cloned()
                        .unwrap_or_else(|| class.to_string()),
                    first: l.first_time,
                    last: l.last_time,
                    frames: l.frames as u64,
                }
            })
            .collect();
        let edges: Vec<nsod_kg::export::TrackEdge> = timeline
            .all()
            .into_iter()
            .map(|i| nsod_kg::export::TrackEdge {
                relation: i.relation.as_str().to_owned(),
                a: i.a,
                b: i.b,
                from: i.from,
                to: i.to,
            })
            .collect();
        let json =
            serde_json::to_string_pretty(&nsod_kg::export::temporal_node_link(&nodes, &edges))
                .unwrap_or_default();
        for (name, text) in [
            (layout::TRACK_GRAPH_JSON, json),
            (
                layout::TRACK_GRAPH_GRAPHML,
                nsod_kg::export::temporal_graphml(&nodes, &edges),
            ),
        ] {
            let path = self.file(name);
            nsod_types::formats::write_atomic(&path, |w| w.write_all(text.as_bytes())).map_err(
                |e| SinkError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                },
            )?;
        }
        Ok(())
    }

    fn write_summary(&mut self) -> Result<(), SinkError> {
        let path = self.file(layout::TRACK_SUMMARY);
        let mut reasons: HashMap<u64, &'static str> = HashMap::new();
        for e in &self.ended {
            reasons.insert(e.id, e.reason.as_str());
        }
        let mut s = String::from(
            "id,class_id,class,first_time,last_time,duration_s,frames,mean_speed_px_s,heading_deg,end,\
             ground_speed_px_s,ground_speed_m_s,ground_displacement_m,rule_factor,rule_reasons\n",
        );
        let verdicts = self.rules.as_ref().map(|r| r.verdicts());
        for (id, l) in &self.lives {
            let class = voted(&l.class_votes);
            let duration = l.last_time - l.first_time;
            let speed = if duration > 0.0 {
                l.path / duration
            } else {
                0.0
            };
            // The heading of the net displacement, when it is more than a pixel.
            let (dx, dy) = l.last_centre.map_or((0.0, 0.0), |(x, y, _)| {
                (x - l.first_centre.0, y - l.first_centre.1)
            });
            let heading = if dx.hypot(dy) > 1.0 {
                format!("{:.1}", dy.atan2(dx).to_degrees())
            } else {
                String::new()
            };
            let name = self
                .class_names
                .get(&class)
                .cloned()
                .unwrap_or_else(|| class.to_string());
            let c = l.course.summary();
            let opt = |v: Option<f64>, k: usize| v.map_or(String::new(), |v| format!("{v:.k$}"));
            let metres = |v: Option<f64>| v.and_then(|v| self.gsd.map(|g| v * g));
            let verdict = verdicts.and_then(|v| v.get(id));
            let rule_reasons = verdict.map_or(String::new(), |v| {
                v.changes
                    .iter()
                    .map(|c| format!("{} {}: {}", c.rule, c.factor, c.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            s.push_str(&format!(
                "{id},{class},{},{:.6},{:.6},{duration:.6},{},{speed:.3},{heading},{},{},{},{},{},{}\n",
                csv_field(&name),
                l.first_time,
                l.last_time,
                l.frames,
                reasons.get(id).copied().unwrap_or("finished"),
                opt(c.speed, 3),
                opt(metres(c.speed), 3),
                opt(metres(c.displacement), 3),
                verdict.map_or(String::new(), |v| format!("{}", v.factor)),
                csv_field(&rule_reasons),
            ));
        }
        nsod_types::formats::write_atomic(&path, |w| w.write_all(s.as_bytes())).map_err(|e| {
            SinkError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            }
        })
    }
}

/// The class of the strongest score-weighted vote (ties: the lower id).
fn voted(votes: &BTreeMap<u32, f64>) -> u32 {
    votes
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
        .map_or(0, |(c, _)| *c)
}

/// Two rounds of rules in one frame, as one report.
fn merge_ran(a: Option<RulesRan>, b: Option<RulesRan>) -> Option<RulesRan> {
    match (a, b) {
        (Some(a), Some(b)) => Some(RulesRan {
            boosts: a.boosts + b.boosts,
            penalties: a.penalties + b.penalties,
            seconds: match (a.seconds, b.seconds) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(y),
            },
            error: a.error.or(b.error),
        }),
        (a, b) => a.or(b),
    }
}

use nsod_types::formats::csv::quote as csv_field;

impl Sink for TrackSink {
    fn completed(&self) -> std::collections::BTreeSet<String> {
        self.inner.completed()
    }

    fn begin(&mut self, run: &RunInfo) -> Result<(), SinkError> {
        self.inner.begin(run)?;
        let open = |name: &str| {
            let path = self.file(name);
            std::fs::File::create(&path)
                .map(BufWriter::new)
                .map_err(write_err(path))
        };
        self.writers = Some([
            open(layout::TRACKS)?,
            open(layout::MOT)?,
            open(layout::MOT_OBB)?,
        ]);
        self.replay(&run.pipeline.config().raster)
    }

    fn image(&mut self, outcome: &ImageOutcome, image: Option<&RgbImage>) -> Result<(), SinkError> {
        self.inner.image(outcome, image)?;
        let dets = match (self.on, &outcome.rules) {
            (TrackOn::Raw, Some(r)) => &r.raw,
            _ => &outcome.detections,
        };
        if let Some(i) = self.clock.find(&outcome.image) {
            self.queue(
                i,
                &outcome.image,
                dets,
                (outcome.size.width, outcome.size.height),
                image,
                outcome.geo.as_ref().map(|g| &g.georef),
            );
            self.drain()?;
        }
        Ok(())
    }

    fn wants_image(&self) -> bool {
        self.cmc || self.draws() || self.inner.wants_image()
    }

    fn failed(&mut self, failure: &Failure) -> Result<(), SinkError> {
        self.inner.failed(failure)?;
        if let Some(i) = self.clock.find(&failure.image) {
            self.pending.insert(i, None);
            self.drain()?;
        }
        Ok(())
    }

    fn finish(&mut self, summary: RunSummary) -> Result<RunSummary, SinkError> {
        if !summary.interrupted {
            self.drain()?;
            let finished = self.tracker.finish();
            if self.rules.is_some() {
                let subjects: std::collections::BTreeSet<u64> = finished
                    .iter()
                    .map(|e| e.id)
                    .filter(|id| self.lives.contains_key(id))
                    .collect();
                if let Some((t, _, _)) = self.timeline.as_mut() {
                    for id in &subjects {
                        t.end_track(*id);
                    }
                }
                let time = self.last_time;
                let (verdicts, ran) = self.judge(&subjects, &[], time, true);
                self.totals.final_rules = ran;
                // The end-of-run record: the decisions about the tracks the sequence's end finished.
                let record = json!({"end": true, "time": time, "track_rules": verdicts});
                self.write_lines(&record, String::new(), String::new())?;
            }
            self.ended.extend(finished);
            let mut ended: BTreeMap<&'static str, usize> =
                EndReason::ALL.iter().map(|r| (r.as_str(), 0)).collect();
            for e in &self.ended {
                *ended.entry(e.reason.as_str()).or_default() += 1;
            }
            self.totals.ended = ended;
        }
        if let Some(ws) = self.writers.take() {
            let paths = [layout::TRACKS, layout::MOT, layout::MOT_OBB].map(|n| self.file(n));
            for (w, path) in ws.into_iter().zip(paths) {
                w.into_inner()
                    .map_err(|e| SinkError::Io {
                        path: path.clone(),
                        source: e.into_error(),
                    })?
                    .sync_all()
                    .map_err(write_err(path))?;
            }
        }
        if !summary.interrupted {
            self.write_summary()?;
            self.write_graph()?;
            self.write_trajectories()?;
        }
        if let Some(w) = self.video_out.take() {
            if summary.interrupted {
                w.abandon();
            } else {
                w.finish()?;
            }
        }
        let cfg = self.tracker.config();
        let outputs: Vec<&str> = [
            layout::TRACKS,
            layout::MOT,
            layout::MOT_OBB,
            layout::TRACK_SUMMARY,
        ]
        .into_iter()
        .chain(self.vis.then_some(layout::VIS_DIR))
        .chain(
            self.timeline
                .as_ref()
                .filter(|t| t.2)
                .map(|_| [layout::TRACK_GRAPH_JSON, layout::TRACK_GRAPH_GRAPHML])
                .into_iter()
                .flatten(),
        )
        .collect();
        self.inner.annotate(
            "tracking",
            json!({
                "frames": self.totals.frames,
                "failed_frames": self.totals.failed_frames,
                "replayed": self.totals.replayed,
                "update_seconds": self.totals.update_seconds,
                "cmc_seconds": self.totals.cmc_seconds,
                "tracks": self.totals.tracks,
                "ended": self.totals.ended,
                "geometry": cfg.geometry.to_string(),
                "cmc": self.cmc,
                "outputs": outputs,
            }),
        );
        self.inner.finish(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_sort_naturally_and_times_come_from_seqinfo_or_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let seq = dir.path().join("SEQ");
        std::fs::create_dir_all(seq.join("img1")).unwrap();
        for n in ["frame10.png", "frame2.png", "frame1.png", "notes.txt"] {
            std::fs::write(seq.join("img1").join(n), b"x").unwrap();
        }
        std::fs::write(
            seq.join("seqinfo.ini"),
            "[Sequence]\nframeRate=25\nseqLength=3\n",
        )
        .unwrap();
        let is_png = |p: &Path| p.extension().is_some_and(|e| e == "png");
        let s = sequence(&seq, None, is_png).unwrap();
        let names: Vec<&str> = s.frames.iter().map(|f| f.job.name.as_str()).collect();
        assert_eq!(names, ["frame1.png", "frame2.png", "frame10.png"]);
        assert_eq!(s.frames[2].time, 2.0 / 25.0);
        assert_eq!(s.times_from, "seqinfo.ini");
        assert_eq!(
            sequence(&seq, Some(10.0), is_png).unwrap().frames[1].time,
            0.1
        );
        // A list with times: relative to its folder, times from the first.
        let list = seq.join("frames.txt");
        std::fs::write(
            &list,
            "# t\nimg1/frame1.png 100.0\nimg1/frame2.png 100.25\n",
        )
        .unwrap();
        let s = sequence(&list, None, is_png).unwrap();
        assert_eq!(s.frames[1].time, 0.25);
        assert_eq!(s.frames[1].job.name, "img1/frame2.png");
        assert_eq!(s.times_from, "list");
        for (text, want) in [
            (
                "a.png 2\nb.png 1\n",
                ":2: time 1 s is before the previous frame's",
            ),
            (
                "a.png 2\nb.png\n",
                ":2: no time: give a time on every line or on none",
            ),
            (
                "../x.png\n",
                ":1: \"../x.png\": frames are named relative to the list's folder, without `..`",
            ),
            ("a.png\na.png\n", ":2: a.png is listed twice (line 1)"),
        ] {
            std::fs::write(&list, text).unwrap();
            let e = sequence(&list, None, is_png).unwrap_err().to_string();
            assert!(e.ends_with(want), "{e}");
        }
    }
}
