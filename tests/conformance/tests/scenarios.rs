//! Runs every scenario of the suite through the Rust runner. `SIGHTLINE_BLESS=1` rewrites
//! each file's `expect` from the actual outcome instead of comparing (check the outcome by
//! hand first: blessing makes whatever the core does the expectation).

use sightline_conformance::{self as conformance, Scenario};
use sightline_core::wire;

fn bless() -> bool {
    std::env::var_os("SIGHTLINE_BLESS").is_some_and(|v| v == "1")
}

fn scenarios() -> Vec<Scenario> {
    conformance::scenario_files()
        .expect("the scenarios folder is readable")
        .iter()
        .map(|path| conformance::load(path).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn every_scenario_has_its_expected_outcome() {
    let mut failures = Vec::new();
    for path in conformance::scenario_files().expect("the scenarios folder is readable") {
        let result = conformance::load(&path).and_then(|s| s.run().map(|run| (s, run)));
        let (mut scenario, run) = match result {
            Ok(ok) => ok,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        if bless() {
            scenario.expect = run.outcome;
            let text = conformance::canonical_text(&scenario).expect("a scenario serializes");
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            continue;
        }
        let differences =
            conformance::diff(&scenario.expect, &run.outcome).expect("outcomes serialize");
        if !differences.is_empty() {
            let lines: Vec<String> = differences.iter().map(|d| format!("  {d}")).collect();
            failures.push(format!("{}:\n{}", scenario.name, lines.join("\n")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) differ from their expectation:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_suite_has_at_least_20_scenarios_each_named_after_its_file() {
    // `load` refuses a scenario whose name is not its file's stem.
    let all = scenarios();
    assert!(all.len() >= 20, "only {} scenarios", all.len());
}

#[test]
fn every_file_is_in_the_form_bless_writes() {
    if bless() {
        return; // the files are being rewritten
    }
    for path in conformance::scenario_files().expect("the scenarios folder is readable") {
        let scenario = conformance::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(
            text,
            conformance::canonical_text(&scenario).expect("a scenario serializes"),
            "{}: not in canonical form (run with SIGHTLINE_BLESS=1)",
            path.display()
        );
    }
}

#[test]
fn a_retried_upload_sends_the_same_batch_and_only_its_send_info_differs() {
    let path = conformance::scenarios_dir().join("retry_503_backoff.json");
    let run = conformance::load(&path)
        .and_then(|s| s.run())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(run.bodies.len() >= 2, "the scenario retries");
    let attempts: Vec<_> = run
        .bodies
        .iter()
        .map(|raw| {
            let mut batch = wire::decode_batch(raw).expect("a valid batch");
            let send = batch.send.take().expect("send info");
            (batch, send.attempt)
        })
        .collect();
    for (i, (batch, attempt)) in attempts.iter().enumerate() {
        assert_eq!(batch, &attempts[0].0, "attempt {i} re-encoded the batch");
        assert_eq!(*attempt as usize, i + 1);
    }
}
