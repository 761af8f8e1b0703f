//! The in-memory hash of ids: a word-at-a-time folded multiply (the construction of
//! foldhash and wyhash), so an id of 64 bytes costs four multiplies, not 64 rounds. It keys
//! the interners only, never anything stored or sent: stable hashes that the wire or the
//! sampling decision depend on stay in [`crate::rng::hash_bytes`].
//!
//! Ids come from the host app, not from the network, so a fixed seed is enough: a host
//! that floods one page view with colliding ids is bounded by the page view's limits.

/// Two words of pi's fraction: any odd, dense constants do.
#[cfg(not(feature = "compact"))]
const SEED: [u64; 2] = [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344];

/// The 128-bit product of `a` and `b`, folded to 64 bits: every input bit reaches the
/// middle of the result.
#[cfg(not(feature = "compact"))]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[cfg(not(feature = "compact"))]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

#[cfg(not(feature = "compact"))]
fn half(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// The hash of `bytes`, as [`crate::rng::hash_bytes`] computes it: the firmware and the
/// browser module (feature `compact`) are 32-bit targets short of flash and download
/// bytes, where a 128-bit product costs more code than the byte loop already linked for
/// sampling.
#[cfg(feature = "compact")]
#[inline(always)]
pub fn hash(bytes: &[u8]) -> u64 {
    crate::rng::hash_bytes(0, bytes)
}

/// The hash of `bytes`. Reads 16 bytes per step; the last step reads the final 16 (they
/// may overlap the previous step's), so no byte is read one at a time past the first 3.
#[cfg(not(feature = "compact"))]
pub fn hash(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let h = SEED[0] ^ len as u64;
    let (a, b, h) = match len {
        0 => (0, 0, h),
        1..=3 => {
            let lo = u64::from(bytes[0]) | u64::from(bytes[len / 2]) << 8;
            (lo | u64::from(bytes[len - 1]) << 16, 0, h)
        }
        4..=7 => (half(bytes, 0), half(bytes, len - 4), h),
        8..=16 => (word(bytes, 0), word(bytes, len - 8), h),
        _ => {
            let mut h = h;
            let mut at = 0;
            while at + 16 < len {
                h = fold(word(bytes, at) ^ SEED[1], word(bytes, at + 8) ^ h);
                at += 16;
            }
            (word(bytes, len - 16), word(bytes, len - 8), h)
        }
    };
    fold(a ^ SEED[1], b ^ h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::format;
    use alloc::vec::Vec;

    #[test]
    fn changing_any_byte_of_an_id_of_any_length_changes_its_hash() {
        for len in 0..=80 {
            let id: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let base = hash(&id);
            for at in 0..len {
                let mut other = id.clone();
                other[at] ^= 1;
                assert_ne!(hash(&other), base, "length {len}, byte {at}");
            }
        }
    }

    #[test]
    fn ids_that_differ_only_in_length_hash_apart() {
        let zeros = [0u8; 40];
        let hashes: BTreeSet<u64> = (0..=40).map(|n| hash(&zeros[..n])).collect();
        assert_eq!(hashes.len(), 41);
    }

    #[test]
    fn numbered_ids_spread_over_the_low_bits_as_chance_does() {
        // The interner masks the low bits: they must not collide more than chance does.
        const SLOTS: usize = 1 << 16;
        let mut used = alloc::vec![false; SLOTS];
        for i in 0..SLOTS / 2 {
            used[hash(format!("title:{i}").as_bytes()) as usize % SLOTS] = true;
        }
        // Half as many keys as slots fill 1 - e^-0.5 = 39.3% of them when spread at random.
        let filled = used.iter().filter(|&&u| u).count() as f64 / SLOTS as f64;
        assert!((0.38..0.41).contains(&filled), "{filled}");
    }
}
