//! What became of the exposures the logger tracked itself: off unless the host asks, then
//! one outcome per qualified exposure (logged, deduped, refused by its rule), bounded.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use sightline_core::logger::MAX_OUTCOMES;
use sightline_core::{
    Config, Contract, ExposureOutcome, ItemRef, Logger, MemoryStore, Recorded, Rule,
};

type Shared = Rc<RefCell<MemoryStore>>;

/// Shows `it` fully for 1.5 s from `t`, then hides it.
fn expose(logger: &mut Logger, pv: u64, it: &ItemRef<'_>, t: u64) {
    logger.handle_visibility(pv, it, 1.0, at(t)).unwrap();
    logger
        .handle_visibility(pv, it, 0.0, at(t + 1_500))
        .unwrap();
}

#[test]
fn outcomes_are_not_kept_unless_the_host_asks() {
    let store = Shared::default();
    let mut logger = logger_on(&store, config(), 0);
    let pv = logger.start_page_view("home", None, None, at(0)).unwrap();
    expose(&mut logger, pv, &item("title:1", 0, 0), 10);
    assert_eq!(logger.stats().recorded, 1);
    assert_eq!(logger.poll_exposure_outcome(), None);
}

#[test]
fn each_qualified_exposure_reports_whether_it_was_logged_deduped_or_refused() {
    let store = Shared::default();
    let cfg = Config {
        contract: Contract {
            require_artwork: true,
            ..Contract::default()
        },
        ..config()
    };
    let mut logger = logger_on(&store, cfg, 0);
    logger.report_exposure_outcomes(true);
    let pv = logger.start_page_view("home", None, None, at(0)).unwrap();
    expose(&mut logger, pv, &item("title:1", 0, 2), 10);
    expose(&mut logger, pv, &item("title:1", 0, 2), 2_000);
    let no_artwork = ItemRef {
        artwork_id: None,
        ..item("title:2", 1, 0)
    };
    expose(&mut logger, pv, &no_artwork, 4_000);

    let outcome = |item_id: &str, row, column, result| ExposureOutcome {
        page_view: pv,
        item_id: item_id.into(),
        row,
        column,
        result,
    };
    assert_eq!(
        logger.poll_exposure_outcome(),
        Some(outcome("title:1", 0, 2, Ok(Recorded::Logged { seq: 1 })))
    );
    assert_eq!(
        logger.poll_exposure_outcome(),
        Some(outcome("title:1", 0, 2, Ok(Recorded::Deduped)))
    );
    assert_eq!(
        logger.poll_exposure_outcome(),
        Some(outcome("title:2", 1, 0, Err(Rule::ArtworkId)))
    );
    assert_eq!(logger.poll_exposure_outcome(), None);
    // The refusal is counted like any other, whether or not the host watches.
    assert_eq!(logger.stats().invalid_by_rule.get(Rule::ArtworkId), 1);
}

#[test]
fn a_host_that_never_polls_keeps_only_the_newest_outcomes() {
    let store = Shared::default();
    let mut logger = logger_on(&store, config(), 0);
    logger.report_exposure_outcomes(true);
    let pv = logger.start_page_view("home", None, None, at(0)).unwrap();
    let n = MAX_OUTCOMES as u32 + 10;
    for i in 0..n {
        let id = format!("title:{i}");
        logger
            .handle_visibility(pv, &item(&id, i / 100, i % 100), 1.0, at(10))
            .unwrap();
    }
    for i in 0..n {
        let id = format!("title:{i}");
        logger
            .handle_visibility(pv, &item(&id, i / 100, i % 100), 0.0, at(1_600))
            .unwrap();
    }
    let mut seen = Vec::new();
    while let Some(o) = logger.poll_exposure_outcome() {
        seen.push(o.item_id);
    }
    assert_eq!(seen.len(), MAX_OUTCOMES);
    assert_eq!(seen.first().map(String::as_str), Some("title:10"));
    assert_eq!(
        seen.last().map(|s| s.as_str()),
        Some(format!("title:{}", n - 1).as_str())
    );
}
