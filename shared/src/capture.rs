//! When a photo was taken. A camera writes EXIF `DateTimeOriginal` as wall-clock time and, since
//! EXIF 2.31, its UTC offset in `OffsetTimeOriginal`; with the offset the instant is exact,
//! without it the wall-clock time is read as UTC (the zone is unknown, so it can be off by the
//! photographer's offset). A file without a usable EXIF date falls back to the object's
//! last-modified time, and every capture time says which of the three it is.

use std::io::Cursor;

use chrono::{NaiveDate, TimeZone, Utc};
use exif::{In, Tag, Value};

/// Where a capture time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureSource {
    /// EXIF `DateTimeOriginal` with its `OffsetTimeOriginal`: an exact instant.
    Exif,
    /// EXIF `DateTimeOriginal` without an offset: wall-clock time, read as UTC.
    ExifLocal,
    /// No usable EXIF date: the object's last-modified time.
    Modified,
}

impl CaptureSource {
    /// The name stored in the index and shown in results.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureSource::Exif => "exif",
            CaptureSource::ExifLocal => "exif_local",
            CaptureSource::Modified => "modified",
        }
    }

    /// The source a stored name stands for; an unknown name (a newer writer's) counts as the
    /// least exact one.
    pub fn parse(name: &str) -> Self {
        match name {
            "exif" => CaptureSource::Exif,
            "exif_local" => CaptureSource::ExifLocal,
            _ => CaptureSource::Modified,
        }
    }
}

/// A capture time: milliseconds since the Unix epoch, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureTime {
    pub ms: i64,
    pub source: CaptureSource,
}

impl CaptureTime {
    /// The capture time of an image's `bytes`, else `modified_ms` (the object's last-modified).
    pub fn of(bytes: &[u8], modified_ms: i64) -> Self {
        exif_capture(bytes).unwrap_or(CaptureTime {
            ms: modified_ms,
            source: CaptureSource::Modified,
        })
    }
}

/// The EXIF capture time of an image (JPEG, PNG, WebP, TIFF or HEIF container), if it has a
/// plausible one. Unreadable EXIF is no capture time, never an error: the image itself is fine.
pub fn exif_capture(bytes: &[u8]) -> Option<CaptureTime> {
    let exif = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)).ok()?;
    let ascii = |tag: Tag| match exif.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Ascii(parts)) => parts.first().cloned(),
        _ => None,
    };
    let mut taken = exif::DateTime::from_ascii(&ascii(Tag::DateTimeOriginal)?).ok()?;
    if let Some(subsec) = ascii(Tag::SubSecTimeOriginal) {
        // A malformed sub-second field only loses the milliseconds.
        let _ = taken.parse_subsec(&subsec);
    }
    if let Some(offset) = ascii(Tag::OffsetTimeOriginal) {
        if taken.parse_offset(&offset).is_err() {
            taken.offset = None;
        }
    }
    let wall_clock = NaiveDate::from_ymd_opt(taken.year.into(), taken.month.into(), taken.day.into())?
        .and_hms_nano_opt(
            taken.hour.into(),
            taken.minute.into(),
            taken.second.into(),
            taken.nanosecond.unwrap_or(0),
        )?;
    // Cameras with an unset clock write 0000:00:00 (refused above) or their epoch: no photo
    // predates photography.
    if !(1826..=9999).contains(&taken.year) {
        return None;
    }
    let utc_ms = Utc.from_utc_datetime(&wall_clock).timestamp_millis();
    Some(match taken.offset {
        // Local = UTC + offset, so UTC = local - offset.
        Some(offset_minutes) => CaptureTime {
            ms: utc_ms - i64::from(offset_minutes) * 60_000,
            source: CaptureSource::Exif,
        },
        None => CaptureTime {
            ms: utc_ms,
            source: CaptureSource::ExifLocal,
        },
    })
}

/// RFC 3339 in UTC with milliseconds (`2024-05-01T12:30:00.000Z`), as results show times.
pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Parses a time given by a user: RFC 3339 (`2024-05-01T12:30:00Z`, `…+02:00`) or a plain date
/// (`2024-05-01`, midnight UTC). `None` when it is neither.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?).timestamp_millis())
}

/// Test images with EXIF dates: a JPEG carrying an `APP1 Exif` segment built by kamadak-exif's
/// writer (also used by the integration tests through `clipsearch::capture::testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use exif::experimental::Writer;
    use exif::{Field, In, Tag, Value};

    /// The TIFF bytes of an EXIF block with these fields (any of them may be absent).
    pub fn exif_block(date_time_original: Option<&str>, offset: Option<&str>, orientation: Option<u16>) -> Vec<u8> {
        let ascii = |tag, text: &str| Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![text.as_bytes().to_vec()]),
        };
        let mut fields = Vec::new();
        if let Some(text) = date_time_original {
            fields.push(ascii(Tag::DateTimeOriginal, text));
        }
        if let Some(text) = offset {
            fields.push(ascii(Tag::OffsetTimeOriginal, text));
        }
        if let Some(value) = orientation {
            fields.push(Field {
                tag: Tag::Orientation,
                ifd_num: In::PRIMARY,
                value: Value::Short(vec![value]),
            });
        }
        let mut writer = Writer::new();
        for field in &fields {
            writer.push_field(field);
        }
        let mut out = std::io::Cursor::new(Vec::new());
        writer.write(&mut out, false).expect("an EXIF block of valid fields");
        out.into_inner()
    }

    /// `jpeg` with an `APP1 Exif` segment holding `tiff` inserted right after SOI.
    pub fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");
        let length = u16::try_from(2 + 6 + tiff.len()).expect("EXIF block under 64 KiB");
        let mut out = Vec::with_capacity(jpeg.len() + tiff.len() + 10);
        out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE1]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(tiff);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{exif_block, with_exif};
    use super::*;

    /// A small JPEG without EXIF (a thumbnail of an image already under the edge is just its
    /// JPEG).
    fn jpeg() -> Vec<u8> {
        let image = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 30, 30]));
        crate::thumbnail::encode_thumbnail(&image, crate::thumbnail::THUMBNAIL_EDGE).unwrap()
    }

    #[test]
    fn an_offset_makes_an_exact_instant() {
        let bytes = with_exif(&jpeg(), &exif_block(Some("2021:06:15 14:30:00"), Some("+02:00"), None));
        let taken = CaptureTime::of(&bytes, 5);
        assert_eq!(taken.source, CaptureSource::Exif);
        assert_eq!(rfc3339(taken.ms), "2021-06-15T12:30:00.000Z");
    }

    #[test]
    fn without_an_offset_the_wall_clock_is_read_as_utc() {
        let bytes = with_exif(&jpeg(), &exif_block(Some("2021:06:15 14:30:00"), None, None));
        let taken = CaptureTime::of(&bytes, 5);
        assert_eq!(taken.source, CaptureSource::ExifLocal);
        assert_eq!(rfc3339(taken.ms), "2021-06-15T14:30:00.000Z");
    }

    #[test]
    fn missing_blank_or_impossible_dates_fall_back_to_last_modified() {
        let modified = CaptureTime {
            ms: 5,
            source: CaptureSource::Modified,
        };
        assert_eq!(CaptureTime::of(&jpeg(), 5), modified);
        for bad in [
            "0000:00:00 00:00:00",
            "2021:13:40 10:00:00",
            "1700:01:01 00:00:00",
            "garbage",
        ] {
            let bytes = with_exif(&jpeg(), &exif_block(Some(bad), Some("+01:00"), None));
            assert_eq!(CaptureTime::of(&bytes, 5), modified, "{bad}");
        }
        let orientation_only = with_exif(&jpeg(), &exif_block(None, None, Some(6)));
        assert_eq!(CaptureTime::of(&orientation_only, 5), modified);
        assert_eq!(CaptureTime::of(b"not an image", 5), modified);
    }

    #[test]
    fn a_malformed_offset_leaves_wall_clock_time() {
        let bytes = with_exif(&jpeg(), &exif_block(Some("2021:06:15 14:30:00"), Some("junk"), None));
        assert_eq!(CaptureTime::of(&bytes, 5).source, CaptureSource::ExifLocal);
    }

    #[test]
    fn user_times_are_rfc3339_or_dates() {
        assert_eq!(parse_time("2021-06-15"), parse_time("2021-06-15T00:00:00Z"));
        assert_eq!(
            parse_time("2021-06-15T14:30:00+02:00").map(rfc3339).as_deref(),
            Some("2021-06-15T12:30:00.000Z")
        );
        for bad in ["", "yesterday", "2021-02-30", "15/06/2021"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for name in ["exif", "exif_local", "modified"] {
            assert_eq!(CaptureSource::parse(name).as_str(), name);
        }
    }
}
