// Defects found reviewing `paxlog bench` against its issue, each pinned by a test that failed
// before its fix. Ports: 27300-27399.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { decodeRequests, encodeResponse } from '../src/api/client-protocol.js';
import hdr from 'hdr-histogram-js';
import type { NodeSample } from '../src/bench/cluster.js';
import { expandSweeps, knobDefaults, parseSweep, tickMsFor, type BenchOptions } from '../src/bench/knobs.js';
import { summarize } from '../src/bench/report.js';
import { derive, makeManifest, type PlannedRun } from '../src/bench/main.js';
import { summarize as summarizeLatency, type LoadConfig, type LoadResult } from '../src/bench/loadgen.js';

const loadgenPath = fileURLToPath(new URL('../src/bench/loadgen.js', import.meta.url));
const bin = fileURLToPath(new URL('../../bin/paxlog.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The load generator as `paxlog bench` runs it: a forked child driven over IPC. */
function startLoadgen(cfg: LoadConfig): { child: ChildProcess; next(type: string): Promise<unknown> } {
  const child = fork(loadgenPath, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const got: { type: string }[] = [];
  child.on('message', (m: { type: string }) => got.push(m));
  return {
    child,
    async next(type) {
      for (let i = 0; i < 400; i++) {
        const j = got.findIndex((m) => m.type === type || m.type === 'error');
        if (j >= 0) {
          const m = got.splice(j, 1)[0];
          if (m.type === 'error') throw new Error(JSON.stringify(m));
          return m;
        }
        await sleep(25);
      }
      throw new Error(`no '${type}' from the load generator`);
    },
  };
}

const openLoop: LoadConfig = {
  api: 'ws', host: '127.0.0.1', ports: [0], mode: 'open', clients: 4, connections: 1, rate: 400, payloadBytes: 20,
  readRatio: 0, read: 'lease', keys: 100, seed: 3, outstandingMax: 100_000,
};

/**
 * Runs an open-loop window in which the server answers for `answerMs`, then stalls (answers
 * nothing) for `stallMs` until 'stop'. Coordinated omission corrected means the stall shows in the
 * latency: the requests due during it were kept waiting at least until the window's end.
 */
async function stallAtEnd(cfg: LoadConfig, setAnswering: (on: boolean) => void, answerMs: number, stallMs: number): Promise<LoadResult> {
  setAnswering(true);
  const lg = startLoadgen(cfg);
  try {
    await lg.next('ready');
    await sleep(300);
    lg.child.send({ type: 'measure' });
    await sleep(answerMs);
    setAnswering(false);
    await sleep(stallMs);
    lg.child.send({ type: 'stop' });
    return ((await lg.next('result')) as { result: LoadResult }).result;
  } finally {
    lg.child.kill('SIGKILL');
  }
}

describe('open loop: a stall at the end of the window shows in the corrected latency', () => {
  test('WebSocket: requests still unanswered at stop are recorded from when they were due, and counted', { timeout: 60_000 }, async () => {
    let answering = false;
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 27300, path: '/client' });
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data: Buffer) => {
        if (!answering) return; // stalled: never answered
        const { requests } = decodeRequests(data);
        ws.send(Buffer.concat(requests.map((r) => encodeResponse(r.id, 200))));
      });
    });
    try {
      const r = await stallAtEnd({ ...openLoop, ports: [27300] }, (on) => (answering = on), 500, 1000);
      assert.ok(r.writesOk > 50, `answered ${r.writesOk}`);
      // The oldest waited about 1 s, and a third of the window's requests were kept waiting by the
      // stall: a p90 of a few ms would hide it.
      assert.ok(r.latency.max >= 800_000, `max ${r.latency.max} us`);
      assert.ok(r.latency.p90 >= 300_000, `p90 ${r.latency.p90} us`);
      // About 400 requests were due in the 1 s stall and never answered.
      assert.ok(r.unanswered > 200, `unanswered ${r.unanswered}`);
      assert.equal(r.latency.count, r.writesOk + r.readsOk + r.unanswered);
    } finally {
      await new Promise((r) => wss.close(r));
    }
  });

  test('WebSocket: a stall that ends in errors shows in the corrected latency too (the errors counted from when they were due)', { timeout: 60_000 }, async () => {
    // The server holds every request for 1 s, then answers those 503 (as a node does for the
    // requests an election kept waiting) and the later ones 200 at once.
    let mode: 'answer' | 'hold' | 'fail' = 'answer';
    const heldBack: { ws: WebSocket; ids: number[] }[] = [];
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 27302, path: '/client' });
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data: Buffer) => {
        const ids = decodeRequests(data).requests.map((r) => r.id);
        if (mode === 'hold') heldBack.push({ ws, ids });
        else ws.send(Buffer.concat(ids.map((id) => encodeResponse(id, 200))));
      });
    });
    const lg = startLoadgen({ ...openLoop, ports: [27302] });
    try {
      await lg.next('ready');
      await sleep(300);
      lg.child.send({ type: 'measure' });
      await sleep(500);
      mode = 'hold';
      await sleep(1000);
      mode = 'fail';
      for (const h of heldBack.splice(0)) h.ws.send(Buffer.concat(h.ids.map((id) => encodeResponse(id, 503, 'no leader'))));
      await sleep(1000);
      lg.child.send({ type: 'stop' });
      const r = ((await lg.next('result')) as { result: LoadResult }).result;
      const failed = Object.values(r.errors).reduce((a, b) => a + b, 0);
      assert.ok(failed > 200, `${failed} answered 503`);
      assert.equal(r.latency.count, r.writesOk + r.readsOk + failed + r.unanswered, 'every request due is in the latency');
      // A sixth of the window's requests waited up to 1 s: p90 and max must say so.
      assert.ok(r.latency.max >= 800_000, `max ${r.latency.max} us`);
      assert.ok(r.latency.p90 >= 200_000, `p90 ${r.latency.p90} us`);
    } finally {
      lg.child.kill('SIGKILL');
      await new Promise((r) => wss.close(r));
    }
  });

  test('HTTP: the request in flight and those queued behind it count at stop too', { timeout: 60_000 }, async () => {
    let answering = false;
    const held: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (answering) res.end();
        else held.push(res);
      });
    });
    await new Promise<void>((r) => server.listen(27301, '127.0.0.1', r));
    try {
      const r = await stallAtEnd({ ...openLoop, api: 'http', ports: [27301], clients: 2 }, (on) => (answering = on), 500, 1000);
      assert.ok(r.writesOk > 50, `answered ${r.writesOk}`);
      assert.ok(r.latency.max >= 800_000, `max ${r.latency.max} us`);
      assert.ok(r.unanswered > 200, `unanswered ${r.unanswered}`);
      assert.equal(r.latency.count, r.writesOk + r.readsOk + r.unanswered);
    } finally {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

/** Pids of processes whose command line holds every one of `parts`. */
function pidsWith(...parts: string[]): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (parts.every((p) => cmd.includes(p))) out.push(Number(d));
  }
  return out;
}

test('a node that dies mid-run fails the run with an error naming it, and leaves no process behind', { timeout: 90_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-bench-review-'));
  const child = spawn(process.execPath, [bin, 'bench', '--protocol', 'multipaxos', '--quick', '--warmup', '0', '--duration', '10',
    '--base-port', '27320', '--out', out, '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    // Once the load generator drives the cluster (its config names the leader's port, 27330..27332).
    for (let i = 0; pidsWith('loadgen.js', '"ports":[2733').length === 0; i++) {
      assert.ok(i < 600, `the run never started: ${stderr}`);
      await sleep(50);
    }
    const victim = pidsWith('paxlog.js', 'serve', '--id 2 ', '127.0.0.1:27320');
    assert.equal(victim.length, 1, `node 2: ${victim}`);
    process.kill(victim[0], 'SIGKILL');
    assert.equal(await exited, 1, stderr);
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    assert.match(results.runs[0].error ?? '', /^node 2 exited during the run \(signal SIGKILL\)/, results.runs[0].error);
    assert.match(stderr, /failed: node 2 exited during the run/);
    assert.deepEqual(pidsWith('127.0.0.1:27320'), [], 'a node is left running');
    assert.deepEqual(pidsWith('loadgen.js', '"ports":[2733'), [], 'the load generator is left running');
  } finally {
    child.kill('SIGKILL');
    for (const pid of pidsWith('127.0.0.1:27320')) process.kill(pid, 'SIGKILL');
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('no latency percentile reads above the largest latency recorded', () => {
  // Settings as the load generator's: values from 1 us, 3 significant digits.
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  h.recordValueWithCount(5000, 998);
  h.recordValueWithCount(60_529, 2); // p99.9 falls in this value's bucket, whose top is 60,543
  const s = summarizeLatency(h);
  assert.equal(s.max, 60_529);
  for (const q of ['p50', 'p90', 'p99', 'p999'] as const) assert.ok(s[q] <= s.max, `${q} ${s[q]} > max ${s.max}`);
  assert.equal(s.p999, 60_529);
  assert.ok(s.p50 >= 5000 && s.p50 <= 5003, `p50 ${s.p50}`);
});

test('fsyncs/s counts LMDB commits, not persists (lmdb-js commits queued persists together as one), and is 0 with --fsync off (persists are still counted, as persistsPerS)', () => {
  const latency = { count: 1, mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1, encoded: '' };
  const result: LoadResult = { windowS: 2, writesOk: 1000, readsOk: 0, errors: {}, shed: 0, unanswered: 0, latency, latencyUncorrected: null, cpuPercent: 1 };
  const sample = (persists: number, atS: number): NodeSample[] => [1, 2, 3].map(() => ({
    metrics: new Map([['paxlog_fsync_latency_seconds_count', persists], ['paxlog_fsync_latency_seconds_sum', persists / 1000],
      ['paxlog_log_commits', persists * 0.6], ['paxlog_peer_bytes_sent', persists * 100]]),
    cpuS: atS / 10, atS,
  }));
  for (const fsync of [false, true]) {
    const p: PlannedRun = { index: 0, repeat: 0, setting: 0, protocol: 'raft', knobs: { ...knobDefaults, fsync } };
    const r = derive(p, result, sample(10, 1), sample(110, 3), 1, false, [], [], []);
    assert.equal(r.fsyncsPerS, fsync ? 90 : 0, `fsync ${fsync}: fsyncs/s`);
    assert.equal(r.fsyncsPerSLeader, fsync ? 30 : 0, `fsync ${fsync}: leader fsyncs/s`);
    assert.equal(r.persistsPerS, 150, `fsync ${fsync}: persists/s`);
    assert.equal(r.peerBytesPerCommand, 30);
    assert.equal(r.hostCpuMBps, null, 'no host CPU sample, no figure');
    const withReads = derive(p, { ...result, readsOk: 1000 }, sample(10, 1), sample(110, 3), 1, false, [], [], [900.4, 1500, 1000.2]);
    assert.equal(withReads.peerBytesPerCommand, 15, 'reads are commands too');
    assert.equal(withReads.hostCpuMBps, 1000, 'the median host CPU sample');
  }
});

test('the report\'s errors count failed answers and the requests shed unsent', () => {
  const latency = { count: 1, mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1, encoded: '' };
  const result: LoadResult = { windowS: 2, writesOk: 1000, readsOk: 0, errors: { 503: 2, 504: 1 }, shed: 5, unanswered: 0, latency, latencyUncorrected: null, cpuPercent: 1 };
  const sample = (atS: number): NodeSample[] => [1, 2, 3].map(() => ({ metrics: new Map(), cpuS: atS / 10, atS }));
  const p: PlannedRun = { index: 0, repeat: 0, setting: 0, protocol: 'raft', knobs: { ...knobDefaults } };
  const run = derive(p, result, sample(1), sample(3), 1, false, [], [], []);
  const o = { ...knobDefaults, protocols: ['raft'], repeat: 1, sweeps: [], quick: false, out: '', basePort: 0, seed: 1, profileDir: null, progress: false } as BenchOptions;
  assert.equal(summarize(o, [knobDefaults], [run])[0].protocols[0].errors, 8);
});

test('too many HTTP clients is a bad flag: one clear error, exit code 2, no run started', { timeout: 60_000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-bench-review-'));
  try {
    for (const args of [['--api', 'http', '--clients', '5000'], ['--api', 'http', '--sweep', 'clients=8,5000'], ['--sweep', 'api=ws,http', '--clients', '4097']]) {
      const r = spawnSync(process.execPath, [bin, 'bench', ...args, '--out', out, '--base-port', '27390', '--no-progress'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 2, `bench ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
      assert.match(r.stderr, /^error: --clients (5000|4097) over HTTP opens that many sockets; at most 4096\n/, args.join(' '));
      assert.doesNotMatch(r.stderr, /run 1\//, 'a run started');
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('a run\'s knobs are the knobs only, not the bench\'s other options (its protocols, output directory)', () => {
  const o = { ...knobDefaults, protocols: ['multipaxos', 'raft'], repeat: 3, sweeps: [], quick: false, out: '/x', basePort: 27200, seed: 1,
    profileDir: null, progress: false };
  const settings = expandSweeps(o, [parseSweep('batch-max=1,64')]);
  assert.deepEqual(settings, [{ ...knobDefaults, batchMax: 1 }, { ...knobDefaults, batchMax: 64 }]);
});

test('the manifest names paxlog\'s own git commit, whatever directory the bench is started from', () => {
  const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
  const ours = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  // Started from inside another git repository: its commit is not the code measured.
  const other = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-bench-review-git-'));
  const cwd = process.cwd();
  try {
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.email=r@example.org', '-c', 'user.name=r', ...args], { cwd: other, encoding: 'utf8' }).trim();
    git('init', '-q');
    git('commit', '-q', '--allow-empty', '-m', 'another project');
    assert.notEqual(git('rev-parse', 'HEAD'), ours);
    process.chdir(other);
    const o = { ...knobDefaults, protocols: ['raft' as const], repeat: 1, sweeps: [], quick: true, out: other, basePort: 27200, seed: 1, profileDir: null, progress: false };
    const probe = { diskSync: { dir: other, rounds: 1, p50Ms: 0.1, p99Ms: 0.1 }, cpu: { crcMBps: 1000, rounds: 1 }, loopback: { rounds: 1, p50Us: 50, p99Us: 50 } };
    assert.equal(makeManifest(o, probe).gitCommit, ours);
  } finally {
    process.chdir(cwd);
    fs.rmSync(other, { recursive: true, force: true });
  }
});

test('a protocol that completed nothing gets no ratio (it printed as Infinityx) and is named; with an injected delay the nodes\' tick grows to twice it', () => {
  const latency = { count: 1, mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1, encoded: '' };
  const sample = (atS: number): NodeSample[] => [1, 2, 3].map(() => ({ metrics: new Map(), cpuS: atS / 10, atS }));
  const runOf = (protocol: 'raft' | 'multipaxos', writesOk: number) => derive({ index: 0, repeat: 0, setting: 0, protocol, knobs: { ...knobDefaults } },
    { windowS: 2, writesOk, readsOk: 0, errors: {}, shed: 0, unanswered: 0, latency, latencyUncorrected: null, cpuPercent: 1 }, sample(1), sample(3), 1, false, [], [], []);
  const o = { ...knobDefaults, protocols: ['multipaxos', 'raft'], repeat: 1, sweeps: [], quick: false, out: '', basePort: 0, seed: 1, profileDir: null, progress: false } as BenchOptions;
  const none = summarize(o, [knobDefaults], [runOf('multipaxos', 1000), runOf('raft', 0)])[0];
  assert.equal(none.ratio, null);
  assert.match(none.line, /raft completed no request/);
  assert.doesNotMatch(none.line, /Infinity/);
  const both = summarize(o, [knobDefaults], [runOf('multipaxos', 1000), runOf('raft', 500)])[0];
  assert.equal(both.ratio?.throughput, 2);
  assert.deepEqual([0, 5, 10, 100, 1000].map(tickMsFor), [20, 20, 20, 200, 2000]);
});
