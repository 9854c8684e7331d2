//! Messages between nsod and its rules worker (one JSON object per line on the worker's stdin and stdout).

use crate::table::{PairRule, RelationRule, SizeRange, SpeedRange};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits the worker applies to itself before it reads the rule base.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct WorkerLimits {
    /// Address-space limit (`RLIMIT_AS`), bytes.
    pub memory_bytes: u64,
    /// CPU-time limit (`RLIMIT_CPU`), seconds.
    pub cpu_seconds: u64,
    /// Inference limit of the load and of each compile query.
    pub load_inferences: u64,
    /// Inference limit of each per-image scene query.
    pub query_inferences: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Apply the sandbox, try what it must prevent (running a program, opening a socket, reading a file and, when
    /// `scratch` names a folder, creating a file in it) and report; then exit.
    Probe {
        limits: WorkerLimits,
        scratch: Option<String>,
    },
    /// Sandbox, read, check, load and compile a rule base; then answer scene and count requests until stdin closes.
    Load { text: String, limits: WorkerLimits },
    /// Run `adjust/3` on one image.
    Scene(SceneRequest),
    /// Count the solutions of `Name(_, ..., _)` with `arity` arguments.
    Count { name: String, arity: usize },
    /// Run `adjust_track/3` on a set of tracks.
    Tracks(TrackRequest),
}

/// Facts about tracks for `adjust_track/3`: the tracks being judged and the tracks alive beside them (context),
/// with the time intervals of the spatial relations between them. Speeds, displacements and headings are measured
/// in the ground frame (see `nsod_track::course`); `None` where they are not defined (a track too short, no GSD).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct TrackRequest {
    pub gsd: Option<f64>,
    pub tracks: Vec<TrackFact>,
    pub relations: Vec<TrackRelationFact>,
}

/// `track(Id, Class, FirstTime, LastTime, Frames)` and the measured course of one track.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrackFact {
    pub id: u64,
    pub class: String,
    pub first: f64,
    pub last: f64,
    pub frames: u64,
    pub speed_px: Option<f64>,
    pub speed_m: Option<f64>,
    pub heading: Option<f64>,
    pub displacement_px: Option<f64>,
    pub displacement_m: Option<f64>,
}

/// `track_relation(Rel, A, B, From, To)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrackRelationFact {
    pub relation: String,
    pub a: u64,
    pub b: u64,
    pub from: f64,
    pub to: f64,
}

/// One `adjust_track(Id, Factor, Reason)` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrackAnswer {
    pub id: u64,
    pub factor: f64,
    pub reason: String,
}

/// One image's facts, in canonical detection order (ids 0..n).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct SceneRequest {
    pub width: u32,
    pub height: u32,
    pub gsd: Option<f64>,
    /// `detection(Id, Class, Conf, Cx, Cy, W, H, Angle)` without the id (the index is the id).
    pub detections: Vec<SceneDetection>,
    /// Per detection, `(relation index, other id)` where it is the subject.
    pub relations: Vec<Vec<(u8, u32)>>,
    /// `class_count(Class, N)` for every model class (0 included) and every class present.
    pub class_counts: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SceneDetection {
    pub class: String,
    pub conf: f32,
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
    pub angle: f32,
}

/// One `adjust(Id, Factor, Reason)` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SceneAnswer {
    pub id: usize,
    pub factor: f64,
    pub reason: String,
}

/// What the worker could enforce on itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxReport {
    /// `execve`, process creation, sockets and file writes refused by a seccomp filter.
    pub seccomp: Result<(), String>,
    /// Landlock: `Ok(description)` when enforced (fully or partly), `Err(reason)` when the kernel lacks it.
    pub landlock: Result<String, String>,
    /// Resource limits set (`RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_FSIZE`, `RLIMIT_NOFILE`, `RLIMIT_CORE`).
    pub rlimits: Result<(), String>,
    /// For a probe: each forbidden action tried after confinement, and whether it was blocked.
    #[serde(default)]
    pub checks: Vec<(String, bool)>,
}

/// A rule base compiled into plain data.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Compiled {
    pub pairs: Vec<PairRule>,
    pub relations: Vec<RelationRule>,
    pub thresholds: BTreeMap<String, f32>,
    pub size_ranges: Vec<SizeRange>,
    pub size_penalty: Option<f64>,
    pub speed_ranges: Vec<SpeedRange>,
    pub speed_penalty: Option<f64>,
    /// `adjust/3` is defined.
    pub scene_rules: bool,
    /// `adjust_track/3` is defined.
    #[serde(default)]
    pub track_rules: bool,
    /// Relations scene rules ask about (`None`: any).
    pub relations_used: Option<Vec<String>>,
    pub clauses: usize,
    pub sandbox: Option<SandboxReport>,
}

/// Why the worker refused or failed a request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    Refused,
    Load,
    Limit,
    Invalid,
    Protocol,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerError {
    pub kind: ErrorKind,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Sandbox(SandboxReport),
    Loaded(Compiled),
    Adjusted {
        answers: Vec<SceneAnswer>,
        /// Time the worker spent building the query text from the request.
        build_seconds: f64,
        /// Time scryer took for the query (reading the scene term and running adjust/3).
        query_seconds: f64,
    },
    Counted(usize),
    TrackAdjusted {
        answers: Vec<TrackAnswer>,
        query_seconds: f64,
    },
    Error(WorkerError),
}
