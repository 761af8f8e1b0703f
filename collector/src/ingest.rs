//! Ingestion of one upload: size and expansion limits, decoding with the core's decoder,
//! validation against the core's contract, dedup by (session, seq), loss reconciliation
//! and clock-skew correction. Produces normalised rows; storing them is the sink's job.

use std::collections::{BTreeMap, HashMap};

use sightline_core::contract::{Contract, Rule, valid_id};
use sightline_core::gzip::GzipError;
use sightline_core::proto;
use sightline_core::wire::{self, DecodeError, DecodedImpression};

use crate::row::{self, BadRow, DigestState, ROW_FIXED_BYTES, Row, Template};
use crate::session::{Arrival, Reconciliation, SEQ_CONFLICT, SessionState};
use crate::sink::{BatchRecord, Stored};

/// Compressed bodies above this are refused before any work: the SDK never sends more
/// than 64 KiB (the beacon limit), so 1 MiB leaves room for foreign clients, not for abuse.
pub const MAX_COMPRESSED_BYTES: usize = 1024 * 1024;
/// Decompressed batches above this are refused; the core's own decoder limit.
pub const MAX_DECOMPRESSED_BYTES: usize = wire::MAX_DECODED_BATCH_BYTES;
/// A batch that expands more than this from gzip is a bomb: real batches expand 2-10x.
pub const MAX_EXPANSION_RATIO: usize = 100;
/// Sessions tracked at once; the least recently seen is forgotten beyond this. Nothing
/// dedups further downstream: a retry of a forgotten session is written again, so this is
/// sized well above the sessions that upload within a retry horizon.
pub const MAX_SESSIONS: usize = 100_000;
/// Seqs remembered above high-water marks across all sessions (about 40 MB with their
/// digests): beyond this
/// the least recently seen sessions are forgotten, as for [`MAX_SESSIONS`]. Each session
/// holds at most [`crate::session::DEDUP_WINDOW`], so this allows 32 full windows at once.
pub const MAX_HELD_SEQS: usize = 32 * crate::session::DEDUP_WINDOW;
/// Content digests kept below high-water marks across all sessions (32 MB at 8 bytes):
/// beyond this the least recently seen sessions lose theirs (they keep deduping; only a
/// conflict on those old seqs goes unnoticed), so conflict detection never costs dedup.
pub const MAX_RECENT_DIGESTS: usize = 4 * 1024 * 1024;
/// Impressions one upload may carry: the SDK closes a batch at
/// [`sightline_core::batch::MAX_BATCH_IMPRESSIONS`], so more comes from a crafted client,
/// and the work of an upload (checks, rows, dedup) grows with its impressions.
pub const MAX_UPLOAD_IMPRESSIONS: usize = sightline_core::batch::MAX_BATCH_IMPRESSIONS;
/// Row bytes one upload may produce (by the estimate of [`Decoder::admit`]): the SDK's
/// largest batch (8,192 impressions) with every id at the 255-byte maximum estimates at
/// about 28 MB, so 32 MiB bounds each ingest's output without refusing a real batch.
pub const MAX_UPLOAD_ROW_BYTES: usize = 32 * 1024 * 1024;
/// Output an upload may produce, as a multiple of its decompressed size. Rows repeat the
/// batch's header and strings per impression: a real batch's rows come to about 40x its
/// protobuf, and the estimate (which takes the widest numbers and longest strings) to
/// about 100x (the tests check a real batch 2.5x denser would still pass), so 256x passes
/// real batches with room to spare
/// while a crafted one (about 1 byte per impression) cannot turn a 2 KB body into hundreds
/// of megabytes of rows.
pub const MAX_OUTPUT_RATIO: usize = 256;

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
    /// Impressions whose (session, seq) had arrived with other content (in `bad`).
    pub conflicts: u64,
    pub session_id: String,
    /// The contract flagged the batch's counters: they were not used for reconciliation.
    pub counters_inconsistent: bool,
}

impl Outcome {
    /// The record of this upload the sink logs next to its rows.
    pub fn record(&self, batch: &proto::Batch, received_ms: u64) -> BatchRecord {
        BatchRecord {
            session_id: self.session_id.clone(),
            batch_no: batch.batch_no,
            received_ms,
            counters: batch.counters.unwrap_or_default(),
            duplicates: self.duplicates,
            counters_inconsistent: self.counters_inconsistent,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub batches: u64,
    pub impressions: u64,
    pub duplicates: u64,
    /// Impressions whose (session, seq) had arrived before with other content.
    pub conflicts: u64,
    pub bytes_in: u64,
    pub rejects_by_rule: HashMap<&'static str, u64>,
    pub refused_batches: HashMap<&'static str, u64>,
}

impl Metrics {
    /// Counts one whole upload refused for `reason` (`too_large`, `malformed`).
    pub fn count_refused(&mut self, reason: &'static str) {
        *self.refused_batches.entry(reason).or_default() += 1;
    }

    /// Counts an upload of `body_len` bytes and, if refused, its reason.
    pub fn count_decoded(
        &mut self,
        body_len: usize,
        decoded: Result<Decoded, Refused>,
    ) -> Result<Decoded, Refusal> {
        self.bytes_in += body_len as u64;
        decoded.map_err(|(kind, refusal)| {
            self.count_refused(kind);
            refusal
        })
    }
}

/// One tracked session and when it was last used.
#[derive(Clone, Debug, Default)]
struct Tracked {
    state: SessionState,
    tick: u64,
}

/// Decodes, validates and dedups uploads; holds per-session state.
#[derive(Debug)]
pub struct Ingestor {
    decoder: Decoder,
    sessions: HashMap<String, Tracked>,
    /// Sessions by last use (ticks are unique): the least recent is first, found in
    /// O(log n) when one must be forgotten.
    by_use: BTreeMap<u64, String>,
    /// Sum of [`SessionState::held`] over `sessions`.
    held: usize,
    /// Sum of [`SessionState::recent_digests`] over `sessions`.
    digests: usize,
    /// Sessions that keep digests below their mark, by last use: the least recent lose
    /// theirs first when over [`MAX_RECENT_DIGESTS`].
    digests_by_use: BTreeMap<u64, String>,
    tick: u64,
    pub metrics: Metrics,
}

impl Ingestor {
    /// An ingestor validating against `contract`.
    pub fn new(contract: Contract) -> Self {
        Ingestor {
            decoder: Decoder::new(contract),
            sessions: HashMap::new(),
            by_use: BTreeMap::new(),
            held: 0,
            digests: 0,
            digests_by_use: BTreeMap::new(),
            tick: 0,
            metrics: Metrics::default(),
        }
    }

    /// The stateless half of ingest, to decode uploads outside the ingestor (on any
    /// thread, in parallel); count each result with [`Metrics::count_decoded`].
    pub fn decoder(&self) -> Decoder {
        self.decoder.clone()
    }

    /// Gunzips within the limits and decodes, counting the upload; refuses bombs and
    /// malformed input.
    pub fn decode(&mut self, body: &[u8]) -> Result<Decoded, Refusal> {
        let decoded = self.decoder.decode(body);
        self.metrics.count_decoded(body.len(), decoded)
    }

    /// See [`Decoder::admit`].
    pub fn admit(&self, batch: &proto::Batch, decoded_len: usize) -> Result<(), Refusal> {
        self.decoder.admit(batch, decoded_len)
    }

    /// Ingests one upload body received at `received_wall_ms`.
    pub fn ingest(&mut self, body: &[u8], received_wall_ms: u64) -> Result<Outcome, Refusal> {
        let decoded = self.decode(body)?;
        Ok(self.accept_decoded(&decoded, received_wall_ms))
    }

    /// Validates and dedups a decoded batch. Bad events never take good neighbours down.
    /// Counters the contract flags as inconsistent are recorded but not reconciled.
    pub fn accept(&mut self, batch: &proto::Batch, received_wall_ms: u64) -> Outcome {
        // A batch the decoder admitted has valid indices, so this cannot fail for it.
        let rows = wire::impressions(batch).unwrap_or_default();
        self.accept_resolved(batch, &rows, received_wall_ms)
    }

    /// [`Ingestor::accept`] of an upload the decoder admitted, with the impressions it
    /// resolved.
    pub fn accept_decoded(&mut self, decoded: &Decoded, received_wall_ms: u64) -> Outcome {
        self.accept_resolved(&decoded.batch, &decoded.impressions, received_wall_ms)
    }

    /// [`Ingestor::accept`] given `rows`, the impressions of `batch` resolved.
    fn accept_resolved(
        &mut self,
        batch: &proto::Batch,
        rows: &[DecodedImpression],
        received_wall_ms: u64,
    ) -> Outcome {
        self.metrics.batches += 1;
        let template = Template::of(batch);
        let mut violations: HashMap<u64, Vec<Rule>> = HashMap::new();
        let mut counters_inconsistent = false;
        for v in self.decoder.contract.check_decoded(batch, rows, &template) {
            match v.seq {
                Some(seq) => violations.entry(seq).or_default().push(v.rule),
                None => {
                    counters_inconsistent |= v.rule == Rule::CountersInconsistent;
                    *self
                        .metrics
                        .rejects_by_rule
                        .entry(v.rule.name())
                        .or_default() += 1
                }
            }
        }
        let clock = Clock::of(batch, received_wall_ms);
        let (key, mut tracked) = self.take_session(&batch.session_id);
        let session = &mut tracked.state;
        let metrics = &mut self.metrics;
        session.batches += 1;
        if let Some(c) = batch.counters.as_ref().filter(|_| !counters_inconsistent) {
            session.observe_counters(c);
        }
        let mut out = Outcome {
            session_id: batch.session_id.clone(),
            counters_inconsistent,
            ..Outcome::default()
        };
        // Every row and its digest first, the digests side by side (`row::digests`), then
        // dedup and the rules in batch order.
        // Collected from an iterator of known length: one capacity check for all the rows
        // rather than one per `push` (each row is still built on the stack and copied in).
        let built: Vec<Row> = rows
            .iter()
            .map(|imp| Row::from_template(&template, batch, imp, &clock, received_wall_ms))
            .collect();
        // The digest of the fields rows of one page view share, hashed once per page view.
        let mut prefixes: Vec<Option<DigestState>> = vec![None; batch.page_views.len()];
        let row_prefixes: Vec<DigestState> = rows
            .iter()
            .zip(&built)
            .map(|(imp, row)| match prefixes.get_mut(imp.page_view) {
                Some(slot) => *slot.get_or_insert_with(|| row.digest_prefix()),
                None => row.digest_prefix(),
            })
            .collect();
        let digests = row::digests(&built, &row_prefixes);
        // The rows that are not simply good, by position: nearly always none, and then the
        // rows built are the good ones as they are, without moving each.
        let mut fates: Vec<(usize, Fate)> = Vec::new();
        for (i, (imp, &digest)) in rows.iter().zip(&digests).enumerate() {
            let arrival = session.arrive(imp.seq, digest);
            match arrival {
                Arrival::New | Arrival::OutOfRange => {}
                Arrival::Duplicate => {
                    metrics.duplicates += 1;
                    out.duplicates += 1;
                    fates.push((i, Fate::Duplicate));
                    continue;
                }
                Arrival::Conflict => {
                    // Another device or boot uses this session id: real data, never
                    // absorbed as a retry.
                    metrics.conflicts += 1;
                    out.conflicts += 1;
                    fates.push((i, Fate::Bad(vec![SEQ_CONFLICT.to_string()])));
                    continue;
                }
            }
            // Most batches break no rule: no lookup per row then.
            let broken = match violations.is_empty() {
                true => None,
                false => violations.remove(&imp.seq),
            };
            match (arrival, broken) {
                (Arrival::New, None) => metrics.impressions += 1,
                (arrival, rules) => {
                    // A seq out of range breaks `SeqOutOfRange`: the session and the
                    // contract share its bounds. It identifies no impression, so it is
                    // not counted as delivered.
                    let rules = rules.unwrap_or_else(|| vec![Rule::SeqOutOfRange]);
                    if arrival == Arrival::New {
                        session.rejected += 1;
                    }
                    for r in &rules {
                        *metrics.rejects_by_rule.entry(r.name()).or_default() += 1;
                    }
                    let names = rules.iter().map(|r| r.name().to_string()).collect();
                    fates.push((i, Fate::Bad(names)));
                }
            }
        }
        if fates.is_empty() {
            out.good = built;
        } else {
            out.good.reserve(built.len() - fates.len());
            let mut fates = fates.into_iter().peekable();
            for (i, row) in built.into_iter().enumerate() {
                match fates.next_if(|(at, _)| *at == i) {
                    None => out.good.push(row),
                    Some((_, Fate::Duplicate)) => {}
                    Some((_, Fate::Bad(rules))) => out.bad.push(BadRow { rules, row }),
                }
            }
        }
        self.put_session(key, tracked);
        out
    }

    /// Remembers the state [`Ingestor::accept`] of a batch of `session_id` is about to
    /// change: one session's state (its window above the high-water mark is empty while
    /// seqs arrive in order; its digests below the mark are at most
    /// [`crate::session::RECENT_DIGESTS`] words) and the counters.
    pub fn checkpoint(&self, session_id: &str) -> Checkpoint {
        Checkpoint {
            session_id: session_id.to_string(),
            session: self.sessions.get(session_id).map(|t| t.state.clone()),
            metrics: self.metrics.clone(),
        }
    }

    /// Undoes what was accepted since `checkpoint`, when its rows could not be stored: the
    /// upload is not acknowledged, so its retry must count as new rather than duplicate.
    pub fn rollback(&mut self, checkpoint: Checkpoint) {
        let (key, _) = self.take_session(&checkpoint.session_id);
        if let Some(state) = checkpoint.session {
            self.put_session(key, Tracked { state, tick: 0 });
        }
        self.metrics = checkpoint.metrics;
    }

    /// Rebuilds dedup and loss state from one item an output directory holds; feed it
    /// what [`crate::sink::replay`] streams, rows in arrival order. Batch records add back
    /// their duplicates and, unless flagged inconsistent, their counters.
    pub fn restore(&mut self, item: &Stored) {
        let id = match item {
            Stored::Row(r) => &r.session_id,
            Stored::Batch(b) => &b.session_id,
        };
        let (key, mut tracked) = self.take_session(id);
        let state = &mut tracked.state;
        match item {
            Stored::Row(r) if r.conflict => state.conflicts += 1,
            Stored::Row(r) => {
                if state.arrive(r.seq, r.digest) == Arrival::New && r.bad {
                    state.rejected += 1;
                }
            }
            Stored::Batch(b) => {
                state.batches += 1;
                state.duplicates = state.duplicates.saturating_add(b.duplicates);
                if !b.counters_inconsistent {
                    state.observe_counters(&b.counters);
                }
            }
        }
        self.put_session(key, tracked);
    }

    /// Takes a session's state out of the table (a fresh one if unknown) to work on it
    /// while the metrics stay borrowable; [`Ingestor::put_session`] puts it back.
    fn take_session(&mut self, id: &str) -> (String, Tracked) {
        match self.sessions.remove_entry(id) {
            Some((key, tracked)) => {
                self.by_use.remove(&tracked.tick);
                self.digests_by_use.remove(&tracked.tick);
                self.held -= tracked.state.held();
                self.digests -= tracked.state.recent_digests();
                (key, tracked)
            }
            None => (id.to_string(), Tracked::default()),
        }
    }

    /// Puts a session back as the most recently used, then forgets the least recently used
    /// sessions while over [`MAX_SESSIONS`] or [`MAX_HELD_SEQS`].
    fn put_session(&mut self, key: String, mut tracked: Tracked) {
        self.tick += 1;
        tracked.tick = self.tick;
        self.held += tracked.state.held();
        self.digests += tracked.state.recent_digests();
        self.by_use.insert(self.tick, key.clone());
        if tracked.state.recent_digests() > 0 {
            self.digests_by_use.insert(self.tick, key.clone());
        }
        self.sessions.insert(key, tracked);
        while self.sessions.len() > MAX_SESSIONS || self.held > MAX_HELD_SEQS {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(gone) = self.sessions.remove(&oldest) {
                self.held -= gone.state.held();
                self.digests -= gone.state.recent_digests();
                self.digests_by_use.remove(&gone.tick);
            }
        }
        while self.digests > MAX_RECENT_DIGESTS {
            let Some((_, oldest)) = self.digests_by_use.pop_first() else {
                break;
            };
            if let Some(t) = self.sessions.get_mut(&oldest) {
                self.digests -= t.state.recent_digests();
                t.state.forget_recent_digests();
            }
        }
    }

    /// Every session's state, least recently used first: what a snapshot keeps, in the
    /// order [`Ingestor::import`] rebuilds the same eviction order from.
    pub fn sessions_by_use(&self) -> impl Iterator<Item = (&str, &SessionState)> {
        self.by_use.values().filter_map(|id| {
            self.sessions
                .get_key_value(id.as_str())
                .map(|(id, t)| (id.as_str(), &t.state))
        })
    }

    /// Takes a session's state back from a snapshot as the most recently used (replacing
    /// any it had), within the same memory bounds as sessions that arrive.
    pub fn import(&mut self, session_id: String, state: SessionState) {
        self.take_session(&session_id);
        self.put_session(session_id, Tracked { state, tick: 0 });
    }

    /// Loss accounting of one session, if known.
    pub fn reconcile(&self, session_id: &str) -> Option<Reconciliation> {
        self.sessions.get(session_id).map(|t| t.state.reconcile())
    }

    /// What each tracked session remembers for dedup: its seqs held above the high-water
    /// mark and its content digests below it.
    pub fn session_entries(&self) -> impl Iterator<Item = usize> {
        self.sessions
            .values()
            .map(|t| t.state.held() + t.state.recent_digests())
    }

    /// Loss accounting of every known session.
    pub fn sessions(&self) -> impl Iterator<Item = (&str, Reconciliation)> {
        self.sessions
            .iter()
            .map(|(id, t)| (id.as_str(), t.state.reconcile()))
    }

    /// Forgets every session (micro mode's reset).
    pub fn reset(&mut self) {
        self.sessions.clear();
        self.by_use.clear();
        self.held = 0;
        self.digests_by_use.clear();
        self.digests = 0;
        self.metrics = Metrics::default();
    }
}

/// What becomes of a row of [`Ingestor::accept`] that is not simply good.
enum Fate {
    /// A retry of a seq already stored with the same content: dropped.
    Duplicate,
    /// Stored as bad, with the names of the rules it broke.
    Bad(Vec<String>),
}

/// Decoding of one upload within the limits: no state, so it runs outside the ingestor's
/// lock, on as many threads as there are uploads in flight.
#[derive(Debug, Clone)]
pub struct Decoder {
    contract: Contract,
}

/// A refused upload and the reason it is counted under (`too_large`, `malformed`).
pub type Refused = (&'static str, Refusal);

/// An upload the decoder admitted: the batch and its impressions, which the decoder
/// resolves to check their indices and [`Ingestor::accept_decoded`] takes from here.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub batch: proto::Batch,
    pub impressions: Vec<DecodedImpression>,
}

impl Decoder {
    /// A decoder checking header ids against `contract`'s id rules.
    pub fn new(contract: Contract) -> Self {
        Decoder { contract }
    }

    /// Gunzips within the limits and decodes; refuses bombs and malformed input.
    pub fn decode(&self, body: &[u8]) -> Result<Decoded, Refused> {
        self.decode_raw(&self.inflate(body)?)
    }

    /// The first half of [`Decoder::decode`]: gunzips within the limits, refusing bombs
    /// and broken gzip.
    pub fn inflate(&self, body: &[u8]) -> Result<Vec<u8>, Refused> {
        if body.len() > MAX_COMPRESSED_BYTES {
            let r = Refusal::TooLarge(format!("body over {MAX_COMPRESSED_BYTES} bytes"));
            return Err(("too_large", r));
        }
        let limit = MAX_DECOMPRESSED_BYTES.min(body.len().saturating_mul(MAX_EXPANSION_RATIO));
        match gunzip(body, limit) {
            Ok(raw) => Ok(raw),
            Err(Gunzip::TooLarge) => {
                let r = Refusal::TooLarge(format!(
                    "decompresses beyond {limit} bytes (limit {MAX_DECOMPRESSED_BYTES}, ratio {MAX_EXPANSION_RATIO})"
                ));
                Err(("too_large", r))
            }
            Err(Gunzip::Malformed(e)) => {
                Err(("malformed", Refusal::Malformed(format!("gzip: {e}"))))
            }
        }
    }

    /// The second half of [`Decoder::decode`]: decodes a gunzipped batch and admits it.
    pub fn decode_raw(&self, raw: &[u8]) -> Result<Decoded, Refused> {
        match wire::decode_resolved(raw) {
            Ok((batch, impressions)) => match self.admit(&batch, raw.len()) {
                Ok(()) => Ok(Decoded { batch, impressions }),
                Err(r) if r.status() == 413 => Err(("too_large", r)),
                Err(r) => Err(("malformed", r)),
            },
            Err(e) => {
                let kind = if matches!(e, DecodeError::Gzip(GzipError::TooLarge { .. })) {
                    "too_large"
                } else {
                    "malformed"
                };
                Err((kind, Refusal::Malformed(e.to_string())))
            }
        }
    }

    /// Refuses a decoded batch whose header ids are not well-formed ids (400), or whose
    /// work is over the per-upload budget (413): more than [`MAX_UPLOAD_IMPRESSIONS`]
    /// impressions, or rows over [`MAX_UPLOAD_ROW_BYTES`] or [`MAX_OUTPUT_RATIO`] times its
    /// `decoded_len` bytes. Every row
    /// repeats the header and its page view's and item's strings, so the estimate is the
    /// impression count times the longest of each: cheap, and below the real size only by
    /// bad rows' rule lists and JSON escapes (at most 6x on the strings): a constant factor.
    pub fn admit(&self, batch: &proto::Batch, decoded_len: usize) -> Result<(), Refusal> {
        let max = self.contract.max_id_len;
        if !valid_id(&batch.session_id, max) {
            return Err(Refusal::Malformed(
                "session_id is empty or not a well-formed id".into(),
            ));
        }
        let header = [
            ("app_id", &batch.app_id),
            ("app_version", &batch.app_version),
            ("device", &batch.device),
            ("install_id", &batch.install_id),
            ("sdk_name", &batch.sdk_name),
            ("sdk_version", &batch.sdk_version),
        ];
        if let Some((field, _)) = header
            .iter()
            .find(|(_, v)| !v.is_empty() && !valid_id(v, max))
        {
            return Err(Refusal::Malformed(format!(
                "{field} is not a well-formed id"
            )));
        }
        let count = batch.impressions.as_ref().map_or(0, |i| i.count as usize);
        let text = |i: u32| wire::string(batch, i).map_or(0, str::len);
        let page_view = batch
            .page_views
            .iter()
            .map(|pv| text(pv.page) + pv.request_id.checked_sub(1).map_or(0, text))
            .max()
            .unwrap_or(0);
        let longest = |prefix: &str, ids: &[String]| {
            prefix.len() + ids.iter().map(String::len).max().unwrap_or(0)
        };
        let per_row = ROW_FIXED_BYTES
            + batch.session_id.len()
            + header.iter().map(|(_, v)| v.len()).sum::<usize>()
            + page_view
            + longest(&batch.item_prefix, &batch.item_ids)
            + longest(&batch.artwork_prefix, &batch.artwork_ids);
        let estimate = count.saturating_mul(per_row);
        if count > MAX_UPLOAD_IMPRESSIONS || estimate > MAX_UPLOAD_ROW_BYTES {
            return Err(Refusal::TooLarge(format!(
                "{count} impressions (at most {MAX_UPLOAD_IMPRESSIONS}) whose rows would take about {estimate} bytes (at most {MAX_UPLOAD_ROW_BYTES})"
            )));
        }
        let budget = decoded_len.saturating_mul(MAX_OUTPUT_RATIO);
        if estimate > budget {
            return Err(Refusal::TooLarge(format!(
                "rows would take about {estimate} bytes, over {MAX_OUTPUT_RATIO}x the {decoded_len} byte batch"
            )));
        }
        Ok(())
    }
}

/// Why a body does not gunzip.
#[derive(Debug)]
enum Gunzip {
    TooLarge,
    Malformed(String),
}

/// Room reserved for a body's decompressed bytes, as a multiple of its size: a batch's
/// protobuf compresses 2-3x, so one reservation usually holds it.
const INFLATE_GUESS_RATIO: usize = 4;

/// Gunzips every member of `body` into at most `limit` bytes. zlib-rs (through flate2)
/// inflates several times faster than the core's miniz_oxide, which firmware needs and the
/// collector does not; the framing rules are the same: header flags and CRC, each
/// trailer's CRC-32 and length, and nothing but whole members.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Gunzip> {
    use std::io::Read;
    if body.is_empty() {
        return Err(Gunzip::Malformed(GzipError::Truncated.to_string()));
    }
    let capacity = body.len().saturating_mul(INFLATE_GUESS_RATIO).min(limit);
    let mut raw = Vec::with_capacity(capacity);
    let decoder = flate2::bufread::MultiGzDecoder::new(body);
    // One byte past the limit tells a body at the limit from one beyond it.
    let cap = u64::try_from(limit).map_or(u64::MAX, |l| l.saturating_add(1));
    decoder
        .take(cap)
        .read_to_end(&mut raw)
        .map_err(|e| Gunzip::Malformed(e.to_string()))?;
    if raw.len() > limit {
        return Err(Gunzip::TooLarge);
    }
    Ok(raw)
}

/// One session's state and the counters before an upload; see [`Ingestor::checkpoint`].
#[derive(Debug)]
pub struct Checkpoint {
    session_id: String,
    session: Option<SessionState>,
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
    /// The correction for `batch` received at `received_wall_ms`. Without send info the
    /// batch's close time stands in; with neither, times are taken as they are (skew 0).
    pub fn of(batch: &proto::Batch, received_wall_ms: u64) -> Clock {
        let clock = batch.clock.unwrap_or_default();
        // Wire times are arbitrary u64s: differences are taken wide, then clamped.
        let skew = |client_wall_ms: u64| {
            (i128::from(client_wall_ms) - i128::from(received_wall_ms))
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        };
        let (skew_ms, send_mono) = match batch.send {
            Some(s) => (
                skew(s.sent_at_wall_ms),
                (s.mono_epoch == clock.mono_epoch && s.sent_at_mono_ms >= clock.mono_base_ms)
                    .then_some(s.sent_at_mono_ms),
            ),
            None if clock.closed_at_wall_ms > 0 => (skew(clock.closed_at_wall_ms), None),
            None => (0, None),
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
                let age = sent.saturating_sub(self.mono_base.saturating_add(mono_offset_ms));
                self.received_wall_ms.saturating_sub(age)
            }
            None => (i128::from(client_wall_ms) - i128::from(self.skew_ms))
                .clamp(0, i128::from(u64::MAX)) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sightline_core::gzip;
    use sightline_core::wire::Ids;
    use sightline_core::{Config, Impression, Logger, MemoryStore, Now, Reentry};

    const WALL: u64 = 1_767_225_600_000;

    /// A real upload body of `n` impressions, sent at mono 10 s with the client clock
    /// `skew_ms` ahead of the server's.
    fn body(n: u32, skew_ms: u64) -> Vec<u8> {
        let at = |ms: u64| Now::new(ms, WALL + skew_ms + ms);
        let config = Config {
            app_id: "app".into(),
            app_version: "1".into(),
            seed: 1,
            ..Config::default()
        };
        let mut logger = Logger::start(config, &mut MemoryStore::new(), at(0)).unwrap();
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
        logger.perform_store_ops(&mut MemoryStore::new());
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

    /// A real batch of two impressions turned into two exposures of the same item at the
    /// same place, the second starting `gap_ms` after the first (each visible 1000 ms),
    /// stating `reentry`.
    fn seen_twice(gap_ms: i64, reentry: Reentry) -> proto::Batch {
        let mut batch = wire::decode_gzip_batch(&body(2, 0)).unwrap();
        batch.item_ids.truncate(1);
        batch.reentry = reentry.to_proto();
        let cols = batch.impressions.as_mut().unwrap();
        cols.item = vec![0, 1];
        cols.column = vec![0, 0];
        let first = cols.first_visible_delta_ms[0];
        cols.first_visible_delta_ms = vec![first, gap_ms];
        assert_eq!(wire::impressions(&batch).unwrap()[1].visible_ms, 1000);
        batch
    }

    #[test]
    fn an_after_leaving_batch_that_shows_an_item_again_after_it_left_is_all_good() {
        let mut ingestor = Ingestor::new(Contract::default());
        let out = ingestor.accept(&seen_twice(1000, Reentry::AfterLeaving), WALL);
        assert_eq!((out.good.len(), out.bad.len()), (2, 0), "{:?}", out.bad);
        assert!(
            out.good
                .iter()
                .all(|r| r.reentry == Some(Reentry::AfterLeaving))
        );
        assert!(ingestor.metrics.rejects_by_rule.is_empty());
    }

    #[test]
    fn overlapping_exposures_or_a_once_per_page_view_batch_still_flag_the_repeat() {
        for (batch, what) in [
            (seen_twice(500, Reentry::AfterLeaving), "overlapping"),
            (
                seen_twice(1000, Reentry::OncePerPageView),
                "once per page view",
            ),
        ] {
            let mut ingestor = Ingestor::new(Contract::default());
            let out = ingestor.accept(&batch, WALL);
            assert_eq!(out.good.len(), 1, "{what}");
            assert_eq!(
                (out.bad[0].row.seq, out.bad[0].rules.clone()),
                (2, vec!["duplicate_exposure".to_string()]),
                "{what}"
            );
        }
    }

    /// `batch` with only the impressions `keep` (by position), re-encoded as the logger's
    /// split would: a new batch number, fresh id tables (other indices), send info of a
    /// later attempt.
    fn reencoded(batch: &proto::Batch, keep: std::ops::Range<usize>) -> proto::Batch {
        let ids = Ids::of(batch);
        let rows = &wire::impressions(batch).unwrap()[keep];
        let mut out = batch.clone();
        out.batch_no += 100;
        out.item_prefix.clear();
        out.item_ids = rows.iter().map(|i| ids.item(i).to_string()).collect();
        out.artwork_prefix.clear();
        out.artwork_ids = rows
            .iter()
            .filter_map(|i| ids.artwork(i).map(str::to_string))
            .collect();
        let mut previous_page_view = 0i64;
        let mut previous_first = 0i64;
        out.impressions = Some(proto::Impressions {
            first_seq: rows[0].seq,
            count: rows.len() as u32,
            seq_gap: rows
                .windows(2)
                .map(|w| w[1].seq - w[0].seq - 1)
                .fold(vec![0], |mut v, g| {
                    v.push(g);
                    v
                }),
            page_view_delta: rows
                .iter()
                .map(|i| {
                    let d = i.page_view as i64 - previous_page_view;
                    previous_page_view = i.page_view as i64;
                    d as i32
                })
                .collect(),
            item: vec![0; rows.len()],
            artwork: rows
                .iter()
                .map(|i| u32::from(i.artwork.is_some()))
                .collect(),
            row: rows.iter().map(|i| i.row).collect(),
            column: rows.iter().map(|i| i.column).collect(),
            first_visible_delta_ms: rows
                .iter()
                .map(|i| {
                    let d = i.first_visible_ms - previous_first;
                    previous_first = i.first_visible_ms;
                    d
                })
                .collect(),
            visible_ms: rows.iter().map(|i| i.visible_ms).collect(),
            max_visible_pct: rows.iter().map(|i| i.max_visible_pct).collect(),
            focused_ms: rows.iter().map(|i| i.focused_ms).collect(),
        });
        if let Some(send) = out.send.as_mut() {
            send.attempt += 1;
            send.sent_at_mono_ms += 60_000;
            send.sent_at_wall_ms += 60_000;
        }
        out
    }

    /// `batch` as another device sharing its session id would send it: the same seqs
    /// with other content.
    fn from_another_device(batch: &proto::Batch) -> proto::Batch {
        let mut other = batch.clone();
        other.install_id = "another-install".into();
        other
    }

    #[test]
    fn a_seq_received_again_with_other_content_is_a_conflict_never_a_retry() {
        let mut ingestor = Ingestor::new(Contract::default());
        let batch = wire::decode_gzip_batch(&body(3, 0)).unwrap();
        assert_eq!(ingestor.accept(&batch, WALL).good.len(), 3);
        let out = ingestor.accept(&from_another_device(&batch), WALL + 1);
        assert_eq!((out.good.len(), out.duplicates, out.conflicts), (0, 0, 3));
        assert_eq!(out.bad.len(), 3);
        assert!(out.bad.iter().all(|b| b.rules == [SEQ_CONFLICT]));
        assert_eq!(out.bad[0].row.install_id, "another-install");
        assert_eq!(ingestor.metrics.conflicts, 3);
        let r = ingestor.reconcile(&batch.session_id).unwrap();
        assert_eq!(
            (r.delivered, r.duplicates, r.conflicts, r.rejected),
            (3, 0, 3, 0)
        );
        // The first content stays the reference: its retry is a retry.
        let retry = ingestor.accept(&batch, WALL + 2);
        assert_eq!((retry.duplicates, retry.conflicts), (3, 0));
        // The other device's retry is reported again: its content is never remembered, so
        // never absorbed.
        let again = ingestor.accept(&from_another_device(&batch), WALL + 3);
        assert_eq!(
            (again.duplicates, again.conflicts, again.bad.len()),
            (0, 3, 3)
        );
    }

    #[test]
    fn a_split_and_reencoded_batch_with_the_same_content_is_still_a_retry() {
        let mut ingestor = Ingestor::new(Contract::default());
        let batch = wire::decode_gzip_batch(&body(4, 0)).unwrap();
        assert_eq!(ingestor.accept(&batch, WALL).good.len(), 4);
        for half in [0..2, 2..4] {
            let split = reencoded(&batch, half.clone());
            assert_ne!(split.item_ids, batch.item_ids, "other table indices");
            let out = ingestor.accept(&split, WALL + 60_000);
            assert_eq!((out.duplicates, out.conflicts), (2, 0), "{half:?}");
            assert!(out.bad.is_empty() && out.good.is_empty());
        }
    }

    #[test]
    fn state_rebuilt_from_output_still_tells_conflicts_from_retries() {
        let mut first = Ingestor::new(Contract::default());
        let batch = wire::decode_gzip_batch(&body(3, 0)).unwrap();
        let other = from_another_device(&batch);
        let out = first.accept(&batch, WALL);
        let mut restarted_once = restarted("conflict-1", &[(&batch, &out, WALL)]);
        let retry = restarted_once.accept(&batch, WALL + 1);
        assert_eq!((retry.duplicates, retry.conflicts), (3, 0));
        let clash = restarted_once.accept(&other, WALL + 2);
        assert_eq!((clash.duplicates, clash.conflicts), (0, 3));
        // Conflict rows on disk count as conflicts again, and do not displace the digests
        // of the first content.
        let uploads = [
            (&batch, &out, WALL),
            (&batch, &retry, WALL + 1),
            (&other, &clash, WALL + 2),
        ];
        let mut restarted_twice = restarted("conflict-2", &uploads);
        assert_eq!(
            restarted_twice.reconcile(&batch.session_id),
            restarted_once.reconcile(&batch.session_id)
        );
        let again = restarted_twice.accept(&batch, WALL + 3);
        assert_eq!((again.duplicates, again.conflicts), (3, 0));
    }

    #[test]
    fn digests_are_bounded_across_sessions_without_forgetting_any_session() {
        let mut ingestor = Ingestor::new(Contract::default());
        let per_session = crate::session::RECENT_DIGESTS;
        let sessions = MAX_RECENT_DIGESTS / per_session + 2;
        for s in 0..sessions {
            let (key, mut tracked) = ingestor.take_session(&format!("full{s}"));
            for seq in 1..=per_session as u64 {
                tracked.state.arrive(seq, seq);
            }
            ingestor.put_session(key, tracked);
            assert!(
                ingestor.digests <= MAX_RECENT_DIGESTS,
                "{}",
                ingestor.digests
            );
        }
        let digests: usize = ingestor
            .sessions
            .values()
            .map(|t| t.state.recent_digests())
            .sum();
        assert_eq!(digests, ingestor.digests);
        assert_eq!(
            ingestor.sessions.len(),
            sessions,
            "every session still dedups"
        );
        let oldest = ingestor.sessions.get("full0").unwrap();
        assert_eq!(
            oldest.state.recent_digests(),
            0,
            "the oldest lost its digests"
        );
        let (key, mut tracked) = ingestor.take_session("full0");
        assert_eq!(tracked.state.arrive(1, 0xdead), Arrival::Duplicate);
        ingestor.put_session(key, tracked);
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
        // One deflate block (the core's encoder bounds its blocks, and so its ratio): as
        // a client that compresses on its own would send it.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &vec![b'a'; MAX_DECOMPRESSED_BYTES / 2]).unwrap();
        let compressible = encoder.finish().unwrap();
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

    /// Writes each (batch, outcome) through the NDJSON sink into a fresh directory, then
    /// restores a new ingestor from it the way a restarted server does.
    fn restarted(tag: &str, uploads: &[(&proto::Batch, &Outcome, u64)]) -> Ingestor {
        use crate::sink::{NdjsonSink, Sink, replay};
        let dir =
            std::env::temp_dir().join(format!("sightline-ingest-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut sink = NdjsonSink::open(&dir).unwrap();
        for (batch, out, received) in uploads {
            sink.write(&out.record(batch, *received), &out.good, &out.bad)
                .unwrap();
        }
        drop(sink);
        let mut ingestor = Ingestor::new(Contract::default());
        let _ = NdjsonSink::open(&dir).unwrap();
        replay(&dir, |item| ingestor.restore(&item)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        ingestor
    }

    #[test]
    fn state_rebuilt_from_output_recognises_old_seqs_as_duplicates() {
        let mut first = Ingestor::new(Contract::default());
        let b = body(3, 0);
        let batch = wire::decode_gzip_batch(&b).unwrap();
        let out = first.accept(&batch, WALL);
        let mut restarted = restarted("dups", &[(&batch, &out, WALL)]);
        let again = restarted.ingest(&b, WALL).unwrap();
        assert_eq!((again.good.len(), again.duplicates), (0, 3));
    }

    #[test]
    fn restore_rebuilds_the_same_accounting_late_and_duplicates_included() {
        let mut first = Ingestor::new(Contract::default());
        let mut batch = wire::decode_gzip_batch(&body(4, 0)).unwrap();
        // Seq 2 goes to bad rows, its neighbours to good rows: restore must interleave them
        // in arrival order, or seq 2 looks late.
        batch.impressions.as_mut().unwrap().visible_ms = vec![1000, 10, 1000, 1000];
        let out = first.accept(&batch, WALL);
        let retry = first.accept(&batch, WALL + 1);
        assert_eq!(retry.duplicates, 4);
        let before = first.reconcile(&out.session_id).unwrap();
        assert_eq!((before.late, before.duplicates, before.rejected), (0, 4, 1));
        let restarted = restarted("late", &[(&batch, &out, WALL), (&batch, &retry, WALL + 1)]);
        assert_eq!(restarted.reconcile(&out.session_id).unwrap(), before);
    }

    #[test]
    fn a_hostile_page_view_wall_time_saturates_into_a_bad_row_and_keeps_the_metrics() {
        let mut ingestor = Ingestor::new(Contract::default());
        ingestor.ingest(&body(1, 0), WALL).unwrap();
        let mut hostile = wire::decode_gzip_batch(&body(1, 0)).unwrap();
        hostile.session_id = "hostile".into();
        hostile.send = None;
        hostile.page_views[0].start_wall_ms = u64::MAX;
        hostile.page_views[0].start_offset_ms = u64::MAX;
        let out = ingestor.accept(&hostile, WALL);
        assert!(out.good.is_empty());
        let bad = &out.bad[0];
        assert_eq!(bad.rules, [Rule::TimeOutsideBatch.name()]);
        assert_eq!(bad.row.first_visible_client_ms, u64::MAX);
        assert!(bad.row.first_visible_ms > WALL, "{bad:?}");
        assert_eq!(
            (ingestor.metrics.impressions, ingestor.metrics.batches),
            (1, 2)
        );
        assert_eq!(ingestor.metrics.rejects_by_rule["time_outside_batch"], 1);
    }

    #[test]
    fn hostile_send_and_clock_times_do_not_overflow_the_skew() {
        let mut batch = wire::decode_gzip_batch(&body(1, 0)).unwrap();
        let send = batch.send.as_mut().unwrap();
        send.sent_at_wall_ms = u64::MAX;
        send.mono_epoch = send.mono_epoch.wrapping_add(1); // no shared epoch: skew alone
        let clock = Clock::of(&batch, 0);
        assert_eq!(clock.skew_ms, i64::MAX);
        assert_eq!(clock.corrected(0, u64::MAX), 0);
        batch.send.as_mut().unwrap().sent_at_wall_ms = 0;
        let clock = Clock::of(&batch, u64::MAX);
        assert_eq!(clock.skew_ms, i64::MIN);
        assert_eq!(clock.corrected(u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn hostile_counters_reconcile_without_panicking() {
        let mut ingestor = Ingestor::new(Contract::default());
        let mut hostile = wire::decode_gzip_batch(&body(1, 0)).unwrap();
        let c = hostile.counters.as_mut().unwrap();
        c.dropped_overflow = u64::MAX;
        c.dropped_rejected = 1;
        let out = ingestor.accept(&hostile, WALL);
        let r = ingestor.reconcile(&out.session_id).unwrap();
        assert_eq!(r.delivered, 1);
    }

    #[test]
    fn with_neither_send_info_nor_close_time_event_times_are_left_uncorrected_in_bad_rows() {
        let mut ingestor = Ingestor::new(Contract::default());
        let mut batch = wire::decode_gzip_batch(&body(1, 0)).unwrap();
        batch.send = None;
        batch.clock = None;
        let received = WALL + 13_000;
        assert_eq!(Clock::of(&batch, received).skew_ms, 0);
        let out = ingestor.accept(&batch, received);
        assert!(out.good.is_empty());
        let BadRow { rules, row } = out.bad[0].clone();
        assert_eq!(rules, [Rule::TimeOutsideBatch.name()], "nothing places it");
        assert_eq!(row.first_visible_ms, row.first_visible_client_ms);
    }

    #[test]
    fn counters_flagged_inconsistent_do_not_drive_reconciliation_live_or_restored() {
        let mut ingestor = Ingestor::new(Contract::default());
        let mut batch = wire::decode_gzip_batch(&body(1, 0)).unwrap();
        let good_counters = batch.counters.unwrap();
        batch.counters.as_mut().unwrap().last_seq = 1_000_000; // recorded stays 1
        assert!(
            Contract::default()
                .check_batch(&batch)
                .iter()
                .any(|v| v.rule == Rule::CountersInconsistent)
        );
        let bogus = ingestor.accept(&batch, WALL);
        assert!(bogus.counters_inconsistent);
        assert!(bogus.record(&batch, WALL).counters_inconsistent);
        let bogus_batch = batch.clone();
        // The real counters arrive again (a retry): the bogus ones never displaced them.
        batch.counters = Some(good_counters);
        let retry = ingestor.accept(&batch, WALL + 1);
        let r = ingestor.reconcile(&bogus.session_id).unwrap();
        assert_eq!((r.issued, r.missing), (1, 0), "{r:?}");
        let restored = restarted(
            "inconsistent",
            &[(&bogus_batch, &bogus, WALL), (&batch, &retry, WALL + 1)],
        );
        assert_eq!(restored.reconcile(&bogus.session_id).unwrap(), r);
    }

    #[test]
    fn header_ids_must_be_well_formed_and_the_session_id_present() {
        let good = body(1, 0);
        let batch = wire::decode_gzip_batch(&good).unwrap();
        let mut ingestor = Ingestor::new(Contract::default());
        assert!(ingestor.admit(&batch, 1000).is_ok());
        let long = "a".repeat(Contract::default().max_id_len as usize + 1);
        type Field = fn(&mut proto::Batch) -> &mut String;
        let cases: [(&str, Field); 7] = [
            ("session_id", |b| &mut b.session_id),
            ("app_id", |b| &mut b.app_id),
            ("app_version", |b| &mut b.app_version),
            ("device", |b| &mut b.device),
            ("install_id", |b| &mut b.install_id),
            ("sdk_name", |b| &mut b.sdk_name),
            ("sdk_version", |b| &mut b.sdk_version),
        ];
        for (field, get) in cases {
            for value in [long.as_str(), "has space", "caf\u{e9}"] {
                let mut b = batch.clone();
                *get(&mut b) = value.to_string();
                let body = gzip::gzip(&b.encode_to_vec());
                let refusal = ingestor.ingest(&body, WALL).unwrap_err();
                assert_eq!(refusal.status(), 400, "{field}={value:?}");
                assert!(refusal.reason().contains(field), "{refusal:?}");
            }
        }
        let mut b = batch.clone();
        b.session_id.clear();
        assert_eq!(ingestor.admit(&b, 1000).unwrap_err().status(), 400);
        let mut b = batch;
        b.device.clear();
        assert!(
            ingestor.admit(&b, 1000).is_ok(),
            "an empty device is allowed"
        );
    }

    /// Serialised size of everything an outcome writes.
    fn written(out: &Outcome) -> usize {
        let good: usize = out
            .good
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len() + 1)
            .sum();
        let bad: usize = out
            .bad
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len() + 1)
            .sum();
        good + bad
    }

    #[test]
    fn real_batches_stay_well_within_the_output_budget() {
        for n in [1, 50, 500] {
            let b = body(n, 0);
            let raw = gzip::gunzip(&b, MAX_DECOMPRESSED_BYTES).unwrap();
            let mut ingestor = Ingestor::new(Contract::default());
            let out = ingestor.ingest(&b, WALL).unwrap();
            let ratio = written(&out) / raw.len();
            assert!(ratio * 4 <= MAX_OUTPUT_RATIO, "{n} impressions: {ratio}x");
            // The estimate errs high, yet a batch 2.5x as dense would still pass.
            let batch = wire::decode_gzip_batch(&b).unwrap();
            assert!(
                ingestor.admit(&batch, raw.len() * 2 / 5).is_ok(),
                "{n} impressions"
            );
        }
    }

    /// One page view and `n` impressions all showing the same item, the cheapest batch per
    /// row on the wire; header ids `header_len` long, page, request and item id 256 long.
    /// Every string is distinct incompressible letters, so the body stays within the gzip
    /// expansion limit.
    fn repeated_item(n: usize, header_len: usize) -> proto::Batch {
        let mut rng = 0x1234_5678_u64;
        let mut noise = |len: usize| -> String {
            (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (b'a' + (rng % 26) as u8) as char
                })
                .collect()
        };
        let mut item = vec![1u32; n];
        item[0] = 0;
        proto::Batch {
            schema_version: 1,
            sdk_name: noise(header_len),
            sdk_version: noise(header_len),
            app_id: noise(header_len),
            app_version: noise(header_len),
            device: noise(header_len),
            install_id: noise(header_len),
            session_id: noise(header_len),
            strings: vec![noise(256), noise(256)],
            page_views: vec![proto::PageView {
                page: 0,
                request_id: 2,
                ..Default::default()
            }],
            item_prefix: noise(200),
            item_ids: vec![noise(56)],
            impressions: Some(proto::Impressions {
                first_seq: 1,
                count: n as u32,
                item,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn row_output_is_bounded_by_the_body_not_amplified() {
        let n = wire::MAX_IMPRESSIONS;
        let mut ingestor = Ingestor::new(Contract::default());
        // Header strings at the 256-byte wire limit: refused as malformed ids.
        let body = gzip::gzip(&repeated_item(n, 256).encode_to_vec());
        let refusal = ingestor.ingest(&body, WALL).unwrap_err();
        assert_eq!(refusal.status(), 400, "{refusal:?}");
        // Well-formed 64-byte header ids and 256-byte strings, repeated 65536 times from a
        // body of a few KB: over budget, refused before a row is built.
        let body = gzip::gzip(&repeated_item(n, 64).encode_to_vec());
        let refusal = ingestor.ingest(&body, WALL).unwrap_err();
        assert_eq!(refusal.status(), 413, "{refusal:?}");
        assert_eq!(ingestor.metrics.refused_batches["too_large"], 1);
        // Whatever passes writes within the budget.
        for n in [1, 10, 100, 1000] {
            let body = gzip::gzip(&repeated_item(n, 64).encode_to_vec());
            let raw_len = gzip::gunzip(&body, MAX_DECOMPRESSED_BYTES).unwrap().len();
            if let Ok(out) = ingestor.ingest(&body, WALL) {
                assert!(written(&out) <= MAX_OUTPUT_RATIO * raw_len, "{n}");
            }
        }
    }

    #[test]
    fn a_retry_after_many_new_sessions_is_still_recognised() {
        let mut ingestor = Ingestor::new(Contract::default());
        let first = wire::decode_gzip_batch(&body(3, 0)).unwrap();
        assert_eq!(ingestor.accept(&first, WALL).good.len(), 3);
        let mut other = wire::decode_gzip_batch(&body(1, 0)).unwrap();
        // Keep the first session in use while the table fills: it is not the oldest.
        for i in 0..MAX_SESSIONS + 1000 {
            other.session_id = format!("s{i}");
            ingestor.accept(&other, WALL);
            if i % 50_000 == 0 {
                ingestor.accept(&first, WALL);
            }
        }
        assert_eq!(ingestor.sessions.len(), MAX_SESSIONS);
        assert_eq!(ingestor.by_use.len(), MAX_SESSIONS);
        let again = ingestor.accept(&first, WALL);
        assert_eq!((again.good.len(), again.duplicates), (0, 3));
        assert!(ingestor.reconcile("s0").is_none(), "the least recent went");
    }

    #[test]
    fn seqs_held_above_high_water_marks_are_bounded_across_sessions() {
        let mut ingestor = Ingestor::new(Contract::default());
        let mut batch = wire::decode_gzip_batch(&body(1, 0)).unwrap();
        // Every session leaves a gap at seq 1 and holds a full window above it.
        let sessions = MAX_HELD_SEQS / crate::session::DEDUP_WINDOW + 2;
        for s in 0..sessions {
            batch.session_id = format!("gap{s}");
            let (key, mut tracked) = ingestor.take_session(&batch.session_id);
            for seq in 2..=crate::session::DEDUP_WINDOW as u64 + 1 {
                tracked.state.arrive(seq, seq);
            }
            ingestor.put_session(key, tracked);
            assert!(ingestor.held <= MAX_HELD_SEQS, "{}", ingestor.held);
        }
        let held: usize = ingestor.sessions.values().map(|t| t.state.held()).sum();
        assert_eq!(held, ingestor.held);
        assert!(
            ingestor.reconcile("gap0").is_none(),
            "the oldest was forgotten"
        );
        assert!(
            ingestor
                .reconcile(&format!("gap{}", sessions - 1))
                .is_some()
        );
    }

    #[test]
    fn a_rollback_restores_the_session_and_its_memory_accounting() {
        let mut ingestor = Ingestor::new(Contract::default());
        let b = body(3, 0);
        let batch = wire::decode_gzip_batch(&b).unwrap();
        let checkpoint = ingestor.checkpoint(&batch.session_id);
        ingestor.accept(&batch, WALL);
        ingestor.rollback(checkpoint);
        assert!(ingestor.reconcile(&batch.session_id).is_none());
        assert_eq!(
            (
                ingestor.sessions.len(),
                ingestor.by_use.len(),
                ingestor.held
            ),
            (0, 0, 0)
        );
        assert_eq!(ingestor.accept(&batch, WALL).good.len(), 3);
    }
}
