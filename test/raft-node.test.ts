// The node issue's real-process checks with `--protocol raft`: real `paxlog serve` processes on
// loopback (real uWS, real LMDB with fsync on). Writes on any node with linearizable reads from
// every node, kill -9 of the leader under load without losing an acknowledged write, and a
// restarted node that catches up. Ports: 17700-17799.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcCluster } from './node-harness.js';

const tickMs = 20;
/** The core's default electionTicksMax (src/protocol/types.ts defaultConfig). */
const electionTimeoutMs = 20 * tickMs;

describe('a 3-node Raft cluster of real processes', { timeout: 120_000 }, () => {
  const c = new ProcCluster({
    nodes: 3, basePort: 17700, tickMs,
    extraArgs: ['--protocol', 'raft', '--request-timeout-ms', '2000', '--snapshot-slots', '7'],
  });
  /** Every write acknowledged with 200: key -> value. Nothing in it may ever be lost. */
  const acked = new Map<string, string>();

  before(async () => {
    c.startAll();
    await c.leader();
  });
  after(async () => {
    await c.stop();
  });

  test('reports raft in /status and takes writes on any node, read back linearizably from every node', async () => {
    const s = (await c.status(1))!;
    assert.equal(s.protocol, 'raft');
    assert.equal(typeof s.term, 'number');
    for (let i = 0; i < 30; i++) {
      const writer = (i % 3) + 1;
      const r = await c.put(writer, `k${i}`, `v${i}`);
      assert.equal(r.status, 200, `PUT k${i} on node ${writer}: ${r.status} ${r.body}`);
      acked.set(`k${i}`, `v${i}`);
      const reader = ((i + 1) % 3) + 1;
      const g = await c.http(reader, 'GET', `/kv/k${i}`);
      assert.deepEqual([g.status, g.body], [200, `v${i}`], `GET k${i} on node ${reader} right after the write`);
    }
    for (const mode of ['quorum', 'lease']) {
      for (const node of [1, 2, 3]) {
        const g = await c.http(node, 'GET', `/kv/k0?read=${mode}`);
        assert.deepEqual([g.status, g.body], [200, 'v0'], `read=${mode} on node ${node}`);
      }
    }
    assert.equal((await c.http(1, 'POST', '/kv/k0?expect=wrong', 'x')).status, 412);
    assert.equal((await c.http(2, 'POST', '/kv/k0?expect=v0', 'v0b')).status, 200);
    acked.set('k0', 'v0b');
    assert.equal((await c.http(3, 'GET', '/kv/k0')).body, 'v0b');
  });

  test('kill -9 of the leader under load loses no acknowledged write; a new leader serves within two election timeouts', async (t) => {
    const oldLeader = await c.leader();
    const survivors = [1, 2, 3].filter((id) => id !== oldLeader);
    let stop = false;
    let killedAt = 0;
    let servedAfterKillMs = -1;
    const outcomes = { ok: 0, other: 0 };
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const node = w === 0 ? oldLeader : survivors[w % 2];
        if (node === oldLeader && killedAt > 0) {
          await new Promise((r) => setTimeout(r, 10));
          continue;
        }
        const key = `load-${w}-${i}`;
        const issuedAt = Date.now();
        try {
          const r = await c.http(node, 'PUT', `/kv/${key}`, `value-${w}-${i}`, 3000);
          if (r.status === 200) {
            acked.set(key, `value-${w}-${i}`);
            outcomes.ok++;
            if (killedAt > 0 && issuedAt >= killedAt && servedAfterKillMs < 0) servedAfterKillMs = Date.now() - killedAt;
          } else outcomes.other++;
        } catch {
          outcomes.other++; // refused, reset or timed out: the outcome is unknown, so nothing is recorded
        }
      }
    };
    const load = [0, 1, 2, 3, 4, 5].map(writer);
    await new Promise((r) => setTimeout(r, 1500));
    const okBefore = outcomes.ok;
    killedAt = Date.now();
    await c.kill(oldLeader);
    await c.waitFor('a write acknowledged after the kill', async () => (servedAfterKillMs >= 0 ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(load);
    t.diagnostic(`writes before the kill ${okBefore}; served again ${servedAfterKillMs} ms after it; outcomes ${JSON.stringify(outcomes)}`);
    assert.ok(okBefore > 20, `the load made ${okBefore} writes before the kill`);
    assert.ok(servedAfterKillMs <= 2 * electionTimeoutMs,
      `served a write ${servedAfterKillMs} ms after the kill; two election timeouts are ${2 * electionTimeoutMs} ms`);
    assert.notEqual(await c.leader(), oldLeader);
    for (const [key, value] of acked) {
      const g = await c.http(survivors[0], 'GET', `/kv/${key}`);
      assert.deepEqual([g.status, g.body], [200, value], `acknowledged write ${key} lost`);
    }
  });

  test('the killed node restarts from its log and catches up', async () => {
    const down = [1, 2, 3].find((id) => !c.procs.has(id))!;
    assert.ok(down !== undefined, 'one node is down after the previous test');
    const up = [1, 2, 3].filter((id) => id !== down);
    for (let i = 0; i < 10; i++) {
      const r = await c.put(up[i % 2], `while-down-${i}`, `w${i}`);
      assert.equal(r.status, 200, r.body);
      acked.set(`while-down-${i}`, `w${i}`);
    }
    const target = (await c.status(up[0]))!.chosenPrefix as number;
    c.start(down);
    await c.waitFor(`node ${down} applying through ${target}`, async () => {
      const s = await c.status(down);
      return s !== null && (s.appliedPrefix as number) >= target ? true : undefined;
    });
    for (const [key, value] of acked) {
      const g = await c.http(down, 'GET', `/kv/${key}?read=local`);
      assert.deepEqual([g.status, g.body], [200, value], `node ${down} after restart: ${key}`);
    }
  });
});
