// What survives a crash of a simulated node: exactly what it persisted, nothing else. Shared by
// the scenario runner and the simulator, so both persist a Ready and restore a core alike.

import type { HardState, LogRecord, Ready, Restored } from '../protocol/types.js';

export class Durable {
  /** The hard state of the last persisted Ready that carried one. */
  hardState: HardState = { ballot: 0, vote: 0 };
  /** Persisted records by position. Invariant: keys equal each record's position. */
  readonly records = new Map<number, LogRecord>();
  /** The last persisted chosen prefix, 0 if none was. */
  chosenPrefix = 0;

  /** Apply one Ready's writes, as the driver's single transaction does. */
  persist(rd: Ready): void {
    if (rd.hardState) this.hardState = { ...rd.hardState };
    if (rd.truncateFrom > 0) for (const p of [...this.records.keys()]) if (p >= rd.truncateFrom) this.records.delete(p);
    for (const r of rd.records) this.records.set(r.position, r);
    if (rd.chosenPrefix > 0) this.chosenPrefix = rd.chosenPrefix;
  }

  /** What a restarting core recovers (the simulated state machine starts empty). */
  restored(): Restored {
    return {
      hardState: { ...this.hardState },
      records: [...this.records.values()].sort((a, b) => a.position - b.position),
      chosenPrefix: this.chosenPrefix,
      appliedPrefix: 1,
    };
  }
}
