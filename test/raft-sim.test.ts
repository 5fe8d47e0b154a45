// The simulator on Raft: with every fault injected and no bug planted, no seed may find a
// violation (one value per index, applied logs are prefixes of one another, no acknowledged write
// lost, linearizable histories, and convergence once healed). Snapshots are part of it: on the
// seeds that draw them, nodes compact, and lagging nodes install a peer's snapshot in chunks, some
// lost. `paxlog sim --protocol raft` runs the same check over more seeds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../src/sim/sim.js';
import { Raft } from '../src/protocol/raft/index.js';

const sweep = (nodes: 3 | 5, seeds: number, steps: number): void => {
  let leadersKilled = 0;
  let oneEntryAppends = 0;
  let installSeeds = 0;
  let chunkedInstallSeeds = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const r = simulate({ seed, nodes, steps, protocol: 'raft' });
    assert.equal(r.violation, null, `seed ${seed} (nodes=${nodes}, steps=${steps}): ${r.violation}\n` +
      `replay: paxlog sim --seeds 1 --start ${seed} --nodes ${nodes} --steps ${steps} --protocol raft`);
    if (r.faults.leaderCrash > 0) leadersKilled++;
    if (r.faults.batchBytesMax <= 8) oneEntryAppends++;
    if (r.stats.installs > 0) installSeeds++;
    if (r.stats.installs > 0 && r.faults.snapshotChunkBytes < 100) chunkedInstallSeeds++;
  }
  // The faults that make Figure 8 histories (see sim-bugs.test.ts) are part of the sweep.
  assert.ok(leadersKilled >= seeds / 10, `only ${leadersKilled} of ${seeds} seeds killed leaders`);
  assert.ok(oneEntryAppends >= seeds / 10, `only ${oneEntryAppends} of ${seeds} seeds bound AppendEntries to one entry`);
  // Snapshot transfer is exercised, in small chunks too, not merely compiled in.
  assert.ok(installSeeds >= seeds / 10, `only ${installSeeds} of ${seeds} seeds installed a snapshot from a peer`);
  assert.ok(chunkedInstallSeeds >= seeds / 20, `only ${chunkedInstallSeeds} of ${seeds} seeds installed a snapshot sent in small chunks`);
};

test('Raft passes 300 seeds of 3 nodes, 2,000 ticks each, under every fault', () => sweep(3, 300, 2000));
test('Raft passes 100 seeds of 5 nodes, 2,000 ticks each, under every fault', () => sweep(5, 100, 2000));

test('every Raft invariant holds after every step, tick, advance and compact over 150 seeds', () => {
  // The simulator checks the cluster from outside; here each core also checks itself (log offset,
  // snapshot, transfer and Progress bounds) after every call that changes it.
  const proto = Raft.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const names = ['step', 'tick', 'advance', 'compact'];
  const originals = names.map((n) => proto[n]);
  let checks = 0;
  names.forEach((n, i) => {
    proto[n] = function (this: Raft, ...a: unknown[]) {
      const r = originals[i].apply(this, a);
      this.invariants();
      checks++;
      return r;
    };
  });
  try {
    for (let seed = 1; seed <= 150; seed++) {
      const r = simulate({ seed, nodes: 3, steps: 2000, protocol: 'raft' });
      assert.equal(r.violation, null, `seed ${seed}: ${r.violation}`);
    }
  } finally {
    names.forEach((n, i) => { proto[n] = originals[i]; });
  }
  assert.ok(checks > 100_000, `only ${checks} invariant checks ran`);
});

test('Raft passes 200 seeds of 3 nodes with wiped disks: wiped nodes rejoin without voting and every check holds', (t) => {
  // A restart finds an empty disk with probability 0.3 (a minority at a time); the node rejoins
  // without voting, and liveness waits for every rejoin to finish.
  let wipes = 0;
  let rejoined = 0;
  let seedsWiped = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const r = simulate({ seed, nodes: 3, steps: 2000, protocol: 'raft', wipes: 0.3 });
    assert.equal(r.violation, null, `seed ${seed} (nodes=3, steps=2000, wipes=0.3): ${r.violation}\n` +
      `replay: paxlog sim --seeds 1 --start ${seed} --nodes 3 --steps 2000 --protocol raft --wipes 0.3`);
    wipes += r.stats.wipes;
    rejoined += r.stats.rejoined;
    if (r.stats.wipes > 0) seedsWiped++;
  }
  t.diagnostic(`${wipes} wipes and ${rejoined} completed rejoins over 200 seeds (${seedsWiped} seeds wiped a node)`);
  assert.ok(seedsWiped >= 50, `only ${seedsWiped} of 200 seeds wiped a node`);
  assert.ok(rejoined >= seedsWiped, `only ${rejoined} rejoins completed over ${seedsWiped} seeds that wiped`);
});
