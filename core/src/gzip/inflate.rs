//! A small raw-DEFLATE decoder (RFC 1951) for targets short of flash: what
//! [`super::gunzip`] inflates with under the `compact` feature (miniz_oxide's otherwise).
//!
//! This module owns turning one DEFLATE stream back into bytes: stored, fixed and dynamic
//! blocks, decoded the way zlib's `contrib/puff` does. A Huffman code is kept as the number
//! of codes of each length and its symbols in code order, which is all a canonical code
//! needs, and decoded one bit at a time: no lookup tables, a few hundred bytes of code, at
//! some cost in speed. The output `Vec` is the window: a back-reference copies from the
//! member's own earlier output, so nothing else is allocated. The RFC's length and
//! distance tables are the encoder's (`compact.rs`), so the firmware holds them once.
//!
//! The input is untrusted. Every read is bounds-checked: running out of input is
//! [`GzipError::Truncated`], anything the RFC does not allow is [`GzipError::Corrupt`]
//! (over-subscribed codes, incomplete ones other than the single one-bit code zlib also
//! accepts, symbols 286, 287, 30 and 31, a distance before the member's start, a stored
//! length whose complement does not match). The output never grows past `max_output` in
//! length or in capacity: a stream that would pass it is [`GzipError::TooLarge`].

use alloc::vec::Vec;

use super::compact::{
    CODELEN_CODES, CODELEN_ORDER, DIST_BASE, DIST_CODES, DYNAMIC, END_OF_BLOCK, FIRST_LENGTH,
    FIXED, FIXED_LITLEN_CODES, LENGTH_BASE, LITLEN_CODES, MAX_BITS, STORED, dist_extra,
    fixed_litlen_lengths, length_extra,
};
use super::{GzipError, MIN_GROW};

/// Code lengths 0 (symbol unused) to 15: the size of a code's per-length counts.
const LENGTH_SLOTS: usize = MAX_BITS as usize + 1;
/// Most symbols a code can have: the fixed literal/length code's 288. One size serves all
/// three codes of a block, so one copy of the code builder and decoder is linked.
const MAX_SYMBOLS: usize = FIXED_LITLEN_CODES;
/// The fixed distance code (RFC 1951 3.2.6): 32 codes of 5 bits, a complete code, of
/// which 30 and 31 have no distance.
const FIXED_DIST_CODES: usize = 32;
const FIXED_DIST_BITS: u8 = 5;
/// Code lengths of a block's two codes: the fixed codes' 288 + 32, more than a dynamic
/// header may send (HLIT + 257 <= 286 and HDIST + 1 <= 30).
const MAX_LENGTHS: usize = FIXED_LITLEN_CODES + FIXED_DIST_CODES;

/// Inflates the raw DEFLATE stream at the start of `input`, appending it to `out`, and
/// returns the input after the stream's last byte. Back-references reach only as far back
/// as the output's length on entry: each gzip member is a stream of its own.
pub(super) fn inflate<'a>(
    input: &'a [u8],
    out: &mut Vec<u8>,
    max_output: usize,
) -> Result<&'a [u8], GzipError> {
    let start = out.len();
    let mut bits = Bits {
        input,
        acc: 0,
        len: 0,
    };
    loop {
        let last = bits.take(1)? == 1;
        let btype = bits.take(2)?;
        if btype == STORED {
            stored(&mut bits, out, max_output)?;
        } else {
            // Both Huffman-coded block types: their codes' lengths, then one path.
            let mut lengths = [0u8; MAX_LENGTHS];
            let (litlen_count, total) = match btype {
                FIXED => fixed(&mut lengths),
                DYNAMIC => dynamic(&mut bits, &mut lengths)?,
                _ => return Err(GzipError::Corrupt),
            };
            let sent = lengths.get(..total).ok_or(GzipError::Corrupt)?;
            let (litlen, dist) = sent
                .split_at_checked(litlen_count)
                .ok_or(GzipError::Corrupt)?;
            if litlen.get(END_OF_BLOCK).is_none_or(|&len| len == 0) {
                // Without a code for the end of the block, the block could never end.
                return Err(GzipError::Corrupt);
            }
            let (mut litlen_code, mut dist_code) = (Huffman::EMPTY, Huffman::EMPTY);
            block_code(&mut litlen_code, litlen)?;
            block_code(&mut dist_code, dist)?;
            let mut block = Block {
                bits: &mut bits,
                out,
                start,
                max_output,
            };
            block.codes(&litlen_code, &dist_code)?;
        }
        if last {
            // The bits left over are the final byte's padding: the stream ends with it.
            return Ok(bits.input);
        }
    }
}

/// Reads bits least significant first (RFC 1951 3.1.1), a byte at a time, so the bits
/// held are always those of the byte last read: `input` is where the stream goes on.
struct Bits<'a> {
    input: &'a [u8],
    /// Bits read but not yet taken, in the low `len` bits.
    acc: u32,
    len: u32,
}

impl Bits<'_> {
    /// The next `n` bits (at most 16) as a number, first bit lowest.
    fn take(&mut self, n: u32) -> Result<u32, GzipError> {
        while self.len < n {
            let (&byte, rest) = self.input.split_first().ok_or(GzipError::Truncated)?;
            self.input = rest;
            self.acc |= u32::from(byte) << self.len;
            self.len += 8;
        }
        let value = self.acc & ((1 << n) - 1);
        self.acc >>= n;
        self.len -= n;
        Ok(value)
    }
}

/// A stored block: to the byte boundary, LEN and its complement NLEN, then LEN bytes.
fn stored(bits: &mut Bits<'_>, out: &mut Vec<u8>, max_output: usize) -> Result<(), GzipError> {
    (bits.acc, bits.len) = (0, 0);
    let (&[l0, l1, n0, n1], rest) = bits
        .input
        .split_first_chunk::<4>()
        .ok_or(GzipError::Truncated)?;
    let len = u16::from_le_bytes([l0, l1]);
    if len != !u16::from_le_bytes([n0, n1]) {
        return Err(GzipError::Corrupt);
    }
    let (data, rest) = rest
        .split_at_checked(usize::from(len))
        .ok_or(GzipError::Truncated)?;
    reserve(out, data.len(), rest.len(), max_output)?;
    out.extend_from_slice(data);
    bits.input = rest;
    Ok(())
}

/// The fixed codes' lengths (RFC 1951 3.2.6) into `lengths`: how many are the literal/
/// length code's, and how many there are. Built per block: a few hundred cycles, no
/// table in flash.
fn fixed(lengths: &mut [u8; MAX_LENGTHS]) -> (usize, usize) {
    let dist = [FIXED_DIST_BITS; FIXED_DIST_CODES];
    for (len, &fixed) in lengths
        .iter_mut()
        .zip(fixed_litlen_lengths().iter().chain(&dist))
    {
        *len = fixed;
    }
    (FIXED_LITLEN_CODES, MAX_LENGTHS)
}

/// A dynamic block's header (RFC 1951 3.2.7) into `lengths`: the code-length code, then
/// the literal/length and distance code lengths it codes, run-length coded. Returns how
/// many are the literal/length code's, and how many there are.
fn dynamic(
    bits: &mut Bits<'_>,
    lengths: &mut [u8; MAX_LENGTHS],
) -> Result<(usize, usize), GzipError> {
    let litlen_count = FIRST_LENGTH + bits.take(5)? as usize;
    let dist_count = 1 + bits.take(5)? as usize;
    let codelen_count = 4 + bits.take(4)? as usize;
    if litlen_count > LITLEN_CODES || dist_count > DIST_CODES {
        return Err(GzipError::Corrupt);
    }

    // The code-length code's lengths go first in `lengths`; the two codes' lengths then
    // overwrite them from the start (each entry is written before it is read).
    for &sym in CODELEN_ORDER.iter().take(codelen_count) {
        if let Some(len) = lengths.get_mut(usize::from(sym)) {
            *len = bits.take(3)? as u8;
        }
    }
    let codelen = lengths.get(..CODELEN_CODES).ok_or(GzipError::Corrupt)?;
    let mut code = Huffman::EMPTY;
    if code.build(codelen)? != 0 {
        // An incomplete code-length code is never needed: zlib refuses it too.
        return Err(GzipError::Corrupt);
    }

    let total = litlen_count + dist_count;
    let mut i = 0;
    while i < total {
        let (len, repeat) = match code.decode(bits)? {
            sym @ 0..16 => (sym as u8, 1),
            // Repeat the previous length, of which there must be one.
            16 => {
                let previous = i.checked_sub(1).and_then(|p| lengths.get(p));
                (*previous.ok_or(GzipError::Corrupt)?, 3 + bits.take(2)?)
            }
            17 => (0, 3 + bits.take(3)?),
            _ => (0, 11 + bits.take(7)?),
        };
        let end = i + repeat as usize;
        // A run may span both codes' lengths but not go past them.
        let run = lengths
            .get_mut(i..end)
            .filter(|_| end <= total)
            .ok_or(GzipError::Corrupt)?;
        run.fill(len);
        i = end;
    }
    Ok((litlen_count, total))
}

/// A block's literal/length or distance code: complete, or a single one-bit code (an
/// encoder with one distance to send makes it; zlib accepts that and no other incomplete
/// code).
fn block_code(code: &mut Huffman, lengths: &[u8]) -> Result<(), GzipError> {
    if code.build(lengths)? != 0 && lengths.iter().any(|&len| len > 1) {
        return Err(GzipError::Corrupt);
    }
    Ok(())
}

/// A canonical Huffman code (RFC 1951 3.2.2) as puff keeps one: how many codes have each
/// length, and the symbols ordered by code (by length, then by symbol).
struct Huffman {
    count: [u16; LENGTH_SLOTS],
    symbol: [u16; MAX_SYMBOLS],
}

impl Huffman {
    /// A code of no symbols, to [`Huffman::build`] a code in.
    const EMPTY: Self = Self {
        count: [0; LENGTH_SLOTS],
        symbol: [0; MAX_SYMBOLS],
    };

    /// Makes this the code with the given length per symbol (0: unused);
    /// returns how many codes of the longest length it leaves unused (0 for a complete
    /// code). An over-subscribed set
    /// (more codes than a prefix code can have) is corrupt.
    fn build(&mut self, lengths: &[u8]) -> Result<u32, GzipError> {
        let code = self;
        // The symbols need no clearing: only those the counts cover are ever read.
        code.count = [0; LENGTH_SLOTS];
        for &len in lengths {
            let count = code.count.get_mut(usize::from(len));
            *count.ok_or(GzipError::Corrupt)? += 1;
        }
        // Codes still free at each length, going down the tree (Kraft's inequality).
        let mut free: i32 = 1;
        for &count in code.count.iter().skip(1) {
            free = 2 * free - i32::from(count);
            if free < 0 {
                return Err(GzipError::Corrupt);
            }
        }
        // Where each length's symbols start in `symbol`.
        let mut offset = [0u16; LENGTH_SLOTS];
        let mut next = 0;
        for (offset, &count) in offset.iter_mut().zip(&code.count).skip(1) {
            *offset = next;
            next += count;
        }
        for (sym, &len) in lengths.iter().enumerate() {
            if len != 0 {
                let at = offset.get_mut(usize::from(len)).ok_or(GzipError::Corrupt)?;
                let slot = code.symbol.get_mut(usize::from(*at));
                *slot.ok_or(GzipError::Corrupt)? = sym as u16;
                *at += 1;
            }
        }
        Ok(free as u32)
    }

    /// The next symbol, read a bit at a time. The codes of one length are consecutive
    /// numbers, so a code is known as soon as it falls in its length's range.
    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, GzipError> {
        // `code`: the bits so far; `first`: the first code of this length; `index`: the
        // position of that code's symbol in `symbol`.
        let (mut code, mut first, mut index) = (0u32, 0u32, 0u32);
        for &count in self.count.iter().skip(1) {
            code |= bits.take(1)?;
            let count = u32::from(count);
            let within = code.wrapping_sub(first);
            if within < count {
                let sym = self.symbol.get((index + within) as usize);
                return sym.copied().ok_or(GzipError::Corrupt);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        // A code left unused by an incomplete set.
        Err(GzipError::Corrupt)
    }
}

/// A Huffman-coded block being decoded into the output.
struct Block<'a, 'b> {
    bits: &'a mut Bits<'b>,
    out: &'a mut Vec<u8>,
    /// Where this stream's output starts in `out`: no distance may reach before it.
    start: usize,
    max_output: usize,
}

impl Block<'_, '_> {
    /// Literals and back-references up to the end-of-block symbol.
    fn codes(&mut self, litlen: &Huffman, dist: &Huffman) -> Result<(), GzipError> {
        loop {
            let sym = usize::from(litlen.decode(self.bits)?);
            if sym < END_OF_BLOCK {
                self.reserve(1)?;
                self.out.push(sym as u8);
                continue;
            }
            if sym == END_OF_BLOCK {
                return Ok(());
            }
            // Symbols 286 and 287 have no length: `get` finds none.
            let code = sym - FIRST_LENGTH;
            let base = LENGTH_BASE.get(code).ok_or(GzipError::Corrupt)?;
            let len = usize::from(*base) + self.bits.take(length_extra(code))? as usize;
            // Distance symbols 30 and 31 have no distance.
            let code = usize::from(dist.decode(self.bits)?);
            let base = DIST_BASE.get(code).ok_or(GzipError::Corrupt)?;
            let distance = usize::from(*base) + self.bits.take(dist_extra(code))? as usize;
            let from = self.out.len().checked_sub(distance);
            let from = from
                .filter(|&from| from >= self.start)
                .ok_or(GzipError::Corrupt)?;
            self.reserve(len)?;
            // Byte by byte: a match may overlap its own output (distance < length).
            for at in from..from + len {
                let byte = *self.out.get(at).ok_or(GzipError::Corrupt)?;
                self.out.push(byte);
            }
        }
    }

    fn reserve(&mut self, n: usize) -> Result<(), GzipError> {
        reserve(self.out, n, self.bits.input.len(), self.max_output)
    }
}

/// Makes room for `n` more bytes of output without passing `max_output` in length or in
/// capacity (real memory); [`GzipError::TooLarge`] if the output would pass it.
fn reserve(
    out: &mut Vec<u8>,
    n: usize,
    input_left: usize,
    max_output: usize,
) -> Result<(), GzipError> {
    let len = out.len();
    let needed = len
        .checked_add(n)
        .filter(|&needed| needed <= max_output)
        .ok_or(GzipError::TooLarge { limit: max_output })?;
    if needed > out.capacity() {
        // As for miniz_oxide's output: doubling keeps reallocation amortised, and the
        // input-sized step avoids a string of small grows at the start.
        let step = len.max(input_left.saturating_mul(2)).max(MIN_GROW);
        let target = len.saturating_add(step).min(max_output).max(needed);
        // Exact, so the capacity stays within the limit too.
        out.reserve_exact(target - len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::gzip::compact::Deflater;
    use alloc::vec;
    use flate2::Compression;
    use flate2::write::DeflateEncoder;
    use std::io::Write;

    const NO_LIMIT: usize = usize::MAX;

    use crate::gzip::test_rng::Rng;

    /// Inflates all of `z`, which must be exactly one stream.
    fn inflate_all(z: &[u8], max_output: usize) -> Result<Vec<u8>, GzipError> {
        let mut out = Vec::new();
        let rest = inflate(z, &mut out, max_output)?;
        assert!(rest.is_empty(), "{} bytes after the stream", rest.len());
        Ok(out)
    }

    fn flate2_deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::new(level));
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn compact_deflate(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Deflater::new().deflate_into(data, &mut out);
        out
    }

    /// The type of a stream's first block.
    fn first_btype(z: &[u8]) -> u8 {
        (z[0] >> 1) & 3
    }

    /// Writes a DEFLATE stream bit by bit, for streams no encoder makes.
    #[derive(Default)]
    struct Writer {
        out: Vec<u8>,
        acc: u64,
        len: u32,
    }

    impl Writer {
        /// The low `n` bits of `value`, least significant first (header fields, extra bits).
        fn put(&mut self, value: u32, n: u32) -> &mut Self {
            self.acc |= u64::from(value) << self.len;
            self.len += n;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
            self
        }

        /// A Huffman code of `n` bits, most significant first.
        fn code(&mut self, code: u32, n: u32) -> &mut Self {
            self.put(code.reverse_bits() >> (32 - n), n)
        }

        /// Symbol `sym` of the canonical code with `lengths`.
        fn sym(&mut self, lengths: &[u8], sym: usize) -> &mut Self {
            let (code, n) = canonical(lengths)[sym];
            assert!(n > 0, "symbol {sym} has no code");
            self.code(code, n)
        }

        /// A fixed-code literal/length symbol (RFC 1951 3.2.6).
        fn fixed(&mut self, sym: u32) -> &mut Self {
            match sym {
                0..144 => self.code(0x30 + sym, 8),
                144..256 => self.code(0x190 + sym - 144, 9),
                256..280 => self.code(sym - 256, 7),
                _ => self.code(0xc0 + sym - 280, 8),
            }
        }

        /// A block header: BFINAL and BTYPE.
        fn block(&mut self, last: bool, btype: u32) -> &mut Self {
            self.put(u32::from(last), 1).put(btype, 2)
        }

        /// A stored block's body (after its header): padding, LEN, NLEN, the bytes.
        fn stored(&mut self, data: &[u8]) -> &mut Self {
            if self.len > 0 {
                self.put(0, 8 - self.len);
            }
            let len = data.len() as u16;
            self.put(len.into(), 16).put((!len).into(), 16);
            self.out.extend_from_slice(data);
            self
        }

        /// A dynamic header for the given lengths, each code length sent as a literal
        /// length in a code-length code of 16 four-bit codes (lengths 0-15).
        fn dynamic(&mut self, litlen: &[u8], dist: &[u8]) -> &mut Self {
            self.put(litlen.len() as u32 - 257, 5)
                .put(dist.len() as u32 - 1, 5)
                .put(CODELEN_CODES as u32 - 4, 4);
            let codelen = four_bit_codelen();
            for &s in &CODELEN_ORDER {
                self.put(codelen[usize::from(s)].into(), 3);
            }
            for &len in litlen.iter().chain(dist) {
                self.sym(&codelen, usize::from(len));
            }
            self
        }

        fn finish(&mut self) -> Vec<u8> {
            if self.len > 0 {
                self.put(0, 8 - self.len);
            }
            core::mem::take(&mut self.out)
        }
    }

    /// Lengths 0-15 four bits each, the repeat symbols unused: a complete code.
    fn four_bit_codelen() -> [u8; CODELEN_CODES] {
        core::array::from_fn(|s| if s < 16 { 4 } else { 0 })
    }

    /// Each symbol's canonical code and length (RFC 1951 3.2.2).
    fn canonical(lengths: &[u8]) -> Vec<(u32, u32)> {
        let mut count = [0u32; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut next = [0u32; 16];
        for bits in 1..16 {
            next[bits] = (next[bits - 1] + count[bits - 1]) << 1;
        }
        lengths
            .iter()
            .map(|&l| {
                let l = usize::from(l);
                if l == 0 {
                    return (0, 0);
                }
                next[l] += 1;
                (next[l] - 1, l as u32)
            })
            .collect()
    }

    /// Literal/length lengths where `syms` have codes of `len` bits (others unused).
    fn litlen_lengths(count: usize, codes: &[(usize, u8)]) -> Vec<u8> {
        let mut lengths = vec![0u8; count];
        for &(sym, len) in codes {
            lengths[sym] = len;
        }
        lengths
    }

    // Differential: every encoder, every kind of input.

    #[test]
    fn decodes_what_every_encoder_makes_exactly_as_miniz_oxide_does() {
        let mut rng = Rng(0x1f1a7e);
        let inputs: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("1 byte", vec![0x42]),
            ("random 1000", rng.bytes(1000)),
            ("text 5000", rng.text(5000)),
            ("protobuf 20000", rng.protobuf(20_000)),
            ("zeros 100000", vec![0; 100_000]),
            ("random 70000", rng.bytes(70_000)),
            ("text 70000", rng.text(70_000)),
            ("protobuf 300000", rng.protobuf(300_000)),
            ("text 1 MiB + 1", rng.text((1 << 20) + 1)),
            ("random 1 MiB + 7", rng.bytes((1 << 20) + 7)),
        ];
        for (name, data) in &inputs {
            let mut streams: Vec<(std::string::String, Vec<u8>)> = [0, 1, 6, 9]
                .iter()
                .map(|&l| (std::format!("flate2 {l}"), flate2_deflate(data, l)))
                .collect();
            streams.push(("compact".into(), compact_deflate(data)));
            for level in [1, 6, 10] {
                let z = miniz_oxide::deflate::compress_to_vec(data, level);
                streams.push((std::format!("miniz {level}"), z));
            }
            for (encoder, z) in &streams {
                let ours = inflate_all(z, NO_LIMIT).unwrap();
                assert!(ours == *data, "{name}, {encoder}");
                let miniz = miniz_oxide::inflate::decompress_to_vec(z).unwrap();
                assert!(ours == miniz, "{name}, {encoder}: differs from miniz_oxide");
            }
        }
    }

    #[test]
    fn seeded_random_inputs_of_many_lengths_round_trip() {
        let mut rng = Rng(0x5eed_1e57);
        for case in 0..300 {
            let len = rng.below(if case % 10 == 0 { 100_000 } else { 3000 });
            let data = match case % 3 {
                0 => rng.bytes(len),
                1 => rng.text(len),
                _ => rng.protobuf(len),
            };
            let level = [0, 1, 6, 9][case % 4];
            for z in [flate2_deflate(&data, level), compact_deflate(&data)] {
                assert!(inflate_all(&z, NO_LIMIT).unwrap() == data, "case {case}");
            }
        }
    }

    #[test]
    fn the_rest_of_the_input_after_the_stream_is_returned() {
        let mut z = flate2_deflate(b"hello hello hello", 6);
        let len = z.len();
        z.extend_from_slice(b"TRAILER!");
        let mut out = b"before".to_vec();
        let rest = inflate(&z, &mut out, NO_LIMIT).unwrap();
        assert_eq!(rest, b"TRAILER!");
        assert_eq!(out, b"beforehello hello hello");
        assert_eq!(inflate(&z[..len], &mut Vec::new(), NO_LIMIT).unwrap(), b"");
    }

    // Every block type.

    #[test]
    fn stored_blocks_including_empty_ones() {
        let z = Writer::default()
            .block(false, STORED)
            .stored(b"")
            .block(false, STORED)
            .stored(b"abc")
            .block(false, FIXED)
            .fixed(u32::from(b'd'))
            .fixed(256)
            // Mid-byte: the stored block skips to the next byte boundary.
            .block(false, STORED)
            .stored(b"")
            .block(true, STORED)
            .stored(b"ef")
            .finish();
        assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), b"abcdef");
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec(&z).unwrap(),
            b"abcdef"
        );

        let z = flate2_deflate(&Rng(7).bytes(200_000), 0);
        assert_eq!(first_btype(&z), 0);
        assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), Rng(7).bytes(200_000));
        // A lone empty final stored block: what gzip_stored_into writes for no data.
        assert_eq!(inflate_all(&[0x01, 0, 0, 0xff, 0xff], 0).unwrap(), b"");
    }

    #[test]
    fn fixed_block_with_length_258_at_distance_1() {
        // 'a', then 258 more from distance 1 (symbol 285, distance code 0).
        let z = Writer::default()
            .block(true, FIXED)
            .fixed(u32::from(b'a'))
            .fixed(285)
            .code(0, 5)
            .fixed(256)
            .finish();
        assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), [b'a'; 259]);
        assert_eq!(first_btype(&flate2_deflate(b"abc", 6)), 1);
    }

    #[test]
    fn length_258_at_distance_32768_across_blocks() {
        let data = Rng(0x32768).bytes(32_768);
        // Symbol 284 with 31 extra is 258 too; distance code 29 with 8191 extra is 32768.
        let z = Writer::default()
            .block(false, STORED)
            .stored(&data)
            .block(true, FIXED)
            .fixed(285)
            .code(29, 5)
            .put(8191, 13)
            .fixed(284)
            .put(31, 5)
            .code(29, 5)
            .put(8191, 13)
            .fixed(256)
            .finish();
        let expected = [&data[..], &data[..258], &data[258..516]].concat();
        assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), expected);
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec(&z).unwrap(),
            expected
        );
        // One byte less of history and the distance reaches before the start.
        let short = Writer::default()
            .block(false, STORED)
            .stored(&data[1..])
            .block(true, FIXED)
            .fixed(285)
            .code(29, 5)
            .put(8191, 13)
            .fixed(256)
            .finish();
        assert_eq!(inflate_all(&short, NO_LIMIT), Err(GzipError::Corrupt));
    }

    #[test]
    fn dynamic_blocks_from_encoders_and_by_hand() {
        let text = Rng(0xd1).text(20_000);
        for z in [flate2_deflate(&text, 9), compact_deflate(&text)] {
            assert_eq!(first_btype(&z), 2);
            assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), text);
        }
        // By hand: 'x', 'y' and end of block in two bits each, one length code
        // (257: 3 bytes) of two bits too, and a single one-bit distance code, the
        // incomplete code zlib accepts: distance code 1, 2 bytes back.
        let litlen = litlen_lengths(258, &[(120, 2), (121, 2), (256, 2), (257, 2)]);
        let dist = [0u8, 1];
        let z = Writer::default()
            .block(true, DYNAMIC)
            .dynamic(&litlen, &dist)
            .sym(&litlen, 120)
            .sym(&litlen, 121)
            .sym(&litlen, 257)
            .sym(&dist, 1)
            .sym(&litlen, 256)
            .finish();
        assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), b"xyxyx");
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec(&z).unwrap(),
            b"xyxyx"
        );
    }

    #[test]
    fn code_length_repeats_and_a_zero_run_across_both_codes() {
        // 254 literals of 8 bits and 'a', 'b', end of block and 257 (3 bytes) of 9:
        // complete. Symbols 258-285 unused, so HLIT is at its maximum.
        let mut litlen = vec![8u8; LITLEN_CODES];
        litlen[256..].fill(0);
        for s in [usize::from(b'a'), usize::from(b'b'), 256, 257] {
            litlen[s] = 9;
        }
        // Distance code 4 (5 or 6 back) alone, in one bit.
        let dist = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
        // Code-length code: 8 and 16 in two bits, 9, 1, 17 and 18 in three: complete.
        let mut codelen = [0u8; CODELEN_CODES];
        for (s, len) in [(8, 2), (16, 2), (9, 3), (1, 3), (17, 3), (18, 3)] {
            codelen[s] = len;
        }
        let mut w = Writer::default();
        w.block(true, DYNAMIC)
            .put(LITLEN_CODES as u32 - 257, 5)
            .put(dist.len() as u32 - 1, 5)
            .put(CODELEN_CODES as u32 - 4, 4);
        for &s in &CODELEN_ORDER {
            w.put(codelen[usize::from(s)].into(), 3);
        }
        // Run-length code the lengths as an encoder would: 16 repeats the 8s, 18 takes
        // the 32 zeros from literal/length 258 to distance 3, 17 the last five.
        let all: Vec<u8> = litlen.iter().chain(&dist).copied().collect();
        let (mut i, mut previous, mut used) = (0, None, [0; 3]);
        while let Some(&len) = all.get(i) {
            let run = all[i..].iter().take_while(|&&l| l == len).count();
            let (sym, extra, n) = match run {
                11.. if len == 0 => (18, 7, run.min(138)),
                3.. if len == 0 => (17, 3, run.min(10)),
                3.. if previous == Some(len) => (16, 2, run.min(6)),
                _ => (usize::from(len), 0, 1),
            };
            w.sym(&codelen, sym);
            if sym >= 16 {
                w.put(n as u32 - [3, 3, 11][sym - 16], extra);
                used[sym - 16] += 1;
            }
            (i, previous) = (i + n, Some(len));
        }
        assert_eq!(used, [16 + 26, 1, 1], "runs of 16, 17 and 18");
        for &b in b"a\xffab\x00" {
            w.sym(&litlen, usize::from(b));
        }
        w.sym(&litlen, 257)
            .sym(&dist, 4)
            .put(0, 1)
            .sym(&litlen, 256);
        let z = w.finish();
        let expected = b"a\xffab\x00a\xffa";
        assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), expected);
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec(&z).unwrap(),
            expected
        );
    }

    // Malformed streams: an error, never a panic, never wrong data.

    /// Valid streams of every block type, from encoders and by hand.
    fn valid_streams() -> Vec<Vec<u8>> {
        let text = Rng(0x7a1).text(3000);
        let mut streams: Vec<Vec<u8>> = [0, 1, 6, 9]
            .iter()
            .map(|&l| flate2_deflate(&text, l))
            .collect();
        streams.push(compact_deflate(&text));
        streams.push(
            Writer::default()
                .block(false, STORED)
                .stored(b"")
                .block(false, FIXED)
                .fixed(u32::from(b'a'))
                .fixed(285)
                .code(0, 5)
                .fixed(256)
                .block(true, STORED)
                .stored(b"xyz")
                .finish(),
        );
        streams
    }

    #[test]
    fn truncated_at_every_byte_offset_is_truncated() {
        for z in valid_streams() {
            assert!(inflate_all(&z, NO_LIMIT).is_ok());
            for len in 0..z.len() {
                let got = inflate(&z[..len], &mut Vec::new(), NO_LIMIT);
                assert_eq!(got, Err(GzipError::Truncated), "{len} of {}", z.len());
            }
        }
    }

    /// Decodes `z` with both decoders: whatever ours accepts, miniz_oxide accepts
    /// with the same output. Returns whether ours accepted it.
    fn agrees_with_miniz(z: &[u8], limit: usize) -> bool {
        let mut ours = Vec::new();
        let ok = inflate(z, &mut ours, limit).is_ok();
        assert!(ours.capacity() <= limit, "capacity {}", ours.capacity());
        if ok {
            let miniz = miniz_oxide::inflate::decompress_to_vec_with_limit(z, limit);
            assert!(miniz.is_ok_and(|miniz| miniz == ours), "{z:?}");
        }
        ok
    }

    #[test]
    fn thousands_of_random_streams_never_panic() {
        let mut rng = Rng(0xbad_5eed);
        let mut accepted = 0;
        for case in 0..20_000 {
            let len = rng.below(400);
            let mut z = rng.bytes(len);
            // Bias a quarter of them to dynamic and fixed headers, the paths with the
            // most to check; random bytes alone are 1 in 4 reserved block types.
            if let Some(first) = z.first_mut() {
                match case % 4 {
                    0 => *first = (*first & !6) | 4,
                    1 => *first = (*first & !6) | 2,
                    _ => {}
                }
            }
            accepted += usize::from(agrees_with_miniz(&z, 1 << 16));
        }
        assert!(accepted < 200, "{accepted} random streams decoded");
    }

    #[test]
    fn random_mutations_of_valid_streams_never_panic_or_disagree() {
        let mut rng = Rng(0x6d75_7461);
        let streams = valid_streams();
        let mut rejected = 0;
        for case in 0..6000 {
            let mut z = streams[case % streams.len()].clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(z.len());
                match rng.below(4) {
                    0 => z[i] ^= 1 << rng.below(8),
                    1 => z[i] = rng.next() as u8,
                    2 => z.insert(i, rng.next() as u8),
                    _ => drop(z.remove(i)),
                }
            }
            rejected += usize::from(!agrees_with_miniz(&z, 1 << 20));
        }
        assert!(rejected > 1000, "only {rejected} mutations were rejected");
    }

    /// A final dynamic block with these code lengths and nothing after its header.
    fn dynamic_block(litlen: &[u8], dist: &[u8]) -> Vec<u8> {
        Writer::default()
            .block(true, DYNAMIC)
            .dynamic(litlen, dist)
            .finish()
    }

    #[test]
    fn over_subscribed_and_incomplete_codes_are_corrupt() {
        let eob_only = litlen_lengths(257, &[(256, 1)]);
        let eob_and_a = litlen_lengths(257, &[(97, 1), (256, 1)]);
        let cases: [(&str, Vec<u8>, Vec<u8>); 5] = [
            (
                "litlen over-subscribed",
                litlen_lengths(257, &[(97, 1), (98, 1), (256, 1)]),
                vec![1, 1],
            ),
            (
                "litlen incomplete beyond one bit",
                litlen_lengths(257, &[(97, 1), (256, 2)]),
                vec![1, 1],
            ),
            ("dist over-subscribed", eob_and_a.clone(), vec![1, 1, 1]),
            (
                "dist incomplete beyond one bit",
                eob_and_a.clone(),
                vec![1, 2],
            ),
            (
                "no code for end of block",
                litlen_lengths(257, &[(97, 1), (98, 1)]),
                vec![1, 1],
            ),
        ];
        for (name, litlen, dist) in cases {
            let z = dynamic_block(&litlen, &dist);
            assert_eq!(inflate_all(&z, NO_LIMIT), Err(GzipError::Corrupt), "{name}");
        }
        // The incomplete codes allowed: one one-bit code, or none at all for distances.
        for (litlen, dist) in [
            (&eob_only, vec![0]),
            (&eob_only, vec![0, 1]),
            (&eob_and_a, vec![0]),
        ] {
            let mut w = Writer::default();
            w.block(true, DYNAMIC)
                .dynamic(litlen, &dist)
                .sym(litlen, 256);
            assert_eq!(inflate_all(&w.finish(), NO_LIMIT).unwrap(), b"");
        }
        // An unused code of an allowed incomplete set is corrupt when it is read: the
        // one-bit distance code 0 is assigned, 1 is not. (The decoder reads up to 15
        // bits before it gives up on a code, so the stream goes on.)
        let litlen = litlen_lengths(258, &[(97, 2), (256, 2), (257, 1)]);
        let mut w = Writer::default();
        w.block(true, DYNAMIC)
            .dynamic(&litlen, &[1])
            .sym(&litlen, 97)
            .sym(&litlen, 257)
            .code(1, 1)
            .put(0, 16);
        assert_eq!(inflate_all(&w.finish(), NO_LIMIT), Err(GzipError::Corrupt));
    }

    /// A dynamic header with the given code-length code lengths (by symbol) and nothing
    /// after them but zeros.
    fn codelen_header(codelen: &[u8; CODELEN_CODES]) -> Vec<u8> {
        let mut w = Writer::default();
        w.block(true, DYNAMIC)
            .put(0, 5)
            .put(0, 5)
            .put(CODELEN_CODES as u32 - 4, 4);
        for &s in &CODELEN_ORDER {
            w.put(codelen[usize::from(s)].into(), 3);
        }
        w.put(0, 32).finish()
    }

    #[test]
    fn over_subscribed_and_incomplete_code_length_codes_are_corrupt() {
        let mut over = [0u8; CODELEN_CODES];
        over[..3].fill(1);
        let mut incomplete = [0u8; CODELEN_CODES];
        incomplete[8] = 1;
        let mut incomplete_deeper = [0u8; CODELEN_CODES];
        incomplete_deeper[..3].fill(2);
        let none = [0u8; CODELEN_CODES];
        for (name, codelen) in [
            ("over-subscribed", over),
            ("a single code", incomplete),
            ("three of four", incomplete_deeper),
            ("empty", none),
        ] {
            let z = codelen_header(&codelen);
            assert_eq!(inflate_all(&z, NO_LIMIT), Err(GzipError::Corrupt), "{name}");
        }
    }

    #[test]
    fn bad_dynamic_header_counts_and_runs_are_corrupt() {
        let codelen = four_bit_codelen();
        let header = |hlit: u32, hdist: u32| {
            let mut w = Writer::default();
            w.block(true, DYNAMIC).put(hlit, 5).put(hdist, 5).put(15, 4);
            for &s in &CODELEN_ORDER {
                w.put(codelen[usize::from(s)].into(), 3);
            }
            w
        };
        // HLIT 30 and 31 are 287 and 288 codes; HDIST 30 and 31 are 31 and 32.
        for (hlit, hdist) in [(30, 0), (31, 0), (0, 30), (0, 31)] {
            let z = header(hlit, hdist).put(0, 32).finish();
            assert_eq!(
                inflate_all(&z, NO_LIMIT),
                Err(GzipError::Corrupt),
                "{hlit} {hdist}"
            );
        }
        // Repeat symbols need lengths of their own in the code-length code.
        let mut codelen = [0u8; CODELEN_CODES];
        for s in [0, 1, 16, 17, 18] {
            codelen[s] = if s == 0 || s == 18 { 2 } else { 3 };
        }
        codelen[2] = 3;
        let run = |prefix: &[(usize, u32, u32)]| {
            let mut w = Writer::default();
            w.block(true, DYNAMIC).put(0, 5).put(0, 5).put(15, 4);
            for &s in &CODELEN_ORDER {
                w.put(codelen[usize::from(s)].into(), 3);
            }
            for &(sym, extra, n) in prefix {
                w.sym(&codelen, sym).put(extra, n);
            }
            w.put(0, 32).finish()
        };
        // 16 with no previous length.
        assert_eq!(
            inflate_all(&run(&[(16, 0, 2)]), NO_LIMIT),
            Err(GzipError::Corrupt)
        );
        // 138 zeros, then 138 more: past the 258 lengths sent.
        let past = run(&[(18, 127, 7), (18, 127, 7)]);
        assert_eq!(inflate_all(&past, NO_LIMIT), Err(GzipError::Corrupt));
        // 256 zeros then a 1 and 1: exactly the 258 lengths, then a repeat past them.
        let exact = run(&[(18, 127, 7), (18, 107, 7), (1, 0, 0), (16, 0, 2)]);
        assert_eq!(inflate_all(&exact, NO_LIMIT), Err(GzipError::Corrupt));
    }

    #[test]
    fn invalid_length_and_distance_symbols_are_corrupt() {
        for sym in [286, 287] {
            let z = Writer::default()
                .block(true, FIXED)
                .fixed(u32::from(b'a'))
                .fixed(sym)
                .code(0, 5)
                .fixed(256)
                .finish();
            assert_eq!(inflate_all(&z, NO_LIMIT), Err(GzipError::Corrupt), "{sym}");
            assert!(miniz_oxide::inflate::decompress_to_vec(&z).is_err());
        }
        for code in [30, 31] {
            let z = Writer::default()
                .block(true, FIXED)
                .fixed(u32::from(b'a'))
                .fixed(257)
                .code(code, 5)
                .put(0, 13)
                .fixed(256)
                .finish();
            assert_eq!(inflate_all(&z, NO_LIMIT), Err(GzipError::Corrupt), "{code}");
            assert!(miniz_oxide::inflate::decompress_to_vec(&z).is_err());
        }
    }

    #[test]
    fn distances_before_the_start_of_the_stream_are_corrupt() {
        let matched = |literals: &[u8], dist_code: u32| {
            let mut w = Writer::default();
            w.block(true, FIXED);
            for &b in literals {
                w.fixed(b.into());
            }
            w.fixed(257).code(dist_code, 5).fixed(256).finish()
        };
        assert_eq!(
            inflate_all(&matched(b"", 0), NO_LIMIT),
            Err(GzipError::Corrupt)
        );
        // Distance code 1 is 2 back.
        assert_eq!(
            inflate_all(&matched(b"a", 1), NO_LIMIT),
            Err(GzipError::Corrupt)
        );
        assert_eq!(inflate_all(&matched(b"ab", 1), NO_LIMIT).unwrap(), b"ababa");
        // Output already in `out` (an earlier gzip member) is out of reach.
        let mut out = b"earlier member".to_vec();
        let z = matched(b"", 0);
        assert_eq!(inflate(&z, &mut out, NO_LIMIT), Err(GzipError::Corrupt));
    }

    #[test]
    fn stored_length_not_matching_its_complement_is_corrupt() {
        let mut z = Writer::default()
            .block(true, STORED)
            .stored(b"hello")
            .finish();
        assert_eq!(inflate_all(&z, NO_LIMIT).unwrap(), b"hello");
        z[3] ^= 1;
        assert_eq!(inflate_all(&z, NO_LIMIT), Err(GzipError::Corrupt));
        // The reserved block type.
        assert_eq!(inflate_all(&[0x07, 0], NO_LIMIT), Err(GzipError::Corrupt));
    }

    #[test]
    fn output_past_max_output_is_too_large_and_never_allocated() {
        // A bomb: 16 MiB of zeros in about 16 KiB.
        let bomb = flate2_deflate(&vec![0; 16 << 20], 9);
        assert!(bomb.len() < 32 << 10, "{} bytes", bomb.len());
        let limit = 1 << 20;
        let mut out = Vec::new();
        let got = inflate(&bomb, &mut out, limit);
        assert_eq!(got, Err(GzipError::TooLarge { limit }));
        assert!(out.capacity() <= limit, "capacity {}", out.capacity());

        // Exactly at the limit is fine, one byte less is not: compressed and stored.
        let data = Rng(0x11).text(100_000);
        for z in [
            flate2_deflate(&data, 6),
            flate2_deflate(&data, 0),
            compact_deflate(&data),
        ] {
            let mut out = Vec::new();
            inflate(&z, &mut out, data.len()).unwrap();
            assert!(out == data && out.capacity() <= data.len());
            let limit = data.len() - 1;
            assert_eq!(inflate_all(&z, limit), Err(GzipError::TooLarge { limit }));
        }
        // The limit covers what `out` already holds.
        let z = flate2_deflate(b"abc", 6);
        let mut out = vec![0; 10];
        assert_eq!(
            inflate(&z, &mut out, 12),
            Err(GzipError::TooLarge { limit: 12 })
        );
        let mut out = vec![0; 10];
        assert!(inflate(&z, &mut out, 13).is_ok());
        assert_eq!(inflate_all(&flate2_deflate(b"", 6), 0).unwrap(), b"");
    }
}
