//! The images of a run: every input file, and every image under every input folder (sorted, recursive), each with
//! its name in the run (its path relative to its input root, `/`-separated).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One image to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub path: PathBuf,
    /// The image's name in the run: its path relative to its input root, `/`-separated (the file name for a file
    /// given directly).
    pub name: String,
}

/// Why the inputs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: cannot read", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Two inputs would write the same outputs (the same name, or the same label file).
    #[error("{} and {} would both be written as {what}: rename one or process them in separate runs", first.display(), second.display())]
    Collision {
        first: PathBuf,
        second: PathBuf,
        what: String,
    },
}

/// Why predictions given as input cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PredictionsError {
    #[error("{}: no such file or folder", path.display())]
    Missing { path: PathBuf },
    #[error("--pred {} is a folder of YOLO txt files: pass --images DIR for the image sizes", path.display())]
    NeedsImages { path: PathBuf },
    #[error("{}: cannot read", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no image named {stem}.* in {}", txt.display(), images.display())]
    NoImage {
        txt: PathBuf,
        stem: String,
        images: PathBuf,
    },
    #[error("{}: cannot read the image size", path.display())]
    ImageSize {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error(transparent)]
    Format(#[from] nsod_types::FormatError),
}

/// Reads predictions to refine or graph: an nsod `predictions.jsonl`, or a folder of YOLO or YOLO-OBB txt files
/// (`cls cx cy w h conf` or `cls x1 y1 ... x4 y4 conf`, told apart by their first line) with their images (for the
/// sizes). Each record is read on its own: a bad one is an error for that record only.
pub fn read_predictions(
    pred: &Path,
    images: Option<&Path>,
    names: &nsod_types::ClassNames,
) -> Result<
    Vec<Result<nsod_types::formats::jsonl::ImagePredictions, PredictionsError>>,
    PredictionsError,
> {
    use nsod_types::ImageSize;
    use nsod_types::formats::jsonl::{ImagePredictions, JsonlReader};
    if pred.is_file() {
        return Ok(JsonlReader::open(pred)?
            .map(|r| r.map_err(PredictionsError::from))
            .collect());
    }
    if !pred.is_dir() {
        return Err(PredictionsError::Missing {
            path: pred.to_path_buf(),
        });
    }
    let Some(images) = images else {
        return Err(PredictionsError::NeedsImages {
            path: pred.to_path_buf(),
        });
    };
    let mut txts: Vec<PathBuf> = std::fs::read_dir(pred)
        .map_err(|source| PredictionsError::Io {
            path: pred.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    txts.sort();
    Ok(txts
        .into_iter()
        .map(|txt| {
            let stem = txt
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let image = nsod_detect::IMAGE_EXTENSIONS
                .iter()
                .map(|e| images.join(format!("{stem}.{e}")))
                .find(|p| p.is_file())
                .ok_or_else(|| PredictionsError::NoImage {
                    txt: txt.clone(),
                    stem: stem.clone(),
                    images: images.to_path_buf(),
                })?;
            let (w, h) =
                image::image_dimensions(&image).map_err(|source| PredictionsError::ImageSize {
                    path: image.clone(),
                    source,
                })?;
            let size = ImageSize::new(w, h);
            let obb = std::fs::read_to_string(&txt).ok().is_some_and(|t| {
                t.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .is_some_and(|l| l.split_whitespace().count() == 10)
            });
            let detections = if obb {
                nsod_types::formats::yolo_obb::read_predictions(&txt, size, names)?
            } else {
                nsod_types::formats::yolo::read_predictions(&txt, size, names)?
            };
            let file_name = image
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            Ok(ImagePredictions {
                image: file_name,
                width: w,
                height: h,
                detections,
                geo: None,
            })
        })
        .collect())
}

/// What the walk skipped (files without an image extension inside folders).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Skipped(pub Vec<PathBuf>);

/// The label file stem of an image name: `a/b/c.png` -> `a/b/c`.
pub fn stem(name: &str) -> String {
    match name.rfind('.') {
        Some(dot) if !name[dot..].contains('/') && dot > name.rfind('/').map_or(0, |s| s + 1) => {
            name[..dot].to_owned()
        }
        _ => name.to_owned(),
    }
}

/// Files to process, with `is_image` deciding which files inside folders count. Two inputs that would write the
/// same outputs (`a/x.png` and `b/x.png` given as files, or `x.jpg` and `x.png` in one folder, whose labels are
/// both `x.txt`) are an error naming both, before anything runs.
pub fn collect(
    inputs: &[PathBuf],
    is_image: impl Fn(&Path) -> bool,
) -> Result<(Vec<Job>, Skipped), InputError> {
    let mut jobs = Vec::new();
    let mut skipped = Skipped::default();
    for input in inputs {
        let io = |source| InputError::Io {
            path: input.clone(),
            source,
        };
        let meta = std::fs::metadata(input).map_err(io)?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(input, &mut files).map_err(|source| InputError::Io {
                path: input.clone(),
                source,
            })?;
            files.sort();
            for f in files {
                if is_image(&f) {
                    let name = f
                        .strip_prefix(input)
                        .unwrap_or(&f)
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    jobs.push(Job { path: f, name });
                } else {
                    skipped.0.push(f);
                }
            }
        } else {
            let name = input.file_name().map_or_else(
                || input.to_string_lossy().into_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            jobs.push(Job {
                path: input.clone(),
                name,
            });
        }
    }
    check_collisions(&jobs)?;
    Ok((jobs, skipped))
}

/// Two jobs with the same name, or the same label stem.
pub fn check_collisions(jobs: &[Job]) -> Result<(), InputError> {
    let mut names: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut stems: BTreeMap<String, &Path> = BTreeMap::new();
    for j in jobs {
        if let Some(first) = names.insert(&j.name, &j.path) {
            return Err(InputError::Collision {
                first: first.to_path_buf(),
                second: j.path.clone(),
                what: j.name.clone(),
            });
        }
        let s = stem(&j.name);
        if let Some(first) = stems.insert(s.clone(), &j.path) {
            return Err(InputError::Collision {
                first: first.to_path_buf(),
                second: j.path.clone(),
                what: format!("labels/{s}.txt"),
            });
        }
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_keep_folders_and_drop_the_extension() {
        assert_eq!(stem("a/b/c.png"), "a/b/c");
        assert_eq!(stem("c"), "c");
        assert_eq!(stem("a.b/c"), "a.b/c");
        assert_eq!(stem(".hidden"), ".hidden");
    }

    #[test]
    fn colliding_inputs_are_refused_with_both_paths() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["a/x.png", "b/x.png", "c/y.jpg", "c/y.png", "c/z.png"] {
            let f = dir.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"x").unwrap();
        }
        let all = |_: &Path| true;
        let e = collect(
            &[dir.path().join("a/x.png"), dir.path().join("b/x.png")],
            all,
        )
        .unwrap_err();
        assert!(
            e.to_string().ends_with(
                "would both be written as x.png: rename one or process them in separate runs"
            ),
            "{e}"
        );
        let e = collect(&[dir.path().join("c")], all).unwrap_err();
        assert!(e.to_string().contains("c/y.jpg and "), "{e}");
        assert!(
            e.to_string()
                .contains("would both be written as labels/y.txt"),
            "{e}"
        );
        let (jobs, _) = collect(&[dir.path().join("a"), dir.path().join("c/z.png")], all).unwrap();
        assert_eq!(
            jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
            vec!["x.png", "z.png"]
        );
    }
}
