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
/** Slot ids: 16 hex digits, so no other key under the namespace is taken for a slot. */
const SLOT_ID = /^[0-9a-f]{16}$/;

/**
 * Without Web Locks, how often a live tab renews its heartbeat. Hidden tabs' timers may be
 * throttled to once a minute (Chromium's intensive throttling), hence `STALE_MS`.
 */
export const HEARTBEAT_MS = 10_000;
/** A heartbeat older than this is a closed tab's: several throttled minutes, so a live
 * hidden tab is never taken for a closed one. */
export const STALE_MS = 5 * 60_000;
/**
 * A page that went into the back/forward cache or was frozen keeps its slot this long:
 * Chromium evicts cached pages after 10 minutes, and a page shown again within it goes on
 * in its own session. Its batch was sent as it went; only an unanswered upload waits.
 */
export const AWAY_STALE_MS = 15 * 60_000;
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

/** The owner mark: the holder's token, then what it says of the slot. */
interface Mark {
  token: string;
  /** A heartbeat's last beat (wall ms; 0: let go), or when the page went away. */
  beat: number;
  away: boolean;
}

function readMark(value: string | null): Mark | null {
  if (value === null) return null;
  const [token = '', state = ''] = value.split(' ');
  const away = state.startsWith('a');
  return { token, away, beat: Number(away ? state.slice(1) : state) || 0 };
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

  private readMark(): Mark | null {
    return readMark(get(this.tabs.storage, this.mark));
  }

  /**
   * The slot `id` if nobody holds it, now held by this tab; null when another tab does.
   * `ownTab`: the slot this tab's sessionStorage names, taken even from a page of this tab
   * that went away (a later load of the page in the same tab; should the cached page come
   * back, it finds its mark gone and moves).
   */
  static async take(tabs: Tabs, id: string, ownTab = false): Promise<Slot | null> {
    const slot = new Slot(tabs, id);
    return (await slot.hold(null, ownTab)) ? slot : null;
  }

  /**
   * Holds the slot: with Web Locks its lock, otherwise a heartbeat older than `STALE_MS`
   * (or let go) taken over; a slot whose page went away (back/forward cache, frozen) only
   * after `AWAY_STALE_MS`. With `expect`, only while the owner mark is still `expect`'s.
   */
  private async hold(expect: string | null, ownTab = false): Promise<boolean> {
    const { storage, wall } = this.tabs;
    const lock = await tryLock(`${this.tabs.namespace}/${this.id}`);
    if (lock === null) return false;
    const mark = this.readMark();
    const mine = expect !== null && mark?.token === expect;
    const refuse = () => {
      if (typeof lock === 'function') lock();
      return false;
    };
    // A time ahead of this tab's clock (a clock set back) is no proof of life.
    const fresh = (limit: number) => mark !== null && mark.beat <= wall() && wall() - mark.beat < limit;
    if (expect !== null && !mine) return refuse();
    if (!mine && !ownTab && mark?.away === true && fresh(AWAY_STALE_MS)) return refuse();
    if (lock === 'unsupported' && storage === null) {
      // Nothing is shared between tabs: nobody else can hold the slot.
    } else if (lock === 'unsupported') {
      if (!mine && mark !== null && !mark.away && fresh(STALE_MS)) return false;
      set(storage, this.mark, `${this.token} ${wall()}`);
      await sleep(CONFIRM_MS);
      if (this.readMark()?.token !== this.token) return false;
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
    if (this.stillMine()) {
      set(this.tabs.storage, this.mark, `${this.token} ${this.tabs.wall()}`);
      return;
    }
    this.lost();
  }

  private lost(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.held = false;
    this.onLost?.();
  }

  /**
   * Whether this tab still holds the slot. With Web Locks nobody can take it; with a
   * heartbeat another tab may have, when this one stalled past `STALE_MS` (a sleeping
   * machine, a suspended TV browser): then nothing more may be written there.
   */
  stillMine(): boolean {
    if (!this.held) return false;
    if (this.lockRelease !== null || this.tabs.storage === null) return true;
    if (this.readMark()?.token === this.token) return true;
    this.lost();
    return false;
  }

  /**
   * Lets the slot go, keeping this tab's mark so it can tell later whether another tab
   * adopted it. `away`: the page went into the back/forward cache or was frozen (a held
   * lock would keep it out of the cache) and may come back, so other tabs leave the slot
   * alone for `AWAY_STALE_MS`; otherwise it may be adopted at once.
   */
  letGo(away = false): void {
    this.held = false;
    this.lockRelease?.();
    this.lockRelease = null;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    // Also when already let go: an away page that unloads after all frees its slot.
    if (this.readMark()?.token !== this.token) return;
    const { storage, wall } = this.tabs;
    set(storage, this.mark, away ? `${this.token} a${wall()}` : `${this.token} 0`);
  }

  /** Holds the slot again after `letGo`; false when another tab adopted it meanwhile. */
  async reclaim(): Promise<boolean> {
    if (this.held) return true;
    return this.hold(this.token);
  }

  /** Lets the slot go for good and removes this tab's mark (its data is gone or handed on). */
  release(): void {
    this.letGo();
    if (this.readMark()?.token === this.token) remove(this.tabs.storage, this.mark);
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
  let slot = before === null ? null : await Slot.take(tabs, before, true);
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
    if (id !== undefined && id !== own && SLOT_ID.test(id)) ids.add(id);
  }
  return [...ids];
}

/** The slots of closed tabs but `skip`, each now held by this tab. */
export async function orphans(tabs: Tabs, own: string, skip: ReadonlySet<string>): Promise<Slot[]> {
  const found = [];
  for (const id of slotsIn(tabs, own)) {
    if (skip.has(id)) continue;
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
