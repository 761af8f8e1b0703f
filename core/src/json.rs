//! The JSON view of a decoded batch, for humans and tools (debug views, the collector's
//! output, fixtures). Strings and page views are resolved, deltas undone. JSON is never the
//! wire format.

use alloc::string::String;
use alloc::vec::Vec;

use crate::config::Reentry;
use crate::proto;
use crate::wire::{self, DecodeError};

/// A batch with everything resolved.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BatchView {
    pub schema_version: u32,
    pub sdk: String,
    pub app_id: String,
    pub app_version: String,
    pub platform: &'static str,
    pub device: String,
    pub install_id: String,
    pub session_id: String,
    pub batch_no: u64,
    pub contract_version: u32,
    pub sample_rate: f64,
    /// The re-entry rule the batch states (`once_per_page_view`, `after_leaving`).
    pub reentry: Reentry,
    pub counters: proto::Counters,
    pub clock: proto::BatchClock,
    pub send: Option<proto::SendInfo>,
    pub page_views: Vec<PageViewView>,
    pub impressions: Vec<ImpressionView>,
}

/// A page view with its strings resolved.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PageViewView {
    pub ordinal: u64,
    pub page: String,
    pub request_id: Option<String>,
    pub start_mono_ms: u64,
    pub start_wall_ms: u64,
    pub ended: bool,
    pub duration_ms: u64,
}

/// One impression as a flat row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ImpressionView {
    pub seq: u64,
    pub page_view: u64,
    pub item_id: String,
    pub artwork_id: Option<String>,
    pub row: u32,
    pub column: u32,
    /// Milliseconds from the page view's start.
    pub first_visible_ms: i64,
    pub visible_ms: u32,
    pub max_visible_pct: u32,
    pub focused_ms: u32,
}

/// Stable name of a wire platform.
pub fn platform_name(value: i32) -> &'static str {
    match proto::Platform::try_from(value) {
        Ok(proto::Platform::Tv) => "tv",
        Ok(proto::Platform::Android) => "android",
        Ok(proto::Platform::Ios) => "ios",
        Ok(proto::Platform::Web) => "web",
        Ok(proto::Platform::Other) => "other",
        _ => "unspecified",
    }
}

/// Resolves a decoded batch into its view.
pub fn view(batch: &proto::Batch) -> Result<BatchView, DecodeError> {
    let text = |i: u32| String::from(wire::string(batch, i).unwrap_or(""));
    let ids = wire::Ids::of(batch);
    let clock = batch.clock.unwrap_or_default();
    let page_views = batch
        .page_views
        .iter()
        .map(|p| PageViewView {
            ordinal: p.ordinal,
            page: text(p.page),
            request_id: p.request_id.checked_sub(1).map(text),
            start_mono_ms: clock.mono_base_ms + p.start_offset_ms,
            start_wall_ms: p.start_wall_ms,
            ended: p.ended,
            duration_ms: p.duration_ms,
        })
        .collect();
    let impressions = wire::impressions(batch)?
        .into_iter()
        .map(|i| ImpressionView {
            seq: i.seq,
            page_view: batch.page_views.get(i.page_view).map_or(0, |p| p.ordinal),
            item_id: ids.item(&i).into(),
            artwork_id: ids.artwork(&i).map(String::from),
            row: i.row,
            column: i.column,
            first_visible_ms: i.first_visible_ms,
            visible_ms: i.visible_ms,
            max_visible_pct: i.max_visible_pct,
            focused_ms: i.focused_ms,
        })
        .collect();
    Ok(BatchView {
        schema_version: batch.schema_version,
        sdk: alloc::format!("{}/{}", batch.sdk_name, batch.sdk_version),
        app_id: batch.app_id.clone(),
        app_version: batch.app_version.clone(),
        platform: platform_name(batch.platform),
        device: batch.device.clone(),
        install_id: batch.install_id.clone(),
        session_id: batch.session_id.clone(),
        batch_no: batch.batch_no,
        contract_version: batch.contract_version,
        sample_rate: f64::from(batch.sample_rate_ppm) / f64::from(crate::sampling::PPM),
        reentry: Reentry::from_proto(batch.reentry),
        counters: batch.counters.unwrap_or_default(),
        clock,
        send: batch.send,
        page_views,
        impressions,
    })
}

/// Pretty JSON of a decoded batch.
pub fn to_json(batch: &proto::Batch) -> Result<String, DecodeError> {
    let v = view(batch)?;
    serde_json::to_string_pretty(&v).map_err(|e| DecodeError::Json(alloc::format!("{e}")))
}
