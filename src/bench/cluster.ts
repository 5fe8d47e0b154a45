// One benchmark cluster: `paxlog serve` processes on 127.0.0.1 with fresh data directories,
// started for one run and removed after it. It also reads what the harness measures on the
// nodes: Prometheus counters from GET /metrics and CPU time from /proc/<pid>/stat.

import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProtocolName } from '../protocol/types.js';
import { tickMsFor, type RunKnobs } from './knobs.js';
import { serveNodeFlags } from '../node/v8-flags.js';

const bin = fileURLToPath(new URL('../../../bin/paxlog.js', import.meta.url));
/** Bytes of each node's output kept for an error message. */
const outputTailBytes = 8 * 1024;
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux this runs on). */
const userHz = 100;

export class BenchClusterError extends Error {
  override name = 'BenchClusterError';
}

export interface NodeSample {
  /** Prometheus samples: `name` or `name{labels}` -> value. */
  metrics: Map<string, number>;
  /** utime + stime of the node process, in seconds. */
  cpuS: number;
  /** When cpuS was read (performance.now(), in seconds): CPU % is over the interval between two samples. */
  atS: number;
}

export interface StatusSample {
  role: string;
  leader: number;
  inFlight: number;
  /** Multi-Paxos: chosen slots above the chosen prefix (holes lie between them). Raft: 0. */
  holes: number;
  peersConnected: number[];
}

export class BenchCluster {
  /** A fresh temp directory holding every node's data directory; removed by stop(). */
  readonly dir: string;
  /** The node processes; index = id - 1. */
  readonly procs: ChildProcess[] = [];
  /** The last outputTailBytes of each node's output; index = id - 1. */
  private readonly tails: string[] = [];
  /** A random cluster secret per run, so a stray process of another run can never join. */
  private readonly secret = crypto.randomBytes(16).toString('hex');
  /** Set by stop() and killNow(): exits after it are expected. */
  private stopping = false;
  /** The first node to exit on its own, as an error naming it; null while every node runs. */
  private death: BenchClusterError | null = null;
  private onDeath: ((e: BenchClusterError) => void) | null = null;
  /**
   * Rejects with a BenchClusterError naming the node as soon as one exits before stop(): race the
   * run's waits against it, so a dead node fails the run at once and clearly. Never resolves.
   */
  readonly died: Promise<never> = new Promise<never>((_, reject) => {
    this.onDeath = reject;
  });

  /** Peer port of node i is basePort + i - 1; its client HTTP port is basePort + 10 + i - 1. */
  constructor(readonly protocol: ProtocolName, readonly knobs: RunKnobs, readonly basePort: number, readonly seed: number,
    readonly profileDir: string | null = null) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-bench-'));
  }

  httpPort(id: number): number {
    return this.basePort + 10 + id - 1;
  }

  start(): void {
    const k = this.knobs;
    const peers = Array.from({ length: k.nodes }, (_, i) => `${i + 1}=127.0.0.1:${this.basePort + i}`).join(',');
    for (let id = 1; id <= k.nodes; id++) {
      const prof = this.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${this.profileDir}`, `--cpu-prof-name=node-${id}.cpuprofile`];
      const args = [...serveNodeFlags, ...prof, bin, 'serve', '--id', String(id), '--peers', peers, '--data', path.join(this.dir, `n${id}`),
        '--http-port', String(this.httpPort(id)), '--protocol', this.protocol, '--fsync', k.fsync ? 'on' : 'off',
        '--batch-max', String(k.batchMax), '--pipeline', String(k.pipeline), '--kernels', k.kernels, '--log-level', 'warn',
        '--fault-loss', String(k.loss), '--fault-delay-ms', String(k.delayMs), '--fault-seed', String(this.seed), '--tick-ms', String(tickMsFor(k.delayMs)),
        // Every run starts from empty data directories: a new cluster.
        '--new-cluster'];
      // --stop-with-stdin: if this process dies, even by SIGKILL, its nodes stop too.
      const child = spawn(process.execPath, [...args, '--stop-with-stdin'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PAXLOG_SECRET: this.secret } });
      this.tails.push('');
      const keep = (d: Buffer): void => {
        this.tails[id - 1] = (this.tails[id - 1] + d.toString()).slice(-outputTailBytes);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      child.once('exit', (code, signal) => {
        if (this.stopping || this.death !== null) return;
        const how = signal !== null ? `signal ${signal}` : `code ${code}`;
        // After its output has drained, so the tail shows why.
        setImmediate(() => {
          if (this.death !== null) return;
          this.death = new BenchClusterError(`node ${id} exited during the run (${how})\n${this.describe()}`);
          this.onDeath!(this.death);
        });
      });
      this.procs.push(child);
    }
    // Nobody may be racing against `died` yet: an unobserved rejection must not end the process.
    this.died.catch(() => {});
  }

  /** Node output tails, for an error message. */
  describe(): string {
    return this.tails.map((t, i) => `--- node ${i + 1} (tail) ---\n${t.slice(-1500)}`).join('\n');
  }

  async status(id: number): Promise<StatusSample | null> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.httpPort(id)}/status`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? (await r.json()) as StatusSample : null;
    } catch {
      return null;
    }
  }

  /** Waits until every node names one leader and the leader's links to all peers are up. */
  async leader(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const exited = this.procs.findIndex((p) => p.exitCode !== null || p.signalCode !== null);
      if (exited >= 0) throw new BenchClusterError(`node ${exited + 1} exited while starting\n${this.describe()}`);
      const ss = await Promise.all(this.procs.map((_, i) => this.status(i + 1)));
      if (ss.every((s) => s !== null)) {
        const leaders = new Set(ss.map((s) => s!.leader));
        const l = ss[0]!.leader;
        const ls = ss[l - 1];
        if (leaders.size === 1 && l !== 0 && ls !== undefined && ls!.role === 'leader' && ls!.peersConnected.length === this.procs.length - 1) return l;
      }
      if (performance.now() > deadline) throw new BenchClusterError(`no leader within ${timeoutMs} ms\n${this.describe()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Metrics and CPU time of every node, read as close together as the event loop allows. */
  async sample(): Promise<NodeSample[]> {
    this.throwIfDead();
    let cpu: number[];
    try {
      cpu = this.procs.map((p) => cpuSeconds(p.pid!));
    } catch (e) {
      // A node that died just now has no /proc entry; say which one.
      const gone = this.procs.findIndex((p) => p.exitCode !== null || p.signalCode !== null || !fs.existsSync(`/proc/${p.pid}`));
      if (gone >= 0) throw new BenchClusterError(`node ${gone + 1} exited during the run\n${this.describe()}`);
      throw e;
    }
    const atS = performance.now() / 1000;
    const texts = await Promise.all(this.procs.map(async (_, i) => {
      const r = await fetch(`http://127.0.0.1:${this.httpPort(i + 1)}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (!r.ok) throw new BenchClusterError(`node ${i + 1} answered ${r.status} to GET /metrics`);
      return r.text();
    }));
    return texts.map((t, i) => ({ metrics: parsePrometheus(t), cpuS: cpu[i], atS }));
  }

  /** Throws the error naming the first node that exited on its own, if one did. */
  throwIfDead(): void {
    if (this.death !== null) throw this.death;
  }

  /** SIGKILL every node and remove the data directories, synchronously (for exit handlers). */
  killNow(): void {
    this.stopping = true;
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGTERM, then SIGKILL after 3 s; removes the data directories. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.procs.map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      const kill = setTimeout(() => p.kill('SIGKILL'), 3000);
      p.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      p.kill('SIGTERM');
    })));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / userHz;
}

/** Prometheus text format: every sample line as `name` or `name{labels}` -> value. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    if (cut <= 0) continue;
    const v = Number(line.slice(cut + 1));
    if (Number.isFinite(v)) out.set(line.slice(0, cut), v);
  }
  return out;
}
