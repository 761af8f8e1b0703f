//! `sightline-collector check FILES...`: validates captured batches (gzip or raw protobuf)
//! and NDJSON rows against the contract, prints every violation in a table, and tells the
//! caller (a producer's CI) whether any exist.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use sightline_core::contract::{Contract, ImpressionFacts, Rule};
use sightline_core::wire;

use crate::row::Row;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    /// Session and seq, or the line number for NDJSON lines that do not parse.
    pub at: String,
    pub problem: String,
}

/// What a check of some files found.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    pub impressions: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if !self.findings.is_empty() {
            let w = self
                .findings
                .iter()
                .map(|f| f.file.len())
                .max()
                .unwrap_or(4)
                .max(4);
            let _ = writeln!(out, "{:<w$}  {:<28}  PROBLEM", "FILE", "WHERE");
            for f in &self.findings {
                let _ = writeln!(out, "{:<w$}  {:<28}  {}", f.file, f.at, f.problem);
            }
        }
        let _ = writeln!(
            out,
            "{} violation(s); {} file(s), {} impression(s) checked",
            self.findings.len(),
            self.files,
            self.impressions
        );
        out
    }
}

/// Checks every file; unreadable and undecodable files are findings, not crashes.
pub fn check_files(contract: &Contract, paths: &[&Path]) -> Report {
    let mut report = Report::default();
    for path in paths {
        report.files += 1;
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                report.findings.push(Finding {
                    file: name,
                    at: "-".into(),
                    problem: format!("unreadable: {e}"),
                });
                continue;
            }
        };
        if path
            .extension()
            .is_some_and(|e| e == "ndjson" || e == "jsonl")
        {
            check_ndjson(contract, &name, &bytes, &mut report);
        } else {
            check_batch(contract, &name, &bytes, &mut report);
        }
    }
    report
}

fn check_batch(contract: &Contract, name: &str, bytes: &[u8], report: &mut Report) {
    let decoded = if bytes.starts_with(&[0x1f, 0x8b]) {
        wire::decode_gzip_batch(bytes)
    } else {
        wire::decode_batch(bytes)
    };
    let batch = match decoded {
        Ok(b) => b,
        Err(e) => {
            report.findings.push(Finding {
                file: name.into(),
                at: "-".into(),
                problem: format!("not a valid batch: {e}"),
            });
            return;
        }
    };
    report.impressions += wire::impressions(&batch).map_or(0, |r| r.len());
    for v in contract.check_batch(&batch) {
        report.findings.push(Finding {
            file: name.into(),
            at: match v.seq {
                Some(seq) => format!("{}/{}", batch.session_id, seq),
                None => format!("{} (batch)", batch.session_id),
            },
            problem: v.rule.name().into(),
        });
    }
}

fn check_ndjson(contract: &Contract, name: &str, bytes: &[u8], report: &mut Report) {
    let text = String::from_utf8_lossy(bytes);
    let mut events = HashSet::new();
    let mut exposures = HashSet::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut finding = |at: String, problem: String| {
            report.findings.push(Finding {
                file: name.into(),
                at,
                problem,
            })
        };
        let row: Row = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                finding(format!("line {}", i + 1), format!("not a row: {e}"));
                continue;
            }
        };
        report.impressions += 1;
        let at = format!("{}/{}", row.session_id, row.seq);
        let facts = ImpressionFacts {
            item_id: &row.item_id,
            artwork_id: row.artwork_id.as_deref(),
            row: row.row,
            column: row.column,
            max_visible_pct: row.max_visible_pct,
            visible_ms: row.visible_ms,
        };
        let mut rules = Vec::new();
        if let Err(r) = contract.check_impression(&facts) {
            rules.push(r.name().to_string());
        }
        if let Err(r) = contract.check_page_name(&row.page) {
            rules.push(r.name().to_string());
        }
        if !events.insert((row.session_id.clone(), row.seq)) {
            rules.push("duplicate_event".into());
        }
        let exposure = (
            row.session_id.clone(),
            row.page_view,
            row.item_id.clone(),
            row.row,
            row.column,
        );
        if !exposures.insert(exposure) {
            rules.push(Rule::DuplicateExposure.name().into());
        }
        for r in rules {
            finding(at.clone(), r);
        }
    }
}
