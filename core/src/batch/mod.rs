//! Batches: the open batch that impressions accumulate in, the rule that closes it (count,
//! bytes, age, explicit flush), and its encoding into the hoisted, columnar wire format.
//! The open batch keeps its impressions encoded, column by column (`columns`), and its
//! strings in interners, so recording allocates nothing once capacities have grown and a
//! close copies bytes rather than encoding every impression.

mod columns;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use prost::Message;

pub use columns::Columns;

use crate::intern::{Interner, Key};
use crate::proto;
use crate::wire::DecodedImpression;

/// Hard cap on impressions per batch (configurable below it).
pub const MAX_BATCH_IMPRESSIONS: usize = 8192;
/// Encoded batches stay below this, so the gzip body (plus the send-time member) always
/// fits the 64 KiB that `sendBeacon` and fetch keepalive carry.
pub const MAX_BATCH_ENCODED_BYTES: usize = 60 * 1024;
/// Worst-case encoded growth of one impression with ids of at most `max_id_len` bytes: ten
/// columns of 5-byte varints, two new ids, and a new page view with its page name and
/// request id (added after the fullness check); a batch closes when one more might not fit.
const fn max_impression_growth(max_id_len: u32) -> usize {
    let id = max_id_len as usize + 3;
    10 * 5 + 2 * id + PAGE_VIEW_BYTES + 2 * id
}
/// Page views per batch; more closes the batch (page view index must fit `u16`).
pub const MAX_PAGE_VIEWS_PER_BATCH: usize = 1024;
/// Fixed encoded cost of a page view entry, for the size estimate.
const PAGE_VIEW_BYTES: usize = 40;

/// One impression as the logger hands it to the batch (which keeps it encoded), its ids
/// interned in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Index into the batch's item ids.
    pub item: u32,
    /// Index into the batch's artwork ids plus one; 0 for none.
    pub artwork: u32,
    pub row: u32,
    pub column: u32,
    /// Milliseconds from the page view's start.
    pub first_visible_ms: u32,
    pub visible_ms: u32,
    pub focused_ms: u32,
    pub page_view: u16,
    pub max_visible_pct: u8,
}

/// What the batch records about a page view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPageView {
    pub ordinal: u64,
    pub page: u32,
    /// Interned request id plus one; 0 for none.
    pub request_id: u32,
    pub start_mono: u64,
    pub start_wall: u64,
    pub ended: bool,
    pub duration_ms: u64,
}

/// A page view as the logger describes it to the batch.
#[derive(Clone, Copy, Debug)]
pub struct PageViewRef<'a> {
    pub ordinal: u64,
    pub page: &'a str,
    pub request_id: Option<&'a str>,
    pub start_mono: u64,
    pub start_wall: u64,
}

/// The batch being filled.
#[derive(Clone, Debug, Default)]
pub struct OpenBatch {
    /// Page names and request ids.
    pub strings: Interner,
    /// Item ids, in order of first use.
    pub items: Interner,
    /// Artwork ids, in order of first use.
    pub artworks: Interner,
    pub page_views: Vec<BatchPageView>,
    columns: Columns,
    /// Monotonic time the first impression arrived.
    pub opened_at: u64,
    encoded_estimate: usize,
}

impl OpenBatch {
    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Number of buffered impressions.
    pub fn len(&self) -> usize {
        self.columns.len() as usize
    }

    /// Seq of the first impression; the rest follow without gaps.
    pub fn first_seq(&self) -> u64 {
        self.columns.first_seq()
    }

    /// The batch-local index of a page view, adding it if new; `None` when the batch has no
    /// room for another page view (close it and retry).
    pub fn page_view(&mut self, pv: &PageViewRef<'_>) -> Option<u16> {
        if let Some(i) = self.page_views.iter().position(|p| p.ordinal == pv.ordinal) {
            return Some(i as u16);
        }
        if self.page_views.len() >= MAX_PAGE_VIEWS_PER_BATCH {
            return None;
        }
        let page = self.intern(pv.page);
        let request_id = pv.request_id.map_or(0, |r| self.intern(r) + 1);
        self.page_views.push(BatchPageView {
            ordinal: pv.ordinal,
            page,
            request_id,
            start_mono: pv.start_mono,
            start_wall: pv.start_wall,
            ended: false,
            duration_ms: 0,
        });
        self.encoded_estimate += PAGE_VIEW_BYTES;
        Some((self.page_views.len() - 1) as u16)
    }

    /// Records that a page view in this batch ended.
    pub fn end_page_view(&mut self, ordinal: u64, duration_ms: u64) {
        if let Some(p) = self.page_views.iter_mut().find(|p| p.ordinal == ordinal) {
            p.ended = true;
            p.duration_ms = duration_ms;
        }
    }

    /// Interns a page name or request id.
    pub fn intern(&mut self, s: &str) -> u32 {
        intern_counted(&mut self.strings, &mut self.encoded_estimate, Key::new(s))
    }

    /// Interns an item id; call in impression order, so the table is in first-use order.
    pub fn intern_item(&mut self, key: Key<'_>) -> u32 {
        intern_counted(&mut self.items, &mut self.encoded_estimate, key)
    }

    /// Interns an artwork id; call in impression order, so the table is in first-use order.
    pub fn intern_artwork(&mut self, key: Key<'_>) -> u32 {
        intern_counted(&mut self.artworks, &mut self.encoded_estimate, key)
    }

    /// Buffers an impression; `seq` must be the next seq after the buffered ones.
    pub fn push(&mut self, seq: u64, now: u64, p: Pending) {
        if self.columns.is_empty() {
            self.opened_at = now;
        }
        self.encoded_estimate += varint_len(u64::from(p.item))
            + varint_len(u64::from(p.artwork))
            + varint_len(u64::from(p.row))
            + varint_len(u64::from(p.column))
            + 2 * varint_len(u64::from(p.first_visible_ms))
            + varint_len(u64::from(p.visible_ms))
            + varint_len(u64::from(p.focused_ms))
            + 3;
        self.columns.push(&DecodedImpression {
            seq,
            page_view: usize::from(p.page_view),
            item: p.item,
            artwork: p.artwork.checked_sub(1),
            row: p.row,
            column: p.column,
            first_visible_ms: i64::from(p.first_visible_ms),
            visible_ms: p.visible_ms,
            max_visible_pct: u32::from(p.max_visible_pct),
            focused_ms: p.focused_ms,
        });
    }

    /// About how many bytes the batch encodes to (at most [`MAX_BATCH_ENCODED_BYTES`]).
    pub fn encoded_estimate(&self) -> usize {
        self.encoded_estimate
    }

    /// True when the batch holds half of what it may (by count or encoded bytes).
    pub fn half_full(&self, max_impressions: usize) -> bool {
        2 * self.len() >= max_impressions || 2 * self.encoded_estimate >= MAX_BATCH_ENCODED_BYTES
    }

    /// True when the batch must close before another impression with ids of at most
    /// `max_id_len` bytes is added.
    pub fn full(&self, max_impressions: usize, max_id_len: u32) -> bool {
        self.len() >= max_impressions
            || self.encoded_estimate + max_impression_growth(max_id_len) >= MAX_BATCH_ENCODED_BYTES
    }

    /// Empties the batch, keeping capacity.
    pub fn clear(&mut self) {
        self.strings.clear();
        self.items.clear();
        self.artworks.clear();
        self.page_views.clear();
        self.columns.clear();
        self.encoded_estimate = 0;
    }

    /// Heap bytes reserved by the encoded impression columns.
    pub fn column_heap_bytes(&self) -> usize {
        self.columns.heap_bytes()
    }

    /// Heap bytes reserved by the batch, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.strings.heap_bytes()
            + self.items.heap_bytes()
            + self.artworks.heap_bytes()
            + self.page_views.capacity() * core::mem::size_of::<BatchPageView>()
            + self.columns.heap_bytes()
    }

    /// The wire form: `header` supplies the hoisted fields, this batch the tables and columns.
    /// Appends the encoded batch to `out`. The string tables are written straight from the
    /// interners and the columns as they were kept (protobuf fields may come in any order),
    /// so closing a batch allocates no string per id and encodes no impression again.
    pub fn encode_into(&self, header: proto::Batch, mono_epoch: u32, out: &mut Vec<u8>) {
        let mut tables = self.encode_head(header, mono_epoch, out);
        self.encode_tables(&mut tables, usize::MAX, out);
    }

    /// Appends all of the wire form but the string tables, which follow it (by
    /// [`Self::encode_tables`], from where the returned cursor says).
    pub fn encode_head(
        &self,
        mut header: proto::Batch,
        mono_epoch: u32,
        out: &mut Vec<u8>,
    ) -> Tables {
        let base = self
            .page_views
            .iter()
            .map(|p| p.start_mono)
            .min()
            .unwrap_or(0);
        let item_prefix = common_prefix_len(&self.items);
        let artwork_prefix = common_prefix_len(&self.artworks);
        header.item_prefix = prefix(&self.items, item_prefix).to_string();
        header.artwork_prefix = prefix(&self.artworks, artwork_prefix).to_string();
        header.page_views = self
            .page_views
            .iter()
            .map(|p| proto::PageView {
                ordinal: p.ordinal,
                page: p.page,
                request_id: p.request_id,
                start_offset_ms: p.start_mono - base,
                start_wall_ms: p.start_wall,
                ended: p.ended,
                duration_ms: p.duration_ms,
            })
            .collect();
        let clock = header.clock.get_or_insert_with(Default::default);
        clock.mono_epoch = mono_epoch;
        clock.mono_base_ms = base;
        encode_with_columns(&header, &self.columns, out);
        Tables {
            table: 0,
            next: 0,
            item_prefix,
            artwork_prefix,
        }
    }

    /// Appends the string tables' next entries (each its own field) until `out` holds
    /// more than `upto` bytes; true once every entry is written. The batch must not
    /// change between its [`Self::encode_head`] and the last of these calls.
    pub fn encode_tables(&self, tables: &mut Tables, upto: usize, out: &mut Vec<u8>) -> bool {
        use prost::encoding::{WireType, encode_key, encode_varint};
        loop {
            let (tag, table, skip) = match tables.table {
                0 => (STRINGS_TAG, &self.strings, 0),
                1 => (ITEM_IDS_TAG, &self.items, tables.item_prefix),
                2 => (ARTWORK_IDS_TAG, &self.artworks, tables.artwork_prefix),
                _ => return true,
            };
            if tables.next as usize >= table.len() {
                tables.table += 1;
                tables.next = 0;
                continue;
            }
            if out.len() > upto {
                return false;
            }
            let s = table
                .get(tables.next)
                .as_bytes()
                .get(skip..)
                .unwrap_or_default();
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(s.len() as u64, out);
            out.extend_from_slice(s);
            tables.next += 1;
        }
    }
}

/// How far a batch's string tables are written: the table, its next entry, and the
/// prefixes its item and artwork entries are written without.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tables {
    table: u8,
    next: u32,
    item_prefix: usize,
    artwork_prefix: usize,
}

/// Field numbers of `Batch.strings`, `Batch.item_ids` and `Batch.artwork_ids` in
/// core/proto (a round-trip test through the generated decoder pins them).
const STRINGS_TAG: u32 = 13;
const ITEM_IDS_TAG: u32 = 20;
const ARTWORK_IDS_TAG: u32 = 22;

fn intern_counted(table: &mut Interner, estimate: &mut usize, key: Key<'_>) -> u32 {
    let before = table.len();
    let index = table.intern_key(key);
    if table.len() > before {
        *estimate += key.text.len() + 2;
    }
    index
}

/// Length of the prefix every entry of `table` shares (0 for an empty table).
fn common_prefix_len(table: &Interner) -> usize {
    let first = table.get(0);
    let mut len = first.len();
    for i in 1..table.len() as u32 {
        let common = first
            .bytes()
            .zip(table.get(i).bytes())
            .take_while(|(a, b)| a == b)
            .count();
        len = len.min(common);
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    len
}

/// The first `len` bytes of `table`'s first entry: its common prefix when `len` is
/// [`common_prefix_len`], always on a character boundary (so never the empty fallback).
/// Entries are cut with `get` rather than indexing: no panic path for a cut that
/// cannot fail.
fn prefix(table: &Interner, len: usize) -> &str {
    table.get(0).get(..len).unwrap_or_default()
}

/// The entries of `table` without their first `skip` bytes (a common prefix, as above).
fn entries(table: &Interner, skip: usize) -> Vec<String> {
    (0..table.len() as u32)
        .map(|i| table.get(i).get(skip..).unwrap_or_default().to_string())
        .collect()
}

/// Writes `header` (which has no impressions) and `columns` as its impressions, after the
/// header's fields: protobuf fields may come in any order, and splitting the header around
/// field 15 to keep tag order would cost the firmware's flash a second message built.
fn encode_with_columns(header: &proto::Batch, columns: &Columns, out: &mut Vec<u8>) {
    debug_assert!(
        header.impressions.is_none(),
        "the columns are the impressions"
    );
    header.encode_raw(out);
    columns.encode_field(out);
}

/// Encodes, as batch `batch_no`, a batch holding only `rows` of `source` (whose strings
/// and page views they index), with its own minimal string table: used to split a batch
/// the collector refused as too large. Appends the encoding to `out`: the header with its
/// tables, then the impressions (a cold path, so its tables go through prost).
pub fn subset_into(
    source: &proto::Batch,
    rows: &[DecodedImpression],
    batch_no: u64,
    out: &mut Vec<u8>,
) {
    let ids = crate::wire::Ids::of(source);
    let mut strings = Interner::default();
    let mut items = Interner::default();
    let mut artworks = Interner::default();
    let mut page_views: Vec<proto::PageView> = Vec::new();
    let mut pv_map: Vec<(usize, usize)> = Vec::new();
    let text = |i: u32| source.strings.get(i as usize).map_or("", String::as_str);
    let mut cols = Columns::default();
    for row in rows {
        let pv = match pv_map.iter().find(|(old, _)| *old == row.page_view) {
            Some(&(_, new)) => new,
            None => {
                let mut p = source
                    .page_views
                    .get(row.page_view)
                    .cloned()
                    .unwrap_or_default();
                p.page = strings.intern(text(p.page));
                p.request_id = match p.request_id.checked_sub(1) {
                    Some(r) => strings.intern(text(r)) + 1,
                    None => 0,
                };
                page_views.push(p);
                pv_map.push((row.page_view, page_views.len() - 1));
                page_views.len() - 1
            }
        };
        cols.push(&DecodedImpression {
            page_view: pv,
            item: items.intern(ids.item(row)),
            artwork: ids.artwork(row).map(|a| artworks.intern(a)),
            ..*row
        });
    }
    let (item_prefix, artwork_prefix) = (common_prefix_len(&items), common_prefix_len(&artworks));
    // The header copied field by field: cloning the whole source would copy its tables and
    // columns only to replace them.
    let header = proto::Batch {
        schema_version: source.schema_version,
        sdk_name: source.sdk_name.clone(),
        sdk_version: source.sdk_version.clone(),
        app_id: source.app_id.clone(),
        app_version: source.app_version.clone(),
        platform: source.platform,
        device: source.device.clone(),
        install_id: source.install_id.clone(),
        session_id: source.session_id.clone(),
        batch_no,
        contract_version: source.contract_version,
        sample_rate_ppm: source.sample_rate_ppm,
        strings: entries(&strings, 0),
        page_views,
        impressions: None,
        counters: source.counters,
        clock: source.clock,
        send: None,
        item_prefix: prefix(&items, item_prefix).to_string(),
        item_ids: entries(&items, item_prefix),
        artwork_prefix: prefix(&artworks, artwork_prefix).to_string(),
        artwork_ids: entries(&artworks, artwork_prefix),
        reentry: source.reentry,
    };
    encode_with_columns(&header, &cols, out);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    fn pv(ordinal: u64) -> PageViewRef<'static> {
        PageViewRef {
            ordinal,
            page: "home",
            request_id: Some("req-1"),
            start_mono: 1000 * ordinal,
            start_wall: 5,
        }
    }

    fn filled(n: u32) -> OpenBatch {
        let mut b = OpenBatch::default();
        for i in 0..n {
            let page_view = b.page_view(&pv(u64::from(i / 10))).unwrap();
            let item = b.intern_item(Key::new(&alloc::format!("title:{}", i % 7)));
            b.push(
                100 + u64::from(i),
                0,
                Pending {
                    item,
                    artwork: 0,
                    row: i / 4,
                    column: i % 4,
                    first_visible_ms: 10 * i,
                    visible_ms: 1500,
                    focused_ms: 0,
                    page_view,
                    max_visible_pct: 100,
                },
            );
        }
        b
    }

    /// What the batch encodes to, decoded back (and so checked) by the wire decoder.
    fn encoded(b: &OpenBatch, epoch: u32) -> (Vec<u8>, proto::Batch) {
        let mut bytes = Vec::new();
        b.encode_into(proto::Batch::default(), epoch, &mut bytes);
        let decoded = wire::decode_batch(&bytes).unwrap();
        (bytes, decoded)
    }

    #[test]
    fn tables_encoded_a_piece_at_a_time_are_the_bytes_encoded_at_once() {
        let mut b = filled(40);
        for i in 0..30 {
            b.intern_artwork(Key::new(&alloc::format!("art/{i}")));
        }
        // Not decoded: the decoder refuses artwork ids no impression uses.
        let mut whole = Vec::new();
        b.encode_into(proto::Batch::default(), 2, &mut whole);
        for step in [1, 10, 64, 100_000] {
            let mut out = Vec::new();
            let mut tables = b.encode_head(proto::Batch::default(), 2, &mut out);
            let mut calls = 0;
            while !b.encode_tables(&mut tables, out.len() + step, &mut out) {
                calls += 1;
            }
            assert_eq!(out, whole, "pieces of {step} bytes");
            assert!(
                step > 1000 || calls > 0,
                "{step} bytes at a time in one call"
            );
        }
    }

    #[test]
    fn a_batch_is_its_header_then_its_columns_then_its_string_tables() {
        let mut b = filled(25);
        // Artwork ids too, so all three tables are written.
        for i in 0..5u32 {
            let item = b.intern_item(Key::new("title:9"));
            let artwork = b.intern_artwork(Key::new(&alloc::format!("art/{}", i % 3))) + 1;
            b.push(
                125 + u64::from(i),
                0,
                Pending {
                    item,
                    artwork,
                    row: 9,
                    column: i,
                    first_visible_ms: 300,
                    visible_ms: 1500,
                    focused_ms: 0,
                    page_view: 2,
                    max_visible_pct: 100,
                },
            );
        }
        let every_field = proto::Batch {
            schema_version: 1,
            sdk_name: "sdk".into(),
            sdk_version: "1.2".into(),
            app_id: "app".into(),
            app_version: "3".into(),
            platform: 2,
            device: "tv".into(),
            install_id: "i".into(),
            session_id: "s".into(),
            batch_no: 9,
            contract_version: 4,
            sample_rate_ppm: 500_000,
            counters: Some(proto::Counters {
                recorded: 25,
                ..Default::default()
            }),
            clock: Some(proto::BatchClock {
                closed_at_wall_ms: 77,
                ..Default::default()
            }),
            send: Some(proto::SendInfo {
                attempt: 2,
                ..Default::default()
            }),
            reentry: 1,
            ..Default::default()
        };
        let mut bytes = Vec::new();
        b.encode_into(every_field.clone(), 3, &mut bytes);
        let decoded = wire::decode_batch(&bytes).unwrap();
        assert_eq!(decoded.sdk_name, every_field.sdk_name);
        assert_eq!(decoded.send, every_field.send);
        assert_eq!(decoded.reentry, 1);
        assert_eq!(decoded.item_prefix, "title:");
        // Each part as prost writes it, every header field included.
        let mut expected = Vec::new();
        proto::Batch {
            strings: Vec::new(),
            item_ids: Vec::new(),
            artwork_ids: Vec::new(),
            impressions: None,
            ..decoded.clone()
        }
        .encode_raw(&mut expected);
        proto::Batch {
            impressions: decoded.impressions,
            ..Default::default()
        }
        .encode_raw(&mut expected);
        assert_eq!(decoded.artwork_ids.len(), 3);
        proto::Batch {
            strings: decoded.strings,
            item_ids: decoded.item_ids,
            artwork_ids: decoded.artwork_ids,
            ..Default::default()
        }
        .encode_raw(&mut expected);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn encoding_round_trips_through_the_decoder() {
        let b = filled(25);
        let (_, decoded) = encoded(&b, 3);
        let rows = wire::impressions(&decoded).unwrap();
        assert_eq!(rows.len(), 25);
        assert_eq!(rows[0].seq, 100);
        assert_eq!(rows[24].seq, 124);
        let ids = wire::Ids::of(&decoded);
        assert_eq!(ids.item(&rows[8]), "title:1");
        assert_eq!(decoded.item_prefix, "title:");
        assert_eq!(rows[13].page_view, 1);
        assert_eq!(rows[13].first_visible_ms, 130);
        assert_eq!(rows[13].artwork, None);
        assert_eq!(decoded.page_views[2].start_offset_ms, 2000);
        assert_eq!(decoded.clock.unwrap().mono_epoch, 3);
    }

    #[test]
    fn columns_that_are_all_zero_are_omitted() {
        let cols = encoded(&filled(5), 0).1.impressions.unwrap();
        assert!(cols.seq_gap.is_empty() && cols.artwork.is_empty() && cols.focused_ms.is_empty());
        assert!(cols.item.is_empty(), "five first uses are all implicit");
        assert_eq!(cols.count, 5);
        let cols = encoded(&filled(9), 0).1.impressions.unwrap();
        assert_eq!(cols.item, [0, 0, 0, 0, 0, 0, 0, 1, 2], "repeats point back");
    }

    #[test]
    fn a_batch_is_full_at_the_configured_count() {
        assert!(!filled(9).full(10, 64));
        assert!(filled(10).full(10, 64));
    }

    #[test]
    fn the_beacon_bound_holds_for_the_longest_ids_the_configuration_allows() {
        const LONGEST: u32 = crate::config::MAX_ID_LEN;
        let long = |tag: char, i: u32| {
            let mut s =
                alloc::format!("{tag}{}:", u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            while s.len() < LONGEST as usize {
                s.push('x');
            }
            s
        };
        let mut b = OpenBatch::default();
        let mut i = 0u32;
        // A new page view per impression: its strings are added after the fullness check.
        while !b.full(MAX_BATCH_IMPRESSIONS, LONGEST) {
            let (page, request) = (long('p', i), long('r', i));
            let view = PageViewRef {
                ordinal: u64::from(i),
                page: &page,
                request_id: Some(&request),
                start_mono: u64::from(i),
                start_wall: 5,
            };
            let Some(page_view) = b.page_view(&view) else {
                break;
            };
            let item = b.intern_item(Key::new(&long('i', i)));
            let artwork = b.intern_artwork(Key::new(&long('a', i))) + 1;
            b.push(
                u64::from(i) + 1,
                0,
                Pending {
                    item,
                    artwork,
                    row: i,
                    column: i,
                    first_visible_ms: u32::MAX - i,
                    visible_ms: u32::MAX,
                    focused_ms: u32::MAX,
                    page_view,
                    max_visible_pct: 100,
                },
            );
            i += 1;
        }
        let (bytes, _) = encoded(&b, 0);
        assert!(i > 10, "only {i} impressions");
        assert!(
            bytes.len() <= MAX_BATCH_ENCODED_BYTES,
            "{} bytes for {i} impressions",
            bytes.len()
        );
    }

    #[test]
    fn a_batch_closes_before_its_encoding_outgrows_a_beacon() {
        let mut b = OpenBatch::default();
        let page_view = b.page_view(&pv(0)).unwrap();
        let mut i = 0u32;
        while !b.full(MAX_BATCH_IMPRESSIONS, 64) {
            // Ids with no common prefix, so the estimate meets its worst case.
            let id = alloc::format!("{:0<64}", u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let item = b.intern_item(Key::new(&id));
            b.push(
                u64::from(i) + 1,
                0,
                Pending {
                    item,
                    artwork: 0,
                    row: i,
                    column: i,
                    first_visible_ms: i,
                    visible_ms: 1000,
                    focused_ms: 0,
                    page_view,
                    max_visible_pct: 100,
                },
            );
            i += 1;
        }
        let (bytes, _) = encoded(&b, 0);
        assert!(
            bytes.len() <= MAX_BATCH_ENCODED_BYTES,
            "{} bytes",
            bytes.len()
        );
        assert!(
            bytes.len() > MAX_BATCH_ENCODED_BYTES * 9 / 10,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn a_subset_keeps_only_the_strings_and_page_views_it_uses() {
        let full = encoded(&filled(30), 0).1;
        let rows = wire::impressions(&full).unwrap();
        let mut bytes = Vec::new();
        subset_into(&full, &rows[20..], 8, &mut bytes);
        let half = wire::decode_batch(&bytes).unwrap();
        assert_eq!(half.batch_no, 8);
        let back = wire::impressions(&half).unwrap();
        assert_eq!(back.len(), 10);
        assert_eq!(back[0].seq, 120);
        assert_eq!(half.page_views.len(), 1);
        assert_eq!(half.page_views[0].ordinal, 2);
        let (full_ids, half_ids) = (wire::Ids::of(&full), wire::Ids::of(&half));
        for (a, b) in rows[20..].iter().zip(&back) {
            assert_eq!(full_ids.item(a), half_ids.item(b));
            assert_eq!(
                (a.row, a.column, a.first_visible_ms),
                (b.row, b.column, b.first_visible_ms)
            );
        }
    }
}
