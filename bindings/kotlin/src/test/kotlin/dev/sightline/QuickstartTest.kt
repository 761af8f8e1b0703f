package dev.sightline

import org.junit.jupiter.api.Test
import kotlin.test.assertEquals

/** README.md's Kotlin quickstart (extracted by tests/kotlin.sh) runs as written. */
class QuickstartTest {
    @Test
    fun `the README quickstart runs and its impression arrives at the collector`() {
        CollectorProcess.start().use { collector ->
            readmeQuickstart(collector.client.url, dataDir().toString())
            assertEquals(listOf("title:81234567"), collector.client.good().map { it.getString("item_id") })
        }
    }
}
