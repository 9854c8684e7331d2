//! The run folder: the name of every file and folder nsod writes into one (`nsod infer`, `merge`, `symbolic`,
//! `kg`, a shard) and reads back (resume, `merge`, `report`, `eval`), in one place. Writers and readers use these
//! names; none is retyped as a literal.
//!
//! ```text
//! run.json                      manifest: model, rules, configuration and its sources, counts, failures
//! predictions.jsonl             one record per image (refined by the rules)
//! predictions_raw.jsonl         the detector's own records, with rules
//! report.csv, report.jsonl      one row per rule application
//! labels/, labels-obb/          YOLO and YOLO-OBB text predictions, one file per image
//! vis/                          annotated images
//! coco_results.json, coco_images.json
//! scene_graphs.jsonl            relations per image (--kg)
//! kg_facts.pl, kg.graphml, kg.dot, kg.json, kg_svg/   the dataset's knowledge graph (--kg)
//! detections.geojson, detections.gpkg                  georeferenced rasters
//! plan.json, shards/I-of-N/{shard.json, windows.jsonl, _SUCCESS}   sharded runs
//! ```
//! A stream being written is `<name>.partial` until the run completes.

pub const MANIFEST: &str = "run.json";
pub const PREDICTIONS: &str = "predictions.jsonl";
pub const PREDICTIONS_RAW: &str = "predictions_raw.jsonl";
pub const REPORT_CSV: &str = "report.csv";
pub const REPORT_JSONL: &str = "report.jsonl";
pub const LABELS: &str = "labels";
pub const LABELS_OBB: &str = "labels-obb";
pub const VIS: &str = "vis";
pub const COCO_RESULTS: &str = "coco_results.json";
pub const COCO_IMAGES: &str = "coco_images.json";
pub const SCENE_GRAPHS: &str = "scene_graphs.jsonl";
pub const KG_FACTS: &str = "kg_facts.pl";
pub const KG_GRAPHML: &str = "kg.graphml";
pub const KG_DOT: &str = "kg.dot";
pub const KG_JSON: &str = "kg.json";
/// The knowledge graph's exports, facts first.
pub const KG_FILES: [&str; 4] = [KG_FACTS, KG_GRAPHML, KG_DOT, KG_JSON];
pub const KG_SVG: &str = "kg_svg";
/// The folders as `run.json`'s `files` and the summary name them.
pub const LABELS_DIR: &str = "labels/";
pub const LABELS_OBB_DIR: &str = "labels-obb/";
pub const VIS_DIR: &str = "vis/";
pub const KG_SVG_DIR: &str = "kg_svg/";
pub const GEOJSON: &str = "detections.geojson";
/// `nsod track`: per frame, the tracks (`tracks.jsonl`).
pub const TRACKS: &str = "tracks.jsonl";
/// `nsod track`: MOTChallenge text, the axis-aligned hull of each tracked box.
pub const MOT: &str = "mot.txt";
/// `nsod track`: the oriented variant, `frame,id,x1,y1,...,x4,y4,conf,class`.
pub const MOT_OBB: &str = "mot_obb.txt";
/// `nsod track`: one row per track.
pub const TRACK_SUMMARY: &str = "track_summary.csv";
/// `nsod track --kg`: the knowledge graph over time, tracks and their relations with time intervals (node-link JSON).
pub const TRACK_GRAPH_JSON: &str = "track_graph.json";
/// The same as GraphML.
pub const TRACK_GRAPH_GRAPHML: &str = "track_graph.graphml";
pub const GPKG: &str = "detections.gpkg";
/// A sharded run's plan, in its run folder.
pub const PLAN: &str = "plan.json";
/// The folder of a sharded run's shards (`shards/I-of-N/`).
pub const SHARDS: &str = "shards";
/// A shard folder's manifest.
pub const SHARD_MANIFEST: &str = "shard.json";
/// A shard's tiles: their unmerged detections.
pub const WINDOWS: &str = "windows.jsonl";
/// The logs a batch engine writes for the run's tasks (`deploy/slurm`: `logs/nsod-shard-*.out`).
pub const LOGS: &str = "logs";
/// Written last into a finished shard folder.
pub const SUCCESS: &str = "_SUCCESS";
/// The suffix of a stream being written.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// `name.partial`.
pub fn partial(name: &str) -> String {
    format!("{name}{PARTIAL_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_agree() {
        for (dir, name) in [
            (LABELS_DIR, LABELS),
            (LABELS_OBB_DIR, LABELS_OBB),
            (VIS_DIR, VIS),
            (KG_SVG_DIR, KG_SVG),
        ] {
            assert_eq!(dir, format!("{name}/"));
        }
        assert_eq!(partial(PREDICTIONS), "predictions.jsonl.partial");
    }
}
