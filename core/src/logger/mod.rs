//! The sans-IO logger: the one object a host drives. Inputs are `handle_*` / `record_*`
//! calls carrying the current time; outputs are drained with [`Logger::poll_store_op`],
//! [`Logger::poll_upload`] and [`Logger::poll_timeout`]. It performs no I/O, calls nothing
//! of the host's, reads no clock and draws no entropy of its own.
//!
//! Host run loop:
//! ```text
//! at start:          logger = Logger::resume(config, stored_read_back, now)
//! on any input:      logger.handle_*(.., now)
//! then drain:        while let Some(op) = logger.poll_store_op() { perform op;
//!                        logger.handle_store_result(op.id, result) }
//!                    while let Some(u) = logger.poll_upload(now) { send u (async) }
//!                    deadline = logger.poll_timeout()
//! on deadline:       logger.handle_timeout(now)
//! on HTTP result:    logger.handle_upload_result(u.id, outcome, now)
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use prost::Message;

use crate::batch::{OpenBatch, PageViewRef, Pending};
use crate::config::{Config, ConfigError};
use crate::contract::{ImpressionFacts, Rule, valid_id};
use crate::dedup::{MAX_EXPOSURES_PER_PAGE_VIEW, Seen, Verdict};
use crate::gzip;
use crate::intern::{Interner, Key};
use crate::outbox::{Finished, Outbox, Purpose};
use crate::persist::{
    ACKS_KEY, Acks, Entry, JournalImpression, PREFS_KEY, Prefs, STATE_KEY, State,
};
use crate::proto;
use crate::queue::{BATCH_KEY_PREFIX, ClosedBatch, Queue};
use crate::rng::Rng;
use crate::sampling::{self, SampleKey};
use crate::stats::{DropReason, Stats};
use crate::store::{
    Store, StoreError, StoreOp, StoreRequest, Stored, frame_with, read_frames, read_single_frame,
};
use crate::upload::{
    self, APP_KEY_HEADER, BATCH_HEADER, CONTENT_TYPE, Disposition, Header, UPLOAD_PATH, Upload,
    UploadOutcome,
};
use crate::viewability::{Place, Qualified, Tracker};
use crate::wire;
use outcomes::Outcomes;
pub use outcomes::{ExposureOutcome, MAX_OUTCOMES};
use page_view::PageView;
use schedule::Schedule;
use sealing::Sealing;

mod outcomes;
mod page_view;
mod persistence;
mod recovery;
mod schedule;
pub mod sealing;
mod uploader;

/// Name of this SDK on the wire.
pub const SDK_NAME: &str = "sightline";
/// Version of this SDK on the wire.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Page views open at once; opening one more ends the oldest (a host that forgets to end
/// page views must not grow memory without bound).
pub const MAX_OPEN_PAGE_VIEWS: usize = 16;
/// Ended page view structures kept for reuse, so steady-state logging does not allocate.
const SPARE_PAGE_VIEWS: usize = 4;
/// Journal size that forces a checkpoint even with nothing to batch (a sampled-out install
/// journals every impression and never closes a batch): bounds the journal a start reads.
const JOURNAL_CHECKPOINT_BYTES: usize = 16 * 1024;
/// Journal size past which a sealed batch's checkpoint no longer waits for the next close
/// (impressions were logged while it sealed): the open batch then closes in the call so the
/// checkpoint can follow. A quarter of the store's allowance (`STORE_ALLOWANCE_BYTES`):
/// at the 88 B of journal per UUID-shaped impression measured in `sealing_spec`, about
/// three full batches.
#[cfg(not(feature = "compact"))]
const JOURNAL_DEFER_BYTES: usize = 256 * 1024;
/// A monotonic clock that goes back further than this was reset (suspend, firmware clock
/// restart), not jittered.
const CLOCK_RESET_MS: u64 = 60_000;
/// Seqs reserved in durable state ahead of use: a restart treats every reserved seq as
/// possibly issued, so a journal that lost its tail is counted, never reused. Bigger means
/// fewer state writes and more seqs counted as lost after an unclean stop.
pub const SEQ_RESERVE: u64 = 32;
/// After store writes failed, the state is written again this long later before a batch
/// whose seqs are not durable is uploaded: often enough to resume soon, rarely enough not
/// to hammer a full store.
const STORE_RETRY_MS: u64 = 5_000;

/// The current time, in both kinds. They are never mixed: monotonic milliseconds measure
/// durations and deadlines; wall-clock milliseconds (Unix epoch) only stamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

impl Now {
    /// Both clocks at once.
    pub fn new(mono_ms: u64, wall_ms: u64) -> Self {
        Now { mono_ms, wall_ms }
    }
}

/// The hashes of an impression's ids, computed once per host call.
#[derive(Clone, Copy, Debug)]
struct Hashes {
    item: usize,
    artwork: Option<usize>,
}

/// A pre-qualified impression: the host measured viewability itself.
#[derive(Clone, Copy, Debug)]
pub struct Impression<'a> {
    pub item_id: &'a str,
    pub artwork_id: Option<&'a str>,
    pub row: u32,
    pub column: u32,
    /// Monotonic time the exposure started.
    pub first_visible_mono_ms: u64,
    pub visible_ms: u64,
    /// Largest visible share during the exposure, 0.0..=1.0.
    pub max_visible_fraction: f32,
    pub focused_ms: u64,
}

/// An item as the host reports its visibility or focus.
#[derive(Clone, Copy, Debug)]
pub struct ItemRef<'a> {
    pub item_id: &'a str,
    pub artwork_id: Option<&'a str>,
    pub row: u32,
    pub column: u32,
}

/// What happened to a recorded impression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Buffered for upload under this seq.
    Logged {
        seq: u64,
    },
    SampledOut,
    Deduped,
    /// Logging is disabled (opt-out); nothing was recorded or counted.
    Disabled,
}

/// `handle_store_result` named an operation that is not the one handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStoreOp(pub u64);

impl fmt::Display for UnknownStoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store operation {} is not awaiting a result", self.0)
    }
}

impl core::error::Error for UnknownStoreOp {}

/// `handle_upload_result` named an upload that is not in flight (already handled, or purged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownUpload(pub u64);

impl fmt::Display for UnknownUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upload {} is not in flight", self.0)
    }
}

impl core::error::Error for UnknownUpload {}

/// Why a logger could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The configuration is unusable.
    Config(ConfigError),
    /// The store could not be read (by [`Logger::start`]). Starting anyway would mistake
    /// stored data for absent data (a new session, a lost journal); the host retries or
    /// uses another store.
    Store(StoreError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "configuration: {e}"),
            StartError::Store(e) => write!(f, "reading the store: {e}"),
        }
    }
}

impl core::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

/// A batch counted as delivered or dropped whose stored copy may still exist: listed in
/// `acks` until its removal is acknowledged, so a restart never counts or sends it twice.
#[derive(Clone, Copy, Debug)]
struct Settled {
    id: u64,
    /// Its removal is planned or handed out.
    removing: bool,
}

// The logger holds no host object, so it crosses threads (a binding's shared object, the
// driver thread): checked at compile time.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Logger>();
};

/// The impression logger. See the module docs for the run loop.
pub struct Logger {
    config: Config,
    /// Store operations planned for the host.
    outbox: Outbox,
    /// The state record of the last checkpoint; seq reservations rewrite it. Boxed: inline,
    /// it pushed the logger's other fields to offsets that cost firmware flash to reach.
    checkpointed: alloc::boxed::Box<State>,
    /// Seqs up to this one may have been issued (durably reserved once written).
    reserved: u64,
    /// Seqs up to this one are known issued to whatever a restart reads back (an
    /// acknowledged state write, or what was read at start): they are never issued again.
    durable_reserved: u64,
    /// The highest seq of a batch counted as delivered or dropped (listed in `acks`).
    settled_seq: u64,
    /// When to write the state again, after writes failed and the front batch's seqs are
    /// not durable: uploads of it wait until then.
    store_retry_at: Option<u64>,
    rng: Rng,
    session_id: String,
    sampled_in: bool,
    generation: u32,
    starts: u32,
    /// The logger's monotonic clock: the host's plus `mono_offset`, never going back.
    now: u64,
    /// Added to host monotonic times after the host's clock was reset.
    mono_offset: u64,
    wall: u64,
    enabled: bool,
    hidden: bool,
    stats: Stats,
    page_views: Vec<PageView>,
    spare: Vec<PageView>,
    next_page_view: u64,
    open: OpenBatch,
    queue: Queue,
    schedule: Schedule,
    next_batch_id: u64,
    next_batch_no: u64,
    qualified: Vec<Qualified>,
    /// One compressor for every batch: its state is the largest allocation of the SDK.
    gzipper: gzip::Gzipper,
    /// The encoded batch before compression, reused across closes.
    encode_buf: Vec<u8>,
    /// The closed batch being compressed, if any.
    sealing: Sealing,
    settled: Vec<Settled>,
    /// Batches split by a 413 whose halves are not yet durable: (original, halves). The
    /// original's copy stays until both halves are stored, or until a half is settled
    /// (then a restart must not send the original again).
    splits: Vec<(u64, [u64; 2])>,
    /// Journal bytes appended since the last checkpoint.
    journal_bytes: usize,
    /// What became of tracked exposures, when the host asked to see it.
    outcomes: Outcomes,
}

impl Logger {
    /// Starts a logger from what the host read back from its store (`Stored::default()`
    /// when nothing is stored), resuming its session, queue, backoff and any journaled
    /// events a crash left behind. Its first store operations (a checkpoint) are ready to
    /// drain at once.
    pub fn resume(config: Config, stored: Stored, now: Now) -> Result<Logger, ConfigError> {
        config.validate()?;
        let mut logger = Logger {
            rng: Rng::new(config.seed),
            config,
            outbox: Outbox::default(),
            checkpointed: alloc::boxed::Box::default(),
            reserved: 0,
            durable_reserved: 0,
            settled_seq: 0,
            store_retry_at: None,
            session_id: String::new(),
            sampled_in: true,
            generation: 0,
            starts: 0,
            now: now.mono_ms,
            mono_offset: 0,
            wall: now.wall_ms,
            enabled: true,
            hidden: false,
            stats: Stats::default(),
            page_views: Vec::new(),
            spare: Vec::new(),
            next_page_view: 1,
            open: OpenBatch::default(),
            queue: Queue::default(),
            schedule: Schedule::new(now.mono_ms),
            next_batch_id: 1,
            next_batch_no: 1,
            qualified: Vec::new(),
            gzipper: gzip::Gzipper::new(),
            encode_buf: Vec::new(),
            sealing: Sealing::new(),
            settled: Vec::new(),
            splits: Vec::new(),
            journal_bytes: 0,
            outcomes: Outcomes::default(),
        };
        logger.recover(&stored);
        Ok(logger)
    }

    /// For Rust hosts with a synchronous [`Store`]: reads it back, resumes, and performs
    /// the first store operations.
    pub fn start<S: Store + ?Sized>(
        config: Config,
        store: &mut S,
        now: Now,
    ) -> Result<Logger, StartError> {
        let stored = store.load().map_err(StartError::Store)?;
        let mut logger = Logger::resume(config, stored, now)?;
        logger.perform_store_ops(store);
        Ok(logger)
    }

    /// The session id: (session id, seq) identifies every impression.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Counters of this session.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Impressions buffered or queued and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.stats.pending()
    }

    /// Compressed bytes queued for upload.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// Heap bytes reserved by the open batch, for memory accounting.
    pub fn open_batch_heap_bytes(&self) -> usize {
        self.open.heap_bytes()
    }

    /// Of [`Self::open_batch_heap_bytes`], those of its encoded impression columns (the
    /// rest is its strings and page views).
    pub fn open_batch_column_heap_bytes(&self) -> usize {
        self.open.column_heap_bytes()
    }

    /// Impressions in the open batch.
    pub fn open_batch_len(&self) -> usize {
        self.open.len()
    }

    /// Starts a page view and returns its id (the per-session ordinal). `layout`, when
    /// given, is the rows of item ids as the server sent them: impressions of items not on
    /// it, or at another place, are refused.
    pub fn start_page_view(
        &mut self,
        page: &str,
        request_id: Option<&str>,
        layout: Option<&[Vec<String>]>,
        now: Now,
    ) -> Result<u64, Rule> {
        self.tick(now);
        if let Err(rule) = self.config.contract.check_page_name(page) {
            return Err(self.refuse(rule));
        }
        if let Some(r) = request_id {
            if !valid_id(r, self.config.contract.max_id_len) {
                return Err(self.refuse(Rule::RequestId));
            }
        }
        if let Some(rows) = layout {
            let max = self.config.contract.max_id_len;
            if rows.iter().flatten().any(|id| !valid_id(id, max)) {
                return Err(self.refuse(Rule::ItemId));
            }
            if rows.len() > self.config.contract.max_position as usize
                || rows
                    .iter()
                    .any(|r| r.len() > self.config.contract.max_position as usize)
            {
                return Err(self.refuse(Rule::Position));
            }
            if rows.iter().map(Vec::len).sum::<usize>() > MAX_EXPOSURES_PER_PAGE_VIEW {
                return Err(self.refuse(Rule::PageViewFull));
            }
        }
        if self.page_views.len() >= MAX_OPEN_PAGE_VIEWS {
            let oldest = self.page_views[0].ordinal;
            self.end_page_view_at(0, oldest);
        }
        let ordinal = self.next_page_view;
        self.next_page_view += 1;
        let mut pv = self.spare.pop().unwrap_or_else(|| PageView {
            ordinal,
            page: String::new(),
            request_id: None,
            start_mono: 0,
            start_wall: 0,
            names: Interner::default(),
            layout: None,
            tracker: Tracker::default(),
            seen: Seen::default(),
        });
        pv.ordinal = ordinal;
        pv.page.clear();
        pv.page.push_str(page);
        match (request_id, &mut pv.request_id) {
            (Some(r), Some(buf)) => {
                buf.clear();
                buf.push_str(r);
            }
            (r, slot) => *slot = r.map(ToString::to_string),
        }
        pv.start_mono = self.now;
        pv.start_wall = self.wall;
        pv.names.clear();
        pv.layout = layout.map(|rows| {
            rows.iter()
                .map(|r| r.iter().map(|id| pv.names.intern(id)).collect())
                .collect()
        });
        pv.tracker.reset(self.hidden);
        pv.seen.clear();
        persistence::journal_into(
            &mut self.outbox,
            &mut self.journal_bytes,
            self.generation,
            &pv.start_entry(),
        );
        self.page_views.push(pv);
        Ok(ordinal)
    }

    /// Ends a page view: its ongoing exposures end now.
    pub fn end_page_view(&mut self, page_view: u64, now: Now) -> Result<(), Rule> {
        self.tick(now);
        let i = self.page_view_index(page_view)?;
        self.end_page_view_at(i, page_view);
        self.drive();
        Ok(())
    }

    /// The visible share of an item changed (0.0..=1.0).
    pub fn handle_visibility(
        &mut self,
        page_view: u64,
        item: &ItemRef<'_>,
        fraction: f32,
        now: Now,
    ) -> Result<(), Rule> {
        self.tick(now);
        if !self.enabled {
            return Ok(());
        }
        let pct = match fraction_to_pct(fraction) {
            Some(p) => p,
            None => return Err(self.refuse(Rule::Fraction)),
        };
        let i = self.page_view_index(page_view)?;
        let (place, artwork_key) = self.place(i, item)?;
        let artwork = artwork_key.map_or(0, |a| self.page_views[i].names.intern_key(a) + 1);
        let c = &self.config.contract;
        let (threshold, min_ms) = (c.min_visible_pct, u64::from(c.min_visible_ms));
        let now = self.now;
        let pv = &mut self.page_views[i];
        let result = pv.tracker.visibility(
            place,
            artwork,
            pct,
            threshold,
            min_ms,
            now,
            &mut self.qualified,
        );
        if result.is_err() {
            return Err(self.refuse(Rule::PageViewFull));
        }
        self.admit_qualified(i);
        self.drive();
        Ok(())
    }

    /// An item gained or lost focus (TV).
    pub fn handle_focus(
        &mut self,
        page_view: u64,
        item: &ItemRef<'_>,
        focused: bool,
        now: Now,
    ) -> Result<(), Rule> {
        self.tick(now);
        if !self.enabled {
            return Ok(());
        }
        let i = self.page_view_index(page_view)?;
        let (place, _) = self.place(i, item)?;
        let now = self.now;
        if self.page_views[i]
            .tracker
            .focus(place, focused, now)
            .is_err()
        {
            return Err(self.refuse(Rule::PageViewFull));
        }
        Ok(())
    }

    /// The app or tab went to the background: timers pause, qualified exposures are
    /// logged, and the open batch is closed so it can be sent. Like any close it is
    /// compressed a step per `handle_timeout` (each due a millisecond after the last), so
    /// this call stays short; the journal holds the batch until it is stored, so an app
    /// suspended or killed first loses nothing.
    pub fn handle_app_hidden(&mut self, now: Now) {
        self.tick(now);
        self.hidden = true;
        let min_ms = u64::from(self.config.contract.min_visible_ms);
        for i in 0..self.page_views.len() {
            let now = self.now;
            self.page_views[i]
                .tracker
                .hide(min_ms, now, &mut self.qualified);
            self.admit_qualified(i);
        }
        self.close_batch_after_sealing();
    }

    /// The app or tab is visible again: timers resume.
    pub fn handle_app_visible(&mut self, now: Now) {
        self.tick(now);
        self.hidden = false;
        for pv in &mut self.page_views {
            pv.tracker.show(self.now);
        }
    }

    /// Keeps (or stops keeping) what becomes of the exposures the logger tracks from
    /// visibility and focus, for [`Logger::poll_exposure_outcome`]; off at start.
    pub fn report_exposure_outcomes(&mut self, on: bool) {
        self.outcomes.set(on);
    }

    /// The oldest outcome not yet polled: a tracked exposure logged, deduped, sampled out or
    /// refused (at most [`MAX_OUTCOMES`] are kept; older ones are dropped).
    pub fn poll_exposure_outcome(&mut self) -> Option<ExposureOutcome> {
        self.outcomes.pop()
    }

    /// Records an impression the host qualified itself.
    pub fn record_impression(
        &mut self,
        page_view: u64,
        imp: &Impression<'_>,
        now: Now,
    ) -> Result<Recorded, Rule> {
        self.tick(now);
        if !self.enabled {
            return Ok(Recorded::Disabled);
        }
        let Some(pct) = fraction_to_pct(imp.max_visible_fraction) else {
            return Err(self.refuse(Rule::Fraction));
        };
        let facts = ImpressionFacts {
            item_id: imp.item_id,
            artwork_id: imp.artwork_id,
            row: imp.row,
            column: imp.column,
            max_visible_pct: pct,
            visible_ms: clamp_u32(imp.visible_ms),
            focused_ms: clamp_u32(imp.focused_ms),
        };
        if let Err(rule) = self.config.contract.check_impression(&facts) {
            return Err(self.refuse(rule));
        }
        let i = self.page_view_index(page_view)?;
        let (item, artwork) = (Key::new(imp.item_id), imp.artwork_id.map(Key::new));
        let pv = &self.page_views[i];
        if let Err(rule) = pv.check_layout(item, imp.row, imp.column) {
            return Err(self.refuse(rule));
        }
        let first_visible = self.internal(imp.first_visible_mono_ms);
        let end = first_visible.saturating_add(imp.visible_ms);
        if first_visible < pv.start_mono || end > self.now {
            return Err(self.refuse(Rule::OutsidePageView));
        }
        if !pv.room_for(item, artwork) {
            return Err(self.refuse(Rule::PageViewFull));
        }
        let names = &mut self.page_views[i].names;
        let q = Qualified {
            place: Place {
                item: names.intern_key(item),
                row: imp.row,
                column: imp.column,
            },
            artwork: artwork.map_or(0, |a| names.intern_key(a) + 1),
            first_visible_mono: first_visible,
            visible_ms: imp.visible_ms,
            max_visible_pct: pct,
            focused_ms: imp.focused_ms,
        };
        let hashes = Hashes {
            item: item.hash,
            artwork: artwork.map(|a| a.hash),
        };
        let outcome = self.admit(i, &q, Some(hashes));
        self.drive();
        outcome
    }

    /// Closes the open batch now (explicit flush), making it durable and ready to send:
    /// it is compressed in this call, not a step at a time, so the call costs up to a
    /// batch's whole deflate (milliseconds for a full batch of UUID-shaped ids). Hosts on a
    /// UI thread let batches close by size and age, or use `handle_app_hidden`, which
    /// return after a step.
    pub fn flush(&mut self, now: Now) {
        self.tick(now);
        self.close_batch();
        self.finish_sealing();
    }

    /// Opt-out and opt-in. Disabling stops recording at once; with `purge`, everything
    /// buffered or queued is deleted (and counted as purged).
    pub fn set_enabled(&mut self, enabled: bool, purge: bool, now: Now) {
        self.tick(now);
        self.enabled = enabled;
        let purge = purge && !enabled;
        self.put_record(
            PREFS_KEY,
            &Prefs {
                opted_out: !enabled,
                purge_pending: purge,
            },
            Purpose::Plain,
        );
        if !purge {
            return;
        }
        self.purge();
        self.checkpoint();
        self.put_record(
            PREFS_KEY,
            &Prefs {
                opted_out: true,
                purge_pending: false,
            },
            Purpose::Plain,
        );
    }

    /// True unless the user opted out.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    // ---- internals ----

    /// Drops everything buffered or queued, counted as purged.
    fn purge(&mut self) {
        let open = self.open.len() as u64;
        self.open.clear();
        self.stats.dropped.add(DropReason::Purged, open);
        self.purge_sealing();
        // The open batch's seqs are settled too: a journal kept by a failed state write
        // must not rebuild them.
        self.settled_seq = self.settled_seq.max(self.stats.issued);
        for b in self.queue.drain() {
            self.stats
                .dropped
                .add(DropReason::Purged, u64::from(b.count));
            self.count_settled(&b);
        }
        self.schedule.abandon();
        // The first few page views are kept as spares (in order), the rest dropped.
        self.page_views.truncate(SPARE_PAGE_VIEWS);
        self.spare.append(&mut self.page_views);
    }

    fn tick(&mut self, now: Now) {
        // Monotonic time that goes back a little is held (a glitch: durations stay >= 0);
        // one that goes back a lot was reset, and the logger's clock carries on from where
        // it was (an offset), so exposures across the reset are still measured.
        let mono = now.mono_ms.saturating_add(self.mono_offset);
        if mono.saturating_add(CLOCK_RESET_MS) < self.now {
            self.mono_offset += self.now - mono;
        }
        self.now = self.now.max(now.mono_ms.saturating_add(self.mono_offset));
        self.wall = now.wall_ms;
        self.sealing.new_call();
    }

    /// A host monotonic time on the logger's clock.
    fn internal(&self, host_mono_ms: u64) -> u64 {
        host_mono_ms.saturating_add(self.mono_offset)
    }

    fn refuse(&mut self, rule: Rule) -> Rule {
        self.stats.count_invalid(rule);
        self.journal(&Entry::Invalid { rule: rule.code() });
        self.bound_journal();
        rule
    }

    fn page_view_index(&mut self, ordinal: u64) -> Result<usize, Rule> {
        match self.page_views.iter().position(|p| p.ordinal == ordinal) {
            Some(i) => Ok(i),
            None => Err(self.refuse(Rule::UnknownPageView)),
        }
    }

    /// Checks an item's ids and place and interns its item id; returns its place and its
    /// artwork id's key, hashed once for the checks and the interning.
    fn place<'a>(
        &mut self,
        i: usize,
        item: &ItemRef<'a>,
    ) -> Result<(Place, Option<Key<'a>>), Rule> {
        let c = &self.config.contract;
        let rule = if !valid_id(item.item_id, c.max_id_len) {
            Some(Rule::ItemId)
        } else if item.artwork_id.is_some_and(|a| !valid_id(a, c.max_id_len)) {
            Some(Rule::ArtworkId)
        } else if item.row >= c.max_position || item.column >= c.max_position {
            Some(Rule::Position)
        } else {
            None
        };
        if let Some(rule) = rule {
            return Err(self.refuse(rule));
        }
        let (key, artwork) = (Key::new(item.item_id), item.artwork_id.map(Key::new));
        let pv = &self.page_views[i];
        if let Err(rule) = pv.check_layout(key, item.row, item.column) {
            return Err(self.refuse(rule));
        }
        if !pv.room_for(key, artwork) {
            return Err(self.refuse(Rule::PageViewFull));
        }
        let place = Place {
            item: self.page_views[i].names.intern_key(key),
            row: item.row,
            column: item.column,
        };
        Ok((place, artwork))
    }

    fn end_page_view_at(&mut self, i: usize, ordinal: u64) {
        let min_ms = u64::from(self.config.contract.min_visible_ms);
        let now = self.now;
        self.page_views[i]
            .tracker
            .end(min_ms, now, &mut self.qualified);
        self.admit_qualified(i);
        let pv = self.page_views.remove(i);
        let duration_ms = now - pv.start_mono;
        self.open.end_page_view(ordinal, duration_ms);
        self.journal(&Entry::PageViewEnd {
            ordinal,
            duration_ms,
        });
        if self.spare.len() < SPARE_PAGE_VIEWS {
            self.spare.push(pv);
        }
    }

    /// Admits the exposures tracking qualified. Their ids are hashed again for the open
    /// batch: an exposure qualifies once, and passing the hashes on cost more flash on the
    /// firmware than a second hash costs time.
    fn admit_qualified(&mut self, i: usize) {
        let mut list = core::mem::take(&mut self.qualified);
        for q in &list {
            if !self.enabled {
                continue;
            }
            // The same contract check as a pre-qualified impression: tracking guarantees
            // the threshold and minimum time, not the rest (required artwork, the longest
            // exposure the contract allows).
            let names = &self.page_views[i].names;
            let facts = ImpressionFacts {
                item_id: names.get(q.place.item),
                artwork_id: q.artwork.checked_sub(1).map(|a| names.get(a)),
                row: q.place.row,
                column: q.place.column,
                max_visible_pct: q.max_visible_pct,
                visible_ms: clamp_u32(q.visible_ms),
                focused_ms: clamp_u32(q.focused_ms),
            };
            let result = match self.config.contract.check_impression(&facts) {
                Err(rule) => Err(self.refuse(rule)),
                // The page-view bound is counted inside.
                Ok(()) => self.admit(i, q, None),
            };
            if self.outcomes.on() {
                let pv = &self.page_views[i];
                self.outcomes.push(ExposureOutcome {
                    page_view: pv.ordinal,
                    item_id: pv.names.get(q.place.item).into(),
                    row: q.place.row,
                    column: q.place.column,
                    result,
                });
            }
        }
        list.clear();
        self.qualified = list;
    }

    /// sample -> dedup -> buffer, for an impression that passed validation.
    fn admit(&mut self, i: usize, q: &Qualified, hashes: Option<Hashes>) -> Result<Recorded, Rule> {
        if !self.sampled_in {
            self.stats.recorded += 1;
            self.stats.sampled_out += 1;
            self.journal(&Entry::SampledOut);
            return Ok(Recorded::SampledOut);
        }
        let reentry = self.config.contract.reentry;
        let pv = &mut self.page_views[i];
        let first = q.first_visible_mono.saturating_sub(pv.start_mono);
        match pv
            .seen
            .admit(reentry, q.place.item, q.place.row, q.place.column, first)
        {
            Verdict::Full => return Err(self.refuse(Rule::PageViewFull)),
            Verdict::Duplicate => {
                self.stats.recorded += 1;
                self.stats.deduped += 1;
                self.journal(&Entry::Deduped);
                return Ok(Recorded::Deduped);
            }
            Verdict::New => {}
        }
        self.stats.recorded += 1;
        let seq = self.enqueue(i, q, hashes);
        Ok(Recorded::Logged { seq })
    }

    fn enqueue(&mut self, i: usize, q: &Qualified, hashes: Option<Hashes>) -> u64 {
        let max = self.config.max_batch_impressions as usize;
        if self.open.full(max, self.config.contract.max_id_len) {
            self.close_batch();
        }
        let page_view = match self.open.page_view(&self.page_views[i].batch_ref()) {
            Some(index) => index,
            None => {
                self.close_batch();
                // An empty batch always has room for a page view.
                let pv = self.page_views[i].batch_ref();
                self.open.page_view(&pv).unwrap_or(0)
            }
        };
        let seq = self.stats.issued + 1;
        if seq > self.reserved {
            self.reserve_seqs(seq);
        }
        let pv = &self.page_views[i];
        let item_id = pv.names.get(q.place.item);
        let artwork_id = q.artwork.checked_sub(1).map(|a| pv.names.get(a));
        let (item, artwork) = match hashes {
            Some(h) => (
                Key::with_hash(item_id, h.item),
                artwork_id.zip(h.artwork).map(|(a, h)| Key::with_hash(a, h)),
            ),
            None => (Key::new(item_id), artwork_id.map(Key::new)),
        };
        let item = self.open.intern_item(item);
        let artwork = artwork.map_or(0, |a| self.open.intern_artwork(a) + 1);
        let pending = Pending {
            item,
            artwork,
            row: q.place.row,
            column: q.place.column,
            first_visible_ms: clamp_u32(q.first_visible_mono.saturating_sub(pv.start_mono)),
            visible_ms: clamp_u32(q.visible_ms),
            focused_ms: clamp_u32(q.focused_ms),
            page_view,
            max_visible_pct: q.max_visible_pct.min(100) as u8,
        };
        self.stats.issued = seq;
        self.open.push(seq, self.now, pending);
        let entry = Entry::Impression(JournalImpression {
            seq,
            page_view: pv.ordinal,
            item: item_id,
            artwork: artwork_id,
            row: pending.row,
            column: pending.column,
            first_visible_ms: pending.first_visible_ms,
            visible_ms: pending.visible_ms,
            focused_ms: pending.focused_ms,
            max_visible_pct: pending.max_visible_pct,
        });
        persistence::journal_into(
            &mut self.outbox,
            &mut self.journal_bytes,
            self.generation,
            &entry,
        );
        if self.open.full(max, self.config.contract.max_id_len) {
            self.close_batch();
        }
        seq
    }

    /// Runs a sealing step the host's timer is behind on (see [`sealing`]), closes the
    /// open batch if the age rule says so, and bounds the journal.
    fn drive(&mut self) {
        self.catch_up_sealing();
        let age = self.config.max_batch_age_ms;
        if !self.open.is_empty() && self.now >= self.open.opened_at.saturating_add(age) {
            self.close_batch();
        }
        self.bound_journal();
    }

    /// Closes the open batch: it is encoded, compressed a step at a time, then stored,
    /// queued and checkpointed ([`sealing`]).
    fn close_batch(&mut self) {
        // The clock epoch is the number of starts over this store.
        self.begin_sealing(self.starts, true);
    }

    fn count_overflow(&mut self, old: &ClosedBatch) {
        self.stats
            .dropped
            .add(DropReason::Overflow, u64::from(old.count));
        self.count_settled(old);
    }

    /// A batch was counted as delivered or dropped: its stored copy is to go, and replay
    /// never rebuilds its seqs from a journal that was kept.
    fn count_settled(&mut self, b: &ClosedBatch) {
        self.settled_seq = self.settled_seq.max(b.last_seq_bound().unwrap_or(0));
        self.settle_stored(b.id);
    }

    fn enqueue_closed(&mut self, mut closed: ClosedBatch) {
        closed.ready_after = self.store_batch(&closed);
        let in_flight = self.schedule.in_flight_batch();
        let max = self.config.max_queue_bytes as usize;
        for old in self.queue.push(closed, max, in_flight) {
            self.count_overflow(&old);
        }
    }

    fn compress(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        self.gzipper.gzip_into(raw, gzip::GZIP_LEVEL, &mut body);
        body
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("session_id", &self.session_id)
            .field("enabled", &self.enabled)
            .field("open_page_views", &self.page_views.len())
            .field("open_batch", &self.open.len())
            .field("queued_batches", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn fraction_to_pct(fraction: f32) -> Option<u32> {
    if !(0.0..=1.0).contains(&fraction) {
        return None;
    }
    // Round half up without `f32::round`, which needs std.
    Some((fraction * 100.0 + 0.5) as u32)
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
