//! The verdict: what the collector wrote (read back from its output directory) against
//! what every device says it recorded, per session, summed per platform into one table.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use comfy_table::{CellAlignment, ContentArrangement, LineStyle, Table, TableStyle};
use sightline_collector::ingest::Ingestor;
use sightline_collector::session::Reconciliation;
use sightline_collector::sink::{Stored, replay};
use sightline_core::contract::Contract;
use sightline_core::stats::Drops;
use sightline_sim::workload::Platform;

use crate::device::DeviceRun;

/// Platforms in table order (the workload's session rotation).
const PLATFORMS: [Platform; 3] = [Platform::Tv, Platform::Mobile, Platform::Web];

/// Seqs of one session found in the output.
#[derive(Default)]
struct Arrived {
    good: BTreeSet<u64>,
    bad: BTreeSet<u64>,
    /// Rows whose (session, seq) was already written: must stay 0.
    duplicate_rows: u64,
}

impl Arrived {
    fn add(&mut self, seq: u64, bad: bool) {
        let new = if bad {
            self.bad.insert(seq)
        } else {
            self.good.insert(seq)
        };
        if !new || (self.good.contains(&seq) && self.bad.contains(&seq)) {
            self.duplicate_rows += 1;
        }
    }

    /// Distinct impressions at the collector, good or refused by the contract.
    fn delivered(&self) -> u64 {
        (self.good.len() + self.bad.len()) as u64
    }
}

/// One line of the table: sums over sessions.
#[derive(Default)]
pub struct Tally {
    sessions: u64,
    recorded: u64,
    /// Distinct (session, seq) in the collector's output.
    delivered: u64,
    sampled_out: u64,
    deduped: u64,
    dropped: Drops,
    missing: u64,
    uploads: u64,
    retries: u64,
    bytes_delivered: u64,
    /// Impressions the device believes delivered (acknowledged).
    acked: u64,
    /// Bad rows: delivered impressions the collector's contract refused.
    violations: u64,
    /// Inputs the device's contract refused at record time.
    refused_inputs: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.sessions += other.sessions;
        self.recorded += other.recorded;
        self.delivered += other.delivered;
        self.sampled_out += other.sampled_out;
        self.deduped += other.deduped;
        self.dropped += other.dropped;
        self.missing += other.missing;
        self.uploads += other.uploads;
        self.retries += other.retries;
        self.bytes_delivered += other.bytes_delivered;
        self.acked += other.acked;
        self.violations += other.violations;
        self.refused_inputs += other.refused_inputs;
    }

    fn of_session(run: &DeviceRun, arrived: &Arrived, missing: u64) -> Tally {
        let s = &run.stats;
        Tally {
            sessions: 1,
            recorded: s.recorded,
            delivered: arrived.delivered(),
            sampled_out: s.sampled_out,
            deduped: s.deduped,
            dropped: s.dropped,
            missing,
            uploads: s.uploads,
            retries: s.retries,
            bytes_delivered: s.bytes_delivered,
            acked: s.delivered,
            violations: arrived.bad.len() as u64,
            refused_inputs: s.invalid + run.refused,
        }
    }

    /// Compressed bytes on the wire per delivered impression.
    fn bytes_per_impression(&self) -> f64 {
        match self.acked {
            0 => 0.0,
            n => self.bytes_delivered as f64 / n as f64,
        }
    }
}

/// The demo's outcome.
pub struct Summary {
    rows: Vec<(Platform, Tally)>,
    total: Tally,
    good_rows: u64,
    torn_lines: u64,
    /// Why sessions did not reconcile, one line each.
    failures: Vec<String>,
}

impl Summary {
    /// Whether every session reconciled exactly.
    pub fn reconciled(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Reads the collector's output and checks every device's session against it.
pub fn reconcile(out_dir: &Path, runs: &[DeviceRun]) -> Result<Summary, String> {
    // One pass over the output: the seqs each session has on disk, and the collector's
    // own reconciliation rebuilt the way a restarted collector rebuilds it.
    let mut arrived: HashMap<String, Arrived> = HashMap::new();
    let mut ingestor = Ingestor::new(Contract::default());
    let output = replay(out_dir, |item| {
        if let Stored::Row(row) = &item {
            arrived
                .entry(row.session_id.clone())
                .or_default()
                .add(row.seq, row.bad);
        }
        ingestor.restore(&item);
    })
    .map_err(|e| format!("read {}: {e}", out_dir.display()))?;
    let mut rows: Vec<(Platform, Tally)> = PLATFORMS.map(|p| (p, Tally::default())).into();
    let mut failures = Vec::new();
    let nothing = Arrived::default();
    for run in runs {
        let arrived = arrived.get(run.session_id.as_str()).unwrap_or(&nothing);
        let reconciliation = ingestor.reconcile(&run.session_id);
        let tally = Tally::of_session(run, arrived, missing(run, reconciliation));
        if let Err(why) = check(&tally, arrived) {
            failures.push(format!("session {}: {why}", run.session_id));
        }
        if let Some((_, row)) = rows.iter_mut().find(|(p, _)| *p == run.platform) {
            row.add(&tally);
        }
    }
    if output.torn_lines > 0 {
        failures.push(format!("{} torn lines in the output", output.torn_lines));
    }
    let mut total = Tally::default();
    rows.iter().for_each(|(_, row)| total.add(row));
    Ok(Summary {
        rows,
        total,
        good_rows: output.good,
        torn_lines: output.torn_lines,
        failures,
    })
}

/// Issued seqs neither delivered nor explained by a drop counter, as the collector sees
/// them; a session it never heard of is missing everything the device did not drop.
fn missing(run: &DeviceRun, reconciliation: Option<Reconciliation>) -> u64 {
    let s = &run.stats;
    reconciliation.map_or(s.issued.saturating_sub(s.dropped.total()), |r| r.missing)
}

/// The loss invariant of one session, exactly.
fn check(t: &Tally, arrived: &Arrived) -> Result<(), String> {
    let accounted = t.delivered + t.sampled_out + t.deduped + t.dropped.total();
    if t.recorded != accounted {
        return Err(format!(
            "recorded {} != delivered {} + sampled out {} + deduped {} + dropped {}",
            t.recorded,
            t.delivered,
            t.sampled_out,
            t.deduped,
            t.dropped.total()
        ));
    }
    if t.missing > 0 {
        return Err(format!(
            "{} impressions missing at the collector",
            t.missing
        ));
    }
    if arrived.duplicate_rows > 0 {
        return Err(format!("{} duplicate rows", arrived.duplicate_rows));
    }
    if t.acked != t.delivered {
        return Err(format!(
            "device saw {} acknowledged, collector wrote {}",
            t.acked, t.delivered
        ));
    }
    Ok(())
}

fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Tv => "tv",
        Platform::Mobile => "mobile",
        Platform::Web => "web",
    }
}

impl Summary {
    /// The tables and the verdict, on stdout.
    pub fn print(&self) {
        self.print_main_table();
        println!();
        self.print_drop_table();
        println!();
        let t = &self.total;
        println!(
            "contract: {} bad rows at the collector, {} inputs refused on devices",
            t.violations, t.refused_inputs
        );
        println!(
            "output: {} good rows read back, {} torn lines",
            self.good_rows, self.torn_lines
        );
        self.print_verdict();
    }

    fn print_main_table(&self) {
        let mut table = table([
            "platform",
            "sessions",
            "recorded",
            "delivered",
            "sampled",
            "deduped",
            "dropped",
            "missing",
            "B/imp",
            "uploads",
            "retries",
            "violations",
        ]);
        for (platform, row) in &self.rows {
            table.add_row(main_row(platform_name(*platform), row));
        }
        table.add_row(main_row("total", &self.total));
        println!("{table}");
        println!(
            "  delivered: distinct (session, seq) in the collector's good and bad rows; missing: \
             the collector's reconciliation"
        );
        println!(
            "  sampled, deduped, dropped, uploads, retries: device counters; B/imp: gzip bytes per \
             delivered impression; violations: bad rows"
        );
    }

    fn print_drop_table(&self) {
        let mut table = table([
            "dropped by reason",
            "overflow",
            "rejected",
            "too large",
            "retries exhausted",
            "purged",
            "store corrupt",
            "journal lost",
        ]);
        let total = ("total", &self.total);
        let rows = self.rows.iter().map(|(p, r)| (platform_name(*p), r));
        for (name, row) in rows.chain([total]) {
            let d = &row.dropped;
            table.add_row([
                name.to_string(),
                d.overflow.to_string(),
                d.rejected.to_string(),
                d.too_large.to_string(),
                d.retries_exhausted.to_string(),
                d.purged.to_string(),
                d.store_corrupt.to_string(),
                d.journal_lost.to_string(),
            ]);
        }
        println!("{table}");
    }

    fn print_verdict(&self) {
        if self.reconciled() {
            println!(
                "loss accounting: RECONCILED EXACTLY for all {} sessions",
                self.total.sessions
            );
            println!(
                "  recorded = delivered at the collector + sampled out + deduped + dropped by \
                 reason; nothing missing; no duplicate rows"
            );
            return;
        }
        println!("loss accounting: NOT RECONCILED:");
        for failure in &self.failures {
            println!("  {failure}");
        }
    }
}

/// Columns apart by one space, the header above a rule.
const STYLE: TableStyle = TableStyle::new().header_separator(LineStyle::none().fill('-'));

/// A table that reads the same in a CI log as on a terminal: ASCII, never styled (the
/// crate is built without its terminal feature, so it writes no escape codes), as wide as
/// its content whatever the terminal's width. Names on the left, numbers right-aligned.
fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for (i, column) in table.column_iter_mut().enumerate() {
        if i == 0 {
            column.set_padding((0, 0));
        } else {
            column.set_padding((1, 0));
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn main_row(name: &str, r: &Tally) -> [String; 12] {
    [
        name.to_string(),
        r.sessions.to_string(),
        r.recorded.to_string(),
        r.delivered.to_string(),
        r.sampled_out.to_string(),
        r.deduped.to_string(),
        r.dropped.total().to_string(),
        r.missing.to_string(),
        format!("{:.1}", r.bytes_per_impression()),
        r.uploads.to_string(),
        r.retries.to_string(),
        r.violations.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_plain_ascii_as_wide_as_its_content_with_numbers_right_aligned() {
        let mut t = table(["platform", "sessions", "B/imp"]);
        t.add_row(["tv", "11", "21.0"]);
        t.add_row(["total", "1234567890", "9.5"]);
        assert_eq!(
            t.to_string(),
            "platform   sessions B/imp\n\
             -------------------------\n\
             tv               11  21.0\n\
             total    1234567890   9.5"
        );
    }
}
