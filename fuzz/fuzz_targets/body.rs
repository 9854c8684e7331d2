//! Request bodies as `nsod serve` reads them (`nsod_pipeline::source::load_bytes`): the image crate for small
//! PNG/JPEG/WebP/BMP/GIF, else GDAL from an in-memory file with the body driver list only
//! (`nsod_raster::BODY_DRIVERS`), then a decimated read and a window of a raster read window by window: no panic; a
//! raster is only ever opened by a body driver (never VRT or a format that names other files, whatever the bytes
//! say); every error names the request and never shows the in-memory file (`/vsimem/`); nothing allocates beyond
//! the 2 GB limit. Seeds: VRTs naming a server file, a `/vsimem/` buffer and a `/vsicurl/` URL, one body per refused
//! driver family, a truncated 60000 x 60000 PNG (a decompression bomb), small GeoTIFF, JPEG 2000 and PNG files.
//! Regressions: a damaged JPEG 2000 file on which OpenJPEG 2.5.0 aborts the process (JPEG 2000 bodies are refused).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_pipeline::{Pixels, error_chain};
use nsod_raster::RasterOptions;

const NAME: &str = "request-fuzz";

fn check(text: &str) {
    assert!(text.contains(NAME), "the error does not name the request: {text}");
    assert!(!text.contains("/vsimem/"), "the error shows the in-memory file: {text}");
}

fuzz_target!(|data: &[u8]| {
    let opts = RasterOptions {
        cache_mib: 64,
        ..RasterOptions::default()
    };
    let loaded = match nsod_pipeline::source::load_bytes(data, NAME, &opts) {
        Ok(l) => l,
        Err(e) => return check(&error_chain(&e)),
    };
    let (w, h) = loaded.size();
    assert!(w > 0 && h > 0);
    if let Pixels::Windowed(r) = &loaded.pixels {
        let raster = &r.0;
        assert!(
            nsod_raster::BODY_DRIVERS.contains(&raster.driver()),
            "a body opened by the {} driver",
            raster.driver()
        );
        let (dw, dh) = (w.min(64), h.min(64));
        if let Err(e) = raster.read_decimated(dw, dh) {
            check(&error_chain(&e));
        }
        if let Err(e) = raster.read_window(w / 2, h / 2, (w - w / 2).min(64), (h - h / 2).min(64)) {
            check(&error_chain(&e));
        }
    }
});
