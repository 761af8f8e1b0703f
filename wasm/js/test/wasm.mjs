// Loads the built package's two modules in Node, from their bytes (Node's fetch cannot read
// file: URLs), for every test of this folder.
import { readFileSync } from 'node:fs';

import { loadSync } from '../dist/core.js';
import { loadKitSync } from '../dist/testing.js';

const gen = new URL('../dist/gen/', import.meta.url);
loadSync(readFileSync(new URL('sightline_bg.wasm', gen)));
loadKitSync(readFileSync(new URL('kit_bg.wasm', gen)));
