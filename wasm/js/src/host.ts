// The host run loop around one core logger (ARCHITECTURE.md, "The host run loop"): after
// every input, perform the store operations one at a time, start the upload the core
// offers, and arm one timer for the core's next deadline. Time is passed in: monotonic
// milliseconds from `performance.now()`, wall clock from `Date.now()`.
//
// A trap in the module (a bug: the core panicked) is caught here: the module is poisoned
// for every logger in it (its memory may be inconsistent), the failure counted and
// reported, and every later call does nothing. Nothing is thrown at the page.

import { Logger, coreStats } from './core.js';
import type { CoreStats } from './core.js';
import type { SlotStore } from './store.js';
import { request } from './transport.js';
import type { Answer, Transport } from './transport.js';

export interface Clock {
  mono(): number;
  wall(): number;
}

export const browserClock: Clock = {
  mono: () => performance.now(),
  wall: () => Date.now(),
};

/** Set by the first trap: no logger of this module is called again. */
let poisoned = false;

/** Whether a trap poisoned the module. */
export function modulePoisoned(): boolean {
  return poisoned;
}

/** What a host's logger is doing: `'trapped'` after a trap in any logger of the module. */
export type HostState = 'running' | 'closed' | 'trapped';

/** The counters of the glue itself, beside the core's. */
export interface HostStats {
  /** Calls that trapped in the module; after one the module is off. */
  traps: number;
  /** Inputs the module's glue threw for before the core saw them (a Symbol or BigInt
   * where a number or string goes); the SDK goes on. */
  input_errors: number;
  /** Upload answers the core did not expect (none in a correct host). */
  unexpected_results: number;
}

export class Host {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = -1;
  private inFlight = false;
  private draining = false;
  private closed = false;
  /** Paused: store operations and uploads wait (the slot may not be this tab's). */
  private paused = false;
  /** The core's counters as last read: what `stats()` gives once the logger is gone. */
  private last: CoreStats | null = null;
  readonly counters: HostStats = { traps: 0, input_errors: 0, unexpected_results: 0 };
  /** Called after every drain: the page paints the overlay, adopted slots settle. */
  onDrain: (() => void) | undefined;
  /**
   * Asked before anything is written: whether the slot is still this tab's. When it is
   * not, the host pauses for good and `onLost` is told.
   */
  owned: () => boolean = () => true;
  onLost: (() => void) | undefined;

  constructor(
    private logger: Logger | null,
    readonly store: SlotStore,
    private endpoint: string,
    private transport: Transport,
    readonly clock: Clock,
    private onError: (error: unknown) => void,
  ) {}

  /** Whether the logger is still usable. */
  get alive(): boolean {
    return this.logger !== null && !this.closed && !poisoned;
  }

  /** Whether an upload is waiting for its answer. */
  get uploading(): boolean {
    return this.inFlight;
  }

  get state(): HostState {
    if (poisoned) return 'trapped';
    return this.alive ? 'running' : 'closed';
  }

  /**
   * Runs one input against the logger, then drains. Returns the input's value, or
   * `fallback` when the logger is gone or trapped.
   */
  input<T>(fallback: T, f: (logger: Logger, mono: number, wall: number) => T): T {
    const logger = this.logger;
    if (logger === null || this.closed || poisoned) return fallback;
    // Checked first: an input the core took would be lost unstored on a slot not this tab's.
    if (!this.paused && !this.owned()) {
      this.paused = true;
      this.onLost?.();
      return fallback;
    }
    let value = fallback;
    try {
      value = f(logger, this.clock.mono(), this.clock.wall());
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) {
        this.trap(error);
      } else {
        this.counters.input_errors += 1;
        this.tell(error);
      }
      return fallback;
    }
    this.drain();
    return value;
  }

  /** Reads from the logger without an input (no drain). */
  read<T>(fallback: T, f: (logger: Logger) => T): T {
    const logger = this.logger;
    if (logger === null || poisoned) return fallback;
    try {
      return f(logger);
    } catch (error) {
      this.trap(error);
      return fallback;
    }
  }

  /** The core's counters; once the logger is closed or trapped, the last ones read. */
  stats(): CoreStats | null {
    this.last = this.read(this.last, coreStats);
    return this.last;
  }

  /** Store operations, then the upload the core offers, then the timer. */
  drain(): void {
    const logger = this.logger;
    if (logger === null || this.draining || this.paused || poisoned) return;
    if (!this.owned()) {
      this.paused = true;
      this.onLost?.();
      return;
    }
    this.draining = true;
    try {
      // The logger is re-read each turn: nothing called here may free it, but a page's
      // handler run by mistake could, and a freed logger must not be called.
      while (this.logger === logger) {
        const op = logger.poll_store_op();
        if (op === undefined) break;
        const id = op.id;
        const result = this.store.apply(op);
        op.free();
        logger.store_result(id, result.ok, result.quota);
      }
      if (this.logger !== logger) {
        this.draining = false;
        return;
      }
      if (!this.inFlight && !this.closed) {
        const upload = logger.poll_upload(this.clock.mono(), this.clock.wall());
        if (upload !== undefined) {
          const id = upload.id;
          const { url, init, done } = request(this.endpoint, upload);
          upload.free();
          this.inFlight = true;
          // A transport that throws or rejects is a request without an answer.
          const failed = (): Answer => ({ status: 0, retryAfter: null });
          void Promise.resolve()
            .then(() => this.transport(url, init))
            .then((answer) => answer, failed)
            .then((answer) => {
              done();
              this.inFlight = false;
              const ok = this.input(true, (l, mono, wall) =>
                l.upload_result(id, answer.status, answer.retryAfter, mono, wall),
              );
              if (!ok) this.counters.unexpected_results += 1;
            });
        }
      }
      this.arm(logger.poll_timeout());
    } catch (error) {
      this.draining = false;
      this.trap(error);
      return;
    }
    this.draining = false;
    this.onDrain?.();
  }

  private arm(deadline: number): void {
    if (deadline === this.timerAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = deadline;
    if (deadline < 0 || this.closed) return;
    const delay = Math.max(0, deadline - this.clock.mono());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = -1;
      this.input(undefined, (l, mono, wall) => l.handle_timeout(mono, wall));
    }, delay);
  }

  /** Holds store operations and uploads back until `resume`; inputs still reach the core. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.drain();
  }

  /** Stops timers and frees the logger; what is stored stays for the next page. */
  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.stats();
    this.closed = true;
    const logger = this.logger;
    this.logger = null;
    if (logger !== null) {
      // An answer still in flight finds no logger and is dropped: the batch stays stored.
      try {
        logger.free();
      } catch {
        // A trapped module cannot free; the page is done with it either way.
      }
    }
  }

  private trap(error: unknown): void {
    poisoned = true;
    this.counters.traps += 1;
    this.logger = null;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.tell(error);
  }

  private tell(error: unknown): void {
    try {
      this.onError(error);
    } catch {
      // The page's error handler threw; nothing reaches the page either way.
    }
  }
}
