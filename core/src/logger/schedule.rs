//! The upload schedule: the attempt in flight (with its timeout and a unique id per attempt),
//! when the next attempt may start (backoff, Retry-After, restored after a restart), and the
//! deadline the host must wake up for. Pure state on the logger's clock; the logger decides
//! what a batch's outcome means and tells the schedule when to try again.

use crate::config::Config;
use crate::rng::Rng;
use crate::upload::{self, MAX_RETRY_AFTER_MS, UPLOAD_TIMEOUT_MS};

#[derive(Debug)]
struct InFlight {
    /// Unique per attempt, so a late answer to an attempt that timed out is not taken for
    /// the answer to its retry.
    upload: u64,
    batch: u64,
    since: u64,
}

/// When uploads may happen.
#[derive(Debug)]
pub(super) struct Schedule {
    in_flight: Option<InFlight>,
    next_upload: u64,
    /// Monotonic time before which no attempt starts.
    next_send_at: u64,
    /// Wall-clock time before which the collector asked not to be contacted, and how long
    /// that was when asked (so a wall clock set back cannot stretch it after a restart).
    blocked_until_wall: u64,
    blocked_for: u64,
}

impl Schedule {
    pub fn new(now: u64) -> Self {
        Schedule {
            in_flight: None,
            next_upload: 1,
            next_send_at: now,
            blocked_until_wall: 0,
            blocked_for: 0,
        }
    }

    /// True when an attempt may start now.
    pub fn due(&self, now: u64) -> bool {
        self.in_flight.is_none() && now >= self.next_send_at
    }

    /// The batch being uploaded, if any.
    pub fn in_flight_batch(&self) -> Option<u64> {
        self.in_flight.as_ref().map(|f| f.batch)
    }

    /// Starts an attempt for `batch`; returns the upload id the host answers with.
    pub fn begin(&mut self, batch: u64, now: u64) -> u64 {
        let upload = self.next_upload;
        self.next_upload += 1;
        self.in_flight = Some(InFlight {
            upload,
            batch,
            since: now,
        });
        upload
    }

    /// Ends the attempt `upload`; its batch, or `None` when it is not the one in flight.
    pub fn finish(&mut self, upload: u64) -> Option<u64> {
        self.in_flight
            .take_if(|f| f.upload == upload)
            .map(|f| f.batch)
    }

    /// Forgets the attempt in flight (its batch was purged).
    pub fn abandon(&mut self) {
        self.in_flight = None;
    }

    /// The attempt in flight, if it has waited for an answer too long.
    pub fn timed_out(&self, now: u64) -> Option<u64> {
        self.in_flight
            .as_ref()
            .filter(|f| now >= f.since.saturating_add(UPLOAD_TIMEOUT_MS))
            .map(|f| f.upload)
    }

    /// The next attempt may start at once (a batch settled, or new work arrived).
    pub fn now_ready(&mut self, now: u64) {
        self.next_send_at = now;
    }

    /// A retryable failure after `attempts` attempts: wait out the jittered backoff, or the
    /// server's Retry-After (`retry_after_ms`, already parsed and capped) if longer.
    pub fn retry(
        &mut self,
        attempts: u32,
        retry_after_ms: u64,
        now: u64,
        wall: u64,
        c: &Config,
        rng: &mut Rng,
    ) {
        let backoff = upload::backoff_ms(attempts, c.retry_base_ms, c.retry_max_ms, rng);
        if retry_after_ms > 0 {
            self.blocked_until_wall = wall.saturating_add(retry_after_ms);
            self.blocked_for = retry_after_ms;
        }
        self.next_send_at = now.saturating_add(backoff.max(retry_after_ms));
    }

    /// What survives a restart: (blocked until, on the wall clock; for how long).
    pub fn blocked(&self) -> (u64, u64) {
        (self.blocked_until_wall, self.blocked_for)
    }

    /// After a restart: honour a stored Retry-After (never longer than it was when asked),
    /// and the backoff of a front batch that was already tried.
    pub fn restore(
        &mut self,
        (until_wall, blocked_for): (u64, u64),
        front_attempts: u32,
        now: u64,
        wall: u64,
        c: &Config,
        rng: &mut Rng,
    ) {
        self.blocked_until_wall = until_wall;
        self.blocked_for = blocked_for;
        let blocked = until_wall.saturating_sub(wall);
        self.next_send_at = now.saturating_add(blocked.min(blocked_for).min(MAX_RETRY_AFTER_MS));
        if front_attempts > 0 {
            let wait = upload::backoff_ms(front_attempts, c.retry_base_ms, c.retry_max_ms, rng);
            self.next_send_at = self.next_send_at.max(now.saturating_add(wait));
        }
    }

    /// The next deadline: the in-flight timeout, or when the next attempt may start if
    /// something is queued.
    pub fn deadline(&self, queued: bool) -> Option<u64> {
        match &self.in_flight {
            Some(f) => Some(f.since.saturating_add(UPLOAD_TIMEOUT_MS)),
            None if queued => Some(self.next_send_at),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            retry_base_ms: 1_000,
            retry_max_ms: 60_000,
            ..Config::default()
        }
    }

    #[test]
    fn one_attempt_at_a_time_each_with_its_own_id() {
        let mut s = Schedule::new(0);
        assert!(s.due(0));
        let first = s.begin(7, 0);
        assert!(!s.due(10), "one in flight");
        assert_eq!(s.finish(first + 1), None, "not the attempt in flight");
        assert_eq!(s.finish(first), Some(7));
        assert_eq!(s.finish(first), None, "answered once");
        let second = s.begin(7, 20);
        assert_ne!(first, second, "a retry is another attempt");
    }

    #[test]
    fn an_attempt_without_answer_times_out_and_is_the_next_deadline() {
        let mut s = Schedule::new(0);
        let id = s.begin(1, 100);
        assert_eq!(s.deadline(true), Some(100 + UPLOAD_TIMEOUT_MS));
        assert_eq!(s.timed_out(100 + UPLOAD_TIMEOUT_MS - 1), None);
        assert_eq!(s.timed_out(100 + UPLOAD_TIMEOUT_MS), Some(id));
    }

    #[test]
    fn a_retry_waits_for_the_longer_of_backoff_and_retry_after() {
        let (c, mut rng) = (config(), Rng::new(1));
        let mut s = Schedule::new(0);
        s.retry(1, 0, 1_000, 5_000, &c, &mut rng);
        assert!(s.due(2_000) && !s.due(1_499), "first backoff: 0.5..1 s");
        s.retry(3, 30_000, 1_000, 5_000, &c, &mut rng);
        assert!(!s.due(30_999) && s.due(31_000), "Retry-After is longer");
        assert_eq!(s.blocked(), (35_000, 30_000));
        assert_eq!(s.deadline(true), Some(31_000));
        assert_eq!(
            s.deadline(false),
            None,
            "nothing queued, nothing to wake for"
        );
    }

    #[test]
    fn a_restored_retry_after_is_never_stretched_by_a_wall_clock_set_back() {
        let (c, mut rng) = (config(), Rng::new(1));
        let mut s = Schedule::new(0);
        // Asked at wall 2 h to wait 60 s; the device restarts with its clock an hour back.
        let until = 7_200_000 + 60_000;
        s.restore((until, 60_000), 0, 0, until - 3_600_000, &c, &mut rng);
        assert!(!s.due(59_999) && s.due(60_000));
        // Restarted after the block ended: no wait, but the front batch's backoff holds.
        s.restore((until, 60_000), 4, 0, until + 1, &c, &mut rng);
        assert!(
            !s.due(3_999) && s.due(8_000),
            "backoff after 4 attempts: 4..8 s"
        );
    }
}
