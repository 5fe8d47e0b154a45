// Seeded random inputs for the kernels' property tests and fuzzers (and for anyone who wants
// random peer messages, such as the simulator). Deterministic: one seed, one sequence.

import type { Message } from '../protocol/messages.js';
import { EntryKind, SHAPES } from './layout.js';

/** mulberry32: a small, fast 32-bit PRNG; good enough for test inputs, never for secrets. */
export class TestRng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  /** A uniform u32. */
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A uniform integer in [lo, hi), hi - lo <= 2^32. */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 0x100000000) * (hi - lo));
  }
  bool(): boolean {
    return (this.u32() & 1) === 1;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)];
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
  /** A non-negative safe integer, biased towards small values and the edges of u32 and 2^53. */
  safeInt(): number {
    switch (this.int(0, 6)) {
      case 0: return this.int(0, 4);
      case 1: return this.int(0, 1 << 16);
      case 2: return this.pick([0xffffffff, 0x100000000, 0x100000001, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1]);
      case 3: return this.int(0, 0x200000) * 0x100000000 + this.u32();
      default: return this.u32();
    }
  }
}

/** The message types the codec knows. */
export const MESSAGE_TYPES: readonly number[] = SHAPES.flatMap((s, t) => (s === undefined ? [] : [t]));

/** A random, valid message of a random (or the given) type, with 0..entriesMax entries of 0..valueBytesMax bytes. */
export const randomMessage = (rng: TestRng, type = rng.pick(MESSAGE_TYPES), entriesMax = 4, valueBytesMax = 64): Message => {
  const s = SHAPES[type]!;
  const m: Record<string, unknown> = { type, from: rng.int(0, 0x10000), to: rng.int(0, 0x10000) };
  for (const f of [s.ballot, s.a, s.b, s.c]) if (f !== null) m[f] = rng.safeInt();
  for (const f of s.flags) m[f] = rng.bool();
  const n = s.entries === EntryKind.None ? 0 : rng.int(0, entriesMax + 1);
  const value = (): Uint8Array => rng.bytes(rng.int(0, valueBytesMax + 1));
  if (s.entries === EntryKind.Slot) m.entries = Array.from({ length: n }, () => ({ slot: rng.safeInt(), ballot: rng.safeInt(), value: value() }));
  if (s.entries === EntryKind.Raft) m.entries = Array.from({ length: n }, () => ({ index: rng.safeInt(), term: rng.safeInt(), value: value() }));
  if (s.entries === EntryKind.Value) m.values = Array.from({ length: n }, value);
  return m as unknown as Message;
};
