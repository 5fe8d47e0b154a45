// Snapshots taken by a real node (one member, in this process): how snapshot() requests, the
// state machine's asynchronous serialization and the background save interleave.
// Ports: 27000-27009.

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
