// Several tabs of one origin: each tab owns a slot (its session and queue, a key prefix in
// localStorage). The slot's id lives in sessionStorage, so a reload resumes the tab's own
// queue. A live tab holds its slot: by a Web Lock named after it where the browser has Web
// Locks, otherwise by a heartbeat in localStorage that a closed tab stops renewing. A slot
// nobody holds belongs to a tab that closed (or crashed) with data maybe unsent: a tab that
// starts, and every scan after that, adopts such slots and sends their queues; a batch both
// tabs send is absorbed by the collector's (session, seq) identity.
//
// Each slot also has an owner mark (`<ns>/owner/<id>`, the holder's random token), so a
// tab that let its slot go for the back/forward cache can tell, when it is shown again,
// whether another tab adopted the slot meanwhile (then it must not write there again).

import { keysWithPrefix } from './store.js';

/** sessionStorage key of this tab's slot id. */
const SLOT_KEY = 'slot';
/** Under the namespace: owner marks, by slot id. */
export const OWNER = 'owner';
/** Under the namespace: what pages that lost their storage left unsent (`store.ts`). */
export const UNSENT = 'unsent';
/** Names under the namespace that are not slot ids (slot ids are 16 hex digits). */
const RESERVED = new Set([SLOT_KEY, OWNER, UNSENT]);

/**
 * Without Web Locks, how often a live tab renews its heartbeat. Hidden tabs' timers may be
 * throttled to once a minute (Chromium's intensive throttling), hence `STALE_MS`.
 */
export const HEARTBEAT_MS = 10_000;
/** A heartbeat older than this is a closed tab's: several throttled minutes, so a live
 * hidden tab is never taken for a closed one. */
export const STALE_MS = 5 * 60_000;
/**
 * Without Web Locks two tabs may claim one stale slot at once; each writes its mark, waits
 * this long for the other's write to arrive, and keeps the slot only if its mark stayed.
 */
export const CONFIRM_MS = 50;

/** The Web Locks API where the browser has it. */
function locks(): LockManager | null {
  return typeof navigator !== 'undefined' && navigator.locks !== undefined ? navigator.locks : null;
}

type Lock = (() => void) | null | 'unsupported';

/**
 * Takes the lock `name` if nobody holds it, and keeps it until released: its release, null
 * when another tab holds it, or `'unsupported'` where the page may not take locks (no Web
 * Locks API, or an opaque origin that refuses them).
 */
async function tryLock(name: string): Promise<Lock> {
  const manager = locks();
  if (manager === null) return 'unsupported';
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const granted = await new Promise<boolean | 'unsupported'>((resolve) => {
    manager
      .request(name, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock === null ? undefined : held;
      })
      .catch(() => resolve('unsupported'));
  });
  if (granted === 'unsupported') return 'unsupported';
  return granted ? release : null;
}

function randomId(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function get(storage: Storage | null, key: string): string | null {
  try {
    return storage?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function set(storage: Storage | null, key: string, value: string): void {
  try {
    storage?.setItem(key, value);
  } catch {
    // A mark that cannot be written leaves the slot looking free: at worst it is adopted
    // while this tab lives, and the collector absorbs what both send.
  }
}

function remove(storage: Storage | null, key: string): void {
  try {
    storage?.removeItem(key);
  } catch {
    // Removal cannot exceed a quota; a storage that refuses it holds nothing of ours.
  }
}

/** Where tabs of one namespace coordinate: the shared storage and the wall clock. */
export interface Tabs {
  readonly namespace: string;
  /** The origin's localStorage, or null (memory only: nothing is shared or adopted). */
  readonly storage: Storage | null;
  readonly wall: () => number;
}

/** A slot this tab holds. */
export class Slot {
  private readonly token = randomId();
  private lockRelease: (() => void) | null = null;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private held = false;
  /** Told when another tab took the slot while this one held it (a stalled heartbeat). */
  onLost: (() => void) | undefined;

  private constructor(
    private readonly tabs: Tabs,
    readonly id: string,
  ) {}

  private get mark(): string {
    return `${this.tabs.namespace}/${OWNER}/${this.id}`;
  }

  /** The slot `id` if nobody holds it, now held by this tab; null when another tab does. */
  static async take(tabs: Tabs, id: string): Promise<Slot | null> {
    const slot = new Slot(tabs, id);
    return (await slot.hold(null)) ? slot : null;
  }

  /**
   * Holds the slot: with Web Locks its lock, otherwise a heartbeat older than `STALE_MS`
   * (or let go) taken over. With `expect`, only while the owner mark is still `expect`.
   */
  private async hold(expect: string | null): Promise<boolean> {
    const { storage, wall } = this.tabs;
    const lock = await tryLock(`${this.tabs.namespace}/${this.id}`);
    if (lock === null) return false;
    const owner = get(storage, this.mark);
    const token = owner?.split(' ')[0] ?? null;
    if (expect !== null && token !== expect) {
      if (typeof lock === 'function') lock();
      return false;
    }
    if (lock === 'unsupported' && storage === null) {
      // Nothing is shared between tabs: nobody else can hold the slot.
    } else if (lock === 'unsupported') {
      const beat = Number(owner?.split(' ')[1] ?? 0);
      if (token !== expect && wall() - beat < STALE_MS) return false;
      set(storage, this.mark, `${this.token} ${wall()}`);
      await sleep(CONFIRM_MS);
      if (get(storage, this.mark)?.split(' ')[0] !== this.token) return false;
      this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    } else {
      this.lockRelease = lock;
      set(storage, this.mark, this.token);
    }
    this.held = true;
    return true;
  }

  /** Renews the heartbeat, unless another tab took the slot after this one's stalled. */
  private beat(): void {
    const { storage, wall } = this.tabs;
    if (get(storage, this.mark)?.split(' ')[0] === this.token) {
      set(storage, this.mark, `${this.token} ${wall()}`);
      return;
    }
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.held = false;
    this.onLost?.();
  }

  /**
   * Lets the slot go while keeping this tab's mark (the page enters the back/forward cache,
   * where a held lock would keep it out): another tab may adopt it meanwhile.
   */
  letGo(): void {
    if (!this.held) return;
    this.held = false;
    this.lockRelease?.();
    this.lockRelease = null;
    if (this.heartbeat !== undefined) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
      // A heartbeat at 0 is stale at once: the slot may be adopted.
      set(this.tabs.storage, this.mark, `${this.token} 0`);
    }
  }

  /** Holds the slot again after `letGo`; false when another tab adopted it meanwhile. */
  async reclaim(): Promise<boolean> {
    if (this.held) return true;
    return this.hold(this.token);
  }

  /** Lets the slot go for good and removes its mark (its data is gone or handed on). */
  release(): void {
    const held = this.held;
    this.letGo();
    if (held) remove(this.tabs.storage, this.mark);
  }
}

function sessionStorageOrNull(): Storage | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

/** This tab's slot: the one it had before a reload, or a new one. */
export async function claimSlot(tabs: Tabs): Promise<Slot> {
  const session = sessionStorageOrNull();
  const key = `${tabs.namespace}/${SLOT_KEY}`;
  const before = get(session, key);
  // A duplicated tab copies sessionStorage: the slot is then held by the original.
  let slot = before === null ? null : await Slot.take(tabs, before);
  while (slot === null) slot = await Slot.take(tabs, randomId());
  // Without sessionStorage a reload starts a new slot; the old one is adopted.
  set(session, key, slot.id);
  return slot;
}

/** Slots with data or an owner mark in the tabs' storage, other than `own`, by id. */
export function slotsIn(tabs: Tabs, own: string): string[] {
  const ids = new Set<string>();
  if (tabs.storage === null) return [];
  const prefix = `${tabs.namespace}/`;
  const marks = `${prefix}${OWNER}/`;
  for (const key of keysWithPrefix(tabs.storage, prefix)) {
    const id = key.startsWith(marks) ? key.slice(marks.length) : key.slice(prefix.length).split('/')[0];
    if (id !== undefined && id !== own && !RESERVED.has(id)) ids.add(id);
  }
  return [...ids];
}

/** The slots of closed tabs, each now held by this tab. */
export async function orphans(tabs: Tabs, own: string): Promise<Slot[]> {
  const found = [];
  for (const id of slotsIn(tabs, own)) {
    const slot = await Slot.take(tabs, id);
    if (slot !== null) found.push(slot);
  }
  return found;
}

/**
 * A page whose storage failed keeps its queue in memory: when it goes with `pending`
 * impressions unsent, it leaves their number here (a few bytes, written after its slot's
 * data was removed), so the loss is counted by the next page instead of vanishing.
 */
export function noteUnsent(tabs: Tabs, slot: string, pending: number): void {
  const key = `${tabs.namespace}/${UNSENT}/${slot}`;
  if (pending > 0) set(tabs.storage, key, String(pending));
  else remove(tabs.storage, key);
}

/** The impressions earlier pages noted unsent (`noteUnsent`), taken: each is counted once. */
export function takeUnsent(tabs: Tabs): number {
  if (tabs.storage === null) return 0;
  let total = 0;
  for (const key of keysWithPrefix(tabs.storage, `${tabs.namespace}/${UNSENT}/`)) {
    const n = Number(get(tabs.storage, key));
    if (Number.isSafeInteger(n) && n > 0) total += n;
    remove(tabs.storage, key);
  }
  return total;
}
