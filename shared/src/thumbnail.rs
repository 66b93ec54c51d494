//! Thumbnails: a small upright JPEG of every indexed content, made by ingest from the pixels it
//! already decoded for the model, so result pages load a few tens of kilobytes per tile instead
//! of the original photo. One per content (keyed by its sha256) in the bucket of the object that
//! brought the content in, under a prefix whose keys carry no image suffix, so the bucket
//! notification never sends them to ingest.

use crate::Result;

pub use crate::clip::thumbnail::{encode_thumbnail, thumbnail_size, THUMBNAIL_EDGE};

pub const THUMBNAIL_CONTENT_TYPE: &str = "image/jpeg";
/// Where thumbnails go unless `CLIPSEARCH_THUMBNAIL_PREFIX` says otherwise.
pub const DEFAULT_THUMBNAIL_PREFIX: &str = ".clipsearch/thumbnails/";

/// Where ingest writes thumbnails and search links to them. Every method has a do-nothing
/// default, so a store without thumbnails (a local folder, a unit test's fake) needs no code.
#[allow(async_fn_in_trait)]
pub trait ThumbnailStore {
    /// The key of a content's thumbnail, `None` when thumbnails are off.
    fn thumbnail_key(&self, _id: &str) -> Option<String> {
        None
    }
    /// Writes (or replaces) the thumbnail of content `id` in `bucket`.
    async fn put_thumbnail(&self, _bucket: &str, _id: &str, _jpeg: Vec<u8>) -> Result<()> {
        Ok(())
    }
    /// Deletes the thumbnail of content `id` in `bucket` (none there is fine).
    async fn remove_thumbnail(&self, _bucket: &str, _id: &str) -> Result<()> {
        Ok(())
    }
    /// The content ids that have a thumbnail in `bucket`, after `start_after`, a page at a time
    /// (reconcile), with the id to continue after when more follow.
    async fn thumbnail_ids(&self, _bucket: &str, _start_after: Option<&str>) -> Result<(Vec<String>, Option<String>)> {
        Ok((Vec::new(), None))
    }
}
