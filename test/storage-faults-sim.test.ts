// The simulator with storage faults in the manner of Paxos Made Live: on a restart, a node's disk
// may hold a record with a flipped bit (put through the real record codec), a lost hard state, or
// a chosen slot whose record is gone, or (on seeds that take snapshots) a flipped bit in its
// snapshot, caught by the snapshot's CRC32C. The node refuses to restore and stays down, as a real
// node stops with a clear message; every safety, liveness and linearizability check must still
// pass with the rest, and no flipped bit may decode.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../src/sim/sim.js';
import type { ProtocolName } from '../src/protocol/types.js';

const sweep = (protocol: ProtocolName, nodes: 3 | 5, seeds: number, refusals: string[]): number => {
  let damaged = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const r = simulate({ seed, nodes, steps: 2000, protocol, storageFaults: 0.5 });
    assert.equal(r.violation, null,
      `seed ${seed} (${protocol}, nodes=${nodes}, steps=2000, storageFaults=0.5) found a violation:\n${r.violation}`);
    assert.ok(r.stats.storageFaults <= nodes - (Math.floor(nodes / 2) + 1), `seed ${seed}: a majority was left down`);
    damaged += r.stats.storageFaults;
    assert.equal(r.refusals.length, r.stats.storageFaults);
    refusals.push(...r.refusals);
  }
  return damaged;
};

for (const protocol of ['multipaxos', 'raft'] as const) {
  test(`${protocol}: nodes whose storage was damaged on restart stay down, and 60 seeds at 3 and 5 nodes keep every check`, (t) => {
    const refusals: string[] = [];
    const three = sweep(protocol, 3, 40, refusals);
    const five = sweep(protocol, 5, 20, refusals);
    const snapshots = refusals.filter((r) => / snapshot at \d+ corrupt: CRC32C mismatch$/.test(r)).length;
    t.diagnostic(`restarts refused for damaged storage: ${three} over 40 seeds of 3 nodes, ${five} over 20 seeds of 5 nodes; ${snapshots} for a flipped snapshot bit`);
    assert.ok(three > 5 && five > 5, 'storage faults were really injected');
    assert.ok(snapshots > 0, `no snapshot was damaged: ${refusals.join('; ')}`);
  });
}
