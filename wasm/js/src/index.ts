// @sightline/web: impression logging for web pages on Sightline's shared core. The core
// (WebAssembly) owns every rule; this runtime is the browser glue: it measures visibility
// (IntersectionObserver), follows the page lifecycle, stores the queue (localStorage),
// uploads (fetch), shares one origin between tabs and paints the debug overlay.

import { Logger, UNAVAILABLE, coreConfig, load, outcome, refusal, threshold, zeroStats } from './core.js';
import type { CoreOptions, CoreStats, Outcome, WasmSource } from './core.js';
import { Host, browserClock, modulePoisoned } from './host.js';
import type { Clock, HostState, HostStats } from './host.js';
import { Observer } from './observe.js';
import type { Placement } from './observe.js';
import { Overlay } from './overlay.js';
import { SlotStore, localStorageOrNull } from './store.js';
import type { Medium } from './store.js';
import { Slot, claimSlot, noteUnsent, orphans, takeUnsent } from './tabs.js';
import type { Tabs } from './tabs.js';
import { fetchTransport } from './transport.js';
import type { Transport } from './transport.js';

export type { ContractOptions, CoreOptions, CoreStats, Outcome, Platform, WasmSource } from './core.js';
export type { Placement } from './observe.js';
export type { Answer, Transport } from './transport.js';
export type { Clock, HostState, HostStats } from './host.js';
export type { Medium } from './store.js';
export { AWAY_STALE_MS, HEARTBEAT_MS, STALE_MS } from './tabs.js';

export interface Options extends CoreOptions {
  /** The collector's base URL; uploads go to `<endpoint>/v1/batches`. */
  endpoint: string;
  /**
   * Prefix of every key the SDK stores (localStorage, sessionStorage, Web Locks); by default
   * `sightline:<appId>`, so apps sharing an origin never adopt each other's queues.
   */
  namespace?: string;
  /** `'memory'` keeps nothing across page loads (tests, kiosks). */
  storage?: 'local' | 'memory';
  /** Where the WebAssembly module comes from; by default next to this file. */
  wasm?: WasmSource;
  /** Outline observed elements with their state. */
  debug?: boolean;
  /** Sends uploads; `fetch` by default. */
  transport?: Transport;
  clock?: Clock;
  /**
   * How often to look for queues of closed tabs: `ADOPT_SCAN_MS` by default, from
   * `MIN_ADOPT_SCAN_MS` to `MAX_ADOPT_SCAN_MS`.
   */
  adoptScanMs?: number;
  /** Told about failures the SDK absorbed (a storage fallback, a trapped module). */
  onError?: (error: unknown) => void;
}

/**
 * A page view: its id for `observe` and impressions, or the rule that refused it (id 0;
 * `'unavailable'` when the SDK is closed or a trap turned it off).
 */
export interface PageView {
  readonly id: number;
  readonly refused: string | null;
}

/** An item in a page view, for inputs that do not come from an observed element. */
export interface ItemInput {
  itemId: string;
  artworkId?: string | null;
  row: number;
  column: number;
}

/** An impression the page qualified itself; times in `performance.now()` milliseconds. */
export interface ImpressionInput extends ItemInput {
  firstVisibleAt: number;
  visibleMs: number;
  maxVisibleFraction: number;
  focusedMs?: number;
}

/**
 * The core's counters and the runtime's. Once the SDK is closed or trapped, the core's
 * counters are the last ones read.
 */
export interface Stats extends CoreStats, HostStats {
  state: HostState;
  session_id: string;
  /** Where the queue is kept: `'memory'` after storage failed or was blocked. */
  storage: Medium;
  storage_fallbacks: number;
  /** Elements observed now. */
  observed: number;
  /** Slots of closed tabs this tab took over, and how many of them still have data. */
  adopted: number;
  adopting: number;
  /**
   * Times another tab adopted this tab's slot while the page was away (back/forward
   * cache, frozen) or stalled: each time logging went on in a new slot and session, and
   * the page views started before ended.
   */
  slot_moves: number;
  /**
   * Impressions that earlier pages of this app held only in memory (their storage failed)
   * and had not seen delivered when they went: at most this many were lost (an upload in
   * flight as a page went may still have arrived). Counted by the page that starts next.
   */
  unsent_by_closed_pages: number;
}

/**
 * How often a tab looks again for slots of tabs that closed with data unsent: a tab open
 * all day sends them without waiting for another tab to start.
 */
export const ADOPT_SCAN_MS = 30_000;
/** Scans more often than this would cost the page for queues that closed tabs rarely leave. */
export const MIN_ADOPT_SCAN_MS = 1_000;
/** Scans less often than this would leave a closed tab's queue unsent for most of a visit. */
export const MAX_ADOPT_SCAN_MS = 3_600_000;

/**
 * Starts logging: loads the core, claims this tab's slot, resumes its queue, and adopts the
 * queues of closed tabs. Throws for an invalid option, naming it.
 */
export async function start(options: Options): Promise<Sightline> {
  const scanMs = options.adoptScanMs ?? ADOPT_SCAN_MS;
  if (!(scanMs >= MIN_ADOPT_SCAN_MS && scanMs <= MAX_ADOPT_SCAN_MS)) {
    throw new RangeError(`adoptScanMs: expected ${MIN_ADOPT_SCAN_MS} to ${MAX_ADOPT_SCAN_MS} ms, got ${scanMs}`);
  }
  await load(options.wasm);
  // A bad setting throws here, before a slot is claimed.
  coreConfig(options).free();
  const clock = options.clock ?? browserClock;
  const tabs: Tabs = {
    // Encoded: an app id may hold '/', which would read as a slot of another namespace.
    namespace: options.namespace ?? `sightline:${encodeURIComponent(options.appId)}`,
    storage: options.storage === 'memory' ? null : localStorageOrNull(),
    wall: () => clock.wall(),
  };
  const slot = await claimSlot(tabs);
  try {
    return new Sightline(options, tabs, slot, scanMs, clock);
  } catch (error) {
    slot.release();
    throw error;
  }
}

/** One slot's logger and store (this tab's own, or one adopted from a closed tab). */
function openSlot(options: Options, store: SlotStore, clock: Clock, onError: (error: unknown) => void): Host {
  const config = coreConfig(options);
  const logger = Logger.resume(config, store.stored(), clock.mono(), clock.wall());
  const host = new Host(logger, store, options.endpoint, options.transport ?? fetchTransport, clock, onError);
  host.drain();
  return host;
}

function documentHidden(): boolean {
  return typeof document !== 'undefined' && document.visibilityState === 'hidden';
}

/** A slot of a closed tab this tab sends the queue of. */
interface Adopted {
  host: Host;
  slot: Slot;
}

export class Sightline {
  private host: Host;
  private observer: Observer | null = null;
  private overlay: Overlay | null = null;
  private adopted: Adopted[] = [];
  private adoptedTotal = 0;
  private unsent: number;
  private hidden = false;
  private closed = false;
  /** Let go for the back/forward cache or a freeze; held again when shown. */
  private away = false;
  /** A `pagehide` or `freeze` came while the page was coming back: it stays away. */
  private wantAway = false;
  /** Whether the page that went away may come back (cached or frozen, not unloading). */
  private awayMayReturn = false;
  private returning: Promise<void> | null = null;
  private moving: Promise<void> | null = null;
  private slotMoves = 0;
  /**
   * Page-view ids the page was given before its slot moved: a new logger numbers from 1
   * again, so its ids are shifted past these and an old page view is never taken for a new.
   */
  private pageViewBase = 0;
  private lastPageView = 0;
  /** Slots of closed tabs this page cannot read (another configuration): not retried. */
  private readonly unreadable = new Set<string>();
  private scan: ReturnType<typeof setInterval> | undefined;
  private scanning = false;
  private lastSession = '';
  private readonly listeners: Array<[EventTarget, string, EventListener]> = [];

  /** @internal Use `start()`. */
  constructor(
    private readonly options: Options,
    private readonly tabs: Tabs,
    private slot: Slot,
    scanMs: number,
    private readonly clock: Clock,
  ) {
    this.host = this.open(slot);
    this.unsent = takeUnsent(tabs);
    if (this.unsent > 0) {
      this.report(new Error(`sightline: ${this.unsent} impressions of closed pages were kept only in memory and may be lost`));
    }
    if (typeof document !== 'undefined') {
      this.listen(document, 'visibilitychange', () => this.lifecycle(documentHidden()));
      this.lifecycle(documentHidden());
      this.listen(document, 'freeze', () => this.goAway(true));
      this.listen(document, 'resume', () => void this.comeBack());
    }
    if (typeof window !== 'undefined') {
      // Not `persisted`: the page is unloading, and its slot may be adopted at once.
      this.listen(window, 'pagehide', (e) => this.goAway((e as PageTransitionEvent).persisted !== false));
      this.listen(window, 'pageshow', (e) => {
        if ((e as PageTransitionEvent).persisted) void this.comeBack();
      });
    }
    if (tabs.storage !== null) {
      const look = () => void this.adoptOrphans();
      look();
      this.scan = setInterval(look, scanMs);
    }
  }

  /** This tab's logger on `slot`, with the overlay's hooks. */
  private open(slot: Slot): Host {
    const store = new SlotStore(this.tabs.storage, `${this.tabs.namespace}/${slot.id}/`);
    if (this.tabs.storage === null && this.options.storage !== 'memory') store.blocked();
    if (store.fallbacks > 0) this.report(new Error(`sightline: storage unavailable (${store.fallbackReason})`));
    store.onFallback = (reason) => this.report(new Error(`sightline: storage failed (${reason}), queue kept in memory`));
    slot.onLost = () => void this.moveSlot();
    const host = openSlot(this.options, store, this.clock, (e) => this.failed(e));
    host.owned = () => slot.stillMine();
    host.onLost = () => void this.moveSlot();
    this.lastSession = host.read(this.lastSession, (l) => l.session_id);
    if (this.options.debug === true) {
      this.overlay ??= new Overlay();
      host.read(undefined, (l) => l.report_outcomes(true));
      host.onDrain = () => this.paint();
    }
    return host;
  }

  get sessionId(): string {
    this.lastSession = this.host.read(this.lastSession, (l) => l.session_id);
    return this.lastSession;
  }

  /** Starts a page view; `layout` is the rows of item ids the server sent. */
  startPageView(page: string, options: { requestId?: string; layout?: string[][] } = {}): PageView {
    const layout = options.layout;
    const value = this.host.input(UNAVAILABLE, (l, mono, wall) =>
      l.start_page_view(
        page,
        options.requestId ?? null,
        layout === undefined ? null : layout.flat(),
        layout === undefined ? null : new Uint32Array(layout.map((row) => row.length)),
        mono,
        wall,
      ),
    );
    const rule = refusal(value);
    if (rule !== null) return { id: 0, refused: rule };
    this.lastPageView = this.pageViewBase + value;
    return { id: this.lastPageView, refused: null };
  }

  /** The logger's id for the page's page-view id (0, unknown to it, for one before a move). */
  private local(pageView: PageView | number): number {
    const id = typeof pageView === 'number' ? pageView : pageView.id;
    return id > this.pageViewBase ? id - this.pageViewBase : 0;
  }

  /** Ends a page view: what qualified is logged, its elements stop being tracked. */
  endPageView(pageView: PageView | number): string | null {
    const id = this.local(pageView);
    // The overlay paints what the end logged while the elements are still known.
    const rule = refusal(this.host.input(UNAVAILABLE, (l, mono, wall) => l.end_page_view(id, mono, wall)));
    this.observer?.forgetPageView(typeof pageView === 'number' ? pageView : pageView.id);
    return rule;
  }

  /** Tracks an element's visibility (and focus) as the item at `placement`. */
  observe(element: Element, placement: Placement): void {
    if (this.closed) return;
    this.observer ??= new Observer(
      {
        visibility: (el, p, fraction) => this.paintRefusal(el, this.visibility(p, fraction)),
        focus: (el, p, focused) => this.paintRefusal(el, this.focus(p, focused)),
        removed: (el, p) => {
          this.visibility(p, 0);
          this.overlay?.clear(el);
        },
      },
      threshold(this.options),
    );
    this.observer.observe(element, placement);
    this.overlay?.show(element, 'tracking');
  }

  /** Stops tracking an element; an exposure in progress ends as if it left the screen. */
  unobserve(element: Element): void {
    this.observer?.unobserve(element);
  }

  /** Reports an item's visible share (0..1) directly, for content no element represents. */
  visibility(placement: Placement, fraction: number): string | null {
    const p = placement;
    const pv = this.local(p.pageView);
    return refusal(
      this.host.input(UNAVAILABLE, (l, mono, wall) =>
        l.visibility(pv, p.itemId, p.artworkId ?? null, p.row, p.column, fraction, mono, wall),
      ),
    );
  }

  /** Reports focus moving onto (or off) an item: TV remotes, keyboard navigation. */
  focus(placement: Placement, focused: boolean): string | null {
    const p = placement;
    const pv = this.local(p.pageView);
    return refusal(
      this.host.input(UNAVAILABLE, (l, mono, wall) =>
        l.focus(pv, p.itemId, p.artworkId ?? null, p.row, p.column, focused, mono, wall),
      ),
    );
  }

  /** Records an impression the page qualified itself. */
  recordImpression(pageView: PageView | number, imp: ImpressionInput): Outcome {
    const id = this.local(pageView);
    return outcome(
      this.host.input(UNAVAILABLE, (l, mono, wall) =>
        l.impression(
          id,
          imp.itemId,
          imp.artworkId ?? null,
          imp.row,
          imp.column,
          imp.firstVisibleAt,
          imp.visibleMs,
          imp.maxVisibleFraction,
          imp.focusedMs ?? 0,
          mono,
          wall,
        ),
      ),
    );
  }

  /** Closes the open batch so it is sent now. */
  flush(): void {
    this.host.input(undefined, (l, mono, wall) => l.flush(mono, wall));
  }

  /** Stops logging; `purge` deletes what is queued and not yet sent. */
  optOut(options: { purge?: boolean } = {}): void {
    this.host.input(undefined, (l, mono, wall) => l.set_enabled(false, options.purge ?? false, mono, wall));
  }

  optIn(): void {
    this.host.input(undefined, (l, mono, wall) => l.set_enabled(true, false, mono, wall));
  }

  get enabled(): boolean {
    return this.host.read(false, (l) => l.enabled);
  }

  stats(): Stats {
    const core = this.host.stats() ?? zeroStats();
    const store = this.host.store;
    return {
      ...core,
      ...this.host.counters,
      state: this.host.state,
      session_id: this.sessionId,
      storage: store.medium,
      storage_fallbacks: store.fallbacks,
      observed: this.observer?.size ?? 0,
      adopted: this.adoptedTotal,
      adopting: this.adopted.length,
      slot_moves: this.slotMoves,
      unsent_by_closed_pages: this.unsent,
    };
  }

  /** Stops the SDK (SPA teardown): what qualified is logged and sent, listeners removed. */
  close(): void {
    if (this.closed) return;
    this.lifecycle(true);
    this.noteUnsent();
    this.closed = true;
    this.observer?.disconnect();
    this.overlay?.remove();
    for (const [target, type, listener] of this.listeners) target.removeEventListener(type, listener);
    if (this.scan !== undefined) clearInterval(this.scan);
    // The last session id, for `stats()` after close.
    void this.sessionId;
    this.host.close();
    this.slot.release();
    this.dropAdopted();
  }

  /** Takes over the slots of tabs that closed with data unsent, and sends their queues. */
  private async adoptOrphans(): Promise<void> {
    if (this.scanning || this.closed || this.away) return;
    this.scanning = true;
    try {
      for (const slot of await orphans(this.tabs, this.slot.id, this.unreadable)) this.adopt(slot);
    } finally {
      this.scanning = false;
    }
  }

  private adopt(slot: Slot): void {
    const store = new SlotStore(this.tabs.storage, `${this.tabs.namespace}/${slot.id}/`);
    // Closed, gone away or turned off while looking: the slot stays for the next tab.
    if (this.closed || this.away || modulePoisoned()) {
      slot.letGo();
      return;
    }
    if (store.empty) {
      store.clear();
      slot.release();
      return;
    }
    store.onFallback = (reason) =>
      this.report(new Error(`sightline: storage failed (${reason}) for a closed tab's queue, kept in memory`));
    let host: Host;
    try {
      host = openSlot(this.options, store, this.clock, (e) => this.failed(e));
    } catch (error) {
      // A slot written under another configuration is left for a page that can read it.
      this.unreadable.add(slot.id);
      slot.letGo();
      this.report(error);
      return;
    }
    const entry = { host, slot };
    host.owned = () => slot.stillMine();
    host.onLost = () => this.drop(entry);
    this.adopted.push(entry);
    this.adoptedTotal += 1;
    slot.onLost = () => this.drop(entry);
    host.onDrain = () => this.settle(entry);
    host.input(undefined, (l, mono, wall) => l.flush(mono, wall));
  }

  /** An adopted slot with nothing left to send is removed. */
  private settle(entry: Adopted): void {
    const pending = entry.host.read(-1, (l) => l.pending);
    if (pending !== 0) return;
    entry.host.store.clear();
    entry.slot.release();
    this.drop(entry);
  }

  /** Stops sending an adopted slot's queue; what it holds stays stored. */
  private drop(entry: Adopted): void {
    entry.host.onDrain = undefined;
    entry.host.close();
    entry.slot.letGo();
    this.adopted = this.adopted.filter((a) => a !== entry);
  }

  private dropAdopted(): void {
    for (const entry of [...this.adopted]) this.drop(entry);
  }

  /**
   * The page goes (closed, reloaded, into the back/forward cache) or is frozen: what
   * qualified is closed and its upload started, and the slots are let go, so another tab
   * may adopt them and a held lock does not keep the page out of the back/forward cache.
   * `mayReturn`: the page is cached or frozen, not unloading.
   */
  private goAway(mayReturn: boolean): void {
    this.wantAway = true;
    this.awayMayReturn = mayReturn;
    if (this.closed) return;
    if (this.away) {
      // Frozen, then unloading: the slot may be adopted at once.
      if (!mayReturn) this.slot.letGo(false);
      return;
    }
    this.lifecycle(true);
    this.noteUnsent();
    this.away = true;
    // Nothing more is written to the slot until it is known to be this tab's again.
    this.host.pause();
    this.slot.letGo(mayReturn);
    this.dropAdopted();
  }

  /**
   * Shown again from the back/forward cache, or resumed from a freeze (a restored page gets
   * both `resume` and `pageshow`: the second waits for the first).
   */
  private comeBack(): Promise<void> {
    this.wantAway = false;
    this.returning ??= this.takeBack().finally(() => {
      this.returning = null;
    });
    return this.returning;
  }

  private async takeBack(): Promise<void> {
    if (this.closed || !this.away || this.wantAway || modulePoisoned()) return;
    const mine = await this.slot.reclaim();
    if (this.closed) {
      this.slot.release();
      return;
    }
    if (this.wantAway) {
      // Gone again while taking it back (a show after that starts over).
      this.slot.letGo(this.awayMayReturn);
      return;
    }
    this.away = false;
    if (mine) {
      noteUnsent(this.tabs, this.slot.id, 0);
      this.host.resume();
      this.lifecycle(documentHidden());
    } else {
      await this.moveSlot();
    }
  }

  /**
   * Another tab adopted this tab's slot (while the page was away, or its heartbeat stalled):
   * the slot and everything stored there are that tab's now, so this one starts a new slot
   * and a new session. Page views open before are gone; the page starts new ones.
   */
  private moveSlot(): Promise<void> {
    this.moving ??= this.startOver().finally(() => {
      this.moving = null;
    });
    return this.moving;
  }

  private async startOver(): Promise<void> {
    if (this.closed || modulePoisoned()) return;
    this.host.onDrain = undefined;
    this.host.close();
    this.slot.letGo();
    this.pageViewBase = this.lastPageView;
    this.report(
      new Error("sightline: another tab took over this tab's queue while the page was away or stalled; logging goes on in a new session, and the page views started before have ended"),
    );
    const slot = await claimSlot(this.tabs);
    if (this.closed) {
      slot.release();
      return;
    }
    this.slot = slot;
    try {
      this.host = this.open(slot);
    } catch (error) {
      // The settings were taken at start, so only a trap gets here: the SDK stays off.
      slot.release();
      this.report(error);
      return;
    }
    this.slotMoves += 1;
    // A new logger starts visible.
    this.hidden = false;
    if (this.wantAway && this.away) {
      this.host.pause();
      slot.letGo(this.awayMayReturn);
      return;
    }
    this.away = false;
    this.lifecycle(documentHidden());
  }

  /**
   * A host's failure: reported, and after a trap (the module is off for every logger) the
   * scan stops and every slot is let go, so other tabs send what this one cannot.
   */
  private failed(error: unknown): void {
    this.report(error);
    if (!modulePoisoned()) return;
    if (this.scan !== undefined) clearInterval(this.scan);
    this.scan = undefined;
    this.slot.release();
    this.dropAdopted();
  }

  /** Queues kept in memory (storage failed) are lost with the page: leave their counts. */
  private noteUnsent(): void {
    // After a trap the counts cannot be read; the notes already left stay.
    if (this.tabs.storage === null || modulePoisoned()) return;
    for (const { host, slot } of [{ host: this.host, slot: this.slot }, ...this.adopted]) {
      if (host.store.medium === 'memory') noteUnsent(this.tabs, slot.id, host.read(0, (l) => l.pending));
    }
  }

  /** Hidden (tab in the background, page going away) or shown again. */
  private lifecycle(hidden: boolean): void {
    if (this.closed || hidden === this.hidden) return;
    this.hidden = hidden;
    // Hiding closes the batch (the core's rule), so the upload starts before the page goes.
    if (hidden) this.host.input(undefined, (l, mono, wall) => l.app_hidden(mono, wall));
    else this.host.input(undefined, (l, mono, wall) => l.app_visible(mono, wall));
  }

  private listen(target: EventTarget, type: string, listener: EventListener): void {
    target.addEventListener(type, listener);
    this.listeners.push([target, type, listener]);
  }

  /** Tells the page's `onError`, never from inside an SDK call (it may call `close()`). */
  private report(error: unknown): void {
    const onError = this.options.onError;
    if (onError === undefined) return;
    queueMicrotask(() => {
      try {
        onError(error);
      } catch {
        // The page's handler threw: nothing reaches the page either way.
      }
    });
  }

  private paintRefusal(element: Element, rule: string | null): void {
    if (rule !== null) this.overlay?.show(element, 'refused', rule);
  }

  /** Paints what the core says became of tracked exposures. */
  private paint(): void {
    const overlay = this.overlay;
    const observer = this.observer;
    if (overlay === null || observer === null) return;
    for (;;) {
      const o = this.host.read(undefined, (l) => l.poll_outcome());
      if (o === undefined) return;
      const { page_view: local, item_id: itemId, row, column, result } = o;
      const pageView = local + this.pageViewBase;
      o.free();
      const decoded = outcome(result);
      for (const element of document.querySelectorAll('[data-sightline]')) {
        const p = observer.placement(element);
        if (p === undefined || p.pageView !== pageView || p.itemId !== itemId || p.row !== row || p.column !== column) {
          continue;
        }
        if (decoded.kind === 'accepted') overlay.show(element, 'logged');
        else if (decoded.kind === 'refused') overlay.show(element, 'refused', decoded.rule);
        else if (decoded.kind !== 'disabled' && decoded.kind !== 'unavailable') overlay.show(element, decoded.kind);
      }
    }
  }
}
