// The `paxlog` command: --help everywhere, clear errors for bad flags, `cluster` end to end,
// `status`, and the loud --fsync off. Ports 17500-17599.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bin } from './node-harness.js';

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

test('--help works on the program and on every command', () => {
  const top = run(['--help']);
  assert.equal(top.code, 0);
  for (const cmd of ['serve', 'cluster', 'status', 'sim']) assert.match(top.out, new RegExp(`\\b${cmd}\\b`));
  for (const [cmd, flag] of [['serve', '--peers'], ['cluster', '--nodes'], ['status', '--endpoint'], ['sim', '--seeds']]) {
    const r = run([cmd, '--help']);
    assert.equal(r.code, 0, `${cmd} --help: ${r.err}`);
    assert.match(r.out, new RegExp(flag), `${cmd} --help shows ${flag}`);
  }
});

test('bad flags give one clear error line and exit code 2', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-'));
  const peers = '1=127.0.0.1:17500,2=127.0.0.1:17501,3=127.0.0.1:17502';
  const cases: [string[], RegExp][] = [
    [['serve', '--peers', peers, '--data', dir], /required option '--id <n>'/],
    [['serve', '--id', '0', '--peers', peers, '--data', dir], /0 is not in 1\.\.65535/],
    [['serve', '--id', 'one', '--peers', peers, '--data', dir], /"one" is not a whole number/],
    [['serve', '--id', '1', '--peers', '1=localhost', '--data', dir], /is not ID=HOST:PORT/],
    [['serve', '--id', '1', '--peers', '1=h:1,1=h:2', '--data', dir], /appears twice/],
    [['serve', '--id', '1', '--peers', '1=h:1,2=H:1', '--data', dir], /nodes 1 and 2 have the same address H:1/],
    [['serve', '--id', '4', '--peers', peers, '--data', dir], /--id 4 is not in --peers/],
    [['serve', '--id', '1', '--peers', peers, '--data', dir, '--fsync', 'maybe'], /"maybe" is not on or off/],
    [['serve', '--id', '1', '--peers', peers, '--data', dir, '--protocol', 'pbft'], /Allowed choices are multipaxos, raft/],
    [['serve', '--id', '1', '--peers', peers, '--data', dir, '--kernels', 'gpu'], /Allowed choices are wasm, js/],
    [['cluster', '--nodes', '99'], /99 is not in 1\.\.9/],
    [['status', '--endpoint', 'not a url'], /is not a URL/],
    [['status', '--endpoint', 'http://127.0.0.1:17599'], /cannot reach http:\/\/127\.0\.0\.1:17599\/status: fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:17599\)/],
    [['launch'], /unknown command 'launch'/],
    [['soak', '--snapshot-slots', 'many'], /--snapshot-slots many is not a whole number/],
    [['soak', '--recovery-bound-ms', 'x'], /--recovery-bound-ms x is not in 1..60000/],
  ];
  for (const [args, want] of cases) {
    const r = run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, want, args.join(' '));
  }
  const compact = run(['compact', '--data', `${dir}/no-such-node`]);
  assert.equal(compact.code, 1, compact.err);
  assert.match(compact.err, /error: no log in .*no-such-node/);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** `paxlog cluster` of 3 nodes on `dir`, once it says it is ready: its process, its output so far, and its exit. */
async function startCluster(dir: string, args = ['--nodes', '3', '--base-port', '17510', '--http-base-port', '17520'], env: NodeJS.ProcessEnv = {}):
  Promise<{ child: ChildProcess; out: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [bin, 'cluster', '--data', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 30_000;
  while (!out.includes('Ctrl-C stops every node')) {
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      assert.fail(`cluster never said it was ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, out: () => out, exited };
}

test('cluster starts the nodes, prints their endpoints and curl lines, serves, and stops them all on SIGTERM', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-cluster-'));
  const { child, out: output, exited } = await startCluster(dir);
  const out = output();
  try {
    for (const port of [17520, 17521, 17522]) assert.ok(out.includes(`http://127.0.0.1:${port}`), `endpoint ${port} printed`);
    assert.match(out, /\(a new cluster\)/, 'empty data directories make a new cluster, whose nodes vote at once');
    assert.doesNotMatch(fs.readFileSync(path.join(dir, 'n1', 'node.log'), 'utf8'), /started without/, 'cluster starts its nodes with the V8 flag');
    for (const n of ['n1', 'n2', 'n3']) {
      const size = fs.statSync(path.join(dir, n, 'paxlog.mdb')).size;
      assert.equal(size, 128 * 1024 * 1024, `${n}'s new log file is preallocated (serve's default --preallocate-mib 128): ${size} bytes`);
    }
    assert.match(out, /curl -X PUT --data-binary 'hello' http:\/\/127\.0\.0\.1:17520\/kv\/greeting/);

    let put = 0;
    for (let i = 0; i < 100 && put !== 200; i++) {
      put = (await fetch('http://127.0.0.1:17520/kv/greeting', { method: 'PUT', body: 'hello' })).status;
      if (put !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(put, 200);
    // A follower's read is 503 (retry) while it cannot confirm a leader's lease: on a loaded
    // machine one can lapse between two heartbeats. Any other answer than the value fails.
    let read = await fetch('http://127.0.0.1:17521/kv/greeting');
    for (let i = 0; i < 50 && read.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      read = await fetch('http://127.0.0.1:17521/kv/greeting');
    }
    assert.equal(await read.text(), 'hello');

    const st = run(['status', '--endpoint', 'http://127.0.0.1:17522']);
    assert.equal(st.code, 0, st.err);
    const s = JSON.parse(st.out) as Record<string, unknown>;
    assert.equal(s.id, 3);
    assert.ok((s.leader as number) >= 1);
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output());
  }
  for (const port of [17520, 17521, 17522]) {
    await assert.rejects(fetch(`http://127.0.0.1:${port}/status`), `node at ${port} is gone after SIGTERM`);
  }
  // Started again on the same data: not a new cluster, and the write is still there.
  const again = await startCluster(dir);
  try {
    assert.doesNotMatch(again.out(), /a new cluster/);
    let got = '';
    for (let i = 0; i < 100 && got !== 'hello'; i++) {
      try {
        const r = await fetch('http://127.0.0.1:17521/kv/greeting');
        got = r.status === 200 ? await r.text() : '';
      } catch {
        got = '';
      }
      if (got !== 'hello') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(got, 'hello');
  } finally {
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0, again.out());
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('cluster waits for its nodes by the monotonic clock: a wall clock that jumps or runs fast does not make it give up', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-clock-'));
  // Every process of the cluster sees the wall clock run 30 times too fast: its 15 s would pass
  // in half a second, before a node answers.
  const step = path.join(dir, 'fast-clock.mjs');
  fs.writeFileSync(step, 'const real = Date.now; const t0 = real(); Date.now = () => t0 + (real() - t0) * 30;\n');
  const { child, out, exited } = await startCluster(path.join(dir, 'data'), ['--nodes', '1', '--base-port', '17560', '--http-base-port', '17565'],
    { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${step}` });
  try {
    assert.doesNotMatch(out(), /did not come up/);
    let put = 0;
    for (let i = 0; i < 100 && put !== 200; i++) {
      put = (await fetch('http://127.0.0.1:17565/kv/clock', { method: 'PUT', body: 'stepped' })).status;
      if (put !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(put, 200);
  } finally {
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--fsync off says so loudly in the log and in /status', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-fsync-'));
  const child = spawn(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:17530', '--data', dir,
    '--http-port', '17531', '--fsync', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.on('exit', r));
  try {
    let status: Record<string, unknown> | null = null;
    for (let i = 0; i < 100 && status === null; i++) {
      try {
        status = await (await fetch('http://127.0.0.1:17531/status')).json() as Record<string, unknown>;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(status !== null, `node never answered:\n${out}`);
    assert.equal(status.fsync, 'off');
    assert.match(String(status.warning), /FSYNC IS OFF/);
    // The log is written asynchronously: its lines may reach the pipe after /status answers.
    for (let i = 0; i < 100 && !/FSYNC IS OFF \(--fsync off\)/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /FSYNC IS OFF \(--fsync off\)/);
    assert.match(out, /"level":40/);
    // Started as `node bin/paxlog.js serve`, without the V8 flag its #! line carries: it says so.
    assert.match(out, /node was started without --initial-old-space-size=256/);
    const metrics = await (await fetch('http://127.0.0.1:17531/metrics')).text();
    assert.match(metrics, /^paxlog_fsync_enabled 0$/m);
  } finally {
    child.kill('SIGKILL');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a disk that refuses the preallocation: a clear error, the file cut back, the directory free; --preallocate-mib 0 then starts', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-prealloc-'));
  const data = path.join(dir, 'n1');
  const args = [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:17540', '--data', data, '--http-port', '17541', '--new-cluster'];
  // A file size limit of 8 MiB (ulimit -f counts KiB) stands in for a full disk: writes past it
  // fail with EFBIG (Node ignores SIGXFSZ).
  const refused = spawnSync('bash', ['-c', 'ulimit -f 8192; exec "$0" "$@"', process.execPath, ...args, '--preallocate-mib', '64'],
    { encoding: 'utf8', timeout: 20_000 });
  try {
    assert.equal(refused.status, 1, `exit ${refused.status}\n${refused.stderr}`);
    assert.match(refused.stderr, /could not preallocate 67108864 bytes for the log \(EFBIG[^)]*\); free some space or preallocate less \(serve --preallocate-mib\)/);
    const size = fs.statSync(path.join(data, 'paxlog.mdb')).size;
    assert.ok(size < 1024 * 1024, `the file is cut back to what LMDB wrote: ${size} bytes`);
    assert.equal(fs.existsSync(path.join(data, 'paxlog.lock')), false, 'the directory\'s lock is released');

    const child = spawn(process.execPath, [...args, '--preallocate-mib', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => child.on('exit', r));
    try {
      let put = 0;
      for (let i = 0; i < 100 && put !== 200; i++) {
        try {
          put = (await fetch('http://127.0.0.1:17541/kv/k', { method: 'PUT', body: 'v' })).status;
        } catch {
          put = 0;
        }
        if (put !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(put, 200, `the node on the same directory never took a write:\n${out}`);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Ports 18600-18630 below.

test('serve refuses a default client HTTP port past 65535 (peer port + 1000) as a bad flag (exit 2) instead of listening on a wrapped one', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-httpport-'));
  try {
    const r = spawnSync(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:65000', '--data', path.join(dir, 'n1'), '--new-cluster'],
      { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 2, `exit ${r.status} (0 or null: it was still running after 10 s)\n${r.stderr}`);
    assert.match(r.stderr, /error: the client HTTP port 66000 is not in 1\.\.65535 \(peer port 65000 \+ 1000\); give one \(serve --http-port\)/);
    assert.equal(fs.existsSync(path.join(dir, 'n1', 'paxlog.mdb')), false, 'refused before the log is opened');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('serve refuses a --listen-host that is not an address or a host name (exit 2), before the log is opened', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-listen-'));
  try {
    const r = spawnSync(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:18630', '--listen-host', '[::]', '--data', path.join(dir, 'n1'), '--new-cluster'],
      { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 2, `exit ${r.status}\n${r.stderr}`);
    assert.match(r.stderr, /error: option '--listen-host <addr>' argument '\[::\]' is invalid\. "\[::\]" is not an IP address \(no brackets\) or a host name/);
    assert.equal(fs.existsSync(path.join(dir, 'n1', 'paxlog.mdb')), false, 'refused before the log is opened');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cluster: nodes stop by themselves when the cluster process is killed with SIGKILL (no orphans holding ports)', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-orphans-'));
  const nodes = (): number[] => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return cmd.includes('serve') && cmd.includes('--data') && cmd.some((a) => a.startsWith(dir));
    } catch {
      return false; // gone meanwhile
    }
  }).map(Number);
  try {
    const c = await startCluster(dir);
    assert.equal(nodes().length, 3, 'three nodes run');
    c.child.kill('SIGKILL');
    await c.exited;
    for (let i = 0; nodes().length > 0; i++) {
      assert.ok(i < 200, `nodes still running 20 s after the cluster died: ${nodes().join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    for (const pid of nodes()) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('serve and bench refuse a data or results directory that cannot be made, at once and naming it', () => {
  // Node 20's recursive mkdirSync spun for ever under /proc.
  const serve = spawnSync(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:18628', '--http-port', '18629', '--data', '/proc/paxlog-x/n1', '--new-cluster'],
    { encoding: 'utf8', timeout: 10_000 });
  assert.equal(serve.status, 1, `exit ${serve.status} (null: still running after 10 s)\n${serve.stderr}`);
  assert.match(serve.stderr, /error: cannot make the data directory \/proc\/paxlog-x\/n1: ENOENT: no such file or directory, mkdir '\/proc\/paxlog-x'/);
  const bench = spawnSync(process.execPath, [bin, 'bench', '--quick', '--out', '/proc/paxlog-x', '--no-progress'], { encoding: 'utf8', timeout: 10_000 });
  assert.notEqual(bench.status, 0, `exit ${bench.status}`);
  assert.notEqual(bench.status, null, 'still running after 10 s');
  assert.match(bench.stderr, /mkdir '\/proc\/paxlog-x'/);
});

test('serve refuses a port another node listens on, instead of sharing its connections', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-portinuse-'));
  const first = spawn(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:18600', '--data', path.join(dir, 'a'),
    '--http-port', '18601', '--new-cluster', '--preallocate-mib', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => first.on('exit', r));
  try {
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      try {
        up = (await fetch('http://127.0.0.1:18601/status')).ok;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(up, 'the first node answers');
    for (const [peerPort, httpPort] of [['18600', '18602'], ['18603', '18601']]) {
      const r = spawnSync(process.execPath, [bin, 'serve', '--id', '1', '--peers', `1=127.0.0.1:${peerPort}`, '--data', path.join(dir, `b${peerPort}`),
        '--http-port', httpPort, '--new-cluster', '--preallocate-mib', '0'], { encoding: 'utf8', timeout: 10_000 });
      const taken = peerPort === '18600' ? peerPort : httpPort;
      assert.equal(r.status, 1, `peer ${peerPort} http ${httpPort}: exit ${r.status} (0 or null: it was still running after 10 s)\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`error: cannot listen on 127\\.0\\.0\\.1:${taken} \\(in use`));
    }
  } finally {
    first.kill('SIGKILL');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cluster: a second one on the same data stops its nodes with exit 1 and the reason; one on ports in use or past 65535 refuses with exit 2', { timeout: 90_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-cli-cluster2-'));
  const ports = ['--base-port', '18610', '--http-base-port', '18620'];
  const first = spawn(process.execPath, [bin, 'cluster', '--nodes', '3', '--data', path.join(dir, 'a'), ...ports], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  first.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  first.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => first.on('exit', (code) => r(code)));
  try {
    for (let i = 0; i < 300 && !out.includes('Ctrl-C stops every node'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /Ctrl-C stops every node/, out);

    const sameData = spawnSync(process.execPath, [bin, 'cluster', '--nodes', '3', '--data', path.join(dir, 'a'), '--base-port', '18613', '--http-base-port', '18623'],
      { encoding: 'utf8', timeout: 30_000 });
    assert.equal(sameData.status, 1, `same data: exit ${sameData.status}\n${sameData.stdout}\n${sameData.stderr}`);
    assert.match(sameData.stderr, /node \d exited \(code 1, signal null\); see .*node\.log: error: .* is in use by process/);
    assert.doesNotMatch(sameData.stdout, /Ctrl-C stops every node/);

    const samePorts = spawnSync(process.execPath, [bin, 'cluster', '--nodes', '3', '--data', path.join(dir, 'b'), ...ports], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(samePorts.status, 2, `same ports: exit ${samePorts.status}\n${samePorts.stdout}\n${samePorts.stderr}`);
    assert.match(samePorts.stderr, /error: node 1's peer port 127\.0\.0\.1:18610 cannot be used \(EADDRINUSE\)/);
    assert.doesNotMatch(samePorts.stdout, /Ctrl-C stops every node/, 'it never takes the other cluster\'s nodes for its own');
    assert.equal(fs.existsSync(path.join(dir, 'b', 'n1', 'paxlog.mdb')), false, 'no node was started');

    const past = spawnSync(process.execPath, [bin, 'cluster', '--nodes', '3', '--data', path.join(dir, 'c'), '--base-port', '65000'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(past.status, 2, `base port 65000: exit ${past.status}\n${past.stderr}`);
    assert.match(past.stderr, /error: node 1's client HTTP port 66000 is past 65535/);

    // The first cluster was not disturbed.
    assert.equal((await fetch('http://127.0.0.1:18621/status')).status, 200);
  } finally {
    first.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
