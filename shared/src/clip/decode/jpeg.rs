//! JPEGs through libjpeg-turbo (the decoder inside Pillow): reduced DCT scales for images far
//! larger than the model needs, EXIF orientation from the APP1 segment, CMYK/YCCK converted as
//! Pillow does, and libjpeg's warnings sorted into benign and corrupt.

use image::metadata::Orientation;
use image::RgbImage;

use super::{check_pixels, corrupt, is_rotated, DecodeLimits, DecodedImage, SniffedFormat};
use std::io::Cursor;

use crate::clip::budget::{decode_cost, DecodeBudget, Reservation};
use crate::Result;

pub(super) fn decode_jpeg(
    bytes: &[u8],
    limits: DecodeLimits,
    min_short_side: u32,
    budget: &DecodeBudget,
) -> Result<DecodedImage> {
    let format = SniffedFormat::Jpeg;
    let mut decompressor = turbojpeg::Decompressor::new().map_err(|e| corrupt(format, e))?;
    let header = decompressor.read_header(bytes).map_err(|e| corrupt(format, e))?;
    let (full_w, full_h) = (header.width as u32, header.height as u32);
    check_pixels(full_w, full_h, limits)?;
    let orientation = jpeg_exif(bytes)
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    if matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    ) {
        // TurboJPEG cannot turn CMYK into RGB; these print-shop files are rare enough that the
        // slower pure-Rust decoder is fine.
        // jpeg-decoder's CMYK samples (4 bytes a pixel) at full size, then the RGB copy.
        let pixels = full_w as u64 * full_h as u64;
        let held = budget.reserve(decode_cost(
            bytes.len() as u64,
            pixels,
            pixels * 4,
            is_rotated(orientation),
        ))?;
        return decode_cmyk_jpeg(bytes, orientation, (full_w, full_h), held);
    }
    if min_short_side > 0 && !header.is_lossless {
        let scale = dct_scale(full_w.min(full_h), min_short_side);
        decompressor
            .set_scaling_factor(turbojpeg::ScalingFactor::new(1, scale))
            .map_err(|e| corrupt(format, e))?;
    }
    let scaled = header.scaled(decompressor.scaling_factor());
    let (w, h) = (scaled.width, scaled.height);
    // The output buffer is the RGB image itself. A progressive JPEG also keeps every DCT
    // coefficient of the full-size frame (2 bytes a sample) whatever the output scale.
    let coefficients = if jpeg_is_progressive(bytes) {
        let bytes_per_pixel = match header.subsamp {
            turbojpeg::Subsamp::Gray => 2,
            turbojpeg::Subsamp::Sub2x1 | turbojpeg::Subsamp::Sub1x2 => 4,
            turbojpeg::Subsamp::Sub2x2 | turbojpeg::Subsamp::Sub4x1 | turbojpeg::Subsamp::Sub1x4 => 3,
            _ => 6,
        };
        full_w as u64 * full_h as u64 * bytes_per_pixel
    } else {
        0
    };
    let held = budget.reserve(decode_cost(
        bytes.len() as u64,
        w as u64 * h as u64,
        coefficients,
        is_rotated(orientation),
    ))?;
    let mut pixels = vec![0u8; w * h * 3];
    let image = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    };
    if let Err(e) = decompressor.decompress(bytes, image) {
        let message = e.to_string();
        if !is_benign_libjpeg_warning(&message) {
            return Err(corrupt(format, message));
        }
        tracing::debug!(%message, "JPEG decoded with a libjpeg warning");
    }
    upright((w as u32, h as u32), pixels, orientation, (full_w, full_h), held)
}

/// Largest of 8, 4, 2, 1 that keeps the short side at least `min_short_side` (the choice
/// Pillow's `draft` makes).
fn dct_scale(short_side: u32, min_short_side: u32) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|&s| short_side / s >= min_short_side)
        .unwrap_or(1) as usize
}

/// libjpeg reports recoverable damage as warnings and still produces the image, as Pillow
/// accepts it; a file that ends early is refused, as Pillow refuses it ("image file is truncated").
fn is_benign_libjpeg_warning(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    if m.contains("premature end") {
        return false;
    }
    m.starts_with("corrupt jpeg data")
        || m.starts_with("invalid sos parameters")
        || m.starts_with("warning:")
        || m.starts_with("inconsistent progression sequence")
        || m.starts_with("unrecognized component ids")
}

/// The TIFF payload of the first `APP1 Exif` segment, if any.
fn jpeg_exif(bytes: &[u8]) -> Option<&[u8]> {
    jpeg_segments(bytes)
        .find(|(marker, payload)| *marker == 0xE1 && payload.starts_with(b"Exif\0\0"))
        .map(|(_, payload)| &payload[6..])
}

/// Whether the frame header is a progressive one (SOF2, SOF6, SOF10, SOF14).
fn jpeg_is_progressive(bytes: &[u8]) -> bool {
    jpeg_segments(bytes).any(|(marker, _)| matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE))
}

/// The marker segments before the image data, as (marker, payload); stops at the first
/// malformed one.
fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut i = 2; // after SOI
    std::iter::from_fn(move || loop {
        if i + 4 > bytes.len() || bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        match marker {
            0xFF => {
                i += 1; // fill byte
                continue;
            }
            0xD8 | 0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0xDA | 0xD9 => return None, // image data starts: no more metadata
            _ => {}
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let payload = bytes.get(i + 4..i + 2 + len)?;
        i += 2 + len;
        return Some((marker, payload));
    })
}

fn decode_cmyk_jpeg(
    bytes: &[u8],
    orientation: Orientation,
    full: (u32, u32),
    held: Reservation,
) -> Result<DecodedImage> {
    let format = SniffedFormat::Jpeg;
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    let data = decoder.decode().map_err(|e| corrupt(format, e))?;
    let info = decoder.info().ok_or_else(|| corrupt(format, "no frame header"))?;
    if info.pixel_format != jpeg_decoder::PixelFormat::CMYK32 {
        return Err(corrupt(format, "colour space changed between decoders"));
    }
    // Samples are ink amounts (jpeg-decoder undoes Adobe's inversion); convert as Pillow's
    // `cmyk2rgb` does: R = (255 - K) - C * (255 - K) / 255.
    let mul_div_255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let rgb: Vec<u8> = data
        .chunks_exact(4)
        .flat_map(|p| {
            let not_k = 255 - p[3] as u32;
            [p[0], p[1], p[2]].map(|c| (not_k - mul_div_255(c as u32, not_k)) as u8)
        })
        .collect();
    upright((info.width as u32, info.height as u32), rgb, orientation, full, held)
}

/// A decoded frame of `frame` pixels turned upright; the reported size is the full image's
/// (`full`, before any DCT reduction), upright too.
fn upright(
    frame: (u32, u32),
    pixels: Vec<u8>,
    orientation: Orientation,
    full: (u32, u32),
    held: Reservation,
) -> Result<DecodedImage> {
    let format = SniffedFormat::Jpeg;
    let rgb = RgbImage::from_raw(frame.0, frame.1, pixels)
        .ok_or_else(|| corrupt(format, "pixel buffer does not match the frame size"))?;
    Ok(DecodedImage::upright(rgb, format, orientation, Some(full), held))
}
