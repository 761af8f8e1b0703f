//! The producer kit for web teams' tests (feature `kit`, the `@sightline/web/testing`
//! module, never downloaded by visitors): the core's [`Capture`](sightline_core::kit::Capture)
//! decoding upload bodies, checking them against the contract and reconciling sessions.
//! Results cross as JSON text, which the TypeScript side parses into typed objects.

use alloc::format;
use alloc::string::String;

use sightline_core::kit::{self, CapturedImpression, Finding};
use wasm_bindgen::prelude::*;

use crate::config::Config;

/// Uploads received in memory, decoded, checked and accounted.
#[wasm_bindgen]
pub struct Capture {
    inner: kit::Capture,
}

/// `s` as a JSON string literal.
fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn optional(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => quoted(out, s),
        None => out.push_str("null"),
    }
}

fn impression(out: &mut String, i: &CapturedImpression) {
    out.push_str("{\"session_id\":");
    quoted(out, &i.session_id);
    out.push_str(&format!(",\"seq\":{},\"page\":", i.seq));
    quoted(out, &i.page);
    out.push_str(&format!(",\"page_view\":{},\"request_id\":", i.page_view));
    optional(out, i.request_id.as_deref());
    out.push_str(",\"item_id\":");
    quoted(out, &i.item_id);
    out.push_str(",\"artwork_id\":");
    optional(out, i.artwork_id.as_deref());
    out.push_str(&format!(
        ",\"row\":{},\"column\":{},\"first_visible_ms\":{},\"visible_ms\":{},\"max_visible_pct\":{},\"focused_ms\":{},\"rules\":[",
        i.row, i.column, i.first_visible_ms, i.visible_ms, i.max_visible_pct, i.focused_ms
    ));
    for (n, rule) in i.rules.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        quoted(out, rule.name());
    }
    out.push_str("]}");
}

fn finding(out: &mut String, f: &Finding) {
    out.push_str("{\"rule\":");
    quoted(out, f.rule.name());
    out.push_str(",\"message\":");
    quoted(out, &format!("{f}"));
    out.push_str(",\"session_id\":");
    quoted(out, &f.session_id);
    match f.seq {
        Some(seq) => out.push_str(&format!(",\"seq\":{seq}")),
        None => out.push_str(",\"seq\":null"),
    }
    out.push_str(",\"impression\":");
    match &f.impression {
        Some(i) => impression(out, i),
        None => out.push_str("null"),
    }
    out.push('}');
}

#[wasm_bindgen]
impl Capture {
    /// A capture checking against the contract of `config` (the one the page's logger runs).
    #[wasm_bindgen(constructor)]
    pub fn new(config: &Config) -> Capture {
        Capture {
            inner: kit::Capture::new(config.inner.contract.clone()),
        }
    }

    /// Receives one upload body; returns the receipt as JSON (`accepted`, `duplicates`,
    /// `conflicts`, `violations`). Throws for a body that does not decode, changing nothing.
    pub fn receive(&mut self, body: &[u8]) -> Result<String, JsError> {
        let r = self
            .inner
            .receive(body)
            .map_err(|e| JsError::new(&format!("{e}")))?;
        Ok(format!(
            "{{\"accepted\":{},\"duplicates\":{},\"conflicts\":{},\"violations\":{}}}",
            r.accepted, r.duplicates, r.conflicts, r.violations
        ))
    }

    /// Every impression received, in arrival order, as a JSON array.
    pub fn impressions(&self) -> String {
        let mut out = String::from("[");
        for (n, i) in self.inner.impressions().iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            impression(&mut out, i);
        }
        out.push(']');
        out
    }

    /// Every broken rule found, as a JSON array.
    pub fn violations(&self) -> String {
        let mut out = String::from("[");
        for (n, f) in self.inner.violations().iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            finding(&mut out, f);
        }
        out.push(']');
        out
    }

    /// Throws the kit's message (rule, item, position) when any rule was broken.
    pub fn assert_no_violations(&self) -> Result<(), JsError> {
        self.inner
            .assert_no_violations()
            .map_err(|e| JsError::new(&e.message))
    }

    /// Throws unless every session's seqs are delivered or explained by a drop counter.
    pub fn assert_accounted(&self) -> Result<(), JsError> {
        self.inner
            .assert_accounted()
            .map_err(|e| JsError::new(&e.message))
    }

    #[wasm_bindgen(getter)]
    pub fn uploads(&self) -> f64 {
        self.inner.uploads() as f64
    }
}
