// The batcher's TypeScript twin: a bounded FIFO of client commands, cut into one encoded batch
// (count u32 | (length u32 | bytes)*) by count and by encoded bytes.

import assert from 'node:assert/strict';
import type { Batcher } from '../types.js';
import { encodeBatch } from './codec.js';
import { BATCHER_COUNT_MAX, copyBytes } from '../layout.js';

/** Encoded bytes of a batch holding commands of these payload sizes: 4 + sum(4 + size). */
export const batchBytes = (count: number, payloadBytes: number): number => 4 + 4 * count + payloadBytes;

export class JsBatcher implements Batcher {
  /** Pending commands; the oldest is at `head`. Invariant: queue.length - head === count <= countMax. */
  private queue: Uint8Array[] = [];
  private head = 0;
  /** Payload bytes of the pending commands. Invariant: bytes <= bytesMax. */
  private pendingBytes = 0;

  constructor(readonly countMax: number, readonly bytesMax: number) {
    if (!(Number.isInteger(countMax) && countMax >= 1 && countMax <= BATCHER_COUNT_MAX)) assert.fail(`countMax ${countMax} out of range 1..2^24`);
    if (!(Number.isSafeInteger(bytesMax) && bytesMax >= 1)) assert.fail(`bytesMax ${bytesMax} must be >= 1`);
  }

  get count(): number { return this.queue.length - this.head; }
  get bytes(): number { return this.pendingBytes; }

  push(command: Uint8Array): boolean {
    assert.ok(command instanceof Uint8Array, 'a command must be a Uint8Array');
    if (this.count + 1 > this.countMax || this.pendingBytes + command.length > this.bytesMax) return false;
    // The caller may reuse its buffer after push, so keep a copy, as the WASM ring does.
    this.queue.push(copyBytes(command, 0, command.length));
    this.pendingBytes += command.length;
    return true;
  }

  cut(countMax: number, bytesMax: number): Uint8Array {
    assert.ok(countMax >= 1 && bytesMax >= 1, 'cut bounds must be >= 1');
    let n = 0;
    let payload = 0;
    const available = this.count;
    while (n < available && n < countMax) {
      const size = this.queue[this.head + n].length;
      if (n > 0 && batchBytes(n + 1, payload + size) > bytesMax) break;
      n++;
      payload += size;
    }
    const taken = this.queue.slice(this.head, this.head + n);
    this.head += n;
    this.pendingBytes -= payload;
    // Drop consumed slots now and then so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return encodeBatch(taken);
  }

  clear(): void {
    this.queue = [];
    this.head = 0;
    this.pendingBytes = 0;
  }
}
