//! The data contract read from JSON (`serde_json` into `Contract`, as the collector's
//! `--contract` file and the bindings' `config_from_json` do), then validated and used.
//!
//! Asserts: nothing panics; a parsed contract (and a parsed `Config`) serialises back to
//! JSON that parses to the same value; a contract the configuration validation accepts
//! starts a logger, and a batch that logger sends for an impression it accepted breaks no
//! rule of that contract (a correct client breaks no rule); the checks of the golden batch
//! under the contract do not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_core::logger::Recorded;
use sightline_core::{Config, Contract, Impression, Logger, Now, Stored, wire};

const GOLDEN: &[u8] = include_bytes!("../../tests/fixtures/v1/batch.pb");

/// Logs one impression that satisfies `config`'s contract and checks the batch sent.
fn log_one(config: Config) {
    let contract = config.contract.clone();
    let at = |ms: u64| Now::new(ms, 1_767_225_600_000 + ms);
    let mut logger = match Logger::resume(config, Stored::default(), at(0)) {
        Ok(logger) => logger,
        Err(e) => panic!("a validated configuration must start: {e:?}"),
    };
    let page = contract.pages.first().map_or("home", String::as_str);
    let Ok(pv) = logger.start_page_view(page, None, None, at(1)) else {
        // The contract refuses every page name it lists (an invalid id, or too long).
        return;
    };
    let visible_ms = u64::from(contract.min_visible_ms.max(1));
    let start = 10;
    let now = at(start + visible_ms);
    let imp = Impression {
        item_id: "title:1",
        artwork_id: Some("art:1"),
        row: 0,
        column: 0,
        first_visible_mono_ms: start,
        visible_ms,
        max_visible_fraction: 1.0,
        focused_ms: 0,
    };
    let logged = logger.record_impression(pv, &imp, now);
    logger.flush(now);
    while let Some(req) = logger.poll_store_op() {
        let id = req.id;
        assert!(logger.handle_store_result(id, Ok(())).is_ok());
    }
    let Ok(Recorded::Logged { .. }) = logged else {
        return;
    };
    let Some(upload) = logger.poll_upload(now) else {
        panic!("a flushed, stored batch is sent");
    };
    let batch = match wire::decode_gzip_batch(&upload.body) {
        Ok(batch) => batch,
        Err(e) => panic!("the logger sent a batch its own decoder refuses: {e}"),
    };
    let violations = contract.check_batch(&batch);
    assert!(
        violations.is_empty(),
        "the logger broke its own contract {contract:?}: {violations:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let golden = match wire::decode_batch(GOLDEN) {
        Ok(batch) => batch,
        Err(e) => panic!("the golden batch decodes: {e}"),
    };
    if let Ok(contract) = serde_json::from_slice::<Contract>(data) {
        let text = match serde_json::to_string(&contract) {
            Ok(text) => text,
            Err(e) => panic!("a parsed contract serialises: {e}"),
        };
        let back: Contract = match serde_json::from_str(&text) {
            Ok(back) => back,
            Err(e) => panic!("a serialised contract parses: {e}: {text}"),
        };
        assert_eq!(back, contract, "the contract changed through JSON");
        let _ = contract.check_batch(&golden);
        let config = Config {
            app_id: "fuzz.app".into(),
            app_version: "1.0".into(),
            seed: 1,
            contract,
            ..Config::default()
        };
        if config.validate().is_ok() {
            log_one(config);
        }
    }
    if let Ok(config) = serde_json::from_slice::<Config>(data) {
        let text = match serde_json::to_string(&config) {
            Ok(text) => text,
            Err(e) => panic!("a parsed configuration serialises: {e}"),
        };
        let back: Config = match serde_json::from_str(&text) {
            Ok(back) => back,
            Err(e) => panic!("a serialised configuration parses: {e}: {text}"),
        };
        assert_eq!(back, config, "the configuration changed through JSON");
        if config.validate().is_ok() {
            log_one(config);
        }
    }
});
