//! Deterministic sampling: whether an impression is kept depends only on a stable key and
//! the rate, never on chance, so every platform keeps the same users and the backend can
//! reweight with the rate that travels in each batch.

use crate::rng::hash_bytes;

/// Rates are parts per million: exact integers on the wire, no float rounding across platforms.
pub const PPM: u32 = 1_000_000;

/// Salt so that Sightline's sampling is independent of other hash-based decisions on the same ids.
const SAMPLING_SALT: u64 = 0x5349_4748_544C_494E;

/// What the sampling decision is keyed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKey {
    /// Whole installs in or out: per-user analyses stay complete.
    Install,
    /// Whole sessions in or out.
    Session,
}

/// True when the key falls inside the sampled-in fraction `rate_ppm / 1e6`.
pub fn keep(key: &str, rate_ppm: u32) -> bool {
    if rate_ppm >= PPM {
        return true;
    }
    let bucket = hash_bytes(SAMPLING_SALT, key.as_bytes()) % u64::from(PPM);
    bucket < u64::from(rate_ppm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn full_rate_keeps_everything_and_zero_keeps_nothing() {
        assert!(keep("anyone", PPM));
        assert!(!keep("anyone", 0));
    }

    #[test]
    fn the_decision_for_a_key_never_changes() {
        // "install-42" falls in bucket 255,885 of 1,000,000: kept from a rate of 255,886
        // ppm up. Pinned, so a change of hash, salt or bucketing cannot go unnoticed (it
        // would change which users every platform samples in).
        assert!(!keep("install-42", 250_000));
        assert!(!keep("install-42", 255_885));
        assert!(keep("install-42", 255_886));
        let kept: alloc::vec::Vec<bool> = (0..8)
            .map(|i| keep(&format!("install-{i}"), 500_000))
            .collect();
        assert_eq!(kept, [true, true, true, true, false, false, true, true]);
    }

    #[test]
    fn the_kept_share_matches_the_rate() {
        let kept = (0..100_000)
            .filter(|i| keep(&format!("install-{i}"), 100_000))
            .count();
        assert!(
            (9_000..11_000).contains(&kept),
            "kept {kept} of 100000 at 10%"
        );
    }

    #[test]
    fn raising_the_rate_keeps_everyone_kept_before() {
        for i in 0..10_000 {
            let key = format!("k{i}");
            if keep(&key, 50_000) {
                assert!(keep(&key, 200_000));
            }
        }
    }
}
