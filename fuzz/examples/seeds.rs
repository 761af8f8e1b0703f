//! Writes the checked-in seed corpora, `fuzz/corpus/<target>/seed-*`, from the golden
//! vectors, the repository's contracts and real loggers and collectors:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! Deterministic (fixed clocks and seeds): running it again rewrites the same bytes, so a
//! change in the diff is a change in the formats. Run it after changing an input layout
//! in `fuzz/src`.

use std::fs;
use std::path::{Path, PathBuf};

use sightline_collector::ingest::Ingestor;
use sightline_core::gzip;
use sightline_core::store::{MemoryStore, Store, StoreError};
use sightline_core::upload::{APP_KEY_HEADER, CONTENT_TYPE};
use sightline_core::{Config, Contract, Impression, Logger, Now, Stored, UploadOutcome};
use sightline_fuzz::Writer;
use sightline_fuzz::ingest::{self, Upload};
use sightline_fuzz::store::{Input, Op};

const WALL: u64 = 1_767_225_600_000;
/// The store seeds' configuration: the default batch size and attempts.
const SEED_KNOBS: u8 = 0b1100_0111;

fn at(ms: u64) -> Now {
    Now::new(ms, WALL + ms)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
}

fn read(path: &str) -> Vec<u8> {
    fs::read(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A logger as the store target's seeds run it, and the store it writes to.
struct Device {
    logger: Logger,
    store: MemoryStore,
    pv: u64,
    now: u64,
    next_item: u32,
}

impl Device {
    fn new(config: Config) -> Device {
        let mut store = MemoryStore::new();
        let mut logger = Logger::start(config, &mut store, at(0)).expect("seed logger starts");
        let pv = logger
            .start_page_view("home", Some("req-1"), None, at(100))
            .expect("page view");
        Device {
            logger,
            store,
            pv,
            now: 100,
            next_item: 1,
        }
    }

    fn record(&mut self, n: u32) {
        for _ in 0..n {
            self.now += 2000;
            let item = format!("title:{}", self.next_item);
            self.next_item += 1;
            let imp = Impression {
                item_id: &item,
                artwork_id: self.next_item.is_multiple_of(2).then_some("art:1"),
                row: 0,
                column: self.next_item,
                first_visible_mono_ms: self.now - 1500,
                visible_ms: 1500,
                max_visible_fraction: 1.0,
                focused_ms: 500,
            };
            self.logger
                .record_impression(self.pv, &imp, at(self.now))
                .expect("a valid impression");
        }
        self.logger.perform_store_ops(&mut self.store);
    }

    fn flush(&mut self) {
        self.logger.flush(at(self.now));
        self.logger.perform_store_ops(&mut self.store);
    }

    /// Sends the next upload and answers it with `status`; returns its body.
    fn upload(&mut self, status: u16) -> Vec<u8> {
        self.now += 10;
        let upload = self
            .logger
            .poll_upload(at(self.now))
            .expect("an upload is due");
        self.logger
            .handle_upload_result(upload.id, UploadOutcome::status(status), at(self.now))
            .expect("in flight");
        self.logger.perform_store_ops(&mut self.store);
        upload.body
    }

    fn seed(&mut self, name: &str, ops: Vec<Op>) {
        let stored = self.store.load().expect("memory store loads");
        let mut input = Input::from_stored(&stored, self.now, WALL + self.now, SEED_KNOBS);
        input.ops = ops;
        assert_eq!(Input::parse(&input.write()), input, "{name} reads back");
        write("store_resume", name, &input.write());
    }
}

fn record_op(item: u8) -> Op {
    Op::Record {
        n: 0,
        item,
        artwork: 1,
        row: 0,
        column: item,
        visible_ms: 1500,
        pct: 200,
        focused_ms: 0,
    }
}

fn store_seeds(config: &Config) {
    let after = vec![
        Op::StartPageView {
            page: 0,
            request: 0,
        },
        Op::Advance { ms: 3000 },
        record_op(7),
        Op::Flush,
        Op::Upload {
            status: 200,
            retry_after: 0,
        },
        Op::Restart,
        Op::Upload {
            status: 200,
            retry_after: 0,
        },
    ];

    let mut empty = Input::from_stored(&Stored::default(), 0, WALL, SEED_KNOBS);
    empty.ops = after.clone();
    write("store_resume", "empty", &empty.write());

    let mut d = Device::new(config.clone());
    d.record(3);
    d.seed("journal-only", after.clone());

    let mut d = Device::new(config.clone());
    d.record(4);
    d.flush();
    d.seed(
        "queued-batch",
        vec![
            Op::Upload {
                status: 503,
                retry_after: 2,
            },
            Op::Advance { ms: 5000 },
            Op::Upload {
                status: 413,
                retry_after: 0,
            },
            Op::FailStore { n: 1 },
            Op::Upload {
                status: 200,
                retry_after: 0,
            },
            Op::Restart,
        ],
    );

    let mut d = Device::new(config.clone());
    d.record(4);
    d.flush();
    d.upload(200);
    d.record(2);
    d.seed("delivered-then-journal", after.clone());

    let mut d = Device::new(config.clone());
    d.record(4);
    d.flush();
    d.upload(413);
    d.seed("split-halves", after.clone());

    let mut d = Device::new(config.clone());
    d.record(2);
    d.flush();
    d.logger.set_enabled(false, true, at(d.now));
    // The purge's removals fail: the next start finds the purge pending.
    let mut failing = FailingAfterPrefs::default();
    d.logger.perform_store_ops(&mut Split {
        store: &mut d.store,
        failing: &mut failing,
    });
    d.seed(
        "purge-pending",
        vec![
            Op::SetEnabled {
                enabled: true,
                purge: false,
            },
            record_op(3),
        ],
    );
}

/// Lets the first write (the `prefs` record) through, then fails every operation.
#[derive(Default)]
struct FailingAfterPrefs {
    done: bool,
}

struct Split<'a> {
    store: &'a mut MemoryStore,
    failing: &'a mut FailingAfterPrefs,
}

impl Split<'_> {
    fn gate(&mut self) -> Result<(), StoreError> {
        if std::mem::replace(&mut self.failing.done, true) {
            Err(StoreError::Io("seed".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for Split<'_> {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.gate()?;
        self.store.put(key, value)
    }
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key)
    }
    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        self.gate()?;
        self.store.remove(key)
    }
    fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.store.keys(prefix)
    }
    fn journal_append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.gate()?;
        self.store.journal_append(bytes)
    }
    fn journal_read(&mut self) -> Result<Vec<u8>, StoreError> {
        self.store.journal_read()
    }
    fn journal_clear(&mut self) -> Result<(), StoreError> {
        self.gate()?;
        self.store.journal_clear()
    }
}

/// Two real uploads of one session (the second with a retry of the first's seqs).
fn logger_uploads(config: &Config) -> (Vec<u8>, Vec<u8>) {
    let mut d = Device::new(config.clone());
    d.record(3);
    d.flush();
    let first = d.upload(200);
    d.record(2);
    d.flush();
    let second = d.upload(200);
    (first, second)
}

fn wire_seeds(golden_gz: &[u8], golden_pb: &[u8], upload: &[u8]) {
    write("wire_batch", "golden.pb.gz", golden_gz);
    write("wire_batch", "golden.pb", golden_pb);
    write(
        "wire_batch",
        "truncated.pb.gz",
        &golden_gz[..golden_gz.len() * 2 / 3],
    );
    write("wire_batch", "upload-two-members.pb.gz", upload);
    let mut stored = Vec::new();
    gzip::gzip_stored_into(golden_pb, &mut stored);
    write("wire_batch", "stored-member.pb.gz", &stored);
    let mut bomb = Vec::new();
    gzip::gzip_into(&vec![0; 64 * 1024], 9, &mut bomb);
    write("wire_batch", "zeros.gz", &bomb);
}

fn check_seeds(golden_gz: &[u8], golden_pb: &[u8]) {
    let mut ingestor = Ingestor::new(Contract::default());
    let outcome = ingestor.ingest(golden_gz, WALL).expect("golden ingests");
    let mut ndjson = Vec::new();
    for row in &outcome.good {
        serde_json::to_writer(&mut ndjson, row).expect("row JSON");
        ndjson.push(b'\n');
    }
    let mut w = Writer::default();
    w.u8(0)
        .bytes(golden_gz)
        .u8(1)
        .bytes(golden_pb)
        .u8(2)
        .bytes(&ndjson);
    write("check_inputs", "golden-three-kinds", &w.0);
    let mut w = Writer::default();
    w.u8(2).bytes(&ndjson).u8(3).bytes(&ndjson);
    write("check_inputs", "rows-twice", &w.0);
}

/// The headers the SDK sends: the fuzzed collector's first key and the batch type.
fn sdk_headers() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (APP_KEY_HEADER.as_bytes(), ingest::APP_KEYS[0].as_bytes()),
        (b"content-type", CONTENT_TYPE.as_bytes()),
    ]
}

fn ingest_seeds(golden_gz: &[u8], first: &[u8], second: &[u8]) {
    let upload = |received_wall_ms, body| Upload {
        received_wall_ms,
        gzip: false,
        body,
        headers: sdk_headers(),
    };
    // The same uploads as protobuf for the target to gzip: mutations then reach the decoder.
    let protobuf = |body: &[u8]| gzip::gunzip(body, usize::MAX).expect("a real upload gunzips");
    let (first_pb, second_pb) = (protobuf(first), protobuf(second));
    let to_gzip = |received_wall_ms, body| Upload {
        received_wall_ms,
        gzip: true,
        body,
        headers: sdk_headers(),
    };
    // Through proxies: extra headers, a content type with parameters, the key repeated.
    let proxied = Upload {
        headers: vec![
            (b"x-forwarded-for", b"203.0.113.7"),
            (
                b"content-type",
                b"application/x-sightline-batch; charset=binary",
            ),
            (APP_KEY_HEADER.as_bytes(), ingest::APP_KEYS[1].as_bytes()),
            (APP_KEY_HEADER.as_bytes(), b"stale-key"),
        ],
        ..upload(WALL, golden_gz)
    };
    let wrong_key = Upload {
        headers: vec![
            (APP_KEY_HEADER.as_bytes(), b"key-2"),
            (b"content-type", CONTENT_TYPE.as_bytes()),
        ],
        ..upload(WALL, golden_gz)
    };
    let inputs = [
        ("golden", vec![upload(WALL, golden_gz)]),
        (
            "session-with-retry",
            vec![
                upload(WALL, first),
                upload(WALL + 1, second),
                upload(WALL + 2, first),
            ],
        ),
        (
            "skewed-clock",
            vec![upload(0, first), upload(u64::MAX, second)],
        ),
        (
            "protobuf-session",
            vec![to_gzip(WALL, &first_pb), to_gzip(WALL + 1, &second_pb)],
        ),
        ("proxied-headers", vec![proxied, wrong_key]),
    ];
    for (name, uploads) in inputs {
        let input = ingest::Input {
            contract: 0,
            uploads,
        };
        assert_eq!(
            ingest::parse(&ingest::write(&input)),
            input,
            "{name} reads back"
        );
        write("collector_ingest", name, &ingest::write(&input));
    }
}

fn contract_seeds() {
    let contract = serde_json::to_string_pretty(&Contract::default()).expect("JSON");
    write(
        "contract_json",
        "default-contract.json",
        contract.as_bytes(),
    );
    let valid = Config {
        app_id: "com.example.tv".into(),
        app_version: "1.0.0".into(),
        seed: 1,
        ..Config::default()
    };
    let config = serde_json::to_string_pretty(&valid).expect("JSON");
    write("contract_json", "default-config.json", config.as_bytes());
    // The configurations of the conformance scenarios that set a contract, and their
    // contracts alone.
    let dir = root().join("tests/conformance/scenarios");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("scenarios")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let text = fs::read_to_string(&path).expect("scenario");
        let scenario: serde_json::Value = serde_json::from_str(&text).expect("scenario JSON");
        let config = &scenario["config"];
        if config.get("contract").is_none() {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
        write(
            "contract_json",
            &format!("{stem}.config.json"),
            config.to_string().as_bytes(),
        );
        write(
            "contract_json",
            &format!("{stem}.contract.json"),
            config["contract"].to_string().as_bytes(),
        );
    }
}

fn main() {
    let golden_gz = read("tests/fixtures/v1/batch.pb.gz");
    let golden_pb = read("tests/fixtures/v1/batch.pb");
    let config = sightline_fuzz::store::config(SEED_KNOBS);
    let (first, second) = logger_uploads(&config);
    wire_seeds(&golden_gz, &golden_pb, &first);
    check_seeds(&golden_gz, &golden_pb);
    ingest_seeds(&golden_gz, &first, &second);
    contract_seeds();
    store_seeds(&config);
}
