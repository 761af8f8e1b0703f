//! Gzip framing (RFC 1952) for upload batches, in `no_std` + `alloc`.
//!
//! This module owns the member layout only: header, trailer and the walk over
//! concatenated members; CRC-32 comes from `crc32fast`, or from the `crc`
//! crate bit by bit with no table under `compact`. Raw deflate comes from
//! `miniz_oxide` ([`MinizGzipper`]) or from the small encoder in `compact.rs`
//! ([`CompactGzipper`]); inflate from `miniz_oxide`, or with the `compact`
//! feature from the small decoder in `inflate.rs`. [`Gzipper`] is the one the
//! logger uses: miniz_oxide's, or the compact one with the `compact` feature
//! (firmware, wasm), which then leaves all of miniz_oxide's code (deflate and
//! inflate) out of the linked image. The encoders write a minimal header (no name, mtime 0,
//! OS unknown) so identical batches give identical bytes. The decoder treats its
//! input as untrusted (it comes off the wire or out of a store): it never
//! panics, checks every bound, verifies CRC-32 and ISIZE of each member, and
//! never grows its output past the caller's limit, so a gzip bomb costs at
//! most `max_output` bytes of memory.
//!
//! Encoding memory: a miniz_oxide compressor is about 320 KB of heap state
//! (on 32-bit targets), 64 KiB of it an array inline in `CompressorOxide`;
//! the compact encoder needs [`COMPACT_STATE_BYTES`] (24 KiB). Either is
//! allocated once per encoder and reused for every member, so a device
//! allocates it once and compresses with a small stack frame.
//! [`gzip_stored_into`] writes uncompressed members with no compressor at
//! all, for payloads too small to be worth one.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

mod compact;
// Compiled in every build so its tests run in all of them; only `compact`
// builds decode with it.
#[cfg_attr(not(feature = "compact"), allow(dead_code))]
mod inflate;
#[cfg(test)]
mod test_rng;

pub use compact::STATE_BYTES as COMPACT_STATE_BYTES;

use miniz_oxide::DataFormat;
use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output};
#[cfg(not(feature = "compact"))]
use miniz_oxide::inflate::TINFLStatus;
#[cfg(not(feature = "compact"))]
use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
#[cfg(not(feature = "compact"))]
use miniz_oxide::inflate::core::{DecompressorOxide, decompress};

/// zlib's default: most of level 9's ratio at a fraction of its CPU, which
/// suits small devices compressing batches in the background.
pub const GZIP_LEVEL: u8 = 6;

/// ID1 and ID2: every gzip member starts with these two bytes.
const MAGIC: [u8; 2] = [0x1f, 0x8b];
/// CM = 8 (deflate) is the only method RFC 1952 defines.
const METHOD_DEFLATE: u8 = 8;
/// OS = 255 ("unknown"): the bytes do not depend on the host that made them.
const OS_UNKNOWN: u8 = 255;
/// Fixed part of the header: magic, CM, FLG, MTIME (4), XFL, OS.
const HEADER_LEN: usize = 10;
/// Trailer: CRC-32 then ISIZE, both little endian.
const TRAILER_LEN: usize = 8;

/// FLG bits. FTEXT is only a hint about the content, so it needs no handling.
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
/// Bits 5..7 must be zero; a decoder that ignored them could misparse a
/// future header layout, so RFC 1952 says to reject them.
const FRESERVED: u8 = 0xe0;

/// Most bytes one stored deflate block can hold (its LEN field is 16 bits).
const MAX_STORED_BLOCK: usize = 0xffff;
/// A stored block's framing: the BFINAL/BTYPE byte, then LEN and NLEN.
const STORED_BLOCK_OVERHEAD: usize = 5;

/// Input bytes between two deflate block boundaries (a sync flush each). A boundary's flush
/// is a step of its own and costs with the block: measured on the reference batches at
/// level 6, a median 15.6 us (p99 30) for 1 KiB blocks, 18-26 us for 2 KiB and 32-35 us
/// for 4 KiB; 1 KiB blocks cost 1.4% more bytes than 2 KiB ones (15.83 against 15.61 B
/// per impression on the wire), which were 2-3% fewer than miniz_oxide's own block choice.
pub const BLOCK_BYTES: usize = 1024;

/// Smallest step by which the output buffer grows, so tiny inputs that
/// expand a lot do not reallocate many times over.
const MIN_GROW: usize = 4096;

/// Why [`gunzip`] rejected its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GzipError {
    /// The input ended inside a member (empty input included).
    Truncated,
    /// The first member does not start with the gzip magic bytes.
    BadMagic,
    /// The compression method is not deflate.
    UnsupportedMethod,
    /// Reserved flag bits are set or the header CRC-16 does not match.
    BadHeader,
    /// The deflate stream is invalid.
    Corrupt,
    /// The CRC-32 in a trailer does not match the decompressed bytes.
    ChecksumMismatch,
    /// The ISIZE in a trailer does not match the decompressed length.
    LengthMismatch,
    /// The decompressed data would exceed the caller's limit.
    TooLarge {
        /// The `max_output` the caller passed.
        limit: usize,
    },
    /// Bytes after the last member that do not start another member.
    TrailingGarbage,
}

impl fmt::Display for GzipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("gzip data is truncated"),
            Self::BadMagic => f.write_str("not gzip data (bad magic bytes)"),
            Self::UnsupportedMethod => f.write_str("gzip compression method is not deflate"),
            Self::BadHeader => f.write_str("gzip header is invalid"),
            Self::Corrupt => f.write_str("gzip deflate stream is corrupt"),
            Self::ChecksumMismatch => f.write_str("gzip CRC-32 does not match the data"),
            Self::LengthMismatch => f.write_str("gzip length field does not match the data"),
            Self::TooLarge { limit } => {
                write!(f, "gzip data decompresses to more than {limit} bytes")
            }
            Self::TrailingGarbage => f.write_str("unexpected bytes after gzip data"),
        }
    }
}

impl core::error::Error for GzipError {}

/// The gzip encoder the logger compresses batches with: [`MinizGzipper`] by
/// default, [`CompactGzipper`] with the `compact` feature.
#[cfg(not(feature = "compact"))]
pub type Gzipper = MinizGzipper;
/// The gzip encoder the logger compresses batches with: [`MinizGzipper`] by
/// default, [`CompactGzipper`] with the `compact` feature.
#[cfg(feature = "compact")]
pub type Gzipper = CompactGzipper;

/// A reusable gzip encoder: one miniz_oxide deflate compressor, kept on the
/// heap.
///
/// The compressor is allocated on the first [`MinizGzipper::gzip_into`] call
/// (so [`MinizGzipper::new`] is free) and reset, not reallocated, for every later
/// member. Each member is byte-for-byte what a fresh compressor would make.
///
/// Stack: that first call needs about 68 KiB of stack once, because
/// miniz_oxide 0.9 builds the compressor by value before it reaches the heap
/// (measured on thumbv7em at `opt-level = "z"`); later calls need about
/// 7 KiB. On a small stack, make the first member early, from a deep stack.
#[derive(Default)]
pub struct MinizGzipper {
    /// Boxed because `CompressorOxide` holds a 64 KiB array inline; on the
    /// stack it would overflow a small embedded one.
    compressor: Option<Box<CompressorOxide>>,
}

impl MinizGzipper {
    /// An encoder that allocates nothing until its first member.
    pub const fn new() -> Self {
        Self { compressor: None }
    }

    /// Appends one complete gzip member holding `data`, compressed at `level`
    /// (0 = stored, 1 = fastest, 9 = best; miniz_oxide caps higher values
    /// at 10).
    pub fn gzip_into(&mut self, data: &[u8], level: u8, out: &mut Vec<u8>) {
        // Room for a typical batch's deflate output; `out` grows if needed.
        out.reserve(HEADER_LEN + data.len() / 2 + TRAILER_LEN);
        let mut member = self.begin(level, out);
        while !self.step(&mut member, data, usize::MAX, out) {}
    }

    /// Starts a gzip member compressed at `level`, to be fed with [`Self::step`].
    pub fn begin(&mut self, level: u8, out: &mut Vec<u8>) -> Member {
        let compressor = match &mut self.compressor {
            Some(compressor) => {
                reset(compressor);
                compressor
            }
            slot @ None => slot.insert(new_compressor()),
        };
        // Raw deflate at `level`: the same flags `compress_to_vec` uses. This
        // also replaces the zlib-wrapper flag `default()` starts with.
        compressor.set_format_and_level(DataFormat::Raw, level);
        let member = Member::new(out.len());
        write_header(out, xfl(level));
        member
    }

    /// Runs the member's next step over `data`, the input so far: it may grow between
    /// steps if it stays longer than [`Member::reads_up_to`] the step's budget, and is
    /// complete from the step that takes its end (whose checksum, length and any stored
    /// fallback cover it). True once the member is complete. A step either compresses up to
    /// `budget` bytes, stopping at the next block boundary, or ends the block at that
    /// boundary (a sync flush, every [`BLOCK_BYTES`] of input), or, once all input is
    /// taken, ends the stream, so no step costs more than `budget` bytes of deflate or one
    /// block's flush. The bytes do not depend on `budget`.
    pub fn step(
        &mut self,
        member: &mut Member,
        data: &[u8],
        budget: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let (chunk, flush) = if member.taken_all {
            (&[][..], TDEFLFlush::Finish)
        } else if member.block_full {
            member.block_full = false;
            (&[][..], TDEFLFlush::Sync)
        } else {
            (member.take(data, budget), TDEFLFlush::None)
        };
        let ok = match &mut self.compressor {
            Some(compressor) if !member.failed => deflate_into(compressor, chunk, flush, out),
            _ => false,
        };
        member.failed |= !ok;
        if flush != TDEFLFlush::Finish {
            return false;
        }
        if member.failed {
            // miniz_oxide reports failure only on misuse, which the reset in
            // `begin` rules out; should it happen anyway, a stored member
            // still carries the data rather than a broken stream.
            out.truncate(member.start);
            gzip_stored_into(data, out);
        } else {
            member.finish(data, out);
        }
        true
    }
}

impl fmt::Debug for MinizGzipper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The compressor's state is hundreds of KiB of tables: say only
        // whether it exists.
        f.debug_struct("MinizGzipper")
            .field("allocated", &self.compressor.is_some())
            .finish()
    }
}

/// A reusable gzip encoder over the compact deflate encoder: a few KiB
/// of code and [`COMPACT_STATE_BYTES`] of heap, at some cost in ratio.
///
/// Like [`MinizGzipper`], its state is allocated on the first member and
/// reused; each member depends on its data alone. Stack: under 8 KiB.
#[derive(Default)]
pub struct CompactGzipper {
    deflater: Option<compact::Deflater>,
}

impl CompactGzipper {
    /// An encoder that allocates nothing until its first member.
    pub const fn new() -> Self {
        Self { deflater: None }
    }

    /// Appends one complete gzip member holding `data`: stored at `level` 0,
    /// compressed by the one compact setting at any other level.
    pub fn gzip_into(&mut self, data: &[u8], level: u8, out: &mut Vec<u8>) {
        if level == 0 {
            return gzip_stored_into(data, out);
        }
        let deflater = self.deflater.get_or_insert_with(compact::Deflater::new);
        out.reserve(HEADER_LEN + data.len() / 2 + TRAILER_LEN);
        // XFL 0: neither the fastest nor the strongest setting.
        write_header(out, 0);
        deflater.deflate_into(data, out);
        write_trailer(out, data);
    }
}

/// A gzip member being written a step at a time (see [`MinizGzipper::step`]). With a
/// `budget` that divides [`BLOCK_BYTES`] or is a multiple of it, a member of `n` input
/// bytes is complete after `max(1, ceil(n / min(budget, BLOCK_BYTES)))` steps, plus one per
/// block boundary inside it (`n.saturating_sub(1) / BLOCK_BYTES`), plus one that ends the
/// stream.
#[derive(Debug)]
pub struct Member {
    /// Where the member starts in the output, for a stored fallback.
    start: usize,
    /// Input bytes taken so far.
    taken: usize,
    /// The input reached a block boundary with more to come: the next step ends the block.
    block_full: bool,
    /// All input is taken: the next step ends the stream.
    taken_all: bool,
    crc: Crc32,
    failed: bool,
}

impl Member {
    fn new(start: usize) -> Self {
        Member {
            start,
            taken: 0,
            block_full: false,
            taken_all: false,
            crc: Crc32::new(),
            failed: false,
        }
    }

    /// How much input the next step with `budget` reads at most: input produced as the
    /// member goes must be longer than this (or complete), or the step takes its end for
    /// the end of the stream.
    pub fn reads_up_to(&self, budget: usize) -> usize {
        self.taken.saturating_add(budget)
    }

    /// The next chunk of at most `budget` bytes, up to the next block boundary,
    /// checksummed.
    fn take<'a>(&mut self, data: &'a [u8], budget: usize) -> &'a [u8] {
        let from = self.taken.min(data.len());
        let boundary = (from / BLOCK_BYTES + 1).saturating_mul(BLOCK_BYTES);
        let to = from.saturating_add(budget).min(boundary).min(data.len());
        let chunk = &data[from..to];
        self.crc.update(chunk);
        self.taken = to;
        self.taken_all = to == data.len();
        self.block_full = !self.taken_all && to == boundary;
        chunk
    }

    fn finish(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let crc = core::mem::replace(&mut self.crc, Crc32::new()).finish();
        out.extend_from_slice(&crc.to_le_bytes());
        // ISIZE is the length modulo 2^32 by definition, so truncation is intended.
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    }
}

impl fmt::Debug for CompactGzipper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 24 KiB of match tables: say only whether they exist.
        f.debug_struct("CompactGzipper")
            .field("allocated", &self.deflater.is_some())
            .finish()
    }
}

/// Allocates a compressor. Out of line and cold: miniz_oxide builds a
/// `CompressorOxide` by value, and at `opt-level = "z"` (thumbv7em) its
/// 64 KiB code buffer passes through a stack temporary on the way to the
/// heap. Here that transient costs stack once per `Gzipper`, instead of
/// sitting in the frame of every `gzip_into` call.
#[cold]
#[inline(never)]
fn new_compressor() -> Box<CompressorOxide> {
    Box::default()
}

/// Readies a used compressor for a new stream; all of its buffers are
/// cleared in place on the heap. Out of line because the reset builds a
/// 4 KiB Huffman table on the stack, which need not be live during
/// compression.
#[inline(never)]
fn reset(compressor: &mut CompressorOxide) {
    compressor.reset();
}

/// Runs `compressor` over all of `data`, appending the raw deflate bytes to
/// `out`; then flushes as `flush` says (to a block boundary, or to the end of the
/// stream). Returns false if the compressor failed or stopped making progress.
fn deflate_into(
    compressor: &mut CompressorOxide,
    data: &[u8],
    flush: TDEFLFlush,
    out: &mut Vec<u8>,
) -> bool {
    let last = flush == TDEFLFlush::Finish;
    let mut input = data;
    loop {
        let before = out.len();
        // The compressor fills its own (heap) output buffer and hands each
        // full chunk to the callback, so no output buffer lives here.
        let (status, consumed) = compress_to_output(compressor, input, flush, |chunk| {
            out.extend_from_slice(chunk);
            true
        });
        match status {
            TDEFLStatus::Done => return true,
            TDEFLStatus::Okay if !last && consumed == input.len() => return true,
            TDEFLStatus::Okay if consumed > 0 || out.len() > before => {
                match input.get(consumed..) {
                    Some(rest) => input = rest,
                    None => return false,
                }
            }
            _ => return false,
        }
    }
}

/// Appends one complete gzip member holding `data`, compressed at `level`,
/// using a compressor allocated for this call alone. Prefer a long-lived
/// [`Gzipper`] where members are made repeatedly.
pub fn gzip_into(data: &[u8], level: u8, out: &mut Vec<u8>) {
    Gzipper::new().gzip_into(data, level, out);
}

/// Compresses `data` into a single gzip member at [`GZIP_LEVEL`].
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    gzip_into(data, GZIP_LEVEL, &mut out);
    out
}

/// Appends one complete gzip member holding `data` uncompressed, in stored
/// deflate blocks, with no compressor and no allocation beyond `out`.
///
/// Adds 18 bytes of gzip framing plus 5 per block of up to 65535 bytes
/// (23 in all for small data); meant for payloads too small for compression
/// to win back its cost in memory and time.
pub fn gzip_stored_into(data: &[u8], out: &mut Vec<u8>) {
    let blocks = data.len().div_ceil(MAX_STORED_BLOCK).max(1);
    out.reserve(
        (HEADER_LEN + TRAILER_LEN)
            .saturating_add(data.len())
            .saturating_add(blocks.saturating_mul(STORED_BLOCK_OVERHEAD)),
    );
    write_header(out, 0);
    let mut rest = data;
    // At least one block: empty data is a single empty final block.
    loop {
        let (block, tail) = rest.split_at(rest.len().min(MAX_STORED_BLOCK));
        let last = tail.is_empty();
        // At most MAX_STORED_BLOCK, so it fits LEN's 16 bits.
        let len = block.len() as u16;
        // BFINAL in bit 0, BTYPE = 00 (stored) in bits 1-2, then padding to
        // the byte boundary, which is where the header byte ends anyway.
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
        if last {
            break;
        }
        rest = tail;
    }
    write_trailer(out, data);
}

/// XFL tells readers how hard the compressor tried, as gzip(1) sets it.
fn xfl(level: u8) -> u8 {
    match level {
        1 => 4,
        9.. => 2,
        _ => 0,
    }
}

fn write_header(out: &mut Vec<u8>, xfl: u8) {
    out.extend_from_slice(&MAGIC);
    // FLG 0 and MTIME 0: nothing optional, so output depends on data alone.
    out.extend_from_slice(&[METHOD_DEFLATE, 0, 0, 0, 0, 0, xfl, OS_UNKNOWN]);
}

fn write_trailer(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&crc32(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 by definition, so truncation is intended.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
}

/// Bit by bit, no table: the firmware and the browser module are short of
/// flash and download bytes, not of CRC speed (a 1 KiB `Table<1>` measured
/// about 1 KiB more flash than this).
#[cfg(feature = "compact")]
static CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 as gzip, zlib and PNG define it (IEEE 802.3: reflected, polynomial
/// 0xEDB88320, initial value and final XOR all ones). The same value in every
/// build; only its speed and flash differ: `crc32fast` elsewhere (carry-less
/// multiply where the CPU has it, found at run time with `std`; slice-by-16
/// otherwise), as every journal frame and batch is checksummed on a host call.
#[cfg(not(feature = "compact"))]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// CRC-32 as gzip defines it, bit by bit (see above).
#[cfg(feature = "compact")]
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// [`crc32`] over bytes that arrive in pieces: `crc32fast`, whose value is the same.
/// Only [`MinizGzipper`] steps members, and the `compact` builds never link it.
struct Crc32(crc32fast::Hasher);

impl Crc32 {
    fn new() -> Self {
        Crc32(crc32fast::Hasher::new())
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(self) -> u32 {
        self.0.finalize()
    }
}

impl fmt::Debug for Crc32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Crc32")
    }
}

/// Decompresses untrusted gzip data of one or more concatenated members.
///
/// The result is the concatenation of all members' contents. It fails with
/// [`GzipError::TooLarge`] as soon as the total would pass `max_output`
/// bytes, having allocated no more than that. Any byte after the last member
/// that does not begin another member is [`GzipError::TrailingGarbage`].
pub fn gunzip(data: &[u8], max_output: usize) -> Result<Vec<u8>, GzipError> {
    #[cfg(feature = "compact")]
    return gunzip_with(data, max_output, inflate::inflate);
    #[cfg(not(feature = "compact"))]
    {
        // Boxed: the inflater is about 11 KB, too much for small embedded stacks.
        let mut inflater = Box::<DecompressorOxide>::default();
        gunzip_with(data, max_output, |input, out, max_output| {
            miniz_inflate(input, &mut inflater, out, max_output)
        })
    }
}

/// [`gunzip`] with the raw-deflate step given: `inflate(input, out,
/// max_output)` appends the stream at the start of `input` to `out` and
/// returns the input after it.
fn gunzip_with<'a>(
    data: &'a [u8],
    max_output: usize,
    mut inflate: impl FnMut(&'a [u8], &mut Vec<u8>, usize) -> Result<&'a [u8], GzipError>,
) -> Result<Vec<u8>, GzipError> {
    if data.is_empty() {
        return Err(GzipError::Truncated);
    }
    let mut out = Vec::new();
    let mut rest = data;
    loop {
        rest = gunzip_member(rest, &mut inflate, &mut out, max_output)?;
        if rest.is_empty() {
            return Ok(out);
        }
        // A lone 0x1f may be a member cut short, so let the parser call it
        // Truncated; anything else that is not the magic is garbage.
        if !(rest.starts_with(&MAGIC) || rest == &MAGIC[..1]) {
            return Err(GzipError::TrailingGarbage);
        }
    }
}

/// Decodes the member at the start of `input`, appending its content to
/// `out`, and returns the input that follows it.
fn gunzip_member<'a>(
    input: &'a [u8],
    inflate: &mut impl FnMut(&'a [u8], &mut Vec<u8>, usize) -> Result<&'a [u8], GzipError>,
    out: &mut Vec<u8>,
    max_output: usize,
) -> Result<&'a [u8], GzipError> {
    let body = skip_header(input)?;
    let start = out.len();
    let rest = inflate(body, out, max_output)?;
    let (trailer, rest) = rest
        .split_first_chunk::<TRAILER_LEN>()
        .ok_or(GzipError::Truncated)?;
    let content = out.get(start..).ok_or(GzipError::Corrupt)?;
    let [c0, c1, c2, c3, s0, s1, s2, s3] = *trailer;
    if u32::from_le_bytes([c0, c1, c2, c3]) != crc32(content) {
        return Err(GzipError::ChecksumMismatch);
    }
    if u32::from_le_bytes([s0, s1, s2, s3]) != content.len() as u32 {
        return Err(GzipError::LengthMismatch);
    }
    Ok(rest)
}

/// Validates the member header at the start of `input` and returns what
/// follows it, i.e. the raw deflate stream.
fn skip_header(input: &[u8]) -> Result<&[u8], GzipError> {
    let mut r = Reader(input);
    // Byte by byte, so a wrong first byte is BadMagic even in a short input.
    for expected in MAGIC {
        if r.byte()? != expected {
            return Err(GzipError::BadMagic);
        }
    }
    if r.byte()? != METHOD_DEFLATE {
        return Err(GzipError::UnsupportedMethod);
    }
    let flags = r.byte()?;
    if flags & FRESERVED != 0 {
        return Err(GzipError::BadHeader);
    }
    r.skip(6)?; // MTIME, XFL, OS: informational only.
    if flags & FEXTRA != 0 {
        let [lo, hi] = *r.take_array::<2>()?;
        r.skip(usize::from(u16::from_le_bytes([lo, hi])))?;
    }
    if flags & FNAME != 0 {
        r.skip_zero_terminated()?;
    }
    if flags & FCOMMENT != 0 {
        r.skip_zero_terminated()?;
    }
    if flags & FHCRC != 0 {
        // The CRC-16 covers every header byte before it.
        let covered = input.len() - r.0.len();
        let expected = crc32(input.get(..covered).ok_or(GzipError::Truncated)?) as u16;
        if u16::from_le_bytes(*r.take_array::<2>()?) != expected {
            return Err(GzipError::BadHeader);
        }
    }
    Ok(r.0)
}

/// Inflates the raw deflate stream at the start of `input` with miniz_oxide,
/// appending to `out`, and returns the input after its end.
#[cfg(not(feature = "compact"))]
fn miniz_inflate<'a>(
    mut input: &'a [u8],
    inflater: &mut DecompressorOxide,
    out: &mut Vec<u8>,
    max_output: usize,
) -> Result<&'a [u8], GzipError> {
    // Where this member's output begins in `out`.
    let start = out.len();
    inflater.init();
    // Non-wrapping: the member's whole output stays addressable for
    // back-references, so one growing Vec serves as window and result.
    let flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let mut written = 0;
    loop {
        let member_out = out.get_mut(start..).ok_or(GzipError::Corrupt)?;
        let (status, consumed, produced) = decompress(inflater, input, member_out, written, flags);
        input = input.get(consumed..).ok_or(GzipError::Corrupt)?;
        written += produced;
        match status {
            TINFLStatus::Done => {
                out.truncate(start + written);
                return Ok(input);
            }
            TINFLStatus::HasMoreOutput => grow(out, input.len(), max_output)?,
            // Without TINFL_FLAG_HAS_MORE_INPUT these mean the input ran out.
            TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                return Err(GzipError::Truncated);
            }
            _ => return Err(GzipError::Corrupt),
        }
    }
}

/// Makes room for more output, never past `max_output` in length or
/// capacity.
#[cfg(not(feature = "compact"))]
fn grow(out: &mut Vec<u8>, input_left: usize, max_output: usize) -> Result<(), GzipError> {
    let len = out.len();
    if len >= max_output {
        return Err(GzipError::TooLarge { limit: max_output });
    }
    // Doubling keeps reallocation amortised; the input-sized step avoids a
    // string of tiny grows on the first call.
    let step = len.max(input_left.saturating_mul(2)).max(MIN_GROW);
    let new_len = len.saturating_add(step).min(max_output);
    // Exact, so the capacity (real memory) also stays within the limit.
    out.reserve_exact(new_len - len);
    out.resize(new_len, 0);
    Ok(())
}

/// A bounds-checked cursor over header bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, GzipError> {
        let (&b, rest) = self.0.split_first().ok_or(GzipError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), GzipError> {
        self.0 = self.0.get(n..).ok_or(GzipError::Truncated)?;
        Ok(())
    }

    fn take_array<const N: usize>(&mut self) -> Result<&'a [u8; N], GzipError> {
        let (taken, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(GzipError::Truncated)?;
        self.0 = rest;
        Ok(taken)
    }

    fn skip_zero_terminated(&mut self) -> Result<(), GzipError> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(GzipError::Truncated)?;
        self.skip(end + 1)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::vec;
    use flate2::read::{GzDecoder, MultiGzDecoder};
    use flate2::{Compression, GzBuilder};
    use std::io::{Read, Write};

    use super::test_rng::Rng;

    /// Compressible, batch-like text.
    fn sample(lines: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..lines {
            out.extend_from_slice(
                std::format!("{{\"impression\":{i},\"slot\":\"feed-{}\"}}\n", i % 7).as_bytes(),
            );
        }
        out
    }

    fn flate2_gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    /// A member with a caller-chosen header, for header cases flate2 and
    /// `gzip` do not produce.
    fn member_with_header(header: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = header.to_vec();
        out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, GZIP_LEVEL));
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    const NO_LIMIT: usize = usize::MAX;

    #[test]
    fn gzip_writes_fixed_header_and_little_endian_trailer() {
        let data = sample(3);
        let z = gzip(&data);
        assert_eq!(z[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let trailer = &z[z.len() - 8..];
        assert_eq!(trailer[..4], crc32(&data).to_le_bytes());
        assert_eq!(trailer[4..], (data.len() as u32).to_le_bytes());
    }

    #[test]
    fn gzip_into_appends_after_existing_bytes() {
        let mut out = b"prefix".to_vec();
        gzip_into(b"hello", 9, &mut out);
        assert_eq!(out[..6], *b"prefix");
        assert_eq!(gunzip(&out[6..], NO_LIMIT).unwrap(), b"hello");
    }

    #[test]
    fn xfl_marks_miniz_levels_1_and_9_and_nothing_for_compact() {
        let xfl = |z: Vec<u8>| z[8];
        let miniz = |level| {
            let mut z = Vec::new();
            MinizGzipper::new().gzip_into(b"hello", level, &mut z);
            z
        };
        let compact = |level| {
            let mut z = Vec::new();
            CompactGzipper::new().gzip_into(b"hello", level, &mut z);
            z
        };
        assert_eq!([xfl(miniz(1)), xfl(miniz(6)), xfl(miniz(9))], [4, 0, 2]);
        assert_eq!(
            [xfl(compact(1)), xfl(compact(6)), xfl(compact(9))],
            [0, 0, 0]
        );
    }

    #[test]
    fn empty_payload_round_trips_even_with_zero_limit() {
        let z = gzip(b"");
        assert_eq!(gunzip(&z, NO_LIMIT).unwrap(), b"");
        assert_eq!(gunzip(&z, 0).unwrap(), b"");
    }

    #[test]
    fn small_payload_round_trips_at_every_level() {
        let data = sample(50);
        for level in 0..=10 {
            let mut z = Vec::new();
            gzip_into(&data, level, &mut z);
            assert_eq!(gunzip(&z, NO_LIMIT).unwrap(), data, "level {level}");
        }
    }

    /// A member made a step of `budget` bytes at a time, and the steps it took.
    fn stepped(gzipper: &mut MinizGzipper, data: &[u8], budget: usize) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut member = gzipper.begin(GZIP_LEVEL, &mut out);
        let mut steps = 1;
        while !gzipper.step(&mut member, data, budget, &mut out) {
            steps += 1;
        }
        (out, steps)
    }

    #[test]
    fn a_member_made_step_by_step_is_the_member_made_at_once_in_a_step_per_chunk_boundary_and_end()
    {
        let mut gzipper = MinizGzipper::new();
        let text = sample(3000);
        let noise = Rng(0x5eed).bytes(50_000);
        for data in [
            &text[..],
            &noise[..],
            &text[..2 * BLOCK_BYTES],
            &text[..1],
            &[][..],
        ] {
            let mut whole = Vec::new();
            gzipper.gzip_into(data, GZIP_LEVEL, &mut whole);
            // Budgets that divide a block, or span one or more.
            for budget in [1usize, 8, 512, 2048, 4096, 65_536] {
                let (out, steps) = stepped(&mut gzipper, data, budget);
                assert_eq!(out, whole, "{} bytes in steps of {budget}", data.len());
                let chunks = data.len().div_ceil(budget.min(BLOCK_BYTES)).max(1);
                let boundaries = data.len().saturating_sub(1) / BLOCK_BYTES;
                assert_eq!(
                    steps,
                    chunks + boundaries + 1,
                    "{} bytes by {budget}",
                    data.len()
                );
            }
            // Budgets that straddle block boundaries: the same bytes all the same.
            for budget in [7usize, 3000] {
                let (out, _) = stepped(&mut gzipper, data, budget);
                assert_eq!(out, whole, "{} bytes in steps of {budget}", data.len());
            }
        }
        assert_eq!(flate2_gunzip(&stepped(&mut gzipper, &noise, 2048).0), noise);
    }

    #[test]
    fn a_member_fed_input_as_it_is_produced_is_the_member_of_the_whole_input() {
        let mut gzipper = MinizGzipper::new();
        let data = [sample(3000), Rng(0x5eed).bytes(9_000)].concat();
        let mut whole = Vec::new();
        gzipper.gzip_into(&data, GZIP_LEVEL, &mut whole);
        for (budget, produce) in [(512usize, 1usize), (512, 700), (100, 3), (4096, 5000)] {
            let (mut out, mut fed) = (Vec::new(), 0);
            let mut member = gzipper.begin(GZIP_LEVEL, &mut out);
            loop {
                // Produce just past what the step may read, a `produce`-byte piece at a time.
                while fed < data.len() && fed <= member.reads_up_to(budget) {
                    fed = (fed + produce).min(data.len());
                }
                if gzipper.step(&mut member, &data[..fed], budget, &mut out) {
                    break;
                }
            }
            assert_eq!(out, whole, "steps of {budget}, pieces of {produce}");
        }
    }

    #[test]
    fn one_mebibyte_pseudo_random_payload_round_trips() {
        let data = Rng(0x5eed).bytes(1 << 20);
        assert_eq!(gunzip(&gzip(&data), 1 << 20).unwrap(), data);
    }

    #[test]
    fn output_exactly_at_limit_is_accepted_and_one_byte_over_is_too_large() {
        let data = sample(2000);
        let z = gzip(&data);
        let out = gunzip(&z, data.len()).unwrap();
        assert_eq!(out, data);
        assert!(out.capacity() <= data.len(), "capacity stays within limit");
        assert_eq!(
            gunzip(&z, data.len() - 1),
            Err(GzipError::TooLarge {
                limit: data.len() - 1
            })
        );
    }

    #[test]
    fn flate2_decodes_our_output_at_every_level() {
        let data = sample(500);
        for level in 0..=10 {
            let mut z = Vec::new();
            gzip_into(&data, level, &mut z);
            assert_eq!(flate2_gunzip(&z), data, "level {level}");
        }
    }

    #[test]
    fn we_decode_flate2_output_with_name_comment_and_extra() {
        let data = sample(500);
        let mut enc = GzBuilder::new()
            .filename("batch-0001.pb")
            .comment("sightline test")
            .extra(vec![b'S', b'L', 2, 0, 1, 2])
            .mtime(1_700_000_000)
            .write(Vec::new(), Compression::best());
        enc.write_all(&data).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(
            z[3],
            FEXTRA | FNAME | FCOMMENT,
            "all optional fields present"
        );
        assert_eq!(gunzip(&z, NO_LIMIT).unwrap(), data);
    }

    #[test]
    fn header_crc_is_verified_when_present() {
        let mut header = vec![0x1f, 0x8b, 8, FHCRC | FNAME | 0x01, 0, 0, 0, 0, 0, 3];
        header.extend_from_slice(b"name\0");
        let crc16 = crc32(&header) as u16;
        let mut good = header.clone();
        good.extend_from_slice(&crc16.to_le_bytes());
        assert_eq!(gunzip(&member_with_header(&good, b"x"), 10).unwrap(), b"x");

        let mut bad = header;
        bad.extend_from_slice(&(crc16 ^ 1).to_le_bytes());
        assert_eq!(
            gunzip(&member_with_header(&bad, b"x"), 10),
            Err(GzipError::BadHeader)
        );
    }

    #[test]
    fn two_concatenated_members_decode_to_their_concatenation() {
        let (a, b) = (sample(300), b"{\"sent_at\":1}".to_vec());
        let mut z = gzip(&a);
        gzip_into(&b, 1, &mut z);
        let expected = [a, b].concat();
        assert_eq!(gunzip(&z, NO_LIMIT).unwrap(), expected);

        let mut theirs = Vec::new();
        MultiGzDecoder::new(&z[..])
            .read_to_end(&mut theirs)
            .unwrap();
        assert_eq!(theirs, expected);
    }

    #[test]
    fn output_limit_applies_to_the_total_across_members() {
        let data = sample(1000);
        let z = [gzip(&data), gzip(&data)].concat();
        assert_eq!(gunzip(&z, 2 * data.len()).unwrap().len(), 2 * data.len());
        let limit = 2 * data.len() - 1;
        assert_eq!(gunzip(&z, limit), Err(GzipError::TooLarge { limit }));
    }

    #[test]
    fn gzip_bomb_stops_at_limit_with_too_large() {
        // Made as an attacker would, in long blocks: the core's own encoder ends a block
        // every BLOCK_BYTES, which caps its ratio.
        let bomb = member_with_header(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255], &vec![0; 64 << 20]);
        assert!(
            bomb.len() < 1 << 20,
            "the input is far smaller than the limit"
        );
        assert_eq!(
            gunzip(&bomb, 1 << 20),
            Err(GzipError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn every_truncation_of_a_valid_member_is_truncated() {
        let mut enc = GzBuilder::new()
            .filename("f")
            .comment("c")
            .extra(vec![1, 2, 0, 0])
            .write(Vec::new(), Compression::default());
        enc.write_all(&sample(100)).unwrap();
        for z in [gzip(&sample(100)), enc.finish().unwrap()] {
            for len in 0..z.len() {
                assert_eq!(
                    gunzip(&z[..len], NO_LIMIT),
                    Err(GzipError::Truncated),
                    "{len}"
                );
            }
        }
    }

    #[test]
    fn truncating_two_members_anywhere_but_the_boundary_is_truncated() {
        let first = gzip(b"first");
        let z = [first.clone(), gzip(b"second")].concat();
        for len in 0..z.len() {
            let got = gunzip(&z[..len], NO_LIMIT);
            if len == first.len() {
                assert_eq!(got.unwrap(), b"first");
            } else {
                assert_eq!(got, Err(GzipError::Truncated), "{len}");
            }
        }
    }

    #[test]
    fn flipped_trailer_bytes_give_checksum_or_length_mismatch() {
        let z = gzip(&sample(100));
        let n = z.len();
        for (i, expected) in [
            (n - 8, GzipError::ChecksumMismatch),
            (n - 5, GzipError::ChecksumMismatch),
            (n - 4, GzipError::LengthMismatch),
            (n - 1, GzipError::LengthMismatch),
        ] {
            let mut bad = z.clone();
            bad[i] ^= 0x40;
            assert_eq!(gunzip(&bad, NO_LIMIT), Err(expected), "byte {i}");
        }
    }

    #[test]
    fn flipped_body_bits_never_yield_wrong_data() {
        let data = sample(100);
        let z = gzip(&data);
        let mut rejected = 0;
        for i in HEADER_LEN..z.len() - TRAILER_LEN {
            for bit in 0..8 {
                let mut bad = z.clone();
                bad[i] ^= 1 << bit;
                match gunzip(&bad, NO_LIMIT) {
                    // Only padding bits can flip harmlessly: after the final block, and
                    // before the lengths of each boundary's empty stored block.
                    Ok(out) => assert_eq!(out, data, "byte {i} bit {bit}"),
                    Err(e) => {
                        assert!(
                            matches!(
                                e,
                                GzipError::Corrupt
                                    | GzipError::ChecksumMismatch
                                    | GzipError::LengthMismatch
                                    | GzipError::Truncated
                            ),
                            "byte {i} bit {bit}: {e:?}"
                        );
                        rejected += 1;
                    }
                }
            }
        }
        let padding_bytes = 1 + (data.len() - 1) / BLOCK_BYTES;
        assert!(rejected >= (z.len() - HEADER_LEN - TRAILER_LEN - padding_bytes) * 8);
    }

    #[test]
    fn invalid_deflate_block_type_is_corrupt() {
        // BFINAL = 1, BTYPE = 0b11 (reserved), then a zero trailer.
        let mut z = gzip(b"")[..HEADER_LEN].to_vec();
        z.extend_from_slice(&[0x07, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(gunzip(&z, NO_LIMIT), Err(GzipError::Corrupt));
    }

    #[test]
    fn any_byte_after_the_last_member_is_trailing_garbage() {
        let z = gzip(b"payload");
        for tail in [&[0u8][..], &[0; 8], b"junk", &[0x8b], &[0x1f, 0x00]] {
            let bad = [&z[..], tail].concat();
            assert_eq!(
                gunzip(&bad, NO_LIMIT),
                Err(GzipError::TrailingGarbage),
                "{tail:?}"
            );
        }
    }

    #[test]
    fn empty_input_is_truncated() {
        assert_eq!(gunzip(b"", NO_LIMIT), Err(GzipError::Truncated));
    }

    #[test]
    fn wrong_magic_is_bad_magic() {
        let z = gzip(b"payload");
        for (i, v) in [(0, 0x1e), (1, 0x8c)] {
            let mut bad = z.clone();
            bad[i] = v;
            assert_eq!(gunzip(&bad, NO_LIMIT), Err(GzipError::BadMagic));
        }
        assert_eq!(gunzip(b"{}", NO_LIMIT), Err(GzipError::BadMagic));
        assert_eq!(
            gunzip(b"\x78\x9c", NO_LIMIT),
            Err(GzipError::BadMagic),
            "zlib"
        );
    }

    #[test]
    fn non_deflate_method_is_unsupported() {
        let mut z = gzip(b"payload");
        z[2] = 7;
        assert_eq!(gunzip(&z, NO_LIMIT), Err(GzipError::UnsupportedMethod));
    }

    #[test]
    fn reserved_flag_bits_are_bad_header() {
        for bit in [0x20, 0x40, 0x80] {
            let mut z = gzip(b"payload");
            z[3] |= bit;
            assert_eq!(gunzip(&z, NO_LIMIT), Err(GzipError::BadHeader), "{bit:#x}");
        }
    }

    #[test]
    fn optional_field_running_past_the_end_is_truncated() {
        let huge_extra = [0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 255, 0xff, 0xff, 1, 2];
        assert_eq!(gunzip(&huge_extra, NO_LIMIT), Err(GzipError::Truncated));
        let unterminated_name = [0x1f, 0x8b, 8, FNAME, 0, 0, 0, 0, 0, 255, b'a', b'b'];
        assert_eq!(
            gunzip(&unterminated_name, NO_LIMIT),
            Err(GzipError::Truncated)
        );
    }

    #[test]
    fn twenty_thousand_random_mutations_never_panic_or_yield_wrong_data() {
        let (first, second) = (sample(40), b"{\"sent_at\":1}");
        let mut enc = GzBuilder::new()
            .filename("f")
            .comment("c")
            .extra(vec![1, 2, 0, 0])
            .write(Vec::new(), Compression::default());
        enc.write_all(&first).unwrap();
        let mut base = enc.finish().unwrap();
        gzip_into(second, GZIP_LEVEL, &mut base);
        let both = [&first[..], second].concat();

        let mut rng = Rng(0xdead_beef);
        let mut rejected = 0;
        for _ in 0..20_000 {
            let mut z = base.clone();
            for _ in 0..1 + rng.below(4) {
                if z.is_empty() {
                    break;
                }
                let i = rng.below(z.len());
                match rng.below(5) {
                    0 => z[i] ^= 1 << rng.below(8),
                    1 => z[i] = rng.next() as u8,
                    2 => z.insert(i, rng.next() as u8),
                    3 => drop(z.remove(i)),
                    _ => z.truncate(i),
                }
            }
            match gunzip(&z, 4096) {
                // Unchecked header bytes (MTIME, name, ...) or a cut exactly
                // between members can change; the content never can.
                Ok(out) => assert!(out == both || out == first, "{z:?}"),
                Err(_) => rejected += 1,
            }
        }
        assert!(rejected > 19_000, "only {rejected} mutations were rejected");
    }

    /// The member a fresh compressor makes, fed a block at a time with a sync flush
    /// after each but the last, with the same framing.
    fn fresh_compressor_member(data: &[u8], level: u8) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl(level), 255];
        let mut compressor = CompressorOxide::default();
        compressor.set_format_and_level(DataFormat::Raw, level);
        let blocks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(BLOCK_BYTES).collect()
        };
        for (i, block) in blocks.iter().enumerate() {
            let flush = if i + 1 == blocks.len() {
                TDEFLFlush::Finish
            } else {
                TDEFLFlush::Sync
            };
            let (status, consumed) = compress_to_output(&mut compressor, block, flush, |chunk| {
                out.extend_from_slice(chunk);
                true
            });
            assert_eq!(consumed, block.len());
            assert!(matches!(status, TDEFLStatus::Okay | TDEFLStatus::Done));
        }
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn flate2_multi_gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn crc32_matches_known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"a"), 0xe8b7_be43);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
        assert_eq!(crc32(&[0; 32]), 0x190a_55ad);
        assert_eq!(crc32(&[0xff; 32]), 0xff6c_ab0b);
    }

    #[test]
    fn crc32_is_the_same_in_the_default_and_compact_builds() {
        // A build compiles one of the two; each is checked against both, at
        // every length around the 16-byte step of slice-by-16 and at every
        // alignment.
        static SLICE_BY_16: crc::Crc<u32, crc::Table<16>> =
            crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
        static BITWISE: crc::Crc<u32, crc::NoTable> =
            crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);
        let data = Rng(0x5eed).bytes(4200);
        for start in 0..16 {
            for len in (0..=48).chain([255, 256, 4099]) {
                let bytes = &data[start..start + len];
                assert_eq!(crc32(bytes), SLICE_BY_16.checksum(bytes), "{start}+{len}");
                assert_eq!(crc32(bytes), BITWISE.checksum(bytes), "{start}+{len}");
            }
        }
    }

    #[test]
    fn crc32_matches_flate2_gzip_trailer() {
        let mut rng = Rng(0xc7c3);
        for len in [0, 1, 3, 15, 16, 17, 255, 256, 4096, 65_537, 300_000] {
            let data = rng.bytes(len);
            let mut enc = GzBuilder::new().write(Vec::new(), Compression::fast());
            enc.write_all(&data).unwrap();
            let z = enc.finish().unwrap();
            let trailer = &z[z.len() - 8..z.len() - 4];
            assert_eq!(trailer, crc32(&data).to_le_bytes(), "len {len}");
        }
    }

    #[test]
    fn stored_member_of_empty_data_is_one_empty_final_block() {
        let mut z = Vec::new();
        gzip_stored_into(b"", &mut z);
        let mut expected = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        expected.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
        expected.extend_from_slice(&[0; 8]);
        assert_eq!(z, expected);
        assert_eq!(gunzip(&z, 0).unwrap(), b"");
        assert_eq!(flate2_gunzip(&z), b"");
    }

    #[test]
    fn stored_member_splits_into_65535_byte_blocks() {
        let mut rng = Rng(0x5707ed);
        for len in [1, 100, 65_534, 65_535, 65_536, 131_070, 131_071, 200_000] {
            let data = rng.bytes(len);
            let mut z = b"prefix".to_vec();
            gzip_stored_into(&data, &mut z);
            let z = &z[6..];
            let blocks = len.div_ceil(MAX_STORED_BLOCK);
            assert_eq!(z.len(), HEADER_LEN + len + 5 * blocks + TRAILER_LEN);

            // Walk the blocks: BFINAL only on the last, LEN/NLEN consistent.
            let mut at = HEADER_LEN;
            for i in 0..blocks {
                let last = i + 1 == blocks;
                assert_eq!(z[at], u8::from(last), "len {len} block {i}");
                let n = u16::from_le_bytes([z[at + 1], z[at + 2]]);
                assert_eq!(!n, u16::from_le_bytes([z[at + 3], z[at + 4]]));
                let expected = if last {
                    len - i * MAX_STORED_BLOCK
                } else {
                    65_535
                };
                assert_eq!(usize::from(n), expected, "len {len} block {i}");
                at += 5 + usize::from(n);
            }
            assert_eq!(at, z.len() - TRAILER_LEN);

            assert_eq!(gunzip(z, len).unwrap(), data, "len {len}");
            assert_eq!(flate2_gunzip(z), data, "len {len}");
        }
    }

    #[test]
    fn stored_member_concatenates_with_compressed_members() {
        let (batch, send) = (sample(400), b"{\"sent_at\":1}".to_vec());
        let big = Rng(0xb16).bytes(70_000);
        let mut gz = Gzipper::new();
        let mut z = Vec::new();
        gz.gzip_into(&batch, GZIP_LEVEL, &mut z);
        gzip_stored_into(&send, &mut z);
        gzip_stored_into(&big, &mut z);
        gzip_stored_into(b"", &mut z);
        gz.gzip_into(&batch, 1, &mut z);
        let expected = [&batch[..], &send, &big, &batch].concat();
        assert_eq!(gunzip(&z, NO_LIMIT).unwrap(), expected);
        assert_eq!(flate2_multi_gunzip(&z), expected);
    }

    #[test]
    fn stored_member_rejects_corrupt_block_lengths() {
        let mut z = Vec::new();
        gzip_stored_into(b"hello", &mut z);
        let mut bad_nlen = z.clone();
        bad_nlen[HEADER_LEN + 3] ^= 1;
        assert_eq!(gunzip(&bad_nlen, NO_LIMIT), Err(GzipError::Corrupt));
        let mut not_final = z;
        not_final[HEADER_LEN] = 0;
        assert!(gunzip(&not_final, NO_LIMIT).is_err());
    }

    #[test]
    fn miniz_gzipper_members_equal_a_fresh_compressors_at_every_level() {
        let data = sample(500);
        let mut gz = MinizGzipper::new();
        for level in (0..=10).chain([200]) {
            let mut z = Vec::new();
            gz.gzip_into(&data, level, &mut z);
            assert_eq!(z, fresh_compressor_member(&data, level), "level {level}");
        }
    }

    #[test]
    fn reused_miniz_gzipper_matches_fresh_output_after_any_previous_member() {
        let mut rng = Rng(0x2e05e);
        let inputs = [
            rng.bytes(1 << 20),
            sample(3),
            Vec::new(),
            sample(5000),
            rng.bytes(70_000),
            b"x".to_vec(),
            vec![0; 300_000],
            sample(50),
        ];
        let levels = [9, 6, 1, 0, 6, 10, 3, 6];
        let mut gz = MinizGzipper::default();
        let mut all = Vec::new();
        for (data, &level) in inputs.iter().zip(&levels) {
            let mut z = Vec::new();
            gz.gzip_into(data, level, &mut z);
            assert_eq!(z, fresh_compressor_member(data, level), "level {level}");
            assert_eq!(gunzip(&z, NO_LIMIT).unwrap(), *data);
            gz.gzip_into(data, level, &mut all);
        }
        let expected = inputs.concat();
        assert_eq!(gunzip(&all, NO_LIMIT).unwrap(), expected);
        assert_eq!(flate2_multi_gunzip(&all), expected);
    }

    #[test]
    fn two_members_from_one_gzipper_both_decode() {
        let (a, b) = (sample(300), b"{\"sent_at\":1}".to_vec());
        let mut gz = Gzipper::new();
        let mut z = Vec::new();
        gz.gzip_into(&a, GZIP_LEVEL, &mut z);
        let first_len = z.len();
        gz.gzip_into(&b, GZIP_LEVEL, &mut z);
        assert_eq!(gunzip(&z[..first_len], NO_LIMIT).unwrap(), a);
        assert_eq!(gunzip(&z[first_len..], NO_LIMIT).unwrap(), b);
        assert_eq!(flate2_gunzip(&z[first_len..]), b);
        assert_eq!(flate2_multi_gunzip(&z), [a, b].concat());
    }

    #[test]
    fn gzippers_allocate_lazily_and_debug_says_so() {
        let mut miniz = MinizGzipper::new();
        assert_eq!(
            std::format!("{miniz:?}"),
            "MinizGzipper { allocated: false }"
        );
        assert_eq!(
            std::format!("{:?}", MinizGzipper::default()),
            "MinizGzipper { allocated: false }"
        );
        miniz.gzip_into(b"hello", GZIP_LEVEL, &mut Vec::new());
        assert_eq!(
            std::format!("{miniz:?}"),
            "MinizGzipper { allocated: true }"
        );

        let mut compact = CompactGzipper::default();
        compact.gzip_into(b"hello", 0, &mut Vec::new());
        assert_eq!(
            std::format!("{compact:?}"),
            "CompactGzipper { allocated: false }",
            "level 0 stores without tables"
        );
        compact.gzip_into(b"hello", GZIP_LEVEL, &mut Vec::new());
        assert_eq!(
            std::format!("{compact:?}"),
            "CompactGzipper { allocated: true }"
        );
    }

    #[test]
    fn compact_members_decode_with_gunzip_and_flate2() {
        let mut rng = Rng(0xc0de);
        let inputs = [
            Vec::new(),
            b"x".to_vec(),
            sample(3),
            sample(5000),
            rng.bytes(70_000),
            vec![0; 300_000],
            [sample(2000), rng.bytes(3000), sample(2000)].concat(),
            rng.bytes(1 << 20),
        ];
        let mut gz = CompactGzipper::new();
        let mut all = Vec::new();
        for data in &inputs {
            let mut z = Vec::new();
            gz.gzip_into(data, GZIP_LEVEL, &mut z);
            assert_eq!(gunzip(&z, NO_LIMIT).unwrap(), *data, "{} bytes", data.len());
            assert_eq!(flate2_gunzip(&z), *data, "{} bytes", data.len());
            gz.gzip_into(data, GZIP_LEVEL, &mut all);
        }
        let expected = inputs.concat();
        assert_eq!(gunzip(&all, NO_LIMIT).unwrap(), expected);
        assert_eq!(flate2_multi_gunzip(&all), expected);
    }

    #[test]
    fn reused_compact_gzipper_matches_a_fresh_one() {
        let (a, b) = (sample(5000), sample(70));
        let mut reused = CompactGzipper::new();
        reused.gzip_into(&a, GZIP_LEVEL, &mut Vec::new());
        let (mut again, mut fresh) = (Vec::new(), Vec::new());
        reused.gzip_into(&b, GZIP_LEVEL, &mut again);
        CompactGzipper::new().gzip_into(&b, GZIP_LEVEL, &mut fresh);
        assert_eq!(again, fresh);
    }

    #[test]
    fn compact_level_0_is_a_stored_member() {
        let mut z = Vec::new();
        CompactGzipper::new().gzip_into(b"hello", 0, &mut z);
        let mut stored = Vec::new();
        gzip_stored_into(b"hello", &mut stored);
        assert_eq!(z, stored);
    }

    #[test]
    fn compact_costs_at_most_a_fifth_more_than_miniz_on_batch_like_text() {
        let data = sample(2000);
        let (mut compact, mut miniz) = (Vec::new(), Vec::new());
        CompactGzipper::new().gzip_into(&data, GZIP_LEVEL, &mut compact);
        MinizGzipper::new().gzip_into(&data, GZIP_LEVEL, &mut miniz);
        assert!(
            compact.len() * 5 <= miniz.len() * 6,
            "compact {} vs miniz {}",
            compact.len(),
            miniz.len()
        );
    }

    /// `gunzip` over the compact decoder, whatever the build's default.
    fn compact_gunzip(data: &[u8], max_output: usize) -> Result<Vec<u8>, GzipError> {
        gunzip_with(data, max_output, inflate::inflate)
    }

    #[test]
    fn compact_decoder_behind_gunzip_gives_what_gunzip_gives() {
        // Without `compact` this compares with miniz_oxide's inflate, error variants
        // included; with it, `gunzip` is this decoder.
        let mut rng = Rng(0xc0ffee);
        let mut enc = GzBuilder::new()
            .filename("f")
            .comment("c")
            .extra(vec![1, 2, 0, 0])
            .write(Vec::new(), Compression::best());
        enc.write_all(&sample(300)).unwrap();
        let mut base = enc.finish().unwrap();
        CompactGzipper::new().gzip_into(&sample(50), GZIP_LEVEL, &mut base);
        gzip_stored_into(b"stored", &mut base);
        MinizGzipper::new().gzip_into(&rng.bytes(3000), 1, &mut base);
        assert_eq!(compact_gunzip(&base, NO_LIMIT), gunzip(&base, NO_LIMIT));
        for len in 0..base.len() {
            let z = &base[..len];
            assert_eq!(compact_gunzip(z, NO_LIMIT), gunzip(z, NO_LIMIT), "{len}");
        }
        for limit in [0, 1, 1000, 18_000, 20_000, 25_000] {
            assert_eq!(
                compact_gunzip(&base, limit),
                gunzip(&base, limit),
                "{limit}"
            );
        }
        let bomb = gzip(&vec![0; 8 << 20]);
        assert_eq!(compact_gunzip(&bomb, 1 << 20), gunzip(&bomb, 1 << 20));
        for _ in 0..5000 {
            let mut z = base.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(z.len());
                match rng.below(3) {
                    0 => z[i] ^= 1 << rng.below(8),
                    1 => z[i] = rng.next() as u8,
                    _ => z.insert(i, rng.next() as u8),
                }
            }
            assert_eq!(compact_gunzip(&z, 1 << 16), gunzip(&z, 1 << 16), "{z:?}");
        }
    }

    #[test]
    fn errors_display_as_plain_sentences() {
        let text = std::format!("{}", GzipError::TooLarge { limit: 1024 });
        assert_eq!(text, "gzip data decompresses to more than 1024 bytes");
        assert_eq!(
            std::format!("{}", GzipError::TrailingGarbage),
            "unexpected bytes after gzip data"
        );
    }
}
