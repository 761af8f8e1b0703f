// The real pieces the browser specs run against, all on loopback: the collector's release
// binary in micro mode (rows in memory behind /micro/*, fault injection on), the web
// example's server for the SDK, the example and the test pages, forwarding /v1/* to the
// collector (the page and its uploads share one origin, as with a first-party collection
// path), and Debian's Chromium driven by playwright-core.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { startMicroCollector, startSite as startSite_ } from '../../../../examples/web/serve.mjs';

const here = new URL('.', import.meta.url).pathname;
const dist = join(here, '../../dist');
const pages = join(here, 'pages');
const example = join(here, '../../../../examples/web');

/** The tests' key; the collector also takes examples/web's `demo-key`. */
export const APP_KEY = 'key-1';

/** The collector binary: `SIGHTLINE_COLLECTOR`, or the release build in the target dir. */
function collectorBinary() {
  const path =
    process.env.SIGHTLINE_COLLECTOR ??
    join(process.env.CARGO_TARGET_DIR ?? join(here, '../../../../target'), 'release/sightline-collector');
  if (!existsSync(path)) throw new Error(`no collector binary at ${path}: build it (tests/web.sh does)`);
  return path;
}

/** A collector in micro mode on an ephemeral loopback port. */
export async function startCollector() {
  const { url, child } = await startMicroCollector(collectorBinary(), ['--app-key', `${APP_KEY},demo-key`, '--allow-fault-injection']);
  const json = async (path, init) => {
    const response = await fetch(url + path, init);
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.status === 204 ? null : response.json();
  };
  return {
    url,
    good: () => json('/micro/good'),
    bad: () => json('/micro/bad'),
    sessions: () => json('/micro/sessions'),
    reset: () => json('/micro/reset', { method: 'POST' }),
    /** The next `remaining` uploads are answered `status` (after being stored, with `after_ingest`). */
    faults: (spec) =>
      json('/admin/faults', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(spec),
      }),
    stop: () => new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}

/** The page origin: /sdk/* the built package, /example/* examples/web, /* the test pages. */
export function startSite(collectorUrl) {
  return startSite_(collectorUrl, { '/sdk/': dist, '/example/': example, '/': pages });
}

/**
 * Debian's Chromium, headless; as root it needs --no-sandbox. The back/forward cache stays
 * on (Playwright turns it off by default), as in the browsers visitors use.
 */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    ignoreDefaultArgs: ['--disable-back-forward-cache'],
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Polls `check` until it returns a truthy value or `ms` pass (then throws `what`). */
export async function eventually(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts the collector, the site and Chromium before a file's specs and stops them after;
 * the returned object holds them once started.
 */
export function rig() {
  const r = { collector: null, site: null, browser: null };
  before(async () => {
    r.collector = await startCollector();
    r.site = await startSite(r.collector.url);
    r.browser = await launch();
  });
  after(async () => {
    await r.browser?.close();
    await r.site?.stop();
    await r.collector?.stop();
  });
  return r;
}
