//! The normalised output row: one per impression, everything a consumer needs without
//! the batch around it, with raw and skew-corrected event times.

use sightline_core::config::Reentry;
use sightline_core::json::platform_name;
use sightline_core::proto;
use sightline_core::wire::{self, DecodedImpression, Ids};

use crate::ingest::Clock;

/// Bytes of one serialised row besides its strings: field names, punctuation, numbers at
/// their widest (measured: 588; see the test). A bad row adds its rules, tens of bytes.
/// Used to budget an upload's output before any row is built.
pub const ROW_FIXED_BYTES: usize = 640;

/// One accepted impression.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub session_id: String,
    pub seq: u64,
    pub app_id: String,
    pub app_version: String,
    pub platform: String,
    pub device: String,
    pub install_id: String,
    pub sdk: String,
    pub batch_no: u64,
    pub page_view: u64,
    pub page: String,
    pub request_id: Option<String>,
    pub item_id: String,
    pub artwork_id: Option<String>,
    pub row: u32,
    pub column: u32,
    /// When the item became visible, by the client's wall clock.
    pub first_visible_client_ms: u64,
    /// The same instant on the collector's clock (skew-corrected).
    pub first_visible_ms: u64,
    pub visible_ms: u32,
    pub max_visible_pct: u32,
    pub focused_ms: u32,
    pub sample_rate: f64,
    pub contract_version: u32,
    /// The batch's re-entry rule: whether a later row of the same item at the same place
    /// in the page view is a new impression. Absent in rows written before it existed.
    #[serde(default)]
    pub reentry: Option<Reentry>,
    pub received_ms: u64,
}

/// An impression refused by the contract, with the rules it broke.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BadRow {
    pub rules: Vec<String>,
    #[serde(flatten)]
    pub row: Row,
}

impl Row {
    /// Normalises one decoded impression of `batch`.
    pub fn new(
        batch: &proto::Batch,
        ids: &Ids,
        imp: &DecodedImpression,
        clock: &Clock,
        received_ms: u64,
    ) -> Row {
        let pv = batch
            .page_views
            .get(imp.page_view)
            .cloned()
            .unwrap_or_default();
        let offset = imp.first_visible_ms.max(0) as u64;
        // Wire values are the client's word: a hostile one saturates instead of wrapping.
        let client = pv.start_wall_ms.saturating_add(offset);
        let text = |i: u32| wire::string(batch, i).unwrap_or("").to_string();
        Row {
            session_id: batch.session_id.clone(),
            seq: imp.seq,
            app_id: batch.app_id.clone(),
            app_version: batch.app_version.clone(),
            platform: platform_name(batch.platform).to_string(),
            device: batch.device.clone(),
            install_id: batch.install_id.clone(),
            sdk: format!("{}/{}", batch.sdk_name, batch.sdk_version),
            batch_no: batch.batch_no,
            page_view: pv.ordinal,
            page: text(pv.page),
            request_id: pv.request_id.checked_sub(1).map(text),
            item_id: ids.item(imp).to_string(),
            artwork_id: ids.artwork(imp).map(str::to_string),
            row: imp.row,
            column: imp.column,
            first_visible_client_ms: client,
            first_visible_ms: clock.corrected(client, pv.start_offset_ms.saturating_add(offset)),
            visible_ms: imp.visible_ms,
            max_visible_pct: imp.max_visible_pct,
            focused_ms: imp.focused_ms,
            sample_rate: f64::from(batch.sample_rate_ppm) / 1e6,
            contract_version: batch.contract_version,
            reentry: Some(Reentry::from_proto(batch.reentry)),
            received_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_without_strings_at_its_widest_fits_in_the_fixed_bytes() {
        let row = Row {
            session_id: String::new(),
            seq: u64::MAX,
            app_id: String::new(),
            app_version: String::new(),
            platform: "unspecified".into(),
            device: String::new(),
            install_id: String::new(),
            sdk: "/".into(),
            batch_no: u64::MAX,
            page_view: u64::MAX,
            page: String::new(),
            request_id: Some(String::new()),
            item_id: String::new(),
            artwork_id: Some(String::new()),
            row: u32::MAX,
            column: u32::MAX,
            first_visible_client_ms: u64::MAX,
            first_visible_ms: u64::MAX,
            visible_ms: u32::MAX,
            max_visible_pct: u32::MAX,
            focused_ms: u32::MAX,
            sample_rate: 0.123_456_789_012_345_67,
            contract_version: u32::MAX,
            reentry: Some(Reentry::OncePerPageView),
            received_ms: u64::MAX,
        };
        let bytes = serde_json::to_vec(&row).unwrap().len() + 1;
        assert!(bytes <= ROW_FIXED_BYTES, "{bytes} bytes");
    }
}
