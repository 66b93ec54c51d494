//! The pixels of a thumbnail: the upright image ingest already decoded for the model, scaled
//! with the model's own resampler and written as a small JPEG. Where thumbnails are stored is
//! `crate::thumbnail`'s business.

use image::RgbImage;

use super::model_dir::Resample;
use crate::{Error, Result};

/// Longest side of a thumbnail, in pixels (a smaller original keeps its size).
pub const THUMBNAIL_EDGE: u32 = 384;
/// JPEG quality: tiles of ~20-40 KB that still look sharp on a high-density screen.
const JPEG_QUALITY: i32 = 82;

/// The JPEG thumbnail of an upright image: its long side scaled down to at most `edge`.
pub fn encode_thumbnail(rgb: &RgbImage, edge: u32) -> Result<Vec<u8>> {
    let (w, h) = thumbnail_size(rgb.width(), rgb.height(), edge);
    // Pillow's bicubic, SIMD (the same resampler as the model's crops): a third of the time
    // of the image crate's triangle filter on a 2000×1500 decode.
    let small = super::preprocess::resize(rgb, w, h, Resample::Bicubic)?;
    let failed = |e: turbojpeg::Error| Error::Inference(format!("thumbnail encoding failed: {e}"));
    let mut compressor = turbojpeg::Compressor::new().map_err(failed)?;
    compressor.set_quality(JPEG_QUALITY).map_err(failed)?;
    compressor.set_subsamp(turbojpeg::Subsamp::Sub2x2).map_err(failed)?;
    compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: small.as_raw().as_slice(),
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .map_err(failed)
}

/// The size of the thumbnail of a `width`×`height` image: the long side at most `edge`, the
/// aspect ratio kept, no side below one pixel.
pub fn thumbnail_size(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= edge {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| ((side as u64 * edge as u64 + long as u64 / 2) / long as u64).max(1) as u32;
    (scale(width), scale(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_side_is_bounded_and_the_aspect_kept() {
        assert_eq!(thumbnail_size(4000, 3000, 384), (384, 288));
        assert_eq!(thumbnail_size(3000, 4000, 384), (288, 384));
        assert_eq!(thumbnail_size(200, 100, 384), (200, 100));
        assert_eq!(thumbnail_size(10_000, 10, 384), (384, 1));
    }

    #[test]
    fn a_thumbnail_is_a_small_jpeg_of_the_bounded_size() {
        let rgb = RgbImage::from_fn(1200, 900, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let jpeg = encode_thumbnail(&rgb, THUMBNAIL_EDGE).unwrap();
        let header = turbojpeg::read_header(&jpeg).unwrap();
        assert_eq!((header.width, header.height), (384, 288));
        assert!(jpeg.len() < 100_000, "{} bytes", jpeg.len());
    }
}
