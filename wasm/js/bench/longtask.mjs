// The SDK's cost on the main thread, in real headless Chromium: a page of 1,000 observed
// tiles scrolled through top to bottom (pausing so rows qualify), against the real
// collector on loopback. Prints the longest task the Long Tasks API saw during the scroll
// and the distribution of the SDK's own calls (every input the IntersectionObserver and
// the page make, compression and storage included, as they run inside them). Figures are
// printed, never asserted. Chromium's performance.now() is coarsened to 0.1 ms here.
import { eventually, launch, startCollector, startSite } from '../test/browser/harness.mjs';

const ROWS = 200;
const COLUMNS = 5;
const PAUSE_EVERY_ROWS = 20;

const collector = await startCollector();
const site = await startSite(collector.url);
const browser = await launch();
try {
  const ctx = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await ctx.newPage();
  await page.goto(`${site.url}/grid.html?ns=bench`);
  await page.waitForFunction(() => window.page !== undefined);
  const result = await page.evaluate(
    async ({ rows, columns, pauseEvery }) => {
      const durations = [];
      const proto = Object.getPrototypeOf(window.page.sightline);
      for (const name of ['visibility', 'focus', 'observe', 'startPageView', 'flush', 'endPageView']) {
        const f = proto[name];
        proto[name] = function timed(...args) {
          const t0 = performance.now();
          try {
            return f.apply(this, args);
          } finally {
            durations.push(performance.now() - t0);
          }
        };
      }
      const frame = () => new Promise((r) => requestAnimationFrame(r));
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const building = performance.now();
      window.page.grid(rows, columns);
      const buildMs = performance.now() - building;
      const observeMs = durations.reduce((a, b) => a + b, 0);
      await frame();
      await sleep(200);
      // From here on the page only scrolls: a long task is the browser's or the SDK's.
      const longTasks = [];
      new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => e.duration))).observe({
        type: 'longtask',
      });
      durations.length = 0;
      const started = performance.now();
      const bottom = document.documentElement.scrollHeight - innerHeight;
      let nextPause = pauseEvery * 200;
      while (scrollY < bottom) {
        scrollBy(0, 100);
        await frame();
        if (scrollY >= nextPause) {
          await sleep(1_100);
          nextPause += pauseEvery * 200;
        }
      }
      await sleep(1_100);
      window.page.end();
      const scrollMs = performance.now() - started;
      await sleep(500);
      durations.sort((a, b) => a - b);
      const q = (p) => durations[Math.min(durations.length - 1, Math.floor(p * durations.length))];
      return {
        calls: durations.length,
        p50: q(0.5),
        p99: q(0.99),
        max: durations[durations.length - 1],
        total: durations.reduce((a, b) => a + b, 0),
        longTasks,
        scrollMs,
        buildMs,
        observeMs,
        stats: window.page.stats(),
      };
    },
    { rows: ROWS, columns: COLUMNS, pauseEvery: PAUSE_EVERY_ROWS },
  );
  await eventually('the upload', async () => (await collector.good()).length >= result.stats.issued);
  const f = (ms) => `${ms.toFixed(2)} ms`;
  console.log(`== main thread, ${ROWS * COLUMNS} observed tiles scrolled through in ${(result.scrollMs / 1000).toFixed(1)} s (Chromium ${browser.version()})`);
  console.log(`building the page  ${f(result.buildMs)} for 1,000 tiles, of which observe() ${f(result.observeMs)}`);
  console.log(`SDK calls          ${result.calls} during the scroll (visibility changes, the page view's end)`);
  console.log(`SDK call p50/p99   ${f(result.p50)} / ${f(result.p99)}; max ${f(result.max)}; total ${f(result.total)}`);
  console.log(`long tasks (>50ms) ${result.longTasks.length}${result.longTasks.length ? `, longest ${f(Math.max(...result.longTasks))}` : ''} during the scroll`);
  console.log(`impressions        ${result.stats.issued} logged, ${(await collector.good()).length} at the collector; ${result.stats.uploads} uploads`);
  await ctx.close();
} finally {
  await browser.close();
  await site.stop();
  await collector.stop();
}
