// Partitions between real `paxlog serve` processes, for each protocol: the transport's test-only
// fault layer (serve --fault-control, POST /fault/partition) drops every frame between the leader
// and the other two nodes. The old leader, now in the minority, must acknowledge no write and
// serve no linearizable read; the majority must elect a leader within four election timeouts (two, and a split vote) and
// serve writes; after healing, every node must apply the same prefix and hold the same values.
// Ports: 23500-23549 (multipaxos), 23600-23649 (raft), 23900-23949 (the flag's absence).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { suiteCluster } from './node-harness.js';

const tickMs = 20;
/** The core's default electionTicksMax (src/protocol/types.ts defaultConfig). */
const electionTicksMax = 20;
const electionTimeoutMs = electionTicksMax * tickMs;
/** The core's default leaseTicks: no lease outlives this. */
const leaseMs = 8 * tickMs;

for (const [protocol, basePort] of [['multipaxos', 23500], ['raft', 23600]] as const) describe(`a partition of a 3-node ${protocol} cluster of real processes`, { timeout: 60_000 }, () => {
  const c = suiteCluster({
    nodes: 3, basePort, tickMs,
    extraArgs: ['--protocol', protocol, '--request-timeout-ms', '1500', '--fault-control'],
  });
  /** Every write acknowledged with 200: key -> value. */
  const acked = new Map<string, string>();
  const partition = (id: number, peers: number[]) => c.http(id, 'POST', '/fault/partition', JSON.stringify(peers));


  test('the partition control refuses bad lists with 400 and reports the cut in /status', async () => {
    for (const body of ['nope', '{"peers":[2]}', '[1]', '[99]', '[2.5]']) {
      const r = await c.http(1, 'POST', '/fault/partition', body);
      assert.equal(r.status, 400, `body ${body}: ${r.status} ${r.body}`);
      assert.match(JSON.parse(r.body).error as string, /JSON|member|list/);
    }
    const r = await partition(1, [3]);
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { partitioned: [3] }]);
    assert.deepEqual((await c.status(1))!.partitioned, [3]);
    assert.deepEqual(JSON.parse((await partition(1, [])).body), { partitioned: [] });
    assert.deepEqual((await c.status(2))!.partitioned, []);
  });

  test('the leader in the minority serves nothing linearizable; the majority elects within four election timeouts; healing converges', async (t) => {
    const oldLeader = await c.leader();
    const majority = [1, 2, 3].filter((id) => id !== oldLeader);
    for (let i = 0; i < 10; i++) {
      const r = await c.put((i % 3) + 1, `before-${i}`, `b${i}`);
      assert.equal(r.status, 200, r.body);
      acked.set(`before-${i}`, `b${i}`);
    }

    // Cut both sides at once (either side alone would do: each drops frames both ways).
    const cutAt = Date.now();
    await Promise.all([partition(oldLeader, majority), ...majority.map((id) => partition(id, [oldLeader]))]);

    // The majority: a leader among the two, serving writes.
    const electedMs = await c.waitFor('a leader in the majority', async () => {
      const ss = await Promise.all(majority.map((id) => c.status(id)));
      return ss.some((s) => s !== null && s.role === 'leader') ? Date.now() - cutAt : undefined;
    }, 10_000);
    for (let i = 0; i < 10; i++) {
      const r = await c.put(majority[i % 2], `during-${i}`, `d${i}`);
      assert.equal(r.status, 200, `PUT during-${i} on majority node ${majority[i % 2]}: ${r.status} ${r.body}`);
      acked.set(`during-${i}`, `d${i}`);
    }

    // The minority: its lease has run out by now (the election above took longer than a lease).
    assert.ok(Date.now() - cutAt > leaseMs);
    const w = await c.http(oldLeader, 'PUT', '/kv/minority', 'm', 10_000);
    assert.ok(w.status === 503 || w.status === 504, `a write on the cut-off old leader answered ${w.status} ${w.body}`);
    for (const mode of ['lease', 'quorum', 'linearizable']) {
      const q = mode === 'linearizable' ? '' : `?read=${mode}`;
      const g = await c.http(oldLeader, 'GET', `/kv/during-0${q}`, undefined, 10_000);
      assert.ok(g.status === 503 || g.status === 504, `read=${mode} on the cut-off old leader answered ${g.status} ${g.body}`);
      const h = await c.http(oldLeader, 'GET', `/kv/before-0${q}`, undefined, 10_000);
      assert.ok(h.status === 503 || h.status === 504, `read=${mode} of an old key on the cut-off old leader answered ${h.status} ${h.body}`);
    }
    // The links stay up (the fault layer drops frames, not connections), and /status says how long
    // each peer has been silent.
    const seen = (await c.status(oldLeader))!;
    const sinceCut = Date.now() - cutAt;
    assert.deepEqual(seen.peersConnected, majority, 'links up through the cut');
    for (const id of majority) {
      const ms = (seen.peersHeardMsAgo as Record<string, number>)[String(id)];
      assert.ok(ms >= sinceCut - 500, `node ${oldLeader} last heard node ${id} ${ms} ms ago, ${sinceCut} ms after the cut`);
    }
    // A local read is allowed to be stale, and is: the old leader has not seen the majority's writes.
    assert.equal((await c.http(oldLeader, 'GET', '/kv/during-0?read=local')).status, 404);

    // Heal; every node converges on one leader, one applied prefix and the same values.
    await Promise.all([1, 2, 3].map((id) => partition(id, [])));
    const healedAt = Date.now();
    await c.leader();
    const r = await c.put(majority[0], 'after', 'a');
    assert.equal(r.status, 200, r.body);
    acked.set('after', 'a');
    const applied = await c.waitFor('every node applying the same prefix', async () => {
      const ss = await Promise.all([1, 2, 3].map((id) => c.status(id)));
      if (ss.some((s) => s === null)) return undefined;
      const a = new Set(ss.map((s) => s!.applied as number));
      const p = new Set(ss.map((s) => s!.chosenPrefix as number));
      return a.size === 1 && p.size === 1 && [...a][0] + 1 === [...p][0] ? [...a][0] : undefined;
    }, 15_000);
    t.diagnostic(`old leader ${oldLeader}; majority elected ${electedMs} ms after the cut; converged ${Date.now() - healedAt} ms after healing at applied slot ${applied}`);
    // Two election timeouts, and two more for a split vote (both followers' timers can fire together)
    // or a loaded machine: a full parallel test run saw Raft elect 907 ms after the cut (not traced;
    // alone, 234 to 381 ms in 10 runs). A majority waiting on the dead links would take the 10 s keepalive.
    assert.ok(electedMs <= 4 * electionTimeoutMs, `the majority elected a leader ${electedMs} ms after the cut; four election timeouts are ${4 * electionTimeoutMs} ms`);
    for (const [key, value] of acked) {
      for (const id of [1, 2, 3]) {
        const g = await c.http(id, 'GET', `/kv/${key}?read=local`);
        assert.deepEqual([g.status, g.body], [200, value], `node ${id}: acknowledged ${key}`);
      }
    }
    // The minority write's outcome was unknown: it may or may not have been chosen later, but every node agrees.
    const m = await Promise.all([1, 2, 3].map(async (id) => {
      const g = await c.http(id, 'GET', '/kv/minority?read=local');
      return `${g.status} ${g.body}`;
    }));
    assert.equal(new Set(m).size, 1, `nodes disagree on the minority write: ${m.join(' | ')}`);
  });
});

describe('the partition control without --fault-control', { timeout: 30_000 }, () => {
  const c = suiteCluster({ nodes: 1, basePort: 23900, tickMs });

  test('does not exist: POST /fault/partition and POST /fault/disk answer 404 and change nothing', async () => {
    const r = await c.http(1, 'POST', '/fault/partition', '[2]');
    assert.equal(r.status, 404, r.body);
    assert.match(JSON.parse(r.body).error as string, /--fault-control/);
    const d = await c.http(1, 'POST', '/fault/disk', '{"delayMs": 5000}');
    assert.equal(d.status, 404, d.body);
    assert.match(JSON.parse(d.body).error as string, /--fault-control/);
    const s = (await c.status(1))!;
    assert.equal(s.partitioned, undefined);
    assert.equal(s.diskDelayMs, undefined);
    assert.equal((await c.put(1, 'k', 'v')).status, 200);
  });
});

// A follower's requests that went to a leader it then loses: they fail within about an election
// timeout of its leaving that leader, not after the whole request timeout (10 s here).
// Ports: 24300-24352 (multipaxos), 24400-24452 (raft).
for (const [protocol, basePort] of [['multipaxos', 24300], ['raft', 24400]] as const) describe(`${protocol}: requests pending when the leader changes`, { timeout: 60_000 }, () => {
  const requestTimeoutMs = 10_000;
  const c = suiteCluster({
    nodes: 3, basePort, tickMs,
    extraArgs: ['--protocol', protocol, '--request-timeout-ms', String(requestTimeoutMs), '--fault-control'],
  });
  const partition = (id: number, peers: number[]) => c.http(id, 'POST', '/fault/partition', JSON.stringify(peers));

  test('a write and a read forwarded to a leader cut off fail soon after the others elect a new one', async (t) => {
    const oldLeader = await c.leader();
    const [f1, f2] = [1, 2, 3].filter((id) => id !== oldLeader);
    assert.equal((await c.put(f1, 'warm', 'w')).status, 200);
    await Promise.all([partition(oldLeader, [f1, f2]), partition(f1, [oldLeader]), partition(f2, [oldLeader])]);
    // f1 still follows the old leader (no election timeout has passed): both are forwarded into the cut.
    const sentAt = Date.now();
    const [w, g] = await Promise.all([
      c.http(f1, 'PUT', '/kv/cut', 'x', 2 * requestTimeoutMs).then((r) => ({ ...r, ms: Date.now() - sentAt })),
      c.http(f1, 'GET', '/kv/warm', undefined, 2 * requestTimeoutMs).then((r) => ({ ...r, ms: Date.now() - sentAt })),
    ]);
    t.diagnostic(`write ${w.status} after ${w.ms} ms, read ${g.status} after ${g.ms} ms`);
    assert.equal(w.status, 504, `the write: ${w.status} ${w.body}`);
    assert.match(JSON.parse(w.body).error as string, /leader change/);
    assert.equal(g.status, 503, `the read: ${g.status} ${g.body}`);
    assert.ok(w.ms < requestTimeoutMs / 2 && g.ms < requestTimeoutMs / 2, `answered after ${w.ms} and ${g.ms} ms; the request timeout is ${requestTimeoutMs} ms`);
    await c.waitFor('f1 following a new leader', async () => {
      const l = (await c.status(f1))?.leader;
      return l !== undefined && l !== 0 && l !== oldLeader ? l : undefined;
    }, 10_000);
    // The majority serves; after healing every node holds the same answer for the write in doubt.
    assert.equal((await c.put(f2, 'after', 'a')).status, 200);
    await Promise.all([1, 2, 3].map((id) => partition(id, [])));
    await c.leader();
    assert.equal((await c.put(f1, 'healed', 'h')).status, 200);
    const seen = await c.waitFor('every node agreeing on the write in doubt', async () => {
      const m = await Promise.all([1, 2, 3].map(async (id) => {
        const r = await c.http(id, 'GET', '/kv/healed?read=local');
        const d = await c.http(id, 'GET', '/kv/cut?read=local');
        return r.status === 200 ? `${d.status} ${d.body}` : undefined;
      }));
      return m.every((x) => x !== undefined) && new Set(m).size === 1 ? m[0] : undefined;
    }, 15_000);
    t.diagnostic(`the write in doubt reads ${seen} everywhere`);
  });
});
