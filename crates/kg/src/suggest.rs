//! Rule suggestions from the dataset graph: the loop the reference pipeline left manual.
//!
//! For each pair of classes, `lift = images with both x images / (images with A x images with B)`, the ratio of
//! how often the classes appear together to how often they would if independent.
//!
//! * boost: at least `min_support` images with both and `lift >= boost_lift`; weight `1 + 0.1 log2(lift)`, at most
//!   1.5.
//! * penalty: both classes frequent enough that independence predicts at least `min_expected` images with both,
//!   but they share at most `penalty_fraction` of that; weight 0.8.

use crate::dataset::{COOCCURS_IMAGES, DatasetGraph};
use std::fmt::Write;

/// Thresholds of the suggestions.
#[derive(Debug, Clone, Copy)]
pub struct SuggestOptions {
    pub min_support: u64,
    pub boost_lift: f64,
    pub min_expected: f64,
    pub penalty_fraction: f64,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        Self {
            min_support: 5,
            boost_lift: 2.0,
            min_expected: 10.0,
            penalty_fraction: 0.1,
        }
    }
}

/// One proposed `confidence_modifier/3` fact with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub a: String,
    pub b: String,
    pub weight: f64,
    pub lift: f64,
    pub together: u64,
    pub expected: f64,
}

/// The proposals, strongest evidence first.
pub fn suggest(g: &DatasetGraph, o: &SuggestOptions) -> Vec<Suggestion> {
    let n = g.images as f64;
    if n == 0.0 {
        return Vec::new();
    }
    let classes: Vec<(&String, u64)> = g.class_images.iter().map(|(c, k)| (c, *k)).collect();
    let mut out = Vec::new();
    for (i, &(a, ia)) in classes.iter().enumerate() {
        for &(b, ib) in &classes[i + 1..] {
            let together = g.count(COOCCURS_IMAGES, a, b);
            let expected = ia as f64 * ib as f64 / n;
            if expected <= 0.0 {
                continue;
            }
            let lift = together as f64 / expected;
            let weight = if together >= o.min_support && lift >= o.boost_lift {
                (1.0 + 0.1 * lift.log2()).min(1.5)
            } else if expected >= o.min_expected
                && (together as f64) <= o.penalty_fraction * expected
            {
                0.8
            } else {
                continue;
            };
            out.push(Suggestion {
                a: a.clone(),
                b: b.clone(),
                weight: (weight * 100.0).round() / 100.0,
                lift,
                together,
                expected,
            });
        }
    }
    out.sort_by(|x, y| {
        (y.weight - 1.0)
            .abs()
            .total_cmp(&(x.weight - 1.0).abs())
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    out
}

/// The proposals as a Prolog file that `nsod rules check` accepts, with the statistic beside each fact.
pub fn to_prolog(g: &DatasetGraph, s: &[Suggestion], o: &SuggestOptions) -> String {
    let mut p = String::new();
    let _ = writeln!(
        p,
        "% Rule suggestions from {} images (nsod rules suggest).",
        g.images
    );
    let _ = writeln!(
        p,
        "% lift = images with both x images / (images with A x images with B). Boost: >= {} images together and lift >= {};",
        o.min_support, o.boost_lift
    );
    let _ = writeln!(
        p,
        "% penalty: independence predicts >= {} images together but at most {} of that is seen.",
        o.min_expected, o.penalty_fraction
    );
    let _ = writeln!(
        p,
        "% Review before use; copy the ones you accept into your rule base."
    );
    let _ = writeln!(p, ":- discontiguous(confidence_modifier/3).");
    for x in s {
        let _ = writeln!(
            p,
            "confidence_modifier({}, {}, {:.2}).  % lift {:.2}: {} images together, {:.1} expected",
            nsod_types::quote::prolog_atom(&x.a),
            nsod_types::quote::prolog_atom(&x.b),
            x.weight,
            x.lift,
            x.together,
            x.expected
        );
    }
    p
}
