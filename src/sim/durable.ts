// What survives a crash of a simulated node: exactly what it persisted, nothing else. Shared by
// the scenario runner and the simulator, so both persist a Ready and restore a core alike.

import assert from 'node:assert/strict';
import type { HardState, LogRecord, Ready, Restored, Snapshot } from '../protocol/types.js';

export class Durable {
  /** The hard state of the last persisted Ready that carried one. */
  hardState: HardState = { ballot: 0, vote: 0 };
  /** Persisted records by position. Invariant: keys equal each record's position; none below snapshot.prefix. */
  readonly records = new Map<number, LogRecord>();
  /** The last persisted chosen prefix, 0 if none was. */
  chosenPrefix = 0;
  /** The last persisted snapshot, null if none. Invariant: its prefix only grows. */
  snapshot: Snapshot | null = null;

  /** Apply one Ready's writes, as the driver's single transaction does (snapshot and trim first). */
  persist(rd: Ready): void {
    if (rd.snapshot) {
      const before = this.snapshot?.prefix ?? 1;
      if (rd.snapshot.prefix <= before) assert.fail(`a snapshot at ${rd.snapshot.prefix} does not move past the one at ${before}`);
      this.snapshot = rd.snapshot;
      for (const p of [...this.records.keys()]) if (p < rd.snapshot.prefix) this.records.delete(p);
    }
    if (rd.hardState) this.hardState = { ...rd.hardState };
    if (rd.truncateFrom > 0) for (const p of [...this.records.keys()]) if (p >= rd.truncateFrom) this.records.delete(p);
    const floor = this.snapshot?.prefix ?? 1;
    for (const r of rd.records) {
      if (r.position < floor) assert.fail(`record ${r.position} below the snapshot at ${floor}`);
      this.records.set(r.position, r);
    }
    if (rd.chosenPrefix > 0) this.chosenPrefix = rd.chosenPrefix;
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
