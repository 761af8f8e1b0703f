// A page of tiles in rows, each observed by the SDK; the specs drive it through
// `window.page`. Query: `ns` (storage namespace), `debug`, `tv` (platform tv), `scan`
// (how often to look for closed tabs' queues, ms), `shift` (wall clock ahead, ms).
import { start } from '/sdk/index.js';

/** `pageshow` events, from the first: true when the page came back from the back/forward cache. */
const shows = [];
addEventListener('pageshow', (e) => shows.push(e.persisted));

const params = new URLSearchParams(location.search);
const errors = [];
const sightline = await start({
  endpoint: location.origin,
  appId: 'com.example.web',
  appVersion: '1.0.0',
  appKey: 'key-1',
  platform: params.has('tv') ? 'tv' : 'web',
  ...(params.has('ns') ? { namespace: params.get('ns') } : {}),
  retryBaseMs: 500,
  retryMaxMs: 2000,
  debug: params.has('debug'),
  ...(params.has('scan') ? { adoptScanMs: Number(params.get('scan')) } : {}),
  // A wall clock ahead by `shift` ms: this tab sees other tabs' marks as that much older.
  ...(params.has('shift') ? { clock: { mono: () => performance.now(), wall: () => Date.now() + Number(params.get('shift')) } } : {}),
  onError: (e) => errors.push(String(e)),
});

let pageView = null;

window.page = {
  sightline,
  errors,
  shows,
  /** Starts a page view and builds `rows` x `columns` observed tiles. */
  grid(rows, columns, page = 'home') {
    pageView = sightline.startPageView(page);
    const grid = document.getElementById('grid');
    grid.replaceChildren();
    for (let r = 0; r < rows; r++) {
      const row = document.createElement('div');
      row.className = 'row';
      for (let c = 0; c < columns; c++) {
        const tile = document.createElement('div');
        tile.className = 'tile';
        tile.tabIndex = 0;
        tile.id = `tile-${r}-${c}`;
        tile.textContent = `title:${r}-${c}`;
        row.appendChild(tile);
        sightline.observe(tile, { pageView: pageView.id, itemId: `title:${r}-${c}`, row: r, column: c });
      }
      grid.appendChild(row);
    }
    return pageView.id;
  },
  stats: () => sightline.stats(),
  flush: () => sightline.flush(),
  /** Ends the page view (what is on screen and qualified is logged), then sends it. */
  end() {
    sightline.endPageView(pageView);
    sightline.flush();
  },
  /** Headless Chromium keeps every tab visible: tab switches are emulated here. */
  setHidden(hidden) {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange'));
  },
};
document.title = 'ready';
