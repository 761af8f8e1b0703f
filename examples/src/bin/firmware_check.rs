//! Checks what the firmware example (examples/firmware) printed under QEMU: decodes every
//! upload body with the core's kit, exactly as the collector would, and compares each
//! impression and the accounting with the scripted session, then prints the heap figures
//! against the budget. Exit status 1 on any difference.
//!
//! ```sh
//! qemu-system-arm -M mps2-an386 -nographic -semihosting -kernel firmware.elf 2> fw.out
//! cargo run -p sightline-examples --bin firmware_check -- fw.out
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

use sightline_core::contract::Contract;
use sightline_core::kit::Capture;

/// (item, row, column, visible ms, max visible %, focused ms) of each impression the
/// script makes qualify: row 0 is on screen from 0 to 4,000 ms with the remote's focus
/// 1,200 ms on each tile; row 1 at 60 % from 500 to 2,000 ms.
const EXPECTED: [(&str, u32, u32, u32, u32, u32); 6] = [
    ("title:21", 1, 0, 1500, 60, 0),
    ("title:22", 1, 1, 1500, 60, 0),
    ("title:23", 1, 2, 1500, 60, 0),
    ("title:11", 0, 0, 4000, 100, 1200),
    ("title:12", 0, 1, 4000, 100, 1200),
    ("title:13", 0, 2, 4000, 100, 1200),
];

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: firmware_check <qemu output>");
        return ExitCode::from(2);
    };
    match check(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firmware_check: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &str) -> Result<(), String> {
    let output = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    if !output.lines().any(|l| l == "DONE") {
        return Err(format!("the firmware did not finish:\n{output}"));
    }
    let mut capture = Capture::new(Contract::default());
    let mut statuses = Vec::new();
    let mut stats = BTreeMap::new();
    for line in output.lines() {
        if let Some(upload) = line.strip_prefix("UPLOAD ") {
            let (status, hex) = upload.split_once(' ').ok_or("UPLOAD without a body")?;
            let body = unhex(hex)?;
            capture
                .receive(&body)
                .map_err(|e| format!("an upload does not decode: {e}"))?;
            statuses.push(status.to_string());
        } else if let Some(fields) = line.strip_prefix("STATS") {
            for field in fields.split_whitespace() {
                let (name, value) = field.split_once('=').ok_or("malformed STATS")?;
                let value: u64 = value.parse().map_err(|_| "malformed STATS value")?;
                stats.insert(name.to_string(), value);
            }
        } else if line.starts_with("FAILED") || line.starts_with("PANIC") || line == "FAULT" {
            return Err(format!("the firmware reported: {line}"));
        }
    }
    let stat = |name: &str| {
        stats
            .get(name)
            .copied()
            .ok_or(format!("no {name} in STATS"))
    };

    // The collector answered 503 with Retry-After first: the device sent the batch again.
    if statuses != ["503", "200"] {
        return Err(format!(
            "uploads answered {statuses:?}, expected [503, 200]"
        ));
    }
    let got: Vec<_> = capture
        .impressions()
        .iter()
        .map(|i| {
            (
                i.item_id.as_str(),
                i.row,
                i.column,
                i.visible_ms,
                i.max_visible_pct,
                i.focused_ms,
            )
        })
        .collect();
    if got != EXPECTED {
        return Err(format!(
            "impressions differ:\n  got      {got:?}\n  expected {EXPECTED:?}"
        ));
    }
    if let Some(v) = capture.violations().first() {
        return Err(format!("the batch breaks {}: {v:?}", v.rule.name()));
    }
    let (session, acc) = capture.sessions().next().ok_or("no session")?;
    // One input was refused on the device (the malformed id): counted, never sent.
    let wanted = (6, 1, 6, 6, 6, 0);
    let seen = (
        acc.recorded,
        acc.invalid,
        acc.issued,
        acc.delivered,
        acc.duplicates,
        acc.missing,
    );
    if seen != wanted {
        return Err(format!(
            "session {session}: (recorded, invalid, issued, delivered, duplicates, missing) = {seen:?}, expected {wanted:?}"
        ));
    }
    if (stat("delivered")?, stat("pending")?, stat("invalid")?) != (6, 0, 1) {
        return Err(format!("device counters {stats:?}"));
    }
    println!(
        "firmware: 6 impressions decoded and checked, session {session} reconciles \
         (1 refused on the device, the 503 retry's 6 copies absorbed as duplicates)"
    );
    let (peak, budget) = (stat("heap_peak")?, stat("heap_budget")?);
    println!(
        "firmware heap: peak {peak} B of Sightline allocations (budget {budget} B, {}), \
         malloc arena high water {} B",
        if peak <= budget { "within" } else { "OVER" },
        stat("arena_high_water")?
    );
    if stat("heap_after_free")? != 0 {
        return Err(format!(
            "{} B still allocated after sightline_logger_free",
            stat("heap_after_free")?
        ));
    }
    Ok(())
}

fn unhex(hex: &str) -> Result<Vec<u8>, String> {
    let digits = hex.as_bytes();
    if digits.len() % 2 != 0 {
        return Err("odd-length hex body".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| "non-ASCII hex")?;
            u8::from_str_radix(text, 16).map_err(|_| format!("bad hex {text:?}"))
        })
        .collect()
}
