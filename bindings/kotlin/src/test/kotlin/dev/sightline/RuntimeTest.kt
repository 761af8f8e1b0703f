package dev.sightline

import com.sun.jna.NativeLibrary
import org.junit.jupiter.api.Test
import java.io.File
import java.nio.file.Files
import java.util.Collections
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertIs
import kotlin.test.assertNull
import kotlin.test.assertSame
import kotlin.test.assertTrue

/** The app's own HTTP stack: here it fails once with an exception, then answers 200. */
class RecordingTransport : Transport {
    val bodies: MutableList<ByteArray> = Collections.synchronizedList(mutableListOf())
    val calls = AtomicInteger()

    override fun send(upload: Upload): UploadOutcome {
        if (calls.incrementAndGet() == 1) throw java.io.IOException("the app's HTTP stack failed")
        bodies += upload.body
        return UploadOutcome.Status(200u, null)
    }
}

/** The ready runtime from Kotlin, against a real collector on loopback. */
class RuntimeTest {
    @Test
    fun `the native library is loaded from the classpath, not from a library path`() {
        assertNull(System.getProperty("jna.library.path"))
        ruleNames()
        val library = NativeLibrary.getInstance("sightline_uniffi").file.path
        val resource = Sightline::class.java.classLoader.getResource("linux-x86-64/libsightline_uniffi.so")
        assertTrue(resource != null, "the jar's resource linux-x86-64/libsightline_uniffi.so exists")
        assertTrue(
            library.endsWith("linux-x86-64/libsightline_uniffi.so") || File(library).name.startsWith("jna"),
            "loaded from the classpath resource (or JNA's extraction of it): $library",
        )
    }

    @Test
    fun `a use block delivers everything on close and the collector reconciles exactly`() {
        CollectorProcess.start().use { collector ->
            val log = Sightline.start(config(), dataDir().toString(), collector.client.url)
            val session =
                log.use {
                    val pv = it.startPageView("home", "req-1", listOf(listOf("title:1", "title:2")))
                    listOf("title:1", "title:2").forEachIndexed { column, itemId ->
                        assertIs<Recorded.Logged>(it.recordImpression(pv, exposure(it, itemId, 0, column)))
                    }
                    it.sessionId()
                }
            assertTrue(log.isClosed)
            val final = log.stats()
            assertEquals(2uL to 0uL, final.delivered to final.pending)

            val rows = collector.client.good()
            assertEquals(listOf("title:1", "title:2"), rows.map { it.getString("item_id") }.sorted())
            assertEquals(setOf("req-1"), rows.map { it.getString("request_id") }.toSet())
            val accounting = collector.client.sessions().getValue(session)
            assertEquals(
                listOf(2L, 2L, 0L),
                listOf(accounting.getLong("issued"), accounting.getLong("delivered"), accounting.getLong("missing")),
            )
            assertFailsWith<SightlineException.Stopped> { log.runtime.flush() }
            log.close()
            assertSame(final, log.stats(), "closing twice keeps the same counters")
            assertSame(final, log.shutdown(), "and shutting down again returns them")
        }
    }

    @Test
    fun `the JVM exiting without close still delivers through the shutdown hook`() {
        CollectorProcess.start().use { collector ->
            val (status, text) =
                runChildJvm(ExitWithoutClose::class.java, dataDir().toString(), collector.client.url)
            assertEquals(0, status, text)
            assertContains(text, "exiting without close")
            val rows = collector.client.good()
            assertEquals(listOf("title:exit"), rows.map { it.getString("item_id") })
            val accounting = collector.client.sessions().values.single()
            assertEquals(1L to 0L, accounting.getLong("delivered") to accounting.getLong("missing"))
        }
    }

    @Test
    fun `a foreign transport replaces HTTP and its exception counts as a network error`() {
        val transport = RecordingTransport()
        val log =
            Sightline.start(config(retryBaseMs = 20u, retryMaxMs = 50u), dataDir().toString(), transport)
        val pv = log.startPageView("home")
        log.recordImpression(pv, exposure(log, "title:1"))
        val final = log.shutdown(waitMs = 5_000)
        assertEquals(1uL to 1uL, final.delivered to final.retries)
        assertEquals(2, transport.calls.get())
        val kit = Capture(quickContract())
        kit.receive(transport.bodies.single())
        kit.assertImpression("title:1", 0u, 0u)
    }

    @Test
    fun `eight threads recording through the runtime reconcile exactly at the collector`() {
        CollectorProcess.start().use { collector ->
            val errors = Collections.synchronizedList(mutableListOf<Throwable>())
            val session =
                Sightline.start(config(), dataDir().toString(), collector.client.url).use { log ->
                    val pv = log.startPageView("home")
                    (0 until 8)
                        .map { t ->
                            thread {
                                try {
                                    val seen = exposure(log, "unused")
                                    repeat(100) { i ->
                                        log.recordImpression(pv, seen.copy(item = item("title:$t-$i", t, i)))
                                    }
                                } catch (e: Throwable) {
                                    errors += e
                                }
                            }
                        }.forEach { it.join() }
                    log.sessionId()
                }
            assertEquals(emptyList(), errors.toList())
            val rows = collector.client.good()
            assertEquals(800, rows.size)
            assertEquals(800, rows.map { it.getLong("seq") }.toSet().size)
            val accounting = collector.client.sessions().getValue(session)
            assertEquals(
                listOf(800L, 800L, 0L),
                listOf(accounting.getLong("issued"), accounting.getLong("delivered"), accounting.getLong("missing")),
            )
        }
    }

    @Test
    fun `a data dir that cannot be created is a store error`() {
        val blocker = Files.createTempFile("blocker", ".txt")
        assertFailsWith<SightlineException.Store> {
            Sightline.start(config(), blocker.resolve("store").toString(), "http://127.0.0.1:9")
        }
    }
}
