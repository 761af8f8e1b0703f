package dev.sightline

import dev.sightline.testing.MicroCollector
import org.json.JSONObject
import java.io.BufferedReader
import java.io.File
import java.io.InputStreamReader
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.TimeUnit

const val APP_KEY = "key-1"

/** Exposures in the runtime tests are real time: a short minimum keeps them fast. */
const val MIN_VISIBLE_MS = 50

const val WALL0: Long = 1_700_000_000_000

/** Both clocks at monotonic [mono]: wall = 1.7e12 + mono, as the conformance suite has it. */
fun at(mono: Long): Now = Now(monoMs = mono.toULong(), wallMs = (WALL0 + mono).toULong())

fun quickContract(): Contract = defaultContract().copy(minVisibleMs = MIN_VISIBLE_MS.toUInt())

/** A valid configuration with a fixed seed (tests are reproducible). */
fun config(
    appId: String = "com.example.kt",
    seed: ULong = 7u,
    maxBatchImpressions: UInt? = null,
    retryBaseMs: ULong? = null,
    retryMaxMs: ULong? = null,
): Config =
    Config(
        appId = appId,
        appVersion = "1.0.0",
        platform = Platform.ANDROID,
        appKey = APP_KEY,
        seed = seed,
        contract = quickContract(),
        maxBatchImpressions = maxBatchImpressions,
        retryBaseMs = retryBaseMs,
        retryMaxMs = retryMaxMs,
    )

fun item(itemId: String, row: Int = 0, column: Int = 0): Item =
    Item(itemId = itemId, row = row.toUInt(), column = column.toUInt())

/** An impression the app qualified itself at sans-IO time 0, visible for [visibleMs]. */
fun qualified(itemId: String, column: Int, visibleMs: Long = 1_500): QualifiedImpression =
    QualifiedImpression(
        item = item(itemId, 0, column),
        firstVisibleMonoMs = 0u,
        visibleMs = visibleMs.toULong(),
        maxVisibleFraction = 1.0f,
    )

/**
 * An impression the app measured itself: fully visible for the contract's minimum, just
 * now. Sleeps that long, so the exposure lies within the page view.
 */
fun exposure(log: Sightline, itemId: String, row: Int = 0, column: Int = 0): QualifiedImpression {
    val start = log.nowMonoMs()
    Thread.sleep(MIN_VISIBLE_MS.toLong())
    return QualifiedImpression(
        item = item(itemId, row, column),
        firstVisibleMonoMs = start,
        visibleMs = MIN_VISIBLE_MS.toULong(),
        maxVisibleFraction = 1.0f,
    )
}

fun collectorBinary(): String =
    System.getProperty("sightline.collector")?.takeIf { it.isNotBlank() && !it.startsWith("\${") }
        ?: System.getenv("SIGHTLINE_COLLECTOR")?.takeIf { it.isNotBlank() }
        ?: error(
            "the collector binary is named by -Dsightline.collector or SIGHTLINE_COLLECTOR " +
                "(tests/kotlin.sh sets it)",
        )

/**
 * A real `sightline-collector serve --micro` on a free loopback port, checking the tests'
 * contract (`min_visible_ms` 50); stopped on close.
 */
class CollectorProcess private constructor(
    private val process: Process,
    val client: MicroCollector,
) : AutoCloseable {
    companion object {
        fun start(): CollectorProcess {
            val contract = Files.createTempFile("contract", ".json")
            Files.writeString(contract, JSONObject(mapOf("min_visible_ms" to MIN_VISIBLE_MS)).toString())
            val command =
                listOf(
                    collectorBinary(), "serve", "--listen", "127.0.0.1:0", "--micro",
                    "--app-key", APP_KEY, "--contract", contract.toString(),
                )
            val process =
                ProcessBuilder(command)
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start()
            val line = BufferedReader(InputStreamReader(process.inputStream)).readLine()
            if (line == null || !line.startsWith("listening on ")) {
                process.destroyForcibly()
                error("the collector said ${line ?: "nothing"}")
            }
            return CollectorProcess(process, MicroCollector("http://" + line.split(' ').last()))
        }
    }

    override fun close() {
        process.destroy()
        if (!process.waitFor(10, TimeUnit.SECONDS)) process.destroyForcibly()
    }
}

/** A directory for one test's store. */
fun dataDir(): Path = Files.createTempDirectory("sightline-kt")

/**
 * Runs [main]'s `main` in a child JVM on the test classpath (the package, the tests, the
 * Kotlin stdlib, JNA, org.json) with [args]; returns its exit status and output.
 */
fun runChildJvm(main: Class<*>, vararg args: String): Pair<Int, String> {
    val classpath =
        listOf(Sightline::class.java, main, KotlinVersion::class.java,
            com.sun.jna.Native::class.java, org.json.JSONObject::class.java)
            .map { File(it.protectionDomain.codeSource.location.toURI()).path }
            .distinct()
            .joinToString(File.pathSeparator)
    val java = File(System.getProperty("java.home"), "bin/java").path
    val output = Files.createTempFile("child", ".log").toFile()
    val child =
        ProcessBuilder(java, "-cp", classpath, main.name, *args)
            .redirectErrorStream(true)
            .redirectOutput(output)
            .start()
    check(child.waitFor(60, TimeUnit.SECONDS)) { "the child JVM did not exit: ${output.readText()}" }
    return child.exitValue() to output.readText()
}
