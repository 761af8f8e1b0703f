// @sightline/web/testing: the producer kit for web teams' tests. Upload bodies the page's
// SDK sent (captured by a test transport, or read back from a collector) are decoded by the
// core, checked against the contract and reconciled per session, in a module of its own
// that visitors never download.

import initKit, { Capture as KitCapture, Config as KitConfig, initSync } from './gen/kit.js';
import type { InitInput } from './gen/kit.js';
import { configure } from './core.js';
import type { CoreOptions } from './core.js';
import type { Answer, Transport } from './transport.js';

/** One impression as it arrived. */
export interface CapturedImpression {
  session_id: string;
  seq: number;
  page: string;
  page_view: number;
  request_id: string | null;
  item_id: string;
  artwork_id: string | null;
  row: number;
  column: number;
  first_visible_ms: number;
  visible_ms: number;
  max_visible_pct: number;
  focused_ms: number;
  /** Rules it breaks; empty for a good impression. */
  rules: string[];
}

/** One broken rule, with where it was found. */
export interface Finding {
  rule: string;
  message: string;
  session_id: string;
  seq: number | null;
  impression: CapturedImpression | null;
}

export interface Receipt {
  accepted: number;
  duplicates: number;
  conflicts: number;
  violations: number;
}

let ready = false;

/** Loads the kit's module (by default next to this file; Node passes its bytes). */
export async function loadKit(source?: InitInput): Promise<void> {
  if (!ready) await initKit(source === undefined ? undefined : { module_or_path: source });
  ready = true;
}

export function loadKitSync(module: BufferSource | WebAssembly.Module): void {
  if (!ready) initSync({ module });
  ready = true;
}

/** Uploads received in memory, decoded, checked against the contract and accounted. */
export class Capture {
  private inner: KitCapture;

  /** Checks against the contract of `options` (the page's). Load the kit first. */
  constructor(options: Pick<CoreOptions, 'contract'> = {}) {
    const config = configure(new KitConfig(), { appId: 'kit', appVersion: '0', appKey: 'kit', ...options }, 1n);
    this.inner = new KitCapture(config);
    config.free();
  }

  /** Receives one body; throws for one that does not decode, changing nothing. */
  receive(body: Uint8Array): Receipt {
    return JSON.parse(this.inner.receive(body)) as Receipt;
  }

  get uploads(): number {
    return this.inner.uploads;
  }

  get impressions(): CapturedImpression[] {
    return JSON.parse(this.inner.impressions()) as CapturedImpression[];
  }

  get violations(): Finding[] {
    return JSON.parse(this.inner.violations()) as Finding[];
  }

  /** Throws the kit's message (rule, item, position) when a rule was broken. */
  assertNoViolations(): void {
    this.inner.assert_no_violations();
  }

  /** Throws unless every session's seqs are delivered or explained by a drop counter. */
  assertAccounted(): void {
    this.inner.assert_accounted();
  }

  /** A transport that receives every upload here and answers 200 (or `answer`). */
  transport(answer: (body: Uint8Array) => Answer = () => ({ status: 200, retryAfter: null })): Transport {
    return async (_url, init) => {
      const body = init.body as Uint8Array;
      const result = answer(body);
      if (result.status >= 200 && result.status < 300) this.receive(body);
      return result;
    };
  }

  free(): void {
    this.inner.free();
  }
}
