//! The compiled rule base and its application to one image.

use nsod_types::geometry::{intersection_area, rotated_intersection_area};
use nsod_types::outcome::{Adjustment, Change};
use nsod_types::relations::{Relation, RelationParams, extract};
use nsod_types::{ClassNames, Detection};
use std::collections::{BTreeMap, HashMap, HashSet};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `confidence_modifier(A, B, W)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairRule {
    pub a: String,
    pub b: String,
    pub weight: f64,
}

impl PairRule {
    pub fn head(&self) -> String {
        format!(
            "confidence_modifier({}, {}, {})",
            self.a, self.b, self.weight
        )
    }
}

/// `relation_modifier(S, Rel, O, W)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RelationRule {
    pub subject: String,
    pub relation: Relation,
    pub object: String,
    pub weight: f64,
}

impl RelationRule {
    pub fn head(&self) -> String {
        format!(
            "relation_modifier({}, {}, {}, {})",
            self.subject,
            self.relation.as_str(),
            self.object,
            self.weight
        )
    }
}

/// `size_range(Class, MinMetres, MaxMetres)`: the plausible long side of a class, in metres.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SizeRange {
    pub class: String,
    pub min_metres: f64,
    pub max_metres: f64,
}

impl SizeRange {
    pub fn head(&self) -> String {
        format!(
            "size_range({}, {}, {})",
            self.class, self.min_metres, self.max_metres
        )
    }
}

/// `speed_range(Class, MinMps, MaxMps)`: the plausible ground speed of a class's tracks, metres per second.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpeedRange {
    pub class: String,
    pub min_mps: f64,
    pub max_mps: f64,
}

impl SpeedRange {
    pub fn head(&self) -> String {
        format!(
            "speed_range({}, {}, {})",
            self.class, self.min_mps, self.max_mps
        )
    }
}

/// Factor for a track outside its class's speed range when the rule base has no `speed_penalty/1`.
pub const DEFAULT_SPEED_PENALTY: f64 = 0.5;

/// Factor for a detection outside its class's size range when the rule base has no `size_penalty/1`.
pub const DEFAULT_SIZE_PENALTY: f64 = 0.5;

pub use nsod_types::detection::class_atom;

/// A rule base compiled into lookup tables.
#[derive(Debug, Clone)]
pub struct DecisionTable {
    pub path: PathBuf,
    pub pair_rules: Vec<PairRule>,
    pub relation_rules: Vec<RelationRule>,
    pub params: RelationParams,
    /// Intersection / smaller area above which a penalty applies.
    pub overlap_ratio: f32,
    /// Size plausibility: `size_range/3` facts (active only with a ground sample distance).
    pub size_ranges: Vec<SizeRange>,
    /// Factor of an implausibly sized detection.
    pub size_penalty: f64,
    /// Speed plausibility of tracks: `speed_range/3` facts (`nsod track` only; they need a ground sample distance).
    pub speed_ranges: Vec<SpeedRange>,
    /// Factor of a track moving implausibly fast or slowly.
    pub speed_penalty: f64,
    /// Unknown classes, conflicting weights.
    pub warnings: Vec<String>,
    /// Time to load and compile.
    pub load_time: Duration,
    pairs: HashMap<(String, String), usize>,
    relations: HashMap<(String, Relation, String), usize>,
    /// Rule heads, formatted once.
    pair_heads: Vec<std::sync::Arc<str>>,
    relation_heads: Vec<std::sync::Arc<str>>,
    sizes: HashMap<String, usize>,
    size_heads: Vec<std::sync::Arc<str>>,
}

impl DecisionTable {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        path: &Path,
        pair_rules: Vec<PairRule>,
        relation_rules: Vec<RelationRule>,
        thresholds: &BTreeMap<String, f32>,
        size_ranges: Vec<SizeRange>,
        size_penalty: Option<f64>,
        classes: Option<&ClassNames>,
        load_time: Duration,
    ) -> Self {
        let mut warnings = Vec::new();
        let mut pairs = HashMap::new();
        for (i, r) in pair_rules.iter().enumerate() {
            let key = ordered(&r.a, &r.b);
            match pairs.get(&key) {
                Some(&j) => {
                    let first: &PairRule = &pair_rules[j];
                    if first.weight != r.weight {
                        warnings.push(format!(
                            "{} conflicts with {}; the first one is used",
                            r.head(),
                            first.head()
                        ));
                    }
                }
                None => {
                    pairs.insert(key, i);
                }
            }
        }
        let mut relations = HashMap::new();
        for (i, r) in relation_rules.iter().enumerate() {
            let key = (r.subject.clone(), r.relation, r.object.clone());
            match relations.get(&key) {
                Some(&j) => {
                    let first: &RelationRule = &relation_rules[j];
                    if first.weight != r.weight {
                        warnings.push(format!(
                            "{} conflicts with {}; the first one is used",
                            r.head(),
                            first.head()
                        ));
                    }
                }
                None => {
                    relations.insert(key, i);
                }
            }
        }
        let mut sizes = HashMap::new();
        for (i, r) in size_ranges.iter().enumerate() {
            match sizes.get(&r.class) {
                Some(&j) => {
                    let first: &SizeRange = &size_ranges[j];
                    if first != r {
                        warnings.push(format!(
                            "{} conflicts with {}; the first one is used",
                            r.head(),
                            first.head()
                        ));
                    }
                }
                None => {
                    sizes.insert(r.class.clone(), i);
                }
            }
        }
        if let Some(names) = classes {
            let known: HashSet<String> = names.as_slice().iter().map(|n| class_atom(n)).collect();
            let mut unknown: Vec<&str> = pair_rules
                .iter()
                .flat_map(|r| [r.a.as_str(), r.b.as_str()])
                .chain(
                    relation_rules
                        .iter()
                        .flat_map(|r| [r.subject.as_str(), r.object.as_str()]),
                )
                .chain(size_ranges.iter().map(|r| r.class.as_str()))
                .filter(|a| !known.contains(*a))
                .collect();
            unknown.sort_unstable();
            unknown.dedup();
            for u in unknown {
                warnings.push(format!(
                    "class {u} is not one of the model's classes; its rules never fire"
                ));
            }
        }
        let pair_rules_heads: Vec<std::sync::Arc<str>> = pair_rules
            .iter()
            .map(|r| PairRule::head(r).into())
            .collect();
        let relation_rules_heads: Vec<std::sync::Arc<str>> = relation_rules
            .iter()
            .map(|r| RelationRule::head(r).into())
            .collect();
        let size_heads: Vec<std::sync::Arc<str>> = size_ranges
            .iter()
            .map(|r| SizeRange::head(r).into())
            .collect();
        let get = |k: &str, default: f32| thresholds.get(k).copied().unwrap_or(default);
        let d = RelationParams::default();
        let params = RelationParams {
            near_factor: get("near_factor", d.near_factor),
            adjacent_factor: get("adjacent_factor", d.adjacent_factor),
            on_ratio: get("on_ratio", d.on_ratio),
        };
        Self {
            path: path.to_path_buf(),
            pair_rules,
            relation_rules,
            params,
            overlap_ratio: get("overlap_ratio", 0.5),
            size_ranges,
            size_penalty: size_penalty.unwrap_or(DEFAULT_SIZE_PENALTY),
            speed_ranges: Vec::new(),
            speed_penalty: DEFAULT_SPEED_PENALTY,
            warnings,
            load_time,
            pairs,
            relations,
            pair_heads: pair_rules_heads,
            relation_heads: relation_rules_heads,
            sizes,
            size_heads,
        }
    }

    /// The size range of a class atom.
    pub fn size_range(&self, class: &str) -> Option<&SizeRange> {
        self.sizes.get(class).map(|&i| &self.size_ranges[i])
    }

    /// Size plausibility: with a ground sample distance (metres per pixel), every detection whose long side is
    /// outside its class's `size_range/3` gets `size_penalty`. The range is closed: a long side exactly at a bound
    /// is plausible.
    pub fn size_changes(&self, dets: &[Detection], gsd: Option<f64>) -> Vec<Change> {
        let Some(gsd) = gsd.filter(|g| g.is_finite() && *g > 0.0) else {
            return Vec::new();
        };
        if self.size_ranges.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, d) in dets.iter().enumerate() {
            let Some(&k) = self.sizes.get(&class_atom(&d.class_name)) else {
                continue;
            };
            let r = &self.size_ranges[k];
            let long_px = match d.obb {
                Some(o) => f64::from(o.w.max(o.h)),
                None => f64::from(d.bbox.width().max(d.bbox.height())),
            };
            let metres = long_px * gsd;
            if metres < r.min_metres || metres > r.max_metres {
                out.push(Change {
                    action: "PENALTY",
                    rule: self.size_heads[k].clone(),
                    factor: self.size_penalty,
                    target: i,
                    other: None,
                    both: false,
                    reason: format!(
                        "long side {metres:.2} m ({long_px:.1} px at {gsd} m/px) is {} the {} range [{}, {}] m",
                        if metres < r.min_metres { "below" } else { "above" },
                        r.class,
                        r.min_metres,
                        r.max_metres
                    ),
                });
            }
        }
        out
    }

    /// Speed plausibility of one track (`class`: its atom; `mps`: its ground speed): `Some((factor, rule, reason))`
    /// when the speed is outside the class's `speed_range/3` (closed: a bound itself is plausible). The first range
    /// of a class counts.
    pub fn speed_change(&self, class: &str, mps: f64) -> Option<(f64, String, String)> {
        let r = self.speed_ranges.iter().find(|r| r.class == class)?;
        if mps >= r.min_mps && mps <= r.max_mps {
            return None;
        }
        Some((
            self.speed_penalty,
            r.head(),
            format!(
                "ground speed {mps:.2} m/s is {} the {} range [{}, {}] m/s",
                if mps < r.min_mps { "below" } else { "above" },
                r.class,
                r.min_mps,
                r.max_mps
            ),
        ))
    }

    /// [`DecisionTable::adjust`] with the size rules, given the image's ground sample distance.
    pub fn adjust_at(&self, dets: &[Detection], gsd: Option<f64>) -> Adjustment {
        let mut changes = self.changes(dets);
        changes.extend(self.size_changes(dets, gsd));
        Adjustment::from_changes(dets, changes)
    }

    /// The pair rule for two class atoms, in either order.
    pub fn pair_rule(&self, a: &str, b: &str) -> Option<&PairRule> {
        self.pairs.get(&ordered(a, b)).map(|&i| &self.pair_rules[i])
    }

    /// Applies the pair and relation rules to one image's detections (see the crate docs for the semantics); size
    /// rules need a ground sample distance ([`DecisionTable::adjust_at`]).
    pub fn adjust(&self, dets: &[Detection]) -> Adjustment {
        Adjustment::from_changes(dets, self.changes(dets))
    }

    /// The pair and relation rule applications of one image.
    pub fn changes(&self, dets: &[Detection]) -> Vec<Change> {
        // The classes some pair or relation rule names, interned: lookups below are integer-indexed over them, so
        // the tables are sized by the rule base, never by the classes an image happens to hold (predictions read
        // from files can name any number of classes).
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut intern = |a: &str| {
            let next = ids.len();
            ids.entry(a.to_owned()).or_insert(next);
        };
        for (a, b) in self.pairs.keys() {
            intern(a);
            intern(b);
        }
        for (a, _, b) in self.relations.keys() {
            intern(a);
            intern(b);
        }
        let rule_class: Vec<Option<usize>> = dets
            .iter()
            .map(|d| ids.get(&class_atom(&d.class_name)).copied())
            .collect();
        let n = ids.len();
        let mut pair_of = vec![None; n * n];
        let mut rel_of = vec![[None; 4]; n * n];
        for (a, &ia) in &ids {
            for (b, &ib) in &ids {
                pair_of[ia * n + ib] = self.pairs.get(&ordered(a, b)).copied();
                for (k, r) in Relation::ALL.iter().enumerate() {
                    rel_of[ia * n + ib][k] =
                        self.relations.get(&(a.clone(), *r, b.clone())).copied();
                }
            }
        }
        let has_rule = |ia: usize, ib: usize| {
            pair_of[ia * n + ib].is_some() || rel_of[ia * n + ib].iter().any(Option::is_some)
        };
        // Only detections whose class takes part in some rule are examined.
        let idx: Vec<usize> = (0..dets.len())
            .filter(|&i| {
                rule_class[i].is_some_and(|ci| (0..n).any(|c| has_rule(ci, c) || has_rule(c, ci)))
            })
            .collect();
        let sub_ids: Vec<usize> = idx.iter().filter_map(|&i| rule_class[i]).collect();
        let edges = if idx.len() == dets.len() {
            extract(dets, &self.params, |s, o| has_rule(sub_ids[s], sub_ids[o]))
        } else {
            let sub: Vec<Detection> = idx.iter().map(|&i| dets[i].clone()).collect();
            extract(&sub, &self.params, |s, o| has_rule(sub_ids[s], sub_ids[o]))
        };

        let mut changes = Vec::new();
        for e in &edges {
            let (s, o) = (idx[e.subject], idx[e.object]);
            let cell = sub_ids[e.subject] * n + sub_ids[e.object];
            let k = Relation::ALL
                .iter()
                .position(|r| *r == e.relation)
                .unwrap_or(0);
            if let Some(ri) = rel_of[cell][k] {
                let r = &self.relation_rules[ri];
                changes.push(Change {
                    action: action(r.weight),
                    rule: self.relation_heads[ri].clone(),
                    factor: r.weight,
                    target: s,
                    other: Some(o),
                    both: false,
                    reason: String::new(),
                });
            }
            // Pair rules are unordered: look at each pair once, from its lower index.
            if e.subject > e.object {
                continue;
            }
            let Some(pi) = pair_of[cell] else { continue };
            let rule = &self.pair_rules[pi];
            if rule.weight > 1.0 && e.relation == Relation::LocatedNear {
                let (first, second) = if canonical_less(&dets[s], &dets[o]) {
                    (s, o)
                } else {
                    (o, s)
                };
                changes.push(Change {
                    action: "BOOST",
                    rule: self.pair_heads[pi].clone(),
                    factor: rule.weight,
                    target: first,
                    other: Some(second),
                    both: true,
                    reason: String::new(),
                });
            } else if rule.weight < 1.0 && e.relation == Relation::Overlaps {
                let inter = if dets[s].obb.is_some() || dets[o].obb.is_some() {
                    rotated_intersection_area(&dets[s].as_oriented(), &dets[o].as_oriented())
                } else {
                    intersection_area(&dets[s].bbox, &dets[o].bbox)
                };
                let area = |d: &Detection| d.obb.map_or_else(|| d.bbox.area(), |b| b.area());
                let smaller = area(&dets[s]).min(area(&dets[o]));
                if smaller > 0.0 && inter / smaller > self.overlap_ratio {
                    // The lower original confidence is penalised; ties by a key that ignores input order.
                    let (low, high) = if canonical_less(&dets[s], &dets[o]) {
                        (s, o)
                    } else {
                        (o, s)
                    };
                    changes.push(Change {
                        action: "PENALTY",
                        rule: self.pair_heads[pi].clone(),
                        factor: rule.weight,
                        target: low,
                        other: Some(high),
                        both: false,
                        reason: String::new(),
                    });
                }
            }
        }
        changes
    }
}

fn action(w: f64) -> &'static str {
    if w >= 1.0 { "BOOST" } else { "PENALTY" }
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

/// Order by (score, class, box): lower first. Never by position in the input.
fn canonical_less(a: &Detection, b: &Detection) -> bool {
    let key = |d: &Detection| {
        (
            d.score, d.class_id, d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2,
        )
    };
    key(a).partial_cmp(&key(b)).is_some_and(|o| o.is_lt())
}
