//! Readers and writers for the files nsod exchanges with Ultralytics, DOTA tools and its own later stages.
//!
//! | module | format | coordinates |
//! |---|---|---|
//! | [`yolo`] | `cls cx cy w h conf` predictions, `cls cx cy w h` labels | normalised to `[0, 1]` |
//! | [`yolo_obb`] | `cls x1 y1 x2 y2 x3 y3 x4 y4 [conf]` | normalised to `[0, 1]` |
//! | [`dota`] | `x1 y1 x2 y2 x3 y3 x4 y4 classname difficult` | pixels |
//! | [`jsonl`] | one JSON object per image (nsod's predictions file) | pixels |
//! | [`csv`] | one line of RFC 4180 CSV (`report.csv`, `track_summary.csv`) | — |
//!
//! Readers never panic: a bad line is a [`FormatError::Line`] that names the file and the 1-based line number.
//! Blank lines and lines starting with `#` are skipped by the text readers. Writers write to a temporary file in the
//! destination folder and rename it into place, so a failed write never leaves a half-written file behind.

pub mod coco;
pub mod csv;
pub mod dota;
pub mod jsonl;
pub mod yolo;
pub mod yolo_obb;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An error reading or writing one of the formats. The message always names the file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be opened, read or written.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    /// A line could not be parsed.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl FormatError {
    pub(crate) fn io(path: &Path, error: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn line(path: &Path, line: usize, message: impl Into<String>) -> Self {
        Self::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// Reads a whole text file, naming the file on error (including for non-UTF-8 content).
pub(crate) fn read_text(path: &Path) -> Result<String, FormatError> {
    let bytes = std::fs::read(path).map_err(|e| FormatError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        FormatError::line(path, line, "not UTF-8 text")
    })
}

/// The lines of `text` that carry data: 1-based line number and the whitespace-separated fields.
pub(crate) fn data_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            None
        } else {
            Some((i + 1, l.split_whitespace().collect()))
        }
    })
}

/// Parses a finite number, or says which column is wrong.
pub(crate) fn parse_num(field: &str, column: usize, what: &str) -> Result<f64, String> {
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "column {column} ({what}) is not a finite number: {field:?}"
        )),
        Err(_) => Err(format!(
            "column {column} ({what}) is not a number: {field:?}"
        )),
    }
}

/// Parses a class id column.
pub(crate) fn parse_class_id(field: &str) -> Result<u32, String> {
    // Ultralytics writes class ids as integers; accept "3.0" as written by some numpy exports.
    if let Ok(v) = field.parse::<u32>() {
        return Ok(v);
    }
    match field.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) => Ok(v as u32),
        _ => Err(format!(
            "column 1 (class id) is not a non-negative integer: {field:?}"
        )),
    }
}

/// Parses a confidence column; it must lie in `[0, 1]`.
pub(crate) fn parse_conf(field: &str, column: usize) -> Result<f32, String> {
    let v = parse_num(field, column, "confidence")?;
    if (0.0..=1.0).contains(&v) {
        Ok(v as f32)
    } else {
        Err(format!(
            "column {column} (confidence) is outside [0, 1]: {field}"
        ))
    }
}

/// Looks the class name up in `names`; an id outside a non-empty table is an error.
pub(crate) fn class_name(names: &crate::ClassNames, id: u32) -> Result<String, String> {
    if names.is_empty() {
        Ok(id.to_string())
    } else {
        names.get(id).map(str::to_owned).ok_or_else(|| {
            format!(
                "class id {id} is not one of the {} known classes (0..={})",
                names.len(),
                names.len() - 1
            )
        })
    }
}

/// Shortest text that reads back as the same `f32`.
pub(crate) fn fmt_f32(v: f32) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    format!("{v}")
}

/// Writes `path` atomically: the content goes to a temporary file in the same folder, which is renamed over `path`
/// only when `write` succeeded. The file gets the usual mode of a new file (0666 less the umask), not the 0600 of
/// temporary files, so that other users and services (node_exporter's textfile collector) can read it as they
/// could read any other output.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), FormatError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".nsod-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| FormatError::io(path, e))?;
    {
        let mut w = io::BufWriter::new(tmp.as_file_mut());
        write(&mut w).map_err(|e| FormatError::io(path, e))?;
        w.flush().map_err(|e| FormatError::io(path, e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| FormatError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| FormatError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_keeps_old_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_atomic(&p, |w| w.write_all(b"first\n")).unwrap();
        let err = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("out.txt") && err.to_string().contains("disk full"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "first\n");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn non_utf8_is_reported_with_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin.txt");
        std::fs::write(&p, b"0 0.5 0.5 0.1 0.1\n\xff\xfe\n").unwrap();
        let err = read_text(&p).unwrap_err().to_string();
        assert!(err.ends_with("bin.txt:2: not UTF-8 text"), "{err}");
    }
}
