// The slot window's TypeScript twin: the leader's in-flight slots [prefix, prefix + capacity),
// each with an ack bitset over member indexes 0..31 and a chosen mark. Slots may be chosen out
// of order (holes); the prefix moves past every chosen slot at its front.

import assert from 'node:assert/strict';
import type { SlotWindow } from '../types.js';
import { MEMBER_MAX } from '../layout.js';

export const popcount32 = (x: number): number => {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
};

/** A `required` bitset for reset(): a u32 with no more members than the quorum (else no slot could be chosen). */
export const assertRequired = (required: number, quorum: number): void => {
  if (!(Number.isInteger(required) && required >= 0 && required <= 0xffffffff && popcount32(required) <= quorum)) {
    assert.fail(`required members ${required} are not a u32 bitset of at most quorum ${quorum} members`);
  }
};

export class JsSlotWindow implements SlotWindow {
  /** Ack bitset of slot s at acked[s % capacity], for prefix <= s < prefix + capacity. */
  private readonly acked: Uint32Array;
  /** 1 if slot s (same indexing) is chosen. Invariant: chosen[prefix % capacity] === 0. */
  private readonly chosen: Uint8Array;
  /** Slots chosen by the last ack(), in the order they became chosen. */
  readonly newlyChosen: Float64Array;
  /** The first slot not chosen. Invariant: every slot below it is chosen; never decreases until reset. */
  private first = 1;
  /** Acks that choose a slot. Invariant: 1 <= quorum <= 32. */
  private quorum = 1;
  /** Members (bit each) whose ack a slot needs to be chosen. Invariant: popcount(required) <= quorum. */
  private required = 0;
  /** Chosen slots at or above the prefix. Invariant: < capacity. */
  private above = 0;

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1 && capacity <= 1 << 20)) assert.fail(`capacity ${capacity} out of range`);
    this.acked = new Uint32Array(capacity);
    this.chosen = new Uint8Array(capacity);
    this.newlyChosen = new Float64Array(capacity);
  }

  get prefix(): number { return this.first; }
  get chosenAbove(): number { return this.above; }

  reset(prefix: number, quorum: number, required: number): void {
    if (!(Number.isSafeInteger(prefix) && prefix >= 0)) assert.fail(`prefix ${prefix} must be a safe integer`);
    if (!(Number.isInteger(quorum) && quorum >= 1 && quorum <= MEMBER_MAX + 1)) assert.fail(`quorum ${quorum} out of range`);
    assertRequired(required, quorum);
    this.required = required;
    this.acked.fill(0);
    this.chosen.fill(0);
    this.first = prefix;
    this.quorum = quorum;
    this.above = 0;
  }

  private assertInWindow(slot: number): void {
    if (!(Number.isSafeInteger(slot) && slot >= 0)) assert.fail(`slot ${slot} must be a safe integer`);
    if (!(slot < this.first + this.capacity)) assert.fail(`slot ${slot} beyond the window [${this.first}, ${this.first + this.capacity})`);
  }

  ack(member: number, firstSlot: number, count: number): number {
    if (!(Number.isInteger(member) && member >= 0 && member <= MEMBER_MAX)) assert.fail(`member ${member} out of range`);
    if (!(Number.isSafeInteger(count) && count >= 0)) assert.fail(`count ${count} must be >= 0`);
    if (count === 0) return 0;
    this.assertInWindow(firstSlot + count - 1);
    const bit = 1 << member;
    let n = 0;
    for (let s = Math.max(firstSlot, this.first); s < firstSlot + count; s++) {
      const i = s % this.capacity;
      this.acked[i] |= bit;
      if (this.chosen[i] === 0 && popcount32(this.acked[i]) >= this.quorum && (this.acked[i] & this.required) === this.required) {
        this.chosen[i] = 1;
        this.above++;
        this.newlyChosen[n++] = s;
      }
    }
    this.advance();
    return n;
  }

  markChosen(slot: number): void {
    if (slot < this.first) return;
    this.assertInWindow(slot);
    const i = slot % this.capacity;
    if (this.chosen[i] === 0) {
      this.chosen[i] = 1;
      this.above++;
      this.advance();
    }
  }

  isChosen(slot: number): boolean {
    if (slot < this.first) return true;
    if (slot >= this.first + this.capacity) return false;
    return this.chosen[slot % this.capacity] === 1;
  }

  ackers(slot: number): number {
    if (slot < this.first || slot >= this.first + this.capacity) return 0;
    return this.acked[slot % this.capacity];
  }

  /** Move the prefix past chosen slots at the front, freeing their places for slots above. */
  private advance(): void {
    while (this.chosen[this.first % this.capacity] === 1) {
      const i = this.first % this.capacity;
      this.chosen[i] = 0;
      this.acked[i] = 0;
      this.above--;
      this.first++;
    }
  }
}
