//! Rules over tracks for `nsod track`: the rule base's `adjust_track/3` (in the sandboxed worker) and
//! `speed_range/3` (in Rust, from the decision table) judge each track when it ends, the tracks still open at the
//! end of the run, and with `--track-rules-every S` every open track each S seconds of the sequence's time.
//!
//! # How a track's factor is made and applied
//!
//! The answers for one track (every `adjust_track(Id, Factor, Reason)` and a `speed_range/3` penalty) combine like
//! the rules of one detection: `factor = max(1, strongest boost) × min(1, strongest penalty)`. The factor applies
//! to every detection of the track written *after* it was decided: `score = min(1, refined score × factor)` in
//! `tracks.jsonl` (with `track_factor`) and `mot.txt`; frames already written are not rewritten. The decision itself
//! is written with the track id and the reasons in the `track_rules` of the frame where it was made (the end-of-run
//! record for the tracks the sequence's end finished) and in `track_summary.csv` (the last decision of each track).
//!
//! The facts of one query are the tracks being judged, the open tracks beside them and the tracks they have a
//! relation with (context), and the time intervals of the relations that involve the judged tracks. Answers about
//! context tracks are not kept: each track is judged on its own turn.

use nsod_symbolic::protocol::{TrackFact, TrackRelationFact, TrackRequest};
use nsod_symbolic::{DecisionTable, RuleBase, SceneSession, SymbolicError};
use nsod_track::timeline::Interval;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One rule's answer about a track.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackChange {
    /// `adjust_track/3` or the `speed_range/3` fact that applied.
    pub rule: String,
    pub factor: f64,
    pub reason: String,
}

/// What the rules decided about one track.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackVerdict {
    pub id: u64,
    /// Seconds into the sequence when it was decided.
    pub time: f64,
    /// The track had ended (or the sequence had): the decision is final.
    #[serde(rename = "final")]
    pub last: bool,
    pub factor: f64,
    pub changes: Vec<TrackChange>,
}

/// What one round of rules did, for the front end's metrics and warnings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RulesRan {
    pub boosts: usize,
    pub penalties: usize,
    /// Seconds of the `adjust_track/3` query (`None`: no query, only speed ranges).
    pub seconds: Option<f64>,
    /// The query failed: error type (`nsod_prolog_query_failures_total`) and message. The tracks are then judged
    /// by the speed ranges alone.
    pub error: Option<(&'static str, String)>,
}

/// The rules over tracks of one run.
pub struct TrackRules {
    session: Option<SceneSession>,
    table: DecisionTable,
    /// Metres per pixel of the ground frame.
    pub gsd: Option<f64>,
    every: Option<f64>,
    last_round: Option<f64>,
    verdicts: BTreeMap<u64, TrackVerdict>,
}

impl std::fmt::Debug for TrackRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackRules")
            .field("gsd", &self.gsd)
            .field("every", &self.every)
            .field("verdicts", &self.verdicts.len())
            .finish_non_exhaustive()
    }
}

/// Why rules over tracks cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrackRulesError {
    #[error(
        "{}: speed_range/3 needs a ground sample distance to turn pixels into metres: give --gsd (metres per pixel) or georeferenced frames",
        path.display()
    )]
    NoGsd { path: std::path::PathBuf },
}

impl TrackRules {
    /// The rules over tracks of `rules` (`None` when it has none that can apply); `gsd` in metres per pixel,
    /// `every` the seconds between rounds over the open tracks. Without a GSD, `speed_range/3` is refused when
    /// `explicit` (the user named the rule base), and inactive otherwise (the default rule base: size ranges are
    /// inactive without a GSD too).
    pub fn new(
        rules: &RuleBase,
        gsd: Option<f64>,
        every: Option<f64>,
        explicit: bool,
    ) -> Result<Option<Self>, TrackRulesError> {
        let mut table = rules.table.clone();
        if !table.speed_ranges.is_empty() && gsd.is_none() {
            if explicit {
                return Err(TrackRulesError::NoGsd {
                    path: rules.table.path.clone(),
                });
            }
            table.speed_ranges.clear();
        }
        let session = rules.track_session();
        if session.is_none() && table.speed_ranges.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            session,
            table,
            gsd,
            every: every.filter(|e| *e > 0.0),
            last_round: None,
            verdicts: BTreeMap::new(),
        }))
    }

    /// The factor decided for a track so far.
    pub fn factor(&self, id: u64) -> Option<f64> {
        self.verdicts.get(&id).map(|v| v.factor)
    }

    /// The last decision about each track.
    pub fn verdicts(&self) -> &BTreeMap<u64, TrackVerdict> {
        &self.verdicts
    }

    /// Whether a round over the open tracks is due at `time` (with `--track-rules-every`).
    pub fn round_due(&mut self, time: f64) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        match self.last_round {
            None => {
                self.last_round = Some(time);
                false
            }
            Some(t) if time - t >= every => {
                self.last_round = Some(time);
                true
            }
            Some(_) => false,
        }
    }

    /// Judges `subjects` at `time` (`last`: they have ended), with `open` tracks as context and the relation
    /// intervals that involve the subjects; `fact(id)` gives a track's facts. Returns the new decisions (tracks with
    /// at least one change) and what ran.
    pub fn judge(
        &mut self,
        subjects: &BTreeSet<u64>,
        open: &[u64],
        intervals: &[Interval],
        (time, last): (f64, bool),
        fact: impl Fn(u64) -> Option<TrackFact>,
    ) -> (Vec<TrackVerdict>, RulesRan) {
        let mut ran = RulesRan::default();
        if subjects.is_empty() {
            return (Vec::new(), ran);
        }
        let ids: BTreeSet<u64> = subjects
            .iter()
            .copied()
            .chain(open.iter().copied())
            .chain(intervals.iter().flat_map(|i| [i.a, i.b]))
            .collect();
        let facts: Vec<TrackFact> = ids.iter().filter_map(|&id| fact(id)).collect();
        let mut changes: BTreeMap<u64, Vec<TrackChange>> = BTreeMap::new();
        if let Some(session) = self.session.as_mut() {
            let req = TrackRequest {
                gsd: self.gsd,
                tracks: facts.clone(),
                relations: intervals
                    .iter()
                    .map(|i| TrackRelationFact {
                        relation: i.relation.as_str().to_owned(),
                        a: i.a,
                        b: i.b,
                        from: i.from,
                        to: i.to,
                    })
                    .collect(),
            };
            match session.track_answers(req) {
                Ok(answers) => {
                    ran.seconds = session.last_timing.map(|t| t.1);
                    for a in answers.into_iter().filter(|a| subjects.contains(&a.id)) {
                        changes.entry(a.id).or_default().push(TrackChange {
                            rule: "adjust_track/3".into(),
                            factor: a.factor,
                            reason: a.reason,
                        });
                    }
                }
                Err(e) => ran.error = Some((e.kind(), error_text(&e))),
            }
        }
        for f in facts.iter().filter(|f| subjects.contains(&f.id)) {
            if let Some(mps) = f.speed_m
                && let Some((factor, rule, reason)) = self.table.speed_change(&f.class, mps)
            {
                changes.entry(f.id).or_default().push(TrackChange {
                    rule,
                    factor,
                    reason,
                });
            }
        }
        let mut out = Vec::new();
        for (id, changes) in changes {
            let boost = changes
                .iter()
                .map(|c| c.factor)
                .fold(1.0f64, |a, b| a.max(b));
            let penalty = changes
                .iter()
                .map(|c| c.factor)
                .fold(1.0f64, |a, b| a.min(b));
            for c in &changes {
                if c.factor > 1.0 {
                    ran.boosts += 1;
                } else if c.factor < 1.0 {
                    ran.penalties += 1;
                }
            }
            let v = TrackVerdict {
                id,
                time,
                last,
                factor: boost * penalty,
                changes,
            };
            self.verdicts.insert(id, v.clone());
            out.push(v);
        }
        (out, ran)
    }
}

fn error_text(e: &SymbolicError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
