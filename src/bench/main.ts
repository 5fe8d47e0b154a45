// `paxlog bench`: real clusters, a load generator in its own process, and a fair comparison.
//
// Fairness: every (setting, protocol) runs `repeat` times, and the runs are interleaved
// (repeat 1: A B at each setting, then repeat 2: A B ...), so slow drift of a shared machine
// falls on both protocols alike. Each run starts a new cluster on empty data directories.
// The report gives medians with their spread (min..max) and the ratio of the medians.

import assert from 'node:assert/strict';
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import type { ProtocolName } from '../protocol/types.js';
import { BenchCluster, type NodeSample } from './cluster.js';
import { expandSweeps, type BenchOptions, type RunKnobs } from './knobs.js';
import { cpuBurst, probeMachine, type MachineProbe } from './probe.js';
import type { LoadConfig, LoadResult } from './loadgen.js';
import { labelOf, spread, summarize, writeReport, type RunRecord } from './report.js';
import { makeDirs } from '../storage/dirs.js';
import { faultSeedMax, httpClientsMax, runsMax } from './command.js';

const loadgenPath = fileURLToPath(new URL('./loadgen.js', import.meta.url));
/** paxlog's source tree (this file is dist/src/bench/main.js in it). */
const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));
/** Seconds a run spends outside its warmup and window (start, election, stop), for the progress bar. */
const runOverheadS = 3;
/** Open-loop requests in flight at most; beyond it requests are shed and counted. */
const outstandingMax = 200_000;

/** Clusters running now (at most one); killed if the harness exits or is interrupted. */
const live = new Set<BenchCluster>();

/** Kills every node still running: no benchmark leaves processes behind, even on Ctrl-C. */
function killLive(): void {
  for (const c of live) c.killNow();
  live.clear();
}
process.on('exit', killLive);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping the benchmark cluster\n`);
    killLive();
    process.exit(130);
  });
}

/** What a bench ran, where and when; the machine's probes (diskSync, cpu, loopback) as they read at the start. */
export interface Manifest extends MachineProbe {
  tool: 'paxlog bench';
  date: string;
  gitCommit: string;
  /** True if the work tree had uncommitted changes. */
  gitDirty: boolean;
  node: string;
  cpuModel: string;
  cores: number;
  /** 1-, 5- and 15-minute load averages when the bench started: a busy machine reads slow. */
  loadAverage: number[];
  argv: string[];
  options: BenchOptions;
}

export interface PlannedRun {
  index: number;
  repeat: number;
  setting: number;
  protocol: ProtocolName;
  knobs: RunKnobs;
}

export async function benchMain(o: BenchOptions): Promise<number> {
  const settings = expandSweeps(o, o.sweeps);
  const plan: PlannedRun[] = [];
  for (let repeat = 0; repeat < o.repeat; repeat++) {
    settings.forEach((knobs, setting) => {
      for (const protocol of o.protocols) plan.push({ index: plan.length, repeat, setting, protocol, knobs });
    });
  }
  // resolveOptions refused these as bad flags.
  assert.ok(plan.length <= runsMax && o.seed + plan.length - 1 <= faultSeedMax, 'runs and seeds within bounds');
  assert.ok(settings.every((k) => !(k.api === 'http' && k.mode === 'closed' && k.clients > httpClientsMax)), 'HTTP clients within bounds');

  makeDirs(path.join(o.out, 'runs'));
  // Per-run files of an earlier bench into the same directory would read as this one's.
  for (const f of fs.readdirSync(path.join(o.out, 'runs'))) {
    if (/^\d{3,}-(multipaxos|raft)\.json$/.test(f)) fs.rmSync(path.join(o.out, 'runs', f));
  }
  const manifest = makeManifest(o, await probeMachine(os.tmpdir()));
  const estimateS = plan.reduce((s, r) => s + r.knobs.warmupS + r.knobs.durationS + runOverheadS, 0);
  process.stderr.write(`paxlog bench: ${plan.length} runs (${settings.length} settings x ${o.protocols.length} protocols x ${o.repeat} repeats), ` +
    `about ${Math.ceil(estimateS)} s; results in ${o.out}\n`);

  const bar = o.progress && process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: 'bench [{bar}] {percentage}% | run {run}/{runs} {label} | eta {eta_formatted}', stream: process.stderr },
      cliProgress.Presets.shades_classic)
    : null;
  bar?.start(Math.ceil(estimateS), 0, { run: 0, runs: plan.length, label: '' });
  const t0 = performance.now();
  const ticker = bar !== null ? setInterval(() => bar.update(Math.min(Math.ceil(estimateS), (performance.now() - t0) / 1000)), 250) : null;

  const records: RunRecord[] = [];
  let failed = 0;
  try {
    for (const p of plan) {
      const label = `${p.protocol} ${labelOf(o, p.knobs)}`;
      bar?.update({ run: p.index + 1, label });
      if (bar === null) process.stderr.write(`run ${p.index + 1}/${plan.length}: ${label} (repeat ${p.repeat + 1})\n`);
      let rec: RunRecord;
      try {
        rec = await runOne(o, p);
      } catch (e) {
        failed++;
        rec = { index: p.index, repeat: p.repeat, setting: p.setting, protocol: p.protocol, knobs: p.knobs, error: (e as Error).message };
        if (bar === null) process.stderr.write(`  failed: ${(e as Error).message.split('\n')[0]}\n`);
      }
      records.push(rec);
      fs.writeFileSync(path.join(o.out, 'runs', `${String(p.index + 1).padStart(3, '0')}-${p.protocol}.json`),
        JSON.stringify({ manifest, run: rec }, null, 2) + '\n');
      if (bar === null && rec.error === undefined) {
        process.stderr.write(`  ${Math.round(rec.throughput!)} ops/s, p50 ${fmtUs(rec.latency!.p50)}, p99 ${fmtUs(rec.latency!.p99)}\n`);
      }
    }
  } finally {
    if (ticker !== null) clearInterval(ticker);
    bar?.update(Math.ceil(estimateS));
    bar?.stop();
  }

  const summary = summarize(o, settings, records);
  // Probed again at the end: a disk or host that slowed down during a long sweep shows here.
  const machineEnd = await probeMachine(os.tmpdir());
  fs.writeFileSync(path.join(o.out, 'results.json'), JSON.stringify({ manifest, machineEnd, summary, runs: records }, null, 2) + '\n');
  const files = await writeReport(o.out, manifest, machineEnd, settings, summary, records);
  process.stdout.write(`wrote ${['results.json', ...files].map((f) => path.join(o.out, f)).join(', ')}\n`);
  for (const s of summary) if (s.line !== '') process.stdout.write(s.line + '\n');
  if (failed > 0) process.stderr.write(`${failed} of ${plan.length} runs failed; see their errors in results.json\n`);
  return failed > 0 ? 1 : 0;
}

async function runOne(o: BenchOptions, p: PlannedRun): Promise<RunRecord> {
  const k = p.knobs;
  // Each run gets its own 20 ports, so a port in TIME_WAIT from the last run is never reused at once.
  const basePort = o.basePort + (p.index % 50) * 20;
  const profileDir = o.profileDir === null ? null : path.resolve(o.profileDir, `run-${String(p.index + 1).padStart(3, '0')}-${p.protocol}`);
  const cluster = new BenchCluster(p.protocol, k, basePort, o.seed + p.index, profileDir);
  let lg: ChildProcess | null = null;
  live.add(cluster);
  cluster.start();
  // Every wait of the run ends at once, with an error naming the node, if a node dies.
  const unlessDied = <T>(p: Promise<T>): Promise<T> => Promise.race([p, cluster.died]);
  try {
    const leader = await cluster.leader(20_000);
    // The leader first: with fewer connections than nodes, it still gets one.
    const targets = k.connect === 'all' ? [leader, ...cluster.procs.map((_, i) => i + 1).filter((id) => id !== leader)] : [leader];
    const cfg: LoadConfig = {
      api: k.api, host: '127.0.0.1', mode: k.mode, clients: k.clients, ports: targets.map((id) => cluster.httpPort(id)),
      connections: k.connections > 0 ? k.connections : Math.min(k.clients, 8), rate: k.rate, payloadBytes: k.payloadBytes,
      readRatio: k.readRatio, read: k.read, keys: k.keys, seed: o.seed + p.index, outstandingMax,
    };
    const child = fork(loadgenPath, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    lg = child;
    const messages = inbox(child);
    await unlessDied(messages.next('ready', 20_000));
    await unlessDied(sleep(k.warmupS * 1000));
    const before = await unlessDied(cluster.sample());
    child.send({ type: 'measure' });
    const inFlight: number[] = [];
    const holes: number[] = [];
    const hostCpu: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sleep(250);
        // Only inside the window, as the leader's samples below.
        if (sampling) hostCpu.push(cpuBurst(3));
        const s = await cluster.status(leader);
        if (s !== null && sampling) {
          inFlight.push(s.inFlight);
          holes.push(s.holes);
        }
      }
    })();
    try {
      await unlessDied(sleep(k.durationS * 1000));
    } finally {
      sampling = false;
    }
    child.send({ type: 'stop' });
    const [after, msg] = await unlessDied(Promise.all([cluster.sample(), messages.next('result', 15_000)]));
    await sampler;
    cluster.throwIfDead();
    const result = (msg as { result: LoadResult }).result;
    const leaders = await Promise.all(cluster.procs.map((_, i) => cluster.status(i + 1)));
    return derive(p, result, before, after, leader, leaders.some((s) => s === null || s.leader !== leader), inFlight, holes, hostCpu);
  } finally {
    if (lg !== null && lg.exitCode === null) lg.kill('SIGKILL');
    await cluster.stop();
    live.delete(cluster);
  }
}

export function derive(p: PlannedRun, r: LoadResult, before: NodeSample[], after: NodeSample[], leader: number,
  leaderChanged: boolean, inFlight: number[], holes: number[], hostCpu: number[]): RunRecord {
  const w = r.windowS;
  const delta = (i: number, name: string): number => (after[i].metrics.get(name) ?? NaN) - (before[i].metrics.get(name) ?? NaN);
  const sum = (name: string): number => before.reduce((s, _, i) => s + delta(i, name), 0);
  const l = leader - 1;
  const commands = r.writesOk + r.readsOk;
  return {
    index: p.index, repeat: p.repeat, setting: p.setting, protocol: p.protocol, knobs: p.knobs,
    windowS: w,
    throughput: commands / w,
    writesPerS: r.writesOk / w,
    readsPerS: r.readsOk / w,
    errors: r.errors,
    shed: r.shed,
    unanswered: r.unanswered,
    latency: r.latency,
    latencyUncorrected: r.latencyUncorrected,
    leader,
    leaderChanged,
    // Over the interval between the two samples of the nodes' CPU time, not the load generator's
    // window: the two are close, not the same.
    cpuPercentByNode: before.map((b, i) => ((after[i].cpuS - b.cpuS) / (after[i].atS - b.atS)) * 100),
    cpuPercentLeader: ((after[l].cpuS - before[l].cpuS) / (after[l].atS - before[l].atS)) * 100,
    cpuPercentLoadgen: r.cpuPercent,
    // Per command, as the issue asks: reads (a quorum read's heartbeat round) cost peer bytes too.
    peerBytesPerCommand: r.writesOk + r.readsOk > 0 ? sum('paxlog_peer_bytes_sent') / (r.writesOk + r.readsOk) : null,
    persistsPerS: sum('paxlog_fsync_latency_seconds_count') / w,
    // A persist is synced only with fsync on; with it off nothing is synced (LMDB noSync).
    fsyncsPerS: p.knobs.fsync ? sum('paxlog_log_commits') / w : 0,
    fsyncsPerSLeader: p.knobs.fsync ? delta(l, 'paxlog_log_commits') / w : 0,
    persistMsLeader: delta(l, 'paxlog_fsync_latency_seconds_count') > 0
      ? (delta(l, 'paxlog_fsync_latency_seconds_sum') / delta(l, 'paxlog_fsync_latency_seconds_count')) * 1000 : null,
    meanBatch: delta(l, 'paxlog_batch_commands_count') > 0 ? delta(l, 'paxlog_batch_commands_sum') / delta(l, 'paxlog_batch_commands_count') : null,
    slotsInFlightMean: inFlight.length > 0 ? inFlight.reduce((a, b) => a + b, 0) / inFlight.length : null,
    slotsInFlightMax: inFlight.length > 0 ? Math.max(...inFlight) : null,
    holesMean: holes.length > 0 ? holes.reduce((a, b) => a + b, 0) / holes.length : null,
    holesMax: holes.length > 0 ? Math.max(...holes) : null,
    hostCpuMBps: hostCpu.length > 0 ? Math.round(spread(hostCpu).median) : null,
    framesDroppedInjected: sum('paxlog_peer_frames_dropped_injected'),
    framesDroppedTransport: sum('paxlog_peer_frames_dropped'),
  };
}

/** Messages from a child, awaited by type; an exit or timeout rejects with a clear reason. */
function inbox(child: ChildProcess): { next(type: string, timeoutMs: number): Promise<unknown> } {
  const got: { type: string }[] = [];
  let wake: (() => void) | null = null;
  let exited: string | null = null;
  child.on('message', (m: { type: string }) => {
    got.push(m);
    wake?.();
  });
  child.on('exit', (code, signal) => {
    exited = `the load generator exited (code ${code}, signal ${signal})`;
    wake?.();
  });
  return {
    async next(type, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const err = got.find((m) => m.type === 'error') as { message?: string } | undefined;
        if (err !== undefined) throw new Error(`load generator: ${err.message}`);
        const i = got.findIndex((m) => m.type === type);
        if (i >= 0) return got.splice(i, 1)[0];
        if (exited !== null) throw new Error(exited);
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`no '${type}' from the load generator within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = null;
      }
    },
  };
}

/** The manifest of a bench of `o`, on a machine that read `probe` (probeMachine) at the start. */
export function makeManifest(o: BenchOptions, probe: MachineProbe): Manifest {
  const git = (args: string[]): string => {
    try {
      // In paxlog's own tree, the code measured: not the directory the bench was started from.
      return execFileSync('git', args, { cwd: packageRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return 'unknown';
    }
  };
  const cpus = os.cpus();
  return {
    tool: 'paxlog bench', date: new Date().toISOString(), gitCommit: git(['rev-parse', 'HEAD']),
    gitDirty: git(['status', '--porcelain', '--untracked-files=no']) !== '', node: process.version,
    cpuModel: cpus[0]?.model ?? 'unknown', cores: cpus.length, loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    ...probe,
    argv: process.argv.slice(2), options: o,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function fmtUs(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${Math.round(us)} us`;
}
