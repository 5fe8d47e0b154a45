// A slow disk under real `paxlog serve` processes, for each protocol (serve --fault-control, POST
// /fault/disk: every log transaction of that node waits before its commit, one after another). A
// follower's slow disk, then the leader's, each killed with -9 while writes wait at it: the cluster
// keeps answering writes, and every write acknowledged with 200 survives the kills and the leader
// change. Then every disk slow and the whole cluster killed at once: no node may have answered for
// a write it had not made durable. Ports: 28200-28252 (multipaxos), 28300-28352 (raft).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { suiteCluster, type ProcCluster } from './node-harness.js';

const tickMs = 20;
/** Each transaction of a slow disk waits this long: many times a real sync, and a write waits for several. */
const diskDelayMs = 150;

/** Writers PUT unique keys to node `target` until `stop()`; every 200 is recorded in `acked`. */
async function writeWhile(c: ProcCluster, target: number, prefix: string, acked: Map<string, string>, stop: () => boolean, counts: Map<number, number>): Promise<void> {
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stop(); i++) {
      const key = `${prefix}-${w}-${i}`;
      const value = `v-${key}`;
      let status = 0;
      try {
        status = (await c.http(target, 'PUT', `/kv/${key}`, value, 5_000)).status;
      } catch {
        // A node killed under the request: its outcome is unknown, as a 504 says.
      }
      counts.set(status, (counts.get(status) ?? 0) + 1);
      if (status === 200) acked.set(key, value);
      else await new Promise((r) => setTimeout(r, 20));
    }
  };
  await Promise.all([0, 1, 2, 3].map(writer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const [protocol, basePort] of [['multipaxos', 28200], ['raft', 28300]] as const) describe(`a slow disk in a 3-node ${protocol} cluster of real processes`, { timeout: 90_000 }, () => {
  const c = suiteCluster({
    nodes: 3, basePort, tickMs,
    extraArgs: ['--protocol', protocol, '--request-timeout-ms', '3000', '--fault-control'],
  });
  const slow = (id: number, ms: number) => c.http(id, 'POST', '/fault/disk', JSON.stringify({ delayMs: ms }));

  test('the disk control refuses bad bodies with 400 and reports the delay in /status', async () => {
    for (const body of ['nope', '[150]', '{"delayMs":-1}', '{"delayMs":1.5}', '{"delayMs":"150"}', '{"delayMs":10001}', '{}', 'null']) {
      const r = await c.http(1, 'POST', '/fault/disk', body);
      assert.equal(r.status, 400, `body ${body}: ${r.status} ${r.body}`);
      assert.match(JSON.parse(r.body).error as string, /delayMs/);
    }
    assert.equal((await c.status(1))!.diskDelayMs, 0);
    const r = await slow(1, 40);
    assert.deepEqual([r.status, JSON.parse(r.body)], [200, { diskDelayMs: 40 }]);
    assert.equal((await c.status(1))!.diskDelayMs, 40);
    // A node whose disk is slow still takes writes (through any node) and serves them.
    assert.equal((await c.put(1, 'slow-1', 'one')).status, 200);
    assert.equal((await c.get(1, 'slow-1')).body, 'one');
    assert.equal((await slow(1, 0)).status, 200);
    assert.equal((await c.status(1))!.diskDelayMs, 0);
  });

  test('kill -9 of a follower and then of the leader while writes wait at their slow disks loses no acknowledged write', async () => {
    const acked = new Map<string, string>();
    const counts = new Map<number, number>();
    const leader = await c.leader();
    const [follower, other] = [1, 2, 3].filter((id) => id !== leader);

    // A follower's disk slows down, and it is killed while transactions wait at it.
    assert.equal((await slow(follower, diskDelayMs)).status, 200);
    let stop = false;
    const writing = writeWhile(c, leader, 'f', acked, () => stop, counts);
    await sleep(1_000);
    await c.kill(follower);
    await sleep(500);
    stop = true;
    await writing;
    const afterFollower = acked.size;
    assert.ok(afterFollower > 0, `no write acknowledged with the follower's disk slow: ${JSON.stringify([...counts])}`);
    c.start(follower);

    // The leader's disk slows down: the two others still make a quorum, so writes are answered.
    assert.equal((await slow(leader, diskDelayMs)).status, 200);
    stop = false;
    const writingAtLeader = writeWhile(c, leader, 'l', acked, () => stop, counts);
    await sleep(1_500);
    const beforeKill = acked.size;
    await c.kill(leader);
    stop = true;
    await writingAtLeader;
    assert.ok(beforeKill > afterFollower, `no write acknowledged with the leader's disk slow: ${JSON.stringify([...counts])}`);

    // A new leader among the others holds every acknowledged write.
    const next = await c.leader();
    assert.notEqual(next, leader);
    await assertAllRead(c, next, acked);

    // The old leader comes back with what its slow disk made durable, and catches up.
    c.start(leader);
    await c.leader();
    await assertCaughtUp(c, [1, 2, 3], acked);
  });

  test('every disk slow and the whole cluster killed -9 at once: no acknowledged write lost', async () => {
    // A write is acknowledged once a majority made it durable: killing every node while writes
    // wait at every disk loses only writes no client heard of. (Were a node to answer Accept
    // before its write was durable, two such answers would choose a write no disk holds.)
    const acked = new Map<string, string>();
    const counts = new Map<number, number>();
    const leader = await c.leader();
    await Promise.all([1, 2, 3].map((id) => slow(id, diskDelayMs)));
    let stop = false;
    const writing = writeWhile(c, leader, 'q', acked, () => stop, counts);
    await sleep(1_500);
    await Promise.all([1, 2, 3].map((id) => c.kill(id)));
    stop = true;
    await writing;
    assert.ok(acked.size > 0, `no write acknowledged with every disk slow: ${JSON.stringify([...counts])}`);

    // All come back (new processes: fast disks).
    for (const id of [1, 2, 3]) c.start(id);
    const next = await c.leader();
    await assertAllRead(c, next, acked);
    await assertCaughtUp(c, [1, 2, 3], acked);
  });
});

/** Every acknowledged write reads back, linearizably, on node `id`. */
async function assertAllRead(c: ProcCluster, id: number, acked: Map<string, string>): Promise<void> {
  for (const [key, value] of acked) {
    const r = await c.get(id, key);
    assert.deepEqual([r.status, r.body], [200, value], `acknowledged ${key} read on node ${id} (of ${acked.size} acknowledged)\n${c.describe()}`);
  }
}

/** Every node in `ids` applies the last acknowledged write and holds its value. */
async function assertCaughtUp(c: ProcCluster, ids: number[], acked: Map<string, string>): Promise<void> {
  const last = [...acked.keys()].at(-1)!;
  for (const id of ids) {
    await c.waitFor(`node ${id} to apply ${last}`, async () => {
      const r = await c.http(id, 'GET', `/kv/${last}?read=local`).catch(() => null);
      return r !== null && r.status === 200 ? r.body : undefined;
    }).then((body) => assert.equal(body, acked.get(last), `node ${id}`));
  }
}
