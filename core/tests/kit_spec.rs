//! The producer test kit: a capture of uploads in memory answers what a producer's unit test
//! asks, and its failures name the rule, the item and the position.

mod common;

use common::*;
use prost::Message;
use sightline_core::kit::Capture;
use sightline_core::{MemoryStore, Rule, gzip, wire};
use std::cell::RefCell;
use std::rc::Rc;

/// Two page views' worth of good impressions through a real logger; the upload bodies.
fn uploads_of_a_correct_app() -> Vec<Vec<u8>> {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut dev = logger_on(&store, config(), 0);
    let layout = vec![vec!["title:1".to_string(), "title:2".to_string()]];
    let pv = dev
        .start_page_view("home", Some("req-1"), Some(&layout), at(10))
        .expect("page view");
    for (column, id) in ["title:1", "title:2"].iter().enumerate() {
        dev.handle_visibility(pv, &item(id, 0, column as u32), 1.0, at(100))
            .expect("visible");
    }
    dev.handle_app_hidden(at(1_600));
    let first = dev.poll_upload(at(1_600)).expect("first batch");
    dev.handle_upload_result(first.id, ok(), at(1_700))
        .expect("in flight");
    dev.handle_app_visible(at(2_000));
    dev.handle_visibility(pv, &item("title:1", 0, 0), 0.0, at(2_000))
        .expect("gone");
    dev.handle_visibility(pv, &item("title:2", 0, 1), 0.0, at(2_000))
        .expect("gone");
    let pv2 = dev
        .start_page_view("search", None, None, at(2_100))
        .expect("page view");
    dev.handle_visibility(pv2, &item("title:9", 3, 4), 0.8, at(2_200))
        .expect("visible");
    dev.handle_visibility(pv2, &item("title:9", 3, 4), 0.0, at(4_000))
        .expect("gone");
    dev.flush(at(4_000));
    let second = dev.poll_upload(at(4_000)).expect("second batch");
    vec![first.body, second.body]
}

/// `body` with the first impression's visible time cut to 200 ms, re-encoded: what a client
/// that bypasses the SDK and counts an exposure too short to qualify would post.
fn with_short_exposure(body: &[u8]) -> Vec<u8> {
    let mut batch = wire::decode_gzip_batch(body).expect("the logger's own upload decodes");
    let cols = batch.impressions.as_mut().expect("impressions");
    cols.visible_ms[0] = 200;
    gzip::gzip(&batch.encode_to_vec())
}

#[test]
fn a_correct_app_passes_every_assertion_and_reconciles_exactly() {
    let mut capture = Capture::new(config().contract);
    for body in uploads_of_a_correct_app() {
        capture.receive(&body).expect("decodes");
    }
    assert_eq!(capture.uploads(), 2);
    assert_eq!(capture.impressions().len(), 3);
    let imp = capture.assert_impression("title:2", 0, 1).expect("logged");
    assert_eq!(
        (imp.page.as_str(), imp.request_id.as_deref(), imp.visible_ms),
        ("home", Some("req-1"), 1_500)
    );
    let searched = capture.assert_impression("title:9", 3, 4).expect("logged");
    assert_eq!(
        (searched.page.as_str(), searched.max_visible_pct),
        ("search", 80)
    );
    capture
        .assert_no_violations()
        .expect("a correct app breaks no rule");
    capture.assert_accounted().expect("nothing missing");
    capture
        .assert_no_impression("title:3")
        .expect("never shown");
    let (session, accounting) = capture.sessions().next().expect("one session");
    assert!(!session.is_empty());
    assert_eq!((accounting.issued, accounting.delivered), (3, 3));
}

#[test]
fn a_retried_upload_is_a_duplicate_not_a_second_impression() {
    let bodies = uploads_of_a_correct_app();
    let mut capture = Capture::new(config().contract);
    let first = capture.receive(&bodies[0]).expect("decodes");
    let again = capture.receive(&bodies[0]).expect("decodes");
    assert_eq!((first.accepted, first.duplicates), (2, 0));
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    assert_eq!(capture.impressions().len(), 2);
}

#[test]
fn a_short_exposure_is_a_violation_whose_message_names_rule_item_and_position() {
    let bodies = uploads_of_a_correct_app();
    let mut capture = Capture::new(config().contract);
    capture
        .receive(&with_short_exposure(&bodies[0]))
        .expect("decodes");
    capture
        .assert_violation(Rule::TooShort, Some("title:1"))
        .expect("the short exposure is flagged");
    let failure = capture
        .assert_no_violations()
        .expect_err("a rule is broken");
    for part in ["too_short", "item title:1", "row 0, column 0", "page home"] {
        assert!(failure.message.contains(part), "{part:?} in {failure}");
    }
    let failure = capture
        .assert_impression("title:1", 0, 0)
        .expect_err("only a bad impression of title:1 arrived");
    assert!(failure.message.contains("breaking too_short"), "{failure}");
    let failure = capture
        .assert_violation(Rule::NotOnPage, None)
        .expect_err("no such violation");
    assert!(failure.message.contains("not_on_page"), "{failure}");
    assert!(failure.message.contains("too_short"), "{failure}");
}

#[test]
fn an_upload_that_never_arrived_fails_the_accounting_with_the_missing_count() {
    let bodies = uploads_of_a_correct_app();
    let mut capture = Capture::new(config().contract);
    capture.receive(&bodies[1]).expect("decodes");
    let failure = capture
        .assert_accounted()
        .expect_err("the first batch is missing");
    assert!(
        failure.message.contains("2 impression(s) missing"),
        "{failure}"
    );
}

#[test]
fn a_body_that_does_not_decode_is_refused_and_changes_nothing() {
    let mut capture = Capture::new(config().contract);
    assert!(capture.receive(b"not gzip at all").is_err());
    assert_eq!((capture.uploads(), capture.impressions().len()), (0, 0));
    assert!(
        capture.assert_accounted().is_err(),
        "nothing to account for"
    );
}

#[test]
fn an_item_logged_twice_at_one_place_fails_assert_impression_with_both_found() {
    let mut cfg = config();
    cfg.contract.reentry = sightline_core::Reentry::AfterLeaving;
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut dev = logger_on(&store, cfg.clone(), 0);
    let pv = dev
        .start_page_view("home", None, None, at(0))
        .expect("page view");
    for start in [100, 3_000] {
        dev.handle_visibility(pv, &item("title:1", 0, 0), 1.0, at(start))
            .expect("visible");
        dev.handle_visibility(pv, &item("title:1", 0, 0), 0.0, at(start + 1_500))
            .expect("gone");
    }
    dev.flush(at(5_000));
    let upload = dev.poll_upload(at(5_000)).expect("a batch");
    let mut capture = Capture::new(cfg.contract);
    capture.receive(&upload.body).expect("decodes");
    capture
        .assert_no_violations()
        .expect("re-entry is allowed by this contract");
    let failure = capture
        .assert_impression("title:1", 0, 0)
        .expect_err("two impressions, not one");
    assert!(failure.message.contains("found 2"), "{failure}");
}

#[test]
fn an_input_the_logger_refused_fails_assert_no_violations_through_the_batch_counters() {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut dev = logger_on(&store, config(), 0);
    let layout = vec![vec!["title:1".to_string()]];
    let pv = dev
        .start_page_view("home", None, Some(&layout), at(0))
        .expect("page view");
    assert_eq!(
        dev.handle_visibility(pv, &item("title:2", 0, 0), 1.0, at(10)),
        Err(Rule::NotOnPage)
    );
    dev.handle_visibility(pv, &item("title:1", 0, 0), 1.0, at(10))
        .expect("on the page");
    dev.handle_app_hidden(at(2_000));
    let upload = dev.poll_upload(at(2_000)).expect("a batch");
    let mut capture = Capture::new(config().contract);
    capture.receive(&upload.body).expect("decodes");
    capture
        .assert_impression("title:1", 0, 0)
        .expect("the good one");
    let failure = capture
        .assert_no_violations()
        .expect_err("the device refused one input");
    assert!(failure.message.contains("refused 1 input(s)"), "{failure}");
    let (_, accounting) = capture.sessions().next().expect("one session");
    assert_eq!(accounting.invalid, 1);
}

#[test]
fn a_retried_bad_upload_reports_its_violations_once() {
    let bodies = uploads_of_a_correct_app();
    let bad = with_short_exposure(&bodies[0]);
    let mut capture = Capture::new(config().contract);
    let first = capture.receive(&bad).expect("decodes");
    let again = capture.receive(&bad).expect("decodes");
    assert_eq!((first.violations, again.violations), (1, 0));
    assert_eq!(capture.violations().len(), 1);
}
