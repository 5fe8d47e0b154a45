// What the leader knows about one follower's log, in the manner of etcd-io/raft's tracker:
// a follower is either being probed (the leader is still looking for the last index where their
// logs agree) or replicated to (AppendEntries are streamed optimistically, at most `pipeline` of
// them in flight), or is sent a snapshot (it needs entries the leader has trimmed).

import assert from 'node:assert/strict';

export const enum ReplicaState {
  /** The match point is unknown: one AppendEntries per heartbeat until the follower accepts one. */
  Probe = 0,
  /** The follower accepted an AppendEntries: stream from `next`, up to `pipeline` in flight. */
  Replicate = 1,
  /** The follower needs entries below the leader's snapshot: it is offered the snapshot (a
   *  SnapshotChunk at offset 0) at most once per offer interval, and pulls the rest itself. */
  Snapshot = 2,
}

export class Progress {
  /** The highest index known durable on the follower and equal to the leader's. Invariant: match < next. */
  match = 0;
  /** The next index to send. Invariant: match + 1 <= next <= leader's last index + 1. */
  next: number;
  state: ReplicaState = ReplicaState.Probe;
  /** Probe: an AppendEntries went out since the last heartbeat; the next waits for the answer or the heartbeat. */
  probeSent = false;
  /** Probe: whether the probe carries entries. Only the first probe of a reign does (it is likely to be
   *  accepted); after a rejection the leader looks for the match point with empty probes first. */
  probeWithEntries = true;
  /** The tick at which match last advanced or the pipeline last went from empty to busy. Drives retransmission. */
  progressTick = 0;
  /** The follower answered anything in the current check-quorum window. */
  active = false;
  /** The highest read-confirmation round this follower acknowledged in this reign (0: none). */
  ackedRound = 0;
  /** The highest commit index the AppendEntries sent to this follower told it (each tells it at most its last index). */
  commitSent = 0;
  /** Snapshot: the tick of the last offer (-Infinity: none yet). Rate-limits offers to one per interval. */
  offerTick = -Infinity;
  /** Snapshot: the tick the follower last asked for a chunk (-Infinity: never). While it pulls one, no
   *  offer goes out: an offer of a newer snapshot would restart its transfer. */
  pullTick = -Infinity;
  /** The follower sent a CatchUpRequest in this reign: it may have lost its log, so an acknowledgement
   *  from its earlier life (delayed in the network) may have set `match` above what it holds now.
   *  Its rejections below `match` are then believed, not dropped as stale. */
  mayHaveLostLog = false;

  /** Replicate: the last index of each AppendEntries in flight, oldest first, in a ring of `ring.length`.
   *  Invariant: inflight <= ring.length (the pipeline depth); the live values increase. */
  private readonly ring: Float64Array;
  private head = 0;
  private inflightCount = 0;

  constructor(next: number, pipeline: number) {
    assert.ok(Number.isInteger(pipeline) && pipeline >= 1, `pipeline ${pipeline} must be >= 1`);
    this.next = next;
    this.ring = new Float64Array(pipeline);
  }

  get inflight(): number {
    return this.inflightCount;
  }

  get full(): boolean {
    return this.inflightCount === this.ring.length;
  }

  /** Record an AppendEntries in flight that ends at `lastIndex`. */
  addInflight(lastIndex: number): void {
    assert.ok(!this.full, 'the pipeline is full');
    this.ring[(this.head + this.inflightCount) % this.ring.length] = lastIndex;
    this.inflightCount++;
  }

  /** Forget every AppendEntries in flight that ends at or below `index`: the follower has it. */
  freeTo(index: number): void {
    while (this.inflightCount > 0 && this.ring[this.head] <= index) {
      this.head = (this.head + 1) % this.ring.length;
      this.inflightCount--;
    }
  }

  clearInflight(): void {
    this.head = 0;
    this.inflightCount = 0;
  }

  becomeProbe(next: number, withEntries: boolean): void {
    this.state = ReplicaState.Probe;
    this.next = next;
    this.probeSent = false;
    this.probeWithEntries = withEntries;
    this.clearInflight();
  }

  /** The follower needs trimmed entries: stop sending AppendEntries and offer the snapshot. */
  becomeSnapshot(): void {
    this.state = ReplicaState.Snapshot;
    this.next = this.match + 1;
    this.probeSent = false;
    this.offerTick = -Infinity;
    this.clearInflight();
  }

  becomeReplicate(now: number): void {
    this.state = ReplicaState.Replicate;
    this.next = this.match + 1;
    this.progressTick = now;
    this.clearInflight();
  }
}
