// A leader that is paused (SIGSTOP: a long GC, a stalled VM) is replaced, and when it wakes it
// serves no stale read: its lease ran out in wall-clock time even though its timers did not fire.
// Real processes on loopback, ports 17210-17212 and 17260-17262.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
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
