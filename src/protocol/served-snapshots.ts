// The snapshots a core serves to peers that pull one chunk at a time (SnapshotRequest /
// SnapshotChunk). Serving only the latest snapshot would restart every transfer in progress each
// time the node takes a newer one, and a transfer that lasts longer than the snapshot interval (a
// big state machine under load) would never end. So the snapshot a peer is pulling (or was just
// offered) stays served while its requests keep coming, however many newer ones the node takes
// meanwhile. At most one older snapshot is held: memory stays within two snapshots.

import assert from 'node:assert/strict';
import type { Snapshot } from './types.js';

export class ServedSnapshots {
  /** The newest snapshot (taken, installed or restored); the one offered to peers. */
  private newest: Snapshot | null = null;
  /** The tick `newest` was last offered or asked for (-Infinity: never since it became newest). */
  private newestPulledTick = -Infinity;
  /** An older snapshot a peer was pulling when a newer one came. Invariant: held.prefix < newest.prefix. */
  private held: Snapshot | null = null;
  /** The tick a peer last asked for a chunk of `held` (or it was offered); idle for holdTicks, it is dropped. */
  private heldPulledTick = -Infinity;

  /** holdTicks: a receiver abandons a transfer with no chunk for that long; past it nobody pulls. */
  constructor(private readonly holdTicks: number) {}

  get latest(): Snapshot | null {
    return this.newest;
  }

  /** The latest snapshot, to offer to a peer now: held if a newer one comes before the peer's first request. */
  offer(now: number): Snapshot | null {
    if (this.newest !== null) this.newestPulledTick = now;
    return this.newest;
  }

  /** `s` becomes the latest. The one it replaces is held if a peer is pulling it and the held one is idle. */
  replace(s: Snapshot, now: number): void {
    const old = this.newest;
    assert.ok(old === null || s.prefix > old.prefix, `a snapshot at ${s.prefix} replaces a newer one at ${old?.prefix}`);
    if (old !== null && this.pulled(this.newestPulledTick, now) && !(this.held !== null && this.pulled(this.heldPulledTick, now))) {
      this.held = old;
      this.heldPulledTick = this.newestPulledTick;
    }
    this.newest = s;
    this.newestPulledTick = -Infinity;
  }

  /** The snapshot at `prefix` if it is served here, noted as pulled at `now`; null if not. */
  pull(prefix: number, now: number): Snapshot | null {
    if (this.newest !== null && this.newest.prefix === prefix) {
      this.newestPulledTick = now;
      return this.newest;
    }
    if (this.held !== null && this.held.prefix === prefix && this.pulled(this.heldPulledTick, now)) {
      this.heldPulledTick = now;
      return this.held;
    }
    return null;
  }

  /** Drop the held snapshot once nobody has pulled it for holdTicks. */
  tick(now: number): void {
    if (this.held !== null && !this.pulled(this.heldPulledTick, now)) this.held = null;
  }

  /** The prefix of the held snapshot, 0 without one (status and tests). */
  get heldPrefix(): number {
    return this.held?.prefix ?? 0;
  }

  private pulled(tick: number, now: number): boolean {
    return now - tick < this.holdTicks;
  }
}
