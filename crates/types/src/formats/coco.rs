//! COCO results files (`[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]`), as pycocotools'
//! `loadRes` reads them.
//!
//! [`CocoResultsWriter`] streams the array into `<file>.partial` and renames it on [`CocoResultsWriter::finish`], so
//! memory does not grow with the number of detections and an interrupted run never leaves a truncated file under
//! the final name.

use super::FormatError;
use crate::Detection;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// One detection in COCO results format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoResult {
    pub image_id: u64,
    pub category_id: u32,
    /// `[x, y, width, height]` in pixels.
    pub bbox: [f32; 4],
    pub score: f32,
}

impl CocoResult {
    pub fn from_detection(image_id: u64, d: &Detection) -> Self {
        Self {
            image_id,
            category_id: d.class_id,
            bbox: [d.bbox.x1, d.bbox.y1, d.bbox.width(), d.bbox.height()],
            score: d.score,
        }
    }
}

/// Streams a COCO results array to disk.
#[derive(Debug)]
pub struct CocoResultsWriter {
    path: PathBuf,
    partial: PathBuf,
    out: BufWriter<File>,
    count: usize,
}

impl CocoResultsWriter {
    pub fn create(path: &Path) -> Result<Self, FormatError> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let mut out =
            BufWriter::new(File::create(&partial).map_err(|e| FormatError::io(&partial, e))?);
        out.write_all(b"[")
            .map_err(|e| FormatError::io(&partial, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            partial,
            out,
            count: 0,
        })
    }

    pub fn push(&mut self, r: &CocoResult) -> Result<(), FormatError> {
        let err = |e: std::io::Error| FormatError::io(&self.partial, e);
        if self.count > 0 {
            self.out.write_all(b",\n").map_err(err)?;
        }
        serde_json::to_writer(&mut self.out, r).map_err(|e| err(e.into()))?;
        self.count += 1;
        Ok(())
    }

    /// Closes the array, syncs and renames the file to its final name.
    pub fn finish(mut self) -> Result<PathBuf, FormatError> {
        let err = |e: std::io::Error| FormatError::io(&self.partial, e);
        self.out.write_all(b"]\n").map_err(err)?;
        self.out.flush().map_err(err)?;
        self.out.get_ref().sync_all().map_err(err)?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| FormatError::io(&self.path, e))?;
        Ok(self.path)
    }
}

/// Reads a COCO results file.
pub fn read_results(path: &Path) -> Result<Vec<CocoResult>, FormatError> {
    let text = super::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| FormatError::line(path, e.line(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BBox;

    #[test]
    fn streams_a_valid_array_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("coco_results.json");
        let empty = CocoResultsWriter::create(&p).unwrap();
        empty.finish().unwrap();
        assert_eq!(read_results(&p).unwrap(), vec![]);
        let mut w = CocoResultsWriter::create(&p).unwrap();
        let d = Detection::new(3, "x", 0.5, BBox::new(10.0, 20.0, 40.0, 60.0));
        w.push(&CocoResult::from_detection(7, &d)).unwrap();
        w.push(&CocoResult::from_detection(8, &d)).unwrap();
        // The previous complete file stays in place until finish.
        assert_eq!(read_results(&p).unwrap(), vec![]);
        w.finish().unwrap();
        let back = read_results(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(
            back[1],
            CocoResult {
                image_id: 8,
                category_id: 3,
                bbox: [10.0, 20.0, 30.0, 40.0],
                score: 0.5
            }
        );
        std::fs::write(&p, "[{\"image_id\": 1}]").unwrap();
        let e = read_results(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:1: missing field", p.display())),
            "{e}"
        );
    }
}
