//! The scene graph of one image.

use nsod_types::Detection;
use nsod_types::relations::{Relation, RelationEdge, RelationParams, extract};
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::json;

/// A detection as a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub class_name: String,
    pub score: f32,
    pub detection: usize,
}

/// A relation as an edge, with its weight (distance, gap, ratio or IoU; see `nsod_types::relations`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    pub relation: Relation,
    pub weight: f32,
}

/// Nodes are the image's detections (node index = detection index), edges the relations between them.
#[derive(Debug, Clone)]
pub struct SceneGraph {
    pub graph: DiGraph<Node, Edge>,
}

impl SceneGraph {
    /// Builds the graph of one image with the shared relation extractor (all class pairs).
    pub fn build(dets: &[Detection], params: &RelationParams) -> Self {
        Self::from_edges(dets, &extract(dets, params, |_, _| true))
    }

    /// Builds the graph from relations already extracted.
    pub fn from_edges(dets: &[Detection], edges: &[RelationEdge]) -> Self {
        let mut graph = DiGraph::with_capacity(dets.len(), edges.len());
        for (i, d) in dets.iter().enumerate() {
            graph.add_node(Node {
                class_name: d.class_name.clone(),
                score: d.score,
                detection: i,
            });
        }
        for e in edges {
            graph.add_edge(
                NodeIndex::new(e.subject),
                NodeIndex::new(e.object),
                Edge {
                    relation: e.relation,
                    weight: e.weight,
                },
            );
        }
        Self { graph }
    }

    /// Edges of one relation type.
    pub fn count(&self, relation: Relation) -> usize {
        self.graph
            .edge_weights()
            .filter(|e| e.relation == relation)
            .count()
    }

    /// The graph as one JSON object (a line of `scene_graphs.jsonl`), boxes included.
    pub fn to_json(&self, image: &str, dets: &[Detection]) -> serde_json::Value {
        let nodes: Vec<_> = self
            .graph
            .node_indices()
            .map(|n| {
                let node = &self.graph[n];
                let d = &dets[node.detection];
                json!({"id": n.index(), "class_name": node.class_name, "score": node.score, "bbox": d.bbox, "obb": d.obb})
            })
            .collect();
        let edges: Vec<_> = self
            .graph
            .edge_indices()
            .filter_map(|e| {
                let (s, o) = self.graph.edge_endpoints(e)?;
                let w = &self.graph[e];
                Some(json!({"source": s.index(), "target": o.index(), "relation": w.relation.as_str(), "weight": w.weight}))
            })
            .collect();
        json!({"image": image, "nodes": nodes, "edges": edges})
    }
}
