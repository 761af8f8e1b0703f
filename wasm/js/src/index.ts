// @sightline/web: impression logging for web pages on Sightline's shared core. The core
// (WebAssembly) owns every rule; this runtime is the browser glue: it measures visibility
// (IntersectionObserver), follows the page lifecycle, stores the queue (localStorage),
// uploads (fetch), shares one origin between tabs and paints the debug overlay.

import { Logger, coreConfig, load, outcome, refusal, threshold } from './core.js';
import type { CoreOptions, CoreStats, Outcome, WasmSource } from './core.js';
import { Host, browserClock } from './host.js';
import type { Clock, HostStats } from './host.js';
import { Observer } from './observe.js';
import type { Placement } from './observe.js';
import { Overlay } from './overlay.js';
import { SlotStore, localStorageOrNull } from './store.js';
import type { Medium } from './store.js';
import { claimSlot, orphans } from './tabs.js';
import type { Release } from './tabs.js';
import { fetchTransport } from './transport.js';
import type { Transport } from './transport.js';

export type { ContractOptions, CoreOptions, CoreStats, Outcome, Platform, WasmSource } from './core.js';
export type { Placement } from './observe.js';
export type { Answer, Transport } from './transport.js';
export type { Clock } from './host.js';

export interface Options extends CoreOptions {
  /** The collector's base URL; uploads go to `<endpoint>/v1/batches`. */
  endpoint: string;
  /** Prefix of every key the SDK stores (localStorage, sessionStorage, Web Locks). */
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
  /** How often to look for queues of closed tabs (default `ADOPT_SCAN_MS`). */
  adoptScanMs?: number;
  /** Told about failures the SDK absorbed (a storage fallback, a trapped module). */
  onError?: (error: unknown) => void;
}

/** A page view: its id for `observe` and impressions, or the rule that refused it (id 0). */
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

/** The core's counters and the runtime's. */
export interface Stats extends CoreStats, HostStats {
  session_id: string;
  /** Where the queue is kept: `'memory'` after storage failed or was blocked. */
  storage: Medium;
  storage_fallbacks: number;
  /** Elements observed now. */
  observed: number;
  /** Slots of closed tabs this tab took over, and how many of them still have data. */
  adopted: number;
  adopting: number;
}

const DEFAULT_NAMESPACE = 'sightline';

/**
 * How often a tab looks again for slots of tabs that closed with data unsent: a tab open
 * all day sends them without waiting for another tab to start.
 */
export const ADOPT_SCAN_MS = 30_000;

/** Starts logging: loads the core, claims this tab's slot, resumes its queue. */
export async function start(options: Options): Promise<Sightline> {
  await load(options.wasm);
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const storage = options.storage === 'memory' ? null : localStorageOrNull();
  const slot = await claimSlot(namespace);
  const sdk = new Sightline(options, namespace, storage, slot.id, slot.release);
  if (storage !== null) sdk.watchOrphans(storage);
  return sdk;
}

/** One slot's logger and store (this tab's own, or one adopted from a closed tab). */
function openSlot(
  options: Options,
  store: SlotStore,
  clock: Clock,
  onTrap: (error: unknown) => void,
): Host {
  const config = coreConfig(options);
  const logger = Logger.resume(config, store.stored(), clock.mono(), clock.wall());
  const host = new Host(logger, store, options.endpoint, options.transport ?? fetchTransport, clock, onTrap);
  host.drain();
  return host;
}

export class Sightline {
  private host: Host;
  private observer: Observer | null = null;
  private overlay: Overlay | null = null;
  private adopted: Array<{ host: Host; release: Release }> = [];
  private adoptedTotal = 0;
  private hidden = false;
  private closed = false;
  private scan: ReturnType<typeof setInterval> | undefined;
  private scanning = false;
  private readonly clock: Clock;
  private readonly listeners: Array<[EventTarget, string, EventListener]> = [];

  /** Use `start()`. */
  constructor(
    private readonly options: Options,
    private readonly namespace: string,
    storage: Storage | null,
    readonly slot: string,
    private readonly release: Release,
  ) {
    this.clock = options.clock ?? browserClock;
    const store = new SlotStore(storage, `${namespace}/${slot}/`);
    if (storage === null && options.storage !== 'memory') store.blocked();
    if (store.fallbacks > 0) this.report(new Error(`sightline: storage unavailable (${store.fallbackReason})`));
    this.host = openSlot(options, store, this.clock, (e) => this.report(e));
    if (options.debug === true) {
      this.overlay = new Overlay();
      this.host.read(undefined, (l) => l.report_outcomes(true));
      this.host.onDrain = () => this.paint();
    }
    if (typeof document !== 'undefined') {
      this.listen(document, 'visibilitychange', () => this.lifecycle(document.visibilityState === 'hidden'));
      this.lifecycle(document.visibilityState === 'hidden');
    }
    if (typeof window !== 'undefined') {
      this.listen(window, 'pagehide', () => this.lifecycle(true));
      this.listen(window, 'pageshow', () => this.lifecycle(document.visibilityState === 'hidden'));
      this.listen(document, 'freeze', () => this.lifecycle(true));
      this.listen(document, 'resume', () => this.lifecycle(document.visibilityState === 'hidden'));
    }
  }

  get sessionId(): string {
    return this.host.read('', (l) => l.session_id);
  }

  /** Starts a page view; `layout` is the rows of item ids the server sent. */
  startPageView(page: string, options: { requestId?: string; layout?: string[][] } = {}): PageView {
    const layout = options.layout;
    const value = this.host.input(0, (l, mono, wall) =>
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
    this.observer?.forgetPageView(id);
    return refusal(this.host.input(0, (l, mono, wall) => l.end_page_view(id, mono, wall)));
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
      this.host.input(0, (l, mono, wall) =>
        l.visibility(p.pageView, p.itemId, p.artworkId ?? null, p.row, p.column, fraction, mono, wall),
      ),
    );
  }

  /** Reports focus moving onto (or off) an item: TV remotes, keyboard navigation. */
  focus(placement: Placement, focused: boolean): string | null {
    const p = placement;
    return refusal(
      this.host.input(0, (l, mono, wall) =>
        l.focus(p.pageView, p.itemId, p.artworkId ?? null, p.row, p.column, focused, mono, wall),
      ),
    );
  }

  /** Records an impression the page qualified itself. */
  recordImpression(pageView: PageView | number, imp: ImpressionInput): Outcome {
    const id = typeof pageView === 'number' ? pageView : pageView.id;
    return outcome(
      this.host.input(-3, (l, mono, wall) =>
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

  stats(): Stats | null {
    const core = this.host.stats();
    if (core === null) return null;
    const store = this.host.store;
    return {
      ...core,
      ...this.host.counters,
      session_id: this.sessionId,
      storage: store.medium,
      storage_fallbacks: store.fallbacks,
      observed: this.observer?.size ?? 0,
      adopted: this.adoptedTotal,
      adopting: this.adopted.length,
    };
  }

  /** Stops the SDK (SPA teardown): what qualified is logged and sent, listeners removed. */
  close(): void {
    if (this.closed) return;
    this.lifecycle(true);
    this.closed = true;
    this.observer?.disconnect();
    this.overlay?.remove();
    for (const [target, type, listener] of this.listeners) target.removeEventListener(type, listener);
    if (this.scan !== undefined) clearInterval(this.scan);
    this.host.close();
    for (const a of this.adopted) a.host.close();
    this.release();
  }

  /** Adopts closed tabs' slots now and every `ADOPT_SCAN_MS`. */
  watchOrphans(storage: Storage): void {
    const look = () => {
      if (this.scanning || this.closed) return;
      this.scanning = true;
      void this.adoptOrphans(storage).finally(() => {
        this.scanning = false;
      });
    };
    look();
    this.scan = setInterval(look, this.options.adoptScanMs ?? ADOPT_SCAN_MS);
  }

  /** Takes over the slots of tabs that closed with data unsent, and sends their queues. */
  async adoptOrphans(storage: Storage): Promise<void> {
    for (const orphan of await orphans(storage, this.namespace, this.slot)) {
      const store = new SlotStore(storage, `${this.namespace}/${orphan.id}/`);
      // Closed while looking: the slot stays as it is for the next tab.
      if (this.closed) {
        orphan.release();
        continue;
      }
      if (store.empty) {
        store.clear();
        orphan.release();
        continue;
      }
      let host: Host;
      try {
        host = openSlot(this.options, store, this.clock, (e) => this.report(e));
      } catch (error) {
        // A slot written under another configuration is left for a page that can read it.
        orphan.release();
        this.report(error);
        continue;
      }
      const entry = { host, release: orphan.release };
      this.adopted.push(entry);
      this.adoptedTotal += 1;
      host.onDrain = () => this.settle(entry);
      host.input(undefined, (l, mono, wall) => l.flush(mono, wall));
    }
  }

  /** An adopted slot with nothing left to send is removed. */
  private settle(entry: { host: Host; release: Release }): void {
    const pending = entry.host.read(-1, (l) => l.pending);
    if (pending !== 0) return;
    entry.host.onDrain = undefined;
    entry.host.close();
    entry.host.store.clear();
    entry.release();
    this.adopted = this.adopted.filter((a) => a !== entry);
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
    this.options.onError?.(error);
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
        else if (decoded.kind !== 'disabled') overlay.show(element, decoded.kind);
      }
    }
  }
}
