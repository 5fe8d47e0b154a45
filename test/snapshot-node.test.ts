// Snapshots on real nodes: how snapshot() requests, the state machine's asynchronous serialization
// and the background save interleave (one member, in this process), and a peer's snapshot the
// state machine refuses (a child process). Ports: 27000 and 27010-27012.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createNode } from '../src/index.js';
import type { StateMachine } from '../src/node/state-machine.js';

/** A counter whose snapshotAsync the test settles by hand, one call at a time. */
class ManualSnapshots implements StateMachine<number> {
  count = 0;
  readonly pending: ((bytes: Uint8Array) => void)[] = [];
  apply(): number { return ++this.count; }
  snapshot(): Uint8Array { return new TextEncoder().encode(String(this.count)); }
  snapshotAsync(): Promise<Uint8Array> {
    const bytes = this.snapshot(); // the state at the moment of the call
    return new Promise((resolve) => this.pending.push(() => resolve(bytes)));
  }
  restore(bytes: Uint8Array): void { this.count = Number(new TextDecoder().decode(bytes)); }
}

const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; !ok(); i++) {
    assert.ok(i < 500, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('a snapshot serialized while the one before is still being saved waits for that save (one save at a time)', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-snap-overlap-'));
  const sm = new ManualSnapshots();
  // Without the fix the node throws from its pump: fail at once rather than wait for ever.
  let onUncaught = (_err: Error): void => {};
  const thrown = new Promise<never>((_resolve, reject) => { onUncaught = reject; });
  thrown.catch(() => {});
  process.on('uncaughtException', onUncaught);
  const node = await createNode({
    id: 1, peers: '1=127.0.0.1:27000', dataDir: dir, stateMachine: sm, secret: 's', tickMs: 10, newCluster: true,
    snapshotSlots: 0, snapshotBytes: 0, logger: pino({ level: 'silent' }),
  });
  try {
    await until('leadership', () => node.status().role === 'leader');
    const put = (): Promise<number> => node.propose(new Uint8Array([1]));
    await put();
    // A is serialized from the state after one write; a second write is applied meanwhile.
    const first = node.snapshot();
    await until('the first serialization', () => sm.pending.length === 1);
    await put();
    // A's bytes come; before the node hands A's Ready out, another snapshot() is asked for: B,
    // of the state after two writes, starts serializing.
    sm.pending[0](new Uint8Array());
    await Promise.resolve();
    await Promise.resolve();
    const second = node.snapshot();
    assert.equal(sm.pending.length, 2, 'B started serializing');
    // A's save is under way in the background when B's bytes come.
    await new Promise((r) => setImmediate(r));
    sm.pending[1](new Uint8Array());
    const prefixes = await Promise.race([Promise.all([first, second]), thrown]);
    assert.ok(prefixes[1] > prefixes[0], `B covers the second write: prefixes ${prefixes}`);
    assert.equal(await Promise.race([put(), thrown]), 3, 'the node goes on applying');
  } finally {
    process.off('uncaughtException', onUncaught);
    await Promise.race([node.stop(), new Promise((r) => setTimeout(r, 2000))]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a peer\'s snapshot the state machine cannot restore stops the node with the reason, not an uncaught exception', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-snap-restore-'));
  const index = new URL('../src/index.js', import.meta.url).href;
  // A child process (the node ends its process on a fatal stop) with three members: 1 and 2 choose
  // and trim, then 3 starts with a state machine that refuses every snapshot. Ports 27010-27012.
  const script = `
    import { createNode } from ${JSON.stringify(index)};
    import { pino } from 'pino';
    const peers = '1=127.0.0.1:27010,2=127.0.0.1:27011,3=127.0.0.1:27012';
    const sm = (refuse) => ({ n: 0, apply() { return ++this.n; }, snapshot() { return new Uint8Array([this.n]); },
      restore(b) { if (refuse) throw new Error('boom in restore'); this.n = b[0]; } });
    const open = (id, refuse) => createNode({ id, peers, dataDir: ${JSON.stringify(dir)} + '/' + id, stateMachine: sm(refuse), secret: 's',
      tickMs: 10, newCluster: true, snapshotSlots: 0, snapshotBytes: 0, logger: pino({ level: 'fatal' }) });
    const nodes = [await open(1, false), await open(2, false)];
    const leader = async () => { for (let i = 0; ; i++) { const l = nodes.find((n) => n.status().role === 'leader'); if (l) return l;
      if (i > 1000) process.exit(3); await new Promise((r) => setTimeout(r, 10)); } };
    for (let i = 0; i < 5; i++) await (await leader()).propose(new Uint8Array([i]));
    for (const n of nodes) await n.snapshot();
    await open(3, true);
    setTimeout(() => process.exit(4), 20_000);
  `;
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 40_000 });
  try {
    assert.equal(r.status, 1, `exit ${r.status}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /the state machine cannot restore a peer's snapshot/);
    assert.match(r.stdout, /boom in restore/);
    assert.doesNotMatch(r.stderr, /Uncaught|boom in restore|at .*node\.js:\d+/, 'an uncaught exception');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
