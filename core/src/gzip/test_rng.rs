//! Seeded test data for the gzip modules' tests: every run tests the same bytes.

extern crate std;

use alloc::vec::Vec;

/// xorshift64 over the seed it is made with.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Text-like bytes: words from a small vocabulary, digits, repeats at every
    /// distance, so every block type and most length and distance codes occur.
    pub(super) fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&[u8]; 8] = [
            b"impression",
            b"title:",
            b"art:",
            b"\"row\":",
            b" ",
            b"\n",
            b"home",
            b"0",
        ];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match self.below(4) {
                0 => out.extend_from_slice(WORDS[self.below(WORDS.len())]),
                1 => out.push(b'0' + self.below(10) as u8),
                2 if !out.is_empty() => {
                    let dist = 1 + self.below(out.len().min(40_000));
                    for _ in 0..3 + self.below(300) {
                        out.push(out[out.len() - dist]);
                    }
                }
                _ => out.push(self.next() as u8),
            }
        }
        out.truncate(len);
        out
    }

    /// Protobuf-like: field tags, varints, length-delimited ids from a small set.
    pub(super) fn protobuf(&mut self, len: usize) -> Vec<u8> {
        let ids: Vec<Vec<u8>> = (0..20)
            .map(|i| std::format!("item-{i:04}").into())
            .collect();
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            out.push(0x08 | (self.below(6) as u8) << 3);
            let mut v = self.next() >> self.below(64);
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            let id = &ids[self.below(ids.len())];
            out.extend_from_slice(&[0x12, id.len() as u8]);
            out.extend_from_slice(id);
        }
        out.truncate(len);
        out
    }
}
