//! nsod's predictions file: JSON Lines, one object per image.
//!
//! ```json
//! {"image":"P0006.png","width":1054,"height":1529,"detections":[
//!   {"class_id":9,"class_name":"large vehicle","score":0.87,"bbox":[x1,y1,x2,y2],"obb":[cx,cy,w,h,angle]}]}
//! ```
//!
//! Boxes are in pixels of the original image; `obb` (angle in radians) and `polygon` (`[x1, y1, ..., x4, y4]`) are
//! present for oriented models only. Georeferenced rasters add `geo`: `crs`, `wkt`, `geotransform`, `gsd` and
//! `footprints`, one per detection in the same order, each with `pixel`, `map` and `lonlat` vertices, `raw_score`
//! and the `rules` that changed it.
//! Unknown keys are ignored when reading, so later versions can add fields.
//!
//! [`JsonlWriter`] writes to `<file>.partial`, flushing after every image, and renames it to `<file>` in
//! [`JsonlWriter::finish`]: an interrupted run keeps every finished image in the `.partial` file and never replaces a
//! previous complete file with a truncated one.

use super::FormatError;
use crate::Detection;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The predictions for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePredictions {
    /// The image's path relative to the input folder (or as given).
    pub image: String,
    pub width: u32,
    pub height: u32,
    #[serde(default, serialize_with = "serialize_detections")]
    pub detections: Vec<Detection>,
    /// For georeferenced rasters: the CRS, geotransform, ground sample distance and each detection's polygon on
    /// the map (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<crate::geo::ImageGeo>,
}

/// A detection as written: the [`Detection`] fields plus, for oriented boxes, `polygon` (the four corners
/// `[x1, y1, ..., x4, y4]` in Ultralytics' order). Readers ignore `polygon` and use `obb`.
#[derive(Serialize)]
struct DetectionRecord<'a> {
    #[serde(flatten)]
    detection: &'a Detection,
    #[serde(skip_serializing_if = "Option::is_none")]
    polygon: Option<[f32; 8]>,
}

fn serialize_detections<S: serde::Serializer>(dets: &[Detection], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(dets.iter().map(|d| DetectionRecord {
        detection: d,
        polygon: d.obb.map(|o| {
            let c = o.corners();
            [
                c[0].x, c[0].y, c[1].x, c[1].y, c[2].x, c[2].y, c[3].x, c[3].y,
            ]
            .map(|v| v as f32)
        }),
    }))
}

impl ImagePredictions {
    fn validate(&self) -> Result<(), String> {
        // The name becomes file names in run folders (labels/, vis/): it must stay inside them.
        crate::quote::relative_name(&self.image).map_err(|e| e.to_string())?;
        for (i, d) in self.detections.iter().enumerate() {
            if !(0.0..=1.0).contains(&d.score) {
                return Err(format!(
                    "detection {i}: score {} is outside [0, 1]",
                    d.score
                ));
            }
            if !d.bbox.is_finite() || d.obb.is_some_and(|o| !o.is_finite()) {
                return Err(format!("detection {i}: box has a non-finite coordinate"));
            }
        }
        Ok(())
    }
}

/// Streams the records of a predictions file; each item names the file and line on error.
#[derive(Debug)]
pub struct JsonlReader {
    path: PathBuf,
    reader: BufReader<File>,
    line: usize,
}

impl JsonlReader {
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        Ok(Self::from_file(file, path))
    }

    /// Reads records from a file already open (errors name `path`).
    pub fn from_file(file: File, path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            line: 0,
        }
    }
}

impl Iterator for JsonlReader {
    type Item = Result<ImagePredictions, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = match read_line(&mut self.reader, MAX_RECORD_BYTES) {
                Ok(None) => return None,
                Ok(Some(t)) => {
                    self.line += 1;
                    t
                }
                Err(e) => {
                    self.line += 1;
                    return Some(Err(match e {
                        LineError::TooLong => FormatError::line(
                            &self.path,
                            self.line,
                            format!(
                                "longer than {} MiB, the most one image's record may take",
                                MAX_RECORD_BYTES >> 20
                            ),
                        ),
                        LineError::NotUtf8 => {
                            FormatError::line(&self.path, self.line, "not UTF-8 text")
                        }
                        LineError::Io(e) => FormatError::io(&self.path, e),
                    }));
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str::<ImagePredictions>(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.validate().map(|()| r))
                    .map_err(|m| FormatError::line(&self.path, self.line, m)),
            );
        }
    }
}

/// The longest line [`JsonlReader`] reads (one image's record: about a million detections). A longer line is an
/// error naming it, skipped without being held in memory; the lines after it are read.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

enum LineError {
    TooLong,
    NotUtf8,
    Io(std::io::Error),
}

/// One line without its `\n` (or `\r\n`), at most `max` bytes; a longer one is consumed up to its newline and
/// refused.
fn read_line(r: &mut impl BufRead, max: usize) -> Result<Option<String>, LineError> {
    let mut buf = Vec::new();
    let n = std::io::Read::take(&mut *r, max as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(LineError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > max {
        drop(buf);
        // Skip the rest of the line a buffer at a time.
        loop {
            let chunk = r.fill_buf().map_err(LineError::Io)?;
            if chunk.is_empty() {
                break;
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    r.consume(i + 1);
                    break;
                }
                None => {
                    let n = chunk.len();
                    r.consume(n);
                }
            }
        }
        return Err(LineError::TooLong);
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| LineError::NotUtf8)
}

/// Reads a whole predictions file.
pub fn read_all(path: &Path) -> Result<Vec<ImagePredictions>, FormatError> {
    JsonlReader::open(path)?.collect()
}

/// Writes a predictions file one image at a time (see the module docs for the crash-safety rules).
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    partial: PathBuf,
    out: BufWriter<File>,
    records: usize,
}

impl JsonlWriter {
    pub fn create(path: &Path) -> Result<Self, FormatError> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial).map_err(|e| FormatError::io(&partial, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            partial,
            out: BufWriter::new(file),
            records: 0,
        })
    }

    /// Appends one image's record and flushes it to the `.partial` file.
    pub fn write(&mut self, record: &ImagePredictions) -> Result<(), FormatError> {
        let err = |e: std::io::Error| FormatError::io(&self.partial, e);
        serde_json::to_writer(&mut self.out, record).map_err(|e| err(e.into()))?;
        self.out.write_all(b"\n").map_err(err)?;
        self.out.flush().map_err(err)?;
        self.records += 1;
        Ok(())
    }

    /// Number of records written so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Syncs the file and renames it to its final name.
    pub fn finish(mut self) -> Result<PathBuf, FormatError> {
        self.out
            .flush()
            .map_err(|e| FormatError::io(&self.partial, e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| FormatError::io(&self.partial, e))?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| FormatError::io(&self.path, e))?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::{LineError, read_line};
    use std::io::{BufReader, Cursor};

    #[test]
    fn an_overlong_line_is_refused_and_skipped_without_being_held() {
        // A small buffer, so the skipped line spans many refills.
        let text = [
            b"{\"a\":1}\r\n".to_vec(),
            vec![b'x'; 10_000],
            b"\n\nlast".to_vec(),
        ]
        .concat();
        let mut r = BufReader::with_capacity(64, Cursor::new(text));
        assert_eq!(
            read_line(&mut r, 100).ok().flatten().as_deref(),
            Some("{\"a\":1}")
        );
        assert!(matches!(read_line(&mut r, 100), Err(LineError::TooLong)));
        assert_eq!(read_line(&mut r, 100).ok().flatten().as_deref(), Some(""));
        assert_eq!(
            read_line(&mut r, 100).ok().flatten().as_deref(),
            Some("last")
        );
        assert!(matches!(read_line(&mut r, 100), Ok(None)));
        let mut r = BufReader::new(Cursor::new(b"\xff\n".to_vec()));
        assert!(matches!(read_line(&mut r, 100), Err(LineError::NotUtf8)));
    }
}
