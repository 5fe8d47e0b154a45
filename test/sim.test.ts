// The simulator over many seeds: with every fault injected and no bug planted, it must find
// nothing, and one seed must replay exactly. (Planted bugs: sim-bugs.test.ts.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../src/sim/sim.js';
import { simMain } from '../src/sim/main.js';
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

test('the faults are really injected: messages lost and duplicated, nodes crashed, writes acknowledged', () => {
  const totals = { dropped: 0, crashes: 0, partitions: 0, writesAcked: 0, readsOk: 0, unknown: 0 };
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
