// Uploads over `fetch`: the core's request as it is (path, headers, gzip body), the answer
// reduced to what the core classifies (status and the raw Retry-After text; 0 for no
// answer). A request is sent with `keepalive`, so one started when the tab is hidden or
// closed completes after the page is gone, while the page's keepalive requests in flight
// stay within the 64 KiB the browser lets them carry together (the core keeps each body
// under it, `MAX_BATCH_ENCODED_BYTES`, but this tab's upload and adopted tabs' uploads may
// be in flight at once). One beyond that goes without keepalive: it is cancelled if the
// page goes, and the core, whose copy stays stored, sends it again.

import type { Upload } from './core.js';

/** What Chromium and the Fetch standard let a page's keepalive requests carry in flight. */
export const KEEPALIVE_BYTES = 64 * 1024;

/** Body bytes of this page's keepalive requests in flight. */
let keepaliveInFlight = 0;

/** Body bytes of keepalive requests in flight now. */
export function keepaliveBytesInFlight(): number {
  return keepaliveInFlight;
}

/** A request that gets no answer in this long is a network error; the core retries it. */
export const UPLOAD_TIMEOUT_MS = 30_000;

/** The answer: an HTTP status, or 0 when there was none. */
export interface Answer {
  status: number;
  retryAfter: string | null;
}

/** What sends uploads; tests and hosts with their own networking pass another. */
export type Transport = (url: string, init: RequestInit) => Promise<Answer>;

export const fetchTransport: Transport = async (url, init) => {
  try {
    const response = await fetch(url, init);
    return { status: response.status, retryAfter: response.headers.get('retry-after') };
  } catch {
    return { status: 0, retryAfter: null };
  }
};

/**
 * The request for `upload` to the collector at `endpoint`; call `done` once it is answered
 * (or failed), which returns its share of the keepalive budget.
 */
export function request(
  endpoint: string,
  upload: Pick<Upload, 'body' | 'headers' | 'path'>,
): { url: string; init: RequestInit; done: () => void } {
  // A fresh copy out of the module's memory, so an ArrayBuffer, never a shared one.
  const body = upload.body as Uint8Array<ArrayBuffer>;
  const names = upload.headers;
  const headers: Record<string, string> = {};
  for (let i = 0; i + 1 < names.length; i += 2) headers[names[i] as string] = names[i + 1] as string;
  const keepalive = keepaliveInFlight + body.length <= KEEPALIVE_BYTES;
  if (keepalive) keepaliveInFlight += body.length;
  let settled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = () => {
    if (keepalive && !settled) keepaliveInFlight -= body.length;
    settled = true;
    clearTimeout(timer);
  };
  const init: RequestInit = { method: 'POST', headers, body, keepalive, credentials: 'omit' };
  if (typeof AbortSignal !== 'undefined' && 'timeout' in AbortSignal) {
    init.signal = AbortSignal.timeout(UPLOAD_TIMEOUT_MS);
  } else if (typeof AbortController !== 'undefined') {
    // Older TV browsers: without it a stalled request would hold the upload slot forever.
    const controller = new AbortController();
    timer = setTimeout(() => controller.abort(), UPLOAD_TIMEOUT_MS);
    init.signal = controller.signal;
  }
  return { url: endpoint.replace(/\/+$/, '') + upload.path, init, done };
}
