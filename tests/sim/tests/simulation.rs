//! The deterministic simulation: thousands of sessions through the real core on virtual
//! time, a lossy network, crashes and clock jumps. Set `SIGHTLINE_SIM_SESSIONS` for a
//! longer run (the default run simulates 10,000 sessions).

use sightline_core::{Config, Contract, Reentry};
use sightline_sim::collector::Collector;
use sightline_sim::harness::{SimSpec, check, run_device};
use sightline_sim::network::Faults;
use sightline_sim::workload::{Page, WorkloadSpec, generate};

/// Sessions of the default run.
const DEFAULT_SESSIONS: u64 = 10_000;

fn config() -> Config {
    Config {
        app_id: "com.example.app".into(),
        app_version: "3.1.0".into(),
        device: "sim".into(),
        app_key: "sim-key".into(),
        // Small batches and queues exercise closing, splitting and overflow often.
        max_batch_impressions: 40,
        max_queue_bytes: 64 * 1024,
        ..Config::default()
    }
}

/// A short session of small pages, different for every seed.
fn session_pages(seed: u64) -> Vec<Page> {
    let spec = WorkloadSpec {
        seed,
        page_views: 3,
        rows: 4,
        columns: 6,
        catalog_size: 400,
        zipf_exponent: 1.0,
    };
    generate(&spec).pages
}

fn sessions() -> u64 {
    std::env::var("SIGHTLINE_SIM_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SESSIONS)
}

fn run(
    spec: &SimSpec,
    n: u64,
    seed0: u64,
) -> (Collector, Vec<sightline_sim::harness::DeviceReport>) {
    let mut collector = Collector {
        contract: spec.config.contract.clone(),
        ..Collector::default()
    };
    let reports = (0..n)
        .map(|i| run_device(spec, seed0 + i, &session_pages(seed0 + i), &mut collector))
        .collect();
    (collector, reports)
}

#[test]
fn every_simulated_session_accounts_for_every_impression_on_a_hostile_network() {
    let spec = SimSpec::hostile(config());
    let (collector, reports) = run(&spec, sessions(), 1);
    let mut failures = Vec::new();
    for r in &reports {
        if let Err(e) = check(r, &collector) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} sessions broke the invariant, first: {}",
        failures.len(),
        failures[0]
    );
    assert!(
        collector.violations.is_empty(),
        "a correct client broke the contract: {:?}",
        &collector.violations[..collector.violations.len().min(5)]
    );

    // The run must actually have exercised what it claims to.
    let total =
        |f: fn(&sightline_core::Stats) -> u64| reports.iter().map(|r| f(&r.stats)).sum::<u64>();
    assert!(reports.iter().all(|r| r.refused == 0));
    assert!(
        total(|s| s.delivered) > 100 * reports.len() as u64 / 10,
        "most sessions deliver"
    );
    assert!(total(|s| s.retries) > 0);
    assert!(total(|s| s.dropped.rejected) > 0, "permanent 4xx happened");
    assert!(
        reports.iter().map(|r| r.restarts).sum::<u32>() > 0,
        "crashes happened"
    );
    assert!(
        collector.duplicates() > 0,
        "lost acknowledgements caused resends"
    );
    let unique = collector.unique();
    let delivered = total(|s| s.delivered);
    assert!(unique >= delivered);
}

#[test]
fn with_a_healthy_network_and_no_crashes_everything_recorded_is_delivered_exactly_once() {
    let spec = SimSpec {
        faults: Faults::none(),
        crash_per_page: 0.0,
        clock_jump_per_page: 0.0,
        ..SimSpec::hostile(config())
    };
    let (collector, reports) = run(&spec, 300, 50_000);
    for r in &reports {
        check(r, &collector).unwrap();
        assert_eq!(r.stats.dropped.total(), 0);
        assert_eq!(r.stats.delivered, r.stats.issued);
        assert_eq!(
            collector.sessions[&r.session_id].seqs.len() as u64,
            r.stats.issued
        );
    }
    assert_eq!(collector.duplicates(), 0);
}

#[test]
fn sampling_keeps_whole_installs_and_counts_the_rest() {
    let spec = SimSpec {
        config: Config {
            sample_rate_ppm: 250_000,
            ..config()
        },
        ..SimSpec::hostile(config())
    };
    let (collector, reports) = run(&spec, 400, 90_000);
    let kept = reports
        .iter()
        .filter(|r| r.stats.sampled_out == 0 && r.stats.recorded > 0)
        .count();
    let out = reports.iter().filter(|r| r.stats.sampled_out > 0).count();
    assert!(
        reports
            .iter()
            .all(|r| r.stats.sampled_out == 0 || r.stats.issued == 0),
        "all or nothing per install"
    );
    assert!(
        (50..150).contains(&kept),
        "about a quarter kept: {kept} of 400"
    );
    assert!(out > 200);
    for r in &reports {
        check(r, &collector).unwrap();
    }
}

#[test]
fn the_same_seed_replays_the_same_simulation() {
    let spec = SimSpec::hostile(Config {
        contract: Contract {
            reentry: Reentry::AfterLeaving,
            ..Contract::default()
        },
        ..config()
    });
    let (a, ra) = run(&spec, 30, 7);
    let (b, rb) = run(&spec, 30, 7);
    assert_eq!(a.unique(), b.unique());
    assert_eq!(a.duplicates(), b.duplicates());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x.stats, y.stats);
        assert_eq!(x.session_id, y.session_id);
    }
}

/// An independent statement of the viewability rule for a page without backgrounding:
/// every stretch at >= 50 % visible lasting >= 1000 ms qualifies; once per page view, the
/// first per item and place is logged and the later ones are deduped.
/// Returns (qualifying exposures, distinct places).
fn oracle_impressions(page: &Page) -> (u64, u64) {
    use std::collections::BTreeMap;
    let mut since: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut qualified: std::collections::BTreeSet<(u32, u32)> = Default::default();
    let mut exposures = 0;
    for e in page.events.iter().filter(|e| e.focused.is_none()) {
        let key = (e.row, e.column);
        if e.fraction >= 0.5 {
            since.entry(key).or_insert(e.at_ms);
        } else if let Some(start) = since.remove(&key)
            && e.at_ms - start >= 1000
        {
            exposures += 1;
            qualified.insert(key);
        }
    }
    let end = page.start_ms + page.duration_ms;
    for (key, start) in since {
        if end - start >= 1000 {
            exposures += 1;
            qualified.insert(key);
        }
    }
    (exposures, qualified.len() as u64)
}

#[test]
fn the_core_counts_exactly_the_impressions_an_independent_oracle_counts() {
    let spec = SimSpec {
        faults: Faults::none(),
        crash_per_page: 0.0,
        clock_jump_per_page: 0.0,
        ..SimSpec::hostile(config())
    };
    let workload = generate(&WorkloadSpec::reference());
    let mut checked = 0;
    for (i, pages) in workload.by_session().iter().enumerate() {
        if pages.iter().any(|p| !p.hidden.is_empty()) {
            continue;
        }
        let mut collector = Collector::default();
        let report = run_device(&spec, i as u64, pages, &mut collector);
        let (exposures, distinct) = pages
            .iter()
            .map(oracle_impressions)
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        assert_eq!(report.stats.issued, distinct, "session {i}");
        assert_eq!(report.stats.deduped, exposures - distinct, "session {i}");
        checked += 1;
    }
    assert!(
        checked > 50,
        "most sessions have no backgrounding: {checked}"
    );
}
