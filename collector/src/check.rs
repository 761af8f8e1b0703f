//! `sightline-collector check FILES...`: validates captured batches (gzip or raw protobuf)
//! and NDJSON rows against the contract, prints every violation in a table, and tells the
//! caller (a producer's CI) whether any exist. Duplicates are looked for across all the
//! files of one run (hourly output files of one session), and the collector's own bad
//! rows fail with the rules they list.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use sightline_core::contract::{Contract, Exposures, ImpressionFacts, Rule};
use sightline_core::wire;

use crate::row::{Row, Text};

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

/// What one run has seen of NDJSON rows so far, to find duplicates across files.
#[derive(Debug, Default)]
struct Seen {
    events: HashSet<(Text, u64)>,
    /// By session, page view, item and place, under each row's re-entry rule.
    exposures: Exposures<(Text, u64, Text, u32, u32)>,
}

/// One NDJSON line: a good row, or a bad row with the rules the collector found broken.
#[derive(serde::Deserialize)]
struct Line {
    #[serde(default)]
    rules: Vec<String>,
    #[serde(flatten)]
    row: Row,
}

/// Checks every file; unreadable and undecodable files are findings, not crashes.
pub fn check_files(contract: &Contract, paths: &[&Path]) -> Report {
    let mut report = Report::default();
    let mut seen = Seen::default();
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
            check_ndjson(contract, &name, &bytes, &mut seen, &mut report);
        } else {
            check_batch(contract, &name, &bytes, &mut report);
        }
    }
    report
}

fn check_batch(contract: &Contract, name: &str, bytes: &[u8], report: &mut Report) {
    // Zero bytes decode as a protobuf message with every field at its default: not a
    // capture of anything the SDK sends.
    if bytes.is_empty() {
        report.findings.push(Finding {
            file: name.into(),
            at: "-".into(),
            problem: "not a valid batch: empty file".into(),
        });
        return;
    }
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
    if batch.session_id.is_empty() {
        report.findings.push(Finding {
            file: name.into(),
            at: "-".into(),
            problem: "not a valid batch: no session id".into(),
        });
    }
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

fn check_ndjson(
    contract: &Contract,
    name: &str,
    bytes: &[u8],
    seen: &mut Seen,
    report: &mut Report,
) {
    let text = String::from_utf8_lossy(bytes);
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
        let Line { rules: listed, row } = match serde_json::from_str(line) {
            Ok(l) => l,
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
            focused_ms: row.focused_ms,
        };
        // A bad row keeps the rules the collector found broken: each is a violation.
        let mut rules = listed;
        for r in [
            contract.check_impression(&facts),
            contract.check_page_name(&row.page),
        ]
        .into_iter()
        .filter_map(Result::err)
        {
            if !rules.iter().any(|listed| listed == r.name()) {
                rules.push(r.name().to_string());
            }
        }
        if !seen.events.insert((row.session_id.clone(), row.seq)) {
            rules.push("duplicate_event".into());
        }
        let exposure = (
            row.session_id.clone(),
            row.page_view,
            row.item_id.clone(),
            row.row,
            row.column,
        );
        // Rows carry their batch's rule; older rows get the contract's.
        let reentry = row.reentry.unwrap_or(contract.reentry);
        let start = i64::try_from(row.first_visible_client_ms).unwrap_or(i64::MAX);
        let end = start.saturating_add(i64::from(row.visible_ms));
        if !seen.exposures.admit(exposure, start, end, reentry) {
            rules.push(Rule::DuplicateExposure.name().into());
        }
        for r in rules {
            finding(at.clone(), r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::config::Reentry;

    /// A row that breaks no rule.
    fn row() -> Row {
        Row {
            column: 0,
            ..crate::row::example("s", 1, 0)
        }
    }

    /// Checks files with the given contents, named `tag-<i>.<ext>` in a fresh directory.
    fn check(tag: &str, ext: &str, contents: &[&[u8]]) -> Report {
        check_with(&Contract::default(), tag, ext, contents)
    }

    fn check_with(contract: &Contract, tag: &str, ext: &str, contents: &[&[u8]]) -> Report {
        let dir =
            std::env::temp_dir().join(format!("sightline-check-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<_> = contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let path = dir.join(format!("{i}.{ext}"));
                std::fs::write(&path, c).unwrap();
                path
            })
            .collect();
        let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let report = check_files(contract, &refs);
        let _ = std::fs::remove_dir_all(&dir);
        report
    }

    #[test]
    fn an_empty_capture_is_not_a_valid_batch() {
        let report = check("empty", "pb.gz", &[b""]);
        assert_eq!(report.findings.len(), 1, "{}", report.table());
        assert!(
            report.findings[0].problem.contains("empty"),
            "{}",
            report.table()
        );
    }

    #[test]
    fn a_good_row_passes_and_each_rule_a_bad_row_lists_is_a_finding() {
        let good = format!("{}\n", serde_json::to_string(&row()).unwrap());
        assert!(
            check("good-row", "ndjson", &[good.as_bytes()])
                .findings
                .is_empty()
        );

        let bad = crate::row::BadRow {
            rules: vec!["outside_page_view".into(), "too_short".into()],
            row: row(),
        };
        let line = format!("{}\n", serde_json::to_string(&bad).unwrap());
        let report = check("bad-row", "ndjson", &[line.as_bytes()]);
        let problems: Vec<&str> = report.findings.iter().map(|f| f.problem.as_str()).collect();
        assert_eq!(
            problems,
            ["outside_page_view", "too_short"],
            "{}",
            report.table()
        );
        assert_eq!(report.findings[0].at, "s/1");
    }

    #[test]
    fn a_row_duplicated_across_hourly_files_is_found() {
        let line = format!("{}\n", serde_json::to_string(&row()).unwrap());
        let report = check("hours", "ndjson", &[line.as_bytes(), line.as_bytes()]);
        let problems: Vec<&str> = report.findings.iter().map(|f| f.problem.as_str()).collect();
        assert_eq!(
            problems,
            ["duplicate_event", Rule::DuplicateExposure.name()],
            "{}",
            report.table()
        );
    }

    /// Two rows of the same item at the same place in one page view, the second first
    /// visible `gap_ms` after the first (each visible 5 s), stating `reentry`.
    fn seen_twice(gap_ms: u64, reentry: Option<Reentry>) -> String {
        let first = Row { reentry, ..row() };
        let second = Row {
            seq: 2,
            first_visible_client_ms: gap_ms,
            ..first.clone()
        };
        [first, second]
            .iter()
            .map(|r| format!("{}\n", serde_json::to_string(r).unwrap()))
            .collect()
    }

    fn problems(report: &Report) -> Vec<&str> {
        report.findings.iter().map(|f| f.problem.as_str()).collect()
    }

    #[test]
    fn rows_of_an_after_leaving_batch_may_show_an_item_again_once_it_left() {
        let rows = seen_twice(5_000, Some(Reentry::AfterLeaving));
        let report = check("reentry", "ndjson", &[rows.as_bytes()]);
        assert!(report.findings.is_empty(), "{}", report.table());
        // Overlapping exposures are still one exposure logged twice.
        let rows = seen_twice(4_999, Some(Reentry::AfterLeaving));
        let report = check("overlap", "ndjson", &[rows.as_bytes()]);
        assert_eq!(problems(&report), [Rule::DuplicateExposure.name()]);
        assert_eq!(report.findings[0].at, "s/2");
    }

    #[test]
    fn rows_of_a_once_per_page_view_batch_may_not_show_an_item_again() {
        let rows = seen_twice(60_000, Some(Reentry::OncePerPageView));
        let report = check("once", "ndjson", &[rows.as_bytes()]);
        assert_eq!(problems(&report), [Rule::DuplicateExposure.name()]);
    }

    #[test]
    fn rows_that_state_no_reentry_rule_follow_the_contracts() {
        let rows = seen_twice(60_000, None);
        let report = check("none-default", "ndjson", &[rows.as_bytes()]);
        assert_eq!(problems(&report), [Rule::DuplicateExposure.name()]);
        let after_leaving = Contract {
            reentry: Reentry::AfterLeaving,
            ..Contract::default()
        };
        let report = check_with(&after_leaving, "none-after", "ndjson", &[rows.as_bytes()]);
        assert!(report.findings.is_empty(), "{}", report.table());
    }

    #[test]
    fn a_captured_after_leaving_batch_follows_its_own_rule() {
        use prost::Message;
        use sightline_core::proto;
        let mut batch = proto::Batch {
            session_id: "s".into(),
            strings: vec!["home".into()],
            page_views: vec![proto::PageView::default()],
            item_ids: vec!["title:1".into()],
            impressions: Some(proto::Impressions {
                first_seq: 1,
                count: 2,
                item: vec![0, 1],
                first_visible_delta_ms: vec![0, 5_000],
                visible_ms: vec![5_000, 5_000],
                max_visible_pct: vec![100, 100],
                ..Default::default()
            }),
            reentry: Reentry::AfterLeaving.to_proto(),
            // Closed when the second exposure ended: the check places events by it.
            clock: Some(proto::BatchClock {
                closed_at_wall_ms: 10_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let report = check("batch-after", "pb", &[&batch.encode_to_vec()]);
        assert!(report.findings.is_empty(), "{}", report.table());
        batch.reentry = Reentry::OncePerPageView.to_proto();
        let report = check("batch-once", "pb", &[&batch.encode_to_vec()]);
        assert_eq!(problems(&report), [Rule::DuplicateExposure.name()]);
    }
}
