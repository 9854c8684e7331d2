//! nsod's symbolic stage: domain knowledge written as Prolog rules raises the confidence of detections that make
//! sense together and lowers implausible ones, and every change is explained.
//!
//! * [`load_rules`] consults a rule base with scryer-prolog on a dedicated thread (the machine is not `Send`),
//!   with `catch/3` around everything, an inference limit on every query and a wall-clock limit on the whole load,
//!   and compiles the rules into a [`DecisionTable`] of plain Rust data. Prolog is queried once per run, never per
//!   detection.
//! * [`DecisionTable::adjust`] applies the table to one image in pure Rust over the shared relation extractor
//!   (`nsod_types::relations`), which uses a spatial grid.
//! * [`report`]: the explanation rows (`report.csv`, `report.jsonl`).
//!
//! # Semantics
//!
//! Class names map to atoms by lower-casing and joining words with `_` (`large vehicle` -> `large_vehicle`).
//!
//! * `confidence_modifier(A, B, W)`, unordered pair, `W > 1` (boost): when the centres of an `A` and a `B` are closer
//!   than `near_factor` x the mean of their diagonals, both are multiplied by `W`.
//! * `confidence_modifier(A, B, W)`, `W < 1` (penalty): when intersection / smaller area > `overlap_ratio`, the
//!   detection with the lower original confidence is multiplied by `W` (ties broken by class, then box, never by
//!   input order).
//! * `relation_modifier(S, Rel, O, W)`: when the extractor finds `S Rel O`, the subject is multiplied by `W`.
//!
//! * `adjust(Id, Factor, Reason)`: scene rules, one query per image over the image's facts (`detection/8`, ...).
//! * Over tracks (`nsod track`): `adjust_track(Id, Factor, Reason)` over `track/5`, `track_speed_px/2`,
//!   `track_speed_m/2`, `track_heading/2`, `track_displacement_px/2`, `track_displacement_m/2`,
//!   `track_relation/5` ([`SceneSession::track_answers`]), and `speed_range(Class, MinMps, MaxMps)` with
//!   `speed_penalty/1` ([`DecisionTable::speed_change`]).
//!
//! Every factor is computed from the *original* confidences; per detection the strongest boost and the strongest
//! penalty are combined: `new = min(1, old x max(boosts) x min(penalties))`. The result does not depend on the
//! order of the detections (the reference pipeline updated in place while looping, so its result did).

pub mod allow;
mod engine;
mod host;
pub mod protocol;
pub mod report;
pub mod sandbox;
mod table;
pub mod worker;

pub use allow::{BUILTINS, LIBRARIES, SCENE};
pub use engine::{
    ImageContext, MAX_RULES_BYTES, RuleBase, SceneRules, SceneSession, count_solutions, load_rules,
    probe,
};
pub use host::{Limits, Sandbox, WorkerCommand};
pub use nsod_types::outcome::{Adjustment, Change};
pub use table::{
    DEFAULT_SIZE_PENALTY, DEFAULT_SPEED_PENALTY, DecisionTable, PairRule, RelationRule, SizeRange,
    SpeedRange, class_atom,
};

use std::path::PathBuf;

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum SymbolicError {
    /// The rules file cannot be read.
    #[error("rules {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The rules file is not valid Prolog.
    #[error("rules {}: {}{message}", path.display(), at_line(line))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A directive or goal outside the allow-list.
    #[error("rules {}: {}{message}", path.display(), at_line(line))]
    Refused {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// Loading or a query raised an error.
    #[error("rules {}: {}{message}", path.display(), at_line(line))]
    Load {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// An inference, time, memory or CPU limit was reached.
    #[error("rules {}: {message}", path.display())]
    Limit { path: PathBuf, message: String },
    /// A rule has an invalid value.
    #[error("rules {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// The rules worker died (crash, abort, signal).
    #[error("rules {}: {message}", path.display())]
    Crashed { path: PathBuf, message: String },
    /// The rules worker could not be started.
    #[error("rules {}: cannot start the rules worker", path.display())]
    Worker {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SymbolicError {
    /// A short type for metrics labels (`nsod_prolog_query_failures_total{error_type}`); one of
    /// [`SymbolicError::KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Syntax { .. } => "syntax",
            Self::Refused { .. } => "refused",
            Self::Load { .. } => "exception",
            Self::Limit { .. } => "limit",
            Self::Invalid { .. } => "invalid",
            Self::Crashed { .. } | Self::Worker { .. } => "crash",
        }
    }

    /// Every value [`SymbolicError::kind`] can return.
    pub const KINDS: [&'static str; 7] = [
        "io",
        "syntax",
        "refused",
        "exception",
        "limit",
        "invalid",
        "crash",
    ];
}
