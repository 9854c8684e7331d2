//! The decode stage: an image file becomes pixels in memory, or a raster read window by window.
//!
//! PNG, JPEG, WebP, BMP and GIF files up to `raster.window_above_pixels` are decoded by the image crate, as
//! before (fastest, and bit-identical to earlier runs); TIFF (GeoTIFF, BigTIFF, COG), JPEG 2000, VRT and every
//! larger image go through GDAL ([`nsod_raster::Raster`]): read whole when small, window by window otherwise.
//! Georeferencing comes from GDAL (the file's geotransform and CRS, or a world file / `.aux.xml` beside a PNG or
//! JPEG).

use image::RgbImage;
use nsod_detect::{DetectError, ImageSource, Region};
use nsod_raster::{Raster, RasterError, RasterOptions};
use nsod_types::geo::GeoRef;
use std::path::Path;

/// A decoded image, or a raster to read window by window.
#[derive(Debug)]
pub enum Pixels {
    Memory(RgbImage),
    Windowed(WindowedRaster),
}

/// A loaded input: its pixels and where it lies on the map.
#[derive(Debug)]
pub struct LoadedImage {
    pub pixels: Pixels,
    pub georef: Option<GeoRef>,
    /// The in-memory file a raster received as bytes is read from (kept as long as the raster).
    pub memory: Option<nsod_raster::MemFile>,
}

impl LoadedImage {
    /// An image already in memory, without georeferencing.
    pub fn memory(image: RgbImage) -> Self {
        Self {
            pixels: Pixels::Memory(image),
            georef: None,
            memory: None,
        }
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        match &self.pixels {
            Pixels::Memory(m) => m.dimensions(),
            Pixels::Windowed(r) => r.0.size(),
        }
    }

    /// Bytes and blocks read so far from a raster read window by window (zero for an image in memory).
    pub fn read_counters(&self) -> nsod_raster::ReadCounters {
        match &self.pixels {
            Pixels::Windowed(r) => r.0.counters(),
            Pixels::Memory(_) => Default::default(),
        }
    }

    /// The pixels as the pipelined detector reads them.
    pub fn stream_pixels(&self) -> nsod_detect::StreamPixels<'_> {
        match &self.pixels {
            Pixels::Memory(m) => nsod_detect::StreamPixels::Memory(m),
            Pixels::Windowed(r) => nsod_detect::StreamPixels::Source(r),
        }
    }

    /// The image for annotated outputs: the pixels in memory, or the raster decimated so that its longer side is
    /// at most `max_side`.
    pub fn preview(&self, max_side: u32) -> Result<Option<RgbImage>, RasterError> {
        match &self.pixels {
            Pixels::Memory(_) => Ok(None),
            Pixels::Windowed(r) => {
                let (w, h) = r.0.size();
                let s = (f64::from(max_side) / f64::from(w.max(h))).min(1.0);
                let pw = ((f64::from(w) * s).round() as u32).max(1);
                let ph = ((f64::from(h) * s).round() as u32).max(1);
                r.0.read_decimated(pw, ph).map(Some)
            }
        }
    }
}

/// A GDAL raster as the detector's [`ImageSource`].
#[derive(Debug)]
pub struct WindowedRaster(pub Raster);

fn detect_error(e: RasterError) -> DetectError {
    let path = e_path(&e);
    DetectError::Image {
        path,
        message: "cannot read".into(),
        source: Some(Box::new(strip(e))),
    }
}

fn e_path(e: &RasterError) -> std::path::PathBuf {
    match e {
        RasterError::Open { path, .. }
        | RasterError::Invalid { path, .. }
        | RasterError::Read { path, .. }
        | RasterError::Georef { path, .. }
        | RasterError::Write { path, .. } => path.clone(),
    }
}

impl ImageSource for WindowedRaster {
    fn size(&self) -> (u32, u32) {
        self.0.size()
    }

    fn read(&self, r: Region) -> Result<Option<RgbImage>, DetectError> {
        self.0
            .read_window(r.x, r.y, r.width, r.height)
            .map_err(detect_error)
    }

    fn read_decimated(&self, width: u32, height: u32) -> Result<RgbImage, DetectError> {
        self.0.read_decimated(width, height).map_err(detect_error)
    }
}

/// World files and GDAL's sidecar that georeference a PNG or JPEG.
fn has_sidecar(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let world: &[&str] = match ext.as_str() {
        "png" => &["pgw", "pngw", "wld"],
        "jpg" | "jpeg" => &["jgw", "jpgw", "wld"],
        _ => &["wld"],
    };
    let mut aux = path.as_os_str().to_owned();
    aux.push(".aux.xml");
    Path::new(&aux).is_file()
        || world.iter().any(|w| {
            path.with_extension(w).is_file()
                || path.with_extension(w.to_ascii_uppercase()).is_file()
        })
}

fn image_error(
    path: &Path,
    message: &str,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> DetectError {
    DetectError::Image {
        path: path.to_path_buf(),
        message: message.into(),
        source,
    }
}

/// The image crate's decode of a PNG, JPEG, WebP, BMP or GIF up to the window threshold, read through `open` (called
/// twice: once for the size, once to decode). `hint` is the format a file's extension names (the content wins
/// when it is recognised, as `ImageReader::open` does). `Ok((None, recognised))` when the content is another format or the
/// image is larger (GDAL reads it); `recognised` says whether the image crate knew the format at all.
fn decode_small<R: std::io::BufRead + std::io::Seek>(
    open: impl Fn() -> std::io::Result<R>,
    hint: Option<image::ImageFormat>,
    path: &Path,
    opts: &RasterOptions,
) -> Result<(Option<RgbImage>, bool), DetectError> {
    use image::ImageFormat as F;
    let cannot_read = |e: std::io::Error| image_error(path, "cannot read", Some(Box::new(e)));
    let guessed = || -> Result<image::ImageReader<R>, DetectError> {
        let mut r = image::ImageReader::new(open().map_err(cannot_read)?);
        if let Some(f) = hint {
            r.set_format(f);
        }
        r.with_guessed_format().map_err(cannot_read)
    };
    let reader = guessed()?;
    let format = reader.format();
    if !matches!(format, Some(F::Png | F::Jpeg | F::WebP | F::Bmp | F::Gif)) {
        return Ok((None, format.is_some()));
    }
    let dims = guessed().ok().and_then(|r| r.into_dimensions().ok());
    let Some((w, h)) =
        dims.filter(|(w, h)| u64::from(*w) * u64::from(*h) <= opts.window_above_pixels)
    else {
        return Ok((None, true));
    };
    let mut reader = reader;
    // The decoder's own allocation limit (512 MiB) would refuse images the raster options allow.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some((u64::from(w) * u64::from(h) * 8).max(512 << 20));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| image_error(path, "cannot decode image", Some(Box::new(e))))?
        .into_rgb8();
    Ok((Some(img), true))
}

/// Reads an input file: see the module documentation for which decoder reads what.
pub fn load(path: &Path, opts: &RasterOptions) -> Result<LoadedImage, DetectError> {
    let meta =
        std::fs::metadata(path).map_err(|e| image_error(path, "cannot read", Some(Box::new(e))))?;
    if meta.len() == 0 {
        return Err(image_error(path, "empty file", None));
    }
    let open = || std::fs::File::open(path).map(std::io::BufReader::new);
    let hint = image::ImageFormat::from_path(path).ok();
    let (img, recognised) = decode_small(open, hint, path, opts)?;
    if let Some(img) = img {
        let georef = if has_sidecar(path) {
            Raster::open(path, opts)
                .ok()
                .and_then(|r| nsod_raster::georeference(&r).ok().flatten())
        } else {
            None
        };
        return Ok(LoadedImage {
            pixels: Pixels::Memory(img),
            georef,
            memory: None,
        });
    }
    open_gdal(Raster::open(path, opts), path, recognised, opts)
}

/// A raster GDAL opened (errors name `path`): read whole below the window threshold, else windowed.
fn open_gdal(
    opened: Result<Raster, RasterError>,
    path: &Path,
    recognised: bool,
    opts: &RasterOptions,
) -> Result<LoadedImage, DetectError> {
    let raster = match opened {
        Ok(r) => r,
        Err(RasterError::Open { .. }) if !recognised => {
            return Err(image_error(
                path,
                "not an image (unrecognised content)",
                None,
            ));
        }
        Err(e @ RasterError::Invalid { .. }) => {
            return Err(image_error(
                path,
                "cannot use the raster",
                Some(Box::new(strip(e))),
            ));
        }
        Err(e) => {
            return Err(image_error(
                path,
                "cannot decode image",
                Some(Box::new(strip(e))),
            ));
        }
    };
    let georef = nsod_raster::georeference(&raster)
        .map_err(|e| image_error(path, "cannot georeference", Some(Box::new(strip(e)))))?;
    if raster.windowed(opts) {
        return Ok(LoadedImage {
            pixels: Pixels::Windowed(WindowedRaster(raster)),
            georef,
            memory: None,
        });
    }
    let img = raster
        .read_all()
        .map_err(|e| image_error(path, "cannot decode image", Some(Box::new(strip(e)))))?;
    Ok(LoadedImage {
        pixels: Pixels::Memory(img),
        georef,
        memory: None,
    })
}

/// Reads an image received as bytes (an HTTP body) named `name`: PNG, JPEG, WebP, BMP and GIF up to the window
/// threshold are decoded in memory; TIFF (GeoTIFF, COG) and larger images go through GDAL from an
/// in-memory file with an unpredictable name, with their georeferencing. Bytes are untrusted: GDAL opens them only
/// with the self-contained single-file drivers ([`nsod_raster::BODY_DRIVERS`]), so a body can never make the
/// process read another file or fetch a URL (a VRT, a header naming its data file); such formats are refused with
/// their name. Errors name `name`, never the in-memory file.
pub fn load_bytes(
    bytes: &[u8],
    name: &str,
    opts: &RasterOptions,
) -> Result<LoadedImage, DetectError> {
    let path = Path::new(name);
    if bytes.is_empty() {
        return Err(image_error(path, "empty file", None));
    }
    let (img, recognised) = decode_small(|| Ok(std::io::Cursor::new(bytes)), None, path, opts)?;
    if let Some(img) = img {
        return Ok(LoadedImage::memory(img));
    }
    if let Some(format) = nsod_raster::refused_body_format(bytes) {
        return Err(image_error(
            path,
            &format!(
                "{format} is not accepted as a request body: send the image itself (GeoTIFF, PNG, JPEG, WebP, BMP \
                 or GIF); formats that name other files or URLs are refused"
            ),
            None,
        ));
    }
    let mem = nsod_raster::MemFile::new(bytes.to_vec(), name)
        .map_err(|e| image_error(path, "cannot read", Some(Box::new(strip(e)))))?;
    let mut loaded = open_gdal(Raster::open_body(&mem, name, opts), path, recognised, opts)?;
    loaded.memory = Some(mem);
    Ok(loaded)
}

/// The raster error without its path (the image error that wraps it names the file already).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Cause {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

fn strip(e: RasterError) -> Cause {
    match e {
        RasterError::Open {
            message, source, ..
        } => Cause {
            message,
            source: source.map(|s| s as _),
        },
        RasterError::Invalid { message, .. } | RasterError::Write { message, .. } => Cause {
            message,
            source: None,
        },
        RasterError::Read { window, source, .. } => Cause {
            message: format!("window {window}"),
            source: Some(source as _),
        },
        RasterError::Georef {
            message, source, ..
        } => Cause {
            message,
            source: source.map(|s| s as _),
        },
    }
}
