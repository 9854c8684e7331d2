//! What the pipeline produces for one image, as plain data: the detections before and after the rules, every rule
//! application, the scene graph's relations, and how long each stage took. Sinks write it, telemetry records it,
//! servers return it; nothing here does I/O.

use crate::relations::RelationEdge;
use crate::{Detection, ImageSize};
use serde::Serialize;

/// The stages of the per-image pipeline (the `stage` label of `nsod_pipeline_stage_duration_seconds` and
/// `nsod_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading and decoding the image file (opening it, for rasters read window by window).
    Decode,
    /// Reading one slice of a raster read window by window (observed per slice, overlapped with the model runs).
    Read,
    /// Slicing, model runs, merging.
    Detect,
    /// The rules.
    Symbolic,
    /// The scene graph.
    Graph,
    /// Writing the outputs.
    Write,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Self::Decode,
        Self::Read,
        Self::Detect,
        Self::Symbolic,
        Self::Graph,
        Self::Write,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Read => "read",
            Self::Detect => "detect",
            Self::Symbolic => "symbolic",
            Self::Graph => "graph",
            Self::Write => "write",
        }
    }
}

/// One rule application in one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `BOOST` or `PENALTY`.
    pub action: &'static str,
    /// The head that fired, with its values: `confidence_modifier(ship, harbor, 1.25)`, or `adjust/3` for a scene
    /// rule. Shared with the rule base's table (one image can have millions of applications of one rule).
    pub rule: std::sync::Arc<str>,
    pub factor: f64,
    /// Index of the detection whose confidence the rule changed (for a boost, the first of the pair).
    pub target: usize,
    /// The other detection of the pair or relation (none for size and scene rules).
    pub other: Option<usize>,
    /// For pair boosts: both detections change.
    pub both: bool,
    /// Why, in words: the `Reason` of a scene rule, the measured size of a size rule; empty for pair and relation
    /// rules (their head says it all).
    pub reason: String,
}

/// The rules' result for one image.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Adjustment {
    /// New confidence per input detection (same order).
    pub scores: Vec<f32>,
    pub changes: Vec<Change>,
}

impl Adjustment {
    /// The new scores implied by a set of changes: per detection the strongest boost and the strongest penalty,
    /// `new = min(1, old x max(boosts) x min(penalties))`, whatever the order of the changes.
    pub fn from_changes(dets: &[Detection], changes: Vec<Change>) -> Self {
        let mut boost = vec![1.0f64; dets.len()];
        let mut penalty = vec![1.0f64; dets.len()];
        for c in &changes {
            apply(&mut boost, &mut penalty, c.target, c.factor);
            if c.both
                && let Some(o) = c.other
            {
                apply(&mut boost, &mut penalty, o, c.factor);
            }
        }
        let scores = dets
            .iter()
            .enumerate()
            .map(|(i, d)| ((f64::from(d.score) * boost[i] * penalty[i]).min(1.0)) as f32)
            .collect();
        Self { scores, changes }
    }
}

fn apply(boost: &mut [f64], penalty: &mut [f64], i: usize, w: f64) {
    if w > 1.0 {
        boost[i] = boost[i].max(w);
    } else if w < 1.0 {
        penalty[i] = penalty[i].min(w);
    }
}

/// How the detector went through one image.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DetectStats {
    /// Slices run (1 when not sliced; the full-image pass counts as a slice).
    pub slices: usize,
    /// Whether the image was sliced (and merged).
    pub sliced: bool,
    /// Detections before the merge across slices.
    pub merge_input: usize,
    /// Time of the merge across slices (0 when not sliced).
    pub merge_seconds: f64,
    /// Duration of each session run, and of the letterboxing before it.
    pub run_durations: Vec<f64>,
    pub preprocess_durations: Vec<f64>,
    /// Rasters read window by window: the time each slice's read took (overlapped with the model runs).
    pub read_durations: Vec<f64>,
    /// Slices skipped because they held no data (nodata or transparent).
    pub skipped_slices: usize,
    /// Bytes (decoded, all bands read) and blocks (of the raster's block layout, per band) read from the raster.
    pub bytes_read: u64,
    pub blocks_read: u64,
}

/// The rules' part of an outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RulesOutcome {
    /// The detector's own detections, in its order (what `adjustment` indexes).
    pub raw: Vec<Detection>,
    pub adjustment: Adjustment,
    /// The scene-rule query of this image, when the rule base has scene rules.
    pub scene: Option<SceneQuery>,
}

impl RulesOutcome {
    /// The order of the refined detections: indices into `raw` sorted by their new scores, best first (the stable
    /// sort that orders the refined detections, so `refined[k]` is `raw[refined_order()[k]]`).
    pub fn refined_order(&self) -> Vec<usize> {
        let s = &self.adjustment.scores;
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        order
    }

    /// The rules that changed each refined detection (`order`: [`RulesOutcome::refined_order`]), in the order of
    /// the changes: a change counts for its target and, for a pair boost, for the other detection too. One pass
    /// over the changes (a large raster has tens of thousands of detections and of changes).
    pub fn rules_per_refined(&self, order: &[usize]) -> Vec<Vec<String>> {
        let mut by_raw: Vec<Vec<String>> = vec![Vec::new(); self.raw.len()];
        for c in &self.adjustment.changes {
            if let Some(v) = by_raw.get_mut(c.target) {
                v.push(c.rule.to_string());
            }
            if let (true, Some(o)) = (c.both, c.other)
                && o != c.target
                && let Some(v) = by_raw.get_mut(o)
            {
                v.push(c.rule.to_string());
            }
        }
        order
            .iter()
            .map(|&i| by_raw.get_mut(i).map(std::mem::take).unwrap_or_default())
            .collect()
    }
}

/// One image's scene-rule query.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SceneQuery {
    pub seconds: f64,
    /// When it failed: the error type (`nsod_prolog_query_failures_total{error_type}`) and the message. The image
    /// then has the table's result only.
    pub error: Option<(String, String)>,
}

/// Time spent per stage on one image, in seconds (0 for a stage that did not run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimings {
    pub decode: f64,
    pub detect: f64,
    pub symbolic: f64,
    pub graph: f64,
}

impl StageTimings {
    /// The stages that ran, with their times.
    pub fn iter(&self) -> impl Iterator<Item = (Stage, f64)> {
        [
            (Stage::Decode, self.decode),
            (Stage::Detect, self.detect),
            (Stage::Symbolic, self.symbolic),
            (Stage::Graph, self.graph),
        ]
        .into_iter()
    }
}

/// Everything the pipeline learnt about one image.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageOutcome {
    /// The image's name in the run (its path relative to its input root, `/`-separated).
    pub image: String,
    pub size: ImageSize,
    /// The final detections, best first: refined by the rules when they ran.
    pub detections: Vec<Detection>,
    /// The rules' work, when a rule base ran.
    pub rules: Option<RulesOutcome>,
    /// Relations between `detections` (indices into it), when the knowledge graph is on.
    pub relations: Option<Vec<RelationEdge>>,
    pub detect: DetectStats,
    pub timings: StageTimings,
    /// Where the image lies on the map, for georeferenced rasters.
    pub geo: Option<crate::geo::ImageGeo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BBox, Detection};

    /// The rules of each refined detection are those of the changes that name it as their target, or as the other
    /// detection of a pair boost, in the changes' order (the definition, checked against its direct reading).
    #[test]
    fn rules_per_refined_detection() {
        let raw: Vec<Detection> = (0..7)
            .map(|i| Detection::new(0, "ship", 0.1 * i as f32, BBox::new(0.0, 0.0, 1.0, 1.0)))
            .collect();
        let change = |rule: &str, target, other, both| Change {
            action: "BOOST",
            rule: rule.into(),
            factor: 1.1,
            target,
            other,
            both,
            reason: String::new(),
        };
        let changes = vec![
            change("a", 2, Some(5), true),
            change("b", 5, None, false),
            change("c", 0, Some(2), false),
            change("d", 6, Some(6), true),
            change("e", 2, Some(3), true),
        ];
        let scores = vec![0.9, 0.1, 0.5, 0.2, 0.3, 0.8, 0.4];
        let r = RulesOutcome {
            raw,
            adjustment: Adjustment { scores, changes },
            scene: None,
        };
        let order = r.refined_order();
        assert_eq!(order, vec![0, 5, 2, 6, 4, 3, 1]);
        let direct: Vec<Vec<String>> = order
            .iter()
            .map(|&i| {
                r.adjustment
                    .changes
                    .iter()
                    .filter(|c| c.target == i || (c.both && c.other == Some(i)))
                    .map(|c| c.rule.to_string())
                    .collect()
            })
            .collect();
        let got = r.rules_per_refined(&order);
        assert_eq!(got, direct);
        assert_eq!(got[2], vec!["a", "e"]);
        assert_eq!(got[0], vec!["c"]);
        assert_eq!(got[1], vec!["a", "b"]);
        assert_eq!(got[3], vec!["d"]);
    }
}
