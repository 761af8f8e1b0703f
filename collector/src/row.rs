//! The normalised output row: one per impression, everything a consumer needs without
//! the batch around it, with raw and skew-corrected event times.

use sightline_core::config::Reentry;
use sightline_core::json::platform_name;
use sightline_core::proto;
use sightline_core::rng::mix64;
use std::sync::Arc;

use sightline_core::wire::{DecodedImpression, FullIds};

use crate::ingest::Clock;

/// Bytes of one serialised row besides its strings: field names, punctuation, numbers at
/// their widest (measured: 588; see the test). A bad row adds its rules, tens of bytes.
/// Used to budget an upload's output before any row is built.
pub const ROW_FIXED_BYTES: usize = 640;

/// A row's text: one allocation per batch and string, shared by every row of the batch
/// that holds it, instead of a copy per row; written as a plain JSON string.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Arc<str>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Arc::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Arc::from(s))
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Text;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text::from(s))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// One accepted impression.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub session_id: Text,
    pub seq: u64,
    pub app_id: Text,
    pub app_version: Text,
    pub platform: Text,
    pub device: Text,
    pub install_id: Text,
    pub sdk: Text,
    pub batch_no: u64,
    pub page_view: u64,
    pub page: Text,
    pub request_id: Option<Text>,
    pub item_id: Text,
    pub artwork_id: Option<Text>,
    pub row: u32,
    pub column: u32,
    /// When the item became visible, by the client's wall clock.
    pub first_visible_client_ms: u64,
    /// The same instant on the collector's clock (skew-corrected).
    pub first_visible_ms: u64,
    pub visible_ms: u32,
    pub max_visible_pct: u32,
    pub focused_ms: u32,
    pub sample_rate: f64,
    pub contract_version: u32,
    /// The batch's re-entry rule: whether a later row of the same item at the same place
    /// in the page view is a new impression. Absent in rows written before it existed.
    #[serde(default)]
    pub reentry: Option<Reentry>,
    pub received_ms: u64,
}

/// An impression refused by the contract, with the rules it broke.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BadRow {
    pub rules: Vec<String>,
    #[serde(flatten)]
    pub row: Row,
}

/// What the rows of one batch share, built once per batch: the header strings (the
/// `sdk` field formatted here, not per row), the page view table's strings and the full
/// item and artwork ids, each one [`Text`] that the rows holding it share.
#[derive(Debug, Clone)]
pub struct Template {
    session_id: Text,
    app_id: Text,
    app_version: Text,
    platform: Text,
    device: Text,
    install_id: Text,
    sdk: Text,
    sample_rate: f64,
    reentry: Reentry,
    strings: Vec<Text>,
    items: Vec<Text>,
    artworks: Vec<Text>,
}

impl Template {
    /// The shared part of the rows of `batch`. Its full ids are built here, each straight
    /// into the one [`Text`] its rows share, and the contract checks read them from it
    /// ([`FullIds`]): no second copy of every id.
    pub fn of(batch: &proto::Batch) -> Template {
        let texts = |v: &[String]| v.iter().map(|s| Text::from(s.as_str())).collect();
        // One buffer for every id of the batch: prefix and suffix are joined in it, then
        // copied once into the id's `Text`.
        let mut joined = String::new();
        let mut full = |prefix: &str, suffixes: &[String]| -> Vec<Text> {
            suffixes
                .iter()
                .map(|suffix| {
                    joined.clear();
                    joined.push_str(prefix);
                    joined.push_str(suffix);
                    Text::from(joined.as_str())
                })
                .collect()
        };
        let items = full(&batch.item_prefix, &batch.item_ids);
        let artworks = full(&batch.artwork_prefix, &batch.artwork_ids);
        Template {
            session_id: batch.session_id.as_str().into(),
            app_id: batch.app_id.as_str().into(),
            app_version: batch.app_version.as_str().into(),
            platform: platform_name(batch.platform).into(),
            device: batch.device.as_str().into(),
            install_id: batch.install_id.as_str().into(),
            sdk: format!("{}/{}", batch.sdk_name, batch.sdk_version).into(),
            sample_rate: f64::from(batch.sample_rate_ppm) / 1e6,
            reentry: Reentry::from_proto(batch.reentry),
            strings: texts(&batch.strings),
            items,
            artworks,
        }
    }

    /// A string of the page view table ("" for an index out of range, which the decoder
    /// has already refused).
    fn string(&self, i: u32) -> Text {
        self.strings.get(i as usize).cloned().unwrap_or_default()
    }
}

impl FullIds for Template {
    fn item(&self, imp: &DecodedImpression) -> &str {
        self.items.get(imp.item as usize).map_or("", Text::as_str)
    }

    fn artwork(&self, imp: &DecodedImpression) -> Option<&str> {
        imp.artwork
            .map(|a| self.artworks.get(a as usize).map_or("", Text::as_str))
    }
}

impl Row {
    /// Normalises one decoded impression of `batch`, whose shared part is `t`.
    pub fn from_template(
        t: &Template,
        batch: &proto::Batch,
        imp: &DecodedImpression,
        clock: &Clock,
        received_ms: u64,
    ) -> Row {
        let pv = batch
            .page_views
            .get(imp.page_view)
            .copied()
            .unwrap_or_default();
        let offset = imp.first_visible_ms.max(0) as u64;
        // Wire values are the client's word: a hostile one saturates instead of wrapping.
        let client = pv.start_wall_ms.saturating_add(offset);
        let id = |ids: &[Text], i: u32| ids.get(i as usize).cloned().unwrap_or_default();
        Row {
            session_id: t.session_id.clone(),
            seq: imp.seq,
            app_id: t.app_id.clone(),
            app_version: t.app_version.clone(),
            platform: t.platform.clone(),
            device: t.device.clone(),
            install_id: t.install_id.clone(),
            sdk: t.sdk.clone(),
            batch_no: batch.batch_no,
            page_view: pv.ordinal,
            page: t.string(pv.page),
            request_id: pv.request_id.checked_sub(1).map(|i| t.string(i)),
            item_id: id(&t.items, imp.item),
            artwork_id: imp.artwork.map(|a| id(&t.artworks, a)),
            row: imp.row,
            column: imp.column,
            first_visible_client_ms: client,
            first_visible_ms: clock.corrected(client, pv.start_offset_ms.saturating_add(offset)),
            visible_ms: imp.visible_ms,
            max_visible_pct: imp.max_visible_pct,
            focused_ms: imp.focused_ms,
            sample_rate: t.sample_rate,
            contract_version: batch.contract_version,
            reentry: Some(t.reentry),
            received_ms,
        }
    }
}

/// Seed of [`Row::digest`]; changing it changes every digest, and a restarted collector
/// would then take retries of recent seqs for conflicts.
const DIGEST_SEED: u64 = 0x5167_6874_6c69_6e65;

/// FNV-1a's multiplier.
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// `FNV_PRIME` to the powers 0 to 8: a zero byte's xor changes nothing, so FNV-1a over a
/// run of `k` zero bytes is one multiply by `FNV_PRIME^k`.
const FNV_PRIME_POWERS: [u64; 9] = {
    let mut powers = [1u64; 9];
    let mut k = 1;
    while k < 9 {
        powers[k] = powers[k - 1].wrapping_mul(FNV_PRIME);
        k += 1;
    }
    powers
};

/// [`sightline_core::rng::hash_bytes`] (FNV-1a finished with `mix64`) fed in pieces, so
/// the digest needs no buffer and the part rows share can be hashed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestState(u64);

impl DigestState {
    fn new(seed: u64) -> Self {
        DigestState(0xCBF2_9CE4_8422_2325 ^ seed)
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        self.0 = h;
    }

    /// The 8 little-endian bytes of `n`, the same as [`DigestState::bytes`] of them: the
    /// numbers hashed are mostly small, so their zero bytes at either end are skipped with
    /// one multiply each (the digest's numbers are 72 bytes, most of them zero).
    #[inline]
    fn word(&mut self, n: u64) {
        if n == 0 {
            self.0 = self.0.wrapping_mul(FNV_PRIME_POWERS[8]);
            return;
        }
        // Both at most 7: some byte of `n` is not zero.
        let low = (n.trailing_zeros() / 8) as usize;
        let high = (n.leading_zeros() / 8) as usize;
        self.0 = self.0.wrapping_mul(FNV_PRIME_POWERS[low]);
        self.bytes(n.to_le_bytes().get(low..8 - high).unwrap_or(&[]));
        self.0 = self.0.wrapping_mul(FNV_PRIME_POWERS[high]);
    }

    /// [`DigestState::word`] with branches that go the same way for one field in row after
    /// row: a number below 2^16 (a position, a percentage, most durations) or with only its
    /// top 16 bits set (an `f64` such as 1.0) takes 3 multiplies, any other all 8 unrolled.
    /// `word` skips every zero byte, but its loop over the rest mispredicts on each width.
    #[inline(always)]
    fn number(&mut self, n: u64) {
        /// Bits below the top two bytes.
        const LOW_48: u64 = (1 << 48) - 1;
        let bytes = n.to_le_bytes();
        if n <= u64::from(u16::MAX) {
            self.bytes(&bytes[..2]);
            self.0 = self.0.wrapping_mul(FNV_PRIME_POWERS[6]);
        } else if n & LOW_48 == 0 {
            self.0 = self.0.wrapping_mul(FNV_PRIME_POWERS[6]);
            self.bytes(&bytes[6..]);
        } else {
            self.bytes(&bytes);
        }
    }

    /// Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    #[inline]
    fn text(&mut self, s: &str) {
        self.word(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    fn finish(self) -> u64 {
        mix64(self.0)
    }
}

impl Row {
    /// A stable digest of what the impression says: every field of its content, strings
    /// resolved (a batch split and re-encoded, with other table indices, digests the
    /// same), and the identity of who sent it. Left out: the key (session, seq) and what
    /// differs between attempts of the same data: the upload's number, when it was
    /// received and the skew-corrected time. Never 0 (0 marks "unknown" in dedup state).
    pub fn digest(&self) -> u64 {
        self.digest_from(self.digest_prefix())
    }

    /// The digest's state after the fields that rows of one batch and page view share
    /// (the header and the page): equal for all of them, so it can be computed once.
    pub fn digest_prefix(&self) -> DigestState {
        let mut h = DigestState::new(DIGEST_SEED);
        for s in [
            &self.app_id,
            &self.app_version,
            &self.platform,
            &self.device,
            &self.install_id,
            &self.sdk,
            &self.page,
        ] {
            h.text(s);
        }
        h
    }

    /// The digest given `prefix`, the [`Row::digest_prefix`] of this row (or of a row of
    /// the same batch and page view).
    pub fn digest_from(&self, prefix: DigestState) -> u64 {
        let [digest] = digest_lanes([prefix], [self.digest_tail()]);
        digest
    }

    /// What the digest covers after its prefix, in the order it is hashed.
    fn digest_tail(&self) -> DigestTail<'_> {
        DigestTail {
            item_id: &self.item_id,
            optional: [self.request_id.as_deref(), self.artwork_id.as_deref()],
            // `reentry` is left out too: rows written before it existed must digest the
            // same as a retry of theirs arriving now.
            numbers: [
                self.page_view,
                u64::from(self.row),
                u64::from(self.column),
                self.first_visible_client_ms,
                u64::from(self.visible_ms),
                u64::from(self.max_visible_pct),
                u64::from(self.focused_ms),
                self.sample_rate.to_bits(),
                u64::from(self.contract_version),
            ],
        }
    }
}

/// The fields of a row its digest covers after [`Row::digest_prefix`], borrowed.
struct DigestTail<'a> {
    item_id: &'a str,
    /// The request and artwork ids: a 0 byte when absent, else a 1 byte and the text.
    optional: [Option<&'a str>; 2],
    numbers: [u64; 9],
}

/// Rows whose digests are computed side by side. FNV-1a is one chain of dependent
/// multiplies per row (about 300 cycles of latency), so one row at a time leaves the
/// multiplier idle most cycles; four independent chains fill it (one multiply a cycle
/// with a latency of three or four) without spilling the lanes' states to memory.
const DIGEST_LANES: usize = 4;

/// The digest of each of `rows` given `prefixes`, each row's [`Row::digest_prefix`] (or
/// that of a row of the same batch and page view): the same values as
/// [`Row::digest_from`], computed [`DIGEST_LANES`] rows at a time.
pub fn digests(rows: &[Row], prefixes: &[DigestState]) -> Vec<u64> {
    let mut out = Vec::with_capacity(rows.len());
    let lanes = rows.chunks_exact(DIGEST_LANES);
    let single = lanes.remainder();
    let mut starts = prefixes.chunks_exact(DIGEST_LANES);
    for (rows, starts) in lanes.zip(&mut starts) {
        let prefix: [DigestState; DIGEST_LANES] = std::array::from_fn(|l| starts[l]);
        let tails = std::array::from_fn(|l| rows[l].digest_tail());
        out.extend(digest_lanes(prefix, tails));
    }
    for (row, &prefix) in single.iter().zip(starts.remainder()) {
        out.push(row.digest_from(prefix));
    }
    out
}

/// The digests of `N` rows from their prefixes, field by field in lockstep so the lanes'
/// multiplies are independent instructions next to each other.
#[inline(always)]
fn digest_lanes<const N: usize>(mut h: [DigestState; N], tails: [DigestTail<'_>; N]) -> [u64; N] {
    texts(&mut h, tails.each_ref().map(|t| Some(t.item_id)));
    for k in 0..2 {
        let texts_k = tails.each_ref().map(|t| t.optional[k]);
        for (h, text) in h.iter_mut().zip(&texts_k) {
            h.bytes(&[u8::from(text.is_some())]);
        }
        texts(&mut h, texts_k);
    }
    for k in 0..9 {
        for (h, tail) in h.iter_mut().zip(&tails) {
            h.number(tail.numbers[k]);
        }
    }
    h.map(|h| h.finish().max(1))
}

/// [`DigestState::text`] of each lane's text, the lanes without one left as they are:
/// the bytes in lockstep up to the longest, each lane stepping only while it has bytes.
#[inline(always)]
fn texts<const N: usize>(h: &mut [DigestState; N], texts: [Option<&str>; N]) {
    for (h, text) in h.iter_mut().zip(&texts) {
        if let Some(text) = text {
            h.word(text.len() as u64);
        }
    }
    let bytes = texts.map(|t| t.unwrap_or("").as_bytes());
    let longest = bytes.iter().map(|b| b.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (h, bytes) in h.iter_mut().zip(&bytes) {
            if let Some(&b) = bytes.get(i) {
                h.0 = (h.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
        }
    }
}

/// A row that breaks no rule, for tests.
#[cfg(test)]
pub(crate) fn example(session_id: &str, seq: u64, received_ms: u64) -> Row {
    Row {
        session_id: session_id.into(),
        seq,
        app_id: "a".into(),
        app_version: "1".into(),
        platform: "web".into(),
        device: "d".into(),
        install_id: "i".into(),
        sdk: "x/1".into(),
        batch_no: 0,
        page_view: 1,
        page: "home".into(),
        request_id: None,
        item_id: format!("title:{seq}").into(),
        artwork_id: None,
        row: 0,
        column: seq as u32,
        first_visible_client_ms: 0,
        first_visible_ms: 0,
        visible_ms: 5_000,
        max_visible_pct: 100,
        focused_ms: 0,
        sample_rate: 1.0,
        contract_version: 1,
        reentry: Some(sightline_core::config::Reentry::OncePerPageView),
        received_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_without_strings_at_its_widest_fits_in_the_fixed_bytes() {
        let row = Row {
            session_id: Text::default(),
            seq: u64::MAX,
            app_id: Text::default(),
            app_version: Text::default(),
            platform: "unspecified".into(),
            device: Text::default(),
            install_id: Text::default(),
            sdk: "/".into(),
            batch_no: u64::MAX,
            page_view: u64::MAX,
            page: Text::default(),
            request_id: Some(Text::default()),
            item_id: Text::default(),
            artwork_id: Some(Text::default()),
            row: u32::MAX,
            column: u32::MAX,
            first_visible_client_ms: u64::MAX,
            first_visible_ms: u64::MAX,
            visible_ms: u32::MAX,
            max_visible_pct: u32::MAX,
            focused_ms: u32::MAX,
            sample_rate: 0.123_456_789_012_345_67,
            contract_version: u32::MAX,
            reentry: Some(Reentry::OncePerPageView),
            received_ms: u64::MAX,
        };
        let bytes = serde_json::to_vec(&row).unwrap().len() + 1;
        assert!(bytes <= ROW_FIXED_BYTES, "{bytes} bytes");
    }

    /// The digest as first written (one buffer, hashed whole): the streamed one must equal
    /// it, since digests are compared with rows written by earlier runs.
    fn buffered_digest(r: &Row) -> u64 {
        fn text(bytes: &mut Vec<u8>, s: &str) {
            bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
            bytes.extend_from_slice(s.as_bytes());
        }
        let mut bytes = Vec::new();
        for s in [
            &r.app_id,
            &r.app_version,
            &r.platform,
            &r.device,
            &r.install_id,
            &r.sdk,
            &r.page,
            &r.item_id,
        ] {
            text(&mut bytes, s);
        }
        for s in [&r.request_id, &r.artwork_id] {
            match s {
                None => bytes.push(0),
                Some(s) => {
                    bytes.push(1);
                    text(&mut bytes, s);
                }
            }
        }
        for n in [
            r.page_view,
            u64::from(r.row),
            u64::from(r.column),
            r.first_visible_client_ms,
            u64::from(r.visible_ms),
            u64::from(r.max_visible_pct),
            u64::from(r.focused_ms),
            r.sample_rate.to_bits(),
            u64::from(r.contract_version),
        ] {
            bytes.extend_from_slice(&n.to_le_bytes());
        }
        sightline_core::rng::hash_bytes(DIGEST_SEED, &bytes).max(1)
    }

    #[test]
    fn a_word_hashes_as_its_eight_bytes_do() {
        let mut values = vec![0, 1, 0xff, 0x100, 0xffff, 0x1_0000, u64::MAX, 1 << 63];
        values.extend([0x0100_0000_0000_0001, 0xffff << 48, 0x1_0000 << 47]);
        values.extend((0..64).map(|b| 1u64 << b));
        values.extend((0..64).map(|b| u64::MAX >> b));
        values.push(1.0f64.to_bits());
        for n in values {
            let (mut word, mut bytes) = (DigestState::new(7), DigestState::new(7));
            let mut number = word;
            word.word(n);
            number.number(n);
            bytes.bytes(&n.to_le_bytes());
            assert_eq!(word, bytes, "{n:#x}");
            assert_eq!(number, bytes, "{n:#x}");
        }
    }

    #[test]
    fn the_streamed_digest_equals_the_buffered_one_and_its_prefix_is_shared() {
        let row = example("s", 1, 10);
        let variants = [
            row.clone(),
            Row {
                request_id: Some("req-1".into()),
                artwork_id: Some("art:9".into()),
                ..row.clone()
            },
            Row {
                item_id: Text::default(),
                artwork_id: Some(Text::default()),
                sample_rate: 0.25,
                page_view: u64::MAX,
                ..row.clone()
            },
        ];
        for r in &variants {
            assert_eq!(r.digest(), buffered_digest(r), "{r:?}");
            // Rows of one batch and page view share the prefix.
            let other = Row {
                item_id: "other".into(),
                column: 9,
                ..r.clone()
            };
            assert_eq!(other.digest_from(r.digest_prefix()), other.digest());
        }
    }

    #[test]
    fn digests_side_by_side_equal_each_rows_own() {
        // Lanes of unequal id lengths, with and without the optional ids, and a remainder
        // past the last full group of lanes.
        let rows: Vec<Row> = (0..11u64)
            .map(|i| {
                let row = example("s", i, 10);
                Row {
                    item_id: "x".repeat(i as usize * 7 % 23).into(),
                    request_id: (i % 3 == 0).then(|| "req-1".into()),
                    artwork_id: (i % 2 == 0)
                        .then(|| format!("art:{}", "9".repeat(i as usize)).into()),
                    page_view: i * 1000,
                    ..row
                }
            })
            .collect();
        let prefixes: Vec<DigestState> = rows.iter().map(Row::digest_prefix).collect();
        let each: Vec<u64> = rows.iter().map(Row::digest).collect();
        assert_eq!(digests(&rows, &prefixes), each);
    }

    #[test]
    fn the_digest_is_of_the_content_not_of_when_or_how_it_was_sent() {
        let row = example("s", 1, 10);
        // Pinned: the digest is compared with rows written by earlier runs.
        assert_eq!(row.digest(), 0xb376_f5d3_4b38_0e0a);
        let resent = Row {
            batch_no: 7,
            received_ms: 99,
            first_visible_ms: 12_345,
            reentry: None,
            ..row.clone()
        };
        assert_eq!(resent.digest(), row.digest());
        let others: [fn(&mut Row); 8] = [
            |r| r.item_id = format!("{}x", r.item_id).into(),
            |r| r.install_id = "other".into(),
            |r| r.column += 1,
            |r| r.first_visible_client_ms += 1,
            |r| r.visible_ms += 1,
            |r| r.artwork_id = Some(Text::default()),
            |r| r.request_id = Some("req".into()),
            |r| r.sample_rate = 0.5,
        ];
        for (i, change) in others.iter().enumerate() {
            let mut other = row.clone();
            change(&mut other);
            assert_ne!(other.digest(), row.digest(), "change {i}");
        }
        // Length prefixes keep adjacent strings apart.
        let a = Row {
            app_id: "ab".into(),
            app_version: "c".into(),
            ..row.clone()
        };
        let b = Row {
            app_id: "a".into(),
            app_version: "bc".into(),
            ..row
        };
        assert_ne!(a.digest(), b.digest());
    }
}
