// `paxlog bench --quick` end to end, once: real clusters of both protocols and the load
// generator, into a temp directory. It checks the report's shape (manifest, tables, charts),
// never its speed. Ports: 19000-19099.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/paxlog.js');

/** Checks that every opened tag is closed in order: enough to catch a truncated or mangled SVG. */
function assertBalancedXml(text: string, what: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:.-]*)([^>]*?)(\/?)>/g;
  for (let m = tag.exec(text); m !== null; m = tag.exec(text)) {
    const [, closing, name, , selfClosing] = m;
    if (selfClosing === '/') continue;
    if (closing === '/') {
      const open = stack.pop();
      assert.equal(open, name, `${what}: </${name}> closes <${open}>`);
    } else {
      stack.push(name);
    }
  }
  assert.deepEqual(stack, [], `${what}: tags left open`);
}

test('paxlog bench --quick writes a manifest, per-run JSON, a Markdown report and SVG charts', { timeout: 120_000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-bench-test-'));
  try {
    const r = spawnSync(process.execPath, [bin, 'bench', '--quick', '--out', out, '--base-port', '19000', '--no-progress'],
      { encoding: 'utf8', timeout: 110_000 });
    assert.equal(r.status, 0, `bench exited ${r.status} (signal ${r.signal})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);

    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    const m = results.manifest;
    for (const field of ['date', 'gitCommit', 'node', 'cpuModel', 'cores', 'options', 'loadAverage']) {
      assert.ok(m[field] !== undefined && m[field] !== '', `manifest.${field} is missing`);
    }
    assert.equal(m.node, process.version);
    assert.match(m.gitCommit, /^([0-9a-f]{40}|unknown)$/);
    assert.ok(!Number.isNaN(Date.parse(m.date)), `manifest.date ${m.date} is not a date`);
    assert.equal(m.options.quick, true);
    assert.deepEqual(m.options.protocols, ['multipaxos', 'raft']);
    // The disk's sync time, probed at the start and at the end, where the runs keep their data.
    // So are the processor's speed and a loopback round trip.
    for (const p of [m, results.machineEnd]) {
      const d = p.diskSync;
      assert.equal(d.dir, os.tmpdir());
      assert.ok(d.rounds > 0 && d.p50Ms > 0 && d.p50Ms <= d.p99Ms, `disk probe ${JSON.stringify(d)}`);
      assert.ok(p.cpu.rounds > 0 && p.cpu.crcMBps > 0, `CPU probe ${JSON.stringify(p.cpu)}`);
      assert.ok(p.loopback.rounds > 0 && p.loopback.p50Us > 0 && p.loopback.p50Us <= p.loopback.p99Us, `loopback probe ${JSON.stringify(p.loopback)}`);
    }

    // Interleaved: one run of each protocol, Multi-Paxos first, both measured.
    assert.deepEqual(results.runs.map((x: { protocol: string }) => x.protocol), ['multipaxos', 'raft']);
    for (const run of results.runs) {
      assert.equal(run.error, undefined, `the ${run.protocol} run failed: ${run.error}`);
      const seen = { errors: run.errors, shed: run.shed, unanswered: run.unanswered, leader: run.leader, leaderChanged: run.leaderChanged,
        cpuPercentByNode: run.cpuPercentByNode, cpuPercentLoadgen: run.cpuPercentLoadgen, hostCpuMBps: run.hostCpuMBps, windowS: run.windowS };
      assert.ok(run.throughput > 0, `${run.protocol}: no successful request was measured: ${JSON.stringify(seen)}\nstderr:\n${r.stderr}`);
      assert.ok(run.latency.p50 > 0 && run.latency.p50 <= run.latency.p99 && run.latency.p99 <= run.latency.max,
        `${run.protocol}: percentiles out of order: ${JSON.stringify(run.latency)}`);
      assert.equal(run.cpuPercentByNode.length, 3);
      assert.ok(run.peerBytesPerCommand > 0, `${run.protocol}: no peer bytes counted`);
      assert.ok(run.fsyncsPerS > 0, `${run.protocol}: no persist counted`);
      assert.ok(run.meanBatch >= 1, `${run.protocol}: mean batch ${run.meanBatch}`);
      assert.ok(run.hostCpuMBps > 0, `${run.protocol}: host CPU ${run.hostCpuMBps}`);
    }
    assert.equal(results.summary.length, 1);
    assert.ok(results.summary[0].ratio.throughput > 0, 'no Multi-Paxos / Raft ratio');

    const perRun = fs.readdirSync(path.join(out, 'runs')).sort();
    assert.deepEqual(perRun, ['001-multipaxos.json', '002-raft.json']);
    for (const f of perRun) {
      const j = JSON.parse(fs.readFileSync(path.join(out, 'runs', f), 'utf8'));
      assert.equal(j.manifest.gitCommit, m.gitCommit, `${f} has no manifest`);
    }

    const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    assert.match(md, /^# paxlog bench report/);
    assert.match(md, /\| protocol \| runs \| ops\/s \| p50 \| p90 \| p99 \| p99\.9 \| max \|/);
    assert.match(md, /\n\| multipaxos \| 1 \| [\d,]+ \|/);
    assert.match(md, /\n\| raft \| 1 \| [\d,]+ \|/);
    assert.match(md, /Multi-Paxos \/ Raft: throughput \d+\.\d\dx/);
    assert.match(md, /\| disk sync \(4 KiB write \+ fdatasync in .*\) \| at start p50 \d+\.\d{3} ms, p99 \d+\.\d{3} ms; at end p50 /);
    assert.match(md, /\| CPU speed \(CRC32C over 4 KiB in WebAssembly.*\) \| at start \d+ MB\/s; at end \d+ MB\/s \|/);
    assert.match(md, /\| loopback TCP round trip \(.*\) \| at start p50 [\d.]+ us, p99 [\d.]+ us; at end p50 /);

    for (const svg of ['latency-throughput.svg', 'throughput-batch.svg', 'throughput-pipeline.svg']) {
      const text = fs.readFileSync(path.join(out, svg), 'utf8');
      assert.match(text, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, `${svg} does not open as SVG`);
      assert.match(text, /<\/svg>\s*$/, `${svg} does not close`);
      assertBalancedXml(text, svg);
      assert.ok(md.includes(`](${svg})`), `report.md does not show ${svg}`);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('paxlog bench refuses a bad flag with a clear error and exit code 2', () => {
  for (const [args, message] of [
    [['--sweep', 'batch-max=1,x'], /"x" is not a whole number/],
    [['--sweep', 'colour=1'], /"colour" is not a knob/],
    [['--protocol', 'pbft'], /"pbft" is not multipaxos or raft/],
    [['--loss', '1'], /1 is not in \[0, 1\)/],
    [['--nodes', '4'], /"4" is not one of 3, 5/],
  ] as [string[], RegExp][]) {
    const r = spawnSync(process.execPath, [bin, 'bench', ...args], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, `bench ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    assert.match(r.stderr, message, `bench ${args.join(' ')}`);
  }
});

test('paxlog bench refuses a --seed whose later runs would pass serve\'s --fault-seed bound as a bad flag (exit 2), before any run', { timeout: 60_000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-bench-seed-'));
  try {
    const r = spawnSync(process.execPath, [bin, 'bench', '--quick', '--duration', '0.5', '--warmup', '0', '--seed', '2147483648', '--protocol', 'multipaxos,raft',
      '--base-port', '18660', '--out', out, '--no-progress'], { encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
    assert.match(r.stderr, /error: --seed 2147483648: the runs use seeds up to 2147483649 \(seed \+ run index\), past 2147483648; give a smaller --seed/);
    assert.doesNotMatch(r.stderr, /run 1\/2/, 'no run started');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
