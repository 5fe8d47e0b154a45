// The bench harness's pieces without a cluster: knob parsing and sweeps, the Prometheus reader,
// /proc CPU time, the disk probe, medians and spread, and the injected link faults.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchCommand, resolveOptions } from '../src/bench/command.js';
import { cpuSeconds, parsePrometheus } from '../src/bench/cluster.js';
import { expandSweeps, knobDefaults, parseSweep, type BenchOptions } from '../src/bench/knobs.js';
import { probeCpu, probeDisk, probeLoopback, probeRoundsMax } from '../src/bench/probe.js';
import { spread } from '../src/bench/report.js';
import { LinkFaults } from '../src/transport/faults.js';

describe('knobs', () => {
  test('a sweep parses each value with its knob\'s parser', () => {
    assert.deepEqual(parseSweep('batch-max=1,8,64'), { knob: 'batchMax', values: [1, 8, 64] });
    assert.deepEqual(parseSweep('fsync=on,off'), { knob: 'fsync', values: [true, false] });
    assert.deepEqual(parseSweep('api=ws,http'), { knob: 'api', values: ['ws', 'http'] });
    assert.throws(() => parseSweep('pipeline=0'), /0 is not in 1\.\.4096/);
    assert.throws(() => parseSweep('pipeline'), /is not NAME=v1,v2/);
  });

  test('sweeps expand to their cross product, the last varying fastest', () => {
    const runs = expandSweeps(knobDefaults, [parseSweep('batch-max=1,8'), parseSweep('pipeline=1,4,16')]);
    assert.deepEqual(runs.map((k) => [k.batchMax, k.pipeline]), [[1, 1], [1, 4], [1, 16], [8, 1], [8, 4], [8, 16]]);
    assert.equal(runs[0].payloadBytes, knobDefaults.payloadBytes);
  });

  test('--quick shortens the runs, and an explicit flag still wins over it', () => {
    const base = { protocol: ['multipaxos' as const], sweep: [], basePort: 20000, seed: 1, progress: false };
    const quick = resolveOptions({ ...base, quick: true });
    assert.equal(quick.durationS, 3);
    assert.equal(quick.repeat, 1);
    const mixed = resolveOptions({ ...base, quick: true, duration: 5, clients: 7 });
    assert.equal(mixed.durationS, 5);
    assert.equal(mixed.clients, 7);
    const full = resolveOptions({ ...base, quick: false });
    assert.equal(full.durationS, knobDefaults.durationS);
    assert.equal(full.repeat, 3);
    assert.throws(() => resolveOptions({ ...base, quick: false, sweep: [parseSweep('batch-max=1'), parseSweep('batch-max=2')] }), /--sweep batch-max is given twice/);
    // A flag and a sweep of the same knob: the sweep would override the flag without a word.
    assert.throws(() => resolveOptions({ ...base, quick: false, batchMax: 8, sweep: [parseSweep('batch-max=1,2')] }), /--batch-max and --sweep batch-max=\.\.\. both set batch-max/);
  });

  test('every knob flag given on the command line reaches the runs\' knobs', () => {
    const cmd = benchCommand();
    let got: BenchOptions | null = null;
    cmd.action((f) => {
      got = resolveOptions(f);
    });
    cmd.parse(['--duration', '5', '--warmup', '1', '--payload', '10', '--delay', '3', '--batch-max', '8', '--read-ratio', '0.5',
      '--clients', '9', '--fsync', 'off', '--api', 'http', '--keys', '77'], { from: 'user' });
    const o = got as BenchOptions | null;
    assert.ok(o !== null);
    assert.deepEqual([o.durationS, o.warmupS, o.payloadBytes, o.delayMs, o.batchMax, o.readRatio, o.clients, o.fsync, o.api, o.keys],
      [5, 1, 10, 3, 8, 0.5, 9, false, 'http', 77]);
  });
});

test('the Prometheus reader keeps every sample, labels included, and skips comments', () => {
  const m = parsePrometheus([
    '# HELP paxlog_peer_bytes_sent Bytes.',
    '# TYPE paxlog_peer_bytes_sent gauge',
    'paxlog_peer_bytes_sent 12345',
    'paxlog_batch_commands_bucket{le="+Inf"} 7',
    'paxlog_batch_commands_sum 99.5',
    'garbage',
    '',
  ].join('\n'));
  assert.equal(m.get('paxlog_peer_bytes_sent'), 12345);
  assert.equal(m.get('paxlog_batch_commands_bucket{le="+Inf"}'), 7);
  assert.equal(m.get('paxlog_batch_commands_sum'), 99.5);
  assert.equal(m.size, 3);
});

test('CPU time of a process grows as it works', () => {
  const before = cpuSeconds(process.pid);
  // Work until this process has used 100 ms of CPU by its own count (bounded: 10 s of wall time).
  const start = process.cpuUsage();
  const deadline = Date.now() + 10_000;
  let x = 0;
  while (Date.now() < deadline) {
    for (let i = 0; i < 100_000; i++) x += Math.sqrt(x + i);
    const used = process.cpuUsage(start);
    if (used.user + used.system >= 100_000) break;
  }
  assert.ok(x > 0);
  const grew = cpuSeconds(process.pid) - before;
  assert.ok(grew >= 0.05, `/proc says ${grew} s of CPU over 100 ms of busy work`);
});

test('the CPU probe reads a CRC rate in the range a processor can do, and refuses a bad round count', () => {
  const c = probeCpu(3);
  assert.equal(c.rounds, 3);
  // WebAssembly's CRC32C on any machine this runs on: above 10 MB/s, below 100 GB/s.
  assert.ok(c.crcMBps > 10 && c.crcMBps < 100_000, `probe ${JSON.stringify(c)}`);
  for (const bad of [0, -1, 1.5, probeRoundsMax + 1, NaN]) assert.throws(() => probeCpu(bad), RangeError);
});

test('the loopback probe times round trips, closes what it opened and refuses a bad round count', async () => {
  const tcp = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;
  const before = tcp();
  const l = await probeLoopback(200);
  assert.equal(l.rounds, 200);
  assert.ok(l.p50Us > 0 && l.p50Us <= l.p99Us && l.p99Us < 1_000_000, `probe ${JSON.stringify(l)}`);
  // A closed server's handle is released at the loop's next close phase, after its 'close'.
  for (let i = 0; i < 100 && tcp() > before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(tcp(), before, 'the probe left a socket or its server open');
  for (const bad of [0, -1, 1.5, probeRoundsMax + 1, NaN]) await assert.rejects(probeLoopback(bad), RangeError);
});

test('the disk probe times its syncs, leaves nothing behind and refuses a bad round count', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-probe-test-'));
  try {
    const d = probeDisk(dir, 50);
    assert.equal(d.dir, dir);
    assert.equal(d.rounds, 50);
    assert.ok(d.p50Ms > 0 && d.p50Ms <= d.p99Ms && d.p99Ms < 10_000, `probe ${JSON.stringify(d)}`);
    assert.deepEqual(fs.readdirSync(dir), []);
    for (const bad of [0, -1, 1.5, probeRoundsMax + 1, NaN]) assert.throws(() => probeDisk(dir, bad), RangeError);
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('spread gives the median (mean of the middle two when even), min and max', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3 });
  assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4 });
  assert.ok(Number.isNaN(spread([]).median));
});

describe('injected link faults', () => {
  test('loss drops about the asked fraction, the same frames for the same seed', () => {
    const pattern = (seed: number) => {
      const f = new LinkFaults(1, { lossProbability: 0.1, delayMs: 0, seed });
      return Array.from({ length: 20_000 }, (_, i) => f.dropFrame(2 + (i % 2)));
    };
    const a = pattern(7);
    const dropped = a.filter(Boolean).length;
    assert.ok(dropped > 1700 && dropped < 2300, `${dropped} of 20000 dropped at p=0.1`);
    assert.deepEqual(pattern(7), a, 'the same seed dropped different frames');
    assert.notDeepEqual(pattern(8), a, 'another seed dropped the same frames');
  });

  test('no loss drops nothing', () => {
    const f = new LinkFaults(1, { lossProbability: 0, delayMs: 0, seed: 1 });
    assert.ok(!f.active);
    for (let i = 0; i < 1000; i++) assert.equal(f.dropFrame(2), false);
    assert.equal(f.framesDropped, 0);
  });

  test('delay holds messages in order for the delay, and refuses past its byte bound', async () => {
    const f = new LinkFaults(1, { lossProbability: 0, delayMs: 30, seed: 1 });
    const seen: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) assert.ok(f.deliver(10, () => seen.push(i)));
    assert.equal(seen.length, 0, 'delivered before the delay');
    assert.equal(f.deliver(64 * 1024 * 1024, () => seen.push(-1)), false, 'a delay bigger than the bound was held');
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    assert.ok(Date.now() - t0 >= 29);
  });

  test('bad fault options are refused', () => {
    assert.throws(() => new LinkFaults(1, { lossProbability: 1, delayMs: 0, seed: 1 }), /not in \[0, 1\)/);
    assert.throws(() => new LinkFaults(1, { lossProbability: 0, delayMs: -1, seed: 1 }), /not in 0\.\.10000/);
  });
});
