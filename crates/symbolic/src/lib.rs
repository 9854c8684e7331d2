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
//! Every factor is computed from the *original* confidences; per detection the strongest boost and the strongest
//! penalty are combined: `new = min(1, old x max(boosts) x min(penalties))`. The result does not depend on the
//! order of the detections (the reference pipeline updated in place while looping, so its result did).

mod engine;
pub mod report;
mod table;

pub use engine::{LoadLimits, count_solutions, load_rules};
pub use table::{Adjustment, Change, DecisionTable, PairRule, RelationRule, class_atom};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SymbolicError {
    /// The rules file cannot be read.
    #[error("rules {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// The rules file is not valid Prolog.
    #[error("rules {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// Loading or a query failed (exception, inference limit, time limit).
    #[error("rules {}: {message}", path.display())]
    Load { path: PathBuf, message: String },
    /// A rule has an invalid value.
    #[error("rules {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl SymbolicError {
    /// A short type for metrics labels (`nsod_prolog_query_failures_total{error_type}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Syntax { .. } => "syntax",
            Self::Load { message, .. }
                if message.contains("inference") || message.contains("did not finish") =>
            {
                "limit"
            }
            Self::Load { .. } => "exception",
            Self::Invalid { .. } => "invalid",
        }
    }
}
