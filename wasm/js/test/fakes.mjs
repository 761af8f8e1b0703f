// Test doubles for what Node lacks: a Storage with a byte quota, a clock moved by hand.

/** `localStorage`'s interface over a Map; setItem throws like a browser beyond `quota`. */
export class FakeStorage {
  constructor(quota = Infinity) {
    this.map = new Map();
    this.quota = quota;
  }
  get length() {
    return this.map.size;
  }
  /** In lexicographic order, as Chromium lists them (j/10 before j/2). */
  key(i) {
    return [...this.map.keys()].sort()[i] ?? null;
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    const used = [...this.map].reduce((n, [key, value]) => n + (key === k ? 0 : key.length + value.length), 0);
    if (used + k.length + v.length > this.quota) {
      const e = new Error('quota');
      e.name = 'QuotaExceededError';
      throw e;
    }
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

export class FakeClock {
  constructor(mono = 0) {
    this.t = mono;
  }
  mono() {
    return this.t;
  }
  wall() {
    return 1_700_000_000_000 + this.t;
  }
}
