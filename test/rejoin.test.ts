// Rejoining without voting, on real `paxlog serve` processes, for each protocol. A follower whose
// log has a corrupt accepted slot refuses to start with the reason; with --rejoin-without-voting it
// sets the damaged log aside (kept in its data directory), starts from an empty log, catches up
// from its peers, and votes again: after the leader is then killed, it and the third node elect a
// new leader and every acknowledged write is still there. A wiped data directory rejoins the same
// way (a new log cannot tell a first start from a wiped disk). Ports: 24700-24752 (multipaxos),
// 24800-24852 (raft): peer ports from the base, client ports from base + 50.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { flipStoredBits } from './lmdb-faults.js';
import { ProcCluster, suiteCluster } from './node-harness.js';

/** Flip one bit in the value of the first record of a stopped node's log, as a bad disk would. */
async function damageFirstRecord(dataDir: string): Promise<number> {
  const root = openLmdb({ path: path.join(dataDir, 'paxlog.mdb'), maxDbs: 4 });
  const log = root.openDB<Buffer, number>({ name: 'log', encoding: 'binary' });
  const [first] = [...log.getKeys({ limit: 1 })];
  await root.close();
  await flipStoredBits(dataDir, 'log', first, -1, 0x04);
  return first;
}

for (const [protocol, basePort] of [['multipaxos', 24700], ['raft', 24800]] as const) describe(`${protocol}: a damaged or wiped replica rejoins without voting`, { timeout: 120_000 }, () => {
  // No snapshots: the damaged record must still be in the log when the node restarts.
  const c = suiteCluster({ nodes: 3, basePort, extraArgs: ['--protocol', protocol, '--snapshot-slots', '0', '--request-timeout-ms', '2000'] });
  const acked = new Map<string, string>();

  const putAll = async (leader: number, from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const r = await c.put(leader, `k${i}`, `v${i}`);
      assert.equal(r.status, 200, `PUT k${i}: ${r.status} ${r.body}`);
      acked.set(`k${i}`, `v${i}`);
    }
  };
  const caughtUp = async (id: number, leader: number): Promise<void> => {
    const want = ((await c.status(leader))!.applied as number);
    await c.waitFor(`node ${id} to vote again and apply through ${want}`, async () => {
      const s = await c.status(id);
      return s !== null && s.rejoining === false && (s.applied as number) >= want ? true : undefined;
    }, 30_000);
  };

  test('a corrupt accepted slot: refused without the option; with it, set aside, caught up, voting', async () => {
    let leader = await c.leader();
    await putAll(leader, 0, 20);
    const victim = [1, 2, 3].find((id) => id !== leader)!;
    await c.kill(victim);
    const slot = await damageFirstRecord(c.dataDir(victim));

    const refused = c.start(victim);
    const code = await new Promise<number | null>((r) => refused.once('exit', r));
    assert.notEqual(code, 0);
    assert.match(c.output.get(victim) ?? '', new RegExp(`corrupt accepted slots \\(${slot}\\); refusing to start`));

    c.output.delete(victim);
    c.start(victim, ['--rejoin-without-voting']);
    await caughtUp(victim, leader);
    assert.match(c.output.get(victim) ?? '', /THE LOG IS DAMAGED: set aside/);
    const aside = fs.readdirSync(c.dataDir(victim)).filter((f) => f.startsWith('damaged-'));
    assert.equal(aside.length, 1, 'the damaged log is kept');
    assert.ok(fs.existsSync(path.join(c.dataDir(victim), aside[0], 'paxlog.mdb')));
    for (const [k, v] of acked) {
      const g = await c.http(victim, 'GET', `/kv/${k}?read=local`);
      assert.deepEqual([g.status, g.body], [200, v], `local read of ${k} on the rejoined node`);
    }

    // It votes again: with the old leader gone, it and the third node elect a leader.
    await putAll(leader, 20, 30);
    await c.kill(leader);
    const next = await c.leader(20_000);
    assert.notEqual(next, leader);
    await putAll(next, 30, 35);
    for (const [k, v] of acked) {
      const g = await c.get(victim, k);
      assert.deepEqual([g.status, g.body], [200, v], `linearizable read of ${k} after the new election`);
    }
    c.start(leader);
    await caughtUp(leader, next);
  });

  test('a wiped data directory rejoins without voting and catches up', async () => {
    const leader = await c.leader();
    const victim = [1, 2, 3].find((id) => id !== leader)!;
    await c.kill(victim);
    fs.rmSync(c.dataDir(victim), { recursive: true, force: true });
    await putAll(leader, 35, 40);
    c.start(victim);
    await caughtUp(victim, leader);
    assert.match(c.output.get(victim) ?? '', /rejoining without voting/);
    for (const [k, v] of acked) {
      const g = await c.http(victim, 'GET', `/kv/${k}?read=local`);
      assert.deepEqual([g.status, g.body], [200, v], `local read of ${k} on the wiped node`);
    }
  });
});

describe('bootstrapping: new data directories rejoin until every member answered once, unless --new-cluster', { timeout: 60_000 }, () => {
  // Ports 24900-24952.
  const c = new ProcCluster({ nodes: 3, basePort: 24900, extraArgs: ['--request-timeout-ms', '1000'] });
  after(async () => {
    await c.stop();
  });

  test('two new nodes with the third down elect nobody; the third arriving completes the bootstrap', async () => {
    c.start(1);
    c.start(2);
    // Once both serve (a start took over 1.5 s in a loaded suite run), give them many election
    // timeouts: a new directory may be a wiped one, so they must not vote.
    for (const id of [1, 2]) await c.waitFor(`node ${id} to answer /status`, async () => (await c.status(id)) ?? undefined);
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of [1, 2]) {
      const s = await c.status(id);
      assert.ok(s !== null, `node ${id} answers /status`);
      assert.deepEqual([s.rejoining, s.role], [true, 'follower'], `node ${id}`);
    }
    c.start(3);
    const leader = await c.leader();
    assert.equal((await c.put(leader, 'k', 'v')).status, 200);
    // A node finishes rejoining once it has learned the chosen prefix, which may reach it a moment after the write's answer.
    await c.waitFor('every node to vote', async () => {
      const ss = await Promise.all([1, 2, 3].map((id) => c.status(id)));
      return ss.every((s) => s !== null && s.rejoining === false) ? true : undefined;
    });
  });
});

describe('--new-cluster: bootstraps with a member down, and does not make a wiped node of a running cluster vote at once', { timeout: 60_000 }, () => {
  // Ports 25100-25152.
  const c = new ProcCluster({ nodes: 3, basePort: 25100, extraArgs: ['--request-timeout-ms', '1000', '--snapshot-slots', '0'] });
  after(async () => {
    await c.stop();
  });

  test('two nodes with the third down elect a leader; the wiped leader restarted with --new-cluster rejoins without voting', async () => {
    c.start(1, ['--new-cluster']);
    c.start(2, ['--new-cluster']);
    const leader = await c.leader(20_000);
    for (let i = 0; i < 5; i++) assert.equal((await c.put(leader, `k${i}`, `v${i}`)).status, 200);
    const other = leader === 1 ? 2 : 1;
    // The other node must know every chosen slot first. It is the only member left that votes, and
    // the rejoining nodes vote only once their chosen prefix passes the highest slot any member
    // accepted: a slot it accepted without hearing it was chosen would then wait for a leader that
    // nobody can elect (the README's known limits of rejoining). A CI run sat 30 s without a leader,
    // most likely so: a leader answers its client before its Commit frames leave, and the kill came between.
    await c.waitFor(`node ${other} to know every chosen slot`, async () => {
      const [l, o] = await Promise.all([c.status(leader), c.status(other)]);
      return l !== null && o !== null && l.inFlight === 0 && o.chosenPrefix === l.chosenPrefix ? true : undefined;
    });
    // The leader loses its disk and is started again as if for a new cluster. Node 2 answers with
    // its ballot and slots: the cluster runs, so the node rejoins in full. It cannot finish before
    // node 3 has answered too, and node 3 is down, so it stays out of every quorum meanwhile.
    await c.kill(leader);
    fs.rmSync(c.dataDir(leader), { recursive: true, force: true });
    c.start(leader, ['--new-cluster']);
    await c.waitFor(`node ${leader} to answer /status`, async () => (await c.status(leader)) ?? undefined);
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of [1, 2]) {
      const s = await c.status(id);
      assert.ok(s !== null, `node ${id} answers /status`);
      assert.notEqual(s.role, 'leader', `node ${id}: no leader without the wiped node's vote`);
    }
    assert.equal((await c.status(leader))!.rejoining, true, 'the wiped node does not vote');
    // Node 3 arrives (a new directory, rejoining): every member has answered, the wiped node catches
    // up, and the writes acknowledged before are all there.
    c.start(3);
    const next = await c.leader(30_000);
    await c.waitFor('every node to vote', async () => {
      const ss = await Promise.all([1, 2, 3].map((id) => c.status(id)));
      return ss.every((s) => s !== null && s.rejoining === false) ? true : undefined;
    }, 30_000);
    for (let i = 0; i < 5; i++) {
      const g = await c.get(next, `k${i}`);
      assert.deepEqual([g.status, g.body], [200, `v${i}`], `k${i} after the wiped node rejoined`);
    }
  });
});
