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

/// An impression as checked: (item, row, column, visible ms, max visible %, focused ms).
type Row = (String, u32, u32, u32, u32, u32);

/// Grids the firmware zaps through while offline (`SURF_SCREENS` in main.c), 8 tiles each.
const SURF_SCREENS: u32 = 16;

/// What the script makes qualify, in the order the first batch carries it: on the home
/// screen row 1 at 60 % from 500 to 2,000 ms (ended first), then row 0, on screen from 0
/// to 4,000 ms with the remote's focus 1,200 ms on each tile; the details page's glimpse
/// (30 %) and malformed id give none. Then every tile of every grid, 1.5 s in full view.
fn expected() -> (Vec<Row>, Vec<Row>) {
    let home = [
        ("title:21", 1, 0, 1500, 60, 0),
        ("title:22", 1, 1, 1500, 60, 0),
        ("title:23", 1, 2, 1500, 60, 0),
        ("title:11", 0, 0, 4000, 100, 1200),
        ("title:12", 0, 1, 4000, 100, 1200),
        ("title:13", 0, 2, 4000, 100, 1200),
    ]
    .map(|(id, r, c, v, p, f)| (id.to_string(), r, c, v, p, f))
    .to_vec();
    let mut grids: Vec<Row> = (0..SURF_SCREENS * 8)
        .map(|n| {
            (
                format!("title:{}", 1000 + n),
                n % 8 / 4,
                n % 4,
                1500,
                100,
                0,
            )
        })
        .collect();
    grids.sort();
    (home, grids)
}

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
            // Only what the collector accepted reaches it.
            if status.starts_with('2') {
                capture
                    .receive(&unhex(hex)?)
                    .map_err(|e| format!("an upload does not decode: {e}"))?;
            }
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

    // The collector answered 503 with Retry-After first, then nothing got through while
    // the network was down, then everything did.
    let (first, rest) = statuses.split_first().ok_or("no upload")?;
    let offline = rest.iter().filter(|s| *s == "0").count();
    if first != "503" || offline == 0 || rest.last().map(String::as_str) != Some("200") {
        return Err(format!(
            "uploads answered {statuses:?}: expected 503, then network errors, then 200s"
        ));
    }
    let got: Vec<Row> = capture
        .impressions()
        .iter()
        .map(|i| {
            (
                i.item_id.clone(),
                i.row,
                i.column,
                i.visible_ms,
                i.max_visible_pct,
                i.focused_ms,
            )
        })
        .collect();
    let (home, grids) = expected();
    let (got_home, got_grids) = got.split_at(home.len().min(got.len()));
    let mut got_grids = got_grids.to_vec();
    got_grids.sort();
    if got_home != home {
        return Err(format!(
            "home screen impressions differ:\n  got      {got_home:?}\n  expected {home:?}"
        ));
    }
    if got_grids != grids {
        return Err(format!(
            "grid impressions differ: got {} of {}; first difference {:?}",
            got_grids.len(),
            grids.len(),
            got_grids.iter().zip(&grids).find(|(a, b)| a != b)
        ));
    }
    if let Some(v) = capture.violations().first() {
        return Err(format!("the batch breaks {}: {v:?}", v.rule.name()));
    }
    let total = (home.len() + grids.len()) as u64;
    let (session, acc) = capture.sessions().next().ok_or("no session")?;
    // One input was refused on the device (the malformed id): counted, never sent.
    let wanted = (total, 1, total, total, 0, 0);
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
    if (stat("delivered")?, stat("pending")?, stat("invalid")?) != (total, 0, 1) {
        return Err(format!("device counters {stats:?}"));
    }
    println!(
        "firmware: {total} impressions decoded and checked, session {session} reconciles \
         (1 refused on the device; {} uploads: a 503, {offline} while offline, the rest accepted)",
        statuses.len()
    );
    let (peak, budget) = (stat("heap_peak")?, stat("heap_budget")?);
    println!(
        "firmware heap: peak {peak} B of Sightline allocations (budget {budget} B), malloc \
         arena high water {} B",
        stat("arena_high_water")?
    );
    if peak > budget {
        return Err(format!(
            "heap peak {peak} B is over the budget of {budget} B"
        ));
    }
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
    if !digits.len().is_multiple_of(2) {
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
