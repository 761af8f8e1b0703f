package dev.sightline

import dev.sightline.testing.CaptureKit
import dev.sightline.testing.captured
import org.junit.jupiter.api.Test
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** The producer test kit from Kotlin: what a producer team's unit tests look like. */
class KitTest {
    private fun show(log: Sightline, pv: ULong, itemId: String, row: Int, column: Int) {
        log.recordImpression(pv, exposure(log, itemId, row, column))
    }

    @Test
    fun `a correct app passes every assertion`() {
        val kit =
            captured(config()) { log ->
                val pv = log.startPageView("home", "req-1", listOf(listOf("title:1", "title:2"), listOf("title:3")))
                show(log, pv, "title:1", 0, 0)
                show(log, pv, "title:3", 1, 0)
            }
        val imp = kit.assertImpression("title:3", row = 1u, column = 0u)
        assertEquals(Triple("home", "req-1", 100u), Triple(imp.page, imp.requestId, imp.maxVisiblePct))
        kit.assertNoImpression("title:2")
        kit.assertNoViolations()
        kit.assertAccounted()
        assertEquals(listOf(2uL), kit.accounting().map { it.delivered })
    }

    @Test
    fun `an item logged at the wrong place fails with the rule, the item and the position`() {
        val kit =
            captured(config()) { log ->
                val pv = log.startPageView("home", layout = listOf(listOf("title:1", "title:2")))
                show(log, pv, "title:1", 0, 0)
                // The app's bug: it reports title:2 at the first column.
                val refused = assertFailsWith<SightlineException.Contract> { show(log, pv, "title:2", 0, 0) }
                assertEquals("wrong_position", refused.rule)
            }
        val violations = assertFailsWith<AssertionError> { kit.assertNoViolations() }
        assertContains(violations.message.orEmpty(), "refused 1 input")
        val missing = assertFailsWith<AssertionError> { kit.assertImpression("title:1", row = 0u, column = 1u) }
        val message = missing.message.orEmpty()
        assertContains(message, "item title:1 at row 0, column 1")
        assertContains(message, "found 1: [item title:1 at row 0, column 0 on page home")
    }

    @Test
    fun `an expected violation that did not happen names the rule and what was found`() {
        val kit =
            captured(config()) { log ->
                val pv = log.startPageView("home")
                show(log, pv, "title:1", 0, 0)
            }
        val failure = assertFailsWith<AssertionError> { kit.assertViolation("too_short", "title:1") }
        assertTrue(
            Regex("""expected a violation of too_short \(.*\) by item title:1; found: \[]""")
                .containsMatchIn(failure.message.orEmpty()),
            failure.message,
        )
        assertFailsWith<KitException.UnknownRule> { kit.assertViolation("no_such_rule") }
    }

    @Test
    fun `a body that is not an upload is refused by the capture`() {
        val kit = CaptureKit(Capture(null))
        assertFailsWith<KitException.Undecodable> { kit.receive("not gzip".toByteArray()) }
        assertEquals(0uL, kit.uploads())
        val none = assertFailsWith<AssertionError> { kit.assertAccounted() }
        assertContains(none.message.orEmpty(), "received none")
    }
}
