/*
 * The producer test kit: fail a unit test when the app logs the wrong thing.
 *
 * `captured(config) { log -> ... }` runs the real runtime with uploads kept in memory; the
 * capture decodes them with the core, runs the contract's checks and the per-session
 * accounting, and its assertions throw AssertionError with the core's message naming the
 * rule, the item and the position.
 */
package dev.sightline.testing

import dev.sightline.Accounting
import dev.sightline.Capture
import dev.sightline.CapturedImpression
import dev.sightline.Config
import dev.sightline.DEFAULT_SHUTDOWN_WAIT_MS
import dev.sightline.KitException
import dev.sightline.Receipt
import dev.sightline.Runtime
import dev.sightline.Sightline
import dev.sightline.Violation

/**
 * The core's [Capture] with JUnit's assertion style: a failed assertion throws
 * [AssertionError] carrying the core's message. [KitException.UnknownRule] and
 * [KitException.Undecodable] are misuse of the kit and are thrown as they are.
 */
class CaptureKit(val capture: Capture) {
    /** Receives an upload body (for apps driving the sans-IO `Logger` themselves). */
    fun receive(body: ByteArray): Receipt = capture.receive(body)

    fun impressions(): List<CapturedImpression> = capture.impressions()

    fun violations(): List<Violation> = capture.violations()

    fun accounting(): List<Accounting> = capture.accounting()

    fun uploads(): ULong = capture.uploads()

    fun clear() = capture.clear()

    /** Exactly one good impression of [itemId] at ([row], [column]); returns it. */
    fun assertImpression(itemId: String, row: UInt, column: UInt): CapturedImpression =
        asserting { capture.assertImpression(itemId, row, column) }

    fun assertNoImpression(itemId: String) = asserting { capture.assertNoImpression(itemId) }

    fun assertNoViolations() = asserting { capture.assertNoViolations() }

    /** [rule] (a stable name such as `too_short`) was broken, by [itemId] if given. */
    @JvmOverloads
    fun assertViolation(rule: String, itemId: String? = null) =
        asserting { capture.assertViolation(rule, itemId) }

    /** Every impression issued was delivered or dropped with a counted reason. */
    fun assertAccounted() = asserting { capture.assertAccounted() }

    private inline fun <T> asserting(call: () -> T): T =
        try {
            call()
        } catch (failure: KitException.Failed) {
            throw AssertionError(failure.detail)
        }
}

/**
 * Runs [block] with the real runtime over a memory store, its uploads going to a capture,
 * then shuts the runtime down (flushing and delivering to the capture, for at most [waitMs])
 * and returns the kit, so assertions made after the block see everything the app logged.
 */
@JvmOverloads
fun captured(
    config: Config,
    waitMs: Long = DEFAULT_SHUTDOWN_WAIT_MS,
    block: (Sightline) -> Unit,
): CaptureKit {
    val capture = Capture(config.contract)
    Sightline(Runtime.startCaptured(config, capture), waitMs).use(block)
    return CaptureKit(capture)
}
