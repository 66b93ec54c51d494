//! Upright RGB8 → the crop the model sees → a normalised CHW float tensor.
//!
//! Resizing uses `fast_image_resize`'s convolution, a SIMD port of Pillow's resampling
//! (same kernels, same antialiased support when downscaling, same 8-bit fixed point), so a
//! bicubic resize lands within about one level of `PIL.Image.resize(..., BICUBIC)`.

use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use super::model_dir::{shortest_edge_size, Preprocessing, Resample, ResizeTarget};
use crate::{Error, Result};

impl Preprocessing {
    /// Short side a JPEG may be reduced to in the DCT domain before resizing, 0 for "do not".
    ///
    /// Decoding at 1/2–1/8 scale averages 8×8 blocks before the bicubic pass; keeping at least
    /// this many pixels on the short side leaves the final, antialiased bicubic step to do the
    /// real downscaling (checked against the reference crops in tests/parity.rs).
    pub fn min_decode_short_side(&self) -> u32 {
        match self.resize {
            Some(ResizeTarget::ShortestEdge(s)) => s.saturating_mul(DCT_MARGIN),
            Some(ResizeTarget::Exact { width, height }) => width.max(height).saturating_mul(DCT_MARGIN),
            None => 0,
        }
    }

    /// Resize and centre-crop: the 8-bit image the model is shown.
    pub fn crop_u8(&self, rgb: &RgbImage) -> Result<RgbImage> {
        let resized = match self.resize {
            None => rgb.clone(),
            Some(target) => {
                let (w, h) = match target {
                    ResizeTarget::ShortestEdge(s) => shortest_edge_size(rgb.width(), rgb.height(), s),
                    ResizeTarget::Exact { width, height } => (width, height),
                };
                resize(rgb, w.max(1), h.max(1), self.resample)?
            }
        };
        Ok(match self.crop {
            Some((cw, ch)) => center_crop(&resized, cw, ch),
            None => resized,
        })
    }

    /// Writes the normalised CHW floats of `crop` into `out` (length 3 × w × h).
    pub fn normalize_into(&self, crop: &RgbImage, out: &mut [f32]) {
        let plane = crop.width() as usize * crop.height() as usize;
        debug_assert_eq!(out.len(), 3 * plane);
        let scale = self.rescale_factor.unwrap_or(1.0);
        // Per channel: ((v * scale) - mean) / std, in f32 as the reference computes it;
        // a 256-entry table per channel makes it one lookup per sample.
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                let x = v as f32 * scale;
                *slot = if self.normalize {
                    (x - self.mean[c]) / self.std[c]
                } else {
                    x
                };
            }
        }
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in crop.as_raw().chunks_exact(3).enumerate() {
            r[i] = lut[0][px[0] as usize];
            g[i] = lut[1][px[1] as usize];
            b[i] = lut[2][px[2] as usize];
        }
    }
}

/// Keep the DCT-reduced image at least 4× the resize target. DCT-domain scaling averages 8×8
/// blocks, which on blocky low-quality JPEGs differs visibly from Pillow's spatial antialiasing:
/// on the parity corpus's q60 photo, 1/2 scale gives a p99 crop error of 5 levels (Pillow's own
/// `draft` does the same), while at 4× the bicubic pass dominates and crops stay within ~0.2 level.
const DCT_MARGIN: u32 = 4;

fn filter(resample: Resample) -> ResizeAlg {
    match resample {
        Resample::Nearest => ResizeAlg::Nearest,
        Resample::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        Resample::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
        Resample::Lanczos => ResizeAlg::Convolution(FilterType::Lanczos3),
        Resample::Box => ResizeAlg::Convolution(FilterType::Box),
        Resample::Hamming => ResizeAlg::Convolution(FilterType::Hamming),
    }
}

/// Resizes as Pillow's `Image.resize` does (also used for thumbnails).
pub(crate) fn resize(rgb: &RgbImage, width: u32, height: u32, resample: Resample) -> Result<RgbImage> {
    let (src_w, src_h) = rgb.dimensions();
    if (width, height) == (src_w, src_h) {
        return Ok(rgb.clone());
    }
    // Pillow resamples horizontally first, then vertically, rounding to 8 bits in between.
    // `fast_image_resize` may pick the other order, which is equivalent in exact arithmetic but
    // not after the intermediate rounding and clipping: on strong upscales of noisy images
    // (17x9 → 423x224) the crops then differ by up to 20 levels. So: two explicit passes.
    if width != src_w && height != src_h {
        let horizontal = resize_pass(rgb, width, src_h, resample)?;
        return resize_pass(&horizontal, width, height, resample);
    }
    resize_pass(rgb, width, height, resample)
}

/// One `fast_image_resize` call; with only one dimension changing it is a single pass.
fn resize_pass(rgb: &RgbImage, width: u32, height: u32, resample: Resample) -> Result<RgbImage> {
    let resize_err = |e: &dyn std::fmt::Display| Error::Inference(format!("resize: {e}"));
    let src = fast_image_resize::images::ImageRef::new(rgb.width(), rgb.height(), rgb.as_raw(), PixelType::U8x3)
        .map_err(|e| resize_err(&e))?;
    let mut dst = FirImage::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(filter(resample)))
        .map_err(|e| resize_err(&e))?;
    RgbImage::from_raw(width, height, dst.into_vec()).ok_or_else(|| resize_err(&"buffer size"))
}

/// transformers' `center_crop`: offset `(size - crop) // 2`; a side shorter than the crop is
/// padded with zeros around the centre.
fn center_crop(img: &RgbImage, cw: u32, ch: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if (w, h) == (cw, ch) {
        return img.clone();
    }
    let top = (h as i64 - ch as i64).div_euclid(2);
    let left = (w as i64 - cw as i64).div_euclid(2);
    let mut out = RgbImage::new(cw, ch);
    for y in 0..ch as i64 {
        let sy = y + top;
        if sy < 0 || sy >= h as i64 {
            continue;
        }
        let x0 = left.max(0);
        let x1 = (left + cw as i64).min(w as i64);
        if x1 <= x0 {
            continue;
        }
        let src_row =
            &img.as_raw()[(sy as usize * w as usize + x0 as usize) * 3..(sy as usize * w as usize + x1 as usize) * 3];
        let dx = (x0 - left) as usize;
        let dst_start = (y as usize * cw as usize + dx) * 3;
        out.as_mut()[dst_start..dst_start + src_row.len()].copy_from_slice(src_row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_crop_offsets_like_transformers() {
        // 5x1 strip with values 0..5, crop 2 → offset (5-2)//2 = 1 → [1, 2]
        let img = RgbImage::from_fn(5, 1, |x, _| image::Rgb([x as u8; 3]));
        let c = center_crop(&img, 2, 1);
        assert_eq!(c.get_pixel(0, 0).0[0], 1);
        assert_eq!(c.get_pixel(1, 0).0[0], 2);
        // smaller than the crop: padded with zeros, image centred
        let c = center_crop(&img, 7, 1);
        assert_eq!(c.get_pixel(0, 0).0[0], 0);
        assert_eq!(c.get_pixel(1, 0).0[0], 0);
        assert_eq!(c.get_pixel(2, 0).0[0], 1);
    }
}
