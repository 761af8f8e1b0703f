package dev.sightline.testing

import org.json.JSONArray
import org.json.JSONObject
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration

/**
 * A client for a collector started with `serve --micro` at [url]: real HTTP, rows kept in
 * memory behind a small JSON API. The integration-test option.
 */
class MicroCollector
@JvmOverloads
constructor(
    url: String,
    private val timeout: Duration = Duration.ofSeconds(5),
) {
    val url: String = url.trimEnd('/')

    private val http: HttpClient = HttpClient.newBuilder().connectTimeout(timeout).build()

    private fun call(method: String, path: String, timeout: Duration = this.timeout): String {
        val request =
            HttpRequest.newBuilder(URI.create(url + path))
                .timeout(timeout)
                .method(method, HttpRequest.BodyPublishers.noBody())
                .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() in 200..299) {
            "$method $path: the collector answered ${response.statusCode()}: ${response.body()}"
        }
        return response.body()
    }

    private fun rows(path: String, timeout: Duration = this.timeout): List<JSONObject> {
        val array = JSONArray(call("GET", path, timeout))
        return List(array.length()) { array.getJSONObject(it) }
    }

    /** Accepted rows, one per impression. */
    fun good(): List<JSONObject> = rows("/micro/good")

    /** Rows refused by the contract, each with the `rules` it broke. */
    fun bad(): List<JSONObject> = rows("/micro/bad")

    /** Loss accounting by session id (`issued`, `delivered`, `missing`, ...). */
    fun sessions(): Map<String, JSONObject> {
        val all = JSONObject(call("GET", "/micro/sessions"))
        return all.keySet().associateWith { all.getJSONObject(it) }
    }

    fun reset() {
        call("POST", "/micro/reset")
    }

    /**
     * Polls until at least [count] good rows arrived, within [timeout] in all (each request
     * gets what is left of it); a collector that fails or does not answer is polled again.
     * Throws [AssertionError] with what did arrive, and the last failure, otherwise.
     */
    @JvmOverloads
    fun waitForGood(count: Int, timeout: Duration = Duration.ofSeconds(10)): List<JSONObject> {
        val deadline = System.nanoTime() + timeout.toNanos()
        var rows = emptyList<JSONObject>()
        var lastFailure: Exception? = null
        while (true) {
            val left = Duration.ofNanos(deadline - System.nanoTime())
            if (left.isNegative || left.isZero) break
            try {
                rows = rows("/micro/good", left)
                lastFailure = null
                if (rows.size >= count) return rows
            } catch (e: java.io.IOException) {
                lastFailure = e
            } catch (e: IllegalStateException) {
                lastFailure = e
            }
            Thread.sleep(50)
        }
        throw AssertionError(
            "expected $count good rows, ${rows.size} arrived: $rows" +
                (lastFailure?.let { "; the last request failed: $it" } ?: ""),
        )
    }
}
