// A catalogue page: rows of tiles the SDK observes, with the debug overlay on.
import { start } from '@sightline/web';

const rows = document.getElementById('rows');
for (let r = 0; r < 20; r++) {
  const row = document.createElement('div');
  row.className = 'row';
  for (let c = 0; c < 6; c++) {
    const tile = document.createElement('div');
    tile.className = 'tile';
    Object.assign(tile.dataset, { item: `title:${r * 6 + c}`, row: String(r), column: String(c) });
    tile.textContent = tile.dataset.item;
    row.appendChild(tile);
  }
  rows.appendChild(row);
}

const sightline = await start({
  endpoint: location.origin,
  appId: 'com.example.web',
  appVersion: '1.0.0',
  appKey: 'demo-key',
  debug: true,
});
const home = sightline.startPageView('home');
for (const tile of document.querySelectorAll('.tile')) {
  const { item, row, column } = tile.dataset;
  sightline.observe(tile, { pageView: home.id, itemId: item, row: Number(row), column: Number(column) });
}
window.sightline = sightline;
