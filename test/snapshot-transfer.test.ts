// Log compaction and snapshot transfer on real `paxlog serve` processes, for each protocol: a node
// that was down while the others chose many slots and trimmed their logs below a snapshot comes
// back, receives a peer's snapshot in chunks (64 KiB of state machine, chunks of 1 MiB by default,
// so here with many small values it is one chunk or a few), installs it, and goes on applying.
// Ports: 24500-24552 (multipaxos), 24600-24652 (raft): peer ports from the base, client ports from base + 50.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { suiteCluster } from './node-harness.js';

const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);

for (const [protocol, basePort] of [['multipaxos', 24500], ['raft', 24600]] as const) describe(`${protocol}: compaction and snapshot transfer between real processes`, { timeout: 120_000 }, () => {
  const c = suiteCluster({ nodes: 3, basePort, extraArgs: ['--protocol', protocol, '--snapshot-slots', '10', '--request-timeout-ms', '2000'] });

  test('a node behind the trimmed point catches up by snapshot and then applies new slots', async () => {
    const leader = await c.leader();
    const down = [1, 2, 3].find((id) => id !== leader)!;
    await c.kill(down);
    const value = (i: number): string => `value-${i}-${'x'.repeat(200)}`;
    for (let i = 0; i < 150; i++) {
      const r = await c.put(leader, `k${i}`, value(i));
      assert.equal(r.status, 200, `PUT k${i}: ${r.status} ${r.body}`);
    }
    const snap = await c.http(leader, 'POST', '/admin/snapshot');
    assert.equal(snap.status, 200, snap.body);
    const prefix = (JSON.parse(snap.body) as { snapshotPrefix: number }).snapshotPrefix;
    const st = (await c.status(leader))!;
    assert.equal(st.snapshotPrefix, prefix);
    assert.equal(prefix, (st.applied as number) + 1, 'the snapshot covers everything applied when it was asked for');
    assert.ok(prefix > 20, `snapshot prefix ${prefix}`);

    c.start(down);
    const applied = st.applied as number;
    await c.waitFor(`node ${down} to apply through ${applied}`, async () => {
      const s = await c.status(down);
      return s !== null && (s.applied as number) >= applied ? true : undefined;
    }, 30_000);
    // The counter moves once the install is durable, which may be a moment after it is applied.
    let m = '';
    await c.waitFor(`node ${down} to count a snapshot installed`, async () => {
      m = (await c.http(down, 'GET', '/metrics')).body;
      return metric(m, 'paxlog_snapshots_installed_total') >= 1 ? true : undefined;
    }, 5000).catch(() => assert.fail(`node ${down} installed no snapshot:\n${m.split('\n').filter((l) => l.startsWith('paxlog_snap')).join('\n')}`));
    const s = (await c.status(down))!;
    assert.ok((s.snapshotPrefix as number) > 1, `node ${down} snapshot prefix ${s.snapshotPrefix}`);
    for (const i of [0, 1, 75, 149]) {
      const g = await c.http(down, 'GET', `/kv/k${i}?read=local`);
      assert.deepEqual([g.status, g.body], [200, value(i)], `local read of k${i} on node ${down}`);
    }

    // It resumes: new writes reach it through the log again.
    for (let i = 150; i < 160; i++) assert.equal((await c.put(leader, `k${i}`, value(i))).status, 200);
    await c.waitFor(`node ${down} to apply the writes after the snapshot`, async () => {
      const g = await c.http(down, 'GET', '/kv/k159?read=local');
      return g.status === 200 && g.body === value(159) ? true : undefined;
    });
    // A linearizable read on the caught-up node.
    const g = await c.http(down, 'GET', '/kv/k150');
    assert.deepEqual([g.status, g.body], [200, value(150)]);
  });

  test('POST /admin/snapshot with nothing new applied answers with the snapshot already there', async () => {
    const leader = await c.leader();
    const first = await c.http(leader, 'POST', '/admin/snapshot');
    const second = await c.http(leader, 'POST', '/admin/snapshot');
    assert.equal(first.status, 200);
    assert.equal(second.body, first.body);
  });
});
