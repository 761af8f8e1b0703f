// Several tabs of one origin: each tab owns a slot (its session and queue, a key prefix in
// localStorage). The slot's id lives in sessionStorage, so a reload resumes the tab's own
// queue; a Web Lock named after the slot is held while the tab lives, so a closed tab's
// slot is one whose lock nobody holds. A tab that starts claims its slot, then adopts the
// slots of tabs that closed with data unsent (their lock granted to it) and sends their
// queues; a batch both tabs send is absorbed by the collector's (session, seq) identity.

import { keysWithPrefix } from './store.js';

/** sessionStorage key of this tab's slot id. */
const SLOT_KEY = 'slot';

/** A held lock; release it by calling. */
export type Release = () => void;

/** The Web Locks API where the browser has it. */
function locks(): LockManager | null {
  return typeof navigator !== 'undefined' && navigator.locks !== undefined ? navigator.locks : null;
}

/**
 * Takes the lock `name` if nobody holds it, and keeps it until released: its release, null
 * when another tab holds it, or `'unsupported'` where the page may not take locks (no Web
 * Locks API, or an opaque origin that refuses them).
 */
export async function tryLock(name: string): Promise<Release | null | 'unsupported'> {
  const manager = locks();
  if (manager === null) return 'unsupported';
  let release!: Release;
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

function sessionStorageOrNull(): Storage | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

/** This tab's slot: the one it had before a reload, or a new one. */
export async function claimSlot(namespace: string): Promise<{ id: string; release: Release }> {
  const session = sessionStorageOrNull();
  const key = `${namespace}/${SLOT_KEY}`;
  let id: string | null = null;
  try {
    id = session?.getItem(key) ?? null;
  } catch {
    id = null;
  }
  // A duplicated tab copies sessionStorage: the slot's lock is then held by the original.
  let lock = id === null ? null : await tryLock(`${namespace}/${id}`);
  while (lock === null || id === null) {
    id = randomId();
    lock = await tryLock(`${namespace}/${id}`);
  }
  // Without locks a tab cannot tell a closed tab's slot from a live one: it adopts none.
  const release = lock === 'unsupported' ? () => {} : lock;
  try {
    session?.setItem(key, id);
  } catch {
    // Without sessionStorage a reload starts a new slot; the old one is adopted.
  }
  return { id, release };
}

/** Slots with data in `storage` other than `own`, by id. */
export function slotsIn(storage: Storage, namespace: string, own: string): string[] {
  const ids = new Set<string>();
  const prefix = `${namespace}/`;
  for (const key of keysWithPrefix(storage, prefix)) {
    const id = key.slice(prefix.length).split('/')[0];
    if (id !== undefined && id !== own && id !== SLOT_KEY) ids.add(id);
  }
  return [...ids];
}

/** The slots of closed tabs, each with its lock now held by this tab. */
export async function orphans(
  storage: Storage,
  namespace: string,
  own: string,
): Promise<Array<{ id: string; release: Release }>> {
  const found = [];
  for (const id of slotsIn(storage, namespace, own)) {
    const lock = await tryLock(`${namespace}/${id}`);
    if (lock === 'unsupported') return [];
    if (lock !== null) found.push({ id, release: lock });
  }
  return found;
}
