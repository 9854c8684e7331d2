//! The dataset graph: class-level counts over many images, kept as counters so memory depends on the number of
//! class pairs only.

use nsod_types::Detection;
use nsod_types::detection::class_atom;
use nsod_types::relations::RelationEdge;
use std::collections::BTreeMap;

/// Co-occurrence per pair of objects in the same image (the reference pipeline's count).
pub const COOCCURS: &str = "cooccurs";
/// Co-occurrence per image: images that contain both classes.
pub const COOCCURS_IMAGES: &str = "cooccurs_images";

/// Counts aggregated over images. Class names are atoms (`large_vehicle`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetGraph {
    pub images: u64,
    /// Objects per class.
    pub class_objects: BTreeMap<String, u64>,
    /// Images containing the class.
    pub class_images: BTreeMap<String, u64>,
    /// `(relation, subject, object) -> count`. For the symmetric co-occurrence counts the pair is stored once with
    /// `subject <= object`.
    pub counts: BTreeMap<(String, String, String), u64>,
}

impl DatasetGraph {
    /// Adds one image: its detections and the relations extracted between them.
    pub fn add_image(&mut self, dets: &[Detection], edges: &[RelationEdge]) {
        self.images += 1;
        let atoms: Vec<String> = dets.iter().map(|d| class_atom(&d.class_name)).collect();
        let mut per_class: BTreeMap<&str, u64> = BTreeMap::new();
        for a in &atoms {
            *per_class.entry(a).or_default() += 1;
        }
        for (c, n) in &per_class {
            *self.class_objects.entry((*c).to_owned()).or_default() += n;
            *self.class_images.entry((*c).to_owned()).or_default() += 1;
        }
        let classes: Vec<(&str, u64)> = per_class.into_iter().collect();
        for (i, &(a, na)) in classes.iter().enumerate() {
            for &(b, nb) in &classes[i..] {
                let pairs = if a == b { na * (na - 1) / 2 } else { na * nb };
                if pairs > 0 {
                    self.bump(COOCCURS, a, b, pairs);
                    self.bump(COOCCURS_IMAGES, a, b, 1);
                }
            }
        }
        for e in edges {
            self.bump(e.relation.as_str(), &atoms[e.subject], &atoms[e.object], 1);
        }
    }

    fn bump(&mut self, relation: &str, s: &str, o: &str, by: u64) {
        *self
            .counts
            .entry((relation.to_owned(), s.to_owned(), o.to_owned()))
            .or_default() += by;
    }

    /// The count of one relation between two classes (co-occurrence in either order).
    pub fn count(&self, relation: &str, s: &str, o: &str) -> u64 {
        let (s, o) = if relation.starts_with(COOCCURS) && s > o {
            (o, s)
        } else {
            (s, o)
        };
        self.counts
            .get(&(relation.to_owned(), s.to_owned(), o.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Every relation type present.
    pub fn relation_types(&self) -> Vec<String> {
        let mut v: Vec<String> = self.counts.keys().map(|k| k.0.clone()).collect();
        v.dedup();
        v
    }

    /// Merges the counts of another graph (e.g. of another worker).
    pub fn merge(&mut self, other: &DatasetGraph) {
        self.images += other.images;
        for (k, v) in &other.class_objects {
            *self.class_objects.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.class_images {
            *self.class_images.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
    }
}
