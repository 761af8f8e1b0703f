/*
 * The cost of one recorded impression from Kotlin, through the sans-IO Logger: one
 * `recordImpression` call per impression, and `recordMany` with 100 per call. Figures are
 * printed, never asserted. Only the record calls are timed; the host's work (store
 * operations, uploads answered 200) runs between the timed stretches, so the queue never
 * fills. Item ids are distinct, so nothing is deduplicated. For scale, the cost of one
 * call that does nothing (`pollTimeout`) is printed too: uniffi's JNA calls cost a fixed
 * amount each, which `recordMany` pays once per 100 impressions.
 *
 * Usage: Bench
 */
package dev.sightline.examples

import dev.sightline.Config
import dev.sightline.Item
import dev.sightline.Logger
import dev.sightline.Now
import dev.sightline.Platform
import dev.sightline.QualifiedImpression
import dev.sightline.Recorded
import dev.sightline.StoreOp
import dev.sightline.Stored
import dev.sightline.UploadOutcome

private const val MEASURED = 200_000
private const val WARMUP = 20_000
private const val PER_PAGE = 100

/** A host with a memory store that answers every upload 200. */
private class BenchHost(val logger: Logger) {
    private val values = HashMap<String, ByteArray>()
    private var journalBytes = 0L

    fun drain(now: Now) {
        while (true) {
            while (true) {
                val request = logger.pollStoreOp() ?: break
                when (val op = request.op) {
                    is StoreOp.Put -> values[op.key] = op.value
                    is StoreOp.Remove -> values.remove(op.key)
                    is StoreOp.Append -> journalBytes += op.bytes.size
                    is StoreOp.ClearJournal -> journalBytes = 0
                }
                logger.handleStoreResult(request.id)
            }
            val upload = logger.pollUpload(now) ?: return
            logger.handleUploadResult(upload.id, UploadOutcome.Status(200u, null), now)
        }
    }
}

private class Run(val many: Boolean) {
    private val logger =
        Logger.resume(
            Config(appId = "com.example.bench", appVersion = "1.0.0", platform = Platform.ANDROID, appKey = "key-1", seed = 11u),
            Stored(),
            at(0),
        )
    private val host = BenchHost(logger)
    private var mono = 0L
    private var next = 0L

    private fun at(mono: Long) = Now(mono.toULong(), (1_700_000_000_000 + mono).toULong())

    /** Records [count] impressions, 100 per page view; returns the nanoseconds spent recording. */
    fun record(count: Int): Long {
        var spent = 0L
        repeat(count / PER_PAGE) { page ->
            val start = at(mono)
            val pv = logger.startPageView("home", null, null, start)
            val impressions =
                List(PER_PAGE) { k ->
                    QualifiedImpression(
                        item = Item(itemId = "title:${next++}", row = (k / 10).toUInt(), column = (k % 10).toUInt()),
                        firstVisibleMonoMs = mono.toULong(),
                        visibleMs = 1_500u,
                        maxVisibleFraction = 1.0f,
                    )
                }
            val now = at(mono + 2_000)
            val t0 = System.nanoTime()
            if (many) {
                val done = logger.recordMany(pv, impressions, now)
                check(done.logged == PER_PAGE.toUInt()) { "not all logged: $done" }
            } else {
                for (impression in impressions) {
                    check(logger.recordImpression(pv, impression, now) is Recorded.Logged)
                }
            }
            spent += System.nanoTime() - t0
            logger.endPageView(pv, now)
            mono += 2_000
            if (page % 10 == 9) {
                logger.flush(now)
                host.drain(now)
            }
        }
        return spent
    }

    fun delivered(): ULong = logger.stats().delivered

    /** Nanoseconds of one `pollTimeout` call, the fixed cost of crossing into Rust. */
    fun emptyCall(calls: Int): Double {
        repeat(calls) { logger.pollTimeout() }
        val t0 = System.nanoTime()
        repeat(calls) { logger.pollTimeout() }
        return (System.nanoTime() - t0).toDouble() / calls
    }
}

/**
 * Pass the Rust baseline's `BASELINE rust_binding_ns=...` line (bindings/uniffi/examples/
 * bench_record.rs, same run) as arguments to print ratios.
 */
fun main(args: Array<String>) {
    val rust =
        args.firstNotNullOfOrNull { it.removePrefix("rust_binding_ns=").takeIf { v -> v != it } }
            ?.toDoubleOrNull() ?: Double.NaN
    println("Kotlin sans-IO Logger, $MEASURED impressions after $WARMUP of warm-up (JNA, uniffi)")
    for (many in listOf(false, true)) {
        val run = Run(many)
        run.record(WARMUP)
        val ns = run.record(MEASURED).toDouble() / MEASURED
        val label = if (many) "recordMany (100 per call)" else "recordImpression"
        println("  %-26s %8.0f ns/impression  %6.1f x Rust".format(label, ns, ns / rust))
        check(run.delivered() == (WARMUP + MEASURED).toULong()) { "delivered ${run.delivered()}" }
        if (many) println("  %-26s %8.0f ns/call".format("empty call (pollTimeout)", run.emptyCall(20_000)))
    }
    println("  (Rust, same binding object, one per call: %.0f ns)".format(rust))
}
