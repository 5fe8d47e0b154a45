// What survives a crash of a simulated node: exactly what it persisted, nothing else. Shared by
// the scenario runner and the simulator, so both persist a Ready and restore a core alike.

import assert from 'node:assert/strict';
import type { HardState, LogRecord, Ready, Restored, Snapshot } from '../protocol/types.js';

export class Durable {
  /**
   * ownSnapshotLate: a node's own snapshot (not an installed one) is saved only after its next
   * Ready's writes, and a crash before then loses it, as the node's background save allows (see
   * src/storage/log-store.ts); false saves it with its Ready.
   */
  constructor(private readonly ownSnapshotLate = false) {}

  /** An own snapshot not yet saved (ownSnapshotLate); a crash drops it. */
  private snapshotPending: Snapshot | null = null;

  /** The hard state of the last persisted Ready that carried one. */
  hardState: HardState = { ballot: 0, vote: 0 };
  /** Persisted records by position. Invariant: keys equal each record's position; none below snapshot.prefix. */
  readonly records = new Map<number, LogRecord>();
  /** The last persisted chosen prefix, 0 if none was. */
  chosenPrefix = 0;
  /** The last persisted snapshot, null if none. Invariant: its prefix only grows. */
  snapshot: Snapshot | null = null;

  /** Apply one Ready's writes as the driver does: a snapshot first (an own one with ownSnapshotLate: after the next Ready's writes). */
  persist(rd: Ready): void {
    const pending = this.snapshotPending;
    this.snapshotPending = null;
    if (rd.snapshot && !rd.install && this.ownSnapshotLate) this.snapshotPending = rd.snapshot;
    else if (rd.snapshot) this.saveSnapshot(rd.snapshot);
    this.write(rd);
    // Saved after this Ready's writes; left out if a later one (an installed snapshot) got there first.
    if (pending !== null && pending.prefix > (this.snapshot?.prefix ?? 1)) this.saveSnapshot(pending);
  }

  private saveSnapshot(snap: Snapshot): void {
    const before = this.snapshot?.prefix ?? 1;
    if (snap.prefix <= before) assert.fail(`a snapshot at ${snap.prefix} does not move past the one at ${before}`);
    this.snapshot = snap;
    for (const p of [...this.records.keys()]) if (p < snap.prefix) this.records.delete(p);
  }

  private write(rd: Ready): void {
    if (rd.hardState) this.hardState = { ...rd.hardState };
    if (rd.truncateFrom > 0) for (const p of [...this.records.keys()]) if (p >= rd.truncateFrom) this.records.delete(p);
    const floor = this.snapshot?.prefix ?? 1;
    for (const r of rd.records) {
      if (r.position < floor) assert.fail(`record ${r.position} below the snapshot at ${floor}`);
      this.records.set(r.position, r);
    }
    if (rd.chosenPrefix > 0) this.chosenPrefix = rd.chosenPrefix;
  }

  /** The node crashed: an own snapshot not yet saved is lost with it. */
  crash(): void {
    this.snapshotPending = null;
  }

  /** What a restarting core recovers; the state machine is restored from `snapshot` (or starts empty). */
  restored(): Restored {
    const applied = this.snapshot?.prefix ?? 1;
    return {
      hardState: { ...this.hardState },
      records: [...this.records.values()].sort((a, b) => a.position - b.position),
      chosenPrefix: Math.max(this.chosenPrefix, applied),
      appliedPrefix: applied,
      snapshot: this.snapshot,
      rejoining: false,
    };
  }
}
