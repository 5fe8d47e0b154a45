// A leader that is paused (SIGSTOP: a long GC, a stalled VM) is replaced, and when it wakes it
// serves no stale read: its lease ran out in wall-clock time even though its timers did not fire.
// Real processes on loopback, ports 17210-17212 and 17260-17262; embedded nodes on 17263 and 17266.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createNode } from '../src/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { ProcCluster } from './node-harness.js';

describe('a paused leader', { timeout: 60_000 }, () => {
  const c = new ProcCluster({ nodes: 3, basePort: 17210 });
  before(async () => {
    c.startAll();
    await c.ready();
  });
  after(async () => {
    for (const p of c.procs.values()) p.kill('SIGCONT');
    await c.stop();
  });

  test('is replaced while it sleeps, and on waking serves no stale read and loses no write', async () => {
    const old = await c.leader();
    const others = [1, 2, 3].filter((id) => id !== old);
    assert.equal((await c.put(old, 'x', 'before')).status, 200);
    c.procs.get(old)!.kill('SIGSTOP');
    try {
      // The others elect a new leader and take a write the sleeper never saw.
      await c.waitFor('a new leader among the others', async () => {
        const ss = await Promise.all(others.map((id) => c.status(id)));
        return ss.some((s) => s?.role === 'leader') ? true : undefined;
      });
      assert.equal((await c.put(others[0], 'x', 'after')).status, 200);
      // Reads reach the sleeper's socket while it sleeps; it handles them first thing on waking.
      const reads = ['', '?read=lease', '?read=quorum'].map((q) => c.http(old, 'GET', `/kv/x${q}`, undefined, 10_000));
      await new Promise((r) => setTimeout(r, 200));
      c.procs.get(old)!.kill('SIGCONT');
      for (const [i, r] of (await Promise.all(reads)).entries()) {
        assert.notEqual(r.body, 'before', `read ${i} on the woken leader returned the stale value`);
        assert.ok(r.status === 200 ? r.body === 'after' : r.status === 503 || r.status === 504, `read ${i}: ${r.status} ${r.body}`);
      }
    } finally {
      c.procs.get(old)?.kill('SIGCONT');
    }
    // It rejoins as a follower and catches up.
    await c.waitFor('the woken node to read the new value', async () => {
      const r = await c.http(old, 'GET', '/kv/x').catch(() => null);
      return r?.status === 200 && r.body === 'after' ? true : undefined;
    });
    const s = (await c.status(old))!;
    assert.equal(s.role, 'follower');
  });
});

test('after the loop was held up, every message meets a clock brought up to date first', async () => {
  // A leader answers a follower's read from its lease, judged by the ticks it has had: stepped on
  // a clock stale by a pause, it could answer on a lease that ran out. A follower that stepped a
  // heartbeat before the late ticks would count them as quiet after it, and promise another
  // candidate within the lease it just acknowledged (test/read-paths.test.ts).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-pause-'));
  const node = await createNode({
    id: 1, peers: '1=127.0.0.1:17263,2=127.0.0.1:17264,3=127.0.0.1:17265', dataDir: dir, tickMs: 10, newCluster: true,
    stateMachine: { apply: () => 0, snapshot: () => new Uint8Array(0), restore: () => {} }, logger: pino({ level: 'silent' }),
  });
  try {
    const inner = node as unknown as { core: { tick(): void; step(m: Message): void }; onMessage(m: Message): void };
    let ticks = 0;
    const tick = inner.core.tick.bind(inner.core);
    inner.core.tick = () => { ticks++; tick(); };
    let ticksAtStep = -1;
    const step = inner.core.step.bind(inner.core);
    inner.core.step = (m) => { ticksAtStep = ticks; step(m); };
    const holdUp = (ms: number): void => {
      const until = performance.now() + ms;
      while (performance.now() < until) { /* the event loop is held up */ }
    };
    for (const m of [
      { type: MsgType.Heartbeat, from: 2, to: 1, ballot: 0, chosenPrefix: 1, seq: 1 },
      { type: MsgType.ReadIndex, from: 2, to: 1, readId: 42 },
      { type: MsgType.ReadIndex, from: 2, to: 1, readId: 43 },
    ] as Message[]) {
      await new Promise((r) => setTimeout(r, 50));
      holdUp(200);
      const before = ticks;
      inner.onMessage(m);
      assert.ok(ticksAtStep >= before + 15, `message type ${m.type} was stepped after ${ticksAtStep - before} of the ~20 late ticks`);
    }
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a pause longer than the catch-up bound of 1,000 ticks still delivers two election timeouts, however long they are', async () => {
  // With an election timeout of 1,500 ticks and a lease of 1,200 (the library takes any config),
  // 1,000 ticks after a long pause left a leader that other nodes had replaced still trusting its
  // lease, and it served a stale lease read (found by the simulator-fidelity review, on the cores).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-pause-'));
  const node = await createNode({
    id: 1, peers: '1=127.0.0.1:17266,2=127.0.0.1:17267,3=127.0.0.1:17268', dataDir: dir, tickMs: 10, newCluster: true,
    config: { electionTicksMin: 1500, electionTicksMax: 1600, leaseTicks: 1200 },
    stateMachine: { apply: () => 0, snapshot: () => new Uint8Array(0), restore: () => {} }, logger: pino({ level: 'silent' }),
  });
  try {
    const inner = node as unknown as { core: { tick(): void }; lastTickAt: number; catchUpTicks(): void };
    let ticks = 0;
    const tick = inner.core.tick.bind(inner.core);
    inner.core.tick = () => { ticks++; tick(); };
    // A pause of 5,000 ticks (50 s), as a SIGSTOP would leave it.
    inner.lastTickAt -= 5000 * 10;
    inner.catchUpTicks();
    assert.ok(ticks >= 3200 && ticks <= 5001, `${ticks} ticks delivered after a pause of 5,000`);
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
