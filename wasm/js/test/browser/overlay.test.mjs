// The debug overlay in Chromium: each observed element outlined with the state the core
// gave it (tracking, logged, deduped, refused with the rule), and a screenshot of it for the
// README (written to $CARGO_TARGET_DIR/web-overlay.png).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { eventually, rig } from './harness.mjs';

const env = rig();

test('the overlay shows what counts: logged, deduped, refused by its rule, still tracking', async () => {
  const ctx = await env.browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await ctx.newPage();
  await page.goto(`${env.site.url}/grid.html?debug`);
  await page.waitForFunction(() => window.page !== undefined);
  await page.evaluate(() => {
    const id = window.page.grid(6, 5);
    // A tile the contract refuses: an item id longer than the contract allows.
    const bad = document.getElementById('tile-0-4');
    window.page.sightline.observe(bad, { pageView: id, itemId: 'x'.repeat(100), row: 0, column: 4 });
  });
  await page.waitForTimeout(1_300);
  // Row 0 leaves the screen (logged), comes back and leaves again (deduped: once per page view).
  await page.evaluate(() => window.scrollTo(0, 200));
  await page.waitForTimeout(300);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(1_300);
  await page.evaluate(() => window.scrollTo(0, 200));
  await page.waitForTimeout(300);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(200);
  const state = (id) => page.evaluate((i) => [document.getElementById(i).dataset.sightline ?? null, document.getElementById(i).getAttribute('data-sightline-rule')], id);
  await eventually('row 0 deduped', async () => (await state('tile-0-0'))[0] === 'deduped');
  assert.deepEqual(await state('tile-0-0'), ['deduped', null]);
  assert.deepEqual(await state('tile-0-4'), ['refused', 'item_id']);
  assert.deepEqual(await state('tile-2-0'), ['tracking', null], 'still on screen: not decided yet');
  await page.evaluate(() => window.scrollTo(0, 600));
  await eventually('row 1 logged', async () => (await state('tile-1-0'))[0] === 'logged');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(200);
  const file = join(process.env.CARGO_TARGET_DIR ?? '/tmp', 'web-overlay.png');
  await page.screenshot({ path: file });
  console.log(`overlay screenshot: ${file}`);
  await ctx.close();
});
