//! Image bytes → upright RGB8 pixels, the way the reference (Pillow + `exif_transpose` +
//! transformers' `convert_to_rgb`) sees them.
//!
//! Limits are checked before any pixel buffer exists: the encoded size first, then the
//! dimensions read from the header, so a decompression bomb costs a header parse, not memory.
//! JPEGs go through libjpeg-turbo, the decoder inside Pillow, and when the image is far larger
//! than the model needs they are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (Pillow's
//! `draft`); the bicubic resize after it still does the final, antialiased step.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

mod jpeg;

use super::budget::{decode_cost, decoder_bytes, DecodeBudget, Reservation};
use crate::{Error, Result};
use jpeg::decode_jpeg;

/// Limits applied before decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_bytes: u64,
    pub max_pixels: u64,
}

/// What the sniffer recognised from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniffedFormat {
    Jpeg,
    Png,
    WebP,
    Gif,
    Tiff,
    Bmp,
}

impl SniffedFormat {
    pub fn name(self) -> &'static str {
        match self {
            SniffedFormat::Jpeg => "JPEG",
            SniffedFormat::Png => "PNG",
            SniffedFormat::WebP => "WebP",
            SniffedFormat::Gif => "GIF",
            SniffedFormat::Tiff => "TIFF",
            SniffedFormat::Bmp => "BMP",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            SniffedFormat::Jpeg => "image/jpeg",
            SniffedFormat::Png => "image/png",
            SniffedFormat::WebP => "image/webp",
            SniffedFormat::Gif => "image/gif",
            SniffedFormat::Tiff => "image/tiff",
            SniffedFormat::Bmp => "image/bmp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            SniffedFormat::Jpeg => ImageFormat::Jpeg,
            SniffedFormat::Png => ImageFormat::Png,
            SniffedFormat::WebP => ImageFormat::WebP,
            SniffedFormat::Gif => ImageFormat::Gif,
            SniffedFormat::Tiff => ImageFormat::Tiff,
            SniffedFormat::Bmp => ImageFormat::Bmp,
        }
    }
}

/// Recognises the format from magic bytes (never from a file name or a claimed content type,
/// which uploads can lie about). Known but unsupported formats get an error naming them.
pub fn sniff(bytes: &[u8]) -> Result<SniffedFormat> {
    if bytes.is_empty() {
        return Err(Error::EmptyImage);
    }
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Ok(SniffedFormat::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Ok(SniffedFormat::Png);
    }
    if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Ok(SniffedFormat::WebP);
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Ok(SniffedFormat::Gif);
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Ok(SniffedFormat::Tiff);
    }
    if starts(b"BM") && bytes.len() >= 26 {
        return Ok(SniffedFormat::Bmp);
    }
    Err(unsupported(bytes))
}

/// Names what we recognise but cannot decode, so the user learns what to convert.
fn unsupported(bytes: &[u8]) -> Error {
    // ISO-BMFF (AVIF, HEIC/HEIF): "....ftyp<brand>"
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = String::from_utf8_lossy(&bytes[8..12]).to_string();
        let name = match brand.as_str() {
            "avif" | "avis" => "AVIF",
            "heic" | "heix" | "heim" | "heis" | "hevc" | "hevx" => "HEIC",
            "mif1" | "msf1" => "HEIF",
            "jxl " => "JPEG XL",
            _ => return Error::UnsupportedFormat(format!("ISO media file (brand {brand:?})")),
        };
        return Error::UnsupportedFormat(name.to_string());
    }
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    let named = if starts(b"%PDF") {
        Some("PDF")
    } else if starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0cJXL \r\n\x87\n") {
        Some("JPEG XL")
    } else if starts(b"8BPS") {
        Some("PSD")
    } else if starts(&[0, 0, 1, 0]) {
        Some("ICO")
    } else if starts(b"qoif") {
        Some("QOI")
    } else if starts(b"\x76\x2f\x31\x01") {
        Some("OpenEXR")
    } else {
        None
    };
    if let Some(name) = named {
        return Error::UnsupportedFormat(name.to_string());
    }
    // SVG is text: look for the root element near the start, after an optional XML prolog.
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    if head.contains("<svg") {
        return Error::UnsupportedFormat("SVG".to_string());
    }
    let printable = bytes[..bytes.len().min(512)]
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if printable * 10 >= bytes.len().min(512) * 9 {
        Error::NotAnImage("the data looks like text".to_string())
    } else {
        Error::NotAnImage("unrecognised binary data".to_string())
    }
}

/// A decoded, upright, RGB8 image plus what ingest records about the original.
#[derive(Debug)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    pub format: SniffedFormat,
    /// Size of the stored image after EXIF orientation, at full resolution (what a viewer
    /// shows), even when the JPEG was decoded at a reduced scale.
    pub width: u32,
    pub height: u32,
    /// What this decode holds of the shared budget, returned when the pixels are dropped.
    _held: Reservation,
}

/// Decodes `bytes` to upright RGB8. `min_short_side` lets a JPEG be decoded at a reduced DCT
/// scale as long as its short side stays at least that long; pass 0 for full resolution. The
/// decode's memory is reserved from `budget` once the header has said how much it will be
/// (waiting while other decodes hold it) and is held by the returned image.
pub fn decode_rgb(
    bytes: &[u8],
    limits: DecodeLimits,
    min_short_side: u32,
    budget: &DecodeBudget,
) -> Result<DecodedImage> {
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(Error::EmptyImage);
    }
    if size > limits.max_bytes {
        return Err(Error::ImageTooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let format = sniff(bytes)?;
    // Decoders are well fuzzed, but a panic inside one must never take down a batch.
    catch_unwind(AssertUnwindSafe(|| match format {
        SniffedFormat::Jpeg => decode_jpeg(bytes, limits, min_short_side, budget),
        other => decode_with_image(bytes, other, limits, budget),
    }))
    .unwrap_or_else(|_| {
        Err(Error::CorruptImage {
            format: format.name(),
            reason: "the decoder failed on malformed data".to_string(),
        })
    })
}

fn check_pixels(width: u32, height: u32, limits: DecodeLimits) -> Result<()> {
    let pixels = width as u64 * height as u64;
    if pixels > limits.max_pixels {
        return Err(Error::TooManyPixels {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(Error::CorruptImage {
            format: "image",
            reason: format!("{width}x{height} has no pixels"),
        });
    }
    Ok(())
}

fn corrupt(format: SniffedFormat, e: impl std::fmt::Display) -> Error {
    Error::CorruptImage {
        format: format.name(),
        reason: e.to_string(),
    }
}

fn decode_with_image(
    bytes: &[u8],
    format: SniffedFormat,
    limits: DecodeLimits,
    budget: &DecodeBudget,
) -> Result<DecodedImage> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut image_limits = image::Limits::default();
    // Our own pixel check below gives the better error; this is a second fence for the
    // decoder's internal allocations (e.g. a GIF whose frames are larger than its screen).
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(|e| corrupt(format, e))?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let held = budget.reserve(decode_cost(
        bytes.len() as u64,
        w as u64 * h as u64,
        decoder_bytes(decoder.total_bytes()),
        is_rotated(orientation),
    ))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(format, e))?;
    Ok(DecodedImage::upright(
        to_rgb_on_white(image),
        format,
        orientation,
        None,
        held,
    ))
}

impl DecodedImage {
    /// `rgb` turned upright. The reported size is `full` (the whole image's, upright: a JPEG
    /// may have been decoded at a reduced DCT scale), else the pixels' own.
    fn upright(
        rgb: RgbImage,
        format: SniffedFormat,
        orientation: Orientation,
        full: Option<(u32, u32)>,
        held: Reservation,
    ) -> Self {
        let rgb = apply_orientation(DynamicImage::ImageRgb8(rgb), orientation).into_rgb8();
        let (width, height) = full.map_or((rgb.width(), rgb.height()), |(w, h)| oriented_size(w, h, orientation));
        Self {
            rgb,
            format,
            width,
            height,
            _held: held,
        }
    }
}

/// Whether applying `orientation` makes a new buffer (anything but the identity).
fn is_rotated(orientation: Orientation) -> bool {
    orientation != Orientation::NoTransforms
}

fn apply_orientation(mut image: DynamicImage, orientation: Orientation) -> DynamicImage {
    image.apply_orientation(orientation);
    image
}

fn oriented_size(w: u32, h: u32, orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH => {
            (h, w)
        }
        _ => (w, h),
    }
}

/// Any colour type to RGB8; transparency is composited onto white with Pillow's
/// `alpha_composite` integer arithmetic (transformers 5 `convert_to_rgb`).
fn to_rgb_on_white(image: DynamicImage) -> RgbImage {
    let image = high_byte_if_16_bit(image);
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for p in rgba.pixels() {
        let [r, g, b, a] = p.0;
        out.extend_from_slice(&[
            composite_on_white(r, a),
            composite_on_white(g, a),
            composite_on_white(b, a),
        ]);
    }
    RgbImage::from_raw(w, h, out).expect("buffer sized from the image")
}

/// 16-bit samples keep their high byte, as Pillow's `;16B` raw modes do (the `image` crate
/// would round v/257 instead, one level off on half the values).
fn high_byte_if_16_bit(image: DynamicImage) -> DynamicImage {
    fn high<P: image::Pixel<Subpixel = u16>, Q: image::Pixel<Subpixel = u8>>(
        buf: &image::ImageBuffer<P, Vec<u16>>,
    ) -> Option<image::ImageBuffer<Q, Vec<u8>>> {
        let raw = buf.as_raw().iter().map(|v| (v >> 8) as u8).collect();
        image::ImageBuffer::from_raw(buf.width(), buf.height(), raw)
    }
    let converted = match &image {
        DynamicImage::ImageLuma16(b) => high::<_, image::Luma<u8>>(b).map(DynamicImage::ImageLuma8),
        DynamicImage::ImageLumaA16(b) => high::<_, image::LumaA<u8>>(b).map(DynamicImage::ImageLumaA8),
        DynamicImage::ImageRgb16(b) => high::<_, image::Rgb<u8>>(b).map(DynamicImage::ImageRgb8),
        DynamicImage::ImageRgba16(b) => high::<_, image::Rgba<u8>>(b).map(DynamicImage::ImageRgba8),
        _ => None,
    };
    converted.unwrap_or(image)
}

/// Pillow `ImagingAlphaComposite` (libImaging/AlphaComposite.c) with an opaque white
/// destination: 7 precision bits and its shift-based division by 255.
#[inline]
fn composite_on_white(channel: u8, alpha: u8) -> u8 {
    const PRECISION_BITS: u32 = 7;
    let shift_div_255 = |a: u32| ((a >> 8) + a) >> 8;
    let src_a = alpha as u32;
    let out_a255 = src_a * 255 + 255 * (255 - src_a);
    let coef1 = src_a * 255 * 255 * (1 << PRECISION_BITS) / out_a255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let tmp = channel as u32 * coef1 + 255 * coef2;
    (shift_div_255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
}

#[cfg(test)]
mod tests;
