// The node driver's edges: stop() racing start(), and callbacks that settle after stop().
// Embedded one-node clusters in this process, ports 28100-28109. And the fatal line of a write
// the disk refuses on a nearly full disk.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { FatalError, PaxlogNode, type StateMachine } from '../src/index.js';
import { parsePeers } from '../src/transport/addresses.js';
import type { LogStore } from '../src/storage/log-store.js';
import { failCommits } from './lmdb-faults.js';

class Counter implements StateMachine<number> {
  n = 0;
  apply(): number { return ++this.n; }
  snapshot(): Uint8Array { return new TextEncoder().encode(String(this.n)); }
  restore(bytes: Uint8Array): void { this.n = Number(new TextDecoder().decode(bytes)); }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-driver-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function openNode(port: number, name: string, sm: StateMachine<number> = new Counter()): PaxlogNode<number> {
  return PaxlogNode.open<number>({
    id: 1, peers: parsePeers(`1=127.0.0.1:${port}`), dataDir: path.join(dir, name), stateMachine: sm,
    secret: 's', tickMs: 10, newCluster: true, logger: pino({ level: 'silent' }),
  });
}

/** What stop() should have closed, closed by hand, so that a failing test does not hold the process open. */
function forceClose(node: PaxlogNode<number>): void {
  const n = node as unknown as { ticker: NodeJS.Timeout | null; listenSockets: unknown[]; uws: { us_listen_socket_close(s: unknown): void }; transport: { close(): void } };
  if (n.ticker !== null) clearInterval(n.ticker);
  for (const s of n.listenSockets) n.uws.us_listen_socket_close(s);
  n.listenSockets = [];
  n.transport.close();
}

/** Whether a plain TCP server can listen on 127.0.0.1:port (nothing else listens there). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('stop() called while start() is listening', { timeout: 30_000 }, () => {
  test('leaves no port listening and no ticker running', async (t) => {
    const node = openNode(28100, 'race');
    t.after(() => forceClose(node));
    const started = node.start([28101]);
    await node.stop();
    const outcome = await started.then(() => 'started', (e: Error) => e.message);
    // start() went on after stop(): it listened on the ports and set the tick timer, which nothing
    // would ever clear (the process could not exit).
    assert.ok(await portFree(28100), 'the peer port is still listened on');
    assert.ok(await portFree(28101), 'the extra port is still listened on');
    assert.equal((node as unknown as { ticker: unknown }).ticker, null, 'the tick timer runs after stop()');
    assert.match(outcome, /stopped while starting/);
  });
});

describe('a snapshotAsync that fails after stop()', { timeout: 30_000 }, () => {
  test('does not end the process', async () => {
    let fail: ((e: Error) => void) | null = null;
    class Slow extends Counter {
      snapshotAsync(): Promise<Uint8Array> {
        return new Promise((_resolve, reject) => { fail = reject; });
      }
    }
    const node = openNode(28102, 'snap-after-stop', new Slow());
    await node.start();
    for (let i = 0; i < 500 && node.status().role !== 'leader'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await node.propose(new Uint8Array(1)), 1);
    const snap = assert.rejects(node.snapshot(), /stopped/);
    for (let i = 0; i < 500 && fail === null; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(fail !== null, 'snapshotAsync was called');
    await node.stop();
    await snap;
    // A state machine shut down with the node may well refuse the snapshot it was serializing: the
    // node had stopped fatally, calling process.exit(1).
    const exit = process.exit;
    const exitCode = process.exitCode;
    let exited: unknown = null;
    process.exit = ((code?: number) => { exited = code; }) as typeof process.exit;
    try {
      fail!(new Error('the state machine is closed'));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(exited, null, 'process.exit was called');
      assert.equal(process.exitCode, exitCode, 'process.exitCode was set');
    } finally {
      process.exit = exit;
      process.exitCode = exitCode;
    }
  });
});

/** Make every write of `node`'s log fail as LMDB does on EIO (sync and queued commits); returns what heals it. */
function refuseWrites(node: PaxlogNode<number>): () => void {
  const store = (node as unknown as { store: LogStore }).store;
  const root = (store as unknown as { root: { transactionSync: unknown } }).root;
  const transactionSync = root.transactionSync;
  root.transactionSync = (): never => { throw Object.assign(new Error('Input/output error'), { code: 5 }); };
  const healCommits = failCommits(store);
  return () => { root.transactionSync = transactionSync; healCommits(); };
}

describe('a write the disk refuses while the disk is nearly full', { timeout: 30_000 }, () => {
  test('stops the node with a fatal line that says the disk is probably full, not only "Input/output error"', async () => {
    const lines: { level: number; msg: string; freeBytes?: number; err?: string }[] = [];
    const node = PaxlogNode.open<number>({
      id: 1, peers: parsePeers('1=127.0.0.1:28104'), dataDir: path.join(dir, 'full'), stateMachine: new Counter(),
      secret: 's', tickMs: 10, newCluster: true, logger: pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) }),
    });
    const exit = process.exit;
    const exitCode = process.exitCode;
    const statfs = fs.statfsSync;
    let exited: unknown = null;
    let heal = (): void => {};
    try {
      await node.start();
      for (let i = 0; i < 500 && node.status().role !== 'leader'; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await node.propose(new Uint8Array(1)), 1);
      process.exit = ((code?: number) => { exited = code; }) as typeof process.exit;
      // LMDB's answer to a write the disk cut short, on a disk with 4 KiB left of 20 MiB.
      heal = refuseWrites(node);
      fs.statfsSync = ((p: string) => ({ ...statfs(p), bsize: 4096, blocks: 5120, bavail: 1, bfree: 1 })) as typeof fs.statfsSync;
      await assert.rejects(node.propose(new Uint8Array(16 * 1024)), /stopped/);
      for (let i = 0; i < 100 && exited === null; i++) await new Promise((r) => setTimeout(r, 10));
      const fatal = lines.find((l) => l.level === 60);
      assert.ok(fatal, 'a fatal line');
      assert.match(fatal.msg, /the log could not be written \(its disk has 4096 bytes free: it is probably full\); stopping the node/);
      assert.equal(fatal.freeBytes, 4096);
      assert.match(fatal.err ?? '', /Input\/output error/);
      assert.equal(exited, 1);
    } finally {
      heal();
      fs.statfsSync = statfs;
      process.exit = exit;
      process.exitCode = exitCode;
      await node.stop();
    }
  });

  test('with a \'fatal\' listener: the application is told why, the process lives on, and stop() frees the data directory', async () => {
    const data = path.join(dir, 'full-listened');
    const node = PaxlogNode.open<number>({
      id: 1, peers: parsePeers('1=127.0.0.1:28105'), dataDir: data, stateMachine: new Counter(),
      secret: 's', tickMs: 10, newCluster: true, logger: pino({ level: 'silent' }),
    });
    const exit = process.exit;
    const exitCode = process.exitCode;
    let exited: unknown = null;
    let heal = (): void => {};
    try {
      const fatal = new Promise<FatalError>((resolve) => node.on('fatal', resolve));
      await node.start();
      for (let i = 0; i < 500 && node.status().role !== 'leader'; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await node.propose(new Uint8Array(1)), 1);
      process.exit = ((code?: number) => { exited = code; }) as typeof process.exit;
      heal = refuseWrites(node);
      await assert.rejects(node.propose(new Uint8Array(16 * 1024)), /stopped/);
      const err = await fatal;
      assert.ok(err instanceof FatalError);
      assert.match(err.message, /the log could not be written/);
      assert.match(String(err.details.err), /Input\/output error/);
      heal();
      await node.stop();
      assert.equal(fs.existsSync(path.join(data, 'paxlog.lock')), false, 'the lock is released once stop() resolves');
      assert.equal(exited, null, 'process.exit was called');
      assert.equal(process.exitCode, exitCode, 'process.exitCode was set');
    } finally {
      heal();
      process.exit = exit;
      process.exitCode = exitCode;
      await node.stop();
    }
  });
});
