//! Images that are read window by window (rasters larger than memory): the detector asks for each slice when it
//! runs it, and for a decimated copy of the whole image for SAHI's full-image pass.

use crate::DetectError;
use crate::preprocess::Region;
use image::RgbImage;

/// A readable image. Implementations must be safe to read from another thread (the next slices are read while
/// the model runs).
pub trait ImageSource: Sync {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);

    /// `region` at full resolution as 8-bit RGB, or `None` when it holds no data (all nodata or transparent): the
    /// slice is skipped.
    fn read(&self, region: Region) -> Result<Option<RgbImage>, DetectError>;

    /// The whole image resampled to exactly `width x height` (an overview when the source has one), for the
    /// full-image pass.
    fn read_decimated(&self, width: u32, height: u32) -> Result<RgbImage, DetectError>;
}

/// An image in memory is a source too (tests and small rasters).
impl ImageSource for RgbImage {
    fn size(&self) -> (u32, u32) {
        self.dimensions()
    }

    fn read(&self, r: Region) -> Result<Option<RgbImage>, DetectError> {
        if r.x.saturating_add(r.width) > self.width()
            || r.y.saturating_add(r.height) > self.height()
        {
            return Err(DetectError::Output(format!(
                "region {}x{}+{}+{} is outside the {}x{} image",
                r.width,
                r.height,
                r.x,
                r.y,
                self.width(),
                self.height()
            )));
        }
        Ok(Some(
            image::imageops::crop_imm(self, r.x, r.y, r.width, r.height).to_image(),
        ))
    }

    fn read_decimated(&self, width: u32, height: u32) -> Result<RgbImage, DetectError> {
        Ok(image::imageops::resize(
            self,
            width,
            height,
            image::imageops::FilterType::Triangle,
        ))
    }
}
