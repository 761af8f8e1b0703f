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

/** Review: MicroCollector.waitForGood's timeout and error statuses. */
class ReviewMicroCollectorTest {
    @Test
    fun `waitForGood honours its own timeout and fails with an AssertionError when the collector hangs`() {
        ServerSocket(0).use { server ->
            val held = mutableListOf<Socket>()
            val acceptor = thread(isDaemon = true) {
                try { while (true) held += server.accept() } catch (_: Exception) {}
            }
            val client = MicroCollector("http://127.0.0.1:${server.localPort}")
            val start = System.nanoTime()
            val failure = runCatching { client.waitForGood(1, Duration.ofMillis(300)) }.exceptionOrNull()
            val elapsedMs = (System.nanoTime() - start) / 1_000_000
            acceptor.interrupt()
            assertTrue(failure is AssertionError, "waitForGood threw $failure (the documented failure is AssertionError)")
            assertTrue(elapsedMs < 2_000, "waitForGood(timeout = 300 ms) took $elapsedMs ms")
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
