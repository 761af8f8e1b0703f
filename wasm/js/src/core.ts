// The core module: loading it, the configuration in its setting names, and the numbers its
// inputs return decoded into typed outcomes (the encoding is `wasm/src/outcome.rs`). No
// logging rule lives here.

import init, { Config, Logger, drop_names, initSync, rule_names } from './gen/sightline.js';
import type { InitInput } from './gen/sightline.js';

export { Config, Logger, Stored } from './gen/sightline.js';
export type { StoreOp, Upload } from './gen/sightline.js';

/** Where the module comes from: a URL, its bytes, or a compiled `WebAssembly.Module`. */
export type WasmSource = InitInput;

let loaded: Promise<void> | undefined;

/** Loads the module once per page; later calls share the first load. */
export function load(source?: WasmSource): Promise<void> {
  loaded ??= init(source === undefined ? undefined : { module_or_path: source }).then(() => {
    names();
  });
  return loaded;
}

/** Loads the module synchronously from its bytes or a compiled module (Node, workers). */
export function loadSync(module: BufferSource | WebAssembly.Module): void {
  if (loaded === undefined) {
    initSync({ module });
    loaded = Promise.resolve();
  }
}

let rules: string[] | undefined;
let drops: string[] | undefined;

/** The rule names by code and the drop reasons in stats order, read from the core once. */
export function names(): { rules: string[]; drops: string[] } {
  rules ??= rule_names();
  drops ??= drop_names();
  return { rules, drops };
}

/** How the platform is reported; TV web apps (Tizen, webOS) say `tv`. */
export type Platform = 'web' | 'tv' | 'android' | 'ios' | 'other';

/** The data contract the page logs under (the core's `Contract`). */
export interface ContractOptions {
  version?: number;
  /** An impression needs at least this percentage of the item visible... */
  minVisiblePct?: number;
  /** ...continuously for at least this long. */
  minVisibleMs?: number;
  maxVisibleMs?: number;
  maxIdLen?: number;
  maxPosition?: number;
  requireArtwork?: boolean;
  /** Page names the app may use; empty allows any well-formed name. */
  pages?: string[];
  /** Whether leaving an item and coming back is a new impression. */
  reentry?: 'once_per_page_view' | 'after_leaving';
}

/** The logger's configuration (the core's `Config`); absent settings take its defaults. */
export interface CoreOptions {
  appId: string;
  appVersion: string;
  /** The collector's key for this app. */
  appKey: string;
  platform?: Platform;
  /** Device model, not an identifier. */
  device?: string;
  installId?: string;
  sampleRatePpm?: number;
  sampleKey?: 'install' | 'session';
  maxBatchImpressions?: number;
  maxBatchAgeMs?: number;
  maxQueueBytes?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  maxAttempts?: number;
  contract?: ContractOptions;
}

const TEXT: Array<[keyof CoreOptions, string]> = [
  ['appId', 'app_id'],
  ['appVersion', 'app_version'],
  ['appKey', 'app_key'],
  ['platform', 'platform'],
  ['device', 'device'],
  ['installId', 'install_id'],
  ['sampleKey', 'sample_key'],
];
const NUMBER: Array<[keyof CoreOptions, string]> = [
  ['sampleRatePpm', 'sample_rate_ppm'],
  ['maxBatchImpressions', 'max_batch_impressions'],
  ['maxBatchAgeMs', 'max_batch_age_ms'],
  ['maxQueueBytes', 'max_queue_bytes'],
  ['retryBaseMs', 'retry_base_ms'],
  ['retryMaxMs', 'retry_max_ms'],
  ['maxAttempts', 'max_attempts'],
];
const CONTRACT_NUMBER: Array<[keyof ContractOptions, string]> = [
  ['version', 'version'],
  ['minVisiblePct', 'min_visible_pct'],
  ['minVisibleMs', 'min_visible_ms'],
  ['maxVisibleMs', 'max_visible_ms'],
  ['maxIdLen', 'max_id_len'],
  ['maxPosition', 'max_position'],
];

/** A seed from the platform's entropy, never 0 (the core refuses 0). */
export function entropySeed(): bigint {
  const words = new BigUint64Array(1);
  do {
    crypto.getRandomValues(words);
  } while (words[0] === 0n);
  return words[0] as bigint;
}

/** What `configure` fills: the SDK's `Config`, or the kit module's. */
export interface ConfigSetters {
  set_text(name: string, value: string): void;
  set_number(name: string, value: number): void;
  set_seed(seed: bigint): void;
  set_require_artwork(value: boolean): void;
  set_pages(pages: string[]): void;
}

/** The core's `Config` for `options`, with a fresh seed. Throws naming a bad setting. */
export function coreConfig(options: CoreOptions, seed: bigint = entropySeed()): Config {
  return configure(new Config(), options, seed);
}

/** Sets every setting of `options` on `config`. */
export function configure<C extends ConfigSetters>(config: C, options: CoreOptions, seed: bigint): C {
  config.set_text('platform', 'web');
  for (const [key, name] of TEXT) {
    const value = options[key];
    if (value !== undefined) config.set_text(name, String(value));
  }
  for (const [key, name] of NUMBER) {
    const value = options[key];
    if (value !== undefined) config.set_number(name, Number(value));
  }
  const contract = options.contract ?? {};
  for (const [key, name] of CONTRACT_NUMBER) {
    const value = contract[key];
    if (value !== undefined) config.set_number(`contract.${name}`, Number(value));
  }
  if (contract.requireArtwork !== undefined) config.set_require_artwork(contract.requireArtwork);
  if (contract.pages !== undefined) config.set_pages(contract.pages);
  if (contract.reentry !== undefined) config.set_text('contract.reentry', contract.reentry);
  config.set_seed(seed);
  return config;
}

/** The contract's threshold as a fraction, for the IntersectionObserver. */
export function threshold(options: CoreOptions): number {
  return (options.contract?.minVisiblePct ?? 50) / 100;
}

// Mirrors of `wasm/src/outcome.rs`.
const SAMPLED_OUT = -1;
const DEDUPED = -2;
const DISABLED = -3;
const REFUSED = -16;

/**
 * What an input returns when no core took it: the SDK was closed, or a trap turned it off.
 * Not a number the module returns.
 */
export const UNAVAILABLE = Number.NaN;

/** The name `refusal` gives to inputs no core took (`UNAVAILABLE`). */
export const UNAVAILABLE_RULE = 'unavailable';

/**
 * What happened to an input: `unavailable` when no core took it (the SDK was closed, or a
 * trap turned it off).
 */
export type Outcome =
  | { kind: 'accepted'; value: number }
  | { kind: 'sampled_out' | 'deduped' | 'disabled' | 'unavailable' }
  | { kind: 'refused'; rule: string };

/** Decodes an input's return value. */
export function outcome(value: number): Outcome {
  if (Number.isNaN(value)) return { kind: 'unavailable' };
  if (value >= 0) return { kind: 'accepted', value };
  if (value <= REFUSED) return { kind: 'refused', rule: names().rules[REFUSED - value] ?? 'unknown' };
  if (value === SAMPLED_OUT) return { kind: 'sampled_out' };
  if (value === DEDUPED) return { kind: 'deduped' };
  if (value === DISABLED) return { kind: 'disabled' };
  throw new Error(`sightline: unknown outcome ${value}`);
}

/** The rule that refused an input (`'unavailable'` when no core took it), or null. */
export function refusal(value: number): string | null {
  if (Number.isNaN(value)) return UNAVAILABLE_RULE;
  return value <= REFUSED ? (names().rules[REFUSED - value] ?? 'unknown') : null;
}

/** The logger's counters (the core's `Stats`), with only non-zero per-reason counts. */
export interface CoreStats {
  recorded: number;
  sampled_out: number;
  deduped: number;
  issued: number;
  delivered: number;
  invalid: number;
  uploads: number;
  retries: number;
  bytes_delivered: number;
  store_errors: number;
  corrupt_records: number;
  dropped: Record<string, number>;
  invalid_by_rule: Record<string, number>;
}

const COUNTERS = [
  'recorded',
  'sampled_out',
  'deduped',
  'issued',
  'delivered',
  'invalid',
  'uploads',
  'retries',
  'bytes_delivered',
  'store_errors',
  'corrupt_records',
] as const;

/** Counters before any were read: every one 0. */
export function zeroStats(): CoreStats {
  const out = { dropped: {}, invalid_by_rule: {} } as CoreStats;
  for (const name of COUNTERS) out[name] = 0;
  return out;
}

/** Decodes `Logger.stats()`. */
export function coreStats(logger: Logger): CoreStats {
  const values = logger.stats();
  const { rules, drops } = names();
  const out = zeroStats();
  let i = 0;
  for (const name of COUNTERS) out[name] = values[i++] ?? 0;
  for (const [list, into] of [
    [drops, out.dropped],
    [rules, out.invalid_by_rule],
  ] as const) {
    for (const name of list) {
      const n = values[i++] ?? 0;
      if (n !== 0) into[name] = n;
    }
  }
  return out;
}
