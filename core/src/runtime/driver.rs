//! [`Driver`]: the logger's run loop on a thread of its own, for hosts with threads.
//!
//! # What it owns
//!
//! The driver owns two threads: the driver thread owns the [`Logger`] and its [`Store`],
//! and an upload thread owns the [`Transport`]; nothing else touches them. Host threads
//! talk to the driver thread over a command
//! channel: each `Driver` method stamps the current time from the shared [`Clock`] on the
//! caller's thread (so a busy driver thread does not stretch visibility durations) and
//! sends an owned copy of its input. Calls whose answer the host needs
//! ([`Driver::start_page_view`], [`Driver::record_impression`], [`Driver::stats`]) wait for
//! the reply; the rest return at once and the logger counts any refusal in
//! [`Stats::invalid`].
//!
//! The driver thread runs the loop documented in [`crate::logger`]: it waits for a command
//! or the logger's next deadline, calls `handle_timeout` when the deadline passes, and
//! after every input hands the due upload to the upload thread, whose outcome comes back
//! as a command stamped when the request finished. A request in progress therefore never
//! delays a host call: a blocking call waits only for the logger itself. Before the
//! thread feeds the logger a time it read itself (a deadline) it takes every command
//! already sent: those carry earlier times, and the logger never moves its monotonic time
//! backwards. Delivery is asynchronous to the host: `stats()` right after `flush()` need
//! not show the upload yet.
//!
//! After every command the driver thread performs the store operations the logger asked
//! for (before it answers a waiting call), so a process killed at any point loses nothing
//! the store kept; [`Driver::shutdown`] only adds a bounded attempt to deliver what is
//! queued.
//!
//! The store is read back and the [`Logger`] resumed on the driver thread, and
//! [`Driver::start`] waits for that to succeed or fail.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{Config, ConfigError};
use crate::contract::Rule;
use crate::input::{Handled, Input, InputError};
use crate::logger::{Impression, ItemRef, Logger, Now, Recorded, StartError};
use crate::stats::Stats;
use crate::store::{Store, StoreError};
use crate::upload::{Upload, UploadOutcome};

use super::transport::Transport;

/// Name of the driver thread, as debuggers and crash reports show it.
const THREAD_NAME: &str = "sightline-driver";
/// Name of the upload thread.
const UPLOAD_THREAD_NAME: &str = "sightline-upload";

/// Longest the thread waits for a deadline without re-reading the clock: a host clock that
/// runs ahead of the channel's timer (a test's fake clock) is followed within this, and
/// an idle-but-pending logger wakes rarely enough not to cost battery.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Pause before re-checking a deadline that is due but made no progress, so a logger that
/// keeps reporting a past deadline cannot spin a core.
const STALL_WAIT: Duration = Duration::from_millis(50);

/// Where the driver reads time. Monotonic and wall-clock milliseconds, never mixed (see
/// [`Now`]). Shared by the host's threads (which stamp their calls) and the driver thread.
pub trait Clock: Send + Sync {
    /// Both clocks at once.
    fn now(&self) -> Now;

    /// Real time to wait for `mono_ms` of this clock's time. Real clocks keep the default;
    /// a clock that runs faster than real time (demos, tests) scales it, so the driver's
    /// deadlines fire on the clock's time.
    fn real_duration(&self, mono_ms: u64) -> Duration {
        Duration::from_millis(mono_ms)
    }
}

/// The real clocks: [`Instant`] since the clock was created for monotonic time, and
/// [`SystemTime`] for the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    base: Instant,
}

impl SystemClock {
    /// A clock whose monotonic milliseconds start at zero now.
    pub fn new() -> SystemClock {
        SystemClock {
            base: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Now {
        let mono_ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        // A wall clock set before 1970 stamps zero; the collector corrects skew anyway.
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Now::new(mono_ms, wall_ms)
    }
}

/// Why a driver call did not give its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverError {
    /// [`Driver::start`]: the configuration is invalid.
    Config(ConfigError),
    /// [`Driver::start`]: the store could not be read.
    Store(StoreError),
    /// [`Driver::start`]: the OS refused to start the thread; the text is for logs only.
    Spawn(String),
    /// The driver thread is gone (it died on a bug); the call had no effect.
    Stopped,
    /// The logger refused the input: it broke this rule, and was counted.
    Rule(Rule),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Config(e) => write!(f, "invalid configuration: {e}"),
            DriverError::Store(e) => write!(f, "could not read the store: {e}"),
            DriverError::Spawn(e) => write!(f, "could not start the driver thread: {e}"),
            DriverError::Stopped => f.write_str("the driver thread has stopped"),
            DriverError::Rule(rule) => write!(f, "refused: {rule}"),
        }
    }
}

impl core::error::Error for DriverError {}

/// What the host threads send the driver thread.
#[derive(Debug)]
enum Command {
    /// A logger input, stamped with the time the host made the call; `reply` when the
    /// host waits for the answer.
    Input {
        input: Input,
        now: Now,
        reply: Option<Sender<Result<Handled, InputError>>>,
    },
    Stats {
        reply: Sender<Stats>,
    },
    Shutdown {
        max_wait: Duration,
    },
}

/// Runs a [`Logger`] on its own thread: see the [module documentation](self).
///
/// `Driver` is `Send + Sync`; share it between threads with an `Arc`.
pub struct Driver {
    commands: Sender<Command>,
    /// Fixed for the logger's life (it persists across restarts over the same store).
    session_id: String,
    clock: Arc<dyn Clock>,
    /// The counters as the thread last published them, for when it is gone.
    last_stats: Arc<Mutex<Stats>>,
    /// Yields the final counters; `None` once shut down.
    thread: Option<JoinHandle<Stats>>,
}

impl Driver {
    /// Starts the driver thread and the logger on it over `store`, resuming whatever the
    /// store holds. Returns once the logger is running, or with the reason it could not start.
    pub fn start(
        config: Config,
        store: Box<dyn Store + Send>,
        transport: Box<dyn Transport>,
        clock: Box<dyn Clock>,
    ) -> Result<Driver, DriverError> {
        let clock: Arc<dyn Clock> = Arc::from(clock);
        let last_stats = Arc::new(Mutex::new(Stats::default()));
        let (commands, receiver) = mpsc::channel();
        let (ready, started) = mpsc::sync_channel(1);
        let worker_clock = Arc::clone(&clock);
        let worker_stats = Arc::clone(&last_stats);
        let (uploads, to_send) = mpsc::channel();
        let (upload_clock, results) = (Arc::clone(&clock), commands.clone());
        thread::Builder::new()
            .name(UPLOAD_THREAD_NAME.into())
            .spawn(move || upload_loop(transport, upload_clock, to_send, results))
            .map_err(|e| DriverError::Spawn(alloc::format!("{e}")))?;
        let thread = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let mut store = store;
                let logger = match Logger::start(config, &mut *store, worker_clock.now()) {
                    Ok(logger) => logger,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return Stats::default();
                    }
                };
                let worker = Worker {
                    logger,
                    store,
                    uploads,
                    clock: worker_clock,
                    commands: receiver,
                    last_stats: worker_stats,
                    stalled: false,
                    stop: None,
                };
                worker.publish();
                let _ = ready.send(Ok(String::from(worker.logger.session_id())));
                worker.run()
            })
            .map_err(|e| DriverError::Spawn(alloc::format!("{e}")))?;
        match started.recv() {
            Ok(Ok(session_id)) => Ok(Driver {
                commands,
                session_id,
                clock,
                last_stats,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(match e {
                    StartError::Config(e) => DriverError::Config(e),
                    StartError::Store(e) => DriverError::Store(e),
                })
            }
            // The thread died before it could answer (a panic while recovering the store).
            Err(_) => {
                let _ = thread.join();
                Err(DriverError::Stopped)
            }
        }
    }

    /// The driver's clock: hosts that qualify impressions themselves take
    /// [`Impression::first_visible_mono_ms`] from here.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    /// The session id: (session id, seq) identifies every impression on the wire.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Any logger input, owned (see [`Input`]). Inputs with an answer (a page view start, a
    /// pre-qualified impression) wait for it; the rest return [`Handled::Done`] at once and
    /// the logger counts any refusal.
    pub fn input(&self, input: Input) -> Result<Handled, DriverError> {
        match input {
            Input::StartPageView { .. } | Input::Impression { .. } => self.ask_input(input),
            input => self.tell(input).map(|()| Handled::Done),
        }
    }

    /// Starts a page view and returns its id; see [`Logger::start_page_view`].
    pub fn start_page_view(
        &self,
        page: &str,
        request_id: Option<&str>,
        layout: Option<Vec<Vec<String>>>,
    ) -> Result<u64, DriverError> {
        let input = Input::StartPageView {
            page: page.into(),
            request_id: request_id.map(Into::into),
            layout,
        };
        match self.ask_input(input)? {
            Handled::PageView(id) => Ok(id),
            _ => Err(DriverError::Stopped),
        }
    }

    /// Ends a page view; see [`Logger::end_page_view`]. Does not wait.
    pub fn end_page_view(&self, page_view: u64) -> Result<(), DriverError> {
        self.tell(Input::EndPageView { page_view })
    }

    /// The visible share of an item changed; see [`Logger::handle_visibility`]. Does not wait.
    pub fn visibility(
        &self,
        page_view: u64,
        item: &ItemRef<'_>,
        fraction: f32,
    ) -> Result<(), DriverError> {
        self.tell(Input::Visibility {
            page_view,
            item: item.into(),
            fraction,
        })
    }

    /// An item gained or lost focus; see [`Logger::handle_focus`]. Does not wait.
    pub fn focus(
        &self,
        page_view: u64,
        item: &ItemRef<'_>,
        focused: bool,
    ) -> Result<(), DriverError> {
        self.tell(Input::Focus {
            page_view,
            item: item.into(),
            focused,
        })
    }

    /// The app went to the background; see [`Logger::handle_app_hidden`]. Does not wait;
    /// the closed batch is uploaded as soon as the thread gets to it.
    pub fn app_hidden(&self) -> Result<(), DriverError> {
        self.tell(Input::AppHidden)
    }

    /// The app is visible again; see [`Logger::handle_app_visible`]. Does not wait.
    pub fn app_visible(&self) -> Result<(), DriverError> {
        self.tell(Input::AppVisible)
    }

    /// Records an impression the host qualified itself; see [`Logger::record_impression`].
    pub fn record_impression(
        &self,
        page_view: u64,
        impression: &Impression<'_>,
    ) -> Result<Recorded, DriverError> {
        let input = Input::Impression {
            page_view,
            impression: impression.into(),
        };
        match self.ask_input(input)? {
            Handled::Recorded(recorded) => Ok(recorded),
            _ => Err(DriverError::Stopped),
        }
    }

    /// Closes the open batch so it is durable and sent; see [`Logger::flush`]. Does not wait.
    pub fn flush(&self) -> Result<(), DriverError> {
        self.tell(Input::Flush)
    }

    /// Opt-out and opt-in; see [`Logger::set_enabled`]. Does not wait.
    pub fn set_enabled(&self, enabled: bool, purge: bool) -> Result<(), DriverError> {
        self.tell(Input::SetEnabled { enabled, purge })
    }

    /// The logger's counters after every call made before this one. If the thread is
    /// gone, the counters it last published.
    pub fn stats(&self) -> Stats {
        self.ask(|reply| Command::Stats { reply })
            .unwrap_or_else(|_| self.last_published())
    }

    /// Closes the open batch, keeps uploading until nothing is pending or `max_wait` has
    /// passed, stops the thread and returns the final counters. An upload already in
    /// progress when `max_wait` runs out is finished first, so the wait is bounded by
    /// `max_wait` plus one transport timeout. What is not delivered stays in the store for
    /// the next start.
    pub fn shutdown(mut self, max_wait: Duration) -> Stats {
        self.stop(max_wait)
    }

    fn stop(&mut self, max_wait: Duration) -> Stats {
        let Some(thread) = self.thread.take() else {
            return self.last_published();
        };
        // A closed channel means the thread already ended; joining tells how.
        let _ = self.commands.send(Command::Shutdown { max_wait });
        match thread.join() {
            Ok(stats) => stats,
            Err(_) => self.last_published(),
        }
    }

    fn last_published(&self) -> Stats {
        match self.last_stats.lock() {
            Ok(stats) => stats.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sends an input stamped now, without waiting.
    fn tell(&self, input: Input) -> Result<(), DriverError> {
        let now = self.now();
        self.send(Command::Input {
            input,
            now,
            reply: None,
        })
    }

    /// Sends an input stamped now and waits for its answer.
    fn ask_input(&self, input: Input) -> Result<Handled, DriverError> {
        let now = self.now();
        self.ask(|reply| Command::Input {
            input,
            now,
            reply: Some(reply),
        })?
        // Only upload results name uploads, and hosts do not send those.
        .map_err(|e| e.rule().map_or(DriverError::Stopped, DriverError::Rule))
    }

    fn send(&self, command: Command) -> Result<(), DriverError> {
        self.commands
            .send(command)
            .map_err(|_| DriverError::Stopped)
    }

    fn ask<T>(&self, command: impl FnOnce(Sender<T>) -> Command) -> Result<T, DriverError> {
        let (reply, answer) = mpsc::channel();
        self.send(command(reply))?;
        answer.recv().map_err(|_| DriverError::Stopped)
    }
}

/// Stops the thread without waiting for uploads: the open batch is closed (so it is
/// durable as a batch) and the thread ends after the upload in progress, if any.
impl Drop for Driver {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("session_id", &self.session_id)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

/// The upload thread: performs each upload it is handed and reports the outcome as a
/// command. It ends when the driver thread drops its sender (after finishing the request
/// in progress, whose outcome is then dropped: the batch stays stored and is sent again).
fn upload_loop(
    mut transport: Box<dyn Transport>,
    clock: Arc<dyn Clock>,
    uploads: Receiver<Upload>,
    results: Sender<Command>,
) {
    while let Ok(upload) = uploads.recv() {
        let outcome = transport.send(&upload);
        // A stale id (timed out meanwhile, or purged) is refused by the logger.
        let done = Command::Input {
            input: Input::UploadResult {
                id: upload.id,
                outcome,
            },
            now: clock.now(),
            reply: None,
        };
        if results.send(done).is_err() {
            break;
        }
    }
}

/// The driver thread's state.
struct Worker {
    logger: Logger,
    store: Box<dyn Store + Send>,
    /// To the upload thread; the logger has at most one upload in flight.
    uploads: Sender<Upload>,
    clock: Arc<dyn Clock>,
    commands: Receiver<Command>,
    last_stats: Arc<Mutex<Stats>>,
    /// The last service found its deadline due and could do nothing about it.
    stalled: bool,
    /// A shutdown was asked for (with this wait); no command after it is taken.
    stop: Option<Duration>,
}

impl Worker {
    fn run(mut self) -> Stats {
        loop {
            match self.wait() {
                None => match self.commands.recv() {
                    Ok(command) => self.take(command),
                    Err(_) => self.disconnected(),
                },
                Some(wait) => match self.commands.recv_timeout(wait) {
                    Ok(command) => self.take(command),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.disconnected(),
                },
            }
            if self.stop.is_none() {
                self.service();
            }
            if let Some(max_wait) = self.stop.take() {
                return self.shut_down(max_wait);
            }
            self.publish();
        }
    }

    /// No sender left: the `Driver` is gone without saying so; stop as its drop would.
    fn disconnected(&mut self) {
        self.stop.get_or_insert(Duration::ZERO);
    }

    /// How long to wait for a command: `None` when the logger has no deadline at all.
    fn wait(&self) -> Option<Duration> {
        let deadline = self.logger.poll_timeout()?;
        let now = self.clock.now().mono_ms;
        Some(if deadline > now {
            self.clock.real_duration(deadline - now).min(MAX_WAIT)
        } else if self.stalled {
            STALL_WAIT
        } else {
            Duration::ZERO
        })
    }

    /// Takes every command already sent, up to a shutdown.
    ///
    /// Host calls carry the time they were made, and the logger holds its monotonic time
    /// at the latest it has seen. So before the driver feeds the logger a time of its own
    /// it takes the commands stamped before that time; otherwise a visibility change made
    /// during an upload would be applied at the end of the upload, and its exposure would
    /// shrink or vanish.
    fn drain(&mut self) {
        while self.stop.is_none() {
            match self.commands.try_recv() {
                Ok(command) => self.take(command),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => self.disconnected(),
            }
        }
    }

    /// Fires the deadline if it passed and hands a due upload to the upload thread.
    fn service(&mut self) {
        let now = self.clock.now();
        self.drain();
        let due = |logger: &Logger| logger.poll_timeout().is_some_and(|d| d <= now.mono_ms);
        if due(&self.logger) {
            self.logger.handle_timeout(now);
        }
        // An upload waits for the writes it depends on: perform them first, whatever asked
        // for them (a command, the timeout, the shutdown's flush).
        self.logger.perform_store_ops(&mut *self.store);
        let sent = match self.logger.poll_upload(now) {
            Some(upload) => {
                let id = upload.id;
                if self.uploads.send(upload).is_err() {
                    // The upload thread is gone (it cannot panic, but if it did): the
                    // batch stays queued and is retried with backoff.
                    let _ = self
                        .logger
                        .handle_upload_result(id, UploadOutcome::NetworkError, now);
                }
                true
            }
            None => false,
        };
        self.stalled = !sent && due(&self.logger);
    }

    fn take(&mut self, command: Command) {
        let (logger, store) = (&mut self.logger, &mut *self.store);
        // Refusals of calls that do not wait are counted by the logger (`Stats::invalid`);
        // the host that needs them uses the waiting calls.
        match command {
            Command::Input { input, now, reply } => {
                let result = logger.handle_input(input, now);
                // Journaled before the host hears the answer (a seq, a page view).
                logger.perform_store_ops(store);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::Stats { reply } => {
                let _ = reply.send(logger.stats().clone());
            }
            Command::Shutdown { max_wait } => {
                self.stop.get_or_insert(max_wait);
            }
        }
        logger.perform_store_ops(store);
        self.publish();
    }

    /// Closes the open batch and uploads until nothing is pending or `max_wait` passed.
    fn shut_down(mut self, max_wait: Duration) -> Stats {
        let started = Instant::now();
        self.logger.flush(self.clock.now());
        loop {
            let elapsed = started.elapsed();
            if self.logger.pending() == 0 || elapsed >= max_wait {
                break;
            }
            self.service();
            let wait = self.wait().unwrap_or(MAX_WAIT).min(max_wait - elapsed);
            match self.commands.recv_timeout(wait) {
                Ok(command) => self.take(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.publish();
        self.logger.stats().clone()
    }

    /// Makes the counters readable by [`Driver::stats`] even after the thread is gone.
    fn publish(&self) {
        let mut published = match self.last_stats.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        published.clone_from(self.logger.stats());
    }
}
