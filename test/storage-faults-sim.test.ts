// The simulator with storage faults in the manner of Paxos Made Live: on a restart, a node's disk
// may hold a record with a flipped bit (put through the real record codec), a lost hard state, or
// a chosen slot whose record is gone, or (on seeds that take snapshots) a flipped bit in its
// snapshot, caught by the snapshot's CRC32C. The node refuses to restore and stays down, as a real
// node stops with a clear message; every safety, liveness and linearizability check must still
// pass with the rest, and no flipped bit may decode. With rejoinShare and wipes, a node instead
// restarts from an empty disk and rejoins without voting; every such rejoin must complete.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../src/sim/sim.js';
import type { ProtocolName } from '../src/protocol/types.js';
import { protocolFactory, type ProtocolFactory } from '../src/sim/protocols.js';

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

// ------------------------------------------------------------------ rejoining without voting

/** Wipes and damaged logs set aside: every restart from an empty disk must end rejoined, with every check kept. */
const rejoinSweep = (protocol: ProtocolName, nodes: 3 | 5, seeds: number, start: number) => {
  const totals = { storageFaults: 0, refused: 0, wipes: 0, rejoins: 0, rejoined: 0, seedsWiped: 0 };
  const minority = nodes - (Math.floor(nodes / 2) + 1);
  for (let seed = start; seed < start + seeds; seed++) {
    const o = { seed, nodes, steps: 2000, protocol, storageFaults: 0.3, rejoinShare: 0.5, wipes: 0.3 };
    const r = simulate(o);
    assert.equal(r.violation, null, `seed ${seed} (${JSON.stringify(o)}) found a violation:\n${r.violation}`);
    // A rejoining node needs every other member's answer, so a node down for good (refused) holds it back by design.
    if (r.refusals.length === 0) {
      assert.deepEqual(r.rejoining, [], `seed ${seed} (${protocol}, nodes=${nodes}): nodes ${r.rejoining} never persisted a Ready that says rejoined`);
    }
    assert.ok(r.refusals.length <= minority, `seed ${seed}: ${r.refusals.length} nodes refused, more than a minority`);
    assert.ok(r.stats.rejoined <= r.stats.wipes && r.stats.wipes <= r.stats.rejoins, `seed ${seed}: ${JSON.stringify(r.stats)}`);
    if (r.stats.wipes > 0) totals.seedsWiped++;
    totals.storageFaults += r.stats.storageFaults;
    totals.refused += r.refusals.length;
    totals.wipes += r.stats.wipes;
    totals.rejoins += r.stats.rejoins;
    totals.rejoined += r.stats.rejoined;
  }
  return totals;
};

for (const protocol of ['multipaxos', 'raft'] as const) {
  test(`${protocol}: wiped nodes and damaged logs set aside rejoin without voting, and 60 seeds at 3 and 5 nodes keep every check`, (t) => {
    const three = rejoinSweep(protocol, 3, 40, 1);
    const five = rejoinSweep(protocol, 5, 20, 100_001);
    t.diagnostic(`${protocol}: 3 nodes ${JSON.stringify(three)}; 5 nodes ${JSON.stringify(five)}`);
    for (const x of [three, five]) {
      assert.ok(x.seedsWiped > 5 && x.rejoined > 5, `too few rejoins to prove anything: ${JSON.stringify(x)}`);
      assert.ok(x.storageFaults > x.refused, `no damaged log was set aside: ${JSON.stringify(x)}`);
      assert.ok(x.refused > 0, `no damaged node refused: ${JSON.stringify(x)}`);
    }
  });
}

test('a node restarted before its rejoined Ready was persisted comes up rejoining again, keeping what it persisted since the wipe', () => {
  // Watch every core the simulator builds: what it was restored with, and whether it handed out
  // a Ready that says rejoined (which a crash may still lose before it is durable).
  for (const protocol of ['multipaxos', 'raft'] as const) {
    const real = protocolFactory(protocol);
    let restartsMidway = 0;
    let clearedAfterRejoined = 0;
    for (let seed = 1; seed <= 40; seed++) {
      /** Per node: its last core was restored rejoining, and whether that core said rejoined. */
      const last = new Map<number, { rejoining: boolean; said: boolean }>();
      const watch: ProtocolFactory = (o) => {
        const id = o.config.id;
        const before = last.get(id);
        const rejoining = o.restored?.rejoining ?? false;
        if (before?.rejoining && !rejoining) {
          // The mark may only clear once a core said rejoined (and the simulator persisted it).
          assert.ok(before.said, `seed ${seed} (${protocol}): node ${id} came up voting though no core of it said rejoined`);
          clearedAfterRejoined++;
        }
        if (before?.rejoining && rejoining && !before.said && (o.restored?.records.length ?? 0) > 0) restartsMidway++;
        const state = { rejoining, said: false };
        last.set(id, state);
        const core = real(o);
        const ready = core.ready.bind(core);
        core.ready = () => {
          const rd = ready();
          if (rd.rejoined) state.said = true;
          return rd;
        };
        return core;
      };
      const r = simulate({ seed, nodes: 3, steps: 2000, protocol, wipes: 0.3, factory: watch });
      assert.equal(r.violation, null, `seed ${seed} (${protocol}): ${r.violation}`);
    }
    assert.ok(restartsMidway > 0, `${protocol}: no node was restarted mid-way through rejoining with records it persisted since its wipe`);
    assert.ok(clearedAfterRejoined > 0, `${protocol}: no node ever came up voting again after rejoining`);
  }
});
