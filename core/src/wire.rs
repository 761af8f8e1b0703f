//! The wire format: decoding untrusted batch bytes with a limit on everything, and the
//! columnar impression layout (see core/proto). Decoding never panics; every malformed
//! input is a typed [`DecodeError`]. The collector and the test kit reuse this decoder.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use prost::Message;

use crate::gzip::{self, GzipError};
use crate::proto;

/// Wire schema version written by this SDK.
pub const SCHEMA_VERSION: u32 = 1;

/// Decompressed batches above this are refused: the SDK closes batches far below it
/// (see [`crate::batch::MAX_BATCH_ENCODED_BYTES`]), so more is a bomb or a foreign client.
pub const MAX_DECODED_BATCH_BYTES: usize = 1024 * 1024;
/// Bound on interned strings per batch.
pub const MAX_STRINGS: usize = 32_768;
/// Bound on one string; ids are at most a few dozen bytes.
pub const MAX_STRING_LEN: usize = 256;
/// Bound on page views per batch.
pub const MAX_PAGE_VIEWS: usize = 8_192;
/// Bound on impressions per batch.
pub const MAX_IMPRESSIONS: usize = 65_536;

/// Why bytes are not a valid batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The gzip layer is broken or too large.
    Gzip(GzipError),
    /// The bytes are not a protobuf `Batch`. prost's error, not its text: formatting it
    /// only when displayed keeps `core::fmt` out of firmware that never displays it.
    Protobuf(prost::DecodeError),
    /// The JSON view of a decoded batch could not be written (`json`, std only).
    Json(String),
    /// A repeated field has more entries than the limit.
    TooMany { field: &'static str, limit: usize },
    /// A string is longer than [`MAX_STRING_LEN`].
    StringTooLong,
    /// A non-empty impression column does not have one entry per impression.
    ColumnLength { field: &'static str },
    /// An index points outside the table it refers to.
    IndexOutOfRange { field: &'static str },
    /// Sequence numbers overflow.
    SeqOverflow,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Gzip(e) => write!(f, "gzip: {e}"),
            DecodeError::Protobuf(e) => write!(f, "protobuf: {e}"),
            DecodeError::Json(e) => write!(f, "json: {e}"),
            DecodeError::TooMany { field, limit } => {
                write!(f, "{field} has more than {limit} entries")
            }
            DecodeError::StringTooLong => {
                write!(f, "a string is longer than {MAX_STRING_LEN} bytes")
            }
            DecodeError::ColumnLength { field } => {
                write!(f, "impression column {field} has the wrong length")
            }
            DecodeError::IndexOutOfRange { field } => write!(f, "{field} index out of range"),
            DecodeError::SeqOverflow => f.write_str("sequence numbers overflow"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<GzipError> for DecodeError {
    fn from(e: GzipError) -> Self {
        DecodeError::Gzip(e)
    }
}

/// Gunzips (all members) and decodes a batch, checking every limit and every index.
pub fn decode_gzip_batch(bytes: &[u8]) -> Result<proto::Batch, DecodeError> {
    let raw = gzip::gunzip(bytes, MAX_DECODED_BATCH_BYTES)?;
    decode_batch(&raw)
}

/// Decodes an uncompressed batch, checking every limit and every index.
pub fn decode_batch(raw: &[u8]) -> Result<proto::Batch, DecodeError> {
    decode_resolved(raw).map(|(batch, _)| batch)
}

/// [`decode_batch`], also giving the [`impressions`] it resolves to check the indices,
/// for a caller that needs them next (the collector): they are not resolved twice.
pub fn decode_resolved(raw: &[u8]) -> Result<(proto::Batch, Vec<DecodedImpression>), DecodeError> {
    if raw.len() > MAX_DECODED_BATCH_BYTES {
        return Err(DecodeError::Gzip(GzipError::TooLarge {
            limit: MAX_DECODED_BATCH_BYTES,
        }));
    }
    let batch = proto::Batch::decode(raw).map_err(DecodeError::Protobuf)?;
    check_limits(&batch)?;
    let resolved = impressions(&batch)?;
    Ok((batch, resolved))
}

fn check_limits(batch: &proto::Batch) -> Result<(), DecodeError> {
    limit("strings", batch.strings.len(), MAX_STRINGS)?;
    limit("item_ids", batch.item_ids.len(), MAX_STRINGS)?;
    limit("artwork_ids", batch.artwork_ids.len(), MAX_STRINGS)?;
    limit("page_views", batch.page_views.len(), MAX_PAGE_VIEWS)?;
    let header = [
        &batch.sdk_name,
        &batch.sdk_version,
        &batch.app_id,
        &batch.app_version,
        &batch.device,
        &batch.install_id,
        &batch.session_id,
    ];
    let too_long =
        |prefix: &str, ids: &[String]| ids.iter().any(|s| prefix.len() + s.len() > MAX_STRING_LEN);
    if header
        .into_iter()
        .chain(batch.strings.iter())
        .any(|s| s.len() > MAX_STRING_LEN)
        || too_long(&batch.item_prefix, &batch.item_ids)
        || too_long(&batch.artwork_prefix, &batch.artwork_ids)
    {
        return Err(DecodeError::StringTooLong);
    }
    for pv in &batch.page_views {
        index("page_view.page", pv.page as usize, batch.strings.len())?;
        optional_index("page_view.request_id", pv.request_id, batch.strings.len())?;
    }
    Ok(())
}

fn limit(field: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::TooMany { field, limit: max });
    }
    Ok(())
}

fn index(field: &'static str, i: usize, len: usize) -> Result<(), DecodeError> {
    if i >= len {
        return Err(DecodeError::IndexOutOfRange { field });
    }
    Ok(())
}

fn optional_index(
    field: &'static str,
    plus_one: u32,
    len: usize,
) -> Result<Option<u32>, DecodeError> {
    match plus_one.checked_sub(1) {
        None => Ok(None),
        Some(i) => index(field, i as usize, len).map(|()| Some(i)),
    }
}

/// One impression with its columns resolved: absolute seq, page view index, offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedImpression {
    pub seq: u64,
    /// Index into `Batch.page_views`.
    pub page_view: usize,
    /// Index into `Batch.item_ids` (see [`Ids`]).
    pub item: u32,
    /// Index into `Batch.artwork_ids` (see [`Ids`]).
    pub artwork: Option<u32>,
    pub row: u32,
    pub column: u32,
    /// Milliseconds from the page view's start to first visibility.
    pub first_visible_ms: i64,
    pub visible_ms: u32,
    pub max_visible_pct: u32,
    pub focused_ms: u32,
}

/// A string of the batch's page view table, if the index is valid.
pub fn string(batch: &proto::Batch, index: u32) -> Option<&str> {
    batch.strings.get(index as usize).map(String::as_str)
}

/// The item and artwork ids of a batch with their common prefixes restored; index them
/// with [`DecodedImpression::item`] and [`DecodedImpression::artwork`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub items: Vec<String>,
    pub artworks: Vec<String>,
}

impl Ids {
    /// Restores the full ids of `batch`.
    pub fn of(batch: &proto::Batch) -> Ids {
        let full = |prefix: &str, ids: &[String]| {
            ids.iter()
                .map(|s| {
                    let mut id = String::with_capacity(prefix.len() + s.len());
                    id.push_str(prefix);
                    id.push_str(s);
                    id
                })
                .collect()
        };
        Ids {
            items: full(&batch.item_prefix, &batch.item_ids),
            artworks: full(&batch.artwork_prefix, &batch.artwork_ids),
        }
    }

    /// The item id of an impression.
    pub fn item(&self, imp: &DecodedImpression) -> &str {
        self.items.get(imp.item as usize).map_or("", String::as_str)
    }

    /// The artwork id of an impression, if it has one.
    pub fn artwork(&self, imp: &DecodedImpression) -> Option<&str> {
        imp.artwork
            .map(|a| self.artworks.get(a as usize).map_or("", String::as_str))
    }
}

/// The full ids of a batch's impressions, however they are held: [`Ids`], or a table of
/// the caller's that holds them already (the collector's rows share theirs), so checking a
/// batch does not build every id a second time.
pub trait FullIds {
    /// The item id of an impression ("" for an index out of range).
    fn item(&self, imp: &DecodedImpression) -> &str;
    /// The artwork id of an impression, if it has one.
    fn artwork(&self, imp: &DecodedImpression) -> Option<&str>;
}

impl FullIds for Ids {
    fn item(&self, imp: &DecodedImpression) -> &str {
        Ids::item(self, imp)
    }

    fn artwork(&self, imp: &DecodedImpression) -> Option<&str> {
        Ids::artwork(self, imp)
    }
}

/// Resolves the columnar impressions into rows, checking column lengths and indices.
pub fn impressions(batch: &proto::Batch) -> Result<Vec<DecodedImpression>, DecodeError> {
    let Some(cols) = &batch.impressions else {
        return Ok(Vec::new());
    };
    let n = cols.count as usize;
    limit("impressions", n, MAX_IMPRESSIONS)?;
    let col = |field: &'static str, len: usize| -> Result<(), DecodeError> {
        if len == 0 || len == n {
            Ok(())
        } else {
            Err(DecodeError::ColumnLength { field })
        }
    };
    col("seq_gap", cols.seq_gap.len())?;
    col("item", cols.item.len())?;
    col("page_view_delta", cols.page_view_delta.len())?;
    col("artwork", cols.artwork.len())?;
    col("row", cols.row.len())?;
    col("column", cols.column.len())?;
    col("first_visible_delta_ms", cols.first_visible_delta_ms.len())?;
    col("visible_ms", cols.visible_ms.len())?;
    col("max_visible_pct", cols.max_visible_pct.len())?;
    col("focused_ms", cols.focused_ms.len())?;
    let at = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);

    let mut out = Vec::with_capacity(n);
    let mut seq = cols.first_seq;
    let mut page_view: i64 = 0;
    let mut first_visible: i64 = 0;
    let (mut items_used, mut artworks_used) = (0u32, 0u32);
    for i in 0..n {
        if i > 0 {
            let gap = cols.seq_gap.get(i).copied().unwrap_or(0);
            seq = seq
                .checked_add(gap)
                .and_then(|s| s.checked_add(1))
                .ok_or(DecodeError::SeqOverflow)?;
        }
        page_view += i64::from(cols.page_view_delta.get(i).copied().unwrap_or(0));
        let pv = usize::try_from(page_view)
            .ok()
            .filter(|&p| p < batch.page_views.len())
            .ok_or(DecodeError::IndexOutOfRange { field: "page_view" })?;
        first_visible = first_visible
            .checked_add(cols.first_visible_delta_ms.get(i).copied().unwrap_or(0))
            .ok_or(DecodeError::IndexOutOfRange {
                field: "first_visible_delta_ms",
            })?;
        let item = match at(&cols.item, i) {
            0 => next_unused(&mut items_used, batch.item_ids.len(), "item")?,
            k => used(k - 1, items_used, "item")?,
        };
        let artwork = match at(&cols.artwork, i) {
            0 => None,
            1 => Some(next_unused(
                &mut artworks_used,
                batch.artwork_ids.len(),
                "artwork",
            )?),
            k => Some(used(k - 2, artworks_used, "artwork")?),
        };
        out.push(DecodedImpression {
            seq,
            page_view: pv,
            item,
            artwork,
            row: at(&cols.row, i),
            column: at(&cols.column, i),
            first_visible_ms: first_visible,
            visible_ms: at(&cols.visible_ms, i),
            max_visible_pct: at(&cols.max_visible_pct, i),
            focused_ms: at(&cols.focused_ms, i),
        });
    }
    if items_used as usize != batch.item_ids.len()
        || artworks_used as usize != batch.artwork_ids.len()
    {
        return Err(DecodeError::IndexOutOfRange { field: "unused id" });
    }
    Ok(out)
}

/// The next id of a table in first-use order.
fn next_unused(used: &mut u32, len: usize, field: &'static str) -> Result<u32, DecodeError> {
    let i = *used;
    index(field, i as usize, len)?;
    *used += 1;
    Ok(i)
}

/// A reference back to an id already used.
fn used(i: u32, used: u32, field: &'static str) -> Result<u32, DecodeError> {
    if i >= used {
        return Err(DecodeError::IndexOutOfRange { field });
    }
    Ok(i)
}
