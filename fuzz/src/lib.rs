//! What the fuzz targets share: a byte reader that turns any input into a structured one,
//! and the writer the seed generator (`examples/seeds.rs`) uses to produce inputs that
//! read back as real data.
//!
//! The inputs are a small explicit format rather than `arbitrary`'s, because seeds must be
//! made from what a real logger stored and a real collector received, and `arbitrary` has
//! no encoder. Reading is total: every byte string is some input, short fields read as
//! zeros, so libFuzzer's mutations never fall off the format.

pub mod ingest;
pub mod store;

/// Reads fields off the front of a fuzz input; past the end every field is zero or empty.
#[derive(Debug)]
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    pub fn u16(&mut self) -> u16 {
        let mut b = [0; 2];
        let got = self.take(2);
        b[..got.len()].copy_from_slice(got);
        u16::from_le_bytes(b)
    }

    pub fn u32(&mut self) -> u32 {
        let mut b = [0; 4];
        let got = self.take(4);
        b[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(b)
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        let got = self.take(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(b)
    }

    /// A byte string with a 32-bit length (cut short by the end of the input).
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = self.u32() as usize;
        self.take(n)
    }

    /// A short string with an 8-bit length; invalid UTF-8 is replaced, as a host's
    /// string type would have to.
    pub fn short_str(&mut self) -> String {
        let n = usize::from(self.u8());
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
}

/// The inverse of [`Reader`], for seeds.
#[derive(Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("a seed field fits a 32-bit length");
        self.u32(len);
        self.0.extend_from_slice(v);
        self
    }

    pub fn short_str(&mut self, v: &str) -> &mut Self {
        let len = u8::try_from(v.len()).expect("a seed string fits an 8-bit length");
        self.u8(len);
        self.0.extend_from_slice(v.as_bytes());
        self
    }
}
