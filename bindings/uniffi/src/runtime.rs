//! [`Runtime`]: the ready runtime, the core's std driver (file store, ureq transport,
//! driver thread) behind one object, so an app logs in three lines. A foreign
//! [`Transport`] (OkHttp, URLSession, requests) may replace ureq; a [`Capture`] may replace
//! the network entirely, for producers' unit tests.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sightline_core as core;
use sightline_core::runtime::{self, Driver, FileStore, HttpTransport, SystemClock};
use sightline_core::{Handled, Input, MemoryStore};

use crate::error::{SightlineError, poisoned};
use crate::kit::Capture;
use crate::logger::{RecordedMany, unexpected};
use crate::types::{Config, Item, QualifiedImpression, Recorded, Stats, Upload, UploadOutcome};

/// The app's HTTP stack, called on the runtime's upload thread, one upload at a time.
/// POST `upload.body` to `<collector><upload.path>` with `upload.headers` and say how it
/// ended; a request must time out rather than hang. An exception thrown here counts as a
/// network error (the batch is retried).
#[uniffi::export(with_foreign)]
pub trait Transport: Send + Sync {
    fn send(&self, upload: Upload) -> UploadOutcome;
}

/// The foreign transport seen as the core's.
struct Foreign(Arc<dyn Transport>);

impl runtime::Transport for Foreign {
    fn send(&mut self, upload: &core::Upload) -> core::UploadOutcome {
        let upload = Upload::from(upload.clone());
        // A foreign exception arrives as a panic of the callback: never let it end the
        // upload thread.
        catch_unwind(AssertUnwindSafe(|| self.0.send(upload)))
            .map_or(core::UploadOutcome::NetworkError, Into::into)
    }
}

/// The logger running on its own thread: see the module documentation. Thread-safe; calls
/// stamp the time on the caller's thread and return without waiting for I/O.
#[derive(uniffi::Object)]
pub struct Runtime {
    state: RwLock<State>,
}

/// The driver while running; its final counters once shut down.
enum State {
    Running(Driver),
    /// The final counters, boxed: they are several times the size of a running driver.
    Stopped(Box<core::Stats>),
}

impl Runtime {
    fn run(
        config: core::Config,
        store: Box<dyn core::Store + Send>,
        transport: Box<dyn runtime::Transport>,
    ) -> Result<Arc<Runtime>, SightlineError> {
        let driver = Driver::start(config, store, transport, Box::new(SystemClock::new()))?;
        Ok(Arc::new(Runtime {
            state: RwLock::new(State::Running(driver)),
        }))
    }

    fn file_store(config: &core::Config, data_dir: &str) -> Result<FileStore, SightlineError> {
        FileStore::open(data_dir, runtime::store_quota(config)).map_err(|e| SightlineError::Store {
            message: format!("{data_dir}: {e}"),
        })
    }

    fn with<T>(
        &self,
        call: impl FnOnce(&Driver) -> Result<T, SightlineError>,
    ) -> Result<T, SightlineError> {
        match &*self.state.read().map_err(|_| poisoned())? {
            State::Running(driver) => call(driver),
            State::Stopped(_) => Err(SightlineError::Stopped {
                message: "the runtime was shut down".into(),
            }),
        }
    }

    fn tell(&self, input: Input) -> Result<(), SightlineError> {
        self.with(|d| Ok(d.input(input).map(drop)?))
    }

    fn record(
        driver: &Driver,
        page_view: u64,
        imp: QualifiedImpression,
    ) -> Result<Recorded, SightlineError> {
        let input = Input::Impression {
            page_view,
            impression: imp.into(),
        };
        match driver.input(input)? {
            Handled::Recorded(r) => Ok(r.into()),
            other => Err(unexpected(other)),
        }
    }
}

#[uniffi::export]
impl Runtime {
    /// Logs to the collector at `endpoint` (`https://collector.example.com`), keeping what is
    /// not yet delivered in `data_dir` (created if missing; one directory per logger).
    #[uniffi::constructor]
    pub fn start(
        config: Config,
        data_dir: String,
        endpoint: String,
    ) -> Result<Arc<Runtime>, SightlineError> {
        let config = config.into_core();
        let store = Runtime::file_store(&config, &data_dir)?;
        let transport = HttpTransport::new(&endpoint, runtime::DEFAULT_HTTP_TIMEOUT);
        Runtime::run(config, Box::new(store), Box::new(transport))
    }

    /// As `start`, with the app's own HTTP stack instead of the built-in one.
    #[uniffi::constructor]
    pub fn start_with_transport(
        config: Config,
        data_dir: String,
        transport: Arc<dyn Transport>,
    ) -> Result<Arc<Runtime>, SightlineError> {
        let config = config.into_core();
        let store = Runtime::file_store(&config, &data_dir)?;
        Runtime::run(config, Box::new(store), Box::new(Foreign(transport)))
    }

    /// For producers' tests: uploads go to `capture` in memory, state to a memory store.
    #[uniffi::constructor]
    pub fn start_captured(
        config: Config,
        capture: Arc<Capture>,
    ) -> Result<Arc<Runtime>, SightlineError> {
        Runtime::run(
            config.into_core(),
            Box::new(MemoryStore::new()),
            Box::new(capture.transport()),
        )
    }

    /// This run's session id.
    pub fn session_id(&self) -> Result<String, SightlineError> {
        self.with(|d| Ok(d.session_id().to_string()))
    }

    /// Starts a page view; `layout` is the rows of item ids as the server sent them.
    #[uniffi::method(default(request_id = None, layout = None))]
    pub fn start_page_view(
        &self,
        page: String,
        request_id: Option<String>,
        layout: Option<Vec<Vec<String>>>,
    ) -> Result<u64, SightlineError> {
        self.with(|d| Ok(d.start_page_view(&page, request_id.as_deref(), layout)?))
    }

    pub fn end_page_view(&self, page_view: u64) -> Result<(), SightlineError> {
        self.tell(Input::EndPageView { page_view })
    }

    /// The visible share (0.0..=1.0) of an item changed. Refusals are counted, not thrown
    /// (the call does not wait for the logger).
    pub fn visibility(
        &self,
        page_view: u64,
        item: Item,
        fraction: f32,
    ) -> Result<(), SightlineError> {
        let item = item.into();
        self.tell(Input::Visibility {
            page_view,
            item,
            fraction,
        })
    }

    /// An item gained or lost focus (TV).
    pub fn focus(&self, page_view: u64, item: Item, focused: bool) -> Result<(), SightlineError> {
        let item = item.into();
        self.tell(Input::Focus {
            page_view,
            item,
            focused,
        })
    }

    pub fn app_hidden(&self) -> Result<(), SightlineError> {
        self.tell(Input::AppHidden)
    }

    pub fn app_visible(&self) -> Result<(), SightlineError> {
        self.tell(Input::AppVisible)
    }

    /// Records an impression the app qualified itself (`first_visible_mono_ms` on the
    /// runtime's clock: milliseconds since it started).
    pub fn record_impression(
        &self,
        page_view: u64,
        impression: QualifiedImpression,
    ) -> Result<Recorded, SightlineError> {
        self.with(|d| Runtime::record(d, page_view, impression))
    }

    /// Records several impressions in one call; refusals are reported per index.
    pub fn record_many(
        &self,
        page_view: u64,
        impressions: Vec<QualifiedImpression>,
    ) -> Result<RecordedMany, SightlineError> {
        self.with(|d| {
            let mut out = RecordedMany::default();
            for (i, imp) in impressions.into_iter().enumerate() {
                out.count(i, Runtime::record(d, page_view, imp))?;
            }
            Ok(out)
        })
    }

    /// Monotonic milliseconds on the runtime's clock (for `first_visible_mono_ms`).
    pub fn now_mono_ms(&self) -> Result<u64, SightlineError> {
        self.with(|d| Ok(d.now().mono_ms))
    }

    /// Closes the open batch so it is stored and sent (does not wait for the upload).
    pub fn flush(&self) -> Result<(), SightlineError> {
        self.tell(Input::Flush)
    }

    /// Opt-out (`enabled = false`, with `purge` deleting what is queued) and opt-in.
    pub fn set_enabled(&self, enabled: bool, purge: bool) -> Result<(), SightlineError> {
        self.tell(Input::SetEnabled { enabled, purge })
    }

    /// The counters after every call made before this one; once shut down, the final ones.
    pub fn stats(&self) -> Result<Stats, SightlineError> {
        match &*self.state.read().map_err(|_| poisoned())? {
            State::Running(driver) => Ok(driver.stats().into()),
            State::Stopped(last) => Ok((**last).clone().into()),
        }
    }

    /// Closes the open batch, keeps delivering for at most `max_wait_ms`, stops the threads
    /// and returns the final counters. What is not delivered stays stored for the next
    /// start. Every later call raises `Stopped`, but `stats` and `shutdown` itself, which
    /// return the final counters again.
    pub fn shutdown(&self, max_wait_ms: u64) -> Result<Stats, SightlineError> {
        let mut state = self.state.write().map_err(|_| poisoned())?;
        let last = match std::mem::replace(&mut *state, State::Stopped(Box::default())) {
            State::Running(driver) => driver.shutdown(Duration::from_millis(max_wait_ms)),
            State::Stopped(last) => *last,
        };
        *state = State::Stopped(Box::new(last.clone()));
        Ok(last.into())
    }
}
