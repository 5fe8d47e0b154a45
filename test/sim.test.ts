// The simulator over many seeds: with every fault injected and no bug planted, it must find
// nothing, and one seed must replay exactly; with snapshots on, lagging nodes must install them.
// (Planted bugs: sim-bugs.test.ts.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeFaults, drawFaults, drawRunFaults, simulate } from '../src/sim/sim.js';
import { replayCommand, simMain } from '../src/sim/main.js';
import { Prng } from '../src/sim/prng.js';
import { protocolFactory, type ProtocolFactory } from '../src/sim/protocols.js';
import { loadKernels } from '../src/kernels/index.js';

const sweep = (nodes: 3 | 5, seeds: number, steps: number, start: number): void => {
  for (let seed = start; seed < start + seeds; seed++) {
    const r = simulate({ seed, nodes, steps, protocol: 'multipaxos' });
    assert.equal(r.violation, null, `seed ${seed} (nodes=${nodes}, steps=${steps}) found a violation`);
  }
};

test('three nodes: 500 seeds of 4000 ticks under faults keep every safety and liveness check', () => {
  sweep(3, 500, 4000, 1);
});

test('five nodes: 200 seeds of 4000 ticks under faults keep every safety and liveness check', () => {
  sweep(5, 200, 4000, 100_001);
});

test('the core keeps every check on the WebAssembly kernels too (20 seeds)', () => {
  const kernels = loadKernels('wasm');
  for (let seed = 1; seed <= 20; seed++) {
    const r = simulate({ seed, nodes: 3, steps: 2000, protocol: 'multipaxos', kernels });
    assert.equal(r.violation, null, `seed ${seed} on WASM kernels found a violation`);
  }
});

test('the faults are really injected: messages lost and duplicated, nodes crashed, disks stalled, writes acknowledged', () => {
  const totals = { dropped: 0, crashes: 0, partitions: 0, stalls: 0, writesAcked: 0, readsOk: 0, unknown: 0 };
  for (let seed = 1; seed <= 20; seed++) {
    const s = simulate({ seed, nodes: 3, steps: 2000, protocol: 'multipaxos' }).stats;
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += s[k];
  }
  for (const [k, v] of Object.entries(totals)) assert.ok(v > 0, `no ${k} over 20 seeds`);
});

test('a seed replays exactly: same faults, same outcome, same counts', () => {
  const a = simulate({ seed: 4242, nodes: 5, steps: 1500, protocol: 'multipaxos' });
  const b = simulate({ seed: 4242, nodes: 5, steps: 1500, protocol: 'multipaxos' });
  assert.deepEqual(b, a);
  const c = simulate({ seed: 4243, nodes: 5, steps: 1500, protocol: 'multipaxos' });
  assert.notDeepEqual(c.faults, a.faults);
});

test('paxlog sim prints each seed with its fault settings first and exits 0 when all pass', async () => {
  const lines: string[] = [];
  const code = await simMain({ seeds: 2, start: 7, nodes: 3, steps: 500, protocol: 'multipaxos', print: (l) => lines.push(l) });
  assert.equal(code, 0);
  assert.match(lines[0], /^seed 7: multipaxos nodes=3 steps=500 loss=[\d.]+% dup=[\d.]+% /);
  assert.match(lines[2], /^seed 8: /);
  assert.match(lines[lines.length - 1], /^2 seeds \(1000 ticks\) in [\d.]+ s: [\d.]+ seeds\/s; no violation$/);
});

test('paxlog sim stops at the first violation and prints the command that replays it', async () => {
  const lines: string[] = [];
  const code = await simMain({ seeds: 50, start: 1, nodes: 3, steps: 1000, protocol: 'multipaxos', bugs: { quorumOneShort: true }, quiet: true, print: (l) => lines.push(l) });
  assert.equal(code, 1);
  const replay = lines.find((l) => l.startsWith('replay: '));
  assert.ok(replay, `no replay line in ${lines.join('\n')}`);
  const seed = Number(/--start (\d+)/.exec(replay)![1]);
  assert.match(replay, /--nodes 3 --steps 1000 --protocol multipaxos --bug quorumOneShort$/);
  // The replayed seed fails the same way.
  const r = simulate({ seed, nodes: 3, steps: 1000, protocol: 'multipaxos', bugs: { quorumOneShort: true } });
  assert.ok(r.violation && lines.some((l) => l.includes(r.violation!.split('\n')[0])));
});

test('paxlog sim refuses bad options with a clear message and exit code 2', async () => {
  const lines: string[] = [];
  const code = await simMain({ seeds: 0, start: 1, nodes: 3, steps: 10, protocol: 'multipaxos', print: (l) => lines.push(l) });
  assert.equal(code, 2);
  assert.match(lines[0], /--seeds must be a positive integer/);
  const code2 = await simMain({ seeds: 1, start: 1, nodes: 4 as 3, steps: 10, protocol: 'multipaxos', print: (l) => lines.push(l) });
  assert.equal(code2, 2);
  assert.match(lines[1], /--nodes must be 3 or 5/);
});

// ------------------------------------------------------------------ snapshots

/** The first `count` seeds from `start` on whose drawn faults take snapshots. */
const snapshotSeeds = (start: number, count: number): number[] => {
  const seeds: number[] = [];
  for (let seed = start; seeds.length < count; seed++) if (drawFaults(new Prng(seed), seed).snapshotEvery > 0) seeds.push(seed);
  return seeds;
};

test('seeds draw snapshots never, every few positions or every few dozen, in tiny chunks or whole, and print them', () => {
  const drawn = Array.from({ length: 400 }, (_, i) => drawFaults(new Prng(i + 1), i + 1));
  const every = drawn.map((f) => f.snapshotEvery);
  assert.ok(every.some((e) => e === 0) && every.some((e) => e >= 2 && e <= 5) && every.some((e) => e >= 10 && e <= 50), `snapshotEvery drawn: ${[...new Set(every)].join(',')}`);
  assert.ok(every.every((e) => e === 0 || (e >= 2 && e <= 5) || (e >= 10 && e <= 50)));
  const chunk = drawn.map((f) => f.snapshotChunkBytes);
  assert.ok(chunk.some((c) => c === 1024 * 1024) && chunk.some((c) => c >= 8 && c <= 64));
  assert.ok(chunk.every((c) => c === 1024 * 1024 || (c >= 8 && c <= 64)));
  const f = drawn.find((x) => x.snapshotEvery > 0)!;
  assert.match(describeFaults(f), new RegExp(` snapshotEvery=${f.snapshotEvery} snapshotChunkBytes=${f.snapshotChunkBytes} readys<=${f.readysOutstandingMax}$`));
  const readys = new Set(drawn.map((x) => x.readysOutstandingMax));
  assert.deepEqual([...readys].sort((a, b) => a - b), [1, 2, 4, 64], 'seeds draw 1, 2, 4 and 64 Readys in flight');
  const stalls = drawn.map((x) => x.stall);
  assert.ok(stalls.some((x) => x === 0) && stalls.some((x) => x > 0), 'half the seeds stall disks');
  assert.ok(drawn.every((x) => (x.stall === 0) === (x.stallTicksMax === 0) && x.stallTicksMax <= 200));
  assert.match(describeFaults(drawn.find((x) => x.snapshotEvery === 0)!), / snapshotEvery=never /);
});

test('the snapshot knobs, Readys in flight and disk stalls come from side streams: the main stream runs as before', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const withKnobs = new Prng(seed);
    const without = new Prng(seed);
    const f = drawFaults(withKnobs, seed);
    const run = drawRunFaults(without);
    const { snapshotEvery, snapshotChunkBytes, readysOutstandingMax, stall, stallTicksMax } = f;
    assert.deepEqual({ ...run, snapshotEvery, snapshotChunkBytes, readysOutstandingMax, stall, stallTicksMax }, f);
    assert.equal(withKnobs.u32(), without.u32(), `seed ${seed}: drawing the snapshot knobs moved the main stream`);
    // The knobs are the seed's own, whatever the main stream holds.
    const g = drawFaults(new Prng(seed + 7), seed);
    assert.deepEqual([g.snapshotEvery, g.snapshotChunkBytes, g.readysOutstandingMax, g.stall, g.stallTicksMax], [snapshotEvery, snapshotChunkBytes, readysOutstandingMax, stall, stallTicksMax]);
  }
});

for (const protocol of ['multipaxos', 'raft'] as const) {
  test(`${protocol}: 30 seeds with snapshots on (20 of 3 nodes, 10 of 5) keep every check, and lagging nodes install snapshots pulled in chunks`, (t) => {
    const totals = { snapshots: 0, installs: 0, chunks: 0 };
    let seedsInstalling = 0;
    const runs = [...snapshotSeeds(1, 20).map((seed) => [seed, 3] as const), ...snapshotSeeds(100_001, 10).map((seed) => [seed, 5] as const)];
    for (const [seed, nodes] of runs) {
      const r = simulate({ seed, nodes, steps: 2000, protocol });
      assert.equal(r.violation, null, `seed ${seed} (${protocol}, nodes=${nodes}, snapshotEvery=${r.faults.snapshotEvery}, snapshotChunkBytes=${r.faults.snapshotChunkBytes}) found a violation:\n${r.violation}`);
      totals.snapshots += r.stats.snapshots;
      totals.installs += r.stats.installs;
      totals.chunks += r.stats.chunks;
      if (r.stats.installs > 0) seedsInstalling++;
    }
    t.diagnostic(`${protocol}: ${totals.snapshots} snapshots taken, ${totals.installs} installed, ${totals.chunks} chunks delivered, installs on ${seedsInstalling} of 30 seeds`);
    // Every such seed's liveness phase requires an install by the node that was kept down.
    assert.equal(seedsInstalling, 30, 'a seed with snapshots on converged without any install');
    assert.ok(totals.snapshots > totals.installs, 'nodes compact on their own, not only in the liveness phase');
    assert.ok(totals.chunks > totals.installs, 'transfers span more than one chunk');
  });
}

test('a snapshot whose state disagrees with the chosen log is caught when it is installed', () => {
  // Wrap the core: every snapshot it installs has its digest changed, as if a peer had applied
  // a different value somewhere below the prefix.
  const real = protocolFactory('multipaxos');
  const tamper: ProtocolFactory = (o) => {
    const core = real(o);
    const ready = core.ready.bind(core);
    core.ready = () => {
      const rd = ready();
      if (rd.install && rd.snapshot) {
        const state = JSON.parse(new TextDecoder().decode(rd.snapshot.bytes)) as { digest: number };
        state.digest ^= 1;
        rd.snapshot = { ...rd.snapshot, bytes: new TextEncoder().encode(JSON.stringify(state)) }; // advance() wants this very Ready back
      }
      return rd;
    };
    return core;
  };
  const seed = snapshotSeeds(1, 1)[0];
  const r = simulate({ seed, nodes: 3, steps: 2000, protocol: 'multipaxos', factory: tamper });
  assert.match(r.violation ?? 'no violation', /installed a snapshot at \d+ that disagrees with the chosen log below it/);
  assert.equal(simulate({ seed, nodes: 3, steps: 2000, protocol: 'multipaxos' }).violation, null, 'the same seed passes without the tampering');
});

test('paxlog sim prints snapshot counts per seed and over the run', async () => {
  const seed = snapshotSeeds(1, 1)[0];
  const lines: string[] = [];
  const code = await simMain({ seeds: 1, start: seed, nodes: 3, steps: 1000, protocol: 'raft', print: (l) => lines.push(l) });
  assert.equal(code, 0, lines.join('\n'));
  const m = /snapshots=(\d+) installs=(\d+) chunks=(\d+) storageFaults=0 wipes=0 rejoins=0 rejoined=0 ok$/.exec(lines[1]);
  assert.ok(m, lines[1]);
  assert.ok(Number(m[2]) > 0, `no install: ${lines[1]}`);
  assert.equal(lines[2], `snapshots: ${m[1]} taken, ${m[2]} installed from a peer, ${m[3]} chunks delivered`);
});

// ------------------------------------------------------------------ wipes and rejoining

test('the disk decisions come from a side stream: with no wipe or damage drawn, a seed runs exactly as without the options', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const plain = simulate({ seed, nodes: 3, steps: 1000, protocol: 'multipaxos' });
    // rejoinShare is drawn only when a restart finds damage, which storageFaults=0 never does.
    assert.deepEqual(simulate({ seed, nodes: 3, steps: 1000, protocol: 'multipaxos', rejoinShare: 1, wipes: 0, pauses: 0, stops: 0 }), plain);
  }
  // With wipes on, the seed's faults are the same ones; only its history after the first wipe differs.
  const wiped = simulate({ seed: 3, nodes: 3, steps: 1000, protocol: 'raft', wipes: 1 });
  assert.deepEqual(wiped.faults, simulate({ seed: 3, nodes: 3, steps: 1000, protocol: 'raft' }).faults);
  assert.ok(wiped.stats.wipes > 0 && wiped.stats.crashes > 0, JSON.stringify(wiped.stats));
});

test('process pauses: both protocols stay safe and live over 100 seeds each while nodes pause for up to 4 election timeouts', () => {
  for (const protocol of ['multipaxos', 'raft'] as const) {
    let pauses = 0;
    let reads = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const r = simulate({ seed, nodes: 3, steps: 2000, protocol, pauses: 0.005 });
      assert.equal(r.violation, null, `${protocol} seed ${seed}: ${r.violation}`);
      pauses += r.stats.pauses;
      reads += r.stats.readsOk;
    }
    assert.ok(pauses > 1000 && reads > 1000, `${protocol}: ${pauses} pauses, ${reads} reads answered`);
  }
});

test('graceful stops: both protocols stay safe and live over 150 seeds each when every crash tells the peers (a follower of a stopped leader campaigns at once)', () => {
  for (const protocol of ['multipaxos', 'raft'] as const) {
    let notices = 0;
    let writes = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const r = simulate({ seed, nodes: seed % 2 === 0 ? 5 : 3, steps: 2000, protocol, stops: 1 });
      assert.equal(r.violation, null, `${protocol} seed ${seed}: ${r.violation}`);
      notices += r.stats.notices;
      writes += r.stats.writesAcked;
    }
    assert.ok(notices > 500 && writes > 1000, `${protocol}: ${notices} notices delivered, ${writes} writes acknowledged`);
  }
  assert.equal(replayCommand({ seed: 7, nodes: 3, steps: 1000, protocol: 'raft', stops: 0.5 }), 'paxlog sim --seeds 1 --start 7 --nodes 3 --steps 1000 --protocol raft --stops 0.5');
});

test('a cluster bootstrapping as --new-cluster starts it: both protocols stay safe and live over 60 seeds each at 3 and 5 nodes, and nodes vote once a majority answered', () => {
  for (const protocol of ['multipaxos', 'raft'] as const) {
    for (const nodes of [3, 5] as const) {
      let starts = 0;
      let onMajority = 0;
      for (let seed = 1; seed <= 60; seed++) {
        const r = simulate({ seed, nodes, steps: 2000, protocol, newCluster: true, wipes: 0.1, stops: 0.3 });
        assert.equal(r.violation, null, `${protocol} ${nodes} nodes seed ${seed}: ${r.violation}`);
        assert.deepEqual(r.rejoining, [], `${protocol} ${nodes} nodes seed ${seed}: every node ends voting`);
        assert.ok(r.stats.newClusterStarts >= nodes && r.stats.rejoined >= nodes, `${protocol} ${nodes} nodes seed ${seed}: ${JSON.stringify(r.stats)}`);
        starts += r.stats.newClusterStarts;
        onMajority += r.stats.rejoinedOnMajority;
      }
      // Without the check a node rejoins only once every other member answered; with it, on a majority.
      assert.ok(onMajority >= 30 && starts > 60 * nodes, `${protocol} ${nodes} nodes: ${onMajority} nodes voted on a majority's answers, ${starts} newCluster starts`);
    }
  }
});

test('paxlog sim takes --new-cluster, counts what the check did, and its replay line carries it', async () => {
  const lines: string[] = [];
  const code = await simMain({ seeds: 3, start: 1, nodes: 3, steps: 800, protocol: 'raft', newCluster: true, quiet: true, print: (l) => lines.push(l) });
  assert.equal(code, 0, lines.join('\n'));
  const line = lines.find((l) => l.startsWith('new cluster: '));
  const m = /^new cluster: (\d+) starts with the check, (\d+) nodes voted before every member had answered$/.exec(line ?? '');
  assert.ok(m && Number(m[1]) >= 9, lines.join('\n'));
  assert.equal(replayCommand({ seed: 7, nodes: 3, steps: 1000, protocol: 'raft', newCluster: true, wipes: 0.1 }),
    'paxlog sim --seeds 1 --start 7 --nodes 3 --steps 1000 --protocol raft --new-cluster --wipes 0.1');
});

test('paxlog sim takes --pauses, counts them, and its replay line carries it', async () => {
  const lines: string[] = [];
  assert.equal(await simMain({ seeds: 2, start: 1, nodes: 3, steps: 1000, protocol: 'multipaxos', pauses: 0.01, print: (l) => lines.push(l) }), 0, lines.join('\n'));
  const perSeed = lines.filter((l) => l.startsWith('  delivered=')).map((l) => Number(/ pauses=(\d+) ok$/.exec(l)?.[1]));
  assert.equal(perSeed.length, 2);
  assert.ok(perSeed.every((n) => n > 0), lines.join('\n'));
  assert.ok(lines.includes(`pauses: ${perSeed[0] + perSeed[1]}`), lines.join('\n'));
  assert.equal(replayCommand({ seed: 7, nodes: 3, steps: 1000, protocol: 'raft', pauses: 0.01 }), 'paxlog sim --seeds 1 --start 7 --nodes 3 --steps 1000 --protocol raft --pauses 0.01');
  const bad: string[] = [];
  assert.equal(await simMain({ seeds: 1, start: 1, nodes: 3, steps: 10, protocol: 'raft', pauses: -0.1, print: (l) => bad.push(l) }), 2);
  assert.match(bad[0], /--pauses must be a probability between 0 and 1, got -0.1/);
});

test('a bad disk option is refused with a clear error', () => {
  assert.throws(() => simulate({ seed: 1, nodes: 3, steps: 10, protocol: 'multipaxos', wipes: 1.5 }), /wipes must be a probability in \[0, 1\], got 1.5/);
  assert.throws(() => simulate({ seed: 1, nodes: 3, steps: 10, protocol: 'raft', rejoinShare: -1 }), /rejoinShare must be a probability/);
});

test('paxlog sim prints wipe and rejoin counts, refuses a bad --wipes, and its replay line carries the disk options', async () => {
  const lines: string[] = [];
  const code = await simMain({ seeds: 3, start: 1, nodes: 3, steps: 2000, protocol: 'raft', wipes: 0.5, print: (l) => lines.push(l) });
  assert.equal(code, 0, lines.join('\n'));
  const perSeed = lines.filter((l) => l.startsWith('  delivered=')).map((l) => /wipes=(\d+) rejoins=(\d+) rejoined=(\d+) ok$/.exec(l));
  assert.equal(perSeed.length, 3);
  const sum = (i: number) => perSeed.reduce((a, m) => a + Number(m![i]), 0);
  assert.ok(sum(1) > 0 && sum(3) > 0, lines.join('\n'));
  assert.equal(lines[lines.length - 2], `disks: 0 found damaged (0 refused), ${sum(1)} wiped; ${sum(2)} rejoining starts, ${sum(3)} rejoins completed`);

  const bad: string[] = [];
  assert.equal(await simMain({ seeds: 1, start: 1, nodes: 3, steps: 10, protocol: 'raft', wipes: 2, print: (l) => bad.push(l) }), 2);
  assert.match(bad[0], /--wipes must be a probability between 0 and 1, got 2/);

  const failing: string[] = [];
  const failed = await simMain({ seeds: 1000, start: 1, nodes: 3, steps: 2000, protocol: 'multipaxos', wipes: 0.3, bugs: { rejoinVotesAtOnce: true }, quiet: true, print: (l) => failing.push(l) });
  assert.equal(failed, 1);
  assert.match(failing.find((l) => l.startsWith('replay: ')) ?? '', / --wipes 0.3 --bug rejoinVotesAtOnce$/);
});
