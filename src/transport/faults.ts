// Injected faults on outbound peer links, for benchmarks of lossy or slow networks
// (`paxlog serve --fault-loss P --fault-delay-ms D`). Off by default; never on unless asked.
//
// Loss drops whole frames (protocol messages) before they are queued, each with probability P,
// drawn from a PRNG seeded per link (seed, this node, the peer), so one seed gives the same
// drop pattern for the same sequence of frames. Delay holds each outbound WebSocket message for
// D milliseconds before it is written; timers of equal length fire in the order they were set,
// so a link stays FIFO. Dropped frames are counted apart from the transport's own drops so a
// report can tell injected loss from backpressure.
//
// Partitions are for tests only (`paxlog serve --fault-control`, then `POST /fault/partition`):
// the node drops every frame to a cut peer before it is queued, and every frame from a cut peer
// before the core steps it, so a cut is symmetric as soon as one side sets it. The links stay up,
// which keeps the cut deterministic: no reconnect race decides when it starts or ends.

import assert from 'node:assert/strict';
import { Prng } from '../sim/prng.js';

export interface FaultOptions {
  /** Probability of dropping each outbound peer frame. Invariant: 0 <= lossProbability < 1. */
  lossProbability: number;
  /** Milliseconds added before each outbound peer message is written. Invariant: 0 <= delayMs <= 10_000. */
  delayMs: number;
  /** Seeds the per-link drop PRNGs. */
  seed: number;
}

/** Bytes held back by the delay at most, over all links; messages beyond are dropped. */
const heldBytesMax = 64 * 1024 * 1024;

export const faultsNone: FaultOptions = { lossProbability: 0, delayMs: 0, seed: 1 };

/** Bad fault flags: a user's mistake, with a message that says which bound was broken. */
export class FaultOptionsError extends Error {
  override name = 'FaultOptionsError';
}

export function checkFaultOptions(o: FaultOptions): FaultOptions {
  if (!(o.lossProbability >= 0 && o.lossProbability < 1)) {
    throw new FaultOptionsError(`loss probability ${o.lossProbability} is not in [0, 1)`);
  }
  if (!(o.delayMs >= 0 && o.delayMs <= 10_000)) throw new FaultOptionsError(`delay ${o.delayMs} ms is not in 0..10000`);
  if (!Number.isSafeInteger(o.seed)) throw new FaultOptionsError(`fault seed ${o.seed} is not an integer`);
  return o;
}

/** Peers a partition may name at most (node ids are 1..65535; clusters are far smaller). */
export const partitionPeersMax = 64;

/** The faults of one node's outbound links. */
export class LinkFaults {
  /** Frames dropped on purpose, over all links. Invariant: never decreases. */
  framesDropped = 0;
  /** Bytes waiting out the added delay. Invariant: 0 <= heldBytes <= heldBytesMax. */
  private heldBytes = 0;
  /** One PRNG per peer, created on first use. Bounded by the number of peers (<= 32). */
  private readonly rngs = new Map<number, Prng>();
  /** Frames dropped because their peer is cut off, both directions. Invariant: never decreases. */
  framesCut = 0;
  /** Peers cut off by a partition: no frame goes to or comes from them. Invariant: size <= partitionPeersMax. */
  private readonly cut = new Set<number>();

  constructor(private readonly self: number, readonly options: FaultOptions) {
    checkFaultOptions(options);
  }

  /** True if any fault is on; the transport skips every hook when false. */
  get active(): boolean {
    return this.options.lossProbability > 0 || this.options.delayMs > 0 || this.cut.size > 0;
  }

  /** Cuts this node off from exactly `peers` (an empty list heals every cut). */
  partition(peers: readonly number[]): void {
    assert.ok(peers.length <= partitionPeersMax, 'the caller bounds the partition list');
    this.cut.clear();
    for (const p of peers) this.cut.add(p);
  }

  /** The peers currently cut off, in id order. */
  get partitioned(): number[] {
    return [...this.cut].sort((a, b) => a - b);
  }

  /** True (and counted) if a frame to or from `peer` must be dropped because of a partition. */
  isCut(peer: number): boolean {
    if (this.cut.size === 0 || !this.cut.has(peer)) return false;
    this.framesCut++;
    return true;
  }

  /** Decides whether the next frame to `peer` is lost (and counts it if so). */
  dropFrame(peer: number): boolean {
    if (this.options.lossProbability === 0) return false;
    let rng = this.rngs.get(peer);
    if (rng === undefined) {
      assert.ok(this.rngs.size < 65536, 'more peers than node ids');
      rng = new Prng(((this.options.seed >>> 0) ^ Math.imul(this.self, 0x9e3779b1) ^ Math.imul(peer, 0x85ebca6b)) >>> 0);
      this.rngs.set(peer, rng);
    }
    if (rng.next() >= this.options.lossProbability) return false;
    this.framesDropped++;
    return true;
  }

  /**
   * Runs `write` now, or after the added delay. Returns false (and does not write) when the bytes
   * held back for delay would pass `heldBytesMax`: a delayed link has a bound like any other.
   */
  deliver(bytes: number, write: () => void): boolean {
    if (this.options.delayMs === 0) {
      write();
      return true;
    }
    if (this.heldBytes + bytes > heldBytesMax) return false;
    this.heldBytes += bytes;
    setTimeout(() => {
      this.heldBytes -= bytes;
      write();
    }, this.options.delayMs);
    return true;
  }
}
