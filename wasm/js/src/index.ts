// @sightline/web: impression logging for web pages on Sightline's shared core. The core
// (WebAssembly) owns every rule; this runtime is the browser glue: it measures visibility
// (IntersectionObserver), follows the page lifecycle, stores the queue (localStorage),
// uploads (fetch), shares one origin between tabs and paints the debug overlay.

import { Logger, UNAVAILABLE, coreConfig, load, outcome, refusal, threshold, zeroStats } from './core.js';
import type { CoreOptions, CoreStats, Outcome, WasmSource } from './core.js';
import { Host, browserClock } from './host.js';
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
export type { Clock, HostState } from './host.js';
export { HEARTBEAT_MS, STALE_MS } from './tabs.js';

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
  const clock = options.clock ?? browserClock;
  const tabs: Tabs = {
    namespace: options.namespace ?? `sightline:${options.appId}`,
    storage: options.storage === 'memory' ? null : localStorageOrNull(),
    wall: () => clock.wall(),
  };
  const slot = await claimSlot(tabs);
  return new Sightline(options, tabs, slot, scanMs, clock);
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
  private returning: Promise<void> | null = null;
  private scan: ReturnType<typeof setInterval> | undefined;
  private scanning = false;
  private lastSession = '';
  private readonly listeners: Array<[EventTarget, string, EventListener]> = [];

  /** Use `start()`. */
  constructor(
    private readonly options: Options,
    private readonly tabs: Tabs,
    private slot: Slot,
    scanMs: number,
    private readonly clock: Clock,
  ) {
    this.unsent = takeUnsent(tabs);
    if (this.unsent > 0) {
      this.report(new Error(`sightline: ${this.unsent} impressions of closed pages were kept only in memory and may be lost`));
    }
    this.host = this.open(slot);
    if (typeof document !== 'undefined') {
      this.listen(document, 'visibilitychange', () => this.lifecycle(documentHidden()));
      this.lifecycle(documentHidden());
      this.listen(document, 'freeze', () => this.goAway());
      this.listen(document, 'resume', () => void this.comeBack());
    }
    if (typeof window !== 'undefined') {
      this.listen(window, 'pagehide', () => this.goAway());
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
    const host = openSlot(this.options, store, this.clock, (e) => this.report(e));
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
    return { id: rule === null ? value : 0, refused: rule };
  }

  /** Ends a page view: what qualified is logged, its elements stop being tracked. */
  endPageView(pageView: PageView | number): string | null {
    const id = typeof pageView === 'number' ? pageView : pageView.id;
    // The overlay paints what the end logged while the elements are still known.
    const rule = refusal(this.host.input(UNAVAILABLE, (l, mono, wall) => l.end_page_view(id, mono, wall)));
    this.observer?.forgetPageView(id);
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
    return refusal(
      this.host.input(UNAVAILABLE, (l, mono, wall) =>
        l.visibility(p.pageView, p.itemId, p.artworkId ?? null, p.row, p.column, fraction, mono, wall),
      ),
    );
  }

  /** Reports focus moving onto (or off) an item: TV remotes, keyboard navigation. */
  focus(placement: Placement, focused: boolean): string | null {
    const p = placement;
    return refusal(
      this.host.input(UNAVAILABLE, (l, mono, wall) =>
        l.focus(p.pageView, p.itemId, p.artworkId ?? null, p.row, p.column, focused, mono, wall),
      ),
    );
  }

  /** Records an impression the page qualified itself. */
  recordImpression(pageView: PageView | number, imp: ImpressionInput): Outcome {
    const id = typeof pageView === 'number' ? pageView : pageView.id;
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
      for (const slot of await orphans(this.tabs, this.slot.id)) this.adopt(slot);
    } finally {
      this.scanning = false;
    }
  }

  private adopt(slot: Slot): void {
    const store = new SlotStore(this.tabs.storage, `${this.tabs.namespace}/${slot.id}/`);
    // Closed or gone away while looking: the slot stays as it is for the next tab.
    if (this.closed || this.away) {
      slot.letGo();
      return;
    }
    if (store.empty) {
      store.clear();
      slot.release();
      return;
    }
    let host: Host;
    try {
      host = openSlot(this.options, store, this.clock, (e) => this.report(e));
    } catch (error) {
      // A slot written under another configuration is left for a page that can read it.
      slot.letGo();
      this.report(error);
      return;
    }
    const entry = { host, slot };
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
   */
  private goAway(): void {
    if (this.closed || this.away) return;
    this.lifecycle(true);
    this.noteUnsent();
    this.away = true;
    // Nothing more is written to the slot until it is known to be this tab's again.
    this.host.pause();
    this.slot.letGo();
    this.dropAdopted();
  }

  /**
   * Shown again from the back/forward cache, or resumed from a freeze (a restored page gets
   * both `resume` and `pageshow`: the second waits for the first).
   */
  private comeBack(): Promise<void> {
    this.returning ??= this.takeBack().finally(() => {
      this.returning = null;
    });
    return this.returning;
  }

  private async takeBack(): Promise<void> {
    if (this.closed || !this.away) return;
    const mine = await this.slot.reclaim();
    if (this.closed) return;
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
  private async moveSlot(): Promise<void> {
    this.host.onDrain = undefined;
    this.host.close();
    this.slot.letGo();
    const slot = await claimSlot(this.tabs);
    if (this.closed) {
      slot.release();
      return;
    }
    this.slot = slot;
    this.host = this.open(slot);
    // A new logger starts visible.
    this.hidden = false;
    this.lifecycle(documentHidden());
  }

  /** A queue kept in memory (storage failed) is lost with the page: leave its count. */
  private noteUnsent(): void {
    if (this.host.store.medium === 'memory' && this.tabs.storage !== null) {
      noteUnsent(this.tabs, this.slot.id, this.host.read(0, (l) => l.pending));
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

  private report(error: unknown): void {
    try {
      this.options.onError?.(error);
    } catch {
      // The page's handler threw: nothing reaches the page either way.
    }
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
      const { page_view: pageView, item_id: itemId, row, column, result } = o;
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
