// `npm run soak -- --minutes M [--protocol P] [--nodes 3|5] [--seed S] [--base-port N] [--snapshot-slots N]
// [--recovery-bound-ms MS]`: a cluster
// of real `paxlog serve` processes under load from 16 clients (unique values on shared keys, some
// linearizable reads), whose leader is killed with SIGKILL every 10 +- 5 s (drawn from the seed) and
// restarted a second or two later. Every operation's call, response and outcome is recorded. At the
// end the load stops, every node is brought up and must converge, every key is read back, and the
// soak checks: the history is linearizable (src/sim/linearizability.ts), no acknowledged write was
// lost, every node holds the same values, and the p99 time from a kill to the first acknowledged
// write called after it is at most two election timeouts (--recovery-bound-ms). Exit 0 if all hold, 1 if not, 2 for bad flags.
//
// Clients give up on a request after clientTimeoutMs (its outcome is then unknown) so that a write
// forwarded to a dead leader does not hold a client for the node's whole request timeout. A
// recovery prober, active only between a kill and the first acknowledged write after it, starts a
// write every 10 ms (not waiting for the last) with a short timeout, so the recovery time is
// measured, not sampled.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serveNodeFlags } from '../node/v8-flags.js';
import { Prng } from '../sim/prng.js';
import { soakDefaults, soakElectionTimeoutMs, soakTickMs } from './defaults.js';
import { checkHistory, History, lostWrites, percentile, recoveryTimesMs, type Operation } from './history.js';

const bin = fileURLToPath(new URL('../../../bin/paxlog.js', import.meta.url));
const clients = 16;
/** Keys the clients share; values are unique, so a read names the write it saw. */
const keyCount = 64;
const readFraction = 0.2;
const clientTimeoutMs = 1000;
const proberTimeoutMs = 300;
/** Probes in flight at most (one leaves every 10 ms while recovering, each waits proberTimeoutMs at most). */
const probesInFlightMax = 32;
const killIntervalMs = { min: 5_000, max: 15_000 };
const restartDelayMs = { min: 1_000, max: 2_000 };
/** How long the end of the soak waits for every node to converge. */
const convergeTimeoutMs = 30_000;
/** Output lines kept per node, printed when a node misbehaves. */
const nodeOutputBytesMax = 16 * 1024;

export interface SoakOptions {
  minutes: number;
  protocol: 'multipaxos' | 'raft';
  nodes: 3 | 5;
  seed: number;
  /** Peer port of node 1 (node i: basePort + i - 1); client HTTP ports start at basePort + 10. */
  basePort: number;
  /** Nodes snapshot and trim their logs every this many applied slots, so a restarted node often
   *  lags behind its peers' trimmed point and catches up by snapshot transfer. */
  snapshotSlots: number;
  /** The soak fails if the p99 recovery after a kill exceeds this (ms). Default: two election
   *  timeouts. With few kills the p99 is their maximum, and one split vote (both survivors
   *  campaigning in the same tick, then backing off) is a legal outcome that costs more. */
  recoveryBoundMs: number;
}

export interface SoakResult {
  ok: boolean;
  problems: string[];
  summary: Record<string, unknown>;
}

class UsageError extends Error {}

export function parseSoakArgs(argv: string[]): SoakOptions {
  let v;
  try {
    v = parseArgs({
      args: argv, strict: true, allowPositionals: false, options: {
        minutes: { type: 'string', default: soakDefaults.minutes },
        protocol: { type: 'string', default: soakDefaults.protocol },
        nodes: { type: 'string', default: soakDefaults.nodes },
        seed: { type: 'string', default: soakDefaults.seed },
        'base-port': { type: 'string', default: soakDefaults['base-port'] },
        'snapshot-slots': { type: 'string', default: soakDefaults['snapshot-slots'] },
        'recovery-bound-ms': { type: 'string', default: soakDefaults['recovery-bound-ms'] },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const minutes = Number(v.minutes);
  if (!(minutes > 0 && minutes <= 24 * 60)) throw new UsageError(`--minutes ${v.minutes} is not in (0, 1440]`);
  if (v.protocol !== 'multipaxos' && v.protocol !== 'raft') throw new UsageError(`--protocol ${v.protocol} is not multipaxos or raft`);
  if (v.nodes !== '3' && v.nodes !== '5') throw new UsageError(`--nodes ${v.nodes} is not 3 or 5`);
  const seed = Number(v.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed ${v.seed} is not a whole number`);
  const basePort = Number(v['base-port']);
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65000) throw new UsageError(`--base-port ${v['base-port']} is not in 1024..65000`);
  const snapshotSlots = Number(v['snapshot-slots']);
  if (!Number.isInteger(snapshotSlots) || snapshotSlots < 0) throw new UsageError(`--snapshot-slots ${v['snapshot-slots']} is not a whole number`);
  const recoveryBoundMs = Number(v['recovery-bound-ms']);
  if (!Number.isInteger(recoveryBoundMs) || recoveryBoundMs < 1 || recoveryBoundMs > 60_000) {
    throw new UsageError(`--recovery-bound-ms ${v['recovery-bound-ms']} is not in 1..60000`);
  }
  return { minutes, protocol: v.protocol, nodes: Number(v.nodes) as 3 | 5, seed, basePort, snapshotSlots, recoveryBoundMs };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The cluster's processes. Every process is killed by stopAll(), also when the soak fails. */
class Cluster {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-soak-'));
  /** Running processes by node id. */
  readonly procs = new Map<number, ChildProcess>();
  /** The last output of each node (bounded by nodeOutputBytesMax). */
  readonly output = new Map<number, string>();
  /** Exits nobody asked for (a node that crashed by itself is a finding). */
  readonly unexpectedExits: string[] = [];
  private readonly killing = new Set<ChildProcess>();

  constructor(readonly o: SoakOptions) {}

  get ids(): number[] {
    return Array.from({ length: this.o.nodes }, (_, i) => i + 1);
  }

  url(id: number, p: string): string {
    return `http://127.0.0.1:${this.o.basePort + 10 + id - 1}${p}`;
  }

  start(id: number): void {
    const peers = this.ids.map((i) => `${i}=127.0.0.1:${this.o.basePort + i - 1}`).join(',');
    const args = [...serveNodeFlags, bin, 'serve', '--id', String(id), '--peers', peers, '--data', path.join(this.dir, `n${id}`),
      '--http-port', String(this.o.basePort + 10 + id - 1), '--protocol', this.o.protocol, '--tick-ms', String(soakTickMs),
      '--request-timeout-ms', '2000', '--log-level', 'warn', '--snapshot-slots', String(this.o.snapshotSlots)];
    // --stop-with-stdin: if the soak dies, even by SIGKILL, its nodes stop too.
    const child = spawn(process.execPath, [...args, '--stop-with-stdin'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PAXLOG_SECRET: 'soak-secret' } });
    const keep = (d: Buffer) => this.output.set(id, ((this.output.get(id) ?? '') + d.toString()).slice(-nodeOutputBytesMax));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('exit', (code, signal) => {
      if (this.procs.get(id) === child) this.procs.delete(id);
      if (!this.killing.has(child)) this.unexpectedExits.push(`node ${id} exited by itself (code ${code}, signal ${signal})`);
    });
    this.procs.set(id, child);
  }

  async kill(id: number): Promise<void> {
    const child = this.procs.get(id);
    if (child === undefined) return;
    this.killing.add(child);
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((id) => this.kill(id)));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async status(id: number): Promise<Record<string, unknown> | null> {
    try {
      const r = await fetch(this.url(id, '/status'), { signal: AbortSignal.timeout(1000) });
      return r.ok ? await r.json() as Record<string, unknown> : null;
    } catch {
      return null;
    }
  }

  /** Snapshots taken and installed by node `id` since its process started (null if it did not answer). */
  async snapshotCounts(id: number): Promise<{ taken: number; installed: number } | null> {
    try {
      const r = await fetch(this.url(id, '/metrics'), { signal: AbortSignal.timeout(1000) });
      if (!r.ok) return null;
      const text = await r.text();
      const read = (name: string): number => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
      return { taken: read('paxlog_snapshots_taken_total'), installed: read('paxlog_snapshots_installed_total') };
    } catch {
      return null;
    }
  }

  /** The leader every running node agrees on, or 0. */
  async leader(): Promise<number> {
    const ids = [...this.procs.keys()];
    const ss = await Promise.all(ids.map((id) => this.status(id)));
    if (ss.some((s) => s === null)) return 0;
    const leaders = new Set(ss.map((s) => s!.leader as number));
    const l = [...leaders][0];
    return leaders.size === 1 && l !== 0 && ss.some((s) => s!.id === l && s!.role === 'leader') ? l : 0;
  }

  /** Polls until `check` gives a value, or returns undefined after timeoutMs. */
  async waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined || performance.now() > deadline) return v;
      await sleep(50);
    }
  }
}

/** One HTTP operation, recorded in the history with its outcome. */
async function perform(c: Cluster, h: History, node: number, kind: 'write' | 'read', key: string, value: string | null, timeoutMs: number): Promise<Operation> {
  const op = h.invoke(kind, key, value, performance.now());
  try {
    const r = kind === 'write'
      ? await fetch(c.url(node, `/kv/${key}`), { method: 'PUT', body: value!, signal: AbortSignal.timeout(timeoutMs) })
      : await fetch(c.url(node, `/kv/${key}`), { signal: AbortSignal.timeout(timeoutMs) });
    const body = await r.text();
    const now = performance.now();
    if (r.status === 200) h.complete(op, 'ok', now, kind === 'read' ? body : undefined);
    else if (r.status === 404 && kind === 'read') h.complete(op, 'ok', now, null);
    else if (r.status === 503) h.complete(op, 'failed', now);
    else if (r.status === 504) h.complete(op, 'unknown', now);
    else throw new Error(`unexpected answer ${r.status} ${body} to ${kind} ${key} on node ${node}`);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('unexpected answer')) throw e;
    // A refused connection never reached the node: surely not applied. Anything else (a reset,
    // our own timeout) may have reached it.
    const code = ((e as Error).cause as { code?: string } | undefined)?.code;
    h.complete(op, code === 'ECONNREFUSED' ? 'failed' : 'unknown', performance.now());
  }
  return op;
}

export async function runSoak(o: SoakOptions, print: (line: string) => void): Promise<SoakResult> {
  const c = new Cluster(o);
  const rng = new Prng(o.seed);
  const h = new History();
  const problems: string[] = [];
  const kills: { atMs: number; node: number }[] = [];
  /** Snapshots taken and installed, summed over every node process that ran (read from /metrics before each kill and at the end). */
  const snapshots = { taken: 0, installed: 0 };
  const countSnapshots = async (ids: number[]): Promise<void> => {
    for (const id of ids) {
      const n = await c.snapshotCounts(id);
      if (n !== null) { snapshots.taken += n.taken; snapshots.installed += n.installed; }
    }
  };
  const durationMs = o.minutes * 60_000;
  let stop = false;
  let recovering = false;
  let valueSeq = 0;
  const counts = { write: { ok: 0, failed: 0, unknown: 0 }, read: { ok: 0, failed: 0, unknown: 0 } };

  // However the soak ends (an error, Ctrl-C, SIGTERM), no node outlives it.
  const onExit = () => {
    for (const p of c.procs.values()) p.kill('SIGKILL');
  };
  const onSignal = (signal: NodeJS.Signals) => {
    print(`soak: ${signal}: stopping every node`);
    onExit();
    fs.rmSync(c.dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    print(`soak: ${o.protocol}, ${o.nodes} nodes, ${o.minutes} min, seed ${o.seed}, ${clients} clients, ${keyCount} keys, ` +
      `kill the leader every ${killIntervalMs.min / 1000}..${killIntervalMs.max / 1000} s; data in ${c.dir}`);
    for (const id of c.ids) c.start(id);
    if (await c.waitFor(async () => ((await c.leader()) !== 0 ? true : undefined), 20_000) === undefined) {
      throw new Error('no leader within 20 s of starting the cluster');
    }

    const client = async (n: number): Promise<void> => {
      const r = rng.fork();
      while (!stop && !h.full) {
        const node = c.ids[r.int(0, c.ids.length)];
        const key = `k${r.int(0, keyCount)}`;
        const read = r.chance(readFraction);
        const op = await perform(c, h, node, read ? 'read' : 'write', key, read ? null : `c${n}-${valueSeq++}`, clientTimeoutMs);
        counts[op.kind][op.outcome]++;
        if (op.outcome !== 'ok') await sleep(10); // a node that refused us is likely still down
      }
    };
    // A probe leaves every 10 ms while recovering, without waiting for the last one: a probe that a
    // follower forwarded to the dead leader waits out its timeout, and a prober that waited on it
    // would add up to that timeout to the recovery it measures.
    const prober = async (): Promise<void> => {
      const r = rng.fork();
      const probes = new Set<Promise<void>>();
      /** The first probe that failed the soak (an answer no node should give), rethrown at the end. */
      let failure: unknown = null;
      while (!stop && !h.full) {
        if (recovering && probes.size < probesInFlightMax) {
          const kill = kills.length;
          const node = [...c.procs.keys()][r.int(0, c.procs.size)];
          const probe = perform(c, h, node, 'write', `k${r.int(0, keyCount)}`, `p-${valueSeq++}`, proberTimeoutMs).then((op) => {
            counts.write[op.outcome]++;
            if (op.outcome === 'ok' && kills.length === kill) recovering = false;
          }, (e: unknown) => {
            failure ??= e;
          });
          probes.add(probe);
          void probe.then(() => probes.delete(probe));
        }
        await sleep(10);
      }
      await Promise.all(probes);
      if (failure !== null) throw failure;
    };
    const killer = async (): Promise<void> => {
      const r = rng.fork();
      const endAt = performance.now() + durationMs;
      for (;;) {
        const wait = r.int(killIntervalMs.min, killIntervalMs.max + 1);
        if (performance.now() + wait >= endAt) break;
        await sleep(wait);
        // Kill only a leader that every node agrees on, with every node up: a kill must cost one node, not a quorum.
        const leader = await c.waitFor(async () => (c.procs.size === o.nodes ? (await c.leader()) || undefined : undefined), 10_000);
        if (leader === undefined) {
          problems.push(`no agreed leader with all nodes up within 10 s (kill ${kills.length + 1})`);
          break;
        }
        await countSnapshots([leader]); // its counters die with it
        const atMs = performance.now();
        recovering = true;
        await c.kill(leader);
        kills.push({ atMs, node: leader });
        print(`  ${((performance.now() - (endAt - durationMs)) / 1000).toFixed(1)}s: killed leader ${leader} (kill ${kills.length})`);
        await sleep(r.int(restartDelayMs.min, restartDelayMs.max + 1));
        c.start(leader);
      }
      await sleep(Math.max(0, endAt - performance.now()));
    };

    const load = [...Array.from({ length: clients }, (_, n) => client(n)), prober()];
    await killer();
    stop = true;
    await Promise.all(load);
    if (h.full) problems.push(`the history reached ${h.ops.length} operations; the load stopped early`);

    // Convergence: every node up, one leader, every node applying the same prefix.
    for (const id of c.ids) if (!c.procs.has(id)) c.start(id);
    const converged = await c.waitFor(async () => {
      if ((await c.leader()) === 0) return undefined;
      const ss = await Promise.all(c.ids.map((id) => c.status(id)));
      if (ss.some((s) => s === null)) return undefined;
      const applied = new Set(ss.map((s) => s!.applied as number));
      const prefix = new Set(ss.map((s) => s!.chosenPrefix as number));
      return applied.size === 1 && prefix.size === 1 && [...applied][0] + 1 === [...prefix][0] ? [...applied][0] : undefined;
    }, convergeTimeoutMs);
    if (converged === undefined) problems.push(`the nodes did not converge within ${convergeTimeoutMs / 1000} s of the end`);

    // Read every key back: a linearizable read (part of the history) and a local read on every node.
    const finals = new Map<string, string | null>();
    for (let k = 0; k < keyCount; k++) {
      const key = `k${k}`;
      let op: Operation | undefined;
      for (let attempt = 0; attempt < 20; attempt++) {
        op = await perform(c, h, c.ids[attempt % c.ids.length], 'read', key, null, 5000);
        if (op.outcome === 'ok') break;
        await sleep(100);
      }
      if (op!.outcome !== 'ok') {
        problems.push(`the final read of ${key} never succeeded`);
        continue;
      }
      finals.set(key, op!.value);
      for (const id of c.ids) {
        const r = await fetch(c.url(id, `/kv/${key}?read=local`), { signal: AbortSignal.timeout(5000) });
        const local = r.status === 200 ? await r.text() : r.status === 404 ? null : `(status ${r.status})`;
        if (local !== op!.value) problems.push(`node ${id} holds ${JSON.stringify(local)} for ${key}; the cluster read ${JSON.stringify(op!.value)}`);
      }
    }

    await countSnapshots(c.ids);
    const t0 = performance.now();
    const lin = checkHistory(h.ops);
    const checkMs = Math.round(performance.now() - t0);
    for (const v of lin.violations.slice(0, 10)) problems.push(`not linearizable: key ${v.key}: ${v.reason}`);
    if (lin.undecided.length > 0) problems.push(`the checker gave up on ${lin.undecided.length} keys (${lin.undecided.slice(0, 5).join(', ')})`);
    const lost = finals.size === keyCount ? lostWrites(h.ops, finals) : [];
    for (const w of lost.slice(0, 10)) problems.push(`acknowledged write lost: ${w.key}=${w.value}`);
    const recoveries = recoveryTimesMs(h.ops, kills.map((k) => k.atMs)).map((ms) => Math.round(ms));
    const p99 = percentile(recoveries, 99);
    if (kills.length > 0 && !(p99 <= o.recoveryBoundMs)) {
      problems.push(`p99 recovery ${p99} ms after a kill (of ${recoveries.join(', ')} ms) is over the bound (${o.recoveryBoundMs} ms; an election timeout is ${soakElectionTimeoutMs} ms)`);
    }
    problems.push(...c.unexpectedExits);

    const summary = {
      protocol: o.protocol, nodes: o.nodes, minutes: o.minutes, seed: o.seed,
      operations: h.ops.length, writes: counts.write, reads: counts.read,
      kills: kills.length, recoveryMs: recoveries, recoveryP99Ms: p99, recoveryBoundMs: o.recoveryBoundMs,
      keysChecked: lin.keys, linearizable: lin.violations.length === 0 && lin.undecided.length === 0, checkMs,
      acknowledgedWritesLost: lost.length, convergedAppliedSlot: converged ?? null,
      snapshotSlots: o.snapshotSlots, snapshotsTaken: snapshots.taken, snapshotsInstalled: snapshots.installed,
    };
    return { ok: problems.length === 0, problems, summary };
  } finally {
    process.removeListener('exit', onExit);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (problems.length > 0 || c.unexpectedExits.length > 0) {
      for (const [id, out] of c.output) if (out.trim() !== '') print(`--- node ${id} output (tail) ---\n${out.slice(-2000)}`);
    }
    await c.stopAll();
  }
}

export async function soakMain(argv: string[]): Promise<number> {
  let o: SoakOptions;
  try {
    o = parseSoakArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`error: ${e.message}\nusage: npm run soak -- --minutes M [--protocol multipaxos|raft] [--nodes 3|5] [--seed S] [--base-port N] [--snapshot-slots N] [--recovery-bound-ms MS]\n`);
    return 2;
  }
  const print = (line: string) => process.stdout.write(line + '\n');
  const r = await runSoak(o, print);
  print(`soak summary: ${JSON.stringify(r.summary)}`);
  if (r.ok) {
    print(`soak PASSED: linearizable, no acknowledged write lost, every node converged, p99 recovery ${r.summary.recoveryP99Ms} ms <= ${r.summary.recoveryBoundMs} ms`);
    return 0;
  }
  for (const p of r.problems) print(`soak FAILED: ${p}`);
  return 1;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  soakMain(process.argv.slice(2)).then((code) => process.exit(code), (e: Error) => {
    process.stderr.write(`soak: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
