"""The cost of one recorded impression from Python, beside native Rust in the same run.

Same workload and timing as the Rust baseline (bindings/uniffi/examples/bench_record.rs):
page views of 100 distinct impressions, only the record calls timed, the host's draining
outside the timing. Pass the baseline's ``BASELINE ...`` line as the first argument to
print ratios. Figures, never asserted.
"""

from __future__ import annotations

import sys
import time

import sightline
from sightline import Item, Logger, Now, QualifiedImpression, Stored

PAGE_VIEWS = 300
PER_PAGE_VIEW = 100


def at(mono: int) -> Now:
    return Now(mono_ms=mono, wall_ms=1_700_000_000_000 + mono)


def impressions(pv: int) -> list[QualifiedImpression]:
    return [
        QualifiedImpression(
            item=Item(item_id=f"title:{pv}-{i}", row=i // 10, column=i % 10),
            first_visible_mono_ms=pv * 10_000,
            visible_ms=1_500,
            max_visible_fraction=1.0,
        )
        for i in range(PER_PAGE_VIEW)
    ]


def drain(log: Logger, t: int) -> None:
    ok = sightline.UploadOutcome.STATUS(code=200, retry_after=None)
    while True:
        while (op := log.poll_store_op()) is not None:
            log.handle_store_result(op.id, None)
        upload = log.poll_upload(at(t))
        if upload is None:
            return
        log.handle_upload_result(upload.id, ok, at(t))


def run(many: bool) -> float:
    config = sightline.Config(
        app_id="com.example.bench",
        app_version="1.0.0",
        platform=sightline.Platform.ANDROID,
        app_key="key-1",
        seed=7,
    )
    log = Logger.resume(config, Stored(), at(0))
    nanos, n = 0, 0
    for pv_no in range(2 * PAGE_VIEWS):
        t = pv_no * 10_000
        pv = log.start_page_view(f"page{pv_no % 8}", None, None, at(t))
        batch, now = impressions(pv_no), at(t + 2_000)
        started = time.perf_counter_ns()
        if many:
            log.record_many(pv, batch, now)
        else:
            for imp in batch:
                log.record_impression(pv, imp, now)
        elapsed = time.perf_counter_ns() - started
        if pv_no >= PAGE_VIEWS:
            nanos, n = nanos + elapsed, n + PER_PAGE_VIEW
        log.end_page_view(pv, now)
        log.flush(now)
        drain(log, t + 2_000)
    return nanos / n


def main() -> None:
    baseline = dict(kv.split("=") for kv in sys.argv[1].split()[1:]) if len(sys.argv) > 1 else {}
    one, many = run(many=False), run(many=True)
    print(f"Sightline record_impression from Python ({PAGE_VIEWS} page views x {PER_PAGE_VIEW})")
    print(f"   {'path':<44} {'ns/imp':>10} {'x Rust':>8}")
    rust = float(baseline.get("rust_binding_ns", "nan"))
    for name, ns in (
        ("Logger.record_impression, one per call", one),
        ("Logger.record_many, 100 per call", many),
    ):
        print(f"   {name:<44} {ns:>10.0f} {ns / rust:>8.1f}")
    print(f"   (Rust, same binding object, one per call: {rust:.0f} ns)")


if __name__ == "__main__":
    main()
