// The writes a node proposed and has not answered, by request seq. Seqs are handed out one after
// another (u32, wrapping), so the table is a ring indexed by seq: no allocation per write (a Map
// entry and an object each were a tenth of a busy leader's garbage), and the oldest write, the
// first to time out, is at the head.

import assert from 'node:assert/strict';
import type { ProposeDone, RequestError } from './node.js';

const capacityMin = 4096;

export class PendingWrites<R> {
  /** Ring slot seq & (capacity - 1): the write's callback, or undefined once answered. */
  private dones: (ProposeDone<R> | undefined)[] = new Array(capacityMin);
  /** The caller's tag, handed back to done. */
  private tags = new Float64Array(capacityMin);
  private startMs = new Float64Array(capacityMin);
  private deadlineMs = new Float64Array(capacityMin);
  /** The oldest seq that may be pending. Invariant: every pending seq is in [head, next). */
  private head = 0;
  /** The seq the next add() must carry. */
  private next = 0;
  /** Pending writes. Invariant: size <= (next - head) mod 2^32 <= capacity. */
  size = 0;

  /** @param countMax pending writes at most; @param spanMax seqs from the oldest pending one to the next at most (a power of two). */
  constructor(private readonly countMax: number, private readonly spanMax: number) {
    assert.ok(spanMax >= capacityMin && (spanMax & (spanMax - 1)) === 0, 'spanMax is a power of two >= capacityMin');
  }

  private get capacity(): number {
    return this.tags.length;
  }

  /** Whether n more writes, seqs next.., fit: within countMax, and within spanMax of the oldest pending one. */
  fits(n: number): boolean {
    return this.size + n <= this.countMax && ((this.next - this.head) >>> 0) + n <= this.spanMax;
  }

  /** Starts seqs at `seq` (a node's first seq); only while nothing is pending. */
  startAt(seq: number): void {
    assert.equal(this.size, 0, 'startAt with writes pending');
    this.head = this.next = seq >>> 0;
  }

  add(seq: number, done: ProposeDone<R>, tag: number, startMs: number, deadlineMs: number): void {
    assert.equal(seq, this.next, 'seqs are added in order');
    if ((this.next - this.head) >>> 0 >= this.capacity) this.grow();
    const i = seq & (this.capacity - 1);
    this.dones[i] = done;
    this.tags[i] = tag;
    this.startMs[i] = startMs;
    this.deadlineMs[i] = deadlineMs;
    this.next = (seq + 1) >>> 0;
    this.size++;
  }

  /** Answers seq if it is pending; returns when it was proposed, or -1 if it is not pending. */
  settle(seq: number, err: RequestError | null, result: R | undefined): number {
    if (((seq - this.head) >>> 0) >= ((this.next - this.head) >>> 0)) return -1;
    const i = seq & (this.capacity - 1);
    const done = this.dones[i];
    if (done === undefined) return -1;
    const startMs = this.startMs[i];
    this.remove(i);
    done(err, result, this.tags[i]);
    return startMs;
  }

  /** Answers with why() the writes whose deadline is at or before `now` (the oldest first). */
  expire(now: number, why: () => RequestError): void {
    let err: RequestError | null = null;
    while (this.head !== this.next) {
      const i = this.head & (this.capacity - 1);
      const done = this.dones[i];
      if (done !== undefined) {
        if (this.deadlineMs[i] > now) return;
        this.remove(i);
        done((err ??= why()), undefined, this.tags[i]);
      } else this.head = (this.head + 1) >>> 0;
    }
  }

  /** Moves every pending write's deadline to `deadlineMs` if that is sooner (deadlines keep their order). */
  shortenDeadlines(deadlineMs: number): void {
    for (let seq = this.head; seq !== this.next; seq = (seq + 1) >>> 0) {
      const i = seq & (this.capacity - 1);
      if (this.dones[i] !== undefined && this.deadlineMs[i] > deadlineMs) this.deadlineMs[i] = deadlineMs;
    }
  }

  /** Answers every pending write with `err`. */
  failAll(err: RequestError): void {
    this.expire(Infinity, () => err);
  }

  private remove(i: number): void {
    this.dones[i] = undefined;
    this.size--;
    while (this.head !== this.next && this.dones[this.head & (this.capacity - 1)] === undefined) this.head = (this.head + 1) >>> 0;
  }

  private grow(): void {
    const old = { dones: this.dones, tags: this.tags, startMs: this.startMs, deadlineMs: this.deadlineMs, mask: this.capacity - 1 };
    const capacity = 2 * this.capacity;
    assert.ok(capacity <= this.spanMax, 'the caller checked fits()');
    this.dones = new Array(capacity);
    this.tags = new Float64Array(capacity);
    this.startMs = new Float64Array(capacity);
    this.deadlineMs = new Float64Array(capacity);
    for (let s = this.head; s !== this.next; s = (s + 1) >>> 0) {
      const from = s & old.mask;
      const to = s & (capacity - 1);
      this.dones[to] = old.dones[from];
      this.tags[to] = old.tags[from];
      this.startMs[to] = old.startMs[from];
      this.deadlineMs[to] = old.deadlineMs[from];
    }
  }
}

/**
 * When a node's pending writes are to be given up on sooner: once it knows another leader than the
 * last it knew. A spell with no leader known (an election under way) is no change by itself: if
 * the same leader comes back, the writes are still in its hands.
 */
export class LeaderChanges {
  /** The last leader known: 0 until one is, then never 0 again. */
  private lastKnown = 0;

  /** Note the leader as now seen (0: none known); true if it is another than the last one known. */
  seen(leader: number): boolean {
    if (leader === 0) return false;
    const changed = this.lastKnown !== 0 && leader !== this.lastKnown;
    this.lastKnown = leader;
    return changed;
  }
}
