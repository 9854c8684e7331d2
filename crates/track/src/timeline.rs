//! Spatial relations between tracks over time: the per-frame relations of the matched tracks' detections
//! (nsod's one extractor, `nsod_types::relations`) merged into intervals `Rel(A, B)` from `from` to `to` seconds.
//!
//! An interval goes on while the relation holds in every frame where both tracks are matched; a frame where one of
//! them is lost (unmatched, its box only a prediction) neither extends nor breaks it; a frame where both are matched
//! and the relation does not hold closes it, as does the end of either track. Relations are reported as the
//! extractor gives them: symmetric ones (`located_near`, `overlaps`) in both directions.

use nsod_types::relations::Relation;
use std::collections::{BTreeMap, BTreeSet};

/// `relation(a, b)` held from `from` to `to` seconds (both the times of frames where it was seen).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub relation: Relation,
    pub a: u64,
    pub b: u64,
    pub from: f64,
    pub to: f64,
}

/// The intervals of a sequence, built frame by frame.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    open: BTreeMap<(u64, u64, Relation), (f64, f64)>,
    closed: Vec<Interval>,
}

impl Timeline {
    /// One frame at `time`: `holds` the relations between tracks matched in it (ids), `matched` those tracks.
    pub fn frame(&mut self, time: f64, holds: &[(Relation, u64, u64)], matched: &BTreeSet<u64>) {
        let now: BTreeSet<(u64, u64, Relation)> =
            holds.iter().map(|&(r, a, b)| (a, b, r)).collect();
        let mut ended = Vec::new();
        for (key, span) in self.open.iter_mut() {
            if now.contains(key) {
                span.1 = time;
            } else if matched.contains(&key.0) && matched.contains(&key.1) {
                ended.push(*key);
            }
        }
        for key in ended {
            self.close(key);
        }
        for key in now {
            self.open.entry(key).or_insert((time, time));
        }
    }

    fn close(&mut self, key: (u64, u64, Relation)) {
        if let Some((from, to)) = self.open.remove(&key) {
            self.closed.push(Interval {
                relation: key.2,
                a: key.0,
                b: key.1,
                from,
                to,
            });
        }
    }

    /// Track `id` ended: its open intervals close.
    pub fn end_track(&mut self, id: u64) {
        let keys: Vec<_> = self
            .open
            .keys()
            .filter(|k| k.0 == id || k.1 == id)
            .copied()
            .collect();
        for k in keys {
            self.close(k);
        }
    }

    /// Every interval that involves one of `ids`, closed or still open (up to its last frame), in (a, b, relation,
    /// from) order.
    pub fn involving(&self, ids: &BTreeSet<u64>) -> Vec<Interval> {
        let mut v: Vec<Interval> = self
            .closed
            .iter()
            .copied()
            .chain(self.open.iter().map(|(k, &(from, to))| Interval {
                relation: k.2,
                a: k.0,
                b: k.1,
                from,
                to,
            }))
            .filter(|i| ids.contains(&i.a) || ids.contains(&i.b))
            .collect();
        v.sort_by(|x, y| {
            (x.a, x.b, x.relation)
                .cmp(&(y.a, y.b, y.relation))
                .then(x.from.total_cmp(&y.from))
        });
        v
    }

    /// Every interval, closed or open, in (a, b, relation, from) order.
    pub fn all(&self) -> Vec<Interval> {
        let ids: BTreeSet<u64> = self
            .closed
            .iter()
            .flat_map(|i| [i.a, i.b])
            .chain(self.open.keys().flat_map(|k| [k.0, k.1]))
            .collect();
        self.involving(&ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_survive_lost_frames_and_close_when_both_are_seen_apart() {
        let mut t = Timeline::default();
        let both: BTreeSet<u64> = [1, 2].into();
        let only1: BTreeSet<u64> = [1].into();
        let near = (Relation::LocatedNear, 1, 2);
        t.frame(0.0, &[near], &both);
        t.frame(0.1, &[near], &both);
        // Track 2 lost at 0.2: the interval neither grows nor ends.
        t.frame(0.2, &[], &only1);
        t.frame(0.3, &[near], &both);
        // Both seen, apart: it closes at 0.3.
        t.frame(0.4, &[], &both);
        t.frame(0.5, &[near], &both);
        t.end_track(2);
        let all = t.all();
        let spans: Vec<(f64, f64)> = all.iter().map(|i| (i.from, i.to)).collect();
        assert_eq!(spans, [(0.0, 0.3), (0.5, 0.5)]);
        assert!(
            all.iter()
                .all(|i| i.relation == Relation::LocatedNear && i.a == 1)
        );
        assert!(t.involving(&[3].into()).is_empty());
    }
}
