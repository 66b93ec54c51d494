//! A memory budget shared by every image being decoded in this process.
//!
//! The per-image limits (`CLIPSEARCH_MAX_IMAGE_BYTES`, `CLIPSEARCH_MAX_IMAGE_PIXELS`) bound one
//! image; with several decoding at once (ingest's concurrent records, `embed_many`'s threads)
//! N images at the pixel limit could still need N times that. So before a pixel buffer exists,
//! the decoder reserves what the image will cost from one shared budget and waits while others
//! hold it; the reservation is returned when the full-size pixels are dropped (after the crop).
//! An image that alone needs more than the whole budget is refused, never half-decoded.
//!
//! The budget is `CLIPSEARCH_DECODE_BUDGET_BYTES`, or derived from the memory the process may
//! use (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE` on Lambda, the machine's memory elsewhere) minus the
//! model's weights and a fixed headroom for the runtime: see [`derive`].

use std::sync::{Arc, Condvar, Mutex};

use crate::{Error, Result};

/// Kept out of the budget for everything that is not a decode: the runtime, ONNX Runtime's
/// arenas and inference activations, the encoded bytes fetched but not yet decoding, buffers of
/// the SDKs. Measured: ViT-B/32 fp32 ingest with 4 records in flight peaks at ~660 MiB, of
/// which ~350 MiB are weights (BENCHMARKS.md).
pub const HEADROOM_BYTES: u64 = 256 << 20;

/// The smallest budget ever derived: enough for a 12 MP baseline JPEG (decoded at a reduced
/// DCT scale) or a 5 MP RGB PNG; a 12 MP PNG (counted at ~116 MB) needs more.
pub const MIN_DERIVED_BYTES: u64 = 64 << 20;

/// The budget for a process that may use `memory_bytes` and holds `model_bytes` of weights.
pub fn derive(memory_bytes: u64, model_bytes: u64) -> u64 {
    memory_bytes
        .saturating_sub(model_bytes)
        .saturating_sub(HEADROOM_BYTES)
        .max(MIN_DERIVED_BYTES)
}

/// Counted for every decode on top of its buffers: the resize's intermediate rows, the
/// decoder's tables and what the allocator keeps of a thread's freed chunks.
pub const DECODE_OVERHEAD_BYTES: u64 = 8 << 20;

/// What decoding one image holds at its peak: the encoded bytes, what the decoder holds beyond
/// the output (`decoder_bytes`: see [`decoder_bytes`]), the 8-bit RGB image of `pixels` pixels,
/// one more RGB copy when the EXIF orientation rotates it, and [`DECODE_OVERHEAD_BYTES`].
/// `tests/memory_budget.rs` checks it against the peak RSS of real decodes.
pub fn decode_cost(encoded_bytes: u64, pixels: u64, decoder_bytes: u64, rotated: bool) -> u64 {
    let rgb = pixels.saturating_mul(3);
    encoded_bytes
        .saturating_add(decoder_bytes)
        .saturating_add(rgb)
        .saturating_add(if rotated { rgb } else { 0 })
        .saturating_add(DECODE_OVERHEAD_BYTES)
}

/// What the `image` crate's decoder holds besides the RGB copy, for an image whose buffer in its
/// stored colour type is `native_bytes`: that buffer and a second one as large (the 8-bit copy
/// of a 16-bit image, a GIF's frame beside its canvas, a WebP's frame before conversion, a
/// TIFF's whole-image strip). Measured at 16 MP, peak RSS over a run that decodes nothing,
/// against the cost counted: 16-bit RGBA PNG 187 of 350 MB, GIF 109 of 184, lossless WebP 109
/// of 184, TIFF 93 of 200, BMP 50 of 200.
pub fn decoder_bytes(native_bytes: u64) -> u64 {
    native_bytes.saturating_mul(2)
}

/// A shared byte budget; clones share it.
#[derive(Clone)]
pub struct DecodeBudget {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: u64,
    in_use: Mutex<u64>,
    freed: Condvar,
}

impl std::fmt::Debug for DecodeBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeBudget")
            .field("capacity", &self.inner.capacity)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl DecodeBudget {
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity,
                in_use: Mutex::new(0),
                freed: Condvar::new(),
            }),
        }
    }

    /// No shared bound (only the per-image limits): tools and tests of one image at a time.
    pub fn unlimited() -> Self {
        Self::new(u64::MAX)
    }

    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    pub fn in_use(&self) -> u64 {
        *self.inner.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `bytes` from the budget, blocking while other images hold too much of it. Call it
    /// from a thread that may block (a decode thread, `spawn_blocking`), never on an async
    /// worker. Each decode reserves once, so holders always finish and waiters always proceed.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation> {
        let capacity = self.inner.capacity;
        if bytes > capacity {
            return Err(Error::OverDecodeBudget {
                needed: bytes,
                budget: capacity,
            });
        }
        let mut in_use = self.inner.in_use.lock().unwrap_or_else(|p| p.into_inner());
        while capacity - *in_use < bytes {
            in_use = self.inner.freed.wait(in_use).unwrap_or_else(|p| p.into_inner());
        }
        *in_use += bytes;
        Ok(Reservation {
            inner: Arc::clone(&self.inner),
            bytes,
        })
    }
}

/// Bytes held from a [`DecodeBudget`]; returned when dropped.
pub struct Reservation {
    inner: Arc<Inner>,
    bytes: u64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({} bytes)", self.bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut in_use = self.inner.in_use.lock().unwrap_or_else(|p| p.into_inner());
        *in_use -= self.bytes;
        self.inner.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn an_image_over_the_whole_budget_is_refused_at_once() {
        let budget = DecodeBudget::new(100);
        let err = budget.reserve(101).unwrap_err();
        assert_eq!(err.code(), "over_decode_budget");
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("101"), "{err}");
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_capacity() {
        let budget = DecodeBudget::new(100);
        let peak = AtomicU64::new(0);
        std::thread::scope(|s| {
            for i in 0..8u64 {
                let (budget, peak) = (&budget, &peak);
                s.spawn(move || {
                    for _ in 0..50 {
                        let held = budget.reserve(30 + i * 5).unwrap();
                        peak.fetch_max(budget.in_use(), Ordering::SeqCst);
                        std::thread::yield_now();
                        drop(held);
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 100);
        assert!(peak.load(Ordering::SeqCst) >= 30);
        assert_eq!(budget.in_use(), 0, "every reservation was returned");
    }

    #[test]
    fn derived_budget_leaves_the_model_and_headroom_out() {
        let gib = 1u64 << 30;
        assert_eq!(derive(3 * gib, gib), 2 * gib - HEADROOM_BYTES);
        assert_eq!(derive(256 << 20, gib), MIN_DERIVED_BYTES);
    }

    #[test]
    fn cost_counts_the_buffers_a_decode_holds() {
        // 100 encoded bytes, 10 px, a decoder holding 80 bytes, rotated: 100 + 80 + 30 + 30.
        assert_eq!(decode_cost(100, 10, 80, true), 240 + DECODE_OVERHEAD_BYTES);
        assert_eq!(decode_cost(0, 10, 0, false), 30 + DECODE_OVERHEAD_BYTES);
        assert_eq!(decode_cost(u64::MAX, u64::MAX, u64::MAX, true), u64::MAX);
        assert_eq!(decoder_bytes(40), 80);
    }
}
