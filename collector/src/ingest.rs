//! Ingestion of one upload: size and expansion limits, decoding with the core's decoder,
//! validation against the core's contract, dedup by (session, seq), loss reconciliation
//! and clock-skew correction. Produces normalised rows; storing them is the sink's job.

use std::collections::HashMap;

use sightline_core::contract::{Contract, Rule};
use sightline_core::gzip::{self, GzipError};
use sightline_core::proto;
use sightline_core::wire::{self, DecodeError, Ids};

use crate::row::{BadRow, Row};
use crate::session::{Arrival, Reconciliation, SessionState};
use crate::sink::Replay;

/// Compressed bodies above this are refused before any work: the SDK never sends more
/// than 64 KiB (the beacon limit), so 1 MiB leaves room for foreign clients, not for abuse.
pub const MAX_COMPRESSED_BYTES: usize = 1024 * 1024;
/// Decompressed batches above this are refused; the core's own decoder limit.
pub const MAX_DECOMPRESSED_BYTES: usize = wire::MAX_DECODED_BATCH_BYTES;
/// A batch that expands more than this from gzip is a bomb: real batches expand 2-10x.
pub const MAX_EXPANSION_RATIO: usize = 100;
/// Sessions tracked at once; the least recently seen is forgotten beyond this (its late
/// retries then count again, which the sink's (session, seq) key still dedups downstream).
pub const MAX_SESSIONS: usize = 100_000;

/// Why a whole upload is refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 413: body, decompressed size or expansion ratio over the limit.
    TooLarge(String),
    /// 400: not a valid batch.
    Malformed(String),
}

impl Refusal {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::TooLarge(_) => 413,
            Refusal::Malformed(_) => 400,
        }
    }

    /// The human reason.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::TooLarge(r) | Refusal::Malformed(r) => r,
        }
    }
}

/// What one accepted upload produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub good: Vec<Row>,
    pub bad: Vec<BadRow>,
    pub duplicates: u64,
    pub session_id: String,
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub batches: u64,
    pub impressions: u64,
    pub duplicates: u64,
    pub bytes_in: u64,
    pub rejects_by_rule: HashMap<&'static str, u64>,
    pub refused_batches: HashMap<&'static str, u64>,
}

impl Metrics {
    /// Counts one whole upload refused for `reason` (`too_large`, `malformed`).
    pub fn count_refused(&mut self, reason: &'static str) {
        *self.refused_batches.entry(reason).or_default() += 1;
    }
}

/// Decodes, validates and dedups uploads; holds per-session state.
#[derive(Debug)]
pub struct Ingestor {
    contract: Contract,
    sessions: HashMap<String, (SessionState, u64)>,
    tick: u64,
    pub metrics: Metrics,
}

impl Ingestor {
    /// An ingestor validating against `contract`.
    pub fn new(contract: Contract) -> Self {
        Ingestor {
            contract,
            sessions: HashMap::new(),
            tick: 0,
            metrics: Metrics::default(),
        }
    }

    /// Gunzips within the limits and decodes; refuses bombs and malformed input.
    pub fn decode(&mut self, body: &[u8]) -> Result<proto::Batch, Refusal> {
        self.metrics.bytes_in += body.len() as u64;
        let refused = |m: &mut Metrics, kind: &'static str, r: Refusal| {
            m.count_refused(kind);
            Err(r)
        };
        if body.len() > MAX_COMPRESSED_BYTES {
            let r = Refusal::TooLarge(format!("body over {MAX_COMPRESSED_BYTES} bytes"));
            return refused(&mut self.metrics, "too_large", r);
        }
        let limit = MAX_DECOMPRESSED_BYTES.min(body.len().saturating_mul(MAX_EXPANSION_RATIO));
        let raw = match gzip::gunzip(body, limit) {
            Ok(raw) => raw,
            Err(GzipError::TooLarge { .. }) => {
                let r = Refusal::TooLarge(format!(
                    "decompresses beyond {limit} bytes (limit {MAX_DECOMPRESSED_BYTES}, ratio {MAX_EXPANSION_RATIO})"
                ));
                return refused(&mut self.metrics, "too_large", r);
            }
            Err(e) => {
                return refused(
                    &mut self.metrics,
                    "malformed",
                    Refusal::Malformed(format!("gzip: {e}")),
                );
            }
        };
        match wire::decode_batch(&raw) {
            Ok(batch) => Ok(batch),
            Err(e) => {
                let kind = if matches!(e, DecodeError::Gzip(GzipError::TooLarge { .. })) {
                    "too_large"
                } else {
                    "malformed"
                };
                refused(&mut self.metrics, kind, Refusal::Malformed(e.to_string()))
            }
        }
    }

    /// Ingests one upload body received at `received_wall_ms`.
    pub fn ingest(&mut self, body: &[u8], received_wall_ms: u64) -> Result<Outcome, Refusal> {
        let batch = self.decode(body)?;
        Ok(self.accept(&batch, received_wall_ms))
    }

    /// Validates and dedups a decoded batch. Bad events never take good neighbours down.
    pub fn accept(&mut self, batch: &proto::Batch, received_wall_ms: u64) -> Outcome {
        self.metrics.batches += 1;
        // The decoder already checked every index, so this cannot fail here.
        let rows = wire::impressions(batch).unwrap_or_default();
        let ids = Ids::of(batch);
        let mut violations: HashMap<u64, Vec<Rule>> = HashMap::new();
        for v in self.contract.check_batch(batch) {
            match v.seq {
                Some(seq) => violations.entry(seq).or_default().push(v.rule),
                None => {
                    *self
                        .metrics
                        .rejects_by_rule
                        .entry(v.rule.name())
                        .or_default() += 1
                }
            }
        }
        let clock = Clock::of(batch, received_wall_ms);
        let mut metrics = std::mem::take(&mut self.metrics);
        let session = self.session_mut(&batch.session_id);
        session.batches += 1;
        if let Some(c) = &batch.counters {
            session.observe_counters(c);
        }
        let mut out = Outcome {
            session_id: batch.session_id.clone(),
            ..Outcome::default()
        };
        for imp in &rows {
            if session.arrive(imp.seq) == Arrival::Duplicate {
                metrics.duplicates += 1;
                out.duplicates += 1;
                continue;
            }
            let row = Row::new(batch, &ids, imp, &clock, received_wall_ms);
            match violations.remove(&imp.seq) {
                Some(rules) => {
                    session.rejected += 1;
                    for r in &rules {
                        *metrics.rejects_by_rule.entry(r.name()).or_default() += 1;
                    }
                    out.bad.push(BadRow {
                        rules: rules.iter().map(|r| r.name().to_string()).collect(),
                        row,
                    });
                }
                None => {
                    metrics.impressions += 1;
                    out.good.push(row);
                }
            }
        }
        self.metrics = metrics;
        out
    }

    /// Remembers the state [`Ingestor::accept`] of a batch of `session_id` is about to
    /// change. Cheap: one session's state (its window above the high-water mark is empty
    /// while seqs arrive in order) and the counters.
    pub fn checkpoint(&self, session_id: &str) -> Checkpoint {
        Checkpoint {
            session_id: session_id.to_string(),
            session: self.sessions.get(session_id).cloned(),
            metrics: self.metrics.clone(),
        }
    }

    /// Undoes what was accepted since `checkpoint`, when its rows could not be stored: the
    /// upload is not acknowledged, so its retry must count as new rather than duplicate.
    pub fn rollback(&mut self, checkpoint: Checkpoint) {
        match checkpoint.session {
            Some(state) => {
                self.sessions.insert(checkpoint.session_id, state);
            }
            None => {
                self.sessions.remove(&checkpoint.session_id);
            }
        }
        self.metrics = checkpoint.metrics;
    }

    /// Rebuilds dedup and loss state from what an output directory already holds.
    pub fn restore(&mut self, previous: &Replay) {
        for (session, seq, bad) in previous
            .good
            .iter()
            .map(|r| (&r.session_id, r.seq, false))
            .chain(
                previous
                    .bad
                    .iter()
                    .map(|b| (&b.row.session_id, b.row.seq, true)),
            )
        {
            let state = self.session_mut(session);
            if state.arrive(seq) == Arrival::New && bad {
                state.rejected += 1;
            }
        }
        for b in &previous.batches {
            let state = self.session_mut(&b.session_id);
            state.batches += 1;
            state.observe_counters(&b.counters);
        }
    }

    fn session_mut(&mut self, id: &str) -> &mut SessionState {
        self.tick += 1;
        let tick = self.tick;
        if !self.sessions.contains_key(id) && self.sessions.len() >= MAX_SESSIONS {
            self.forget_oldest();
        }
        let entry = self
            .sessions
            .entry(id.to_string())
            .or_insert_with(|| (SessionState::default(), tick));
        entry.1 = tick;
        &mut entry.0
    }

    /// Loss accounting of one session, if known.
    pub fn reconcile(&self, session_id: &str) -> Option<Reconciliation> {
        self.sessions.get(session_id).map(|(s, _)| s.reconcile())
    }

    /// Loss accounting of every known session.
    pub fn sessions(&self) -> impl Iterator<Item = (&str, Reconciliation)> {
        self.sessions
            .iter()
            .map(|(id, (s, _))| (id.as_str(), s.reconcile()))
    }

    /// Forgets every session (micro mode's reset).
    pub fn reset(&mut self) {
        self.sessions.clear();
        self.metrics = Metrics::default();
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .sessions
            .iter()
            .min_by_key(|(_, (_, t))| *t)
            .map(|(k, _)| k.clone())
        {
            self.sessions.remove(&oldest);
        }
    }
}

/// One session's state and the counters before an upload; see [`Ingestor::checkpoint`].
#[derive(Debug)]
pub struct Checkpoint {
    session_id: String,
    session: Option<(SessionState, u64)>,
    metrics: Metrics,
}

/// Clock-skew correction for one batch: maps a client monotonic time to server wall time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Client wall clock minus server wall clock at send, in ms (positive: client ahead).
    pub skew_ms: i64,
    /// When the send info shares the batch's epoch: the send's monotonic time, so event
    /// ages are exact; otherwise event times are corrected by the skew alone.
    send_mono: Option<u64>,
    mono_base: u64,
    received_wall_ms: u64,
}

impl Clock {
    /// The correction for `batch` received at `received_wall_ms`.
    pub fn of(batch: &proto::Batch, received_wall_ms: u64) -> Clock {
        let clock = batch.clock.unwrap_or_default();
        let (skew_ms, send_mono) = match batch.send {
            Some(s) => (
                s.sent_at_wall_ms as i64 - received_wall_ms as i64,
                (s.mono_epoch == clock.mono_epoch && s.sent_at_mono_ms >= clock.mono_base_ms)
                    .then_some(s.sent_at_mono_ms),
            ),
            None => (
                clock.closed_at_wall_ms as i64 - received_wall_ms as i64,
                None,
            ),
        };
        Clock {
            skew_ms,
            send_mono,
            mono_base: clock.mono_base_ms,
            received_wall_ms,
        }
    }

    /// Server wall time of an event the client stamped `client_wall_ms`, which happened at
    /// monotonic offset `mono_offset_ms` from the batch's base.
    pub fn corrected(&self, client_wall_ms: u64, mono_offset_ms: u64) -> u64 {
        match self.send_mono {
            Some(sent) => {
                let age = sent.saturating_sub(self.mono_base + mono_offset_ms);
                self.received_wall_ms.saturating_sub(age)
            }
            None => (client_wall_ms as i64 - self.skew_ms).max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sightline_core::{Config, Impression, Logger, MemoryStore, Now};

    const WALL: u64 = 1_767_225_600_000;

    /// A real upload body of `n` impressions, sent at mono 10 s with the client clock
    /// `skew_ms` ahead of the server's.
    fn body(n: u32, skew_ms: u64) -> Vec<u8> {
        let at = |ms: u64| Now::new(ms, WALL + skew_ms + ms);
        let config = Config {
            app_id: "app".into(),
            app_version: "1".into(),
            ..Config::default()
        };
        let mut logger = Logger::new(config, Box::new(MemoryStore::new()), at(0)).unwrap();
        let pv = logger
            .start_page_view("home", None, None, at(1000))
            .unwrap();
        for i in 0..n {
            let id = format!("title:{i}");
            let imp = Impression {
                item_id: &id,
                artwork_id: None,
                row: 0,
                column: i,
                first_visible_mono_ms: 2000,
                visible_ms: 1000,
                max_visible_fraction: 1.0,
                focused_ms: 0,
            };
            logger.record_impression(pv, &imp, at(5000)).unwrap();
        }
        logger.flush(at(10_000));
        logger.poll_upload(at(10_000)).unwrap().body
    }

    #[test]
    fn event_times_are_corrected_for_a_client_clock_that_runs_ahead() {
        let mut ingestor = Ingestor::new(Contract::default());
        // Received 3 s (server clock) after the 10 s send; the client clock is an hour ahead.
        let received = WALL + 10_000 + 3_000;
        let out = ingestor.ingest(&body(1, 3_600_000), received).unwrap();
        let row = &out.good[0];
        assert_eq!(row.first_visible_client_ms, WALL + 3_600_000 + 2000);
        // Sent 8 s after the event by the monotonic clock: the event was 8 s before receipt.
        assert_eq!(row.first_visible_ms, received - 8000);
    }

    #[test]
    fn retries_of_a_batch_count_once() {
        let mut ingestor = Ingestor::new(Contract::default());
        let b = body(5, 0);
        assert_eq!(ingestor.ingest(&b, WALL).unwrap().good.len(), 5);
        let again = ingestor.ingest(&b, WALL).unwrap();
        assert_eq!((again.good.len(), again.duplicates), (0, 5));
        let r = ingestor.reconcile(&again.session_id).unwrap();
        assert_eq!(
            (r.issued, r.delivered, r.duplicates, r.missing),
            (5, 5, 5, 0)
        );
    }

    #[test]
    fn a_bad_event_is_rejected_alone() {
        let mut ingestor = Ingestor::new(Contract::default());
        let mut batch = wire::decode_gzip_batch(&body(4, 0)).unwrap();
        batch.impressions.as_mut().unwrap().visible_ms = vec![1000, 10, 1000, 1000];
        let out = ingestor.accept(&batch, WALL);
        assert_eq!(
            out.good.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 3, 4]
        );
        assert_eq!(out.bad.len(), 1);
        assert_eq!(
            (out.bad[0].row.seq, out.bad[0].rules.clone()),
            (2, vec!["too_short".to_string()])
        );
        assert_eq!(ingestor.metrics.rejects_by_rule["too_short"], 1);
    }

    #[test]
    fn a_gzip_bomb_is_refused_as_too_large_without_inflating_it() {
        let mut ingestor = Ingestor::new(Contract::default());
        let bomb = gzip::gzip(&vec![0u8; 16 * MAX_DECOMPRESSED_BYTES]);
        let refusal = ingestor.ingest(&bomb, WALL).unwrap_err();
        assert_eq!(refusal.status(), 413, "{refusal:?}");
        assert_eq!(ingestor.metrics.refused_batches["too_large"], 1);
    }

    #[test]
    fn an_expansion_beyond_the_ratio_is_refused_even_below_the_size_limit() {
        let mut ingestor = Ingestor::new(Contract::default());
        let compressible = gzip::gzip(&vec![b'a'; MAX_DECOMPRESSED_BYTES / 2]);
        assert!(compressible.len() * MAX_EXPANSION_RATIO < MAX_DECOMPRESSED_BYTES / 2);
        assert_eq!(
            ingestor.ingest(&compressible, WALL).unwrap_err().status(),
            413
        );
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let mut ingestor = Ingestor::new(Contract::default());
        let good = body(3, 0);
        for bad in [
            &b"junk"[..],
            &good[..good.len() / 2],
            &gzip::gzip(b"\x08\x96\x01\xff")[..],
        ] {
            let refusal = ingestor.ingest(bad, WALL).unwrap_err();
            assert_eq!(refusal.status(), 400);
            assert!(!refusal.reason().is_empty());
        }
        let raw = wire::decode_gzip_batch(&good).unwrap().encode_to_vec();
        assert_eq!(
            ingestor.ingest(&raw, WALL).unwrap_err().status(),
            400,
            "not gzip"
        );
    }

    #[test]
    fn state_rebuilt_from_output_recognises_old_seqs_as_duplicates() {
        let mut first = Ingestor::new(Contract::default());
        let b = body(3, 0);
        let out = first.ingest(&b, WALL).unwrap();
        let previous = Replay {
            good: out.good.clone(),
            ..Replay::default()
        };
        let mut restarted = Ingestor::new(Contract::default());
        restarted.restore(&previous);
        let again = restarted.ingest(&b, WALL).unwrap();
        assert_eq!((again.good.len(), again.duplicates), (0, 3));
    }
}
