/*
 * Sightline impression logging for Kotlin: the one Rust core, through uniffi.
 *
 * The generated binding lives in this package too (Config, Item, Logger, Runtime, Capture,
 * SightlineException, ...). This file adds the JVM's lifecycle to the ready runtime:
 * `Closeable` (use-blocks), a shutdown hook for loggers still open at exit, default
 * arguments and the clock the sans-IO `Logger` is driven with. No logging rule lives here.
 */
package dev.sightline

import java.io.Closeable

/**
 * How long [Sightline.close] and the JVM's exit wait for delivery by default: long enough for
 * one upload on a normal network, short enough not to hang an exit.
 */
const val DEFAULT_SHUTDOWN_WAIT_MS: Long = 3_000

private val monoOriginNs: Long = System.nanoTime()

/**
 * Both clocks for the sans-IO [Logger]: monotonic milliseconds (since this class was loaded)
 * and wall-clock milliseconds since the Unix epoch.
 */
fun now(): Now =
    Now(
        monoMs = ((System.nanoTime() - monoOriginNs) / 1_000_000).toULong(),
        wallMs = System.currentTimeMillis().toULong(),
    )

/**
 * The ready runtime (file store, HTTP, its own thread) with the JVM's lifecycle:
 *
 * ```
 * Sightline.start(config, dataDir, "https://collector.example.com").use { log ->
 *     val pv = log.startPageView("home")
 *     log.visibility(pv, Item(itemId = "title:1", row = 0u, column = 0u), 1.0f)
 * }
 * ```
 *
 * Closing flushes and delivers what it can within [shutdownWaitMs]; what is not delivered
 * stays in the data directory for the next start. A logger still open when the JVM exits is
 * closed by a shutdown hook. The methods are the runtime's; every one is thread-safe.
 */
class Sightline(
    /** The generated runtime, for what this class does not wrap. */
    val runtime: Runtime,
    val shutdownWaitMs: Long = DEFAULT_SHUTDOWN_WAIT_MS,
) : Closeable {
    private val lock = Any()

    @Volatile
    private var final: Stats? = null

    private val hook = Thread({ closeAtExit() }, "sightline-shutdown")

    init {
        try {
            java.lang.Runtime.getRuntime().addShutdownHook(hook)
        } catch (_: IllegalStateException) {
            // Started while the JVM exits (from another shutdown hook): there is no later
            // exit to hook; the logger works until closed, and what is not delivered stays
            // stored for the next start.
        }
    }

    companion object {
        /**
         * Starts logging to the collector at [endpoint]; what is not delivered yet is kept in
         * [dataDir] (one directory per logger).
         */
        @JvmStatic
        @JvmOverloads
        fun start(
            config: Config,
            dataDir: String,
            endpoint: String,
            shutdownWaitMs: Long = DEFAULT_SHUTDOWN_WAIT_MS,
        ): Sightline = Sightline(Runtime.start(config, dataDir, endpoint), shutdownWaitMs)

        /** As [start], through the app's own HTTP stack. */
        @JvmStatic
        @JvmOverloads
        fun start(
            config: Config,
            dataDir: String,
            transport: Transport,
            shutdownWaitMs: Long = DEFAULT_SHUTDOWN_WAIT_MS,
        ): Sightline =
            Sightline(Runtime.startWithTransport(config, dataDir, transport), shutdownWaitMs)
    }

    fun sessionId(): String = runtime.sessionId()

    /** Starts a page view; [layout] is the rows of item ids as the server sent them. */
    @JvmOverloads
    fun startPageView(
        page: String,
        requestId: String? = null,
        layout: List<List<String>>? = null,
    ): ULong = runtime.startPageView(page, requestId, layout)

    fun endPageView(pageView: ULong) = runtime.endPageView(pageView)

    /** The visible share (0.0 to 1.0) of an item changed. */
    fun visibility(pageView: ULong, item: Item, fraction: Float) =
        runtime.visibility(pageView, item, fraction)

    fun focus(pageView: ULong, item: Item, focused: Boolean) =
        runtime.focus(pageView, item, focused)

    fun appHidden() = runtime.appHidden()

    fun appVisible() = runtime.appVisible()

    fun recordImpression(pageView: ULong, impression: QualifiedImpression): Recorded =
        runtime.recordImpression(pageView, impression)

    fun recordMany(pageView: ULong, impressions: List<QualifiedImpression>): RecordedMany =
        runtime.recordMany(pageView, impressions)

    /** The runtime's monotonic clock, for [QualifiedImpression.firstVisibleMonoMs]. */
    fun nowMonoMs(): ULong = runtime.nowMonoMs()

    fun flush() = runtime.flush()

    @JvmOverloads
    fun setEnabled(enabled: Boolean, purge: Boolean = false) = runtime.setEnabled(enabled, purge)

    /** The counters; once closed, the final ones. */
    fun stats(): Stats = final ?: runtime.stats()

    val isClosed: Boolean
        get() = final != null

    /**
     * Flushes, delivers for at most [waitMs], stops the runtime and returns the final
     * counters. Closing again returns the same ones.
     */
    @JvmOverloads
    fun shutdown(waitMs: Long = shutdownWaitMs): Stats {
        synchronized(lock) {
            final?.let { return it }
            val stats = runtime.shutdown(waitMs.coerceAtLeast(0).toULong())
            final = stats
            try {
                java.lang.Runtime.getRuntime().removeShutdownHook(hook)
            } catch (_: IllegalStateException) {
                // The JVM is exiting (this may be the hook itself): nothing to remove.
            }
            return stats
        }
    }

    /** [shutdown] with [shutdownWaitMs], for `use` blocks. */
    override fun close() {
        shutdown()
    }

    private fun closeAtExit() {
        try {
            shutdown()
        } catch (_: SightlineException.Stopped) {
            // Shut down already through the runtime itself: nothing left to deliver here.
        }
    }
}
