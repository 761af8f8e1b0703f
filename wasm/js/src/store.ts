// The store the core's operations are performed on: localStorage, one slot (a tab's queue)
// under its own key prefix, with a copy in memory. localStorage is synchronous, so a batch
// closed by `pagehide` is durable before the page goes and its upload can leave at once;
// values are binary strings (one char per byte). A quota or security error (private mode,
// blocked storage) moves the slot to memory for the rest of the page's life: the error is
// counted, never thrown at the page, and the slot's stale copy is removed, so a later page
// cannot resume from state older than what was sent.

import { Stored } from './core.js';
import type { StoreOp } from './core.js';

/** `StoreOp.kind` values (`wasm/src/logger.rs`). */
const PUT = 1;
const REMOVE = 2;
const APPEND = 3;
const CLEAR_JOURNAL = 4;

/**
 * Under the slot's prefix: values live under `v/<key>`, the journal as one key per append
 * under `j/<n>` (an append writes only its own bytes, not the journal so far).
 */
const VALUE = 'v/';
const JOURNAL = 'j/';

/** Bytes per `String.fromCharCode` call: far below engines' argument limits. */
const CHUNK = 8192;

export function toBinary(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += CHUNK) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK) as unknown as number[]);
  }
  return s;
}

export function fromBinary(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Where a store keeps its data: `'local'` (localStorage) or `'memory'` after a fallback. */
export type Medium = 'local' | 'memory';

/** The result of one operation, as the core is told. */
export interface Applied {
  ok: boolean;
  quota: boolean;
}

/** One slot's values and journal, kept in localStorage while it works, and in memory. */
export class SlotStore {
  private values = new Map<string, Uint8Array>();
  /** The journal's appends in order, and the number the next one is stored under. */
  private journal: Uint8Array[] = [];
  private nextAppend = 0;
  private local: Storage | null;
  /** Errors that moved the slot to memory (0 or 1) and the reason, for stats. */
  fallbacks = 0;
  fallbackReason: string | null = null;
  /** Told when the slot moves to memory. */
  onFallback: ((reason: string) => void) | undefined;

  constructor(
    storage: Storage | null,
    readonly prefix: string,
  ) {
    this.local = storage;
    if (storage !== null) this.read(storage);
  }

  get medium(): Medium {
    return this.local === null ? 'memory' : 'local';
  }

  private read(storage: Storage): void {
    try {
      const appends: Array<[number, Uint8Array]> = [];
      for (const key of keysWithPrefix(storage, this.prefix)) {
        const value = storage.getItem(key);
        if (value === null) continue;
        const rest = key.slice(this.prefix.length);
        if (rest.startsWith(JOURNAL)) appends.push([Number(rest.slice(JOURNAL.length)), fromBinary(value)]);
        else if (rest.startsWith(VALUE)) this.values.set(rest.slice(VALUE.length), fromBinary(value));
      }
      appends.sort((a, b) => a[0] - b[0]);
      this.journal = appends.map(([, bytes]) => bytes);
      this.nextAppend = appends.length === 0 ? 0 : (appends[appends.length - 1] as [number, Uint8Array])[0] + 1;
    } catch (e) {
      this.fallBack(e);
    }
  }

  /** What the core resumes from. */
  stored(): Stored {
    const stored = new Stored();
    for (const [key, value] of this.values) stored.put(key, value);
    stored.set_journal(concat(this.journal));
    return stored;
  }

  /** Nothing is kept: no values, no journal. */
  get empty(): boolean {
    return this.values.size === 0 && this.journal.length === 0;
  }

  /** Performs one operation; in memory it always succeeds. */
  apply(op: StoreOp): Applied {
    const kind = op.kind;
    if (kind === PUT) {
      const bytes = op.bytes;
      this.values.set(op.key, bytes);
      this.write(VALUE + op.key, toBinary(bytes));
    } else if (kind === REMOVE) {
      this.values.delete(op.key);
      this.remove(VALUE + op.key);
    } else if (kind === APPEND) {
      const bytes = op.bytes;
      this.journal.push(bytes);
      this.write(JOURNAL + this.nextAppend++, toBinary(bytes));
    } else if (kind === CLEAR_JOURNAL) {
      this.journal = [];
      this.nextAppend = 0;
      if (this.local !== null) removeWithPrefix(this.local, this.prefix + JOURNAL);
    } else {
      return { ok: false, quota: false };
    }
    return { ok: true, quota: false };
  }

  private write(key: string, value: string): void {
    if (this.local === null) return;
    try {
      this.local.setItem(this.prefix + key, value);
    } catch (e) {
      this.fallBack(e);
    }
  }

  private remove(key: string): void {
    if (this.local === null) return;
    try {
      this.local.removeItem(this.prefix + key);
    } catch (e) {
      this.fallBack(e);
    }
  }

  /** The page wanted localStorage and could not have it (blocked site data, sandbox). */
  blocked(): void {
    this.fallbacks += 1;
    this.fallbackReason = 'unavailable';
  }

  /** Moves the slot to memory: the page keeps logging, the copy on disk is removed. */
  private fallBack(error: unknown): void {
    const storage = this.local;
    this.local = null;
    this.fallbacks += 1;
    this.fallbackReason = error instanceof Error ? error.name : 'error';
    if (storage !== null) removeWithPrefix(storage, this.prefix);
    this.onFallback?.(this.fallbackReason);
  }

  /** Removes everything the slot holds, on disk and in memory. */
  clear(): void {
    this.values.clear();
    this.journal = [];
    this.nextAppend = 0;
    if (this.local !== null) removeWithPrefix(this.local, this.prefix);
  }
}

/** Every key under `prefix`; a storage that cannot be read lists none. */
export function keysWithPrefix(storage: Storage, prefix: string): string[] {
  const keys: string[] = [];
  try {
    for (let i = 0; i < storage.length; i++) {
      const key = storage.key(i);
      if (key !== null && key.startsWith(prefix)) keys.push(key);
    }
  } catch {
    return [];
  }
  return keys;
}

function removeWithPrefix(storage: Storage, prefix: string): void {
  for (const key of keysWithPrefix(storage, prefix)) {
    try {
      storage.removeItem(key);
    } catch {
      // Removal cannot exceed a quota; a storage that refuses it holds nothing of ours.
    }
  }
}

/** `window.localStorage`, or null where reading it throws (blocked storage, sandboxes). */
export function localStorageOrNull(): Storage | null {
  try {
    const storage = globalThis.localStorage;
    return storage ?? null;
  } catch {
    return null;
  }
}
