// Real `paxlog serve` processes on loopback (real uWS, real LMDB with fsync on), for each protocol:
// writes on any node, linearizable reads from every node, kill -9 of the leader under load, restart
// and catch-up. Snapshots every 7 slots, so a restart restores a snapshot and replays the log above it.
// Ports: 17200-17299 (multipaxos), 17700-17799 (raft).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { suiteCluster } from './node-harness.js';

const tickMs = 20;
/** The core's default electionTicksMax (src/protocol/types.ts defaultConfig). */
const electionTicksMax = 20;
const electionTimeoutMs = electionTicksMax * tickMs;

for (const [protocol, basePort] of [['multipaxos', 17200], ['raft', 17700]] as const) describe(`a 3-node ${protocol} cluster of real processes`, { timeout: 120_000 }, () => {
  const c = suiteCluster({
    nodes: 3, basePort, tickMs,
    extraArgs: ['--protocol', protocol, '--request-timeout-ms', '2000', '--snapshot-slots', '7'],
  });
  /** Every write acknowledged with 200: key -> value. Nothing in it may ever be lost. */
  const acked = new Map<string, string>();


  test('takes writes on any node and every node reads them back linearizably', async () => {
    assert.equal((await c.status(1))!.protocol, protocol);
    for (let i = 0; i < 30; i++) {
      const writer = (i % 3) + 1;
      const r = await c.put(writer, `k${i}`, `v${i}`);
      assert.equal(r.status, 200, `PUT k${i} on node ${writer}: ${r.status} ${r.body}`);
      acked.set(`k${i}`, `v${i}`);
      // Linearizable: a read that starts after the write's 200, on any other node, sees it.
      const reader = ((i + 1) % 3) + 1;
      const g = await c.http(reader, 'GET', `/kv/k${i}`);
      assert.equal(g.status, 200, `GET k${i} on node ${reader} right after the write: ${g.status} ${g.body}`);
      assert.equal(g.body, `v${i}`);
    }
    for (const mode of ['quorum', 'lease']) {
      for (const node of [1, 2, 3]) {
        const g = await c.http(node, 'GET', `/kv/k0?read=${mode}`);
        assert.deepEqual([g.status, g.body], [200, 'v0'], `read=${mode} on node ${node}`);
      }
    }
    const del = await c.http(3, 'DELETE', '/kv/k29');
    assert.equal(del.status, 200);
    acked.delete('k29');
    assert.equal((await c.http(1, 'DELETE', '/kv/k29')).status, 404, 'a second delete finds nothing');
    assert.equal((await c.http(2, 'GET', '/kv/k29')).status, 404);
    assert.equal((await c.http(1, 'POST', '/kv/k0?expect=wrong', 'x')).status, 412);
    assert.equal((await c.http(2, 'POST', '/kv/k0?expect=v0', 'v0b')).status, 200);
    acked.set('k0', 'v0b');
    assert.equal((await c.http(3, 'GET', '/kv/k0')).body, 'v0b');
  });

  test('the members snapshot at different slots, so their event loops are not held up at once', async () => {
    // After the 30 writes above, one slot each, with --snapshot-slots 7: each node starts its count
    // at its place among the members (0, 2 and 4 slots of 7), so the prefixes differ.
    const prefixes = await Promise.all([1, 2, 3].map(async (id) => (await c.status(id))!.snapshotPrefix as number));
    assert.ok(prefixes.every((p) => p > 1), `every node took a snapshot: ${prefixes}`);
    assert.equal(new Set(prefixes).size, 3, `snapshot prefixes ${prefixes}`);
  });

  test('kill -9 of the leader under load loses no acknowledged write, and a new leader serves within two election timeouts (Raft: three, for one split vote)', async (t) => {
    const oldLeader = await c.leader();
    const survivors = [1, 2, 3].filter((id) => id !== oldLeader);
    let stop = false;
    let killedAt = 0;
    let servedAfterKillMs = -1;
    const outcomes = { ok: 0, unavailable: 0, unknown: 0 };

    // Writers: each loops over its own keys on one node. 200 means acknowledged: it must survive.
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
          } else if (r.status === 503) outcomes.unavailable++;
          else outcomes.unknown++;
        } catch {
          outcomes.unknown++; // connection refused or reset by the kill, or our own timeout: outcome unknown
        }
      }
    };
    // A prober asks the survivors often, with a short timeout, to time when the cluster serves again.
    const prober = async (): Promise<void> => {
      for (let i = 0; !stop; i++) {
        if (killedAt > 0 && servedAfterKillMs < 0) {
          const node = survivors[i % 2];
          try {
            const r = await c.http(node, 'PUT', `/kv/probe-${i}`, 'p', 300);
            if (r.status === 200) {
              acked.set(`probe-${i}`, 'p');
              if (servedAfterKillMs < 0) servedAfterKillMs = Date.now() - killedAt;
            }
          } catch {
            // unknown outcome: not acknowledged
          }
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const load = [0, 1, 2, 3, 4, 5].map(writer);
    const probing = prober();
    await new Promise((r) => setTimeout(r, 1500));
    const okBefore = outcomes.ok;
    killedAt = Date.now();
    await c.kill(oldLeader);
    await c.waitFor('a write acknowledged after the kill', async () => (servedAfterKillMs >= 0 ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all([...load, probing]);

    t.diagnostic(`writes before the kill ${okBefore}; served again ${servedAfterKillMs} ms after it; outcomes ${JSON.stringify(outcomes)}; acked ${acked.size}`);
    assert.ok(okBefore > 20, `the load made ${okBefore} writes before the kill`);
    // Two election timeouts; Raft gets one more: two followers that time out within a message's
    // delay of each other each vote for themselves, the term fails, and another timeout follows
    // (Raft gives one vote per term; two Paxos candidates carry different ballots and the higher
    // wins in that round). A CI run at abf5967 saw Raft serve again 943 ms after the kill.
    const boundMs = (protocol === 'raft' ? 3 : 2) * electionTimeoutMs;
    assert.ok(servedAfterKillMs <= boundMs,
      `the cluster served a write ${servedAfterKillMs} ms after the kill; the bound is ${boundMs} ms (${boundMs / electionTimeoutMs} election timeouts)`);
    const newLeader = await c.leader();
    assert.notEqual(newLeader, oldLeader);
    for (const [key, value] of acked) {
      const g = await c.http(survivors[0], 'GET', `/kv/${key}`);
      assert.deepEqual([g.status, g.body], [200, value], `acknowledged write ${key} lost (outcomes ${JSON.stringify(outcomes)})`);
    }
  });

  test('a killed node restarts, recovers from its log and catches up', async () => {
    const down = [1, 2, 3].find((id) => !c.procs.has(id))!;
    assert.ok(down !== undefined, 'one node is down after the previous test');
    // Writes while it is down.
    const up = [1, 2, 3].filter((id) => id !== down);
    for (let i = 0; i < 10; i++) {
      const r = await c.put(up[i % 2], `while-down-${i}`, `w${i}`);
      assert.equal(r.status, 200, r.body);
      acked.set(`while-down-${i}`, `w${i}`);
    }
    const target = (await c.status(up[0]))!.chosenPrefix as number;
    c.start(down);
    await c.waitFor(`node ${down} applying through the chosen prefix ${target}`, async () => {
      const s = await c.status(down);
      return s !== null && (s.appliedPrefix as number) >= target ? true : undefined;
    });
    // Its own applied state (a local read, no leader involved) holds every acknowledged write.
    for (const [key, value] of acked) {
      const g = await c.http(down, 'GET', `/kv/${key}?read=local`);
      assert.deepEqual([g.status, g.body], [200, value], `node ${down} after restart: ${key}`);
    }
    const s = (await c.status(down))!;
    assert.equal(s.fsync, 'on');
    assert.ok((s.peersConnected as number[]).length === 2, `node ${down} links: ${JSON.stringify(s.peersConnected)}`);
  });
});
