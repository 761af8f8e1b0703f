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

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use prost::Message;

use crate::batch::{OpenBatch, PageViewRef, Pending};
use crate::config::{Config, ConfigError};
use crate::contract::{ImpressionFacts, Rule, valid_id};
use crate::dedup::{MAX_EXPOSURES_PER_PAGE_VIEW, Seen, Verdict};
use crate::gzip;
use crate::intern::Interner;
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
    Store, StoreError, StoreOp, StoreRequest, Stored, frame_into, read_frames, read_single_frame,
};
use crate::upload::{
    self, APP_KEY_HEADER, BATCH_HEADER, CONTENT_TYPE, Disposition, Header, MAX_RETRY_AFTER_MS,
    UPLOAD_PATH, UPLOAD_TIMEOUT_MS, Upload, UploadOutcome,
};
use crate::viewability::{Place, Qualified, Tracker};
use crate::wire;

/// Name of this SDK on the wire.
pub const SDK_NAME: &str = "sightline";
/// Version of this SDK on the wire.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Page views open at once; opening one more ends the oldest (a host that forgets to end
/// page views must not grow memory without bound).
pub const MAX_OPEN_PAGE_VIEWS: usize = 16;
/// Item and artwork ids one page view may know: its layout plus an item and an artwork for
/// each exposure it may track.
const MAX_NAMES_PER_PAGE_VIEW: usize = 3 * MAX_EXPOSURES_PER_PAGE_VIEW;
/// Ended page view structures kept for reuse, so steady-state logging does not allocate.
const SPARE_PAGE_VIEWS: usize = 4;
/// Journal size that forces a checkpoint even with nothing to batch (a sampled-out install
/// journals every impression and never closes a batch): bounds the journal a start reads.
const JOURNAL_CHECKPOINT_BYTES: usize = 16 * 1024;
/// A monotonic clock that goes back further than this was reset (suspend, firmware clock
/// restart), not jittered.
const CLOCK_RESET_MS: u64 = 60_000;
/// Seqs reserved in durable state ahead of use: a restart treats every reserved seq as
/// possibly issued, so a journal that lost its tail is counted, never reused. Bigger means
/// fewer state writes and more seqs counted as lost after an unclean stop.
pub const SEQ_RESERVE: u64 = 32;

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

struct PageView {
    ordinal: u64,
    page: String,
    request_id: Option<String>,
    start_mono: u64,
    start_wall: u64,
    /// Item and artwork ids seen on this page view.
    names: Interner,
    /// Declared layout: rows of interned item ids.
    layout: Option<Vec<Vec<u32>>>,
    tracker: Tracker,
    seen: Seen,
}

impl PageView {
    /// Whether the page view can learn these ids: every id it knows is kept until it ends,
    /// so they are bounded like its exposures.
    fn room_for(&self, item: &str, artwork: Option<&str>) -> bool {
        let new_ids = usize::from(self.names.find(item).is_none())
            + usize::from(artwork.is_some_and(|a| self.names.find(a).is_none()));
        self.names.len() + new_ids <= MAX_NAMES_PER_PAGE_VIEW
    }

    fn batch_ref(&self) -> PageViewRef<'_> {
        PageViewRef {
            ordinal: self.ordinal,
            page: &self.page,
            request_id: self.request_id.as_deref(),
            start_mono: self.start_mono,
            start_wall: self.start_wall,
        }
    }

    fn check_layout(&self, item: &str, row: u32, column: u32) -> Result<(), Rule> {
        let Some(layout) = &self.layout else {
            return Ok(());
        };
        let Some(id) = self.names.find(item) else {
            return Err(Rule::NotOnPage);
        };
        let at = layout
            .get(row as usize)
            .and_then(|r| r.get(column as usize));
        if at == Some(&id) {
            Ok(())
        } else if layout.iter().any(|r| r.contains(&id)) {
            Err(Rule::WrongPosition)
        } else {
            Err(Rule::NotOnPage)
        }
    }
}

struct InFlight {
    /// Unique per attempt, so a late answer to an attempt that timed out is not taken for
    /// the answer to its retry.
    upload: u64,
    batch: u64,
    since: u64,
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
    /// The state record of the last checkpoint; seq reservations rewrite it.
    checkpointed: State,
    /// Seqs up to this one may have been issued (durably reserved once written).
    reserved: u64,
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
    in_flight: Option<InFlight>,
    next_upload: u64,
    next_send_at: u64,
    blocked_until_wall: u64,
    blocked_for: u64,
    next_batch_id: u64,
    next_batch_no: u64,
    record_buf: Vec<u8>,
    frame_buf: Vec<u8>,
    qualified: Vec<Qualified>,
    /// One compressor for every batch: its state is the largest allocation of the SDK.
    gzipper: gzip::Gzipper,
    /// The encoded batch before compression, reused across closes.
    encode_buf: Vec<u8>,
    settled: Vec<Settled>,
    /// Journal bytes appended since the last checkpoint.
    journal_bytes: usize,
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
            checkpointed: State::default(),
            reserved: 0,
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
            in_flight: None,
            next_upload: 1,
            next_send_at: now.mono_ms,
            blocked_until_wall: 0,
            blocked_for: 0,
            next_batch_id: 1,
            next_batch_no: 1,
            record_buf: Vec::new(),
            frame_buf: Vec::new(),
            qualified: Vec::new(),
            gzipper: gzip::Gzipper::new(),
            encode_buf: Vec::new(),
            settled: Vec::new(),
            journal_bytes: 0,
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

    /// The next store operation to perform, if any. One is handed out at a time: the next
    /// comes once this one is acknowledged with [`Logger::handle_store_result`]. The
    /// operation is borrowed; a host that performs it later copies it.
    pub fn poll_store_op(&mut self) -> Option<&StoreRequest> {
        let settled = &mut self.settled;
        self.outbox
            .poll(&mut |f: Finished| Self::undo_settled(settled, f))
    }

    /// The result of the store operation `id` handed out by [`Logger::poll_store_op`]. A
    /// failed write is counted (`store_errors`), and what depended on it is not done (the
    /// journal is kept when the state that replaces it failed).
    pub fn handle_store_result(
        &mut self,
        id: u64,
        result: Result<(), StoreError>,
    ) -> Result<(), UnknownStoreOp> {
        let finished = self
            .outbox
            .acknowledge(id, result.is_ok())
            .ok_or(UnknownStoreOp(id))?;
        if !finished.ok {
            self.stats.store_errors += 1;
        }
        Self::undo_settled(&mut self.settled, finished);
        Ok(())
    }

    /// Performs every planned store operation on `store`, synchronously; returns how many.
    pub fn perform_store_ops<S: Store + ?Sized>(&mut self, store: &mut S) -> usize {
        let mut n = 0;
        while let Some(request) = self.poll_store_op() {
            let (id, result) = (request.id, store.apply(&request.op));
            // The id was just handed out, so it is the one awaited.
            let _ = self.handle_store_result(id, result);
            n += 1;
        }
        n
    }

    /// True while store operations are planned or awaiting their result.
    pub fn store_busy(&self) -> bool {
        self.outbox.busy()
    }

    /// Bytes held by planned store operations not yet handed out, for memory accounting.
    pub fn store_backlog_bytes(&self) -> usize {
        self.outbox.planned_bytes()
    }

    fn undo_settled(settled: &mut Vec<Settled>, finished: Finished) {
        if let Purpose::RemoveSettled(id) = finished.purpose {
            if finished.ok {
                settled.retain(|s| s.id != id);
            } else if let Some(s) = settled.iter_mut().find(|s| s.id == id) {
                s.removing = false;
            }
        }
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
        self.journal(&Entry::PageViewStart {
            ordinal,
            start_mono: pv.start_mono,
            start_wall: pv.start_wall,
            page,
            request_id,
        });
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
        let place = self.place(i, item)?;
        let artwork = item
            .artwork_id
            .map_or(0, |a| self.page_views[i].names.intern(a) + 1);
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
        let place = self.place(i, item)?;
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
    /// logged, and the open batch is closed so it is durable and can be sent.
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
        self.close_batch();
    }

    /// The app or tab is visible again: timers resume.
    pub fn handle_app_visible(&mut self, now: Now) {
        self.tick(now);
        self.hidden = false;
        for pv in &mut self.page_views {
            pv.tracker.show(self.now);
        }
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
            visible_ms: u32::try_from(imp.visible_ms).unwrap_or(u32::MAX),
        };
        if let Err(rule) = self.config.contract.check_impression(&facts) {
            return Err(self.refuse(rule));
        }
        let i = self.page_view_index(page_view)?;
        let pv = &self.page_views[i];
        if let Err(rule) = pv.check_layout(imp.item_id, imp.row, imp.column) {
            return Err(self.refuse(rule));
        }
        let first_visible = self.internal(imp.first_visible_mono_ms);
        let end = first_visible.saturating_add(imp.visible_ms);
        if first_visible < pv.start_mono || end > self.now || imp.focused_ms > imp.visible_ms {
            return Err(self.refuse(Rule::OutsidePageView));
        }
        if !self.page_views[i].room_for(imp.item_id, imp.artwork_id) {
            return Err(self.refuse(Rule::PageViewFull));
        }
        let names = &mut self.page_views[i].names;
        let q = Qualified {
            place: Place {
                item: names.intern(imp.item_id),
                row: imp.row,
                column: imp.column,
            },
            artwork: imp.artwork_id.map_or(0, |a| names.intern(a) + 1),
            first_visible_mono: first_visible,
            visible_ms: imp.visible_ms,
            max_visible_pct: pct,
            focused_ms: imp.focused_ms,
        };
        let outcome = self.admit(i, &q);
        self.drive();
        outcome
    }

    /// Closes the open batch now (explicit flush), making it durable and ready to send.
    pub fn flush(&mut self, now: Now) {
        self.tick(now);
        self.close_batch();
    }

    /// Call when the deadline from [`Logger::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.tick(now);
        if let Some(f) = &self.in_flight {
            if self.now >= f.since.saturating_add(UPLOAD_TIMEOUT_MS) {
                let upload = f.upload;
                // The id is the one in flight, so this cannot be unknown.
                let _ = self.settle(upload, UploadOutcome::NetworkError);
            }
        }
        self.drive();
    }

    /// The next monotonic time at which the host must call [`Logger::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut deadline: Option<u64> = None;
        let mut consider = |t: u64| deadline = Some(deadline.map_or(t, |d: u64| d.min(t)));
        if !self.open.is_empty() {
            consider(
                self.open
                    .opened_at
                    .saturating_add(self.config.max_batch_age_ms),
            );
        }
        match &self.in_flight {
            Some(f) => consider(f.since.saturating_add(UPLOAD_TIMEOUT_MS)),
            None if !self.queue.is_empty() => consider(self.next_send_at),
            None => {}
        }
        // Back on the host's clock.
        deadline.map(|d| d.saturating_sub(self.mono_offset))
    }

    /// The next upload to perform, if one is due. At most one is in flight at a time.
    pub fn poll_upload(&mut self, now: Now) -> Option<Upload> {
        self.tick(now);
        if self.in_flight.is_some() || self.now < self.next_send_at {
            return None;
        }
        let batch = self.queue.front()?;
        // Durability first: what the batch depends on (its stored copy, the state naming its
        // seqs) must be acknowledged, so no seq it carries can be issued again after a crash.
        if batch.ready_after > self.outbox.settled_through() {
            return None;
        }
        let (id, batch_no) = (batch.id, batch.batch_no);
        let attempt = batch.attempts + 1;
        let send = proto::Batch {
            send: Some(proto::SendInfo {
                sent_at_wall_ms: self.wall,
                mono_epoch: self.starts,
                sent_at_mono_ms: self.now,
                attempt,
            }),
            ..Default::default()
        };
        let mut body = batch.body.clone();
        // A few bytes: stored, so sending needs no compressor.
        gzip::gzip_stored_into(&send.encode_to_vec(), &mut body);
        if let Some(b) = self.queue.get_mut(id) {
            b.attempts = attempt;
        }
        self.stats.uploads += 1;
        if attempt > 1 {
            self.stats.retries += 1;
        }
        let upload = self.next_upload;
        self.next_upload += 1;
        self.in_flight = Some(InFlight {
            upload,
            batch: id,
            since: self.now,
        });
        Some(Upload {
            id: upload,
            path: UPLOAD_PATH.to_string(),
            headers: alloc::vec![
                Header {
                    name: "content-type".to_string(),
                    value: CONTENT_TYPE.to_string(),
                },
                Header {
                    name: APP_KEY_HEADER.to_string(),
                    value: self.config.app_key.clone(),
                },
                Header {
                    name: BATCH_HEADER.to_string(),
                    value: format!("{}/{}", self.session_id, batch_no),
                },
            ],
            body,
        })
    }

    /// The outcome of an upload returned by [`Logger::poll_upload`].
    pub fn handle_upload_result(
        &mut self,
        id: u64,
        outcome: UploadOutcome,
        now: Now,
    ) -> Result<(), UnknownUpload> {
        self.tick(now);
        let result = self.settle(id, outcome);
        self.drive();
        result
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
        for b in self.queue.drain() {
            self.stats
                .dropped
                .add(DropReason::Purged, u64::from(b.count));
            self.settle_stored(b.id);
        }
        self.in_flight = None;
        let spare = &mut self.spare;
        spare.extend(self.page_views.drain(..).take(SPARE_PAGE_VIEWS));
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

    fn place(&mut self, i: usize, item: &ItemRef<'_>) -> Result<Place, Rule> {
        let c = &self.config.contract;
        let rule = if !valid_id(item.item_id, c.max_id_len) {
            Some(Rule::ItemId)
        } else if item.artwork_id.is_some_and(|a| !valid_id(a, c.max_id_len)) {
            Some(Rule::ArtworkId)
        } else if item.row >= c.max_position || item.column >= c.max_position {
            Some(Rule::Position)
        } else {
            self.page_views[i]
                .check_layout(item.item_id, item.row, item.column)
                .err()
        };
        if let Some(rule) = rule {
            return Err(self.refuse(rule));
        }
        if !self.page_views[i].room_for(item.item_id, item.artwork_id) {
            return Err(self.refuse(Rule::PageViewFull));
        }
        Ok(Place {
            item: self.page_views[i].names.intern(item.item_id),
            row: item.row,
            column: item.column,
        })
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
            };
            if let Err(rule) = self.config.contract.check_impression(&facts) {
                self.refuse(rule);
                continue;
            }
            // The page-view bound is counted inside.
            let _ = self.admit(i, q);
        }
        list.clear();
        self.qualified = list;
    }

    /// sample -> dedup -> buffer, for an impression that passed validation.
    fn admit(&mut self, i: usize, q: &Qualified) -> Result<Recorded, Rule> {
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
        let seq = self.enqueue(i, q);
        Ok(Recorded::Logged { seq })
    }

    fn enqueue(&mut self, i: usize, q: &Qualified) -> u64 {
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
        let item = self.open.intern_item(item_id);
        let artwork = artwork_id.map_or(0, |a| self.open.intern_artwork(a) + 1);
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
        self.record_buf.clear();
        entry.encode(self.generation, &mut self.record_buf);
        self.append_record();
        if self.open.full(max, self.config.contract.max_id_len) {
            self.close_batch();
        }
        seq
    }

    fn journal(&mut self, entry: &Entry<'_>) {
        self.record_buf.clear();
        entry.encode(self.generation, &mut self.record_buf);
        self.append_record();
    }

    /// Checkpoints a journal grown past its bound. Called only where the logger's state is
    /// whole (not between journaling an event and applying it), and only with an empty open
    /// batch, whose impressions live in the journal until it closes.
    fn bound_journal(&mut self) {
        if self.journal_bytes > JOURNAL_CHECKPOINT_BYTES && self.open.is_empty() {
            self.checkpoint();
        }
    }

    fn append_record(&mut self) {
        self.frame_buf.clear();
        frame_into(&mut self.frame_buf, &self.record_buf);
        self.journal_bytes += self.frame_buf.len();
        self.outbox.append(&self.frame_buf);
    }

    /// Makes `seq` and the next [`SEQ_RESERVE`] - 1 durably "possibly issued" before the
    /// first of them is journaled: the state of the last checkpoint, with the new bound.
    fn reserve_seqs(&mut self, seq: u64) {
        self.reserved = seq.saturating_add(SEQ_RESERVE - 1);
        self.checkpointed.reserved_through = self.reserved;
        let state = core::mem::take(&mut self.checkpointed);
        self.put_record(STATE_KEY, &state, Purpose::State);
        self.checkpointed = state;
    }

    /// Closes the open batch if the age rule says so, and bounds the journal.
    fn drive(&mut self) {
        let age = self.config.max_batch_age_ms;
        if !self.open.is_empty() && self.now >= self.open.opened_at.saturating_add(age) {
            self.close_batch();
        }
        self.bound_journal();
    }

    fn header(&self, batch_no: u64) -> proto::Batch {
        let c = &self.config;
        proto::Batch {
            schema_version: wire::SCHEMA_VERSION,
            sdk_name: SDK_NAME.to_string(),
            sdk_version: SDK_VERSION.to_string(),
            app_id: c.app_id.clone(),
            app_version: c.app_version.clone(),
            platform: c.platform.to_proto() as i32,
            device: c.device.clone(),
            install_id: c.install_id.clone(),
            session_id: self.session_id.clone(),
            batch_no,
            contract_version: c.contract.version,
            sample_rate_ppm: c.sample_rate_ppm,
            reentry: c.contract.reentry.to_proto(),
            counters: Some(self.stats.to_proto()),
            clock: Some(proto::BatchClock {
                closed_at_mono_ms: self.now,
                closed_at_wall_ms: self.wall,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Encodes, compresses, persists and queues the open batch, then checkpoints.
    fn close_batch(&mut self) {
        if self.open.is_empty() {
            return;
        }
        // The clock epoch is the number of starts over this store.
        self.seal_open_batch(self.starts);
        self.checkpoint();
    }

    /// Encodes, compresses, persists and queues the open batch (if any) under `epoch`.
    /// Room in the queue is made before the counters are written into the batch, so the
    /// batch that causes an overflow drop reports it.
    fn seal_open_batch(&mut self, epoch: u32) {
        if self.open.is_empty() {
            return;
        }
        let batch_no = self.next_batch_no;
        let mut raw = core::mem::take(&mut self.encode_buf);
        let in_flight = self.in_flight.as_ref().map(|f| f.batch);
        let max = self.config.max_queue_bytes as usize;
        let body = loop {
            raw.clear();
            self.open
                .encode_into(self.header(batch_no), epoch, &mut raw);
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
        let closed = ClosedBatch {
            id: self.next_batch_id,
            batch_no,
            first_seq: self.open.first_seq,
            count: self.open.len() as u32,
            attempts: 0,
            body,
            ready_after: 0,
        };
        self.encode_buf = raw;
        self.next_batch_id += 1;
        self.next_batch_no += 1;
        self.open.clear();
        self.enqueue_closed(closed);
    }

    fn count_overflow(&mut self, old: &ClosedBatch) {
        self.stats
            .dropped
            .add(DropReason::Overflow, u64::from(old.count));
        self.settle_stored(old.id);
    }

    /// A batch was counted as delivered or dropped: its stored copy goes once `acks` says so.
    fn settle_stored(&mut self, id: u64) {
        self.settled.push(Settled {
            id,
            removing: false,
        });
    }

    fn enqueue_closed(&mut self, mut closed: ClosedBatch) {
        closed.ready_after = self.store_batch(&closed);
        let in_flight = self.in_flight.as_ref().map(|f| f.batch);
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

    /// Plans the batch's stored copy; returns its ticket.
    fn store_batch(&mut self, batch: &ClosedBatch) -> u64 {
        let op = self.outbox.put_op(&batch.key(), |buf| {
            frame_with(buf, |payload| batch.write_record(payload))
        });
        self.outbox.plan(op, Purpose::Plain)
    }

    fn unstore(&mut self, key: &str) {
        let op = self.outbox.remove_op(key);
        self.outbox.plan(op, Purpose::Plain);
    }

    /// Writes counters and ids, starts a new journal generation and re-journals what the
    /// new generation needs (the epoch and the open page views). Order matters for a crash
    /// in between: `state` first (a new generation makes the journal's records old), then
    /// `acks` (drops and settled batches), then the journal is cleared. If `state` cannot
    /// be written, the journal is kept: it is then the only record of its events.
    fn checkpoint(&mut self) {
        self.generation = self.generation.saturating_add(1);
        // Every seq issued so far is in a batch planned before this state.
        self.reserved = self.stats.issued;
        let s = &self.stats;
        let state = State {
            session_id: self.session_id.clone(),
            generation: self.generation,
            starts: self.starts,
            next_batch_id: self.next_batch_id,
            next_batch_no: self.next_batch_no,
            next_page_view: self.next_page_view,
            recorded: s.recorded,
            sampled_out: s.sampled_out,
            deduped: s.deduped,
            issued: s.issued,
            invalid: s.invalid,
            invalid_by_rule: s.invalid_by_rule.to_stored(),
            reserved_through: self.reserved,
        };
        let saved = self.put_record(STATE_KEY, &state, Purpose::State);
        self.checkpointed = state;
        self.write_acks();
        // Only once the new state is acknowledged; if it fails, the journal stays (replay
        // takes records of the stored generation and later ones).
        self.outbox
            .plan_if_ok_since(saved, StoreOp::ClearJournal, Purpose::Plain);
        self.journal_bytes = 0;
        self.journal(&Entry::Epoch {
            mono_epoch: self.starts,
        });
        for i in 0..self.page_views.len() {
            let pv = &self.page_views[i];
            let entry = Entry::PageViewStart {
                ordinal: pv.ordinal,
                start_mono: pv.start_mono,
                start_wall: pv.start_wall,
                page: &pv.page,
                request_id: pv.request_id.as_deref(),
            };
            self.record_buf.clear();
            entry.encode(self.generation, &mut self.record_buf);
            self.append_record();
        }
    }

    /// Plans a record's write; returns its ticket.
    fn put_record<T: Message>(&mut self, key: &str, value: &T, purpose: Purpose) -> u64 {
        let op = self.outbox.put_op(key, |buf| {
            frame_with(buf, |payload| value.encode_raw(payload))
        });
        self.outbox.plan(op, purpose)
    }

    /// Writes `acks`, then removes the stored copies of the batches it lists as settled,
    /// once it is acknowledged.
    fn write_acks(&mut self) {
        let front = self.queue.front().map_or((0, 0), |b| (b.id, b.attempts));
        let ids: Vec<u64> = self.settled.iter().map(|s| s.id).collect();
        let acks = Acks::from_stats(
            &self.stats,
            self.blocked_until_wall,
            self.blocked_for,
            &ids,
            front,
        );
        let written = self.put_record(ACKS_KEY, &acks, Purpose::Plain);
        for i in 0..self.settled.len() {
            let s = self.settled[i];
            if s.removing {
                continue;
            }
            self.settled[i].removing = true;
            let op = self.outbox.remove_op(&crate::queue::batch_key(s.id));
            self.outbox
                .plan_if_ok_since(written, op, Purpose::RemoveSettled(s.id));
        }
    }

    /// Reads a record: `None` when absent or corrupt (counted).
    fn get_record<T: Message + Default>(&mut self, stored: &Stored, key: &str) -> Option<T> {
        let bytes = stored.get(key)?;
        let parsed = read_single_frame(bytes).and_then(|raw| T::decode(raw).ok());
        if parsed.is_none() {
            self.stats.corrupt_records += 1;
        }
        parsed
    }

    fn settle(&mut self, upload: u64, outcome: UploadOutcome) -> Result<(), UnknownUpload> {
        let id = match &self.in_flight {
            Some(f) if f.upload == upload => f.batch,
            _ => return Err(UnknownUpload(upload)),
        };
        self.in_flight = None;
        let Some(batch) = self.queue.get_mut(id) else {
            return Err(UnknownUpload(upload));
        };
        let (count, attempts, body_len) =
            (u64::from(batch.count), batch.attempts, batch.body.len());
        match upload::classify(&outcome) {
            Disposition::Delivered => {
                self.queue.remove(id);
                self.stats.delivered += count;
                self.stats.bytes_delivered += body_len as u64;
                self.settle_stored(id);
                self.next_send_at = self.now;
            }
            Disposition::Reject => self.drop_batch(id, DropReason::Rejected),
            Disposition::Split => self.split(id),
            Disposition::Retry if attempts >= self.config.max_attempts => {
                self.drop_batch(id, DropReason::RetriesExhausted);
            }
            Disposition::Retry => {
                let c = &self.config;
                let backoff =
                    upload::backoff_ms(attempts, c.retry_base_ms, c.retry_max_ms, &mut self.rng);
                let asked = match &outcome {
                    UploadOutcome::Status {
                        retry_after: Some(text),
                        ..
                    } => upload::parse_retry_after(text, self.wall).unwrap_or(0),
                    _ => 0,
                };
                if asked > 0 {
                    self.blocked_until_wall = self.wall.saturating_add(asked);
                    self.blocked_for = asked;
                }
                self.next_send_at = self.now.saturating_add(backoff.max(asked));
            }
        }
        // Also persists the front batch's attempt count, so backoff survives a restart
        // without rewriting the batch.
        self.write_acks();
        Ok(())
    }

    fn drop_batch(&mut self, id: u64, reason: DropReason) {
        if let Some(b) = self.queue.remove(id) {
            self.stats.dropped.add(reason, u64::from(b.count));
            self.settle_stored(b.id);
        }
        self.next_send_at = self.now;
    }

    /// 413: re-encode the batch as two halves, each with its own string table, and send
    /// those instead; a single impression that is still too large is dropped.
    fn split(&mut self, id: u64) {
        let Some(batch) = self.queue.get_mut(id).map(|b| b.clone()) else {
            return;
        };
        let decoded = wire::decode_gzip_batch(&batch.body)
            .ok()
            .and_then(|b| wire::impressions(&b).ok().map(|rows| (b, rows)));
        let Some((proto_batch, rows)) = decoded.filter(|(_, rows)| rows.len() > 1) else {
            self.drop_batch(id, DropReason::TooLarge);
            return;
        };
        let (left, right) = rows.split_at(rows.len() / 2);
        let mut first_half = None;
        // Push the right half first so the left half ends up in front.
        for half in [right, left] {
            let part = crate::batch::subset(&proto_batch, half);
            let mut closed = ClosedBatch {
                id: self.next_batch_id,
                batch_no: self.next_batch_no,
                first_seq: half[0].seq,
                count: half.len() as u32,
                attempts: 0,
                body: self.compress(
                    &proto::Batch {
                        batch_no: self.next_batch_no,
                        ..part
                    }
                    .encode_to_vec(),
                ),
                ready_after: 0,
            };
            self.next_batch_id += 1;
            self.next_batch_no += 1;
            closed.ready_after = self.store_batch(&closed);
            first_half.get_or_insert(closed.ready_after);
            self.queue.push_front(closed);
        }
        // Only once both halves are stored: a crash in between leaves the original and
        // the halves, and recovery keeps the original.
        self.queue.remove(id);
        let op = self.outbox.remove_op(&batch.key());
        if let Some(since) = first_half {
            self.outbox.plan_if_ok_since(since, op, Purpose::Plain);
        }
        self.next_send_at = self.now;
    }

    /// Restores the session, counters, queue and journaled events from the store. A read
    /// error fails the start (absent and unreadable must not be confused).
    fn recover(&mut self, stored: &Stored) {
        // Whatever is stored, even unreadable, seeds a new session id, so a logger whose
        // state was lost does not reuse its old session id (and collide on seqs).
        let previous = stored
            .get(STATE_KEY)
            .map_or(0, |bytes| crate::rng::hash_bytes(0, bytes));
        let state: Option<State> = self.get_record(stored, STATE_KEY);
        let acks: Option<Acks> = self.get_record(stored, ACKS_KEY);
        let prefs: Prefs = self.get_record(stored, PREFS_KEY).unwrap_or_default();
        self.enabled = !prefs.opted_out;
        let resumed = state.is_some();
        match state {
            Some(s) => {
                self.session_id = s.session_id;
                self.generation = s.generation;
                self.starts = s.starts;
                self.next_batch_id = s.next_batch_id;
                self.next_batch_no = s.next_batch_no;
                self.next_page_view = s.next_page_view;
                let st = &mut self.stats;
                st.recorded = s.recorded;
                st.sampled_out = s.sampled_out;
                st.deduped = s.deduped;
                st.issued = s.issued;
                st.invalid = s.invalid;
                st.invalid_by_rule = crate::stats::RuleCounts::from_stored(&s.invalid_by_rule);
                self.reserved = s.reserved_through;
            }
            None => {
                // Mixed with the install id and the wall clock: hosts that pass the same
                // seed everywhere must still not share session ids.
                let install = crate::rng::hash_bytes(self.wall, self.config.install_id.as_bytes());
                let clocks = crate::rng::mix64(self.now ^ self.wall.rotate_left(32));
                let id = self.rng.next_u64() ^ install ^ previous ^ clocks;
                self.session_id = format!("{id:016x}");
            }
        }
        // Acknowledgements belong to the session in `state`; without it they describe a
        // session that is gone.
        let mut settled = Vec::new();
        let mut front_attempts = (0, 0);
        if let Some(a) = acks.filter(|_| resumed) {
            let st = &mut self.stats;
            st.delivered = a.delivered;
            st.dropped = a.drops();
            st.uploads = a.uploads;
            st.retries = a.retries;
            st.bytes_delivered = a.bytes_delivered;
            st.store_errors += a.store_errors;
            st.corrupt_records += a.corrupt_records;
            self.blocked_until_wall = a.blocked_until_wall_ms;
            self.blocked_for = a.blocked_for_ms;
            front_attempts = (a.attempts_batch, a.attempts);
            settled = a.settled;
        }
        // Jitter must differ between restarts even with the same configured seed.
        self.rng = Rng::new(self.config.seed ^ crate::rng::mix64(u64::from(self.starts) + 1));
        self.starts += 1;
        let key = match self.config.sample_key {
            SampleKey::Install if !self.config.install_id.is_empty() => {
                self.config.install_id.clone()
            }
            _ => self.session_id.clone(),
        };
        self.sampled_in = sampling::keep(&key, self.config.sample_rate_ppm);

        let stored_through = self.load_batches(stored, &settled);
        if let Some(b) = self.queue.get_mut(front_attempts.0) {
            b.attempts = b.attempts.max(front_attempts.1);
        }
        self.settled.extend(settled.into_iter().map(|id| Settled {
            id,
            removing: false,
        }));
        let journaled_through = self.replay_journal(stored, stored_through);
        if prefs.purge_pending {
            self.purge();
        }
        self.account_for_losses(stored_through.max(journaled_through), prefs.purge_pending);
        let blocked = self.blocked_until_wall.saturating_sub(self.wall);
        self.next_send_at = self
            .now
            .saturating_add(blocked.min(self.blocked_for).min(MAX_RETRY_AFTER_MS));
        if let Some(front) = self.queue.front() {
            if front.attempts > 0 {
                let c = &self.config;
                let wait = upload::backoff_ms(
                    front.attempts,
                    c.retry_base_ms,
                    c.retry_max_ms,
                    &mut self.rng,
                );
                self.next_send_at = self.next_send_at.max(self.now.saturating_add(wait));
            }
        }
        self.checkpoint();
        if prefs.purge_pending {
            self.put_record(
                PREFS_KEY,
                &Prefs {
                    opted_out: prefs.opted_out,
                    purge_pending: false,
                },
                Purpose::Plain,
            );
        }
    }

    /// After recovery, every seq issued must be queued, delivered or dropped. Seqs proven
    /// issued (by a stored batch) count as recorded; impressions whose stored records were
    /// lost (a failed write, a corrupt batch, a crash between writes) count as dropped for
    /// a store failure, or as purged when a purge was under way.
    ///
    /// Seqs reserved beyond the highest one found may have been issued to impressions
    /// whose journal records never became durable: they count as recorded and dropped as
    /// `journal_lost` (at most [`SEQ_RESERVE`] per unclean stop, some possibly never used).
    fn account_for_losses(&mut self, found_through: u64, purging: bool) {
        let st = &mut self.stats;
        st.issued = st.issued.max(found_through);
        let unconfirmed = self.reserved.saturating_sub(st.issued);
        st.issued += unconfirmed;
        st.recorded = st.recorded.max(st.sampled_out + st.deduped + st.issued);
        let held = self.queue.impressions() + self.open.len() as u64;
        let lost = st.pending().saturating_sub(held);
        let reason = if purging {
            DropReason::Purged
        } else {
            DropReason::StoreCorrupt
        };
        let unconfirmed = unconfirmed.min(lost);
        let reason_unconfirmed = if purging {
            DropReason::Purged
        } else {
            DropReason::JournalLost
        };
        st.dropped.add(reason_unconfirmed, unconfirmed);
        st.dropped.add(reason, lost - unconfirmed);
    }

    /// Loads stored batches into the queue; returns the highest seq they hold. Batches
    /// `settled` names were already counted: their leftover copies are removed.
    fn load_batches(&mut self, stored: &Stored, settled: &[u64]) -> u64 {
        let mut through = 0;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for (key, bytes) in stored
            .keys(BATCH_KEY_PREFIX)
            .filter_map(|k| Some((k, stored.get(k)?)))
        {
            let record = read_single_frame(bytes)
                .and_then(ClosedBatch::from_record)
                .and_then(|b| b.last_seq_bound().map(|last| (b, last)));
            let Some((batch, last)) = record else {
                // Unreadable: its impressions are counted lost once recovery is done.
                self.stats.corrupt_records += 1;
                self.unstore(key);
                continue;
            };
            // A crash between storing the halves of a split batch and removing the
            // original leaves both: the halves are redundant copies.
            let overlaps = ranges
                .iter()
                .any(|&(a, b)| batch.first_seq <= b && a <= last);
            if settled.contains(&batch.id) || overlaps {
                self.unstore(key);
                continue;
            }
            ranges.push((batch.first_seq, last));
            through = through.max(last);
            self.next_batch_id = self.next_batch_id.max(batch.id.saturating_add(1));
            self.next_batch_no = self.next_batch_no.max(batch.batch_no.saturating_add(1));
            let max = self.config.max_queue_bytes as usize;
            for old in self.queue.push(batch, max, None) {
                self.count_overflow(&old);
            }
        }
        through
    }

    /// Applies the journal records of the stored generation and later ones (a later one
    /// exists when a checkpoint's state write failed and the journal was kept): counters,
    /// and impressions that are not already in a stored batch, which are closed into a
    /// batch of their own epoch. Returns the highest seq journaled.
    fn replay_journal(&mut self, stored: &Stored, stored_through: u64) -> u64 {
        let frames = read_frames(&stored.journal);
        let mut journaled_through = 0;
        if frames.corrupt_tail {
            self.stats.corrupt_records += 1;
        }
        let mut epoch = 0;
        let mut pvs: Vec<(u64, String, Option<String>, u64, u64)> = Vec::new();
        for payload in frames.payloads {
            let Some((generation, entry)) = Entry::decode(payload) else {
                self.stats.corrupt_records += 1;
                continue;
            };
            if generation < self.generation {
                continue;
            }
            match entry {
                Entry::Epoch { mono_epoch } => epoch = mono_epoch,
                Entry::PageViewStart {
                    ordinal,
                    start_mono,
                    start_wall,
                    page,
                    request_id,
                } => {
                    self.next_page_view = self.next_page_view.max(ordinal + 1);
                    pvs.push((
                        ordinal,
                        page.to_string(),
                        request_id.map(ToString::to_string),
                        start_mono,
                        start_wall,
                    ));
                }
                Entry::PageViewEnd {
                    ordinal,
                    duration_ms,
                } => self.open.end_page_view(ordinal, duration_ms),
                Entry::SampledOut => {
                    self.stats.recorded += 1;
                    self.stats.sampled_out += 1;
                }
                Entry::Deduped => {
                    self.stats.recorded += 1;
                    self.stats.deduped += 1;
                }
                Entry::Invalid { rule } => {
                    if let Some(r) = Rule::from_code(rule) {
                        self.stats.count_invalid(r);
                    }
                }
                Entry::Impression(imp) => {
                    self.stats.recorded += 1;
                    // Raised as replay goes, so a batch sealed here has counters that
                    // cover its seqs.
                    self.stats.issued = self.stats.issued.max(imp.seq);
                    journaled_through = journaled_through.max(imp.seq);
                    if imp.seq <= stored_through {
                        continue;
                    }
                    let Some(pv) = pvs.iter().find(|p| p.0 == imp.page_view) else {
                        // Its page view record was lost (a failed journal append): counted
                        // lost with the other gaps once recovery is done.
                        continue;
                    };
                    let pv_ref = PageViewRef {
                        ordinal: pv.0,
                        page: &pv.1,
                        request_id: pv.2.as_deref(),
                        start_mono: pv.3,
                        start_wall: pv.4,
                    };
                    // Seqs in a batch are contiguous: a record lost in between starts another.
                    let next = self.open.first_seq + self.open.len() as u64;
                    if self.open.full(
                        self.config.max_batch_impressions as usize,
                        self.config.contract.max_id_len,
                    ) || (!self.open.is_empty() && imp.seq != next)
                    {
                        self.seal_open_batch(epoch);
                    }
                    let page_view = match self.open.page_view(&pv_ref) {
                        Some(p) => p,
                        None => {
                            self.seal_open_batch(epoch);
                            self.open.page_view(&pv_ref).unwrap_or(0)
                        }
                    };
                    let item = self.open.intern_item(imp.item);
                    let artwork = imp.artwork.map_or(0, |a| self.open.intern_artwork(a) + 1);
                    self.open.push(
                        imp.seq,
                        self.now,
                        Pending {
                            item,
                            artwork,
                            row: imp.row,
                            column: imp.column,
                            first_visible_ms: imp.first_visible_ms,
                            visible_ms: imp.visible_ms,
                            focused_ms: imp.focused_ms,
                            page_view,
                            max_visible_pct: imp.max_visible_pct,
                        },
                    );
                }
            }
        }
        self.seal_open_batch(epoch);
        journaled_through
    }
}

/// Frames what `payload` writes into `buf` (length, CRC32, payload) without a second buffer.
fn frame_with(buf: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    buf.extend_from_slice(&[0; crate::store::FRAME_OVERHEAD]);
    payload(buf);
    let body = &buf[crate::store::FRAME_OVERHEAD..];
    let (len, crc) = (body.len() as u32, crate::gzip::crc32(body));
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
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
