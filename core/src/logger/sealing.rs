//! The batch being sealed, a step per `handle_timeout`, so no host call does a batch's
//! deflate (milliseconds for a batch of UUID-shaped ids). The close only writes the
//! header and copies the columns the batch keeps encoded; then, each a step of its own:
//! readying the compressor, compressing the next [`SEAL_STEP_BYTES`] of the encoding (its
//! string tables encoded as far as that step reads), each deflate block boundary, the end
//! of the stream, and storing and queueing the batch, then its checkpoint (see below). While a batch is sealing the logger asks to be
//! called back [`SEAL_STEP_MS`] later. A batch whose encoding is at most
//! [`SEAL_IN_CALL_BYTES`] is sealed in the call that closed it.
//!
//! A host whose timer falls behind while it keeps logging (a busy UI thread, or many
//! impressions at once) would let the open batch fill while the last one still seals, and
//! the close would then finish that one in the call. So once the open batch is half full,
//! an input that took no step takes one: a batch takes about one step per 200 B of its
//! encoding, so the closed one is usually sealed before the open one fills (in the bench
//! run without a timer, 152 of 821 such closes remain, batches that fill by bytes).
//!
//! `handle_app_hidden` closes the open batch the same way, a step per call; if a batch is
//! sealing already, the open batch closes as that one is queued. Calls that need the batch
//! now finish it in the call: `flush` (the host asked for it), a second close (the batch
//! filled again while one sealed), a 413 split (it shares the compressor) and a purge
//! (which drops it).
//!
//! Until it is stored, a sealing batch's impressions live in the journal, as the open
//! batch's do, so an app killed meanwhile loses nothing. The checkpoint that clears the
//! journal is taken only when every impression it holds is in a stored batch: if
//! impressions were logged while a batch sealed, its checkpoint waits for a later close
//! (replay skips the seqs of stored batches, and counts the rest once), unless the journal
//! has grown past `JOURNAL_DEFER_BYTES`; then the open batch closes and seals in the call,
//! and the checkpoint follows it.

use super::*;

/// Encoded bytes compressed per step, for a stall budget of 50 us: measured on this
/// project's bench machine with UUID-shaped ids, 256 B steps cost a median 7.6 us (p99 17)
/// against 13-19 us (p99 36-54) for 512 B; a block boundary ([`gzip::BLOCK_BYTES`]) is a
/// step of its own. A full batch of 60 KiB takes about 300 steps.
#[cfg(not(feature = "compact"))]
pub const SEAL_STEP_BYTES: usize = 256;
/// A batch whose encoding is at most this seals in the call that closes it, so a small
/// batch is ready to send at once; the call then also readies the compressor (a median
/// 8 us measured) and compresses one small block.
#[cfg(not(feature = "compact"))]
pub const SEAL_IN_CALL_BYTES: usize = 512;
/// Under `compact` (firmware, wasm) nothing steps: a batch seals in the call that closes
/// it, as the compact encoder is not incremental.
#[cfg(feature = "compact")]
pub const SEAL_STEP_BYTES: usize = usize::MAX;
/// How long the logger lets the host's event loop run between two steps.
pub const SEAL_STEP_MS: u64 = 1;

#[cfg(not(feature = "compact"))]
#[derive(Default)]
pub(super) struct Sealing {
    /// The closed batch: its content stays until it is queued, so an overflow drop that
    /// its arrival causes can be encoded into it again.
    pub(super) batch: OpenBatch,
    active: bool,
    /// The app went to the background while this batch sealed: the open batch closes as
    /// this one is queued.
    close_next: bool,
    /// A checkpoint follows once the batch is queued (not during recovery's replay).
    checkpoint: bool,
    epoch: u32,
    id: u64,
    batch_no: u64,
    /// The counters as the batch closed, plus the overflow drops its arrival caused: what
    /// the batch reports, whatever is logged while it seals.
    stats: Stats,
    /// Monotonic and wall time of the close.
    closed_at: (u64, u64),
    phase: Phase,
    /// How far the string tables are encoded: the steps encode them as they compress.
    tables: crate::batch::Tables,
    body: Vec<u8>,
    /// Logger time of the next step.
    next_step_at: u64,
    /// A step ran in the host's current call.
    stepped: bool,
}

/// Where the sealing batch is; each phase change is a step of its own.
#[cfg(not(feature = "compact"))]
#[derive(Default)]
enum Phase {
    /// Encoded but for (the rest of) its string tables; the compressor is readied next
    /// (which clears some 200 KiB of its tables).
    #[default]
    Encoded,
    Compressing(gzip::Member),
    /// Its gzip member is complete: it is queued next.
    Compressed,
}

#[cfg(not(feature = "compact"))]
impl Sealing {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// When the next step is due, while a batch is sealing.
    pub(super) fn deadline(&self) -> Option<u64> {
        self.active.then_some(self.next_step_at)
    }

    /// True when a step is due at `now`.
    pub(super) fn due(&self, now: u64) -> bool {
        self.active && now >= self.next_step_at
    }

    /// A host call begins: it has taken no step yet.
    pub(super) fn new_call(&mut self) {
        self.stepped = false;
    }
}

#[cfg(not(feature = "compact"))]
impl Logger {
    /// Closes the open batch (if any) under `epoch` and starts sealing it: its steps
    /// follow from the next `handle_timeout`, or it seals now if its encoding is at most
    /// [`SEAL_IN_CALL_BYTES`]. A batch still sealing is finished first.
    pub(super) fn begin_sealing(&mut self, epoch: u32, checkpoint: bool) {
        if self.open.is_empty() {
            return;
        }
        // This close is the one a hidden app waited for, if any.
        self.sealing.close_next = false;
        self.finish_sealing();
        // Finishing the batch before may have closed the open one too.
        if self.open.is_empty() {
            return;
        }
        let s = &mut self.sealing;
        // The sealing batch was cleared when it was queued: the open one takes its
        // capacity, so closing allocates no new tables.
        core::mem::swap(&mut self.open, &mut s.batch);
        s.active = true;
        s.checkpoint = checkpoint;
        s.epoch = epoch;
        s.id = self.next_batch_id;
        s.batch_no = self.next_batch_no;
        s.stats.clone_from(&self.stats);
        s.closed_at = (self.now, self.wall);
        self.next_batch_id += 1;
        self.next_batch_no += 1;
        self.encode_sealing();
        let s = &mut self.sealing;
        let small = s
            .batch
            .encode_tables(&mut s.tables, SEAL_IN_CALL_BYTES, &mut self.encode_buf)
            && self.encode_buf.len() <= SEAL_IN_CALL_BYTES;
        if small {
            self.finish_sealing();
        } else {
            s.next_step_at = self.now.saturating_add(SEAL_STEP_MS);
        }
    }

    /// Closes the open batch doing no more in this call than a step: if a batch is sealing,
    /// the open one closes as that one is queued.
    pub(super) fn close_batch_after_sealing(&mut self) {
        if self.sealing.active {
            self.sealing.close_next = true;
        } else {
            self.begin_sealing(self.starts, true);
        }
    }

    /// Takes a step of the sealing batch if the open batch is half full and this call took
    /// none (see the module doc).
    pub(super) fn catch_up_sealing(&mut self) {
        let max = self.config.max_batch_impressions as usize;
        if self.sealing.active && !self.sealing.stepped && self.open.half_full(max) {
            self.step_sealing(SEAL_STEP_BYTES);
        }
    }

    /// Runs the sealing batch to the end, in this call.
    pub(super) fn finish_sealing(&mut self) {
        while self.sealing.active {
            self.step_sealing(usize::MAX);
        }
    }

    /// Runs the sealing batch's next step (see [`Phase`]): readying the compressor, a
    /// step of its gzip member over the next `budget` bytes (encoding the string tables as
    /// far as that reads), or queueing it. With an unlimited budget, the steps run to the
    /// end.
    pub(super) fn step_sealing(&mut self, budget: usize) {
        loop {
            let s = &mut self.sealing;
            if !s.active {
                return;
            }
            s.stepped = true;
            s.next_step_at = self.now.saturating_add(SEAL_STEP_MS);
            match &mut s.phase {
                Phase::Encoded => {
                    s.phase = Phase::Compressing(self.gzipper.begin(gzip::GZIP_LEVEL, &mut s.body));
                }
                Phase::Compressing(member) => {
                    let upto = member.reads_up_to(budget);
                    s.batch
                        .encode_tables(&mut s.tables, upto, &mut self.encode_buf);
                    if self
                        .gzipper
                        .step(member, &self.encode_buf, budget, &mut s.body)
                    {
                        s.phase = Phase::Compressed;
                    }
                }
                Phase::Compressed => self.complete_sealing(),
            }
            if budget != usize::MAX {
                return;
            }
        }
    }

    /// Drops the sealing batch, counted as purged.
    pub(super) fn purge_sealing(&mut self) {
        let s = &mut self.sealing;
        if s.active {
            let count = s.batch.len() as u64;
            self.stats.dropped.add(DropReason::Purged, count);
            s.batch.clear();
            s.body.clear();
            s.phase = Phase::Encoded;
            s.active = false;
            s.close_next = false;
        }
    }

    /// Encodes the sealing batch's header and columns into the encode buffer (its string
    /// tables follow as the steps need them); its gzip member starts with the next step.
    fn encode_sealing(&mut self) {
        let s = &mut self.sealing;
        let header = batch_header(
            &self.config,
            &self.session_id,
            s.batch_no,
            &s.stats,
            s.closed_at,
        );
        self.encode_buf.clear();
        s.tables = s.batch.encode_head(header, s.epoch, &mut self.encode_buf);
        // Room for a typical batch's compressed size; the body grows if needed.
        s.body = Vec::with_capacity(s.batch.encoded_estimate() / 2);
        s.phase = Phase::Encoded;
    }

    /// Makes room in the queue for the compressed batch and queues it, then checkpoints
    /// when nothing was logged meanwhile (see the module doc). Room is made before
    /// the batch is final, so the batch that causes an overflow drop reports it: when one
    /// is evicted, the batch is encoded and compressed again with the new counters.
    fn complete_sealing(&mut self) {
        let in_flight = self.schedule.in_flight_batch();
        let max = self.config.max_queue_bytes as usize;
        let evicted = self
            .queue
            .make_room(self.sealing.body.len(), max, in_flight);
        if !evicted.is_empty() {
            for old in evicted {
                self.sealing
                    .stats
                    .dropped
                    .add(DropReason::Overflow, u64::from(old.count));
                self.count_overflow(&old);
            }
            self.encode_sealing();
            return;
        }
        let s = &mut self.sealing;
        let body = core::mem::take(&mut s.body);
        let closed = ClosedBatch::new(
            s.id,
            s.batch_no,
            s.batch.first_seq(),
            s.batch.len() as u32,
            body,
        );
        s.batch.clear();
        s.phase = Phase::Encoded;
        s.active = false;
        let (checkpoint, close_next) = (s.checkpoint, core::mem::take(&mut s.close_next));
        self.enqueue_closed(closed);
        if !checkpoint {
            return;
        }
        if self.open.is_empty() {
            self.checkpoint();
        } else if close_next {
            // Its own checkpoint follows, as here.
            self.begin_sealing(self.starts, true);
        } else if self.journal_bytes > JOURNAL_DEFER_BYTES {
            // Nothing is logged within a call: once this seals, the open batch is empty.
            self.begin_sealing(self.starts, true);
            self.finish_sealing();
        }
        // Otherwise what was logged while this batch sealed is only in the journal, which
        // a checkpoint would clear: the checkpoint waits for a later close.
    }
}

/// Under `compact` (firmware, wasm) a batch seals in the call that closes it, by this
/// simpler path: the compact encoder is not incremental, and flash counts.
#[cfg(feature = "compact")]
pub(super) struct Sealing;

#[cfg(feature = "compact")]
impl Sealing {
    pub(super) fn new() -> Self {
        Sealing
    }

    pub(super) fn deadline(&self) -> Option<u64> {
        None
    }

    pub(super) fn due(&self, _now: u64) -> bool {
        false
    }

    pub(super) fn new_call(&mut self) {}
}

#[cfg(feature = "compact")]
impl Logger {
    /// Encodes, compresses, stores and queues the open batch (if any) under `epoch`, then
    /// checkpoints if asked. Room in the queue is made before the counters are written
    /// into the batch, so the batch that causes an overflow drop reports it.
    pub(super) fn begin_sealing(&mut self, epoch: u32, checkpoint: bool) {
        if self.open.is_empty() {
            return;
        }
        let batch_no = self.next_batch_no;
        let mut raw = core::mem::take(&mut self.encode_buf);
        let in_flight = self.schedule.in_flight_batch();
        let max = self.config.max_queue_bytes as usize;
        let body = loop {
            raw.clear();
            let closed_at = (self.now, self.wall);
            let header = batch_header(
                &self.config,
                &self.session_id,
                batch_no,
                &self.stats,
                closed_at,
            );
            self.open.encode_into(header, epoch, &mut raw);
            let body = self.compress(&raw);
            let evicted = self.queue.make_room(body.len(), max, in_flight);
            if evicted.is_empty() {
                break body;
            }
            // The counters changed: encode again, so they are in this batch.
            for old in evicted {
                self.count_overflow(&old);
            }
        };
        let closed = ClosedBatch::new(
            self.next_batch_id,
            batch_no,
            self.open.first_seq(),
            self.open.len() as u32,
            body,
        );
        self.encode_buf = raw;
        self.next_batch_id += 1;
        self.next_batch_no += 1;
        self.open.clear();
        self.enqueue_closed(closed);
        if checkpoint {
            self.checkpoint();
        }
    }

    /// Closes the open batch in the call, as every close is under `compact`.
    pub(super) fn close_batch_after_sealing(&mut self) {
        self.begin_sealing(self.starts, true);
    }

    /// Nothing seals past the call that closed it.
    pub(super) fn finish_sealing(&mut self) {}

    pub(super) fn catch_up_sealing(&mut self) {}

    pub(super) fn step_sealing(&mut self, _budget: usize) {}

    pub(super) fn purge_sealing(&mut self) {}
}

/// The hoisted header of batch `batch_no`: the logger's identity, `stats` and the close
/// time.
fn batch_header(
    c: &Config,
    session_id: &str,
    batch_no: u64,
    stats: &Stats,
    (closed_mono, closed_wall): (u64, u64),
) -> proto::Batch {
    proto::Batch {
        schema_version: wire::SCHEMA_VERSION,
        sdk_name: SDK_NAME.to_string(),
        sdk_version: SDK_VERSION.to_string(),
        app_id: c.app_id.clone(),
        app_version: c.app_version.clone(),
        platform: c.platform.to_proto() as i32,
        device: c.device.clone(),
        install_id: c.install_id.clone(),
        session_id: session_id.to_string(),
        batch_no,
        contract_version: c.contract.version,
        sample_rate_ppm: c.sample_rate_ppm,
        reentry: c.contract.reentry.to_proto(),
        counters: Some(stats.to_proto()),
        clock: Some(proto::BatchClock {
            closed_at_mono_ms: closed_mono,
            closed_at_wall_ms: closed_wall,
            ..Default::default()
        }),
        ..Default::default()
    }
}
