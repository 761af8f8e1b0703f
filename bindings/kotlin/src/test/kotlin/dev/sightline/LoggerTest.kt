package dev.sightline

import org.junit.jupiter.api.Test
import java.io.ByteArrayOutputStream
import java.util.Collections
import kotlin.concurrent.thread
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** The app's side of the sans-IO contract: a map store and a list of sent bodies. */
class MemoryHost(val logger: Logger) {
    val values = mutableMapOf<String, ByteArray>()
    val journal = ByteArrayOutputStream()
    val sent = mutableListOf<ByteArray>()

    fun stored(): Stored = Stored(values = values.toMap(), journal = journal.toByteArray())

    fun drain(t: Long, status: Int = 200) {
        while (true) {
            while (true) {
                val request = logger.pollStoreOp() ?: break
                when (val op = request.op) {
                    is StoreOp.Put -> values[op.key] = op.value
                    is StoreOp.Remove -> values.remove(op.key)
                    is StoreOp.Append -> journal.write(op.bytes)
                    is StoreOp.ClearJournal -> journal.reset()
                }
                logger.handleStoreResult(request.id)
            }
            val upload = logger.pollUpload(at(t)) ?: return
            val headers = upload.headers.associate { it.name to it.value }
            assertEquals("application/x-sightline-batch", headers["content-type"])
            assertEquals("/v1/batches", upload.path)
            sent += upload.body
            logger.handleUploadResult(upload.id, UploadOutcome.Status(status.toUShort(), null), at(t))
        }
    }
}

class LoggerTest {
    @Test
    fun `a visible item becomes an impression the host uploads and gets acknowledged`() {
        val host = MemoryHost(Logger.resume(config(), Stored(), at(0)))
        val log = host.logger
        val pv = log.startPageView("home", "req-1", listOf(listOf("title:1", "title:2")), at(10))
        log.visibility(pv, item("title:2", 0, 1), 1.0f, at(100))
        log.visibility(pv, item("title:2", 0, 1), 0.0f, at(1_700))
        log.appHidden(at(1_800))
        host.drain(1_800)

        assertEquals(1, host.sent.size)
        val kit = Capture(null)
        kit.receive(host.sent[0])
        val imp = kit.assertImpression("title:2", 0u, 1u)
        assertEquals(Triple("home", "req-1", 1_600u), Triple(imp.page, imp.requestId, imp.visibleMs))
        val stats = log.stats()
        assertEquals(listOf(1uL, 1uL, 0uL), listOf(stats.recorded, stats.delivered, stats.pending))
        assertNull(log.pollTimeout())
    }

    @Test
    fun `a restart over the stored state keeps the session and sends what was queued`() {
        val host = MemoryHost(Logger.resume(config(), Stored(), at(0)))
        val session = host.logger.sessionId()
        val pv = host.logger.startPageView("home", null, null, at(0))
        host.logger.recordImpression(pv, qualified("title:1", 0), at(2_000))
        host.logger.flush(at(2_000))
        host.drain(2_000, status = 503)
        assertEquals(0uL, host.logger.stats().delivered)

        val again = MemoryHost(Logger.resume(config(seed = 8u), host.stored(), at(0)))
        assertEquals(session, again.logger.sessionId())
        val deadline = assertNotNull(again.logger.pollTimeout())
        again.logger.handleTimeout(at(deadline.toLong()))
        again.drain(deadline.toLong())
        assertEquals(1uL, again.logger.stats().delivered)
        val kit = Capture(null)
        kit.receive(again.sent.single())
        kit.assertImpression("title:1", 0u, 0u)
    }

    @Test
    fun `a contract refusal is a typed exception naming the rule and is counted`() {
        val log = Logger.resume(config(), Stored(), at(0))
        val pv = log.startPageView("home", null, listOf(listOf("title:1")), at(0))
        val tooShort =
            assertFailsWith<SightlineException.Contract> {
                log.recordImpression(pv, qualified("title:1", 0, visibleMs = 10), at(1_000))
            }
        assertEquals("too_short", tooShort.rule)
        assertContains(tooShort.toString(), "too_short")
        val offPage =
            assertFailsWith<SightlineException.Contract> {
                log.visibility(pv, item("title:9"), 1.0f, at(1_000))
            }
        assertEquals("not_on_page", offPage.rule)
        assertEquals(mapOf("too_short" to 1uL, "not_on_page" to 1uL), log.stats().invalidByRule)
    }

    @Test
    fun `misuse and configuration errors are their own exception types`() {
        val log = Logger.resume(config(), Stored(), at(0))
        val unknown = assertFailsWith<SightlineException.Misuse> { log.endPageView(42u, at(0)) }
        assertEquals("unknown_page_view", unknown.what)
        val notInFlight =
            assertFailsWith<SightlineException.Misuse> {
                log.handleUploadResult(99u, UploadOutcome.NetworkError, at(0))
            }
        assertEquals("unknown_upload", notInFlight.what)
        val bad =
            assertFailsWith<SightlineException.Config> {
                Logger.resume(config(appId = "not an id!"), Stored(), at(0))
            }
        assertContains(bad.toString(), "app_id")
        assertFailsWith<SightlineException.Config> {
            configFromJson("""{"app_id": "x", "no_such_setting": 1}""")
        }
    }

    @Test
    fun `a rust panic surfaces as uniffi's internal exception and the JVM lives on`() {
        val caught = assertFailsWith<InternalException> { triggerInternalError() }
        assertContains(caught.message.orEmpty(), "trigger_internal_error")
        val log = Logger.resume(config(), Stored(), at(0))
        assertTrue(log.startPageView("home", null, null, at(0)) > 0uL)
        val host = MemoryHost(log)
        val pv = log.startPageView("home", null, null, at(0))
        log.recordImpression(pv, qualified("title:1", 0), at(2_000))
        log.flush(at(2_000))
        host.drain(2_000)
        assertEquals(1uL, log.stats().delivered, "the library still works after the panic")
    }

    @Test
    fun `eight threads recording at once are accounted exactly`() {
        val log = Logger.resume(config(maxBatchImpressions = 50u), Stored(), at(0))
        val pv = log.startPageView("home", null, null, at(0))
        val perThread = 250
        val errors = Collections.synchronizedList(mutableListOf<Throwable>())
        val threads =
            (0 until 8).map { t ->
                thread {
                    try {
                        repeat(perThread) { i ->
                            val imp =
                                QualifiedImpression(
                                    item = item("title:$t-$i", t, i % 100),
                                    firstVisibleMonoMs = 0u,
                                    visibleMs = 1_500u,
                                    maxVisibleFraction = 1.0f,
                                )
                            log.recordImpression(pv, imp, at(2_000))
                        }
                    } catch (e: Throwable) {
                        errors += e
                    }
                }
            }
        threads.forEach { it.join() }
        assertEquals(emptyList(), errors.toList())

        val host = MemoryHost(log)
        log.flush(at(2_000))
        host.drain(2_000)
        val stats = log.stats()
        assertEquals(listOf(2_000uL, 2_000uL, 2_000uL), listOf(stats.recorded, stats.issued, stats.delivered))
        val kit = Capture(null)
        host.sent.forEach { kit.receive(it) }
        assertEquals(2_000, kit.impressions().size)
        assertEquals(2_000, kit.impressions().map { it.seq }.toSet().size)
        kit.assertAccounted()
    }

    @Test
    fun `recordMany records a list in one call and reports refusals by index`() {
        val log = Logger.resume(config(), Stored(), at(0))
        val pv = log.startPageView("home", null, null, at(0))
        val done =
            log.recordMany(
                pv,
                listOf(qualified("title:1", 0), qualified("title:2", 1, visibleMs = 10), qualified("title:1", 0)),
                at(2_000),
            )
        assertEquals(1u to 1u, done.logged to done.deduped)
        assertEquals(listOf(1u to "too_short"), done.refused.map { it.index to it.rule })
    }
}
