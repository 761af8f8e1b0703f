//! [`Logger`]: the core's sans-IO logger for apps that own their networking, storage and
//! timers. The app passes inputs with the time, drains store operations, uploads and the
//! next deadline, performs them itself and reports the results. Every input goes through
//! the core's one `handle_input`; a mutex makes the object safe to call from any thread.

use std::sync::{Arc, Mutex, MutexGuard};

use sightline_core as core;
use sightline_core::{Handled, Input};

use crate::error::{SightlineError, poisoned};
use crate::types::{
    Config, Item, Now, QualifiedImpression, Recorded, Stats, StoreRequest, Stored, Upload,
    UploadOutcome,
};

/// Why the app's store could not perform an operation.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum StoreFailure {
    /// The write would exceed the app's storage quota.
    QuotaExceeded,
    /// The medium failed; the text is for logs only.
    Io { message: String },
}

/// One refused impression of a [`Logger::record_many`] call: its index and rule name.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Refusal {
    pub index: u32,
    pub rule: String,
}

/// What a [`Logger::record_many`] call did, in total.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct RecordedMany {
    pub logged: u32,
    pub sampled_out: u32,
    pub deduped: u32,
    pub disabled: u32,
    pub refused: Vec<Refusal>,
}

impl RecordedMany {
    /// Counts one result. A refusal (contract or misuse) is reported by index; any other
    /// error (a stopped runtime, an internal error) ends the call and is raised.
    pub(crate) fn count(
        &mut self,
        index: usize,
        result: Result<Recorded, SightlineError>,
    ) -> Result<(), SightlineError> {
        match result {
            Ok(Recorded::Logged { .. }) => self.logged += 1,
            Ok(Recorded::SampledOut) => self.sampled_out += 1,
            Ok(Recorded::Deduped) => self.deduped += 1,
            Ok(Recorded::Disabled) => self.disabled += 1,
            Err(
                SightlineError::Contract { rule, .. } | SightlineError::Misuse { what: rule, .. },
            ) => self.refused.push(Refusal {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                rule,
            }),
            Err(other) => return Err(other),
        }
        Ok(())
    }
}

/// The sans-IO logger: see the module documentation.
#[derive(uniffi::Object)]
pub struct Logger {
    inner: Mutex<core::Logger>,
}

impl Logger {
    fn lock(&self) -> Result<MutexGuard<'_, core::Logger>, SightlineError> {
        self.inner.lock().map_err(|_| poisoned())
    }

    fn input(&self, input: Input, now: Now) -> Result<Handled, SightlineError> {
        Ok(self.lock()?.handle_input(input, now.into())?)
    }

    fn done(&self, input: Input, now: Now) -> Result<(), SightlineError> {
        self.input(input, now).map(drop)
    }
}

#[uniffi::export]
impl Logger {
    /// Starts over what the app's store holds (`Stored` with no values and an empty journal
    /// for a first start). A store that could not be read must not be passed as empty.
    #[uniffi::constructor]
    pub fn resume(config: Config, stored: Stored, now: Now) -> Result<Arc<Logger>, SightlineError> {
        let logger =
            core::Logger::resume(config.into_core(), stored.into(), now.into()).map_err(|e| {
                SightlineError::Config {
                    message: e.to_string(),
                }
            })?;
        Ok(Arc::new(Logger {
            inner: Mutex::new(logger),
        }))
    }

    /// This run's session id (it persists across restarts over the same store).
    pub fn session_id(&self) -> Result<String, SightlineError> {
        Ok(self.lock()?.session_id().to_string())
    }

    /// Starts a page view; `layout` is the rows of item ids as the server sent them.
    pub fn start_page_view(
        &self,
        page: String,
        request_id: Option<String>,
        layout: Option<Vec<Vec<String>>>,
        now: Now,
    ) -> Result<u64, SightlineError> {
        let input = Input::StartPageView {
            page,
            request_id,
            layout,
        };
        match self.input(input, now)? {
            Handled::PageView(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    pub fn end_page_view(&self, page_view: u64, now: Now) -> Result<(), SightlineError> {
        self.done(Input::EndPageView { page_view }, now)
    }

    /// The visible share (0.0..=1.0) of an item changed.
    pub fn visibility(
        &self,
        page_view: u64,
        item: Item,
        fraction: f32,
        now: Now,
    ) -> Result<(), SightlineError> {
        let item = item.into();
        self.done(
            Input::Visibility {
                page_view,
                item,
                fraction,
            },
            now,
        )
    }

    /// An item gained or lost focus (TV).
    pub fn focus(
        &self,
        page_view: u64,
        item: Item,
        focused: bool,
        now: Now,
    ) -> Result<(), SightlineError> {
        let item = item.into();
        self.done(
            Input::Focus {
                page_view,
                item,
                focused,
            },
            now,
        )
    }

    /// The app went to the background: viewability pauses and the batch closes.
    pub fn app_hidden(&self, now: Now) -> Result<(), SightlineError> {
        self.done(Input::AppHidden, now)
    }

    pub fn app_visible(&self, now: Now) -> Result<(), SightlineError> {
        self.done(Input::AppVisible, now)
    }

    /// Records an impression the app qualified itself.
    pub fn record_impression(
        &self,
        page_view: u64,
        impression: QualifiedImpression,
        now: Now,
    ) -> Result<Recorded, SightlineError> {
        let input = Input::Impression {
            page_view,
            impression: impression.into(),
        };
        match self.input(input, now)? {
            Handled::Recorded(r) => Ok(r.into()),
            other => Err(unexpected(other)),
        }
    }

    /// Records several impressions under one lock and one crossing of the language
    /// boundary; refusals are reported per index, not thrown.
    pub fn record_many(
        &self,
        page_view: u64,
        impressions: Vec<QualifiedImpression>,
        now: Now,
    ) -> Result<RecordedMany, SightlineError> {
        let mut logger = self.lock()?;
        let mut out = RecordedMany::default();
        for (i, imp) in impressions.into_iter().enumerate() {
            let input = Input::Impression {
                page_view,
                impression: imp.into(),
            };
            let result = match logger.handle_input(input, now.into()) {
                Ok(Handled::Recorded(r)) => Ok(r.into()),
                Ok(other) => Err(unexpected(other)),
                Err(e) => Err(e.into()),
            };
            out.count(i, result)?;
        }
        Ok(out)
    }

    /// Closes the open batch so it is stored and sent.
    pub fn flush(&self, now: Now) -> Result<(), SightlineError> {
        self.done(Input::Flush, now)
    }

    /// Opt-out (`enabled = false`, with `purge` deleting what is queued) and opt-in.
    pub fn set_enabled(&self, enabled: bool, purge: bool, now: Now) -> Result<(), SightlineError> {
        self.done(Input::SetEnabled { enabled, purge }, now)
    }

    /// The deadline from `poll_timeout` passed.
    pub fn handle_timeout(&self, now: Now) -> Result<(), SightlineError> {
        self.done(Input::Timeout, now)
    }

    /// The monotonic time at which to call `handle_timeout`, if any.
    pub fn poll_timeout(&self) -> Result<Option<u64>, SightlineError> {
        Ok(self.lock()?.poll_timeout())
    }

    /// The next store operation to perform; the one after it comes once this one's result
    /// is reported.
    pub fn poll_store_op(&self) -> Result<Option<StoreRequest>, SightlineError> {
        Ok(self.lock()?.poll_store_op().map(Into::into))
    }

    /// Reports a store operation's result: `failure` is `None` when it succeeded.
    #[uniffi::method(default(failure = None))]
    pub fn handle_store_result(
        &self,
        id: u64,
        failure: Option<StoreFailure>,
    ) -> Result<(), SightlineError> {
        let result = match failure {
            None => Ok(()),
            Some(StoreFailure::QuotaExceeded) => Err(core::StoreError::QuotaExceeded),
            Some(StoreFailure::Io { message }) => Err(core::StoreError::Io(message)),
        };
        self.lock()?
            .handle_store_result(id, result)
            .map_err(|e| core::InputError::UnknownStoreOp(e).into())
    }

    /// The next upload to POST, if one is due (at most one is in flight).
    pub fn poll_upload(&self, now: Now) -> Result<Option<Upload>, SightlineError> {
        Ok(self.lock()?.poll_upload(now.into()).map(Into::into))
    }

    /// Reports how an upload ended.
    pub fn handle_upload_result(
        &self,
        id: u64,
        outcome: UploadOutcome,
        now: Now,
    ) -> Result<(), SightlineError> {
        let outcome = outcome.into();
        self.done(Input::UploadResult { id, outcome }, now)
    }

    /// The session's counters.
    pub fn stats(&self) -> Result<Stats, SightlineError> {
        Ok(self.lock()?.stats().clone().into())
    }
}

/// An answer of another kind than the input asks for: a bug in the core, reported, never
/// turned into a wrong value.
pub(crate) fn unexpected(handled: Handled) -> SightlineError {
    SightlineError::Internal {
        message: format!("unexpected answer {handled:?}"),
    }
}
