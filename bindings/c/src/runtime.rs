//! [`SightlineRuntime`] (with `std`, for Linux TV platforms): the core's ready runtime
//! (crash-safe file store at a path, built-in HTTP, a driver thread) behind the same
//! header, so an app logs without running the poll loop itself. Calls stamp the time on
//! the caller's thread and never wait for I/O.

use std::sync::Arc;
use std::time::Duration;

use core::ffi::c_char;

use sightline_core::runtime::{self, Driver, DriverError, FileStore, HttpTransport, SystemClock};

use crate::handles::{self, Entry, with_entry};
use crate::logger::layout_arg;
use crate::status::{Result, SightlineStatus, fail, guard};
use crate::text::{copy_out, opt_str_arg, out, str_arg};
use crate::types::{
    SightlineConfig, SightlineImpression, SightlineItem, SightlineNow, SightlineRecorded,
    SightlineStats,
};

/// A running runtime. A plain value; once freed, every copy is invalid.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SightlineRuntime {
    /// Opaque; 0 is never a valid handle.
    pub id: u64,
}

/// The driver while running (shared with calls in progress, so none holds the table
/// lock while it waits for the driver thread), its final counters once shut down.
pub(crate) enum RuntimeState {
    Running(Arc<Driver>),
    /// Shutting down on another thread.
    Stopping,
    Stopped(Box<sightline_core::Stats>),
}

fn status_of(e: DriverError) -> SightlineStatus {
    match e {
        DriverError::Config(e) => fail(SightlineStatus::Config, e),
        DriverError::Store(e) => fail(SightlineStatus::Store, e),
        DriverError::Spawn(e) => fail(SightlineStatus::Internal, e),
        DriverError::Stopped => fail(SightlineStatus::Stopped, "the driver thread has stopped"),
        DriverError::Rule(rule) => fail(SightlineStatus::Refused, rule),
    }
}

/// The running driver `h` names (a clone: the table lock is released before the call).
fn driver(h: SightlineRuntime) -> Result<Arc<Driver>> {
    with_entry(h.id, |entry| match entry {
        Entry::Runtime(RuntimeState::Running(driver)) => Ok(Arc::clone(driver)),
        Entry::Runtime(_) => Err(fail(SightlineStatus::Stopped, "the runtime was shut down")),
        _ => Err(SightlineStatus::InvalidHandle),
    })
}

fn call(
    h: SightlineRuntime,
    f: impl FnOnce(&Driver) -> core::result::Result<(), DriverError>,
) -> SightlineStatus {
    guard(|| {
        let driver = driver(h)?;
        f(&driver).map_err(status_of)
    })
}

/// Starts the runtime: the store in directory `data_dir` (created if missing; what it
/// holds is resumed), uploads to `endpoint` ("https://collector.example.com"). The seed
/// in `config` is used if non-zero, else one is taken from the OS's entropy.
///
/// # Safety
/// `config` as `sightline_config_init` describes; `data_dir` and `endpoint` valid C
/// strings; `runtime` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_start(
    config: *const SightlineConfig,
    data_dir: *const c_char,
    endpoint: *const c_char,
    runtime: *mut SightlineRuntime,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract, for each argument.
        let config = unsafe { config.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let mut config = unsafe { config.read() }?;
        let data_dir = unsafe { str_arg(data_dir) }?;
        let endpoint = unsafe { str_arg(endpoint) }?;
        let runtime = unsafe { out(runtime) }?;
        if config.seed == 0 {
            config.seed = runtime::entropy_seed();
        }
        let store = FileStore::open(data_dir, runtime::store_quota(&config))
            .map_err(|e| fail(SightlineStatus::Store, format_args!("{data_dir}: {e}")))?;
        let transport = HttpTransport::new(endpoint, runtime::DEFAULT_HTTP_TIMEOUT);
        let driver = Driver::start(
            config,
            Box::new(store),
            Box::new(transport),
            Box::new(SystemClock::new()),
        )
        .map_err(status_of)?;
        let state = RuntimeState::Running(Arc::new(driver));
        *runtime = SightlineRuntime {
            id: handles::insert(Entry::Runtime(state))?,
        };
        Ok(())
    })
}

/// Writes the runtime's clock to `*now`: hosts that qualify impressions themselves take
/// `first_visible_mono_ms` from it.
///
/// # Safety
/// `now` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_now(
    runtime: SightlineRuntime,
    now: *mut SightlineNow,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let now = unsafe { out(now) }?;
        *now = driver(runtime)?.now().into();
        Ok(())
    })
}

/// Copies the session id into `buf` (see `sightline_logger_session_id`).
///
/// # Safety
/// `buf` is valid for `capacity` bytes; `len` for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_session_id(
    runtime: SightlineRuntime,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> SightlineStatus {
    guard(|| {
        let driver = driver(runtime)?;
        // SAFETY: the caller's contract.
        unsafe { copy_out(driver.session_id().as_bytes(), buf, capacity, len) }
    })
}

/// Starts a page view (see `sightline_logger_start_page_view`).
///
/// # Safety
/// As `sightline_logger_start_page_view`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_start_page_view(
    runtime: SightlineRuntime,
    page: *const c_char,
    request_id: *const c_char,
    layout_ids: *const *const c_char,
    id_count: usize,
    row_lengths: *const u32,
    row_count: usize,
    page_view: *mut u64,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract, for each argument.
        let page = unsafe { str_arg(page) }?;
        let request_id = unsafe { opt_str_arg(request_id) }?;
        let layout = unsafe { layout_arg(layout_ids, id_count, row_lengths, row_count) }?;
        let page_view = unsafe { out(page_view) }?;
        *page_view = driver(runtime)?
            .start_page_view(page, request_id, layout)
            .map_err(status_of)?;
        Ok(())
    })
}

/// Ends a page view.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_runtime_end_page_view(
    runtime: SightlineRuntime,
    page_view: u64,
) -> SightlineStatus {
    call(runtime, |d| d.end_page_view(page_view))
}

/// The visible share of an item changed. Returns at once: a refusal is counted in the
/// stats (`invalid_by_rule`), not returned.
///
/// # Safety
/// `item` is valid as `SightlineItem` describes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_visibility(
    runtime: SightlineRuntime,
    page_view: u64,
    item: *const SightlineItem,
    fraction: f32,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let item = unsafe { item.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let item = unsafe { item.read() }?;
        driver(runtime)?
            .visibility(page_view, &item, fraction)
            .map_err(status_of)
    })
}

/// An item gained or lost focus. Returns at once, as `sightline_runtime_visibility`.
///
/// # Safety
/// `item` is valid as `SightlineItem` describes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_focus(
    runtime: SightlineRuntime,
    page_view: u64,
    item: *const SightlineItem,
    focused: bool,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let item = unsafe { item.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let item = unsafe { item.read() }?;
        driver(runtime)?
            .focus(page_view, &item, focused)
            .map_err(status_of)
    })
}

/// The app went to the background: the batch closes and is stored and sent.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_runtime_app_hidden(runtime: SightlineRuntime) -> SightlineStatus {
    call(runtime, Driver::app_hidden)
}

/// The app is in the foreground again.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_runtime_app_visible(runtime: SightlineRuntime) -> SightlineStatus {
    call(runtime, Driver::app_visible)
}

/// Records an impression the host qualified itself (waits for the logger's answer).
///
/// # Safety
/// As `sightline_logger_record_impression`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_record_impression(
    runtime: SightlineRuntime,
    page_view: u64,
    impression: *const SightlineImpression,
    recorded: *mut SightlineRecorded,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let impression = unsafe { impression.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let impression = unsafe { impression.read() }?;
        let recorded = unsafe { recorded.as_mut() };
        let r = driver(runtime)?
            .record_impression(page_view, &impression)
            .map_err(status_of)?;
        if let Some(recorded) = recorded {
            *recorded = r.into();
        }
        Ok(())
    })
}

/// Closes the open batch so it is stored and sent.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_runtime_flush(runtime: SightlineRuntime) -> SightlineStatus {
    call(runtime, Driver::flush)
}

/// Opt-out and opt-in (see `sightline_logger_set_enabled`).
#[unsafe(no_mangle)]
pub extern "C" fn sightline_runtime_set_enabled(
    runtime: SightlineRuntime,
    enabled: bool,
    purge: bool,
) -> SightlineStatus {
    call(runtime, |d| d.set_enabled(enabled, purge))
}

/// Copies the session's counters into `*stats` (after shutdown: the final ones).
///
/// # Safety
/// `stats` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_stats(
    runtime: SightlineRuntime,
    stats: *mut SightlineStats,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let stats = unsafe { out(stats) }?;
        // While another thread shuts the runtime down, wait for its final counters.
        loop {
            let current = with_entry(runtime.id, |entry| match entry {
                Entry::Runtime(RuntimeState::Running(driver)) => Ok(Step::Stop(Arc::clone(driver))),
                Entry::Runtime(RuntimeState::Stopped(s)) => Ok(Step::Done(s.clone())),
                Entry::Runtime(RuntimeState::Stopping) => Ok(Step::Wait),
                _ => Err(SightlineStatus::InvalidHandle),
            })?;
            match current {
                Step::Stop(driver) => *stats = (&driver.stats()).into(),
                Step::Done(final_stats) => *stats = (&*final_stats).into(),
                Step::Wait => {
                    std::thread::sleep(STOP_POLL);
                    continue;
                }
            }
            return Ok(());
        }
    })
}

/// Closes the open batch, keeps uploading until nothing is pending or `max_wait_ms` has
/// passed, stops the threads and writes the final counters to `*stats` (may be NULL).
/// What was not delivered stays stored for the next start. A second call, also one made
/// while another thread is shutting down, returns the same counters. The handle stays
/// valid (for `sightline_runtime_stats`) until freed.
///
/// # Safety
/// `stats` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_runtime_shutdown(
    runtime: SightlineRuntime,
    max_wait_ms: u64,
    stats: *mut SightlineStats,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let stats = unsafe { stats.as_mut() };
        let final_stats = stop(runtime.id, Duration::from_millis(max_wait_ms))?;
        if let Some(stats) = stats {
            *stats = (&final_stats).into();
        }
        Ok(())
    })
}

/// What a shutdown finds the runtime doing.
enum Step {
    Stop(Arc<Driver>),
    /// Another thread is shutting it down.
    Wait,
    Done(Box<sightline_core::Stats>),
}

/// How long a second caller sleeps between looks while another thread shuts down, and
/// shutdown between looks at calls still holding the driver: both last one driver call.
const STOP_POLL: Duration = Duration::from_millis(1);

/// Shuts the runtime `id` down once and returns its final counters; a caller that comes
/// while another thread is shutting it down waits for that shutdown and gets the same.
fn stop(id: u64, max_wait: Duration) -> Result<sightline_core::Stats> {
    let driver = loop {
        let step = with_entry(id, |entry| match entry {
            Entry::Runtime(state) => Ok(match core::mem::replace(state, RuntimeState::Stopping) {
                RuntimeState::Running(driver) => Step::Stop(driver),
                RuntimeState::Stopping => Step::Wait,
                RuntimeState::Stopped(s) => {
                    let final_stats = s.clone();
                    *state = RuntimeState::Stopped(s);
                    Step::Done(final_stats)
                }
            }),
            _ => Err(SightlineStatus::InvalidHandle),
        })?;
        match step {
            Step::Stop(driver) => break driver,
            Step::Wait => std::thread::sleep(STOP_POLL),
            Step::Done(final_stats) => return Ok(*final_stats),
        }
    };
    // Calls in progress hold clones for as long as one driver call takes.
    let mut driver = driver;
    let driver = loop {
        match Arc::try_unwrap(driver) {
            Ok(driver) => break driver,
            Err(shared) => {
                driver = shared;
                std::thread::sleep(STOP_POLL);
            }
        }
    };
    let stopped =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.shutdown(max_wait)));
    // Never left `Stopping`, even after a bug: waiting callers and `free` go on.
    let final_stats = stopped.as_ref().cloned().unwrap_or_default();
    with_entry(id, |entry| {
        *entry = Entry::Runtime(RuntimeState::Stopped(Box::new(final_stats.clone())));
        Ok(())
    })?;
    stopped.map_err(|_| SightlineStatus::Internal)
}

/// Frees a runtime, shutting it down first if it is running (waiting at most
/// `max_wait_ms` for pending uploads; if another thread is shutting it down, for that).
/// A poisoned runtime is freed too.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_runtime_free(
    runtime: SightlineRuntime,
    max_wait_ms: u64,
) -> SightlineStatus {
    guard(|| {
        match stop(runtime.id, Duration::from_millis(max_wait_ms)) {
            // Internal: the runtime is poisoned or its shutdown failed; free it anyway.
            Ok(_) | Err(SightlineStatus::Internal) => {}
            Err(other) => return Err(other),
        }
        handles::free(runtime.id, |e| matches!(e, Entry::Runtime(_)))
    })
}

/// Panics inside Sightline on purpose, so integrators can check their error path: the
/// call returns `SIGHTLINE_STATUS_INTERNAL`, the logger `logger` names is poisoned (only
/// `sightline_logger_free` works on it), and the process goes on.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_debug_panic(logger: crate::SightlineLogger) -> SightlineStatus {
    guard(|| {
        with_entry(logger.id, |entry| match entry {
            Entry::Logger(_) => panic!("sightline_debug_panic was called"),
            _ => Err(SightlineStatus::InvalidHandle),
        })
    })
}
