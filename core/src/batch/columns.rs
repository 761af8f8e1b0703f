//! A batch's impression columns, kept encoded: each column holds the packed protobuf
//! varints of `Impressions`, appended as impressions arrive. A buffered impression takes
//! its encoded size (about 10 B) rather than a fixed record, and closing a batch copies
//! each column once instead of building and encoding one value per impression.
//!
//! The bytes are those prost writes for the same `proto::Impressions` (fields in tag
//! order, columns that are all zero left out): a test holds them equal.

use alloc::vec::Vec;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::wire::DecodedImpression;

/// `Impressions.seq_gap` .. `Impressions.focused_ms`: tags 2 to 11, in this order.
const COLUMNS: usize = 10;
const FIRST_COLUMN_TAG: u32 = 2;
/// Field numbers of `Impressions.first_seq`, `Impressions.count` and `Batch.impressions`
/// in core/proto.
const FIRST_SEQ_TAG: u32 = 1;
const COUNT_TAG: u32 = 12;
const IMPRESSIONS_TAG: u32 = 15;

/// Column positions, by field.
const SEQ_GAP: usize = 0;
const PAGE_VIEW_DELTA: usize = 1;
const ITEM: usize = 2;
const ARTWORK: usize = 3;
const ROW: usize = 4;
const COLUMN: usize = 5;
const FIRST_VISIBLE_DELTA: usize = 6;
const VISIBLE: usize = 7;
const MAX_VISIBLE_PCT: usize = 8;
const FOCUSED: usize = 9;

/// The columns of one batch, delta-coded as the wire format says.
#[derive(Clone, Debug, Default)]
pub struct Columns {
    bytes: [Vec<u8>; COLUMNS],
    /// Bit `c` set once column `c` holds a value other than zero; a column without one is
    /// left out.
    nonzero: u16,
    first_seq: u64,
    count: u32,
    prev_seq: u64,
    prev_page_view: i64,
    prev_first_visible: i64,
    items_used: u32,
    artworks_used: u32,
}

impl Columns {
    /// Number of impressions.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Seq of the first impression (0 when empty).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// True when no impression was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends one impression; seqs must increase, and item and artwork indices refer to
    /// tables in first-use order (a first use is coded implicitly).
    pub fn push(&mut self, imp: &DecodedImpression) {
        let gap = if self.count == 0 {
            self.first_seq = imp.seq;
            0
        } else {
            imp.seq.saturating_sub(self.prev_seq + 1)
        };
        self.put(SEQ_GAP, gap);
        let pv = imp.page_view as i64;
        self.put_signed(PAGE_VIEW_DELTA, pv - self.prev_page_view);
        let item = if imp.item == self.items_used {
            self.items_used += 1;
            0
        } else {
            imp.item + 1
        };
        self.put(ITEM, u64::from(item));
        let artwork = match imp.artwork {
            None => 0,
            Some(a) if a == self.artworks_used => {
                self.artworks_used += 1;
                1
            }
            Some(a) => a + 2,
        };
        self.put(ARTWORK, u64::from(artwork));
        self.put(ROW, u64::from(imp.row));
        self.put(COLUMN, u64::from(imp.column));
        let first_visible = imp.first_visible_ms.wrapping_sub(self.prev_first_visible);
        self.put_signed(FIRST_VISIBLE_DELTA, first_visible);
        self.put(VISIBLE, u64::from(imp.visible_ms));
        self.put(MAX_VISIBLE_PCT, u64::from(imp.max_visible_pct));
        self.put(FOCUSED, u64::from(imp.focused_ms));
        self.count += 1;
        self.prev_seq = imp.seq;
        self.prev_page_view = pv;
        self.prev_first_visible = imp.first_visible_ms;
    }

    /// Forgets every impression, keeping the capacity.
    pub fn clear(&mut self) {
        self.bytes.iter_mut().for_each(Vec::clear);
        self.nonzero = 0;
        self.first_seq = 0;
        self.count = 0;
        self.prev_seq = 0;
        self.prev_page_view = 0;
        self.prev_first_visible = 0;
        self.items_used = 0;
        self.artworks_used = 0;
    }

    /// Heap bytes reserved, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.iter().map(Vec::capacity).sum()
    }

    /// Appends `Batch.impressions` (field 15): the `Impressions` message holding the columns.
    pub fn encode_field(&self, out: &mut Vec<u8>) {
        let body = self.body_len();
        out.reserve(body + 4);
        encode_key(IMPRESSIONS_TAG, WireType::LengthDelimited, out);
        encode_varint(body as u64, out);
        if self.first_seq != 0 {
            encode_key(FIRST_SEQ_TAG, WireType::Varint, out);
            encode_varint(self.first_seq, out);
        }
        for (tag, column) in self.kept() {
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(column.len() as u64, out);
            out.extend_from_slice(column);
        }
        if self.count != 0 {
            encode_key(COUNT_TAG, WireType::Varint, out);
            encode_varint(u64::from(self.count), out);
        }
    }

    /// The columns written, with their field numbers.
    fn kept(&self) -> impl Iterator<Item = (u32, &Vec<u8>)> {
        (FIRST_COLUMN_TAG..)
            .zip(&self.bytes)
            .enumerate()
            .filter(|(c, _)| self.nonzero & (1 << c) != 0)
            .map(|(_, column)| column)
    }

    /// Length of the `Impressions` message (keys are one byte: tags below 16).
    fn body_len(&self) -> usize {
        let scalar = |v: u64| if v == 0 { 0 } else { 1 + encoded_len_varint(v) };
        let columns: usize = self
            .kept()
            .map(|(_, c)| 1 + encoded_len_varint(c.len() as u64) + c.len())
            .sum();
        scalar(self.first_seq) + columns + scalar(u64::from(self.count))
    }

    fn put(&mut self, column: usize, value: u64) {
        if value != 0 {
            self.nonzero |= 1 << column;
        }
        encode_varint(value, &mut self.bytes[column]);
    }

    /// A `sint32`/`sint64` value, zigzag-coded (both encode the same for values in range).
    fn put_signed(&mut self, column: usize, value: i64) {
        self.put(column, ((value << 1) ^ (value >> 63)) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto;
    use prost::Message;

    fn rows(n: u32) -> Vec<DecodedImpression> {
        (0..n)
            .map(|i| DecodedImpression {
                seq: 7 + u64::from(i) + u64::from(i / 5),
                page_view: (i / 4) as usize % 3,
                item: i % 6,
                artwork: (i % 3 != 0).then_some(i % 4),
                row: i / 12,
                column: i % 12,
                first_visible_ms: i64::from(i * 37 % 500) - 100,
                visible_ms: 1000 + i,
                max_visible_pct: 100 - i % 40,
                focused_ms: if i % 7 == 0 { 0 } else { 300 * i },
            })
            .collect()
    }

    /// The same rows as prost encodes them, from columns built one value at a time.
    fn prost_bytes(rows: &[DecodedImpression]) -> Vec<u8> {
        let mut m = proto::Impressions {
            first_seq: rows.first().map_or(0, |r| r.seq),
            count: rows.len() as u32,
            ..Default::default()
        };
        let (mut prev_seq, mut prev_pv, mut prev_fv) = (m.first_seq, 0i64, 0i64);
        let (mut items, mut artworks) = (0, 0);
        for (i, r) in rows.iter().enumerate() {
            m.seq_gap
                .push(if i == 0 { 0 } else { r.seq - prev_seq - 1 });
            m.page_view_delta
                .push((r.page_view as i64 - prev_pv) as i32);
            m.item.push(if r.item == items {
                items += 1;
                0
            } else {
                r.item + 1
            });
            m.artwork.push(match r.artwork {
                None => 0,
                Some(a) if a == artworks => {
                    artworks += 1;
                    1
                }
                Some(a) => a + 2,
            });
            m.row.push(r.row);
            m.column.push(r.column);
            m.first_visible_delta_ms.push(r.first_visible_ms - prev_fv);
            m.visible_ms.push(r.visible_ms);
            m.max_visible_pct.push(r.max_visible_pct);
            m.focused_ms.push(r.focused_ms);
            (prev_seq, prev_pv, prev_fv) = (r.seq, r.page_view as i64, r.first_visible_ms);
        }
        fn drop_zero<T: Default + PartialEq>(c: &mut Vec<T>) {
            if c.iter().all(|v| *v == T::default()) {
                c.clear();
            }
        }
        drop_zero(&mut m.seq_gap);
        drop_zero(&mut m.page_view_delta);
        drop_zero(&mut m.item);
        drop_zero(&mut m.artwork);
        drop_zero(&mut m.row);
        drop_zero(&mut m.column);
        drop_zero(&mut m.first_visible_delta_ms);
        drop_zero(&mut m.visible_ms);
        drop_zero(&mut m.max_visible_pct);
        drop_zero(&mut m.focused_ms);
        proto::Batch {
            impressions: Some(m),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn column_bytes(rows: &[DecodedImpression]) -> Vec<u8> {
        let mut c = Columns::default();
        rows.iter().for_each(|r| c.push(r));
        let mut out = Vec::new();
        c.encode_field(&mut out);
        out
    }

    #[test]
    fn columns_are_the_bytes_prost_writes_for_the_same_impressions() {
        for n in [1, 2, 5, 40, 700] {
            let rows = rows(n);
            assert_eq!(column_bytes(&rows), prost_bytes(&rows), "{n} rows");
        }
    }

    #[test]
    fn columns_that_are_all_zero_are_left_out() {
        let rows: Vec<_> = rows(30)
            .into_iter()
            .enumerate()
            .map(|(i, r)| DecodedImpression {
                seq: 100 + i as u64,
                page_view: 0,
                artwork: None,
                focused_ms: 0,
                ..r
            })
            .collect();
        let bytes = column_bytes(&rows);
        assert_eq!(bytes, prost_bytes(&rows));
        let back = proto::Batch::decode(&bytes[..])
            .unwrap()
            .impressions
            .unwrap();
        assert!(back.seq_gap.is_empty() && back.page_view_delta.is_empty());
        assert!(back.artwork.is_empty() && back.focused_ms.is_empty());
        assert_eq!(back.row.len(), 30);
    }

    #[test]
    fn a_buffered_impression_takes_about_its_encoded_size() {
        let mut c = Columns::default();
        rows(1000).iter().for_each(|r| c.push(r));
        let mut out = Vec::new();
        c.encode_field(&mut out);
        let per_impression = out.len() as f64 / 1000.0;
        assert!(per_impression < 16.0, "{per_impression} B encoded");
        assert!(c.heap_bytes() < 2 * out.len(), "{} B held", c.heap_bytes());
    }

    #[test]
    fn clearing_keeps_the_capacity_and_starts_the_coding_afresh() {
        let mut c = Columns::default();
        rows(50).iter().for_each(|r| c.push(r));
        let held = c.heap_bytes();
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.heap_bytes(), held);
        let again = rows(5);
        again.iter().for_each(|r| c.push(r));
        let mut out = Vec::new();
        c.encode_field(&mut out);
        assert_eq!(out, prost_bytes(&again));
    }
}
