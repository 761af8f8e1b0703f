/*
 * The Kotlin example app: a few page views of a streaming app's catalogue, logged to a real
 * collector through the ready runtime. Items are visible in real time, as on a screen: the
 * runtime decides what counts as an impression (the default contract: half visible for a
 * second). At the end the collector's accounting must reconcile exactly.
 *
 * Usage: App <collector-url> <data-dir>
 */
package dev.sightline.examples

import dev.sightline.Config
import dev.sightline.Item
import dev.sightline.Platform
import dev.sightline.Sightline
import dev.sightline.testing.MicroCollector
import kotlin.system.exitProcess

private class Screen(val page: String, val rows: List<List<String>>, val shownRows: Int)

private val screens =
    listOf(
        Screen("home", listOf(listOf("title:1", "title:2", "title:3"), listOf("title:4", "title:5", "title:6")), 1),
        Screen("search", listOf(listOf("title:7", "title:8"), listOf("title:9", "title:10")), 2),
        Screen("details", listOf(listOf("title:11", "title:12", "title:13", "title:14")), 1),
    )

fun main(args: Array<String>) {
    val (url, dataDir) = args
    val config = Config(appId = "com.example.kotlin", appVersion = "1.0.0", platform = Platform.ANDROID, appKey = "key-1")
    var expected = 0
    val log = Sightline.start(config, dataDir, url)
    val session =
        log.use {
            for ((n, screen) in screens.withIndex()) {
                val pv = it.startPageView(screen.page, requestId = "req-$n", layout = screen.rows)
                val shown =
                    screen.rows.take(screen.shownRows).flatMapIndexed { row, ids ->
                        ids.mapIndexed { column, id -> Item(itemId = id, row = row.toUInt(), column = column.toUInt()) }
                    }
                // The last row of the screen only peeks in at 30 %: below the threshold.
                val peeking =
                    screen.rows.drop(screen.shownRows).flatMapIndexed { row, ids ->
                        ids.mapIndexed { column, id ->
                            Item(itemId = id, row = (row + screen.shownRows).toUInt(), column = column.toUInt())
                        }
                    }
                shown.forEach { item -> it.visibility(pv, item, 1.0f) }
                peeking.forEach { item -> it.visibility(pv, item, 0.3f) }
                Thread.sleep(1_200)
                it.endPageView(pv)
                expected += shown.size
                println("page ${screen.page}: ${shown.size} items seen, ${peeking.size} peeking")
            }
            it.sessionId()
        }
    val final = log.stats()
    println("logged ${final.recorded}, delivered ${final.delivered}, pending ${final.pending}")

    val accounting = MicroCollector(url).sessions()
    var ok = final.recorded.toLong() == expected.toLong() && accounting.keys == setOf(session)
    for ((id, a) in accounting) {
        println("collector session $id: issued ${a.getLong("issued")}, delivered ${a.getLong("delivered")}, missing ${a.getLong("missing")}")
        ok = ok && a.getLong("missing") == 0L && a.getLong("delivered") == final.recorded.toLong()
    }
    if (!ok) {
        System.err.println("the collector does not reconcile: expected $expected impressions, $accounting")
        exitProcess(1)
    }
    println("reconciled: $expected impressions logged and delivered, none missing")
}
