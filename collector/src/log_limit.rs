//! A token bucket for log lines an attacker can cause: one line per refused upload helps
//! an operator, a million per second fills the disk. Lines beyond the rate are counted,
//! and the next line that passes says how many were left out.

use std::sync::Mutex;
use std::time::Instant;

/// Lines logged back to back before the rate applies: a burst of refusals from one
/// misconfigured app is seen whole.
pub const REFUSAL_LOG_BURST: u32 = 20;
/// Lines per second after the burst: enough to follow an attack, bounded at about 1 KB/s.
pub const REFUSAL_LOG_PER_SECOND: u32 = 5;

/// Admits at most `burst` lines at once and `per_second` after that.
#[derive(Debug)]
pub struct LogLimit {
    burst: u32,
    per_second: u32,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(burst: u32, per_second: u32) -> Self {
        LogLimit {
            burst,
            per_second,
            state: Mutex::new(Bucket {
                tokens: f64::from(burst),
                refilled: None,
                suppressed: 0,
            }),
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` with the lines left out since the
    /// last one that was, or `None` to leave this one out.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = bucket.refilled {
            let earned =
                now.saturating_duration_since(last).as_secs_f64() * f64::from(self.per_second);
            bucket.tokens = (bucket.tokens + earned).min(f64::from(self.burst));
        }
        bucket.refilled = Some(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            None
        }
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(REFUSAL_LOG_BURST, REFUSAL_LOG_PER_SECOND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_rate_applies_and_the_next_line_counts_the_left_out() {
        let limit = LogLimit::new(3, 2);
        let start = Instant::now();
        let first: Vec<_> = (0..5).map(|_| limit.admit(start)).collect();
        assert_eq!(first, [Some(0), Some(0), Some(0), None, None]);
        // Half a second earns one line at 2 per second; it reports the two left out.
        let later = start + Duration::from_millis(500);
        assert_eq!(limit.admit(later), Some(2));
        assert_eq!(limit.admit(later), None);
    }

    #[test]
    fn a_quiet_period_refills_only_up_to_the_burst() {
        let limit = LogLimit::new(2, 100);
        let start = Instant::now();
        let after_an_hour = start + Duration::from_secs(3600);
        limit.admit(start);
        let admitted = (0..10)
            .filter(|_| limit.admit(after_an_hour).is_some())
            .count();
        assert_eq!(admitted, 2);
    }
}
