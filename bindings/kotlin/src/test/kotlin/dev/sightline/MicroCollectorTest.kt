package dev.sightline

import com.sun.net.httpserver.HttpServer
import dev.sightline.testing.MicroCollector
import org.junit.jupiter.api.Test
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.time.Duration
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/** MicroCollector.waitForGood: one timeout for the whole wait, polling through failures. */
class MicroCollectorTest {
    @Test
    fun `waitForGood against a collector that never answers fails with an AssertionError naming the failure`() {
        ServerSocket(0).use { server ->
            val held = mutableListOf<Socket>()
            val acceptor = thread(isDaemon = true) {
                try { while (true) held += server.accept() } catch (_: Exception) {}
            }
            val client = MicroCollector("http://127.0.0.1:${server.localPort}")
            val failure = runCatching { client.waitForGood(1, Duration.ofMillis(300)) }.exceptionOrNull()
            acceptor.interrupt()
            assertTrue(failure is AssertionError, "waitForGood threw $failure (the documented failure is AssertionError)")
            assertTrue("0 arrived" in failure.message.orEmpty(), "${failure.message}")
            assertTrue("timed out" in failure.message.orEmpty(), "the per-request wait is what is left: ${failure.message}")
        }
    }

    @Test
    fun `waitForGood keeps polling through a transient error status`() {
        val calls = AtomicInteger()
        val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
        server.createContext("/micro/good") { exchange ->
            val (status, body) =
                if (calls.incrementAndGet() == 1) 503 to "busy" else 200 to """[{"item_id": "title:1"}]"""
            val bytes = body.toByteArray()
            exchange.sendResponseHeaders(status, bytes.size.toLong())
            exchange.responseBody.use { it.write(bytes) }
        }
        server.start()
        try {
            val client = MicroCollector("http://127.0.0.1:${server.address.port}")
            val rows = runCatching { client.waitForGood(1, Duration.ofSeconds(5)) }
            assertTrue(rows.isSuccess, "a polling wait gave up on the first 503: ${rows.exceptionOrNull()}")
            assertEquals(listOf("title:1"), rows.getOrThrow().map { it.getString("item_id") })
        } finally {
            server.stop(0)
        }
    }
}
