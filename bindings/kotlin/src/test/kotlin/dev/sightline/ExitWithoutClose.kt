package dev.sightline

/**
 * The child JVM of the shutdown-hook test: logs one impression and returns from main without
 * closing the logger. Arguments: the data directory and the collector's URL.
 */
object ExitWithoutClose {
    @JvmStatic
    fun main(args: Array<String>) {
        val (dataDir, url) = args
        val config =
            Config(appId = "com.example.kt", appVersion = "1.0.0", platform = Platform.ANDROID, appKey = APP_KEY)
        val log = Sightline.start(config, dataDir, url)
        val pv = log.startPageView("home")
        val start = log.nowMonoMs()
        Thread.sleep(1_000)
        val imp =
            QualifiedImpression(
                item = Item(itemId = "title:exit", row = 0u, column = 0u),
                firstVisibleMonoMs = start,
                visibleMs = 1_000u,
                maxVisibleFraction = 1.0f,
            )
        log.recordImpression(pv, imp)
        println("exiting without close")
    }
}
