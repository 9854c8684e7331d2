//! Raster headers through GDAL (`nsod_raster::Raster`): any bytes as a `.tif` in GDAL's memory file system
//! (how `nsod serve` opens request bodies), opened with nsod's limits, then a decimated read, a window and the
//! georeferencing: no panic; every error names the file; nothing allocates beyond the 2 GB limit (declared sizes
//! and blocks are checked before GDAL decodes them).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_raster::{MemFile, Raster, RasterOptions, georef};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = MemFile::new(data.to_vec(), "fuzz.tif") else {
        return;
    };
    let path = file.path().display().to_string();
    let opts = RasterOptions {
        cache_mib: 64,
        ..RasterOptions::default()
    };
    let names = |e: nsod_raster::RasterError| {
        let text = e.to_string();
        assert!(
            text.contains(&path),
            "the error does not name the file: {text}"
        );
    };
    let raster = match Raster::open(file.path(), &opts) {
        Ok(r) => r,
        Err(e) => return names(e),
    };
    let (w, h) = raster.size();
    assert!(w > 0 && h > 0);
    let (dw, dh) = (w.min(64), h.min(64));
    match raster.read_decimated(dw, dh) {
        Ok(img) => assert_eq!(img.dimensions(), (dw, dh)),
        Err(e) => names(e),
    }
    match raster.read_window(w / 2, h / 2, (w - w / 2).min(64), (h - h / 2).min(64)) {
        Ok(Some(img)) => assert_eq!(img.dimensions(), ((w - w / 2).min(64), (h - h / 2).min(64))),
        Ok(None) => {}
        Err(e) => names(e),
    }
    if let Err(e) = georef::georeference(&raster) {
        names(e)
    }
});
