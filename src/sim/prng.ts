// The one source of randomness for the simulator and the cores it drives: a small, fast,
// seedable PRNG (xoshiro128** seeded by splitmix32), so one seed replays a whole cluster.

import assert from 'node:assert/strict';
import type { Rng } from '../protocol/types.js';

const splitmix32 = (state: { x: number }): number => {
  state.x = (state.x + 0x9e3779b9) | 0;
  let z = state.x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
};

export class Prng implements Rng {
  /** The four words of xoshiro128** state. Invariant: not all zero. */
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    assert.ok(Number.isSafeInteger(seed), `seed ${seed} must be a safe integer`);
    // Mix both halves of the seed so seeds above 2^32 differ too.
    const s = { x: (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x100000000) | 0, 0x27d4eb2d) };
    this.a = splitmix32(s);
    this.b = splitmix32(s);
    this.c = splitmix32(s);
    this.d = splitmix32(s) | 1;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  next(): number {
    return this.u32() / 0x100000000;
  }

  int(lo: number, hi: number): number {
    assert.ok(Number.isSafeInteger(lo) && Number.isSafeInteger(hi) && hi > lo, `bad range [${lo}, ${hi})`);
    return lo + Math.floor(this.next() * (hi - lo));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  /** A child generator whose stream is independent of this one's later draws. */
  fork(): Prng {
    return new Prng(this.u32() * 0x10000 + (this.u32() & 0xffff));
  }
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));
