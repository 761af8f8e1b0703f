package dev.sightline

import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.Named
import org.junit.jupiter.api.Test
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.MethodSource
import java.io.ByteArrayOutputStream
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.security.MessageDigest
import java.util.zip.GZIPInputStream
import kotlin.io.path.extension
import kotlin.io.path.listDirectoryEntries
import kotlin.io.path.nameWithoutExtension
import kotlin.io.path.readText
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.test.fail

/** The suite's scenario files, found from the module directory (where Maven runs). */
private val SCENARIOS: Path =
    generateSequence(Paths.get("").toAbsolutePath()) { it.parent }
        .map { it.resolve("tests/conformance/scenarios") }
        .firstOrNull { Files.isDirectory(it) }
        ?: error("tests/conformance/scenarios not found above ${Paths.get("").toAbsolutePath()}")

/** A JSON value as plain Kotlin (maps, lists, Long, String, Boolean, null) for exact comparison. */
private fun plain(value: Any?): Any? =
    when (value) {
        null, JSONObject.NULL -> null
        is JSONObject -> value.keySet().associateWith { plain(value.get(it)) }
        is JSONArray -> List(value.length()) { plain(value.get(it)) }
        is Map<*, *> -> value.entries.associate { (k, v) -> k.toString() to plain(v) }
        is List<*> -> value.map(::plain)
        is Number -> value.toLong()
        is UInt -> value.toLong()
        is ULong -> value.toLong()
        else -> value
    }

private fun JSONObject.stringOrNull(key: String): String? = if (isNull(key)) null else getString(key)

private fun item(body: JSONObject): Item =
    Item(
        itemId = body.getString("item_id"),
        row = body.getInt("row").toUInt(),
        column = body.getInt("column").toUInt(),
        artworkId = body.stringOrNull("artwork_id"),
    )

private fun outcomeOf(response: JSONObject): UploadOutcome =
    if (response.optBoolean("network_error")) {
        UploadOutcome.NetworkError
    } else {
        UploadOutcome.Status(response.getInt("status").toUShort(), response.stringOrNull("retry_after"))
    }

private fun sha256OfGunzipped(body: ByteArray): String {
    // GZIPInputStream reads every member of a multi-member body.
    val batch = GZIPInputStream(body.inputStream()).use { it.readBytes() }
    return MessageDigest.getInstance("SHA-256").digest(batch).joinToString("") { "%02x".format(it) }
}

/** The host of the README's loop: a memory store, scripted responses, the outcome. */
private class Host(scenario: JSONObject) {
    private val configJson = scenario.getJSONObject("config").toString()
    private val responses = ArrayDeque(scenario.optJSONArray("responses")?.let { r -> List(r.length()) { r.getJSONObject(it) } } ?: emptyList())
    private val values = mutableMapOf<String, ByteArray>()
    private val journal = ByteArrayOutputStream()
    private var failures = 0
    private val pageViews = mutableListOf<ULong>()
    val refused = mutableListOf<Map<String, Any?>>()
    val uploads = mutableListOf<Map<String, Any?>>()
    val delivered = mutableListOf<Map<String, Any?>>()
    private var logger = resume(null, 0)

    fun resume(seed: Long?, t: Long): Logger {
        var config = configFromJson(configJson)
        if (seed != null) config = config.copy(seed = seed.toULong())
        return Logger.resume(config, Stored(values = values.toMap(), journal = journal.toByteArray()), at(t))
    }

    private fun apply(op: StoreOp) {
        when (op) {
            is StoreOp.Put -> values[op.key] = op.value
            is StoreOp.Remove -> values.remove(op.key)
            is StoreOp.Append -> journal.write(op.bytes)
            is StoreOp.ClearJournal -> journal.reset()
        }
    }

    fun drain(t: Long) {
        while (true) {
            while (true) {
                val request = logger.pollStoreOp() ?: break
                if (failures > 0) {
                    failures -= 1
                    logger.handleStoreResult(request.id, StoreFailure.Io("scripted failure"))
                } else {
                    apply(request.op)
                    logger.handleStoreResult(request.id, null)
                }
            }
            val upload = logger.pollUpload(at(t)) ?: return
            val response = responses.removeFirstOrNull() ?: JSONObject(mapOf("status" to 200))
            logger.handleUploadResult(upload.id, outcomeOf(response), at(t))
            val index = uploads.size
            uploads += mapOf("at" to t, "sha256" to sha256OfGunzipped(upload.body), "response" to plain(response))
            if (response.optInt("status", 0) in 200..299) deliver(index, upload.body)
        }
    }

    private fun deliver(index: Int, body: ByteArray) {
        val capture = Capture(null)
        capture.receive(body)
        for (i in capture.impressions()) {
            delivered +=
                mapOf(
                    "upload" to index.toLong(),
                    "seq" to i.seq.toLong(),
                    "page" to i.page,
                    "page_view" to i.pageView.toLong(),
                    "request_id" to i.requestId,
                    "item_id" to i.itemId,
                    "artwork_id" to i.artworkId,
                    "row" to i.row.toLong(),
                    "column" to i.column.toLong(),
                    "first_visible_ms" to i.firstVisibleMs,
                    "visible_ms" to i.visibleMs.toLong(),
                    "max_visible_pct" to i.maxVisiblePct.toLong(),
                    "focused_ms" to i.focusedMs.toLong(),
                )
        }
    }

    fun timers(until: Long) {
        while (true) {
            val deadline = logger.pollTimeout() ?: return
            if (deadline.toLong() > until) return
            logger.handleTimeout(at(deadline.toLong()))
            drain(deadline.toLong())
            val after = logger.pollTimeout()
            if (after != null && after <= deadline) {
                fail("the deadline does not advance: handleTimeout at $deadline leaves $after")
            }
        }
    }

    /** Ordinals never started or refused map to 0, an id the logger never issues. */
    private fun pageView(ordinal: Int): ULong = if (ordinal in 1..pageViews.size) pageViews[ordinal - 1] else 0uL

    private fun step(kind: String, body: JSONObject, t: Long) {
        val log = logger
        val now = at(t)
        when (kind) {
            "start_page_view" -> {
                pageViews += 0uL
                val layout =
                    body.optJSONArray("layout")?.let { rows ->
                        List(rows.length()) { r -> rows.getJSONArray(r).let { row -> List(row.length()) { row.getString(it) } } }
                    }
                pageViews[pageViews.lastIndex] =
                    log.startPageView(body.getString("page"), body.stringOrNull("request_id"), layout, now)
            }
            "end_page_view" -> log.endPageView(pageView(body.getInt("page_view")), now)
            "visibility" ->
                log.visibility(
                    pageView(body.getInt("page_view")), item(body.getJSONObject("item")),
                    body.getDouble("fraction").toFloat(), now,
                )
            "focus" ->
                log.focus(
                    pageView(body.getInt("page_view")), item(body.getJSONObject("item")),
                    body.getBoolean("focused"), now,
                )
            "app_hidden" -> log.appHidden(now)
            "app_visible" -> log.appVisible(now)
            "impression" -> {
                val impression =
                    QualifiedImpression(
                        item = item(body.getJSONObject("item")),
                        firstVisibleMonoMs = body.getLong("first_visible_at").toULong(),
                        visibleMs = body.getLong("visible_ms").toULong(),
                        maxVisibleFraction = body.getDouble("max_visible_fraction").toFloat(),
                        focusedMs = body.getLong("focused_ms").toULong(),
                    )
                log.recordImpression(pageView(body.getInt("page_view")), impression, now)
            }
            "flush" -> log.flush(now)
            "set_enabled" -> log.setEnabled(body.getBoolean("enabled"), body.getBoolean("purge"), now)
            "restart" -> logger = resume(body.getLong("seed"), t)
            "fail_store" -> failures += body.getInt("count")
            else -> error("unknown step kind $kind")
        }
    }

    fun run(scenario: JSONObject): Map<String, Any?> {
        drain(0)
        val steps = scenario.getJSONArray("steps")
        for (index in 0 until steps.length()) {
            val step = steps.getJSONObject(index)
            val t = step.getLong("at")
            val kind = step.keySet().single { it != "at" }
            timers(t)
            try {
                step(kind, step.getJSONObject(kind), t)
            } catch (refusal: SightlineException.Contract) {
                refused += mapOf("step" to index.toLong(), "rule" to refusal.rule)
            } catch (refusal: SightlineException.Misuse) {
                refused += mapOf("step" to index.toLong(), "rule" to refusal.what)
            }
            drain(t)
        }
        timers(scenario.getLong("until"))
        val s = logger.stats()
        val stats =
            mapOf(
                "recorded" to s.recorded,
                "sampled_out" to s.sampledOut,
                "deduped" to s.deduped,
                "issued" to s.issued,
                "delivered" to s.delivered,
                "invalid" to s.invalid,
                "uploads" to s.uploads,
                "retries" to s.retries,
                "bytes_delivered" to s.bytesDelivered,
                "store_errors" to s.storeErrors,
                "corrupt_records" to s.corruptRecords,
                "dropped" to s.dropped,
                "invalid_by_rule" to s.invalidByRule,
            )
        return mapOf("refused" to refused, "uploads" to uploads, "delivered" to delivered, "stats" to plain(stats))
    }
}

/** The conformance suite (tests/conformance) through the sans-IO Logger: same bytes as Rust. */
class ConformanceTest {
    companion object {
        @JvmStatic
        fun scenarios(): List<Path> = SCENARIOS.listDirectoryEntries("*.json").sorted()

        /** The scenario files, each shown by its name. */
        @JvmStatic
        fun named(): List<Named<Path>> = scenarios().map { Named.of(it.nameWithoutExtension, it) }
    }

    @Test
    fun `the suite has at least twenty scenarios`() {
        assertTrue(scenarios().size >= 20, "${scenarios().size} scenarios in $SCENARIOS")
        assertTrue(scenarios().all { it.extension == "json" })
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("named")
    fun `a scenario produces the expected outcome and bytes`(path: Path) {
        val scenario = JSONObject(path.readText())
        val actual = Host(scenario).run(scenario)
        val expected = plain(scenario.getJSONObject("expect")) as Map<*, *>
        for (key in listOf("refused", "uploads", "delivered", "stats")) {
            assertEquals(expected[key], actual[key], "${path.nameWithoutExtension}: expect.$key differs")
        }
    }
}
