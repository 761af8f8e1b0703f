//! A model collector: decodes uploads with the core's decoder, runs the contract's batch
//! checks, dedups by (session, seq), and remembers what arrived, so simulations can check
//! exact delivery and that a correct client breaks no rule.

use std::collections::BTreeMap;

use sightline_core::contract::Violation;
use sightline_core::wire;
use sightline_core::{Contract, proto};

/// What one session delivered.
#[derive(Clone, Debug, Default)]
pub struct SessionLog {
    /// Distinct seqs received, with a fingerprint of their content.
    pub seqs: BTreeMap<u64, (String, u32, u32, u32)>,
    /// Receipts of a seq already held (retries after a lost acknowledgement).
    pub duplicates: u64,
    /// Receipts of a seq already held with different content: must never happen.
    pub conflicts: u64,
    /// Counters of the batch with the highest last_seq seen.
    pub counters: proto::Counters,
}

/// Everything the collector received.
#[derive(Clone, Debug, Default)]
pub struct Collector {
    pub sessions: BTreeMap<String, SessionLog>,
    pub batches: u64,
    pub bytes: u64,
    pub malformed: u64,
    /// When set, every ingested body is kept (benchmarks re-encode them).
    pub keep_bodies: bool,
    pub bodies: Vec<Vec<u8>>,
    /// The contract arrivals are checked against.
    pub contract: Contract,
    /// What `check_batch` found in arrivals, with the session: empty for a correct client.
    pub violations: Vec<(String, Violation)>,
}

impl Collector {
    /// Ingests one body; returns the HTTP status a real collector would answer.
    pub fn ingest(&mut self, body: &[u8]) -> u16 {
        let Ok(batch) = wire::decode_gzip_batch(body) else {
            self.malformed += 1;
            return 400;
        };
        let Ok(rows) = wire::impressions(&batch) else {
            self.malformed += 1;
            return 400;
        };
        self.batches += 1;
        self.bytes += body.len() as u64;
        for v in self.contract.check_batch(&batch) {
            self.violations.push((batch.session_id.clone(), v));
        }
        if self.keep_bodies {
            self.bodies.push(body.to_vec());
        }
        let log = self.sessions.entry(batch.session_id.clone()).or_default();
        let ids = wire::Ids::of(&batch);
        for r in rows {
            let item = ids.item(&r).to_string();
            let fingerprint = (item, r.row, r.column, r.visible_ms);
            match log.seqs.get(&r.seq) {
                Some(existing) if *existing == fingerprint => log.duplicates += 1,
                Some(_) => log.conflicts += 1,
                None => {
                    log.seqs.insert(r.seq, fingerprint);
                }
            }
        }
        if let Some(c) = batch.counters
            && c.last_seq >= log.counters.last_seq
        {
            log.counters = c;
        }
        200
    }

    /// Distinct impressions received over all sessions.
    pub fn unique(&self) -> u64 {
        self.sessions.values().map(|s| s.seqs.len() as u64).sum()
    }

    /// Duplicate receipts over all sessions.
    pub fn duplicates(&self) -> u64 {
        self.sessions.values().map(|s| s.duplicates).sum()
    }
}
