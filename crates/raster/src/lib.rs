//! Rasters of any size through GDAL, for nsod's detector and sinks.
//!
//! * [`Raster`]: a raster opened with GDAL (GeoTIFF, BigTIFF, COG, JPEG 2000, VRT mosaics, and the formats the
//!   image crate also reads), read window by window: [`Raster::read_window`] returns one slice as 8-bit RGB (bands
//!   chosen with [`RasterOptions::bands`], 16-bit and other depths stretched to 8 bits), or `None` when the window
//!   holds no data (GDAL's mask: nodata, alpha, per-dataset masks); [`Raster::read_decimated`] returns the whole
//!   raster at a small size (from an overview when the file has one). Memory is what the windows in flight and
//!   GDAL's block cache ([`RasterOptions::cache_mib`]) hold, whatever the raster's size.
//! * [`georef`]: the raster's CRS and geotransform, every detection's polygon in map coordinates and WGS84
//!   longitude/latitude (PROJ through GDAL), and the ground sample distance (projected units, or geodesic on the
//!   ellipsoid for geographic CRSs, with GeographicLib's algorithms).
//! * [`export`]: `detections.geojson` (RFC 7946) and `detections.gpkg` (GeoPackage through OGR) from the records of
//!   `predictions.jsonl`.
//!
//! The crate knows nothing of models or rules; nsod-detect's `ImageSource` is implemented in nsod-pipeline.

pub mod export;
pub mod georef;
pub mod trajectories;

use gdal::raster::{GdalDataType, ResampleAlg};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use georef::georeference;

/// Why a raster cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    /// GDAL cannot open the file (not a raster of a format nsod reads, or a damaged one).
    #[error("{}: {message}", path.display())]
    Open {
        path: PathBuf,
        message: String,
        #[source]
        source: Option<Box<gdal::errors::GdalError>>,
    },
    /// The raster is readable but not usable as asked (bands, sizes, data types, limits).
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A window could not be read.
    #[error("{}: cannot read the window {window}", path.display())]
    Read {
        path: PathBuf,
        window: String,
        #[source]
        source: Box<gdal::errors::GdalError>,
    },
    /// Georeferencing failed (a CRS PROJ cannot transform).
    #[error("{}: georeferencing: {message}", path.display())]
    Georef {
        path: PathBuf,
        message: String,
        #[source]
        source: Option<Box<gdal::errors::GdalError>>,
    },
    /// An output could not be written.
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

/// How rasters are read. The defaults suit 8-bit RGB orthophotos; see `config/run.example.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RasterOptions {
    /// Bands (1-based) read as red, green and blue, or one band read as grey. Default: the bands whose colour
    /// interpretation is red, green and blue, else bands 1, 2, 3, else band 1.
    pub bands: Option<Vec<u32>>,
    /// The values mapped to 0 and 255 for every band. Default: 8-bit bands as they are; other data types
    /// stretched per band between the 2nd and the 98th percentile of a decimated read (an overview when there is
    /// one) of at most 1024 x 1024 pixels.
    pub scale: Option<[f64; 2]>,
    /// Rasters with more pixels than this are read window by window; smaller ones are read whole, as decoded
    /// images are.
    pub window_above_pixels: u64,
    /// Rasters declaring more pixels than this are refused (a VRT can declare any size at no cost).
    pub max_pixels: u64,
    /// GDAL's block cache, in MiB (the memory that reads share, on top of the windows in flight).
    pub cache_mib: u64,
    /// The largest window read at once, in MiB of 8-bit RGB (a slice size that asks for more is refused).
    pub max_window_mib: u64,
}

impl Default for RasterOptions {
    fn default() -> Self {
        Self {
            bands: None,
            scale: None,
            window_above_pixels: 64 << 20,
            max_pixels: 100_000_000_000,
            cache_mib: 256,
            max_window_mib: 512,
        }
    }
}

impl RasterOptions {
    /// Checks the values on their own (bands against a raster are checked when it is opened).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(b) = &self.bands
            && (!(b.len() == 1 || b.len() == 3) || b.contains(&0))
        {
            {
                return Err(format!(
                    "bands {b:?}: give three band numbers (red, green, blue) or one (grey), counted from 1"
                ));
            }
        }
        if let Some([lo, hi]) = self.scale
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            {
                return Err(format!(
                    "scale [{lo}, {hi}]: the minimum must be below the maximum"
                ));
            }
        }
        if self.cache_mib == 0 || self.max_window_mib == 0 || self.max_pixels == 0 {
            return Err("cache_mib, max_window_mib and max_pixels must be positive".into());
        }
        Ok(())
    }
}

/// The GDAL drivers that open the user's own files (`nsod infer`, plans and shards): no vector, network or
/// database drivers, but VRT mosaics and formats made of several files (a header beside its data, external
/// overviews), which name other files by design.
pub const FILE_DRIVERS: &[&str] = &[
    "GTiff",
    "COG",
    "JP2OpenJPEG",
    "VRT",
    "PNG",
    "JPEG",
    "WEBP",
    "BMP",
    "GIF",
    "HFA",
    "NITF",
    "ENVI",
    "ERS",
    "PCIDSK",
    "RST",
    "SAGA",
    "ISIS3",
    "PDS4",
    "JPEG2000",
    "JP2ECW",
    "JP2KAK",
    "ECW",
    "MrSID",
];

/// The GDAL drivers that open bytes a client sent (`nsod serve`): self-contained single-file formats only. A VRT
/// names other files and URLs (`SourceFilename`, `/vsicurl/`), HFA, ENVI, ERS, PCIDSK, ISIS3, PDS4, RST, SAGA and
/// NITF can point at data or header files beside them, WMS/WMTS open connections: a body opened with any of them
/// could make the server read its own files or fetch URLs for the client. GDAL 3.6 has no run-time switch that
/// stops a VRT's sources, so the driver list is the boundary.
/// BMP and GIF are single files too (the image crate reads the small ones in memory; GDAL the large ones).
/// JPEG 2000 is not in the list although it is a single file: Debian 12's OpenJPEG (2.5.0) aborts the whole process
/// on an assertion for some damaged files (found by the `body` fuzz target), and one request must never take the
/// server down.
pub const BODY_DRIVERS: &[&str] = &["GTiff", "COG", "PNG", "JPEG", "WEBP", "BMP", "GIF"];

/// Where a raster comes from, which decides the GDAL drivers that may open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The user's own files: [`FILE_DRIVERS`].
    File,
    /// Bytes a client sent: [`BODY_DRIVERS`].
    Body,
}

impl Origin {
    pub fn drivers(self) -> &'static [&'static str] {
        match self {
            Self::File => FILE_DRIVERS,
            Self::Body => BODY_DRIVERS,
        }
    }
}

/// The raster formats a body is refused as, recognised from their first bytes (GDAL is never asked: opening a VRT
/// with its driver would already read its sources). Only used to say why a body was refused; a format not listed is
/// "not an image".
pub fn refused_body_format(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    let contains = |needle: &str| text.contains(needle);
    let xml = |root: &str| t.starts_with('<') && contains(root);
    let formats: [(bool, &str); 12] = [
        (xml("<VRTDataset"), "a GDAL virtual raster (VRT)"),
        (xml("<GDAL_WMS"), "a GDAL WMS description"),
        (xml("<GDAL_WMTS"), "a GDAL WMTS description"),
        (xml("<WCS_GDAL"), "a GDAL WCS description"),
        (
            head.starts_with(b"EHFA_HEADER_TAG"),
            "an ERDAS Imagine (HFA) file",
        ),
        (t.starts_with("ENVI"), "an ENVI header"),
        (t.starts_with("DatasetHeader"), "an ER Mapper (ERS) header"),
        (head.starts_with(b"PCIDSK  "), "a PCIDSK file"),
        (
            t.starts_with("Object") && contains("IsisCube"),
            "an ISIS3 cube",
        ),
        (xml("<Product_Observational"), "a PDS4 label"),
        (
            t.starts_with("file format") && text.to_ascii_lowercase().contains("idrisi"),
            "an Idrisi (RST) header",
        ),
        (
            head.starts_with(b"NITF") || head.starts_with(b"NSIF"),
            "a NITF file",
        ),
    ];
    if let Some((_, name)) = formats.iter().find(|(hit, _)| *hit) {
        return Some(name);
    }
    // JPEG 2000 (the JP2 box, or a bare codestream): see BODY_DRIVERS.
    if head.starts_with(b"\0\0\0\x0cjP  \r\n\x87\n") || head.starts_with(b"\xff\x4f\xff\x51") {
        return Some(
            "a JPEG 2000 file (the system's OpenJPEG library aborts the process on some damaged files; convert it \
             with gdal_translate -of COG)",
        );
    }
    // SAGA's header (.sgrd) is plain text naming its data file.
    (t.starts_with("NAME") && contains("DATAFORMAT") && contains("CELLCOUNT_X"))
        .then_some("a SAGA grid header")
}

/// A file in GDAL's memory file system (`/vsimem/`), removed when dropped: how rasters that arrive as bytes (HTTP
/// requests) are opened with GDAL.
#[derive(Debug)]
pub struct MemFile {
    path: PathBuf,
}

static MEM_FILES: AtomicU64 = AtomicU64::new(0);

impl MemFile {
    /// Moves `bytes` into a new `/vsimem/` file named after `name`'s extension. Empty bytes are refused: GDAL
    /// takes the buffer over and frees it, and an empty `Vec` has no allocation to free (found by the `geotiff`
    /// fuzz target: a crash in `VSIUnlink`).
    pub fn new(bytes: Vec<u8>, name: &str) -> Result<Self, RasterError> {
        if bytes.is_empty() {
            return Err(RasterError::Invalid {
                path: PathBuf::from(name),
                message: "the file is empty (0 bytes)".into(),
            });
        }
        let ext = Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or("bin");
        // An unpredictable name: a file given to GDAL (a VRT, a sibling-file lookup) could otherwise name another
        // request's buffer.
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|e| RasterError::Open {
            path: PathBuf::from(name),
            message: format!("cannot name the in-memory file (no randomness: {e})"),
            source: None,
        })?;
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let path = PathBuf::from(format!(
            "/vsimem/nsod-{key}-{}.{ext}",
            MEM_FILES.fetch_add(1, Ordering::Relaxed)
        ));
        gdal::vsi::create_mem_file(&path, bytes).map_err(|e| RasterError::Open {
            path: PathBuf::from(name),
            message: "cannot hold the image in memory".into(),
            source: Some(Box::new(e)),
        })?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let _ = gdal::vsi::unlink_mem_file(&self.path);
    }
}

/// `e` with `gdal_path` replaced by `shown` in GDAL's own message (libtiff, libpng and drivers name the file they
/// read): a request's error never shows the in-memory file it was read from.
fn renamed(e: gdal::errors::GdalError, gdal_path: &Path, shown: &Path) -> gdal::errors::GdalError {
    use gdal::errors::GdalError as E;
    if gdal_path == shown {
        return e;
    }
    let (from, to) = (gdal_path.to_string_lossy(), shown.to_string_lossy());
    match e {
        E::CplError { class, number, msg } => E::CplError {
            class,
            number,
            msg: msg.replace(from.as_ref(), &to),
        },
        E::NullPointer { method_name, msg } => E::NullPointer {
            method_name,
            msg: msg.replace(from.as_ref(), &to),
        },
        other => other,
    }
}

/// GDAL's version (`3.6.2`).
pub fn gdal_version() -> String {
    gdal::version::version_info("RELEASE_NAME")
}

/// The drivers of [`FILE_DRIVERS`] this GDAL has.
pub fn available_drivers() -> Vec<String> {
    gdal::DriverManager::register_all();
    FILE_DRIVERS
        .iter()
        .filter(|d| gdal::DriverManager::get_driver_by_name(d).is_ok())
        .map(|d| (*d).to_owned())
        .collect()
}

static CONFIGURED: std::sync::Once = std::sync::Once::new();

/// Process-wide GDAL settings, once: the block cache, no Python in VRTs, no directory listing on open (a folder
/// of thousands of images is not listed for each one; sidecar files of the user's own rasters, such as world files,
/// `.aux.xml`, `.ovr` or an ENVI `.hdr`, are still found by name). Bodies get no sidecar lookups at all
/// ([`Raster::open_body`]).
fn configure(cache_mib: u64) {
    CONFIGURED.call_once(|| {
        let _ = gdal::config::set_config_option("GDAL_CACHEMAX", &format!("{cache_mib}MB"));
        let _ = gdal::config::set_config_option("GDAL_VRT_ENABLE_PYTHON", "NO");
        let _ = gdal::config::set_config_option("GDAL_DISABLE_READDIR_ON_OPEN", "TRUE");
        let _ = gdal::config::set_config_option("CPL_LOG", "/dev/null");
    });
}

/// What was read, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounters {
    pub bytes: u64,
    pub blocks: u64,
}

/// How the pixel values of a band become 8-bit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stretch {
    /// 8-bit data as it is.
    None,
    /// `(v - min) / (max - min) * 255`, rounded and clamped.
    Linear { min: f64, max: f64 },
}

impl Stretch {
    fn apply(&self, v: f64) -> u8 {
        match *self {
            Self::None => v.clamp(0.0, 255.0) as u8,
            Self::Linear { min, max } => {
                let t = (v - min) / (max - min) * 255.0;
                if t.is_nan() {
                    0
                } else {
                    t.round().clamp(0.0, 255.0) as u8
                }
            }
        }
    }
}

/// A raster opened for windowed reads.
#[derive(Debug)]
pub struct Raster {
    /// The name errors give (the file, or a request's name for bytes held in memory).
    path: PathBuf,
    /// What GDAL opened (`/vsimem/...` for bytes): never shown, replaced by `path` in GDAL's own messages.
    gdal_path: PathBuf,
    dataset: Mutex<Dataset>,
    width: u32,
    height: u32,
    /// The bands read (1-based): three (RGB) or one (grey).
    bands: Vec<usize>,
    stretch: Vec<Stretch>,
    data_type: GdalDataType,
    block: (usize, usize),
    /// False when every pixel is valid (no nodata, alpha or mask): windows are not checked.
    masked: bool,
    max_window_pixels: u64,
    driver: String,
    counters: (AtomicU64, AtomicU64),
}

/// 8-bit values per band read, and the mask when there is one.
type BandsAndMask = (Vec<Vec<u8>>, Option<Vec<u8>>);

fn dtype_bytes(t: GdalDataType) -> u64 {
    match t {
        GdalDataType::UInt8 => 1,
        GdalDataType::UInt16 | GdalDataType::Int16 => 2,
        GdalDataType::UInt32 | GdalDataType::Int32 | GdalDataType::Float32 => 4,
        _ => 8,
    }
}

impl Raster {
    /// Opens the user's file `path` with GDAL (read only, [`FILE_DRIVERS`] only), checks its size against the
    /// limits, picks the bands and computes the stretch. Georeferencing is read by [`georeference`].
    pub fn open(path: &Path, opts: &RasterOptions) -> Result<Self, RasterError> {
        Self::open_as(path, path, Origin::File, opts)
    }

    /// Opens bytes a client sent, held in `mem`, with [`BODY_DRIVERS`] only; errors name `name`, never the
    /// in-memory path.
    pub fn open_body(mem: &MemFile, name: &str, opts: &RasterOptions) -> Result<Self, RasterError> {
        Self::open_as(mem.path(), Path::new(name), Origin::Body, opts)
    }

    /// Opens `gdal_path` with the drivers of `origin`; errors (and [`Raster::path`]) name `shown`.
    fn open_as(
        gdal_path: &Path,
        shown: &Path,
        origin: Origin,
        opts: &RasterOptions,
    ) -> Result<Self, RasterError> {
        configure(opts.cache_mib);
        let path = shown;
        let invalid = |message: String| RasterError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // A body's dataset never looks for sibling files (overviews, masks, .aux.xml, world files): the folder is
        // taken as empty, on this thread only, while GDAL opens it (drivers list siblings at open and keep the list).
        let body = origin == Origin::Body;
        if body {
            let _ = gdal::config::set_thread_local_config_option(
                "GDAL_DISABLE_READDIR_ON_OPEN",
                "EMPTY_DIR",
            );
        }
        let ds = Dataset::open_ex(
            gdal_path,
            DatasetOptions {
                open_flags: GdalOpenFlags::GDAL_OF_RASTER
                    | GdalOpenFlags::GDAL_OF_READONLY
                    | GdalOpenFlags::GDAL_OF_VERBOSE_ERROR,
                allowed_drivers: Some(origin.drivers()),
                ..Default::default()
            },
        );
        if body {
            let _ = gdal::config::clear_thread_local_config_option("GDAL_DISABLE_READDIR_ON_OPEN");
        }
        let ds = ds.map_err(|e| RasterError::Open {
            path: path.to_path_buf(),
            message: "not an image (no raster format recognised it)".into(),
            source: Some(Box::new(renamed(e, gdal_path, path))),
        })?;
        let driver = ds.driver().short_name();
        let (w, h) = ds.raster_size();
        let pixels = (w as u128) * (h as u128);
        if w == 0 || h == 0 {
            return Err(invalid(format!("the raster has no pixels ({w} x {h})")));
        }
        if pixels > u128::from(opts.max_pixels) || w > u32::MAX as usize || h > u32::MAX as usize {
            return Err(invalid(format!(
                "the raster declares {w} x {h} pixels ({:.3e}), more than the limit of {:.3e} \
                 (raster.max_pixels, --max-raster-pixels)",
                pixels as f64, opts.max_pixels as f64
            )));
        }
        let count = ds.raster_count();
        if count == 0 {
            return Err(invalid("the file has no raster bands".into()));
        }
        let bands: Vec<usize> = match &opts.bands {
            Some(b) => {
                if let Some(bad) = b.iter().find(|&&i| i as usize > count) {
                    return Err(invalid(format!(
                        "band {bad} does not exist (the raster has {count} band{})",
                        if count == 1 { "" } else { "s" }
                    )));
                }
                b.iter().map(|&i| i as usize).collect()
            }
            None => default_bands(&ds, count),
        };
        let first = ds.rasterband(bands[0]).map_err(|e| RasterError::Open {
            path: path.to_path_buf(),
            message: format!("cannot open band {}", bands[0]),
            source: Some(Box::new(renamed(e, gdal_path, path))),
        })?;
        let data_type = first.band_type();
        if matches!(data_type, GdalDataType::Unknown) {
            return Err(invalid("bands of an unknown data type".into()));
        }
        let block = first.block_size();
        // A block is decoded whole: refuse blocks whose declared size is absurd (decompression bombs).
        let block_bytes =
            (block.0 as u128) * (block.1 as u128) * u128::from(dtype_bytes(data_type));
        if block_bytes > 1 << 30 {
            return Err(invalid(format!(
                "blocks of {} x {} pixels ({} MiB each) are too large to decode",
                block.0,
                block.1,
                block_bytes >> 20
            )));
        }
        let masked = bands.iter().any(|&b| {
            ds.rasterband(b)
                .and_then(|band| band.mask_flags())
                .map(|f| !f.is_all_valid())
                .unwrap_or(false)
        });
        let mut raster = Self {
            path: path.to_path_buf(),
            gdal_path: gdal_path.to_path_buf(),
            dataset: Mutex::new(ds),
            width: w as u32,
            height: h as u32,
            stretch: vec![Stretch::None; bands.len()],
            bands,
            data_type,
            block,
            masked,
            max_window_pixels: (opts.max_window_mib << 20) / 3,
            driver,
            counters: (AtomicU64::new(0), AtomicU64::new(0)),
        };
        raster.stretch = match opts.scale {
            Some([min, max]) => vec![Stretch::Linear { min, max }; raster.bands.len()],
            None if data_type == GdalDataType::UInt8 => vec![Stretch::None; raster.bands.len()],
            None => raster.percentile_stretch()?,
        };
        Ok(raster)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A GDAL error of this raster with the in-memory path replaced by [`Raster::path`].
    pub fn renamed(&self, e: gdal::errors::GdalError) -> gdal::errors::GdalError {
        renamed(e, &self.gdal_path, &self.path)
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// GDAL's driver (`GTiff`, `JP2OpenJPEG`, ...).
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The bands read (1-based).
    pub fn bands(&self) -> &[usize] {
        &self.bands
    }

    /// The raster's block size (tile or strip), which windows are read through.
    pub fn block_size(&self) -> (usize, usize) {
        self.block
    }

    /// The `[min, max]` mapped to 0 and 255 per band (`None` for 8-bit bands read as they are).
    pub fn stretch(&self) -> Vec<Option<[f64; 2]>> {
        self.stretch
            .iter()
            .map(|s| match *s {
                Stretch::None => None,
                Stretch::Linear { min, max } => Some([min, max]),
            })
            .collect()
    }

    /// Bytes and blocks read so far.
    pub fn counters(&self) -> ReadCounters {
        ReadCounters {
            bytes: self.counters.0.load(Ordering::Relaxed),
            blocks: self.counters.1.load(Ordering::Relaxed),
        }
    }

    /// Drops this raster's blocks from GDAL's block cache (its bands, masks and overviews), once its slices are read:
    /// the rules, graph and outputs of a large raster then run without a full cache beside them. Later reads (a
    /// preview) fill it again.
    pub fn release_cache(&self) {
        // Read-only: nothing to write back, so flushing only frees the blocks.
        let _ = self.lock().flush_cache();
    }

    /// True when the raster has more pixels than `opts.window_above_pixels` (read window by window).
    pub fn windowed(&self, opts: &RasterOptions) -> bool {
        u64::from(self.width) * u64::from(self.height) > opts.window_above_pixels
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Dataset> {
        // A panic while reading cannot leave the dataset inconsistent for GDAL: keep using it.
        self.dataset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `(x, y, w, h)` into `(bw, bh)` values per band, as `f64` or `u8`, and the mask when there is one.
    fn read_bands(
        &self,
        (x, y, w, h): (u32, u32, u32, u32),
        (bw, bh): (u32, u32),
        mask: bool,
    ) -> Result<BandsAndMask, RasterError> {
        let window = format!("{w}x{h}+{x}+{y}");
        if u64::from(bw) * u64::from(bh) > self.max_window_pixels
            || x.checked_add(w).is_none_or(|e| e > self.width)
            || y.checked_add(h).is_none_or(|e| e > self.height)
        {
            return Err(RasterError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "window {window} is outside the {}x{} raster or larger than raster.max_window_mib",
                    self.width, self.height
                ),
            });
        }
        let ds = self.lock();
        let n = bw as usize * bh as usize;
        let err = |source| RasterError::Read {
            path: self.path.clone(),
            window: window.clone(),
            source: Box::new(self.renamed(source)),
        };
        let alg = if (bw, bh) == (w, h) {
            None
        } else {
            Some(ResampleAlg::Average)
        };
        let mut out = Vec::with_capacity(self.bands.len());
        for (i, &b) in self.bands.iter().enumerate() {
            let band = ds.rasterband(b).map_err(err)?;
            let mut px = vec![0u8; n];
            if self.stretch[i] == Stretch::None && self.data_type == GdalDataType::UInt8 {
                band.read_into_slice::<u8>(
                    (x as isize, y as isize),
                    (w as usize, h as usize),
                    (bw as usize, bh as usize),
                    &mut px,
                    alg,
                )
                .map_err(err)?;
            } else {
                let mut v = vec![0f64; n];
                band.read_into_slice::<f64>(
                    (x as isize, y as isize),
                    (w as usize, h as usize),
                    (bw as usize, bh as usize),
                    &mut v,
                    alg,
                )
                .map_err(err)?;
                let s = self.stretch[i];
                for (p, v) in px.iter_mut().zip(&v) {
                    *p = s.apply(*v);
                }
            }
            out.push(px);
        }
        let mask = if mask && self.masked {
            let band = ds.rasterband(self.bands[0]).map_err(err)?;
            let m = band.open_mask_band().map_err(err)?;
            let mut px = vec![0u8; n];
            m.read_into_slice::<u8>(
                (x as isize, y as isize),
                (w as usize, h as usize),
                (bw as usize, bh as usize),
                &mut px,
                None,
            )
            .map_err(err)?;
            Some(px)
        } else {
            None
        };
        drop(ds);
        let (bx, by) = (self.block.0.max(1) as u64, self.block.1.max(1) as u64);
        let blocks_x = (u64::from(x) + u64::from(w)).div_ceil(bx) - u64::from(x) / bx;
        let blocks_y = (u64::from(y) + u64::from(h)).div_ceil(by) - u64::from(y) / by;
        self.counters.0.fetch_add(
            n as u64 * self.bands.len() as u64 * dtype_bytes(self.data_type),
            Ordering::Relaxed,
        );
        self.counters.1.fetch_add(
            blocks_x * blocks_y * self.bands.len() as u64,
            Ordering::Relaxed,
        );
        Ok((out, mask))
    }

    fn to_rgb(&self, bands: Vec<Vec<u8>>, w: u32, h: u32) -> RgbImage {
        let n = w as usize * h as usize;
        let mut raw = vec![0u8; 3 * n];
        if bands.len() == 1 {
            for (px, &v) in raw.chunks_exact_mut(3).zip(&bands[0]) {
                px.fill(v);
            }
        } else {
            for (i, px) in raw.chunks_exact_mut(3).enumerate() {
                px[0] = bands[0][i];
                px[1] = bands[1][i];
                px[2] = bands[2][i];
            }
        }
        RgbImage::from_raw(w, h, raw).expect("3 bytes per pixel")
    }

    /// The window `(x, y, w, h)` at full resolution as 8-bit RGB, or `None` when no pixel of it holds data.
    /// Invalid pixels of a partly valid window are kept as they are stored (as the image crate decodes them).
    pub fn read_window(
        &self,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
    ) -> Result<Option<RgbImage>, RasterError> {
        let (bands, mask) = self.read_bands((x, y, w, h), (w, h), true)?;
        if mask.is_some_and(|m| m.iter().all(|&v| v == 0)) {
            return Ok(None);
        }
        Ok(Some(self.to_rgb(bands, w, h)))
    }

    /// The whole raster resampled (GDAL's average, from an overview when the file has one) to `w x h`.
    pub fn read_decimated(&self, w: u32, h: u32) -> Result<RgbImage, RasterError> {
        let (bands, _) = self.read_bands((0, 0, self.width, self.height), (w, h), false)?;
        Ok(self.to_rgb(bands, w, h))
    }

    /// The whole raster, when it fits in memory (`read_window` of everything; no-data pixels as stored).
    pub fn read_all(&self) -> Result<RgbImage, RasterError> {
        let (bands, _) = self.read_bands(
            (0, 0, self.width, self.height),
            (self.width, self.height),
            false,
        )?;
        Ok(self.to_rgb(bands, self.width, self.height))
    }

    /// The per-band 2nd and 98th percentiles of a decimated read (at most 1024 pixels a side), ignoring masked
    /// pixels; a band with a single value maps it to 0..value.
    fn percentile_stretch(&self) -> Result<Vec<Stretch>, RasterError> {
        let scale = (1024.0 / f64::from(self.width.max(self.height))).min(1.0);
        let bw = ((f64::from(self.width) * scale).round() as u32).max(1);
        let bh = ((f64::from(self.height) * scale).round() as u32).max(1);
        let ds = self.lock();
        let n = bw as usize * bh as usize;
        let err = |source| RasterError::Read {
            path: self.path.clone(),
            window: format!("{bw}x{bh} overview"),
            source: Box::new(self.renamed(source)),
        };
        let alg = (scale < 1.0).then_some(ResampleAlg::NearestNeighbour);
        let read = |band: &gdal::raster::RasterBand, mask: bool| -> Result<Vec<f64>, RasterError> {
            let mut v = vec![0f64; n];
            if mask {
                let m = band.open_mask_band().map_err(err)?;
                let mut u = vec![0u8; n];
                m.read_into_slice::<u8>(
                    (0, 0),
                    (self.width as usize, self.height as usize),
                    (bw as usize, bh as usize),
                    &mut u,
                    alg,
                )
                .map_err(err)?;
                return Ok(u.into_iter().map(f64::from).collect());
            }
            band.read_into_slice::<f64>(
                (0, 0),
                (self.width as usize, self.height as usize),
                (bw as usize, bh as usize),
                &mut v,
                alg,
            )
            .map_err(err)?;
            Ok(v)
        };
        let first = ds.rasterband(self.bands[0]).map_err(err)?;
        let valid = if self.masked {
            Some(read(&first, true)?)
        } else {
            None
        };
        let mut out = Vec::new();
        for &b in &self.bands {
            let band = ds.rasterband(b).map_err(err)?;
            let mut v: Vec<f64> = read(&band, false)?
                .into_iter()
                .enumerate()
                .filter(|(i, v)| v.is_finite() && valid.as_ref().is_none_or(|m| m[*i] > 0.0))
                .map(|(_, v)| v)
                .collect();
            v.sort_by(f64::total_cmp);
            let (min, max) = match (v.first(), v.last()) {
                (Some(_), Some(_)) => {
                    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
                    (at(0.02), at(0.98))
                }
                _ => (0.0, 255.0),
            };
            out.push(if max > min {
                Stretch::Linear { min, max }
            } else {
                Stretch::Linear {
                    min: min.min(0.0),
                    max: if max > 0.0 { max } else { 1.0 },
                }
            });
        }
        Ok(out)
    }
}

/// Red, green and blue by colour interpretation; else 1, 2, 3; else 1.
fn default_bands(ds: &Dataset, count: usize) -> Vec<usize> {
    use gdal::raster::ColorInterpretation as C;
    let find = |want: C| {
        (1..=count).find(|&i| {
            ds.rasterband(i)
                .map(|b| b.color_interpretation() == want)
                .unwrap_or(false)
        })
    };
    if let (Some(r), Some(g), Some(b)) = (find(C::RedBand), find(C::GreenBand), find(C::BlueBand)) {
        return vec![r, g, b];
    }
    if count >= 3 { vec![1, 2, 3] } else { vec![1] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gdal::DriverManager;

    /// The `geotiff` fuzz target's first crash (fuzz/regressions/geotiff/empty): empty bytes handed to GDAL.
    #[test]
    fn an_empty_memory_file_is_refused_not_handed_to_gdal() {
        let e = MemFile::new(Vec::new(), "request.tif").unwrap_err();
        assert_eq!(e.to_string(), "request.tif: the file is empty (0 bytes)");
        let f = MemFile::new(vec![1, 2, 3], "request.tif").unwrap();
        let e = Raster::open(f.path(), &RasterOptions::default()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", f.path().display())),
            "{e}"
        );
        drop(f);
    }

    /// A `w x h` GeoTIFF in EPSG:32633 with 0.5 m pixels, bands filled by `f(band, x, y)`.
    fn geotiff<T: gdal::raster::GdalType + Copy>(
        path: &Path,
        w: usize,
        h: usize,
        bands: usize,
        nodata: Option<f64>,
        f: impl Fn(usize, usize, usize) -> T,
    ) {
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut ds = driver
            .create_with_band_type::<T, _>(path, w, h, bands)
            .unwrap();
        ds.set_geo_transform(&[500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5])
            .unwrap();
        ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(32633).unwrap())
            .unwrap();
        for b in 1..=bands {
            let mut band = ds.rasterband(b).unwrap();
            if let Some(n) = nodata {
                band.set_no_data_value(Some(n)).unwrap();
            }
            let data: Vec<T> = (0..w * h).map(|i| f(b, i % w, i / w)).collect();
            let mut buf = gdal::raster::Buffer::new((w, h), data);
            band.write((0, 0), (w, h), &mut buf).unwrap();
        }
    }

    #[test]
    fn windows_are_rgb_and_16_bit_is_stretched_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tif");
        // Band b holds 257 * (x + 10 b): with --scale 0,65535 that is x + 10 b exactly.
        geotiff::<u16>(&p, 40, 30, 4, None, |b, x, _| (257 * (x + 10 * b)) as u16);
        let opts = RasterOptions {
            bands: Some(vec![3, 2, 1]),
            scale: Some([0.0, 65535.0]),
            ..Default::default()
        };
        let r = Raster::open(&p, &opts).unwrap();
        assert_eq!(
            (r.size(), r.bands(), r.driver()),
            ((40, 30), &[3, 2, 1][..], "GTiff")
        );
        let img = r.read_window(5, 7, 4, 2).unwrap().unwrap();
        assert_eq!(img.dimensions(), (4, 2));
        assert_eq!(img.get_pixel(0, 0).0, [35, 25, 15]);
        assert_eq!(img.get_pixel(3, 1).0, [38, 28, 18]);
        let c = r.counters();
        assert_eq!(c.bytes, 4 * 2 * 3 * 2, "8 pixels, 3 bands, 2 bytes");
        assert!(c.blocks >= 3);
        // The default stretch: each band's 2nd-98th percentile onto 0..255.
        let r = Raster::open(&p, &RasterOptions::default()).unwrap();
        assert_eq!(r.bands(), &[1, 2, 3]);
        let s = r.stretch();
        let [lo, hi] = s[0].unwrap();
        assert!(
            lo >= 257.0 * 10.0 && hi <= 257.0 * 49.0 && lo < hi,
            "{lo} {hi}"
        );
        let img = r.read_window(0, 0, 40, 1).unwrap().unwrap();
        assert_eq!(img.get_pixel(0, 0).0[0], 0);
        assert_eq!(img.get_pixel(39, 0).0[0], 255);
        // A window outside the raster is an error, not a panic.
        let e = r.read_window(30, 0, 20, 5).unwrap_err().to_string();
        assert!(
            e.contains("window 20x5+30+0 is outside the 40x30 raster"),
            "{e}"
        );
    }

    #[test]
    fn nodata_windows_are_skipped_and_bad_bands_and_sizes_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.tif");
        // The left half is nodata (0).
        geotiff::<u8>(
            &p,
            64,
            16,
            3,
            Some(0.0),
            |_, x, _| if x < 32 { 0 } else { 200 },
        );
        let r = Raster::open(&p, &RasterOptions::default()).unwrap();
        assert!(
            r.read_window(0, 0, 32, 16).unwrap().is_none(),
            "all nodata: skipped"
        );
        assert!(
            r.read_window(16, 0, 32, 16).unwrap().is_some(),
            "partly valid: read"
        );
        let bad = RasterOptions {
            bands: Some(vec![1, 2, 5]),
            ..Default::default()
        };
        let e = Raster::open(&p, &bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: band 5 does not exist (the raster has 3 bands)",
                p.display()
            )
        );
        let small = RasterOptions {
            max_pixels: 1000,
            ..Default::default()
        };
        let e = Raster::open(&p, &small).unwrap_err().to_string();
        assert!(e.ends_with("the raster declares 64 x 16 pixels (1.024e3), more than the limit of 1.000e3 (raster.max_pixels, --max-raster-pixels)"), "{e}");
        let text = dir.path().join("t.tif");
        std::fs::write(&text, "not a raster").unwrap();
        let e = Raster::open(&text, &RasterOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: not an image (no raster format recognised it)",
                text.display()
            )
        );
    }

    #[test]
    fn projected_georeferencing_and_map_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.tif");
        geotiff::<u8>(&p, 100, 80, 3, None, |_, _, _| 128);
        let r = Raster::open(&p, &RasterOptions::default()).unwrap();
        let g = georeference(&r).unwrap().unwrap();
        assert_eq!(g.crs, "EPSG:32633");
        assert_eq!(g.gsd, Some(0.5));
        let d = nsod_types::Detection::new(
            1,
            "ship",
            0.5,
            nsod_types::BBox::new(10.0, 20.0, 30.0, 24.0),
        );
        let fp = georef::footprints(
            &g,
            std::slice::from_ref(&d),
            &[0.4],
            vec![vec!["r(1)".into()]],
        )
        .unwrap();
        assert_eq!(fp[0].map[0], [500005.0, 4999990.0]);
        assert_eq!(fp[0].map[2], [500015.0, 4999988.0]);
        // UTM 33N, easting 500000 is the central meridian, 15 E.
        assert!(
            (fp[0].lonlat[0][0] - 15.0).abs() < 1e-3 && (fp[0].lonlat[0][1] - 45.1).abs() < 0.1
        );
        // The map outputs from records: one feature, a counter-clockwise closed ring.
        let rec = nsod_types::formats::jsonl::ImagePredictions {
            image: "g.tif".into(),
            width: 100,
            height: 80,
            detections: vec![d],
            geo: Some(nsod_types::geo::ImageGeo {
                georef: g,
                footprints: fp,
            }),
        };
        let plain = nsod_types::formats::jsonl::ImagePredictions {
            geo: None,
            image: "plain.png".into(),
            ..rec.clone()
        };
        let s = export::write([plain.clone(), rec], dir.path())
            .unwrap()
            .unwrap();
        assert_eq!((s.images, s.features, s.crs.as_str()), (1, 1, "EPSG:32633"));
        let fc: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(export::GEOJSON)).unwrap(),
        )
        .unwrap();
        let ring = fc["features"][0]["geometry"]["coordinates"][0]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(ring.len(), 5);
        assert_eq!(ring[0], ring[4]);
        assert_eq!(fc["features"][0]["properties"]["rules"][0], "r(1)");
        let pts: Vec<[f64; 2]> = ring
            .iter()
            .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
            .collect();
        assert!(export::signed_area(&pts[..4]) > 0.0, "counter-clockwise");
        let ds = gdal::Dataset::open(dir.path().join(export::GPKG)).unwrap();
        let layer = ds.layer_by_name(export::LAYER).unwrap();
        use gdal::vector::LayerAccess;
        assert_eq!(layer.feature_count(), 1);
        // Without georeferenced records, nothing (and no stale file).
        assert_eq!(export::write([plain], dir.path()).unwrap(), None);
        assert!(
            !dir.path().join(export::GEOJSON).exists() && !dir.path().join(export::GPKG).exists()
        );
    }

    #[test]
    fn ccw_ring_closes_and_orients() {
        let cw = [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]];
        let r = export::ccw_ring(&cw);
        assert_eq!(r.len(), 5);
        assert_eq!(r[0], r[4]);
        assert!(export::signed_area(&r[..4]) > 0.0);
    }

    /// The body driver list alone refuses every format that names other files (issue: a VRT body made the server
    /// read its own files): each family is written by GDAL's own driver, opened from its file with the file list
    /// (so GDAL would read it), and refused as a body, from its bytes, by the body list, with the format named.
    #[test]
    fn bodies_open_only_with_self_contained_drivers() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.tif");
        geotiff::<u8>(&src, 16, 16, 1, None, |_, x, y| (x * 16 + y) as u8);
        let opts = RasterOptions::default();
        // (driver, file written, the file sent as a body, the name refused_body_format gives)
        let families = [
            ("ENVI", "c.envi", "c.hdr", "an ENVI header"),
            ("HFA", "a.img", "a.img", "an ERDAS Imagine (HFA) file"),
            ("ERS", "b.ers", "b.ers", "an ER Mapper (ERS) header"),
            ("PCIDSK", "d.pix", "d.pix", "a PCIDSK file"),
            ("ISIS3", "e.lbl", "e.lbl", "an ISIS3 cube"),
            ("PDS4", "f.xml", "f.xml", "a PDS4 label"),
            ("RST", "g.rst", "g.rdc", "an Idrisi (RST) header"),
            ("SAGA", "h.sdat", "h.sgrd", "a SAGA grid header"),
            ("NITF", "i.ntf", "i.ntf", "a NITF file"),
            (
                "JP2OpenJPEG",
                "j.jp2",
                "j.jp2",
                "a JPEG 2000 file (the system's OpenJPEG library aborts the process on some damaged files; \
                 convert it with gdal_translate -of COG)",
            ),
        ];
        for (driver, written, body, name) in families {
            let path = dir.path().join(written);
            let d = DriverManager::get_driver_by_name(driver).unwrap();
            if driver == "JP2OpenJPEG" {
                // A copy-only driver.
                Dataset::open(&src)
                    .unwrap()
                    .create_copy(&d, &path, &Default::default())
                    .unwrap();
            } else {
                let ds = d
                    .create_with_band_type::<u8, _>(&path, 16, 16, 1)
                    .unwrap_or_else(|e| panic!("{driver}: {e}"));
                let mut buf = gdal::raster::Buffer::new((16, 16), vec![7u8; 256]);
                ds.rasterband(1)
                    .unwrap()
                    .write((0, 0), (16, 16), &mut buf)
                    .unwrap();
            }
            let opened = Raster::open(&path, &opts).unwrap_or_else(|e| panic!("{driver}: {e}"));
            assert_eq!(opened.driver(), driver);
            let bytes = std::fs::read(dir.path().join(body)).unwrap();
            assert_eq!(refused_body_format(&bytes), Some(name), "{driver}");
            let mem = MemFile::new(bytes, body).unwrap();
            let e = Raster::open_body(&mem, body, &opts).unwrap_err();
            assert!(
                matches!(e, RasterError::Open { .. })
                    && e.to_string().starts_with(&format!("{body}: ")),
                "{driver}: {e}"
            );
        }
        // A VRT naming a file GDAL would read, and the self-contained formats a body may be.
        let vrt = dir.path().join("m.vrt");
        std::fs::write(
            &vrt,
            format!(
                "<VRTDataset rasterXSize=\"16\" rasterYSize=\"16\"><VRTRasterBand dataType=\"Byte\" band=\"1\">\
                 <SimpleSource><SourceFilename>{}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>\
                 </VRTRasterBand></VRTDataset>",
                src.display()
            ),
        )
        .unwrap();
        assert_eq!(Raster::open(&vrt, &opts).unwrap().driver(), "VRT");
        let bytes = std::fs::read(&vrt).unwrap();
        assert_eq!(
            refused_body_format(&bytes),
            Some("a GDAL virtual raster (VRT)")
        );
        let mem = MemFile::new(bytes, "m.vrt").unwrap();
        assert!(Raster::open_body(&mem, "m.vrt", &opts).is_err());
        for (driver, file) in [("GTiff", "s.tif"), ("PNG", "s.png"), ("JPEG", "s.jpg")] {
            let path = dir.path().join(file);
            let d = DriverManager::get_driver_by_name(driver).unwrap();
            Dataset::open(&src)
                .unwrap()
                .create_copy(&d, &path, &Default::default())
                .unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(refused_body_format(&bytes), None, "{driver}");
            let mem = MemFile::new(bytes, file).unwrap();
            let r =
                Raster::open_body(&mem, file, &opts).unwrap_or_else(|e| panic!("{driver}: {e}"));
            assert_eq!(
                (r.driver(), r.size(), r.path()),
                (driver, (16, 16), Path::new(file))
            );
        }
    }

    /// Bytes get unpredictable in-memory names (a body naming another request's buffer cannot guess it).
    #[test]
    fn memory_files_have_unpredictable_names() {
        let a = MemFile::new(vec![1], "a.tif").unwrap();
        let b = MemFile::new(vec![1], "a.tif").unwrap();
        let (a, b) = (
            a.path().to_string_lossy().into_owned(),
            b.path().to_string_lossy().into_owned(),
        );
        assert_ne!(a, b);
        let key = |p: &str| {
            p.trim_start_matches("/vsimem/nsod-")
                .split('-')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(key(&a).len(), 32, "{a}");
        assert_ne!(
            key(&a),
            key(&b),
            "128 random bits each, not a counter: {a} {b}"
        );
    }

    /// The user's own files keep their sidecars (GDAL's `.aux.xml` and a world file georeference a PNG); the same
    /// bytes as a body look for none, even with sidecars of its in-memory name beside it.
    #[test]
    fn sidecars_are_found_for_files_never_for_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let tif = dir.path().join("a.tif");
        geotiff::<u8>(&tif, 16, 16, 3, None, |b, x, y| (b + x + y) as u8);
        let png = dir.path().join("a.png");
        let d = DriverManager::get_driver_by_name("PNG").unwrap();
        Dataset::open(&tif)
            .unwrap()
            .create_copy(&d, &png, &Default::default())
            .unwrap();
        let aux = std::fs::read(dir.path().join("a.png.aux.xml"))
            .expect("GDAL writes the CRS beside a PNG");
        std::fs::write(
            dir.path().join("a.pgw"),
            "0.5\n0\n0\n-0.5\n500000.25\n4000000.25\n",
        )
        .unwrap();
        let opts = RasterOptions::default();
        let r = Raster::open(&png, &opts).unwrap();
        let geo = georeference(&r)
            .unwrap()
            .expect("the sidecars georeference the PNG");
        assert_eq!(geo.crs, "EPSG:32633");
        let mem = MemFile::new(std::fs::read(&png).unwrap(), "a.png").unwrap();
        let mut aux_path = mem.path().as_os_str().to_owned();
        aux_path.push(".aux.xml");
        let sidecars = [PathBuf::from(aux_path), mem.path().with_extension("pgw")];
        gdal::vsi::create_mem_file(&sidecars[0], aux).unwrap();
        gdal::vsi::create_mem_file(&sidecars[1], b"1\n0\n0\n-1\n10\n10\n".to_vec()).unwrap();
        let r = Raster::open_body(&mem, "a.png", &opts).unwrap();
        assert!(
            georeference(&r).unwrap().is_none(),
            "no sidecar read for a body"
        );
        // The same in-memory file opened as a file finds them: the difference is the body's open alone.
        let r = Raster::open(mem.path(), &opts).unwrap();
        assert!(georeference(&r).unwrap().is_some());
        for p in &sidecars {
            let _ = gdal::vsi::unlink_mem_file(p);
        }
    }
}
