// Uploads over `fetch`: the core's request as it is (path, headers, gzip body), the answer
// reduced to what the core classifies (status and the raw Retry-After text; 0 for no
// answer). Every request that fits is sent with `keepalive`, so one started when the tab is
// hidden or closed completes after the page is gone; the core keeps each body under the
// 64 KiB keepalive carries (`MAX_BATCH_ENCODED_BYTES`).

import type { Upload } from './core.js';

/** What Chromium and the Fetch standard let keepalive requests carry in flight. */
export const KEEPALIVE_BYTES = 64 * 1024;

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

/** The request for `upload` to the collector at `endpoint`. */
export function request(endpoint: string, upload: Upload): { url: string; init: RequestInit } {
  // A fresh copy out of the module's memory, so an ArrayBuffer, never a shared one.
  const body = upload.body as Uint8Array<ArrayBuffer>;
  const names = upload.headers;
  const headers: Record<string, string> = {};
  for (let i = 0; i + 1 < names.length; i += 2) headers[names[i] as string] = names[i + 1] as string;
  const init: RequestInit = {
    method: 'POST',
    headers,
    body,
    keepalive: body.length <= KEEPALIVE_BYTES,
    credentials: 'omit',
  };
  if (typeof AbortSignal !== 'undefined' && 'timeout' in AbortSignal) {
    init.signal = AbortSignal.timeout(UPLOAD_TIMEOUT_MS);
  }
  return { url: endpoint.replace(/\/+$/, '') + upload.path, init };
}
