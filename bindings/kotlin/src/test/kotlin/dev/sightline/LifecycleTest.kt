package dev.sightline

import dev.sightline.testing.captured
import org.junit.jupiter.api.Test
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue

/** The Closeable and shutdown-hook semantics of [Sightline]. */
class LifecycleTest {
    /** Whether [log]'s shutdown hook is still registered (removes it if it is). */
    private fun hookStillRegistered(log: Sightline): Boolean {
        val field = Sightline::class.java.getDeclaredField("hook").apply { isAccessible = true }
        return java.lang.Runtime.getRuntime().removeShutdownHook(field.get(log) as Thread)
    }

    @Test
    fun `close after the runtime was shut down through log_runtime is harmless and removes the hook`() {
        val log = Sightline(Runtime.startCaptured(config(), Capture(quickContract())), 0)
        val final = log.runtime.shutdown(0u) // `runtime` is public, for what the class does not wrap
        val closing = runCatching { log.close() }
        val leaked = hookStillRegistered(log)
        assertTrue(closing.isSuccess, "close() threw ${closing.exceptionOrNull()}")
        assertTrue(log.isClosed, "the logger reports closed")
        assertEquals(final, log.stats(), "the runtime's final counters")
        assertFalse(leaked, "the shutdown hook (and with it the logger) stays registered until exit")
    }

    @Test
    fun `a block that throws still closes the captured runtime`() {
        var seen: Sightline? = null
        assertFailsWith<IllegalStateException> { captured(config(), 0) { seen = it; error("the app's bug") } }
        assertTrue(seen!!.isClosed)
        assertFalse(hookStillRegistered(seen))
    }

    @Test
    fun `a logger started while the JVM exits (in another shutdown hook) is not leaked`() {
        val (status, text) = runChildJvm(StartDuringShutdown::class.java)
        assertEquals(0, status, text)
        // captured() closes its runtime itself; it needs no hook, yet registering one throws.
        assertContains(text, "captured during shutdown: 1 impression", message = text)
    }
}

/** Child JVM: the app's own shutdown hook runs a captured logger (as a test harness might). */
object StartDuringShutdown {
    @JvmStatic
    fun main(args: Array<String>) {
        java.lang.Runtime.getRuntime().addShutdownHook(
            Thread {
                try {
                    val kit =
                        captured(config(), 2_000) { log ->
                            val pv = log.startPageView("home")
                            log.recordImpression(pv, exposure(log, "title:1"))
                        }
                    println("captured during shutdown: ${kit.impressions().size} impression")
                } catch (e: Throwable) {
                    println("captured during shutdown failed: $e")
                }
            },
        )
    }
}
