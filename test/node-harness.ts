// A cluster of real `paxlog serve` processes on loopback, for the node tests. Every process is
// killed by stop() (call it in after(), so a failing test leaves nothing running) and every
// data directory is fresh.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveNodeFlags } from '../src/node/v8-flags.js';

export const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/paxlog.js');
const outputBytesMax = 64 * 1024;

export interface ClusterOptions {
  nodes: number;
  /** Peer port of node 1; node i listens for peers at basePort + i - 1 and for clients at basePort + 50 + i - 1. */
  basePort: number;
  /** The secret each node is started with. */
  secretOf?: (id: number) => string;
  extraArgs?: string[];
  tickMs?: number;
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Headers;
}

/**
 * A cluster for the tests of one suite (a describe block, or a whole file at its top level):
 * every node started and a leader agreed before the first test, every process stopped after the last.
 */
export function suiteCluster(o: ClusterOptions): ProcCluster {
  const c = new ProcCluster(o);
  before(async () => {
    c.startAll();
    await c.ready();
  });
  after(async () => {
    await c.stop();
  });
  return c;
}

export class ProcCluster {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-node-test-'));
  readonly procs = new Map<number, ChildProcess>();
  /** The last output of each node (bounded), printed when a test fails. */
  readonly output = new Map<number, string>();
  readonly tickMs: number;

  constructor(readonly o: ClusterOptions) {
    this.tickMs = o.tickMs ?? 20;
  }

  get peers(): string {
    return Array.from({ length: this.o.nodes }, (_, i) => `${i + 1}=127.0.0.1:${this.o.basePort + i}`).join(',');
  }

  httpPort(id: number): number {
    return this.o.basePort + 50 + id - 1;
  }

  url(id: number, p: string): string {
    return `http://127.0.0.1:${this.httpPort(id)}${p}`;
  }

  /** Node `id`'s data directory. */
  dataDir(id: number): string {
    return path.join(this.dir, `n${id}`);
  }

  /** Start node `id` with the cluster's extra arguments and `moreArgs`; returns the process. */
  start(id: number, moreArgs: string[] = []): ChildProcess {
    assert.ok(!this.procs.has(id), `node ${id} is already running`);
    const args = [...serveNodeFlags, bin, 'serve', '--id', String(id), '--peers', this.peers, '--data', this.dataDir(id),
      '--http-port', String(this.httpPort(id)), '--tick-ms', String(this.tickMs), '--log-level', 'warn',
      // No 128 MiB of zeros per new test node (the suite starts hundreds); test/cli.test.ts covers the default.
      '--preallocate-mib', '0', ...(this.o.extraArgs ?? []), ...moreArgs,
      // If the test process dies (a runner timeout), its nodes stop rather than hold their ports.
      '--stop-with-stdin'];
    const secret = this.o.secretOf?.(id) ?? 'test-secret';
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PAXLOG_SECRET: secret } });
    const keep = (d: Buffer) => {
      const s = (this.output.get(id) ?? '') + d.toString();
      this.output.set(id, s.slice(-outputBytesMax));
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('exit', () => {
      if (this.procs.get(id) === child) this.procs.delete(id);
    });
    this.procs.set(id, child);
    return child;
  }

  startAll(): void {
    for (let id = 1; id <= this.o.nodes; id++) this.start(id);
  }

  /** kill -9 (or another signal) and wait for the process to be gone. */
  async kill(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.procs.get(id);
    if (child === undefined) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((id) => this.kill(id)));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async http(id: number, method: string, p: string, body?: string | Uint8Array, timeoutMs = 10_000): Promise<HttpAnswer> {
    const payload = body === undefined || typeof body === 'string' ? body : new Blob([new Uint8Array(body) as Uint8Array<ArrayBuffer>]);
    const r = await fetch(this.url(id, p), { method, body: payload, signal: AbortSignal.timeout(timeoutMs) });
    return { status: r.status, body: await r.text(), headers: r.headers };
  }

  async status(id: number): Promise<Record<string, unknown> | null> {
    try {
      const r = await this.http(id, 'GET', '/status', undefined, 1000);
      return r.status === 200 ? JSON.parse(r.body) as Record<string, unknown> : null;
    } catch {
      return null;
    }
  }

  /** Poll until `check` gives a value (not undefined), or fail after timeoutMs. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.describe()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The id of the leader that every running node agrees on. */
  async leader(timeoutMs = 15_000): Promise<number> {
    return this.waitFor('one leader that every running node knows', async () => {
      const ids = [...this.procs.keys()];
      const ss = await Promise.all(ids.map((id) => this.status(id)));
      if (ss.some((s) => s === null)) return undefined;
      const leaders = new Set(ss.map((s) => s!.leader));
      const l = [...leaders][0] as number;
      return leaders.size === 1 && l !== 0 && ss.some((s) => s!.role === 'leader' && s!.id === l) ? l : undefined;
    }, timeoutMs);
  }

  /**
   * Wait until a new cluster serves: every node knows one leader and has finished rejoining (new
   * data directories rejoin without voting, and until they have, losing the leader leaves no
   * majority that can elect another), and the leader serves a lease read (just elected, it refuses
   * them with 503 until a majority acknowledged one of its heartbeat rounds). Returns the leader.
   */
  async ready(): Promise<number> {
    const leader = await this.leader();
    await this.waitFor('every node to finish rejoining', async () => {
      const ss = await Promise.all([...this.procs.keys()].map((id) => this.status(id)));
      return ss.every((s) => s !== null && s.rejoining === false) ? true : undefined;
    });
    await this.waitFor('the leader to serve a lease read', async () => {
      const r = await this.http(leader, 'GET', '/kv/ready-probe?read=lease');
      return r.status === 503 ? undefined : r.status;
    });
    return leader;
  }

  /** PUT, retrying while the answer says the write was surely not proposed (503). */
  async put(id: number, key: string, value: string): Promise<HttpAnswer> {
    return this.retrying503(() => this.http(id, 'PUT', `/kv/${encodeURIComponent(key)}`, value));
  }

  /**
   * A linearizable GET, retrying while the answer is 503 ("retry shortly": a leader elected a moment
   * ago serves no read until a majority acknowledged one of its heartbeat rounds).
   */
  async get(id: number, key: string): Promise<HttpAnswer> {
    return this.retrying503(() => this.http(id, 'GET', `/kv/${encodeURIComponent(key)}`));
  }

  /** The first answer of `request` that is not 503, trying at most about 100 times, 50 ms apart. */
  private async retrying503(request: () => Promise<HttpAnswer>): Promise<HttpAnswer> {
    for (let i = 0; ; i++) {
      const r = await request();
      if (r.status !== 503 || i > 100) return r;
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  describe(): string {
    return [...this.output].map(([id, out]) => `--- node ${id} output (tail) ---\n${out.slice(-2000)}`).join('\n');
  }
}
