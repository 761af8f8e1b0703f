//! A small raw-DEFLATE encoder (RFC 1951) for targets short of flash and RAM: what
//! [`super::CompactGzipper`] compresses with (the `compact` feature makes it the logger's).
//!
//! This module owns turning bytes into DEFLATE blocks. Matches (LZ77) are found in the
//! input slice itself, so no window is copied, through a hash table holding the latest
//! position of each 3-byte hash and a chain linking each position to the previous one with
//! its hash: two `u16` tables, [`STATE_BYTES`] of heap in all. Each block is sent as
//! whichever is shortest of Huffman codes built for it, the fixed codes, or stored bytes;
//! the sizes are computed from the block's symbol counts before anything is written, by
//! running the match finder twice (count, then write) rather than buffering its output.
//!
//! Every candidate match is compared byte by byte, so a table entry can only cost ratio,
//! never correctness. The tables are cleared for every block, so the output depends on the
//! input alone, never on what was compressed before.
//!
//! The RFC's alphabets and tables here (`pub(super)`) serve the decoder in `inflate.rs` too.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// Input bytes per block: a stored block holds at most this many (its LEN is 16 bits), and
/// positions within a block then fit the `u16` tables exactly.
const BLOCK_LEN: usize = 0xffff;
/// log2 of how far back a match may reach. 8 KiB finds the repeats of a batch (its id
/// tables and columns) at 16 KiB of chain table; DEFLATE would allow 32 KiB.
const WINDOW_BITS: u32 = 13;
const WINDOW: usize = 1 << WINDOW_BITS;
/// log2 of the hash table's entries: 4 Ki entries (8 KiB) keep chains short for
/// batch-sized blocks.
const HASH_BITS: u32 = 12;
const HASH_SIZE: usize = 1 << HASH_BITS;
/// Heap bytes of an encoder's state: the hash table and the chain table.
pub const STATE_BYTES: usize = 2 * (HASH_SIZE + WINDOW);

/// DEFLATE's shortest and longest match.
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
/// Candidates tried per position: more finds longer matches, at CPU cost linear in it.
const MAX_CHAIN: usize = 64;
/// A match this long is taken at once: searching further or deferring it to the next
/// byte (lazy matching) rarely pays for long matches.
const NICE_MATCH: usize = 128;

/// The literal/length alphabet in use: 256 literals, end of block, 29 length codes.
pub(super) const LITLEN_CODES: usize = 286;
/// The fixed literal/length code's symbols: 286 and 287 never occur but take part in
/// the code, so the 9-bit codes start after them.
pub(super) const FIXED_LITLEN_CODES: usize = 288;
pub(super) const END_OF_BLOCK: usize = 256;
/// First length symbol.
pub(super) const FIRST_LENGTH: usize = 257;
pub(super) const DIST_CODES: usize = 30;
/// Code-length alphabet: lengths 0-15, then 16 (repeat the previous length), 17 and 18
/// (runs of zeros).
pub(super) const CODELEN_CODES: usize = 19;
/// Longest code DEFLATE allows for literals/lengths and distances, and for code lengths.
pub(super) const MAX_BITS: u8 = 15;
const MAX_CODELEN_BITS: u8 = 7;
/// The order code-length code lengths are sent in (RFC 1951 3.2.7), likely ones first so
/// the tail can be left off.
pub(super) const CODELEN_ORDER: [u8; CODELEN_CODES] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
/// Smallest match length of each length code (RFC 1951 3.2.5).
pub(super) const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
/// Smallest distance of each distance code.
pub(super) const DIST_BASE: [u16; DIST_CODES] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];

/// BTYPE values.
pub(super) const STORED: u32 = 0;
pub(super) const FIXED: u32 = 1;
pub(super) const DYNAMIC: u32 = 2;

/// Extra bits after length code `code` (0-28).
pub(super) fn length_extra(code: usize) -> u32 {
    match code {
        0..8 | 28 => 0,
        _ => (code as u32 - 4) / 4,
    }
}

/// Extra bits after distance code `code` (0-29).
pub(super) fn dist_extra(code: usize) -> u32 {
    code.saturating_sub(2) as u32 / 2
}

/// `value` as the index of the largest base not above it, and its offset from that base
/// (sent in extra bits).
fn split(base: &[u16], value: usize) -> (usize, u32) {
    let code = base
        .iter()
        .rposition(|&b| usize::from(b) <= value)
        .unwrap_or(0);
    let offset = value - base.get(code).map_or(0, |&b| usize::from(b));
    (code, offset as u32)
}

/// One output of the match finder.
#[derive(Clone, Copy)]
enum Token {
    Literal(u8),
    /// Copy `len` bytes from `dist` bytes back.
    Match {
        len: usize,
        dist: usize,
    },
}

/// A raw-DEFLATE encoder; see the module documentation.
pub struct Deflater {
    /// Latest position (within the block) of each 3-byte hash.
    head: Box<[u16; HASH_SIZE]>,
    /// For each position modulo the window, the previous position with the same hash.
    prev: Box<[u16; WINDOW]>,
}

/// A zeroed table straight from the allocator: `Box::new([0; N])` may build it on the
/// stack first.
fn zeroed<const N: usize>() -> Box<[u16; N]> {
    match alloc::vec![0u16; N].into_boxed_slice().try_into() {
        Ok(table) => table,
        Err(_) => unreachable!("a Vec of N elements converts to [u16; N]"),
    }
}

impl Deflater {
    pub fn new() -> Self {
        Self {
            head: zeroed(),
            prev: zeroed(),
        }
    }

    /// Appends `data` as a complete raw DEFLATE stream to `out`.
    pub fn deflate_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut bits = BitWriter {
            out,
            acc: 0,
            len: 0,
        };
        let mut rest = data;
        // At least one block: empty data is a single empty final block.
        loop {
            let (block, tail) = rest.split_at(rest.len().min(BLOCK_LEN));
            self.block(block, tail.is_empty(), &mut bits);
            if tail.is_empty() {
                break;
            }
            rest = tail;
        }
        bits.align();
    }

    fn block(&mut self, block: &[u8], last: bool, bits: &mut BitWriter<'_>) {
        let mut litlen_freq = [0u32; LITLEN_CODES];
        let mut dist_freq = [0u32; DIST_CODES];
        self.tokens(block, &mut |token| match token {
            Token::Literal(byte) => litlen_freq[usize::from(byte)] += 1,
            Token::Match { len, dist } => {
                litlen_freq[FIRST_LENGTH + split(&LENGTH_BASE, len).0] += 1;
                dist_freq[split(&DIST_BASE, dist).0] += 1;
            }
        });
        litlen_freq[END_OF_BLOCK] = 1;

        let mut litlen = [0u8; LITLEN_CODES];
        let mut dist = [0u8; DIST_CODES];
        huffman_lengths(&litlen_freq, MAX_BITS, &mut litlen);
        huffman_lengths(&dist_freq, MAX_BITS, &mut dist);
        let header = DynamicHeader::new(&litlen, &dist);
        let extra = extra_bits(&litlen_freq, &dist_freq);
        let dynamic = header.bits + cost(&litlen_freq, &litlen) + cost(&dist_freq, &dist);
        let (fixed_litlen, fixed_dist) = (fixed_litlen_lengths(), [5u8; DIST_CODES]);
        let fixed = cost(&litlen_freq, &fixed_litlen) + cost(&dist_freq, &fixed_dist);
        // Header bits and padding to the byte boundary, LEN and NLEN, the bytes.
        let stored = u64::from((8 - (bits.len + 3) % 8) % 8) + 32 + 8 * block.len() as u64;

        let btype = if stored <= dynamic.min(fixed) + extra {
            STORED
        } else if dynamic < fixed {
            DYNAMIC
        } else {
            FIXED
        };
        bits.put(u32::from(last) | btype << 1, 3);
        match btype {
            STORED => {
                bits.align();
                // At most BLOCK_LEN, so it fits LEN's 16 bits.
                let len = block.len() as u16;
                bits.put(u32::from(len), 16);
                bits.put(u32::from(!len), 16);
                bits.out.extend_from_slice(block);
            }
            DYNAMIC => {
                header.write(bits);
                self.write(block, &Code::new(&litlen), &Code::new(&dist), bits);
            }
            _ => self.write(
                block,
                &Code::new(&fixed_litlen),
                &Code::new(&fixed_dist),
                bits,
            ),
        }
    }

    /// The block's symbols in the given codes, then its end.
    fn write(&mut self, block: &[u8], litlen: &Code, dist: &Code, bits: &mut BitWriter<'_>) {
        self.tokens(block, &mut |token| match token {
            Token::Literal(byte) => litlen.put(bits, usize::from(byte)),
            Token::Match { len, dist: d } => {
                let (code, offset) = split(&LENGTH_BASE, len);
                litlen.put(bits, FIRST_LENGTH + code);
                bits.put(offset, length_extra(code));
                let (code, offset) = split(&DIST_BASE, d);
                dist.put(bits, code);
                bits.put(offset, dist_extra(code));
            }
        });
        litlen.put(bits, END_OF_BLOCK);
    }

    /// Runs the match finder over `block` from clear tables, handing each literal or
    /// match to `emit` in order. `dyn`: one copy of the loop serves counting and writing.
    fn tokens(&mut self, block: &[u8], emit: &mut dyn FnMut(Token)) {
        self.head.fill(0);
        self.prev.fill(0);
        let mut i = 0;
        while let Some(&byte) = block.get(i) {
            let (len, dist) = self.longest_match(block, i);
            self.insert(block, i);
            // Lazy matching: if a longer match starts at the next byte, this byte goes
            // out as a literal and the next iteration takes that match.
            let take = len >= MIN_MATCH
                && (len >= NICE_MATCH || self.longest_match(block, i + 1).0 <= len);
            if take {
                emit(Token::Match { len, dist });
                for p in i + 1..i + len {
                    self.insert(block, p);
                }
                i += len;
            } else {
                emit(Token::Literal(byte));
                i += 1;
            }
        }
    }

    /// Records position `i` as the latest with its hash.
    fn insert(&mut self, block: &[u8], i: usize) {
        if let Some(h) = hash(block, i) {
            self.prev[i % WINDOW] = self.head[h];
            // Blocks are at most BLOCK_LEN bytes, so positions fit.
            self.head[h] = i as u16;
        }
    }

    /// The longest earlier match for the bytes at `i` found within [`MAX_CHAIN`]
    /// candidates: (length, distance), length 0 if none.
    fn longest_match(&self, block: &[u8], i: usize) -> (usize, usize) {
        let Some(h) = hash(block, i) else {
            return (0, 0);
        };
        let here = &block[i..block.len().min(i + MAX_MATCH)];
        let good_enough = here.len().min(NICE_MATCH);
        let (mut best, mut dist) = (0, 0);
        let mut candidate = usize::from(self.head[h]);
        for _ in 0..MAX_CHAIN {
            // Chains run backwards; an entry that does not is left from an older
            // position sharing the slot.
            if candidate >= i || i - candidate > WINDOW {
                break;
            }
            let there = &block[candidate..];
            // A match longer than `best` must also differ nowhere up to `best`; the
            // byte at `best` rejects most candidates without a full comparison.
            if there.get(best) == here.get(best) {
                let len = there.iter().zip(here).take_while(|(a, b)| a == b).count();
                if len > best {
                    (best, dist) = (len, i - candidate);
                    if len >= good_enough {
                        break;
                    }
                }
            }
            let next = usize::from(self.prev[candidate % WINDOW]);
            if next >= candidate {
                break;
            }
            candidate = next;
        }
        (best, dist)
    }
}

/// The hash-table slot of the 3 bytes at `i`, or None near the end where a match cannot
/// start.
fn hash(block: &[u8], i: usize) -> Option<usize> {
    let [a, b, c] = *block.get(i..)?.first_chunk::<MIN_MATCH>()?;
    let key = u32::from_le_bytes([a, b, c, 0]);
    // Fibonacci hashing: the multiplication mixes all three bytes into the top bits.
    Some((key.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize)
}

/// Bits to send `freq` symbols in a code of `lengths`.
fn cost(freq: &[u32], lengths: &[u8]) -> u64 {
    freq.iter()
        .zip(lengths)
        .map(|(&f, &l)| u64::from(f) * u64::from(l))
        .sum()
}

/// Extra bits the block's lengths and distances carry, whatever the codes.
fn extra_bits(litlen_freq: &[u32], dist_freq: &[u32]) -> u64 {
    let lengths = litlen_freq[FIRST_LENGTH..].iter().enumerate();
    let length_bits = lengths.map(|(c, &f)| u64::from(f) * u64::from(length_extra(c)));
    let dists = dist_freq.iter().enumerate();
    let dist_bits = dists.map(|(c, &f)| u64::from(f) * u64::from(dist_extra(c)));
    length_bits.sum::<u64>() + dist_bits.sum::<u64>()
}

/// RFC 1951 3.2.6's fixed literal/length code lengths.
pub(super) fn fixed_litlen_lengths() -> [u8; FIXED_LITLEN_CODES] {
    core::array::from_fn(|s| match s {
        0..144 => 8,
        144..256 => 9,
        256..280 => 7,
        _ => 8,
    })
}

/// The code-length part of a dynamic block's header: the lengths of both codes, run-length
/// coded, in a code of its own.
struct DynamicHeader {
    /// Literal/length and distance code lengths, back to back (runs may span both).
    lengths: [u8; LITLEN_CODES + DIST_CODES],
    /// How many of each are sent (HLIT + 257 and HDIST + 1): trailing zeros are left off.
    litlen_count: usize,
    dist_count: usize,
    codelen: [u8; CODELEN_CODES],
    /// How many code-length code lengths are sent (HCLEN + 4).
    codelen_count: usize,
    /// The header's size, BTYPE excluded.
    bits: u64,
}

impl DynamicHeader {
    fn new(litlen: &[u8; LITLEN_CODES], dist: &[u8; DIST_CODES]) -> Self {
        let used = |lengths: &[u8]| lengths.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1);
        let litlen_count = used(litlen).max(FIRST_LENGTH);
        let dist_count = used(dist).max(1);
        let mut lengths = [0u8; LITLEN_CODES + DIST_CODES];
        lengths[..litlen_count].copy_from_slice(&litlen[..litlen_count]);
        lengths[litlen_count..litlen_count + dist_count].copy_from_slice(&dist[..dist_count]);
        let mut freq = [0u32; CODELEN_CODES];
        runs(&lengths[..litlen_count + dist_count], &mut |sym, _| {
            freq[usize::from(sym)] += 1;
        });
        let mut codelen = [0u8; CODELEN_CODES];
        huffman_lengths(&freq, MAX_CODELEN_BITS, &mut codelen);
        let codelen_count = CODELEN_ORDER
            .iter()
            .rposition(|&s| codelen[usize::from(s)] != 0)
            .map_or(0, |i| i + 1)
            .max(4);
        let run_extra = u64::from(freq[16]) * 2 + u64::from(freq[17]) * 3 + u64::from(freq[18]) * 7;
        let bits = 5 + 5 + 4 + 3 * codelen_count as u64 + cost(&freq, &codelen) + run_extra;
        Self {
            lengths,
            litlen_count,
            dist_count,
            codelen,
            codelen_count,
            bits,
        }
    }

    fn write(&self, bits: &mut BitWriter<'_>) {
        bits.put((self.litlen_count - FIRST_LENGTH) as u32, 5);
        bits.put(self.dist_count as u32 - 1, 5);
        bits.put(self.codelen_count as u32 - 4, 4);
        for &sym in &CODELEN_ORDER[..self.codelen_count] {
            bits.put(u32::from(self.codelen[usize::from(sym)]), 3);
        }
        let code = Code::new(&self.codelen);
        let sent = &self.lengths[..self.litlen_count + self.dist_count];
        runs(sent, &mut |sym, extra| {
            code.put(bits, usize::from(sym));
            let extra_len = match sym {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => 0,
            };
            bits.put(extra, extra_len);
        });
    }
}

/// Run-length codes code lengths (RFC 1951 3.2.7): hands `emit` each code-length symbol
/// and the value of its extra bits.
fn runs(lengths: &[u8], emit: &mut dyn FnMut(u8, u32)) {
    // The length symbol 16 repeats; none before the first.
    let mut previous = None;
    let mut i = 0;
    while let Some(&len) = lengths.get(i) {
        let run = lengths[i..].iter().take_while(|&&l| l == len).count();
        let (sym, extra, taken) = match run {
            11.. if len == 0 => (18, run.min(138) - 11, run.min(138)),
            3.. if len == 0 => (17, run - 3, run),
            3.. if previous == Some(len) => (16, run.min(6) - 3, run.min(6)),
            _ => (len, 0, 1),
        };
        emit(sym, extra as u32);
        previous = Some(len);
        i += taken;
    }
}

/// Huffman code lengths of at most `limit` bits for the symbols counted in `freq`, 0 for
/// symbols never used. At least two symbols get a code, so the code is always complete:
/// some decoders reject a one-symbol code.
fn huffman_lengths(freq: &[u32], limit: u8, lengths: &mut [u8]) {
    // (weight, symbol) of the coded symbols, by weight; ties by symbol.
    let mut weights = [0u32; LITLEN_CODES];
    let mut symbols = [0u16; LITLEN_CODES];
    let mut n = 0;
    let mut add = |sym: usize, weight: u32, n: &mut usize| {
        // Insertion sort: at most 286 symbols, and no sort routine to link.
        let mut at = *n;
        while at > 0 && weights[at - 1] > weight {
            weights[at] = weights[at - 1];
            symbols[at] = symbols[at - 1];
            at -= 1;
        }
        weights[at] = weight;
        symbols[at] = sym as u16;
        *n += 1;
    };
    for (sym, &f) in freq.iter().enumerate() {
        if f > 0 {
            add(sym, f, &mut n);
        }
    }
    for (sym, &f) in freq.iter().enumerate() {
        if n >= 2 {
            break;
        }
        if f == 0 {
            add(sym, 0, &mut n);
        }
    }
    minimum_redundancy(&mut weights[..n]);

    // Codes per length, longer ones counted at the limit; then lengthen codes until the
    // lengths fit Kraft's inequality again (as zlib and miniz do).
    let limit = usize::from(limit);
    let mut count = [0u32; MAX_BITS as usize + 1];
    for &depth in &weights[..n] {
        count[(depth as usize).min(limit)] += 1;
    }
    let kraft = |count: &[u32]| (1..=limit).map(|l| count[l] << (limit - l)).sum::<u32>();
    for _ in 1 << limit..kraft(&count) {
        count[limit] -= 1;
        // One code of some shorter length becomes two one bit longer.
        if let Some(l) = (1..limit).rev().find(|&l| count[l] != 0) {
            count[l] -= 1;
            count[l + 1] += 2;
        }
    }
    // Shortest codes to the most frequent symbols, which sort last.
    lengths.fill(0);
    let mut end = n;
    for (len, &c) in count.iter().enumerate().skip(1) {
        for &sym in &symbols[end - c as usize..end] {
            lengths[usize::from(sym)] = len as u8;
        }
        end -= c as usize;
    }
}

/// Moffat and Katajainen's in-place minimum-redundancy code ("In-place calculation of
/// minimum-redundancy codes", 1995): `a` holds at least two weights in ascending order and
/// gets each one's code length.
fn minimum_redundancy(a: &mut [u32]) {
    let n = a.len();
    if n < 2 {
        return;
    }
    // Build the tree: internal node `next` takes the two smallest of the unused roots
    // and leaves; a used root's slot then holds its parent's index.
    a[0] += a[1];
    let (mut root, mut leaf) = (0, 2);
    for next in 1..n - 1 {
        for first in [true, false] {
            let take_root = leaf >= n || (root < next && a[root] < a[leaf]);
            let weight = if take_root {
                let w = a[root];
                a[root] = next as u32;
                root += 1;
                w
            } else {
                leaf += 1;
                a[leaf - 1]
            };
            a[next] = if first { weight } else { a[next] + weight };
        }
    }
    // Depths of the internal nodes, from the root down.
    a[n - 2] = 0;
    for next in (0..n - 2).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    // Depths of the leaves: at each depth, the slots not taken by internal nodes.
    let (mut available, mut depth) = (1u32, 0u32);
    let mut root = n - 1; // One past the next internal node to look at.
    let mut next = n; // One past the next slot to write a leaf depth into.
    while available > 0 {
        let mut used = 0;
        while root > 0 && a[root - 1] == depth {
            used += 1;
            root -= 1;
        }
        while available > used {
            next -= 1;
            a[next] = depth;
            available -= 1;
        }
        available = 2 * used;
        depth += 1;
    }
}

/// A prefix code ready to write: each symbol's length and its code bit-reversed, since
/// DEFLATE sends Huffman codes first bit first while the writer fills bytes from bit 0.
struct Code<'a> {
    lengths: &'a [u8],
    codes: [u16; FIXED_LITLEN_CODES],
}

impl<'a> Code<'a> {
    /// The canonical code for `lengths` (RFC 1951 3.2.2).
    fn new(lengths: &'a [u8]) -> Self {
        let mut count = [0u16; MAX_BITS as usize + 1];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut next = [0u16; MAX_BITS as usize + 1];
        for bits in 1..next.len() {
            next[bits] = (next[bits - 1] + count[bits - 1]) << 1;
        }
        let mut codes = [0u16; FIXED_LITLEN_CODES];
        for (code, &l) in codes.iter_mut().zip(lengths) {
            if l > 0 {
                let l = usize::from(l);
                *code = next[l].reverse_bits() >> (16 - l);
                next[l] += 1;
            }
        }
        Self { lengths, codes }
    }

    fn put(&self, bits: &mut BitWriter<'_>, sym: usize) {
        bits.put(u32::from(self.codes[sym]), u32::from(self.lengths[sym]));
    }
}

/// Appends bits to a byte vector, least significant first (RFC 1951 3.1.1).
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Bits not yet written, in the low `len` bits (always fewer than 8 between calls).
    acc: u32,
    len: u32,
}

impl BitWriter<'_> {
    /// Appends the low `n` bits of `value` (`n` at most 16, `value` below `1 << n`).
    fn put(&mut self, value: u32, n: u32) {
        self.acc |= value << self.len;
        self.len += n;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    /// Pads with zero bits to the next byte boundary.
    fn align(&mut self) {
        if self.len > 0 {
            self.put(0, 8 - self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::vec;
    use std::io::Read;

    use crate::gzip::test_rng::Rng;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Deflater::new().deflate_into(data, &mut out);
        out
    }

    /// Inflated by flate2 (a second, independent decoder) and by miniz_oxide, which the
    /// core's own gunzip uses.
    fn assert_round_trips(data: &[u8]) -> Vec<u8> {
        let z = deflate(data);
        let mut flate2_out = Vec::new();
        flate2::read::DeflateDecoder::new(&z[..])
            .read_to_end(&mut flate2_out)
            .unwrap();
        assert!(flate2_out == data, "flate2, {} bytes", data.len());
        let miniz_out = miniz_oxide::inflate::decompress_to_vec(&z).unwrap();
        assert!(miniz_out == data, "miniz_oxide, {} bytes", data.len());
        z
    }

    /// Kraft's equality: the lengths form a complete prefix code.
    fn is_complete(lengths: &[u8]) -> bool {
        let sum: u64 = lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (32 - l))
            .sum();
        sum == 1 << 32
    }

    #[test]
    fn empty_input_is_one_empty_fixed_block() {
        // BFINAL, BTYPE 01, end of block: what zlib writes for no data.
        assert_eq!(assert_round_trips(b""), [0x03, 0x00]);
    }

    #[test]
    fn seeded_random_text_round_trips_at_many_lengths() {
        let mut rng = Rng(0x7e57);
        for len in [
            1, 2, 3, 4, 5, 10, 100, 257, 258, 259, 1000, 8191, 8192, 8193, 50_000,
        ] {
            assert_round_trips(&rng.text(len));
        }
        for _ in 0..200 {
            let len = rng.below(3000);
            assert_round_trips(&rng.text(len));
        }
    }

    #[test]
    fn repetitive_input_compresses_to_a_small_fraction() {
        let zeros = assert_round_trips(&[0; 100_000]);
        assert!(zeros.len() < 300, "{} bytes", zeros.len());
        let pattern = b"title:81234567 art:100200300 ".repeat(2000);
        let z = assert_round_trips(&pattern);
        assert!(z.len() < pattern.len() / 50, "{} bytes", z.len());
    }

    #[test]
    fn incompressible_input_grows_by_block_framing_only() {
        for len in [1, 100, 65_535, 65_536, 200_000] {
            let data = Rng(len as u64).bytes(len);
            let z = assert_round_trips(&data);
            let blocks = len.div_ceil(BLOCK_LEN);
            assert!(z.len() <= len + 5 * blocks, "{len}: {} bytes", z.len());
        }
    }

    #[test]
    fn inputs_spanning_several_blocks_round_trip() {
        let mut rng = Rng(0xb10c);
        let mut data = rng.text(BLOCK_LEN * 2 + 1234);
        data.extend(rng.bytes(BLOCK_LEN));
        data.extend([b'x'; 70_000]);
        assert_round_trips(&data);
        assert_round_trips(&rng.text(1 << 20));
    }

    #[test]
    fn output_depends_on_the_input_alone() {
        let mut rng = Rng(0xde7);
        let (a, b) = (rng.text(20_000), rng.text(5_000));
        let mut reused = Deflater::new();
        let mut first = Vec::new();
        reused.deflate_into(&a, &mut Vec::new());
        reused.deflate_into(&b, &mut first);
        assert_eq!(first, deflate(&b));
    }

    #[test]
    fn huffman_lengths_are_complete_and_within_the_limit() {
        let mut rng = Rng(0x4aff);
        // Fibonacci counts give the deepest trees, forcing the length limit.
        let mut fibonacci = [0u32; 40];
        (fibonacci[0], fibonacci[1]) = (1, 1);
        for i in 2..fibonacci.len() {
            fibonacci[i] = fibonacci[i - 1] + fibonacci[i - 2];
        }
        let mut cases: Vec<Vec<u32>> = vec![
            vec![0; 30],
            vec![5; 19],
            [vec![7], vec![0; 29]].concat(),
            [vec![0; 18], vec![3]].concat(),
            fibonacci.to_vec(),
            fibonacci[..19].to_vec(),
        ];
        for _ in 0..300 {
            let len = 2 + rng.below(LITLEN_CODES - 1);
            cases.push(
                (0..len)
                    .map(|_| match rng.below(3) {
                        0 => 0,
                        1 => 1 + rng.below(10) as u32,
                        _ => rng.next() as u32 >> (8 + rng.below(24)),
                    })
                    .collect(),
            );
        }
        for freq in cases {
            // 7 bits code at most 128 symbols: the code-length alphabet has 19.
            let limits = if freq.len() <= CODELEN_CODES {
                &[MAX_CODELEN_BITS, MAX_BITS][..]
            } else {
                &[MAX_BITS]
            };
            for &limit in limits {
                let mut lengths = vec![0u8; freq.len()];
                huffman_lengths(&freq, limit, &mut lengths);
                assert!(is_complete(&lengths), "{freq:?} limit {limit}: {lengths:?}");
                assert!(lengths.iter().all(|&l| l <= limit), "{lengths:?}");
                let coded = lengths.iter().filter(|&&l| l > 0).count();
                let used = freq.iter().filter(|&&f| f > 0).count();
                assert_eq!(coded, used.max(2), "{freq:?}");
                for (&f, &l) in freq.iter().zip(&lengths) {
                    assert!(f == 0 || l > 0, "a used symbol without a code");
                }
            }
        }
    }

    #[test]
    fn huffman_lengths_are_optimal_for_a_textbook_case() {
        // Counts 1, 1, 2, 4, 8: depths 4, 4, 3, 2, 1.
        let mut lengths = [0u8; 5];
        huffman_lengths(&[8, 1, 4, 1, 2], MAX_BITS, &mut lengths);
        assert_eq!(lengths, [1, 4, 2, 4, 3]);
    }

    #[test]
    fn length_and_distance_codes_match_rfc_1951() {
        assert_eq!(split(&LENGTH_BASE, 3), (0, 0));
        assert_eq!(split(&LENGTH_BASE, 12), (8, 1));
        assert_eq!(split(&LENGTH_BASE, 257), (27, 30));
        assert_eq!(split(&LENGTH_BASE, 258), (28, 0));
        assert_eq!(split(&DIST_BASE, 1), (0, 0));
        assert_eq!(split(&DIST_BASE, 8192), (25, 2047));
        assert_eq!(split(&DIST_BASE, 32_768), (29, 8191));
        assert_eq!(
            (length_extra(7), length_extra(8), length_extra(27)),
            (0, 1, 5)
        );
        assert_eq!(
            (length_extra(28), dist_extra(3), dist_extra(29)),
            (0, 0, 13)
        );
    }

    #[test]
    fn code_length_runs_use_repeat_symbols() {
        let mut sent = Vec::new();
        let lengths = [[3u8; 8].as_slice(), &[0; 14], &[1], &[0; 140], &[4; 3]].concat();
        runs(&lengths, &mut |sym, extra| sent.push((sym, extra)));
        let expected = [
            (3, 0),
            (16, 3), // 3 repeated 6 times
            (3, 0),  // the 8th: too few left for a repeat
            (18, 14 - 11),
            (1, 0),
            (18, 138 - 11),
            (0, 0),
            (0, 0),
            (4, 0),
            (4, 0),
            (4, 0),
        ];
        assert_eq!(sent, expected);
    }

    #[test]
    fn state_is_the_two_tables() {
        assert_eq!(STATE_BYTES, 24 * 1024);
    }
}
