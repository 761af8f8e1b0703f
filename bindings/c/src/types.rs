//! The C-side structs and enums, and their conversions to the core's types. Enums arrive
//! as `uint32_t` fields (a C caller can store any value there) and are checked; every
//! default and limit stays the core's (`sightline_config_init` copies them).

use alloc::string::ToString;
use core::ffi::c_char;

use sightline_core as core_;
use sightline_core::contract::Contract;
use sightline_core::{Config, DropReason, Impression, ItemRef, Now, Platform, Reentry, Rule};

use crate::status::{Result, SightlineStatus, guard};
use crate::text::{opt_str_arg, out, str_arg, strings_arg};

/// Both clocks: monotonic milliseconds (durations, deadlines) and wall-clock milliseconds
/// since the Unix epoch (stamps only). Either may go backwards; nothing breaks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SightlineNow {
    /// Monotonic milliseconds.
    pub mono_ms: u64,
    /// Wall-clock milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

impl From<SightlineNow> for Now {
    fn from(now: SightlineNow) -> Now {
        Now::new(now.mono_ms, now.wall_ms)
    }
}

impl From<Now> for SightlineNow {
    fn from(now: Now) -> SightlineNow {
        SightlineNow {
            mono_ms: now.mono_ms,
            wall_ms: now.wall_ms,
        }
    }
}

/// The client platform, as it appears on the wire.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SightlinePlatform {
    /// A TV or set-top box.
    Tv = 0,
    /// An Android app.
    Android = 1,
    /// An iOS app.
    Ios = 2,
    /// A web page.
    Web = 3,
    /// Anything else.
    Other = 4,
}

/// What the sampling decision is keyed on.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SightlineSampleKey {
    /// Whole installs in or out: per-user analyses stay complete.
    Install = 0,
    /// Whole sessions in or out.
    Session = 1,
}

/// Whether a second qualifying exposure of an item at the same place in one page view is
/// a new impression.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SightlineReentry {
    /// At most one impression per item and place per page view.
    OncePerPageView = 0,
    /// Leaving the viewport and coming back is a new impression.
    AfterLeaving = 1,
}

/// The data contract (see the core's `Contract`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SightlineContract {
    /// The version these rules are published as.
    pub version: u32,
    /// An impression needs at least this percentage of the item visible...
    pub min_visible_pct: u32,
    /// ...continuously for at least this long.
    pub min_visible_ms: u32,
    /// Upper bound on a plausible visible duration.
    pub max_visible_ms: u32,
    /// Longest item, artwork, page or request id (at most 255).
    pub max_id_len: u32,
    /// Rows and columns are 0-based and below this.
    pub max_position: u32,
    /// 1 if every impression must name its artwork, else 0 (a byte, checked: a C `bool`
    /// field set by `memset` could hold anything).
    pub require_artwork: u8,
    /// Page names the app may use (`page_count` strings); none allows any well-formed name.
    pub pages: *const *const c_char,
    /// Entries of `pages`.
    pub page_count: usize,
    /// A `SightlineReentry`.
    pub reentry: u32,
}

/// Everything a logger needs to start. Fill it with `sightline_config_init` first, then
/// set the fields you need; strings must stay valid during the call that reads them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SightlineConfig {
    /// The app's id, e.g. "com.example.tv".
    pub app_id: *const c_char,
    /// The app's version.
    pub app_version: *const c_char,
    /// A `SightlinePlatform`.
    pub platform: u32,
    /// Device model ("LG-OLED55C3"), not an identifier.
    pub device: *const c_char,
    /// Install id chosen by the host; "" logs none.
    pub install_id: *const c_char,
    /// Key the collector uses to accept this app's uploads.
    pub app_key: *const c_char,
    /// Seed for session ids and retry jitter: entropy from the platform at every start
    /// (a hardware RNG, /dev/urandom), never a constant; 0 is refused.
    pub seed: u64,
    /// Share of impressions kept, in parts per million.
    pub sample_rate_ppm: u32,
    /// A `SightlineSampleKey`.
    pub sample_key: u32,
    /// The data contract.
    pub contract: SightlineContract,
    /// Impressions per batch before it closes.
    pub max_batch_impressions: u32,
    /// Age at which a batch closes.
    pub max_batch_age_ms: u64,
    /// Bound on queued (closed, compressed) batches.
    pub max_queue_bytes: u32,
    /// First retry delay.
    pub retry_base_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Attempts per batch before it is dropped (and counted).
    pub max_attempts: u32,
}

fn platform_to_c(p: Platform) -> u32 {
    (match p {
        Platform::Tv => SightlinePlatform::Tv,
        Platform::Android => SightlinePlatform::Android,
        Platform::Ios => SightlinePlatform::Ios,
        Platform::Web => SightlinePlatform::Web,
        Platform::Other => SightlinePlatform::Other,
    }) as u32
}

fn platform_from_c(p: u32) -> Result<Platform> {
    Ok(match p {
        0 => Platform::Tv,
        1 => Platform::Android,
        2 => Platform::Ios,
        3 => Platform::Web,
        4 => Platform::Other,
        _ => return Err(SightlineStatus::InvalidArgument),
    })
}

fn sample_key_from_c(k: u32) -> Result<core_::SampleKey> {
    match k {
        0 => Ok(core_::SampleKey::Install),
        1 => Ok(core_::SampleKey::Session),
        _ => Err(SightlineStatus::InvalidArgument),
    }
}

fn reentry_from_c(r: u32) -> Result<Reentry> {
    match r {
        0 => Ok(Reentry::OncePerPageView),
        1 => Ok(Reentry::AfterLeaving),
        _ => Err(SightlineStatus::InvalidArgument),
    }
}

impl SightlineContract {
    /// The core's default contract, with no page list.
    pub(crate) fn default_c() -> SightlineContract {
        let c = Contract::default();
        SightlineContract {
            version: c.version,
            min_visible_pct: c.min_visible_pct,
            min_visible_ms: c.min_visible_ms,
            max_visible_ms: c.max_visible_ms,
            max_id_len: c.max_id_len,
            max_position: c.max_position,
            require_artwork: u8::from(c.require_artwork),
            pages: core::ptr::null(),
            page_count: 0,
            reentry: match c.reentry {
                Reentry::OncePerPageView => SightlineReentry::OncePerPageView as u32,
                Reentry::AfterLeaving => SightlineReentry::AfterLeaving as u32,
            },
        }
    }

    /// The core's contract.
    ///
    /// # Safety
    /// `pages` holds `page_count` valid C strings (or is NULL with count 0).
    pub(crate) unsafe fn read(&self) -> Result<Contract> {
        // SAFETY: the caller's contract.
        let pages = unsafe { strings_arg(self.pages, self.page_count) }?;
        Ok(Contract {
            version: self.version,
            min_visible_pct: self.min_visible_pct,
            min_visible_ms: self.min_visible_ms,
            max_visible_ms: self.max_visible_ms,
            max_id_len: self.max_id_len,
            max_position: self.max_position,
            require_artwork: match self.require_artwork {
                0 => false,
                1 => true,
                _ => return Err(SightlineStatus::InvalidArgument),
            },
            pages,
            reentry: reentry_from_c(self.reentry)?,
        })
    }
}

impl SightlineConfig {
    /// The core's configuration (not yet validated: the logger does that).
    ///
    /// # Safety
    /// Every string field is a valid C string; `contract` as [`SightlineContract::read`].
    pub(crate) unsafe fn read(&self) -> Result<Config> {
        // SAFETY: the caller's contract, for every field below.
        let text = |p| unsafe { str_arg(p) }.map(ToString::to_string);
        Ok(Config {
            app_id: text(self.app_id)?,
            app_version: text(self.app_version)?,
            platform: platform_from_c(self.platform)?,
            device: text(self.device)?,
            install_id: text(self.install_id)?,
            app_key: text(self.app_key)?,
            seed: self.seed,
            sample_rate_ppm: self.sample_rate_ppm,
            sample_key: sample_key_from_c(self.sample_key)?,
            // SAFETY: the caller's contract.
            contract: unsafe { self.contract.read() }?,
            max_batch_impressions: self.max_batch_impressions,
            max_batch_age_ms: self.max_batch_age_ms,
            max_queue_bytes: self.max_queue_bytes,
            retry_base_ms: self.retry_base_ms,
            retry_max_ms: self.retry_max_ms,
            max_attempts: self.max_attempts,
        })
    }
}

/// Fills `*config` with the core's defaults: empty strings (set `app_id`, `app_version`,
/// `app_key` and `seed` before use), platform `SIGHTLINE_PLATFORM_OTHER`, the default
/// contract and limits.
///
/// # Safety
/// `config` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_config_init(config: *mut SightlineConfig) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let config = unsafe { out(config) }?;
        let d = Config::default();
        let empty = c"".as_ptr();
        *config = SightlineConfig {
            app_id: empty,
            app_version: empty,
            platform: platform_to_c(d.platform),
            device: empty,
            install_id: empty,
            app_key: empty,
            seed: d.seed,
            sample_rate_ppm: d.sample_rate_ppm,
            sample_key: match d.sample_key {
                core_::SampleKey::Install => SightlineSampleKey::Install as u32,
                core_::SampleKey::Session => SightlineSampleKey::Session as u32,
            },
            contract: SightlineContract::default_c(),
            max_batch_impressions: d.max_batch_impressions,
            max_batch_age_ms: d.max_batch_age_ms,
            max_queue_bytes: d.max_queue_bytes,
            retry_base_ms: d.retry_base_ms,
            retry_max_ms: d.retry_max_ms,
            max_attempts: d.max_attempts,
        };
        Ok(())
    })
}

/// An item at its place on the page.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SightlineItem {
    /// The item's id, e.g. "title:81234567".
    pub item_id: *const c_char,
    /// The artwork shown for it, or NULL.
    pub artwork_id: *const c_char,
    /// 0-based row.
    pub row: u32,
    /// 0-based column.
    pub column: u32,
}

impl SightlineItem {
    /// The borrowed core form.
    ///
    /// # Safety
    /// `item_id` is a valid C string, `artwork_id` one or NULL.
    pub(crate) unsafe fn read<'a>(&self) -> Result<ItemRef<'a>> {
        Ok(ItemRef {
            // SAFETY: the caller's contract.
            item_id: unsafe { str_arg(self.item_id) }?,
            // SAFETY: the caller's contract.
            artwork_id: unsafe { opt_str_arg(self.artwork_id) }?,
            row: self.row,
            column: self.column,
        })
    }
}

/// An impression the host qualified itself.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SightlineImpression {
    /// The item and its place.
    pub item: SightlineItem,
    /// Monotonic time the exposure started.
    pub first_visible_mono_ms: u64,
    /// How long it stayed visible.
    pub visible_ms: u64,
    /// Largest visible share during the exposure, 0.0..=1.0.
    pub max_visible_fraction: f32,
    /// How long it was focused (TV), at most `visible_ms`.
    pub focused_ms: u64,
}

impl SightlineImpression {
    /// The borrowed core form.
    ///
    /// # Safety
    /// As [`SightlineItem::read`].
    pub(crate) unsafe fn read<'a>(&self) -> Result<Impression<'a>> {
        // SAFETY: the caller's contract.
        let item = unsafe { self.item.read() }?;
        Ok(Impression {
            item_id: item.item_id,
            artwork_id: item.artwork_id,
            row: item.row,
            column: item.column,
            first_visible_mono_ms: self.first_visible_mono_ms,
            visible_ms: self.visible_ms,
            max_visible_fraction: self.max_visible_fraction,
            focused_ms: self.focused_ms,
        })
    }
}

/// What happened to a recorded impression.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SightlineRecordedKind {
    /// Buffered for upload under `seq`.
    Logged = 0,
    /// Left out by sampling.
    SampledOut = 1,
    /// A repeat the dedup rules absorbed.
    Deduped = 2,
    /// Logging is disabled (opt-out); nothing was recorded.
    Disabled = 3,
}

/// What happened to a recorded impression, with its seq when logged.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SightlineRecorded {
    /// What happened.
    pub kind: SightlineRecordedKind,
    /// The seq it was logged under; 0 unless `kind` is `SIGHTLINE_RECORDED_KIND_LOGGED`.
    pub seq: u64,
}

impl From<core_::Recorded> for SightlineRecorded {
    fn from(r: core_::Recorded) -> Self {
        let (kind, seq) = match r {
            core_::Recorded::Logged { seq } => (SightlineRecordedKind::Logged, seq),
            core_::Recorded::SampledOut => (SightlineRecordedKind::SampledOut, 0),
            core_::Recorded::Deduped => (SightlineRecordedKind::Deduped, 0),
            core_::Recorded::Disabled => (SightlineRecordedKind::Disabled, 0),
        };
        SightlineRecorded { kind, seq }
    }
}

/// Room in [`SightlineStats`] for per-rule counts: more than the rules that exist, so new
/// rules do not change the struct's size.
pub const SIGHTLINE_RULE_SLOTS: usize = 32;
/// Room in [`SightlineStats`] for per-reason drop counts, likewise.
pub const SIGHTLINE_DROP_REASON_SLOTS: usize = 16;

const _: () = assert!(Rule::ALL.len() <= SIGHTLINE_RULE_SLOTS);
const _: () = assert!(DropReason::ALL.len() <= SIGHTLINE_DROP_REASON_SLOTS);

/// The session's counters. Per session: recorded = sampled_out + deduped + issued, and
/// issued = delivered + dropped + pending.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SightlineStats {
    /// Impressions that passed validation.
    pub recorded: u64,
    /// Left out by sampling.
    pub sampled_out: u64,
    /// Absorbed by dedup.
    pub deduped: u64,
    /// Seqs issued.
    pub issued: u64,
    /// Acknowledged by the collector.
    pub delivered: u64,
    /// Dropped for a counted reason, in total.
    pub dropped: u64,
    /// Issued and neither delivered nor dropped yet.
    pub pending: u64,
    /// Inputs refused by the contract or as misuse, in total.
    pub invalid: u64,
    /// Upload attempts handed to the host.
    pub uploads: u64,
    /// Of which retries.
    pub retries: u64,
    /// Compressed bytes of acknowledged uploads.
    pub bytes_delivered: u64,
    /// Store operations that failed.
    pub store_errors: u64,
    /// Stored records skipped for a failed checksum.
    pub corrupt_records: u64,
    /// Drops by reason code (`sightline_drop_reason_name`).
    pub dropped_by_reason: [u64; SIGHTLINE_DROP_REASON_SLOTS],
    /// Refusals by rule code (`sightline_rule_name`).
    pub invalid_by_rule: [u64; SIGHTLINE_RULE_SLOTS],
}

impl From<&core_::Stats> for SightlineStats {
    fn from(s: &core_::Stats) -> Self {
        let mut out = SightlineStats {
            recorded: s.recorded,
            sampled_out: s.sampled_out,
            deduped: s.deduped,
            issued: s.issued,
            delivered: s.delivered,
            dropped: s.dropped.total(),
            pending: s.pending(),
            invalid: s.invalid,
            uploads: s.uploads,
            retries: s.retries,
            bytes_delivered: s.bytes_delivered,
            store_errors: s.store_errors,
            corrupt_records: s.corrupt_records,
            ..SightlineStats::default()
        };
        for (reason, n) in s.dropped.iter() {
            out.dropped_by_reason[usize::from(reason.code())] = n;
        }
        for (rule, n) in s.invalid_by_rule.iter() {
            out.invalid_by_rule[usize::from(rule.code())] = n;
        }
        out
    }
}

/// The stable name of rule `code` ("below_threshold"), or NULL for a code this version
/// does not know. Static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_rule_name(code: u32) -> *const c_char {
    u8::try_from(code)
        .ok()
        .and_then(Rule::from_code)
        .map_or(core::ptr::null(), |r| rule_name(r).as_ptr())
}

/// The stable name of drop reason `code` ("retries_exhausted"), or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_drop_reason_name(code: u32) -> *const c_char {
    u8::try_from(code)
        .ok()
        .and_then(DropReason::from_code)
        .map_or(core::ptr::null(), |r| drop_reason_name(r).as_ptr())
}

/// `Rule::name` with its NUL (pinned to it by a test).
fn rule_name(rule: Rule) -> &'static core::ffi::CStr {
    match rule {
        Rule::ItemId => c"item_id",
        Rule::ArtworkId => c"artwork_id",
        Rule::PageName => c"page_name",
        Rule::RequestId => c"request_id",
        Rule::Position => c"position",
        Rule::Fraction => c"fraction",
        Rule::BelowThreshold => c"below_threshold",
        Rule::TooShort => c"too_short",
        Rule::TooLong => c"too_long",
        Rule::OutsidePageView => c"outside_page_view",
        Rule::NotOnPage => c"not_on_page",
        Rule::WrongPosition => c"wrong_position",
        Rule::DuplicateExposure => c"duplicate_exposure",
        Rule::UnknownPageView => c"unknown_page_view",
        Rule::SeqNotIncreasing => c"seq_not_increasing",
        Rule::CountersInconsistent => c"counters_inconsistent",
        Rule::PageViewFull => c"page_view_full",
        Rule::FocusExceedsVisible => c"focus_exceeds_visible",
        Rule::SeqOutOfRange => c"seq_out_of_range",
        Rule::TimeOutsideBatch => c"time_outside_batch",
    }
}

/// `DropReason::name` with its NUL (pinned to it by a test).
fn drop_reason_name(reason: DropReason) -> &'static core::ffi::CStr {
    match reason {
        DropReason::Overflow => c"overflow",
        DropReason::Rejected => c"rejected",
        DropReason::TooLarge => c"too_large",
        DropReason::RetriesExhausted => c"retries_exhausted",
        DropReason::Purged => c"purged",
        DropReason::StoreCorrupt => c"store_corrupt",
        DropReason::JournalLost => c"journal_lost",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_init_reads_back_as_the_cores_default() {
        let mut c = core::mem::MaybeUninit::<SightlineConfig>::uninit();
        // SAFETY: a valid out-pointer; init writes every field.
        let status = unsafe { sightline_config_init(c.as_mut_ptr()) };
        assert_eq!(status, SightlineStatus::Ok);
        // SAFETY: initialised just above; its strings are static.
        let read = unsafe { c.assume_init().read() };
        assert_eq!(read, Ok(Config::default()));
    }

    #[test]
    fn rule_and_drop_reason_names_are_the_cores() {
        for rule in Rule::ALL {
            assert_eq!(rule_name(rule).to_str(), Ok(rule.name()));
        }
        for reason in DropReason::ALL {
            assert_eq!(drop_reason_name(reason).to_str(), Ok(reason.name()));
        }
    }
}
