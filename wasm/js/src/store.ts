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

/** Under the slot's prefix: values live under `v/<key>`, the journal under `j`. */
const VALUE = 'v/';
const JOURNAL = 'j';

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

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
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
  private journal: Uint8Array = new Uint8Array(0);
  private local: Storage | null;
  /** Errors that moved the slot to memory (0 or 1) and the reason, for stats. */
  fallbacks = 0;
  fallbackReason: string | null = null;

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
      for (const key of keysWithPrefix(storage, this.prefix)) {
        const value = storage.getItem(key);
        if (value === null) continue;
        const rest = key.slice(this.prefix.length);
        if (rest === JOURNAL) this.journal = fromBinary(value);
        else if (rest.startsWith(VALUE)) this.values.set(rest.slice(VALUE.length), fromBinary(value));
      }
    } catch (e) {
      this.fallBack(e);
    }
  }

  /** What the core resumes from. */
  stored(): Stored {
    const stored = new Stored();
    for (const [key, value] of this.values) stored.put(key, value);
    stored.set_journal(this.journal);
    return stored;
  }

  /** Nothing is kept: no values, no journal. */
  get empty(): boolean {
    return this.values.size === 0 && this.journal.length === 0;
  }

  /** Performs one operation; in memory it always succeeds. */
  apply(op: StoreOp): Applied {
    const kind = op.kind;
    let key = '';
    let value = '';
    if (kind === PUT) {
      const bytes = op.bytes;
      this.values.set(op.key, bytes);
      key = VALUE + op.key;
      value = toBinary(bytes);
    } else if (kind === REMOVE) {
      this.values.delete(op.key);
      key = VALUE + op.key;
    } else if (kind === APPEND) {
      this.journal = concat(this.journal, op.bytes);
      key = JOURNAL;
      value = toBinary(this.journal);
    } else if (kind === CLEAR_JOURNAL) {
      this.journal = new Uint8Array(0);
      key = JOURNAL;
    } else {
      return { ok: false, quota: false };
    }
    if (this.local !== null) {
      try {
        if (kind === PUT || kind === APPEND) this.local.setItem(this.prefix + key, value);
        else this.local.removeItem(this.prefix + key);
      } catch (e) {
        this.fallBack(e);
      }
    }
    return { ok: true, quota: false };
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
  }

  /** Removes everything the slot holds, on disk and in memory. */
  clear(): void {
    this.values.clear();
    this.journal = new Uint8Array(0);
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
